import dotPackedSource from '../../../shaders/dot_i8_packed.wgsl?raw';
import dotPlainSource from '../../../shaders/dot_i8_plain.wgsl?raw';
import e8MatmulSource from '../../../shaders/e8_matmul.wgsl?raw';
import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import { check, checkOneOf, describeValue } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import { schemeLattice } from '../../quantize/quantize.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
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
import { packedLayout } from '../../format/packing.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { gemvDecodeWgsl } from './gemvDecode.js';
import { PRODUCT_TILE_WGSL, productBindings, productBindingTypes, productParams, productParamsLayout } from './productCommon.js';

/*
 * C = ÂᵀB̂ for two quantized matrices with 8-dimensional blocks (E8 or Z^8) on the GPU
 * (shaders/e8_matmul.wgsl): leaders decoded on the fly (with q compiled in, gemv_leader of
 * shaders/gemv_decode.wgsl, when both operands share their lattice and q; else the run-time decoder
 * of shaders/lattice_decode.wgsl), held as 8 int8 lanes, multiplied with `dot4I8Packed` where the WGSL
 * language feature packed_4x8_integer_dot_product exists and with plain sign extension otherwise.
 * CPU twin: the decoded path of `matmulAT` (src/product/matmulAT.ts), which decodes in float64.
 */

/** C entries per workgroup edge (the shader's TILE). */
export const E8_MATMUL_TILE = 64;
/** Blocks per decoded slice (the shader's SLICE). */
export const E8_MATMUL_SLICE = 8;
/** Invocations per workgroup (the shader's THREADS). */
export const E8_MATMUL_THREADS = 256;

/** How the kernels form 8-bit integer dot products: WGSL's dot4I8Packed, or unpacked multiply-adds. */
export const DOT_PATHS = ['packed', 'plain'] as const;

/**
 * How the kernel forms the 8-lane int8 dot products.
 *
 * @useDeclaredType
 */
export type DotPath = (typeof DOT_PATHS)[number];

/** `'packed'` where the adapter's WGSL has packed_4x8_integer_dot_product, else `'plain'`. */
export function dotPathFor(features: GpuFeatures): DotPath {
  check(
    typeof features === 'object' && features !== null && typeof features.packed4x8IntegerDotProduct === 'boolean',
    () => `dotPathFor: features must be a GpuContext's features { packed4x8IntegerDotProduct, … }, got ${describeValue(features)}`,
  );
  return features.packed4x8IntegerDotProduct ? 'packed' : 'plain';
}

/** The kernel's uniform struct (`params`); its WGSL is generated and put in front of the kernel. */
const Params = /*#__PURE__*/ productParamsLayout('E8MatmulParams', {
  kept: 'u32', // keptLength: rotated coordinates that carry data
  a_lattice: 'u32', // LATTICE_E8 or LATTICE_Z8 (the run-time decoder's)
  a_q: 'u32',
  b_lattice: 'u32',
  b_q: 'u32',
  flush_blocks: 'u32', // blocks per exact i32 run (1 … SLICE)
  decode_steps: 'u32', // 2 · SLICE · TILE / THREADS (a uniform, so the decoder is not unrolled)
});

/** What the kernel compiles in of one operand's code: its lattice, q and field widths. */
interface OperandCodeShape {
  readonly lattice: 'E8' | 'Z';
  readonly q: number;
  readonly codeBits: number;
  readonly indexBits: number;
}

/** One pipeline: the dot path and the code shapes of A and B. */
export interface E8MatmulVariant {
  readonly dotPath: DotPath;
  readonly a: OperandCodeShape;
  readonly b: OperandCodeShape;
}

function codeShape(m: GpuDeterministicMatrix): OperandCodeShape {
  return { lattice: m.scheme.lattice as 'E8' | 'Z', q: m.scheme.q, codeBits: m.codeBits, indexBits: m.scaleIndexBits };
}

/** Both operands decode with one compile-time decoder (gemv_leader) when they share lattice and q. */
function sharesDecoder(variant: E8MatmulVariant): boolean {
  return variant.a.lattice === variant.b.lattice && variant.a.q === variant.b.q;
}

/**
 * The generated header of shaders/e8_matmul.wgsl: each operand's field widths and values per word
 * (constants, so that a block's word and slot are shifts or divisions by a constant), and
 * `operand_leader(is_b, code)`, the leader of a code of A or B.
 */
