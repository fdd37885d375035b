import { DATA_KINDS, rotationLength, type DataKind, type GainMode, type SchemeName } from '../src/index.js';
import { describeRun, type DemoRun } from './demoRun.js';
import { drawErrorPlot } from './errorPlot.js';
import { formatBits, formatCount, formatNmse } from './format.js';
import { MAX_ENTRIES, sizeProblem } from './limits.js';
import { drawRatePlot, type RatePoint } from './rdPlot.js';
import { renderAdapter, renderHistory, renderLatest, renderTimings } from './render.js';
import { RunCancelled, RunClient } from './runClient.js';
import { runsOn, STAGE_LABELS, STAGES, type Backend, type GpuStatus, type RunRequest, type Stage } from './runProtocol.js';
import { DEFAULT_SCHEME, SCHEME_GROUP_LABELS, SCHEME_NAMES, schemeGroup, schemeStyle, takesGain, type SchemeGroup } from './schemeStyle.js';
import { probeWebGpu } from './webgpuProbe.js';

/*
 * The page: reads the form, sends runs to the worker (RunClient), draws the results. Its state is also
 * published as `window.__latticeDemo` (and `data-state` on <body>) so scripts and the browser tests can
 * read the last result without scraping the page.
 */

type PageState = 'loading' | 'idle' | 'running' | 'done' | 'error' | 'cancelled';

/** The machine-readable state of the page. */
export interface LatticeDemoHandle {
  state: PageState;
  webgpu: { available: boolean; reason: string | null; engine: GpuStatus | null };
  lastResult: DemoRun | null;
  lastError: string | null;
  runs: number;
}

declare global {
  interface Window {
    __latticeDemo: LatticeDemoHandle;
  }
}

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`demo page: #${id} is missing or not a ${type.name}`);
  return node;
}

const ui = {
  gpuStatus: byId('gpu-status', HTMLParagraphElement),
  adapter: byId('adapter', HTMLElement),
  form: byId('run-form', HTMLFormElement),
  scheme: byId('scheme', HTMLSelectElement),
  gainField: byId('gain-field', HTMLLabelElement),
  gain: byId('gain', HTMLSelectElement),
  n: byId('n', HTMLInputElement),
  cols: byId('cols', HTMLInputElement),
  data: byId('data', HTMLSelectElement),
  backendWebgpu: byId('backend-webgpu', HTMLInputElement),
  backendCpu: byId('backend-cpu', HTMLInputElement),
  dataSeed: byId('data-seed', HTMLInputElement),
  rotationSeed: byId('rotation-seed', HTMLInputElement),
  checkCpu: byId('check-cpu', HTMLInputElement),
  sizeHint: byId('size-hint', HTMLParagraphElement),
  run: byId('run', HTMLButtonElement),
  runAll: byId('run-all', HTMLButtonElement),
  cancel: byId('cancel', HTMLButtonElement),
  progressArea: byId('progress-area', HTMLDivElement),
  progress: byId('progress', HTMLProgressElement),
  progressText: byId('progress-text', HTMLSpanElement),
  progressTime: byId('progress-time', HTMLSpanElement),
  runError: byId('run-error', HTMLParagraphElement),
  summary: byId('summary', HTMLParagraphElement),
  resultsBody: byId('results-body', HTMLDivElement),
  rdPlot: byId('rd-plot', HTMLDivElement),
  errorPlot: byId('error-plot', HTMLDivElement),
  latest: byId('latest', HTMLElement),
  timings: byId('timings', HTMLTableElement),
  history: byId('history', HTMLTableElement),
};

const handle: LatticeDemoHandle = {
  state: 'loading',
  webgpu: { available: false, reason: null, engine: null },
  lastResult: null,
  lastError: null,
  runs: 0,
};
window.__latticeDemo = handle;

const client = new RunClient();
const runs: DemoRun[] = [];

