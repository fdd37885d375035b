import { describe, expect, it } from 'vitest';
import activationIoSource from '../../shaders/activation_io.wgsl?raw';
import columnGemvPlainSource from '../../shaders/column_gemv_plain.wgsl?raw';
import columnPrepSource from '../../shaders/column_prep.wgsl?raw';
import d3ScalePerGroupSource from '../../shaders/d3_scale_per_group.wgsl?raw';
import d3TableMatmulSource from '../../shaders/d3_table_matmul.wgsl?raw';
import e8InputsSource from '../../shaders/e8_inputs_i8.wgsl?raw';
import e8MatmulSource from '../../shaders/e8_matmul.wgsl?raw';
import e8PointGemvSource from '../../shaders/e8_point_gemv_i8.wgsl?raw';
import e8PointRepackSource from '../../shaders/e8_point_repack.wgsl?raw';
import f16GemvSource from '../../shaders/f16_gemv.wgsl?raw';
import f32GemvSource from '../../shaders/f32_gemv.wgsl?raw';
import gemvI8InputsSource from '../../shaders/gemv_i8_inputs.wgsl?raw';
import int4GemvCommonSource from '../../shaders/int4_gemv_common.wgsl?raw';
import latticeDecodeSource from '../../shaders/lattice_decode.wgsl?raw';
import latticeDequantizeSource from '../../shaders/lattice_dequantize.wgsl?raw';
import latticeEncodeSource from '../../shaders/lattice_encode.wgsl?raw';
import latticeGemvSource from '../../shaders/lattice_gemv.wgsl?raw';
import matmulF32Source from '../../shaders/matmul_f32.wgsl?raw';
import pairMatmulSource from '../../shaders/pair_matmul.wgsl?raw';
import productEpilogueSource from '../../shaders/product_epilogue.wgsl?raw';
import quadGemvLoopSource from '../../shaders/quad_gemv_loop.wgsl?raw';
import quadRepackSource from '../../shaders/quad_repack.wgsl?raw';
import streamReadSource from '../../shaders/stream_read.wgsl?raw';
import universalDequantizeSource from '../../shaders/universal_dequantize.wgsl?raw';
import universalEncodeSource from '../../shaders/universal_encode.wgsl?raw';
import escapeNibblesSource from '../../shaders/universal_escape_nibbles.wgsl?raw';
import universalFinishSource from '../../shaders/universal_gemv_finish.wgsl?raw';
import universalGemvI8Source from '../../shaders/universal_gemv_i8.wgsl?raw';
import universalLanesSource from '../../shaders/universal_gemv_lanes.wgsl?raw';
import universalPlainEntrySource from '../../shaders/universal_gemv_plain.wgsl?raw';
import universalSubgroupEntrySource from '../../shaders/universal_gemv_subgroup.wgsl?raw';
import weightOnlyGemvSource from '../../shaders/weightonly_gemv.wgsl?raw';
import weightOnlyInputsSource from '../../shaders/weightonly_inputs_i8.wgsl?raw';
import { ACTIVATION_IO_THREADS } from '../../src/gpu/kernels/activationIo.js';
import { COLUMN_GEMV_COLUMNS, COLUMN_GEMV_REDUCTION_DEPTH } from '../../src/gpu/kernels/columnGemv.js';
import { QUANTIZE_STATUS_BYTES, QUANTIZE_WORKGROUP_LANES, QuantizeStatusWord } from '../../src/gpu/kernels/columnPrep.js';
import { E8_MATMUL_SLICE, E8_MATMUL_THREADS, E8_MATMUL_TILE } from '../../src/gpu/kernels/e8Matmul.js';
import { E8_POINT_REPACK_THREADS } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { E8_INPUTS_GROUPS_PER_WORKGROUP, E8_QUAD_WORKGROUP_COLUMNS } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { I8_LANE_COLUMNS, I8_WORKGROUP_COLUMNS } from '../../src/gpu/kernels/gemvI8Common.js';
import { INPUTS_I8_THREADS } from '../../src/gpu/kernels/inputsI8.js';
import { E8_INPUT_GROUP } from '../../src/gpu/kernels/inputsI8Layout.js';
import { LATTICE_DEQUANTIZE_THREADS } from '../../src/gpu/kernels/latticeDequantize.js';
import { LATTICE_ENCODE_GAIN_IDS, LATTICE_ENCODE_MAX_DIMENSION, latticeConstants } from '../../src/gpu/kernels/latticeEncode.js';
import { LATTICE_GEMV_THREADS, LATTICE_GEMV_X_CHUNK } from '../../src/gpu/kernels/latticeGemv.js';
import { MATMUL_TILE } from '../../src/gpu/kernels/matmulF32.js';
import { PRODUCT_EPILOGUE_THREADS } from '../../src/gpu/kernels/productEpilogue.js';
import { QUAD_REPACK_THREADS } from '../../src/gpu/kernels/quadRepack.js';
import { STREAM_READ_THREADS, STREAM_READ_UNROLL } from '../../src/gpu/kernels/streamRead.js';
import { UNIVERSAL_DEQUANTIZE_THREADS } from '../../src/gpu/kernels/universalDequantize.js';
import {
  UNIVERSAL_ROOT_VEC4S,
  UNIVERSAL_WORK_FIXED_OVERFLOW,
  UNIVERSAL_WORK_HEADER_WORDS,
  UNIVERSAL_WORK_RECORDS,
} from '../../src/gpu/kernels/universalEncode.js';
import { UNIVERSAL_FINISH_THREADS, UNIVERSAL_GEMV_COLUMNS, UNIVERSAL_LANES_THREADS } from '../../src/gpu/kernels/universalGemv.js';
import { ESCAPE_NIBBLES_THREADS, UNIVERSAL_I8_ROOT_STEPS, UNIVERSAL_NONROOT_NIBBLE } from '../../src/gpu/kernels/universalGemvI8.js';
import { WEIGHT_ONLY_GEMV_LANES, WEIGHT_ONLY_GEMV_ROWS_PER_WORKGROUP } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { WEIGHT_ONLY_INPUTS_I8_THREADS } from '../../src/gpu/kernels/weightOnlyInputsI8.js';
import { latticeId, MAX_GPU_MULTIPLES } from '../../src/gpu/latticeOperand.js';
import { TABLE_CODES, TABLE_LAYOUT_IDS, TABLE_TILE } from '../../src/gpu/tableLayout.js';
import { D3, E8, zLattice } from '../../src/lattices/index.js';
import { REDUCTION_LANES } from '../../src/quantize/columnScaling.js';
import { E8_POINT_FACTOR } from '../../src/quantize/e8Points.js';
import { SCHEMES } from '../../src/quantize/schemes.js';

