import type { ProductKernel } from '../../src/gpu/engine.js';
import { measuredOk, type BenchRow } from './common.js';

/*
 * Issue 10's speed targets, read from the rows of one run (so that a run on a real GPU says itself
 * which targets it meets, with the figures that decide it, and the README's table comes from the same
 * rows). A target is judged only from rows at its own shape: a run that did not measure that shape
 * (the --quick run on lavapipe) gets "not measured at the target shape" and the nearest figure it has,
 * never a verdict.
 */

/** The GEMV shape (out × in, as rows name it) of the D3 and E8 targets. */
export const TARGET_GEMV_SHAPE = '8192 × 28672';
/** The product shape (n × a × b) of the product target. */
export const TARGET_PRODUCT_SHAPE = '4096 × 4096 × 4096';

/** One target and what the run says about it. */
export interface TargetResult {
  readonly target: string;
  /** The deciding figure, with the kernel and shape it comes from (or why there is none). */
  readonly measured: string;
  /** true / false at the target shape; null when the run did not measure it there. */
  readonly met: boolean | null;
}

/** The decode-step target: the one a measured "yes" can still be undone by a step the run did not measure. */
const ALLOCATION_TARGET = 'a recorded decode step of 200 GEMVs or more creates no GPU object per call';

/** The engine's product paths that decode both operands to f32 and then run the f32 matmul. */
const DECODING_PRODUCT_KERNELS: readonly ProductKernel[] = ['universal-decode', 'decode-f32'];

/** A product kernel that multiplies from the codes (not a decoding path); null: not an engine product row. */
const fromCodes = (kernel: ProductKernel | null): boolean => kernel !== null && !DECODING_PRODUCT_KERNELS.includes(kernel);

const percent = (fraction: number): string => `${(100 * fraction).toFixed(1)} %`;
const times = (ratio: number): string => `${ratio.toFixed(2)}×`;

const isD3Gemv = (r: BenchRow): boolean => r.family === 'gemv' && r.spirvKey !== null && /:d3-/.test(r.spirvKey);
// The E8 GEMVs the target judges: the schemes' own kernels and the residue GEMV (5 bits per entry read).
// The point GEMV reads its weights as int8 (8 bits, twice the codes): a share of the bandwidth
// over twice the bytes is no E8 code read at speed, so it is left to the GEMV table.
const isE8Gemv = (r: BenchRow): boolean => r.family === 'gemv' && r.spirvKey !== null && /:e8-/.test(r.spirvKey) && !r.spirvKey.startsWith('e8-point-i8:');

/**
 * The best row among `rows` by `value` (larger is better), at `shape` when there is one there, else at
 * any shape (then `atTarget` is false).
 */
function best(rows: readonly BenchRow[], shape: string, value: (r: BenchRow) => number | null): { row: BenchRow; value: number; atTarget: boolean } | null {
  const scored = rows.flatMap((row) => {
    const v = measuredOk(row) ? value(row) : null;
    return v === null || !Number.isFinite(v) ? [] : [{ row, value: v }];
  });
  const at = scored.filter((s) => s.row.shape === shape);
  const pool = at.length > 0 ? at : scored;
  if (pool.length === 0) return null;
  const top = pool.reduce((a, b) => (b.value > a.value ? b : a));
  return { ...top, atTarget: at.length > 0 };
}

/** A result from the best row: met when at the target shape and ≥ the threshold. */
function judged(target: string, found: ReturnType<typeof best>, threshold: number, show: (v: number) => string, what: string): TargetResult {
  if (found === null) return { target, measured: `no ${what} row measured`, met: null };
  const figure = `${show(found.value)}: ${found.row.kernel} at ${found.row.shape}`;
  if (!found.atTarget) return { target, measured: `no correct row measured at the target shape; best here ${figure}`, met: null };
  return { target, measured: figure, met: found.value >= threshold };
}

/**
 * `result` with the best kernel-alone figure added (the int8-input GEMVs timed on x̂ made once
 * beforehand: BenchRow.xPrepared), which tells how much of a call the rotation and rounding of x take.
 * Never a verdict: a call that rotates x itself is what the targets judge.
 */
function withKernelAlone(result: TargetResult, found: ReturnType<typeof best>, show: (v: number) => string): TargetResult {
  if (found === null || !found.atTarget || result.met === null) return result;
  return { ...result, measured: `${result.measured} (the kernel alone, x̂ made once beforehand: ${show(found.value)}, ${found.row.kernel})` };
}

/**
 * Rows of the prototype the benchmark times beside the schemes' kernels (a format not built, so never
 * a verdict: the group-scaled D3 prototype, `group-scaled-i8` keys), named beside the D3 verdicts at
 * the target shape.
 */
const isPrototype = (prefix: string) => (r: BenchRow): boolean => r.family === 'gemv' && r.spirvKey !== null && r.spirvKey.startsWith(`${prefix}:`);

