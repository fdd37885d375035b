import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import e8MatmulSource from '../../../shaders/e8_matmul.wgsl?raw';
import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import { check } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import { schemeLattice } from '../../quantize/quantize.js';
import type { GpuFeatures } from '../device.js';
import {
  checkGpuDeterministicMatrix,
  checkProductOperands,
  exactRunBlocks,
  largestMultiple,
  latticeId,
  planProductChunks,
  type GpuDeterministicMatrix,
} from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { PRODUCT_TILE_WGSL, productBindings, productBindingTypes, productParams, productParamsLayout } from './productCommon.js';

/*
 * C = ÂᵀB̂ for two quantized matrices with 8-dimensional blocks (E8 or Z^8) on the GPU
 * (shaders/e8_matmul.wgsl): leaders decoded on the fly with the integer decoder of
 * shaders/lattice_decode.wgsl, held as 8 int8 lanes, multiplied with `dot4I8Packed` where the WGSL
 * language feature packed_4x8_integer_dot_product exists and with plain sign extension otherwise.
 * CPU twin: the decoded path of `matmulAT` (src/product/matmulAT.ts), which decodes in float64.
 */

/** C entries per workgroup edge (the shader's TILE). */
const TILE = 64;
/** Blocks per decoded slice (the shader's SLICE). */
const SLICE = 8;
/** Invocations per workgroup (the shader's THREADS). */
const THREADS = 256;

/** How the kernel forms the 8-lane int8 dot products. */
export type DotPath = 'packed' | 'plain';

/** `'packed'` where the adapter's WGSL has packed_4x8_integer_dot_product, else `'plain'`. */
export function dotPathFor(features: GpuFeatures): DotPath {
  return features.packed4x8IntegerDotProduct ? 'packed' : 'plain';
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ productParamsLayout('E8MatmulParams', {
  kept: 'u32', // keptLength: rotated coordinates that carry data
  a_lattice: 'u32', // LATTICE_E8 or LATTICE_Z8
  a_q: 'u32',
  a_code_bits: 'u32',
  b_lattice: 'u32',
  b_q: 'u32',
  b_code_bits: 'u32',
  flush_blocks: 'u32', // blocks per exact i32 run (1 … SLICE)
  decode_steps: 'u32', // 2 · SLICE · TILE / THREADS (a uniform, so the decoder is not unrolled)
});

/** The WGSL of one dot path: the dot library, the decoders, the uniform struct, then the kernel. */
export function e8MatmulShaderSource(dotPath: DotPath): string {
  return `${dotPath === 'packed' ? dotPackedSource : dotPlainSource}\n${latticeDecodeSource}\n${Params.wgsl()}\n${PRODUCT_TILE_WGSL}\n${e8MatmulSource}`;
}

/** Pipelines per device, one per dot path, built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 matmul',
  bindings: /*#__PURE__*/ productBindingTypes('uniform'),
  compile: (device, pipelineLayout, dotPath: DotPath) =>
    createKernelPipeline(device, pipelineLayout, { label: `e8 matmul (${dotPath} dot products)`, code: e8MatmulShaderSource(dotPath) }),
});

/** Largest ‖P‖² of a leader in point coordinates: E8 ≤ (2q)² (covering radius 1, doubled); Z^8 ≤ 8·⌊q/2⌋². */
function leaderNormSquaredBound(m: GpuDeterministicMatrix): number {
  const q = m.scheme.q;
  return m.scheme.lattice === 'E8' ? 4 * q * q : 8 * Math.floor(q / 2) ** 2;
}

