import matmulF32Source from '../../../shaders/matmul_f32.wgsl?raw';
import { check, checkPositiveInteger, describeValue } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, type BindingWindow, itemsPerBinding } from '../workSplit.js';

/*
 * The f32 baseline C = AᵀB (shaders/matmul_f32.wgsl): column-major A (n × aCols), B (n × bCols),
 * C (aCols × bCols). CPU twin: `matmulATExact` (float64 accumulation); the GPU accumulates in f32 with
 * k increasing, so entry (i, j) is within n·2^−24·Σ_k |A_ki·B_kj| of the exact value.
 */

/** C entries per workgroup edge (the shader's TILE; shaders/pair_matmul.wgsl tiles alike). */
export const MATMUL_TILE = 64;
const TILE = MATMUL_TILE;

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the shader. */
const Params = /*#__PURE__*/ new UniformLayout('MatmulParams', {
  n: 'u32',
  a_cols: 'u32',
  b_cols: 'u32',
  a_first: 'u32', // element offset of A[0, 0] in its binding
  b_first: 'u32',
  c_first: 'u32',
});

/** The WGSL of the kernel: its uniform struct, then shaders/matmul_f32.wgsl (the benchmark counts its instructions). */
export function matmulF32ShaderSource(): string {
  return `${Params.wgsl()}\n${matmulF32Source}`;
}

