import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntry, type ContainerEntryInput } from '../../src/format.js';
import {
  dequantize,
  gaussianMatrix,
  isRotationLength,
  latticeSpec,
  quantize,
  quantizeWeights,
  rotationLength,
  rotationPlan,
  WeightOnlyQuantized,
  type Matrix,
  type QuantizeOptions,
  type Scheme,
  type SchemeName,
} from '../../src/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { blockDither, columnKeys, ditherWordKeys } from '../../src/quantize/universalCode.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { D3 } from '../../src/lattices/d3.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
// Small Gaussian noise with one large entry per column: long and explicit escapes for small q.
import { editDescription, resealed, spikyMatrix, type RawContainer } from './containerFuzzProperty.js';

/*
 * docs/decode_container.py, the plain-Python reference decoder written from docs/FORMAT.md alone
 * (§11, "Decoding arithmetic"), against the library: containers of every kind written through the
 * API, decoded by the script, and every value compared with `dequantize()` /
 * `WeightOnlyQuantized.decode()` of the matrices read back, bit for bit (Object.is, so the sign of
 * zero too) — except dense "haar" bases, whose Gaussians go through the platform's log/sin/cos
 * (FORMAT.md §11.8 states the tolerance). A rule of §11 written differently in the script (a tie
 * rule, an operation order) makes this test fail.
 *
 * Needs python3: skipped with a warning when it is missing, except under CI (process.env.CI), where
 * a missing python3 fails the test.
 */

const root = resolve(import.meta.dirname, '../..');
const script = join(root, 'docs', 'decode_container.py');
const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const pythonMissing = python.error !== undefined || python.status !== 0;
const inCi = ![undefined, '', '0', 'false'].includes(process.env.CI);
if (pythonMissing) {
  console.warn(
    `\n*** test/format/referenceDecoder.test.ts: python3 not found — the reference decoder (docs/decode_container.py) is NOT checked${
      inCi ? '; CI is set, so this fails' : '; skipped'
    } ***\n`,
  );
}

/** Gaussian entries times `scale` plus `shift`, f32. */
function gauss(rows: number, cols: number, seed: number, scale = 1, shift = 0): Matrix {
  const m = gaussianMatrix(rows, cols, seed);
  return { rows, cols, data: Float32Array.from(m.data, (v) => v * scale + shift) };
}

const UNIVERSAL: SchemeName[] = ['e8-2bit', 'e8-3bit', 'e8-4bit', 'e8-q16', 'e8-5bit', 'd3-q6'];
const DETERMINISTIC: SchemeName[] = ['d3-q6-deterministic', 'e8-q16-deterministic'];
const SCALAR: SchemeName[] = ['int4-g32', 'int4-g128', 'int3-absmax', 'nvfp4'];

/**
 * Rows 3 (padded to 4), 9 (to 12: H_12), 72 (to 80: H_20), 100 (to 128; unrotated: a partial last
 * block), 1100 (two overlapping windows of 1024), centred, time-sharing and unrotated variants.
 */
function latticeAndScalarEntries(scheme: SchemeName | Scheme, tag: string, seed: number, universal: boolean, deterministic: boolean): ContainerEntryInput[] {
  const nonce = (k: number): Partial<QuantizeOptions> => (universal ? { nonce: k === 0 ? 2n ** 64n - 3n : 1000 * seed + k } : {});
  const gain = (mode: 'mmse' | 'none'): Partial<QuantizeOptions> => (deterministic ? { gain: mode } : {});
  const cases: [string, Matrix, Partial<QuantizeOptions>][] = [
    ['n3', gauss(3, 2, seed), { seed: 0, ...nonce(0) }],
    ['n9', gauss(9, 3, seed + 1), { seed: 7, ...nonce(1), ...gain('mmse') }],
    ['n72.centred', gauss(72, 2, seed + 2, 0.5, 1.5), { seed: 1, center: true, ...nonce(2) }],
    ['n100.unrotated', gauss(100, 2, seed + 3), { seed: 2, rotate: false, ...nonce(3) }],
    ['n1100', gauss(1100, 2, seed + 4, 0.02), { seed: 0xffffffff, ...nonce(4), ...gain('mmse') }],
  ];
  if (universal || deterministic) cases.push(['n100.kept', gauss(100, 2, seed + 5), { seed: 3, keepFraction: 0.5, ...nonce(5) }]);
  return cases.map(([name, m, options]) => ({ name: `${tag}.${name}`, matrix: quantize(m, { scheme, ...options }) }));
}

