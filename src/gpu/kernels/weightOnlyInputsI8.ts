import { checkDispatch } from './dispatchChecks.js';
import f16ConvertSource from '../../../shaders/f16_convert.wgsl?raw';
import inputsSource from '../../../shaders/weightonly_inputs_i8.wgsl?raw';
import int8GroupSource from '../../../shaders/int8_group.wgsl?raw';
import { check, checkOneOf, checkPositiveInteger, counted } from '../../errors.js';
import { int8Level, int8Scale } from './int8Rounding.js';
import { fixedCodesPerWord, fixedFieldSigns, fixedRowVec4s, type FixedCodeBits } from '../../weightonly/packedCodes.js';
import type { WeightOnlyQuantized } from '../../weightonly/quantized.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow, workgroupGrid } from '../workSplit.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import { ACTIVATION_FORMATS, activationBytes, type ActivationFormat } from './activationIo.js';

/*
 * The inputs of the int8-input weight-only GEMV (shaders/weightonly_codes_fixed_i8.wgsl): x'_i =
 * s_i·x̃_i rounded to int8 per code word of the fixed-width layout (shaders/weightonly_inputs_i8.wgsl),
 * its CPU twin `weightOnlyInputsI8`, and the GEMV's CPU twin `weightOnlyGemvI8Reference`, which
 * multiplies the codes by those inputs in float64. The layout facts both shaders share are generated
 * here once (`weightOnlyI8Constants`).
 *
 * Why: the f32-input loop loads s_i and x̃_i for every code and decodes each code to f32 for each of
 * its 4 rows (≈ 13 RDNA3 instructions per code byte at 4 bits, bench/README.md); with s folded into
 * x̂ and the codes' bytes fed to packed 8-bit dot products, a word of 8 codes takes ≈ 10 instructions
 * per row. The price is x̂'s rounding, ½ level of 127 per group of a word's ⌊32/b⌋ inputs.
 */

/** Packed level words per record: ⌈P/4⌉ for P = ⌊32/b⌋ fields per code word. */
export function weightOnlyI8ByteWords(bits: FixedCodeBits): number {
  return Math.ceil(fixedCodesPerWord(bits) / 4);
}

/** u32 words per record (per code word): the level words, the scale and ZERO_CODE·Σ level, in whole vec4s. */
export function weightOnlyI8RecordWords(bits: FixedCodeBits): number {
  return 4 * Math.ceil((weightOnlyI8ByteWords(bits) + 2) / 4);
}

/** Whether a code word's fields go to the records with one shift and mask per packed word (8 a multiple of b). */
function spreadFields(bits: FixedCodeBits): boolean {
  return 8 % bits === 0;
}

/** z + ZERO_CODE ≥ 0 is what the GEMV's bytes hold: 2^(b−1) below 8 bits, 0 at 8 (the bytes are the codes). */
function zeroCode(bits: FixedCodeBits): number {
  return bits === 8 ? 0 : 2 ** (bits - 1);
}

/**
 * The constants both int8-input weight-only shaders read for codes of `bits` bits: the layout of a
 * code word (CODE_BITS, CODES_PER_WORD, FIELD_MASK), of a record (BYTE_WORDS, RECORD_WORDS,
 * SPREAD_FIELDS: which byte of which word holds a field), the bias ZERO_CODE, the xor that turns a
 * field into z + ZERO_CODE (CODE_FLIP) and a field's mask in every byte lane (BYTE_FIELD_MASK).
 */
export function weightOnlyI8Constants(bits: FixedCodeBits): string {
  const fields = fixedCodesPerWord(bits);
  // At 8 bits the bytes are the codes themselves: nothing to flip.
  const flip = bits < 8 ? fixedFieldSigns(bits) : 0;
  const mask = 2 ** bits - 1;
  return [
    `const CODE_BITS: u32 = ${bits}u;`,
    `const CODES_PER_WORD: u32 = ${fields}u;`,
    `const FIELD_MASK: u32 = ${mask}u;`,
    `const BYTE_WORDS: u32 = ${weightOnlyI8ByteWords(bits)}u;`,
    `const RECORD_WORDS: u32 = ${weightOnlyI8RecordWords(bits)}u;`,
    `const SPREAD_FIELDS: bool = ${spreadFields(bits)};`,
    `const ZERO_CODE: i32 = ${zeroCode(bits)};`,
    `const CODE_FLIP: u32 = 0x${flip.toString(16)}u;`,
    `const BYTE_FIELD_MASK: u32 = 0x${(mask * 0x01010101).toString(16)}u;`,
  ].join('\n');
}

