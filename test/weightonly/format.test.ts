import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { quantizeWeights, WeightOnlyQuantized, type QuantizeWeightsOptions } from '../../src/weightonly/index.js';
import { MAX_HAAR_N } from '../../src/weightonly/basis.js';
import { crc32 } from '../../src/format/crc32.js';
import { haarOrthogonal } from '../../src/weightonly/linalg.js';
import { packWeightCodes, twosComplementBits, unpackWeightCodes, weightCodeLayout } from '../../src/weightonly/packedCodes.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { countAllocations } from './fuzzProperty.js';

/** Calls of the dense rotation's O(n³) builder, counted through a pass-through mock. */
const haarCalls = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/weightonly/linalg.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/weightonly/linalg.js')>();
  return {
    ...original,
    haarOrthogonal: (n: number, seed: number): Float64Array => {
      haarCalls.count++;
      return original.haarOrthogonal(n, seed);
    },
  };
});

function quantized(n: number, outputs: number, options: QuantizeWeightsOptions): WeightOnlyQuantized {
  return quantizeWeights(gaussianMatrix(n, outputs, n + outputs), spreadSpectrumCovariance(n, 2, 1).sigma, options);
}

describe('decoding', () => {
  it.each(['watersic', 'gptq', 'rtn'] as const)('%s without rotation: Ŵ[j, i] = fround(z · s_i) exactly', (method) => {
    const q = quantized(16, 40, { method, rate: 3 });
    const wHat = q.decode();
    expect(wHat.rows).toBe(16);
    expect(wHat.cols).toBe(40);
    for (let j = 0; j < 40; j++) for (let i = 0; i < 16; i++) {
      expect(wHat.data[j * 16 + i]).toBe(Math.fround((q.codes[j * 16 + i] as number) * (q.columnScales[i] as number)));
    }
  });

  it('with rescalers: Ŵ[j, i] = fround(fround(z · s_i) · t_j)', () => {
    const q = quantized(12, 30, { method: 'watersic', rate: 4, rescale: true });
    const t = q.rowScales as Float32Array;
    expect(t).not.toBeNull();
    const wHat = q.decode();
    for (let j = 0; j < 30; j++) for (let i = 0; i < 12; i++) {
      expect(wHat.data[j * 12 + i]).toBe(Math.fround(Math.fround((q.codes[j * 12 + i] as number) * (q.columnScales[i] as number)) * (t[j] as number)));
    }
  });

  it('with a Hadamard rotation: Ŵ = the inverse rotation of every decoded column', () => {
    const q = quantized(32, 20, { method: 'gptq', rate: 3, rotate: true, seed: 77 });
    expect(q.rotation).toBe('hadamard');
    const expected = new RandomizedHadamard(32, 77).inverseColumns(q.decodeRotated());
    expect(Array.from(q.decode().data)).toEqual(Array.from(expected.data));
  });

  it('with the two-window Hadamard rotation of n = 300 (rotate: true past 256 inputs): Ŵ = its inverse per column; serialized as version 3 only', () => {
    const q = quantized(300, 40, { method: 'rtn', rate: 3, rotate: true, seed: 77 });
    expect(q.rotation).toBe('hadamard');
    const expected = new RandomizedHadamard(300, 77).inverseColumns(q.decodeRotated());
    expect(expected.rows).toBe(300);
    expect(Array.from(q.decode().data)).toEqual(Array.from(expected.data));
    const bytes = q.serialize();
    expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(3);
    expect(Array.from(WeightOnlyQuantized.deserialize(bytes).decode().data)).toEqual(Array.from(q.decode().data));
    // As version 2 (checksum recomputed) it is refused: that version holds no such rotation.
    expect(() => WeightOnlyQuantized.deserialize(resealed(bytes, (v) => v.setUint32(4, 2, true)))).toThrow(/format version 2: a 'hadamard' rotation of n = 300 inputs is the two-window rotation of n ≤ 1024, which only version 3 holds/);
    // Other matrices keep version 2, which older readers read.
    expect(new DataView(quantized(32, 40, { method: 'rtn', rate: 3, rotate: true, seed: 1 }).serialize().buffer).getUint32(4, true)).toBe(2);
  });

  it('with a dense rotation (n = 10 is no Hadamard length): Ŵ = Qᵀ·Ŵ\' per column', () => {
    const q = quantized(10, 300, { method: 'watersic', rate: 3, rotate: true, seed: 5 });
    expect(q.rotation).toBe('haar');
    const qm = haarOrthogonal(10, 5);
    const rotated = q.decodeRotated();
    const wHat = q.decode();
    for (let j = 0; j < 300; j++) for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let k = 0; k < 10; k++) s += (qm[k * 10 + i] as number) * (rotated.data[j * 10 + k] as number);
      expect(wHat.data[j * 10 + i]).toBe(Math.fround(s));
    }
  });
});


