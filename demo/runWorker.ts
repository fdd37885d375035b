import { expectedNmse, matmulAT, quantize, randomNonce, testMatrixPair, type QuantizeOptions } from '../src/index.js';
import { runOnCpu } from './cpuRun.js';
import type { EngineOutput } from './engineOutput.js';
import { GpuRunner } from './gpuRun.js';
import { PRODUCT_EXPORT_MAX_ENTRIES, sizeProblem } from './limits.js';
import { compareRuns, errorSample, measureNmse } from './measure.js';
import { isUniversalScheme, takesGain } from './schemeStyle.js';
import { runsOn, type CpuCheck, type GpuStatus, type RunRequest, type RunResult, type Stage, type WorkerMessage, type WorkerRequest } from './runProtocol.js';

/*
 * The run worker: test data, quantization (CPU or WebGPU), the product and the error measurement, one
 * request at a time. The page cancels a run by terminating this worker, which stops the work at once
 * (and releases its GPU device).
 */

let gpu: Promise<GpuRunner> | null = null;
/** GPU runs finished by this worker (the first one also compiles the pipelines). */
let gpuRuns = 0;

function post(message: WorkerMessage): void {
  self.postMessage(message);
}

function gpuRunner(): Promise<GpuRunner> {
  gpu ??= GpuRunner.create();
  return gpu;
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
  const problem = sizeProblem(request.n, request.cols, ranOn);
  if (problem) throw new Error(problem);
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
  const runner = ranOn === 'webgpu' ? await gpuRunner() : null;

  onStage('generate');
  const t0 = performance.now();
  // The rotation seed matters to the 'permuted' data (B's rotated columns are A's, permuted).
  const { a, b } = testMatrixPair(request.dataKind, request.n, request.cols, request.cols, request.dataSeed, request.rotationSeed);
  const generate = performance.now() - t0;

  const output: EngineOutput & { productKernel?: string } = runner
    ? await runner.run(a, b, options, onStage)
    : runOnCpu(a, b, options, onStage);

  onStage('measure');
  const t1 = performance.now();
  const { nmse, sampledEntries } = measureNmse(output.product, a, b);
  const sample = errorSample(a, output.qa, request.rotationSeed);
  let cpuCheck: CpuCheck | null = null;
  if (runner && request.checkAgainstCpu && sizeProblem(request.n, request.cols, 'cpu') === null) {
    const qa = quantize(a, options[0]);
    const qb = quantize(b, options[1]);
    cpuCheck = compareRuns([output.qa, output.qb], [qa, qb], output.product, matmulAT(qa, qb));
  }
  const predictedNmse = nonces ? expectedNmse(output.qa, output.qb) : null;
  const measure = performance.now() - t1;
  if (runner) gpuRuns++;

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
    timings: { generate, ...output.timings, measure },
    firstGpuRun: runner !== null && gpuRuns === 1,
    tableLayout: status?.available ? status.tableLayout : null,
    adapter: status?.available ? status.adapter : null,
    product:
      product.data.length <= PRODUCT_EXPORT_MAX_ENTRIES
        ? { rows: product.rows, cols: product.cols, data: Array.from(product.data) }
        : null,
    errorSample: sample,
    cpuCheck,
  };
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
    (error: unknown) => post({ type: 'error', id: message.id, message: messageOf(error) }),
  );
});
