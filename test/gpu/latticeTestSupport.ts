import { check } from '../../src/errors.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { schemeLattice } from '../../src/quantize/quantize.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import type { Matrix } from '../../src/matrix.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { GpuLatticeQuantized, GpuLatticeQuantizedMatrix } from '../../src/gpu/gpuQuantize.js';
import type { GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';

/*
 * Test support for the decoding kernels (table product, E8 product, GEMV, dequantize): the tolerance
 * helper the product tests share and inputs that reach every code. Matrices go to the GPU with
 * `uploadLatticeMatrix` (src/gpu/gpuQuantize.ts). The table, E8 and GEMV kernels tested with these
 * helpers decode the deterministic code (the universal one has its own kernels).
 */

/** The deterministic lattice matrix inside a QuantizedMatrix (fails the test for any other kind). */
export function asDeterministic(q: QuantizedMatrix): DeterministicLatticeMatrix {
  check(q.kind === 'lattice' && q.mode === 'deterministic', () => `expected a deterministic lattice matrix, got ${q.kind === 'lattice' ? `a ${q.mode}` : 'a scalar'} one`);
  return q;
}

/** The universal lattice matrix inside a QuantizedMatrix (fails the test for any other kind). */
export function asUniversal(q: QuantizedMatrix): UniversalLatticeMatrix {
  check(q.kind === 'lattice' && q.mode === 'universal', () => `expected a universal lattice matrix, got ${q.kind === 'lattice' ? `a ${q.mode}` : 'a scalar'} one`);
  return q;
}

/** A deterministic GPU matrix from `gpuQuantizeLattice` / `GpuEngine.quantize` (fails the test otherwise). */
export function asDeterministicGpu(q: GpuLatticeQuantized): GpuLatticeQuantizedMatrix {
  check(q.mode === 'deterministic', 'expected a deterministic GPU lattice matrix, got a universal one');
  return q;
}

/** A universal GPU matrix from `gpuQuantizeLattice` / `GpuEngine.quantize` (fails the test otherwise). */
export function asUniversalGpu(q: GpuLatticeQuantized): GpuUniversalQuantizedMatrix {
  check(q.mode === 'universal', 'expected a universal GPU lattice matrix, got a deterministic one');
  return q;
}

/** ‖column j‖₂ of m, in float64. */
export function columnNorm(m: Matrix, j: number): number {
  let sum = 0;
  for (let k = 0; k < m.rows; k++) sum += (m.data[j * m.rows + k] as number) ** 2;
  return Math.sqrt(sum);
}

/**
 * Largest |got − expected| / (relative · ‖a_i‖·‖b_j‖) over the entries of an a.cols × b.cols product
 * (≤ 1 passes), with the worst entry for the failure message. ‖a_i‖‖b_j‖ bounds |⟨a_i, b_j⟩|, and
 * the mean term n·μ_a·μ_b too (Cauchy–Schwarz), so the tolerance scales with what is summed.
 */
export function worstScaledError(
  got: Float32Array,
  expected: Float32Array,
  a: Matrix,
  b: Matrix,
  relative: number,
): { ratio: number; at: string } {
  let worst = { ratio: 0, at: 'none' };
  for (let j = 0; j < b.cols; j++) {
    const bNorm = columnNorm(b, j);
    for (let i = 0; i < a.cols; i++) {
      const k = j * a.cols + i;
      const g = got[k] as number;
      const e = expected[k] as number;
      const ratio = Math.abs(g - e) / (relative * columnNorm(a, i) * bNorm);
      if (!(ratio <= worst.ratio)) worst = { ratio, at: `C[${i}, ${j}] = ${g}, expected ${e}` };
    }
  }
  return worst;
}

/** `m` with `offset · (1 + j mod 3)` added to column j (column means ≠ 0, for centring tests). */
export function shifted(m: Matrix, offset: number): Matrix {
  return {
    rows: m.rows,
    cols: m.cols,
    data: Float32Array.from(m.data, (v, i) => v + offset * (1 + (Math.floor(i / m.rows) % 3))),
  };
}

/**
 * A copy of `q` with every code and scale index replaced by a uniformly random valid one: leaders
 * from the whole code, which data from `quantize` seldom reaches (an E8 last block's included, nonzero
 * past `keptLength`, which every decode and product drops), except that a partial last D3 block's
 * leader is 0 past `keptLength` (docs/FORMAT.md §7; `checkQuantizedMatrix` and the upload refuse
 * other codes there). The CPU reference functions accept every such code.
 */
export function withRandomCodes(q: DeterministicLatticeMatrix, seed: number): DeterministicLatticeMatrix {
  const rng = new Rng(seed);
  const code = new VoronoiCode(schemeLattice(q.scheme), q.scheme.q);
  const draw = () => (code.size === 2 ** 32 ? rng.nextU32() : rng.nextInt(code.size));
  const d = schemeLattice(q.scheme).dimension;
  const first = q.keptLength - (q.blocksPerColumn - 1) * d; // the last block's coordinates that exist
  const point = new Int32Array(d);
  // A last, partial D3 block's leader must be 0 past keptLength (docs/FORMAT.md §7): drawn again until it is.
  const lastBlockCode = (): number => {
    for (;;) {
      const c = draw();
      if (code.decode(c, point).subarray(first).every((v) => v === 0)) return c;
    }
  };
  return {
    ...q,
    codes: Uint32Array.from(q.codes, (_, i) => (q.scheme.lattice === 'D3' && first < d && i % q.blocksPerColumn === q.blocksPerColumn - 1 ? lastBlockCode() : draw())),
    scaleIndices: Uint8Array.from(q.scaleIndices, () => rng.nextInt(q.multiples.length)),
  };
}

/** Columns that are small noise plus one spike of 50: unrotated, they reach far into the escape shells (non-root escapes). */
export { spikyMatrix as spiky } from '../format/containerFuzzProperty.js';

/**
 * A Gaussian matrix with one entry of each column set to `height`: at d3-q6 unrotated, root and non-root
 * escapes side by side (spiky's small noise leaves only the non-root ones).
 */
export function spikedGaussian(rows: number, cols: number, seed: number, height: number): Matrix {
  const m = gaussianMatrix(rows, cols, seed);
  const rng = new Rng(seed + 1);
  for (let j = 0; j < cols; j++) m.data[j * rows + rng.nextInt(rows)] = height;
  return m;
}
