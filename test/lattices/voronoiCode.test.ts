import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import { Rng } from '../../src/rotation/random.js';
import { latticePoint } from './latticeTestSupport.js';

/*
 * Voronoi codes of Λ / qΛ. Expected values come from the definitions: the code of G·u is the base-q
 * number of the digits u mod q; the leader of a coset is a member of it (leader − G·u ∈ qΛ) of least
 * norm, i.e. ‖P‖² ≤ ‖P − q·r‖² for every Voronoi-relevant vector r of Λ (the 12 roots of D3, the
 * 240 roots of E8; for these root lattices the roots are exactly the relevant vectors).
 */

const isEven = (v: number): boolean => ((v % 2) + 2) % 2 === 0;
const norm2 = (v: ArrayLike<number>): number => Array.from(v).reduce((acc, x) => acc + x * x, 0);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
};

/** Every vector of `d` integers in [lo, hi]. */
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

/** The 12 roots ±e_i ± e_j of D3. */
const D3_ROOTS = [...integerBox(3, -1, 1)].filter((v) => norm2(v) === 2);

/**
 * E8 vectors of norm `norm` ≤ 4 (λ units), in point coordinates V = 2λ, from the definition
 * D8 ∪ (D8 + ½): all V_i even (from {0, ±2, ±4}) or all odd (from {±1, ±3}), with ΣV ≡ 0 (mod 4).
 */
function e8Shell(norm: number): number[][] {
  const shell: number[][] = [];
  for (const values of [[-4, -2, 0, 2, 4], [-3, -1, 1, 3]]) {
    for (const digits of integerBox(8, 0, values.length - 1)) {
      const V = digits.map((k) => values[k] as number);
      if (norm2(V) === 4 * norm && V.reduce((a, b) => a + b, 0) % 4 === 0) shell.push(V);
    }
  }
  return shell;
}
const E8_ROOTS = e8Shell(2);

/** The base-q digits of a code index. */
function digitsOf(index: number, q: number, d: number): number[] {
  const digits: number[] = [];
  let rest = index;
  for (let i = 0; i < d; i++) {
    digits.push(rest % q);
    rest = Math.floor(rest / q);
  }
  return digits;
}

/**
 * Checks the leader of `index`: it round-trips, is a lattice point, lies in the coset of G·digits,
 * and has least norm in its coset against every root (‖P‖² ≤ ‖P − qr‖² ⇔ ⟨P, r⟩ ≤ q‖r‖²/2).
 */
function checkLeader(code: VoronoiCode, roots: readonly number[][], index: number): Int32Array {
  const leader = code.decode(index);
  const problem = leaderProblem(code, roots, index, leader);
  if (problem) expect.fail(`code ${index}, leader ${[...leader]}: ${problem}`);
  return leader;
}

/** What is wrong with `leader` as the leader of code `index`, or null (kept free of expect() for speed). */
function leaderProblem(code: VoronoiCode, roots: readonly number[][], index: number, leader: Int32Array): string | null {
  const { lattice, q } = code;
  if (code.encode(leader) !== index) return `encode(decode(c)) = ${code.encode(leader)}`;
  if (!lattice.contains(leader)) return 'not a lattice point';
  const base = latticePoint(lattice, digitsOf(index, q, lattice.dimension));
  const difference = Array.from(leader, (v, i) => v - (base[i] as number));
  if (!difference.every((v) => v % q === 0) || !lattice.contains(difference.map((v) => v / q))) return `not in the coset of ${base}`;
  for (const r of roots) if (2 * dot(leader, r) > q * norm2(r)) return `closer to q·${r} than to the origin`;
  return null;
}