/*
 * Numbers that a .wgsl file and its kernel module both write down (workgroup sizes, table lengths,
 * status words, ids, lanes): the host sizes its grids, tables and readbacks with its copy, the shader
 * runs with its own, and a drift between them is silent until a GPU test happens to hit it. Each check
 * reads the WGSL text itself, so changing either side alone fails here, on every machine, GPU or not.
 * Constants the host writes into the source (hadamard.ts, latticeGemv.ts, …) need no check.
 */

/** An integer literal of WGSL (decimal or hex, with an optional u/i suffix), or null. */
function integerLiteral(text: string): number | null {
  const match = /^(0x[0-9a-f]+|\d+)[ui]?$/i.exec(text.trim());
  return match?.[1] === undefined ? null : Number(match[1]);
}

/** The value of `const NAME: T = <integer literal>;` in `source`; throws if it is missing or not a literal. */
function wgslConst(source: string, name: string): number {
  const matches = [...source.matchAll(new RegExp(String.raw`^\s*const\s+${name}\s*:\s*\w+\s*=\s*([^;]+);`, 'gm'))];
  if (matches.length !== 1) throw new Error(`expected one declaration of const ${name}, found ${matches.length}`);
  const value = integerLiteral(matches[0]?.[1] ?? '');
  if (value === null) throw new Error(`const ${name} is not an integer literal: ${matches[0]?.[1]}`);
  return value;
}

/** A WGSL integer literal, or the name of a literal `const` of `source`. */
function resolve(source: string, text: string): number {
  return integerLiteral(text) ?? wgslConst(source, text.trim());
}

/** Invocations per workgroup of every `@workgroup_size` in `source` (their product x·y·z), in order. */
function workgroupSizes(source: string): number[] {
  const sizes = [...source.matchAll(/@workgroup_size\(([^)]*)\)/g)].map((match) =>
    (match[1] ?? '')
      .split(',')
      .filter((part) => part.trim() !== '')
      .reduce((product, part) => product * resolve(source, part), 1),
  );
  if (sizes.length === 0) throw new Error('no @workgroup_size');
  return sizes;
}

