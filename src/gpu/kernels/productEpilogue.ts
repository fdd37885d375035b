import epilogueSource from '../../../shaders/product_epilogue.wgsl?raw';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';

/*
 * Means and Gram diagonal of the universal product (shaders/product_epilogue.wgsl), applied to C after
 * the f32 product of the decoded operands. CPU twin: the end of `matmulAT`.
 */

/** Invocations per workgroup of shaders/product_epilogue.wgsl. */
export const PRODUCT_EPILOGUE_THREADS = 256;

const Params = /*#__PURE__*/ new UniformLayout('ProductEpilogueParams', {
  a_cols: 'u32',
  b_cols: 'u32',
  chunk_cols: 'u32',
  b_first: 'u32',
  c_first: 'u32',
  centred: 'u32',
  gram: 'u32',
  rescale: 'u32',
  rows: 'f32',
});

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'product epilogue',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage', 'read-only-storage', 'read-only-storage'],
  compile: (device, pipelineLayout) =>
    createKernelPipeline(device, pipelineLayout, { label: 'product epilogue', code: `${Params.wgsl()}\n${epilogueSource}` }),
});

/** Arguments of {@link dispatchProductEpilogue}. */
export interface ProductEpilogueArgs {
  /** Norms (aCols f32) then, when centred, means (aCols f32) of A; the same for B. */
  readonly sideA: GPUBuffer;
  readonly sideB: GPUBuffer;
  readonly c: GPUBuffer;
  /** Byte offset of C (a multiple of 4). */
  readonly cOffset: number;
  readonly aCols: number;
  readonly bCols: number;
  /** n, the rows of the original matrices (the mean term is n·m_a·m_b). */
  readonly rows: number;
  readonly centred: boolean;
  /** A and B are one quantization: the diagonal is set to the stored ‖a_i‖² (+ n·m_i²). */
  readonly gram: boolean;
  /**
   * The binary exponents (aCols and bCols i32) written by the decode kernels' `normalizeColumns`: C is
   * multiplied back by 2^(e_a[i] + e_b[j]) before the mean term and the Gram diagonal.
   */
  readonly exponents?: { readonly a: GPUBuffer; readonly b: GPUBuffer };
  /** Test knob: a smaller cap than the device's maxStorageBufferBindingSize for C's chunks. */
  readonly maxBindingBytes?: number;
}

/**
 * Records the epilogue (nothing when there is nothing to do: not centred, not Gram, no exponents).
 *
 * @example
 * dispatchProductEpilogue(device, encoder, scratch, { sideA: a.side, sideB: a.side, c, cOffset: 0, aCols: a.cols, bCols: a.cols, rows: a.rows, centred: false, gram: true });
 */
export function dispatchProductEpilogue(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: ProductEpilogueArgs): void {
  if (!args.centred && !args.gram && !args.exponents) return;
  if (args.centred || args.gram) {
    const sideWords = args.centred ? 2 : 1;
    checkBufferRange(args.sideA, 0, 4 * sideWords * args.aCols, 'product epilogue: A norms and means');
    checkBufferRange(args.sideB, 0, 4 * sideWords * args.bCols, 'product epilogue: B norms and means');
  }
  if (args.exponents) {
    checkBufferRange(args.exponents.a, 0, 4 * args.aCols, 'product epilogue: A exponents');
    checkBufferRange(args.exponents.b, 0, 4 * args.bCols, 'product epilogue: B exponents');
  }
  const exponents = args.exponents ?? { a: args.sideA, b: args.sideB }; // bound, never read
  checkBufferRange(args.c, args.cOffset, 4 * args.aCols * args.bCols, 'product epilogue: C');
  const { layout, pipeline } = pipelines.get(device);
  const label = 'product epilogue';
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'product epilogue');
  // C is bound a chunk of columns at a time (a caller's C, or the buffer holding it, may exceed one binding).
  const columnsPerChunk = itemsPerBinding(4 * args.aCols, maxBinding, alignment);
  const pass = encoder.beginComputePass({ label });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < args.bCols; j0 += columnsPerChunk) {
    const chunkCols = Math.min(columnsPerChunk, args.bCols - j0);
    const cWindow = bindingWindow(args.cOffset + 4 * args.aCols * j0, 4 * args.aCols * chunkCols, alignment);
    const chunkLabel = `${label} (C columns ${j0}…${j0 + chunkCols - 1})`;
    const params = Params.pack({
      a_cols: args.aCols,
      b_cols: args.bCols,
      chunk_cols: chunkCols,
      b_first: j0,
      c_first: cWindow.firstElement,
      centred: args.centred ? 1 : 0,
      gram: args.gram ? 1 : 0,
      rescale: args.exponents ? 1 : 0,
      rows: args.rows,
    });
    pass.setBindGroup(0, createKernelBindGroup(device, layout, chunkLabel, [
      { buffer: scratch.uniform(chunkLabel, params) },
      { buffer: args.sideA },
      { buffer: args.sideB },
      windowBinding(args.c, cWindow),
      { buffer: exponents.a },
      { buffer: exponents.b },
    ]));
    const [x, y] = workgroupGrid(Math.ceil((args.aCols * chunkCols) / PRODUCT_EPILOGUE_THREADS), device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}
