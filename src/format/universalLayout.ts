import { check } from '../errors.js';
import { escapeRank, HUGE_ESCAPE, MAX_ESCAPE_RANK, rootOfRank } from '../lattices/escapes.js';
import { universalCodec, type UniversalCodec } from '../quantize/latticeSpec.js';
import type { UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { LONG_ESCAPE } from '../quantize/universalCode.js';
import { packColumnFields, packStream, readBitsAt, readField, streamWords, unpackStream, writeBitsAt } from './bitFields.js';
import { Int32Builder } from './int32Builder.js';

/*
 * Packed layouts of a universal lattice matrix (src/quantize/quantizedMatrix.ts, UniversalLatticeMatrix).
 *
 * Stored form (files, `bitsStored`), all u32 words, little-endian bit streams (src/format/bitFields.ts):
 *   codes     per column, `codeBits` bits per block (a code wider than 32 bits is its low 32 bits then
 *             its high bits, i.e. one little-endian field), each column starting on a fresh word;
 *   escapeBits per column, 1 bit per block (1 = escaped), each column on a fresh word;
 *   ranks     one stream, 4 bits per escaped block in column-major block order: 1…15 a rank, 0 long;
 *   longs     one stream, 16 bits per long escape: the index in the lattice's extended table, or 0xffff;
 *   huge      i32 × d per 0xffff long escape: μ in point coordinates.
 *
 * GPU form (what the decoding kernels read; codes and escapeBits are the same words):
 *   escapeStarts  u32 per escape-bit word: the index, in the matrix's escape order, of the first escape
 *                 of that word (so escape slot = start + popcount of the lower bits);
 *   escapeIds     one stream, 8 bits per escape: 1 + the root's index in the lattice's root table, or 0
 *                 when μ is not a root ("non-root escape");
 *   nonRoots      i32 records of 1 + d words, sorted by global block index j·blocksPerColumn + b:
 *                 the block index, then μ — what a kernel finds by binary search for an id of 0.
 * The rank (stored) and the root id (GPU) are two names for the same μ given the block's leader: the
 * conversion decodes the leader (src/lattices/escapes.ts).
 */

/** The stored form of a universal matrix. */
export interface UniversalStoredWords {
  readonly codes: Uint32Array;
  readonly escapeBits: Uint32Array;
  readonly ranks: Uint32Array;
  readonly longs: Uint32Array;
  readonly huge: Int32Array;
}

/** The escape part of the GPU form (codes and escapeBits are shared with the stored form). */
export interface UniversalGpuEscapes {
  readonly escapeStarts: Uint32Array;
  readonly escapeIds: Uint32Array;
  readonly nonRoots: Int32Array;
  /** Number of escapes and of non-root escapes. */
  readonly escapeCount: number;
  readonly nonRootCount: number;
}

/** Words per column of the codes and of the escape bits. */
export function universalWordsPerColumn(codec: UniversalCodec, blocksPerColumn: number): { codes: number; escapeBits: number } {
  return { codes: streamWords(blocksPerColumn, codec.codeBits), escapeBits: streamWords(blocksPerColumn, 1) };
}

export function codecOf(m: UniversalLatticeMatrix): UniversalCodec {
  return universalCodec(m.scheme.lattice, m.scheme.q, m.scheme.beta);
}

/** The code of block `index` (low and high parts joined; exact below 2^53). */
export function blockCode(m: UniversalLatticeMatrix, index: number): number {
  return (m.codes[index] as number) + (m.codesHigh === null ? 0 : (m.codesHigh[index] as number) * 2 ** 32);
}

/** Packs the codes of `m` (per-column streams of codeBits-bit fields). */
export function packUniversalCodes(m: UniversalLatticeMatrix): Uint32Array {
  const codec = codecOf(m);
  const { codeBits } = codec;
  const { blocksPerColumn, cols } = m;
  const perColumn = universalWordsPerColumn(codec, blocksPerColumn).codes;
  const words = new Uint32Array(perColumn * cols);
  const lowBits = Math.min(32, codeBits);
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const index = j * blocksPerColumn + b;
      // A wide code is one field; its low 32 bits and high bits are written as two adjacent fields.
      const bit = b * codeBits;
      writeBitsAt(words, j * perColumn, bit, lowBits, m.codes[index] as number);
      if (codeBits > 32) writeBitsAt(words, j * perColumn, bit + 32, codeBits - 32, (m.codesHigh as Uint16Array)[index] as number);
    }
  }
  return words;
}