/** The invocations per workgroup of `source`, the same for every entry point it declares. */
function workgroupSize(source: string): number {
  const sizes = workgroupSizes(source);
  expect(new Set(sizes).size, `entry points of differing sizes: ${sizes.join(', ')}`).toBe(1);
  return sizes[0] as number;
}

/** The length N of the variable or alias `name: array<T, N>` / `name = array<T, N>` (a literal or a literal const). */
function arrayLength(source: string, name: string): number {
  const start = source.search(new RegExp(String.raw`\b${name}\s*[:=]\s*array<`));
  if (start < 0) throw new Error(`no array variable ${name}`);
  const open = source.indexOf('<', source.indexOf('array<', start));
  let depth = 0;
  let lastComma = -1;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '<') depth++;
    else if (c === ',' && depth === 1) lastComma = i;
    else if (c === '>' && --depth === 0) {
      if (lastComma < 0) throw new Error(`${name} is a runtime-sized array`);
      return resolve(source, source.slice(lastComma + 1, i));
    }
  }
  throw new Error(`unterminated array type of ${name}`);
}

interface Mirror {
  /** What is mirrored: the WGSL side, then the TypeScript side. */
  readonly name: string;
  readonly wgsl: () => number;
  readonly ts: number;
}

const z8Scheme = { ...SCHEMES['e8-q16-deterministic'], lattice: 'Z' as const };

