import { describe, expect, it } from 'vitest';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { roundHalfEven, type Lattice } from '../../src/lattices/lattice.js';
import { nearestDnRational, roundRational } from '../../src/lattices/rationalRounding.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import { Rng } from '../../src/rotation/random.js';

/*
 * Nearest-point routines against brute force. Every candidate lattice point inside a box around the
 * input is enumerated (depth-first, pruned only by "partial distance already exceeds the best"), its
 * membership decided by the lattice's definition written out here, and the least distance kept.
 * Points are integer vectors V in point coordinates (λ = V / s, s = pointScale). The box reaches
 * BOX_RADIUS = 1.5 beyond the input in every coordinate, so any point outside it is farther than 1.5;
 * each search asserts that its minimum is at most 1.5 (the covering radii of Z^8, D3 and E8 are
 * √2, 1 and 1), which makes the box search the true minimum over the whole lattice.
 */
const BOX_RADIUS = 1.5;

interface Family {
  readonly lattice: Lattice;
  /** Membership by the definition, on point coordinates. */
  readonly member: (V: readonly number[]) => boolean;
}

const isEven = (v: number): boolean => ((v % 2) + 2) % 2 === 0;
const sum = (V: readonly number[]): number => V.reduce((acc, v) => acc + v, 0);

const FAMILIES: Record<'Z1' | 'Z4' | 'Z8' | 'D3' | 'E8', Family> = {
  Z1: { lattice: zLattice(1), member: () => true },
  Z4: { lattice: zLattice(4), member: () => true },
  Z8: { lattice: zLattice(8), member: () => true },
  // D3 = {x ∈ Z³ : Σx even}.
  D3: { lattice: D3, member: (V) => isEven(sum(V)) },
  // E8 = D8 ∪ (D8 + ½): V = 2λ is all even or all odd, and Σλ = ΣV/2 is even.
  E8: { lattice: E8, member: (V) => V.every((v) => isEven(v) === isEven(V[0] as number)) && ((sum(V) % 4) + 4) % 4 === 0 },
};

interface SearchResult {
  /** Least cost over lattice points in the box. */
  readonly best: number;
  /** How many points attain it (exact comparison of costs). */
  readonly ties: number;
  /** One point attaining it. */
  readonly argmin: readonly number[];
}

/**
 * Depth-first search over integer vectors V with V_i ∈ ranges[i] (and, for E8, every V_i of one
 * parity: the two cosets 2D8 and 2D8 + 1 are searched one after the other), minimizing
 * Σ cost(i, V_i) over the vectors that `member` accepts. A branch is cut only when its partial cost
 * plus the least possible cost of the remaining coordinates exceeds the best found, so every point
 * at the minimum is still counted.
 */
function bruteForce(family: Family, ranges: readonly (readonly [number, number])[], cost: (i: number, v: number) => number): SearchResult {
  const d = ranges.length;
  const parities = family.lattice.name === 'E8' ? [0, 1] : [null];
  let best = Infinity;
  let ties = 0;
  let argmin: number[] = [];
  for (const parity of parities) {
    // Closest values first, so that a good bound is found early.
    const candidates = ranges.map(([lo, hi], i) => {
      const values: number[] = [];
      for (let v = lo; v <= hi; v++) if (parity === null || isEven(v) === (parity === 0)) values.push(v);
      return values.sort((u, v) => cost(i, u) - cost(i, v));
    });
    // remaining[i] = least possible cost of coordinates i … d−1.
    const remaining = new Array<number>(d + 1).fill(0);
    for (let i = d - 1; i >= 0; i--) remaining[i] = (remaining[i + 1] as number) + cost(i, (candidates[i] as number[])[0] as number);
    const chosen = new Array<number>(d).fill(0);
    const visit = (i: number, partial: number): void => {
      if (partial + (remaining[i] as number) > best) return;
      if (i === d) {
        if (!family.member(chosen)) return;
        if (partial < best) {
          best = partial;
          ties = 1;
          argmin = [...chosen];
        } else {
          ties++;
        }
        return;
      }
      for (const v of candidates[i] as number[]) {
        chosen[i] = v;
        visit(i + 1, partial + cost(i, v));
      }
    };
    visit(0, 0);
  }
  return { best, ties, argmin };
}

/** Brute-force nearest point to a real vector x (λ units); cost is the squared distance in λ units. */
function bruteForceReal(family: Family, x: readonly number[]): SearchResult {
  const s = family.lattice.pointScale;
  const ranges = x.map((xi) => [Math.floor(s * (xi - BOX_RADIUS)), Math.ceil(s * (xi + BOX_RADIUS))] as const);
  const result = bruteForce(family, ranges, (i, v) => ((x[i] as number) - v / s) ** 2);
  expect(result.best).toBeLessThanOrEqual(BOX_RADIUS ** 2);
  return result;
}

