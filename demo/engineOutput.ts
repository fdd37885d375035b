import type { Matrix, QuantizedMatrix } from '../src/index.js';
import type { Stage } from './runProtocol.js';

/** What the CPU and the GPU path both hand back: the two quantized operands and the product. */
export interface EngineOutput {
  readonly qa: QuantizedMatrix;
  readonly qb: QuantizedMatrix;
  readonly product: Matrix;
  /** Bits per entry, averaged over A and B (they have the same shape). */
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  /** Milliseconds of the three engine stages. */
  readonly timings: { readonly quantizeA: number; readonly quantizeB: number; readonly product: number };
}

/** Called when a stage starts, so the page can show progress. */
export type StageListener = (stage: Stage) => void;
