import { check } from '../errors.js';
import { quadFormShape, type QuadFormShape } from './quadForm.js';
import { E8_RESIDUE_QUAD_BLOCKS, e8ResidueQuads } from './e8Residues.js';
import { DITHER_GRID, latticeSpec } from './latticeSpec.js';
import type { UniversalLatticeMatrix } from './quantizedMatrix.js';
import type { UniversalLatticeScheme } from './schemes.js';
import { columnKeys, ditherWordKeys, forEachUniversalPoint, universalDitherUnit } from './universalCode.js';

/*
 * The point form: the lattice points λ of a universal E8 matrix (every E8 preset: e8-2bit … e8-5bit,
 * e8-q16) stored as int8 at upload, for a GEMV that reads them with packed 8-bit dot products and
 * regenerates only the dither (src/gpu/kernels/e8PointGemvI8.ts, the GEMV of QuantizedLinear's
 * `int8Inputs` for these weights). The scheme's own GEMV decodes each block from its code: base-q
 * digits, the nearest-point rule of q·E8, the escape's slot and μ, the dither hash — ≈ 310 instructions
 * per block of e8-q16 and ≈ 400 of e8-4bit, 77–114 per code byte (shaders/universal_gemv.wgsl), far
 * above the ≈ 7 an H200 issues per byte of bandwidth. In the point form a block is 8 bytes: the decode
 * is gone, the dither hash (two mix32) and a few packed dot products are left, ≈ 6 instructions per
 * byte read (shaders/e8_point_gemv_i8.wgsl). The price is the bytes: 8 bits per entry read instead of the stored 3–5 (2× fewer than
 * f16's 16). The codes stay what the library stores (and what `read()` returns); this is a layout made
 * at upload.
 *
 * λ fits int8 for every matrix the presets give in practice: |λ_i| ≤ 2q for a leader (the covering
 * radius of q·E8 in point coordinates) plus q·|μ_i| for an escape, and measured at most 72 (e8-5bit,
 * q = 24) on Gaussian, heavy-tailed, spike, outlier-row and low-rank data. A matrix with a block beyond
 * ±127 is refused by name, not wrapped: a coordinate far above its column's RMS, which the rotation
 * makes rare (a column that is one spike when unrotated reaches |λ| ≈ √N/β).
 *
 * Layout per block: two words of packed i8, coordinates 0, 2, 4, 6 in the first and 1, 3, 5, 7 in the
 * second (byte i of a word: coordinate 2i or 2i + 1), the order of the int8 inputs' words
 * (shaders/e8_inputs_i8.wgsl, which the E8 residue GEMV reads too). Columns are padded to whole quads
 * as the residue form's (4 blocks, one group of 32 int8 inputs: here 32 bytes, two 16-byte loads) with
 * zero points; x̂ is 0 there, so their dither adds nothing.
 */

/** The largest |λ_i| the form stores. */
export const E8_POINT_LIMIT = 127;

/** A universal E8 matrix in the point form (see the module comment). */
export interface E8PointMatrix extends QuadFormShape {
  /** The matrix's scheme (its q and β). */
  readonly scheme: UniversalLatticeScheme;
  /** quadsPerColumn = ceil(blocksPerColumn / 4) (`e8ResidueQuads`). */
  readonly blocksPerColumn: number;
  /** 8·quadsPerColumn words per column: block b's even coordinates in word 2b, odd ones in word 2b + 1. */
  readonly points: Uint32Array;
  /** Per column the keys of the block dither's two hash words (`ditherWordKeys`): 2 words per column. */
  readonly ditherKeys: Uint32Array;
  /** ν_j per column. */
  readonly norms: Float32Array;
  /** μ_j per column when the matrix is centred, else null. */
  readonly means: Float32Array | null;
  /** β/(DITHER_GRID·√N): x̂_v = ν_j·columnUnit·(λ_v·DITHER_GRID/pointScale − Z_v). */
  readonly columnUnit: number;
}