describe('VoronoiCode(D3, 6): exhaustive', () => {
  const code = new VoronoiCode(D3, 6);
  const leaders = Array.from({ length: code.size }, (_, c) => code.decode(c));

  it('has 216 codes of 8 bits', () => {
    expect(code.size).toBe(216);
    expect(code.codeBits).toBe(8);
  });

  it.each([216, -1, 0.5, Number.NaN, Infinity])('refuses the index %d (it decoded to a valid-looking point)', (index) => {
    expect(() => code.decode(index)).toThrow(/VoronoiCode\.decode: index must be an integer in \[0, q\^d = 216\)/);
  });

  it('every code round-trips, is in its coset and is a least-norm member against the roots', () => {
    for (let c = 0; c < code.size; c++) checkLeader(code, D3_ROOTS, c);
  });

  it('exactly 216 distinct leaders, coordinates in [−6, 5]', () => {
    expect(new Set(leaders.map((l) => l.join(','))).size).toBe(216);
    for (const l of leaders) for (const v of l) expect(v >= -6 && v <= 5, `coordinate ${v} of ${[...l]}`).toBe(true);
  });

  it('each leader has the least norm among its coset members λ + 6v, v ∈ D3 ∩ [−2, 2]³', () => {
    const shifts = [...integerBox(3, -2, 2)].filter((v) => isEven(v[0]! + v[1]! + v[2]!));
    for (const leader of leaders) {
      const n = norm2(leader);
      for (const v of shifts) expect(n).toBeLessThanOrEqual(norm2(Array.from(leader, (x, i) => x + 6 * (v[i] as number))));
    }
  });

  it('pairwise inner products of leaders lie in [−30, 36] (int8)', () => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const a of leaders) {
      for (const b of leaders) {
        const p = dot(a, b);
        lo = Math.min(lo, p);
        hi = Math.max(hi, p);
      }
    }
    expect(lo).toBeGreaterThanOrEqual(-30);
    expect(hi).toBeLessThanOrEqual(36);
  });

  it('decode-and-compare (isRepresentable) holds exactly for the 216 leaders among all D3 points in [−9, 9]³', () => {
    const leaderSet = new Set(leaders.map((l) => l.join(',')));
    let representable = 0;
    for (const P of integerBox(3, -9, 9)) {
      if (!D3.contains(P)) continue;
      const expected = leaderSet.has(P.join(','));
      expect(code.isRepresentable(P), `${P}`).toBe(expected);
      if (expected) representable++;
    }
    expect(representable).toBe(216);
  });

  it('encode(G·u) is the base-q number of u mod q, for any integer u', () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 500; trial++) {
      const u = Array.from({ length: 3 }, () => rng.nextInt(61) - 30);
      const expected = u.reduce((acc, ui, i) => acc + (((ui % 6) + 6) % 6) * 6 ** i, 0);
      expect(code.encode(latticePoint(D3, u))).toBe(expected);
    }
  });
});

describe('VoronoiCode(E8, q)', () => {
  it('the root shell built from the definition has 240 vectors and the next shell 2160 (E8 theta series)', () => {
    expect(E8_ROOTS.length).toBe(240);
    expect(e8Shell(4).length).toBe(2160);
  });

  it('q = 2: all 256 codes; leader norms are 0 (×1), 2 (×120), 4 (×135)', () => {
    const code = new VoronoiCode(E8, 2);
    expect(code.size).toBe(256);
    expect(code.codeBits).toBe(8);
    const counts = new Map<number, number>();
    const seen = new Set<string>();
    for (let c = 0; c < 256; c++) {
      const leader = checkLeader(code, E8_ROOTS, c);
      seen.add(leader.join(','));
      const n = norm2(leader) / 4; // λ units
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    expect(seen.size).toBe(256);
    expect([...counts.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0, 1],
      [2, 120],
      [4, 135],
    ]);
  });

  it('q = 2: isRepresentable agrees with "is one of the 256 leaders" on random E8 points', () => {
    const code = new VoronoiCode(E8, 2);
    const leaderSet = new Set(Array.from({ length: 256 }, (_, c) => code.decode(c).join(',')));
    const rng = new Rng(12);
    let hits = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const P = latticePoint(E8, Array.from({ length: 8 }, () => rng.nextInt(3) - 1));
      const expected = leaderSet.has(P.join(','));
      expect(code.isRepresentable(P)).toBe(expected);
      if (expected) hits++;
    }
    expect(hits).toBeGreaterThan(0);
  });

  it('q = 4: all 65,536 codes round-trip to distinct leaders in the Voronoi region', () => {
    const code = new VoronoiCode(E8, 4);
    const seen = new Set<string>();
    for (let c = 0; c < code.size; c++) seen.add(checkLeader(code, E8_ROOTS, c).join(','));
    expect(seen.size).toBe(65536);
  });

  it('q = 16: 4000 random codes round-trip; leaders lie within the covering radius 16', () => {
    const code = new VoronoiCode(E8, 16);
    expect(code.size).toBe(2 ** 32);
    expect(code.codeBits).toBe(32);
    const rng = new Rng(13);
    for (let trial = 0; trial < 4000; trial++) {
      const c = rng.nextU32();
      const leader = checkLeader(code, E8_ROOTS, c);
      // Covering radius of E8 is 1, so ‖λ‖ ≤ 16, ‖2λ‖² ≤ 1024.
      expect(norm2(leader)).toBeLessThanOrEqual(1024);
    }
  });

  it('q = 16: encode(G·u) is the base-q number of u mod q', () => {
    const code = new VoronoiCode(E8, 16);
    const rng = new Rng(14);
    for (let trial = 0; trial < 500; trial++) {
      const u = Array.from({ length: 8 }, () => rng.nextInt(101) - 50);
      const expected = u.reduce((acc, ui, i) => acc + (((ui % 16) + 16) % 16) * 16 ** i, 0);
      expect(code.encode(latticePoint(E8, u))).toBe(expected);
    }
  });
});

