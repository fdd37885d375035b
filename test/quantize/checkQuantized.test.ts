import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { checkQuantizedMatrix } from '../../src/quantize/checkQuantized.js';
import { isSupportedColumnNorm, MAX_COLUMN_NORM, MIN_COLUMN_NORM } from '../../src/quantize/prepareColumn.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * checkQuantizedMatrix holds a lattice matrix's norms to the range quantize writes (0 or
 * [2^-100, 2^100], isSupportedColumnNorm): a hand-built or edited matrix with 0 < ν < 2^-100 would
 * decode subnormally on the GPU, so every function that takes a quantized matrix refuses it.
 */

describe('checkQuantizedMatrix: norms', () => {
  it('isSupportedColumnNorm is 0 or [MIN_COLUMN_NORM, MAX_COLUMN_NORM], false for NaN', () => {
    for (const v of [0, MIN_COLUMN_NORM, 1, MAX_COLUMN_NORM]) expect(isSupportedColumnNorm(v)).toBe(true);
    for (const v of [NaN, -1, Infinity, 2 ** -101, 1e-40, 2 ** 101, -0.5 * MIN_COLUMN_NORM]) expect(isSupportedColumnNorm(v)).toBe(false);
  });

  it.each(['d3-q6', 'e8-q16-deterministic'] as const)('%s: accepts norms 0, 2^-100 and 2^100; refuses 2^-101 and a subnormal, naming the column', (scheme) => {
    const q = quantize(gaussianMatrix(32, 3, 1), scheme === 'd3-q6' ? { scheme, seed: 1, nonce: 2 } : { scheme, seed: 1 }) as QuantizedMatrix & { norms: Float32Array };
    const withNorms = (values: number[]): QuantizedMatrix => ({ ...q, norms: Float32Array.from(values) }) as QuantizedMatrix;
    expect(() => checkQuantizedMatrix(withNorms([0, 2 ** -100, 2 ** 100]), 'q')).not.toThrow();
    expect(() => checkQuantizedMatrix(withNorms([1, 1, 2 ** -101]), 'q')).toThrow(/q\.norms\[2\] = 3\.944304526105059e-31 is neither 0 nor in \[2\^-100, 2\^100\]/);
    expect(() => dequantize(withNorms([1, 1e-40, 1]))).toThrow(LatticeMatmulError);
    expect(() => dequantize(withNorms([1, 1e-40, 1]))).toThrow(/norms\[1\] = 9\.99994610111476e-41 is neither 0 nor/);
    expect(() => checkQuantizedMatrix(withNorms([NaN, 1, 1]), 'q')).toThrow(/q\.norms\[0\] = NaN/);
  });
});

describe('checkQuantizedMatrix: values that select', () => {
  /** `q` with one entry of one of its per-block arrays replaced. */
  const edited = <K extends string>(q: QuantizedMatrix, field: K, index: number, value: number): QuantizedMatrix => {
    const array = (q as unknown as Record<K, Uint32Array | Uint16Array | Uint8Array>)[field];
    const copy = array.slice();
    copy[index] = value;
    return { ...q, [field]: copy } as QuantizedMatrix;
  };

  it.each([
    ['d3-q6-deterministic', 6 ** 3],
    ['d3-q6', 6 ** 3],
    ['e8-4bit', 12 ** 8], // (E8 q = 16 has 2^32 codes: every u32 is one)
  ] as const)('%s: a code word at or past q^d is refused by every function that reads it (the table product read NaN)', (scheme, firstBad) => {
    const base = quantize(gaussianMatrix(48, 2, 3), scheme.endsWith('deterministic') ? { scheme } : { scheme, nonce: 4 });
    expect(() => checkQuantizedMatrix(edited(base, 'codes', 1, firstBad - 1), 'A')).not.toThrow();
    const bad = edited(base, 'codes', 1, firstBad);
    expect(() => checkQuantizedMatrix(bad, 'A')).toThrow(new RegExp(`A\\.codes\\[1\\].* = ${firstBad} is not below q\\^d = ${firstBad}`));
    // By the check, naming the field (the decoders' own refusal, "VoronoiCode.decode: index must be …", names neither).
    expect(() => matmulAT(bad, bad)).toThrow(new RegExp(`^A\\.codes\\[1\\].* = ${firstBad} is not below q\\^d`));
    expect(() => dequantize(bad)).toThrow(new RegExp(`^dequantize q\\.codes\\[1\\].* = ${firstBad} is not below q\\^d`));
  });

  it('e8-5bit: the 37-bit code with its high bits is held below q^d = 24^8', () => {
    const base = quantize(gaussianMatrix(16, 1, 5), { scheme: 'e8-5bit', nonce: 6 });
    expect(base.kind === 'lattice' && base.mode === 'universal' && base.codesHigh !== null).toBe(true);
    const largest = 24 ** 8 - 1;
    const withCode = (code: number) => edited(edited(base, 'codes', 0, code % 2 ** 32), 'codesHigh', 0, Math.floor(code / 2 ** 32));
    expect(() => checkQuantizedMatrix(withCode(largest), 'A')).not.toThrow();
    expect(() => checkQuantizedMatrix(withCode(largest + 1), 'A')).toThrow(/A\.codes\[0\] \(with codesHigh\) = 110075314176 is not below q\^d = 110075314176/);
  });

  it.each([
    ['d3-q6', 12], // D3 has 12 roots: ranks 1…12
    ['e8-4bit', 15], // E8 has 240: ranks 1…15 (4 bits)
  ] as const)('%s: an escape rank past the roots is refused (it decoded a stale entry)', (scheme, maxRank) => {
    const base = quantize(gaussianMatrix(64, 4, 7), { scheme, nonce: 8 });
    const escaped = base.kind === 'lattice' && base.mode === 'universal' ? base.escapes.findIndex((s) => s > 0 && s <= maxRank) : -1;
    expect(escaped).toBeGreaterThanOrEqual(0);
    expect(() => checkQuantizedMatrix(edited(base, 'escapes', escaped, maxRank), 'A')).not.toThrow();
    if (maxRank < 15) {
      const bad = edited(base, 'escapes', escaped, maxRank + 1);
      expect(() => checkQuantizedMatrix(bad, 'A')).toThrow(new RegExp(`A\\.escapes\\[${escaped}\\] = ${maxRank + 1} is not an escape symbol \\(0, a rank 1…${maxRank} among the 12 roots of D3, or 16\\)`));
      expect(() => dequantize(bad)).toThrow(new RegExp(`^dequantize q\\.escapes\\[${escaped}\\] = ${maxRank + 1} is not an escape symbol`));
    }
  });
});

