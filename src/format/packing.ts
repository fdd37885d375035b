import { check, describeValue } from '../errors.js';

/**
 * Packing of per-block fields (codes, scale indices) into u32 words, the layout the GPU kernels
 * read and write. Each column starts on a fresh word, so a kernel finds column j's block b at word
 * `j·wordsPerColumn + floor(b / perWord)`, bits `(b mod perWord)·bits …`, with no cross-column
 * arithmetic. D3, q = 6: 8-bit codes, 4 per word; E8, q = 16: one 32-bit code per word; 2-bit scale
 * indices, 16 per word.
 */
export interface PackedField {
  readonly words: Uint32Array;
  /** Bits per value (1..32). */
  readonly bits: number;
  /** Values per u32 word: floor(32 / bits). */
  readonly perWord: number;
  readonly wordsPerColumn: number;
}

/** Values per word and words per column for `blocksPerColumn` values of `bits` bits. */
export function packedLayout(bits: number, blocksPerColumn: number): { perWord: number; wordsPerColumn: number } {
  check(Number.isInteger(bits) && bits >= 1 && bits <= 32, () => `packed field bits must be 1..32, got ${describeValue(bits)}`);
  const perWord = Math.floor(32 / bits);
  return { perWord, wordsPerColumn: Math.ceil(blocksPerColumn / perWord) };
}

/** Packs `values` (cols × blocksPerColumn, column-major) with `bits` bits each. */
export function packField(values: ArrayLike<number>, bits: number, blocksPerColumn: number, cols: number): PackedField {
  check(typeof values === 'object' && values !== null && Number.isSafeInteger(values.length), () => `packField: values must be an array or typed array, got ${describeValue(values)}`);
  checkCounts(blocksPerColumn, cols, 'packField');
  check(values.length === blocksPerColumn * cols, () => `packField: ${values.length} values, expected ${blocksPerColumn * cols}`);
  const { perWord, wordsPerColumn } = packedLayout(bits, blocksPerColumn);
  const words = new Uint32Array(wordsPerColumn * cols);
  const limit = bits === 32 ? 2 ** 32 : 2 ** bits;
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const v = values[j * blocksPerColumn + b] as number;
      check(Number.isInteger(v) && v >= 0 && v < limit, () => `packField: value ${v} does not fit ${bits} bits`);
      const w = j * wordsPerColumn + Math.floor(b / perWord);
      const shift = (b % perWord) * bits;
      words[w] = ((words[w] as number) + v * 2 ** shift) >>> 0;
    }
  }
  return { words, bits, perWord, wordsPerColumn };
}

/** Inverse of {@link packField}; returns a Uint32Array of cols × blocksPerColumn values. */
export function unpackField(field: PackedField, blocksPerColumn: number, cols: number): Uint32Array {
  check(typeof field === 'object' && field !== null && field.words instanceof Uint32Array, () => `unpackField: field must be a PackedField (packField's result), got ${describeValue(field)}`);
  checkCounts(blocksPerColumn, cols, 'unpackField');
  const { perWord, wordsPerColumn } = packedLayout(field.bits, blocksPerColumn);
  check(field.words.length === wordsPerColumn * cols, () => `unpackField: ${field.words.length} words, expected ${wordsPerColumn * cols}`);
  const out = new Uint32Array(blocksPerColumn * cols);
  const mask = field.bits === 32 ? 0xffffffff : 2 ** field.bits - 1;
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const word = field.words[j * wordsPerColumn + Math.floor(b / perWord)] as number;
      const shift = (b % perWord) * field.bits;
      out[j * blocksPerColumn + b] = field.bits === 32 ? word : Math.floor(word / 2 ** shift) & mask;
    }
  }
  return out;
}

function checkCounts(blocksPerColumn: number, cols: number, what: string): void {
  check(Number.isSafeInteger(blocksPerColumn) && blocksPerColumn >= 0, () => `${what}: blocksPerColumn must be a non-negative integer, got ${describeValue(blocksPerColumn)}`);
  check(Number.isSafeInteger(cols) && cols >= 0, () => `${what}: cols must be a non-negative integer, got ${describeValue(cols)}`);
}
