import { check, LatticeMatmulError, describeValue } from '../errors.js';

/*
 * Bit-packed weight-only codes: the layout of the serialized format (version 2) and of the GPU
 * GEMV's packed code buffer, so a matrix uploaded in that layout is these words as they are; codes
 * that fit 8 bits are usually uploaded in the fixed-width layout instead (`fixedWidthCodes`, below).
 *
 * Widths are chosen per input feature (column i of the stored W, one step s_i): b_i is the
 * narrowest two's complement width that holds every code of that feature across all outputs. Per
 * column rather than per matrix because a column's range is the extreme of `outputs` codes, not of
 * n·outputs, and because WaterSIC gives columns unequal rates (measured at n = 1024: ≈ 1 bit per
 * entry less for every method, and for WaterSIC with outlier channels 5.3 instead of 11 bits).
 *
 * Layout of output row j (its n codes, input features 0 … n−1): a little-endian bit stream. Code i
 * occupies b_i bits from bit P_i = b_0 + … + b_{i−1} of the row, two's complement; bit p of the row
 * is bit p % 32 of word p / 32 of the row. A row is R = max(1, ⌈P_n / 128⌉) vec4<u32> (4·R words,
 * so every row starts on a 16-byte boundary, where the kernel's vec4 loads need it); the bits past
 * P_n are zero. Row j is words 4·R·j … 4·R·(j + 1) − 1 of the matrix.
 */

/** Widest code: 25 bits of two's complement hold every code the quantizer writes. */
export const MAX_CODE_BITS = 25;
/** Smallest code, −2^24. */
export const MIN_CODE = -(2 ** 24);
/** Largest code, 2^24 − 1. Every code is an integer exactly representable in f32. */
export const MAX_CODE = 2 ** 24 - 1;

/** Codes of one matrix in the packed layout (see the module comment). */
export interface PackedWeightCodes {
  /** Input features (codes per output row). */
  readonly n: number;
  /** Output rows. */
  readonly outputs: number;
  /** b_i ∈ [1, 25]: bits of input feature i's codes. */
  readonly widths: Uint8Array;
  /** R: vec4<u32> per output row. */
  readonly rowVec4s: number;
  /** 4·R·outputs words, row j at 4·R·j. */
  readonly words: Uint32Array;
}

/** Bits of two's complement that hold z (1 for 0 and −1, 2 for −2 … 1, …). */
export function twosComplementBits(z: number): number {
  const magnitude = z < 0 ? -z - 1 : z;
  return 33 - Math.clz32(magnitude);
}

/** R = max(1, ⌈Σ b_i / 128⌉) for these widths, and the row's code bits P_n. */
export function rowLayout(widths: Uint8Array): { rowVec4s: number; rowBits: number } {
  let rowBits = 0;
  for (let i = 0; i < widths.length; i++) rowBits += widths[i] as number;
  return { rowVec4s: Math.max(1, Math.ceil(rowBits / 128)), rowBits };
}

/**
 * The narrowest width of every input feature: b_i = max over outputs j of the two's complement bits
 * of z_ji (codes in the stored layout, output j, input i at j·n + i). Refuses a code outside
 * [MIN_CODE, MAX_CODE] or not an integer.
 */
export function columnCodeWidths(codes: Int32Array, n: number, outputs: number): Uint8Array {
  check(codes.length === n * outputs, () => `expected n·outputs = ${n * outputs} codes, got ${describeValue(codes.length)}`);
  const widths = new Uint8Array(n).fill(1);
  for (let j = 0; j < outputs; j++) {
    const base = j * n;
    for (let i = 0; i < n; i++) {
      const z = codes[base + i] as number;
      const bits = twosComplementBits(z);
      if (bits > (widths[i] as number)) {
        if (bits > MAX_CODE_BITS) {
          throw new LatticeMatmulError(
            `code ${z} of output ${j}, input feature ${i} is outside [${MIN_CODE}, ${MAX_CODE}] (codes must be exact in f32)`,
          );
        }
        widths[i] = bits;
      }
    }
  }
  return widths;
}

/**
 * Packs codes (stored layout, j·n + i) with the narrowest width per input feature.
 *
 * @example
 * const packed = packWeightCodes(q.codes, q.n, q.outputs); // packed.words: the GPU's code buffer
 */
export function packWeightCodes(codes: Int32Array, n: number, outputs: number): PackedWeightCodes {
  const widths = columnCodeWidths(codes, n, outputs);
  const { rowVec4s } = rowLayout(widths);
  const rowWords = 4 * rowVec4s;
  const words = new Uint32Array(rowWords * outputs);
  for (let j = 0; j < outputs; j++) {
    const base = j * rowWords;
    let bit = 0;
    for (let i = 0; i < n; i++) {
      const width = widths[i] as number;
      const field = (codes[j * n + i] as number) & (2 ** width - 1);
      const word = base + (bit >>> 5);
      const shift = bit & 31;
      words[word] = ((words[word] as number) | (field << shift)) >>> 0;
      if (shift + width > 32) words[word + 1] = ((words[word + 1] as number) | (field >>> (32 - shift))) >>> 0;
      bit += width;
    }
  }
  return { n, outputs, widths, rowVec4s, words };
}

