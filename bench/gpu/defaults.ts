import { measuredOk, type BenchRow } from './common.js';

/*
 * The library's defaults that rest on instruction counts alone (bench/README.md: the leader table's
 * copies and padding, the deterministic D3 GEMV's scale multiples, the dot path, the products' table
 * layout and path), set against the alternatives the benchmark times beside them: rows that carry
 * `alternativeTo` (BenchRow) are compared with the default's row at the same shape, so that one run on
 * a GPU says which defaults it confirms and which it contradicts.
 */

/** What the samples say. */
export type DefaultVerdict = 'default faster' | 'alternative faster' | 'no clear difference' | 'not compared';

/** One alternative against its default at one shape. */
export interface DefaultComparison {
  readonly choice: string;
  readonly shape: string;
  readonly defaultKernel: string;
  readonly alternativeKernel: string;
  readonly defaultMs: number | null;
  readonly alternativeMs: number | null;
  /** The default's ms over the alternative's (> 1: the alternative is faster); null when not compared. */
  readonly speedup: number | null;
  readonly verdict: DefaultVerdict;
  /** Why it was not compared (a row not measured, failed, or not run here); null when compared. */
  readonly note: string | null;
}

/**
 * Whether every sample of `fast` is below every sample of `slow`. For two kernels equally fast (the
 * samples exchangeable) the chance of that order is 1/C(n + m, n), so of a verdict either way
 * 2/C(n + m, n): 1 in 1716 with 7 samples each (a full run), 1 in 10 with 3 (--quick).
 */
function separated(fast: readonly number[], slow: readonly number[]): boolean {
  return fast.length > 0 && slow.length > 0 && Math.max(...fast) < Math.min(...slow);
}

/** A row's median time and samples, or why it cannot be compared. */
function timing(r: BenchRow | undefined, which: string): { readonly ms: number; readonly samplesMs: readonly number[] } | string {
  if (r === undefined) return `no ${which} row at this shape`;
  if (r.status !== 'ok') return `${which} row ${r.status}${r.note === null ? '' : `: ${r.note}`}`;
  // (measuredOk implies ms !== null; the test narrows the type.)
  if (!measuredOk(r) || r.ms === null || r.samplesMs.length === 0) return `${which} row not measured, or its check failed`;
  return { ms: r.ms, samplesMs: r.samplesMs };
}

/** Every alternative row of the run against the default's row at its shape, in the rows' order. */
export function defaultComparisons(rows: readonly BenchRow[]): DefaultComparison[] {
  return rows.flatMap((alternative): DefaultComparison[] => {
    const to = alternative.alternativeTo;
    if (to === null) return [];
    const standard = rows.find((r) => r.kernel === to.defaultKernel && r.shape === alternative.shape && r.alternativeTo === null);
    const base = { choice: to.choice, shape: alternative.shape, defaultKernel: to.defaultKernel, alternativeKernel: alternative.kernel };
    const notCompared = (note: string): DefaultComparison[] => [{ ...base, defaultMs: standard?.ms ?? null, alternativeMs: alternative.ms, speedup: null, verdict: 'not compared', note }];
    const standardTiming = timing(standard, 'default');
    if (typeof standardTiming === 'string') return notCompared(standardTiming);
    const alternativeTiming = timing(alternative, 'alternative');
    if (typeof alternativeTiming === 'string') return notCompared(alternativeTiming);
    const verdict: DefaultVerdict = separated(alternativeTiming.samplesMs, standardTiming.samplesMs)
      ? 'alternative faster'
      : separated(standardTiming.samplesMs, alternativeTiming.samplesMs)
        ? 'default faster'
        : 'no clear difference';
    return [{ ...base, defaultMs: standardTiming.ms, alternativeMs: alternativeTiming.ms, speedup: standardTiming.ms / alternativeTiming.ms, verdict, note: null }];
  });
}
