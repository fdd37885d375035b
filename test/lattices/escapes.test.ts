import { describe, expect, it } from 'vitest';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { escapeCandidates, escapeRank, MAX_ESCAPE_RANK, rootOfRank } from '../../src/lattices/escapes.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { Rng } from '../../src/rotation/random.js';

/*
 * The escape candidates and the rank order, against their definitions: the extended table is every
 * lattice point with 0 < ‖P‖² ≤ bound sorted by norm then lexicographically (shell sizes from the
 * theta series: D3 = fcc 12, 6, 24, 12, 24, 8, 48, 6 up to λ-norm² 16; E8 240 and 2160 up to 4); a
 * root's rank given a leader L is one plus the number of roots m' with ⟨L, m'⟩ < ⟨L, m⟩, or equal and
 * earlier in the table (plain dot products here), and rootOfRank inverts it.
 */

const CASES = [
  { lattice: D3, norm2: 16, q: 6, rootCount: 12, extendedCount: 12 + 6 + 24 + 12 + 24 + 8 + 48 + 6 },
  { lattice: E8, norm2: 4 * 4, q: 16, rootCount: 240, extendedCount: 240 + 2160 },
] as const;

const row = (table: Int32Array, r: number, d: number): number[] => Array.from(table.subarray(r * d, (r + 1) * d));
const dot = (a: readonly number[], b: ArrayLike<number>): number => a.reduce((s, v, i) => s + v * (b[i] as number), 0);
const norm2 = (a: readonly number[]): number => dot(a, a);

describe.each(CASES.map((c) => [c.lattice.name, c] as const))('%s escape candidates', (_, { lattice, norm2: bound, q, rootCount, extendedCount }) => {
  const c = escapeCandidates(lattice, bound);
  const d = lattice.dimension;

  it('the extended table: the theta series shells, lattice points, sorted by norm then lexicographically, roots first', () => {
    expect(c.rootCount).toBe(rootCount);
    expect(c.extendedCount).toBe(extendedCount);
    for (let r = 0; r < c.extendedCount; r++) {
      const p = row(c.extended, r, d);
      expect(lattice.contains(p)).toBe(true);
      expect(norm2(p)).toBeLessThanOrEqual(bound);
      if (r < rootCount) expect(p).toEqual(row(c.roots, r, d));
      if (r === 0) continue;
      const before = row(c.extended, r - 1, d);
      const k = before.findIndex((v, i) => v !== p[i]);
      // Strictly after the previous row: a smaller norm, or the same norm and a smaller first differing coordinate.
      expect(norm2(before) < norm2(p) || (norm2(before) === norm2(p) && k >= 0 && (before[k] as number) < (p[k] as number)), `row ${r}`).toBe(true);
    }
  });

  it('indexOf finds every row, and no point outside the table (coordinates past the search radius included)', () => {
    for (let r = 0; r < c.extendedCount; r++) expect(c.indexOf(row(c.extended, r, d))).toBe(r);
    const radius = Math.floor(Math.sqrt(bound));
    // Lattice points just outside: one coordinate at ±(radius + 1) or ±(radius + 2), the others small.
    const rng = new Rng(7 + d);
    let tried = 0;
    while (tried < 400) {
      const p = Array.from({ length: d }, () => rng.nextInt(5) - 2);
      p[rng.nextInt(d)] = (rng.nextInt(2) === 0 ? -1 : 1) * (radius + 1 + rng.nextInt(2));
      if (!lattice.contains(p)) continue;
      tried++;
      expect(c.indexOf(p), `${p}`).toBe(-1);
    }
  });

  it('escapeRank is the rank by ⟨L, m⟩ ascending, ties by table order, and rootOfRank inverts it', () => {
    const code = new VoronoiCode(lattice, q);
    const rng = new Rng(3 + q);
    const roots = Array.from({ length: c.rootCount }, (_, r) => row(c.roots, r, d));
    for (let trial = 0; trial < 60; trial++) {
      // Leaders of random codes, and the origin (every key 0: the order is the table's).
      const leader = trial === 0 ? new Int32Array(d) : code.decode(Math.floor((rng.nextU32() / 2 ** 32) * code.size));
      const keys = roots.map((m) => dot(m, leader));
      for (let r = 0; r < c.rootCount; r++) {
        let expected = 1;
        for (let s = 0; s < c.rootCount; s++) if ((keys[s] as number) < (keys[r] as number) || (keys[s] === keys[r] && s < r)) expected++;
        const rank = escapeRank(c, leader, r);
        expect(rank, `root ${r}, leader ${leader}`).toBe(expected);
        if (rank <= Math.min(MAX_ESCAPE_RANK, c.rootCount)) expect(rootOfRank(c, leader, rank)).toBe(r);
      }
    }
  });
});

it('with the origin as leader, rank k is the k-th root of the table (every key ties at 0)', () => {
  const c = escapeCandidates(D3 as Lattice, 16);
  const origin = [0, 0, 0];
  for (let k = 1; k <= MAX_ESCAPE_RANK && k <= c.rootCount; k++) expect(rootOfRank(c, origin, k)).toBe(k - 1);
});
