import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  CONTAINER_FORMAT,
  readQuantizedContainer,
  writeQuantizedContainer,
  type ContainerEntry,
  type ContainerEntryInput,
  type ContainerMatrix,
} from '../../src/format/container.js';
import { openQuantizedContainerFile, writeQuantizedContainerFile } from '../../src/format/containerFile.js';
import { crc32 } from '../../src/format/crc32.js';
import { codecOf, gpuEscapes, gpuEscapesFromStored, packUniversalStored } from '../../src/format/universalLayout.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { latticeSpec, universalCodec } from '../../src/quantize/latticeSpec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, ScalarQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights, WeightOnlyQuantized } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { AllocationProbe } from '../io/safetensorsFuzz.js';
import { editDescription, rawRead, rawWrite, resealed, specMetadataChecksum, spikyMatrix, type RawContainer } from './containerFuzzProperty.js';

/*
 * The quantized container (src/format/container.ts, docs/FORMAT.md): round trips bit for bit for every
 * kind of matrix, products and dequantization of loaded matrices equal to the originals', the byte
 * layout checked against the spec with independent code (node:zlib's CRC-32, bit fields extracted by
 * hand), the Node file reader, and every refusal with a message naming the problem. The fuzz test is
 * containerFuzz.test.ts.
 */

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });

function scaled(m: Matrix, factor: number, shift = 0): Matrix {
  return { ...m, data: Float32Array.from(m.data, (v) => v * factor + shift) };
}

function weightOnly(n: number, outputs: number, method: 'rtn' | 'gptq' | 'watersic', extra: { rotate?: boolean; rescale?: boolean; seed?: number } = {}): WeightOnlyQuantized {
  return quantizeWeights(gaussianMatrix(n, outputs, n + 3 * outputs), spreadSpectrumCovariance(n, 2, 1).sigma, { method, step: 0.2, ...extra });
}

interface LatticeCase {
  readonly name: string;
  readonly a: () => Matrix;
  readonly options: QuantizeOptions;
  /** What makes the case interesting, checked so that the case cannot silently lose it. */
  readonly has: (q: QuantizedMatrix) => boolean;
}

const isUniversal = (q: QuantizedMatrix): q is UniversalLatticeMatrix => q.kind === 'lattice' && q.mode === 'universal';

const LATTICE_CASES: LatticeCase[] = [
  { name: 'universal d3-q6, 100 × 7 (partial block)', a: () => gaussianMatrix(100, 7, 1), options: { scheme: 'd3-q6', seed: 3, nonce: 11 }, has: (q) => isUniversal(q) && q.escapes.some((s) => s > 0 && s < 16) },
  { name: 'universal d3-q6, 1 × 1', a: () => gaussianMatrix(1, 1, 2), options: { scheme: 'd3-q6', seed: 3, nonce: 12 }, has: (q) => q.rows === 1 },
  { name: 'universal e8-q16, centred', a: () => scaled(gaussianMatrix(300, 5, 3), 1, 2), options: { scheme: 'e8-q16', seed: 4, nonce: 13, center: true }, has: (q) => q.means !== null },
  { name: 'universal E8 q = 24 (37-bit codes)', a: () => gaussianMatrix(256, 6, 4), options: { scheme: 'e8-5bit', seed: 5, nonce: 2n ** 64n - 1n }, has: (q) => isUniversal(q) && q.codesHigh !== null && universalCodec('E8', 24, q.scheme.beta).codeBits === 37 },
  { name: 'universal E8 q = 4, spiky unrotated (explicit escapes)', a: () => spikyMatrix(64, 9, 5), options: { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 14, rotate: false }, has: (q) => isUniversal(q) && q.hugeEscapes.length > 0 },
  { name: 'universal E8 q = 4, spiky rotated (table and explicit long escapes)', a: () => spikyMatrix(64, 9, 5), options: { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 14 }, has: (q) => isUniversal(q) && q.longEscapes.some((i) => i < 0xffff) && q.hugeEscapes.length > 0 },
  { name: 'universal D3 q = 5, spiky unrotated (explicit escapes)', a: () => spikyMatrix(60, 9, 6), options: { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 15, rotate: false }, has: (q) => isUniversal(q) && q.hugeEscapes.length > 0 },
  { name: 'universal D3 q = 5, spiky rotated (ranks and table long escapes)', a: () => spikyMatrix(60, 9, 6), options: { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 15 }, has: (q) => isUniversal(q) && q.longEscapes.length > 0 && q.escapes.some((s) => s > 0 && s < 16) },
  { name: 'universal e8-q16, time-sharing κ = 0.4', a: () => gaussianMatrix(200, 4, 7), options: { scheme: 'e8-q16', seed: 6, nonce: 16, keepFraction: 0.4 }, has: (q) => q.keptLength < q.length },
  { name: 'deterministic d3-q6-deterministic with gains', a: () => gaussianMatrix(120, 5, 8), options: { scheme: 'd3-q6-deterministic', seed: 7, gain: 'mmse' }, has: (q) => q.kind === 'lattice' && q.mode === 'deterministic' && q.gains !== null },
  { name: 'deterministic e8-q16-deterministic, centred', a: () => scaled(gaussianMatrix(64, 3, 9), 2, -1), options: { scheme: 'e8-q16-deterministic', seed: 7, center: true }, has: (q) => q.means !== null },
  {
    name: 'deterministic Z^8 ladder, one scale (1-bit scale indices), unrotated',
    a: () => gaussianMatrix(40, 3, 10),
    options: { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 5, overload: { kind: 'ladder', beta: 0.5, ratio: 2, steps: 1 } }, seed: 1, rotate: false },
    has: (q) => q.kind === 'lattice' && q.mode === 'deterministic' && q.multiples.length === 1,
  },
  { name: 'scalar int4-g32', a: () => gaussianMatrix(100, 4, 11), options: { scheme: 'int4-g32', seed: 8 }, has: (q) => q.kind === 'scalar' && q.groupsPerColumn === 4 },
  { name: 'scalar int3-absmax, centred', a: () => scaled(gaussianMatrix(50, 3, 12), 1, 3), options: { scheme: 'int3-absmax', seed: 8, center: true }, has: (q) => q.kind === 'scalar' && q.means !== null },
  { name: 'scalar nvfp4', a: () => gaussianMatrix(70, 3, 13), options: { scheme: 'nvfp4', seed: 8 }, has: (q) => q.kind === 'scalar' && q.tensorScale !== 1 },
  { name: 'scalar int4-g128 unrotated', a: () => gaussianMatrix(33, 2, 14), options: { scheme: 'int4-g128', seed: 8, rotate: false }, has: (q) => q.length === 33 },
];

/** Every typed array of the two matrices holds the same bytes (toEqual alone would let +0/−0 differ). */
function expectSameBytes(actual: object, expected: object): void {
  for (const [key, value] of Object.entries(expected)) {
    if (!ArrayBuffer.isView(value)) continue;
    const other = (actual as Record<string, unknown>)[key];
    expect(other, key).toBeInstanceOf(value.constructor);
    const a = new Uint8Array((other as ArrayBufferView).buffer, (other as ArrayBufferView).byteOffset, (other as ArrayBufferView).byteLength);
    expect(Array.from(a), key).toEqual(Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)));
  }
}