function setState(state: PageState): void {
  handle.state = state;
  document.body.dataset.state = state;
  const running = state === 'running';
  ui.cancel.disabled = !running;
  ui.progressArea.hidden = !running;
  updateForm();
}

// ---- the form ----

function fillSelect(select: HTMLSelectElement, values: readonly string[], label: (value: string) => string): void {
  select.replaceChildren(
    ...values.map((value) => {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label(value);
      return option;
    }),
  );
}

/** The scheme picker: the presets of SCHEMES, grouped (universal first: the library's default kind). */
function fillSchemes(select: HTMLSelectElement): void {
  const groups = new Map<SchemeGroup, HTMLOptGroupElement>();
  for (const group of ['universal', 'deterministic', 'scalar'] as const) {
    const element = document.createElement('optgroup');
    element.label = SCHEME_GROUP_LABELS[group];
    groups.set(group, element);
  }
  for (const name of SCHEME_NAMES) {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = `${schemeStyle(name).label} (${name})`;
    groups.get(schemeGroup(name))?.append(option);
  }
  select.replaceChildren(...[...groups.values()].filter((group) => group.children.length > 0));
  select.value = DEFAULT_SCHEME;
}

/** Why the data kind cannot be generated at this n, or null. */
function dataProblem(kind: DataKind, n: number): string | null {
  if (kind !== 'permuted' || !Number.isInteger(n) || n < 1 || rotationLength(n) === n) return null;
  let next = n;
  while (rotationLength(next) !== next) next++;
  return `Permuted data needs n to be a rotation length (the rotation must not pad it); the next one is ${formatCount(next)}.`;
}

function selectedBackend(): Backend {
  return ui.backendWebgpu.checked ? 'webgpu' : 'cpu';
}

function readInteger(input: HTMLInputElement): number {
  return input.value.trim() === '' ? Number.NaN : Number(input.value);
}

/** The request the form describes, or why it cannot run. */
function readRequest(scheme: SchemeName = ui.scheme.value as SchemeName): { request: RunRequest } | { problem: string } {
  const n = readInteger(ui.n);
  const cols = readInteger(ui.cols);
  const backend = selectedBackend();
  const where = runsOn(scheme, backend);
  const problem = sizeProblem(n, cols, where) ?? dataProblem(ui.data.value as DataKind, n);
  if (problem) {
    if (where !== backend) return { problem: `${schemeStyle(scheme).label} runs on the CPU reference (${GPU_LATTICE_ONLY}): ${problem}` };
    return { problem: backend === 'cpu' && handle.webgpu.available ? `${problem} Choose WebGPU for larger sizes.` : problem };
  }
  const dataSeed = readInteger(ui.dataSeed);
  const rotationSeed = readInteger(ui.rotationSeed);
  for (const [seed, what] of [[dataSeed, 'Data seed'], [rotationSeed, 'Rotation seed']] as const) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return { problem: `${what} must be a whole number from 0 to 4294967295.` };
  }
  return {
    request: {
      scheme,
      gain: ui.gain.value as GainMode,
      n,
      cols,
      dataKind: ui.data.value as DataKind,
      dataSeed,
      rotationSeed,
      backend,
      checkAgainstCpu: ui.checkCpu.checked,
    },
  };
}