describe('VoronoiCode.encode near maxCoordinate', () => {
  // Exact reference in BigInt: the code of P = G·u is Σ (u_i mod q)·q^i, whatever the size of u.
  it.each([
    ['D3', D3, 6],
    ['E8', E8, 16],
    ['E8', E8, 3],
  ] as const)('%s, q = %i: every point encode accepts, up to maxCoordinate, gets the exact code of its coefficients', (_name, lattice, q) => {
    const code = new VoronoiCode(lattice, q);
    const d = lattice.dimension;
    const rng = new Rng(31 + q);
    const Q = BigInt(q);
    for (let trial = 0; trial < 300; trial++) {
      const u0 = Array.from({ length: d }, () => BigInt(rng.nextInt(2001) - 1000));
      const P0 = Array.from({ length: d }, (_, i) => u0.reduce((acc, uj, j) => acc + BigInt(lattice.basis[i * d + j] as number) * uj, 0n));
      const largest = P0.reduce((m, v) => (v < 0n ? (-v > m ? -v : m) : v > m ? v : m), 0n);
      if (largest === 0n) continue;
      // A large multiple of u0 plus small random coefficients (so that P has random low bits, whose
      // products a float64 sum would round), within maxCoordinate: |G·r| ≤ 8·4·1000 = 32,000.
      const scale = (BigInt(code.maxCoordinate) - 32000n) / largest;
      const u = u0.map((v) => v * scale + BigInt(rng.nextInt(2001) - 1000));
      const P = Array.from({ length: d }, (_, i) => u.reduce((acc, uj, j) => acc + BigInt(lattice.basis[i * d + j] as number) * uj, 0n));
      expect(P.every((v) => (v < 0n ? -v : v) <= BigInt(code.maxCoordinate))).toBe(true);
      const expected = u.reduce((acc, ui, i) => acc + (((ui % Q) + Q) % Q) * Q ** BigInt(i), 0n);
      expect(code.encode(P.map(Number))).toBe(Number(expected));
    }
  });
});