/** Inverse of {@link packUniversalCodes}: the low parts and (for codes over 32 bits) the high parts. */
export function unpackUniversalCodes(words: Uint32Array, codec: UniversalCodec, blocksPerColumn: number, cols: number): { codes: Uint32Array; codesHigh: Uint16Array | null } {
  const { codeBits } = codec;
  const perColumn = universalWordsPerColumn(codec, blocksPerColumn).codes;
  check(words.length === perColumn * cols, () => `universal codes: ${words.length} words, expected ${perColumn * cols}`);
  const codes = new Uint32Array(blocksPerColumn * cols);
  const codesHigh = codeBits > 32 ? new Uint16Array(blocksPerColumn * cols) : null;
  const lowBits = Math.min(32, codeBits);
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const index = j * blocksPerColumn + b;
      const bit = b * codeBits;
      codes[index] = readBitsAt(words, j * perColumn, bit, lowBits);
      if (codesHigh !== null) codesHigh[index] = readBitsAt(words, j * perColumn, bit + 32, codeBits - 32);
    }
  }
  return { codes, codesHigh };
}

/** Packs the escape bits of `m` (per column, 1 bit per block). */
export function packEscapeBits(m: Pick<UniversalLatticeMatrix, 'escapes' | 'blocksPerColumn' | 'cols'>): Uint32Array {
  // A loop, not Uint8Array.from(escapes, map): that builds a plain array of every block first (Int32Builder says why not).
  const bits = new Uint8Array(m.escapes.length);
  for (let i = 0; i < bits.length; i++) bits[i] = m.escapes[i] === 0 ? 0 : 1;
  return packColumnFields(bits, 1, m.blocksPerColumn, m.cols).words;
}

/** The stored form of `m`. */
export function packUniversalStored(m: UniversalLatticeMatrix): UniversalStoredWords {
  const ranks = new Int32Builder();
  for (const symbol of m.escapes) if (symbol !== 0) ranks.push(symbol === LONG_ESCAPE ? 0 : symbol);
  return {
    codes: packUniversalCodes(m),
    escapeBits: packEscapeBits(m),
    ranks: packStream(ranks.view(), 4),
    longs: packStream(m.longEscapes, 16),
    huge: m.hugeEscapes.slice(),
  };
}

/**
 * The escape fields of the stored form back as per-block symbols and streams: the inverse of
 * {@link packUniversalStored} for everything but the codes. The counts come from the escape bits, and
 * every stream's length is checked against them.
 */