/** Arguments of `dispatchE8Matmul`. */
export interface E8MatmulArgs {
  /** Â: E8 or Z^8 quantized (q ≤ 16), n × aCols. */
  readonly a: GpuDeterministicMatrix;
  /** B̂: E8 or Z^8 quantized with the same seed, lengths and centring, n × bCols. */
  readonly b: GpuDeterministicMatrix;
  /** C = ÂᵀB̂, aCols × bCols column-major f32 (written). */
  readonly c: GPUBuffer;
  /** Byte offset of C in its buffer (a multiple of 4). */
  readonly cOffset?: number;
  /**
   * `'packed'` uses `dot4I8Packed` (only where the WGSL language feature exists: see `dotPathFor`),
   * `'plain'` core WGSL.
   */
  readonly dotPath: DotPath;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records C = ÂᵀB̂ (+ n·μ_a·μ_b when both are centred) into `encoder` for two E8 / Z^8 quantized
 * matrices, decoding leaders on the fly. Columns are split across dispatches when codes or C exceed
 * one storage binding, or the grid exceeds the dispatch limit. Scratch buffers go into `scratch`:
 * destroy it after submitting.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'ÂᵀB̂ (E8)' });
 * dispatchE8Matmul(device, encoder, scratch, { a: gpuA, b: gpuB, c, dotPath: dotPathFor(features) });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchE8Matmul(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: E8MatmulArgs): void {
  const { a, b } = args;
  checkGpuDeterministicMatrix(a, 'A');
  checkGpuDeterministicMatrix(b, 'B');
  for (const [m, name] of [[a, 'A'], [b, 'B']] as const) {
    check(
      (m.scheme.lattice === 'E8' || m.scheme.lattice === 'Z') && m.scheme.q <= 16,
      () => `the E8 product needs E8 or Z^8 codes with q ≤ 16; ${name} is ${m.scheme.lattice}, q = ${m.scheme.q}`,
    );
  }
  checkProductOperands(a, b);
  check(args.dotPath === 'packed' || args.dotPath === 'plain', () => `dotPath must be 'packed' or 'plain', got '${String(args.dotPath)}'`);

  const dotBound = Math.floor(Math.sqrt(leaderNormSquaredBound(a) * leaderNormSquaredBound(b)));
  const flushBlocks = exactRunBlocks(largestMultiple(a) * largestMultiple(b) * dotBound, SLICE);
  const common = (a.unit * b.unit) / (schemeLattice(a.scheme).pointScale * schemeLattice(b.scheme).pointScale * a.length);
  const { layout, pipeline } = pipelines.get(device, args.dotPath);
  const chunks = planProductChunks(
    device,
    encoder,
    scratch,
    { a, b, c: args.c, cOffset: args.cOffset ?? 0, maxBindingBytes: args.maxBindingBytes },
    TILE,
    'e8 matmul',
  );

  const pass = encoder.beginComputePass({ label: `e8 matmul (${args.dotPath})` });
  pass.setPipeline(pipeline);
  for (const chunk of chunks) {
    const params = Params.pack({
      ...productParams(a, b, chunk, common),
      kept: a.keptLength,
      a_lattice: latticeId(a.scheme),
      a_q: a.scheme.q,
      a_code_bits: a.codeBits,
      b_lattice: latticeId(b.scheme),
      b_q: b.scheme.q,
      b_code_bits: b.codeBits,
      flush_blocks: flushBlocks,
      decode_steps: (2 * SLICE * TILE) / THREADS,
    });
    const bindGroup = createKernelBindGroup(device, layout, chunk.label, [
      { buffer: scratch.uniform(`${chunk.label} params`, params) },
      ...productBindings(a, b, args.c, chunk),
    ]);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(chunk.aRange.count / TILE), Math.ceil(chunk.bRange.count / TILE));
  }
  pass.end();
}

/**
 * C = ÂᵀB̂ for two E8 / Z^8 matrices already on the GPU: dispatches inside validation error scopes,
 * reads C back, and destroys what it created. For tests and benchmarks.
 *
 * @example
 * const c = await e8MatmulAT(device, gpuA, gpuB, { dotPath: dotPathFor(features) }); // ≈ matmulAT(qa, qb)
 */
export async function e8MatmulAT(
  device: GPUDevice,
  a: GpuDeterministicMatrix,
  b: GpuDeterministicMatrix,
  options: Pick<E8MatmulArgs, 'dotPath' | 'maxBindingBytes'>,
): Promise<Matrix> {
  const cBytes = 4 * a.cols * b.cols;
  const data = await runAndRead(device, { scope: `e8 matmul (${options.dotPath})`, encoder: 'e8 matmul' }, cBytes, (run) => {
    const cBuffer = run.storage('e8 matmul C', cBytes);
    dispatchE8Matmul(device, run.encoder, run.scratch, { a, b, c: cBuffer, ...options });
    return cBuffer;
  });
  return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
}
