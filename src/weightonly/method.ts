import { checkOneOf } from '../errors.js';

/**
 * The weight-only quantizers:
 * - `watersic`: waterfilling steps α_i = c/L_ii, LDLQ error feedback, per-column γ refit;
 * - `gptq`: the same error feedback (GPTQ = LDLQ) with one step Δ for every column, no refit;
 * - `rtn`: plain round-to-nearest of W with one step Δ (Σ_X only enters the distortion).
 */
export type WeightOnlyMethod = 'watersic' | 'gptq' | 'rtn';

/** Every method, in a fixed order (also the numeric id used by the serialized format). */
export const WEIGHT_ONLY_METHODS: readonly WeightOnlyMethod[] = ['rtn', 'gptq', 'watersic'];

/** Checks that `method` names a weight-only quantizer. */
export function checkMethod(method: unknown): asserts method is WeightOnlyMethod {
  checkOneOf(method, WEIGHT_ONLY_METHODS, 'method');
}
