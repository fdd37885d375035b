import { DATA_KINDS, rotationLength, type DataKind, type GainMode, type SchemeName } from '../src/index.js';
import { describeRun, type DemoRun } from './demoRun.js';
import { drawErrorPlot } from './errorPlot.js';
import { formatBits, formatCount, formatNmse } from './format.js';
import { capsText, N_MAX, N_MIN, sizeProblem, sizeTarget, type SizeTarget } from './limits.js';
import { drawRatePlot, type RatePoint } from './rdPlot.js';
import { renderAdapter, renderHistory, renderLatest, renderTimings } from './render.js';
import { RunCancelled, RunClient, RunFailed } from './runClient.js';
import { runsOn, STAGE_LABELS, STAGES, type Backend, type GpuStatus, type RunRequest, type Stage } from './runProtocol.js';
import {
  DEFAULT_SCHEME,
  GAIN_LABELS,
  GAIN_NOTES,
  SCHEME_GROUP_LABELS,
  SCHEME_NAMES,
  schemeGroup,
  schemeStyle,
  takesGain,
  type SchemeGroup,
} from './schemeStyle.js';
import { probeWebGpu, withTimeout } from './webgpuProbe.js';

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
  historyNote: byId('history-note', HTMLParagraphElement),
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

/** Each data kind in the picker, in a few words (src/data/testMatrices.ts describes them in full). */
const DATA_KIND_TEXT: Readonly<Record<DataKind, string>> = {
  gaussian: 'gaussian (i.i.d. N(0, 1), the bound Γ’s setting)',
  'heavy-tailed': 'heavy-tailed (Student-t, 3 degrees of freedom)',
  'outlier-rows': 'outlier-rows (1 % of coordinates × 20, as in LLM activations)',
  'low-rank': 'low-rank (A and B share a rank-4 column space)',
  parallel: 'parallel (every column ± a multiple of one direction)',
  spikes: 'spikes (one large entry per column)',
  'two-spikes': 'two-spikes (two large entries per column)',
  permuted: 'permuted (B’s rotated columns are A’s, permuted)',
};

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
  // Only an n the size check accepts: rotationLength throws past the safe integers (n = 1e16 typed with
  // permuted data threw here, on every keystroke, leaving the last hint and Run enabled).
  if (kind !== 'permuted' || !Number.isInteger(n) || n < N_MIN || n > N_MAX || rotationLength(n) === n) return null;
  let next = n;
  while (rotationLength(next) !== next) next++;
  return `Permuted data needs n to be a rotation length (the rotation must not pad it); the next one is ${formatCount(next)}.`;
}

function selectedBackend(): Backend {
  return ui.backendWebgpu.checked ? 'webgpu' : 'cpu';
}

/** The caps a run on `backend` is held to: lower on WebGPU when the worker's engine runs on a software renderer. */
function targetOf(backend: Backend): SizeTarget {
  const engine = handle.webgpu.engine;
  return sizeTarget(backend, engine !== null && engine.available && engine.adapter.softwareRenderer);
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
  const kindProblem = dataProblem(ui.data.value as DataKind, n);
  const problem = sizeProblem(n, cols, targetOf(where)) ?? kindProblem;
  if (problem) {
    if (where !== backend) return { problem: `${schemeStyle(scheme).label} runs on the CPU reference (${GPU_LATTICE_ONLY}): ${problem}` };
    // Suggest WebGPU only where it would run this request: the CPU's size cap is the reason (the two
    // backends share the range checks), the scheme runs on the GPU engine, and the data kind allows n.
    const webgpuTakesIt =
      backend === 'cpu' &&
      handle.webgpu.available &&
      runsOn(scheme, 'webgpu') === 'webgpu' &&
      kindProblem === null &&
      sizeProblem(n, cols, targetOf('webgpu')) === null;
    return { problem: webgpuTakesIt ? `${problem} WebGPU runs this size: choose it under “Run on”.` : problem };
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
    const cap = where === 'cpu' ? ` The CPU reference runs up to ${capsText('cpu')}.` : '';
    const moved = where !== backend ? ` ${schemeStyle(scheme).label} runs on the CPU reference: ${GPU_LATTICE_ONLY}.` : '';
    // The CPU cap that refuses the scalar baselines, in its own words: it said "up to n × columns =
    // 262,144" also where n × columns was within that and n × columns² was the reason (300 × 500).
    const cpuProblem = where === 'webgpu' ? sizeProblem(n, cols, 'cpu') : null;
    const skips = cpuProblem === null ? '' : ` “Run all schemes” skips the scalar baselines at this size: they run on the CPU reference, and ${cpuProblem}`;
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
  // Nothing starts before the page is ready (the buttons are disabled then, but a form can still be
  // submitted by script) or while a run is under way.
  if (handle.state === 'loading' || handle.state === 'running' || client.running) return;
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
  // The button that started the run is disabled while it runs: keep the keyboard focus on the page
  // (on Cancel), and bring it back afterwards.
  const focused = document.activeElement;
  const trigger = focused === ui.run ? ui.run : focused === ui.runAll ? ui.runAll : null;
  setState('running');
  if (trigger) ui.cancel.focus();
  const started = performance.now();
  let finished = 0;
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
      finished++;
      if (run.ranOn === 'webgpu') gpuWorks();
    }
    handle.lastError = null;
    const last = requests[requests.length - 1];
    if (skipped.length > 0 && last) {
      // "; " between the labels: some contain commas ("INT4, group 32"). Only the scalar baselines are
      // skipped (they run on the CPU reference where the others run on WebGPU): the CPU cap says why.
      ui.summary.textContent +=
        ` Skipped at this size: ${skipped.map((scheme) => schemeStyle(scheme).label).join('; ')}. ` +
        `They run on the CPU reference, and ${sizeProblem(last.n, last.cols, 'cpu') ?? 'it does not run this size.'}`;
    }
    setState('done');
  } catch (error) {
    if (error instanceof RunCancelled) {
      ui.summary.textContent = cancelledSummary(finished, requests.length);
      setState('cancelled');
    } else {
      const message = error instanceof Error ? error.message : String(error);
      handle.lastError = message;
      ui.runError.textContent = failureText(error, message);
      ui.runError.hidden = false;
      setState('error');
    }
  } finally {
    window.clearInterval(progressTimer);
    ui.progressTime.textContent = '';
    // Cancel is disabled again: the focus went to <body>; give it back to the button that started the run.
    if (trigger && (document.activeElement === ui.cancel || document.activeElement === document.body || document.activeElement === null)) {
      trigger.focus();
    }
  }
}

