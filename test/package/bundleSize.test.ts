import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build as esbuild, transform } from 'esbuild';
import { build, type Rollup } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * What an application's bundle pays for an import. The package is built (vite.config.ts, as
 * `npm run build` does, into a temporary folder: the repository's dist/ is left alone), installed as
 * node_modules/lattice-matmul of two throwaway apps, and three import sets are bundled the way apps
 * do: Vite (rolldown) then esbuild's minifier, and esbuild alone. Sizes are minified bytes, not
 * gzipped.
 *
 * The first app sees the real package.json (`"sideEffects": false`), so its bundler drops every
 * module the import does not reach. The second app's copy has no `sideEffects` field: the bundler
 * must then keep every module-level statement it cannot prove pure, so this checks that module-level
 * constructions (pipeline caches, uniform layouts, tables) are marked pure or built lazily.
 */

const root = resolve(import.meta.dirname, '../..');

/** Import sets: names imported from 'lattice-matmul'. The first must stay small and free of WGSL. */
const IMPORT_SETS = {
  gamma: ['gamma'],
  'CPU quantize + product': ['quantize', 'matmulAT', 'expectedProductError'],
  'GPU engine + layer': ['GpuEngine', 'QuantizedLinear'],
  // The README's app without an engine: the layer and what it takes to pick int8 inputs.
  'GPU layer, no engine': ['QuantizedLinear', 'dotPathFor', 'gpuContextOf'],
} as const;
type SetName = keyof typeof IMPORT_SETS;

/** The ceiling for `{ gamma }`: a few KB of its own code, nothing of the rest. */
const GAMMA_LIMIT_BYTES = 10 * 1024;

/** Text that only WGSL contains (every kernel has a compute entry point). */
const WGSL_MARKER = '@compute';

interface Measured {
  readonly bytes: number;
  readonly wgsl: boolean;
}

let work: string;
const sizes = new Map<string, Measured>();

/** An app folder with the built package as node_modules/lattice-matmul; `sideEffects` removed when `strict`. */
function makeApp(name: string, dist: string, strict: boolean): string {
  const app = join(work, name);
  const pkg = join(app, 'node_modules', 'lattice-matmul');
  mkdirSync(pkg, { recursive: true });
  // A copy, not a symlink: bundlers resolve symlinks to the real path and would read the wrong package.json.
  cpSync(dist, join(pkg, 'dist'), { recursive: true });
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  if (strict) delete manifest.sideEffects;
  writeFileSync(join(pkg, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  return app;
}

/** Bundles `export { names } from 'lattice-matmul'` with Vite, then minifies with esbuild. */
async function viteBundle(app: string, set: SetName): Promise<Measured> {
  const entry = join(app, `${set.replace(/\W+/g, '-')}.js`);
  writeFileSync(entry, `export { ${IMPORT_SETS[set].join(', ')} } from 'lattice-matmul';\n`);
  const result = await build({
    configFile: false,
    root: app,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry, formats: ['es'], fileName: 'bundle' },
      rollupOptions: { external: ['webgpu', /^node:/] },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]) as Rollup.RollupOutput[];
  const code = outputs.flatMap((o) => o.output).map((chunk) => (chunk.type === 'chunk' ? chunk.code : '')).join('\n');
  const minified = await transform(code, { minify: true, format: 'esm' });
  return { bytes: Buffer.byteLength(minified.code), wgsl: minified.code.includes(WGSL_MARKER) };
}

/** Bundles and minifies the same entry with esbuild alone. */
async function esbuildBundle(app: string, set: SetName): Promise<Measured> {
  const result = await esbuild({
    stdin: { contents: `export { ${IMPORT_SETS[set].join(', ')} } from 'lattice-matmul';\n`, resolveDir: app, sourcefile: 'entry.js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    external: ['webgpu'],
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles.map((f) => f.text).join('\n');
  return { bytes: Buffer.byteLength(code), wgsl: code.includes(WGSL_MARKER) };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-bundle-'));
  const dist = join(work, 'dist');
  await build({ root, configFile: join(root, 'vite.config.ts'), logLevel: 'silent', build: { outDir: dist, emptyOutDir: true, sourcemap: false } });
  const apps = { 'sideEffects: false': makeApp('app', dist, false), 'no sideEffects hint': makeApp('strict-app', dist, true) };
  for (const [mode, app] of Object.entries(apps)) {
    for (const set of Object.keys(IMPORT_SETS) as SetName[]) {
      sizes.set(`${set} | vite + esbuild minify | ${mode}`, await viteBundle(app, set));
      sizes.set(`${set} | esbuild | ${mode}`, await esbuildBundle(app, set));
    }
  }
  const table = [...sizes].map(([key, { bytes, wgsl }]) => `  ${key.padEnd(70)} ${(bytes / 1024).toFixed(1).padStart(7)} KB${wgsl ? '  (with WGSL)' : ''}`);
  console.log(`bundle sizes (minified, not gzipped):\n${table.join('\n')}`);
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('bundle size of an import from lattice-matmul', () => {
  it.each(['vite + esbuild minify', 'esbuild'])('{ gamma } is at most 10 KB and has no WGSL (%s, with and without the sideEffects hint)', (bundler) => {
    for (const mode of ['sideEffects: false', 'no sideEffects hint']) {
      const measured = sizes.get(`gamma | ${bundler} | ${mode}`);
      expect(measured, mode).toBeDefined();
      expect(measured?.bytes, `${mode}: ${measured?.bytes} bytes`).toBeLessThanOrEqual(GAMMA_LIMIT_BYTES);
      expect(measured?.wgsl, mode).toBe(false);
    }
  });

  it('the CPU product does not carry the GPU kernels; the GPU engine does', () => {
    for (const bundler of ['vite + esbuild minify', 'esbuild']) {
      for (const mode of ['sideEffects: false', 'no sideEffects hint']) {
        expect(sizes.get(`CPU quantize + product | ${bundler} | ${mode}`)?.wgsl, `${bundler}, ${mode}`).toBe(false);
        // The measurement can fail: the engine's kernels are WGSL.
        expect(sizes.get(`GPU engine + layer | ${bundler} | ${mode}`)?.wgsl, `${bundler}, ${mode}`).toBe(true);
      }
    }
  });

  it('a layer without an engine leaves the engine out (its quantizer, products and their kernels)', () => {
    for (const bundler of ['vite + esbuild minify', 'esbuild']) {
      for (const mode of ['sideEffects: false', 'no sideEffects hint']) {
        const layer = sizes.get(`GPU layer, no engine | ${bundler} | ${mode}`);
        const engine = sizes.get(`GPU engine + layer | ${bundler} | ${mode}`);
        expect(layer?.wgsl, `${bundler}, ${mode}`).toBe(true);
        // The engine's own kernels (GPU quantize, the products) are well over 50 KB minified.
        expect((engine?.bytes ?? 0) - (layer?.bytes ?? 0), `${bundler}, ${mode}`).toBeGreaterThan(50 * 1024);
      }
    }
  });
});
