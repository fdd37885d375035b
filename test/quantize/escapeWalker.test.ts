import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { forEachEscapedBlock } from '../../src/format/container.js';
import { e8PointOverflowOnHost } from '../../src/gpu/universalOperand.js';
import { HUGE_ESCAPE, rootOfRank } from '../../src/lattices/escapes.js';
import { E8_POINT_LIMIT, e8PointForm } from '../../src/quantize/e8Points.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { forEachUniversalPoint, LONG_ESCAPE, UniversalEscapeWalker, UniversalPointReader } from '../../src/quantize/universalCode.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * UniversalEscapeWalker is the one reader of a universal matrix's escape streams (`escapes`, then
 * `longEscapes` one entry per LONG_ESCAPE block, then `hugeEscapes` d coordinates per HUGE_ESCAPE
 * entry); the point reader, the container's bound pass (forEachEscapedBlock) and the E8 int8 check
 * (e8PointOverflowOnHost) all walk with it. A hand-built E8 matrix holds every kind of escape, and
 * every block's μ is derived here from the plan alone, block by block, so a cursor advanced on the
 * wrong block (a ranked escape taking a long entry, an explicit μ read twice, …) shows as a wrong μ.
 */

const codec = universalCodec('E8', 24, 0.142); // e8-5bit
const { spec, q } = codec;
const d = spec.dimension;
const candidates = spec.escapes;

/** One block's escape: none, a rank, a long escape (an extended-table row) or an explicit μ. */
type Escape = { readonly kind: 'none' } | { readonly kind: 'rank'; readonly rank: number } | { readonly kind: 'long'; readonly row: number } | { readonly kind: 'huge'; readonly mu: readonly number[] };

const largest = (values: ArrayLike<number>, first: number): number => {
  let most = 0;
  for (let v = 0; v < d; v++) most = Math.max(most, Math.abs(values[first + v] as number));
  return most;
};
// Non-root rows whose coordinates stay within ±2: their blocks fit int8 whatever their leader (48 + 24·2 ≤ 127).
const smallRows: number[] = [];
for (let r = candidates.rootCount; r < candidates.extendedCount; r++) if (largest(candidates.extended, r * d) <= 2) smallRows.push(r);
const rowA = smallRows[0] as number;
const rowB = smallRows[smallRows.length - 1] as number;
const smallMu = [2, 2, 0, 0, 0, 0, 0, 0];
const otherSmallMu = [-2, 0, 2, 0, 0, 0, 0, 0];
const bigMu = [8, 0, 0, 0, 0, 0, 0, 0]; // λ_0 = L_0 + 24·8 > 127 for any leader

const base = quantize(gaussianMatrix(64, 4, 4), { scheme: 'e8-5bit', seed: 1, nonce: 5n }) as UniversalLatticeMatrix;
const perColumn = base.blocksPerColumn;

/** The plan: column 0 mixes every kind, column 1 has an explicit μ beyond int8, column 2 none, column 3 the rest. */
function plan(overflowing: boolean): Escape[] {
  const escapes: Escape[] = Array.from({ length: base.cols * perColumn }, () => ({ kind: 'none' }));
  const at = (column: number, block: number, escape: Escape): void => {
    escapes[column * perColumn + block] = escape;
  };
  at(0, 1, { kind: 'rank', rank: 3 });
  at(0, 2, { kind: 'long', row: rowA });
  at(0, 4, { kind: 'huge', mu: smallMu });
  at(0, 6, { kind: 'rank', rank: 1 });
  at(0, 7, { kind: 'long', row: 5 }); // a root by its index, as a rank past 15 is stored
  at(1, 3, { kind: 'huge', mu: overflowing ? bigMu : otherSmallMu });
  at(1, 4, { kind: 'long', row: rowB });
  at(1, 6, { kind: 'rank', rank: 15 });
  at(3, 0, { kind: 'long', row: candidates.rootCount });
  at(3, 1, { kind: 'huge', mu: otherSmallMu });
  at(3, 7, { kind: 'rank', rank: 2 });
  return escapes;
}

/** The matrix of `escapes`: base's codes, with the escape streams the plan implies. */
function matrixOf(escapes: readonly Escape[]): UniversalLatticeMatrix {
  const symbols = new Uint8Array(escapes.length);
  const longs: number[] = [];
  const huge: number[] = [];
  escapes.forEach((escape, i) => {
    if (escape.kind === 'rank') symbols[i] = escape.rank;
    if (escape.kind === 'long' || escape.kind === 'huge') symbols[i] = LONG_ESCAPE;
    if (escape.kind === 'long') longs.push(escape.row);
    if (escape.kind === 'huge') {
      longs.push(HUGE_ESCAPE);
      huge.push(...escape.mu);
    }
  });
  return { ...base, escapes: symbols, longEscapes: Uint16Array.from(longs), hugeEscapes: Int32Array.from(huge) };
}