/**
 * The codes of `packed` (stored layout), checking what a reader must: every row's bits past P_n are
 * zero, and every width is the narrowest for its column (so a matrix has one packed form, and
 * writing what was read gives the same bytes). Throws a `LatticeMatmulError` naming the row or column.
 */
export function unpackWeightCodes(packed: PackedWeightCodes): Int32Array {
  const { n, outputs, widths, rowVec4s, words } = packed;
  const rowWords = 4 * rowVec4s;
  check(words.length === rowWords * outputs, () => `packed codes: expected ${rowWords * outputs} words, got ${describeValue(words.length)}`);
  check(widths.length === n, () => `packed codes: expected ${n} widths, got ${describeValue(widths.length)}`);
  for (let i = 0; i < n; i++) {
    const width = widths[i] as number;
    check(width >= 1 && width <= MAX_CODE_BITS, () => `packed codes: input feature ${i} has code width ${width}, expected 1 … ${MAX_CODE_BITS}`);
  }
  const { rowBits } = rowLayout(widths);
  check(rowBits <= 128 * rowVec4s, () => `packed codes: the widths need ${rowBits} bits per row, more than ${rowVec4s} vec4`);
  // One Int32 per weight in memory, against as little as 1 bit in a file: a file of 256 MiB can ask for 8 GiB.
  let codes: Int32Array;
  try {
    codes = new Int32Array(n * outputs);
  } catch (error) {
    throw new LatticeMatmulError(`packed codes: cannot allocate ${4 * n * outputs} bytes for the ${n} × ${outputs} codes (one Int32 per weight)`, { cause: error });
  }
  const needed = new Uint8Array(n).fill(1);
  for (let j = 0; j < outputs; j++) {
    const base = j * rowWords;
    let bit = 0;
    for (let i = 0; i < n; i++) {
      const width = widths[i] as number;
      const word = base + (bit >>> 5);
      const shift = bit & 31;
      let field = (words[word] as number) >>> shift;
      if (shift + width > 32) field |= (words[word + 1] as number) << (32 - shift);
      const z = (field << (32 - width)) >> (32 - width);
      codes[j * n + i] = z;
      const bits = twosComplementBits(z);
      if (bits > (needed[i] as number)) needed[i] = bits;
      bit += width;
    }
    // Padding: the rest of the word holding the last code bit, then whole words.
    const tailShift = rowBits & 31;
    if (tailShift !== 0) {
      check(
        (words[base + (rowBits >>> 5)] as number) >>> tailShift === 0,
        () => `packed codes: padding bits of output row ${j} are not zero`,
      );
    }
    for (let k = Math.ceil(rowBits / 32); k < rowWords; k++) {
      check(words[base + k] === 0, () => `packed codes: padding word ${k} of output row ${j} is not zero`);
    }
  }
  for (let i = 0; i < n; i++) {
    check(
      needed[i] === widths[i],
      () => `packed codes: input feature ${i} is stored with ${widths[i]} bits but its codes need ${needed[i]} (widths must be the narrowest)`,
    );
  }
  return codes;
}

/**
 * The GPU kernel's column layout table, n + R + 2 u32 (R = rowVec4s):
 * - entries 0 … n: the bit offsets P_0 = 0, P_1, …, P_n of the codes in a row;
 * - entries n + 1 + c, c = 0 … R: F_c, the first code owned by vec4 c of a row, F_R = n. Vec4 c owns
 *   codes F_c … F_{c+1} − 1: those whose last bit P_{i+1} − 1 lies in it. A code is at most 25 bits
 *   long, so an owned code starts no earlier than 32 bits before the vec4: the last word of vec4
 *   c − 1 and the four words of vec4 c hold it.
 *
 * @example
 * const table = weightCodeLayout(packed.widths, packed.rowVec4s); // uploaded next to the codes
 */
export function weightCodeLayout(widths: Uint8Array, rowVec4s: number): Uint32Array {
  const n = widths.length;
  const table = new Uint32Array(n + rowVec4s + 2);
  let bit = 0;
  let vec4 = 0;
  for (let i = 0; i < n; i++) {
    table[i] = bit;
    bit += widths[i] as number;
    const owner = Math.ceil(bit / 128) - 1; // the vec4 holding bit P_{i+1} − 1
    while (vec4 < owner) {
      vec4++;
      table[n + 1 + vec4] = i; // codes before i end in earlier vec4s
    }
  }
  table[n] = bit;
  check(bit <= 128 * rowVec4s, () => `weight code layout: the widths need ${bit} bits per row, more than ${rowVec4s} vec4`);
  while (vec4 < rowVec4s) table[n + 1 + ++vec4] = n;
  return table;
}

