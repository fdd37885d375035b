import { check } from '../errors.js';
import { streamWords } from '../format/bitFields.js';
import { keptRotatedLength, universalRangeAdvice } from '../quantize/quantize.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import { throwIfAborted, type ResolvedQuantizeOptions } from '../quantize/options.js';
import { checkColumnMean, checkColumnNorm } from '../quantize/prepareColumn.js';
import type { UniversalLatticeScheme } from '../quantize/schemes.js';
import { DITHER_KEYS, nonceWords } from '../quantize/universalCode.js';
import { codeBufferByteLength, createBuffer, createBufferWithData, recordReadback, STORAGE_USAGE, submitAndConfirm } from './buffers.js';
import { checkColumnPrepStatus, dispatchColumnPrep, reportedColumn } from './kernels/columnPrep.js';
import { dispatchHadamard } from './kernels/hadamard.js';
import {
  createRootsUniform,
  dispatchUniversalCompact,
  dispatchUniversalEncode,
  UNIVERSAL_WORK_FIXED_OVERFLOW,
  UNIVERSAL_WORK_HEADER_WORDS,
  UNIVERSAL_WORK_RECORDS,
  universalWorkWords,
  type UniversalEncodeShape,
} from './kernels/universalEncode.js';
import { GpuScratch } from './scratch.js';
import { columnNormBound, ORDINARY_DECODE_RATIO } from './latticeOperand.js';
import { escapeTableWords, GpuUniversalQuantizedMatrix, ordinaryUniversalDecodeRatio, universalOperandLayout } from './universalOperand.js';
import { bindingCap, itemsPerBinding, scratchChunkBytes } from './workSplit.js';

/*
 * The universal lattice quantizer on the GPU: column prep → randomized Hadamard rotation → universal
 * encode (pass A) for chunks of columns, one read-back of the per-column escape counts and non-root
 * records, then the escape-id stream (pass B). The result equals the CPU `quantize()` bit for bit
 * (codes, escapes, norms, means) after `read()`.
 */

/** The source of a GPU quantization: an upload of a CPU matrix, or the caller's buffer. */
export interface GpuQuantizeSource {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  /** The rotated column length, `rotatedLength(rows, options)`, checked by the caller (`gpuQuantizeLattice`). */
  readonly length: number;
  /** The entries are the app's f16, widened: a non-finite one may be an f32 buffer declared f16 (the refusal says so). */
  readonly widenedFromF16?: boolean;
}

/**
 * Runs inside the caller's section (`withValidation`): records, submits and reads back. Throws what
 * the CPU quantizer throws for non-finite entries, norms or means beyond f32, and coordinates beyond the
 * universal code's range.
 */
