import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { inspectFile, quantizeModel } from '../../src/cli/commands.js';
import { readQuantizedContainer } from '../../src/format/container.js';
import { openQuantizedContainerFile, writeQuantizedContainerFile } from '../../src/format/containerFile.js';
import type { SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { expectedNmse } from '../../src/product/expectedError.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { resolveScheme, SCHEME_NAMES } from '../../src/quantize/schemes.js';
import { resealed } from '../format/containerFuzzProperty.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason, testDevice } from '../gpu/gpuTestDevice.js';
import { isSoftwareAdapter } from '../../src/gpu/device.js';

/*
 * The CLI from the sources (through tsx, as `npm run cli` runs it): exit codes and messages for bad
 * arguments, output paths refused before any work, Ctrl-C, errors named in the file's terms, and the
 * GPU path writing the same container as the CPU worker threads. The installed binary is exercised end
 * to end in test/package/packInstall.test.ts.
 */

const root = resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);
const cliArgs = ['--import', 'tsx', '--import', './scripts/raw-loader.mjs', 'src/cli/main.ts'];
let work: string;
const noGpu = await gpuUnavailableReason();

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [...cliArgs, ...args], { cwd: root, timeout: 120_000, maxBuffer: 2 ** 26 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-cli-'));
  await writeSafetensorsFile(join(work, 'model.safetensors'), {
    'a.weight': { dtype: 'F32', shape: [33, 200], data: gaussianMatrix(200, 33, 1).data }, // n = 200: padded rotation
    'b.weight': { dtype: 'F32', shape: [9, 1100], data: gaussianMatrix(1100, 9, 2).data }, // n > 1024: two windows
    'a.bias': { dtype: 'F32', shape: [33], data: new Float32Array(33) },
  });
  // Six (16, 32) weights; layers.4.weight[1, 30] (row-major: out 1, in 30) is NaN.
  const layers: Record<string, SafetensorsTensorInput> = {};
  for (let i = 0; i < 6; i++) {
    const data = gaussianMatrix(32, 16, 10 + i).data;
    if (i === 4) data[1 * 32 + 30] = NaN;
    layers[`layers.${i}.weight`] = { dtype: 'F32', shape: [16, 32], data };
  }
  await writeSafetensorsFile(join(work, 'nan.safetensors'), layers);
  // An F64 entry beyond the f32 range at [2, 5]; an f32 row (output feature) of norm above 2^100.
  const f64 = Float64Array.from(gaussianMatrix(24, 8, 20).data);
  f64[2 * 24 + 5] = 1e300;
  await writeSafetensorsFile(join(work, 'f64big.safetensors'), { 'proj.weight': { dtype: 'F64', shape: [8, 24], data: f64 } });
  // An F64 row (output feature 5) of 1e-50: all zeros once narrowed to f32.
  const tiny = Float64Array.from(gaussianMatrix(16, 8, 26).data);
  tiny.fill(1e-50, 5 * 16, 6 * 16);
  await writeSafetensorsFile(join(work, 'f64tiny.safetensors'), { 'tiny.weight': { dtype: 'F64', shape: [8, 16], data: tiny } });
  await writeSafetensorsFile(join(work, 'huge.safetensors'), { 'h.weight': { dtype: 'F32', shape: [8, 8], data: gaussianMatrix(8, 8, 21).data.map((v) => v * 1e37) } });
  // Deterministic and scalar schemes store side information a matrix's bitsStored leaves out.
  await writeSafetensorsFile(join(work, 'odd.safetensors'), {
    'w9x13': { dtype: 'F32', shape: [9, 13], data: gaussianMatrix(13, 9, 22).data },
    'w17x1025': { dtype: 'F32', shape: [17, 1025], data: gaussianMatrix(1025, 17, 23).data },
  });
  // One (2048, 1024) weight: a couple of seconds of quantization, long enough to interrupt.
  await writeSafetensorsFile(join(work, 'big.safetensors'), { 'big.weight': { dtype: 'F32', shape: [2048, 1024], data: gaussianMatrix(1024, 2048, 24).data } });
  // model.safetensors in two shards behind a Hugging Face index, in sharded/.
  mkdirSync(join(work, 'sharded'));
  await writeSafetensorsFile(join(work, 'sharded', 'model-00001-of-00002.safetensors'), {
    'a.weight': { dtype: 'F32', shape: [33, 200], data: gaussianMatrix(200, 33, 1).data },
    'a.bias': { dtype: 'F32', shape: [33], data: new Float32Array(33) },
  }, { format: 'pt', shard: 'first' });
  await writeSafetensorsFile(join(work, 'sharded', 'model-00002-of-00002.safetensors'), { 'b.weight': { dtype: 'F32', shape: [9, 1100], data: gaussianMatrix(1100, 9, 2).data } }, { format: 'pt', shard: 'second' });
  writeFileSync(
    join(work, 'sharded', 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 4 * (33 * 200 + 33 + 9 * 1100) }, weight_map: { 'a.bias': 'model-00001-of-00002.safetensors', 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' } }),
  );
  await writeSafetensorsFile(join(work, 'empty.safetensors'), {});
  await writeQuantizedContainerFile(join(work, 'container.safetensors'), [{ name: 'q', matrix: quantize(gaussianMatrix(64, 16, 25), { scheme: 'e8-4bit', nonce: 1 }) }]);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lattice-matmul CLI', () => {
  const model = () => join(work, 'model.safetensors');

  it.each([
    [['quantize', 'missing.safetensors', '-o', 'x'], /lattice-matmul: .*missing\.safetensors/],
    [['quantize', 'MODEL', '-o', 'OUT', '--tensors', '^nothing$'], /no 2-D float tensor \(F32\/F16\/BF16\/F64\) of at least 8 × 8 in .* matches --tensors \^nothing\$/],
    // a.bias is a float tensor, but 1-D; the message says what is selectable.
    [['quantize', 'MODEL', '-o', 'OUT', '--tensors', '^a\\.bias$'], /no 2-D float tensor \(F32\/F16\/BF16\/F64\) of at least 8 × 8 in .* matches --tensors \^a\\\.bias\$/],
    [['quantize', 'CONTAINER', '-o', 'OUT'], /container\.safetensors is a quantized container \(lattice-matmul\.quantized\), not a model: quantize reads a plain safetensors model/],
    // Matrix i gets nonce + i: two tensors from 2^64 − 1 overflow, refused before any work.
    [['quantize', 'MODEL', '-o', 'OUT', '--nonce', '18446744073709551615'], /--nonce 18446744073709551615 with 2 tensors gives the last one nonce 18446744073709551616, but nonces are below 2\^64: use --nonce 18446744073709551614 or less$/m],
    // Without --tensors, the message names no selection; a model with no tensor at all says the same.
    [['quantize', 'EMPTY', '-o', 'OUT'], /no 2-D float tensor \(F32\/F16\/BF16\/F64\) of at least 8 × 8 in \S*empty\.safetensors$/m],
  ])('refuses %j with exit code 1 and a one-line reason', async (args, message) => {
    const files: Record<string, string> = { MODEL: model(), CONTAINER: join(work, 'container.safetensors'), EMPTY: join(work, 'empty.safetensors'), OUT: join(work, 'never.safetensors') };
    const resolved = args.map((a) => files[a] ?? a);
    const { code, stderr } = await cli(...resolved);
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace for a user error
    expect(stderr).not.toMatch(/quantizing/); // refused before any work
    expect(existsSync(join(work, 'never.safetensors'))).toBe(false);
  });

  it.each([
    [[], /no command given/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['quantize', 'MODEL', '-o', 'OUT', '--scheme', 'toString'], /unknown scheme 'toString'; known: e8-2bit/],
    [['quantize', 'MODEL', '-o', 'OUT', '--device', 'tpu'], /--device must be auto, gpu or cpu, got 'tpu'/],
    [['quantize', 'MODEL', '-o', 'OUT', '--tensors', '('], /--tensors is not a valid regular expression/],
    [['quantize', 'MODEL', '-o', 'OUT', '--nonce', '12abc'], /--nonce must be a non-negative decimal integer, got "12abc"/],
    // In the flag's decimal (it was the quantizer's "got 18446744073709551616n", a bigint literal).
    [['quantize', 'MODEL', '-o', 'OUT', '--nonce', '18446744073709551616'], /--nonce must be below 2\^64 = 18446744073709551616, got 18446744073709551616$/m],
    [['quantize', 'MODEL'], /quantize needs -o OUTPUT/],
    [['quantize', 'MODEL', 'MODEL', '-o', 'OUT'], /quantize needs exactly one input file, got 2/],
    [['quantize', 'MODEL', '-o', 'OUT', '--bogus'], /unknown option '--bogus'; known: --output, --scheme, --tensors, --exclude, --transpose, --seed, --nonce, --device, --workers, --force, --quiet, --help$/m],
    // A misspelled option is named with the closest known one, long or short.
    [['quantize', 'MODEL', '-o', 'OUT', '--nonse', '5'], /unknown option '--nonse' \(did you mean '--nonce'\?\); known: --output/],
    [['quantize', 'MODEL', '-o', 'OUT', '--worker=2'], /unknown option '--worker' \(did you mean '--workers'\?\)/],
    [['quantize', 'MODEL', '-o', 'OUT', '-x'], /unknown option '-x'; known: --output/],
    [['inspect', 'MODEL', '--verbose'], /unknown option '--verbose'; known: --help$/m],
    // An option with a value given twice would silently keep the last: refused.
    [['quantize', 'MODEL', '-o', 'OUT', '-o', 'OUT'], /--output \(-o\) is given more than once/],
    [['quantize', 'MODEL', '-o', 'OUT', '--output=OUT'], /--output \(-o\) is given more than once/],
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', '1', '--seed', '2'], /--seed is given more than once/],
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', ''], /--seed must be a non-negative decimal integer, got ""/],
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', '0x10'], /--seed must be a non-negative decimal integer, got "0x10"/],
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', '1e3'], /--seed must be a non-negative decimal integer, got "1e3"/],
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', ' 7 '], /--seed must be a non-negative decimal integer, got " 7 "/],
    [['quantize', 'MODEL', '-o', 'OUT', '--workers', '0'], /--workers must be a positive decimal integer, got "0"/],
    [['quantize', 'MODEL', '-o', 'OUT', '--workers', '1.5'], /--workers must be a positive decimal integer, got "1.5"/],
    [['quantize', 'MODEL', '-o', ''], /-o needs a non-empty path/],
    // A value starting with a dash: one line that says how to give it (was Node's three-line message).
    [['quantize', 'MODEL', '-o', 'OUT', '--seed', '-1'], /lattice-matmul: --seed takes a value, and the argument after it starts with a dash; a value that starts with one is written '--seed=-XYZ'\nusage:/],
    // Options that conflict whatever the file: refused as command lines, before the file is opened.
    [['quantize', 'missing.safetensors', '-o', 'OUT', '--scheme', 'int4-g32', '--nonce', '3'], /--scheme int4-g32 --nonce 3: nonce applies to universal lattice schemes only/],
    [['quantize', 'missing.safetensors', '-o', 'OUT', '--scheme', 'int4-g32', '--device', 'gpu'], /--device gpu --scheme int4-g32: the GPU quantizer encodes lattice schemes; int4-g32 is a scalar baseline, quantized on the CPU/],
    [['quantize', 'missing.safetensors', '-o', 'OUT', '--seed', '4294967296'], /--scheme e8-4bit --seed 4294967296: seed must be an integer in \[0, 2\^32 − 1\]/],
    [['inspect', 'MODEL', 'extra'], /inspect needs exactly one file, got 2/],
    [['schemes', 'extra'], /Unexpected argument 'extra'/],
    // Were exit 0 with the argument ignored.
    [['--version', 'extra'], /--version takes no arguments, got "extra"/],
    [['help', 'bogus'], /help takes a command name \(quantize, inspect or schemes\) or nothing, got "bogus"/],
    [['help', 'quantize', 'extra'], /help takes a command name \(quantize, inspect or schemes\) or nothing, got "quantize" "extra"/],
  ])('refuses the command line %j with exit code 2, the reason and the usage on stderr', async (args, message) => {
    const resolved = args.map((a) => (a === 'MODEL' ? model() : a === 'OUT' ? join(work, 'never.safetensors') : a));
    const { code, stdout, stderr } = await cli(...resolved);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/\nusage:\n {2}lattice-matmul /);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stdout).toBe('');
    expect(existsSync(join(work, 'never.safetensors'))).toBe(false);
  });

  it.each([
    ['quantize', /^usage:\n {2}lattice-matmul quantize MODEL -o OUT/, /inspect {2}/],
    ['inspect', /^usage:\n {2}lattice-matmul inspect FILE\n/, /quantize {2}/],
    ['schemes', /^usage:\n {2}lattice-matmul schemes\n/, /quantize {2}/],
  ])('%s --help prints that command\'s usage with exit code 0', async (command, usage, otherCommand) => {
    for (const flag of ['--help', '-h']) {
      const { code, stdout, stderr } = await cli(command, flag);
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(usage);
      expect(stdout).not.toMatch(otherCommand);
    }
  });

  it('--version, -V and version print the version in package.json with exit code 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V', 'version']) {
      const { code, stdout, stderr } = await cli(flag);
      expect(code, stderr).toBe(0);
      expect(stdout).toBe(`lattice-matmul ${version}\n`);
    }
  });

  it('help, --help and -h alone print the usage of every command with exit code 0', async () => {
    for (const flag of ['help', '--help', '-h']) {
      const { code, stdout, stderr } = await cli(flag);
      expect(code, stderr).toBe(0);
      expect(stdout).toMatch(/^usage:\n {2}lattice-matmul quantize MODEL -o OUT/);
      for (const command of ['quantize', 'inspect', 'schemes']) expect(stdout, `${flag}: ${command}`).toMatch(new RegExp(`^${command} {2,}\\S`, 'm'));
    }
  });

  it('help COMMAND prints that command\'s help, as COMMAND --help does', async () => {
    for (const command of ['quantize', 'inspect', 'schemes']) {
      const [viaHelp, viaFlag] = [await cli('help', command), await cli(command, '--help')];
      expect(viaHelp.code, viaHelp.stderr).toBe(0);
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
      expect(viaHelp.stdout).toMatch(new RegExp(`^usage:\n {2}lattice-matmul ${command}`));
    }
  });

  it('schemes lists every scheme with its kind and, for universal ones, the product NMSE that expectedNmse guarantees', async () => {
    const { code, stdout, stderr } = await cli('schemes');
    expect(code, stderr).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^scheme\s+kind\s+product NMSE \(guaranteed\)$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual([...SCHEME_NAMES]);
    for (const [i, name] of SCHEME_NAMES.entries()) {
      const [, kind, nmse] = (lines[i + 1] as string).split(/\s+/);
      const scheme = resolveScheme(name);
      expect(kind, name).toBe(scheme.kind === 'lattice' ? scheme.mode : scheme.kind);
      if (scheme.kind !== 'lattice' || scheme.mode !== 'universal') {
        expect(nmse, name).toBe('—');
        continue;
      }
      // expectedNmse of two independent quantizations is (2D + D²)·n/N: the listing is the n = N figure.
      const [qa, qb] = [1, 2].map((seed) => quantize(gaussianMatrix(64, 3, seed), { scheme: name, nonce: BigInt(seed) }));
      const perRotatedLength = (expectedNmse(qa as QuantizedMatrix, qb as QuantizedMatrix) * (qa as QuantizedMatrix).length) / 64;
      expect(Math.abs(Number(nmse) - perRotatedLength), name).toBeLessThanOrEqual(5e-6);
    }
  });

  it('inspect on a plain safetensors file lists what quantize would select', async () => {
    const { code, stdout } = await cli('inspect', model());
    expect(code).toBe(0);
    expect(stdout).toMatch(/a safetensors file \(not a quantized container\)/);
    expect(stdout).toMatch(/a\.weight\s+F32\s+\[33, 200\]\s+yes/);
    expect(stdout).toMatch(/^a\.bias\s+F32\s+\[33\]\s+no: a 1-D tensor, not a matrix$/m);
  });

  // Its table's column widths were Math.max(...widths of every row): a RangeError ("Maximum call stack
  // size exceeded") past ≈ 125 000 rows, where a file's header allows millions of tensors.
  it('inspect lists a file of 130 001 tensors', async () => {
    const path = join(work, 'many-tensors.safetensors');
    const tensors: Record<string, SafetensorsTensorInput> = {};
    for (let i = 0; i <= 130_000; i++) tensors[`t${i}`] = { dtype: 'F32', shape: [1], data: new Float32Array([i]) };
    await writeSafetensorsFile(path, tensors);
    const { code, stdout, stderr } = await cli('inspect', path);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^tensor {3}dtype {2}shape {2}quantizable\n/m); // widths from all 130 001 rows
    expect(stdout).toMatch(/^t130000 {2}F32 {4}\[1\] {4}no: a 1-D tensor, not a matrix$/m);
  }, 120_000);

  it.each([
    ['a "checksum" of its own', { checksum: 'deadbeef', format: 'pt' }],
    ['a "matrices" entry', { matrices: 'whatever' }],
    ['both, without a matrix description', { checksum: 'deadbeef', matrices: '["w"]' }],
  ])('inspect lists a plain safetensors file whose metadata has %s', async (_, metadata) => {
    const path = join(work, 'plain-with-metadata.safetensors');
    await writeSafetensorsFile(path, { w: { dtype: 'F32', shape: [8, 8], data: gaussianMatrix(8, 8, 30).data } }, metadata);
    const { code, stdout, stderr } = await cli('inspect', path);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/a safetensors file \(not a quantized container\)/);
    expect(stdout).toMatch(/^w\s+F32\s+\[8, 8\]\s+yes$/m);
  });

  it('inspect says a container of a newer format version needs a newer library, not that it is damaged', async () => {
    const path = join(work, 'newer.safetensors');
    writeFileSync(path, resealed(new Uint8Array(readFileSync(join(work, 'container.safetensors'))), (raw) => (raw.metadata.format_version = '4')));
    const { code, stdout, stderr } = await cli('inspect', path);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/newer\.safetensors: quantized container: format_version 4 is newer than this library reads \(3\); update lattice-matmul/);
    expect(stderr).not.toMatch(/damaged/);
  });

  it('inspect prints the format version: 3 for an unpadded rotation of 257–1024 rows (896), the oldest that holds the file otherwise', async () => {
    const path = join(work, 'versions.safetensors');
    await writeQuantizedContainerFile(path, [{ name: 'q', matrix: quantize(gaussianMatrix(896, 4, 26), { scheme: 'd3-q6', nonce: 2 }) }]);
    const wide = await cli('inspect', path);
    expect(wide.code, wide.stderr).toBe(0);
    expect(wide.stdout).toMatch(/\nformat version 3\n$/);
    const small = await cli('inspect', join(work, 'container.safetensors')); // e8-4bit at 64 rows: E8's two dither keys
    expect(small.stdout).toMatch(/\nformat version 2\n$/);
  });

  it('inspect prints the expected weight NMSE (D·n/N: n = 100 of N = 128 rows kept) that the codes give, and no figure where there is no guarantee', async () => {
    // 256 Gaussian columns of n = 100 (rotated length 128), e8-4bit; the same scheme with time-sharing; a deterministic scheme.
    const w = gaussianMatrix(100, 256, 31);
    const q = quantize(w, { scheme: 'e8-4bit', nonce: 31 });
    const path = join(work, 'errors.safetensors');
    await writeQuantizedContainerFile(path, [
      { name: 'padded', matrix: q },
      { name: 'time-shared', matrix: quantize(w, { scheme: 'e8-4bit', keepFraction: 0.5, nonce: 32 }) },
      { name: 'deterministic', matrix: quantize(w, { scheme: 'd3-q6-deterministic' }) },
    ]);
    const { code, stdout, stderr } = await cli('inspect', path);
    expect(code, stderr).toBe(0);
    const figures = (name: string) => new RegExp(`^${name}\\s.*\\s(\\S+)\\s+(\\S+)$`, 'm').exec(stdout)?.slice(1, 3);
    expect(figures('time-shared'), stdout).toEqual(['—', '—']);
    expect(figures('deterministic'), stdout).toEqual(['—', '—']);
    const [weightNmse, productNmse] = (figures('padded') ?? []).map(Number) as [number, number];
    // Per column, E‖ŵ_j − w_j‖²/‖w_j‖² is the same for every column (the dither makes the error independent of the data):
    // the mean of the 256 ratios estimates it, within 4 standard errors (and the printed figure's 3 digits).
    const decoded = dequantize(q);
    const ratios = Array.from({ length: w.cols }, (_, j) => {
      let error = 0;
      let norm = 0;
      for (let i = 0; i < w.rows; i++) {
        const v = w.data[j * w.rows + i] as number;
        error += ((decoded.data[j * w.rows + i] as number) - v) ** 2;
        norm += v * v;
      }
      return error / norm;
    });
    const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
    const standardError = Math.sqrt(ratios.reduce((a, b) => a + (b - mean) ** 2, 0) / (ratios.length - 1) / ratios.length);
    expect(Math.abs(weightNmse - mean), `printed ${weightNmse}, measured ${mean} ± ${standardError}`).toBeLessThan(4 * standardError + 0.005 * mean);
    // The product figure is the library's guarantee for a product with another e8-4bit matrix of these rows.
    const other = quantize(gaussianMatrix(100, 8, 33), { scheme: 'e8-4bit', nonce: 33 });
    expect(Math.abs(productNmse - expectedNmse(q, other))).toBeLessThan(5e-6);
  });

  it('inspect marks a centred matrix, whose figures are relative to its centred columns, not to W', async () => {
    // Columns of mean 3 and spread 1: ‖W‖² is 10 times the centred columns' ‖W − μ‖², so W's own relative
    // error is a tenth of the figure printed (helper-177: it was printed as W's, unmarked).
    const w = gaussianMatrix(128, 64, 41);
    for (let i = 0; i < w.data.length; i++) w.data[i] = (w.data[i] as number) + 3;
    const path = join(work, 'centred.safetensors');
    await writeQuantizedContainerFile(path, [
      { name: 'centred', matrix: quantize(w, { scheme: 'e8-4bit', center: true, nonce: 41 }) },
      { name: 'plain', matrix: quantize(w, { scheme: 'e8-4bit', nonce: 42 }) },
    ]);
    const { code, stdout, stderr } = await cli('inspect', path);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^centred\s+universal\s+e8-4bit \(centred\)\s+64 × 128\s/m);
    expect(stdout).toMatch(/^plain\s+universal\s+e8-4bit\s+64 × 128\s/m);
  });

  it("inspect names a scheme that is no preset by its lattice, q and β (universal) or q (deterministic), an int scheme by bits, group, grid and scales", async () => {
    const w = gaussianMatrix(64, 16, 43);
    const path = join(work, 'custom-schemes.safetensors');
    await writeQuantizedContainerFile(path, [
      { name: 'universal', matrix: quantize(w, { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 12, beta: 0.3 }, nonce: 43 }) },
      { name: 'deterministic', matrix: quantize(w, { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 8, overload: { kind: 'betaSet', betas: [0.2, 0.4] } } }) },
      { name: 'preset', matrix: quantize(w, { scheme: { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 6, beta: 0.45 }, nonce: 44 }) },
      { name: 'int', matrix: quantize(w, { scheme: { kind: 'int', bits: 3, groupSize: 16, grid: 'symmetric', scaleFormat: 'fp32' } }) },
      // int4-g32 but for its grid: not the preset, so its grid and scales are named.
      { name: 'int-column', matrix: quantize(w, { scheme: { kind: 'int', bits: 4, groupSize: 'column', grid: 'midrise', scaleFormat: 'fp16' } }) },
    ]);
    const result = await inspectFile(path);
    expect(result.kind).toBe('container');
    expect(result.kind === 'container' ? result.rows.map((row) => [row.name, row.scheme]) : []).toEqual([
      ['universal', 'E8 q=12 β=0.3'],
      ['deterministic', 'E8 q=8 (deterministic)'],
      // A scheme object equal to a preset is named as the preset.
      ['preset', 'd3-q6'],
      // An int scheme as the int presets are named (int4-g32), with its grid and scales (it was 'int' alone).
      ['int', 'int3-g16 (symmetric, fp32 scales)'],
      ['int-column', 'int4-column (midrise, fp16 scales)'],
    ]);
  });

  /** A new FIFO in the work directory. */
  const fifo = (): string => {
    const path = join(mkdtempSync(join(work, 'fifo-')), 'out.safetensors');
    execFileSync('mkfifo', [path]);
    return path;
  };

  /** Files of `directory` that look like the writer's temporary files. */
  const temporaryFiles = (directory: string) => readdirSync(directory).filter((name) => name.endsWith('.tmp'));

  it('quantize passes --exclude and --transpose on: the excluded tensor is left out, the other read as (in, out)', async () => {
    const output = join(work, 'excluded-transposed.safetensors');
    const { code, stdout, stderr } = await cli('quantize', model(), '-o', output, '--device', 'cpu', '--quiet', '--seed', '3', '--nonce', '5', '--exclude', '^b\\.', '--transpose', '^a\\.weight$');
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^ {2}b\.weight {2}\(F32 \[9, 1100\]: matched by --exclude\)$/m);
    // a.weight is stored [33, 200]; read as (in, out) it has 33 inputs and 200 outputs: the quantizer's
    // matrix is 33 rows by 200 columns, column j holding the stored entries [·, j].
    const stored = gaussianMatrix(200, 33, 1).data;
    const transposed = Float32Array.from({ length: 33 * 200 }, (_, k) => stored[(k % 33) * 200 + Math.floor(k / 33)] as number);
    const expected = quantize({ rows: 33, cols: 200, data: transposed }, { scheme: 'e8-4bit', seed: 3, nonce: 5n });
    const container = await openQuantizedContainerFile(output);
    try {
      expect(container.entries.map((e) => [e.name, e.rows, e.cols])).toEqual([['a.weight', 33, 200]]);
      expect((await container.read('a.weight')).matrix).toEqual(expected);
    } finally {
      await container.close();
    }
  });

  it.each([
    ['the same path', (dir: string, input: string) => input],
    ['another path to it', (dir: string) => join(dir, '.', 'sub', '..', 'input.safetensors')],
    ['a symbolic link to it', (dir: string, input: string) => (symlinkSync(input, join(dir, 'link.safetensors')), join(dir, 'link.safetensors'))],
    ['a hard link to it', (dir: string, input: string) => (linkSync(input, join(dir, 'hard.safetensors')), join(dir, 'hard.safetensors'))],
  ])('quantize refuses an output that is the input (%s) before any work, leaving the model as it was', async (_, outputOf) => {
    const dir = mkdtempSync(join(work, 'same-'));
    mkdirSync(join(dir, 'sub'));
    const input = join(dir, 'input.safetensors');
    writeFileSync(input, readFileSync(model()));
    const { code, stderr } = await cli('quantize', input, '-o', outputOf(dir, input), '--device', 'cpu');
    expect(code).toBe(1);
    expect(stderr).toMatch(/the output ".*" is the input file ".*input\.safetensors"; quantize would overwrite the model it reads/);
    expect(stderr).not.toMatch(/quantizing/);
    expect(Buffer.compare(readFileSync(input), readFileSync(model()))).toBe(0);
  });

  it.each([
    ['a file that is not a container', (dir: string) => (writeFileSync(join(dir, 'notes.txt'), 'important notes\n'), join(dir, 'notes.txt')), /exists \(a file of 16 bytes\)/],
    ['a symbolic link', (dir: string) => (writeFileSync(join(dir, 'target.txt'), 'kept\n'), symlinkSync(join(dir, 'target.txt'), join(dir, 'out.safetensors')), join(dir, 'out.safetensors')), /exists \(a symbolic link\)/],
  ])('quantize refuses an existing output (%s) before any work unless --force, which replaces it', async (_, outputOf, what) => {
    const dir = mkdtempSync(join(work, 'exists-'));
    const output = outputOf(dir);
    const before = readFileSync(output);
    const refused = await cli('quantize', model(), '-o', output, '--device', 'cpu');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the output ".*" exists \(/);
    expect(refused.stderr).toMatch(what);
    expect(refused.stderr).toMatch(/pass --force to replace it/);
    expect(refused.stderr).not.toMatch(/quantizing/);
    expect(Buffer.compare(readFileSync(output), before)).toBe(0);
    const forced = await cli('quantize', model(), '-o', output, '--device', 'cpu', '--quiet', '-f');
    expect(forced.code, forced.stderr).toBe(0);
    const replaced = await cli('inspect', output);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toMatch(/e8-4bit/);
  });

  it('quantize lists each tensor it leaves out on a line of its own, with the reason', async () => {
    // --seed 0: the smallest seed there is (the rotation's signs take any 32-bit seed).
    const { code, stdout, stderr } = await cli('quantize', model(), '-o', join(work, 'listed.safetensors'), '--device', 'cpu', '--quiet', '--tensors', '^a\\.', '--seed', '0');
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^not quantized \(kept out of the container\): 2 tensors$/m);
    expect(stdout).toMatch(/^ {2}b\.weight {2}\(F32 \[9, 1100\]: not matched by --tensors\)$/m);
    expect(stdout).toMatch(/^ {2}a\.bias {2}\(F32 \[33\]: a 1-D tensor, not a matrix\)$/m);
    // Seed 0 is used as given, not taken for "no seed" and replaced by the default 1.
    const container = await openQuantizedContainerFile(join(work, 'listed.safetensors'));
    try {
      expect((await container.read('a.weight')).matrix.seed).toBe(0);
    } finally {
      await container.close();
    }
  });

  it.each([
    ['its directory is missing', () => join(work, 'no-such-directory', 'out.safetensors'), /its directory ".*no-such-directory" does not exist/],
    ['it is a directory', () => work, /it is a directory/],
    ['its directory is a file', () => join(model(), 'out.safetensors'), /".*model\.safetensors" is not a directory/],
    ['its name is longer than the file system allows', () => join(work, `${'n'.repeat(300)}.safetensors`), /its name is longer than the file system allows/],
    // Before: these two were refused only after the work, when the file was renamed into place.
    ['it ends with a separator (a directory that does not exist)', () => `${join(work, 'new-directory')}/`, /it ends with a path separator, so it names a directory/],
    ['it is a FIFO', () => fifo(), /it is not a regular file \(a FIFO, a socket or a device\)/],
    // Standard output on a pipe (as here): before, a stack trace from realpath.
    ['it is /dev/stdout on a pipe', () => '/dev/stdout', /it is a symbolic link whose target does not resolve to a file/],
  ])('quantize refuses an output path before any work when %s', async (_, output, message) => {
    const { code, stderr } = await cli('quantize', model(), '-o', output(), '--device', 'cpu');
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot write safetensors file/);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/quantizing/);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  // root writes into a read-only directory anyway.
  it.skipIf(process.getuid?.() === 0 || process.platform === 'win32')('quantize refuses an unwritable output directory before any work', async () => {
    const dir = mkdtempSync(join(work, 'readonly-'));
    chmodSync(dir, 0o555);
    try {
      const { code, stderr } = await cli('quantize', model(), '-o', join(dir, 'out.safetensors'), '--device', 'cpu');
      expect(code).toBe(1);
      expect(stderr).toMatch(/cannot create a file in ".*readonly-.*" \(EACCES/);
      expect(stderr).not.toMatch(/quantizing/);
    } finally {
      chmodSync(dir, 0o755);
    }
  });

  it('quantize writes an output whose name is near the 255-byte limit (the temporary name is no longer)', async () => {
    const dir = mkdtempSync(join(work, 'long-'));
    const output = join(dir, `${'m'.repeat(240)}.safetensors`); // 252 bytes
    const { code, stderr, stdout } = await cli('quantize', model(), '-o', output, '--device', 'cpu', '--quiet');
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/wrote /);
    expect(readdirSync(dir)).toEqual([`${'m'.repeat(240)}.safetensors`]);
    // Multi-byte names are cut at a character boundary: 254 bytes of 'é' and '.st'.
    const name = `${'é'.repeat(125)}.st`;
    await writeSafetensorsFile(join(dir, name), { t: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    const file = await openSafetensorsFile(join(dir, name));
    await file.close();
    expect(temporaryFiles(dir)).toEqual([]);
  });

  it.each([
    ['Ctrl-C (SIGINT)', 'SIGINT', 130, false, false],
    ['SIGTERM (timeout, docker stop, a job scheduler)', 'SIGTERM', 143, false, false],
    ['SIGTERM with --force over an existing file', 'SIGTERM', 143, true, true],
    // --force with nothing to replace: the message must not speak of a file left as it was.
    ['Ctrl-C with --force and no existing file', 'SIGINT', 130, true, false],
  ] as const)('%s during the only tensor stops quantize with exit code 128 + its number, writing nothing, no temporary file either', async (_, signal, exitCode, force, existing) => {
    const dir = mkdtempSync(join(work, 'interrupt-'));
    const output = join(dir, 'big.lmq.safetensors');
    if (existing) writeFileSync(output, 'the earlier output\n');
    const child = spawn(process.execPath, [...cliArgs, 'quantize', join(work, 'big.safetensors'), '-o', output, '--device', 'cpu', '--workers', '1', ...(force ? ['--force'] : [])], { cwd: root });
    let stderr = '';
    let interrupted = false;
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // The handler is installed before this line is logged; the tensor then takes seconds.
      if (!interrupted && /quantizing 1 tensor /.test(stderr)) {
        interrupted = true;
        setTimeout(() => child.kill(signal), 300);
      }
    });
    const code = await new Promise<number | null>((done) => child.on('close', (childCode) => done(childCode)));
    expect(interrupted, stderr).toBe(true);
    expect(code, stderr).toBe(exitCode);
    expect(stderr).toMatch(new RegExp(`interrupted \\(${signal}\\); .*big\\.lmq\\.safetensors ${existing ? 'was left as it was' : 'was not written'}`));
    expect(readdirSync(dir)).toEqual(existing ? ['big.lmq.safetensors'] : []);
    if (existing) expect(readFileSync(output, 'utf8')).toBe('the earlier output\n');
  }, 60_000);

  it('an error after the progress bar was drawn on a terminal clears the bar, so that the message starts its own line', async () => {
    const writes: string[] = [];
    const wasTTY = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => writes.push(String(chunk)) > 0);
    try {
      // layers.4.weight holds a NaN: refused after the bar has shown the tensors before it.
      await expect(quantizeModel({ input: join(work, 'nan.safetensors'), output: join(work, 'unused.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1 })).rejects.toThrow(/non-finite entry NaN/);
    } finally {
      write.mockRestore();
      if (wasTTY === undefined) delete (process.stderr as { isTTY?: boolean }).isTTY;
      else Object.defineProperty(process.stderr, 'isTTY', wasTTY);
    }
    expect(writes.some((text) => /^\r\x1b\[K\[.* % {2}ETA /.test(text)), writes.join('|')).toBe(true); // eslint-disable-line no-control-regex
    // Before: the last thing written was the bar, and the error message followed it on the same line.
    expect(writes.at(-1)).toBe('\r\x1b[K');
  });

  it('a Ctrl-C once the file is written stops nothing: the summary is printed and the exit code is 0', async () => {
    const dir = mkdtempSync(join(work, 'late-interrupt-'));
    // Two matrices and 1500 norms with long names: the summary lists the norms, ≈ 300 KB, far more
    // than a pipe holds. The summary is printed after the write, in blocking writes to the pipe (Node
    // writes pipes synchronously on Linux): while this test has read only the first chunk, the child
    // is still inside those writes, so the signal sent then reaches a live process whose handlers are
    // installed, never one already tearing down (where the default action would kill it: a race of
    // the test, not of the command, which a loaded machine once lost when the summary was a few lines).
    const input = join(dir, 'model.safetensors');
    const tensors: Record<string, SafetensorsTensorInput> = {
      'a.weight': { dtype: 'F32', shape: [16, 32], data: gaussianMatrix(32, 16, 81).data },
      'b.weight': { dtype: 'F32', shape: [16, 32], data: gaussianMatrix(32, 16, 82).data },
    };
    for (let i = 0; i < 1500; i++) tensors[`model.layers.${i}.${'a_long_norm_name.'.repeat(10)}weight`] = { dtype: 'F32', shape: [8], data: new Float32Array(8).fill(1) };
    await writeSafetensorsFile(input, tensors);
    const output = join(dir, 'model.lmq.safetensors');
    const child = spawn(process.execPath, [...cliArgs, 'quantize', input, '-o', output, '--device', 'cpu', '--quiet'], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout === '') child.kill('SIGINT');
      stdout += chunk.toString();
    });
    const code = await new Promise<number | null>((done) => child.on('close', (childCode) => done(childCode)));
    // Before: the handlers were removed before the summary, so the signal killed it with 130 (the shell's
    // "interrupted, nothing written") though the file was complete.
    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(/interrupted/);
    // The whole summary came out: the signal cut nothing short.
    expect(stdout).toMatch(/not quantized \(kept out of the container\): 1500 tensors\n/);
    expect(stdout).toMatch(/\nwrote .*model\.lmq\.safetensors \(CPU .*\)\n$/);
    const container = await openQuantizedContainerFile(output);
    expect(container.entries.map((entry) => entry.name).sort()).toEqual(['a.weight', 'b.weight']);
    await container.close();
  }, 60_000);

  it('output piped into a reader that stops early (| head) is cut short: no EPIPE stack trace, the exit code is the command\'s', async () => {
    // 1500 small tensors with 200-character names: listings of ≈ 300 KB, far more than a pipe's buffer
    // and the reading stream's together.
    const input = join(work, 'many.safetensors');
    const tensors: Record<string, SafetensorsTensorInput> = {};
    for (let i = 0; i < 1500; i++) tensors[`model.layers.${i}.${'a_long_projection_name.'.repeat(8)}weight`] = { dtype: 'F32', shape: [8, 8], data: gaussianMatrix(8, 8, 1000 + i).data };
    await writeSafetensorsFile(input, tensors);
    const output = join(work, 'many.lmq.safetensors');
    for (const args of [['inspect', input], ['quantize', input, '-o', output, '--device', 'cpu', '--quiet']]) {
      const child = spawn(process.execPath, [...cliArgs, ...args], { cwd: root });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      // What `head -1` does: read the first chunk, then close the pipe.
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise<number | null>((done) => child.on('close', (childCode) => done(childCode)));
      expect(code, `${args[0]}: ${stderr}`).toBe(0);
      expect(stderr, args[0]).toBe('');
    }
    const container = await openQuantizedContainerFile(output);
    expect(container.entries).toHaveLength(1500);
    await container.close();
  }, 120_000);

  it("quantize keeps the model's __metadata__ as user.source-metadata.*, and quotes a tensor name with a tab in its tables", async () => {
    const input = join(work, 'annotated.safetensors');
    const output = join(work, 'annotated.lmq.safetensors');
    await writeSafetensorsFile(input, { 'tab\tname.weight': { dtype: 'F32', shape: [8, 16], data: gaussianMatrix(16, 8, 40).data } }, { format: 'pt', note: 'keep me' });
    const { code, stdout, stderr } = await cli('quantize', input, '-o', output, '--device', 'cpu', '--quiet');
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^"tab\\tname\.weight"\s+8 × 16\s+\d\.\d{3}$/m);
    const container = await openQuantizedContainerFile(output);
    try {
      expect(container.metadata).toMatchObject({ 'source-metadata.format': 'pt', 'source-metadata.note': 'keep me', source: 'annotated.safetensors' });
    } finally {
      await container.close();
    }
    const inspected = await cli('inspect', output);
    expect(inspected.stdout).toMatch(/^"tab\\tname\.weight"\s+universal/m);
  });

  it("a hostile tensor name reaches the terminal without its control characters, in the error message too", async () => {
    const input = join(work, 'hostile-name.safetensors');
    const name = 'evil\x1b[31m\u009b2J\x07\r.weight';
    const data = gaussianMatrix(16, 8, 41).data;
    data[5] = Number.NaN;
    await writeSafetensorsFile(input, { [name]: { dtype: 'F32', shape: [8, 16], data } });
    const { code, stderr } = await cli('quantize', input, '-o', join(work, 'hostile-name.lmq.safetensors'), '--device', 'cpu');
    expect(code).toBe(1);
    // Before: JSON quoting left the C1 CSI (0x9b) as it was.
    expect(stderr).toContain('"evil\\u001b[31m\\u009b2J\\u0007\\r.weight" has a non-finite entry NaN');
    expect(stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u); // eslint-disable-line no-control-regex
  });

  it('quantize reads a model in shards through its index: the same matrices as from one file, the index\'s and the shards\' metadata kept', async () => {
    const index = join(work, 'sharded', 'model.safetensors.index.json');
    const common = { scheme: 'e8-3bit', seed: 4, nonce: 77n, device: 'cpu', workers: 1, log: () => {} } as const;
    await quantizeModel({ ...common, input: index, output: join(work, 'from-shards.safetensors') });
    await quantizeModel({ ...common, input: model(), output: join(work, 'from-one-file.safetensors') });
    const sharded = await openQuantizedContainerFile(join(work, 'from-shards.safetensors'));
    const single = await openQuantizedContainerFile(join(work, 'from-one-file.safetensors'));
    try {
      expect(sharded.entries.map((e) => e.name)).toEqual(['a.weight', 'b.weight']);
      expect(sharded.entries.map((e) => e.name)).toEqual(single.entries.map((e) => e.name));
      for (const { name } of single.entries) expect((await sharded.read(name)).matrix).toEqual((await single.read(name)).matrix);
      expect(sharded.metadata).toMatchObject({ source: 'model.safetensors.index.json', 'source-metadata.total_size': String(4 * (33 * 200 + 33 + 9 * 1100)), 'source-metadata.format': 'pt' });
      // What the shards say alike is the model's; what each says otherwise is kept under its file's name.
      expect(sharded.metadata).toMatchObject({ 'source-metadata.model-00001-of-00002.safetensors.shard': 'first', 'source-metadata.model-00002-of-00002.safetensors.shard': 'second' });
      expect(Object.keys(sharded.metadata).filter((key) => key.startsWith('source-metadata.'))).toHaveLength(4);
    } finally {
      await sharded.close();
      await single.close();
    }
    // A shard is an input: quantize refuses to write over it.
    const shard = join(work, 'sharded', 'model-00002-of-00002.safetensors');
    await expect(quantizeModel({ ...common, input: index, output: shard })).rejects.toThrow(/the output ".*model-00002-of-00002\.safetensors" is the input file/);
    // An index whose shard is a quantized container: refused by both commands.
    const container = await openSafetensorsFile(join(work, 'container.safetensors'));
    const containerIndex = join(work, 'container.index.json');
    writeFileSync(containerIndex, JSON.stringify({ weight_map: Object.fromEntries(container.tensors.map((t) => [t.name, 'container.safetensors'])) }));
    await container.close();
    await expect(quantizeModel({ ...common, input: containerIndex, output: join(work, 'never.safetensors') })).rejects.toThrow(/container\.safetensors is a quantized container \(lattice-matmul\.quantized\), not a model: quantize reads a plain safetensors model/);
    await expect(inspectFile(containerIndex)).rejects.toThrow(/container\.safetensors is a quantized container \(lattice-matmul\.quantized\), not a model: inspect it on its own/);
    // inspect lists the tensors of every shard.
    const { code, stdout, stderr } = await cli('inspect', index);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/model\.safetensors\.index\.json: a shard index of 2 safetensors files \(not a quantized container\)/);
    expect(stdout).toMatch(/^a\.weight\s+F32\s+\[33, 200\]\s+yes$/m);
    expect(stdout).toMatch(/^a\.bias\s+F32\s+\[33\]\s+no: a 1-D tensor, not a matrix$/m);
    expect(stdout).toMatch(/^b\.weight\s+F32\s+\[9, 1100\]\s+yes$/m);
  });

  it('a run killed outright leaves its hidden spill folder; the next run of the same output names it and its size, and keeps it', async () => {
    const hidden = /^\.big\.lmq\.safetensors\.[0-9a-f]{12}\.tmp$/;
    // SIGKILL (as the kernel's out-of-memory killer sends) once the writer has made its spill folder.
    // Where the run then is depends on the machine's load (this poll may run late): quantizing (the
    // spill folder alone), or already finishing (also the output's temporary file). A run that ended
    // before the signal left nothing to test: try again.
    const killedRun = async (): Promise<{ dir: string; left: string[] }> => {
      const dir = mkdtempSync(join(work, 'killed-'));
      const child = spawn(process.execPath, [...cliArgs, 'quantize', join(work, 'big.safetensors'), '-o', join(dir, 'big.lmq.safetensors'), '--device', 'cpu', '--workers', '1'], { cwd: root });
      const closed = new Promise((done) => child.on('close', done));
      // A hidden folder: the spill. (Not any hidden name: the output probe's empty file, made and removed
      // at start, matched too, and a kill then left only that file, with no spill folder to test.)
      const isFolder = (name: string): boolean => {
        try {
          return statSync(join(dir, name)).isDirectory();
        } catch {
          return false; // gone between the listing and the look
        }
      };
      const poll = setInterval(() => {
        if (readdirSync(dir).some((name) => hidden.test(name) && isFolder(name))) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 20);
      await closed;
      clearInterval(poll);
      return { dir, left: readdirSync(dir).filter((name) => hidden.test(name)) };
    };
    let run = await killedRun();
    const leftSpill = (r: { dir: string; left: string[] }): boolean => r.left.some((name) => statSync(join(r.dir, name)).isDirectory());
    for (let attempt = 1; attempt < 3 && !leftSpill(run); attempt++) run = await killedRun();
    const { dir, left } = run;
    expect(left.length).toBeGreaterThan(0);
    const output = join(dir, 'big.lmq.safetensors');
    const spill = left.find((name) => statSync(join(dir, name)).isDirectory());
    expect(spill).toBeDefined(); // removed only after the output is in place
    // A known size in it, as a killed run's spilled tensors would be.
    writeFileSync(join(dir, spill as string, 'extra'), new Uint8Array(3 * 2 ** 20));
    const sizeOf = (name: string): number => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? readdirSync(path).reduce((sum, file) => sum + statSync(join(path, file)).size, 0) : statSync(path).size;
    };
    const mebibytes = (left.reduce((sum, name) => sum + sizeOf(name), 0) / 2 ** 20).toFixed(1);
    // --force: the killed run may have renamed its output into place just before the signal.
    const again = await cli('quantize', model(), '-o', output, '--device', 'cpu', '--quiet', '--force');
    expect(again.code, again.stderr).toBe(0);
    const note = /^note: an earlier write of big\.lmq\.safetensors that did not end left ([0-9.]+) MiB beside it \(([^)]*)\): remove them if no other run is writing big\.lmq\.safetensors$/m.exec(again.stderr);
    expect(note, again.stderr).not.toBeNull();
    expect(note?.[1]).toBe(mebibytes);
    expect(note?.[2]?.split(', ').sort()).toEqual([...left].sort());
    expect(readdirSync(dir).sort()).toEqual([...left, 'big.lmq.safetensors'].sort());
    // Nothing to say once they are gone.
    for (const name of left) rmSync(join(dir, name), { recursive: true });
    const clean = await cli('quantize', model(), '-o', output, '--device', 'cpu', '--quiet', '--force');
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stderr).not.toMatch(/note:/);
  }, 120_000);

  it('quantize caps the worker threads at the number of tensors', async () => {
    const { code, stdout, stderr } = await cli('quantize', model(), '-o', join(work, 'capped.safetensors'), '--device', 'cpu', '--workers', '8');
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/quantizing 2 tensors .* on CPU \(2 worker threads\)/);
    expect(stdout).toMatch(/wrote .*capped\.safetensors \(CPU \(2 worker threads\)/);
  });

  it.each([
    ['nan.safetensors', /tensor "layers\.4\.weight" has a non-finite entry NaN at \[1, 30\]/],
    ['f64big.safetensors', /tensor "proj\.weight" has the entry 1e\+300 at \[2, 5\], outside the f32 range .*; scale the tensor down in the model file first \(the CLI quantizes each tensor as stored\); to quantize the other tensors without it, add --exclude '\^proj\\\.weight\$'$/m],
    // The quantizer's own remedy ("multiply the matrix by a power of two first") restated for a file.
    ['huge.safetensors', /tensor "h\.weight" \(the quantizer's column j is its row j\): column 0 has norm .*; multiply the tensor by a power of two in the model file first \(the CLI quantizes each tensor as stored\); to quantize the other tensors without it, add --exclude '\^h\\\.weight\$'$/m],
    // Before: quantized as a zero row without a word (a row of 1e-40 is refused by the norm range).
    ['f64tiny.safetensors', /tensor "tiny\.weight" has the row 5 \(output feature 5\) whose entries, the largest 1\.000e-50 in magnitude, all underflow to 0 in the f32 range they are quantized in; scale the tensor up in the model file first/],
  ])('quantize names the tensor of a bad value in %s, with its (out, in) index', async (input, message) => {
    const { code, stderr } = await cli('quantize', join(work, input), '-o', join(work, 'unused.safetensors'), '--device', 'cpu', '--quiet');
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/Infinity/);
    expect(existsSync(join(work, 'unused.safetensors'))).toBe(false);
    // Nor the spill folder of the matrices quantized before the refusal.
    expect(temporaryFiles(work)).toEqual([]);
  });

  it.each(['int4-g32', 'e8-4bit'])('quantize prints the bits per entry the file stores, as inspect does (%s)', async (scheme) => {
    const output = join(work, `odd-${scheme}.safetensors`);
    const quantized = await cli('quantize', join(work, 'odd.safetensors'), '-o', output, '--scheme', scheme, '--device', 'cpu', '--quiet');
    expect(quantized.code, quantized.stderr).toBe(0);
    const inspected = await cli('inspect', output);
    expect(inspected.code, inspected.stderr).toBe(0);
    for (const name of ['w9x13', 'w17x1025']) {
      const printed = new RegExp(`^${name}\\s+\\d+ × \\d+\\s+(\\d+\\.\\d{3})$`, 'm').exec(quantized.stdout)?.[1];
      const listed = new RegExp(`^${name}\\s+\\S+\\s+${scheme}\\s+\\d+ × \\d+\\s+(\\d+\\.\\d{3})\\s`, 'm').exec(inspected.stdout)?.[1];
      expect(printed, quantized.stdout).toBeDefined();
      expect(printed, inspected.stdout).toBe(listed);
    }
  });

  it.each([
    ['its "format" value', 'lattice-matmul.quantized', 'lattice-matmul.quantizee'],
    ['its "format" key', '"format"', '"formaT"'],
  ])('inspect reports a container with a flipped bit in %s as damaged (exit code 1)', async (_, from, to) => {
    const bytes = readFileSync(join(work, 'container.safetensors'));
    const at = bytes.indexOf(from);
    expect(at).toBeGreaterThan(0);
    bytes.write(to, at);
    const damaged = join(work, 'damaged.safetensors');
    writeFileSync(damaged, bytes);
    const { code, stdout, stderr } = await cli('inspect', damaged);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/damaged\.safetensors has a quantized container's metadata \(checksum, matrices, matrix\.…\) but its "format" is ("lattice-matmul\.quantizee"|missing), not "lattice-matmul\.quantized": a damaged container, or a file of another format/);
  });

  it("inspect names the file, with the matrix, when a matrix's bytes fail their checksum (exit code 1)", async () => {
    const bytes = readFileSync(join(work, 'container.safetensors'));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x10; // the last tensor's last byte
    const damaged = join(work, 'damaged-data.safetensors');
    writeFileSync(damaged, bytes);
    const { code, stdout, stderr } = await cli('inspect', damaged);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(`${damaged}: quantized container: matrix "`);
    expect(stderr).toMatch(/is corrupted/);
  });

  it.skipIf(noGpu !== undefined)('--device auto uses a hardware GPU, and leaves a software one alone without a word from Dawn on stderr', async () => {
    const context = await testDevice();
    const software = isSoftwareAdapter(context.adapter.info);
    context.device.destroy();
    const { code, stdout, stderr } = await cli('quantize', model(), '-o', join(work, 'auto.safetensors'), '--scheme', 'e8-3bit', '--force');
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(software ? /wrote .*auto\.safetensors \(CPU \(/ : /wrote .*auto\.safetensors \(GPU \(/);
    // On lavapipe Dawn prints "Warning: max…PerPipelineLayout artificially reduced …" as it opens the
    // adapter: the CLI asks for it in a child process whose stderr it drops.
    if (software) expect(stderr).not.toMatch(/warning|artificially/i);
  }, 240_000);

  it.skipIf(noGpu !== undefined)('--device gpu and --device cpu write the same container, byte for byte', async () => {
    const common = ['quantize', model(), '--scheme', 'e8-3bit', '--seed', '4', '--nonce', '77', '--quiet'];
    const gpu = await cli(...common, '-o', join(work, 'gpu.safetensors'), '--device', 'gpu');
    const cpu = await cli(...common, '-o', join(work, 'cpu.safetensors'), '--device', 'cpu', '--workers', '2');
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(cpu.code, cpu.stderr).toBe(0);
    expect(gpu.stdout).toMatch(/wrote .*gpu\.safetensors \(GPU \(/);
    // The adapter's name without the dash Dawn leaves where it cut a driver string short.
    expect(gpu.stdout).not.toMatch(/-[ )]/);
    expect(cpu.stdout).toMatch(/wrote .*cpu\.safetensors \(CPU \(2 worker threads\)/);
    const gpuBytes = readFileSync(join(work, 'gpu.safetensors'));
    const cpuBytes = readFileSync(join(work, 'cpu.safetensors'));
    expect(Buffer.compare(gpuBytes, cpuBytes)).toBe(0);
    const container = readQuantizedContainer(new Uint8Array(cpuBytes));
    expect(container.entries.map((e) => e.name).sort()).toEqual(['a.weight', 'b.weight']);
  }, 240_000);
});