/** One pipeline per device (the kernel has no compile-time variants), built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'matmul f32',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'matmul f32', code: matmulF32ShaderSource() }),
});

/** Arguments of `dispatchMatmulF32`. Offsets are in bytes (multiples of 4). */
export interface MatmulF32Args {
  /** A, n × aCols column-major f32. */
  readonly a: GPUBuffer;
  /** B, n × bCols column-major f32. */
  readonly b: GPUBuffer;
  /** C = AᵀB, aCols × bCols column-major f32 (written). */
  readonly c: GPUBuffer;
  readonly n: number;
  readonly aCols: number;
  readonly bCols: number;
  readonly aOffset?: number;
  readonly bOffset?: number;
  readonly cOffset?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Refuses an A that a tiled product of 64-column tiles binds whole (this kernel's A, the pair product's
 * pair form: pairMatmul.ts) when its binding (`bindingBytes`) exceeds `maxBinding`, naming the columns
 * of `columnBytes` that fit, or its columns exceed one grid dimension; `what` names A as the caller
 * knows it, `described` says what it holds ("1024 × 300 f32").
 */
export function checkWholeProductA(device: GPUDevice, what: string, described: string, columnBytes: number, aCols: number, bindingBytes: number, maxBinding: number): void {
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  check(
    bindingBytes <= maxBinding,
    () =>
      `${what} (${described}, ${bindingBytes} bytes) is larger than one storage binding (${maxBinding} bytes): ` +
      `multiply it in parts of at most ${Math.floor(maxBinding / columnBytes)} columns, or swap the operands (ÂᵀB̂ = (B̂ᵀÂ)ᵀ) when the other is smaller`,
  );
  check(
    Math.ceil(aCols / TILE) <= maxGroups,
    () => `${what} has ${aCols} columns, more than ${maxGroups * TILE} (${maxGroups} workgroups of ${TILE} in one dimension): ` +
      `multiply it in parts, or swap the operands (ÂᵀB̂ = (B̂ᵀÂ)ᵀ) when the other has fewer columns`,
  );
}

/**
 * Refuses an A the tiled kernel cannot take (A is bound whole; its columns set one grid dimension),
 * so a caller can check before recording anything: `what` names A as the caller knows it.
 * `bindingBytes`: A's binding size (4·n·aCols plus any alignment slack).
 */
export function checkMatmulF32A(device: GPUDevice, n: number, aCols: number, what: string, bindingBytes = 4 * n * aCols, maxBinding = device.limits.maxStorageBufferBindingSize): void {
  checkWholeProductA(device, what, `${n} × ${aCols} f32`, 4 * n, aCols, bindingBytes, maxBinding);
}

/**
 * The dispatches of a tiled product C = AᵀB that binds A whole: ranges of B's columns (and C's) whose
 * B and C bytes each fit one binding and whose tiles fit one grid dimension, with their windows (B's
 * columns of `bColumnBytes` from `bOffset`, C's of aCols f32 from `cOffset`).
 */
export function productColumnChunks(
  device: GPUDevice,
  shape: { readonly aCols: number; readonly bCols: number; readonly bColumnBytes: number; readonly bOffset: number; readonly cOffset: number },
  maxBinding: number,
): { readonly first: number; readonly count: number; readonly bWindow: BindingWindow; readonly cWindow: BindingWindow }[] {
  const { aCols, bCols, bColumnBytes, bOffset, cOffset } = shape;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const perChunk = Math.min(itemsPerBinding(bColumnBytes, maxBinding, alignment), itemsPerBinding(4 * aCols, maxBinding, alignment), device.limits.maxComputeWorkgroupsPerDimension * TILE);
  const chunks = [];
  for (let first = 0; first < bCols; first += perChunk) {
    const count = Math.min(perChunk, bCols - first);
    chunks.push({ first, count, bWindow: bindingWindow(bOffset + bColumnBytes * first, bColumnBytes * count, alignment), cWindow: bindingWindow(cOffset + 4 * aCols * first, 4 * aCols * count, alignment) });
  }
  return chunks;
}

/**
 * Records C = AᵀB into `encoder`. Columns of B (and C) are split across several dispatches when B or C
 * is larger than one storage binding or the grid exceeds the dispatch limit; A must fit one binding.
 * Parameter buffers go into `scratch` (destroy it after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'AᵀB' });
 * dispatchMatmulF32(device, encoder, scratch, { a, b, c, n: 768, aCols: 256, bCols: 256 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchMatmulF32(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: MatmulF32Args,
): void {
  const { n, aCols, bCols } = args;
  checkPositiveInteger(n, 'matmul n');
  checkPositiveInteger(aCols, 'matmul aCols');
  checkPositiveInteger(bCols, 'matmul bCols');
  const aOffset = args.aOffset ?? 0;
  const bOffset = args.bOffset ?? 0;
  const cOffset = args.cOffset ?? 0;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'product');
  checkBufferRange(args.a, aOffset, 4 * n * aCols, 'matmul: A');
  checkBufferRange(args.b, bOffset, 4 * n * bCols, 'matmul: B');
  checkBufferRange(args.c, cOffset, 4 * aCols * bCols, 'matmul: C');

  const aWindow = bindingWindow(aOffset, 4 * n * aCols, alignment);
  checkMatmulF32A(device, n, aCols, 'matmul: A', aWindow.size, maxBinding);
  const chunks = productColumnChunks(device, { aCols, bCols, bColumnBytes: 4 * n, bOffset, cOffset }, maxBinding);

  const { layout, pipeline } = pipelines.get(device);
  const pass = encoder.beginComputePass({ label: 'matmul f32' });
  pass.setPipeline(pipeline);
  for (const { first: j0, count: chunkCols, bWindow, cWindow } of chunks) {
    const params = scratch.uniform(
      `matmul f32 params (B columns ${j0}…${j0 + chunkCols - 1})`,
      Params.pack({
        n,
        a_cols: aCols,
        b_cols: chunkCols,
        a_first: aWindow.firstElement,
        b_first: bWindow.firstElement,
        c_first: cWindow.firstElement,
      }),
    );
    const bindGroup = createKernelBindGroup(device, layout, `matmul f32 (B columns ${j0}…${j0 + chunkCols - 1})`, [
      { buffer: params },
      windowBinding(args.a, aWindow),
      windowBinding(args.b, bWindow),
      windowBinding(args.c, cWindow),
    ]);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(aCols / TILE), Math.ceil(chunkCols / TILE));
  }
  pass.end();
}

/**
 * C = AᵀB on the GPU for CPU matrices: uploads, dispatches inside validation error scopes, reads back,
 * and destroys its buffers. For tests and benchmarks; applications keep data on the GPU and call
 * `dispatchMatmulF32`.
 *
 * @example
 * const c = await matmulF32(device, a, b); // a.cols × b.cols
 */
export async function matmulF32(device: GPUDevice, a: Matrix, b: Matrix): Promise<Matrix> {
  checkMatrix(a, 'A');
  checkMatrix(b, 'B');
  check(a.rows === b.rows, () => `A and B must have the same number of rows (got ${describeValue(a.rows)} and ${describeValue(b.rows)})`);
  const cBytes = 4 * a.cols * b.cols;
  const data = await runAndRead(device, 'matmul f32', cBytes, (run) => {
    const aBuffer = run.upload('matmul A', a.data);
    const bBuffer = run.upload('matmul B', b.data);
    const cBuffer = run.storage('matmul C', cBytes);
    dispatchMatmulF32(device, run.encoder, run.scratch, {
      a: aBuffer,
      b: bBuffer,
      c: cBuffer,
      n: a.rows,
      aCols: a.cols,
      bCols: b.cols,
    });
    return cBuffer;
  });
  return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
}
