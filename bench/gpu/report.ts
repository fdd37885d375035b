import { markdownTable } from '../lib/args.js';
import { measuredOk, median, onePassStep, sampleSpread, UNSTEADY_SPREAD, type BenchRow, type RowCheck } from './common.js';
import { defaultComparisons, type DefaultComparison } from './defaults.js';
import type { InstructionStats, KernelInstructionStats, ProductInstructionStats } from './instructionStats.js';
import { ISA_CLASSES, type IsaClass, type IsaLoopStats } from './rdnaIsa.js';
import { PIPE_CLASSES, type PipeClass } from './spirv.js';
import { issueTargets, type SkippedItem, type TargetResult } from './targets.js';

/*
 * The benchmark's outputs: the JSON (schema in bench/README.md) and the Markdown report (the tables
 * CI prints), both from the same rows.
 */

/** Where and how the run happened. */
export interface BenchEnvironment {
  readonly device: string;
  readonly adapter: {
    readonly vendor: string;
    readonly architecture: string;
    readonly device: string;
    readonly description: string;
    /** The adapter's subgroup sizes where it reports them (the subgroup kernels adapt to the size at run time). */
    readonly subgroupMinSize: number | null;
    readonly subgroupMaxSize: number | null;
  };
  readonly date: string;
  readonly mode: 'quick' | 'full';
  readonly timing: string;
  readonly features: Record<string, boolean>;
  readonly limits: Record<string, number>;
  readonly node: string;
  /**
   * The commit the benchmark was built from: the device kit's COMMIT file beside the bundle, else
   * `git rev-parse HEAD` in a checkout, else null (uncommitted changes are not told).
   */
  readonly commit: string | null;
  readonly command: string;
  readonly settings: Record<string, number | boolean | string>;
  /** What --deadline-s left unmeasured, in order. */
  readonly skipped: readonly SkippedItem[];
  /** False in the reports written while the run is in progress (a run killed then leaves one). */
  readonly complete: boolean;
  /** A CPU stand-in for a GPU (lavapipe, SwiftShader): its times judge no speed target. */
  readonly softwareAdapter: boolean;
}

/**
 * The bandwidth every share (`fractionOfStream`) divides by, and the row that set it: the streaming
 * read alone is not the achievable bandwidth (on the H200 of 2026-12-04 the f32 GEMV read 1.038× its
 * GB/s), so the yardstick is the best GB/s of the rows that only stream their bytes — the stream read
 * and the plain f32 and f16 GEMVs, at any shape — among those whose own check passed.
 */
export interface BandwidthYardstick {
  readonly gbps: number;
  readonly kernel: string;
  readonly shape: string;
}

/** Whether a row may set the yardstick: the stream read or a plain f32/f16 GEMV, measured and checked. */
function yardstickCandidate(r: BenchRow): boolean {
  const streams = r.family === 'stream' || (r.family === 'gemv' && (r.spirvKey === 'f32' || r.spirvKey === 'f16'));
  return streams && measuredOk(r) && r.gbps !== null && Number.isFinite(r.gbps) && r.gbps > 0;
}

/** The run's bandwidth yardstick (`BandwidthYardstick`), or null where no candidate row passed. */
export function bandwidthYardstick(rows: readonly BenchRow[]): BandwidthYardstick | null {
  let best: BandwidthYardstick | null = null;
  for (const r of rows) {
    if (!yardstickCandidate(r)) continue;
    const gbps = r.gbps as number;
    if (best === null || gbps > best.gbps) best = { gbps, kernel: r.kernel, shape: r.shape };
  }
  return best;
}

/**
 * Fills fractionOfStream, vsF16 and vsF32 from the rows measured in the same run. A row that failed,
 * or whose own check failed, gets none (bench/README.md: such a row is used for no ratio, its own
 * included); the ratios are cleared first, since the rows of a report written during the run come back
 * here with the ratios of the previous one.
 */