export async function gpuQuantizeUniversalUnlocked(
  device: GPUDevice,
  source: GpuQuantizeSource,
  options: ResolvedQuantizeOptions,
  maxBindingBytes: number | undefined,
): Promise<GpuUniversalQuantizedMatrix> {
  const scheme = options.scheme as UniversalLatticeScheme;
  const codec = universalCodec(scheme.lattice, scheme.q, scheme.beta);
  const d = codec.spec.dimension;
  const { rows: n, cols, length } = source;
  const keptLength = keptRotatedLength(length, d, options.keepFraction);
  const blocksPerColumn = Math.ceil(keptLength / d);
  const layout = universalOperandLayout({ scheme, blocksPerColumn });
  const nonce = options.nonce as bigint;
  const denseWords = Math.ceil(blocksPerColumn / 4);
  let recordCapacity = Math.max(256, Math.ceil((blocksPerColumn * cols) / 64));
  // The compact pass binds every column's dense ids at once: refuse now, not after encoding.
  const denseBytes = 4 * denseWords * cols;
  check(
    denseBytes <= device.limits.maxStorageBufferBindingSize,
    () =>
      `GPU quantize: the dense escape ids of ${cols} columns (${denseBytes} bytes) exceed one storage binding (${device.limits.maxStorageBufferBindingSize}); ` +
      `quantize at most ${Math.floor(device.limits.maxStorageBufferBindingSize / (4 * denseWords))} columns at a time`,
  );

  const owned: GPUBuffer[] = [];
  const make = (label: string, bytes: number): GPUBuffer => {
    const buffer = createBuffer(device, label, bytes, STORAGE_USAGE);
    owned.push(buffer);
    return buffer;
  };
  const name = `universal ${scheme.lattice} q=${scheme.q} (${cols} columns)`;
  const scratch = new GpuScratch(device);
  try {
    const codes = make(`${name} codes`, codeBufferByteLength(4 * layout.codeWords * cols));
    const escapeBits = make(`${name} escape bits`, 4 * layout.bitWords * cols);
    const side = make(`${name} norms and means`, 4 * cols * (options.center ? 2 : 1));
    const denseIds = scratch.buffer(`${name} dense escape ids`, denseBytes, STORAGE_USAGE);
    const roots = createRootsUniform(device, scratch, codec);
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const maxBinding = bindingCap(device, maxBindingBytes, 'GPU quantize');
    const chunkCols = Math.min(
      cols,
      itemsPerBinding(4 * length, scratchChunkBytes(length, maxBinding, alignment), alignment),
      itemsPerBinding(4 * n, maxBinding, alignment),
    );
    const prepared = scratch.buffer('quantize prepared columns', 4 * n * chunkCols, STORAGE_USAGE);
    const rotated = options.rotate ? scratch.buffer('quantize rotated columns', 4 * length * chunkCols, STORAGE_USAGE) : prepared;
    const exponents = scratch.buffer('quantize column exponents', 4 * chunkCols, STORAGE_USAGE);

    // Pass A (retried with a larger record list in the rare case that non-root escapes overflow it).
    let work: GPUBuffer;
    let words: Uint32Array;
    let sideValues: Float32Array;
    let shape: UniversalEncodeShape;
    for (;;) {
      shape = { codec, length, keptLength, blocksPerColumn, codeWords: layout.codeWords, bitWords: layout.bitWords, denseWords, cols, nonce: nonceWords(nonce), recordCapacity };
      work = scratch.buffer(`${name} encode work`, 4 * universalWorkWords(shape), STORAGE_USAGE);
      const encoder = device.createCommandEncoder({ label: `${name}: encode` });
      for (const buffer of [codes, escapeBits, denseIds, work]) encoder.clearBuffer(buffer);
      for (let j0 = 0; j0 < cols; j0 += chunkCols) {
        const count = Math.min(chunkCols, cols - j0);
        dispatchColumnPrep(device, encoder, scratch, {
          input: source.buffer,
          inputOffset: source.offset + 4 * n * j0,
          prepared,
          exponents,
          means: options.center ? side : null,
          meansOffset: 4 * (cols + j0),
          status: work,
          rows: n,
          cols: count,
          center: options.center,
          columnOffset: j0,
          maxBindingBytes: maxBinding,
        });
        if (options.rotate) {
          dispatchHadamard(device, encoder, scratch, { input: prepared, output: rotated, rows: n, length, cols: count, seed: options.seed, maxBindingBytes: maxBinding });
        }
        dispatchUniversalEncode(device, encoder, scratch, { shape, roots, rotated, exponents, codes, escapeBits, denseIds, side, work, cols: count, columnOffset: j0, maxBindingBytes: maxBinding });
      }
      // The readbacks in the same command buffer, so that they also confirm the encode ran: a rejected
      // submission (a destroyed input, say) must not read as a cleared status of all-zero columns.
      const workReadback = recordReadback(device, encoder, work, 4 * universalWorkWords(shape));
      const sideReadback = recordReadback(device, encoder, side, 4 * cols * (options.center ? 2 : 1));
      device.queue.submit([encoder.finish()]);
      try {
        words = new Uint32Array(await workReadback.result());
        sideValues = new Float32Array(await sideReadback.result());
      } finally {
        workReadback.destroy();
        sideReadback.destroy();
      }
      // Between submissions: an abort frees the device for the calls behind this one.
      throwIfAborted(options.signal, 'GPU quantize');
      const wanted = words[UNIVERSAL_WORK_RECORDS] as number;
      if (wanted <= recordCapacity) break;
      recordCapacity = wanted;
    }
    checkStatus(words, scheme.beta, length, options.rotate, source.widenedFromF16 === true);
    const norms = sideValues.subarray(0, cols);
    norms.forEach((norm, j) => {
      checkColumnNorm(norm, j, options.center ? (sideValues[cols + j] as number) : null);
      if (options.center) checkColumnMean(sideValues[cols + j] as number, j);
    });
    // The codes decode beyond ν_j by the code's error (far beyond it for a large β): bound that, as the CPU
    // refuses a product by the decoded norms.
    const decodeRatio = ordinaryUniversalDecodeRatio(scheme, blocksPerColumn, length);
    const maxColumnNorm = columnNormBound(norms, options.center ? sideValues.subarray(cols, 2 * cols) : null, n, new Float64Array(cols).fill(decodeRatio));

    // Host: column offsets of the escape-id stream, the sorted non-root records.
    const columnStarts = new Uint32Array(cols);
    let escapeCount = 0;
    let nonRootCount = 0;
    for (let j = 0; j < cols; j++) {
      columnStarts[j] = escapeCount;
      escapeCount += words[UNIVERSAL_WORK_HEADER_WORDS + 2 * j] as number;
      nonRootCount += words[UNIVERSAL_WORK_HEADER_WORDS + 2 * j + 1] as number;
    }
    check(nonRootCount === words[UNIVERSAL_WORK_RECORDS], 'universal encode: the non-root counts disagree with the records written');
    const recordWords = d + 1;
    const recordsFirst = UNIVERSAL_WORK_HEADER_WORDS + 2 * cols;
    const order = Array.from({ length: nonRootCount }, (_, r) => r).sort(
      (a, b) => (words[recordsFirst + a * recordWords] as number) - (words[recordsFirst + b * recordWords] as number),
    );
    const nonRoots = new Int32Array(nonRootCount * recordWords);
    order.forEach((r, i) => nonRoots.set(new Int32Array(words.buffer, words.byteOffset + 4 * (recordsFirst + r * recordWords), recordWords), i * recordWords));

    const escapeStarts = make(`${name} escape starts`, 4 * layout.bitWords * cols);
    const escapeIds = make(`${name} escape ids`, 4 * Math.max(1, streamWords(escapeCount, 8)));
    const escapeTable = createBufferWithData(device, `${name} escape table`, escapeTableWords(codec, nonRoots), STORAGE_USAGE);
    owned.push(escapeTable);
    const starts = createBufferWithData(device, `${name} column escape starts`, columnStarts, STORAGE_USAGE);
    owned.push(starts);

    const encoder = device.createCommandEncoder({ label: `${name}: escape ids` });
    encoder.clearBuffer(escapeIds);
    dispatchUniversalCompact(device, encoder, scratch, { shape, escapeBits, denseIds, columnStarts: starts, escapeStarts, escapeIds });
    await submitAndConfirm(device, encoder, `${name}: escape ids`);
    starts.destroy();
    owned.splice(owned.indexOf(starts), 1);

    return new GpuUniversalQuantizedMatrix(
      device,
      {
        rows: n,
        cols,
        length,
        keptLength,
        seed: options.seed,
        rotate: options.rotate,
        scheme,
        nonce,
        ditherKeys: DITHER_KEYS,
        blocksPerColumn,
        escapeCount,
        nonRootCount,
        hasMeans: options.center,
        maxColumnNorm,
        decodeNormRatio: Math.max(ORDINARY_DECODE_RATIO, decodeRatio),
      },
      codes,
      escapeBits,
      escapeStarts,
      escapeIds,
      escapeTable,
      side,
    );
  } catch (error) {
    for (const buffer of owned) buffer.destroy();
    throw error;
  } finally {
    scratch.destroy();
  }
}

/** Throws what the CPU quantizer throws for the problems the kernels reported (with its advice). */
function checkStatus(words: Uint32Array, beta: number, length: number, rotate: boolean, widenedFromF16: boolean): void {
  checkColumnPrepStatus(words, widenedFromF16);
  const overflow = reportedColumn(words, UNIVERSAL_WORK_FIXED_OVERFLOW);
  check(
    overflow === null,
    () =>
      `column ${overflow}: a rotated coordinate is beyond the universal code's range (2^14 times the quantizer's step β); ` +
      universalRangeAdvice(beta, length, rotate),
  );
}
