import { describe, expect, it } from 'vitest';
import { mix32, Rng } from '../../src/rotation/random.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { DITHER_GRID, universalCodec } from '../../src/quantize/latticeSpec.js';
import {
  blockMirror,
  LONG_ESCAPE,
  randomizedRound,
  UniversalBlockDecoder,
  UniversalBlockEncoder,
  type UniversalBlock,
} from '../../src/quantize/universalCode.js';

/*
 * The universal encoder's per-coordinate and per-block random decisions, against the formulas of the
 * file comment of src/quantize/universalCode.ts (which the WGSL encoder follows bit for bit):
 *   X = floor(y) + (f ≥ 1 − w ? 1 : 0), f = y − floor(y), w = (mix32(roundKey ^ i) >>> 8)·2^−24;
 *   the mirror bit of block k (d coordinates) is bit 0 of mix32(roundKey ^ k·d), the hash whose bits
 *   8–31 are the rounding threshold of the block's first coordinate.
 */

/** The threshold w of coordinate i: a multiple of 2^−24 in [0, 1). */
const threshold = (key: number, i: number): number => (mix32((key ^ i) >>> 0) >>> 8) / 2 ** 24;

describe('randomizedRound', () => {
  it('rounds up exactly when the fraction reaches 1 − w (the boundary included), down one step of 2^−24 below', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 500; trial++) {
      const key = rng.nextU32();
      const i = rng.nextInt(1 << 20);
      const w = threshold(key, i);
      if (w === 0) continue; // 1 − w = 1: f ≥ 1 never holds, so always down (a 2^−24 chance per trial: no boundary to test)
      const base = rng.nextInt(200) - 100;
      // y = base + (1 − w), exact (a 24-bit fraction on a small integer): f = 1 − w, so up.
      expect(randomizedRound(base + (1 - w), key, i)).toBe(base + 1);
      // One step of 2^−24 below the boundary: down.
      expect(randomizedRound(base + (1 - w) - 2 ** -24, key, i)).toBe(base);
      // Integers stay: f = 0 < 1 − w.
      expect(randomizedRound(base, key, i)).toBe(base);
    }
  });

  it('is unbiased: over 2^16 coordinates of one key, the mean of X − y is 0 within 5 standard errors', () => {
    // For a fixed y with fraction f, X − y is 1 − f with probability f and −f otherwise (variance f(1 − f)).
    const rng = new Rng(9);
    const key = rng.nextU32();
    for (const f of [0.125, 0.5, 0.8125]) {
      const count = 1 << 16;
      let sum = 0;
      for (let i = 0; i < count; i++) sum += randomizedRound(7 + f, key, i) - (7 + f);
      const standardError = Math.sqrt((f * (1 - f)) / count);
      expect(Math.abs(sum / count)).toBeLessThan(5 * standardError);
    }
  });
});

describe('blockMirror', () => {
  it.each([3, 8])('d = %i: bit 0 of the rounding hash of the block’s first coordinate k·d', (d) => {
    const rng = new Rng(d);
    for (let trial = 0; trial < 2000; trial++) {
      const key = rng.nextU32();
      const block = rng.nextInt(1 << 16);
      expect(blockMirror(key, block, d)).toBe((mix32((key ^ (block * d)) >>> 0) & 1) === 1);
    }
  });

  it('is a fair bit: over 2^14 blocks of one key, the share of mirrored blocks is ½ within 5 standard errors', () => {
    const count = 1 << 14;
    let mirrored = 0;
    for (let block = 0; block < count; block++) if (blockMirror(0x2545f491, block, 8)) mirrored++;
    expect(Math.abs(mirrored / count - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / count));
  });
});

