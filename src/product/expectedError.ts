import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { check } from '../errors.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import type { QuantizedMatrix, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { checkCompatible, isSameQuantization } from './operands.js';

/**
 * The predicted mean squared error E‖ÂᵀB̂ − AᵀB‖²_F of `matmulAT(qa, qb)`, from the stored column norms
 * and the schemes only — the universal quantizer's guarantee. For independently quantized A and B,
 *
 *     E‖ÂᵀB̂ − AᵀB‖²_F = (D_A + D_B + D_A·D_B) · ‖A‖²_F · ‖B‖²_F / N,
 *
 * exactly, for every A and B (N = rotated length, D = β²σ²(Λ) of each scheme; ‖·‖ of the centred
 * columns when centred). For the Gram matrix ÂᵀÂ of one quantized matrix (pass it twice) the diagonal
 * is exact and E = (2D + D²)·(‖A‖⁴_F − Σ_i ‖a_i‖⁴) / N. The expectation is over the dither (the
 * nonces); one product fluctuates around it, by a relative std of about √(2/(a·b)) for a × b entries
 * whose columns are in general position, and at most about 1.15·√((1/a_eff + 1/b_eff)/2) with
 * a_eff = ‖A‖⁴_F / Σ‖a_i‖⁴, reached when all columns are parallel (README, "The guarantee").
 *
 * Conditions: both operands universal, compatible as `matmulAT` requires them (rows, rotation seed,
 * centring), with every rotated coordinate kept (no time-sharing), and either one quantization or
 * independent nonces (two different matrices quantized with one nonce are refused, as by `matmulAT`);
 * otherwise a LatticeMatmulError says which condition fails.
 *
 * @example
 * const qa = quantize(a, { scheme: 'e8-q16', seed: 7 }), qb = quantize(b, { scheme: 'e8-q16', seed: 7 });
 * const predicted = expectedProductError(qa, qb);            // ≈ 0.009 · ‖A‖²‖B‖²/n
 * const measured = squaredError(matmulAT(qa, qb), exact);   // fluctuates around it
 */
export function expectedProductError(qa: QuantizedMatrix, qb: QuantizedMatrix): number {
  const a = universalOperand(qa, 'A');
  const b = universalOperand(qb, 'B');
  checkCompatible(a, b);
  const gram = isSameQuantization(a, b); // refuses two different matrices with one nonce, as matmulAT does
  const da = distortion(a);
  const db = distortion(b);
  const perPair = da + db + da * db;
  const sa = squaredNorms(a);
  const sb = squaredNorms(b);
  if (gram !== null) {
    // One quantization (passed twice, or quantized twice with one nonce): the Gram case.
    let sum = 0;
    let fourth = 0;
    for (const s of sa) {
      sum += s;
      fourth += s * s;
    }
    return (perPair * (sum * sum - fourth)) / a.length;
  }
  return (perPair * total(sa) * total(sb)) / a.length;
}

/**
 * The expected normalized error n·E‖ÂᵀB̂ − AᵀB‖²_F / (‖A‖²_F‖B‖²_F) of two universal matrices whose
 * columns have norms `‖A‖`, `‖B‖` (no centring): (D_A + D_B + D_A·D_B)·n/N, the figure `productNmse`
 * estimates. For Gaussian-like data of the same scheme on both sides this is 2D + D² times n/N.
 *
 * @example
 * expectedNmse(qa, qb); // 0.00898 for e8-q16 at a power-of-two n
 */
export function expectedNmse(qa: QuantizedMatrix, qb: QuantizedMatrix): number {
  const a = universalOperand(qa, 'A');
  const b = universalOperand(qb, 'B');
  // The figure describes matmulAT(qa, qb): refuse the pairs it refuses.
  checkCompatible(a, b);
  isSameQuantization(a, b);
  const da = distortion(a);
  const db = distortion(b);
  return ((da + db + da * db) * a.rows) / a.length;
}

function universalOperand(q: QuantizedMatrix, name: string): UniversalLatticeMatrix {
  checkQuantizedMatrix(q, name);
  check(
    typeof q === 'object' && q !== null && q.kind === 'lattice' && q.mode === 'universal',
    () => `${name} must be quantized with a universal lattice scheme for the error guarantee (deterministic and scalar schemes have none)`,
  );
  check(q.keptLength === q.length, () => `${name} keeps ${q.keptLength} of ${q.length} rotated coordinates (time-sharing): the guarantee covers keepFraction = 1 only`);
  return q;
}

function distortion(q: UniversalLatticeMatrix): number {
  return universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta).distortion;
}

function squaredNorms(q: UniversalLatticeMatrix): Float64Array {
  return Float64Array.from(q.norms, (v) => v * v);
}

function total(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum;
}
