import type { DemoRun } from './demoRun.js';
import { formatBits, formatCount, formatNmse, formatRate, formatSignedBits, formatTime } from './format.js';
import type { GpuStatus } from './runProtocol.js';
import { schemeStyle } from './schemeStyle.js';

/** Text or an element with a class, for `dd` and `td` cells. */
type Cell = string | { readonly text: string; readonly className: string } | Node;

function element<K extends keyof HTMLElementTagNameMap>(tag: K, content: Cell = '', className?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (typeof content === 'string') node.textContent = content;
  else if (content instanceof Node) node.append(content);
  else {
    node.textContent = content.text;
    node.className = content.className;
  }
  if (className) node.classList.add(className);
  return node;
}

/** Fills a `<dl>` with term–value pairs. */
function fillFacts(list: HTMLElement, facts: ReadonlyArray<readonly [string, Cell]>): void {
  list.replaceChildren(...facts.flatMap(([term, value]) => [element('dt', term), element('dd', value)]));
}

/** The adapter the engine runs on and the inner-product table layout it chose. */
export function renderAdapter(list: HTMLElement, status: GpuStatus): void {
  if (!status.available) {
    list.hidden = true;
    return;
  }
  const { adapter } = status;
  const facts: Array<readonly [string, Cell]> = [
    ['Vendor', adapter.vendor || '—'],
    ['Architecture', adapter.architecture || '—'],
  ];
  if (adapter.device) facts.push(['Device', adapter.device]);
  if (adapter.description) facts.push(['Description', adapter.description]);
  facts.push(
    ['Workgroup memory', `${formatCount(adapter.workgroupStorageBytes / 1024)} KiB`],
    ['Features', adapter.features.length > 0 ? adapter.features.join(', ') : 'none of the optional ones'],
    ['Software renderer', adapter.softwareRenderer ? 'yes (the GPU emulated on the CPU: lower size caps)' : 'no'],
    ['D3 table layout', status.tableLayout],
    ['Integer dot products (deterministic schemes)', status.dotPath],
  );
  fillFacts(list, facts);
  list.hidden = false;
}

/** The key numbers of the latest run. */
export function renderLatest(list: HTMLElement, run: DemoRun): void {
  const { request } = run;
  const swatch = element('span', '', 'swatch');
  swatch.style.background = schemeStyle(request.scheme).colour;
  const scheme = document.createDocumentFragment();
  scheme.append(swatch, run.label);
  const facts: Array<readonly [string, Cell]> = [
    ['Scheme', scheme],
    // The rotation seed is part of the permuted data (B's rotated columns are A's, permuted).
    ['Data', `${request.dataKind}, seed ${request.dataSeed}${request.dataKind === 'permuted' ? `, rotation seed ${request.rotationSeed}` : ''}`],
    ['Size', `A, B: ${formatCount(request.n)} × ${formatCount(request.cols)}; product ${formatCount(request.cols)} × ${formatCount(request.cols)}`],
    ['Ran on', ranOnText(run)],
    // A universal matrix stores one f32 norm per column beside its codes: 32/n bits per entry, which is
    // why a small n stores more per entry than the README's preset table (measured at n = 4096).
    [
      'Bits stored',
      run.predictedNmse === null
        ? `${formatBits(run.bitsStored)} per entry`
        : `${formatBits(run.bitsStored)} per entry, of which ${formatBits(32 / request.n)} for each column's f32 norm (32/n; the README's preset table is at n = 4096)`,
    ],
    ['Bits, entropy-coded', `${formatBits(run.bitsEntropy)} per entry`],
    [
      'Product NMSE',
      run.nmseSampledEntries === null
        ? formatNmse(run.nmse)
        : `≈ ${formatNmse(run.nmse)} (from ${formatCount(run.nmseSampledEntries)} sampled entries)`,
    ],
    [
      'Predicted NMSE',
      run.predictedNmse === null || run.measuredOverPredicted === null
        ? '— (only universal schemes have a guarantee)'
        : `${formatNmse(run.predictedNmse)} for any data of these norms (measured / predicted = ${run.measuredOverPredicted.toFixed(3)})`,
    ],
    ['Γ(bits stored)', formatNmse(run.gammaAtBits)],
    ['Rate loss', rateLossText(run)],
  ];
  if (run.nonces) facts.push(['Dither nonces', `A: ${run.nonces.a}, B: ${run.nonces.b} (the keys of A's and B's pseudo-random dither, drawn for this run)`]);
  if (run.productKernel) facts.push(['GPU product kernel', run.productKernel === 'd3-table' ? `d3-table (${run.tableLayout ?? '?'} layout)` : run.productKernel]);
  if (run.cpuCheck) {
    const check = run.cpuCheck;
    const same = check.valuesDiffering === 0;
    const codes = same
      ? `codes identical bit for bit (${formatCount(check.valuesCompared)} values)`
      : `${formatCount(check.valuesDiffering)} of ${formatCount(check.valuesCompared)} code values differ`;
    const gains = check.gainsRelativeDifference === null ? '' : `; gains within ${check.gainsRelativeDifference.toExponential(1)}`;
    facts.push([
      'Against the CPU',
      { text: `${codes}${gains}; product within ${check.productRelativeDifference.toExponential(1)}`, className: same ? 'ok' : 'bad' },
    ]);
  }
  if (run.cpuCheckSkipped !== null) facts.push(['Against the CPU', `not checked: ${run.cpuCheckSkipped}`]);
  fillFacts(list, facts);
}