function withPrototype(result: TargetResult, found: ReturnType<typeof best>, show: (v: number) => string): TargetResult {
  if (found === null || !found.atTarget) return result;
  return { ...result, measured: `${result.measured} (a prototype, not a scheme's kernel: ${show(found.value)}, ${found.row.kernel})` };
}

/** The one-token int4 g32 GEMV rows, whole calls: f32 x (`int4`) and x rounded to int8 by the call (`int4-i8:<dot path>`). */
const isInt4Gemv = (r: BenchRow): boolean => r.family === 'gemv' && !r.xPrepared && (r.spirvKey === 'int4' || (r.spirvKey ?? '').startsWith('int4-i8:'));

/**
 * The fastest int4 GEMV's ms at the row's shape over the row's ms (> 1: faster than the int4 kernel):
 * the target asks for an int4 kernel as good as llama.cpp's, whose WebGPU mat-vec rounds x to 8 bits
 * for Q4_0, so the yardstick is the faster of the two forms.
 */
function vsInt4(rows: readonly BenchRow[], r: BenchRow): number | null {
  const times = rows.filter((o) => isInt4Gemv(o) && o.shape === r.shape && measuredOk(o) && o.ms !== null).map((o) => o.ms as number);
  return times.length > 0 && r.ms !== null ? Math.min(...times) / r.ms : null;
}

/**
 * Issue 10's targets judged from a run's rows (after `addRatios`): D3 GEMV ≥ 70 % of the streaming
 * read, ≥ 3.5× the f16 GEMV and ≥ 1.2× the int4 kernel at 8192 × 28672 (the best D3 kernel of each,
 * whole calls; the best kernel-alone figure beside it);
 * E8 GEMV ≥ 60 %; a decode step of 200 layers that creates no GPU object per call; a product at ≥ 1×
 * the f32 tiled matmul at 4096³.
 */
export function issueTargets(rows: readonly BenchRow[], run: IssueTargetRun = { skipped: [], complete: true, softwareAdapter: false }): TargetResult[] {
  // The speed targets are set for a GPU: a CPU adapter's times judge none of them (a full-shape run on
  // lavapipe had the E8 residue GEMV at 76 % of its streaming read, a "yes" that says nothing of a
  // GPU). Whether a step allocates does not depend on the adapter, so that target is still judged.
  const results = judgedTargets(rows).map((t) => (run.softwareAdapter && t.met !== null && t.target !== ALLOCATION_TARGET ? withoutVerdict(t, "a CPU adapter's speed says nothing of a GPU's") : t));
  // Rows a run did not measure (skipped past --deadline-s, or not reached when the file was written)
  // could turn a "no" into a "yes", or a step that allocates could be among them: no verdict then,
  // unless every skipped item is one that cannot decide the target (a GEMV at another shape, a product
  // for a GEMV target, …: `couldDecide`). A step measured allocating fails the allocation target
  // whatever else ran, so only its "yes" can be taken back.
  return results.map((t) => {
    if (t.met !== (t.target === ALLOCATION_TARGET)) return t;
    if (!run.complete) return withoutVerdict(t, 'the run had not finished when this was written');
    const deciding = run.skipped.filter((item) => couldDecide(t.target, item));
    return deciding.length > 0 ? withoutVerdict(t, `the run skipped ${deciding.length} item(s) that could decide it past --deadline-s`) : t;
  });
}

/**
 * An item a run did not measure (past --deadline-s), with what it would have measured: its `name` is
 * what the report lists; the rest says which targets it could decide (`couldDecide`).
 */
export type SkippedItem =
  /** A GEMV row at `shape` (`${out} × ${in}`) with `rightHandSides` columns of x (1: one token). */
  | { readonly name: string; readonly family: 'gemv'; readonly shape: string; readonly rightHandSides: number }
  /** A recorded decode step or model step: either could allocate per call. */
  | { readonly name: string; readonly family: 'step' }
  /** A product row (an engine product, or the f32 matmul that is the product target's yardstick). */
  | { readonly name: string; readonly family: 'product' }
  /** Anything else (host rows, rotation rows, instruction counts): decides no target. */
  | { readonly name: string; readonly family: 'other' };

/** A GEMV row of `kernel` at `shape` (`${out} × ${in}`) with `rightHandSides` columns of x, as skipped. */
export function skippedGemv(kernel: string, shape: string, rightHandSides: number): SkippedItem {
  return { name: `GEMV ${kernel} at ${shape}`, family: 'gemv', shape, rightHandSides };
}

/** Any other row, as skipped. */
export function skippedItem(family: 'step' | 'product' | 'other', name: string): SkippedItem {
  return { name, family };
}

/**
 * Whether a skipped item could change `target`'s verdict: the GEMV targets are judged at
 * TARGET_GEMV_SHAPE from one-token GEMVs only, the allocation target from the steps, the product
 * target from the products.
 */