/** Bits per code of the GPU's fixed-width code layout (`fixedWidthCodes`): 1 … 8. */
export type FixedCodeBits = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

/** Widest code of the fixed-width layout. */
export const MAX_FIXED_CODE_BITS = 8;

/** Codes in the fixed-width layout of the weight-only GEMV's fast path (`fixedWidthCodes`). */
export interface FixedWidthCodes {
  readonly bits: FixedCodeBits;
  /** vec4<u32> per output row: `fixedRowVec4s(n, bits)`. */
  readonly rowVec4s: number;
  /** 4·rowVec4s·outputs words, row j at 4·rowVec4s·j. */
  readonly words: Uint32Array;
}

/** Codes per u32 word of the fixed-width layout: ⌊32 / bits⌋ (the word's top 32 mod bits bits stay 0). */
export function fixedCodesPerWord(bits: FixedCodeBits): number {
  return Math.floor(32 / bits);
}

/**
 * The top bit of each of a fixed-width word's ⌊32/bits⌋ fields: xor'ed in, it turns every two's
 * complement field z into z + 2^(bits−1) ≥ 0 (what the GPU GEMVs read their fields as).
 */
export function fixedFieldSigns(bits: FixedCodeBits): number {
  let signs = 0;
  for (let t = 0; t < fixedCodesPerWord(bits); t++) signs += 2 ** (bits * t + bits - 1);
  return signs;
}

/** vec4<u32> per row of n codes of `bits` bits in the fixed-width layout (at least 1). */
export function fixedRowVec4s(n: number, bits: FixedCodeBits): number {
  return Math.max(1, Math.ceil(n / (4 * fixedCodesPerWord(bits))));
}

/**
 * The fixed width that holds every code of `widths`: the widest b_i, or null when a code needs more
 * than MAX_FIXED_CODE_BITS.
 *
 * @example
 * fixedCodeBits(q.codeWidths); // 5 for a matrix whose codes take 4 or 5 bits
 */
export function fixedCodeBits(widths: Uint8Array): FixedCodeBits | null {
  let widest = 1;
  for (let i = 0; i < widths.length; i++) widest = Math.max(widest, widths[i] as number);
  return widest <= MAX_FIXED_CODE_BITS ? (widest as FixedCodeBits) : null;
}

/**
 * The codes (stored layout, j·n + i) in the GPU's fixed-width layout, a repacking made at upload for
 * the weight-only GEMV (shaders/weightonly_codes_fixed.wgsl): a row takes W = 4·rowVec4s words of
 * P = ⌊32 / bits⌋ fields (W·P ≥ n), and code i of row j is the two's complement field of `bits` bits
 * at bit `bits`·⌊i / W⌋ of word i mod W of the row: word w holds codes w, W + w, 2W + w, … (strided,
 * so that the GPU's lanes, which own consecutive words, read consecutive s_i and x̃_i). Fields past n
 * and a word's top 32 mod bits bits are 0. Every code must fit `bits` (`fixedCodeBits`).
 *
 * @example
 * const fixed = fixedWidthCodes(q.codes, q.n, q.outputs, 4); // 8 codes per word, 32 per vec4
 */
export function fixedWidthCodes(codes: Int32Array, n: number, outputs: number, bits: FixedCodeBits): FixedWidthCodes {
  check(Number.isInteger(bits) && bits >= 1 && bits <= MAX_FIXED_CODE_BITS, () => `fixed code width must be 1 … ${MAX_FIXED_CODE_BITS} bits, got ${describeValue(bits)}`);
  check(codes.length === n * outputs, () => `expected n·outputs = ${n * outputs} codes, got ${describeValue(codes.length)}`);
  const rowVec4s = fixedRowVec4s(n, bits);
  const rowWords = 4 * rowVec4s;
  const words = new Uint32Array(rowWords * outputs);
  const low = -(2 ** (bits - 1));
  const high = 2 ** (bits - 1) - 1;
  const mask = 2 ** bits - 1;
  for (let j = 0; j < outputs; j++) {
    const base = j * rowWords;
    for (let i = 0; i < n; i++) {
      const z = codes[j * n + i] as number;
      if (z < low || z > high) throw new LatticeMatmulError(`code ${z} of output ${j}, input feature ${i} does not fit ${bits} bits of two's complement`);
      const word = base + (i % rowWords);
      words[word] = ((words[word] as number) | ((z & mask) << (bits * Math.floor(i / rowWords)))) >>> 0;
    }
  }
  return { bits, rowVec4s, words };
}