function expectSameMatrix(actual: ContainerMatrix, expected: ContainerMatrix): void {
  if (expected instanceof WeightOnlyQuantized) {
    expect(actual).toBeInstanceOf(WeightOnlyQuantized);
    const w = actual as WeightOnlyQuantized;
    expect([w.method, w.n, w.outputs, w.rotation, w.seed]).toEqual([expected.method, expected.n, expected.outputs, expected.rotation, expected.seed]);
    expectSameBytes(w, expected);
    // The weight-only format of the same matrix, byte for byte: codes, widths, scales, all equal.
    expect(Array.from(w.serialize())).toEqual(Array.from(expected.serialize()));
    return;
  }
  expect(actual).toEqual(expected);
  expectSameBytes(actual, expected);
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/** Field `index` of `bits` bits of a little-endian stream starting at word `offset` (BigInt: fields up to 48 bits). */
function fieldByHand(words: Uint32Array, offset: number, index: number, bits: number): number {
  let value = 0n;
  for (let k = 0; k < bits; k++) {
    const bit = index * bits + k;
    const set = ((words[offset + Math.floor(bit / 32)] as number) >>> (bit % 32)) & 1;
    value |= BigInt(set) << BigInt(k);
  }
  return Number(value);
}

function entryOf(bytes: Uint8Array, name: string): ContainerEntry {
  return readQuantizedContainer(bytes).get(name);
}

describe('round trips, bit for bit', () => {
  it.each(LATTICE_CASES)('$name', ({ a, options, has }) => {
    const matrix = a();
    const original = quantize(matrix, options);
    expect(has(original)).toBe(true);
    const bytes = writeQuantizedContainer([{ name: 'm', matrix: original }]);
    const entry = entryOf(bytes, 'm');
    expect(entry.kind).toBe(original.kind === 'scalar' ? 'scalar' : original.mode);
    expectSameMatrix(entry.matrix, original);
    // Canonical: writing what was read gives the same bytes.
    expect(Array.from(writeQuantizedContainer([{ name: 'm', matrix: entry.matrix }]))).toEqual(Array.from(bytes));
    // Loaded matrices decode and multiply exactly as the originals (against an independent quantization).
    const loaded = entry.matrix as QuantizedMatrix;
    const other = quantize(gaussianMatrix(matrix.rows, 3, 99), { ...options, ...(isUniversal(original) ? { nonce: 999 } : {}) });
    expect(sameFloats(matmulAT(loaded, other).data, matmulAT(original, other).data)).toBe(true);
    expect(sameFloats(matmulAT(other, loaded).data, matmulAT(other, original).data)).toBe(true);
    expect(sameFloats(dequantize(loaded).data, dequantize(original).data)).toBe(true);
    // The GPU form of the escapes, computed from the stored words, is the one computed from the matrix.
    if (entry.kind === 'universal' && isUniversal(original)) {
      expect(gpuEscapesFromStored(codecOf(original), entry.stored, original.blocksPerColumn, original.cols)).toEqual(gpuEscapes(original));
    }
  });

  it.each([
    ['rtn', {}],
    ['gptq', { rotate: true, seed: 4 }],
    ['watersic', { rescale: true }],
    ['watersic', { rotate: true, seed: 9 }],
  ] as const)('weight-only %s %o', (method, extra) => {
    const original = weightOnly(method === 'watersic' && 'rotate' in extra ? 12 : 16, 24, method, extra);
    const bytes = writeQuantizedContainer([{ name: 'w', matrix: original }]);
    const entry = entryOf(bytes, 'w');
    expect(entry.kind).toBe('weight-only');
    if (entry.kind !== 'weight-only') return;
    expectSameMatrix(entry.matrix, original);
    // The stored words are the GPU's code buffer as it is: the matrix hands out exactly these.
    expect(entry.matrix.packedCodes).toBe(entry.stored);
    expect(Array.from(entry.stored.words)).toEqual(Array.from(original.packedCodes.words));
    expect(sameFloats(entry.matrix.decode().data, original.decode().data)).toBe(true);
  });

  it('many matrices of every kind in one file, in order, with the caller\'s metadata', () => {
    const entries: ContainerEntryInput[] = [
      ...LATTICE_CASES.map((c, i) => ({ name: `layers.${i}.${c.name}`, matrix: quantize(c.a(), c.options) })),
      { name: 'mlp.down', matrix: weightOnly(16, 10, 'gptq') },
      { name: 'é/日本', matrix: weightOnly(8, 4, 'rtn') },
    ];
    const metadata = Object.fromEntries([['model', 'test'], ['__proto__', 'kept as a key'], ['', 'empty key'], ['ünïcode', '✓']]);
    const bytes = writeQuantizedContainer(entries, metadata);
    const container = readQuantizedContainer(bytes);
    expect(container.formatVersion).toBe(3); // E8 universal matrices (two dither keys), and e8-q16 at 300 rows in two windows (version 3)
    expect(container.entries.map((e) => e.name)).toEqual(entries.map((e) => e.name));
    for (const e of entries) {
      expect(container.has(e.name)).toBe(true);
      expectSameMatrix(container.get(e.name).matrix, e.matrix);
    }
    expect({ ...container.metadata }).toEqual(metadata);
    expect(Object.getPrototypeOf(container.metadata)).toBeNull();
    expect(() => container.get('nope')).toThrow(/no matrix named "nope"/);
    expect(container.has('nope')).toBe(false);
    expect(Array.from(writeQuantizedContainer(container.entries.map((e) => ({ name: e.name, matrix: e.matrix })), container.metadata))).toEqual(Array.from(bytes));
  });

  it('an empty container', () => {
    const container = readQuantizedContainer(writeQuantizedContainer([], { note: 'nothing yet' }));
    expect(container.entries).toEqual([]);
    expect(container.metadata.note).toBe('nothing yet');
  });
});

describe('the bytes, against docs/FORMAT.md (independent code)', () => {
  const qa = quantize(spikyMatrix(64, 3, 5), { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 77, rotate: false, center: true }) as UniversalLatticeMatrix;
  const qd = quantize(gaussianMatrix(64, 2, 2), { scheme: 'd3-q6-deterministic', seed: 3, gain: 'unbiased' });
  const qs = quantize(gaussianMatrix(64, 2, 3), { scheme: 'int3-absmax', seed: 3 });
  const qn = quantize(gaussianMatrix(64, 2, 4), { scheme: 'nvfp4', seed: 3 });
  const qw = weightOnly(8, 3, 'rtn');
  const bytes = writeQuantizedContainer(
    [
      { name: 'u', matrix: qa },
      { name: 'd', matrix: qd },
      { name: 's', matrix: qs },
      { name: 'n', matrix: qn },
      { name: 'w', matrix: qw },
    ],
    { k: 'v' },
  );
  const archive = readSafetensors(bytes);
  const metadata = archive.metadata as Record<string, string>;
  const description = (name: string): Record<string, unknown> => JSON.parse(metadata[`matrix.${name}`] as string) as Record<string, unknown>;
  const words = (name: string): Uint32Array => new Uint32Array(archive.tensorData(name, { copy: true }).buffer);

  it('metadata: format, version, matrices, user keys and the checksum', () => {
    expect(Object.keys(metadata).sort()).toEqual(['checksum', 'format', 'format_version', 'matrices', 'matrix.d', 'matrix.n', 'matrix.s', 'matrix.u', 'matrix.w', 'user.k']);
    expect(metadata.format).toBe('lattice-matmul.quantized');
    expect(CONTAINER_FORMAT).toBe(metadata.format);
    expect(metadata.format_version).toBe('2'); // u is E8 universal (two dither keys)
    expect(metadata.matrices).toBe('["u","d","s","n","w"]');
    expect(metadata['user.k']).toBe('v');
    expect(metadata.checksum).toBe(specMetadataChecksum(metadata));
  });

  it('metadata checksum: keys ordered by their UTF-8 bytes, not UTF-16 code units; the empty user key', () => {
    // U+FFFF sorts after U+10000 in UTF-8 (EF BF BF < F0 90 80 80) but before it in UTF-16 (FFFF > D800).
    const user = { '': 'empty key', '\uffff': 'last BMP', '\u{10000}': 'first astral', é: 'e acute' };
    const keys = Object.keys(user).map((k) => `user.${k}`);
    const byUtf16 = [...keys].sort();
    const byUtf8 = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(byUtf8).not.toEqual(byUtf16);
    const written = writeQuantizedContainer([{ name: 'u', matrix: qa }], user);
    const meta = readSafetensors(written).metadata as Record<string, string>;
    expect(meta.checksum).toBe(specMetadataChecksum(meta));
    expect(readQuantizedContainer(written).metadata).toEqual(user);
  });

  it('every tensor: its name, dtype and shape, and its CRC-32 (zlib) in the description', () => {
    const d = 8;
    const escapes = qa.escapes.filter((s) => s !== 0).length;
    const expected: Record<string, [string, number[]]> = {
      'u.codes': ['U32', [3, Math.ceil((8 * 16) / 32)]], // E8 q = 4: 16-bit codes, 8 blocks per column
      'u.escape_bits': ['U32', [3, 1]],
      'u.escape_ranks': ['U32', [Math.ceil((4 * escapes) / 32)]],
      'u.long_escapes': ['U32', [Math.ceil((16 * qa.longEscapes.length) / 32)]],
      'u.explicit_escapes': ['I32', [qa.hugeEscapes.length / d, d]],
      'u.norms': ['F32', [3]],
      'u.means': ['F32', [3]],
      'd.codes': ['U32', [2, Math.ceil(Math.ceil(64 / 3) / 4)]], // 8-bit codes, 4 per word, 22 blocks
      'd.scale_indices': ['U32', [2, Math.ceil(22 / 16)]], // 2-bit indices, 16 per word
      'd.norms': ['F32', [2]],
      'd.gains': ['F32', [2]],
      's.codes': ['U32', [2, Math.ceil((64 * 3) / 32)]],
      's.scales': ['F32', [2, 1]],
      'n.codes': ['U32', [2, Math.ceil((64 * 4) / 32)]],
      'n.scales': ['F8_E4M3', [2, 4]],
      'w.codes': ['U32', [3, 4 * qw.packedCodes.rowVec4s]],
      'w.code_widths': ['U8', [8]],
      'w.column_scales': ['F32', [8]],
    };
    expect(archive.tensors.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
    for (const t of archive.tensors) {
      expect([t.dtype, t.shape], t.name).toEqual(expected[t.name]);
      const [matrix, field] = t.name.split('.') as [string, string];
      const crcs = description(matrix).tensors as Record<string, string>;
      expect(crcs[field], t.name).toBe(zlibCrc32(archive.tensorBytes(t.name)).toString(16).padStart(8, '0'));
    }
    expect(escapes).toBeGreaterThan(0);
    expect(qa.hugeEscapes.length).toBeGreaterThan(0);
  });

  it('descriptions: the fields of each kind', () => {
    expect(description('u')).toMatchObject({
      kind: 'universal',
      scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 0.3 },
      rows: 64,
      cols: 3,
      length: 64,
      keptLength: 64,
      seed: 3,
      rotate: false,
      nonce: '77',
      centred: true,
      escapes: qa.escapes.filter((s) => s !== 0).length,
      longEscapes: qa.longEscapes.length,
      explicitEscapes: qa.hugeEscapes.length / 8,
    });
    expect(description('d')).toMatchObject({ kind: 'deterministic', gains: true, centred: false, unit: qd.kind === 'lattice' && qd.mode === 'deterministic' ? qd.unit : NaN, clippedBlocks: 0 });
    expect(description('s')).toMatchObject({ kind: 'scalar', scheme: { ...SCHEMES['int3-absmax'] }, tensorScale: 1, length: 64 });
    expect(description('n')).toMatchObject({ kind: 'scalar', scheme: { kind: 'nvfp4' }, tensorScale: qn.kind === 'scalar' ? qn.tensorScale : NaN });
    expect(description('w')).toMatchObject({ kind: 'weight-only', method: 'rtn', rotation: 'none', n: 8, outputs: 3, rowVec4s: qw.packedCodes.rowVec4s, rowScales: false });
  });

  it('bit layouts: codes, escape bits, ranks and long escapes read by hand', () => {
    const codes = words('u.codes');
    const escapeBits = words('u.escape_bits');
    for (let j = 0; j < 3; j++) {
      for (let b = 0; b < 8; b++) {
        expect(fieldByHand(codes, j * 4, b, 16)).toBe(qa.codes[j * 8 + b]);
        expect(fieldByHand(escapeBits, j, b, 1)).toBe(qa.escapes[j * 8 + b] === 0 ? 0 : 1);
      }
    }
    const ranks = words('u.escape_ranks');
    const symbols = Array.from(qa.escapes).filter((s) => s !== 0);
    symbols.forEach((s, k) => expect(fieldByHand(ranks, 0, k, 4)).toBe(s === 16 ? 0 : s));
    const longs = words('u.long_escapes');
    Array.from(qa.longEscapes).forEach((index, k) => expect(fieldByHand(longs, 0, k, 16)).toBe(index));
    expect(Array.from(new Int32Array(archive.tensorData('u.explicit_escapes', { copy: true }).buffer))).toEqual(Array.from(qa.hugeEscapes));
    // Deterministic: 8-bit codes, 4 per word, then 2-bit scale indices, 16 per word (packField).
    if (qd.kind !== 'lattice' || qd.mode !== 'deterministic') throw new Error('deterministic expected');
    const dCodes = words('d.codes');
    const dIndices = words('d.scale_indices');
    for (let j = 0; j < 2; j++) {
      for (let b = 0; b < 22; b++) {
        expect(((dCodes[j * 6 + Math.floor(b / 4)] as number) >>> (8 * (b % 4))) & 0xff).toBe(qd.codes[j * 22 + b]);
        expect(((dIndices[j * 2 + Math.floor(b / 16)] as number) >>> (2 * (b % 16))) & 3).toBe(qd.scaleIndices[j * 22 + b]);
      }
    }
    // Scalar: per column, 3-bit (INT3) and 4-bit (NVFP4) fields.
    if (qs.kind !== 'scalar' || qn.kind !== 'scalar') throw new Error('scalar expected');
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < 64; i++) {
        expect(fieldByHand(words('s.codes'), j * 6, i, 3)).toBe(qs.codes[j * 64 + i]);
        expect(fieldByHand(words('n.codes'), j * 8, i, 4)).toBe(qn.codes[j * 64 + i]);
      }
    }
    expect(Array.from(archive.tensorBytes('n.scales'))).toEqual(Array.from(qn.scales as Uint8Array));
  });

  it('37-bit codes: one little-endian field across words', () => {
    const q = quantize(gaussianMatrix(64, 2, 8), { scheme: 'e8-5bit', seed: 2, nonce: 5 }) as UniversalLatticeMatrix;
    const a = readSafetensors(writeQuantizedContainer([{ name: 'x', matrix: q }]));
    const w = new Uint32Array(a.tensorData('x.codes', { copy: true }).buffer);
    expect(a.info('x.codes').shape).toEqual([2, Math.ceil((8 * 37) / 32)]);
    for (let j = 0; j < 2; j++) {
      for (let b = 0; b < 8; b++) expect(fieldByHand(w, j * 10, b, 37)).toBe((q.codes[j * 8 + b] as number) + (q.codesHigh as Uint16Array)[j * 8 + b]! * 2 ** 32);
    }
  });

  it('the stored words of an entry are the layout functions\' words', () => {
    const entry = entryOf(bytes, 'u');
    if (entry.kind !== 'universal') throw new Error('universal expected');
    const packed = packUniversalStored(qa);
    for (const key of ['codes', 'escapeBits', 'ranks', 'longs', 'huge'] as const) expect(Array.from(entry.stored[key]), key).toEqual(Array.from(packed[key]));
  });
});

