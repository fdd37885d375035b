import type { Page } from 'puppeteer-core';
import type { DemoRun } from '../../demo/demoRun.js';
import type { LatticeDemoHandle } from '../../demo/main.js';
import type { Backend } from '../../demo/runProtocol.js';
import type { DataKind, GainMode, SchemeName } from '../../src/index.js';

/** Drives the demo page the way a visitor does: the form's controls, then the Run button. */

export interface FormSettings {
  readonly scheme: SchemeName;
  readonly gain?: GainMode;
  readonly n: number;
  readonly cols: number;
  readonly dataKind: DataKind;
  readonly backend: Backend;
  readonly dataSeed?: number;
  readonly rotationSeed?: number;
}

/** The page's default seeds (demo/index.html); `fillForm` sets them when a setting leaves them out. */
const DEFAULT_DATA_SEED = 1;
const DEFAULT_ROTATION_SEED = 7;

/** The seeds a run with `settings` uses: its own, or the page's defaults. */
export function seedsOf(settings: FormSettings): { readonly dataSeed: number; readonly rotationSeed: number } {
  return { dataSeed: settings.dataSeed ?? DEFAULT_DATA_SEED, rotationSeed: settings.rotationSeed ?? DEFAULT_ROTATION_SEED };
}

/** Loads the page and waits until it has decided between WebGPU and the CPU fallback. */
export async function openDemo(page: Page, url: string, timeoutMs = 60_000): Promise<LatticeDemoHandle> {
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.__latticeDemo?.state === 'idle', { timeout: timeoutMs });
  return readHandle(page);
}

export function readHandle(page: Page): Promise<LatticeDemoHandle> {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.__latticeDemo)) as LatticeDemoHandle);
}

/** Sets the form's fields (firing the events a visitor's typing would). */
export async function fillForm(page: Page, settings: FormSettings): Promise<void> {
  await page.select('#scheme', settings.scheme);
  if (settings.gain) await page.select('#gain', settings.gain);
  await page.select('#data', settings.dataKind);
  const radio = settings.backend === 'webgpu' ? '#backend-webgpu' : '#backend-cpu';
  await page.click(radio);
  if (!(await page.$eval(radio, (input) => (input as HTMLInputElement).checked))) {
    throw new Error(`the page does not offer the ${settings.backend} backend (${radio} is disabled)`);
  }
  const { dataSeed, rotationSeed } = seedsOf(settings);
  const numbers: Array<[string, number]> = [
    ['#n', settings.n],
    ['#cols', settings.cols],
    ['#data-seed', dataSeed],
    ['#rotation-seed', rotationSeed],
  ];
  for (const [selector, value] of numbers) {
    await page.$eval(
      selector,
      (input, text) => {
        (input as HTMLInputElement).value = text;
        input.dispatchEvent(new Event('input', { bubbles: true }));
      },
      String(value),
    );
  }
}

/** Clicks `button` and waits for the page to finish `expectedRuns` more runs; returns the last one. */
export async function clickAndWaitForRuns(page: Page, button: string, expectedRuns: number, timeoutMs: number): Promise<DemoRun> {
  const before = (await readHandle(page)).runs;
  await page.click(button);
  await page.waitForFunction(
    (target) => {
      const handle = window.__latticeDemo;
      return handle.state === 'error' || (handle.state === 'done' && handle.runs >= target);
    },
    { timeout: timeoutMs },
    before + expectedRuns,
  );
  const handle = await readHandle(page);
  if (handle.state === 'error') throw new Error(`the demo run failed: ${handle.lastError ?? '?'}`);
  if (!handle.lastResult) throw new Error('the demo reported no result');
  return handle.lastResult;
}
