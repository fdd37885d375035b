/**
 * A decode step over many layers, loaded from a quantized container file, recorded into one compute
 * pass and submitted once (run in CI: `npm run example`).
 *
 *   npm run example [-- --layers 48 --width 512 --scheme e8-4bit]
 *
 * 1. Makes a toy "model": `layers` square weights of `width`, written as a quantized container (what
 *    `lattice-matmul quantize` writes from a safetensors model).
 * 2. Loads it back with `openQuantizedContainerFile`, uploads each matrix (`uploadContainerEntry`,
 *    no repacking) and wraps it in a `QuantizedLinear` with a bias.
 * 3. Records the whole step x → layer 0 → layer 1 → … (ping-pong activation buffers) into one
 *    compute pass (a pass per layer would cost the host more than the layers' own dispatches), submits once, and checks the result against the CPU reference (`matvecAT` + bias per
 *    layer, float64), then replays the step to show that recording allocates nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gaussianMatrix, matvecAT, quantize, SCHEME_NAMES, type Matrix, type QuantizedMatrix, type SchemeName } from '../src/index.js';
import { QuantizedLinear, uploadContainerEntry } from '../src/gpu.js';
import { openQuantizedContainerFile, requestNodeGpuDevice, writeQuantizedContainerFile } from '../src/node.js';

const { values } = parseArgs({
  options: { layers: { type: 'string', default: '48' }, width: { type: 'string', default: '512' }, scheme: { type: 'string', default: 'e8-4bit' } },
  strict: true,
});
const layers = Number(values.layers);
const width = Number(values.width);
const scheme = values.scheme as SchemeName;
if (!Number.isInteger(layers) || layers < 1 || !Number.isInteger(width) || width < 8 || !SCHEME_NAMES.includes(scheme)) {
  console.error(`usage: npm run example -- [--layers N ≥ 1] [--width n ≥ 8] [--scheme ${SCHEME_NAMES.join('|')}]`);
  process.exit(2);
}

// 1. The toy model, quantized and saved. Weights scaled by 1/√width keep the activations O(1) through the layers.
const folder = mkdtempSync(join(tmpdir(), 'lattice-matmul-example-'));
const file = join(folder, 'toy.lmq.safetensors');
const biases: Float32Array[] = [];
const entries: { name: string; matrix: QuantizedMatrix }[] = [];
for (let l = 0; l < layers; l++) {
  const w = gaussianMatrix(width, width, 100 + l);
  const scale = 1 / Math.sqrt(width);
  for (let i = 0; i < w.data.length; i++) w.data[i] = (w.data[i] as number) * scale;
  entries.push({ name: `layers.${l}.weight`, matrix: quantize(w, { scheme, seed: 7 }) });
  biases.push(Float32Array.from({ length: width }, (_, i) => 0.01 * Math.sin(l + i)));
}
await writeQuantizedContainerFile(file, entries, { model: 'toy' });

// 2. Load, upload, build layers.
const context = await requestNodeGpuDevice({ label: 'example device' });
const { device } = context;
const container = await openQuantizedContainerFile(file);
const loaded: QuantizedMatrix[] = [];
const linears: QuantizedLinear[] = [];
const uploaded: { destroy(): void }[] = [];
for (let l = 0; l < layers; l++) {
  const entry = await container.read(`layers.${l}.weight`);
  if (entry.kind !== 'universal' && entry.kind !== 'deterministic') throw new Error(`layer ${l} is a ${entry.kind} entry; this example multiplies lattice layers`);
  loaded.push(entry.matrix);
  const weight = uploadContainerEntry(device, entry);
  uploaded.push(weight);
  linears.push(QuantizedLinear.create(device, weight, { bias: biases[l] as Float32Array, label: `layer ${l}` }));
}
await container.close();

// 3. One encoder, one submit for the whole step.
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const ping = device.createBuffer({ label: 'activations A', size: 4 * width, usage });
const pong = device.createBuffer({ label: 'activations B', size: 4 * width, usage });
const readback = device.createBuffer({ label: 'readback', size: 4 * width, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const x0 = Float32Array.from({ length: width }, (_, i) => Math.cos(i));

async function step(): Promise<{ y: Float32Array; hostMs: number; totalMs: number }> {
  const start = performance.now();
  device.queue.writeBuffer(ping, 0, x0);
  const encoder = device.createCommandEncoder({ label: 'decode step' });
  const pass = encoder.beginComputePass({ label: 'decode step layers' });
  let input = ping;
  let output = pong;
  for (const linear of linears) {
    linear.record(pass, input, output);
    [input, output] = [output, input];
  }
  pass.end();
  encoder.copyBufferToBuffer(input, 0, readback, 0, 4 * width);
  const hostMs = performance.now() - start;
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(readback.getMappedRange().slice(0));
  readback.unmap();
  return { y, hostMs, totalMs: performance.now() - start };
}

const first = await step();
// Replays: the first ones still warm up the JavaScript engine, so the median of several is reported.
const replays: Awaited<ReturnType<typeof step>>[] = [];
for (let i = 0; i < 7; i++) replays.push(await step());
const replay = replays[replays.length - 1] as Awaited<ReturnType<typeof step>>;
const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const replayHostMs = median(replays.map((r) => r.hostMs));
const replayTotalMs = median(replays.map((r) => r.totalMs));

// The CPU reference: the same layers from the same codes, in float64 sums (matvecAT), then the bias.
let reference: Matrix = { rows: width, cols: 1, data: x0 };
for (let l = 0; l < layers; l++) {
  const y = matvecAT(loaded[l] as QuantizedMatrix, reference).data;
  const bias = biases[l] as Float32Array;
  reference = { rows: width, cols: 1, data: Float32Array.from(y, (v, i) => v + (bias[i] as number)) };
}
let worst = 0;
let norm = 0;
for (let i = 0; i < width; i++) {
  worst = Math.max(worst, Math.abs((replay.y[i] as number) - (reference.data[i] as number)));
  norm += (reference.data[i] as number) ** 2;
}
const relative = worst / Math.sqrt(norm / width);
const same = replays.every((r) => first.y.every((v, i) => v === r.y[i]));

console.log(`decode step: ${layers} layers of ${width} × ${width} (${scheme}, ${(entries[0] as { matrix: QuantizedMatrix }).matrix.bitsStored.toFixed(2)} bits/entry) from ${file}`);
console.log(`  recorded ${layers} QuantizedLinear layers into one compute pass, one submit`);
console.log(`  first step (prepares the commands): host ${first.hostMs.toFixed(2)} ms, total ${first.totalMs.toFixed(1)} ms`);
console.log(`  replay (no allocation; median of ${replays.length}): host ${replayHostMs.toFixed(2)} ms (${((1000 * replayHostMs) / layers).toFixed(1)} µs per layer), total ${replayTotalMs.toFixed(1)} ms`);
console.log(`  GPU vs CPU (matvecAT + bias, float64): largest difference ${worst.toExponential(2)} = ${relative.toExponential(2)} × RMS output; replays identical: ${same}`);

for (const linear of linears) linear.destroy();
for (const weight of uploaded) weight.destroy();
for (const b of [ping, pong, readback]) b.destroy();
device.destroy();
rmSync(folder, { recursive: true, force: true });

// f32 sums of `width` products per layer, errors compounding over the layers: 1e-3 of the RMS output
// is far above that (≈ layers · √width · 2^-24) and far below any real mistake (O(1)).
if (!same || !(relative < 1e-3)) {
  console.error('FAILED: the GPU decode step differs from the CPU reference');
  process.exit(1);
}