/** Why a matrix cannot take the point form by its scheme (the int8 range is checked by `e8PointForm`), or null. */
export function e8PointUnsupported(m: { readonly kind: string; readonly mode?: string; readonly scheme: { readonly lattice?: string } }): string | null {
  if (m.kind !== 'lattice' || m.mode !== 'universal' || m.scheme.lattice !== 'E8') return 'the point form is for universal E8 matrices (e8-2bit … e8-5bit, e8-q16)';
  return null;
}

/** Byte lanes of a point: coordinate 2i + t (t = 0: even, 1: odd) in byte i of word t. */
export function packPoint(point: ArrayLike<number>): { even: number; odd: number } {
  let even = 0;
  let odd = 0;
  for (let i = 0; i < 4; i++) {
    even |= ((point[2 * i] as number) & 0xff) << (8 * i);
    odd |= ((point[2 * i + 1] as number) & 0xff) << (8 * i);
  }
  return { even: even >>> 0, odd: odd >>> 0 };
}

/** The point two words hold (`packPoint`'s inverse). */
export function unpackPoint(even: number, odd: number, out: Int32Array = new Int32Array(8)): Int32Array {
  for (let i = 0; i < 4; i++) {
    out[2 * i] = ((even >>> (8 * i)) << 24) >> 24;
    out[2 * i + 1] = ((odd >>> (8 * i)) << 24) >> 24;
  }
  return out;
}

/**
 * Repacks a universal E8 matrix into the point form; refuses a matrix with a coordinate of λ beyond
 * ±127, naming the block. Each block's λ comes from `forEachUniversalPoint` (the decode of `dequantize`).
 *
 * @example
 * const p = e8PointForm(quantize(w, { scheme: 'e8-4bit' }) as UniversalLatticeMatrix);
 */
export function e8PointForm(m: UniversalLatticeMatrix): E8PointMatrix {
  const why = e8PointUnsupported(m);
  check(why === null, () => `e8PointForm: ${why ?? ''}`);
  const quads = e8ResidueQuads(m.blocksPerColumn);
  const wordsPerColumn = 2 * E8_RESIDUE_QUAD_BLOCKS * quads;
  const points = new Uint32Array(m.cols * wordsPerColumn);
  const ditherKeys = new Uint32Array(2 * m.cols);
  for (let j = 0; j < m.cols; j++) {
    const keys = ditherWordKeys(columnKeys(m.nonce, j), m.ditherKeys);
    ditherKeys[2 * j] = keys.first;
    ditherKeys[2 * j + 1] = keys.second;
  }
  forEachUniversalPoint(m, (j, b, point) => {
    for (let v = 0; v < 8; v++) {
      const value = point[v] as number;
      check(
        Math.abs(value) <= E8_POINT_LIMIT,
        () => `e8PointForm: block ${b} of column ${j} has a lattice point coordinate ${value}, beyond the int8 points' ±${E8_POINT_LIMIT} (a coordinate far above the column's RMS, as an unrotated column's spike); this matrix needs the scheme's own GEMV`,
      );
    }
    const { even, odd } = packPoint(point);
    points[j * wordsPerColumn + 2 * b] = even;
    points[j * wordsPerColumn + 2 * b + 1] = odd;
  });
  return {
    ...quadFormShape(m, quads),
    scheme: m.scheme,
    blocksPerColumn: m.blocksPerColumn,
    points,
    ditherKeys,
    norms: Float32Array.from(m.norms),
    means: m.means === null ? null : Float32Array.from(m.means),
    columnUnit: universalDitherUnit(m),
  };
}

/** DITHER_GRID / pointScale for E8: the factor of λ in a block's integer sum (λ·M/s − Z). */
// A pure IIFE: a bare call would keep latticeSpec (and the lattices) in every bundle.
export const E8_POINT_FACTOR = /*#__PURE__*/ (() => DITHER_GRID / latticeSpec('E8').pointScale)();