/** Which record word and byte lane hold field t of a code word (the shaders' field_word / field_lane). */
function fieldPlace(bits: FixedCodeBits, t: number): { word: number; lane: number } {
  const byteWords = weightOnlyI8ByteWords(bits);
  return spreadFields(bits) ? { word: t % byteWords, lane: Math.floor(t / byteWords) } : { word: Math.floor(t / 4), lane: t % 4 };
}

/** Invocations per workgroup of shaders/weightonly_inputs_i8.wgsl. */
export const WEIGHT_ONLY_INPUTS_I8_THREADS = 64;

const Params = /*#__PURE__*/ new UniformLayout('WeightOnlyInputsI8Params', {
  n: 'u32', // inputs
  row_words: 'u32', // W: code words per row (records per vector)
  vectors: 'u32',
  x_first: 'u32', // element (f32) or half (f16) of vector 0's x̃_0 in its binding
  x_stride: 'u32', // elements between vectors of x̃
  column_scales_first: 'u32', // element of s_0
  records_first: 'u32', // word of vector 0's first record
  record_stride: 'u32', // words between vectors' records (W·RECORD_WORDS)
});

/** A compiled variant: the code width and X̃'s format. */
interface InputsVariant {
  readonly bits: FixedCodeBits;
  readonly inputFormat: ActivationFormat;
}

/** The WGSL of the rounding for codes of `bits` bits and X̃ in `inputFormat`. */
export function weightOnlyInputsI8ShaderSource(variant: InputsVariant): string {
  return `${weightOnlyI8Constants(variant.bits)}\nconst X_F16: bool = ${variant.inputFormat === 'f16'};\n${Params.wgsl()}\n${f16ConvertSource}\n${inputsSource}\n${int8GroupSource}`;
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'weight-only int8 inputs',
  // params; x̃; column scales; records.
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage'],
  key: (variant: InputsVariant) => `${variant.bits}/${variant.inputFormat}`,
  compile: (device, pipelineLayout, variant: InputsVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `weight-only int8 inputs (${variant.bits}-bit codes${variant.inputFormat === 'f16' ? ', f16 x' : ''})`,
      code: weightOnlyInputsI8ShaderSource(variant),
    }),
});