/** Bits of two's complement that hold z, by counting: the smallest b with −2^(b−1) ≤ z ≤ 2^(b−1) − 1. */
function bitsByCounting(z: number): number {
  let b = 1;
  while (z < -(2 ** (b - 1)) || z > 2 ** (b - 1) - 1) b++;
  return b;
}

/** A matrix whose input feature i holds codes of exactly widths[i] bits (both extremes, then random). */
function withWidths(widths: readonly number[], outputs: number, seed: number, rowScales: Float32Array | null = null): WeightOnlyQuantized {
  const n = widths.length;
  const rng = new Rng(seed);
  const codes = new Int32Array(n * outputs);
  for (let i = 0; i < n; i++) {
    const b = widths[i] as number;
    for (let j = 0; j < outputs; j++) {
      const random = -(2 ** (b - 1)) + Math.floor(rng.nextFloat() * 2 ** b);
      codes[j * n + i] = j === 0 ? -(2 ** (b - 1)) : j === 1 ? 2 ** (b - 1) - 1 : random;
    }
  }
  const columnScales = Float32Array.from(widths, (b) => 2 ** -(b - 1));
  return new WeightOnlyQuantized({ method: 'watersic', n, outputs, codes, columnScales, rowScales, rotation: 'none', seed });
}

/** Rewrites u32 word k of a version 2 file and recomputes its checksum (what a deliberate writer can do). */
function resealed(bytes: Uint8Array, edit: (view: DataView, bytes: Uint8Array) => void): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  edit(view, out);
  view.setUint32(out.length - 4, crc32(out, 0, out.length - 4), true);
  return out;
}

/** Version 1 (the earlier releases' format): 9-word header, f32 scales, int8/16/32 codes, no checksum. */
function writeVersion1(q: WeightOnlyQuantized, width: 8 | 16 | 32, overrides: { n?: number; rotation?: number } = {}): Uint8Array {
  const { n, outputs, codes, columnScales, rowScales } = q;
  const bytes = new Uint8Array(36 + 4 * n + (rowScales === null ? 0 : 4 * outputs) + (width / 8) * n * outputs);
  const view = new DataView(bytes.buffer);
  const header = [0x51574d4c, 1, overrides.n ?? n, outputs, width, ['rtn', 'gptq', 'watersic'].indexOf(q.method), overrides.rotation ?? ['none', 'hadamard', 'haar'].indexOf(q.rotation), q.seed, rowScales === null ? 0 : 1];
  header.forEach((v, k) => view.setUint32(4 * k, v, true));
  let offset = 36;
  for (let i = 0; i < n; i++, offset += 4) view.setFloat32(offset, columnScales[i] as number, true);
  if (rowScales !== null) for (let j = 0; j < outputs; j++, offset += 4) view.setFloat32(offset, rowScales[j] as number, true);
  for (let k = 0; k < codes.length; k++, offset += width / 8) {
    if (width === 8) view.setInt8(offset, codes[k] as number);
    else if (width === 16) view.setInt16(offset, codes[k] as number, true);
    else view.setInt32(offset, codes[k] as number, true);
  }
  return bytes;
}

function expectSameMatrix(back: WeightOnlyQuantized, q: WeightOnlyQuantized): void {
  expect(back.method).toBe(q.method);
  expect(back.n).toBe(q.n);
  expect(back.outputs).toBe(q.outputs);
  expect(back.rotation).toBe(q.rotation);
  expect(back.seed).toBe(q.seed);
  expect(Array.from(back.codes)).toEqual(Array.from(q.codes));
  expect(Array.from(new Uint32Array(back.columnScales.buffer))).toEqual(Array.from(new Uint32Array(q.columnScales.slice().buffer)));
  expect(back.rowScales === null ? null : Array.from(back.rowScales)).toEqual(q.rowScales === null ? null : Array.from(q.rowScales));
}

