import type { IntScheme, LatticeScheme, Nvfp4Scheme } from './schemes.js';

/** What every quantized matrix records besides its codes. */
interface QuantizedBase {
  /** n: entries per column of the original matrix. */
  readonly rows: number;
  readonly cols: number;
  /** N = rotationLength(n) (or n without rotation): entries per rotated column. */
  readonly length: number;
  /** Rotated coordinates actually quantized (time-sharing keeps the first `keptLength`; = length by default). */
  readonly keptLength: number;
  /** Seed of the shared rotation; two matrices multiply only if they share it. */
  readonly seed: number;
  readonly rotate: boolean;
  /** Column means, when the matrix was zero-centred. */
  readonly means: Float32Array | null;
  /** Bits per original entry of everything kept: codes, scale indices, scales, norms, means. */
  readonly bitsStored: number;
  /** Bits per entry with the variable part (the scale index T) counted by its empirical entropy. */
  readonly bitsEntropy: number;
}

/**
 * A matrix quantized with a nested-lattice (Voronoi) code.
 *
 * Column j's rotated coordinates are blocks b = 0 … blocksPerColumn−1 of d entries; block (j, b) is
 * `codes[j·blocksPerColumn + b]` with scale index `scaleIndices[…]`. Its decoded value, in rotated
 * and *unnormalized* units, is
 *
 *     (norms[j] / √length) · gains[j] · unit · multiples[scaleIndex] · leader(code) / pointScale.
 */
export interface LatticeQuantizedMatrix extends QuantizedBase {
  readonly kind: 'lattice';
  readonly scheme: LatticeScheme;
  /** Per column ν: the norm the column was scaled by (0 for an all-zero column). */
  readonly norms: Float32Array;
  /** Per column gain γ (QuantizeOptions.gain), or null for gain 'none' (γ = 1). */
  readonly gains: Float32Array | null;
  /** fround(β₀ / 16): the fixed-point unit of scaleGrid.ts. */
  readonly unit: number;
  /** Integer scale multiples k_j; scale j is unit · k_j. */
  readonly multiples: Int32Array;
  readonly blocksPerColumn: number;
  readonly codes: Uint32Array;
  readonly scaleIndices: Uint8Array;
  /** Blocks that overloaded at every scale and were shrunk (diagnostic; 0 for well-scaled data). */
  readonly clippedBlocks: number;
}

/**
 * A matrix quantized with a scalar baseline (absmax INT or NVFP4) in the rotated domain. Codes are
 * one per rotated entry (`codes[j·length + i]`), scales one per group of a column.
 */
export interface ScalarQuantizedMatrix extends QuantizedBase {
  readonly kind: 'scalar';
  readonly scheme: IntScheme | Nvfp4Scheme;
  readonly codes: Uint8Array;
  /** INT: the group scales (float values); NVFP4: E4M3 bits of the block scales. */
  readonly scales: Float32Array | Uint8Array;
  /** NVFP4's fp32 tensor scale (1 for INT schemes). */
  readonly tensorScale: number;
  readonly groupsPerColumn: number;
}

export type QuantizedMatrix = LatticeQuantizedMatrix | ScalarQuantizedMatrix;