describe('bounds that keep every accepted matrix finite', () => {
  it('leaders lie within q·R of the origin (R the covering radius), the bound the reader uses', () => {
    const radius = (lattice: Lattice, q: number): number => {
      const code = new VoronoiCode(lattice, q);
      let largest = 0;
      for (let c = 0; c < code.size; c++) {
        const leader = code.decode(c);
        largest = Math.max(largest, Math.sqrt(leader.reduce((s, v) => s + v * v, 0)) / lattice.pointScale);
      }
      return largest / q;
    };
    expect(radius(D3, 6)).toBeLessThanOrEqual(1);
    expect(radius(D3, 5)).toBeLessThanOrEqual(1);
    expect(radius(E8, 3)).toBeLessThanOrEqual(1);
    expect(radius(zLattice(8), 3)).toBeLessThanOrEqual(Math.SQRT2);
    // The dither box's half-diagonal, in λ units, is below 2.
    for (const name of ['D3', 'E8'] as const) {
      const half = latticeSpec(name).dither.fields.map((f) => 2 ** (f.bits - 1) / 256);
      expect(Math.sqrt(half.reduce((s, v) => s + v * v, 0))).toBeLessThan(2);
    }
  });

  it.each(['e8-q16', 'd3-q6-deterministic', 'int3-absmax', 'nvfp4'] as const)('%s: large matrices are held; they dequantize to finite values, and products are finite or refused by matmulAT', (scheme) => {
    const options = scheme === 'e8-q16' ? { scheme, seed: 1, nonce: 1 } : { scheme, seed: 1 };
    const large = quantize(scaled(gaussianMatrix(64, 3, 1), 2 ** 50), options);
    const loaded = entryOf(writeQuantizedContainer([{ name: 'large', matrix: large }]), 'large').matrix as QuantizedMatrix;
    const product = matmulAT(loaded, loaded);
    expect(product.data.every(Number.isFinite)).toBe(true);
    expect(Math.max(...Array.from(product.data, Math.abs))).toBeGreaterThan(2 ** 100);
    // Norms near the top of the library's range (2^100): held, dequantized finite; the product would
    // leave f32, and matmulAT says so.
    const huge = quantize(scaled(gaussianMatrix(64, 3, 1), 2 ** 90), options);
    const hugeLoaded = entryOf(writeQuantizedContainer([{ name: 'huge', matrix: huge }]), 'huge').matrix as QuantizedMatrix;
    const approx = dequantize(hugeLoaded).data;
    expect(approx.every(Number.isFinite)).toBe(true);
    expect(Math.max(...Array.from(approx, Math.abs))).toBeGreaterThan(2 ** 88);
    expect(() => matmulAT(hugeLoaded, hugeLoaded)).toThrow(/beyond the f32 range/);
  });

  it('holds norms of exactly 0, 2^-100 and 2^100 (the ends of the range quantize writes), refuses 0 < ν < 2^-100', () => {
    // The reader's norm range is isSupportedColumnNorm's, the one quantize enforces (checkColumnNorm).
    const q = quantize(gaussianMatrix(48, 4, 1), { scheme: 'd3-q6', seed: 1, nonce: 1 }) as UniversalLatticeMatrix;
    const edges = { ...q, norms: Float32Array.of(0, 2 ** -100, 2 ** 100, 1) };
    const loaded = entryOf(writeQuantizedContainer([{ name: 'e', matrix: edges }]), 'e').matrix as UniversalLatticeMatrix;
    expect(Array.from(loaded.norms)).toEqual([0, 2 ** -100, 2 ** 100, 1]);
    const tiny = { ...q, norms: Float32Array.of(1, 2 ** -101, 1, 1) };
    expect(() => writeQuantizedContainer([{ name: 't', matrix: tiny }])).toThrow(/norm of column 1 .*; norms must be 0 or within \[2\^-100, 2\^100\]/);
  });

  it('refuses a mean beyond 2^100 (the library\'s range), naming the column', () => {
    const q = quantize(scaled(gaussianMatrix(16, 2, 1), 1, 2 ** 20), { scheme: 'int4-g32', seed: 1, center: true });
    const bad = { ...q, means: Float32Array.from(q.means as Float32Array, (v, j) => (j === 1 ? 2 ** 101 : v)) };
    expect(() => writeQuantizedContainer([{ name: 'm', matrix: bad }])).toThrow(/mean of column 1 is 2\.535301200456459e\+30; means must be finite with \|mean\| ≤ 2\^100/);
  });
});