/** What the summary says after a cancel: the results shown are those of the last run that finished. */
function cancelledSummary(finished: number, count: number): string {
  const last = runs[runs.length - 1];
  const stopped = count > 1 ? `Run cancelled after ${finished} of ${count} schemes.` : 'Run cancelled.';
  if (!last) return stopped;
  return `${stopped} The results below are from the last run that finished (#${last.index}, ${last.label} on ${last.request.dataKind} data, ${formatCount(last.request.n)} × ${formatCount(last.request.cols)}).`;
}

/** The run error in plain words; a lost GPU says what happened and what to do. */
function failureText(error: unknown, message: string): string {
  if (error instanceof RunFailed && error.gpu === 'lost') {
    gpuWasReset();
    return `The GPU was reset during the run, so the run stopped (${message}). Run it again: the page starts the GPU afresh for the next run.`;
  }
  if (error instanceof RunFailed && error.gpu === 'start') {
    useCpuOnly(`the GPU was reset during a run and WebGPU could not be started again (${message}).`);
    return 'The GPU was reset and WebGPU could not be started again, so the page has switched to the CPU reference: run it again there, or reload the page to try WebGPU once more.';
  }
  return `The run failed: ${message}`;
}

/** Draws the latest run's plots again; null before the first run. */
let redrawPlots: (() => void) | null = null;
/** The plots' container widths when they were last drawn (they are drawn at those widths). */
let plotWidths = [0, 0];
// A rotated phone or a resized window: the plots are drawn at their containers' widths (their labels
// keep their size), so a change of width draws them again. Their heights follow and are not watched.
const plotResizes = new ResizeObserver(() => {
  const widths = [ui.rdPlot.clientWidth, ui.errorPlot.clientWidth];
  if (redrawPlots !== null && widths.some((width, i) => Math.abs(width - (plotWidths[i] as number)) >= 8)) redrawPlots();
});
plotResizes.observe(ui.rdPlot);
plotResizes.observe(ui.errorPlot);

