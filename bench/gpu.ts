/**
 * The headless WebGPU benchmark (Dawn in Node; issue 10): GEMV y = W·x at decode shapes streamed over
 * a working set of distinct weights, for the universal lattice GEMV, the deterministic lattice GEMV,
 * the weight-only GEMV and the baselines measured in the same run (streaming read, f32, f16, int4 g32);
 * batched right-hand sides; host µs per recorded call, a 200-layer decode step in one submit and a
 * decode step with Llama-3-8B's layer shapes, each against f16 weights;
 * products at a shape that fills the GPU; instructions per code byte from the SPIR-V Dawn emits.
 * Writes JSON and Markdown (schema and how to read them: bench/README.md).
 *
 *   npm run bench                          # full: 8192 × 28672, 8192², 28672 × 8192; products 4096³
 *   npm run bench -- --quick               # CI on lavapipe: 1024², products 128³-ish (< 3 minutes)
 *   npm run bench -- --json out.json --md out.md --only 'int4|f16'
 *
 * Options: --quick, --json PATH (default bench/out/gpu.json), --md PATH (bench/out/gpu.md),
 * --shapes OUTxIN,… (GEMV shapes), --working-set-mb N (distinct weights per GEMV row; default 256,
 * quick 4), --stream-mb N (default 1024, quick 16), --product N (n = a = b; default 4096, quick 128),
 * --decode-layers N (200), --decode-size N (square layer of the decode step; default 8192, quick 256),
 * --model-blocks N (transformer blocks of the model step; default the model's: 32, quick 2),
 * --samples N, --warmup N, --warmup-ms MS (warm-up time per row, default 500; 0 with --quick), --prime-ms MS (streaming reads before each row's warm-up, default 200; 0 with --quick), --seed N, --wall-clock, --only REGEX (kernel names), --no-spirv,
 * --no-products, --no-host, --caveat TEXT (a line printed on top of the report),
 * --disable-robustness (Dawn toggle; measures what native engines do), --f16-on-nvidia (Dawn toggle
 * vulkan_enable_f16_on_nvidia: shader-f16 on NVIDIA's Vulkan driver, which Dawn withholds by default), --deadline-s N (start no row
 * after N seconds: the report lists what was skipped, so a run on a lent machine ends in time).
 *
 * Order (what a time-limited run on a real GPU should measure first): the streaming read, the GEMVs at
 * the first shape (8192 × 28672, where the issue's D3 target is set), host cost, the dispatch chains,
 * the rotations of x at the model's widths, the model steps (then, in a full run, the rotation rows
 * that explain the passes' cost), the products, the square decode steps, then the GEMVs at the other
 * shapes, then the instruction counts.
 */
import type { GpuEngineOptions } from '../src/gpu/engine.js';
import { isSoftwareAdapter } from '../src/gpu/device.js';
import { requestNodeGpuDevice } from '../src/gpu/nodeGpu.js';
import { dotPathFor } from '../src/gpu/kernels/e8Matmul.js';
import { TIMESTAMP_QUERY_DAWN_FLAGS } from '../src/gpu/timing.js';
import type { SchemeName } from '../src/quantize/schemes.js';
import { gemvProblem, type BenchRow, type BenchSettings } from './gpu/common.js';
import {
  deterministicKernel,
  groupScaledKernel,
  e8ResidueKernel,
  d3QuadKernel,
  e8PointKernel,
  f16Kernel,
  f32Kernel,
  gemvRow,
  int4I8Kernel,
  int4Kernel,
  streamRow,
  universalKernel,
  int8InputKernel,
  weightOnlyI8Kernel,
  weightOnlyKernel,
  weightOnlyPackedKernel,
  type GemvKernel,
} from './gpu/gemvCases.js';
import { decodeStepRow, DISPATCH_CHAIN_FORMS, dispatchChainRow, f16DecodeStepRow, hostRows, rotationRow, type DecodeStepOptions, type RotationRowKind } from './gpu/hostCases.js';
import { f16ModelStepRow, LLAMA_3_8B, modelStepRow, SMALL_MODEL } from './gpu/modelStep.js';
import { DETERMINISTIC_SCHEMES, instructionStats, spirvChildMain, spirvChildRequest, UNIVERSAL_SCHEMES, type InstructionStats, type SpirvChildRequest } from './gpu/instructionStats.js';
import { engineProductRow, f32ProductRow, productProblem } from './gpu/productCases.js';
import { chooseTableLayout, tableLayout } from '../src/gpu/tableLayout.js';
import { addInstructionStats, addRatios, jsonReport, markdownReport, type BenchEnvironment } from './gpu/report.js';
import { skippedGemv, skippedItem, type SkippedItem } from './gpu/targets.js';
import { parseArgs, progress, progressDone } from './lib/args.js';
import { sourceCommit, writeAtomically } from './gpu/output.js';

