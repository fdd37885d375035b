import { describe, expect, it } from 'vitest';
import { readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { escapesFromGpu, gpuEscapesFromStored, packUniversalCodes, packUniversalStored, unpackUniversalCodes } from '../../src/format/universalLayout.js';
import { escapeRank, HUGE_ESCAPE, MAX_ESCAPE_RANK } from '../../src/lattices/escapes.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { LONG_ESCAPE } from '../../src/quantize/universalCode.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * The GPU form of a universal matrix's escapes (src/format/universalLayout.ts), computed from the stored
 * words, against what its definition says for a hand-built E8 matrix (33- and 37-bit codes, so leaders come from
 * codes with a high part) holding every kind of escape, in columns of more than 32 blocks:
 *   escapeStarts[j, w]: the number of escapes before column j's block 32w, counted here;
 *   escape id: 1 + the root whose rank given the block's leader is the stored rank (found here with
 *     escapeRank, the forward map, not rootOfRank, the inverse the layout uses), 1 + the root index of
 *     a long escape to a root, 0 otherwise;
 *   nonRoots: [global block index, μ] per id 0, in block order, μ from the plan.
 * Then escapesFromGpu must give the stored escape streams back.
 */

// q = 17: 33-bit codes (a 1-bit high part); q = 24 (e8-5bit): 37-bit codes.
describe.each([
  [17, 33],
  [24, 37],
])('E8, q = %i (%i-bit codes)', (q, codeBits) => {
  const codec = universalCodec('E8', q, 0.142);
  const { spec } = codec;
  const d = spec.dimension;
  const candidates = spec.escapes;

  const base = quantize(gaussianMatrix(400, 3, 4), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q, beta: 0.142 }, seed: 1, nonce: 5n }) as UniversalLatticeMatrix;
  const perColumn = base.blocksPerColumn;

  type Escape = { readonly kind: 'rank'; readonly rank: number } | { readonly kind: 'root'; readonly root: number } | { readonly kind: 'row'; readonly row: number } | { readonly kind: 'huge'; readonly mu: readonly number[] };

  function leaderOf(index: number): Int32Array {
    const leader = new Int32Array(d);
    codec.code.decode((base.codes[index] as number) + ((base.codesHigh as Uint16Array)[index] as number) * 2 ** 32, leader);
    return leader;
  }

  /** A root whose rank given the leader of block `index` is past MAX_ESCAPE_RANK: stored as a long escape. */
  function farRoot(index: number): number {
    const leader = leaderOf(index);
    for (let r = 0; r < candidates.rootCount; r++) if (escapeRank(candidates, leader, r) > MAX_ESCAPE_RANK + 50) return r;
    throw new Error('no far root');
  }

  // Lattice points beyond the extended table: stored explicitly (0xFFFF).
  const bigMu = [8, 0, 0, 0, 0, 0, 0, 0];
  const otherBigMu = [-6, 2, 0, 0, 0, 0, 0, 0];

  /** Column 0 mixes every kind around the word boundary at block 32, column 1 has none, column 2 a few. */
  function plan(): Map<number, Escape> {
    const at = new Map<number, Escape>();
    const put = (column: number, block: number, escape: Escape): void => void at.set(column * perColumn + block, escape);
    put(0, 1, { kind: 'rank', rank: 3 });
    put(0, 2, { kind: 'row', row: candidates.rootCount + 7 });
    put(0, 4, { kind: 'huge', mu: bigMu });
    put(0, 6, { kind: 'rank', rank: 1 });
    put(0, 31, { kind: 'root', root: farRoot(31) });
    put(0, 32, { kind: 'rank', rank: MAX_ESCAPE_RANK });
    put(0, 33, { kind: 'huge', mu: otherBigMu });
    put(2, 0, { kind: 'row', row: candidates.rootCount });
    put(2, 40, { kind: 'root', root: farRoot(2 * perColumn + 40) });
    put(2, perColumn - 1, { kind: 'rank', rank: 2 });
    return at;
  }

  function matrixOf(escapes: ReadonlyMap<number, Escape>): UniversalLatticeMatrix {
    const symbols = new Uint8Array(base.cols * perColumn);
    const longs: number[] = [];
    const huge: number[] = [];
    for (const index of [...escapes.keys()].sort((a, b) => a - b)) {
      const escape = escapes.get(index) as Escape;
      symbols[index] = escape.kind === 'rank' ? escape.rank : LONG_ESCAPE;
      if (escape.kind === 'root') longs.push(escape.root);
      if (escape.kind === 'row') longs.push(escape.row);
      if (escape.kind === 'huge') {
        longs.push(HUGE_ESCAPE);
        huge.push(...escape.mu);
      }
    }
    return { ...base, escapes: symbols, longEscapes: Uint16Array.from(longs), hugeEscapes: Int32Array.from(huge) };
  }

  describe('gpuEscapesFromStored: the GPU form of every kind of escape', () => {
    const escapes = plan();
    const m = matrixOf(escapes);
    const indices = [...escapes.keys()].sort((a, b) => a - b);

    it('the plan is what it claims: columns past 32 blocks, explicit μ beyond the table, far roots, and a matrix the container holds', () => {
      expect(codec.codeBits).toBe(codeBits);
      expect(perColumn).toBeGreaterThan(41);
      for (const mu of [bigMu, otherBigMu]) {
        expect(spec.lattice.contains(Int32Array.from(mu))).toBe(true);
        expect(candidates.indexOf(mu)).toBe(-1);
      }
      // The container (its own checks of every value) reads the hand-built matrix back unchanged.
      const read = readQuantizedContainer(writeQuantizedContainer([{ name: 'm', matrix: m }])).get('m').matrix as UniversalLatticeMatrix;
      expect(Array.from(read.escapes)).toEqual(Array.from(m.escapes));
      expect(Array.from(read.longEscapes)).toEqual(Array.from(m.longEscapes));
    });

    const gpu = gpuEscapesFromStored(codec, packUniversalStored(m), perColumn, m.cols);

    it('escape starts: per escape-bit word, the escapes before its first block (column-major)', () => {
      const wordsPerColumn = Math.ceil(perColumn / 32);
      expect(gpu.escapeStarts.length).toBe(wordsPerColumn * m.cols);
      for (let j = 0; j < m.cols; j++) {
        for (let w = 0; w < wordsPerColumn; w++) {
          const first = j * perColumn + 32 * w;
          expect(gpu.escapeStarts[j * wordsPerColumn + w], `column ${j}, word ${w}`).toBe(indices.filter((i) => i < first).length);
        }
      }
      expect(gpu.escapeCount).toBe(indices.length);
    });

    it('escape ids: 1 + the root of the stored rank (by escapeRank) or of a long escape to a root, 0 for a non-root', () => {
      const ids = indices.map((_, k) => ((gpu.escapeIds[k >> 2] as number) >>> (8 * (k & 3))) & 0xff);
      indices.forEach((index, k) => {
        const escape = escapes.get(index) as Escape;
        const id = ids[k] as number;
        if (escape.kind === 'rank') {
          expect(id, `slot ${k}`).toBeGreaterThan(0);
          expect(escapeRank(candidates, leaderOf(index), id - 1), `slot ${k}`).toBe(escape.rank);
        } else if (escape.kind === 'root') {
          expect(id, `slot ${k}`).toBe(1 + escape.root);
        } else {
          expect(id, `slot ${k}`).toBe(0);
        }
      });
    });

    it('non-root records: [block index, μ] in block order, μ from the table row or the explicit coordinates', () => {
      const expected: number[] = [];
      for (const index of indices) {
        const escape = escapes.get(index) as Escape;
        if (escape.kind === 'row') expected.push(index, ...candidates.extended.subarray(escape.row * d, (escape.row + 1) * d));
        if (escape.kind === 'huge') expected.push(index, ...escape.mu);
      }
      expect(Array.from(gpu.nonRoots)).toEqual(expected);
      expect(gpu.nonRootCount).toBe(expected.length / (1 + d));
    });

    it('escapesFromGpu gives the stored escape streams back', () => {
      const back = escapesFromGpu(codec, { codes: m.codes, codesHigh: m.codesHigh }, packUniversalStored(m).escapeBits, gpu.escapeIds, gpu.nonRoots, perColumn, m.cols);
      expect(Array.from(back.escapes)).toEqual(Array.from(m.escapes));
      expect(Array.from(back.longEscapes)).toEqual(Array.from(m.longEscapes));
      expect(Array.from(back.hugeEscapes)).toEqual(Array.from(m.hugeEscapes));
    });
  });
});