const mirrors: readonly Mirror[] = [
  // Status words of the quantizer (column_prep, lattice_encode) and the universal encoder's work words.
  { name: 'column_prep.wgsl STATUS_NONFINITE_INPUT = QuantizeStatusWord.nonFiniteInput', wgsl: () => wgslConst(columnPrepSource, 'STATUS_NONFINITE_INPUT'), ts: QuantizeStatusWord.nonFiniteInput },
  { name: 'column_prep.wgsl STATUS_MEAN_OVERFLOW = QuantizeStatusWord.meanOverflow', wgsl: () => wgslConst(columnPrepSource, 'STATUS_MEAN_OVERFLOW'), ts: QuantizeStatusWord.meanOverflow },
  { name: 'lattice_encode.wgsl STATUS_CLIPPED_BLOCKS = QuantizeStatusWord.clippedBlocks', wgsl: () => wgslConst(latticeEncodeSource, 'STATUS_CLIPPED_BLOCKS'), ts: QuantizeStatusWord.clippedBlocks },
  { name: 'lattice_encode.wgsl STATUS_NORM_OVERFLOW = QuantizeStatusWord.normOverflow', wgsl: () => wgslConst(latticeEncodeSource, 'STATUS_NORM_OVERFLOW'), ts: QuantizeStatusWord.normOverflow },
  { name: 'column_prep.wgsl status words = QUANTIZE_STATUS_BYTES / 4', wgsl: () => arrayLength(columnPrepSource, 'status'), ts: QUANTIZE_STATUS_BYTES / 4 },
  { name: 'lattice_encode.wgsl status words = QUANTIZE_STATUS_BYTES / 4', wgsl: () => arrayLength(latticeEncodeSource, 'status'), ts: QUANTIZE_STATUS_BYTES / 4 },
  { name: 'universal_encode.wgsl WORK_FIXED_OVERFLOW = UNIVERSAL_WORK_FIXED_OVERFLOW', wgsl: () => wgslConst(universalEncodeSource, 'WORK_FIXED_OVERFLOW'), ts: UNIVERSAL_WORK_FIXED_OVERFLOW },
  // The host reads the encoder's norm overflow with checkColumnPrepStatus (the work buffer is also column prep's status).
  { name: 'universal_encode.wgsl WORK_NORM_OVERFLOW = QuantizeStatusWord.normOverflow', wgsl: () => wgslConst(universalEncodeSource, 'WORK_NORM_OVERFLOW'), ts: QuantizeStatusWord.normOverflow },
  { name: 'universal_encode.wgsl WORK_RECORDS = UNIVERSAL_WORK_RECORDS', wgsl: () => wgslConst(universalEncodeSource, 'WORK_RECORDS'), ts: UNIVERSAL_WORK_RECORDS },
  { name: 'universal_encode.wgsl roots: array<vec4<i32>, N> = UNIVERSAL_ROOT_VEC4S', wgsl: () => arrayLength(universalEncodeSource, 'roots'), ts: UNIVERSAL_ROOT_VEC4S },
  // The quantizer's canonical 256-lane sums: one invocation per lane.
  { name: 'column_prep.wgsl THREADS = QUANTIZE_WORKGROUP_LANES', wgsl: () => wgslConst(columnPrepSource, 'THREADS'), ts: QUANTIZE_WORKGROUP_LANES },
  { name: 'column_prep.wgsl @workgroup_size = QUANTIZE_WORKGROUP_LANES', wgsl: () => workgroupSize(columnPrepSource), ts: QUANTIZE_WORKGROUP_LANES },
  { name: 'column_prep.wgsl lane_max = REDUCTION_LANES', wgsl: () => arrayLength(columnPrepSource, 'lane_max'), ts: REDUCTION_LANES },
  { name: 'column_prep.wgsl lane_sum = REDUCTION_LANES', wgsl: () => arrayLength(columnPrepSource, 'lane_sum'), ts: REDUCTION_LANES },
  { name: 'lattice_encode.wgsl THREADS = QUANTIZE_WORKGROUP_LANES', wgsl: () => wgslConst(latticeEncodeSource, 'THREADS'), ts: QUANTIZE_WORKGROUP_LANES },
  { name: 'lattice_encode.wgsl @workgroup_size = QUANTIZE_WORKGROUP_LANES', wgsl: () => workgroupSize(latticeEncodeSource), ts: QUANTIZE_WORKGROUP_LANES },
  ...['lane_a', 'lane_b', 'lane_c'].map((lane) => ({ name: `lattice_encode.wgsl ${lane} = REDUCTION_LANES`, wgsl: () => arrayLength(latticeEncodeSource, lane), ts: REDUCTION_LANES })),
  { name: 'universal_encode.wgsl THREADS = QUANTIZE_WORKGROUP_LANES', wgsl: () => wgslConst(universalEncodeSource, 'THREADS'), ts: QUANTIZE_WORKGROUP_LANES },
  { name: 'universal_encode.wgsl @workgroup_size = QUANTIZE_WORKGROUP_LANES', wgsl: () => workgroupSize(universalEncodeSource), ts: QUANTIZE_WORKGROUP_LANES },
  ...['lane_sum', 'lane_escapes', 'lane_nonroots'].map((lane) => ({ name: `universal_encode.wgsl ${lane} = REDUCTION_LANES`, wgsl: () => arrayLength(universalEncodeSource, lane), ts: REDUCTION_LANES })),
  // Ids the host writes into uniforms or override constants.
  { name: 'lattice_encode.wgsl GAIN_NONE = LATTICE_ENCODE_GAIN_IDS.none', wgsl: () => wgslConst(latticeEncodeSource, 'GAIN_NONE'), ts: LATTICE_ENCODE_GAIN_IDS.none },
  { name: 'lattice_encode.wgsl GAIN_MMSE = LATTICE_ENCODE_GAIN_IDS.mmse', wgsl: () => wgslConst(latticeEncodeSource, 'GAIN_MMSE'), ts: LATTICE_ENCODE_GAIN_IDS.mmse },
  { name: 'lattice_encode.wgsl GAIN_UNBIASED = LATTICE_ENCODE_GAIN_IDS.unbiased', wgsl: () => wgslConst(latticeEncodeSource, 'GAIN_UNBIASED'), ts: LATTICE_ENCODE_GAIN_IDS.unbiased },
  { name: 'lattice_decode.wgsl LATTICE_D3 = latticeId(D3)', wgsl: () => wgslConst(latticeDecodeSource, 'LATTICE_D3'), ts: latticeId(SCHEMES['d3-q6-deterministic']) },
  { name: 'lattice_decode.wgsl LATTICE_E8 = latticeId(E8)', wgsl: () => wgslConst(latticeDecodeSource, 'LATTICE_E8'), ts: latticeId(SCHEMES['e8-q16-deterministic']) },
  { name: 'lattice_decode.wgsl LATTICE_Z8 = latticeId(Z)', wgsl: () => wgslConst(latticeDecodeSource, 'LATTICE_Z8'), ts: latticeId(z8Scheme) },
  { name: 'lattice_decode.wgsl NEAREST_Z = latticeConstants(Z^4).NEAREST_RULE', wgsl: () => wgslConst(latticeDecodeSource, 'NEAREST_Z'), ts: latticeConstants(zLattice(4)).NEAREST_RULE ?? NaN },
  { name: 'lattice_decode.wgsl NEAREST_D = latticeConstants(D3).NEAREST_RULE', wgsl: () => wgslConst(latticeDecodeSource, 'NEAREST_D'), ts: latticeConstants(D3).NEAREST_RULE ?? NaN },
  { name: 'lattice_decode.wgsl NEAREST_E8 = latticeConstants(E8).NEAREST_RULE', wgsl: () => wgslConst(latticeDecodeSource, 'NEAREST_E8'), ts: latticeConstants(E8).NEAREST_RULE ?? NaN },
  { name: 'lattice_decode.wgsl LatticePoint: array<i32, N> = LATTICE_ENCODE_MAX_DIMENSION', wgsl: () => arrayLength(latticeDecodeSource, 'LatticePoint'), ts: LATTICE_ENCODE_MAX_DIMENSION },
  { name: 'd3_table_matmul.wgsl LAYOUT_FULL = TABLE_LAYOUT_IDS.full', wgsl: () => wgslConst(d3TableMatmulSource, 'LAYOUT_FULL'), ts: TABLE_LAYOUT_IDS.full },
  { name: 'd3_table_matmul.wgsl LAYOUT_TRIANGLE = TABLE_LAYOUT_IDS.triangle', wgsl: () => wgslConst(d3TableMatmulSource, 'LAYOUT_TRIANGLE'), ts: TABLE_LAYOUT_IDS.triangle },
  { name: 'd3_table_matmul.wgsl LAYOUT_LEADERS = TABLE_LAYOUT_IDS.leaders', wgsl: () => wgslConst(d3TableMatmulSource, 'LAYOUT_LEADERS'), ts: TABLE_LAYOUT_IDS.leaders },
  { name: 'universal_gemv_i8.wgsl NONROOT_NIBBLE = UNIVERSAL_NONROOT_NIBBLE', wgsl: () => wgslConst(universalGemvI8Source, 'NONROOT_NIBBLE'), ts: UNIVERSAL_NONROOT_NIBBLE },
  { name: 'universal_escape_nibbles.wgsl NONROOT_NIBBLE = UNIVERSAL_NONROOT_NIBBLE', wgsl: () => wgslConst(escapeNibblesSource, 'NONROOT_NIBBLE'), ts: UNIVERSAL_NONROOT_NIBBLE },
  { name: 'e8_point_gemv_i8.wgsl POINT_FACTOR = E8_POINT_FACTOR', wgsl: () => wgslConst(e8PointGemvSource, 'POINT_FACTOR'), ts: E8_POINT_FACTOR },
  // Table sizes the host counts against the workgroup-memory limit or fills.
  { name: 'universal_gemv_i8.wgsl STEP_ENTRIES = UNIVERSAL_I8_ROOT_STEPS', wgsl: () => wgslConst(universalGemvI8Source, 'STEP_ENTRIES'), ts: UNIVERSAL_I8_ROOT_STEPS },
  { name: 'lattice_gemv.wgsl MULTIPLES = MAX_GPU_MULTIPLES', wgsl: () => wgslConst(latticeGemvSource, 'MULTIPLES'), ts: MAX_GPU_MULTIPLES },
  { name: 'd3_scale_per_group.wgsl group_multiples = MAX_GPU_MULTIPLES', wgsl: () => arrayLength(d3ScalePerGroupSource, 'group_multiples'), ts: MAX_GPU_MULTIPLES },
  { name: 'lattice_gemv.wgsl X_CHUNK = LATTICE_GEMV_X_CHUNK', wgsl: () => wgslConst(latticeGemvSource, 'X_CHUNK'), ts: LATTICE_GEMV_X_CHUNK },
  { name: 'd3_table_matmul.wgsl CODES = TABLE_CODES', wgsl: () => wgslConst(d3TableMatmulSource, 'CODES'), ts: TABLE_CODES },
  // Tiles and slices the host divides its grids and exact-sum runs by.
  { name: 'd3_table_matmul.wgsl TILE = TABLE_TILE', wgsl: () => wgslConst(d3TableMatmulSource, 'TILE'), ts: TABLE_TILE },
  { name: 'matmul_f32.wgsl TILE = MATMUL_TILE', wgsl: () => wgslConst(matmulF32Source, 'TILE'), ts: MATMUL_TILE },
  { name: 'pair_matmul.wgsl TILE = MATMUL_TILE', wgsl: () => wgslConst(pairMatmulSource, 'TILE'), ts: MATMUL_TILE },
  { name: 'e8_matmul.wgsl TILE = E8_MATMUL_TILE', wgsl: () => wgslConst(e8MatmulSource, 'TILE'), ts: E8_MATMUL_TILE },
  { name: 'e8_matmul.wgsl SLICE = E8_MATMUL_SLICE', wgsl: () => wgslConst(e8MatmulSource, 'SLICE'), ts: E8_MATMUL_SLICE },
  { name: 'e8_matmul.wgsl THREADS = E8_MATMUL_THREADS', wgsl: () => wgslConst(e8MatmulSource, 'THREADS'), ts: E8_MATMUL_THREADS },
  { name: 'e8_matmul.wgsl @workgroup_size = E8_MATMUL_THREADS', wgsl: () => workgroupSize(e8MatmulSource), ts: E8_MATMUL_THREADS },
  // Invocations per workgroup of the kernels the host dispatches ⌈items / size⌉ workgroups of.
  { name: 'activation_io.wgsl @workgroup_size (every entry) = ACTIVATION_IO_THREADS', wgsl: () => workgroupSize(activationIoSource), ts: ACTIVATION_IO_THREADS },
  // The THREADS these shaders flatten their 2-D grid with (the grid is the host's, sized by its copy).
  ...(
    [
      ['activation_io.wgsl', activationIoSource, ACTIVATION_IO_THREADS, 'ACTIVATION_IO_THREADS'],
      ['lattice_dequantize.wgsl', latticeDequantizeSource, LATTICE_DEQUANTIZE_THREADS, 'LATTICE_DEQUANTIZE_THREADS'],
      ['universal_dequantize.wgsl', universalDequantizeSource, UNIVERSAL_DEQUANTIZE_THREADS, 'UNIVERSAL_DEQUANTIZE_THREADS'],
      ['product_epilogue.wgsl', productEpilogueSource, PRODUCT_EPILOGUE_THREADS, 'PRODUCT_EPILOGUE_THREADS'],
      ['e8_point_repack.wgsl', e8PointRepackSource, E8_POINT_REPACK_THREADS, 'E8_POINT_REPACK_THREADS'],
      ['quad_repack.wgsl', quadRepackSource, QUAD_REPACK_THREADS, 'QUAD_REPACK_THREADS'],
      ['universal_gemv_finish.wgsl', universalFinishSource, UNIVERSAL_FINISH_THREADS, 'UNIVERSAL_FINISH_THREADS'],
    ] as const
  ).map(([file, source, threads, name]) => ({ name: `${file} THREADS = ${name}`, wgsl: () => wgslConst(source, 'THREADS'), ts: threads })),
  { name: 'lattice_dequantize.wgsl @workgroup_size = LATTICE_DEQUANTIZE_THREADS', wgsl: () => workgroupSize(latticeDequantizeSource), ts: LATTICE_DEQUANTIZE_THREADS },
  { name: 'universal_dequantize.wgsl @workgroup_size = UNIVERSAL_DEQUANTIZE_THREADS', wgsl: () => workgroupSize(universalDequantizeSource), ts: UNIVERSAL_DEQUANTIZE_THREADS },
  { name: 'product_epilogue.wgsl @workgroup_size = PRODUCT_EPILOGUE_THREADS', wgsl: () => workgroupSize(productEpilogueSource), ts: PRODUCT_EPILOGUE_THREADS },
  { name: 'e8_point_repack.wgsl @workgroup_size = E8_POINT_REPACK_THREADS', wgsl: () => workgroupSize(e8PointRepackSource), ts: E8_POINT_REPACK_THREADS },
  { name: 'quad_repack.wgsl @workgroup_size = QUAD_REPACK_THREADS', wgsl: () => workgroupSize(quadRepackSource), ts: QUAD_REPACK_THREADS },
  { name: 'gemv_i8_inputs.wgsl @workgroup_size = INPUTS_I8_THREADS', wgsl: () => workgroupSize(gemvI8InputsSource), ts: INPUTS_I8_THREADS },
  { name: 'weightonly_inputs_i8.wgsl @workgroup_size = WEIGHT_ONLY_INPUTS_I8_THREADS', wgsl: () => workgroupSize(weightOnlyInputsSource), ts: WEIGHT_ONLY_INPUTS_I8_THREADS },
  { name: 'universal_escape_nibbles.wgsl @workgroup_size = ESCAPE_NIBBLES_THREADS', wgsl: () => workgroupSize(escapeNibblesSource), ts: ESCAPE_NIBBLES_THREADS },
  { name: 'universal_gemv_finish.wgsl @workgroup_size (both entries) = UNIVERSAL_FINISH_THREADS', wgsl: () => workgroupSize(universalFinishSource), ts: UNIVERSAL_FINISH_THREADS },
  { name: 'e8_inputs_i8.wgsl BLOCKS / blocks per group = E8_INPUTS_GROUPS_PER_WORKGROUP', wgsl: () => wgslConst(e8InputsSource, 'BLOCKS') / (E8_INPUT_GROUP / 8), ts: E8_INPUTS_GROUPS_PER_WORKGROUP },
  { name: 'e8_inputs_i8.wgsl @workgroup_size = E8_INPUTS_GROUPS_PER_WORKGROUP · blocks per group', wgsl: () => workgroupSize(e8InputsSource), ts: E8_INPUTS_GROUPS_PER_WORKGROUP * (E8_INPUT_GROUP / 8) },
  { name: 'stream_read.wgsl THREADS = STREAM_READ_THREADS', wgsl: () => wgslConst(streamReadSource, 'THREADS'), ts: STREAM_READ_THREADS },
  { name: 'stream_read.wgsl UNROLL = STREAM_READ_UNROLL', wgsl: () => wgslConst(streamReadSource, 'UNROLL'), ts: STREAM_READ_UNROLL },
  { name: 'lattice_gemv.wgsl THREADS = LATTICE_GEMV_THREADS', wgsl: () => wgslConst(latticeGemvSource, 'THREADS'), ts: LATTICE_GEMV_THREADS },
  { name: 'lattice_gemv.wgsl @workgroup_size = LATTICE_GEMV_THREADS', wgsl: () => workgroupSize(latticeGemvSource), ts: LATTICE_GEMV_THREADS },
  // Columns per workgroup of the GEMVs: the host's grids and column ranges.
  ...(
    [
      ['f16_gemv.wgsl', f16GemvSource],
      ['f32_gemv.wgsl', f32GemvSource],
      ['int4_gemv_common.wgsl', int4GemvCommonSource],
    ] as const
  ).flatMap(([file, source]) => [
    { name: `${file} COLUMNS = COLUMN_GEMV_COLUMNS`, wgsl: () => wgslConst(source, 'COLUMNS'), ts: COLUMN_GEMV_COLUMNS },
    { name: `${file} THREADS = 2^COLUMN_GEMV_REDUCTION_DEPTH`, wgsl: () => wgslConst(source, 'THREADS'), ts: 2 ** COLUMN_GEMV_REDUCTION_DEPTH },
    { name: `${file} + column_gemv_plain.wgsl @workgroup_size = 2^COLUMN_GEMV_REDUCTION_DEPTH`, wgsl: () => workgroupSize(`${source}\n${columnGemvPlainSource}`), ts: 2 ** COLUMN_GEMV_REDUCTION_DEPTH },
  ]),
  { name: 'universal_gemv_lanes.wgsl THREADS = UNIVERSAL_LANES_THREADS', wgsl: () => wgslConst(universalLanesSource, 'THREADS'), ts: UNIVERSAL_LANES_THREADS },
  { name: 'universal_gemv_plain.wgsl @workgroup_size = UNIVERSAL_LANES_THREADS', wgsl: () => workgroupSize(universalPlainEntrySource), ts: UNIVERSAL_LANES_THREADS },
  { name: 'universal_gemv_subgroup.wgsl @workgroup_size = UNIVERSAL_LANES_THREADS', wgsl: () => workgroupSize(universalSubgroupEntrySource), ts: UNIVERSAL_LANES_THREADS },
  { name: 'universal_gemv_lanes.wgsl THREADS / LANES = UNIVERSAL_GEMV_COLUMNS', wgsl: () => wgslConst(universalLanesSource, 'THREADS') / wgslConst(universalLanesSource, 'LANES'), ts: UNIVERSAL_GEMV_COLUMNS },
  { name: 'universal_gemv_lanes.wgsl THREADS / LANES · I8_LANE_COLUMNS = I8_WORKGROUP_COLUMNS', wgsl: () => (wgslConst(universalLanesSource, 'THREADS') / wgslConst(universalLanesSource, 'LANES')) * I8_LANE_COLUMNS, ts: I8_WORKGROUP_COLUMNS },
  { name: 'universal_gemv_lanes.wgsl THREADS / LANES · quad_gemv_loop.wgsl LANE_COLUMNS = E8_QUAD_WORKGROUP_COLUMNS', wgsl: () => (wgslConst(universalLanesSource, 'THREADS') / wgslConst(universalLanesSource, 'LANES')) * wgslConst(quadGemvLoopSource, 'LANE_COLUMNS'), ts: E8_QUAD_WORKGROUP_COLUMNS },
  { name: 'weightonly_gemv.wgsl LANES = WEIGHT_ONLY_GEMV_LANES', wgsl: () => wgslConst(weightOnlyGemvSource, 'LANES'), ts: WEIGHT_ONLY_GEMV_LANES },
  { name: 'weightonly_gemv.wgsl ROWS_PER_WORKGROUP = WEIGHT_ONLY_GEMV_ROWS_PER_WORKGROUP', wgsl: () => wgslConst(weightOnlyGemvSource, 'ROWS_PER_WORKGROUP'), ts: WEIGHT_ONLY_GEMV_ROWS_PER_WORKGROUP },
];