/** The scheme of the batched rows, the host rows and the decode step. */
const DEFAULT_SCHEME: SchemeName = 'e8-4bit';
const BATCH_SIZES = [8, 64];

const argv = process.argv.slice(2);
if (argv[0] === '--spirv-child') {
  await spirvChildMain(JSON.parse(argv[1] ?? '{}') as SpirvChildRequest);
  process.exit(0);
}

const args = parseArgs(argv, {
  quick: 'flag',
  json: 'string',
  md: 'string',
  shapes: 'string',
  'working-set-mb': 'number',
  'stream-mb': 'number',
  product: 'number',
  'decode-layers': 'number',
  'model-blocks': 'number',
  'decode-size': 'number',
  samples: 'number',
  warmup: 'number',
  'warmup-ms': 'number',
  'prime-ms': 'number',
  seed: 'number',
  'wall-clock': 'flag',
  only: 'string',
  'no-spirv': 'flag',
  'no-products': 'flag',
  'no-host': 'flag',
  caveat: 'string',
  'disable-robustness': 'flag',
  'f16-on-nvidia': 'flag',
  'deadline-s': 'number',
});
const quick = args.get('quick') === true;
const option = (name: string, fallback: number, min = 0): number => {
  const value = (args.get(name) as number | undefined) ?? fallback;
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${value}`);
  return value;
};
const shapes = ((args.get('shapes') as string | undefined) ?? (quick ? '1024x1024' : '8192x28672,8192x8192,28672x8192')).split(',').map((text) => {
  const match = /^(\d+)x(\d+)$/.exec(text.trim());
  if (match === null) throw new Error(`--shapes takes OUTxIN,… (e.g. 8192x28672), got '${text}'`);
  return { out: Number(match[1]), in: Number(match[2]) };
});
const jsonPath = (args.get('json') as string | undefined) ?? 'bench/out/gpu.json';
const mdPath = (args.get('md') as string | undefined) ?? 'bench/out/gpu.md';
const only = args.has('only') ? new RegExp(args.get('only') as string, 'i') : null;
const productSize = option('product', quick ? 128 : 4096, 1);
const decodeLayers = option('decode-layers', 200, 1);
/** The model step's model: its layer shapes, with fewer blocks where --model-blocks asks (a rehearsal on a CPU adapter). */
const baseModel = quick ? SMALL_MODEL : LLAMA_3_8B;
const stepModel = { ...baseModel, blocks: option('model-blocks', baseModel.blocks, 1) };
const decodeSize = option('decode-size', quick ? 256 : 8192, 1);
const streamBytes = 16 * Math.ceil((option('stream-mb', quick ? 16 : 1024, 1) * 2 ** 20) / 16);
const caveat = (args.get('caveat') as string | undefined) ?? null;
const deadlineS = args.has('deadline-s') ? option('deadline-s', 0, 1) : null;
/** What --deadline-s left unmeasured (in the report). */
const skipped: SkippedItem[] = [];

// Dawn toggles asked for: robustness off (what native engines run), and shader-f16 on NVIDIA's Vulkan
// driver, which Dawn withholds there by default (f16 conformance failures of some drivers,
// crbug.com/42251215; Chrome on Linux with an NVIDIA GPU offers no shader-f16 either): the f16 GEMV
// baselines then run, their results checked like every row's.
const enabledToggles = [...(args.get('disable-robustness') === true ? ['disable_robustness'] : []), ...(args.get('f16-on-nvidia') === true ? ['vulkan_enable_f16_on_nvidia'] : [])];
const flags = [...TIMESTAMP_QUERY_DAWN_FLAGS, ...(enabledToggles.length === 0 ? [] : [`enable-dawn-features=${enabledToggles.join(',')}`])];
const gpu = await requestNodeGpuDevice({ label: 'bench device', flags });
const { device, adapter, features, limits } = gpu;
const info = adapter.info;
const timestampQuery = features.timestampQuery && args.get('wall-clock') !== true;
const settings: BenchSettings = {
  quick,
  seed: option('seed', 1),
  warmup: option('warmup', quick ? 1 : 2),
  // An H200 idles at 345 MHz and reaches 1980 only after a few hundred ms of work (first run there).
  warmupMs: option('warmup-ms', quick ? 0 : 500, 0),
  primeMs: option('prime-ms', quick ? 0 : 200, 0),
  // Quick runs (CI, on lavapipe) time each row once: a CPU adapter's samples scatter anyway.
  maxTimings: quick ? 1 : 3,
  samples: option('samples', quick ? 3 : 7, 1),
  workingSetBytes: option('working-set-mb', quick ? 4 : 256, 0) * 2 ** 20,
  minCalls: quick ? 1 : 8,
  maxCopies: quick ? 8 : 256,
  tileCols: quick ? 1024 : 1024,
  timestampQuery,
};
const deviceName = info.description || info.device || [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown adapter';
const environment: BenchEnvironment = {
  device: deviceName,
  adapter: {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    subgroupMinSize: info.subgroupMinSize ?? null,
    subgroupMaxSize: info.subgroupMaxSize ?? null,
  },
  date: new Date().toISOString(),
  mode: quick ? 'quick' : 'full',
  softwareAdapter: isSoftwareAdapter(info),
  timing: timestampQuery
    ? 'timestamp-query: GPU timestamps (empty passes around the recorded calls; Dawn quantization off)'
    : `wall clock around queue.onSubmittedWorkDone()${features.timestampQuery ? ' (--wall-clock)' : ' (the adapter has no timestamp-query)'}`,
  features: { ...features },
  // With the storage-buffer limit, which decides the universal GEMV's fused finish (dispatchesPerCall).
  limits: { ...limits, maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage },
  node: process.version,
  commit: sourceCommit(process.argv[1] ?? null),
  command: ['bench/gpu.ts', ...argv].join(' '),
  skipped,
  complete: false,
  settings: {
    workingSetMiB: settings.workingSetBytes / 2 ** 20,
    streamMiB: streamBytes / 2 ** 20,
    samples: settings.samples,
    warmup: settings.warmup,
    warmupMs: settings.warmupMs,
    primeMs: settings.primeMs,
    maxTimings: settings.maxTimings,
    minCallsPerSample: settings.minCalls,
    distinctTileColumns: settings.tileCols,
    dawnFlags: flags.join(' '),
  },
};
console.log(`Device: ${deviceName} (${info.vendor} ${info.architecture})`);
console.log(`Features: ${Object.entries(features).map(([name, on]) => `${name}=${on ? 'yes' : 'no'}`).join(' ')}`);
console.log(`Timing: ${environment.timing}`);

const wanted = (name: string): boolean => only === null || only.test(name);
const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
/** Whether `item` may start: false past --deadline-s (then it is listed as skipped). */
const inTime = (item: SkippedItem): boolean => {
  if (deadlineS === null || (performance.now() - started) / 1000 < deadlineS) return true;
  skipped.push(item);
  progress(`skipped, past --deadline-s ${deadlineS}: ${item.name}`);
  return false;
};
const otherItem = (name: string): SkippedItem => skippedItem('other', name);
const stepItem = (name: string): SkippedItem => skippedItem('step', name);
const productItem = (name: string): SkippedItem => skippedItem('product', name);
const rows: BenchRow[] = [];
/** Writes the report of the rows so far (so a run stopped by a time limit still leaves its figures). */
const writeReports = (stats: InstructionStats, complete: boolean): string => {
  const snapshot = rows.map((r) => ({ ...r }));
  addRatios(snapshot);
  addInstructionStats(snapshot, stats);
  const env = { ...environment, complete };
  const markdown = markdownReport(snapshot, env, stats, caveat);
  for (const [path, text] of [
    [jsonPath, jsonReport(snapshot, env, stats, caveat)],
    [mdPath, markdown],
  ] as const) {
    writeAtomically(path, text);
  }
  rows.splice(0, rows.length, ...snapshot);
  return markdown;
};
const add = (r: BenchRow): void => {
  rows.push(r);
  writeReports(new Map(), false);
  const figure = r.status !== 'ok' ? `${r.status}: ${r.note ?? ''}` : r.ms !== null ? `${(1000 * r.ms).toFixed(1)} µs, ${r.gbps?.toFixed(1) ?? '—'} GB/s` : `${r.hostUsPerCall?.toFixed(1) ?? '—'} µs host`;
  progress(`  ${r.kernel} ${r.shape}: ${figure} [${elapsed()}]`);
};

progress(`stream read over ${streamBytes / 2 ** 20} MiB`);
add(await streamRow(gpu, streamBytes, settings));

const gemvKernels: GemvKernel[] = [
  f32Kernel,
  f16Kernel,
  int4Kernel,
  // The int4 baseline as llama.cpp's WebGPU backend runs Q4_0 (x rounded to int8, packed dot
  // products), the whole call and the kernel alone: the D3 target's int4 yardstick is the faster form.
  int4I8Kernel('packed', false),
  int4I8Kernel('packed', true),
  ...UNIVERSAL_SCHEMES.map((scheme) => universalKernel(scheme)),
  int8InputKernel('packed'),
  int8InputKernel('packed', true),
  // 16 and 32 copies of the leader table (2 passes through workgroup memory per lookup and one,
  // against ≈ 2.9 with the default 8, UNIVERSAL_I8_DEFAULT_LEADER_COPIES; twice and four times its
  // fill), and the default copies padded to 256 entries (Tint's index clamp can never bind there, so a
  // driver could drop it: i8LeaderEntries), kernel alone, to compare on the same GPU.
  int8InputKernel('packed', true, { leaderCopies: 16 }),
  int8InputKernel('packed', true, { leaderCopies: 32 }),
  int8InputKernel('packed', true, { padLeaderTable: true }),
  int8InputKernel('plain'),
  ...DETERMINISTIC_SCHEMES.map((scheme) => deterministicKernel(scheme)),
  deterministicKernel('d3-q6-deterministic', 'packed'),
  deterministicKernel('d3-q6-deterministic', 'packed', true),
  deterministicKernel('d3-q6-deterministic', 'packed', true, { leaderCopies: 8 }),
  deterministicKernel('d3-q6-deterministic', 'packed', true, { leaderCopies: 32 }),
  deterministicKernel('d3-q6-deterministic', 'packed', true, { padLeaderTable: true }),
  // Its scale multiples from a workgroup table (the former form) instead of the cubic, kernel alone.
  deterministicKernel('d3-q6-deterministic', 'packed', true, { scaleMultiples: 'table' }),
  // The group-scaled D3 prototype (one scale index per group of 4 blocks: a format not built, whose
  // kernel bench/README.md estimates near the D3 targets with 32 leader-table copies), kernel alone,
  // with the default 16 copies and with 32, beside d3-q6-deterministic's kernel-alone rows.
  groupScaledKernel('packed'),
  groupScaledKernel('packed', { leaderCopies: 32 }),
  // The D3 quad GEMV (d3-q6-deterministic's codes laid out at upload in whole quads of 16 blocks per
  // column, the same 3.33 bits per entry: what QuantizedLinear's int8Inputs runs for these weights;
  // bench/README.md "D3: codes in whole quads"), the whole call and the kernel alone, with its default
  // table (32 copies of the leaders where they fit) and with 16 and 1 copies, beside the kernel that
  // reads the codes as stored.
  d3QuadKernel('packed', false),
  d3QuadKernel('packed', true),
  d3QuadKernel('packed', true, 16),
  d3QuadKernel('packed', true, 1),
  // The E8 residue GEMV (int8Inputs of e8-q16-deterministic: the leaders repacked at upload so that
  // the GEMV does not run the nearest-point rule, 5 bits per entry read instead of 4.25;
  // bench/README.md), the whole call (x rotated and rounded to int8 in it) and the kernel alone,
  // beside the scheme's f32-input E8 GEMV.
  e8ResidueKernel('packed', false),
  e8ResidueKernel('packed', true),
  // The E8 point GEMV (int8Inputs of the universal E8 schemes: their lattice points repacked as int8,
  // 8 bits per entry read, the dither regenerated per block), the whole call and the kernel alone,
  // beside the schemes' f32-input universal GEMVs (e8-4bit, e8-q16).
  e8PointKernel('e8-4bit', 'packed', false),
  e8PointKernel('e8-4bit', 'packed', true),
  e8PointKernel('e8-q16', 'packed', false),
  deterministicKernel('d3-q6-deterministic', 'plain'),
  weightOnlyKernel,
  weightOnlyPackedKernel,
  // The weight-only GEMV on int8 inputs (QuantizedLinear's int8Inputs for fixed-width weight-only
  // weights), the whole call and the kernel alone.
  weightOnlyI8Kernel('packed', false),
  weightOnlyI8Kernel('packed', true),
  ...BATCH_SIZES.map((k) => universalKernel(DEFAULT_SCHEME, k)),
  // A prefill's batch through the int8-input paths QuantizedLinear takes for d3-q6-deterministic and
  // e8-q16-deterministic (the tile variants: 8 right-hand sides per pass over the codes), whole calls.
  ...BATCH_SIZES.map((k) => d3QuadKernel('packed', false, undefined, k)),
  ...BATCH_SIZES.map((k) => e8ResidueKernel('packed', false, k)),
];
const baselines = new Set<GemvKernel>([f32Kernel, f16Kernel]);
/** The GEMV rows of one shape. */
const gemvRows = async (shape: { readonly out: number; readonly in: number }): Promise<void> => {
  const selected = gemvKernels.filter((kernel) => baselines.has(kernel) || wanted(kernel.name));
  const ks = [...new Set(selected.map((kernel) => kernel.k))];
  const problems = new Map(ks.map((k) => [k, gemvProblem(shape.out, shape.in, k, settings.tileCols, settings.seed)]));
  for (const kernel of selected) {
    if (!inTime(skippedGemv(kernel.name, `${shape.out} × ${shape.in}`, kernel.k))) continue;
    progress(`GEMV ${kernel.name} at ${shape.out} × ${shape.in} [${elapsed()}]`);
    add(await gemvRow(gpu, kernel, problems.get(kernel.k) as ReturnType<typeof gemvProblem>, settings));
  }
};
const [firstShape, ...otherShapes] = shapes as [{ out: number; in: number }, ...{ out: number; in: number }[]];
await gemvRows(firstShape);

const hostRowsWanted = args.get('no-host') !== true;
if (hostRowsWanted) {
  if (wanted('host') && inTime(otherItem('host µs per recorded call'))) {
    progress(`host µs per recorded call at ${firstShape.out} × ${firstShape.in} [${elapsed()}]`);
    for (const r of await hostRows(gpu, gemvProblem(firstShape.out, firstShape.in, 1, settings.tileCols, settings.seed), DEFAULT_SCHEME, quick ? 200 : 2000, settings)) add(r);
  }
  for (const form of DISPATCH_CHAIN_FORMS) {
    if (wanted('dispatch chain') && inTime(otherItem(`dispatch chain (${form})`))) add(await dispatchChainRow(gpu, decodeLayers, settings, form));
  }
  // Rotation rows of one column: each width in each way.
  const rotationRows = async (widths: readonly number[], kinds: readonly RotationRowKind[]): Promise<void> => {
    for (const n of widths) {
      for (const kind of kinds) {
        if (wanted('rotation') && inTime(otherItem(`rotation of ${n} (${kind})`))) add(await rotationRow(gpu, n, kind, 50, settings));
      }
    }
  };
  // What the int8-input layers do to x before their products, at the widths the model step and the
  // GEMV rows rotate (quick: the small model's).
  await rotationRows(quick ? [256, 1100] : [4096, 8192, 14336, 28672], ['x̂', 'x̂ batched loads', 'x̂ fewest passes', 'workgroup memory', 'subgroups', 'split']);
  if (wanted('model step')) {
    // A decode step with a transformer's layer shapes (bench/gpu/modelStep.ts), against f16 weights.
    progress(`model step: ${stepModel.name} [${elapsed()}]`);
    const int8 = dotPathFor(features);
    if (inTime(stepItem('model step f16 baseline'))) add(await f16ModelStepRow(gpu, stepModel, settings));
    if (inTime(stepItem('model step d3-q6-deterministic int8'))) add(await modelStepRow(gpu, stepModel, { scheme: 'd3-q6-deterministic' }, settings, { int8 }));
    if (inTime(stepItem('model step d3-q6 int8'))) add(await modelStepRow(gpu, stepModel, { scheme: 'd3-q6' }, settings, { int8 }));
    // E8 with int8 inputs: the residue GEMV on the leaders each layer repacks at creation.
    if (inTime(stepItem('model step e8-q16-deterministic int8'))) add(await modelStepRow(gpu, stepModel, { scheme: 'e8-q16-deterministic' }, settings, { int8 }));
    if (inTime(stepItem(`model step ${DEFAULT_SCHEME}`))) add(await modelStepRow(gpu, stepModel, { scheme: DEFAULT_SCHEME }, settings));
    // The universal E8 scheme with int8 inputs: the point GEMV on the lattice points each layer repacks as int8.
    if (inTime(stepItem(`model step ${DEFAULT_SCHEME} int8`))) add(await modelStepRow(gpu, stepModel, { scheme: DEFAULT_SCHEME }, settings, { int8 }));
    if (inTime(stepItem('model step weight-only'))) add(await modelStepRow(gpu, stepModel, { weightOnly: 'rtn-4bit' }, settings));
    if (inTime(stepItem('model step weight-only int8'))) add(await modelStepRow(gpu, stepModel, { weightOnly: 'rtn-4bit' }, settings, { int8 }));
  }
  // After the model steps, so that a run cut by its deadline keeps them: why passes with blocks of
  // m = 12 take 2.5–3× those of m = 1 (bench/README.md, "The rotation's passes"). One workgroup of
  // the spread passes' variant (1024 values, 256 invocations) at m = 12 (768) and m = 1 (1024), two
  // such passes (1536, 2048), and one workgroup of 1024 invocations holding the whole window (6144
  // and 12288 at m = 12 against 4096 and 8192 above).
  if (!quick) await rotationRows([768, 1024, 1536, 2048, 6144, 12288], ['workgroup memory', 'split']);
}

if (args.get('no-products') !== true) {
  progress(`products at ${productSize}³ [${elapsed()}]`);
  const problem = productProblem(productSize, productSize, productSize, settings.seed + 10);
  if (inTime(productItem('f32 product'))) add(await f32ProductRow(gpu, problem, settings));
  // The engine's default product per scheme; the rows below time its alternatives against it
  // (BenchRow.alternativeTo: the report's "Defaults against their alternatives").
  const defaultProducts = new Map<SchemeName, string>();
  for (const scheme of ['e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const) {
    if (wanted(`engine product ${scheme}`) && inTime(productItem(`engine product ${scheme}`))) {
      const standard = await engineProductRow(gpu, scheme, problem, settings);
      defaultProducts.set(scheme, standard.kernel);
      add(standard);
    }
  }
  // An alternative to the row `defaultKernel` (none: a row without a default measured beside it); its kernel.
  const alternativeProduct = async (scheme: SchemeName, choice: string, options: GpuEngineOptions, defaultKernel: string | undefined): Promise<string> => {
    const measured = await engineProductRow(gpu, scheme, problem, settings, options);
    add(defaultKernel === undefined ? measured : { ...measured, alternativeTo: { choice, defaultKernel } });
    return measured.kernel;
  };
  // The universal product's other path: both operands decoded to f32 and the f32 kernel (the default
  // where WGSL lacks packed 8-bit dot products; the row above uses the pair forms where it has them).
  if (dotPathFor(features) === 'packed' && wanted('engine product e8-q16') && inTime(productItem('engine product e8-q16 (universal-decode)'))) {
    await alternativeProduct('e8-q16', 'universal product path', { universalProduct: 'decode' }, defaultProducts.get('e8-q16'));
  }
  // The D3 table product's other table layouts that fit this device (the row above uses the best),
  // and the leaders layout with the other dot path where the device has both.
  if (wanted('engine product d3-q6-deterministic')) {
    const granted = gpu.limits.maxComputeWorkgroupStorageSize;
    const chosen = chooseTableLayout(granted).kind;
    // The leaders layout's row (the default's, or its own alternative row): the plain dot path's default.
    let leadersKernel = chosen === 'leaders' ? defaultProducts.get('d3-q6-deterministic') : undefined;
    for (const kind of ['full', 'triangle', 'leaders'] as const) {
      if (kind !== chosen && tableLayout(kind, granted) !== null && inTime(productItem(`engine product d3-q6-deterministic (${kind} table)`))) {
        const kernel = await alternativeProduct('d3-q6-deterministic', 'D3 product table layout', { tableLayout: kind }, defaultProducts.get('d3-q6-deterministic'));
        if (kind === 'leaders') leadersKernel = kernel;
      }
    }
    if (dotPathFor(features) === 'packed' && inTime(productItem('engine product d3-q6-deterministic (leaders table, plain dot)'))) {
      await alternativeProduct('d3-q6-deterministic', 'dot path', { tableLayout: 'leaders', dotPath: 'plain' }, leadersKernel);
    }
  }
  // The deterministic products' other path: both operands decoded to f32 and the f32 kernel
  // (deterministicProduct: 'decode'; for GPUs whose 32-bit integer multiplies are slow).
  for (const scheme of ['d3-q6-deterministic', 'e8-q16-deterministic'] as const) {
    if (wanted(`engine product ${scheme}`) && inTime(productItem(`engine product ${scheme} (decode-f32)`))) await alternativeProduct(scheme, 'deterministic product path', { deterministicProduct: 'decode' }, defaultProducts.get(scheme));
  }
}

// The square decode steps last among the GPU-time rows: their variants (alone, grouped, f16, one pass)
// explain overheads; the model steps above carry the comparison a user makes.
if (hostRowsWanted) {
  if (wanted('decode step')) {
    progress(`decode step: ${decodeLayers} layers of ${decodeSize}² [${elapsed()}]`);
    const decodeProblem = gemvProblem(decodeSize, decodeSize, 1, settings.tileCols, settings.seed, 1 / Math.sqrt(decodeSize));
    const int8 = dotPathFor(features);
    // The baseline first: f16 weights, one f16 GEMV per layer (what "vs f16" of every step divides).
    if (inTime(stepItem('decode step f16 baseline'))) add(await f16DecodeStepRow(gpu, decodeProblem, decodeLayers, settings));
    // and recorded into one compute pass, the baseline of the one-pass steps below.
    if (inTime(stepItem('decode step f16 baseline, one compute pass'))) add(await f16DecodeStepRow(gpu, decodeProblem, decodeLayers, settings, true));
    const steps: [SchemeName, DecodeStepOptions][] = [
      [DEFAULT_SCHEME, {}],
      ['d3-q6', {}],
      ['d3-q6', { int8 }],
      // The same layers read in groups of 3 (q, k, v): one rotation, one recording of the per-call
      // sums (universal f32-input GEMV) and one int8 rounding per group (inside the rotation's last
      // pass where its last stage takes one).
      [DEFAULT_SCHEME, { groupSize: 3 }],
      ['d3-q6', { int8, groupSize: 3 }],
      // The bandwidth path: deterministic D3 codes with int8 inputs (≈ 12 instructions per code byte).
      ['d3-q6-deterministic', { int8, groupSize: 3 }],
      // As an LLM runs them: f16 activations in and out (where the adapter has shader-f16 or not: the
      // conversions are core WGSL).
      [DEFAULT_SCHEME, { groupSize: 3, activations: 'f16' }],
      ['d3-q6', { int8, groupSize: 3, activations: 'f16' }],
      ['d3-q6-deterministic', { int8, groupSize: 3, activations: 'f16' }],
      // The whole step in one compute pass of the caller's (record(pass, …)): no pass per layer, which
      // is most of a layer's host cost.
      [DEFAULT_SCHEME, { onePass: true }],
      ['d3-q6-deterministic', { int8, groupSize: 3, activations: 'f16', onePass: true }],
      // E8's bandwidth path: the residue GEMV of int8Inputs (5 bits per entry read).
      ['e8-q16-deterministic', { int8, groupSize: 3, activations: 'f16', onePass: true }],
    ];
    for (const [scheme, stepOptions] of steps) {
      if (inTime(stepItem(`decode step ${scheme} ${JSON.stringify(stepOptions)}`))) add(await decodeStepRow(gpu, decodeProblem, scheme, decodeLayers, settings, stepOptions));
    }
  }
}

for (const shape of otherShapes) await gemvRows(shape);
const request = spirvChildRequest(features, limits);
await device.queue.onSubmittedWorkDone();
device.destroy();

let stats: InstructionStats = new Map();
if (args.get('no-spirv') !== true && inTime(otherItem('instructions per code byte'))) {
  progress(`instructions per code byte (SPIR-V of every kernel, compiled in a child process) [${elapsed()}]`);
  try {
    stats = instructionStats(request, 10 * 60 * 1000);
  } catch (error) {
    stats.set('all', { error: error instanceof Error ? error.message : String(error) });
  }
}
progressDone();
const markdown = writeReports(stats, true);
console.log(`\n${markdown}`);
console.log(`wrote ${jsonPath} and ${mdPath} (${elapsed()})`);
const failed = rows.filter((r) => r.status === 'failed');
const wrong = rows.filter((r) => r.check !== null && !r.check.ok);
if (failed.length > 0) console.error(`\n${failed.length} row(s) failed:\n${failed.map((r) => `- ${r.kernel} ${r.shape}: ${r.note}`).join('\n')}`);
if (wrong.length > 0) console.error(`\nWrong results:\n${wrong.map((r) => `- ${r.kernel} ${r.shape}: ${r.check?.metric} ${r.check?.value} > ${r.check?.limit}`).join('\n')}`);
if (failed.length > 0 || wrong.length > 0) process.exitCode = 1;
