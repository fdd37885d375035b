import { expect } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchE8InputsI8, E8_INPUT_GROUP, e8InputsI8FromWords, quantizeE8InputsI8, type E8InputsI8Values, type E8QuadGemvArgs, type GpuE8QuadMatrix, type RecordedE8InputsI8 } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import type { Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * What the tests of the two E8 int8-input GEMVs share (test/gpu/e8ResidueGemv.test.ts and
 * e8PointGemv.test.ts): their weights, x̂ read back from the GPU, and the comparison of y with the CPU
 * twin (f32 rounding) and with the exact product (the int8 inputs' bound).
 */

const U = 2 ** -24;

/** The GPU's x̂ of each of `rhs` right-hand sides (`groups` groups of 32 each), levels in coordinate order and scales. */
export async function readE8InputsI8(device: GPUDevice, recorded: RecordedE8InputsI8, groups: number, rhs: number): Promise<E8InputsI8Values[]> {
  return e8InputsI8FromWords(new Uint32Array(await readBuffer(device, recorded.inputs, 52 * groups * rhs)), groups, rhs);
}

/** Columns of several kinds: Gaussian, graded by block (every scale rung), one spike, constant. */
export function e8TestWeights(rows: number, cols: number, seed: number): Matrix {
  const w = gaussianMatrix(rows, cols, seed);
  for (let j = 0; j < cols; j++) {
    const column = w.data.subarray(j * rows, (j + 1) * rows);
    if (j % 4 === 1) for (let k = 0; k < rows; k++) column[k] = (column[k] as number) * 3 ** ((Math.floor(k / 8) % 4) - 1.5);
    if (j % 4 === 2) column.fill(0).fill(5, rows >> 1, (rows >> 1) + 1);
    if (j % 4 === 3) column.fill(0.75);
  }
  return w;
}

/** One right-hand side of an E8 int8-input GEMV: its output, the GPU's x̂, x̃ and the CPU twin on that x̂. */
export interface E8GemvCase {
  readonly y: ArrayLike<number>;
  readonly twin: ArrayLike<number>;
  /** The GPU's x̂ of this right-hand side. */
  readonly inputs: E8InputsI8Values;
  /** x̃ (length entries: the rotated x, or x itself). */
  readonly x: ArrayLike<number>;
  /** W's exact rotated decode (`decodeRotated`), column-major with `length` rows. */
  readonly exactW: ArrayLike<number>;
  readonly length: number;
  readonly keptLength: number;
  readonly quadsPerColumn: number;
  /** What the messages name after the column ("right-hand side 0, packed"). */
  readonly what: string;
}

/**
 * Every column of y against the twin on the GPU's own x̂, within D·u·S (S = Σ_g |s_g·sum_g|·scale, D the
 * roundings along a path: the quad sum's conversion, a lane's ⌈quads/32⌉ multiply-adds, 5 levels of the
 * lane tree, the column scale and unit; 2× margin), and against the exact product Σ_k ŵ̃_jk·x̃_k within
 * the int8 inputs' bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus that.
 */
export function expectE8GemvWithinBounds(c: E8GemvCase): void {
  const cpu = quantizeE8InputsI8(c.x, c.keptLength, c.quadsPerColumn);
  const depth = 2 + Math.ceil(c.quadsPerColumn / 32) + 5 + 2;
  for (let j = 0; j < c.y.length; j++) {
    let s = 0;
    let inputBound = 0;
    for (let g = 0; g < c.quadsPerColumn; g++) {
      let quadAbs = 0;
      let wAbs = 0;
      for (let k = g * E8_INPUT_GROUP; k < Math.min((g + 1) * E8_INPUT_GROUP, c.keptLength); k++) {
        const wk = c.exactW[j * c.length + k] as number;
        wAbs += Math.abs(wk);
        quadAbs += Math.abs(wk * (c.inputs.levels[k] as number));
      }
      s += (c.inputs.scales[g] as number) * quadAbs;
      inputBound += (cpu.scales[g] as number) * (0.5 + 2e-4) * wAbs;
    }
    const twinTolerance = 2 * depth * U * s + 1e-30;
    expect(Math.abs((c.y[j] as number) - (c.twin[j] as number)), `column ${j}, ${c.what}: against the twin`).toBeLessThanOrEqual(twinTolerance);
    let exact = 0;
    for (let k = 0; k < c.keptLength; k++) exact += (c.exactW[j * c.length + k] as number) * (c.x[k] as number);
    expect(Math.abs((c.y[j] as number) - exact), `column ${j}, ${c.what}: against the exact product`).toBeLessThanOrEqual(inputBound + twinTolerance);
  }
}

/**
 * A whole call's Y (cols × rhs, `y`) for x (rows × rhs, `xAll`) and a rotated matrix `q`, against the
 * exact product in the rotated domain (x̃ = R·x on the CPU, seed `q.seed`) plus μ_j·Σx: within the int8
 * inputs' bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus the f32 roundings of the rotation, Σx and
 * the kernel, generously 64·u of Σ|ŵ̃·x̃| + |μ·Σx|. `what` begins the messages.
 */
export function expectRotatedE8GemvWithinBound(q: LatticeQuantizedMatrix, xAll: Float32Array, rhs: number, y: ArrayLike<number>, what: string): void {
  const { rows, cols } = q;
  const exactW = decodeRotated(q);
  for (let r = 0; r < rhs; r++) {
    const x = xAll.subarray(r * rows, (r + 1) * rows);
    const xRotated = new RandomizedHadamard(rows, q.seed).forward(x);
    const cpu = quantizeE8InputsI8(xRotated, q.keptLength, Math.ceil(q.blocksPerColumn / 4));
    const xSum = x.reduce((a, b) => a + b, 0);
    for (let j = 0; j < cols; j++) {
      let exact = q.means === null ? 0 : (q.means[j] as number) * xSum;
      let bound = 0;
      let magnitude = Math.abs(exact);
      for (let k = 0; k < q.keptLength; k++) {
        const wk = exactW[j * q.length + k] as number;
        exact += wk * (xRotated[k] as number);
        bound += (cpu.scales[Math.floor(k / E8_INPUT_GROUP)] as number) * (0.5 + 2e-4) * Math.abs(wk);
        magnitude += Math.abs(wk * (xRotated[k] as number));
      }
      expect(Math.abs((y[r * cols + j] as number) - exact), `${what}, column ${j}, right-hand side ${r}`).toBeLessThanOrEqual(bound + 64 * U * magnitude);
    }
  }
}

/**
 * y (cols × rhs) and the GPU's x̂ of each right-hand side of an E8 int8-input GEMV (`record`: the residue
 * or the point GEMV) of `w` for x̃ (`xRotated`, length × rhs, or x for an unrotated W), with x̂ rounded
 * by `dispatchE8InputsI8`; `w` is destroyed afterwards.
 */
export async function runE8QuadGemv<W extends GpuE8QuadMatrix>(
  w: W,
  xRotated: Float32Array,
  rhs: number,
  dotPath: DotPath,
  subgroups: boolean,
  record: (encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8QuadGemvArgs & { readonly w: W }) => void,
): Promise<{ y: Float32Array; inputs: E8InputsI8Values[] }> {
  const { device } = w;
  const xBuffer = createBufferWithData(device, 'test x̃', xRotated, STORAGE_USAGE);
  const y = createBuffer(device, 'test y', 4 * w.cols * rhs, STORAGE_USAGE);
  const scratch = new GpuScratch(device);
  try {
    const encoder = device.createCommandEncoder({ label: 'test e8 gemv' });
    const inputsI8 = dispatchE8InputsI8(device, encoder, scratch, { w, xRotated: xBuffer, rhs });
    record(encoder, scratch, { w, inputsI8, y, rhs, dotPath, subgroups, ...(subgroups ? { subgroupTestMode: 'require-shuffles' as const } : {}) });
    device.queue.submit([encoder.finish()]);
    const yValues = new Float32Array(await readBuffer(device, y, 4 * w.cols * rhs));
    return { y: yValues, inputs: await readE8InputsI8(device, inputsI8, w.quadsPerColumn, rhs) };
  } finally {
    scratch.destroy();
    w.destroy();
    xBuffer.destroy();
    y.destroy();
  }
}
