import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoRun } from '../../demo/demoRun.js';
import {
  expectedNmse,
  gamma,
  matmulAT,
  quantize,
  SCHEMES,
  testMatrixPair,
  type Matrix,
  type QuantizedMatrix,
  type QuantizeOptions,
} from '../../src/index.js';
import { errorSample } from '../../demo/measure.js';
import {
  browserUnavailableReason,
  launchChromium,
  startBuiltDemo,
  startDemoServer,
  watchPageErrors,
  type Chromium,
} from './browserHarness.js';
import {
  clickAndWaitForRuns,
  fillForm,
  openDemo,
  readHandle,
  seedsOf,
  type FormSettings,
} from './demoPage.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';

/*
 * The demo page in headless Chromium: with WebGPU on SwiftShader, and without WebGPU (the CPU
 * fallback). Every result the page reports is checked against the CPU reference computed here from the
 * same seeds (and, for universal schemes, the dither nonces the page reports), and its NMSE against an
 * exact product computed here with plain loops.
 */

const unavailable = browserUnavailableReason();
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const INDEX_HTML = fileURLToPath(new URL('../../demo/index.html', import.meta.url));

/** How the page's Gain picker names each mode (and run labels repeat). */
const GAIN_WORDS = { unbiased: 'unbiased', mmse: 'MMSE', none: 'none' } as const;

interface Reference {
  readonly a: Matrix;
  readonly b: Matrix;
  /** A quantized here, with the run's options (and nonce). */
  readonly qa: QuantizedMatrix;
  readonly product: Matrix;
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  /** expectedNmse of the two quantized matrices, null for schemes without the guarantee. */
  readonly predictedNmse: number | null;
}

function cpuReference(settings: FormSettings, run: DemoRun): Reference {
  const { dataSeed, rotationSeed } = seedsOf(settings);
  const { a, b } = testMatrixPair(settings.dataKind, settings.n, settings.cols, settings.cols, dataSeed, rotationSeed);
  const scheme = SCHEMES[settings.scheme];
  const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
  const base: QuantizeOptions = {
    scheme: settings.scheme,
    seed: rotationSeed,
    ...(scheme.kind === 'lattice' && scheme.mode === 'deterministic' ? { gain: settings.gain ?? 'unbiased' } : {}),
  };
  // Universal runs draw their nonces in the page; it reports them so the run can be reproduced here.
  expect(run.nonces === null).toBe(!universal);
  const options = (which: 'a' | 'b'): QuantizeOptions => (run.nonces ? { ...base, nonce: BigInt(run.nonces[which]) } : base);
  const qa = quantize(a, options('a'));
  const qb = quantize(b, options('b'));
  return {
    a,
    b,
    qa,
    // A WebGPU 'universal-i8' product drops a small term that matmulAT keeps: its own CPU twin is the reference.
    product: run.productKernel === 'universal-i8' ? universalPairProduct(qa, qb) : matmulAT(qa, qb),
    bitsStored: (qa.bitsStored + qb.bitsStored) / 2,
    bitsEntropy: (qa.bitsEntropy + qb.bitsEntropy) / 2,
    predictedNmse: universal ? expectedNmse(qa, qb) : null,
  };
}

/** n·‖C − AᵀB‖²_F / (‖A‖²_F·‖B‖²_F) with AᵀB from plain loops (independent of the library's NMSE). */
function nmseOf(product: readonly number[], a: Matrix, b: Matrix): number {
  const n = a.rows;
  let error = 0;
  for (let j = 0; j < b.cols; j++) {
    for (let i = 0; i < a.cols; i++) {
      let exact = 0;
      for (let k = 0; k < n; k++) exact += (a.data[i * n + k] as number) * (b.data[j * n + k] as number);
      error += ((product[j * a.cols + i] as number) - exact) ** 2;
    }
  }
  const energy = (m: Matrix): number => m.data.reduce((sum, v) => sum + v * v, 0);
  return (n * error) / (energy(a) * energy(b));
}

/** The page's run agrees with the CPU reference: bits exactly, product within `tolerance` of max |C|. */
function expectMatchesReference(run: DemoRun, settings: FormSettings, tolerance: number): void {
  const reference = cpuReference(settings, run);
  expect(run.request).toMatchObject({ scheme: settings.scheme, n: settings.n, cols: settings.cols, dataKind: settings.dataKind });
  expect(run.request.backend).toBe(settings.backend);
  expect(run.bitsStored).toBeCloseTo(reference.bitsStored, 12);
  expect(run.bitsEntropy).toBeCloseTo(reference.bitsEntropy, 12);
  const product = run.product;
  expect(product).not.toBeNull();
  if (!product) return;
  expect([product.rows, product.cols]).toEqual([settings.cols, settings.cols]);
  const scale = Math.max(...Array.from(reference.product.data, Math.abs));
  let worst = 0;
  product.data.forEach((value, i) => {
    worst = Math.max(worst, Math.abs(value - (reference.product.data[i] as number)));
  });
  expect(worst / scale).toBeLessThanOrEqual(tolerance);
  // The page's NMSE is exact at these sizes and equals the one recomputed here from its own product.
  expect(run.nmseSampledEntries).toBeNull();
  const nmse = nmseOf(product.data, reference.a, reference.b);
  expect(run.nmse).toBeGreaterThan(0);
  expect(Math.abs(run.nmse - nmse) / nmse).toBeLessThan(1e-6);
  // No scheme beats the Gaussian bound on Gaussian data at these sizes by more than chance allows.
  if (settings.dataKind === 'gaussian') expect(run.nmse).toBeGreaterThan(0.5 * gamma(run.bitsStored));
  expect(run.rateLoss).not.toBeNull();
  expect(run.errorSample.input.length).toBeGreaterThan(0);
  expect(run.errorSample.rmsError).toBeGreaterThan(0);
  // The error picture is of A's first column and its own quantization, under the run's rotation seed
  // (errorSample's arithmetic itself: demoMeasure.test.ts). GPU runs decode their own read-back codes,
  // identical to these; deterministic gains (f32 sums on the GPU) differ by about 1e-7.
  const picture = errorSample(reference.a, reference.qa, seedsOf(settings).rotationSeed);
  expect(run.errorSample.input).toHaveLength(picture.input.length);
  expect(Math.max(...run.errorSample.input.map((x, i) => Math.abs(x - (picture.input[i] as number))))).toBeLessThanOrEqual(1e-9);
  expect(Math.abs(run.errorSample.rmsError - picture.rmsError)).toBeLessThanOrEqual(1e-4 * picture.rmsError);
  // Universal schemes: the page's prediction is the library's, and the measurement is near it. On
  // Gaussian data one a × b product's NMSE has a relative std of about √(2/(a·b)) around the prediction
  // (measured: 0.04 at 32 × 32), ≤ 0.12 at the sizes here (≥ 12 × 12), so ±50% is over 4 of them.
  if (reference.predictedNmse === null) {
    expect(run.predictedNmse).toBeNull();
    expect(run.measuredOverPredicted).toBeNull();
  } else {
    expect(run.predictedNmse).toBeCloseTo(reference.predictedNmse, 12);
    expect(run.measuredOverPredicted).toBeCloseTo(run.nmse / reference.predictedNmse, 9);
    if (settings.dataKind === 'gaussian') expect(Math.abs(run.nmse / reference.predictedNmse - 1)).toBeLessThan(0.5);
  }
}

