import { matmulAT, quantize, type Matrix, type QuantizeOptions } from '../src/index.js';
import type { EngineOutput, StageListener } from './engineOutput.js';

/**
 * The CPU reference path: `quantize` both operands (each with its own options: universal schemes give
 * A and B different nonces), then `matmulAT`. Synchronous; it runs in the worker, where cancelling
 * means terminating the worker.
 */
export function runOnCpu(a: Matrix, b: Matrix, options: readonly [QuantizeOptions, QuantizeOptions], onStage: StageListener): EngineOutput {
  onStage('quantizeA');
  const t0 = performance.now();
  const qa = quantize(a, options[0]);
  onStage('quantizeB');
  const t1 = performance.now();
  const qb = quantize(b, options[1]);
  onStage('product');
  const t2 = performance.now();
  const product = matmulAT(qa, qb);
  const t3 = performance.now();
  return {
    qa,
    qb,
    product,
    bitsStored: (qa.bitsStored + qb.bitsStored) / 2,
    bitsEntropy: (qa.bitsEntropy + qb.bitsEntropy) / 2,
    timings: { quantizeA: t1 - t0, quantizeB: t2 - t1, product: t3 - t2 },
  };
}