/**
 * The unpadded two-window rotation of 256 < n ≤ 1024 (format version 3): 576 → [0, 512) and [64, 576),
 * 896 → [0, 768) and [128, 896), 1000 → [0, 768) and [232, 1000) (m = 1, 12, 12).
 */
function shortWindowEntries(scheme: SchemeName | Scheme, tag: string, seed: number, universal: boolean): ContainerEntryInput[] {
  return [576, 896, 1000].map((n, k) => ({
    name: `${tag}.n${n}`,
    matrix: quantize(gauss(n, 2, seed + k, 0.1), { scheme, seed: 11 + k, ...(universal ? { nonce: 1000 * seed + 50 + k } : {}), ...(k === 1 ? { center: true } : {}) }),
  }));
}

function weightOnlyEntries(): ContainerEntryInput[] {
  const sigma = (n: number): Matrix => spreadSpectrumCovariance(n, 2, n).sigma;
  return [
    { name: 'rtn.n16', matrix: quantizeWeights(gauss(16, 6, 1), { method: 'rtn', step: 0.2 }) },
    { name: 'rtn.n64.hadamard', matrix: quantizeWeights(gauss(64, 5, 2), { method: 'rtn', step: 0.3, rotate: true, seed: 4 }) },
    { name: 'rtn.n1100.hadamard', matrix: quantizeWeights(gauss(1100, 3, 3), { method: 'rtn', step: 0.15, rotate: true, seed: 5 }) },
    // 256 < n ≤ 1024, not a Hadamard length: 'hadamard' in two windows (format version 3; it was 'haar').
    { name: 'rtn.n896.hadamard', matrix: quantizeWeights(gauss(896, 3, 10), { method: 'rtn', step: 0.15, rotate: true, seed: 12 }) },
    { name: 'gptq.n576.hadamard', matrix: quantizeWeights(gauss(576, 2, 11), sigma(576), { method: 'gptq', step: 0.25, rotate: true, seed: 13 }) },
    { name: 'gptq.n48', matrix: quantizeWeights(gauss(48, 6, 4), sigma(48), { method: 'gptq', step: 0.25 }) },
    { name: 'gptq.n20.hadamard', matrix: quantizeWeights(gauss(20, 7, 5), sigma(20), { method: 'gptq', step: 0.25, rotate: true, seed: 6 }) },
    { name: 'watersic.n12.hadamard', matrix: quantizeWeights(gauss(12, 40, 6), sigma(12), { method: 'watersic', step: 0.2, rotate: true, seed: 9 }) },
    { name: 'watersic.n32.rescaled', matrix: quantizeWeights(gauss(32, 24, 7), sigma(32), { method: 'watersic', step: 0.3, rescale: true }) },
    { name: 'watersic.n64.hadamard.rescaled', matrix: quantizeWeights(gauss(64, 9, 8), sigma(64), { method: 'watersic', step: 0.3, rescale: true, rotate: true, seed: 3 }) },
    // n = 36 is no Hadamard length: a dense Haar basis (compared within the tolerance of §11.8).
    { name: 'haar.rtn.n36', matrix: quantizeWeights(gauss(36, 4, 9), { method: 'rtn', step: 0.2, rotate: true, seed: 2 }) },
  ];
}

