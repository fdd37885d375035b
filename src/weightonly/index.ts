/**
 * Weight-only quantization (WaterSIC and GPTQ, [2]): quantize W knowing only the second moment Σ_X of
 * the layer's inputs, minimizing tr((W − Ŵ)·Σ_X·(W − Ŵ)ᵀ). WaterSIC (waterfilling steps + LDLQ error
 * feedback + γ refit, optional diagonal rescalers), GPTQ/LDLQ (one step), plain round-to-nearest;
 * each optionally in a random basis. W uses this library's layout: rows = n input features, one
 * column per output (PyTorch's row-major (out, in) weight as is).
 *
 * @example
 * import { covarianceFromActivations, quantizeWeights, weightOnlyLimit, gapBits } from 'lattice-matmul';
 * const sigmaX = covarianceFromActivations(calibration);          // n × N activations → n × n
 * const q = quantizeWeights(w, sigmaX, { method: 'watersic', rate: 4 });
 * const gap = gapBits(q.distortion(w, sigmaX), weightOnlyLimit(w, sigmaX, q.rate)); // ≈ 0.25–0.3 bit at n = 1024 (README's table; more at smaller n)
 * const bytes = q.serialize();                                      // bit-packed codes + f32 steps + CRC-32
 */
export { covarianceFromActivations } from './covariance.js';
export { weightedDistortion } from './distortion.js';
export { logDetCovariance, meanSquaredEntry, weightOnlyLimit } from './limit.js';
export type { WeightOnlyMethod } from './method.js';
export type { RotationKind as WeightRotationKind } from './basis.js';
export {
  MAX_COLUMN_MAGNITUDE,
  MAX_ROW_SCALE,
  WEIGHT_ONLY_FORMAT_VERSION,
  WeightOnlyQuantized,
  type WeightOnlyAnalysis,
  type WeightOnlyQuantizedFields,
  type WeightOnlyPackedFields,
} from './quantized.js';
export type { PackedWeightCodes } from './packedCodes.js';
export { DEFAULT_DAMPING, quantizeWeights, type QuantizeWeightsOptions, type QuantizeWeightsOptionsWithoutSigma, type QuantizeWeightsOptionsFor } from './quantizeWeights.js';
export {
  amGmBits,
  gapBits,
  predictedGapBits,
  reverseWaterfillingDistortion,
  SCALAR_HIGH_RATE_GAP_BITS,
  weightOnlyLimitPerEntry,
  type PredictionTerms,
} from './theory.js';