/**
 * Brute-force nearest point to the rational vector p / den (λ units). The cost of V is the integer
 * Σ (s·p_i − den·V_i)², the squared distance times (s·den)², so comparisons are exact.
 */
function bruteForceRational(family: Family, p: readonly number[], den: number): SearchResult {
  const s = family.lattice.pointScale;
  const ranges = p.map((pi) => [Math.floor((s * pi) / den - s * BOX_RADIUS) - 1, Math.ceil((s * pi) / den + s * BOX_RADIUS) + 1] as const);
  const result = bruteForce(family, ranges, (i, v) => (s * (p[i] as number) - den * v) ** 2);
  expect(result.best).toBeLessThanOrEqual((s * den * BOX_RADIUS) ** 2);
  return result;
}

function realDistance(x: readonly number[], point: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) d += ((x[i] as number) - (point[i] as number)) ** 2;
  return d;
}

/** Checks `nearest(x)` against brute force: same distance, a lattice point, and the argmin when unique. */
function checkNearestReal(family: Family, x: readonly number[]): void {
  const { lattice } = family;
  const point = lattice.nearest(x);
  const s = lattice.pointScale;
  const asPointCoordinates = Array.from(point, (v) => v * s);
  expect(lattice.contains(asPointCoordinates), `nearest(${x}) = ${[...point]} is not in ${lattice.name}`).toBe(true);
  expect(family.member(asPointCoordinates)).toBe(true);
  const brute = bruteForceReal(family, x);
  const distance = realDistance(x, point);
  expect(Math.abs(distance - brute.best), `${lattice.name}.nearest(${x}) = ${[...point]} at ${distance}, brute force ${brute.best}`).toBeLessThanOrEqual(1e-12);
}

/**
 * Checks `nearestScaled(p, den)` and the universal encoder's `nearestDithered(p, den)` (which differ
 * only in how they break ties) against brute force with exact integer distances.
 */
function checkNearestScaled(family: Family, p: readonly number[], den: number): void {
  const { lattice } = family;
  const s = lattice.pointScale;
  const brute = bruteForceRational(family, p, den);
  for (const method of ['nearestScaled', 'nearestDithered'] as const) {
    const out = lattice[method](p, den, new Int32Array(lattice.dimension));
    const P = [...out];
    expect(lattice.contains(P), `${method}(${p}, ${den}) = ${P} is not in ${lattice.name}`).toBe(true);
    expect(family.member(P)).toBe(true);
    let cost = 0;
    for (let i = 0; i < P.length; i++) cost += (s * (p[i] as number) - den * (P[i] as number)) ** 2;
    expect(cost, `${lattice.name}.${method}(${p}, ${den}) = ${P}; brute force finds ${brute.argmin}`).toBe(brute.best);
    if (brute.ties === 1) expect(P).toEqual(brute.argmin);
  }
}

function randomVector(rng: Rng, d: number, spread: number): number[] {
  return Array.from({ length: d }, () => (2 * rng.nextFloat() - 1) * spread);
}

/** Every vector of `d` integers in [lo, hi], in lexicographic order. */
function* integerBox(d: number, lo: number, hi: number): Generator<number[]> {
  const v = new Array<number>(d).fill(lo);
  for (;;) {
    yield [...v];
    let i = d - 1;
    while (i >= 0 && v[i] === hi) v[i--] = lo;
    if (i < 0) return;
    v[i] = (v[i] as number) + 1;
  }
}

/** A random E8 point in λ units: a D8 point, or a D8 point plus ½·1. */
function randomE8Point(rng: Rng): number[] {
  const v = Array.from({ length: 8 }, () => rng.nextInt(7) - 3);
  if (!isEven(sum(v))) v[0] = (v[0] as number) + 1;
  return rng.nextInt(2) === 0 ? v : v.map((x) => x + 0.5);
}