function leaderOf(m: UniversalLatticeMatrix, index: number): Int32Array {
  const leader = new Int32Array(d);
  codec.code.decode((m.codes[index] as number) + ((m.codesHigh as Uint16Array)[index] as number) * 2 ** 32, leader);
  return leader;
}

/** μ of block `index`, from the plan alone. */
function muOf(m: UniversalLatticeMatrix, escape: Escape, index: number): number[] {
  switch (escape.kind) {
    case 'none':
      return new Array<number>(d).fill(0);
    case 'rank': {
      const root = rootOfRank(candidates, leaderOf(m, index), escape.rank);
      return Array.from(candidates.roots.subarray(root * d, (root + 1) * d));
    }
    case 'long':
      return Array.from(candidates.extended.subarray(escape.row * d, (escape.row + 1) * d));
    case 'huge':
      return [...escape.mu];
  }
}

function pointOf(m: UniversalLatticeMatrix, escape: Escape, index: number): number[] {
  const leader = leaderOf(m, index);
  const mu = muOf(m, escape, index);
  return mu.map((value, v) => (leader[v] as number) + q * value);
}

const norm = (mu: readonly number[]): number => Math.sqrt(mu.reduce((sum, v) => sum + v * v, 0)) / spec.pointScale;

describe('UniversalEscapeWalker: one walk over a universal matrix’s escape streams', () => {
  const escapes = plan(true);
  const m = matrixOf(escapes);

  it('the hand-built matrix has every kind of escape, and its codes are E8-5bit codes', () => {
    expect(codec.codeBits).toBe(37);
    expect(m.codesHigh).not.toBeNull();
    const kinds = new Set(escapes.map((escape) => escape.kind));
    expect([...kinds].sort()).toEqual(['huge', 'long', 'none', 'rank']);
    expect(m.longEscapes.length).toBe(7);
    expect(m.hugeEscapes.length).toBe(3 * d);
  });

  it('next(): every block in order, with its column, block, symbol, long index and μ', () => {
    const walker = new UniversalEscapeWalker('E8', m);
    const seen: number[] = [];
    while (walker.next()) {
      const index = walker.index;
      seen.push(index);
      const escape = escapes[index] as Escape;
      expect(walker.column).toBe(Math.floor(index / perColumn));
      expect(walker.block).toBe(index % perColumn);
      const mu = muOf(m, escape, index);
      if (escape.kind === 'none') {
        expect([walker.symbol, walker.longIndex, walker.mu]).toEqual([0, 0, null]);
        expect(walker.escapeNorm()).toBe(0);
        expect(walker.escapeLargest()).toBe(0);
      } else if (escape.kind === 'rank') {
        expect([walker.symbol, walker.longIndex, walker.mu]).toEqual([escape.rank, 0, null]);
        // Every root has the norm √8/2; the largest coordinate is the bound over all roots (2).
        expect(walker.escapeNorm()).toBe(norm(mu));
        expect(walker.escapeLargest()).toBe(2);
      } else {
        expect(walker.symbol).toBe(LONG_ESCAPE);
        expect(walker.longIndex).toBe(escape.kind === 'long' ? escape.row : HUGE_ESCAPE);
        expect(Array.from((walker.mu as Int32Array).subarray(walker.muOffset, walker.muOffset + d))).toEqual(mu);
        if (escape.kind === 'huge') expect(Array.from(walker.explicit)).toEqual(mu);
        expect(walker.escapeNorm()).toBe(norm(mu));
        expect(walker.escapeLargest()).toBe(Math.max(...mu.map(Math.abs)));
      }
    }
    expect(seen).toEqual(escapes.map((_, i) => i));
    expect(walker.next()).toBe(false);
    expect(walker.nextEscaped()).toBe(false);
  });

  it('nextEscaped(): only the escaped blocks, columns without escapes passed over, the streams in step', () => {
    const walker = new UniversalEscapeWalker('E8', m);
    const seen: [number, number, number][] = [];
    while (walker.nextEscaped()) {
      const escape = escapes[walker.index] as Escape;
      seen.push([walker.column, walker.block, walker.symbol]);
      expect(walker.escapeNorm()).toBe(norm(muOf(m, escape, walker.index)));
      if (escape.kind === 'long') expect(walker.longIndex).toBe(escape.row);
      if (escape.kind === 'huge') expect(Array.from(walker.explicit)).toEqual(escape.mu);
    }
    const expected: [number, number, number][] = [];
    escapes.forEach((escape, i) => {
      if (escape.kind !== 'none') expected.push([Math.floor(i / perColumn), i % perColumn, escape.kind === 'rank' ? escape.rank : LONG_ESCAPE]);
    });
    expect(seen).toEqual(expected);
    expect(seen.map(([column]) => column)).not.toContain(2);
  });

  it('UniversalPointReader and forEachUniversalPoint: every point λ = L + q·μ; point() on demand after nextEscaped() gives the same', () => {
    const reader = new UniversalPointReader(m);
    for (let i = 0; i < escapes.length; i++) expect(Array.from(reader.next())).toEqual(pointOf(m, escapes[i] as Escape, i));
    forEachUniversalPoint(m, (j, b, point) => {
      const i = j * perColumn + b;
      expect(Array.from(point)).toEqual(pointOf(m, escapes[i] as Escape, i));
    });
    const onDemand = new UniversalPointReader(m);
    let visited = 0;
    while (onDemand.blocks.nextEscaped()) {
      const i = onDemand.blocks.index;
      expect(Array.from(onDemand.point())).toEqual(pointOf(m, escapes[i] as Escape, i));
      visited++;
    }
    expect(visited).toBe(escapes.filter((escape) => escape.kind !== 'none').length);
  });

  it('forEachEscapedBlock: each escaped block’s column, ‖μ‖/s and whether μ is explicit', () => {
    const seen: [number, number, boolean][] = [];
    forEachEscapedBlock('E8', m, (column, escapeNorm, explicit) => seen.push([column, escapeNorm, explicit]));
    const expected: [number, number, boolean][] = [];
    escapes.forEach((escape, i) => {
      if (escape.kind !== 'none') expected.push([Math.floor(i / perColumn), norm(muOf(m, escape, i)), escape.kind === 'huge']);
    });
    expect(seen).toEqual(expected);
  });

  it('e8PointOverflowOnHost: the first block beyond int8 (the second explicit μ, not the first), else null', () => {
    let first: { column: number; block: number; coordinate: number } | null = null;
    for (let i = 0; i < escapes.length && first === null; i++) {
      const beyond = pointOf(m, escapes[i] as Escape, i).find((value) => Math.abs(value) > E8_POINT_LIMIT);
      if (beyond !== undefined) first = { column: Math.floor(i / perColumn), block: i % perColumn, coordinate: beyond };
    }
    expect(first).toMatchObject({ column: 1, block: 3 });
    expect(e8PointOverflowOnHost(m)).toEqual(first);
    expect(e8PointOverflowOnHost(m, 'w')).toEqual({ ...first, matrix: 'w' });
    expect(e8PointOverflowOnHost(matrixOf(plan(false)))).toBeNull();
  });

  it('e8PointOverflowOnHost at q = 64, where the bound clears no block: an unescaped leader at −128 is found', () => {
    // Only at q = 64 (the largest q) can a coset leader itself leave int8: 2·64·1 > 127. Code 32's
    // leader is (−128, 0, …, 0); planted in an unescaped block of a matrix that otherwise fits.
    const scheme = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 64, beta: 0.06 } as const;
    const wide = quantize(gaussianMatrix(64, 3, 1), { scheme, nonce: 1 }) as UniversalLatticeMatrix;
    expect(Array.from(universalCodec('E8', 64, 0.06).code.decode(32))).toEqual([-128, 0, 0, 0, 0, 0, 0, 0]);
    expect(e8PointOverflowOnHost(wide)).toBeNull();
    const index = wide.blocksPerColumn + [...wide.escapes.subarray(wide.blocksPerColumn)].indexOf(0);
    const codes = wide.codes.slice();
    const codesHigh = (wide.codesHigh as Uint16Array).slice();
    codes[index] = 32;
    codesHigh[index] = 0;
    expect(e8PointOverflowOnHost({ ...wide, codes, codesHigh })).toEqual({ column: Math.floor(index / wide.blocksPerColumn), block: index % wide.blocksPerColumn, coordinate: -128 });
  });

  it('e8PointOverflowOnHost agrees with e8PointForm on 240 quantized matrices with spikes: same verdict, same first block', () => {
    // docs/RELIABILITY.md cites this count. The host check decodes only the blocks its bound cannot
    // clear; e8PointForm decodes every block, so it is the twin. Unrotated columns with a spike of
    // 2^0 … 2^8 times a quarter of √n on Gaussian entries: some fit int8, some do not.
    const schemes = ['e8-2bit', 'e8-3bit', 'e8-4bit', 'e8-5bit', 'e8-q16'] as const;
    let refused = 0;
    for (let seed = 0; seed < 240; seed++) {
      const n = [64, 128, 256][seed % 3] as number;
      const a = gaussianMatrix(n, 4, seed);
      for (let j = 1; j < 4; j++) a.data[j * n + ((seed * 7 + j) % n)] = Math.fround((j % 2 ? 1 : -1) * 2 ** ((seed + j) % 9) * (Math.sqrt(n) / 4));
      const q = quantize(a, { scheme: schemes[seed % schemes.length] as (typeof schemes)[number], nonce: BigInt(seed), rotate: false }) as UniversalLatticeMatrix;
      let formRefusal: string | null = null;
      try {
        e8PointForm(q);
      } catch (error) {
        expect(error).toBeInstanceOf(LatticeMatmulError);
        formRefusal = (error as Error).message;
      }
      const host = e8PointOverflowOnHost(q);
      if (formRefusal === null) expect(host, `seed ${seed}`).toBeNull();
      else {
        refused++;
        expect(formRefusal, `seed ${seed}`).toContain(`block ${host?.block ?? 'none'} of column ${host?.column ?? 'none'} has a lattice point coordinate ${host?.coordinate ?? 'none'},`);
      }
    }
    console.log(`e8PointOverflowOnHost = e8PointForm: 240 matrices, ${refused} refused by both`);
    // Both verdicts must occur, or the agreement says nothing.
    expect(refused).toBeGreaterThan(20);
    expect(refused).toBeLessThan(120);
  });
});