describe('UniversalBlockEncoder: the escape symbol of λ = L + q·μ', () => {
  // Without dither and mirror, the numerators X = λ·DITHER_GRID quantize to λ itself; its code is L's
  // (λ − L ∈ qΛ). μ's symbol: its rank among the roots ordered by ⟨L, m⟩ (ties by table order) when a
  // root of rank ≤ 15, else LONG_ESCAPE with its extended-table index, or HUGE_ESCAPE outside the table.
  it.each([
    ['E8', 16],
    ['E8', 3],
    ['D3', 6],
  ] as const)('%s, q = %i: ranks 1, 2 and the last (15, or D3\'s 12), a second-shell μ, a μ outside the table; the decoder rebuilds λ', (lattice, q) => {
    const codec = universalCodec(lattice, q, 0.25);
    const { escapes: c, pointScale: s, dimension: d } = codec.spec;
    const lastRank = Math.min(15, c.rootCount);
    const encoder = new UniversalBlockEncoder(codec);
    const decoder = new UniversalBlockDecoder(codec);
    const zero = new Int32Array(d);
    const out: UniversalBlock = { code: 0, symbol: 0, longIndex: 0 };
    const rng = new Rng(q);
    const roots = Array.from({ length: c.rootCount }, (_, r) => Array.from(c.roots.subarray(r * d, (r + 1) * d)));
    for (let trial = 0; trial < 40; trial++) {
      const leader = codec.code.decode(Math.floor((rng.nextU32() / 2 ** 32) * codec.code.size));
      const key = (m: readonly number[]): number => m.reduce((sum, v, i) => sum + v * (leader[i] as number), 0);
      const order = roots.map((m, r) => ({ r, k: key(m) })).sort((a, b) => a.k - b.k || a.r - b.r);
      const secondShell = Array.from(c.extended.subarray(c.rootCount * d, (c.rootCount + 1) * d));
      const cases: [number[], number, number][] = [
        [roots[(order[0] as { r: number }).r] as number[], 1, 0],
        [roots[(order[1] as { r: number }).r] as number[], 2, 0],
        [roots[(order[lastRank - 1] as { r: number }).r] as number[], lastRank, 0],
        [secondShell, LONG_ESCAPE, c.rootCount],
        [(roots[0] as number[]).map((v) => 3 * v), LONG_ESCAPE, HUGE_ESCAPE],
      ];
      for (const [mu, symbol, longIndex] of cases) {
        const point = mu.map((v, i) => (leader[i] as number) + q * v);
        encoder.encode(point.map((v) => (v * DITHER_GRID) / s), 0, zero, false, out);
        expect([out.symbol, out.longIndex], `μ = ${mu}, L = ${leader}`).toEqual([symbol, longIndex]);
        expect(out.code).toBe(codec.code.encode(leader));
        if (longIndex === HUGE_ESCAPE) expect([...encoder.mu]).toEqual(mu);
        const decoded = new Int32Array(d);
        decoder.decode(out.code, out.symbol, out.longIndex, longIndex === HUGE_ESCAPE ? mu : null, decoded);
        expect([...decoded]).toEqual(point);
      }
    }
  });
});

describe('universalCodec', () => {
  it.each([2, 65, 2.5, Number.NaN])('refuses q = %s (3 ≤ q ≤ 64: q = 2 leaves half the roots outside their coset, 65^8 > 2^48)', (q) => {
    expect(() => universalCodec('E8', q, 0.25)).toThrow(/q must be an integer in \[3, 64\]/);
  });

  it.each([0, -0.5, Number.NaN, Infinity])('refuses beta = %s', (beta) => {
    expect(() => universalCodec('D3', 6, beta)).toThrow(/beta must be a positive number/);
  });

  it('accepts q = 3 and q = 64: q^d codes of ⌈d·log2 q⌉ bits', () => {
    expect([universalCodec('E8', 3, 1).code.size, universalCodec('E8', 3, 1).codeBits]).toEqual([3 ** 8, 13]);
    expect([universalCodec('E8', 64, 0.1).code.size, universalCodec('E8', 64, 0.1).codeBits]).toEqual([2 ** 48, 48]);
  });
});
