import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gpuUnavailableReason } from '../gpu/gpuTestDevice.js';

/*
 * The package as a user installs it: `npm pack` in the repository (its `prepack` builds, so this is
 * also what a clean clone ships), the tarball installed with npm into a new folder next to the `webgpu`
 * package, then (a) a plain Node ESM script that brings its own GPUDevice and (b) a TypeScript
 * consumer compiled with `strict` and without `skipLibCheck`, against the installed declarations only.
 *
 * Installing needs npm's cache or registry: first `--offline` (the cache), then `--prefer-offline`.
 * Only when npm cannot reach either (a network error, not a failed install) does the test unpack the
 * tarball itself and link the dependencies from this repository's node_modules, and says so.
 *
 * The consumer compiles with this repository's TypeScript 5 and with TypeScript 7 (npm's `latest` when
 * this was written), installed the same way into a folder of its own: their DOM libraries differ (7's
 * has WebGPU, and @webgpu/types collides with it), so the package's declarations take a different path
 * for each (package.json's `types@<6` condition). Without npm's cache or registry the TypeScript 7
 * checks are skipped, and say why.
 */

const root = resolve(import.meta.dirname, '../..');
const noGpu = await gpuUnavailableReason();
const webgpuVersion = (JSON.parse(readFileSync(join(root, 'node_modules/webgpu/package.json'), 'utf8')) as { version: string }).version;
const tsc = join(root, 'node_modules/typescript/bin/tsc');
/** TypeScript 7, whose DOM library declares WebGPU itself (pinned: a later 7.x may complete it). */
const TYPESCRIPT_7 = 'typescript@7.0.2';

let work: string;
let app: string;
let tarball: string;
let installedBy: string;
/** tsc of TYPESCRIPT_7, or why it could not be installed. */
let tsc7: { readonly path: string } | { readonly unavailable: string };

/** npm errors that mean "no cache entry / no registry", as opposed to a package that does not install. */
const UNREACHABLE = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i;