describe('bit-packed codes', () => {
  it.each([0, -1, 1, -2, 2, 3, -4, 4, 127, -128, 128, 2 ** 24 - 1, -(2 ** 24)])('twosComplementBits(%i) is the smallest width that holds it', (z) => {
    expect(twosComplementBits(z)).toBe(bitsByCounting(z));
  });

  it('codes of 3, 4, 1 and 1 bits: one stream from bit 0, little-endian, rest of the vec4 zero', () => {
    // −4 = 100 (3 bits) at bit 0; 7 = 0111 (4 bits) at bit 3; 0 (1 bit) at 7; −1 = 1 (1 bit) at 8.
    const packed = packWeightCodes(new Int32Array([-4, 7, 0, -1]), 4, 1);
    expect(Array.from(packed.widths)).toEqual([3, 4, 1, 1]);
    expect(packed.rowVec4s).toBe(1);
    expect(Array.from(packed.words)).toEqual([0b1_0_0111_100, 0, 0, 0]);
  });

  it('25-bit codes cross word boundaries: 2^24 − 1 at bit 0, −2^24 at bit 25', () => {
    const packed = packWeightCodes(new Int32Array([2 ** 24 - 1, -(2 ** 24)]), 2, 1);
    expect(Array.from(packed.widths)).toEqual([25, 25]);
    // Field of −2^24 in 25 bits is 2^24: its top bit lands at row bit 25 + 24 = 49, bit 17 of word 1.
    expect(Array.from(packed.words)).toEqual([0x00ffffff, 1 << 17, 0, 0]);
    expect(Array.from(unpackWeightCodes(packed))).toEqual([2 ** 24 - 1, -(2 ** 24)]);
  });

  it('rows start on whole vec4s: 2 rows of 40 codes of 4 bits = 160 bits → 2 vec4 each', () => {
    const codes = Int32Array.from({ length: 80 }, (_, k) => (k % 15) - 7);
    codes[0] = -8; // column 0 needs 4 bits
    for (let i = 0; i < 40; i++) codes[40 + i] = i % 2 === 0 ? -8 : 7;
    const packed = packWeightCodes(codes, 40, 2);
    expect(Array.from(packed.widths)).toEqual(Array.from({ length: 40 }, () => 4));
    expect(packed.rowVec4s).toBe(2);
    expect(packed.words.length).toBe(16);
    expect(packed.words[8]).toBe(0x78787878); // row 1: −8 = 1000, 7 = 0111, alternating from bit 0
    expect(Array.from(packed.words.subarray(12, 16))).toEqual([0x78787878, 0, 0, 0]); // bits 160 … 255 of row 1 are padding
  });

  it.each([[[1]], [[25]], [[3, 5, 6, 7, 1, 2]], [Array.from({ length: 25 }, (_, i) => i + 1)], [Array.from({ length: 300 }, (_, i) => 1 + ((i * 7) % 25))]])(
    'widths %j: pack then unpack gives the codes back, every width is the narrowest',
    (widths) => {
      const q = withWidths(widths, 5, widths.length);
      const packed = packWeightCodes(q.codes, q.n, 5);
      expect(Array.from(packed.widths)).toEqual(widths);
      expect(packed.rowVec4s).toBe(Math.max(1, Math.ceil(widths.reduce((a, b) => a + b, 0) / 128)));
      expect(Array.from(unpackWeightCodes(packed))).toEqual(Array.from(q.codes));
    },
  );

  it('unpacking refuses set padding bits and widths wider than the codes need', () => {
    const packed = packWeightCodes(new Int32Array([-4, 7, 0, -1]), 4, 1);
    const words = packed.words.slice();
    words[0] = (words[0] as number) | (1 << 9);
    expect(() => unpackWeightCodes({ ...packed, words })).toThrow(/padding bits of output row 0/);
    const words3 = packed.words.slice();
    words3[3] = 1;
    expect(() => unpackWeightCodes({ ...packed, words: words3 })).toThrow(/padding word 3/);
    const wide = packWeightCodes(new Int32Array([1, 1]), 2, 1); // widths 2, 2
    expect(() => unpackWeightCodes({ ...wide, widths: new Uint8Array([3, 1]), words: new Uint32Array([0b0_001, 0, 0, 0]) })).toThrow(/input feature 0 is stored with 3 bits but its codes need 2/);
  });

  it('unpacking refuses set bits in the first whole padding word, after a partial word and after a full one', () => {
    // Row bits 9 (word 0 partly used): word 1 is the first whole padding word of each row.
    const partial = packWeightCodes(new Int32Array([-4, 7, 0, -1, 1, -2, 0, 0]), 4, 2);
    expect(partial.rowVec4s).toBe(1);
    for (const row of [0, 1]) {
      const words = partial.words.slice();
      words[4 * row + 1] = 1;
      expect(() => unpackWeightCodes({ ...partial, words })).toThrow(`packed codes: padding word 1 of output row ${row} is not zero`);
    }
    // Eight 4-bit codes: row bits 32 end exactly on word 0, so there is no partial word to check.
    const exact = packWeightCodes(Int32Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? -8 : 7)), 8, 1);
    expect(Array.from(exact.widths)).toEqual(new Array(8).fill(4));
    const words = exact.words.slice();
    words[1] = 2 ** 31;
    expect(() => unpackWeightCodes({ ...exact, words })).toThrow('packed codes: padding word 1 of output row 0 is not zero');
  });

  it('unpacking refuses widths beyond 25 bits and rows too short for their widths, not reading past a row', () => {
    const packed = packWeightCodes(new Int32Array([-4, 7, 0, -1]), 4, 1);
    expect(() => unpackWeightCodes({ ...packed, widths: new Uint8Array([26, 4, 1, 1]) })).toThrow(/input feature 0 has code width 26, expected 1 … 25/);
    // 6 codes of 25 bits need 150 bits: 2 vec4, not the 1 stated (the rest would come from row 1).
    const wide = packWeightCodes(Int32Array.from({ length: 12 }, (_, k) => (k % 2 === 0 ? -(2 ** 24) : 2 ** 24 - 1)), 6, 2);
    expect(wide.rowVec4s).toBe(2);
    expect(() => unpackWeightCodes({ ...wide, rowVec4s: 1, words: wide.words.subarray(0, 8) })).toThrow(/the widths need 150 bits per row, more than 1 vec4/);
  });

  it('unpacking codes that memory cannot hold (1 bit each in a file, 32 in memory) is refused by name, not with a RangeError', () => {
    const packed = packWeightCodes(new Int32Array(8 * 4), 8, 4);
    const realInt32Array = Int32Array;
    // The allocation of the codes' 8 × 4 Int32 fails, as an 8 GiB one does where memory is short.
    vi.stubGlobal('Int32Array', class extends realInt32Array {
      constructor(length: number) {
        if (length === 32) throw new RangeError('Array buffer allocation failed');
        super(length);
      }
    });
    try {
      expect(() => unpackWeightCodes(packed)).toThrow(LatticeMatmulError);
      expect(() => unpackWeightCodes(packed)).toThrow(/^packed codes: cannot allocate 128 bytes for the 8 × 4 codes \(one Int32 per weight\)$/);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(Array.from(unpackWeightCodes(packed))).toEqual(new Array(32).fill(0));
  });

  it('the GPU layout table: bit offsets P_i, then the first code each vec4 owns (the one whose last bit it holds)', () => {
    // Widths 100, …: use 25-bit codes: P = 0, 25, 50, …; code 5 ends at bit 150 (vec4 1), code 4 at 125 (vec4 0).
    const widths = new Uint8Array(Array.from({ length: 11 }, () => 25)); // 275 bits → 3 vec4
    const table = weightCodeLayout(widths, 3);
    expect(Array.from(table.subarray(0, 12))).toEqual(Array.from({ length: 12 }, (_, i) => 25 * i));
    // Last bits: 24, 49, 74, 99, 124 | 149, 174, 199, 224, 249 | 274 → vec4 0 owns 0…4, 1 owns 5…9, 2 owns 10.
    expect(Array.from(table.subarray(12))).toEqual([0, 5, 10, 11]);
    // A code ending exactly on bit 127 belongs to vec4 0: widths 64 × 2 bits → 128 bits, then one more.
    const exact = weightCodeLayout(new Uint8Array(Array.from({ length: 65 }, () => 2)), 2);
    expect(Array.from(exact.subarray(66))).toEqual([0, 64, 65]);
  });

  it('refuses codes outside [−2^24, 2^24 − 1]', () => {
    expect(() => packWeightCodes(new Int32Array([2 ** 24]), 1, 1)).toThrow(/outside \[-16777216, 16777215\]/);
    expect(() => new WeightOnlyQuantized({ method: 'rtn', n: 1, outputs: 1, codes: new Int32Array([-(2 ** 24) - 1]), columnScales: new Float32Array([1]), rowScales: null, rotation: 'none', seed: 0 })).toThrow(LatticeMatmulError);
  });
});