function operandHeaderWgsl(variant: E8MatmulVariant): string {
  const lines: string[] = [];
  for (const [prefix, shape] of [['A', variant.a], ['B', variant.b]] as const) {
    lines.push(
      `const ${prefix}_CODE_BITS: u32 = ${shape.codeBits}u;`,
      `const ${prefix}_CODES_PER_WORD: u32 = ${packedLayout(shape.codeBits, 1).perWord}u;`,
      `const ${prefix}_INDEX_BITS: u32 = ${shape.indexBits}u;`,
      `const ${prefix}_INDICES_PER_WORD: u32 = ${packedLayout(shape.indexBits, 1).perWord}u;`,
    );
  }
  lines.push(
    'fn operand_leader(is_b: bool, code: u32) -> LatticePoint {',
    sharesDecoder(variant)
      ? '  return gemv_leader(code, 0u);'
      : '  return decode_leader(select(params.a_lattice, params.b_lattice, is_b), code, select(params.a_q, params.b_q, is_b));',
    '}',
  );
  return lines.join('\n');
}

/**
 * The WGSL of one variant: the dot library, the decoders (the compile-time one when the operands share
 * it), the uniform struct, the operand header, the tile library, then the kernel.
 */
export function e8MatmulShaderSource(variant: E8MatmulVariant): string {
  const dot = variant.dotPath === 'packed' ? dotPackedSource : dotPlainSource;
  const decoder = sharesDecoder(variant) ? gemvDecodeWgsl(variant.a.lattice, variant.a.q) : '';
  return [dot, latticeDecodeSource, decoder, Params.wgsl(), operandHeaderWgsl(variant), PRODUCT_TILE_WGSL, e8MatmulSource].join('\n');
}

function shapeKey(shape: OperandCodeShape): string {
  return `${shape.lattice}${shape.q}/${shape.codeBits}/${shape.indexBits}`;
}

/** Pipelines per device and variant, built on first use. */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'e8 matmul',
  bindings: /*#__PURE__*/ productBindingTypes('uniform'),
  key: (variant: E8MatmulVariant) => `${variant.dotPath}:${shapeKey(variant.a)}:${shapeKey(variant.b)}`,
  compile: (device, pipelineLayout, variant: E8MatmulVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `e8 matmul (${variant.dotPath} dot products, A ${variant.a.lattice} q = ${variant.a.q}, B ${variant.b.lattice} q = ${variant.b.q}, ${sharesDecoder(variant) ? 'decoder with q compiled in' : 'run-time decoder'})`,
      code: e8MatmulShaderSource(variant),
    }),
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
  checkOneOf(args.dotPath, DOT_PATHS, 'dotPath');

  const dotBound = Math.floor(Math.sqrt(leaderNormSquaredBound(a) * leaderNormSquaredBound(b)));
  const flushBlocks = exactRunBlocks(largestMultiple(a) * largestMultiple(b) * dotBound, E8_MATMUL_SLICE);
  const common = (a.unit * b.unit) / (schemeLattice(a.scheme).pointScale * schemeLattice(b.scheme).pointScale * a.length);
  const { layout, pipeline } = pipelines.get(device, { dotPath: args.dotPath, a: codeShape(a), b: codeShape(b) });
  const chunks = planProductChunks(
    device,
    encoder,
    scratch,
    { a, b, c: args.c, cOffset: args.cOffset ?? 0, maxBindingBytes: args.maxBindingBytes },
    E8_MATMUL_TILE,
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
      b_lattice: latticeId(b.scheme),
      b_q: b.scheme.q,
      flush_blocks: flushBlocks,
      decode_steps: (2 * E8_MATMUL_SLICE * E8_MATMUL_TILE) / E8_MATMUL_THREADS,
    });
    const bindGroup = createKernelBindGroup(device, layout, chunk.label, [
      { buffer: scratch.uniform(`${chunk.label} params`, params) },
      ...productBindings(a, b, args.c, chunk),
    ]);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(chunk.aRange.count / E8_MATMUL_TILE), Math.ceil(chunk.bRange.count / E8_MATMUL_TILE));
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
  // Checked and copied when the call is made: the dispatch is recorded at the call's turn on the device,
  // and a key the options do not have (c, spread over the call's own C) sent the product elsewhere.
  checkOptionsObject(options, ['dotPath', 'maxBindingBytes'], 'e8MatmulAT options');
  const given = { ...options };
  const cBytes = 4 * a.cols * b.cols;
  const data = await runAndRead(device, { scope: `e8 matmul (${given.dotPath})`, encoder: 'e8 matmul' }, cBytes, (run) => {
    const cBuffer = run.storage('e8 matmul C', cBytes);
    dispatchE8Matmul(device, run.encoder, run.scratch, { ...given, a, b, c: cBuffer });
    return cBuffer;
  });
  return { rows: a.cols, cols: b.cols, data: new Float32Array(data) };
}
