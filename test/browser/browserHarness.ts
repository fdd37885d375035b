import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { build, createServer, preview, type PreviewServer, type ViteDevServer } from 'vite';

/*
 * What the browser tests share: the demo's Vite dev server on 127.0.0.1 (a secure origin, so
 * navigator.gpu exists), and Debian's Chromium driven by puppeteer-core. No browser is ever downloaded:
 * the tests use /usr/bin/chromium (or CHROMIUM_PATH). Where it is missing they are skipped with a loud
 * message, except in CI (process.env.CI set), where a missing browser fails the run.
 */

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const DEMO_CONFIG = fileURLToPath(new URL('../../demo/vite.config.ts', import.meta.url));

/** Flags every launch gets: no network chatter, no first-run UI; `--no-sandbox` for root in containers. */
const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** WebGPU on SwiftShader, Chromium's software Vulkan: works without any GPU. */
const WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-vulkan-surface',
];

/** Undefined when Chromium exists; else why the tests are skipped. Throws in CI. */
export function browserUnavailableReason(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `no Chromium at ${CHROMIUM_PATH} (install Debian's chromium, e.g. scripts/ensure-system.sh, or set CHROMIUM_PATH)`;
  if (process.env.CI) throw new Error(`CI cannot run the browser tests: ${reason}`);
  console.warn(`\n*** BROWSER TESTS SKIPPED: ${reason}\n`);
  return reason;
}

/** The demo served by Vite's dev server (what `npm run demo` runs) on a free port of 127.0.0.1. */
export async function startDemoServer(): Promise<{ url: string; server: ViteDevServer }> {
  const server = await createServer({
    configFile: DEMO_CONFIG,
    logLevel: 'warn',
    clearScreen: false,
    // No file watching and no hot reload: a file another engineer saves mid-test must not reload the page.
    server: { host: '127.0.0.1', port: 0, strictPort: false, open: false, hmr: false, watch: null },
  });
  await server.listen();
  const url = server.resolvedUrls?.local[0];
  if (!url) {
    await server.close();
    throw new Error('the demo server did not report its URL');
  }
  return { url, server };
}

/** A running Chromium; `close` ends it and deletes its profile. */
export interface Chromium {
  readonly browser: Browser;
  close(): Promise<void>;
}

/**
 * The demo as `npm run build:demo` builds it (static files, WGSL inlined), written to a temporary folder
 * and served by `vite preview` on a free port of 127.0.0.1. `close` stops the server and deletes the files.
 */
export async function startBuiltDemo(): Promise<{ url: string; close(): Promise<void> }> {
  const outDir = mkdtempSync(join(tmpdir(), 'lattice-matmul-demo-dist-'));
  const remove = (): void => rmSync(outDir, { recursive: true, force: true });
  let server: PreviewServer | undefined;
  try {
    await build({ configFile: DEMO_CONFIG, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
    server = await preview({
      configFile: DEMO_CONFIG,
      logLevel: 'warn',
      build: { outDir },
      preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
    });
  } catch (error) {
    remove();
    throw error;
  }
  const running = server;
  const url = running.resolvedUrls?.local[0];
  const close = async (): Promise<void> => {
    await running.close();
    remove();
  };
  if (!url) {
    await close();
    throw new Error('the demo preview server did not report its URL');
  }
  return { url, close };
}

/**
 * A headless Chromium with a fresh profile. `webgpu: true` adds the SwiftShader WebGPU flags;
 * `webgpu: false` adds `--disable-webgpu`, so even a machine with a real GPU offers no adapter.
 */
export async function launchChromium(options: { webgpu: boolean }): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), 'lattice-matmul-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...BASE_FLAGS, ...(options.webgpu ? WEBGPU_FLAGS : ['--disable-webgpu']), `--user-data-dir=${profile}`],
    defaultViewport: { width: 1280, height: 900 },
  });
  return {
    browser,
    async close() {
      await browser.close();
      // Chromium's helper processes may still be flushing the profile for a moment.
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    },
  };
}

/**
 * Collects what counts as a page error: console errors, uncaught exceptions and failed or 4xx/5xx
 * requests (a 404 logs a console error too, but naming the URL helps).
 */
export function watchPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error instanceof Error ? error.message : String(error)}`));
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? '?'})`));
  page.on('response', (response) => {
    if (response.status() >= 400) errors.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  return errors;
}