export function addRatios(rows: BenchRow[]): void {
  const yardstick = bandwidthYardstick(rows);
  for (const r of rows) {
    r.fractionOfStream = null;
    r.vsF16 = null;
    r.vsF32 = null;
  }
  for (const r of rows) {
    if (!measuredOk(r)) continue;
    const ms = r.ms as number;
    if (yardstick !== null && r.gbps !== null && r.family !== 'product' && r.family !== 'host') r.fractionOfStream = r.gbps / yardstick.gbps;
    if (r.family === 'gemv' || r.family === 'batched') {
      // Baselines only where they ran and their own check passed (a wrong f16 row must not decide a ratio).
      const f16 = rows.find((o) => o.family === 'gemv' && o.spirvKey === 'f16' && o.shape === r.shape && measuredOk(o));
      const f32 = rows.find((o) => o.family === 'gemv' && o.spirvKey === 'f32' && o.shape === r.shape && measuredOk(o));
      if (r.family === 'gemv') r.vsF16 = f16?.ms ? f16.ms / ms : null;
      if (r.family === 'gemv') r.vsF32 = f32?.ms ? f32.ms / ms : null;
    }
    if (r.family === 'decode-step') {
      // Against the f16 baseline step of the same shape and layer count, recorded the same way (one
      // compute pass for the whole step, or a pass per layer).
      const f16 = rows.find(
        (o) => o.family === 'decode-step' && o.spirvKey === 'f16' && o.shape === r.shape && o.callsPerSample === r.callsPerSample && onePassStep(o) === onePassStep(r) && measuredOk(o),
      );
      r.vsF16 = f16?.ms ? f16.ms / ms : null;
    }
    if (r.family === 'product') {
      const f32 = rows.find((o) => o.family === 'product' && o.kernel.startsWith('f32') && o.shape === r.shape && measuredOk(o));
      r.vsF32 = f32?.ms ? f32.ms / ms : null;
    }
  }
}

/** Attaches the SPIR-V and RDNA3 instructions per code byte to the rows of each kernel. */
export function addInstructionStats(rows: BenchRow[], stats: InstructionStats): void {
  for (const r of rows) {
    if (r.spirvKey === null) continue;
    const s = stats.get(r.spirvKey);
    if (s === undefined || !('perCodeByte' in s)) continue;
    r.instrPerCodeByte = s.perCodeByte;
    if ('perCodeByte' in s.rdna3) r.rdna3PerCodeByte = s.rdna3.perCodeByte;
  }
  for (const r of rows) {
    if (r.macKey === null) continue;
    const s = stats.get(r.macKey);
    if (s !== undefined && 'kind' in s && 'perMac' in s.rdna3) r.rdna3PerMac = s.rdna3.perMac;
  }
}

/** The kernels' statistics (per code byte) and the products' (per multiply-accumulate), apart. */
function splitStats(stats: InstructionStats): { kernels: [string, KernelInstructionStats | { readonly error: string }][]; products: [string, ProductInstructionStats][] } {
  const kernels: [string, KernelInstructionStats | { readonly error: string }][] = [];
  const products: [string, ProductInstructionStats][] = [];
  for (const [key, s] of stats) {
    if ('kind' in s) products.push([key, s]);
    else kernels.push([key, s]);
  }
  return { kernels, products };
}

