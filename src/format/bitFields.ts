import { check, describeValue } from '../errors.js';

/*
 * Dense bit packing of unsigned fields into u32 words, the layout of the universal code's streams on
 * disk and on the GPU. Field k of a stream occupies bits k·bits … k·bits + bits − 1, little-endian
 * within and across words (bit t of the stream is bit t mod 32 of word ⌊t / 32⌋), so a field may
 * straddle two words: with 37-bit E8 codes nothing is wasted. A reader gets field k from the two words
 * ⌊k·bits / 32⌋ and the next one. Per-column streams start each column on a fresh word, so column j's
 * field b is at bit b·bits of word j·wordsPerColumn.
 */

/** Words holding `count` fields of `bits` bits. */
export function streamWords(count: number, bits: number): number {
  return Math.ceil((count * bits) / 32);
}

function checkBits(bits: number): void {
  check(Number.isInteger(bits) && bits >= 1 && bits <= 32, () => `field bits must be an integer in 1..32, got ${describeValue(bits)}`);
}

/** ORs `value` (< 2^bits, bits ≤ 32) into the stream starting at word `wordOffset`, at bit `bit`. */
export function writeBitsAt(words: Uint32Array, wordOffset: number, bit: number, bits: number, value: number): void {
  const word = wordOffset + Math.floor(bit / 32);
  const shift = bit % 32;
  words[word] = ((words[word] as number) | (value << shift)) >>> 0;
  if (shift + bits > 32) words[word + 1] = ((words[word + 1] as number) | (value >>> (32 - shift))) >>> 0;
}

/** Reads `bits` bits (≤ 32) of the stream starting at word `wordOffset`, from bit `bit`. */
export function readBitsAt(words: Uint32Array, wordOffset: number, bit: number, bits: number): number {
  const word = wordOffset + Math.floor(bit / 32);
  const shift = bit % 32;
  let value = (words[word] as number) >>> shift;
  if (shift + bits > 32) value |= (words[word + 1] as number) << (32 - shift);
  return bits === 32 ? value >>> 0 : (value & ((1 << bits) - 1)) >>> 0;
}

/** Writes `value` (< 2^bits) as field `index` of the stream in `words` (which must be zero there). */
export function writeField(words: Uint32Array, wordOffset: number, index: number, bits: number, value: number): void {
  writeBitsAt(words, wordOffset, index * bits, bits, value);
}

/** Reads field `index` of `bits` bits from the stream starting at word `wordOffset`. */
export function readField(words: Uint32Array, wordOffset: number, index: number, bits: number): number {
  return readBitsAt(words, wordOffset, index * bits, bits);
}

/**
 * Packs `values` (cols × perColumn, column-major) into a per-column stream of `bits`-bit fields, each
 * column starting on a fresh word.
 *
 * @example
 * const { words, wordsPerColumn } = packColumnFields(codes, 37, 2 * blocks, cols);
 */
export function packColumnFields(values: ArrayLike<number>, bits: number, perColumn: number, cols: number): { words: Uint32Array; wordsPerColumn: number } {
  checkBits(bits);
  check(values.length === perColumn * cols, () => `packColumnFields: ${values.length} values, expected ${perColumn * cols}`);
  const wordsPerColumn = streamWords(perColumn, bits);
  const words = new Uint32Array(wordsPerColumn * cols);
  const limit = 2 ** bits;
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < perColumn; k++) {
      const value = values[j * perColumn + k] as number;
      check(Number.isInteger(value) && value >= 0 && value < limit, () => `packColumnFields: value ${value} does not fit ${bits} bits`);
      writeField(words, j * wordsPerColumn, k, bits, value);
    }
  }
  return { words, wordsPerColumn };
}

/** Inverse of {@link packColumnFields}. */
export function unpackColumnFields(words: Uint32Array, bits: number, perColumn: number, cols: number): Uint32Array {
  checkBits(bits);
  const wordsPerColumn = streamWords(perColumn, bits);
  check(words.length === wordsPerColumn * cols, () => `unpackColumnFields: ${words.length} words, expected ${wordsPerColumn * cols}`);
  const out = new Uint32Array(perColumn * cols);
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < perColumn; k++) out[j * perColumn + k] = readField(words, j * wordsPerColumn, k, bits);
  }
  return out;
}

/** Packs `values` into one stream of `bits`-bit fields (no column alignment). */
export function packStream(values: ArrayLike<number>, bits: number): Uint32Array {
  return packColumnFields(values, bits, values.length, 1).words;
}

/** Inverse of {@link packStream}. */
export function unpackStream(words: Uint32Array, bits: number, count: number): Uint32Array {
  return unpackColumnFields(words, bits, count, 1);
}
