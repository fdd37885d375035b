import { hadamard12, hadamard20 } from '../../src/rotation/hadamard.js';
import { counterHash, RandomStream } from '../../src/rotation/random.js';

/*
 * Test-only references for the rotation, written from the documented contracts (hadamard.ts,
 * randomizedHadamard.ts) without the library's transform code: the block sums and butterflies are
 * spelled out with Math.fround on every sum, stage by stage.
 */

/** The m × m table entry (r, c) of a row-major Int8Array. */
export function tableEntry(table: Readonly<Int8Array>, m: number, r: number, c: number): number {
  return table[r * m + c] as number;
}

/** m and the H_m table of a single Hadamard length N = m·2^k (m = 20, 12 or 1). */
export function hadamardBase(N: number): { m: number; table: Readonly<Int8Array> } {
  if (N % 20 === 0) return { m: 20, table: hadamard20 };
  if (N % 12 === 0) return { m: 12, table: hadamard12 };
  return { m: 1, table: new Int8Array([1]) };
}

/**
 * The single-length transform exactly as the contract is worded, with Math.fround on every sum (the
 * GPU kernel's recipe): step 1 block sums left to right, step 2 loops over h and over every a with
 * (a & h) = 0. Returns H_N·x (or H_Nᵀ·x) for the first N entries of x.
 */
export function contractTransform(x: Float32Array, N: number, m: number, table: Readonly<Int8Array>, transpose: boolean): Float32Array {
  const y = Float32Array.from(x.subarray(0, N));
  const blocks = N / m;
  if (m > 1) {
    for (let a = 0; a < blocks; a++) {
      const block: number[] = [];
      for (let b = 0; b < m; b++) {
        const h = (b2: number): number => (transpose ? tableEntry(table, m, b2, b) : tableEntry(table, m, b, b2));
        let acc = h(0) * (y[a * m] as number);
        for (let b2 = 1; b2 < m; b2++) acc = Math.fround(acc + h(b2) * (y[a * m + b2] as number));
        block.push(acc);
      }
      block.forEach((v, b) => (y[a * m + b] = v));
    }
  }
  for (let h = 1; h < blocks; h *= 2) {
    for (let a = 0; a < blocks; a++) {
      if ((a & h) !== 0) continue;
      for (let b = 0; b < m; b++) {
        const u = y[a * m + b] as number;
        const v = y[(a + h) * m + b] as number;
        y[a * m + b] = Math.fround(u + v);
        y[(a + h) * m + b] = Math.fround(u - v);
      }
    }
  }
  return y;
}

/** A stage of a rotation: the window [offset, offset + length), length a single Hadamard length. */
export interface ReferenceStage {
  readonly offset: number;
  readonly length: number;
}

/** s^(k)_p: −1 when bit 31 of counterHash(seed, rotationSigns, p, k) is set. */
export function referenceSign(seed: number, p: number, k: number): number {
  return counterHash(seed, RandomStream.rotationSigns, p, k) >>> 31 === 1 ? -1 : 1;
}

/**
 * The forward rotation by the documented contract: t = x, zeros up to N; then per stage k: the
 * window's real entries (p < n) times s^(k) (the padding stays +0), the contract transform, one
 * rounding multiplication by fround(1/√L_k).
 */
export function referenceForward(x: Float32Array, N: number, seed: number, stages: readonly ReferenceStage[]): Float32Array {
  const t = new Float32Array(N);
  t.set(x);
  stages.forEach(({ offset, length }, k) => {
    const window = t.subarray(offset, offset + length);
    for (let i = 0; i < length && offset + i < x.length; i++) window[i] = referenceSign(seed, offset + i, k) * (window[i] as number);
    const { m, table } = hadamardBase(length);
    const h = contractTransform(window, length, m, table, false);
    const c = Math.fround(1 / Math.sqrt(length));
    for (let i = 0; i < length; i++) window[i] = Math.fround((h[i] as number) * c);
  });
  return t;
}

/** The inverse by the contract: stages from the last, each the transposed transform, × c_k (rounded), × s^(k); `rows` kept. */
export function referenceInverse(y: Float32Array, rows: number, seed: number, stages: readonly ReferenceStage[]): Float32Array {
  const t = Float32Array.from(y);
  for (let k = stages.length - 1; k >= 0; k--) {
    const { offset, length } = stages[k] as ReferenceStage;
    const { m, table } = hadamardBase(length);
    const h = contractTransform(t.subarray(offset, offset + length), length, m, table, true);
    const c = Math.fround(1 / Math.sqrt(length));
    for (let i = 0; i < length; i++) t[offset + i] = referenceSign(seed, offset + i, k) * Math.fround((h[i] as number) * c);
  }
  return t.slice(0, rows);
}