/** A container with every kind, for the refusal tests. */
const refusalBase = (() => {
  const entries: ContainerEntryInput[] = [
    { name: 'd3', matrix: quantize(gaussianMatrix(48, 3, 1), { scheme: 'd3-q6', seed: 1, nonce: 1 }) },
    { name: 'spiky', matrix: quantize(spikyMatrix(32, 3, 2), { scheme: universal('E8', 4, 0.3), seed: 1, nonce: 2, rotate: false, center: true }) },
    { name: 'det', matrix: quantize(gaussianMatrix(30, 2, 3), { scheme: 'd3-q6-deterministic', seed: 1, gain: 'mmse' }) },
    { name: 'int4', matrix: quantize(gaussianMatrix(40, 2, 4), { scheme: 'int4-g32', seed: 1 }) },
    { name: 'fp16', matrix: quantize(gaussianMatrix(20, 2, 5), { scheme: 'nvfp4', seed: 1 }) },
    { name: 'w', matrix: weightOnly(8, 6, 'rtn') },
  ];
  return writeQuantizedContainer(entries, { model: 'm' });
})();

/** The first D3 q = 6 code whose coset leader has a nonzero third coordinate. */
const tailCode = (() => {
  const code = new VoronoiCode(D3, 6);
  for (let c = 0; c < code.size; c++) if (code.decode(c)[2] !== 0) return c;
  throw new Error('no such code');
})();

function setWord(raw: RawContainer, tensor: string, index: number, value: number): void {
  const t = raw.tensors.get(tensor);
  if (t === undefined) throw new Error(`no tensor ${tensor}`);
  new DataView(t.data.buffer, t.data.byteOffset).setUint32(4 * index, value, true);
}

function wordOf(raw: RawContainer, tensor: string, index: number): number {
  const t = raw.tensors.get(tensor);
  if (t === undefined) throw new Error(`no tensor ${tensor}`);
  return new DataView(t.data.buffer, t.data.byteOffset).getUint32(4 * index, true);
}