describe('checkQuantizedMatrix: explicit escapes', () => {
  it('refuses an explicit escape coordinate beyond ±2^16 (the container reader\'s bound; the GPU pair form overflowed i32 past it) and takes ±2^16', () => {
    const base = quantize(gaussianMatrix(12, 2, 1), { scheme: 'd3-q6', seed: 1, nonce: 3, rotate: false });
    if (base.kind !== 'lattice' || base.mode !== 'universal') throw new Error('universal matrix expected');
    // Block 0 of column 0 an explicit escape (symbol LONG_ESCAPE = 16, long index HUGE_ESCAPE) with μ = (v, v, 0), a D3 point.
    const withMu = (v: number): QuantizedMatrix => {
      const escapes = base.escapes.slice();
      escapes.fill(0);
      escapes[0] = 16;
      return { ...base, escapes, longEscapes: Uint16Array.of(HUGE_ESCAPE), hugeEscapes: Int32Array.of(v, v, 0) } as QuantizedMatrix;
    };
    expect(() => checkQuantizedMatrix(withMu(2 ** 16), 'A')).not.toThrow();
    expect(() => checkQuantizedMatrix(withMu(-(2 ** 16)), 'A')).not.toThrow();
    expect(() => checkQuantizedMatrix(withMu(2 ** 16 + 2), 'A')).toThrow(/^A\.hugeEscapes\[0\] = 65538 is beyond ±2\^16, more than any encoder writes/);
    expect(() => matmulAT(withMu(2 ** 21), withMu(2 ** 21))).toThrow(/^A\.hugeEscapes\[0\] = 2097152 is beyond ±2\^16/);
  });
});

describe('checkQuantizedMatrix: a deterministic last block past the column', () => {
  // 64 unrotated rows in blocks of 3: block 21 holds row 63 and two coordinates past the column. The
  // decoders drop those, the inner-product tables summed them: matmulAT differed from dequantize (helper-122).
  it('refuses a leader nonzero past keptLength, which every product and decode would then read differently; quantize never writes one', () => {
    const q = quantize(gaussianMatrix(64, 2, 1), { scheme: 'd3-q6-deterministic', rotate: false });
    if (q.kind !== 'lattice' || q.mode !== 'deterministic') throw new Error('deterministic matrix expected');
    const voronoi = new VoronoiCode(D3, 6);
    const tail = Array.from({ length: voronoi.size }, (_, c) => c).find((c) => voronoi.decode(c)[1] !== 0) as number;
    const codes = q.codes.slice();
    codes[q.blocksPerColumn + 21] = tail; // column 1's last block
    const forged = { ...q, codes };
    expect(() => matmulAT(forged, forged)).toThrow(/A: code \d+ of the last block of column 1 has a nonzero coordinate 1 past the column's 64 coordinates/);
    expect(() => dequantize(forged)).toThrow(/of the last block of column 1/);
    expect(() => checkQuantizedMatrix(q, 'q')).not.toThrow();
  });
});

describe('checkQuantizedMatrix: E8 last blocks past the column', () => {
  it("accepts E8 leaders nonzero past keptLength, which quantize writes (the ½-coset) and every E8 product drops", () => {
    const n = 63; // 8 blocks of 8: the last one's coordinate 7 lies past the column
    const data = new Float32Array(n * 400);
    for (let j = 0; j < 400; j++) for (let i = 0; i < n; i++) data[j * n + i] = i === n - 1 ? (j % 40) / 8 - 2.5 : ((i * 7 + j * 3) % 5) - 2;
    const q = quantize({ rows: n, cols: 400, data }, { scheme: 'e8-q16-deterministic', rotate: false });
    if (q.kind !== 'lattice' || q.mode !== 'deterministic') throw new Error('deterministic matrix expected');
    const voronoi = new VoronoiCode(E8, 16);
    const past = Array.from({ length: q.cols }, (_, j) => voronoi.decode(q.codes[j * q.blocksPerColumn + 7] as number)[7] !== 0).filter(Boolean).length;
    expect(past).toBeGreaterThan(0); // such codes occur
    expect(() => checkQuantizedMatrix(q, 'q')).not.toThrow();
    const exact = matmulAT(q, q);
    const decoded = dequantize(q);
    // Products drop the coordinate as the decode does: ÂᵀÂ's diagonal is the stored norm, and an
    // off-diagonal entry equals the decoded columns' inner product.
    let dot = 0;
    for (let i = 0; i < n; i++) dot += (decoded.data[i] as number) * (decoded.data[n + i] as number);
    expect(Math.abs((exact.data[400] as number) - dot)).toBeLessThan(1e-4 * Math.hypot(...decoded.data.subarray(0, n)) * Math.hypot(...decoded.data.subarray(n, 2 * n)));
  });
});
