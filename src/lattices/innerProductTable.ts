import { check, describeValue } from '../errors.js';
import { VoronoiCode } from './voronoiCode.js';

/** Largest code for which a full pair table is built (216 × 216 for D3, q = 6 is the intended use). */
export const MAX_TABLE_CODES = 1024;

/**
 * All coset leaders of a small code, `size × d` integers in point coordinates (row per code).
 * The GPU product kernels upload this (or the pair table below) instead of decoding on the fly.
 */
export function leaderTable(code: VoronoiCode): Int32Array {
  check(code instanceof VoronoiCode, () => `leaderTable needs a VoronoiCode (new VoronoiCode(D3, 6)), got ${describeValue(code)}`);
  check(code.size <= MAX_TABLE_CODES, () => `leader table needs at most ${MAX_TABLE_CODES} codes, this code has ${code.size}`);
  const d = code.lattice.dimension;
  const table = new Int32Array(code.size * d);
  for (let c = 0; c < code.size; c++) code.decode(c, table.subarray(c * d, (c + 1) * d));
  return table;
}

/**
 * The inner-product table `T[c₁·size + c₂] = ⟨leader(c₁), leader(c₂)⟩` in point coordinates: decoding a
 * pair of blocks is one table read. For D3, q = 6 the entries lie in [−30, 36], so the GPU stores them
 * as int8 (46,656 bytes, or the 23,436-byte upper triangle since T is symmetric).
 */
export function innerProductTable(code: VoronoiCode): Int32Array {
  check(code instanceof VoronoiCode, () => `innerProductTable needs a VoronoiCode (new VoronoiCode(D3, 6)), got ${describeValue(code)}`);
  const leaders = leaderTable(code);
  const d = code.lattice.dimension;
  const size = code.size;
  const table = new Int32Array(size * size);
  for (let a = 0; a < size; a++) {
    for (let b = a; b < size; b++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += (leaders[a * d + i] as number) * (leaders[b * d + i] as number);
      table[a * size + b] = dot;
      table[b * size + a] = dot;
    }
  }
  return table;
}
