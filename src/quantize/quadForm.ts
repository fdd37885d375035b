import type { DeterministicLatticeMatrix } from './quantizedMatrix.js';

/*
 * What the quad forms of a deterministic matrix share: a layout made at upload for an int8-input GEMV
 * that reads each column in whole quads (the E8 residue form, src/quantize/e8Residues.ts; the D3 quad
 * form, src/gpu/kernels/d3QuadGemvI8.ts). Besides its words, a form keeps the matrix's shape, rotation,
 * scale multiples and column side (ν_j·γ_j, μ_j), as the GPU forms it.
 */

/** The shape of every quad form (on the CPU and the GPU): the matrix's size and rotation, and its quads. */
export interface QuadFormShape {
  readonly rows: number;
  readonly cols: number;
  /** The matrix's rotation: its columns are in the rotated domain of this seed when `rotate`. */
  readonly rotate: boolean;
  readonly seed: number;
  /** Rotated length N and the coordinates kept (those past keptLength decode as 0). */
  readonly length: number;
  readonly keptLength: number;
  /** Quads per column (the last one padded with blocks that add nothing). */
  readonly quadsPerColumn: number;
}

/** The fields every quad form of a deterministic matrix has besides its words. */
export interface DeterministicQuadForm extends QuadFormShape {
  readonly blocksPerColumn: number;
  /** The scheme's integer scale multiples (at most 4). */
  readonly multiples: Int32Array;
  /** ν_j·γ_j per column (f32, as the GPU forms it). */
  readonly columnScales: Float32Array;
  /** μ_j per column when the matrix is centred (Y adds μ_j·Σx), else null. */
  readonly means: Float32Array | null;
  /** unit / (pointScale·√N): turns a block's k·ℓ into rotated entries, before ν_j·γ_j. */
  readonly columnUnit: number;
}

/** The shape of `m`'s quad form of `quadsPerColumn` quads per column. */
export function quadFormShape(m: Omit<QuadFormShape, 'quadsPerColumn'>, quadsPerColumn: number): QuadFormShape {
  return { rows: m.rows, cols: m.cols, rotate: m.rotate, seed: m.seed, length: m.length, keptLength: m.keptLength, quadsPerColumn };
}

/**
 * The shared fields of `m`'s quad form of `quadsPerColumn` quads per column: ν_j·γ_j in f32 (the
 * product the repack shaders form), the means and multiples copied, `columnUnit` as the form's kernel
 * takes it.
 *
 * @example
 * const base = deterministicQuadForm(q, Math.ceil(q.blocksPerColumn / 4), q.unit / (2 * Math.sqrt(q.length)));
 */
export function deterministicQuadForm(m: DeterministicLatticeMatrix, quadsPerColumn: number, columnUnit: number): DeterministicQuadForm {
  const columnScales = new Float32Array(m.cols);
  for (let j = 0; j < m.cols; j++) columnScales[j] = (m.norms[j] as number) * (m.gains === null ? 1 : (m.gains[j] as number));
  return {
    ...quadFormShape(m, quadsPerColumn),
    blocksPerColumn: m.blocksPerColumn,
    multiples: Int32Array.from(m.multiples),
    columnScales,
    means: m.means === null ? null : Float32Array.from(m.means),
    columnUnit,
  };
}