function updateForm(): void {
  // Only the deterministic lattice schemes take a gain: the universal code refuses one (its decoded
  // columns are already unbiased) and the scalar baselines have none.
  const gain = takesGain(ui.scheme.value as SchemeName);
  ui.gainField.hidden = !gain;
  ui.gain.disabled = !gain;
  const read = readRequest();
  const running = handle.state === 'running' || handle.state === 'loading';
  if ('problem' in read) {
    ui.sizeHint.textContent = read.problem;
    ui.sizeHint.classList.add('problem');
  } else {
    const { n, cols, backend, scheme } = read.request;
    const where = runsOn(scheme, backend);
    const cap = where === 'cpu' ? ` The CPU reference runs up to n × columns = ${formatCount(MAX_ENTRIES.cpu)}.` : '';
    const moved = where !== backend ? ` ${schemeStyle(scheme).label} runs on the CPU reference: ${GPU_LATTICE_ONLY}.` : '';
    const skips =
      where === 'webgpu' && sizeProblem(n, cols, 'cpu') !== null
        ? ` “Run all schemes” skips the scalar baselines at this size (they run on the CPU reference, up to n × columns = ${formatCount(MAX_ENTRIES.cpu)}).`
        : '';
    ui.sizeHint.textContent = `A and B are ${formatCount(n)} × ${formatCount(cols)}; the product AᵀB is ${formatCount(cols)} × ${formatCount(cols)}.${moved}${cap}${skips}`;
    ui.sizeHint.classList.remove('problem');
  }
  ui.run.disabled = running || 'problem' in read;
  ui.runAll.disabled = running || 'problem' in read;
}

// ---- runs ----

let progressTimer: number | undefined;

function showProgress(position: number, count: number, scheme: SchemeName, stage: Stage): void {
  const stageIndex = STAGES.indexOf(stage);
  ui.progress.value = (position + stageIndex / STAGES.length) / count;
  const prefix = count > 1 ? `Scheme ${position + 1} of ${count}, ${schemeStyle(scheme).label}: ` : '';
  ui.progressText.textContent = `${prefix}${STAGE_LABELS[stage]}…`;
}

/**
 * Runs the given schemes one after another with the form's settings; the last one becomes "latest".
 * Schemes the size does not allow (scalar baselines beyond the CPU cap) are skipped with a note, except
 * the last (the selected scheme), which must run.
 */
