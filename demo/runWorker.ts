import {
  expectedNmse,
  GpuDeviceLostError,
  matmulAT,
  quantize,
  randomNonce,
  testMatrixPair,
  universalPairProduct,
  type QuantizeOptions,
} from '../src/index.js';
import { runOnCpu } from './cpuRun.js';
import type { EngineOutput } from './engineOutput.js';
import { GpuRunner, pipelineKeys } from './gpuRun.js';
import { PRODUCT_EXPORT_MAX_ENTRIES, sizeProblem, sizeTarget } from './limits.js';
import { compareRuns, errorSample, measureNmse } from './measure.js';
import { isUniversalScheme, takesGain } from './schemeStyle.js';
import {
  runsOn,
  type CpuCheck,
  type GpuFailure,
  type GpuStatus,
  type RunRequest,
  type RunResult,
  type Stage,
  type WorkerMessage,
  type WorkerRequest,
} from './runProtocol.js';

/*
 * The run worker: test data, quantization (CPU or WebGPU), the product and the error measurement, one
 * request at a time. The page cancels a run by terminating this worker, which stops the work at once
 * (and releases its GPU device).
 */

let gpu: Promise<GpuRunner> | null = null;
/** The runner `gpu` resolved to, once it has. */
let gpuReady: GpuRunner | null = null;
/**
 * The `pipelineKeys` of the runs finished on the current runner: a run with a key not in it also
 * compiles pipelines (its scheme's, or its rotation's), not only the first run of a device.
 */
const gpuCompiled = new Set<string>();
/** CPU runs finished in this worker (the first one also warms up the JavaScript engine: its rates were 3–5× low). */
let cpuRuns = 0;

/** A run failed because of the GPU itself (see `GpuFailure`); the page says so in plain words. */
class GpuRunFailure extends Error {
  constructor(
    message: string,
    readonly gpu: GpuFailure,
  ) {
    super(message);
  }
}

function post(message: WorkerMessage): void {
  self.postMessage(message);
}

/** Requests a device and starts the engine; a failed start is not kept, so the next request tries again. */
function startGpu(): Promise<GpuRunner> {
  const starting = GpuRunner.create();
  gpu = starting;
  gpuReady = null;
  gpuCompiled.clear();
  starting.then(
    (runner) => {
      if (gpu === starting) gpuReady = runner;
    },
    () => {
      if (gpu === starting) gpu = null;
    },
  );
  return starting;
}

/** The worker's GPU runner; a new one when the last one's device was lost (a GPU reset, say). */
async function gpuRunner(): Promise<GpuRunner> {
  const runner = await (gpu ?? startGpu());
  if (!runner.lost) return runner;
  dropGpu(runner);
  return gpu ?? startGpu();
}

/** Forgets a runner whose device was lost (every later call on it would fail) and frees what is left of it. */
function dropGpu(runner: GpuRunner): void {
  if (gpuReady === runner) {
    gpu = null;
    gpuReady = null;
  }
  try {
    runner.destroy();
  } catch {
    // A lost device has nothing left to free.
  }
}

async function gpuStatus(): Promise<GpuStatus> {
  try {
    return (await gpuRunner()).status();
  } catch (error) {
    return { available: false, reason: messageOf(error) };
  }
}