describe('packUniversalCodes: one little-endian field of codeBits bits per block, wide codes included', () => {
  /** Field b of the column stream starting at word `first`, from the words as one BigInt. */
  function fieldByBigInt(words: Uint32Array, first: number, wordCount: number, b: number, bits: number): number {
    let stream = 0n;
    for (let w = wordCount - 1; w >= 0; w--) stream = (stream << 32n) | BigInt(words[first + w] as number);
    return Number((stream >> BigInt(b * bits)) & ((1n << BigInt(bits)) - 1n));
  }

  it.each([16, 17, 18, 20, 24, 32])('E8, q = %i', (q) => {
    const m = quantize(gaussianMatrix(48, 3, q), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q, beta: 0.3 }, seed: 2, nonce: 3n }) as UniversalLatticeMatrix;
    const bits = Math.ceil(8 * Math.log2(q) - 1e-9); // ⌈log2 q^8⌉
    const words = packUniversalCodes(m);
    const perColumn = Math.ceil((m.blocksPerColumn * bits) / 32);
    expect(words.length).toBe(perColumn * m.cols);
    let wide = 0;
    for (let j = 0; j < m.cols; j++) {
      for (let b = 0; b < m.blocksPerColumn; b++) {
        const i = j * m.blocksPerColumn + b;
        const code = (m.codes[i] as number) + (m.codesHigh === null ? 0 : (m.codesHigh[i] as number) * 2 ** 32);
        if (code >= 2 ** 32) wide++;
        expect(fieldByBigInt(words, j * perColumn, perColumn, b, bits), `column ${j}, block ${b}`).toBe(code);
      }
    }
    // Codes past 32 bits occur wherever q^8 > 2^32, so the high part is exercised.
    expect(wide > 0).toBe(q ** 8 > 2 ** 32);
    const back = unpackUniversalCodes(words, universalCodec('E8', q, 0.3), m.blocksPerColumn, m.cols);
    expect(Array.from(back.codes)).toEqual(Array.from(m.codes));
    expect(back.codesHigh === null ? null : Array.from(back.codesHigh)).toEqual(m.codesHigh === null ? null : Array.from(m.codesHigh));
  });
});