export function unpackUniversalEscapes(
  stored: Pick<UniversalStoredWords, 'escapeBits' | 'ranks' | 'longs' | 'huge'>,
  blocksPerColumn: number,
  cols: number,
  dimension: number,
): { escapes: Uint8Array; longEscapes: Uint16Array; hugeEscapes: Int32Array } {
  const bitWords = streamWords(blocksPerColumn, 1);
  check(stored.escapeBits.length === bitWords * cols, () => `escape bits: ${stored.escapeBits.length} words, expected ${bitWords * cols}`);
  const escapes = new Uint8Array(blocksPerColumn * cols);
  let escapeCount = 0;
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      if (readField(stored.escapeBits, j * bitWords, b, 1) === 1) {
        escapes[j * blocksPerColumn + b] = 1;
        escapeCount++;
      }
    }
  }
  check(stored.ranks.length === streamWords(escapeCount, 4), () => `escape ranks: ${stored.ranks.length} words for ${escapeCount} escapes`);
  const ranks = unpackStream(stored.ranks, 4, escapeCount);
  let slot = 0;
  let longCount = 0;
  for (let i = 0; i < escapes.length; i++) {
    if (escapes[i] === 0) continue;
    const rank = ranks[slot++] as number;
    escapes[i] = rank === 0 ? LONG_ESCAPE : rank;
    if (rank === 0) longCount++;
  }
  check(stored.longs.length === streamWords(longCount, 16), () => `long escapes: ${stored.longs.length} words for ${longCount} long escapes`);
  const longEscapes = Uint16Array.from(unpackStream(stored.longs, 16, longCount));
  let hugeCount = 0;
  for (const index of longEscapes) if (index === HUGE_ESCAPE) hugeCount++;
  check(stored.huge.length === hugeCount * dimension, () => `explicit escapes: ${stored.huge.length} values for ${hugeCount} escapes of ${dimension} coordinates`);
  return { escapes, longEscapes, hugeEscapes: stored.huge.slice() };
}

/**
 * The GPU form of the escapes of `m`: each escape's root id (from its rank and the block's leader),
 * the non-root escapes as sorted records, and the per-word escape offsets.
 */
export function gpuEscapes(m: UniversalLatticeMatrix): UniversalGpuEscapes {
  return gpuEscapesFromStored(codecOf(m), packUniversalStored(m), m.blocksPerColumn, m.cols);
}

/**
 * The GPU form of the escapes from the stored form's words (what a file holds), with no per-block
 * arrays in between: escape starts from the escape bits, each rank turned into its root id given the
 * block's leader (decoded from the code words), each long escape into a root id or a non-root record
 * (its μ from the extended table or from the explicit escapes). Stream lengths are checked against
 * the escape bits as they are consumed; the values are trusted (ranks ≤ the root count, long indices
 * in the table), as a validated file (src/format/container.ts) or `packUniversalStored` gives them.
 *
 * @example
 * const escapes = gpuEscapesFromStored(codecOf(m), packUniversalStored(m), m.blocksPerColumn, m.cols);
 */
export function gpuEscapesFromStored(codec: UniversalCodec, stored: UniversalStoredWords, blocksPerColumn: number, cols: number): UniversalGpuEscapes {
  const { spec, codeBits } = codec;
  const d = spec.dimension;
  const candidates = spec.escapes;
  const words = universalWordsPerColumn(codec, blocksPerColumn);
  check(stored.codes.length === words.codes * cols, () => `universal codes: ${stored.codes.length} words, expected ${words.codes * cols}`);
  check(stored.escapeBits.length === words.escapeBits * cols, () => `escape bits: ${stored.escapeBits.length} words, expected ${words.escapeBits * cols}`);
  const rankCapacity = stored.ranks.length * 8;
  const longCapacity = stored.longs.length * 2;
  const escapeStarts = new Uint32Array(words.escapeBits * cols);
  const ids = new Int32Builder();
  const nonRoots = new Int32Builder();
  const leader = new Int32Array(d);
  const lowBits = Math.min(32, codeBits);
  let longCursor = 0;
  let hugeCursor = 0;
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      if (b % 32 === 0) escapeStarts[j * words.escapeBits + b / 32] = ids.length;
      if (readField(stored.escapeBits, j * words.escapeBits, b, 1) === 0) continue;
      check(ids.length < rankCapacity, 'escape ranks: fewer ranks than escape bits');
      const rank = readField(stored.ranks, 0, ids.length, 4);
      if (rank !== 0) {
        const bit = b * codeBits;
        const low = readBitsAt(stored.codes, j * words.codes, bit, lowBits);
        const high = codeBits > 32 ? readBitsAt(stored.codes, j * words.codes, bit + 32, codeBits - 32) : 0;
        codec.code.decode(low + high * 2 ** 32, leader);
        ids.push(1 + rootOfRank(candidates, leader, rank));
        continue;
      }
      check(longCursor < longCapacity, 'long escapes: fewer entries than long escapes in the ranks');
      const longIndex = readField(stored.longs, 0, longCursor++, 16);
      if (longIndex < candidates.rootCount) {
        ids.push(1 + longIndex);
        continue;
      }
      ids.push(0);
      nonRoots.push(j * blocksPerColumn + b);
      if (longIndex === HUGE_ESCAPE) {
        check(hugeCursor + d <= stored.huge.length, 'explicit escapes: fewer values than long escapes of 0xffff');
        for (let v = 0; v < d; v++) nonRoots.push(stored.huge[hugeCursor++] as number);
      } else {
        for (let v = 0; v < d; v++) nonRoots.push(candidates.extended[longIndex * d + v] as number);
      }
    }
  }
  return {
    escapeStarts,
    escapeIds: packStream(ids.view(), 8),
    nonRoots: nonRoots.view().slice(),
    escapeCount: ids.length,
    nonRootCount: nonRoots.length / (1 + d),
  };
}