async function run(id: number, request: RunRequest): Promise<RunResult> {
  const onStage = (stage: Stage): void => post({ type: 'progress', id, stage });
  const ranOn = runsOn(request.scheme, request.backend);
  // The page checked the size already; this check is the worker's own, so a request never runs past
  // the caps (a software renderer's are lower: its adapter is known once the engine runs).
  const cpuProblem = ranOn === 'cpu' ? sizeProblem(request.n, request.cols, 'cpu') : null;
  if (cpuProblem) throw new Error(cpuProblem);
  const base: QuantizeOptions = {
    scheme: request.scheme,
    seed: request.rotationSeed,
    // Only deterministic lattice schemes take a gain (the universal code refuses one).
    ...(takesGain(request.scheme) ? { gain: request.gain } : {}),
  };
  // Universal schemes: a fresh nonce per matrix and run, so A's and B's errors are independent (the
  // library would draw them itself; the worker draws them to pass the same ones to the CPU check and
  // to report them).
  const nonces = isUniversalScheme(request.scheme) ? distinctNonces() : null;
  const options: readonly [QuantizeOptions, QuantizeOptions] = nonces
    ? [
        { ...base, nonce: nonces[0] },
        { ...base, nonce: nonces[1] },
      ]
    : [base, base];

  onStage('init');
  let runner: GpuRunner | null = null;
  if (ranOn === 'webgpu') {
    try {
      runner = await gpuRunner();
    } catch (error) {
      // Only reached after a loss: the page checked at start that the engine runs.
      throw new GpuRunFailure(messageOf(error), 'start');
    }
    const gpuProblem = sizeProblem(request.n, request.cols, sizeTarget('webgpu', runner.status().adapter.softwareRenderer));
    if (gpuProblem) throw new Error(gpuProblem);
  }

  onStage('generate');
  const t0 = performance.now();
  // The rotation seed matters to the 'permuted' data (B's rotated columns are A's, permuted).
  const { a, b } = testMatrixPair(request.dataKind, request.n, request.cols, request.cols, request.dataSeed, request.rotationSeed);
  const generate = performance.now() - t0;

  const output: EngineOutput & { productKernel?: string } = runner
    ? await runOnGpu(runner, a, b, options, onStage)
    : runOnCpu(a, b, options, onStage);

  onStage('measure');
  const t1 = performance.now();
  const { nmse, sampledEntries } = measureNmse(output.product, a, b);
  const sample = errorSample(a, output.qa, request.rotationSeed);
  const predictedNmse = nonces ? expectedNmse(output.qa, output.qb) : null;
  const measure = performance.now() - t1;
  let cpuCheck: CpuCheck | null = null;
  let cpuCheckSkipped: string | null = null;
  const t2 = performance.now();
  if (runner) cpuCheckSkipped = request.checkAgainstCpu ? sizeProblem(request.n, request.cols, 'cpu') : 'the check against the CPU reference is turned off.';
  if (runner && cpuCheckSkipped === null) {
    const qa = quantize(a, options[0]);
    const qb = quantize(b, options[1]);
    // The pair product drops a term that matmulAT keeps (src/quantize/universalPairs.ts): check it
    // against its own CPU twin, which computes what it computes.
    const reference = output.productKernel === 'universal-i8' ? universalPairProduct(qa, qb) : matmulAT(qa, qb);
    cpuCheck = compareRuns([output.qa, output.qb], [qa, qb], output.product, reference);
  }
  const checkMs = performance.now() - t2;
  const keys = runner ? pipelineKeys(request.scheme, request.n, request.cols, output.productKernel ?? '') : [];
  const compilesGpuPipelines = keys.some((key) => !gpuCompiled.has(key));
  for (const key of keys) gpuCompiled.add(key);
  if (!runner) cpuRuns++;

  const product = output.product;
  const status = runner?.status() ?? null;
  return {
    request,
    ranOn,
    productKernel: output.productKernel ?? null,
    nonces: nonces ? { a: nonces[0].toString(), b: nonces[1].toString() } : null,
    predictedNmse,
    bitsStored: output.bitsStored,
    bitsEntropy: output.bitsEntropy,
    nmse,
    nmseSampledEntries: sampledEntries,
    timings: { generate, ...output.timings, measure, cpuCheck: checkMs },
    compilesGpuPipelines,
    firstCpuRun: runner === null && cpuRuns === 1,
    tableLayout: status?.available ? status.tableLayout : null,
    adapter: status?.available ? status.adapter : null,
    product:
      product.data.length <= PRODUCT_EXPORT_MAX_ENTRIES
        ? { rows: product.rows, cols: product.cols, data: Array.from(product.data) }
        : null,
    errorSample: sample,
    cpuCheck,
    cpuCheckSkipped,
  };
}

/**
 * `runner.run`, except that a lost device drops the runner (the next run requests a new device) and
 * rejects with a `GpuRunFailure` that names the loss.
 */
async function runOnGpu(runner: GpuRunner, ...args: Parameters<GpuRunner['run']>): ReturnType<GpuRunner['run']> {
  try {
    return await runner.run(...args);
  } catch (error) {
    if (!(error instanceof GpuDeviceLostError) && !runner.lost) throw error;
    dropGpu(runner);
    const reason = error instanceof GpuDeviceLostError ? error.lostMessage.trim() : '';
    // The browser's own words, without their trailing period(s): the page puts them in a sentence.
    throw new GpuRunFailure(reason ? `the WebGPU device was lost: ${reason.replace(/\.+$/, '')}` : 'the WebGPU device was lost', 'lost');
  }
}

/** Two different random 64-bit nonces (equal ones would make A's and B's errors dependent). */
function distinctNonces(): [bigint, bigint] {
  const first = randomNonce();
  let second = randomNonce();
  while (second === first) second = randomNonce();
  return [first, second];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

self.addEventListener('message', (event: MessageEvent<WorkerRequest>) => {
  const message = event.data;
  if (message.type === 'gpu-status') {
    void gpuStatus().then((status) => post({ type: 'gpu-status', status }));
    return;
  }
  run(message.id, message.request).then(
    (result) => post({ type: 'result', id: message.id, result }),
    (error: unknown) =>
      post({ type: 'error', id: message.id, message: messageOf(error), ...(error instanceof GpuRunFailure ? { gpu: error.gpu } : {}) }),
  );
});
