import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchE8InputsI8, dispatchE8ResidueCall, dispatchE8ResidueGemvI8, E8_INPUT_GROUP, e8ResidueGemvReference, GpuE8ResidueMatrix, quantizeE8InputsI8, type E8InputsI8Values } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { e8ResidueForm } from '../../src/quantize/e8Residues.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import type { DeterministicLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import type { Matrix } from '../../src/matrix.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The E8 residue prototype's GEMV (src/gpu/kernels/e8ResidueGemvI8.ts) against its CPU twins:
 * 1. x̂ (shaders/e8_inputs_i8.wgsl) = quantizeE8InputsI8: scales within WGSL's 2.5 ULP of f32
 *    division (equal on lavapipe), levels equal but where the GPU's f32 division may round the other
 *    way (127·x̃/m within 10⁻⁴ of a half-integer: then by one);
 * 2. y against e8ResidueGemvReference on the GPU's own x̂: a quad's integer sum is exact, so they
 *    differ by f32 rounding only, at most D·u·S (S = Σ_g |s_g·sum_g|·ν_jγ_j·unit, D = the roundings
 *    along a path: the quad sum's conversion, a lane's ⌈quads/32⌉ multiply-adds, 5 levels of the lane
 *    tree, the column scale and unit; 2× margin);
 * 3. y against the exact product Σ_k ŵ̃_jk·x̃_k (decodeRotated, x̃ not rounded), within the int8 inputs'
 *    bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus the f32 term.
 * A wrong nibble, parity, fix lane or sign, or scale index moves an output by ≈ |y|/√N, far above each.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

/** x̂ levels read back from the GPU in coordinate order (the kernel's word 2b holds block b's even coordinates). */
function levelsInOrder(words: Uint32Array, groups: number): Int8Array {
  const levels = new Int8Array(groups * E8_INPUT_GROUP);
  for (let g = 0; g < groups; g++) {
    for (let b = 0; b < 4; b++) {
      for (let half = 0; half < 2; half++) {
        const word = words[12 * g + 2 * b + half] as number;
        for (let t = 0; t < 4; t++) levels[g * E8_INPUT_GROUP + 8 * b + 2 * t + half] = (word << (24 - 8 * t)) >> 24;
      }
    }
  }
  return levels;
}

/** Columns of several kinds: Gaussian, graded by block (every scale rung), one spike, constant. */
function weights(rows: number, cols: number, seed: number): Matrix {
  const w = gaussianMatrix(rows, cols, seed);
  for (let j = 0; j < cols; j++) {
    const column = w.data.subarray(j * rows, (j + 1) * rows);
    if (j % 4 === 1) for (let k = 0; k < rows; k++) column[k] = (column[k] as number) * 3 ** ((Math.floor(k / 8) % 4) - 1.5);
    if (j % 4 === 2) column.fill(0).fill(5, rows >> 1, (rows >> 1) + 1);
    if (j % 4 === 3) column.fill(0.75);
  }
  return w;
}