/** A filled marker of the rate–distortion plot: the values it stands for, where it is drawn, and how. */
interface PlotPoint {
  readonly scheme: string;
  readonly bits: number;
  readonly nmse: number;
  readonly cx: number;
  readonly cy: number;
  readonly area: number;
  readonly stacked: boolean;
  /** Whether its centre lies inside the shaded region under Γ. */
  readonly inRegion: boolean;
}

async function readRatePlot(page: Page): Promise<{ rateAxisMax: number; points: PlotPoint[] }> {
  return page.evaluate(() => {
    const region = document.querySelector('#rd-plot polygon.unreachable') as SVGPolygonElement;
    const ticks = Array.from(document.querySelectorAll('#rd-plot .rate-tick')).map((node) => Number(node.textContent));
    const points = Array.from(document.querySelectorAll('#rd-plot g.point')).map((group) => {
      const marker = group.querySelector('.stored') as SVGGraphicsElement;
      const box = marker.getBBox();
      const centre = new DOMPoint(box.x + box.width / 2, box.y + box.height / 2);
      return {
        scheme: group.getAttribute('data-scheme') ?? '',
        bits: Number(group.getAttribute('data-bits')),
        nmse: Number(group.getAttribute('data-nmse')),
        cx: centre.x,
        cy: centre.y,
        area: box.width * box.height,
        stacked: marker.classList.contains('stacked'),
        inRegion: region.isPointInFill(centre),
      };
    });
    return { rateAxisMax: Math.max(...ticks), points };
  });
}