const FILES: Record<string, () => ContainerEntryInput[]> = {
  universal: () => [
    ...UNIVERSAL.flatMap((name, k) => latticeAndScalarEntries(name, name, 10 * k + 1, true, false)),
    // Escapes of every form: ranks, extended-table indices, explicit μ (0xFFFF).
    { name: 'spiky.e8q4.rotated', matrix: quantize(spikyMatrix(64, 9, 5), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 0.3 }, seed: 3, nonce: 14 }) },
    { name: 'spiky.e8q4.unrotated', matrix: quantize(spikyMatrix(64, 9, 5), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 0.3 }, seed: 3, nonce: 14, rotate: false }) },
    { name: 'spiky.d3q5.rotated', matrix: quantize(spikyMatrix(60, 9, 6), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 5, beta: 0.2 }, seed: 3, nonce: 15 }) },
    { name: 'spiky.d3q5.unrotated', matrix: quantize(spikyMatrix(60, 9, 6), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 5, beta: 0.2 }, seed: 3, nonce: 15, rotate: false }) },
    ...shortWindowEntries('e8-q16', 'e8-q16', 300, true),
    ...shortWindowEntries('d3-q6', 'd3-q6', 310, true),
  ],
  deterministic: () => [
    ...DETERMINISTIC.flatMap((name, k) => latticeAndScalarEntries(name, name, 10 * k + 100, false, true)),
    ...latticeAndScalarEntries({ kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 5, overload: { kind: 'ladder', beta: 0.5, ratio: 2, steps: 1 } }, 'z8.q5.one-scale', 150, false, true),
    ...latticeAndScalarEntries({ kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 7, overload: { kind: 'ladder', beta: 0.3, ratio: 1.5, steps: 3 } }, 'e8.q7.ladder', 160, false, true),
    ...shortWindowEntries('d3-q6-deterministic', 'd3-q6-deterministic', 320, false),
    ...shortWindowEntries('e8-q16-deterministic', 'e8-q16-deterministic', 330, false),
  ],
  scalar: () => [
    ...SCALAR.flatMap((name, k) => latticeAndScalarEntries(name, name, 10 * k + 200, false, false)),
    ...latticeAndScalarEntries({ kind: 'int', bits: 8, groupSize: 7, grid: 'midrise', scaleFormat: 'fp16' }, 'int8.midrise.g7', 250, false, false),
    ...latticeAndScalarEntries({ kind: 'int', bits: 2, groupSize: 'column', grid: 'symmetric', scaleFormat: 'fp32' }, 'int2.symmetric.column', 260, false, false),
    ...shortWindowEntries('int4-g32', 'int4-g32', 340, false),
    ...shortWindowEntries('nvfp4', 'nvfp4', 350, false).slice(1, 2),
  ],
  'weight-only': weightOnlyEntries,
  // Time-sharing keeps the padded one-stage rotation (896 → 1024): nothing here needs version 3.
  'time-shared': () => [
    { name: 'e8-q16.n896.kept', matrix: quantize(gauss(896, 2, 400, 0.1), { scheme: 'e8-q16', seed: 21, nonce: 401, keepFraction: 0.5 }) },
    { name: 'd3-q6.n896.kept', matrix: quantize(gauss(896, 2, 402, 0.1), { scheme: 'd3-q6', seed: 22, nonce: 403, keepFraction: 0.25, center: true }) },
    { name: 'e8-q16-deterministic.n896.kept', matrix: quantize(gauss(896, 2, 404, 0.1), { scheme: 'e8-q16-deterministic', seed: 23, keepFraction: 0.5 }) },
  ],
};

/** The format_version each file is written with: 3 where a matrix rotates 256 < n ≤ 1024 in two windows, else 2 (E8 universal). */
const VERSIONS: Record<string, number> = { universal: 3, deterministic: 3, scalar: 3, 'weight-only': 3, 'time-shared': 2 };

/** What each file must exercise, so that no case silently loses what it is there for. */
const FEATURES: Record<string, string[]> = {
  universal: ['length 4', 'length 12', 'length 80', 'length 128', 'two windows', 'short windows 576', 'short windows 896', 'short windows 1000', 'unrotated', 'partial block', 'centred', 'time-sharing', 'codes over 32 bits', 'ranked escapes', 'table escapes', 'explicit escapes', 'nonce ≥ 2^63'],
  deterministic: ['length 4', 'length 12', 'length 80', 'two windows', 'short windows 576', 'short windows 896', 'short windows 1000', 'unrotated', 'partial block', 'centred', 'time-sharing', 'gains', 'one scale', 'E8', 'D3', 'Z'],
  scalar: ['length 4', 'length 12', 'length 80', 'two windows', 'short windows 576', 'short windows 896', 'short windows 1000', 'unrotated', 'centred', 'nvfp4', 'midrise', 'symmetric'],
  'weight-only': ['rotation none', 'rotation hadamard', 'rotation haar', 'row scales', 'two windows', 'short windows 576', 'short windows 896'],
  'time-shared': ['length 1024', 'time-sharing', 'centred', 'E8', 'D3'],
};

/** How n = `rows` is rotated to `length`: 'two windows' (n > 1024), 'short windows n' (two windows, n ≤ 1024) or 'length N' (one stage). */
function rotationFeature(rows: number, length: number): string {
  if (rotationPlan(rows, length).stages.length === 1) return `length ${length}`;
  return rows > 1024 ? 'two windows' : `short windows ${rows}`;
}