describe('rounding primitives', () => {
  it('roundRational: nearest integer to p/den with ties upward (error p − den·r in [−den/2, den/2))', () => {
    for (let den = 1; den <= 12; den++) {
      for (let p = -60; p <= 60; p++) {
        const r = roundRational(p, den);
        expect(Number.isInteger(r)).toBe(true);
        const error = p - den * r;
        expect(2 * error).toBeGreaterThanOrEqual(-den);
        expect(2 * error).toBeLessThan(den);
      }
    }
    expect(roundRational(1, 2)).toBe(1);
    expect(roundRational(-1, 2)).toBe(0);
    expect(roundRational(-3, 2)).toBe(-1);
  });

  it('roundHalfEven: nearest integer, ties to the even neighbour', () => {
    for (let k = -40; k <= 40; k++) {
      const x = k / 4;
      const r = roundHalfEven(x);
      expect(Math.abs(x - r)).toBeLessThanOrEqual(0.5);
      if (Math.abs(x - r) === 0.5) expect(isEven(r)).toBe(true);
    }
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, -2]);
  });

  it('nearestDnRational tie rules (which of several nearest points the format picks): the first worst coordinate, zero error re-rounded upward', () => {
    // (½, ½, ½): every coordinate rounds up to 1 with error −½ (sum 3, odd); the worst error is shared by
    // all three, so the first index goes back down: (0, 1, 1), not (1, 1, 0) or (1, 0, 1).
    const tied = new Int32Array(3);
    nearestDnRational([1, 1, 1], 2, tied);
    expect([...tied]).toEqual([0, 1, 1]);
    // (−½, −½, −½) rounds up to 0 with error −½ each (sum 0, even): no fix.
    nearestDnRational([-1, -1, -1], 2, tied);
    expect([...tied]).toEqual([0, 0, 0]);
    // (1, 0, 0) is an integer vector of odd sum: every error is 0, the first index moves upward.
    const exact = new Int32Array(3);
    nearestDnRational([1, 0, 0], 1, exact);
    expect([...exact]).toEqual([2, 0, 0]);
    // (0.25, 0.5, 0.5) rounds to (0, 1, 1) (sum 2, even): no fix, whatever the tie.
    nearestDnRational([1, 2, 2], 4, exact);
    expect([...exact]).toEqual([0, 1, 1]);
    // (½, ½, ½, 0) over D4 at den 4: (1, 1, 1, 0) has sum 3 and errors (−2, −2, −2, 0)/4: the first
    // coordinate goes back down, the exact zero is not the worst.
    const d4 = new Int32Array(4);
    nearestDnRational([2, 2, 2, 0], 4, d4);
    expect([...d4]).toEqual([0, 1, 1, 0]);
  });

  it.each([2, 4, 5])('nearestDnRational agrees with brute force over D%i (sum-even integer vectors)', (n) => {
    const family: Family = { lattice: { ...D3, dimension: n, name: `D${n}` }, member: (V) => isEven(sum(V)) };
    const rng = new Rng(40 + n);
    for (let trial = 0; trial < 400; trial++) {
      const den = 1 + rng.nextInt(8);
      const p = Array.from({ length: n }, () => rng.nextInt(8 * den + 1) - 4 * den);
      const out = new Int32Array(n);
      nearestDnRational(p, den, out);
      expect(family.member([...out])).toBe(true);
      const brute = bruteForceRational(family, p, den);
      let cost = 0;
      for (let i = 0; i < n; i++) cost += ((p[i] as number) - den * (out[i] as number)) ** 2;
      expect(cost).toBe(brute.best);
    }
  });
});

describe.each(['Z1', 'Z4', 'Z8', 'D3', 'E8'] as const)('%s nearest point equals brute force', (name) => {
  const family = FAMILIES[name];
  const d = family.lattice.dimension;

  it('nearest(): random real inputs, small and large', () => {
    const rng = new Rng(1000 + d);
    for (let trial = 0; trial < 300; trial++) checkNearestReal(family, randomVector(rng, d, trial % 2 === 0 ? 3 : 200));
  });

  it('nearestScaled(): random rational inputs, exact distances', () => {
    const rng = new Rng(2000 + d);
    for (let trial = 0; trial < 300; trial++) {
      const den = 1 + rng.nextInt(40);
      const p = Array.from({ length: d }, () => rng.nextInt(20 * den + 1) - 10 * den);
      checkNearestScaled(family, p, den);
    }
  });

  it('tie-heavy inputs: multiples of 1/2, 1/3, 1/4, 1/6 (nearest and nearestScaled)', () => {
    const rng = new Rng(3000 + d);
    for (const den of [2, 3, 4, 6]) {
      if (d <= 3) {
        // Every multiple of 1/den in [−1, 1]^d: all tie patterns up to translation by 2Z^d ⊂ Λ.
        for (const k of integerBox(d, -den, den)) {
          checkNearestScaled(family, k, den);
          checkNearestReal(family, k.map((v) => v / den));
        }
      } else {
        for (let trial = 0; trial < 300; trial++) {
          const k = Array.from({ length: d }, () => rng.nextInt(4 * den + 1) - 2 * den);
          checkNearestScaled(family, k, den);
          checkNearestReal(family, k.map((v) => v / den));
        }
      }
    }
  });
});