/** Why a run's rate loss is negative (its NMSE lies below Γ): Γ bounds Gaussian (i.i.d.) data only. */
export function belowGammaReason(dataKind: string): string {
  if (dataKind === 'gaussian') return 'below Γ by chance: Γ bounds the expected error on Gaussian data, and a small product’s error fluctuates';
  return `below Γ, which bounds Gaussian (i.i.d.) data only: structured data such as ${dataKind} can beat it`;
}

function rateLossText(run: DemoRun): string {
  if (run.rateLoss === null) return '— (NMSE above 1)';
  const bits = `${formatSignedBits(run.rateLoss)} bits`;
  return run.rateLoss < 0 ? `${bits} (${belowGammaReason(run.request.dataKind)})` : bits;
}

/** Where a run ran, in words ("WebGPU (nvidia ampere)", "CPU reference"). */
export function ranOnText(run: Pick<DemoRun, 'ranOn' | 'adapter' | 'request'>): string {
  if (run.ranOn === 'webgpu') {
    // GPUAdapterInfo's vendor and architecture are "" where the browser does not reveal them (the
    // WebGPU spec allows it): name what there is, not "WebGPU ( )".
    const names = run.adapter ? [run.adapter.vendor, run.adapter.architecture].filter((part) => part) : [];
    return names.length > 0 ? `WebGPU (${names.join(' ')})` : 'WebGPU';
  }
  if (run.request.backend === 'webgpu') return 'CPU reference (the GPU engine encodes lattice schemes only)';
  return 'CPU reference';
}

/** Time per stage, with throughputs. */
export function renderTimings(body: HTMLTableSectionElement, run: DemoRun): void {
  const { n, cols } = run.request;
  const software = run.ranOn === 'webgpu' && run.adapter?.softwareRenderer === true;
  const on = run.ranOn === 'webgpu' ? (software ? 'GPU, software renderer' : 'GPU') : 'CPU';
  // Rates only where they say something of the hardware: not for a GPU run that compiles pipelines
  // (the first of its kernels or of its rotation on the device, `pipelineKeys`) or a worker's first
  // CPU run (the JavaScript engine warms up: 3–5× low rates were measured), nor on a software
  // renderer (the CPU emulating a GPU).
  const rated = run.ranOn === 'webgpu' ? !run.compilesGpuPipelines && !software : !run.firstCpuRun;
  const rate = (count: number, ms: number, unit: string): string => (rated ? formatRate(count, ms, unit) : '');
  const entries = n * cols;
  const t = run.timings;
  const rows: Array<[string, number, string]> = [
    ['Generate test data (CPU)', t.generate, ''],
    [`Quantize A (${on})`, t.quantizeA, rate(entries, t.quantizeA, 'entries')],
    [`Quantize B (${on})`, t.quantizeB, rate(entries, t.quantizeB, 'entries')],
    [`Product AᵀB (${on})`, t.product, rate(2 * n * cols * cols, t.product, 'FLOP')],
    ['Measure the error (CPU)', t.measure, ''],
    ...(run.cpuCheck === null ? [] : [['Check against the CPU reference (CPU)', t.cpuCheck, ''] as [string, number, string]]),
    ['Total', run.totalMs, ''],
  ];
  if (run.compilesGpuPipelines) {
    rows.push(['(The first run on this GPU device of its scheme’s kernels or of its rotation size also compiles GPU pipelines: no rates for it.)', Number.NaN, '']);
  }
  if (run.firstCpuRun) rows.push(['(The first CPU run also warms up the JavaScript engine: no rates for it.)', Number.NaN, '']);
  if (software) rows.push(["(WebGPU emulated on the CPU: its times say nothing of a GPU's, so no rates; the CPU reference is faster here.)", Number.NaN, '']);
  body.replaceChildren(
    ...rows.map(([stage, ms, rate]) => {
      if (Number.isNaN(ms)) {
        const note = element('td', stage, 'muted');
        note.colSpan = 2;
        const row = element('tr');
        row.append(note);
        return row;
      }
      const row = element('tr');
      row.append(element('td', stage), element('td', rate ? `${formatTime(ms)} · ${rate}` : formatTime(ms)));
      return row;
    }),
  );
}

/** Every run, newest first; the latest highlighted. */
export function renderHistory(body: HTMLTableSectionElement, runs: readonly DemoRun[]): void {
  const latest = runs[runs.length - 1];
  body.replaceChildren(
    ...[...runs].reverse().map((run) => {
      const { request } = run;
      const row = element('tr');
      if (run === latest) row.className = 'current';
      const swatch = element('span', '', 'swatch');
      swatch.style.background = schemeStyle(request.scheme).colour;
      const scheme = element('td');
      scheme.append(swatch, run.label);
      row.append(
        element('td', String(run.index)),
        scheme,
        element('td', request.dataKind),
        element('td', `${formatCount(request.n)} × ${formatCount(request.cols)}`),
        element('td', run.ranOn === 'webgpu' ? 'WebGPU' : 'CPU'),
        element('td', formatBits(run.bitsStored)),
        element('td', formatBits(run.bitsEntropy)),
        element('td', (run.nmseSampledEntries === null ? '' : '≈ ') + formatNmse(run.nmse)),
        element('td', run.predictedNmse === null ? '—' : formatNmse(run.predictedNmse)),
        element('td', formatNmse(run.gammaAtBits)),
        element('td', formatSignedBits(run.rateLoss)),
        element('td', formatTime(run.totalMs)),
      );
      return row;
    }),
  );
}
