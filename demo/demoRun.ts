import { gamma, gammaInverse } from '../src/index.js';
import type { RunResult } from './runProtocol.js';
import { GAIN_LABELS, takesGain } from './schemeStyle.js';

/** A finished run with what the page derives from it (what `window.__latticeDemo.lastResult` holds). */
export interface DemoRun extends RunResult {
  /** 1, 2, … in the order of this page session. */
  readonly index: number;
  /** E.g. "e8-q16", "d3-q6-deterministic (gain: MMSE)" (the Gain picker's words) or "int4-g32". */
  readonly label: string;
  /** Γ at the stored bits: the least error any scheme could reach with as many bits. */
  readonly gammaAtBits: number;
  /** bits stored − Γ⁻¹(NMSE); null when the NMSE is outside Γ's range (0, 1]. */
  readonly rateLoss: number | null;
  /** Measured NMSE / predicted NMSE for universal schemes (≈ 1, within the product's fluctuation), else null. */
  readonly measuredOverPredicted: number | null;
  /** Sum of the stage times, in ms. */
  readonly totalMs: number;
}

export function describeRun(result: RunResult, index: number): DemoRun {
  const { scheme, gain } = result.request;
  const t = result.timings;
  return {
    ...result,
    index,
    label: takesGain(scheme) ? `${scheme} (gain: ${GAIN_LABELS[gain]})` : scheme,
    gammaAtBits: gamma(result.bitsStored),
    rateLoss: result.nmse > 0 && result.nmse <= 1 ? result.bitsStored - gammaInverse(result.nmse) : null,
    measuredOverPredicted: result.predictedNmse !== null && result.predictedNmse > 0 ? result.nmse / result.predictedNmse : null,
    totalMs: t.generate + t.quantizeA + t.quantizeB + t.product + t.measure + t.cpuCheck,
  };
}