describe('D3 special points', () => {
  it.each([
    [[-1, 1, 2], 3], // (−1/3, 1/3, 2/3): equidistant from several points
    [[1, 1, 1], 2], // (½, ½, ½): four nearest points
    [[1, 1, 1], 3],
    [[-1, -1, -1], 2],
    [[3, 0, 0], 6],
    [[1, 0, 0], 1], // a non-lattice integer point: six nearest points at distance 1
  ])('nearestScaled(%j, %i) is at the brute-force distance', (p, den) => {
    checkNearestScaled(FAMILIES.D3, p, den);
    checkNearestReal(FAMILIES.D3, p.map((v) => v / den));
  });

  it('nearest([0.9, 0.2, 0]) re-rounds the worst coordinate: (1, 1, 0) (the unique nearest point)', () => {
    expect([...D3.nearest([0.9, 0.2, 0])]).toEqual([1, 1, 0]);
    expect(bruteForceReal(FAMILIES.D3, [0.9, 0.2, 0]).ties).toBe(1);
  });
});

describe('E8 ties between the D8 and D8 + ½ candidates', () => {
  it('(¼, …, ¼) is ½ from both 0 and (½, …, ½): the D8 candidate (the origin) wins', () => {
    const x = new Array<number>(8).fill(0.25);
    expect(realDistance(x, new Array<number>(8).fill(0))).toBe(0.5);
    expect(realDistance(x, new Array<number>(8).fill(0.5))).toBe(0.5);
    expect(bruteForceReal(FAMILIES.E8, x).best).toBe(0.5);
    expect([...E8.nearest(x)]).toEqual(new Array<number>(8).fill(0));
    expect([...E8.nearestScaled(new Array<number>(8).fill(1), 4, new Int32Array(8))]).toEqual(new Array<number>(8).fill(0));
  });

  it('midpoints of a D8 point and a D8 + ½ point (equidistant from both) and of random E8 pairs', () => {
    const rng = new Rng(77);
    for (let trial = 0; trial < 300; trial++) {
      let a = randomE8Point(rng);
      let b = randomE8Point(rng);
      if (trial % 2 === 0) {
        // Force one of each coset.
        if (!Number.isInteger(a[0])) a = a.map((v) => v - 0.5);
        if (Number.isInteger(b[0])) b = b.map((v) => v + 0.5);
      }
      // Midpoint in units of 1/4: p / 4 with p = 2(a + b).
      const p = a.map((v, i) => 2 * (v + (b[i] as number)));
      checkNearestScaled(FAMILIES.E8, p, 4);
      checkNearestReal(FAMILIES.E8, p.map((v) => v / 4));
    }
  });

  it('rational inputs with the denominators the codes use (2q for q = 2, 4, 16)', () => {
    const rng = new Rng(78);
    for (const den of [4, 8, 32]) {
      for (let trial = 0; trial < 200; trial++) {
        const p = Array.from({ length: 8 }, () => rng.nextInt(4 * den + 1) - 2 * den);
        checkNearestScaled(FAMILIES.E8, p, den);
      }
    }
  });
});

describe('contains()', () => {
  it('Z^d: integer vectors only', () => {
    const z3 = zLattice(3);
    expect(z3.contains([1, -2, 7])).toBe(true);
    expect(z3.contains([1, 0.5, 7])).toBe(false);
  });

  it('D3: every integer vector in a box, by the parity of its sum', () => {
    for (const v of integerBox(3, -3, 3)) expect(D3.contains(v)).toBe(isEven(sum(v)));
    expect(D3.contains([0.5, 0.5, 1])).toBe(false);
  });

  it('E8 (point coordinates 2λ): lattice points and near misses', () => {
    const yes = [
      [0, 0, 0, 0, 0, 0, 0, 0],
      [2, 2, 0, 0, 0, 0, 0, 0], // λ = e1 + e2
      [2, -2, 0, 0, 0, 0, 0, 0],
      [4, 0, 0, 0, 0, 0, 0, 0], // λ = 2e1
      [1, 1, 1, 1, 1, 1, 1, 1], // λ = ½·1, Σλ = 4
      [-1, -1, 1, 1, 1, 1, 1, 1], // Σλ = 2
      [3, 1, 1, 1, 1, 1, 1, -1], // Σλ = 4
    ];
    const no = [
      [2, 0, 0, 0, 0, 0, 0, 0], // λ = e1: odd sum
      [-1, 1, 1, 1, 1, 1, 1, 1], // Σλ = 3
      [1, 1, 1, 1, 1, 1, 1, 3], // Σλ = 5
      [1, 1, 1, 1, 1, 1, 1, 0], // mixed parity
      [2, 2, 0, 0, 0, 0, 0, 1],
      [0.5, 0, 0, 0, 0, 0, 0, 0.5], // not integers in point coordinates
    ];
    for (const P of yes) expect(E8.contains(P), `${P}`).toBe(true);
    for (const P of no) expect(E8.contains(P), `${P}`).toBe(false);
    const rng = new Rng(5);
    for (let trial = 0; trial < 500; trial++) {
      const P = Array.from({ length: 8 }, () => rng.nextInt(9) - 4);
      expect(E8.contains(P)).toBe(FAMILIES.E8.member(P));
    }
  });
});