/**
 * The per-block symbols and long/explicit streams from the GPU form: each root id becomes its rank
 * given the block's leader (a rank above 15 and every non-root become long escapes).
 */
export function escapesFromGpu(
  codec: UniversalCodec,
  codes: { codes: Uint32Array; codesHigh: Uint16Array | null },
  escapeBits: Uint32Array,
  escapeIds: Uint32Array,
  nonRoots: Int32Array,
  blocksPerColumn: number,
  cols: number,
): { escapes: Uint8Array; longEscapes: Uint16Array; hugeEscapes: Int32Array } {
  const { spec } = codec;
  const d = spec.dimension;
  const candidates = spec.escapes;
  const bitWords = streamWords(blocksPerColumn, 1);
  check(escapeBits.length === bitWords * cols, () => `escape bits: ${escapeBits.length} words, expected ${bitWords * cols}`);
  const escapes = new Uint8Array(blocksPerColumn * cols);
  const longEscapes = new Int32Builder();
  const hugeEscapes = new Int32Builder();
  const leader = new Int32Array(d);
  const mu = new Int32Array(d);
  let slot = 0;
  let nonRoot = 0;
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      if (readField(escapeBits, j * bitWords, b, 1) === 0) continue;
      const index = j * blocksPerColumn + b;
      check(slot < (escapeIds.length * 32) / 8, 'escape ids: fewer ids than escape bits');
      const id = readField(escapeIds, 0, slot++, 8);
      if (id > 0) {
        const root = id - 1;
        check(root < candidates.rootCount, () => `escape id ${id} is beyond the ${candidates.rootCount} roots`);
        const code = (codes.codes[index] as number) + (codes.codesHigh === null ? 0 : (codes.codesHigh[index] as number) * 2 ** 32);
        codec.code.decode(code, leader);
        const rank = escapeRank(candidates, leader, root);
        if (rank <= MAX_ESCAPE_RANK) {
          escapes[index] = rank;
        } else {
          escapes[index] = LONG_ESCAPE;
          longEscapes.push(root);
        }
        continue;
      }
      const record = nonRoot * (1 + d);
      check(record + 1 + d <= nonRoots.length && nonRoots[record] === index, () => `non-root escape ${nonRoot} does not belong to block ${index}`);
      for (let v = 0; v < d; v++) mu[v] = nonRoots[record + 1 + v] as number;
      nonRoot++;
      escapes[index] = LONG_ESCAPE;
      const extended = candidates.indexOf(mu);
      longEscapes.push(extended >= 0 ? extended : HUGE_ESCAPE);
      if (extended < 0) for (const v of mu) hugeEscapes.push(v);
    }
  }
  return { escapes, longEscapes: new Uint16Array(longEscapes.view()), hugeEscapes: hugeEscapes.view().slice() };
}
