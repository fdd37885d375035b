import { mkdirSync } from 'node:fs';
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
  type QuantizeOptions,
} from '../../src/index.js';
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
  DEFAULT_DATA_SEED,
  DEFAULT_ROTATION_SEED,
  fillForm,
  openDemo,
  readHandle,
  type FormSettings,
} from './demoPage.js';

/*
 * The demo page in headless Chromium: with WebGPU on SwiftShader, and without WebGPU (the CPU
 * fallback). Every result the page reports is checked against the CPU reference computed here from the
 * same seeds (and, for universal schemes, the dither nonces the page reports), and its NMSE against an
 * exact product computed here with plain loops.
 */

const unavailable = browserUnavailableReason();
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

interface Reference {
  readonly a: Matrix;
  readonly b: Matrix;
  readonly product: Matrix;
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  /** expectedNmse of the two quantized matrices, null for schemes without the guarantee. */
  readonly predictedNmse: number | null;
}

function cpuReference(settings: FormSettings, run: DemoRun): Reference {
  const rotationSeed = settings.rotationSeed ?? DEFAULT_ROTATION_SEED;
  const { a, b } = testMatrixPair(settings.dataKind, settings.n, settings.cols, settings.cols, settings.dataSeed ?? DEFAULT_DATA_SEED, rotationSeed);
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
    product: matmulAT(qa, qb),
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
      const adapterText = await page.$eval('#adapter', (node) => node.textContent ?? '');
      expect(adapterText).toMatch(/D3 table layout(full|triangle|leaders)/);
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
      { label: 'd3-q6 (universal)', scheme: 'd3-q6', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu', ranOn: 'webgpu', kernel: 'universal-decode' },
      { label: 'e8-q16 (universal)', scheme: 'e8-q16', n: 100, cols: 12, dataKind: 'heavy-tailed', backend: 'webgpu', dataSeed: 3, ranOn: 'webgpu', kernel: 'universal-decode' },
      { label: 'e8-5bit (universal, 37-bit codes)', scheme: 'e8-5bit', n: 128, cols: 12, dataKind: 'gaussian', backend: 'webgpu', ranOn: 'webgpu', kernel: 'universal-decode' },
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
      // The label names the gain only where there is one.
      expect(run.label).toBe(deterministic ? `${settings.scheme} (${settings.gain ?? 'unbiased'} gain)` : settings.scheme);
      const latest = await page.$eval('#latest', (node) => node.textContent ?? '');
      if (universal) {
        expect(latest).toMatch(/Predicted NMSE\s*[\d.e-]+ for any data/);
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

    it('runs every scheme for the baselines and draws the plots (screenshot in test-artifacts/demo.png)', async () => {
      const settings: FormSettings = { scheme: 'e8-q16', n: 256, cols: 32, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      const schemes = Object.keys(SCHEMES).length;
      const run = await clickAndWaitForRuns(page, '#run-all', schemes, 180_000);
      expect(run.request).toMatchObject({ scheme: 'e8-q16', backend: 'webgpu' });
      // One legend entry per family (the E8 rate presets share one), markers per scheme, and Γ's curve.
      const legendEntries = await page.$$eval('#rd-plot svg g text', (nodes) => nodes.map((node) => node.textContent));
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
      await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });
      expect(errors).toEqual([]);
    }, 240_000);

    it('cancels a long run at once (the worker is terminated) and runs again afterwards', async () => {
      const destroyed: unknown[] = [];
      page.on('workerdestroyed', (worker) => destroyed.push(worker));
      await fillForm(page, { scheme: 'e8-q16', n: 1024, cols: 256, dataKind: 'gaussian', backend: 'cpu' });
      await page.click('#run');
      await page.waitForFunction(() => window.__latticeDemo.state === 'running');
      const started = Date.now();
      await page.click('#cancel');
      await page.waitForFunction(() => window.__latticeDemo.state === 'cancelled', { timeout: 5_000 });
      expect(Date.now() - started).toBeLessThan(5_000);
      await expect.poll(() => destroyed.length, { timeout: 5_000 }).toBeGreaterThan(0);
      // The fresh worker starts a new GPU device and engine.
      const settings: FormSettings = { scheme: 'd3-q6-deterministic', gain: 'mmse', n: 96, cols: 16, dataKind: 'gaussian', backend: 'webgpu' };
      await fillForm(page, settings);
      const run = await clickAndWaitForRuns(page, '#run', 1, 60_000);
      expect(run.ranOn).toBe('webgpu');
      expectMatchesReference(run, settings, 1e-5);
      expect(errors).toEqual([]);
    });
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
      { name: 'no adapter', removeNavigatorGpu: false, message: /no GPU adapter/ },
      { name: 'no navigator.gpu', removeNavigatorGpu: true, message: /navigator\.gpu is missing/ },
    ];
    it.each(cases)('says so plainly and runs on the CPU reference ($name)', async ({ removeNavigatorGpu, message }) => {
      const page = await chromium.browser.newPage();
      const errors = watchPageErrors(page);
      if (removeNavigatorGpu) {
        await page.evaluateOnNewDocument(() => {
          Reflect.deleteProperty(Navigator.prototype, 'gpu');
        });
      }
      const handle = await openDemo(page, url);
      expect(handle.webgpu.available).toBe(false);
      const status = await page.$eval('#gpu-status', (node) => node.textContent ?? '');
      expect(status).toMatch(/^No WebGPU/);
      expect(status).toMatch(message);
      expect(status).toMatch(/CPU reference/);
      expect(await page.$eval('#backend-webgpu', (input) => (input as HTMLInputElement).disabled)).toBe(true);

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
