import productTileSource from '../../../shaders/product_tile.wgsl?raw';
import { operandWordsPerColumn, multipleWords, type GpuDeterministicMatrix, type ProductChunk } from '../latticeOperand.js';
import { windowBinding } from '../pipelines.js';
import { UniformLayout, type UniformMemberType, type UniformValues } from '../uniformLayout.js';

/*
 * What the quantized × quantized product kernels share (tableMatmul.ts: D3 through the inner-product
 * table; e8Matmul.ts: E8 and Z^8 decoded on the fly): the uniform members that locate the operands
 * and C and scale the result, the bindings of the operands and C, and shaders/product_tile.wgsl (the
 * scale multiples and the output of a tile). Each kernel puts its own bindings in front of these and
 * its own uniform members after them.
 */

/** shaders/product_tile.wgsl: `scaled_estimate`, `a_multiple`, `b_multiple`, `write_tile`. */
export const PRODUCT_TILE_WGSL = productTileSource;

/**
 * The uniform members every product kernel reads, declared once: each kernel's UniformLayout holds
 * them beside its own (`productParamsLayout`), and `productParams` fills them.
 */
const PRODUCT_PARAM_MEMBERS = {
  blocks: 'u32', // blocks per column, both operands
  a_cols: 'u32', // A columns in this dispatch (C rows)
  b_cols: 'u32', // B columns in this dispatch (C columns)
  a_code_first: 'u32', // word offset of this dispatch's first A column in its codes binding
  a_code_words: 'u32', // code words per A column
  a_index_first: 'u32', // the same for the scale indices
  a_index_words: 'u32',
  a_index_bits: 'u32',
  b_code_first: 'u32',
  b_code_words: 'u32',
  b_index_first: 'u32',
  b_index_words: 'u32',
  b_index_bits: 'u32',
  c_first: 'u32', // element offset of this dispatch's C[0, 0] in the C binding
  c_stride: 'u32', // elements between consecutive C columns (all of C's rows)
  a_has_gains: 'u32',
  b_has_gains: 'u32',
  has_means: 'u32',
  common_scale: 'f32', // unit_a · unit_b / (pointScale_a · pointScale_b · N)
  rows: 'f32', // n, for the mean term
  a_multiples: 'array<vec4<i32>, 4>', // k_j of A's scale grid (MAX_GPU_MULTIPLES, zeros past the grid)
  b_multiples: 'array<vec4<i32>, 4>',
} as const satisfies Record<string, UniformMemberType>;

/**
 * A product kernel's uniform struct: the shared members, then the kernel's `own`. (A function, so
 * that a kernel's module-level layout stays a pure call a bundler can drop: a spread at module level
 * could run getters, so bundlers keep it.)
 */
export function productParamsLayout<Own extends Record<string, UniformMemberType>>(
  structName: string,
  own: Own,
): UniformLayout<typeof PRODUCT_PARAM_MEMBERS & Own> {
  return new UniformLayout(structName, { ...PRODUCT_PARAM_MEMBERS, ...own });
}

/** The values of the shared members (PRODUCT_PARAM_MEMBERS) for one dispatch (`chunk`) of C = ÂᵀB̂. */
export function productParams(
  a: GpuDeterministicMatrix,
  b: GpuDeterministicMatrix,
  chunk: ProductChunk,
  commonScale: number,
): UniformValues<typeof PRODUCT_PARAM_MEMBERS> {
  const aWords = operandWordsPerColumn(a);
  const bWords = operandWordsPerColumn(b);
  return {
    blocks: a.blocksPerColumn,
    a_cols: chunk.aRange.count,
    b_cols: chunk.bRange.count,
    a_code_first: chunk.aWindows.codes.firstElement,
    a_code_words: aWords.codes,
    a_index_first: chunk.aWindows.scaleIndices.firstElement,
    a_index_words: aWords.scaleIndices,
    a_index_bits: a.scaleIndexBits,
    b_code_first: chunk.bWindows.codes.firstElement,
    b_code_words: bWords.codes,
    b_index_first: chunk.bWindows.scaleIndices.firstElement,
    b_index_words: bWords.scaleIndices,
    b_index_bits: b.scaleIndexBits,
    c_first: chunk.cWindow.firstElement + chunk.aRange.first,
    c_stride: a.cols,
    a_has_gains: chunk.aSide.hasGains ? 1 : 0,
    b_has_gains: chunk.bSide.hasGains ? 1 : 0,
    has_means: chunk.aSide.hasMeans ? 1 : 0,
    common_scale: commonScale,
    rows: a.rows,
    a_multiples: multipleWords(a),
    b_multiples: multipleWords(b),
  };
}

/** The binding types of the operands and C, in the order of `productBindings`. */
const PRODUCT_BINDING_TYPES: readonly GPUBufferBindingType[] = [
  'read-only-storage', // A codes
  'read-only-storage', // A scale indices
  'read-only-storage', // A norms, gains, means (gathered for the chunk's columns)
  'read-only-storage', // B codes
  'read-only-storage', // B scale indices
  'read-only-storage', // B norms, gains, means
  'storage', // C
];

/**
 * A product kernel's binding types: its own (`leading`: the uniform, a table), then the operands and
 * C. A function for the reason `productParamsLayout` gives.
 */
export function productBindingTypes(...leading: GPUBufferBindingType[]): GPUBufferBindingType[] {
  return [...leading, ...PRODUCT_BINDING_TYPES];
}

/** The binding resources of the operands and C for one dispatch (`chunk`), as PRODUCT_BINDING_TYPES lists them. */
export function productBindings(a: GpuDeterministicMatrix, b: GpuDeterministicMatrix, c: GPUBuffer, chunk: ProductChunk): GPUBufferBinding[] {
  return [
    windowBinding(a.codes, chunk.aWindows.codes),
    windowBinding(a.scaleIndices, chunk.aWindows.scaleIndices),
    { buffer: chunk.aSide.buffer },
    windowBinding(b.codes, chunk.bWindows.codes),
    windowBinding(b.scaleIndices, chunk.bWindows.scaleIndices),
    { buffer: chunk.bSide.buffer },
    windowBinding(c, chunk.cWindow),
  ];
}