function couldDecide(target: string, item: SkippedItem): boolean {
  if (target === ALLOCATION_TARGET) return item.family === 'step';
  if (target.includes(TARGET_PRODUCT_SHAPE)) return item.family === 'product';
  return item.family === 'gemv' && item.shape === TARGET_GEMV_SHAPE && item.rightHandSides === 1;
}

/** `target` with its verdict taken back, saying why; its figure stays. */
function withoutVerdict(target: TargetResult, why: string): TargetResult {
  return { ...target, met: null, measured: `${target.measured} (no verdict: ${why})` };
}

/** What {@link issueTargets} needs to know of the run besides its rows. */
export interface IssueTargetRun {
  /** What --deadline-s left unmeasured. */
  readonly skipped: readonly SkippedItem[];
  /** False while the run is in progress. */
  readonly complete: boolean;
  /** A CPU stand-in for a GPU (lavapipe, SwiftShader: `isSoftwareAdapter`): no speed verdicts. */
  readonly softwareAdapter: boolean;
}

function judgedTargets(rows: readonly BenchRow[]): TargetResult[] {
  // The targets judge whole calls (x rotated and rounded by the call); the kernel-alone rows are an aside.
  const d3 = rows.filter((r) => isD3Gemv(r) && !r.xPrepared);
  const d3Alone = rows.filter((r) => isD3Gemv(r) && r.xPrepared);
  // The E8 GEMVs: the schemes' f32-input kernels and the residue GEMV of int8Inputs (`e8-residue-i8` keys), not the point GEMV.
  const e8 = rows.filter((r) => isE8Gemv(r) && !r.xPrepared);
  const e8Alone = rows.filter((r) => isE8Gemv(r) && r.xPrepared);
  const d3Prototypes = rows.filter(isPrototype('group-scaled-i8'));
  const d3Target = (target: string, value: (r: BenchRow) => number | null, threshold: number, show: (v: number) => string, what: string): TargetResult =>
    withPrototype(
      withKernelAlone(judged(target, best(d3, TARGET_GEMV_SHAPE, value), threshold, show, what), best(d3Alone, TARGET_GEMV_SHAPE, value), show),
      best(d3Prototypes, TARGET_GEMV_SHAPE, value),
      show,
    );
  const results: TargetResult[] = [
    d3Target(`D3 GEMV ≥ 70 % of the streaming read at ${TARGET_GEMV_SHAPE}`, (r) => r.fractionOfStream, 0.7, percent, 'D3 GEMV'),
    d3Target(`D3 GEMV ≥ 3.5× the f16 GEMV at ${TARGET_GEMV_SHAPE}`, (r) => r.vsF16, 3.5, times, 'D3 GEMV with an f16 GEMV beside it'),
    d3Target(`D3 GEMV ≥ 1.2× the int4 g32 GEMV at ${TARGET_GEMV_SHAPE}`, (r) => vsInt4(rows, r), 1.2, times, 'D3 GEMV with an int4 GEMV beside it'),
    withKernelAlone(
      judged(`E8 GEMV ≥ 60 % of the streaming read at ${TARGET_GEMV_SHAPE}`, best(e8, TARGET_GEMV_SHAPE, (r) => r.fractionOfStream), 0.6, percent, 'E8 GEMV'),
      best(e8Alone, TARGET_GEMV_SHAPE, (r) => r.fractionOfStream),
      percent,
    ),
  ];
  // The quantized layers' steps (the f16 baseline step is not the library's GEMV).
  const steps = rows.filter((r) => r.family === 'decode-step' && r.spirvKey !== 'f16');
  const measuredSteps = steps.filter((r) => r.status === 'ok' && r.allocationsAfterFirst !== null);
  const allocating = measuredSteps.filter((r) => r.allocationsAfterFirst !== 0);
  const layers = measuredSteps.map((r) => r.callsPerSample);
  results.push({
    target: ALLOCATION_TARGET,
    measured:
      measuredSteps.length === 0
        ? 'no decode step measured'
        : allocating.length === 0
          ? `${measuredSteps.length} decode steps of ${[...new Set(layers)].join(', ')} layers: 0 objects created after the first recording`
          : `objects created after the first recording: ${allocating.map((r) => `${r.kernel} (${r.allocationsAfterFirst})`).join('; ')}`,
    // An allocating step fails it at any size; a verdict of "met" needs a step of 200 layers or more.
    met: allocating.length > 0 ? false : layers.some((n) => n !== null && n >= 200) ? true : null,
  });
  // Products from the codes: the decoding paths run the f32 matmul itself after their decode passes,
  // so they say nothing of the target.
  // (A row without the field, from a results file older than it, is not taken: `?? null`.)
  const products = rows.filter((r) => r.family === 'product' && fromCodes(r.productKernel ?? null));
  results.push(judged(`a product ≥ 1× the f32 tiled matmul's FLOP/s at ${TARGET_PRODUCT_SHAPE}`, best(products, TARGET_PRODUCT_SHAPE, (r) => r.vsF32), 1, times, 'engine product'));
  return results;
}