function featuresOf(entry: ContainerEntry): string[] {
  const m = entry.matrix;
  if (m instanceof WeightOnlyQuantized) return [`rotation ${m.rotation}`, ...(m.rowScales ? ['row scales'] : []), ...(m.rotation === 'hadamard' ? [rotationFeature(m.n, m.n)] : [])];
  const f = [m.rotate ? rotationFeature(m.rows, m.length) : 'unrotated'];
  if (m.means) f.push('centred');
  if (m.keptLength < m.length) f.push('time-sharing');
  if (m.kind === 'scalar') return [...f, m.scheme.kind === 'nvfp4' ? 'nvfp4' : m.scheme.grid];
  if (m.length % latticeSpec(m.scheme.lattice).dimension !== 0) f.push('partial block');
  if (m.mode === 'deterministic') return [...f, m.scheme.lattice, ...(m.gains ? ['gains'] : []), ...(m.multiples.length === 1 ? ['one scale'] : [])];
  f.push(m.scheme.lattice);
  if (m.codesHigh !== null) f.push('codes over 32 bits');
  if (m.escapes.some((s) => s > 0 && s < 16)) f.push('ranked escapes');
  if (m.longEscapes.some((i) => i < 0xffff)) f.push('table escapes');
  if (m.hugeEscapes.length > 0) f.push('explicit escapes');
  if (m.nonce >= 2n ** 63n) f.push('nonce ≥ 2^63');
  return f;
}

interface ManifestEntry {
  readonly name: string;
  readonly kind: string;
  readonly rows: number;
  readonly cols: number;
  readonly file: string;
}

/** `bytes` (a safetensors file) with its JSON header edited: the tensor entries as they are, data unchanged. */
function withTensorHeader(bytes: Uint8Array, edit: (header: Record<string, { data_offsets?: number[] }>) => void): Uint8Array {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, { data_offsets?: number[] }>;
  edit(header);
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.byteLength + bytes.byteLength - 8 - length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(bytes.subarray(8 + length), 8 + text.byteLength);
  return out;
}

let dir = '';
const decoded = new Map<string, Promise<{ bytes: Uint8Array; manifest: ManifestEntry[]; out: string }>>();