function fmt(value: number | null, digits = 3): string {
  if (value === null || !Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  return value.toFixed(Math.min(6, Math.max(0, digits - 1 - magnitude)));
}

function ratio(value: number | null): string {
  return value === null ? '—' : `${fmt(value)}×`;
}

function status(r: BenchRow): string {
  if (r.status === 'unsupported') return r.note ?? 'unsupported';
  if (r.status === 'failed') return `FAILED: ${r.note ?? ''}`.slice(0, 140);
  if (r.check === null) return 'ok';
  return `${r.check.ok ? 'ok' : 'WRONG'} (${checkFigure(r.check)})`;
}

/** A check's figure under its own name: the stream row counts lanes, not an NMSE. */
function checkFigure(c: RowCheck): string {
  if (c.metric.startsWith('lanes')) return `lanes differing ${c.value}`;
  if (c.metric.startsWith('entries')) return `entries differing ${c.value}`;
  // "nmse vs exact float64" is the default; twins and references keep their name, without the bracket.
  const name = c.metric === 'nmse vs exact float64' ? 'nmse' : (c.metric.split(' (')[0] ?? c.metric);
  return `${name} ${c.value.toExponential(1)}`;
}

function gemvTable(rows: readonly BenchRow[]): string {
  return markdownTable(
    ['kernel', 'shape (out × in)', 'k', 'bits/entry', 'MB read', 'µs', 'GB/s', 'of stream', 'vs f16', 'vs f32', 'instr / code byte (SPIR-V, RDNA3)', 'copies', 'check'],
    rows.map((r) => [
      r.kernel,
      r.shape,
      r.k === null ? '—' : String(r.k),
      fmt(r.bitsPerEntry),
      r.bytesRead === null ? '—' : fmt(r.bytesRead / 1e6),
      r.ms === null ? '—' : fmt(1000 * r.ms),
      fmt(r.gbps),
      r.fractionOfStream === null ? '—' : `${(100 * r.fractionOfStream).toFixed(1)}%`,
      ratio(r.vsF16),
      ratio(r.vsF32),
      r.instrPerCodeByte === null ? '—' : `${fmt(r.instrPerCodeByte)}, ${fmt(r.rdna3PerCodeByte)}`,
      r.copies === null ? '—' : String(r.copies),
      status(r),
    ]),
  );
}

function hostTable(rows: readonly BenchRow[]): string {
  return markdownTable(
    ['what', 'shape', 'host µs per call / layer', 'dispatches per layer', 'GPU objects created (steady state)', 'GPU ms per step', 'GB/s', 'of stream', 'vs f16', 'note'],
    rows.map((r) => [
      r.kernel,
      r.shape,
      fmt(r.hostUsPerCall),
      r.dispatchesPerCall === null ? '—' : fmt(r.dispatchesPerCall),
      r.allocationsAfterFirst === null ? '—' : fmt(r.allocationsAfterFirst),
      fmt(r.ms),
      fmt(r.gbps),
      r.fractionOfStream === null ? '—' : `${(100 * r.fractionOfStream).toFixed(1)}%`,
      ratio(r.vsF16),
      // The rows with a check (the rotation's) show it beside their note.
      r.status === 'ok' ? [r.note, r.check === null ? null : `check: ${status(r)}`].filter((part) => part !== null).join('; ') : status(r),
    ]),
  );
}

function targetsTable(targets: readonly TargetResult[]): string {
  return markdownTable(
    ['target', 'met', 'measured (the deciding figure)'],
    targets.map((t) => [t.target, t.met === null ? '— (no verdict)' : t.met ? 'yes' : 'no', t.measured]),
  );
}

function defaultsTable(comparisons: readonly DefaultComparison[]): string {
  if (comparisons.length === 0) return 'No row of this run times an alternative to a default.';
  return markdownTable(
    ['choice', 'shape', 'default', 'ms', 'alternative', 'ms', 'default ÷ alternative', 'verdict'],
    comparisons.map((c) => [
      c.choice,
      c.shape,
      c.defaultKernel,
      fmt(c.defaultMs),
      // What the alternative adds to the default's name, where that is all that differs.
      c.alternativeKernel.startsWith(c.defaultKernel) ? `(the default)${c.alternativeKernel.slice(c.defaultKernel.length)}` : c.alternativeKernel,
      fmt(c.alternativeMs),
      ratio(c.speedup),
      c.note === null ? c.verdict : `${c.verdict} (${c.note})`,
    ]),
  );
}

function productTable(rows: readonly BenchRow[]): string {
  return markdownTable(
    ['kernel', 'shape (n × a × b)', 'bits/entry', 'ms', 'GFLOP/s', 'vs f32 matmul', 'RDNA3 instr / MAC', 'check'],
    rows.map((r) => [r.kernel, r.shape, fmt(r.bitsPerEntry), fmt(r.ms), fmt(r.gflops), ratio(r.vsF32), fmt(r.rdna3PerMac), status(r)]),
  );
}

const CLASS_NAMES: Readonly<Record<PipeClass, string>> = {
  alu: 'ALU',
  intMultiply: 'integer multiply-add and dot',
  float: 'f32',
  memory: 'memory',
  address: 'address',
  branch: 'branch',
  other: 'other',
};

const ISA_CLASS_NAMES: Readonly<Record<IsaClass, string>> = {
  valu: 'VALU',
  valuQuarterRate: 'quarter-rate VALU',
  salu: 'SALU',
  vmem: 'VMEM',
  lds: 'LDS',
  smem: 'SMEM',
  branch: 'branch',
};

/** "VALU 12.0, quarter-rate VALU 1.00, …" (RDNA3 classes with none left out). */
function isaClassLine(byClass: Readonly<Record<IsaClass, number>>): string {
  return ISA_CLASSES.filter((c) => byClass[c] > 0)
    .map((c) => `${ISA_CLASS_NAMES[c]} ${fmt(byClass[c])}`)
    .join(', ');
}

/** "RDNA3: 15.8 per byte (VALU 12.0, …), 28 loads in flight", or why it was not counted. */
function rdnaLine(s: IsaLoopStats | { readonly error: string }): string {
  if ('error' in s) return `RDNA3: not counted (${s.error})`;
  const classes = isaClassLine(s.perCodeByteByClass);
  const trips = s.unknownTrips > 0 ? `, ${s.unknownTrips} nested loop(s) of unknown trip count counted once` : '';
  return `RDNA3: ${fmt(s.instructions)} instructions and ${s.codeBytes} code bytes per iteration → ${fmt(s.perCodeByte)} per byte (${classes}), ${s.loadsInFlight} loads in flight${trips}`;
}

/** "RDNA3: 2.02 per MAC (VALU 1.29, …; 516 instructions per 256 MACs)", or why it was not counted. */
function productLine(s: ProductInstructionStats): string {
  const r = s.rdna3;
  if ('error' in r) return `RDNA3: not counted (${r.error})`;
  const classes = isaClassLine(r.perMacByClass);
  const issue = r.perMac + 3 * r.perMacByClass.valuQuarterRate;
  return `RDNA3: ${fmt(r.perMac)} instructions per MAC, ${fmt(issue)} issue cycles with quarter-rate ones at 4 (${classes}; ${fmt(r.instructions)} instructions per slice of ${r.macsPerIteration} MACs per invocation)`;
}

/** "ALU 20.1, integer multiply-add and dot 3.2, …" (classes with none left out). */
function classLine(byClass: Readonly<Record<PipeClass, number>>): string {
  return PIPE_CLASSES.filter((c) => byClass[c] > 0)
    .map((c) => `${CLASS_NAMES[c]} ${fmt(byClass[c])}`)
    .join(', ');
}

/** How a row's samples spread: slowest over fastest (`sampleSpread`). */
function spreadOf(samples: readonly number[]): string {
  return `${fmt(sampleSpread(samples))}×`;
}

/** The rows timed again because their samples spread (`timeCalls`, UNSTEADY_SPREAD), with both spreads. */
function retimedLines(rows: readonly BenchRow[]): string[] {
  const retimed = rows.filter((r) => r.unsteadySamplesMs.length > 0);
  if (retimed.length === 0) return [];
  const items = retimed.map(
    (r) => `${r.kernel} at ${r.shape}: set aside ${r.unsteadySamplesMs.map((samples) => `${spreadOf(samples)} (median ${fmt(median(samples) * 1000)} µs)`).join(', ')}; kept ${spreadOf(r.samplesMs)}`,
  );
  return [`- Timed again, samples spread by more than ${UNSTEADY_SPREAD}× (a clock still rising; the steadiest timing is kept): ${items.join('; ')}`];
}

/** "4310 GB/s (f32 GEMV at 8192 × 28672)", or why there is none. */
function yardstickLine(y: BandwidthYardstick | null): string {
  return y === null ? 'none (no stream, f32 or f16 GEMV row passed its check): no share of it' : `${fmt(y.gbps)} GB/s (${y.kernel} at ${y.shape})`;
}

/** The Markdown report. */
export function markdownReport(rows: readonly BenchRow[], env: BenchEnvironment, stats: InstructionStats, caveat: string | null): string {
  const gemv = rows.filter((r) => r.family === 'stream' || r.family === 'gemv' || r.family === 'batched');
  const host = rows.filter((r) => r.family === 'host' || r.family === 'decode-step');
  const products = rows.filter((r) => r.family === 'product');
  const features = Object.entries(env.features).map(([name, on]) => `${name} ${on ? 'yes' : 'no'}`).join(', ');
  const { kernels, products: productStats } = splitStats(stats);
  const statLines = kernels.map(([key, s]) =>
    'error' in s
      ? `- ${key}: not counted (${s.error})`
      : `- ${key}: ${fmt(s.instructions)} instructions and ${s.codeBytes} code bytes per inner-loop iteration → ${fmt(s.perCodeByte)} per byte (${classLine(s.perCodeByteByClass)})${s.unknownTrips > 0 ? `; ${s.unknownTrips} nested loop(s) of unknown trip count counted once` : ''}; ${rdnaLine(s.rdna3)}`,
  );
  const compilers = [...new Set([...stats.values()].flatMap((s) => ('rdna3' in s && 'compiler' in s.rdna3 ? [s.rdna3.compiler] : [])))];
  return [
    `# WebGPU GEMV and product benchmark — ${env.device}`,
    '',
    ...(caveat ? [`> ${caveat}`, ''] : []),
    `- Adapter: ${[env.adapter.description, env.adapter.vendor, env.adapter.architecture].filter(Boolean).join(', ')}`,
    `- Mode: ${env.mode}; run \`${env.command}\` on ${env.date}, Node ${env.node}, commit ${env.commit ?? 'unknown'}`,
    `- Bandwidth yardstick ("of stream"): ${yardstickLine(bandwidthYardstick(rows))}`,
    `- Timing: ${env.timing}`,
    `- Features: ${features}`,
    `- Settings: ${Object.entries(env.settings).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    ...(env.skipped.length > 0 ? [`- Not measured (the run's --deadline-s passed first): ${env.skipped.map((item) => item.name).join('; ')}`] : []),
    ...retimedLines(rows),
    ...(env.complete ? [] : ['- **Incomplete**: written while the run was in progress; it stopped before its end (rows after the last one below were not measured).']),
    '',
    '## Speed targets (issue 10), judged from the rows below',
    '',
    targetsTable(issueTargets(rows, env)),
    '',
    '## Defaults against their alternatives (same run, same shape)',
    '',
    'Choices the library makes by instruction counts, without a GPU to time them (bench/README.md), each',
    "alternative's row set against the default's: faster when every sample of one is below every sample of",
    'the other (for two kernels equally fast, a verdict either way has a chance of 2/C(n + m, n): 1 in 1716',
    'with 7 samples each, 1 in 10 with the 3 of --quick), else no clear difference. The default here is what',
    'the library picks on this device (some depend on its limits and features).',
    '',
    defaultsTable(defaultComparisons(rows)),
    '',
    '## GEMV y = W·x (streamed over distinct weight copies)',
    '',
    gemvTable(gemv),
    '',
    '## Host cost and a decode step',
    '',
    hostTable(host),
    '',
    '## Products C = AᵀB',
    '',
    productTable(products),
    '',
    'Definitions: µs / ms are GPU time per call (median of the samples; a sample records `copies`×rounds calls,',
    'call i reading weight copy i mod copies, so the working set of distinct weights exceeds the L2 cache);',
    '"MB read" counts the weights as stored (codes, scales, escape and side fields) plus the activations;',
    '"of stream" is GB/s over the bandwidth yardstick above (the best GB/s of the streaming read and the',
    'f32 and f16 GEMVs in this run, among those whose check passed; a row that failed its check gets no',
    'ratio); "vs f16" / "vs f32" are the f16 / f32 GEMV\'s time at the same shape over this kernel\'s',
    '(> 1: faster); products: FLOP/s of the dense 2·n·a·b; check: NMSE n‖ŷ − y‖²/(‖W‖²‖x‖²) against the',
    'exact float64 product (products: on sampled entries), or against the CPU twin where the check names',
    'one (the exact product\'s NMSE then in the JSON\'s metric); the stream row: lanes of its XOR differing.',
    '',
    '## Instructions per code byte (inner loop, from the SPIR-V Dawn emits)',
    '',
    'Scalar-equivalent SPIR-V instructions of one iteration of the innermost loop that loads the packed',
    'weights, divided by the bytes of weights it loads (static count: nested constant loops multiplied,',
    'called functions inlined, both sides of undecided branches counted; branches on known uniforms',
    'such as q and the code width resolved). Method: bench/gpu/spirv.ts. For scale: an H200 issues ≈ 7',
    'instructions per HBM byte at full bandwidth (33.5 T lane-instructions/s ÷ 4.8 TB/s), of which ≈ 3.5',
    'on its ALU pipe (shifts, masks, integer adds, compares; 64 lanes per SM and clock) and ≈ 3.5 integer',
    'multiply-adds and packed dot products on its FMA pipe (bench/README.md, "An H200\'s budget per byte").',
    'In brackets, the same per byte by the resource each instruction is assumed to use there (ALU pipe;',
    'integer multiply-adds and packed dot products on the FMA pipe; f32 arithmetic on either FMA pipe;',
    'memory: loads, stores, atomics and barriers on the load/store path; address: access chains, which',
    'the driver may put on either pipe; branches; other: conversions and the rest). The product:… lines',
    'are the E8 product\'s staging loop (one block of A or B per iteration: read, decoded, packed into',
    'int8 lanes and stored in workgroup memory), per byte of one operand\'s codes.',
    '',
    'After "RDNA3": the same loop in AMD RDNA3 machine code, the SPIR-V compiled by Mesa\'s RADV on its null',
    `device (${compilers.length > 0 ? compilers.join('; ') : 'not compiled here'}; method: bench/gpu/rdnaIsa.ts):`,
    'a real GPU compiler\'s output (invariants hoisted, constant loops unrolled, operations fused), on AMD\'s',
    'ISA rather than NVIDIA\'s. Instructions per code byte by unit (quarter-rate VALU: 32-bit integer',
    'multiplies and transcendentals, 4 issue cycles each), and the most vector loads a wave keeps in flight.',
    '',
    ...statLines,
    '',
    '## Products: RDNA3 instructions per multiply-accumulate (slice loop)',
    '',
    'One iteration of each product kernel\'s slice loop (staging the operands\' slices in workgroup memory,',
    'decoding them there where the kernel does, the barriers and the compute over the slice) in the same',
    'RDNA3 machine code, divided by the entry products one invocation accumulates in it (its 4 × 4 entries',
    'of C × the slice\'s coordinates), nested loops with run-time bounds taken at a full slice. The f32',
    'matmul does one FMA per multiply-accumulate; the ratio of its count to a kernel\'s is what this',
    'compiler\'s code predicts of "vs f32 matmul" where instruction issue bounds both (a quarter-rate',
    'instruction counts 4 issue cycles: RDNA runs 32-bit integer multiplies at a quarter of the rate, an',
    'H200 at the rate of its heavy FMA pipe; bench/README.md, "Products: what bounds them on an H200").',
    '',
    ...productStats.map(([key, s]) => `- ${key}: ${productLine(s)}`),
    '',
  ].join('\n');
}

/** The JSON report. */
export function jsonReport(rows: readonly BenchRow[], env: BenchEnvironment, stats: InstructionStats, caveat: string | null): string {
  const { kernels, products } = splitStats(stats);
  return `${JSON.stringify(
    {
      device: env.device,
      adapter: env.adapter,
      date: env.date,
      mode: env.mode,
      softwareAdapter: env.softwareAdapter,
      timing: env.timing,
      caveat,
      features: env.features,
      limits: env.limits,
      node: env.node,
      commit: env.commit,
      command: env.command,
      bandwidthYardstick: bandwidthYardstick(rows),
      settings: env.settings,
      skipped: env.skipped.map((item) => item.name),
      complete: env.complete,
      targets: issueTargets(rows, env),
      defaults: defaultComparisons(rows),
      instructionsPerCodeByte: Object.fromEntries(kernels),
      productInstructionsPerMac: Object.fromEntries(products),
      rows,
    },
    null,
    2,
  )}\n`;
}
