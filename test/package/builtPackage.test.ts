import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpuUnavailableReason } from '../gpu/gpuTestDevice.js';

/*
 * The published package, as an application sees it: `npm run build`, then a script in a separate
 * folder imports `lattice-matmul` and `lattice-matmul/node` by name (resolved through package.json
 * `exports` to dist/, never src/), quantizes and multiplies on the CPU and on WebGPU (Dawn), with the
 * universal default and the deterministic opt-in.
 */

const root = resolve(import.meta.dirname, '../..');
const noGpu = await gpuUnavailableReason();
let app: string;

beforeAll(() => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' });
  app = mkdtempSync(join(tmpdir(), 'lattice-matmul-app-'));
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(root, join(app, 'node_modules', 'lattice-matmul'), 'dir');
  // `webgpu` is an optional peer dependency: the app brings its own (here, the repo's).
  symlinkSync(join(root, 'node_modules', 'webgpu'), join(app, 'node_modules', 'webgpu'), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module', private: true }));
}, 120_000);

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

function runApp(source: string): unknown {
  writeFileSync(join(app, 'main.js'), source);
  const output = execFileSync(process.execPath, ['main.js'], { cwd: app, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const lastLine = output.trim().split('\n').pop() ?? '';
  return JSON.parse(lastLine);
}

describe('the built package', () => {
  it('resolves to dist/ and estimates AᵀB on the CPU with the universal default, at the predicted error', () => {
    const result = runApp(`
      import { gaussianMatrix, quantize, matmulAT, productNmse, expectedNmse } from 'lattice-matmul';
      const resolved = import.meta.resolve('lattice-matmul');
      const a = gaussianMatrix(768, 32, 1), b = gaussianMatrix(768, 32, 2);
      const qa = quantize(a, { scheme: 'e8-q16', seed: 3 }), qb = quantize(b, { scheme: 'e8-q16', seed: 3 });
      console.log(JSON.stringify({ resolved, mode: qa.mode, nmse: productNmse(matmulAT(qa, qb), a, b), predicted: expectedNmse(qa, qb), bits: qa.bitsStored }));
    `) as { resolved: string; mode: string; nmse: number; predicted: number; bits: number };
    expect(result.resolved).toMatch(/\/dist\/index\.js$/);
    expect(result.mode).toBe('universal');
    // 32 × 32 products: the NMSE's relative std over the (random) nonces is ≈ 0.04, so ±25% is over 6σ.
    expect(result.predicted).toBeCloseTo(0.00898, 4);
    expect(Math.abs(result.nmse / result.predicted - 1)).toBeLessThan(0.25);
    expect(Math.abs(result.bits - 4.25)).toBeLessThan(0.1);
  });

  it('keeps the seed paper’s deterministic D3 scheme (d3-q6-deterministic) on the CPU', () => {
    const result = runApp(`
      import { gaussianMatrix, quantize, matmulAT, productNmse } from 'lattice-matmul';
      const a = gaussianMatrix(768, 8, 1), b = gaussianMatrix(768, 8, 2);
      const qa = quantize(a, { scheme: 'd3-q6-deterministic', seed: 3 }), qb = quantize(b, { scheme: 'd3-q6-deterministic', seed: 3 });
      console.log(JSON.stringify({ mode: qa.mode, nmse: productNmse(matmulAT(qa, qb), a, b), bits: qa.bitsEntropy }));
    `) as { mode: string; nmse: number; bits: number };
    expect(result.mode).toBe('deterministic');
    expect(result.nmse).toBeGreaterThan(0.03);
    expect(result.nmse).toBeLessThan(0.1);
    expect(result.bits).toBeGreaterThan(2.9);
  });

  it.skipIf(noGpu !== undefined)('multiplies two GPU buffers with the WebGPU engine (lattice-matmul/node), universal and deterministic', () => {
    const result = runApp(`
      import { GpuEngine, gaussianMatrix, productNmse } from 'lattice-matmul';
      import { requestNodeGpuDevice } from 'lattice-matmul/node';
      const context = await requestNodeGpuDevice();
      const { device } = context;
      const engine = GpuEngine.create(context);
      const a = gaussianMatrix(256, 16, 1), b = gaussianMatrix(256, 12, 2);
      const upload = (m) => {
        const buffer = device.createBuffer({ size: m.data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
        new Float32Array(buffer.getMappedRange()).set(m.data);
        buffer.unmap();
        return buffer;
      };
      const results = {};
      for (const scheme of ['d3-q6', 'd3-q6-deterministic']) {
        const qa = await engine.quantize({ buffer: upload(a), rows: 256, cols: 16 }, { scheme, seed: 5 });
        const qb = await engine.quantize({ buffer: upload(b), rows: 256, cols: 12 }, { scheme, seed: 5 });
        const c = await engine.matmulAT(qa, qb);
        results[scheme] = { mode: qa.mode, kernel: engine.productKernel(qa, qb), rows: c.rows, cols: c.cols, nmse: productNmse(c, a, b) };
        qa.destroy(); qb.destroy();
      }
      console.log(JSON.stringify({ results, layout: engine.tableLayout }));
      device.destroy();
    `) as { results: Record<string, { mode: string; kernel: string; rows: number; cols: number; nmse: number }>; layout: string };
    expect(result.results['d3-q6']).toMatchObject({ mode: 'universal', kernel: 'universal-i8', rows: 16, cols: 12 });
    expect(result.results['d3-q6-deterministic']).toMatchObject({ mode: 'deterministic', kernel: 'd3-table', rows: 16, cols: 12 });
    for (const { nmse } of Object.values(result.results)) {
      expect(nmse).toBeGreaterThan(0.02);
      expect(nmse).toBeLessThan(0.12);
    }
  });

  it('ships the WGSL sources, the bundles and their types, the docs the README and the CLI cite, and nothing from src/ or test/', () => {
    // --ignore-scripts: `prepack` would build again (beforeAll did) and print into the JSON.
    const listing = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    const files = (JSON.parse(listing) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    const entries = ['index', 'gpu', 'format', 'node'].flatMap((name) => [`dist/${name}.js`, `dist/${name}.d.ts`]);
    for (const expected of [...entries, 'dist/gpu/device.d.ts', 'shaders/d3_table_matmul.wgsl', 'shaders/lattice_encode.wgsl', 'shaders/universal_encode.wgsl', 'shaders/universal_decode.wgsl', 'docs/FORMAT.md', 'docs/RELIABILITY.md', 'docs/ARCHITECTURE.md', 'docs/PERFORMANCE.md', 'README.md', 'package.json']) {
      expect(files).toContain(expected);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
    // The modules carry the shaders inline (imported as text at build time, one module per shader).
    expect(readFileSync(join(root, 'dist/shaders/lattice_encode.js'), 'utf8')).toContain('@compute');
    // The README and docs a user reads from the installed package (and npm's page, which has no
    // repository to resolve against) link only to files the package ships.
    const userDocs = files.filter((f) => f === 'README.md' || (f.startsWith('docs/') && f.endsWith('.md')));
    expect(userDocs.length).toBeGreaterThan(1);
    const broken: string[] = [];
    for (const doc of userDocs) {
      for (const match of readFileSync(join(root, doc), 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = (match[1] as string).split('#')[0] as string;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const resolved = posix.normalize(posix.join(posix.dirname(doc), target)).replace(/\/$/, '');
        if (!files.some((f) => f === resolved || f.startsWith(`${resolved}/`))) broken.push(`${doc} → ${match[1] as string}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
