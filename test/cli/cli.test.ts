import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readQuantizedContainer } from '../../src/format/container.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason } from '../gpu/gpuTestDevice.js';

/*
 * The CLI from the sources (through tsx, as `npm run cli` runs it): exit codes and messages for bad
 * arguments, and the GPU path writing the same container as the CPU worker threads. The installed
 * binary is exercised end to end in test/package/packInstall.test.ts.
 */

const root = resolve(import.meta.dirname, '../..');
const exec = promisify(execFile);
let work: string;
const noGpu = await gpuUnavailableReason();

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--import', 'tsx', '--import', './scripts/raw-loader.mjs', 'src/cli/main.ts', ...args], { cwd: root, timeout: 120_000 });
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
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lattice-matmul CLI', () => {
  const model = () => join(work, 'model.safetensors');

  it.each([
    [['quantize', 'missing.safetensors', '-o', 'x'], /lattice-matmul: .*missing\.safetensors/],
    [['quantize', 'MODEL', '-o', 'OUT', '--scheme', 'toString'], /unknown scheme 'toString'; known: e8-2bit/],
    [['quantize', 'MODEL', '-o', 'OUT', '--device', 'tpu'], /--device must be auto, gpu or cpu, got 'tpu'/],
    [['quantize', 'MODEL', '-o', 'OUT', '--tensors', '('], /--tensors is not a valid regular expression/],
    [['quantize', 'MODEL', '-o', 'OUT', '--tensors', '^nothing$'], /no 2-D float tensor of .* matches \^nothing\$/],
    [['quantize', 'MODEL', '-o', 'OUT', '--nonce', '12abc'], /--nonce must be a non-negative integer, got '12abc'/],
    [['quantize', 'MODEL', '-o', 'OUT', '--scheme', 'int4-g32', '--nonce', '3'], /--nonce applies to universal lattice schemes only/],
    [['quantize', 'MODEL'], /quantize needs -o OUTPUT/],
    [['quantize', 'MODEL', '-o', 'OUT', '--bogus'], /Unknown option '--bogus'/],
    [['inspect', 'MODEL', 'extra'], /inspect needs exactly one file/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('refuses %j with exit code 1 and a one-line reason', async (args, message) => {
    const resolved = args.map((a) => (a === 'MODEL' ? model() : a === 'OUT' ? join(work, 'never.safetensors') : a));
    const { code, stderr } = await cli(...resolved);
    expect(code).toBe(1);
    expect(stderr).toMatch(message);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace for a user error
  });

  it('inspect on a plain safetensors file lists what quantize would select', async () => {
    const { code, stdout } = await cli('inspect', model());
    expect(code).toBe(0);
    expect(stdout).toMatch(/a safetensors file \(not a quantized container\)/);
    expect(stdout).toMatch(/a\.weight\s+F32\s+\[33, 200\]\s+yes/);
    expect(stdout).toMatch(/a\.bias\s+F32\s+\[33\]\s+no/);
  });

  it.skipIf(noGpu !== undefined)('--device gpu and --device cpu write the same container, byte for byte', async () => {
    const common = ['quantize', model(), '--scheme', 'e8-3bit', '--seed', '4', '--nonce', '77', '--quiet'];
    const gpu = await cli(...common, '-o', join(work, 'gpu.safetensors'), '--device', 'gpu');
    const cpu = await cli(...common, '-o', join(work, 'cpu.safetensors'), '--device', 'cpu', '--workers', '2');
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(cpu.code, cpu.stderr).toBe(0);
    expect(gpu.stdout).toMatch(/wrote .*gpu\.safetensors \(GPU/);
    expect(cpu.stdout).toMatch(/wrote .*cpu\.safetensors \(CPU \(2 worker threads\)/);
    const gpuBytes = readFileSync(join(work, 'gpu.safetensors'));
    const cpuBytes = readFileSync(join(work, 'cpu.safetensors'));
    expect(Buffer.compare(gpuBytes, cpuBytes)).toBe(0);
    const container = readQuantizedContainer(new Uint8Array(cpuBytes));
    expect(container.entries.map((e) => e.name).sort()).toEqual(['a.weight', 'b.weight']);
  }, 240_000);
});