/** Arguments of {@link dispatchWeightOnlyInputsI8}. Offsets in bytes. */
export interface WeightOnlyInputsI8Args {
  /** X̃ in the quantization basis: `vectors` columns of n values (f32, or f16 with `inputFormat`). */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
  readonly inputFormat?: ActivationFormat;
  /** s: n f32. */
  readonly columnScales: GPUBuffer;
  readonly columnScalesOffset?: number;
  readonly n: number;
  /** The fixed width of the codes the inputs are for. */
  readonly codeBits: FixedCodeBits;
  readonly vectors: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * x̂ as {@link dispatchWeightOnlyInputsI8} recorded it: its buffer (a scratch buffer) and what it was
 * made for, which `dispatchWeightOnlyGemv` compares with its own codes and column scales (records of
 * another width, n or matrix would multiply silently into a wrong y).
 */
export interface RecordedWeightOnlyInputsI8 {
  readonly inputs: GPUBuffer;
  readonly vectors: number;
  readonly n: number;
  readonly codeBits: FixedCodeBits;
  readonly columnScales: GPUBuffer;
  readonly columnScalesOffset: number;
}

const ARG_KEYS = ['x', 'xOffset', 'inputFormat', 'columnScales', 'columnScalesOffset', 'n', 'codeBits', 'vectors', 'maxBindingBytes'] as const satisfies readonly (keyof WeightOnlyInputsI8Args)[];

/** Bytes of the records of `vectors` vectors for n inputs and codes of `bits` bits. */
export function weightOnlyInputsI8Bytes(n: number, bits: FixedCodeBits, vectors: number): number {
  return 16 * fixedRowVec4s(n, bits) * weightOnlyI8RecordWords(bits) * vectors;
}

/**
 * Records X̃ → x̂ (s folded in, int8 per code word) into `encoder`, in a pass of its own, into a
 * scratch buffer: the `inputsI8` of `dispatchWeightOnlyGemv`. The column scales must fit one storage
 * binding; the vectors are split over several dispatches where X̃ or x̂ would not (a prefill's).
 *
 * @example
 * const inputsI8 = dispatchWeightOnlyInputsI8(device, encoder, scratch, { x: xRotated, columnScales: m.columnScales, n: m.n, codeBits: 4, vectors: 1 });
 */
export function dispatchWeightOnlyInputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: WeightOnlyInputsI8Args): RecordedWeightOnlyInputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchWeightOnlyInputsI8');
  checkOptionsObject(args, ARG_KEYS, 'dispatchWeightOnlyInputsI8 arguments');
  const { n, codeBits, vectors } = args;
  checkPositiveInteger(n, 'weight-only int8 inputs: n');
  checkPositiveInteger(vectors, 'weight-only int8 inputs: vectors');
  checkOneOf(codeBits, [1, 2, 3, 4, 5, 6, 7, 8] as const, 'weight-only int8 inputs: codeBits');
  const inputFormat = args.inputFormat ?? 'f32';
  checkOneOf(inputFormat, ACTIVATION_FORMATS, 'weight-only int8 inputs: inputFormat');
  const xOffset = args.xOffset ?? 0;
  const scalesOffset = args.columnScalesOffset ?? 0;
  const xBytes = activationBytes(inputFormat);
  checkBufferRange(args.x, xOffset, xBytes * n * vectors, 'weight-only int8 inputs: x', xBytes);
  checkBufferRange(args.columnScales, scalesOffset, 4 * n, 'weight-only int8 inputs: column scales', 4);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'dispatchWeightOnlyInputsI8');
  const scalesWindow = bindingWindow(scalesOffset, 4 * n, alignment);
  check(scalesWindow.size <= maxBinding, () => `weight-only int8 inputs: the column scales (${n} f32) are larger than one storage binding (${maxBinding} bytes)`);
  const rowWords = 4 * fixedRowVec4s(n, codeBits);
  const recordStride = rowWords * weightOnlyI8RecordWords(codeBits);
  const vectorsPerChunk = Math.min(itemsPerBinding(xBytes * n, maxBinding, alignment), itemsPerBinding(4 * recordStride, maxBinding, alignment));
  const label = `weight-only int8 inputs (${codeBits}-bit codes, n ${n}, ${counted(vectors, 'vector')})`;
  const records = scratch.intermediate(label, weightOnlyInputsI8Bytes(n, codeBits, vectors), STORAGE_USAGE);
  const { layout, pipeline } = pipelines.get(device, { bits: codeBits, inputFormat });
  const pass = encoder.beginComputePass({ label });
  pass.setPipeline(pipeline);
  for (let v0 = 0; v0 < vectors; v0 += vectorsPerChunk) {
    const chunk = Math.min(vectorsPerChunk, vectors - v0);
    const xWindow = valuesWindow(xOffset + xBytes * n * v0, n * chunk, xBytes, alignment);
    const recordsWindow = bindingWindow(4 * recordStride * v0, 4 * recordStride * chunk, alignment);
    const chunkLabel = `${label}, vectors ${v0}…${v0 + chunk - 1}`;
    const params = Params.pack({
      n,
      row_words: rowWords,
      vectors: chunk,
      x_first: xWindow.firstElement,
      x_stride: n,
      column_scales_first: scalesWindow.firstElement,
      records_first: recordsWindow.firstElement,
      record_stride: recordStride,
    });
    pass.setBindGroup(0, createKernelBindGroup(device, layout, chunkLabel, [
      { buffer: scratch.uniform(`${chunkLabel} params`, params) },
      windowBinding(args.x, xWindow),
      windowBinding(args.columnScales, scalesWindow),
      windowBinding(records, recordsWindow),
    ]));
    const [gx, gy] = workgroupGrid(Math.ceil((rowWords * chunk) / WEIGHT_ONLY_INPUTS_I8_THREADS), device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(gx, gy);
  }
  pass.end();
  return { inputs: records, vectors, n, codeBits, columnScales: args.columnScales, columnScalesOffset: scalesOffset };
}

