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
 * const measured = productNmse(matmulAT(qa, qb), a, b);      // fluctuates around expectedNmse(qa, qb) ≈ 0.009
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
 * estimates. For Gaussian-like data of the same scheme on both sides this is 2D + D² times n/N. For one
 * quantization passed twice (the Gram matrix ÂᵀÂ, whose diagonal is exact) it is that times
 * 1 − Σ‖a_i‖⁴/‖A‖⁴_F, as `expectedProductError` counts it: 0 for one column.
 *
 * @example
 * expectedNmse(qa, qb); // 0.00898 for e8-q16 at a power-of-two n
 */
export function expectedNmse(qa: QuantizedMatrix, qb: QuantizedMatrix): number {
  const a = universalOperand(qa, 'A');
  const b = universalOperand(qb, 'B');
  // The figure describes matmulAT(qa, qb): refuse the pairs it refuses.
  checkCompatible(a, b);
  const gram = isSameQuantization(a, b);
  const da = distortion(a);
  const db = distortion(b);
  const perPair = ((da + db + da * db) * a.rows) / a.length;
  if (gram === null) return perPair;
  // One quantization twice: the diagonal is exact (expectedProductError), leaving 1 − Σ‖a_i‖⁴/‖A‖⁴ of it.
  const sa = squaredNorms(a);
  const sum = total(sa);
  let fourth = 0;
  for (const s of sa) fourth += s * s;
  return sum === 0 ? 0 : perPair * (1 - fourth / (sum * sum));
}

/**
 * The constant c of `matmulAT`'s shrink, ĉ = max(0, 1 − c/‖Ĉ‖²_F): c = E − 2λ̄, with E =
 * `expectedProductError(qa, qb)` and λ̄ a bound on the largest eigenvalue of the error's covariance over
 * the product's entries. (1 − c/‖X‖²)X has a smaller mean squared error than X for Gaussian X whenever
 * 0 < c ≤ 2(tr Σ − 2λ_max(Σ)) (James–Stein); c = E alone is outside that range when the error has few
 * directions (a 1 × 1 product, a Gram matrix of 2 columns, parallel columns in a small product) and
 * gave up to 1.5·E there. With column errors δa_i of covariance σ²_i·I (σ²_i = D_A‖a_i‖²/N, the
 * universal code's white error), the error's variance along a unit W ∈ ℝ^(a×b) is at most
 * max σ²_a·‖B‖²_F + max σ²_b·‖A‖²_F + N·max σ²_a·max σ²_b (the two linear terms and the product of
 * errors are uncorrelated); for a Gram matrix (diagonal left out, W off-diagonal)
 * 4·max σ²_a·‖A‖²_F + 2N·max σ⁴_a. Zero or less: no shrink. For b × b Gaussian columns of equal norms
 * 2λ̄/E = 2(2D·b + D²)/((2D + D²)·b²), so c ≈ E·(1 − 2/b).
 */
export function shrinkConstant(qa: QuantizedMatrix, qb: QuantizedMatrix): number {
  const expected = expectedProductError(qa, qb); // refuses what the guarantee does not cover
  const a = qa as UniversalLatticeMatrix;
  const b = qb as UniversalLatticeMatrix;
  const gram = isSameQuantization(a, b) !== null;
  const sa = squaredNorms(a);
  const sb = squaredNorms(b);
  const n = a.length;
  const largestA = (distortion(a) * largest(sa)) / n;
  const largestB = (distortion(b) * largest(sb)) / n;
  const bound = gram ? 4 * largestA * total(sa) + 2 * n * largestA * largestA : largestA * total(sb) + largestB * total(sa) + n * largestA * largestB;
  return expected - 2 * bound;
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

/** The largest value, 0 for none: a loop, since Math.max(...values) overflows the stack past ≈ 125 000 values (a vocabulary's columns). */
function largest(values: Float64Array): number {
  let most = 0;
  for (const v of values) most = Math.max(most, v);
  return most;
}

function squaredNorms(q: UniversalLatticeMatrix): Float64Array {
  return Float64Array.from(q.norms, (v) => v * v);
}

function total(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum;
}