describe('UniversalEscapeWalker on D3: its own tables and measures (after the E8 walks above)', () => {
  // d3-q6 codes with a hand-set escape plan: ranks 2 and 12 (the last D3 root), the first non-root
  // row, the table's last row, and an explicit μ. Each μ is derived from D3's tables here, so measures
  // or rows taken from E8's (or a row index not scaled by d = 3) show as a wrong μ, norm or bound.
  const d3 = universalCodec('D3', 6, 0.45);
  const d3Candidates = d3.spec.escapes;
  const d3Base = quantize(gaussianMatrix(24, 3, 6), { scheme: 'd3-q6', seed: 2, nonce: 7n }) as UniversalLatticeMatrix;
  const plan: Record<number, Escape> = {
    1: { kind: 'rank', rank: 2 },
    3: { kind: 'rank', rank: d3Candidates.rootCount },
    4: { kind: 'long', row: d3Candidates.rootCount },
    9: { kind: 'huge', mu: [4, -2, 0] },
    17: { kind: 'long', row: d3Candidates.extendedCount - 1 },
  };
  const symbols = new Uint8Array(d3Base.cols * d3Base.blocksPerColumn);
  const longs: number[] = [];
  for (const [index, escape] of Object.entries(plan)) {
    symbols[Number(index)] = escape.kind === 'rank' ? escape.rank : LONG_ESCAPE;
    if (escape.kind === 'long') longs.push(escape.row);
    if (escape.kind === 'huge') longs.push(HUGE_ESCAPE);
  }
  const m: UniversalLatticeMatrix = { ...d3Base, escapes: symbols, longEscapes: Uint16Array.from(longs), hugeEscapes: Int32Array.from([4, -2, 0]) };
  const rows = (table: Int32Array, row: number): number[] => Array.from(table.subarray(3 * row, 3 * row + 3));
  const rootLargest = Math.max(...Array.from(d3Candidates.roots, Math.abs));

  it('every block: μ = (λ − L)/q from D3’s roots, table or the explicit stream; ‖μ‖/s, max|μ_v| and forEachEscapedBlock agree', () => {
    expect(d3Base.blocksPerColumn).toBe(8);
    const reader = new UniversalPointReader(m);
    const walker = reader.blocks;
    const seen: [number, number, boolean][] = [];
    while (walker.next()) {
      const leader = new Int32Array(3);
      d3.code.decode(m.codes[walker.index] as number, leader);
      const mu = Array.from(reader.point(), (value, v) => (value - (leader[v] as number)) / d3.q);
      const escape = plan[walker.index] ?? { kind: 'none' };
      const expected =
        escape.kind === 'none' ? [0, 0, 0]
        : escape.kind === 'rank' ? rows(d3Candidates.roots, rootOfRank(d3Candidates, leader, escape.rank))
        : escape.kind === 'long' ? rows(d3Candidates.extended, escape.row)
        : [...escape.mu];
      expect(mu, `block ${walker.index}`).toEqual(expected);
      expect(walker.escapeNorm()).toBe(Math.sqrt(mu.reduce((sum, v) => sum + v * v, 0)) / d3.spec.pointScale);
      expect(walker.escapeLargest()).toBe(escape.kind === 'rank' ? rootLargest : Math.max(...mu.map(Math.abs)));
      if (escape.kind !== 'none') seen.push([walker.column, walker.escapeNorm(), escape.kind === 'huge']);
    }
    const bounds: [number, number, boolean][] = [];
    forEachEscapedBlock('D3', m, (column, escapeNorm, explicit) => bounds.push([column, escapeNorm, explicit]));
    expect(bounds).toEqual(seen);
    expect(seen.map(([column]) => column)).toEqual([0, 0, 0, 1, 2]);
  });

  it('a rank past D3’s 12 roots (13…15, which E8 has) is refused by every walk, not decoded as a stale root', () => {
    for (const rank of [d3Candidates.rootCount + 1, 15]) {
      const broken: UniversalLatticeMatrix = { ...m, escapes: m.escapes.map((symbol, i) => (i === 1 ? rank : symbol)) };
      const message = new RegExp(`^block 1 of column 0 has escape symbol ${rank}: not 0, a rank 1…12 or 16$`);
      const walks: (() => unknown)[] = [
        () => {
          const walker = new UniversalEscapeWalker('D3', broken);
          while (walker.next());
        },
        () => {
          const walker = new UniversalEscapeWalker('D3', broken);
          while (walker.nextEscaped());
        },
        () => forEachUniversalPoint(broken, () => undefined),
        () => decodeRotated(broken),
        () => forEachEscapedBlock('D3', broken, () => undefined),
      ];
      for (const walk of walks) expect(walk).toThrow(message);
    }
  });
});