describe.skipIf(pythonMissing && !inCi)('docs/decode_container.py decodes what the library decodes', () => {
  beforeAll(() => {
    if (pythonMissing) throw new Error('python3 is missing but CI is set: the reference decoder (docs/decode_container.py) must be checked in CI');
    dir = mkdtempSync(join(tmpdir(), 'lattice-matmul-reference-decoder-'));
    const run = promisify(execFile);
    // Every file is written first, then decoded by its own python3 process (they run in parallel).
    for (const [kind, entries] of Object.entries(FILES)) {
      const bytes = writeQuantizedContainer(entries(), { purpose: 'reference decoder test' });
      const file = join(dir, `${kind}.lmq.safetensors`);
      const out = join(dir, kind);
      writeFileSync(file, bytes);
      mkdirSync(out);
      const result = run('python3', [script, file, '--out', out], { timeout: 100_000, maxBuffer: 1 << 20 }).then(() => ({
        bytes,
        out,
        manifest: JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as ManifestEntry[],
      }));
      result.catch(() => undefined); // reported by the test that awaits it, not as an unhandled rejection
      decoded.set(kind, result);
    }
  });

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it("its hashes give FORMAT.md §11.6's check values and the library's dither keys and dithers (written apart from the library's)", () => {
    // (nonce, column, block) triples: the check value's, then others over the nonce's halves and the columns.
    const cases: (readonly [bigint, number, number])[] = [[1234567890123456789n, 5, 3], ...Array.from({ length: 40 }, (_, i) => [(BigInt(i) * 0x9e3779b97f4a7c15n) % 2n ** 64n, (i * 37) % 5000, (i * 101) % 70000] as const)];
    const program = [
      'import importlib.util, json, sys',
      `spec = importlib.util.spec_from_file_location("decoder", ${JSON.stringify(script)})`,
      'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)',
      'out = []',
      'for nonce, column, block in json.loads(sys.argv[1]):',
      '    nonce = int(nonce); lo, hi = nonce & 0xFFFFFFFF, nonce >> 32',
      '    k1 = m.counter_hash(lo, m.STREAM_DITHER, hi, column); k2 = m.counter_hash(lo, m.STREAM_SECOND_DITHER, hi, column)',
      '    out.append([k1, k2, m.block_dither("D3", [k1, k2], block), m.block_dither("E8", [k1, k2], block), m.block_dither("E8", [k1, k1], block)])',
      'print(json.dumps(out))',
    ].join('\n');
    const result = spawnSync('python3', ['-c', program, JSON.stringify(cases.map(([nonce, column, block]) => [String(nonce), column, block]))], { encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    const python = JSON.parse(result.stdout) as [number, number, number[], number[], number[]][];
    const dither = (lattice: 'D3' | 'E8', keys: { first: number; second: number }, block: number): number[] => {
      const out = new Int32Array(latticeSpec(lattice).dimension);
      blockDither(universalCodec(lattice, 6, 0.5), keys, block, out);
      return Array.from(out);
    };
    for (const [i, [nonce, column, block]] of cases.entries()) {
      const keys = columnKeys(nonce, column);
      expect([keys.dither, keys.secondDither, dither('D3', ditherWordKeys(keys, 2), block), dither('E8', ditherWordKeys(keys, 2), block), dither('E8', ditherWordKeys(keys, 1), block)], `case ${i}`).toEqual(
        python[i],
      );
    }
    // FORMAT.md §11.6's check values, which test/quantize/ditherKeys.test.ts pins for the library.
    expect(python[0]).toEqual([0x4765839b, 0xe5afb4b7, [11, 127, -207], [59, 101, -75, 122, -19, 11, 95, -5], [-31, 101, -75, 122, -19, 82, -89, 123]]);
  });

  it.each(Object.keys(FILES))('%s matrices, every value', async (kind) => {
    const { bytes, manifest, out } = await (decoded.get(kind) as Promise<{ bytes: Uint8Array; manifest: ManifestEntry[]; out: string }>);
    const container = readQuantizedContainer(bytes);
    expect(container.formatVersion).toBe(VERSIONS[kind]);
    expect(manifest.map((m) => m.name)).toEqual(container.entries.map((e) => e.name));
    const covered = new Set(container.entries.flatMap(featuresOf));
    expect(FEATURES[kind]?.filter((f) => !covered.has(f))).toEqual([]);
    const problems: string[] = [];
    let compared = 0;
    for (const [k, entry] of container.entries.entries()) {
      const info = manifest[k] as ManifestEntry;
      const expected = entry.matrix instanceof WeightOnlyQuantized ? entry.matrix.decode() : dequantize(entry.matrix);
      expect([info.kind, info.rows, info.cols], entry.name).toEqual([entry.kind, expected.rows, expected.cols]);
      const raw = readFileSync(join(out, info.file));
      const actual = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      expect(actual.length, entry.name).toBe(expected.data.length);
      const haar = entry.matrix instanceof WeightOnlyQuantized && entry.matrix.rotation === 'haar';
      // §11.8: a Haar basis may differ in the last bits (platform libm); 2^-16 of the column's largest entry.
      let tolerance = 0;
      if (haar) for (const v of expected.data) tolerance = Math.max(tolerance, Math.abs(v) * 2 ** -16);
      for (let i = 0; i < actual.length; i++) {
        const a = actual[i] as number;
        const e = expected.data[i] as number;
        const same = haar ? Math.abs(a - e) <= tolerance : Object.is(a, e);
        if (!same && problems.length < 10) problems.push(`${entry.name}[row ${i % expected.rows}, col ${Math.floor(i / expected.rows)}]: python ${a}, library ${e}`);
      }
      compared += actual.length;
    }
    expect(problems).toEqual([]);
    expect(compared).toBeGreaterThan(1000);
  });

  it('refuses, with exit code 1 and a message, forged files whose checksums are right: what the library refuses too', async () => {
    const entries: ContainerEntryInput[] = [
      { name: 'u', matrix: quantize(gaussianMatrix(16, 3, 1), { scheme: 'e8-q16' }) },
      { name: 's', matrix: quantize(gaussianMatrix(16, 3, 2), { scheme: 'nvfp4' }) },
      // 16 rotated coordinates in blocks of 3: the last block's coordinates 1 and 2 lie past the column.
      { name: 'd', matrix: quantize(gaussianMatrix(16, 2, 3), { scheme: 'd3-q6-deterministic' }) },
    ];
    const bytes = writeQuantizedContainer(entries, {});
    const voronoi = new VoronoiCode(D3, 6);
    const tailCode = Array.from({ length: voronoi.size }, (_, c) => c).find((c) => voronoi.decode(c)[1] !== 0) as number;
    // [name, file, the script's message, the library's message]: both readers refuse for the file's one fault.
    const forged: Array<[string, Uint8Array, RegExp, RegExp]> = [
      // The tensor's bytes no longer hold its shape (before: columns split short, filled with zeros, exit 0).
      ['short', withTensorHeader(bytes, (header) => { const offsets = header['s.codes']?.data_offsets; if (offsets) offsets[1] = (offsets[1] as number) - 4; }), /tensor s\.codes: \d+ bytes for U32 \[/, /tensor "s\.codes" has shape \[3, 2\] of U32, more elements than its data_offsets/],
      // Python's json takes NaN (before: every value NaN, exit 0).
      ['nan-beta', resealed(bytes, () => undefined, (key, json) => (key === 'matrix.u' ? json.replace(/"beta":[^,}]+/, '"beta":NaN') : json)), /NaN in JSON/, /matrix "u": its description is not valid JSON/],
      // Before: the matrix decoded twice.
      ['twice', resealed(bytes, (raw) => { raw.metadata.matrices = JSON.stringify(['u', 'u', 's']); }), /matrices names a matrix twice/, /metadata "matrices" names a matrix twice/],
      // Block 5 of column 0 (8-bit codes, byte 5 of the packed words): a leader nonzero past the column,
      // which the decoders drop and the table products summed (before: accepted by both readers).
      ['tail', resealed(bytes, (raw) => { (raw.tensors.get('d.codes') as { data: Uint8Array }).data[5] = tailCode; }), /a last block's leader is nonzero past keptLength/, /matrix "d": code \d+ of the last block of column 0 has a nonzero coordinate \d past the column's 16 coordinates/],
      // Before: "unsupported operand type(s) for ^: 'float' and 'int'", a TypeError's words.
      ['fractional-seed', resealed(bytes, () => undefined, (key, json) => (key === 'matrix.u' ? json.replace(/"seed":[^,}]+/, '"seed":1.5') : json)), /seed must be an integer in \[0, 2\^32\), got 1\.5/, /matrix "u": description field "seed" must be an integer in \[0, 4294967295\], got 1\.5/],
      // Before: a TypeError's traceback.
      ['array-header', new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0x5b, 0x5d]), /the header is not a JSON object/, /the header must be a JSON object/],
    ];
    for (const [name, file, message, libraryMessage] of forged) {
      expect(() => readQuantizedContainer(file), name).toThrow(libraryMessage);
      const path = join(dir, `forged-${name}.lmq.safetensors`);
      writeFileSync(path, file);
      const result = spawnSync('python3', [script, path], { encoding: 'utf8', timeout: 100_000 });
      expect(result.status, `${name}: ${result.stderr}`).toBe(1);
      expect(result.stderr, name).toMatch(message);
      expect(result.stderr, name).not.toMatch(/Traceback/);
    }
    // A FIFO: opening it used to wait for a writer forever.
    const fifo = join(dir, 'fifo.lmq.safetensors');
    execFileSync('mkfifo', [fifo]);
    const result = spawnSync('python3', [script, fifo], { encoding: 'utf8', timeout: 20_000 });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/not a regular file/);
  });

  it("its rotation plans are the library's: the same (n, N) pairs accepted, the same windows", () => {
    // Every n to 1100 (the padded, the windowed and the Hadamard n of ≤ 1024 and past it), and model widths.
    const ns = [...Array.from({ length: 1100 }, (_, i) => i + 1), 1536, 2047, 2560, 2816, 3000, 4095, 5120, 11008, 13824, 14336, 28672, 2 ** 30 - 1, 2 ** 30];
    const candidates = (n: number): number[] => {
      const up = (m: number): number => { let v = m; while (v < n) v *= 2; return v; };
      return [...new Set([n, n + 1, n - 1, rotationLength(n), up(1), up(12), up(20), 2 * up(1)])].filter((N) => N >= 1);
    };
    const pairs = ns.flatMap((n) => candidates(n).map((N) => [n, N] as const));
    const program = [
      'import importlib.util, json, sys',
      `spec = importlib.util.spec_from_file_location("decoder", ${JSON.stringify(script)})`,
      'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)',
      'out = []',
      'for n, N in json.loads(sys.stdin.read()):',
      '    try:',
      '        length, stages = m.rotation_plan(n, N)',
      '        out.append([length, stages, m.is_short_windowed(n, N)])',
      '    except m.FormatError:',
      '        out.append(None)',
      'print(json.dumps(out))',
    ].join('\n');
    const result = spawnSync('python3', ['-c', program], { input: JSON.stringify(pairs), encoding: 'utf8', timeout: 60_000, maxBuffer: 1 << 24 });
    expect(result.status, result.stderr).toBe(0);
    const python = JSON.parse(result.stdout) as ([number, [number, number][], boolean] | null)[];
    const library = pairs.map(([n, N]) => {
      if (!isRotationLength(n, N)) return null;
      const plan = rotationPlan(n, N);
      return [plan.length, plan.stages.map((s) => [s.offset, s.length]), plan.stages.length === 2 && n <= 1024];
    });
    const differ = pairs.filter((_, i) => JSON.stringify(python[i]) !== JSON.stringify(library[i])).slice(0, 10);
    expect(differ).toEqual([]);
    // FORMAT.md §11.2's examples.
    const plan = (n: number, N: number): unknown => python[pairs.findIndex(([a, b]) => a === n && b === N)];
    expect([plan(896, 896), plan(576, 576), plan(960, 960), plan(1000, 1000), plan(100, 128), plan(100, 100), plan(896, 1024), plan(1100, 1100)]).toEqual([
      [896, [[0, 768], [128, 768]], true],
      [576, [[0, 512], [64, 512]], true],
      [960, [[0, 768], [192, 768]], true],
      [1000, [[0, 768], [232, 768]], true],
      [128, [[0, 128]], false],
      null,
      [1024, [[0, 1024]], false],
      [1100, [[0, 1024], [76, 1024]], false],
    ]);
  });

  it('refuses what the library refuses: a two-window rotation of n ≤ 1024 in a container older than version 3, a (rows, length) of no rotation, time-sharing over two windows', () => {
    // [name, matrix, forgery, the script's message, the library's message]
    const cases: Array<[string, ContainerEntryInput, (raw: RawContainer) => void, RegExp, RegExp]> = [
      ['universal', { name: 'u', matrix: quantize(gauss(896, 2, 1), { scheme: 'e8-q16', nonce: 7 }) }, (raw) => { raw.metadata.format_version = '2'; }, /the unpadded rotation of n ≤ 1024 is format version 3/, /length is 896, the unpadded two-window rotation of 896 ≤ 1024 rows, which a container of format version 2 cannot hold/],
      ['universal-v1', { name: 'u', matrix: quantize(gauss(576, 2, 2), { scheme: 'd3-q6', nonce: 8 }) }, (raw) => { raw.metadata.format_version = '1'; }, /the unpadded rotation of n ≤ 1024 is format version 3/, /length is 576, the unpadded two-window rotation of 576 ≤ 1024 rows, which a container of format version 1 cannot hold/],
      ['deterministic', { name: 'd', matrix: quantize(gauss(1000, 2, 3), { scheme: 'd3-q6-deterministic' }) }, (raw) => { raw.metadata.format_version = '2'; }, /the unpadded rotation of n ≤ 1024 is format version 3/, /length is 1000, the unpadded two-window rotation of 1000 ≤ 1024 rows, which a container of format version 2 cannot hold/],
      ['scalar', { name: 's', matrix: quantize(gauss(960, 2, 4), { scheme: 'int4-g32' }) }, (raw) => { raw.metadata.format_version = '2'; }, /the unpadded rotation of n ≤ 1024 is format version 3/, /length is 960, the unpadded two-window rotation of 960 ≤ 1024 rows, which a container of format version 2 cannot hold/],
      ['weight-only', { name: 'w', matrix: quantizeWeights(gauss(896, 2, 5), { method: 'rtn', step: 0.2, rotate: true, seed: 1 }) }, (raw) => { raw.metadata.format_version = '2'; }, /the unpadded rotation of n ≤ 1024 is format version 3/, /rotation is 'hadamard' for n = 896, the unpadded two-window rotation of 896 ≤ 1024 rows, which a container of format version 2 cannot hold/],
      // n = 200 rotates padded (to 256) in every version: length 200 is no rotation of it.
      ['no-rotation', { name: 'p', matrix: quantize(gauss(200, 2, 6), { scheme: 'int4-g32' }) }, (raw) => { editDescription(raw, 'p', (d) => { d.length = 200; }); }, /no rotation of n = 200 entries to length 200/, /matrix "p": length is 200, but the rotation of 200 rows has length 256/],
      // Version 3: an older file is refused by its version first (the library then calls 200 a two-window rotation).
      ['weight-only-padded', { name: 'w', matrix: quantizeWeights(gauss(200, 2, 7), { method: 'rtn', step: 0.2 }) }, (raw) => { raw.metadata.format_version = '3'; editDescription(raw, 'w', (d) => { d.rotation = 'hadamard'; }); }, /hadamard rotation needs rotationLength\(n\) = n/, /matrix "w": rotation 'hadamard' needs an unpadded rotation, rotationLength\(n\) = n .*got n = 200/],
    ];
    for (const [name, entry, edit, message, libraryMessage] of cases) {
      const bytes = writeQuantizedContainer([entry], {});
      const file = resealed(bytes, edit);
      expect(() => readQuantizedContainer(file), name).toThrow(libraryMessage);
      const path = join(dir, `forged-rotation-${name}.lmq.safetensors`);
      writeFileSync(path, file);
      const result = spawnSync('python3', [script, path], { encoding: 'utf8', timeout: 100_000 });
      expect(result.status, `${name}: ${result.stderr}`).toBe(1);
      expect(result.stderr, name).toMatch(message);
      expect(result.stderr, name).not.toMatch(/Traceback/);
    }
    // Time-sharing over two windows: refused by both readers (its shapes are right; only the plan is not).
    const kept = quantize(gauss(896, 2, 8), { scheme: 'e8-q16', nonce: 9, keepFraction: 0.5 });
    expect([kept.length, kept.keptLength]).toEqual([1024, 512]);
    const twoWindows = resealed(writeQuantizedContainer([{ name: 'k', matrix: kept }], {}), (raw) => {
      raw.metadata.format_version = '3';
      editDescription(raw, 'k', (d) => { d.length = 896; });
    });
    expect(() => readQuantizedContainer(twoWindows)).toThrow(/keptLength 512 < length 896 \(time-sharing\) over the two-window rotation of 896 rows/);
    const path = join(dir, 'forged-rotation-kept.lmq.safetensors');
    writeFileSync(path, twoWindows);
    const result = spawnSync('python3', [script, path], { encoding: 'utf8', timeout: 100_000 });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/keptLength 512 < length 896 \(time-sharing\) needs a one-stage rotation/);
  });

  it('the version-3 fixture (every kind): the script decodes each matrix to the bytes the library did when it wrote the file', async () => {
    const fixture = new URL('./fixtures/', import.meta.url);
    const out = join(dir, 'current-v3');
    await promisify(execFile)('python3', [script, fileURLToPath(new URL('current-v3.safetensors', fixture)), '--out', out], { timeout: 100_000, maxBuffer: 1 << 20 });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as ManifestEntry[];
    const expected = (JSON.parse(readFileSync(new URL('current-v3.expected.json', fixture), 'utf8')) as { entries: Record<string, { dequantize: string }> }).entries;
    expect(manifest.map((m) => m.name).sort()).toEqual(Object.keys(expected).sort());
    for (const info of manifest) {
      expect(createHash('sha256').update(readFileSync(join(out, info.file))).digest('hex'), info.name).toBe(expected[info.name]?.dequantize);
    }
  });

  it('a version-1 file (E8 with one dither key): the values its writer gave (test/format/containerVersions.test.ts)', async () => {
    const fixture = new URL('./fixtures/', import.meta.url);
    // A directory that does not exist yet is created (before: every matrix decoded, then FileNotFoundError).
    const out = join(dir, 'new', 'v1');
    await promisify(execFile)('python3', [script, fileURLToPath(new URL('universal-v1.safetensors', fixture)), '--out', out], { timeout: 100_000, maxBuffer: 1 << 20 });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as ManifestEntry[];
    const expected = (JSON.parse(readFileSync(new URL('universal-v1.expected.json', fixture), 'utf8')) as { entries: Record<string, number[]> }).entries;
    expect(manifest.map((m) => m.name).sort()).toEqual(Object.keys(expected).sort());
    for (const info of manifest) {
      const raw = readFileSync(join(out, info.file));
      expect(Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)), info.name).toEqual(expected[info.name]);
    }
  });
});