async function runSchemes(schemes: readonly SchemeName[]): Promise<void> {
  const requests: RunRequest[] = [];
  const skipped: SchemeName[] = [];
  for (const [position, scheme] of schemes.entries()) {
    const read = readRequest(scheme);
    if ('problem' in read) {
      if (position < schemes.length - 1) {
        skipped.push(scheme);
        continue;
      }
      ui.runError.textContent = read.problem;
      ui.runError.hidden = false;
      return;
    }
    requests.push(read.request);
  }
  ui.runError.hidden = true;
  setState('running');
  const started = performance.now();
  progressTimer = window.setInterval(() => {
    ui.progressTime.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 200);
  try {
    for (const [position, request] of requests.entries()) {
      showProgress(position, requests.length, request.scheme, 'init');
      const result = await client.run(request, (stage) => showProgress(position, requests.length, request.scheme, stage));
      const run = describeRun(result, runs.length + 1);
      runs.push(run);
      handle.lastResult = run;
      handle.runs = runs.length;
      renderResults(run);
    }
    handle.lastError = null;
    if (skipped.length > 0) {
      ui.summary.textContent +=
        ` Skipped at this size: ${skipped.map((scheme) => schemeStyle(scheme).label).join(', ')} ` +
        `(the CPU reference, where the scalar baselines run, stops at n × columns = ${formatCount(MAX_ENTRIES.cpu)}).`;
    }
    setState('done');
  } catch (error) {
    if (error instanceof RunCancelled) {
      ui.summary.textContent = 'Run cancelled.';
      setState('cancelled');
    } else {
      const message = error instanceof Error ? error.message : String(error);
      handle.lastError = message;
      ui.runError.textContent = `The run failed: ${message}`;
      ui.runError.hidden = false;
      setState('error');
    }
  } finally {
    window.clearInterval(progressTimer);
    ui.progressTime.textContent = '';
  }
}

function renderResults(run: DemoRun): void {
  const { request } = run;
  const predicted = run.predictedNmse === null ? '' : ` (predicted ${formatNmse(run.predictedNmse)})`;
  ui.summary.textContent =
    `Latest: ${run.label} on ${request.dataKind} data, ${formatCount(request.n)} × ${formatCount(request.cols)} — ` +
    `NMSE ${formatNmse(run.nmse)}${predicted} at ${formatBits(run.bitsStored)} bits per entry.`;
  ui.summary.classList.remove('muted');
  ui.resultsBody.hidden = false;
  // The plot compares like with like: the last run of each scheme on the same data and size.
  const sameSetting = runs.filter(
    (r) => r.request.dataKind === request.dataKind && r.request.n === request.n && r.request.cols === request.cols && r.request.dataSeed === request.dataSeed,
  );
  const lastPerScheme = new Map<SchemeName, DemoRun>();
  for (const r of sameSetting) lastPerScheme.set(r.request.scheme, r);
  const points: RatePoint[] = [...lastPerScheme.values()].map((r) => ({
    scheme: r.request.scheme,
    label: r.label,
    bitsStored: r.bitsStored,
    bitsEntropy: r.bitsEntropy,
    nmse: r.nmse,
    current: r === run,
  }));
  drawRatePlot(ui.rdPlot, points);
  drawErrorPlot(ui.errorPlot, run.errorSample, request.scheme);
  renderLatest(ui.latest, run);
  renderTimings(tableBody(ui.timings), run);
  renderHistory(tableBody(ui.history), runs);
}

function tableBody(table: HTMLTableElement): HTMLTableSectionElement {
  const body = table.tBodies[0];
  if (!body) throw new Error('demo page: a results table has no <tbody>');
  return body;
}

// ---- WebGPU ----

const GPU_LATTICE_ONLY = 'the GPU engine encodes lattice schemes only';

const CPU_FALLBACK = `The page runs the CPU reference instead, for sizes up to n × columns = ${formatCount(MAX_ENTRIES.cpu)}.`;

function useCpuOnly(reason: string): void {
  handle.webgpu = { available: false, reason, engine: handle.webgpu.engine };
  ui.gpuStatus.textContent = `No WebGPU: ${reason} ${CPU_FALLBACK}`;
  ui.gpuStatus.classList.add('warning');
  ui.backendWebgpu.disabled = true;
  ui.backendCpu.checked = true;
  ui.adapter.hidden = true;
  updateForm();
}

async function startWebGpu(): Promise<void> {
  const probe = await probeWebGpu();
  if (!probe.available) {
    useCpuOnly(probe.reason);
    return;
  }
  ui.gpuStatus.textContent = `WebGPU adapter found (${probe.description}); starting the engine…`;
  const status = await client.gpuStatus();
  if (!status.available) {
    handle.webgpu.engine = status;
    useCpuOnly(`a WebGPU adapter exists (${probe.description}), but the GPU engine could not start: ${status.reason}.`);
    return;
  }
  handle.webgpu = { available: true, reason: null, engine: status };
  const software = /swiftshader|llvmpipe|lavapipe/i.test(probe.description)
    ? ' This adapter is a software renderer (the GPU emulated on the CPU): results are right, timings are not a GPU’s.'
    : '';
  ui.gpuStatus.textContent = `WebGPU is ready: runs use your GPU (${probe.description}).${software}`;
  ui.backendWebgpu.disabled = false;
  ui.backendWebgpu.checked = true;
  renderAdapter(ui.adapter, status);
  updateForm();
}

// ---- start ----

fillSchemes(ui.scheme);
fillSelect(ui.data, DATA_KINDS, (kind) => kind);
ui.backendWebgpu.disabled = true;
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  void runSchemes([ui.scheme.value as SchemeName]);
});
ui.runAll.addEventListener('click', () => {
  // The selected scheme runs last, so it is the latest (ringed) point.
  const selected = ui.scheme.value as SchemeName;
  void runSchemes([...SCHEME_NAMES.filter((name) => name !== selected), selected]);
});
ui.cancel.addEventListener('click', () => client.cancel());
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && client.running) client.cancel();
});
ui.form.addEventListener('input', updateForm);
ui.form.addEventListener('change', updateForm);

void startWebGpu()
  .catch((error: unknown) => useCpuOnly(error instanceof Error ? error.message : String(error)))
  .finally(() => setState('idle'));