function refusal(bytes: Uint8Array): string {
  try {
    readQuantizedContainer(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(LatticeMatmulError);
    return (error as Error).message;
  }
  throw new Error('expected a LatticeMatmulError, but the file was accepted');
}

describe('a small file that describes a huge decode (time-sharing)', () => {
  it('is read (its tensors are what it says), and the CPU decoder refuses it by name instead of a RangeError or gigabytes', () => {
    // keepFraction stores d entries per column whatever its rows: a valid 1 KB file can declare 2^30 × 4.
    const q = quantize(gaussianMatrix(1024, 4, 70), { scheme: 'd3-q6', keepFraction: 1e-9, seed: 1, nonce: 3 });
    expect(q.keptLength).toBe(3);
    const bytes = writeQuantizedContainer([{ name: 'm', matrix: { ...q, rows: 2 ** 30, length: 2 ** 30 } }]);
    expect(bytes.length).toBeLessThan(2048);
    const [entry] = readQuantizedContainer(bytes).entries;
    const read = (entry as { matrix: QuantizedMatrix }).matrix;
    expect([read.rows, read.cols]).toEqual([2 ** 30, 4]);
    // Before: `new Float64Array(2^32)` threw a RangeError (and 2^26 × 1 took 1.4 GB and 4.5 s).
    expect(() => dequantize(read)).toThrow(/^decoding 4 columns of 1073741824 rotated entries takes 4294967296 values, more than the CPU decoder holds \(2\^31 − 1\)$/);
    expect(() => matmulAT(read, read)).toThrow(LatticeMatmulError);
  });

  it("builds one Voronoi code per lattice and q, whatever β (a header's thousands of β values are not kept)", () => {
    const [a, b] = [universalCodec('E8', 16, 0.25), universalCodec('E8', 16, 0.2500001)];
    expect(a.code).toBe(b.code);
    expect([a.beta, b.beta]).toEqual([0.25, 0.2500001]);
    expect(b.distortion).toBeGreaterThan(a.distortion);
  });
});

describe('refusals, each with a message naming the problem', () => {
  it('accepts the unedited base (and a no-op reseal)', () => {
    expect(() => readQuantizedContainer(refusalBase)).not.toThrow();
    expect(Array.from(resealed(refusalBase, () => undefined))).toEqual(Array.from(refusalBase));
  });

  const flipped = (at: (bytes: Uint8Array) => number) => (bytes: Uint8Array): Uint8Array => {
    const out = bytes.slice();
    const k = at(bytes);
    out[k] = (out[k] as number) ^ 1;
    return out;
  };
  const dataStart = (bytes: Uint8Array): number => 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);

  it.each([
    ['a plain safetensors file', () => writeSafetensors({ x: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), /not a lattice-matmul quantized container/],
    ['a flipped bit in the last tensor byte', flipped((b) => b.length - 1), /is corrupted: its checksum is [0-9a-f]{8} but its bytes give/],
    ['a flipped bit in the first tensor byte', flipped(dataStart), /is corrupted: its checksum/],
    ['a flipped bit in a description', flipped((b) => new TextDecoder().decode(b).indexOf('"rows\\"') + 2), /metadata is corrupted: its checksum is/],
    ['a truncated file', (b: Uint8Array) => b.subarray(0, b.length - 1), /the file is at least 1 bytes shorter than its header says \(truncated/],
    ['a newer version', (b: Uint8Array) => resealed(b, (r) => (r.metadata.format_version = '4')), /format_version 4 is newer than this library reads \(3\)/],
    // Before: 10 digits and more were called malformed ("must be \"1\""), against §9.
    ['a newer version of 10 digits', (b: Uint8Array) => resealed(b, (r) => (r.metadata.format_version = '1000000000')), /format_version 1000000000 is newer than this library reads \(3\)/],
    ['a newer version of 40 digits', (b: Uint8Array) => resealed(b, (r) => (r.metadata.format_version = '9'.repeat(40))), /format_version 999999999999…\(40 digits\) is newer than this library reads/],
    ['a version with a leading zero', (b: Uint8Array) => resealed(b, (r) => (r.metadata.format_version = '02')), /format_version must be "1" or "2" or "3", got "02"/],
    ['a malformed version', (b: Uint8Array) => resealed(b, (r) => (r.metadata.format_version = '1.0')), /format_version must be "1" or "2" or "3", got "1.0"/],
    ['no checksum', (b: Uint8Array) => { const r = rawRead(b); delete r.metadata.checksum; return rawWrite(r); }, /"checksum" must be 8 lowercase hex digits, got undefined/],
    // §2: lowercase only (the base's checksum has a letter, so upper-casing changes it; the value stays right).
    ['an uppercase checksum', (b: Uint8Array) => { const r = rawRead(b); expect(r.metadata.checksum).toMatch(/[a-f]/); r.metadata.checksum = r.metadata.checksum!.toUpperCase(); return rawWrite(r); }, /"checksum" must be 8 lowercase hex digits, got "[0-9A-F]{8}"/],
    ['an unknown metadata key', (b: Uint8Array) => resealed(b, (r) => (r.metadata.extra = '1')), /unknown metadata key "extra"/],
    ['a matrix missing from "matrices"', (b: Uint8Array) => resealed(b, (r) => (r.metadata.matrices = '["d3","spiky","det","int4","fp16"]')), /describes a matrix that is not in "matrices"/],
    ['a listed matrix without description', (b: Uint8Array) => resealed(b, (r) => delete r.metadata['matrix.w']), /"w" is listed in "matrices" but has no "matrix.w" description/],
    ['a "matrices" list that is not canonical JSON (a space)', (b: Uint8Array) => resealed(b, (r) => (r.metadata.matrices = '["d3", "spiky","det","int4","fp16","w"]')), /metadata "matrices" is not in canonical form/],
    ['an empty name in "matrices"', (b: Uint8Array) => resealed(b, (r) => (r.metadata.matrices = '["d3","spiky","det","int4","fp16","w",""]')), /metadata "matrices" must be a JSON array of non-empty names/],
    ['a name listed twice', (b: Uint8Array) => resealed(b, (r) => (r.metadata.matrices = '["d3","spiky","det","int4","fp16","w","w"]')), /names a matrix twice/],
    ['an extra tensor', (b: Uint8Array) => resealed(b, (r) => r.tensors.set('w.extra', { dtype: 'U8', shape: [1], data: new Uint8Array(1) })), /tensor "w.extra" belongs to no matrix/],
    ['a missing tensor', (b: Uint8Array) => resealed(b, (r) => r.tensors.delete('det.gains')), /tensor "det.gains" is missing/],
    ['a tensor of another dtype', (b: Uint8Array) => resealed(b, (r) => { const t = r.tensors.get('d3.norms')!; r.tensors.set('d3.norms', { ...t, dtype: 'I32' }); }), /tensor "d3.norms" is I32 \[3\], but its matrix's description implies F32 \[3\]/],
    ['a tensor of another shape', (b: Uint8Array) => resealed(b, (r) => { const t = r.tensors.get('d3.norms')!; r.tensors.set('d3.norms', { ...t, shape: [1, 3] }); }), /is F32 \[1, 3\], but .* implies F32 \[3\]/],
    ['non-canonical description JSON', (b: Uint8Array) => resealed(b, () => undefined, (k, j) => (k === 'matrix.d3' ? j.replace('"rows":', '"rows": ') : j)), /"d3": its description is not in canonical form/],
    ['a description that is not JSON', (b: Uint8Array) => resealed(b, (r) => (r.metadata['matrix.d3'] = '{"kind":')), /"d3": its description is not valid JSON/],
    ['a checksum listed for a tensor the matrix does not have', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => ((d.tensors as Record<string, string>).gains = '00000000'))), /"d3": description lists a tensor "gains" that a matrix like this does not have \(it has codes, escape_bits, escape_ranks, long_escapes, explicit_escapes, norms\)/],
    ['an unknown description field', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.colour = 'red'))), /unknown description field "colour"/],
    ['a missing description field', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => delete d.seed)), /description field "seed" is missing/],
    ['an unknown kind', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.kind = 'magic'))), /"kind" must be universal, deterministic, scalar or weight-only, got "magic"/],
    ['rows beyond 2^30', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.rows = 2 ** 31))), /"rows" must be an integer in \[1, 1073741824\], got 2147483648/],
    ['a length that is not the rotation length', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.length = 47))), /length is 47, but the rotation of 48 rows has length 48/],
    // 47 coordinates still take 16 blocks, so the tensors are unchanged: only this check can refuse it.
    ['a keptLength that is neither the length nor whole blocks', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.keptLength = 47))), /"d3": keptLength 47 is neither the length 48 nor a whole number of 3-entry blocks/],
    ['cols beyond 2^53', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.cols = 2 ** 60))), /"cols" must be an integer/],
    ['cols that the tensors do not have', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.cols = 2 ** 40))), /implies F32 \[1099511627776\]|implies U32 \[1099511627776, /],
    ['a nonce of 2^64', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.nonce = '18446744073709551616'))), /"nonce" must be a decimal integer below 2\^64/],
    ['a nonce with a leading zero', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.nonce = '01'))), /"nonce" must be a decimal integer/],
    ['q out of range', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => ((d.scheme as Record<string, unknown>).q = 65))), /invalid scheme: lattice scheme q must be an integer in \[3, 64\]/],
    ['a scheme of another kind', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.scheme = { kind: 'nvfp4' }))), /a universal matrix needs a universal lattice scheme/],
    ['more escapes than the tensors hold', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.escapes = (d.escapes as number) + 8))), /tensor "d3.escape_ranks" is U32 \[\d+\], but its matrix's description implies U32 \[\d+\]/],
    ['more escapes than the bits mark (ranks tensor grown to match)', (b: Uint8Array) => resealed(b, (r) => {
      let escapes = 0;
      editDescription(r, 'd3', (d) => (escapes = d.escapes = (d.escapes as number) + 8));
      const data = new Uint8Array(4 * Math.ceil((4 * escapes) / 32));
      data.set(r.tensors.get('d3.escape_ranks')!.data);
      r.tensors.set('d3.escape_ranks', { dtype: 'U32', shape: [data.length / 4], data });
    }), /the escape bits mark (\d+) escapes, the description says \d+/],
    ['a ranked escape turned long without a long entry', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.escape_ranks', 0, wordOf(r, 'd3.escape_ranks', 0) & ~0xf)), /the ranks mark 1 long escapes, the description says 0/],
    ['an explicit escape turned into a table index', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'spiky.long_escapes', 0, (wordOf(r, 'spiky.long_escapes', 0) & 0xffff0000) | 5)), /the long escapes mark \d+ explicit escapes, the description says \d+/],
    ['a code ≥ q^d (216 for D3 q = 6)', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.codes', 0, 0xd8d8d8d8)), /code 216 of block 0 of column 0 is not below q\^d = 216/],
    // det: 32 rotated coordinates, blocks of 3, so the last block's coordinate 2 lies past the column. A
    // leader nonzero there was decoded as 0 by dequantize and the GEMV, but summed by the table products.
    [
      "a deterministic last block whose leader is nonzero past the column's end",
      (b: Uint8Array) => resealed(b, (r) => setWord(r, 'det.codes', 2, (wordOf(r, 'det.codes', 2) & ~(0xff << 16)) | (tailCode << 16))),
      /code \d+ of the last block of column 0 has a nonzero coordinate 2 past the column's 32 coordinates/,
    ],
    ['padding bits set in the escape bits (16 blocks per column)', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.escape_bits', 1, wordOf(r, 'd3.escape_bits', 1) | 0x10000)), /escape bits: padding bits of column 1 are not zero/],
    ['padding bits set in the scalar codes (rows 20: 80 bits)', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'fp16.codes', 2, wordOf(r, 'fp16.codes', 2) | 0x80000000)), /codes: padding bits of column 0 are not zero/],
    ['unused bits set in the deterministic packed codes', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'det.codes', 2, wordOf(r, 'det.codes', 2) | 0xff000000)), /code 255 .* not below|unused bits of the packed words/],
    ['a rank above D3\'s 12 roots', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.escape_ranks', 0, 13)), /escape 0 has rank 13, but D3 has 12 roots|ranks mark|padding/],
    ['a long-escape index beyond the table', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'spiky.long_escapes', 0, 0xfff0)), /long escape 0 has index 65520, beyond the \d+ entries of the E8 table|explicit escapes/],
    ['an explicit escape that is no lattice point', (b: Uint8Array) => resealed(b, (r) => { const t = r.tensors.get('spiky.explicit_escapes')!; new DataView(t.data.buffer, t.data.byteOffset).setInt32(0, 1, true); new DataView(t.data.buffer, t.data.byteOffset).setInt32(4, 0, true); }), /explicit escape 0 is not a point of E8/],
    ['an explicit escape beyond 2^16', (b: Uint8Array) => resealed(b, (r) => { const t = r.tensors.get('spiky.explicit_escapes')!; new DataView(t.data.buffer, t.data.byteOffset).setInt32(0, 2 ** 20, true); }), /explicit escape 0 has a coordinate beyond ±2\^16/],
    ['a NaN norm', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.norms', 1, 0x7fc00000)), /norm of column 1 is NaN/],
    ['a negative norm', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.norms', 0, 0xbf800000)), /norm of column 0 is -1/],
    ['an infinite mean', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'spiky.means', 2, 0x7f800000)), /mean of column 2 is Infinity/],
    ['a norm beyond 2^100', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.norms', 0, 0x72000000)), /norm of column 0 is 2\.535301200456459e\+30; norms must be 0 or within \[2\^-100, 2\^100\]/],
    // quantize never writes 0 < ν < 2^-100, and on the GPU such a norm's f32 scale factors go subnormal.
    ['a norm of 2^-101, below the range quantize writes', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.norms', 0, 0x0d000000)), /norm of column 0 is 3\.944304526105059e-31; norms must be 0 or within \[2\^-100, 2\^100\]/],
    ['a subnormal norm (1e-40)', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'd3.norms', 1, 0x000116c2)), /norm of column 1 is 9\.99994610111476e-41; norms must be 0 or within/],
    ['a deterministic norm below 2^-100', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'det.norms', 0, 0x0d000000)), /matrix "det": norm of column 0 is 3\.944304526105059e-31/],
    ['a column whose decoded norm could exceed 2^110 (norm 2^100, an explicit escape of 2^16)', (b: Uint8Array) => resealed(b, (r) => {
      for (let j = 0; j < 3; j++) setWord(r, 'spiky.norms', j, 0x71800000);
      const t = r.tensors.get('spiky.explicit_escapes')!;
      const view = new DataView(t.data.buffer, t.data.byteOffset);
      for (let v = 0; v < 8; v++) view.setInt32(4 * v, v < 2 ? 2 ** 16 : 0, true);
    }), /column \d can decode to a norm up to .*e\+3\d, beyond the container's limit 2\^110/],
    ['a scheme whose grid is not the stored one', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'det', (d) => (((d.scheme as Record<string, Record<string, unknown>>).overload as Record<string, unknown>).steps = 3))), /multiples must be the scheme's scale multiples \[16, 23, 32\]/],
    ['multiples that are not the scheme\'s', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'det', (d) => (d.multiples = [16, 23, 32, 46]))), /multiples must be the scheme's scale multiples \[16, 23, 32, 45\]/],
    // det: 32 rotated coordinates in 11 blocks of 3, 2 columns: at most 22 blocks can be clipped.
    ['more clipped blocks than blocks', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'det', (d) => (d.clippedBlocks = 23))), /matrix "det": description field "clippedBlocks" must be an integer in \[0, 22\], got 23/],
    // d3: 48 rotated coordinates in 16 blocks of 3, 3 columns: at most 48 escapes (one per block).
    ['more escapes than blocks', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'd3', (d) => (d.escapes = 49))), /matrix "d3": description field "escapes" must be an integer in \[0, 48\], got 49/],
    ['a NaN gain', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'det.gains', 0, 0x7fc00000)), /gain of column 0 is NaN; gains must be finite with \|gain\| ≤ 2\^100/],
    ['a symmetric INT code of 0 (level −8)', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'int4.codes', 0, 0x88888880)), /code 0 at entry 0 of column 0 is not a symmetric 4-bit level/],
    ['an fp16 scheme\'s scale that is no fp16 value', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'int4.scales', 0, 0x3f800001)), /scale 0 is 1.0000001192092896, not an fp16 value/],
    // -1 is an fp16 value: only the sign refuses it (the column bound squares it).
    ['a negative INT scale', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'int4.scales', 0, 0xbf800000)), /matrix "int4": scale 0 is -1; scales must be finite and ≥ 0/],
    ['an infinite INT scale', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'int4.scales', 1, 0x7f800000)), /matrix "int4": scale 1 is Infinity; scales must be finite and ≥ 0/],
    ['a NaN E4M3 block scale', (b: Uint8Array) => resealed(b, (r) => { r.tensors.get('fp16.scales')!.data[1] = 0x7f; }), /block scale 1 is E4M3 0x7f/],
    ['a negative E4M3 block scale', (b: Uint8Array) => resealed(b, (r) => { r.tensors.get('fp16.scales')!.data[0] = 0x88; }), /block scale 0 is E4M3 0x88/],
    ['an INT tensor scale other than 1', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'int4', (d) => (d.tensorScale = 2))), /tensorScale of an int scheme must be 1, got 2/],
    ['a weight-only code width of 0', (b: Uint8Array) => resealed(b, (r) => { r.tensors.get('w.code_widths')!.data[2] = 0; }), /matrix "w": weight-only codes: input feature 2 has code width 0, expected 1 … 25/],
    ['a weight-only vec4 count that the widths do not need', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'w', (d) => (d.rowVec4s = 2))), /implies U32 \[6, 8\]|the code widths need/],
    ['more vec4 per row than the widths need (codes tensor grown to match)', (b: Uint8Array) => resealed(b, (r) => {
      editDescription(r, 'w', (d) => (d.rowVec4s = 2));
      const codes = r.tensors.get('w.codes')!;
      const data = new Uint8Array(2 * codes.data.length);
      for (let j = 0; j < 6; j++) data.set(codes.data.subarray(16 * j, 16 * (j + 1)), 32 * j);
      r.tensors.set('w.codes', { dtype: 'U32', shape: [6, 8], data });
    }), /matrix "w": weight-only codes: the code widths need \d+ bits per row, 1 vec4, but the header says 2/],
    ['an unknown weight-only method', (b: Uint8Array) => resealed(b, (r) => editDescription(r, 'w', (d) => (d.method = 'magic'))), /"method" must be one of rtn, gptq, watersic, got "magic"/],
    ['a NaN weight-only column scale', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'w.column_scales', 0, 0x7fc00000)), /matrix "w": columnScales\[0\] is not finite: NaN/],
    ['weight-only padding bits', (b: Uint8Array) => resealed(b, (r) => setWord(r, 'w.codes', 3, 1)), /matrix "w": packed codes: padding word 3 of output row 0 is not zero/],
  ])('%s', (_name, corrupt, message) => {
    expect(refusal(corrupt(refusalBase))).toMatch(message);
  });

  // Each value check at its boundary, with the rest of the stream untouched, so that no other check
  // refuses the file first: the last value allowed reads, the first beyond it is refused by its own check.
  it('NVFP4: a partial last block bounds the decoded norm by its own entries (fp16: 20 rows, blocks of 16 and 4)', () => {
    // Only block 1 of each column nonzero, scale 1.0 (E4M3 0x38): |x̂| ≤ 6·T on its 4 entries, so ‖x̂‖ ≤ 12·T.
    const withTensorScale = (tensorScale: number): Uint8Array =>
      resealed(refusalBase, (r) => {
        const scales = r.tensors.get('fp16.scales')!.data;
        expect(scales.length).toBe(4); // 2 columns × 2 blocks
        scales.set([0, 0x38, 0, 0x38]);
        editDescription(r, 'fp16', (d) => (d.tensorScale = tensorScale));
      });
    // 12·2^106 = 0.75·2^110 reads (counting the last block as 16 entries would give 1.5·2^110); 12·2^107 is refused.
    expect(() => readQuantizedContainer(withTensorScale(2 ** 106))).not.toThrow();
    expect(refusal(withTensorScale(2 ** 107))).toMatch(/matrix "fp16": column 0 can decode to a norm up to 1\.947e\+33, beyond the container's limit 2\^110/);
  });

  it("ranks: D3's 12 roots allow rank 12, refuse rank 13 (rootOfRank has no 13th root to give)", () => {
    const withRank = (rank: number): Uint8Array => resealed(refusalBase, (r) => setWord(r, 'd3.escape_ranks', 0, ((wordOf(r, 'd3.escape_ranks', 0) & ~0xf) | rank) >>> 0));
    // The base's first escape is a ranked one (d3 has no long escapes), so only its rank changes.
    expect(wordOf(rawRead(refusalBase), 'd3.escape_ranks', 0) & 0xf).not.toBe(0);
    expect(() => readQuantizedContainer(withRank(12))).not.toThrow();
    expect(refusal(withRank(13))).toMatch(/matrix "d3": escape 0 has rank 13, but D3 has 12 roots/);
  });

  it('long escapes: the last index of the E8 table reads, the table size is refused', () => {
    const tableSize = universalCodec('E8', 4, 0.3).spec.escapes.extendedCount;
    // spiky's long escapes: turn its first explicit one (0xFFFF) into a table index and drop its μ, keeping the counts.
    const withIndex = (index: number): Uint8Array =>
      resealed(refusalBase, (r) => {
        expect(wordOf(r, 'spiky.long_escapes', 0) & 0xffff).toBe(0xffff);
        setWord(r, 'spiky.long_escapes', 0, ((wordOf(r, 'spiky.long_escapes', 0) & 0xffff0000) | index) >>> 0);
        editDescription(r, 'spiky', (d) => (d.explicitEscapes = (d.explicitEscapes as number) - 1));
        const t = r.tensors.get('spiky.explicit_escapes')!;
        r.tensors.set('spiky.explicit_escapes', { dtype: 'I32', shape: [t.shape[0]! - 1, 8], data: t.data.slice(32) });
      });
    expect(() => readQuantizedContainer(withIndex(tableSize - 1))).not.toThrow();
    expect(refusal(withIndex(tableSize))).toMatch(new RegExp(`matrix "spiky": long escape 0 has index ${tableSize}, beyond the ${tableSize} entries of the E8 table`));
  });

  it('explicit escapes: a coordinate of ±2^16 reads, 2^16 + 2 is refused (both E8 points)', () => {
    const withMu = (mu: number[]): Uint8Array =>
      resealed(refusalBase, (r) => {
        const t = r.tensors.get('spiky.explicit_escapes')!;
        const view = new DataView(t.data.buffer, t.data.byteOffset);
        mu.forEach((v, k) => view.setInt32(4 * k, v, true));
      });
    const atLimit = [-(2 ** 16), 0, 0, 0, 0, 0, 0, 0];
    const beyond = [2 ** 16 + 2, 2, 0, 0, 0, 0, 0, 0];
    for (const mu of [atLimit, beyond]) expect(latticeSpec('E8').lattice.contains(Int32Array.from(mu))).toBe(true);
    expect(() => readQuantizedContainer(withMu(atLimit))).not.toThrow();
    expect(refusal(withMu(beyond))).toMatch(/matrix "spiky": explicit escape 0 has a coordinate beyond ±2\^16/);
  });

  it('refuses a scale index beyond the scales (a 3-step ladder: 2-bit indices, 3 scales)', () => {
    const scheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: 1.5, steps: 3 } } as const;
    const bytes = writeQuantizedContainer([{ name: 'three', matrix: quantize(gaussianMatrix(30, 2, 1), { scheme, seed: 1 }) }]);
    const hostile = resealed(bytes, (r) => setWord(r, 'three.scale_indices', 0, wordOf(r, 'three.scale_indices', 0) | 3));
    expect(refusal(hostile)).toMatch(/matrix "three": scale index 3 of block 0 of column 0 is not below the 3 scales/);
  });

  it('refuses a hostile description before allocating anything of the size it claims', () => {
    // 2^40 columns: the shapes disagree, refused with the header alone.
    const hostile = resealed(refusalBase, (r) => editDescription(r, 'd3', (d) => (d.cols = 2 ** 40)));
    const probe = new AllocationProbe();
    probe.install();
    try {
      const { largest } = probe.measure(() => {
        try {
          readQuantizedContainer(hostile);
        } catch {
          // refused, as the table above checks
        }
      });
      expect(largest).toBeLessThan(hostile.byteLength);
      // The probe does see the reader's allocations: a valid file copies its tensors.
      const valid = probe.measure(() => readQuantizedContainer(refusalBase));
      expect(valid.largest).toBeGreaterThan(0);
      expect(valid.largest).toBeLessThanOrEqual(32 * refusalBase.byteLength);
    } finally {
      probe.uninstall();
    }
  });

  it('the writer refuses what the reader would, naming the matrix', () => {
    const q = quantize(gaussianMatrix(48, 2, 1), { scheme: 'd3-q6', seed: 1, nonce: 1 }) as UniversalLatticeMatrix;
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: q }, { name: 'a', matrix: q }])).toThrow(/"a" is used twice/);
    expect(() => writeQuantizedContainer([{ name: '', matrix: q }])).toThrow(/name must be a non-empty string/);
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: q }], { k: 1 as unknown as string })).toThrow(/metadata "k" must be a string/);
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: { kind: 'other' } as unknown as QuantizedMatrix }])).toThrow(/must be a quantized matrix/);
    const badCode = { ...q, codes: q.codes.map((c, i) => (i === 3 ? 250 : c)) };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: badCode }])).toThrow(/matrix "a": .*code 250 of block 3 of column 0 is not below q\^d = 216/);
    const badSymbol = { ...q, escapes: q.escapes.map((s, i) => (i === 0 ? 17 : s)) };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: badSymbol }])).toThrow(LatticeMatmulError);
    const badNorm = { ...q, norms: Float32Array.from(q.norms, (v, i) => (i === 1 ? NaN : v)) };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: badNorm }])).toThrow(/norm of column 1 is NaN/);
    const shortNorms = { ...q, norms: q.norms.subarray(1) };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: shortNorms }])).toThrow(/norms must be a Float32Array of 2 entries/);
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: { ...q, scheme: SCHEMES['int4-g32'] } as unknown as QuantizedMatrix }])).toThrow(/its scheme \(int\) does not match its kind \(universal\)/);
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: { ...q, codes: q.codes.subarray(1) } }])).toThrow(/codes, codesHigh .* must hold blocksPerColumn × cols entries/);
    const hugeNonce = { ...q, nonce: 2n ** 64n };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: hugeNonce }])).toThrow(/nonce/);
    const wideHigh = quantize(gaussianMatrix(32, 1, 2), { scheme: 'e8-5bit', seed: 1, nonce: 3 }) as UniversalLatticeMatrix;
    const overflow = { ...wideHigh, codesHigh: (wideHigh.codesHigh as Uint16Array).map((h, i) => (i === 0 ? h + 32 : h)) };
    expect(() => writeQuantizedContainer([{ name: 'a', matrix: overflow }])).toThrow(LatticeMatmulError);
  });

  it('the writer refuses malformed scalar, deterministic and universal matrices and shapes, naming the field (not "does not survive packing" or the packer)', () => {
    /** The message of the writer's refusal of `matrix` (a LatticeMatmulError), or 'written'. */
    const refusal = (matrix: unknown): string => {
      try {
        writeQuantizedContainer([{ name: 'a', matrix: matrix as QuantizedMatrix }]);
      } catch (error) {
        expect(error).toBeInstanceOf(LatticeMatmulError);
        return (error as Error).message;
      }
      return 'written';
    };
    const ints = quantize(gaussianMatrix(64, 2, 3), { scheme: 'int4-g32' }) as ScalarQuantizedMatrix;
    const fp4 = quantize(gaussianMatrix(64, 2, 3), { scheme: 'nvfp4' }) as ScalarQuantizedMatrix;
    const det = quantize(gaussianMatrix(48, 2, 3), { scheme: 'd3-q6-deterministic', seed: 1 }) as DeterministicLatticeMatrix;
    const uni = quantize(gaussianMatrix(48, 2, 3), { scheme: 'd3-q6', seed: 1, nonce: 1 }) as UniversalLatticeMatrix;
    const e8 = quantize(gaussianMatrix(64, 2, 3), { scheme: 'e8-4bit', seed: 1, nonce: 1 }) as UniversalLatticeMatrix;
    const prefix = 'writeQuantizedContainer: matrix "a": ';
    const cases: [unknown, string][] = [
      [{ ...ints, rows: 1.5 }, 'rows must be a non-negative integer, got 1.5'],
      [{ ...uni, seed: -1 }, 'seed must be a non-negative integer, got -1'],
      [{ ...ints, codes: ints.codes.subarray(1) }, 'codes must be a Uint8Array of length × cols entries'],
      // Code 16 of an int4 matrix: 4 bits hold 0…15 (packed, it would spill into the next code).
      [{ ...ints, codes: ints.codes.map((c, i) => (i === 70 ? 16 : c)) }, 'code 16 at index 70 does not fit 4 bits'],
      [{ ...ints, scales: new Uint8Array(ints.scales.length) }, 'scales have the wrong array type for the scheme'],
      [{ ...fp4, scales: new Float32Array(fp4.scales.length) }, 'scales have the wrong array type for the scheme'],
      [{ ...ints, scheme: 'd3-q6' }, 'its scheme (lattice) does not match its kind (scalar)'],
      [{ ...uni, nonce: 1 }, 'nonce must be a bigint'],
      [{ ...det, codes: det.codes.subarray(1) }, 'codes and scale indices must hold blocksPerColumn × cols entries'],
      [{ ...det, scaleIndices: det.scaleIndices.subarray(1) }, 'codes and scale indices must hold blocksPerColumn × cols entries'],
      [{ ...det, gains: new Float32Array(1) }, 'gains must be a Float32Array of 2 entries'],
      [{ ...det, scheme: 'int4-g32' }, 'its scheme (int) does not match its kind (deterministic)'],
      // An escape symbol is 0, a rank 1…15 (E8 has 240 roots, more than 15) or 16 (long): 17 failed in the
      // packer ("packColumnFields: value 17 does not fit 4 bits").
      [{ ...e8, escapes: e8.escapes.map((e, i) => (i === 9 ? 17 : e)) }, 'escapes[9] = 17 is not an escape symbol (0, a rank 1…15 among the 240 roots of E8, or 16)'],
      [{ ...e8, escapes: e8.escapes.map((e, i) => (i === 0 ? 255 : e)) }, 'escapes[0] = 255 is not an escape symbol (0, a rank 1…15 among the 240 roots of E8, or 16)'],
    ];
    for (const [matrix, message] of cases) expect(refusal(matrix), message).toBe(`${prefix}${message}`);
  });
});

