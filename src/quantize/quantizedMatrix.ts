import type { DeterministicLatticeScheme, IntScheme, Nvfp4Scheme, Scheme, SchemeName, SCHEMES, UniversalLatticeScheme } from './schemes.js';
import type { DitherKeyCount } from './universalCode.js';

/** What every quantized matrix records besides its codes. */
interface QuantizedBase {
  /** n: entries per column of the original matrix. */
  readonly rows: number;
  readonly cols: number;
  /**
   * N, entries per rotated column: `rotationLength(n)`, or the padded one-stage length of a time-shared
   * matrix or of one from a container of format version 2 or earlier (`isRotationLength`); n without rotation.
   */
  readonly length: number;
  /** Rotated coordinates actually quantized (time-sharing keeps the first `keptLength`; = length by default). */
  readonly keptLength: number;
  /** Seed of the shared rotation; two matrices multiply only if they share it. */
  readonly seed: number;
  readonly rotate: boolean;
  /** Column means, when the matrix was zero-centred. */
  readonly means: Float32Array | null;
  /** Bits per original entry of everything kept: codes, escapes or scale indices, scales, norms, means. */
  readonly bitsStored: number;
  /**
   * Bits per entry with the variable parts (escape symbols, scale indices) counted by their empirical
   * entropy and codes at log2(q^d) (the seed paper's accounting).
   */
  readonly bitsEntropy: number;
}

/**
 * A matrix quantized with the universal (dithered) nested-lattice code (the default lattice mode).
 *
 * Column j's rotated, normalized coordinates (norm √length) are blocks b = 0 … blocksPerColumn−1 of d
 * entries. Block (j, b) has the code `codes[j·blocksPerColumn + b]` (+ 2^32 · `codesHigh[…]` when the
 * code is wider than 32 bits, E8 with q > 16) and the escape symbol
 * `escapes[j·blocksPerColumn + b]`: 0 (none), 1…15 (rank of μ among the roots), or LONG_ESCAPE (μ in
 * the next entry of `longEscapes`, in block order: an index into the extended table, or HUGE_ESCAPE
 * with μ in the next d entries of `hugeEscapes`). Its decoded value, in rotated unnormalized units, is
 *
 *     (norms[j] / √length) · β · (λ / pointScale − Z / DITHER_GRID),   λ = leader(code) + q·μ,
 *
 * with Z the block's dither, regenerated from (nonce, j, b) (src/quantize/universalCode.ts).
 */
export interface UniversalLatticeMatrix extends QuantizedBase {
  readonly kind: 'lattice';
  readonly mode: 'universal';
  readonly scheme: UniversalLatticeScheme;
  /** The 64-bit dither nonce, drawn per quantization: two quantizations of one matrix have independent errors. */
  readonly nonce: bigint;
  /**
   * The column keys E8's dither hashes (`DitherKeyCount`, src/quantize/universalCode.ts): 2, a key per hash
   * word, for everything this library quantizes; 1, both words from one key, for the E8 matrices of
   * containers of format version 1 (their dither is a function of 32 bits, so its mean error is
   * ≈ 10⁻⁵ lattice units instead of 0). D3 reads one hash word, so for D3 it changes nothing.
   */
  readonly ditherKeys: DitherKeyCount;
  /** Per column ν: the norm of the (centred) column, by which it was normalized; 0 for a zero column. */
  readonly norms: Float32Array;
  readonly blocksPerColumn: number;
  /** The low 32 bits of each block's code Σ u_i q^i. */
  readonly codes: Uint32Array;
  /** The bits above 32 of each block's code, or null when codes fit 32 bits (`universalCodec(…).codeBits`). */
  readonly codesHigh: Uint16Array | null;
  readonly escapes: Uint8Array;
  readonly longEscapes: Uint16Array;
  readonly hugeEscapes: Int32Array;
}

/**
 * A matrix quantized with the deterministic nested-lattice code (opt-in, not universal).
 *
 * Column j's rotated coordinates are blocks b = 0 … blocksPerColumn−1 of d entries; block (j, b) is
 * `codes[j·blocksPerColumn + b]` with scale index `scaleIndices[…]`. Its decoded value, in rotated
 * and *unnormalized* units, is
 *
 *     (norms[j] / √length) · gains[j] · unit · multiples[scaleIndex] · leader(code) / pointScale.
 */
export interface DeterministicLatticeMatrix extends QuantizedBase {
  readonly kind: 'lattice';
  readonly mode: 'deterministic';
  readonly scheme: DeterministicLatticeScheme;
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

/** A matrix quantized with a nested-lattice scheme, universal or deterministic. */
export type LatticeQuantizedMatrix = UniversalLatticeMatrix | DeterministicLatticeMatrix;

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

/**
 * What `quantize` returns: a lattice-quantized matrix or a scalar baseline's ({@link QuantizedMatrixFor}
 * narrows it by scheme).
 */
export type QuantizedMatrix = LatticeQuantizedMatrix | ScalarQuantizedMatrix;

/** The quantized matrix of a scheme object's type (a union of schemes gives the union of their matrices). */
type MatrixOfScheme<T> = T extends { readonly mode: 'universal' }
  ? UniversalLatticeMatrix
  : T extends { readonly mode: 'deterministic' }
    ? DeterministicLatticeMatrix
    : T extends { readonly kind: 'int' } | { readonly kind: 'nvfp4' }
      ? ScalarQuantizedMatrix
      : QuantizedMatrix;

/**
 * What `quantize` returns for the scheme `S` (a preset name or a scheme object): a universal lattice
 * scheme gives a `UniversalLatticeMatrix`, a deterministic one a `DeterministicLatticeMatrix`, a scalar
 * baseline a `ScalarQuantizedMatrix`; a scheme known only as `SchemeName` or `Scheme` gives their union.
 *
 * @example
 * const q = quantize(a, { scheme: 'e8-4bit' }); // UniversalLatticeMatrix: engine.upload(q) type-checks
 * type Q = QuantizedMatrixFor<'int4-g32'>; // ScalarQuantizedMatrix
 */
export type QuantizedMatrixFor<S extends SchemeName | Scheme> = MatrixOfScheme<S extends SchemeName ? (typeof SCHEMES)[S] : S>;