describe.skipIf(noGpu !== undefined)('E8 residue prototype GEMV (GPU) = its CPU twins', () => {
  let context: GpuContext;
  beforeAll(async () => {
    context = await testDevice();
  });
  afterAll(() => context?.device.destroy());

  async function run(m: ReturnType<typeof e8ResidueForm>, x: Float32Array, dotPath: DotPath, subgroups: boolean): Promise<{ y: Float32Array; inputs: E8InputsI8Values; inputWords: Uint32Array }> {
    const { device } = context;
    const w = GpuE8ResidueMatrix.upload(device, m, 'test e8 residues');
    const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
    const y = createBuffer(device, 'test y', 4 * m.cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'test e8 residue gemv' });
      const inputs = dispatchE8InputsI8(device, encoder, scratch, w, xBuffer);
      dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputs, y, dotPath, subgroups, ...(subgroups ? { subgroupTestMode: 'require-shuffles' as const } : {}) });
      device.queue.submit([encoder.finish()]);
      const yValues = new Float32Array(await readBuffer(device, y, 4 * m.cols));
      const inputWords = new Uint32Array(await readBuffer(device, inputs.levels, 48 * inputs.groups));
      const scales = new Float32Array(await readBuffer(device, inputs.scales, 4 * inputs.groups));
      return { y: yValues, inputs: { levels: levelsInOrder(inputWords, inputs.groups), scales: Float64Array.from(scales) }, inputWords };
    } finally {
      scratch.destroy();
      w.destroy();
      xBuffer.destroy();
      y.destroy();
    }
  }

  // Quads per column: 1, 4, 8, 32, 65 (a second step of one quad), 128 (two whole steps of 2 × 32).
  const shapes = [[8, 1], [100, 17], [256, 33], [1000, 5], [2080, 3], [4096, 16]] as const;
  for (const [rows, cols] of shapes) {
    it(`${rows} × ${cols}: x̂, the twin and the exact product`, async () => {
      const paths: [DotPath, boolean][] = [[dotPathFor(context.features), false], ['plain', false]];
      if (context.features.subgroups) paths.push([dotPathFor(context.features), true]);
      const q = quantize(weights(rows, cols, rows + cols), { scheme: 'e8-q16-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
      const m = e8ResidueForm(q);
      const exactW = decodeRotated(q);
      const rng = new Rng(rows);
      const x = new Float32Array(rows);
      for (let k = 0; k < rows; k++) x[k] = rng.nextGaussian() * (k % 37 === 0 ? 20 : 1);
      for (const [dotPath, subgroups] of paths) {
        const { y, inputs } = await run(m, x, dotPath, subgroups);
        // 1. x̂.
        const cpu = quantizeE8InputsI8(x, q.keptLength, m.quadsPerColumn);
        for (let g = 0; g < m.quadsPerColumn; g++) {
          // m / 127 in f32: WGSL's division is within 2.5 ULP (of 2^−23 relative at most 2^−22.7).
          const scale = Math.fround(cpu.scales[g] as number);
          if (Number.isNaN(scale)) expect(inputs.scales[g]).toBeNaN();
          else expect(Math.abs((inputs.scales[g] as number) - scale)).toBeLessThanOrEqual(2.5 * 2 ** -23 * scale);
          for (let k = g * E8_INPUT_GROUP; k < (g + 1) * E8_INPUT_GROUP; k++) {
            const gpuLevel = inputs.levels[k] as number;
            const cpuLevel = cpu.levels[k] as number;
            if (gpuLevel !== cpuLevel) {
              const ratio = (127 * (x[k] as number)) / (127 * (cpu.scales[g] as number));
              expect(Math.abs(gpuLevel - cpuLevel)).toBe(1);
              expect(Math.abs(Math.abs(ratio % 1) - 0.5)).toBeLessThan(1e-4);
            }
          }
        }
        // 2. The twin on the GPU's x̂.
        const twin = e8ResidueGemvReference(m, inputs);
        const depth = 2 + Math.ceil(m.quadsPerColumn / 32) + 5 + 2;
        // 3. The exact product.
        for (let j = 0; j < cols; j++) {
          let s = 0;
          let inputBound = 0;
          for (let g = 0; g < m.quadsPerColumn; g++) {
            let quadAbs = 0;
            let wAbs = 0;
            for (let k = g * E8_INPUT_GROUP; k < Math.min((g + 1) * E8_INPUT_GROUP, q.keptLength); k++) {
              const wk = exactW[j * q.length + k] as number;
              wAbs += Math.abs(wk);
              quadAbs += Math.abs(wk * (inputs.levels[k] as number));
            }
            s += (inputs.scales[g] as number) * quadAbs;
            inputBound += (cpu.scales[g] as number) * (0.5 + 2e-4) * wAbs;
          }
          const twinTolerance = 2 * depth * U * s + 1e-30;
          expect(Math.abs((y[j] as number) - (twin[j] as number)), `column ${j}, ${dotPath}${subgroups ? ', subgroups' : ''}: against the twin`).toBeLessThanOrEqual(twinTolerance);
          let exact = 0;
          for (let k = 0; k < q.keptLength; k++) exact += (exactW[j * q.length + k] as number) * (x[k] as number);
          expect(Math.abs((y[j] as number) - exact), `column ${j}: against the exact product`).toBeLessThanOrEqual(inputBound + twinTolerance);
        }
      }
    });
  }

  it('the whole call (dispatchE8ResidueCall) rotates x for a rotated matrix: within the int8 inputs\' bound of the exact product', async () => {
    const { device } = context;
    for (const [rows, cols] of [[100, 5], [1000, 17]] as const) {
      const q = quantize(weights(rows, cols, 3 * rows), { scheme: 'e8-q16-deterministic', center: false, seed: 11 }) as DeterministicLatticeMatrix;
      expect(q.rotate).toBe(true);
      const m = e8ResidueForm(q);
      const rng = new Rng(rows + 1);
      const x = new Float32Array(rows);
      for (let k = 0; k < rows; k++) x[k] = rng.nextGaussian();
      const w = GpuE8ResidueMatrix.upload(device, m, 'test rotated residues');
      const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
      const y = createBuffer(device, 'test y', 4 * cols, STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder({ label: 'test e8 residue call' });
      dispatchE8ResidueCall(device, encoder, scratch, { w, x: xBuffer, y, dotPath: dotPathFor(context.features) });
      device.queue.submit([encoder.finish()]);
      const yGpu = new Float32Array(await readBuffer(device, y, 4 * cols));
      scratch.destroy();
      w.destroy();
      xBuffer.destroy();
      y.destroy();
      // The exact product in the rotated domain (x̃ = R·x on the CPU), and the int8 inputs' bound.
      const xRotated = new RandomizedHadamard(rows, 11).forward(x);
      const cpu = quantizeE8InputsI8(xRotated, q.keptLength, m.quadsPerColumn);
      const exactW = decodeRotated(q);
      for (let j = 0; j < cols; j++) {
        let exact = 0;
        let bound = 0;
        let magnitude = 0;
        for (let k = 0; k < q.keptLength; k++) {
          const wk = exactW[j * q.length + k] as number;
          exact += wk * (xRotated[k] as number);
          bound += (cpu.scales[Math.floor(k / E8_INPUT_GROUP)] as number) * (0.5 + 2e-4) * Math.abs(wk);
          magnitude += Math.abs(wk * (xRotated[k] as number));
        }
        // f32: the rotation's and the kernel's rounding, generously 64·u of Σ|ŵ̃·x̃|.
        expect(Math.abs((yGpu[j] as number) - exact), `${rows} × ${cols}, column ${j}`).toBeLessThanOrEqual(bound + 64 * U * magnitude);
      }
    }
  });

  it('the GPU repack of an uploaded matrix equals e8ResidueForm word for word (gains, rotation, partial quads)', async () => {
    const { device } = context;
    const cases: [number, number, Omit<QuantizeOptions, 'scheme'>][] = [
      [8, 1, { rotate: false }],
      [100, 5, { seed: 3 }],
      [1000, 17, { seed: 4, gain: 'none' }],
      [2080, 3, { rotate: false }],
    ];
    for (const [rows, cols, options] of cases) {
      const q = quantize(weights(rows, cols, rows + 7), { scheme: 'e8-q16-deterministic', center: false, ...options }) as DeterministicLatticeMatrix;
      const cpu = e8ResidueForm(q);
      const uploaded = uploadLatticeMatrix(device, q);
      const w = GpuE8ResidueMatrix.repack(device, uploaded, 'test repack');
      const what = `${rows} × ${cols}`;
      expect(Array.from(new Uint32Array(await readBuffer(device, w.residues, 4 * cpu.residues.length))), `${what}: residues`).toEqual(Array.from(cpu.residues));
      expect(Array.from(new Uint32Array(await readBuffer(device, w.sides, 4 * cpu.sides.length))), `${what}: sides`).toEqual(Array.from(cpu.sides));
      expect(Array.from(new Float32Array(await readBuffer(device, w.columnScales, 4 * cols))), `${what}: column scales`).toEqual(Array.from(cpu.columnScales));
      expect([w.columnUnit, w.quadsPerColumn, w.rotate, w.seed, w.length, w.keptLength]).toEqual([cpu.columnUnit, cpu.quadsPerColumn, cpu.rotate, cpu.seed, cpu.length, cpu.keptLength]);
      w.destroy();
      uploaded.destroy();
    }
    // Refusals, by name.
    const centred = uploadLatticeMatrix(device, quantize(weights(64, 2, 1), { scheme: 'e8-q16-deterministic', center: true }) as DeterministicLatticeMatrix);
    expect(() => GpuE8ResidueMatrix.repack(device, centred, 'test')).toThrow(/center: false/);
    centred.destroy();
    const d3 = uploadLatticeMatrix(device, quantize(weights(64, 2, 1), { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix);
    expect(() => GpuE8ResidueMatrix.repack(device, d3, 'test')).toThrow(/E8 with q = 16/);
    d3.destroy();
  });

  it('gives NaN outputs for a non-finite input, and zeros for a zero one', async () => {
    const q = quantize(weights(64, 3, 5), { scheme: 'e8-q16-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
    const m = e8ResidueForm(q);
    const x = new Float32Array(64);
    expect(Array.from((await run(m, x, 'plain', false)).y)).toEqual([0, 0, 0]);
    x[40] = Infinity;
    expect((await run(m, x, 'plain', false)).y.every(Number.isNaN)).toBe(true);
  });

  it('refuses x̂ of another shape and a destroyed matrix', () => {
    const { device } = context;
    const m = e8ResidueForm(quantize(gaussianMatrix(64, 2, 3), { scheme: 'e8-q16-deterministic', center: false, rotate: false }) as DeterministicLatticeMatrix);
    const w = GpuE8ResidueMatrix.upload(device, m, 'test refusals');
    const scratch = new GpuScratch(device);
    const y = createBuffer(device, 'test y', 8, STORAGE_USAGE);
    const encoder = device.createCommandEncoder();
    const inputs = { levels: y, scales: y, groups: 3 };
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputs, y, dotPath: 'plain' })).toThrow(/x̂ has 3 groups, W 2 quads/);
    w.destroy();
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputs: { ...inputs, groups: 2 }, y, dotPath: 'plain' })).toThrow(/live GpuE8ResidueMatrix/);
    scratch.destroy();
    y.destroy();
  });
});