describe.skipIf(unavailable !== undefined)('demo page in headless Chromium', () => {
  let server: ViteDevServer;
  let url: string;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ({ server, url } = await startDemoServer());
  });

  afterAll(async () => {
    await server?.close();
  });

  describe('with WebGPU (SwiftShader)', () => {
    let chromium: Chromium;
    let page: Page;
    let errors: string[];

    beforeAll(async () => {
      chromium = await launchChromium({ webgpu: true });
      page = await chromium.browser.newPage();
      errors = watchPageErrors(page);
      await openDemo(page, url);
    });

    afterAll(async () => {
      await chromium?.close();
    });

    it('loads with no console errors and starts the GPU engine', async () => {
      const handle = await readHandle(page);
      expect(handle.webgpu.reason).toBeNull();
      expect(handle.webgpu.available).toBe(true);
      expect(handle.webgpu.engine).toMatchObject({ available: true });
      const status = await page.$eval('#gpu-status', (node) => node.textContent ?? '');
      expect(status).toMatch(/WebGPU is ready/);
      // SwiftShader is a software renderer: the page says so, with the lower caps that keep a run cancellable.
      expect(handle.webgpu.engine).toMatchObject({ adapter: { softwareRenderer: true } });
      expect(status).toContain('sizes stop at n × columns = 1,048,576, n × columns² = 134,217,728 and columns² = 1,048,576, so that');
      const adapterText = await page.$eval('#adapter', (node) => node.textContent ?? '');
      expect(adapterText).toMatch(/D3 table layout(full|triangle|leaders)/);
      expect(adapterText).toMatch(/Software rendereryes/);
      expect(errors).toEqual([]);
    });

    it('offers the presets of SCHEMES, a universal one selected, and the gain only for deterministic schemes', async () => {
      const options = await page.$$eval('#scheme option', (nodes) => nodes.map((node) => (node as HTMLOptionElement).value));
      expect([...options].sort()).toEqual(Object.keys(SCHEMES).sort());
      const selected = await page.$eval('#scheme', (select) => (select as HTMLSelectElement).value);
      expect(SCHEMES[selected as keyof typeof SCHEMES]).toMatchObject({ kind: 'lattice', mode: 'universal' });
      const gainShown = async () => page.$eval('#gain-field', (node) => !(node as HTMLElement).hidden && getComputedStyle(node).display !== 'none');
      expect(await gainShown()).toBe(false);
      for (const [scheme, shown] of [
        ['d3-q6-deterministic', true],
        ['e8-2bit', false],
        ['e8-q16-deterministic', true],
        ['int4-g32', false],
        ['d3-q6', false],
      ] as const) {
        await page.select('#scheme', scheme);
        expect(await gainShown(), scheme).toBe(shown);
        expect(await page.$eval('#gain', (select) => (select as HTMLSelectElement).disabled), scheme).toBe(!shown);
      }
      expect(errors).toEqual([]);
    });

    // Lattice schemes run on the GPU engine; the scalar baselines run on the CPU reference even when
    // WebGPU is chosen (the engine encodes lattice schemes only), which the page must say.
    const gpuRuns: Array<FormSettings & { label: string; ranOn: 'webgpu' | 'cpu'; kernel: string | null }> = [
      { label: 'd3-q6 (universal)', scheme: 'd3-q6', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu', ranOn: 'webgpu', kernel: 'universal-i8' },
      { label: 'e8-q16 (universal)', scheme: 'e8-q16', n: 100, cols: 12, dataKind: 'heavy-tailed', backend: 'webgpu', dataSeed: 3, ranOn: 'webgpu', kernel: 'universal-i8' },
      { label: 'e8-5bit (universal, 37-bit codes)', scheme: 'e8-5bit', n: 128, cols: 12, dataKind: 'gaussian', backend: 'webgpu', ranOn: 'webgpu', kernel: 'universal-i8' },
      { label: 'd3-q6-deterministic, unbiased gain', scheme: 'd3-q6-deterministic', gain: 'unbiased', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu', ranOn: 'webgpu', kernel: 'd3-table' },
      { label: 'e8-q16-deterministic, MMSE gain', scheme: 'e8-q16-deterministic', gain: 'mmse', n: 100, cols: 12, dataKind: 'heavy-tailed', backend: 'webgpu', dataSeed: 3, ranOn: 'webgpu', kernel: 'e8-dot' },
      { label: 'd3-q6-deterministic, no gain', scheme: 'd3-q6-deterministic', gain: 'none', n: 200, cols: 24, dataKind: 'outlier-rows', backend: 'webgpu', rotationSeed: 11, ranOn: 'webgpu', kernel: 'd3-table' },
      { label: 'int4-g32', scheme: 'int4-g32', n: 96, cols: 16, dataKind: 'outlier-rows', backend: 'webgpu', rotationSeed: 11, ranOn: 'cpu', kernel: null },
      { label: 'nvfp4', scheme: 'nvfp4', n: 64, cols: 8, dataKind: 'low-rank', backend: 'webgpu', ranOn: 'cpu', kernel: null },
    ];
    it.each(gpuRuns)('$label on $dataKind data ($n × $cols), WebGPU chosen: runs on $ranOn and matches the CPU reference', async (settings) => {
      await fillForm(page, settings);
      const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(run.ranOn).toBe(settings.ranOn);
      expect(run.productKernel).toBe(settings.kernel);
      const universal = SCHEMES[settings.scheme].kind === 'lattice' && (SCHEMES[settings.scheme] as { mode?: string }).mode === 'universal';
      const deterministic = SCHEMES[settings.scheme].kind === 'lattice' && !universal;
      if (settings.ranOn === 'webgpu') {
        // Products are sums of many terms: the GPU adds them in another order (ARCHITECTURE.md).
        expectMatchesReference(run, settings, 1e-5);
        expect(run.tableLayout).toEqual(expect.any(String));
        expect(run.adapter?.architecture).toBe('swiftshader');
        // The page's own check: the GPU's codes are the CPU's, bit for bit; gains (f32 sums) nearly.
        expect(run.cpuCheck).not.toBeNull();
        expect(run.cpuCheck?.valuesCompared).toBeGreaterThan(0);
        expect(run.cpuCheck?.valuesDiffering).toBe(0);
        if (!deterministic || settings.gain === 'none') expect(run.cpuCheck?.gainsRelativeDifference).toBeNull();
        else expect(run.cpuCheck?.gainsRelativeDifference).toBeLessThan(1e-5);
      } else {
        expectMatchesReference(run, settings, 1e-6);
        expect(run.cpuCheck).toBeNull();
        expect(await page.$eval('#latest', (node) => node.textContent ?? '')).toMatch(/GPU engine encodes lattice schemes only/);
      }
      // The label names the gain only where there is one, in the Gain picker's words.
      expect(run.label).toBe(deterministic ? `${settings.scheme} (gain: ${GAIN_WORDS[settings.gain ?? 'unbiased']})` : settings.scheme);
      const latest = await page.$eval('#latest', (node) => node.textContent ?? '');
      if (universal) {
        expect(latest).toMatch(/Predicted NMSE\s*[\d.e-]+ for any data/);
        // Stored bits say what the norms cost at this n (why they exceed the README's table at n = 4096).
        expect(latest).toMatch(/Bits stored\s*[\d.]+ per entry, of which [\d.]+ for each column's f32 norm \(32\/n; the README's preset table is at n = 4096\)/);
        expect(latest).toContain(run.nonces?.a ?? 'no nonce');
        expect(await page.$eval('#summary', (node) => node.textContent ?? '')).toMatch(/\(predicted [\d.e-]+\)/);
      } else {
        expect(latest).toMatch(/Predicted NMSE\s*— \(only universal schemes have a guarantee\)/);
      }
      expect(errors).toEqual([]);
    });

    it('universal runs draw fresh nonces each time (independent errors), the same data otherwise', async () => {
      const settings: FormSettings = { scheme: 'e8-q16', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      const first = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      const second = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(first.nonces).not.toBeNull();
      expect(second.nonces).not.toBeNull();
      expect(new Set([first.nonces?.a, first.nonces?.b, second.nonces?.a, second.nonces?.b]).size).toBe(4);
      expect(second.predictedNmse).toBe(first.predictedNmse);
      expectMatchesReference(second, settings, 1e-5);
      expect(errors).toEqual([]);
    });

    it('says when a WebGPU run was not checked against the CPU, and why (above the CPU cap, or the check turned off)', async () => {
      // 2100 × 128 = 268,800 entries: above the CPU reference's cap (2^18), within a software renderer's.
      const large: FormSettings = { scheme: 'd3-q6-deterministic', gain: 'unbiased', n: 2100, cols: 128, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, large);
      const unchecked = await clickAndWaitForRuns(page, '#run', 1, 120_000);
      expect(unchecked.ranOn).toBe('webgpu');
      expect(unchecked.cpuCheck).toBeNull();
      expect(unchecked.cpuCheckSkipped).toMatch(/n × columns = 268,800 is more than the CPU reference runs here/);
      expect(await page.$eval('#latest', (node) => node.textContent ?? '')).toMatch(/Against the CPU\s*not checked: n × columns = 268,800/);

      const small: FormSettings = { scheme: 'd3-q6', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, small);
      const setCheck = (checked: boolean): Promise<void> =>
        page.$eval('#check-cpu', (input, value) => {
          (input as HTMLInputElement).checked = value;
          input.dispatchEvent(new Event('change', { bubbles: true }));
        }, checked);
      await setCheck(false);
      try {
        const off = await clickAndWaitForRuns(page, '#run', 1, 60_000);
        expect(off.cpuCheck).toBeNull();
        expect(off.cpuCheckSkipped).toMatch(/turned off/);
        expect(await page.$eval('#latest', (node) => node.textContent ?? '')).toMatch(/Against the CPU\s*not checked: the check against the CPU reference is turned off/);
      } finally {
        await setCheck(true);
      }
      const on = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(on.cpuCheckSkipped).toBeNull();
      expect(on.cpuCheck?.valuesDiffering).toBe(0);
      expect(errors).toEqual([]);
    });

    it('runs every scheme for the baselines and draws the plots (screenshot in test-artifacts/demo.png)', async () => {
      const settings: FormSettings = { scheme: 'e8-q16', n: 256, cols: 32, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      const schemes = Object.keys(SCHEMES).length;
      const run = await clickAndWaitForRuns(page, '#run-all', schemes, 180_000);
      expect(run.request).toMatchObject({ scheme: 'e8-q16', backend: 'webgpu' });
      // One legend entry per family (the E8 rate presets share one), markers per scheme, and Γ's curve.
      const legendEntries = await page.$$eval('#rd-plot .legend li', (nodes) => nodes.map((node) => node.textContent));
      expect(legendEntries).toEqual(
        expect.arrayContaining(['E8 (universal)', 'D3, q = 6 (universal)', 'D3, q = 6 (deterministic)', 'E8, q = 16 (deterministic)', 'INT4, group 32', 'NVFP4']),
      );
      expect(legendEntries.filter((text) => text === 'E8 (universal)')).toHaveLength(1);
      expect(await page.$$eval('#rd-plot polyline.curve', (nodes) => nodes.length)).toBe(1);
      expect(await page.$$eval('#error-plot circle', (nodes) => nodes.length)).toBe(Math.min(384, 256));
      expect(await page.$$eval('#history tbody tr', (nodes) => nodes.length)).toBe((await readHandle(page)).runs);
      // The history shows a prediction for each universal run and a dash for the others.
      const rows = await page.$$eval('#history tbody tr', (nodes) => nodes.map((row) => ({ label: row.children[1]?.textContent ?? '', value: row.children[8]?.textContent ?? '' })));
      for (const { label, value } of rows.slice(0, schemes)) {
        const scheme = (label.split(' ')[0] ?? '') as keyof typeof SCHEMES;
        const universal = SCHEMES[scheme]?.kind === 'lattice' && (SCHEMES[scheme] as { mode?: string }).mode === 'universal';
        expect(value === '—', `${label}: ${value}`).toBe(!universal);
      }
      // The check against the CPU reference (on by default) has a row of its own: it was counted in
      // "Measure the error" before, which made that stage look far slower (514 ms against 26 ms at 768 × 128).
      const stages = await page.$$eval('#timings tbody tr', (nodes) => nodes.map((row) => row.children[0]?.textContent ?? ''));
      expect(stages).toEqual(expect.arrayContaining(['Measure the error (CPU)', 'Check against the CPU reference (CPU)', 'Total']));
      // SwiftShader is a software renderer: its GPU stages are labelled so and given no rates (a rate
      // there would be the CPU's speed emulating a GPU, and a first run's would include compiling).
      const cells = await page.$$eval('#timings tbody tr', (nodes) => nodes.map((row) => Array.from(row.children, (cell) => cell.textContent ?? '')));
      const product = cells.find(([stage]) => stage?.startsWith('Product AᵀB'));
      expect(product?.[0]).toBe('Product AᵀB (GPU, software renderer)');
      expect(product?.[1]).not.toMatch(/FLOP\/s/);
      expect(stages.some((stage) => /WebGPU emulated on the CPU: its times say nothing of a GPU's, so no rates/.test(stage))).toBe(true);
      await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });
      expect(errors).toEqual([]);
    }, 240_000);

    it('suggests WebGPU for a refused CPU size only where the CPU cap is the reason and WebGPU would run it', async () => {
      await fillForm(page, { scheme: 'e8-q16', n: 768, cols: 128, dataKind: 'gaussian', backend: 'cpu' });
      const hintFor = async (changes: { n?: string; cols?: string; scheme?: string; data?: string }, runs = false): Promise<string> => {
        if (changes.scheme) await page.select('#scheme', changes.scheme);
        if (changes.data) await page.select('#data', changes.data);
        for (const [selector, value] of [['#n', changes.n], ['#cols', changes.cols]] as const) {
          if (value === undefined) continue;
          await page.$eval(
            selector,
            (input, text) => {
              (input as HTMLInputElement).value = text;
              input.dispatchEvent(new Event('input', { bubbles: true }));
            },
            value,
          );
        }
        expect(await page.$eval('#run', (button) => (button as HTMLButtonElement).disabled)).toBe(!runs);
        return page.$eval('#size-hint', (node) => node.textContent ?? '');
      };
      const suggestion = /WebGPU/;
      // Beyond the CPU cap, within WebGPU's: the one case for the suggestion.
      expect(await hintFor({ n: '4096', cols: '128' })).toMatch(suggestion);
      // Not the CPU cap: out of range, empty, or refused by WebGPU too.
      for (const [n, cols] of [['7', '128'], ['', '128'], ['768', '0'], ['9000', '16'], ['8192', '4096']] as const) {
        const hint = await hintFor({ n, cols });
        expect(hint, `n = ${n}, cols = ${cols}`).not.toMatch(suggestion);
      }
      // Permuted data at an n that is not a rotation length (200 pads to 256; past 256 every n is one):
      // WebGPU refuses it too, within the CPU cap (the data's reason) and beyond it (200 · 700² > 2^26: both reasons).
      expect(await hintFor({ n: '200', cols: '128', data: 'permuted' })).toMatch(/rotation length/);
      expect(await hintFor({ n: '200', cols: '700' })).not.toMatch(suggestion);
      // An n past the safe integers with permuted data is refused like any n out of range (the data's
      // check threw on it: an uncaught error, the last hint left up and Run enabled).
      expect(await hintFor({ n: '256', cols: '16' }, true)).toMatch(/^A and B are 256 × 16/);
      expect(await hintFor({ n: '1e16', cols: '16' })).toBe('n must be a whole number from 8 to 8192.');
      // At a rotation length the CPU cap is the only reason again.
      expect(await hintFor({ n: '1024', cols: '300' })).toMatch(suggestion);
      // Within a GPU's caps but not a software renderer's (SwiftShader here): no suggestion.
      expect(await hintFor({ n: '1024', cols: '512' })).not.toMatch(suggestion);
      // WebGPU chosen: the software renderer's own cap is the reason given.
      await page.click('#backend-webgpu');
      expect(await hintFor({ n: '1024', cols: '512' })).toBe('n × columns² = 268,435,456 multiply-adds is more than WebGPU on a software renderer runs here (134,217,728).');
      // A wide, short size within its n × columns and n × columns² caps (8 · 4096² = 2^27) but beyond its
      // cap on the product's entries: 8 × 4096 took 40–54 s here (demo/limits.ts); 8 × 1024 runs.
      expect(await hintFor({ n: '8', cols: '4096' })).toBe(
        'columns² = 16,777,216 entries of AᵀB is more than WebGPU on a software renderer runs here (1,048,576, that is up to 1,024 columns).',
      );
      expect(await hintFor({ n: '8', cols: '1024' }, true)).toMatch(/^A and B are 8 × 1,024;/);
      // Within the CPU's n × columns cap but beyond its n × columns² one: the note on the skipped scalar
      // baselines gives that reason (it said "up to n × columns = 262,144" of 300 × 500 = 150,000).
      expect(await hintFor({ n: '300', cols: '500' }, true)).toMatch(
        /“Run all schemes” skips the scalar baselines at this size: they run on the CPU reference, and n × columns² = 75,000,000 multiply-adds is more than the CPU reference runs here \(67,108,864\)\.$/,
      );
      await page.click('#backend-cpu');
      await page.select('#data', 'gaussian');
      // A scalar baseline runs on the CPU reference under WebGPU as well.
      expect(await hintFor({ n: '8192', cols: '64', scheme: 'int4-g32' })).not.toMatch(suggestion);
      await page.select('#scheme', 'e8-q16');
      expect(errors).toEqual([]);
    });

    it('after the GPU device is lost, says so plainly and runs on a new device next time', async () => {
      const settings: FormSettings = { scheme: 'e8-q16', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      const worker = page.workers().find((w) => w.url().includes('runWorker'));
      expect(worker).toBeDefined();
      // A GPU reset, as device.destroy() on the next command encoder of the run.
      await worker?.evaluate(() => {
        const original = GPUDevice.prototype.createCommandEncoder;
        GPUDevice.prototype.createCommandEncoder = function (this: GPUDevice, ...args: Parameters<typeof original>) {
          GPUDevice.prototype.createCommandEncoder = original;
          const encoder = original.apply(this, args);
          this.destroy();
          return encoder;
        };
      });
      await page.click('#run');
      await page.waitForFunction(() => ['done', 'error'].includes(window.__latticeDemo.state), { timeout: 60_000 });
      expect((await readHandle(page)).state).toBe('error');
      const runError = await page.$eval('#run-error', (node) => node.textContent ?? '');
      expect(runError).toMatch(/^The GPU was reset during the run, so the run stopped \(the WebGPU device was lost: [^)]*[^.)]\)\. Run it again/);
      expect(runError).not.toMatch(/requestGpuDevice|engines/);
      const status = async (): Promise<string> => page.$eval('#gpu-status', (node) => node.textContent ?? '');
      expect(await status()).toMatch(/The GPU was reset during the last run/);
      expect(await status()).not.toMatch(/WebGPU is ready/);
      // The next run requests a new device and works; the panel is ready again.
      const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(run.ranOn).toBe('webgpu');
      expect(run.compilesGpuPipelines).toBe(true);
      expectMatchesReference(run, settings, 1e-5);
      expect(await status()).toMatch(/^WebGPU is ready/);
      expect(await page.$eval('#run-error', (node) => (node as HTMLElement).hidden)).toBe(true);
      expect(errors).toEqual([]);
    });

    it('extends the rate axis to the largest rate (n = 8: up to 20 bits), never drawing a point inside Γ’s region by mistake', async () => {
      await fillForm(page, { scheme: 'e8-q16', n: 8, cols: 1, dataKind: 'gaussian', backend: 'cpu' });
      await clickAndWaitForRuns(page, '#run-all', Object.keys(SCHEMES).length, 60_000);
      const plot = await readRatePlot(page);
      const largest = Math.max(...plot.points.map((p) => p.bits));
      expect(largest).toBeGreaterThan(6);
      expect(plot.rateAxisMax).toBeGreaterThanOrEqual(largest);
      for (const point of plot.points) {
        // Inside the shaded region exactly when the NMSE is below Γ at the point's own rate.
        const ratio = point.nmse / gamma(point.bits);
        if (Math.abs(ratio - 1) > 0.05) expect(point.inRegion, `${point.scheme}: NMSE / Γ = ${ratio}`).toBe(ratio < 1);
      }
      expect(errors).toEqual([]);
    });

    it('keeps the latest run’s label inside the plot at the right edge, and plots permuted data of another rotation seed apart', async () => {
      // 11.75 bits on a 0–12 axis (the audit's case): the label was drawn from the point rightwards, off the plot.
      await fillForm(page, { scheme: 'd3-q6-deterministic', gain: 'unbiased', n: 8, cols: 1, dataKind: 'gaussian', backend: 'cpu' });
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      const label = await page.$eval('#rd-plot svg', (root) => {
        const text = root.querySelector('g.point text') as SVGTextElement;
        const box = text.getBBox();
        return { left: box.x, right: box.x + box.width, width: Number(root.getAttribute('viewBox')?.split(' ')[2]), text: text.textContent };
      });
      expect(label.text).toMatch(/^d3-q6-deterministic/);
      expect(label.left).toBeGreaterThanOrEqual(0);
      expect(label.right, JSON.stringify(label)).toBeLessThanOrEqual(label.width);
      // Permuted data depends on the rotation seed (B's rotated columns are A's, permuted): runs with
      // another one are other data, not a point of the same plot.
      await fillForm(page, { scheme: 'e8-q16', n: 256, cols: 16, dataKind: 'permuted', backend: 'cpu', rotationSeed: 7 });
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      await fillForm(page, { scheme: 'e8-q16-deterministic', n: 256, cols: 16, dataKind: 'permuted', backend: 'cpu', rotationSeed: 99 });
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect((await readRatePlot(page)).points.map((p) => p.scheme)).toEqual(['e8-q16-deterministic']);
      expect(await page.$eval('#latest', (node) => node.textContent ?? '')).toMatch(/Datapermuted, seed 1, rotation seed 99/);
      await fillForm(page, { scheme: 'e8-q16', n: 256, cols: 16, dataKind: 'permuted', backend: 'cpu', rotationSeed: 99 });
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect((await readRatePlot(page)).points.map((p) => p.scheme).sort()).toEqual(['e8-q16', 'e8-q16-deterministic']);
      // Another data seed is other data as well: its run starts a plot of its own.
      await fillForm(page, { scheme: 'e8-q16', n: 256, cols: 16, dataKind: 'permuted', backend: 'cpu', rotationSeed: 99, dataSeed: 2 });
      await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect((await readRatePlot(page)).points.map((p) => p.scheme)).toEqual(['e8-q16']);
      expect(errors).toEqual([]);
    });

    it('calls Γ’s region unreachable for Gaussian data and explains negative rate losses (spikes data); stacked markers stay visible', async () => {
      // The deterministic codes with the unbiased gain (earlier tests left another one selected).
      await fillForm(page, { scheme: 'e8-q16-deterministic', gain: 'unbiased', n: 256, cols: 16, dataKind: 'spikes', backend: 'cpu' });
      await page.select('#scheme', 'nvfp4');
      const run = await clickAndWaitForRuns(page, '#run-all', Object.keys(SCHEMES).length, 60_000);
      expect(run.request.scheme).toBe('nvfp4');
      expect(run.rateLoss).toBeLessThan(0);
      expect(await page.$eval('#rd-plot .region-label', (node) => node.textContent ?? '')).toMatch(/^unreachable for\s?Gaussian data$/);
      expect(await page.$eval('#rd-caption', (node) => node.textContent ?? '')).toMatch(/unreachable for Gaussian data/);
      const latest = await page.$eval('#latest', (node) => node.textContent ?? '');
      expect(latest).toMatch(/Rate loss−[\d.]+ bits \(below Γ, which bounds Gaussian \(i\.i\.d\.\) data only: structured data such as spikes can beat it\)/);
      const note = await page.$eval('#history-note', (node) => ((node as HTMLElement).hidden ? null : node.textContent));
      expect(note).toMatch(/negative rate loss .*#\d+.*bound for Gaussian \(i\.i\.d\.\) matrices/);
      // NVFP4 and the deterministic E8 code land on the same spot here: the later marker is drawn smaller
      // and outlined, so both show.
      const plot = await readRatePlot(page);
      const stacked = plot.points.filter((p) => p.stacked);
      expect(stacked.length).toBeGreaterThan(0);
      plot.points.forEach((later, j) => {
        for (const earlier of plot.points.slice(0, j)) {
          if (Math.hypot(later.cx - earlier.cx, later.cy - earlier.cy) >= 3) continue;
          expect(later.stacked, `${later.scheme} over ${earlier.scheme}`).toBe(true);
          expect(later.area, `${later.scheme} over ${earlier.scheme}`).toBeLessThan(0.5 * earlier.area);
        }
      });
      expect(errors).toEqual([]);
    });

    it('cancels a long run at once (the worker is terminated) and runs again afterwards', async () => {
      const destroyed: unknown[] = [];
      page.on('workerdestroyed', (worker) => destroyed.push(worker));
      const activeId = (): Promise<string> => page.evaluate(() => document.activeElement?.id ?? '');
      await fillForm(page, { scheme: 'e8-q16', n: 1024, cols: 256, dataKind: 'gaussian', backend: 'cpu' });
      // From the keyboard: Enter on Run, and the focus moves to Cancel (Run is disabled while it runs),
      // so a second Enter cancels; afterwards the focus is back on Run, not lost to <body>.
      await page.focus('#run');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => window.__latticeDemo.state === 'running');
      expect(await activeId()).toBe('cancel');
      // The progress bar has a name for screen readers (it had none), and the stage as its description.
      const progress = await page.accessibility.snapshot({ root: (await page.$('#progress')) ?? undefined, interestingOnly: false });
      expect(progress).toMatchObject({ role: 'progressbar', name: 'Run progress' });
      const started = Date.now();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => window.__latticeDemo.state === 'cancelled', { timeout: 5_000 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await activeId()).toBe('run');
      // The plots still show the last finished run, and the summary says so.
      const last = (await readHandle(page)).lastResult;
      expect(await page.$eval('#summary', (node) => node.textContent ?? '')).toBe(
        `Run cancelled. The results below are from the last run that finished (#${last?.index}, ${last?.label} on ` +
          `${last?.request.dataKind} data, ${last?.request.n.toLocaleString('en-US')} × ${last?.request.cols})`.replace(/\)$/, ').'),
      );
      await expect.poll(() => destroyed.length, { timeout: 5_000 }).toBeGreaterThan(0);
      // The fresh worker's first CPU run warms up the JavaScript engine: no rates for it (they were
      // 3–5× low), and a note says why; the next one has them.
      const rateCells = async (): Promise<string[]> => page.$$eval('#timings tbody tr', (nodes) => nodes.map((row) => row.children[1]?.textContent ?? ''));
      const timingStages = async (): Promise<string[]> => page.$$eval('#timings tbody tr', (nodes) => nodes.map((row) => row.children[0]?.textContent ?? ''));
      await fillForm(page, { scheme: 'e8-q16', n: 96, cols: 16, dataKind: 'gaussian', backend: 'cpu' });
      expect((await clickAndWaitForRuns(page, '#run', 1, 60_000)).firstCpuRun).toBe(true);
      expect((await rateCells()).join(' ')).not.toMatch(/\/s/);
      expect(await timingStages()).toContain('(The first CPU run also warms up the JavaScript engine: no rates for it.)');
      expect((await clickAndWaitForRuns(page, '#run', 1, 60_000)).firstCpuRun).toBe(false);
      expect((await rateCells()).join(' ')).toMatch(/entries\/s/);
      expect((await timingStages()).join(' ')).not.toMatch(/warms up/);
      // The fresh worker starts a new GPU device and engine.
      const settings: FormSettings = { scheme: 'd3-q6-deterministic', gain: 'mmse', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(run.ranOn).toBe('webgpu');
      expectMatchesReference(run, settings, 1e-5);
      expect(errors).toEqual([]);
    });
  });

  describe('with WebGPU, on pages of their own', () => {
    let chromium: Chromium;

    beforeAll(async () => {
      chromium = await launchChromium({ webgpu: true });
    });

    afterAll(async () => {
      await chromium?.close();
    });

    it('keeps Run and Run all disabled while it checks for WebGPU; nothing starts meanwhile', async () => {
      // Disabled in the HTML itself, before any script runs.
      const html = readFileSync(INDEX_HTML, 'utf8');
      expect(html).toMatch(/<button type="submit" id="run" disabled>/);
      expect(html).toMatch(/<button type="button" id="run-all" disabled>/);
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      // The page's WebGPU check waits until the test lets it go on.
      await page.evaluateOnNewDocument(() => {
        const original = GPU.prototype.requestAdapter;
        const gate = new Promise<void>((resolve) => {
          (window as unknown as { __releaseWebGpuCheck: () => void }).__releaseWebGpuCheck = resolve;
        });
        GPU.prototype.requestAdapter = function (this: GPU, ...args: Parameters<typeof original>) {
          return gate.then(() => original.apply(this, args));
        };
      });
      await page.goto(url, { waitUntil: 'domcontentloaded' });
      await page.waitForFunction(() => (document.getElementById('scheme') as HTMLSelectElement | null)?.options.length);
      const look = () =>
        page.evaluate(() => ({
          state: window.__latticeDemo.state,
          runs: window.__latticeDemo.runs,
          run: (document.getElementById('run') as HTMLButtonElement).disabled,
          runAll: (document.getElementById('run-all') as HTMLButtonElement).disabled,
          cancel: (document.getElementById('cancel') as HTMLButtonElement).disabled,
          progress: (document.getElementById('progress-area') as HTMLElement).hidden,
          runError: (document.getElementById('run-error') as HTMLElement).hidden,
          status: document.getElementById('gpu-status')?.textContent ?? '',
        }));
      expect(await look()).toEqual({ state: 'loading', runs: 0, run: true, runAll: true, cancel: true, progress: true, runError: true, status: 'Checking for WebGPU…' });
      // Clicks, Enter in a field and a script's submit start nothing before the page is ready.
      await page.click('#run');
      await page.click('#run-all');
      await page.focus('#n');
      await page.keyboard.press('Enter');
      await page.evaluate(() => (document.getElementById('run-form') as HTMLFormElement).requestSubmit());
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await look()).toMatchObject({ state: 'loading', runs: 0, run: true, runAll: true, progress: true, runError: true });
      await page.evaluate(() => (window as unknown as { __releaseWebGpuCheck: () => void }).__releaseWebGpuCheck());
      await page.waitForFunction(() => window.__latticeDemo.state === 'idle', { timeout: 60_000 });
      expect(await look()).toMatchObject({ state: 'idle', runs: 0, run: false, runAll: false, cancel: true, progress: true, runError: true });
      expect((await look()).status).toMatch(/^WebGPU is ready/);
      expect(errors).toEqual([]);
      await page.close();
    });

    it('fits a 375 px wide screen without sideways scrolling', async () => {
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      await page.setViewport({ width: 375, height: 800 });
      await openDemo(page, url);
      const settings: FormSettings = { scheme: 'e8-q16-deterministic', gain: 'mmse', n: 96, cols: 16, dataKind: 'gaussian', backend: 'cpu' };
      await fillForm(page, settings);
      await clickAndWaitForRuns(page, '#run', 1, 30_000);
      const layout = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        const outside = Array.from(document.querySelectorAll('body *'))
          // The history table scrolls in its own box; an SVG clips what it draws beyond its edge.
          .filter((node) => !node.closest('.table-scroll, .skip') && !(node instanceof SVGElement && node.tagName !== 'svg'))
          .filter((node) => node.getBoundingClientRect().right > width + 0.5)
          .map((node) => `${node.tagName.toLowerCase()}#${node.id}`);
        const values = Array.from(document.querySelectorAll('.facts dd')).map((node) => node.getBoundingClientRect().width);
        // The plots are drawn at their panels' width, so their 11–12 px labels keep their size (a plot
        // drawn 640 wide and shrunk to the panel had labels about 6 px tall).
        const labels = Array.from(document.querySelectorAll('.plot > svg text')).map((node) => node.getBoundingClientRect().height);
        return { scrollWidth: document.documentElement.scrollWidth, width, outside, narrowestValue: Math.min(...values), labels: labels.length, smallestLabel: Math.min(...labels) };
      });
      expect(layout.labels).toBeGreaterThan(10);
      expect(layout.smallestLabel).toBeGreaterThanOrEqual(10);
      expect(layout.outside).toEqual([]);
      expect(layout.scrollWidth).toBeLessThanOrEqual(layout.width);
      // The values of the adapter and latest-run lists get the panel's width, not a character per line.
      expect(layout.narrowestValue).toBeGreaterThan(200);
      await page.screenshot({ path: `${ARTIFACTS}demo-375px.png`, fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    });

    it('says a run compiles GPU pipelines when it is the first of its kernels or of its rotation length on the device, not only the first', async () => {
      // Only a device's first run was said to: a second scheme's first run (SwiftShader: quantize A
      // 2.3 s, product 6.7 s; 0.18 s and 0.04 s in the run after) and the first run at a new rotation
      // length (quantize A 4.5 s; 0.6 s after) were shown as warm.
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      await openDemo(page, url);
      const note = /^\(The first run on this GPU device of its scheme’s kernels or of its rotation size also compiles GPU pipelines: no rates for it\.\)$/;
      const steps: Array<[FormSettings, boolean]> = [
        [{ scheme: 'e8-q16', n: 96, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, true],
        [{ scheme: 'e8-q16', n: 96, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, false],
        // The E8 rate presets share the universal E8 kernels; a deterministic scheme has its own.
        [{ scheme: 'e8-4bit', n: 96, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, false],
        [{ scheme: 'd3-q6-deterministic', n: 96, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, true],
        [{ scheme: 'd3-q6-deterministic', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' }, false],
        // N = 256: a new rotation length. n = 250 pads to it as well, so it compiles nothing new.
        [{ scheme: 'd3-q6-deterministic', n: 200, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, true],
        [{ scheme: 'e8-q16', n: 250, cols: 8, dataKind: 'gaussian', backend: 'webgpu' }, false],
      ];
      for (const [settings, compiles] of steps) {
        await fillForm(page, settings);
        const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
        expect(run.ranOn).toBe('webgpu');
        expect(run.compilesGpuPipelines, `${settings.scheme}, n = ${settings.n} (${run.productKernel ?? ''})`).toBe(compiles);
        const stages = await page.$$eval('#timings tbody tr', (nodes) => nodes.map((row) => row.children[0]?.textContent ?? ''));
        expect(stages.filter((stage) => note.test(stage)), `${settings.scheme}, n = ${settings.n}`).toHaveLength(compiles ? 1 : 0);
      }
      expect(errors).toEqual([]);
      await page.close();
    }, 240_000);
  });

  describe('the built page (vite build, then vite preview)', () => {
    let chromium: Chromium;
    let built: { url: string; close(): Promise<void> };

    beforeAll(async () => {
      built = await startBuiltDemo();
      chromium = await launchChromium({ webgpu: true });
    });

    afterAll(async () => {
      await chromium?.close();
      await built?.close();
    });

    it('runs on WebGPU from the static files (shaders inlined, worker bundled)', async () => {
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      const handle = await openDemo(page, built.url);
      expect(handle.webgpu).toMatchObject({ available: true, reason: null });
      for (const settings of [
        { scheme: 'd3-q6', n: 96, cols: 16, dataKind: 'low-rank', backend: 'webgpu' },
        { scheme: 'd3-q6-deterministic', gain: 'unbiased', n: 96, cols: 16, dataKind: 'low-rank', backend: 'webgpu' },
      ] as const satisfies readonly FormSettings[]) {
        await fillForm(page, settings);
        const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
        expectMatchesReference(run, settings, 1e-5);
        expect(run.cpuCheck?.valuesDiffering).toBe(0);
      }
      expect(errors).toEqual([]);
      await page.close();
    });
  });

  describe('without WebGPU (CPU fallback)', () => {
    let chromium: Chromium;

    beforeAll(async () => {
      // --disable-webgpu: Chromium still offers navigator.gpu, but no adapter.
      chromium = await launchChromium({ webgpu: false });
    });

    afterAll(async () => {
      await chromium?.close();
    });

    const cases = [
      { name: 'no adapter', removeNavigatorGpu: false, hangAdapter: false, message: /no GPU adapter/ },
      { name: 'no navigator.gpu', removeNavigatorGpu: true, hangAdapter: false, message: /navigator\.gpu is missing/ },
      // A wedged driver or GPU process: the page gives up after ADAPTER_TIMEOUT_MS (it waited forever).
      { name: 'requestAdapter never answers', removeNavigatorGpu: false, hangAdapter: true, message: /did not answer the request for an adapter within 10 s/ },
    ];
    it.each(cases)('says so plainly and runs on the CPU reference ($name)', async ({ removeNavigatorGpu, hangAdapter, message }) => {
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      if (removeNavigatorGpu) {
        await page.evaluateOnNewDocument(() => {
          Reflect.deleteProperty(Navigator.prototype, 'gpu');
        });
      }
      if (hangAdapter) {
        await page.evaluateOnNewDocument(() => {
          GPU.prototype.requestAdapter = () => new Promise<GPUAdapter | null>(() => {});
        });
      }
      const handle = await openDemo(page, url);
      expect(handle.webgpu.available).toBe(false);
      const status = await page.$eval('#gpu-status', (node) => node.textContent ?? '');
      expect(status).toMatch(/^No WebGPU/);
      expect(status).toMatch(message);
      expect(status).toMatch(/CPU reference/);
      expect(await page.$eval('#backend-webgpu', (input) => (input as HTMLInputElement).disabled)).toBe(true);
      expect(await page.$eval('.lede', (node) => node.textContent ?? '')).not.toMatch(/run it on your\s+own GPU/);

      // Sizes beyond the CPU cap are refused with a reason, not run.
      await fillForm(page, { scheme: 'd3-q6', n: 4096, cols: 4096, dataKind: 'gaussian', backend: 'cpu' });
      expect(await page.$eval('#run', (button) => (button as HTMLButtonElement).disabled)).toBe(true);
      expect(await page.$eval('#size-hint', (node) => node.textContent ?? '')).toMatch(/more than the CPU reference runs/);

      for (const settings of [
        { scheme: 'e8-q16', n: 96, cols: 16, dataKind: 'gaussian', backend: 'cpu' },
        { scheme: 'd3-q6-deterministic', gain: 'unbiased', n: 96, cols: 16, dataKind: 'gaussian', backend: 'cpu' },
      ] as const satisfies readonly FormSettings[]) {
        await fillForm(page, settings);
        const run = await clickAndWaitForRuns(page, '#run', 1, 30_000);
        // Same code, same seeds (and nonces), same JavaScript arithmetic: the browser's product is the reference's.
        expectMatchesReference(run, settings, 1e-6);
        expect(run.tableLayout).toBeNull();
        expect(run.cpuCheck).toBeNull();
      }
      if (removeNavigatorGpu) await page.screenshot({ path: `${ARTIFACTS}demo-no-webgpu.png`, fullPage: true });
      expect(errors).toEqual([]);
      await page.close();
    });
  });
});