describe('UniversalEscapeWalker: streams that disagree with the symbols are refused by every walk', () => {
  const sound = matrixOf(plan(false));
  const walks: [string, (m: UniversalLatticeMatrix) => unknown][] = [
    ['next()', (m) => {
      const walker = new UniversalEscapeWalker('E8', m);
      while (walker.next());
    }],
    ['nextEscaped()', (m) => {
      const walker = new UniversalEscapeWalker('E8', m);
      while (walker.nextEscaped());
    }],
    ['forEachUniversalPoint', (m) => forEachUniversalPoint(m, () => undefined)],
    ['decodeRotated', (m) => decodeRotated(m)],
    ['forEachEscapedBlock', (m) => forEachEscapedBlock('E8', m, () => undefined)],
    ['e8PointOverflowOnHost', (m) => e8PointOverflowOnHost(m)],
  ];
  const broken: [string, UniversalLatticeMatrix, RegExp][] = [
    ['one long escape missing', { ...sound, longEscapes: sound.longEscapes.slice(0, -1) }, /^the universal matrix has fewer long escapes than its escape symbols announce$/],
    ['one explicit coordinate missing', { ...sound, hugeEscapes: sound.hugeEscapes.slice(0, -1) }, /^the universal matrix has fewer explicit escapes than its long escapes announce$/],
    [
      'an explicit escape announced where the stream has none left',
      { ...sound, longEscapes: Uint16Array.from(sound.longEscapes, (index, k) => (k === 0 ? HUGE_ESCAPE : index)) },
      /^the universal matrix has fewer explicit escapes than its long escapes announce$/,
    ],
    ['a symbol past LONG_ESCAPE', { ...sound, escapes: sound.escapes.map((symbol, i) => (i === perColumn + 5 ? LONG_ESCAPE + 1 : symbol)) }, /^block 5 of column 1 has escape symbol 17: not 0, a rank 1…15 or 16$/],
    [
      'a long index past the table',
      { ...sound, longEscapes: Uint16Array.from(sound.longEscapes, (index, k) => (k === 0 ? candidates.extendedCount : index)) },
      new RegExp(`^long escape index ${candidates.extendedCount} is outside the E8 table \\(${candidates.extendedCount} entries\\)$`),
    ],
  ];

  it('the sound matrix walks clean', () => {
    for (const [, walk] of walks) expect(() => walk(sound)).not.toThrow();
  });

  for (const [what, m, message] of broken) {
    it(`${what}: refused by ${walks.map(([name]) => name).join(', ')}`, () => {
      for (const [, walk] of walks) {
        expect(() => walk(m)).toThrow(LatticeMatmulError);
        expect(() => walk(m)).toThrow(message);
      }
    });
  }
});