/**
 * CPU twin of shaders/weightonly_inputs_i8.wgsl: the records of `vectors` columns of X̃ (n each,
 * column-major) for codes of `bits` bits, as u32 words. x'_i = s_i·x̃_i in f32 and the levels
 * round(127·x'/m) as the shader forms them (f32 quotient and product; a GPU's division, within 2.5
 * ULP, may round a level the other way where 127·x'/m is within 10⁻⁴ of a half-integer).
 *
 * @example
 * const records = weightOnlyInputsI8(new RandomizedHadamard(q.n, q.seed).forward(x), q.columnScales, q.n, 4);
 */
export function weightOnlyInputsI8(xRotated: Float32Array, columnScales: Float32Array, n: number, bits: FixedCodeBits, vectors = 1): Uint32Array {
  check(xRotated.length >= n * vectors && columnScales.length >= n, 'weightOnlyInputsI8: x̃ holds n·vectors values and s n');
  const fields = fixedCodesPerWord(bits);
  const rowWords = 4 * fixedRowVec4s(n, bits);
  const recordWords = weightOnlyI8RecordWords(bits);
  const byteWords = weightOnlyI8ByteWords(bits);
  const records = new Uint32Array(rowWords * recordWords * vectors);
  const values = new Float32Array(fields);
  for (let v = 0; v < vectors; v++) {
    for (let w = 0; w < rowWords; w++) {
      let m = 0;
      let finite = true;
      for (let t = 0; t < fields; t++) {
        const i = t * rowWords + w;
        values[t] = i < n ? Math.fround((columnScales[i] as number) * (xRotated[v * n + i] as number)) : 0;
        finite &&= Number.isFinite(values[t] as number);
        m = Math.max(m, Math.abs(values[t] as number));
      }
      const first = (v * rowWords + w) * recordWords;
      let sum = 0;
      for (let t = 0; t < fields; t++) {
        const level = m > 0 && finite ? int8Level(values[t] as number, m) : 0;
        sum += level;
        const place = fieldPlace(bits, t);
        records[first + place.word] = ((records[first + place.word] as number) | ((level & 0xff) << (8 * place.lane))) >>> 0;
      }
      records[first + byteWords] = f32Bits(int8Scale(m, finite));
      records[first + byteWords + 1] = (zeroCode(bits) * sum) >>> 0;
    }
  }
  return records;
}

/**
 * CPU twin of the int8-input weight-only GEMV: y[v][j] = t_j·Σ_w scale_w·Σ_t z_{j, t·W + w}·level_t in
 * float64 from the records (`weightOnlyInputsI8`, or read back from the GPU), for `q`'s codes and row
 * scales; and per entry the sum of its terms' magnitudes |t_j·scale_w·Σ_t z·level| (what the
 * kernel's f32 roundings are relative to).
 */
export function weightOnlyGemvI8Reference(q: WeightOnlyQuantized, bits: FixedCodeBits, records: Uint32Array, vectors = 1): { readonly y: Float64Array; readonly magnitudes: Float64Array } {
  const { n, outputs } = q;
  const fields = fixedCodesPerWord(bits);
  const rowWords = 4 * fixedRowVec4s(n, bits);
  const recordWords = weightOnlyI8RecordWords(bits);
  const byteWords = weightOnlyI8ByteWords(bits);
  const scaleBits = new Uint32Array(1);
  const scale = new Float32Array(scaleBits.buffer);
  const y = new Float64Array(outputs * vectors);
  const magnitudes = new Float64Array(outputs * vectors);
  for (let v = 0; v < vectors; v++) {
    for (let j = 0; j < outputs; j++) {
      let total = 0;
      let magnitude = 0;
      for (let w = 0; w < rowWords; w++) {
        const first = (v * rowWords + w) * recordWords;
        let dot = 0;
        for (let t = 0; t < fields; t++) {
          const i = t * rowWords + w;
          if (i >= n) break;
          const place = fieldPlace(bits, t);
          const level = (((records[first + place.word] as number) << (24 - 8 * place.lane)) >> 24) as number;
          dot += (q.codes[j * n + i] as number) * level;
        }
        scaleBits[0] = records[first + byteWords] as number;
        total += dot * (scale[0] as number);
        magnitude += Math.abs(dot * (scale[0] as number));
      }
      const t = q.rowScales === null ? 1 : (q.rowScales[j] as number);
      y[v * outputs + j] = total * t;
      magnitudes[v * outputs + j] = magnitude * Math.abs(t);
    }
  }
  return { y, magnitudes };
}

function f32Bits(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0] as number;
}