function renderResults(run: DemoRun): void {
  const { request } = run;
  const predicted = run.predictedNmse === null ? '' : ` (predicted ${formatNmse(run.predictedNmse)})`;
  ui.summary.textContent =
    `Latest: ${run.label} on ${request.dataKind} data, ${formatCount(request.n)} × ${formatCount(request.cols)} — ` +
    `NMSE ${formatNmse(run.nmse)}${predicted} at ${formatBits(run.bitsStored)} bits per entry.`;
  ui.summary.classList.remove('muted');
  ui.resultsBody.hidden = false;
  // The plot compares like with like: the last run of each scheme on the same data and size (the
  // permuted data also depends on the rotation seed: B's rotated columns are A's, permuted).
  const sameSetting = runs.filter(
    (r) =>
      r.request.dataKind === request.dataKind &&
      r.request.n === request.n &&
      r.request.cols === request.cols &&
      r.request.dataSeed === request.dataSeed &&
      (request.dataKind !== 'permuted' || r.request.rotationSeed === request.rotationSeed),
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
  redrawPlots = () => {
    drawRatePlot(ui.rdPlot, points);
    drawErrorPlot(ui.errorPlot, run.errorSample, request.scheme);
    plotWidths = [ui.rdPlot.clientWidth, ui.errorPlot.clientWidth];
  };
  redrawPlots();
  renderLatest(ui.latest, run);
  renderTimings(tableBody(ui.timings), run);
  renderHistory(tableBody(ui.history), runs);
  // A negative rate loss needs its explanation next to the table.
  const belowGamma = runs.filter((r) => r.rateLoss !== null && r.rateLoss < 0);
  ui.historyNote.hidden = belowGamma.length === 0;
  ui.historyNote.textContent =
    belowGamma.length === 0
      ? ''
      : `A negative rate loss (run${belowGamma.length === 1 ? '' : 's'} ${belowGamma.map((r) => `#${r.index}`).join(', ')}) ` +
        'means the NMSE lies below Γ, the bound for Gaussian (i.i.d.) matrices. Data with structure (spikes, low-rank, ' +
        'outlier rows, …) can be coded with less error than Gaussian data at the same rate, so Γ does not bound it; ' +
        'on Gaussian data a small product can dip below Γ by chance.';
}

function tableBody(table: HTMLTableElement): HTMLTableSectionElement {
  const body = table.tBodies[0];
  if (!body) throw new Error('demo page: a results table has no <tbody>');
  return body;
}

// ---- WebGPU ----

const GPU_LATTICE_ONLY = 'the GPU engine encodes lattice schemes only';

const CPU_FALLBACK = `The page runs the CPU reference instead, for sizes up to ${capsText('cpu')}.`;

/** What the GPU panel says while WebGPU works (restored after a GPU reset once a run succeeds again). */
let gpuReadyText = '';

/** The GPU's device was lost during a run: the panel says so until a WebGPU run succeeds again. */
function gpuWasReset(): void {
  ui.gpuStatus.textContent =
    'The GPU was reset during the last run (its WebGPU device was lost). The next WebGPU run starts it again.';
  ui.gpuStatus.classList.add('warning');
}

/** A WebGPU run succeeded: undo the reset notice, if any. */
function gpuWorks(): void {
  if (!handle.webgpu.available || !ui.gpuStatus.classList.contains('warning')) return;
  ui.gpuStatus.textContent = gpuReadyText;
  ui.gpuStatus.classList.remove('warning');
}

function useCpuOnly(reason: string): void {
  handle.webgpu = { available: false, reason, engine: handle.webgpu.engine };
  ui.gpuStatus.textContent = `No WebGPU: ${reason} ${CPU_FALLBACK}`;
  ui.gpuStatus.classList.add('warning');
  ui.backendWebgpu.disabled = true;
  ui.backendCpu.checked = true;
  ui.adapter.hidden = true;
  updateForm();
}

/**
 * How long the page waits for the worker's GPU engine (its device request and the engine's start): a
 * device request that never answers must not keep the page from its CPU runs.
 */
const ENGINE_START_TIMEOUT_MS = 60_000;

async function startWebGpu(): Promise<void> {
  const probe = await probeWebGpu();
  if (!probe.available) {
    useCpuOnly(probe.reason);
    return;
  }
  ui.gpuStatus.textContent = `WebGPU adapter found (${probe.description}); starting the engine…`;
  let status: Awaited<ReturnType<typeof client.gpuStatus>>;
  try {
    status = await withTimeout(client.gpuStatus(), ENGINE_START_TIMEOUT_MS, `the GPU engine did not start within ${ENGINE_START_TIMEOUT_MS / 1000} s`);
  } catch (error) {
    useCpuOnly(`a WebGPU adapter exists (${probe.description}), but ${error instanceof Error ? error.message : String(error)}.`);
    return;
  }
  if (!status.available) {
    handle.webgpu.engine = status;
    useCpuOnly(`a WebGPU adapter exists (${probe.description}), but the GPU engine could not start: ${status.reason}.`);
    return;
  }
  handle.webgpu = { available: true, reason: null, engine: status };
  const software = status.adapter.softwareRenderer
    ? ` This adapter is a software renderer (the GPU emulated on the CPU): results are right, timings are not a GPU’s, and sizes stop at ${capsText('software-webgpu')}, so that a run stays short enough to cancel.`
    : '';
  gpuReadyText = `WebGPU is ready: runs use your GPU (${probe.description}).${software}`;
  ui.gpuStatus.textContent = gpuReadyText;
  ui.backendWebgpu.disabled = false;
  ui.backendWebgpu.checked = true;
  renderAdapter(ui.adapter, status);
  updateForm();
}

// ---- start ----

fillSchemes(ui.scheme);
fillSelect(ui.data, DATA_KINDS, (kind) => DATA_KIND_TEXT[kind as DataKind]);
fillSelect(ui.gain, Object.keys(GAIN_LABELS), (mode) => `${GAIN_LABELS[mode as GainMode]} (${GAIN_NOTES[mode as GainMode]})`);
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

// Run and Run all stay disabled (also in the HTML) until the WebGPU check has decided the backend.
updateForm();
void startWebGpu()
  .catch((error: unknown) => useCpuOnly(error instanceof Error ? error.message : String(error)))
  .finally(() => {
    // Only the end of loading makes the page idle: never reset a state that has moved on.
    if (handle.state === 'loading') setState('idle');
  });