function run(command: string, args: readonly string[], options: ExecFileSyncOptions & { cwd: string }): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000, ...options }) as string;
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${options.cwd}:\n${failure.stdout ?? ''}\n${failure.stderr ?? failure.message}`, { cause: error });
  }
}

/**
 * Installs `packages` into `folder` with npm, from its cache or else its registry; returns how, or
 * `failures` (why npm could not reach either) when neither could be reached.
 */
function npmInstall(folder: string, packages: readonly string[]): { readonly how: string } | { readonly failures: string[] } {
  const args = ['install', '--no-audit', '--no-fund', '--loglevel=error', ...packages];
  const failures: string[] = [];
  for (const mode of ['--offline', '--prefer-offline']) {
    try {
      run('npm', [...args, mode], { cwd: folder });
      return { how: `npm install ${mode}` };
    } catch (error) {
      const message = (error as Error).message;
      if (!UNREACHABLE.test(message)) throw error;
      failures.push(`${mode}: ${message.split('\n').find((line) => UNREACHABLE.test(line)) ?? 'unreachable'}`);
    }
  }
  return { failures };
}

/** Installs the tarball and `webgpu` into `app` with npm; returns how. */
function install(): string {
  const installed = npmInstall(app, [tarball, `webgpu@${webgpuVersion}`]);
  if ('how' in installed) return installed.how;
  const { failures } = installed;
  // No cache and no registry: unpack the tarball as npm would and link its dependencies.
  const pkg = join(app, 'node_modules', 'lattice-matmul');
  mkdirSync(pkg, { recursive: true });
  run('tar', ['-xzf', tarball, '-C', pkg, '--strip-components=1'], { cwd: app });
  mkdirSync(join(app, 'node_modules', '@webgpu'), { recursive: true });
  symlinkSync(join(root, 'node_modules', '@webgpu', 'types'), join(app, 'node_modules', '@webgpu', 'types'), 'dir');
  symlinkSync(join(root, 'node_modules', 'webgpu'), join(app, 'node_modules', 'webgpu'), 'dir');
  return `unpacked and linked (npm could not reach a cache or registry: ${failures.join('; ')})`;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-pack-'));
  // `npm pack` runs `prepack` (npm run build): the tarball holds a fresh dist/.
  run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: root });
  const tarballs = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  expect(tarballs).toHaveLength(1);
  tarball = join(work, tarballs[0] as string);
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', private: true, type: 'module' }));
  installedBy = install();
  console.log(`lattice-matmul installed into ${app} by ${installedBy}`);
  const typescript7 = join(work, 'typescript-7');
  mkdirSync(typescript7);
  writeFileSync(join(typescript7, 'package.json'), JSON.stringify({ name: 'typescript-7', private: true }));
  const installed7 = npmInstall(typescript7, [TYPESCRIPT_7]);
  tsc7 = 'how' in installed7
    ? { path: join(typescript7, 'node_modules/typescript/bin/tsc') }
    : { unavailable: `${TYPESCRIPT_7} could not be installed (npm reached no cache or registry: ${installed7.failures.join('; ')})` };
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs `source` as an ES module in the app and returns the JSON it printed last. */
function runApp(name: string, source: string): unknown {
  writeFileSync(join(app, name), source);
  const output = run(process.execPath, [name], { cwd: app, timeout: 120_000 });
  return JSON.parse(output.trim().split('\n').pop() ?? '');
}

describe('the packed package, installed with npm', () => {
  it('ships JavaScript, declarations and WGSL sources, and no sources or tests', () => {
    const pkg = join(app, 'node_modules', 'lattice-matmul');
    for (const file of ['index', 'gpu', 'format', 'node'].flatMap((name) => [`dist/${name}.js`, `dist/${name}.d.ts`])) {
      expect(existsSync(join(pkg, file)), file).toBe(true);
    }
    expect(existsSync(join(pkg, 'shaders', 'lattice_encode.wgsl'))).toBe(true);
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    expect(existsSync(join(pkg, 'test'))).toBe(false);
    // The declarations' WebGPU types come with the package.
    expect(existsSync(join(app, 'node_modules', '@webgpu', 'types', 'package.json'))).toBe(true);
  });

  it('resolves every entry point through `exports`, for import and for require', () => {
    const result = runApp(
      'resolve.mjs',
      `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const names = ['lattice-matmul', 'lattice-matmul/gpu', 'lattice-matmul/format', 'lattice-matmul/node', 'lattice-matmul/package.json'];
      const imported = Object.fromEntries(names.map((n) => [n, import.meta.resolve(n)]));
      const required = Object.fromEntries(names.map((n) => [n, require.resolve(n)]));
      const index = await import('lattice-matmul');
      const gpu = await import('lattice-matmul/gpu');
      const format = await import('lattice-matmul/format');
      const node = await import('lattice-matmul/node');
      console.log(JSON.stringify({
        imported, required,
        sameEngine: index.GpuEngine === gpu.GpuEngine,
        sameReader: index.readSafetensors === format.readSafetensors,
        nodeExports: Object.keys(node).sort(),
      }));
    `,
    ) as { imported: Record<string, string>; required: Record<string, string>; sameEngine: boolean; sameReader: boolean; nodeExports: string[] };
    for (const [name, file] of [['lattice-matmul', 'index'], ['lattice-matmul/gpu', 'gpu'], ['lattice-matmul/format', 'format'], ['lattice-matmul/node', 'node']]) {
      expect(result.imported[name as string]).toMatch(new RegExp(`/node_modules/lattice-matmul/dist/${file}\\.js$`));
      // The `default` condition: CommonJS resolution (require.resolve, tools without `import`) finds the same file.
      expect(result.required[name as string]).toMatch(new RegExp(`/node_modules/lattice-matmul/dist/${file}\\.js$`));
    }
    expect(result.sameEngine).toBe(true);
    expect(result.sameReader).toBe(true);
    expect(result.nodeExports).toContain('requestNodeGpuDevice');
  });

  it.skipIf(noGpu !== undefined)(
    'runs a QuantizedLinear GEMV on a GPUDevice the app created itself (npm webgpu), recorded into its own encoder, ≈ the CPU matvecAT',
    () => {
      const result = runApp(
        'gemv.mjs',
        `
      import { create, globals } from 'webgpu';
      import { GpuEngine, QuantizedLinear, dequantize, gaussianMatrix, matvecAT, quantize } from 'lattice-matmul';
      import { GpuEngine as GpuEngineFromGpu } from 'lattice-matmul/gpu';
      import { nodeGpu } from 'lattice-matmul/node';
      const { GPUBufferUsage, GPUMapMode } = globals;

      // The app's own device: Dawn through npm webgpu, not the library's helpers. (Keep the GPU object
      // referenced: Dawn aborts the process when it is collected while its device lives.)
      const gpu = create([]);
      const adapter = await gpu.requestAdapter();
      const device = await adapter.requestDevice({ label: 'app device' });
      const engine = GpuEngine.create(device);

      const n = 200, out = 24; // n not a power of two: the rotation pads
      const w = gaussianMatrix(n, out, 11);
      const q = quantize(w, { scheme: 'e8-q16', seed: 5 });
      const weights = engine.upload(q);
      const layer = QuantizedLinear.create(device, weights);
      const x = gaussianMatrix(n, 1, 12).data;

      const xBuffer = device.createBuffer({ label: 'app x', size: 4 * n, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(xBuffer, 0, x);
      const yBuffer = device.createBuffer({ label: 'app y', size: 4 * out, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
      const readback = device.createBuffer({ label: 'app readback', size: 4 * out, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const encoder = device.createCommandEncoder({ label: 'app step' });
      layer.record(encoder, xBuffer, yBuffer);
      encoder.copyBufferToBuffer(yBuffer, 0, readback, 0, 4 * out);
      device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const y = Array.from(new Float32Array(readback.getMappedRange().slice(0)));
      readback.unmap();

      const cpu = Array.from(matvecAT(q, { rows: n, cols: 1, data: x }).data);
      const wHat = dequantize(q);
      const xNorm = Math.hypot(...x);
      const scale = Array.from({ length: out }, (_, j) => Math.hypot(...wHat.data.subarray(j * n, (j + 1) * n)) * xNorm);
      layer.destroy(); weights.destroy(); engine.destroy();
      for (const b of [xBuffer, yBuffer, readback]) b.destroy();
      device.destroy();
      console.log(JSON.stringify({ mode: q.mode, y, cpu, scale, sameEngine: GpuEngine === GpuEngineFromGpu, nodeGpu: typeof nodeGpu }));
    `,
      ) as { mode: string; y: number[]; cpu: number[]; scale: number[]; sameEngine: boolean; nodeGpu: string };
      expect(result.mode).toBe('universal');
      expect(result.sameEngine).toBe(true);
      expect(result.nodeGpu).toBe('function');
      expect(result.y).toHaveLength(24);
      // f32 on the GPU against float64 on the CPU (one f32 rounding): each output is a sum of N = 256
      // products, so the difference is below (N + a few)·2^−24·‖ŵ_j‖‖x‖ ≈ 1.6e−5·‖ŵ_j‖‖x‖; 1e−4 leaves margin.
      result.cpu.forEach((c, j) => {
        expect(Math.abs((result.y[j] as number) - c), `y[${j}] = ${result.y[j]}, CPU ${c}`).toBeLessThanOrEqual(1e-4 * (result.scale[j] as number));
      });
      // Not vacuous: the outputs are of the size of ‖ŵ_j‖‖x‖/√n, not zero.
      expect(Math.max(...result.y.map(Math.abs))).toBeGreaterThan(1);
    },
    120_000,
  );

  it.skipIf(noGpu !== undefined)(
    'the installed CLI quantizes a safetensors model into a container that the app loads and runs as recorded GEMVs (QuantizedLinear) on its own device, matching the library',
    () => {
      // 1. A small model (PyTorch (out, in) weights in F32, F16 and BF16, a bias, an embedding), written by the app.
      runApp(
        'model.mjs',
        `
      import { writeSafetensorsFile } from 'lattice-matmul/node';
      import { float16Bits, gaussianMatrix } from 'lattice-matmul';
      const w0 = gaussianMatrix(96, 40, 1).data;             // (40, 96): 40 outputs, 96 inputs
      const w1 = gaussianMatrix(72, 24, 2).data;             // (24, 72), stored as F16
      const emb = gaussianMatrix(16, 10, 3).data;            // (10, 16) BF16
      const bf16 = Uint16Array.from(emb, (v) => new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16);
      await writeSafetensorsFile('model.safetensors', {
        'layers.0.weight': { dtype: 'F32', shape: [40, 96], data: w0 },
        'layers.0.bias': { dtype: 'F32', shape: [40], data: new Float32Array(40).fill(0.5) },
        'layers.1.weight': { dtype: 'F16', shape: [24, 72], data: Uint16Array.from(w1, float16Bits) },
        'embed.weight': { dtype: 'BF16', shape: [10, 16], data: bf16 },
      });
      console.log(JSON.stringify({ ok: true }));
    `,
      );
      // 2. The installed bin (npm linked node_modules/.bin/lattice-matmul, or the unpacked package's dist).
      const bin = join(app, 'node_modules', 'lattice-matmul', 'dist', 'cli', 'main.js');
      const quantizeOutput = run(process.execPath, [bin, 'quantize', 'model.safetensors', '-o', 'model.lmq.safetensors', '--scheme', 'e8-4bit', '--seed', '3', '--nonce', '900', '--device', 'cpu', '--workers', '2', '--quiet'], { cwd: app });
      expect(quantizeOutput).toMatch(/layers\.0\.weight\s+40 × 96\s+4\.\d{3}/);
      expect(quantizeOutput).toMatch(/not quantized \(kept out of the container\): 1 tensor\n {2}layers\.0\.bias {2}\(F32 \[\d+\]: a 1-D tensor, not a matrix\)\n/);
      // The installed package finds its own package.json (two directories above dist/cli/main.js).
      expect(run(process.execPath, [bin, '--version'], { cwd: app })).toBe(`lattice-matmul ${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version}\n`);
      const inspectOutput = run(process.execPath, [bin, 'inspect', 'model.lmq.safetensors'], { cwd: app });
      expect(inspectOutput).toMatch(/layers\.1\.weight\s+universal\s+e8-4bit\s+24 × 72/);
      if (existsSync(join(app, 'node_modules', '.bin', 'lattice-matmul'))) {
        expect(run(join(app, 'node_modules', '.bin', 'lattice-matmul'), ['schemes'], { cwd: app })).toMatch(/e8-4bit\s+universal/);
      }
      // 3. The app reads the container, checks it against its own quantization, and runs it on its own device.
      const result = runApp(
        'container.mjs',
        `
      import { create, globals } from 'webgpu';
      import { openQuantizedContainerFile, openSafetensorsFile } from 'lattice-matmul/node';
      import { QuantizedLinear, uploadContainerEntry } from 'lattice-matmul/gpu';
      import { dequantize, matvecAT, quantize } from 'lattice-matmul';
      const { GPUBufferUsage, GPUMapMode } = globals;
      const gpu = create([]);
      const device = await (await gpu.requestAdapter()).requestDevice({ label: 'app device' });
      const model = await openSafetensorsFile('model.safetensors');
      const container = await openQuantizedContainerFile('model.lmq.safetensors');
      const names = container.entries.map((e) => e.name);
      const rows = [];
      for (const [index, name] of ['embed.weight', 'layers.0.weight', 'layers.1.weight'].entries()) {
        const entry = await container.read(name);
        const info = model.info(name);
        const w = { rows: info.shape[1], cols: info.shape[0], data: await model.readTensorAsFloat32(name) };
        // The CLI gives the i-th selected tensor (file order) nonce + i.
        const order = model.tensors.map((t) => t.name).filter((n) => n !== 'layers.0.bias').indexOf(name);
        const own = quantize(w, { scheme: 'e8-4bit', seed: 3, nonce: 900n + BigInt(order) });
        const same = JSON.stringify(Array.from(dequantize(own).data)) === JSON.stringify(Array.from(dequantize(entry.matrix).data));
        const x = Float32Array.from({ length: w.rows }, (_, i) => Math.sin(i + 1));
        const cpu = Array.from(matvecAT(entry.matrix, { rows: w.rows, cols: 1, data: x }).data);
        // A recorded GEMV on the app's buffers and encoder (QuantizedLinear), one submit.
        const onGpu = uploadContainerEntry(device, entry);
        const layer = QuantizedLinear.create(device, onGpu);
        const xBuffer = device.createBuffer({ label: 'x', size: 4 * x.length, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
        const yBuffer = device.createBuffer({ label: 'y', size: 4 * w.cols, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
        const readback = device.createBuffer({ label: 'readback', size: 4 * w.cols, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(xBuffer, 0, x);
        const encoder = device.createCommandEncoder({ label: 'app step' });
        layer.record(encoder, xBuffer, yBuffer);
        encoder.copyBufferToBuffer(yBuffer, 0, readback, 0, 4 * w.cols);
        device.queue.submit([encoder.finish()]);
        await readback.mapAsync(GPUMapMode.READ);
        const y = Array.from(new Float32Array(readback.getMappedRange().slice(0)));
        readback.unmap();
        layer.destroy(); onGpu.destroy();
        for (const b of [xBuffer, yBuffer, readback]) b.destroy();
        const worst = Math.max(...y.map((v, j) => Math.abs(v - cpu[j]) / (1e-6 + Math.abs(cpu[j]) + 1)));
        rows.push({ name, kind: entry.kind, same, worst, count: y.length });
      }
      await container.close(); await model.close();
      device.destroy();
      console.log(JSON.stringify({ names, rows }));
    `,
      ) as { names: string[]; rows: { name: string; kind: string; same: boolean; worst: number; count: number }[] };
      expect(result.names.sort()).toEqual(['embed.weight', 'layers.0.weight', 'layers.1.weight']);
      for (const row of result.rows) {
        expect(row.kind, row.name).toBe('universal');
        expect(row.same, `${row.name}: the CLI's quantization equals the app's own (same seed, nonce)`).toBe(true);
        // f32 GPU sums against float64 on the CPU, outputs of size ≈ ‖ŵ_j‖‖x‖/√n ≈ 1…10: 1e-4 relative (+1e-4 absolute) is ample.
        expect(row.worst, row.name).toBeLessThan(1e-4);
      }
    },
    120_000,
  );

  /** Compiles `files` in the app with the consumer settings; returns tsc's output (empty when clean). */
  function compile(
    name: string,
    files: Record<string, string>,
    {
      moduleResolution = 'NodeNext',
      lib = ['ES2022', 'DOM'],
      skipLibCheck = false,
      compiler = tsc,
    }: { moduleResolution?: 'NodeNext' | 'Bundler' | 'Node10'; lib?: string[]; skipLibCheck?: boolean; compiler?: string } = {},
  ): string {
    for (const [file, source] of Object.entries(files)) writeFileSync(join(app, file), source);
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck,
        target: 'ES2022',
        lib,
        module: moduleResolution === 'NodeNext' ? 'NodeNext' : 'ESNext',
        moduleResolution,
        // Nothing from @types: the package's declarations must bring what they use themselves.
        types: [],
        noEmit: true,
      },
      files: Object.keys(files),
    };
    writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify(tsconfig, null, 2));
    try {
      execFileSync(process.execPath, [compiler, '-p', `tsconfig.${name}.json`], { cwd: app, encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
      return '';
    } catch (error) {
      const failure = error as { stdout?: string; stderr?: string; message: string };
      return `${failure.stdout ?? ''}${failure.stderr ?? ''}` || failure.message;
    }
  }

  const CONSUMER = `
import {
  GpuEngine,
  LatticeMatmulError,
  QuantizedLinear,
  expectedProductError,
  gaussianMatrix,
  matmulAT,
  matvecAT,
  quantize,
  type GpuContext,
  type Matrix,
  type QuantizeOptions,
  type QuantizedMatrix,
  type SchemeName,
} from 'lattice-matmul';
import { GpuScratch, uploadContainerEntry, type BufferSlice, type QuantizedLinearOptions } from 'lattice-matmul/gpu';
import { httpRangeSource, openQuantizedContainer, readSafetensors, type SafetensorsDtype } from 'lattice-matmul/format';
import { requestNodeGpuDevice, type NodeGpuOptions } from 'lattice-matmul/node';

const scheme: SchemeName = 'e8-q16';
const options: QuantizeOptions = { scheme, seed: 1 };

export function cpuProduct(a: Matrix, b: Matrix): { c: Matrix; predicted: number } {
  const qa: QuantizedMatrix = quantize(a, options);
  const qb: QuantizedMatrix = quantize(b, options);
  return { c: matmulAT(qa, qb), predicted: expectedProductError(qa, qb) };
}

export function step(device: GPUDevice, encoder: GPUCommandEncoder, x: BufferSlice, y: GPUBuffer): QuantizedLinear {
  const engine = GpuEngine.create(device);
  const w = engine.upload(quantize(gaussianMatrix(64, 8, 1), options) as Parameters<GpuEngine['upload']>[0]);
  const layerOptions: QuantizedLinearOptions = { activations: 'f32' };
  const layer = QuantizedLinear.create(device, w, layerOptions);
  layer.record(encoder, x, y);
  new GpuScratch(device).destroy();
  return layer;
}

export async function nodeDevice(options: NodeGpuOptions = {}): Promise<GPUDevice> {
  const context: GpuContext = await requestNodeGpuDevice(options);
  return context.device;
}

export function firstDtype(bytes: Uint8Array): SafetensorsDtype | undefined {
  return readSafetensors(bytes).tensors[0]?.dtype;
}

// The README's page that loads a model one matrix at a time.
export async function loadLayers(device: GPUDevice, url: string): Promise<Map<string, QuantizedLinear>> {
  const container = await openQuantizedContainer(await httpRangeSource(url));
  const layers = new Map<string, QuantizedLinear>();
  for (const { name } of container.entries) {
    layers.set(name, QuantizedLinear.create(device, uploadContainerEntry(device, await container.read(name))));
  }
  return layers;
}

export function describeError(error: unknown): string {
  return error instanceof LatticeMatmulError ? error.message : String(error);
}

export const y: Matrix = matvecAT(quantize(gaussianMatrix(16, 2, 3), options), gaussianMatrix(16, 1, 4));

// A preset's matrix goes to the GPU as it is (quantize's result type follows the scheme).
export const uploaded = (device: GPUDevice) => GpuEngine.create(device).upload(quantize(gaussianMatrix(64, 8, 1), { scheme: 'e8-4bit' }));
`;

  it('a strict TypeScript consumer (no skipLibCheck, no @types) compiles against every entry point (NodeNext, Bundler and Node10 resolution)', () => {
    expect(compile('all', { 'consumer.ts': CONSUMER })).toBe('');
    expect(compile('bundler', { 'consumer.ts': CONSUMER }, { moduleResolution: 'Bundler' })).toBe('');
    // Node10 ("node") resolution ignores `exports`: the subpaths' types come from `typesVersions`.
    expect(compile('node10', { 'consumer.ts': CONSUMER }, { moduleResolution: 'Node10' })).toBe('');
  }, 120_000);

  it('TypeScript 7, whose DOM library declares WebGPU, compiles the strict consumer without skipLibCheck (NodeNext and Bundler)', (context) => {
    if ('unavailable' in tsc7) {
      console.log(tsc7.unavailable);
      context.skip();
      return;
    }
    const compiler = tsc7.path;
    // A reference to @webgpu/types in the declarations (as TypeScript 5 needs) collides with this DOM
    // library: 184 errors such as "Duplicate identifier 'GPUCommandBufferDescriptor'".
    expect(compile('ts7', { 'consumer.ts': CONSUMER }, { compiler })).toBe('');
    expect(compile('ts7-bundler', { 'consumer.ts': CONSUMER }, { moduleResolution: 'Bundler', compiler })).toBe('');
    // Without "DOM" it has no WebGPU types at all: skipLibCheck, as the README says (the consumer's own
    // code names no WebGPU type here).
    const nodeOnly = `import { requestNodeGpuDevice } from 'lattice-matmul/node';\nimport { gamma, GpuEngine } from 'lattice-matmul';\nexport const g = gamma(2);\nexport const engine = async (): Promise<GpuEngine> => GpuEngine.create((await requestNodeGpuDevice()).device);\n`;
    expect(compile('ts7-node-only', { 'ts7-node-only.ts': nodeOnly }, { lib: ['ES2022'], skipLibCheck: true, compiler })).toBe('');
    expect(compile('ts7-node-only-checked', { 'ts7-node-only.ts': nodeOnly }, { lib: ['ES2022'], compiler })).toMatch(/Cannot find name 'GPUDevice'/);
  }, 120_000);

  it('a Node-only consumer (lib without DOM) compiles with skipLibCheck, as the README says, and not without it', () => {
    const source = `import { requestNodeGpuDevice } from 'lattice-matmul/node';\nimport { GpuEngine } from 'lattice-matmul/gpu';\nexport const engine = async (): Promise<GpuEngine> => GpuEngine.create((await requestNodeGpuDevice()).device);\n`;
    expect(compile('node-only', { 'node-only.ts': source }, { lib: ['ES2022'], skipLibCheck: true })).toBe('');
    // @webgpu/types names DOM types (BufferSource, event listeners): should it stop, the README's advice can go.
    expect(compile('node-only-checked', { 'node-only.ts': source }, { lib: ['ES2022'] })).toMatch(/Cannot find name 'BufferSource'/);
  }, 120_000);

  it.each([
    ['lattice-matmul/gpu', `import { GpuEngine } from 'lattice-matmul/gpu';\nexport const engine = (device: GPUDevice): GpuEngine => GpuEngine.create(device);\n`],
    ['lattice-matmul/node', `import { requestNodeGpuDevice } from 'lattice-matmul/node';\nexport const device = async (): Promise<GPUDevice> => (await requestNodeGpuDevice()).device;\n`],
    ['lattice-matmul/format', `import { readSafetensors } from 'lattice-matmul/format';\nexport const names = (bytes: Uint8Array): string[] => readSafetensors(bytes).tensors.map((t) => t.name);\n`],
    ['lattice-matmul', `import { gamma, GpuEngine } from 'lattice-matmul';\nexport const g = gamma(2);\nexport const engine = (device: GPUDevice): GpuEngine => GpuEngine.create(device);\n`],
  ])('%s alone brings the WebGPU types its declarations use', (entry, source) => {
    expect(compile(entry.replace(/\W+/g, '-'), { [`only-${entry.replace(/\W+/g, '-')}.ts`]: source })).toBe('');
  }, 120_000);
});