describe('containers on disk (Node)', () => {
  let directory = '';
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'container-test-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const entries: ContainerEntryInput[] = [
    { name: 'q', matrix: quantize(gaussianMatrix(64, 3, 1), { scheme: 'e8-q16', seed: 2, nonce: 3 }) },
    { name: 'k', matrix: quantize(gaussianMatrix(64, 3, 2), { scheme: 'int4-g32', seed: 2 }) },
    { name: 'w', matrix: weightOnly(16, 8, 'watersic') },
  ];

  it('writes the bytes of writeQuantizedContainer; opens lazily; reads each matrix', async () => {
    const path = join(directory, 'model.lmq.safetensors');
    await writeQuantizedContainerFile(path, entries, { model: 'disk' });
    expect(Array.from(await readFile(path))).toEqual(Array.from(writeQuantizedContainer(entries, { model: 'disk' })));
    const file = await openQuantizedContainerFile(path);
    try {
      expect(file.formatVersion).toBe(2); // an e8-q16 matrix (two dither keys)
      expect(file.metadata.model).toBe('disk');
      expect(file.entries.map((e) => [e.name, e.kind, e.rows, e.cols])).toEqual([
        ['q', 'universal', 64, 3],
        ['k', 'scalar', 64, 3],
        ['w', 'weight-only', 16, 8],
      ]);
      expect(file.info('q').tensors.map((t) => t.field)).toEqual(['codes', 'escape_bits', 'escape_ranks', 'long_escapes', 'explicit_escapes', 'norms']);
      for (const e of entries) expectSameMatrix((await file.read(e.name)).matrix, e.matrix);
      const all = await file.readAll();
      expect(all.entries.map((e) => e.name)).toEqual(['q', 'k', 'w']);
      await expect(file.read('nope')).rejects.toThrow(/has no matrix named "nope"/);
    } finally {
      await file.close();
    }
  });

  it('a corrupted tensor on disk: the file opens, that matrix is refused, the others read', async () => {
    const path = join(directory, 'damaged.lmq.safetensors');
    await writeQuantizedContainerFile(path, entries);
    const archive = readSafetensors(await readFile(path));
    const at = archive.header.dataStart + (archive.info('k.codes').dataOffsets[0] as number) + 5;
    const handle = await open(path, 'r+');
    try {
      const byte = new Uint8Array(1);
      await handle.read(byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0x10;
      await handle.write(byte, 0, 1, at);
    } finally {
      await handle.close();
    }
    const file = await openQuantizedContainerFile(path);
    try {
      await expect(file.read('k')).rejects.toThrow(/matrix "k": tensor "codes" is corrupted/);
      expectSameMatrix((await file.read('q')).matrix, entries[0]!.matrix);
      expectSameMatrix((await file.read('w')).matrix, entries[2]!.matrix);
    } finally {
      await file.close();
    }
  });

  it('a file with a damaged header is refused at open', async () => {
    const path = join(directory, 'header.lmq.safetensors');
    await writeQuantizedContainerFile(path, entries);
    const bytes = await readFile(path);
    const at = bytes.indexOf(Buffer.from('"cols\\"')) + 3;
    bytes[at] = (bytes[at] as number) ^ 1;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path, bytes);
    await expect(openQuantizedContainerFile(path)).rejects.toThrow(/metadata is corrupted/);
  });
});

describe('crc32 (moved to src/format/crc32.ts)', () => {
  it('matches zlib on the check value and on container bytes', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(refusalBase)).toBe(zlibCrc32(refusalBase));
    expect(crc32(refusalBase, 10, 500)).toBe(zlibCrc32(refusalBase.subarray(10, 500)));
  });
});