describe('constants written in both a shader and its kernel module agree', () => {
  it.each(mirrors)('$name', ({ wgsl, ts }) => {
    expect(wgsl()).toBe(ts);
  });

  // The encoder's own work words and column prep's status words precede the per-column counts.
  it('universal_encode.wgsl WORK_* and column_prep.wgsl STATUS_* < UNIVERSAL_WORK_HEADER_WORDS', () => {
    const words = [
      ...['WORK_FIXED_OVERFLOW', 'WORK_NORM_OVERFLOW', 'WORK_RECORDS'].map((name) => wgslConst(universalEncodeSource, name)),
      ...['STATUS_NONFINITE_INPUT', 'STATUS_MEAN_OVERFLOW'].map((name) => wgslConst(columnPrepSource, name)),
    ];
    expect(Math.max(...words)).toBeLessThan(UNIVERSAL_WORK_HEADER_WORDS);
    expect(new Set(words).size, 'two status words share a slot').toBe(words.length);
  });

  // The parser itself: a name it cannot resolve fails rather than passing vacuously.
  it('the WGSL readers refuse what they cannot read', () => {
    expect(() => wgslConst('const A: u32 = 2u * B;', 'A')).toThrow(/not an integer literal/);
    expect(() => wgslConst('const A: u32 = 2u;', 'B')).toThrow(/found 0/);
    expect(() => arrayLength('var<storage> a: array<u32>;', 'a')).toThrow(/runtime-sized/);
    expect(wgslConst('const A: u32 = 0x10u;', 'A')).toBe(16);
    expect(arrayLength('const N: u32 = 3u;\nvar<workgroup> a: array<vec4<f32>, N>;', 'a')).toBe(3);
    expect(workgroupSizes('const T: u32 = 8u;\n@compute @workgroup_size(T, 2)\n@compute @workgroup_size(4)')).toEqual([16, 4]);
    // An expression is not a literal, whichever side its literal is on (read as 2, B * 2u would pass for 2).
    expect(() => wgslConst('const A: u32 = B * 2u;', 'A')).toThrow(/not an integer literal/);
    // One declaration at the start of a line: a second (a function's own const) is refused, a commented one is not read.
    expect(() => wgslConst('const A: u32 = 1u;\nfn f() {\n  const A: u32 = 2u;\n}', 'A')).toThrow(/found 2/);
    expect(wgslConst('// const A: u32 = 3u;\nconst A: u32 = 2u;', 'A')).toBe(2);
    expect([wgslConst('const A: u32 = 0xFFu;', 'A'), wgslConst('const A: i32 = 3i;', 'A')]).toEqual([255, 3]);
    // WGSL allows a trailing comma in @workgroup_size; a source without one has no size to compare.
    expect(workgroupSizes('@compute @workgroup_size(8, 2,)')).toEqual([16]);
    expect(() => workgroupSizes('fn f() {}')).toThrow(/no @workgroup_size/);
    expect(() => workgroupSize('@compute @workgroup_size(64)\n@compute @workgroup_size(128)')).toThrow(/entry points of differing sizes: 64, 128/);
    // An array is found by its whole name, and a missing one is refused rather than another read.
    expect(arrayLength('var<workgroup> lane_a: array<u32, 8>;\nvar<workgroup> a: array<u32, 4>;', 'a')).toBe(4);
    expect(() => arrayLength('var<workgroup> b: array<u32, 4>;', 'a')).toThrow(/no array variable a/);
    expect(() => arrayLength('var<storage> a: array<array<u32, 4>>;', 'a')).toThrow(/runtime-sized/);
  });
});