describe('VoronoiCode(Z^d, q)', () => {
  it.each([2, 3, 4, 5, 6, 7, 8, 16])('Z1, q = %i: leaders are the integers −⌊q/2⌋ … ⌈q/2⌉ − 1', (q) => {
    const code = new VoronoiCode(zLattice(1), q);
    const leaders = Array.from({ length: q }, (_, c) => (code.decode(c)[0] as number));
    const expected = Array.from({ length: q }, (_, k) => k - Math.floor(q / 2));
    expect([...leaders].sort((a, b) => a - b)).toEqual(expected);
    for (let c = 0; c < q; c++) expect(code.encode([leaders[c] as number])).toBe(c);
    expect(code.codeBits).toBe(Math.ceil(Math.log2(q)));
  });

  it('Z8, q = 16: random codes round-trip with coordinates in [−8, 7]', () => {
    const code = new VoronoiCode(zLattice(8), 16);
    const rng = new Rng(15);
    for (let trial = 0; trial < 3000; trial++) {
      const c = rng.nextU32();
      const leader = code.decode(c);
      expect(code.encode(leader)).toBe(c);
      for (const v of leader) expect(v >= -8 && v <= 7).toBe(true);
      // Each coordinate is the digit u_i re-centred: leader_i ≡ u_i (mod 16).
      const digits = digitsOf(c, 16, 8);
      for (let i = 0; i < 8; i++) expect((((leader[i] as number) - (digits[i] as number)) % 16 + 16) % 16).toBe(0);
    }
  });
});

describe('VoronoiCode errors', () => {
  it.each([1, 0, -3, 2.5, Number.NaN, Infinity])('q = %s is refused', (q) => {
    expect(() => new VoronoiCode(D3, q)).toThrow(LatticeMatmulError);
    expect(() => new VoronoiCode(D3, q)).toThrow(/nesting ratio q must be an integer ≥ 2/);
  });

  // Indices are JavaScript numbers, exact up to 2^53; codes wider than 32 bits are split by the
  // packed layouts (the universal E8 codes with q > 16 need them).
  it('q^d above 2^53 is refused (E8 q = 99, D3 q = 208064); below it is accepted (E8 q = 98, D3 q = 208063)', () => {
    expect(99n ** 8n).toBeGreaterThan(2n ** 53n);
    expect(98n ** 8n).toBeLessThanOrEqual(2n ** 53n);
    expect(208064n ** 3n).toBeGreaterThan(2n ** 53n);
    expect(208063n ** 3n).toBeLessThanOrEqual(2n ** 53n);
    expect(() => new VoronoiCode(E8, 99)).toThrow(LatticeMatmulError);
    expect(() => new VoronoiCode(E8, 99)).toThrow(/99\^8 exceeds 2\^53/);
    expect(() => new VoronoiCode(D3, 208064)).toThrow(LatticeMatmulError);
    expect(new VoronoiCode(E8, 98).size).toBe(Number(98n ** 8n));
    expect(new VoronoiCode(D3, 208063).size).toBe(Number(208063n ** 3n));
  });

  it('codes wider than 32 bits: E8 q = 16 takes exactly 32 bits, q = 17 takes 33, q = 64 takes 48', () => {
    expect([new VoronoiCode(E8, 16).size, new VoronoiCode(E8, 16).codeBits]).toEqual([2 ** 32, 32]);
    expect([new VoronoiCode(E8, 17).size, new VoronoiCode(E8, 17).codeBits]).toEqual([17 ** 8, 33]);
    expect(new VoronoiCode(E8, 64).codeBits).toBe(48);
  });

  it('E8 q = 24 (a 37-bit code): encode(decode(c)) = c for codes across the whole range, beyond 2^32', () => {
    const code = new VoronoiCode(E8, 24);
    expect(code.size).toBeGreaterThan(2 ** 32);
    const rng = new Rng(24);
    for (let t = 0; t < 200; t++) {
      // Spread over [0, 24^8): a high part above 2^32 and a low part.
      const c = Math.floor((rng.nextU32() / 2 ** 32) * code.size);
      expect(code.encode(code.decode(c))).toBe(c);
    }
    expect(code.encode(code.decode(code.size - 1))).toBe(code.size - 1);
  });

  it.each([
    ['D3', [1, 0, 0], D3],
    ['D3', [1, 1, 1], D3],
    ['E8', [2, 0, 0, 0, 0, 0, 0, 0], E8],
    ['E8', [-1, 1, 1, 1, 1, 1, 1, 1], E8],
  ] as const)('encode of the non-lattice %s vector %j is refused', (_name, P, lattice) => {
    const code = new VoronoiCode(lattice, 4);
    expect(() => code.encode(P)).toThrow(LatticeMatmulError);
    expect(() => code.encode(P)).toThrow(/not a lattice point/);
  });
});