describe('serialize / deserialize', () => {
  const variants: [string, number, number, QuantizeWeightsOptions][] = [
    ['watersic', 16, 64, { method: 'watersic', rate: 3 }],
    ['watersic hadamard', 32, 20, { method: 'watersic', step: 0.05, rotate: true, seed: 2 }],
    ['gptq', 24, 30, { method: 'gptq', step: 0.25 }],
    ['gptq rotated', 64, 64, { method: 'gptq', rate: 4, rotate: true, seed: 9 }],
    ['gptq rescaled, dense rotation', 10, 40, { method: 'gptq', step: 0.25, rescale: true, rotate: true, seed: 4 }],
    ['rtn 2 bits', 16, 64, { method: 'rtn', rate: 2 }],
    ['rtn ~10-bit codes', 8, 8, { method: 'rtn', step: 1e-3 }],
    ['rtn ~22-bit codes', 8, 8, { method: 'rtn', step: 1e-6 }],
    ['rtn rotated, rescaled', 12, 20, { method: 'rtn', step: 0.3, rotate: true, rescale: true, seed: 3 }],
    ['watersic rescaled, dense rotation', 12, 50, { method: 'watersic', rate: 4, rescale: true, rotate: true, seed: 3 }],
  ];
  it.each(variants)('%s: round trip bit for bit, and the bytes are canonical', (_name, n, outputs, options) => {
    const q = quantized(n, outputs, options);
    const bytes = q.serialize();
    const back = WeightOnlyQuantized.deserialize(bytes);
    expectSameMatrix(back, q);
    expect(Array.from(back.decode().data)).toEqual(Array.from(q.decode().data));
    expect(back.rate).toBe(q.rate);
    expect(back.serialize()).toEqual(bytes);
  });

  it.each(Array.from({ length: 25 }, (_, k) => k + 1))('every code %i bits wide: round trip bit for bit (n = 37 and n = 1)', (bits) => {
    for (const q of [withWidths(Array.from({ length: 37 }, () => bits), 6, bits), withWidths([bits], 2, bits, new Float32Array([0.5, -3]))]) {
      const back = WeightOnlyQuantized.deserialize(q.serialize());
      expectSameMatrix(back, q);
      expect(Array.from(back.codeWidths)).toEqual(Array.from({ length: q.n }, () => bits));
    }
  });

  it('writes the documented layout, with a CRC-32 any zlib can check', () => {
    const q = withWidths([3, 1, 25, 8, 2], 3, 7, new Float32Array([1, 2, -0.5]));
    const bytes = q.serialize();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('LMWQ');
    const header = Array.from({ length: 12 }, (_, k) => view.getUint32(4 * k, true));
    // 39 bits per row → 1 vec4; method watersic = 2; rotation none = 0; seed 7; flag 1 = row scales.
    expect(header.slice(1)).toEqual([2, 5, 3, 1, 2, 0, 7, 1, 0, 0, 0]);
    const codesAt = 48;
    const packed = q.packedCodes;
    for (let k = 0; k < 12; k++) expect(view.getUint32(codesAt + 4 * k, true)).toBe(packed.words[k]);
    // Row 1 (output 1) starts at codesAt + 16; its code 0 is the 3-bit maximum 3 = 011.
    expect(view.getUint32(codesAt + 16, true) & 0b111).toBe(3);
    const widthsAt = codesAt + 16 * 3;
    expect(Array.from(bytes.subarray(widthsAt, widthsAt + 8))).toEqual([3, 1, 25, 8, 2, 0, 0, 0]);
    const scalesAt = widthsAt + 8;
    expect(view.getFloat32(scalesAt + 4 * 2, true)).toBe(2 ** -24);
    expect(view.getFloat32(scalesAt + 4 * 5 + 4 * 2, true)).toBe(-0.5);
    expect(bytes.length).toBe(scalesAt + 4 * 5 + 4 * 3 + 4);
    expect(view.getUint32(bytes.length - 4, true)).toBe(zlibCrc32(bytes.subarray(0, bytes.length - 4)));
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(q.storedBitsPerEntry).toBe((8 * bytes.length) / 15);
  });

  it('reads from a Node Buffer at an odd offset and keeps no reference to its memory', () => {
    const q = withWidths([3, 1, 25, 8, 2], 3, 7, new Float32Array([1, 2, -0.5]));
    const bytes = q.serialize();
    const pool = Buffer.alloc(bytes.length + 3);
    pool.set(bytes, 3);
    const view = pool.subarray(3);
    const back = WeightOnlyQuantized.deserialize(view);
    pool.fill(0);
    expectSameMatrix(back, q);
    expect(back.serialize()).toEqual(bytes);
  });

  it('3-bit RTN at n = 1024 stores ≈ 4.2 bits per entry, not 8.03: the narrowest width per column', () => {
    const w = gaussianMatrix(1024, 1024, 5);
    const q = quantizeWeights(w, null, { method: 'rtn', rate: 3 });
    // Widths recomputed here by counting; the file adds ≤ 127 padding bits per row, n bytes of
    // widths, n column scales, a 48-byte header and a 4-byte checksum.
    let rowBits = 0;
    for (let i = 0; i < 1024; i++) {
      let width = 1;
      for (let j = 0; j < 1024; j++) width = Math.max(width, bitsByCounting(q.codes[j * 1024 + i] as number));
      rowBits += width;
    }
    const expectedBytes = 48 + 16 * Math.ceil(rowBits / 128) * 1024 + 1024 + 4 * 1024 + 4;
    expect(q.serialize().length).toBe(expectedBytes);
    expect(q.storedBitsPerEntry).toBeCloseTo((8 * expectedBytes) / 2 ** 20, 12);
    expect(q.storedBitsPerEntry).toBeLessThan(4.5);
    expect(q.storedBitsPerEntry).toBeGreaterThan(q.codeRate);
  });

  it('reads version 1 files (int8/16/32 codes, no checksum) with the same checks', () => {
    const q = quantized(12, 50, { method: 'watersic', rate: 4, rescale: true, rotate: true, seed: 3 });
    for (const width of [8, 16, 32] as const) expectSameMatrix(WeightOnlyQuantized.deserialize(writeVersion1(q, width)), q);
    const wide = quantized(8, 8, { method: 'rtn', step: 1e-6 });
    expectSameMatrix(WeightOnlyQuantized.deserialize(writeVersion1(wide, 32)), wide);
    // The red-team file: a dense rotation of n = 3000 in 15 KB; and codes beyond 2^24.
    const big = new WeightOnlyQuantized({ method: 'rtn', n: 3000, outputs: 1, codes: new Int32Array(3000), columnScales: new Float32Array(3000).fill(1), rowScales: null, rotation: 'none', seed: 0 });
    expect(() => WeightOnlyQuantized.deserialize(writeVersion1(big, 8, { rotation: 2 }))).toThrow(`limited to n ≤ ${MAX_HAAR_N}, got n = 3000`);
    const v1 = writeVersion1(wide, 32);
    new DataView(v1.buffer).setInt32(v1.length - 4, 2 ** 30, true);
    expect(() => WeightOnlyQuantized.deserialize(v1)).toThrow(/outside \[-16777216, 16777215\]/);
    const nan = writeVersion1(wide, 32);
    new DataView(nan.buffer).setFloat32(36, Number.NaN, true);
    expect(() => WeightOnlyQuantized.deserialize(nan)).toThrow(/columnScales\[0\] is not finite/);
  });

  const sample = (): WeightOnlyQuantized => withWidths([3, 5, 1, 9, 2, 2, 4], 6, 1, new Float32Array([1, 1, 2, 0.5, 1, 1]));
  const header = (k: number, value: number) => (view: DataView): void => view.setUint32(4 * k, value, true);
  it.each([
    ['a truncated file', (b: Uint8Array) => b.subarray(0, b.length - 1), /has \d+ bytes, its header .* implies/],
    ['a file with a byte appended', (b: Uint8Array) => Uint8Array.from([...b, 0]), /implies/],
    ['a flipped bit in a code', (b: Uint8Array) => { const c = b.slice(); c[50] = (c[50] as number) ^ 4; return c; }, /checksum is 0x[0-9A-F]{8} but the bytes give/],
    ['a flipped bit in a scale', (b: Uint8Array) => { const c = b.slice(); c[c.length - 9] = (c[c.length - 9] as number) ^ 1; return c; }, /corrupted/],
    ['a flipped bit in the checksum', (b: Uint8Array) => { const c = b.slice(); c[c.length - 1] = (c[c.length - 1] as number) ^ 128; return c; }, /corrupted/],
    ['a bad magic', (b: Uint8Array) => { const c = b.slice(); c[0] = 0; return c; }, /magic/],
    ['an unknown version', (b: Uint8Array) => { const c = b.slice(); c[4] = 9; return c; }, /unsupported weight-only format version 9/],
    ['too few bytes for a header', () => Uint8Array.from([0x4c, 0x4d, 0x57, 0x51, 2, 0, 0, 0, 1, 2]), /too short: 10 bytes/],
    ['not even a magic', () => new Uint8Array(3), /too short: 3 bytes/],
    ['unknown flags (checksum recomputed)', (b: Uint8Array) => resealed(b, header(8, 3)), /unknown flags 0x3/],
    ['a reserved word set (checksum recomputed)', (b: Uint8Array) => resealed(b, header(10, 1)), /reserved header word 10 is 1/],
    ['an unknown method (checksum recomputed)', (b: Uint8Array) => resealed(b, header(5, 3)), /unknown method id 3/],
    ['an unknown rotation (checksum recomputed)', (b: Uint8Array) => resealed(b, header(6, 7)), /unknown rotation id 7/],
    ['a Hadamard rotation of n = 7 (checksum recomputed)', (b: Uint8Array) => resealed(b, header(6, 1)), /rotation 'hadamard' needs an unpadded rotation, rotationLength\(n\) = n \(n = m·2\^k with m ∈ \{1, 12, 20\}, or n > 256\), got n = 7/],
    ['zero outputs (checksum recomputed)', (b: Uint8Array) => resealed(b, header(3, 0)), /must all be positive/],
    ['a code width 0 (checksum recomputed)', (b: Uint8Array) => resealed(b, (_v, c) => { c[48 + 16 * 6 + 2] = 0; }), /input feature 2 has code width 0, expected 1 … 25/],
    ['a code width 26 (checksum recomputed)', (b: Uint8Array) => resealed(b, (_v, c) => { c[48 + 16 * 6 + 2] = 26; }), /code width 26/],
    ['widths that do not match the vec4 per row (checksum recomputed)', (b: Uint8Array) => resealed(b, (_v, c) => { for (const i of [0, 1, 2, 3, 5, 6]) c[48 + 16 * 6 + i] = 25; }), /need 152 bits per row, 2 vec4, but the header says 1/],
    ['a width padding byte set (checksum recomputed)', (b: Uint8Array) => resealed(b, (_v, c) => { c[48 + 16 * 6 + 7] = 1; }), /padding byte/],
    ['more vec4 per row than the widths need (checksum recomputed)', (b: Uint8Array) => resealed(b, header(4, 2)), /implies/],
    ['a NaN column scale (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setUint32(48 + 16 * 6 + 8, 0x7fc00000, true)), /columnScales\[0\] is not finite: NaN/],
    ['an infinite row scale (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setFloat32(b.length - 8, -Infinity, true)), /rowScales\[5\] is not finite: -Infinity/],
    ['a column scale beyond 2^48 (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setFloat32(48 + 16 * 6 + 8 + 4 * 3, 2 ** 41, true)), /columnScales\[3\] = 2199023255552 with 9-bit codes decodes to magnitudes up to 562949953421312, above the limit 2\^48/],
    ['a row scale below −2^16 (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setFloat32(b.length - 12, -65537, true)), /rowScales\[4\] = -65537 is outside/],
    ['a column scale below −2^48 (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setFloat32(48 + 16 * 6 + 8 + 4 * 3, -(2 ** 41), true)), /columnScales\[3\] = -2199023255552 with 9-bit codes decodes to magnitudes up to 562949953421312/],
    ['a row scale beyond 2^16 (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setFloat32(b.length - 12, 65537, true)), /rowScales\[4\] = 65537 is outside/],
    ['set padding bits of a row (checksum recomputed)', (b: Uint8Array) => resealed(b, (v) => v.setUint32(48 + 12, 1 << 31, true)), /padding word 3 of output row 0/],
  ])('refuses %s with a LatticeMatmulError naming the problem', (_name, corrupt, message) => {
    const bytes = sample().serialize();
    expect(bytes.length).toBe(48 + 16 * 6 + 8 + 4 * 7 + 4 * 6 + 4); // 26 bits per row → 1 vec4
    expect(() => WeightOnlyQuantized.deserialize(corrupt(bytes))).toThrow(LatticeMatmulError);
    expect(() => WeightOnlyQuantized.deserialize(corrupt(bytes))).toThrow(message);
  });

  it(`refuses the dense rotation beyond MAX_HAAR_N (${MAX_HAAR_N}) before any work: the red-team file of n = 3000`, () => {
    const n = 3000;
    const q = new WeightOnlyQuantized({ method: 'rtn', n, outputs: 1, codes: new Int32Array(n), columnScales: new Float32Array(n).fill(0.5), rowScales: null, rotation: 'none', seed: 0 });
    const attack = resealed(q.serialize(), header(6, 2));
    expect(attack.length).toBeLessThan(16_000);
    // Before any work, counted rather than timed: the dense rotation is never built (haarOrthogonal, O(n³),
    // seconds at this n, is not called) and nothing near its n × n float64 matrix (72 MB) is allocated —
    // only the file's own arrays, O(n) (≈ 4·n bytes each).
    haarCalls.count = 0;
    const { result, bytes: allocated } = countAllocations(() => WeightOnlyQuantized.deserialize(attack));
    expect(result.ok).toBe(false);
    const error = result.ok ? undefined : result.error;
    expect(error).toBeInstanceOf(LatticeMatmulError);
    expect((error as Error).message).toBe(`rotation 'haar' (a dense n × n rotation, O(n³) to build) is limited to n ≤ ${MAX_HAAR_N}, got n = 3000`);
    expect(haarCalls.count).toBe(0);
    expect(allocated).toBeLessThan(64 * n);
    // Quantizing falls back to the dense rotation under the same constant: above it, an n that is no
    // Hadamard length is refused (which n those are depends on the rotation plan, so look for one).
    const nonHadamard = Array.from({ length: 3 * MAX_HAAR_N }, (_, k) => MAX_HAAR_N + 1 + k).find((m) => rotationLength(m) !== m);
    if (nonHadamard !== undefined) {
      expect(() => quantizeWeights(gaussianMatrix(nonHadamard, 1, 1), null, { method: 'rtn', step: 0.5, rotate: true })).toThrow(`larger than ${MAX_HAAR_N}`);
    }
  });

  it('refuses a file with more vec4 per row than its widths need, even with the length to match and zero padding (the format is canonical)', () => {
    // sample(): widths 3 + 5 + 1 + 9 + 2 + 2 + 4 = 26 bits per row → R = 1. Rewritten with R = 2: each row followed by 16 zero bytes.
    const q = sample();
    const bytes = q.serialize();
    const rowBytes = 16;
    const codesAt = 48;
    const codesEnd = codesAt + rowBytes * q.outputs;
    const wider = new Uint8Array(bytes.length + rowBytes * q.outputs);
    wider.set(bytes.subarray(0, codesAt));
    for (let j = 0; j < q.outputs; j++) wider.set(bytes.subarray(codesAt + rowBytes * j, codesAt + rowBytes * (j + 1)), codesAt + 2 * rowBytes * j);
    wider.set(bytes.subarray(codesEnd), codesAt + 2 * rowBytes * q.outputs);
    const attack = resealed(wider, header(4, 2));
    expect(() => WeightOnlyQuantized.deserialize(attack)).toThrow(LatticeMatmulError);
    expect(() => WeightOnlyQuantized.deserialize(attack)).toThrow('weight-only data: the code widths need 26 bits per row, 1 vec4, but the header says 2');
  });

  it('refuses a version 1 file with a byte appended or one missing (its length must be what the header implies)', () => {
    const q = sample();
    const v1 = writeVersion1(q, 16);
    expectSameMatrix(WeightOnlyQuantized.deserialize(v1), q);
    for (const damaged of [Uint8Array.from([...v1, 0]), v1.subarray(0, v1.length - 1)]) {
      expect(() => WeightOnlyQuantized.deserialize(damaged)).toThrow(LatticeMatmulError);
      expect(() => WeightOnlyQuantized.deserialize(damaged)).toThrow(`weight-only data has ${damaged.length} bytes, its version 1 header implies ${v1.length}`);
    }
  });

  it('refuses a version 1 file with the two-window Hadamard rotation of n = 300, which only version 3 holds', () => {
    const n = 300;
    expect(rotationLength(n)).toBe(n); // rotated unpadded, in two windows (no Hadamard length)
    const q = new WeightOnlyQuantized({ method: 'rtn', n, outputs: 2, codes: new Int32Array(2 * n).fill(1), columnScales: new Float32Array(n).fill(0.5), rowScales: null, rotation: 'hadamard', seed: 3 });
    expect(q.serialize()[4]).toBe(3);
    expect(() => WeightOnlyQuantized.deserialize(writeVersion1(q, 8))).toThrow(LatticeMatmulError);
    expect(() => WeightOnlyQuantized.deserialize(writeVersion1(q, 8))).toThrow(
      "weight-only data of format version 1: a 'hadamard' rotation of n = 300 inputs is the two-window rotation of n ≤ 1024, which only version 3 holds",
    );
  });

  it.each([
    ['n = 2^32 − 1', 2, 0xffffffff],
    ['outputs = 2^32 − 1', 3, 0xffffffff],
    ['vec4 per row = 2^31', 4, 0x80000000],
  ])('a header claiming %s is refused by the length check before anything is allocated', (_name, word, value) => {
    const bytes = resealed(sample().serialize(), header(word, value));
    const { result, bytes: allocated } = countAllocations(() => WeightOnlyQuantized.deserialize(bytes));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error instanceof LatticeMatmulError && /implies/.test(result.error.message)).toBe(true);
    expect(allocated).toBeLessThan(64);
  });

  it('the constructor holds every matrix to the same bounds (so every matrix serializes and reads back)', () => {
    const base = { method: 'rtn' as const, n: 2, outputs: 1, codes: new Int32Array([3, -1]), rowScales: null, rotation: 'none' as const, seed: 0 };
    expect(() => new WeightOnlyQuantized({ ...base, columnScales: new Float32Array([2 ** 47, 1]) })).toThrow(/columnScales\[0\] = 140737488355328 with 3-bit codes decodes to magnitudes up to 562949953421312/);
    expect(() => new WeightOnlyQuantized({ ...base, columnScales: new Float32Array([1, 2 ** 48]) })).not.toThrow();
    expect(() => new WeightOnlyQuantized({ ...base, columnScales: new Float32Array([1, 1]), rowScales: new Float32Array([Infinity]) })).toThrow(/rowScales\[0\] is not finite/);
    expect(() => new WeightOnlyQuantized({ ...base, columnScales: new Float32Array([1, 1]), rotation: 'hadamard' })).not.toThrow(); // n = 2 = 2^1
    expect(() => new WeightOnlyQuantized({ ...base, n: 3, codes: new Int32Array(3), columnScales: new Float32Array(3), rotation: 'hadamard' })).toThrow(/hadamard/);
  });
});
