import type { Lattice } from './lattice.js';

/*
 * Escape candidates of the universal quantizer's code (src/quantize/universalCode.ts).
 *
 * A block is quantized to a lattice point λ; its Voronoi code stores only λ mod qΛ, whose coset leader L
 * is the point of the coset in the Voronoi region of qΛ. When λ ≠ L (the block "escapes" the code),
 * λ = L + q·μ with μ ∈ Λ, and μ is sent as side information. Almost always μ is a root (a shortest
 * nonzero vector): the point crossed one facet of qV. Given L the decoder orders the roots by how
 * likely they are — by ⟨L, m⟩ ascending, i.e. by ‖L + q·m‖, the roots whose facet L sits next to
 * first — so a small **rank** names μ (4 bits for ranks 1…15). A root of larger rank, or a point of
 * the next shells, is a **long** escape: its index in a fixed table of short vectors (16 bits); anything
 * beyond that table (only for data far outside the quantizer's range) is stored explicitly.
 *
 * Everything is integer arithmetic on point coordinates (`Lattice.pointScale` · λ), so the rank is the
 * same on every machine.
 */

/** Ranks 1…MAX_ESCAPE_RANK are stored in 4 bits; 0 in that field means "long escape". */
export const MAX_ESCAPE_RANK = 15;

/**
 * The largest rank an escape symbol may carry for a lattice: min(MAX_ESCAPE_RANK, its roots). A rank
 * past the roots has no root to decode to.
 */
export function largestEscapeRank(candidates: Pick<EscapeCandidates, 'rootCount'>): number {
  return Math.min(MAX_ESCAPE_RANK, candidates.rootCount);
}

/** The long-escape index that means "μ is stored explicitly" (beyond the extended table). */
export const HUGE_ESCAPE = 0xffff;

/** The candidates of one lattice's escapes, in point coordinates. */
export interface EscapeCandidates {
  readonly dimension: number;
  /** The roots (shortest nonzero vectors), `rootCount × d`, in the fixed order of `extended`. */
  readonly roots: Int32Array;
  readonly rootCount: number;
  /**
   * Every lattice point with 0 < ‖P‖² ≤ `extendedNorm2` (point coordinates), sorted by norm, then
   * lexicographically; the roots come first. `extendedCount × d`, fewer than HUGE_ESCAPE entries.
   */
  readonly extended: Int32Array;
  readonly extendedCount: number;
  /** Index of `mu` in `extended`, or −1. */
  indexOf(mu: ArrayLike<number>): number;
  /**
   * The roots' nonzero coordinates, for fast inner products: root r's terms are
   * `rootTerms[rootTermStart[r] … rootTermStart[r + 1])`, each `coordinate · 16 + (value + 8)`.
   */
  readonly rootTerms: Int32Array;
  readonly rootTermStart: Int32Array;
}

/**
 * The escape candidates of `lattice`: its roots and all points up to squared norm `extendedNorm2`
 * (point coordinates), enumerated once by a norm-pruned search over the integer grid.
 *
 * @example
 * const c = escapeCandidates(D3, 16); // c.rootCount === 12
 */
export function escapeCandidates(lattice: Lattice, extendedNorm2: number): EscapeCandidates {
  const d = lattice.dimension;
  const points: number[][] = [];
  const current = new Array<number>(d).fill(0);
  const radius = Math.floor(Math.sqrt(extendedNorm2));
  const visit = (i: number, norm2: number): void => {
    if (i === d) {
      if (norm2 > 0 && lattice.contains(current)) points.push(current.slice());
      return;
    }
    for (let v = -radius; v <= radius; v++) {
      const next = norm2 + v * v;
      if (next > extendedNorm2) continue;
      current[i] = v;
      visit(i + 1, next);
    }
    current[i] = 0;
  };
  visit(0, 0);
  const norm2 = (p: readonly number[]): number => p.reduce((s, v) => s + v * v, 0);
  points.sort((a, b) => {
    const byNorm = norm2(a) - norm2(b);
    if (byNorm !== 0) return byNorm;
    for (let i = 0; i < d; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
    return 0;
  });
  if (points.length === 0 || points.length >= HUGE_ESCAPE) {
    throw new Error(`escapeCandidates(${lattice.name}): ${points.length} points up to norm² ${extendedNorm2}`);
  }
  const rootNorm = norm2(points[0] as number[]);
  const rootCount = points.filter((p) => norm2(p) === rootNorm).length;
  const extended = Int32Array.from(points.flat());
  // A vector of coordinates in [−radius, radius] as one number in base 2·radius + 1 (exact: < 2^53).
  const base = 2 * radius + 1;
  const keyOf = (mu: ArrayLike<number>): number => {
    let key = 0;
    for (let i = 0; i < d; i++) {
      const v = mu[i] as number;
      if (v < -radius || v > radius) return -1;
      key = key * base + (v + radius);
    }
    return key;
  };
  const index = new Map<number, number>();
  points.forEach((p, i) => index.set(keyOf(p), i));
  const roots = extended.slice(0, rootCount * d);
  const terms: number[] = [];
  const termStart = new Int32Array(rootCount + 1);
  for (let r = 0; r < rootCount; r++) {
    termStart[r] = terms.length;
    for (let i = 0; i < d; i++) {
      const v = roots[r * d + i] as number;
      if (v !== 0) terms.push(i * 16 + (v + 8));
    }
  }
  termStart[rootCount] = terms.length;
  return {
    dimension: d,
    roots,
    rootTerms: Int32Array.from(terms),
    rootTermStart: termStart,
    rootCount,
    extended,
    extendedCount: points.length,
    indexOf: (mu) => {
      const key = keyOf(mu);
      return key < 0 ? -1 : (index.get(key) ?? -1);
    },
  };
}

/** ⟨L, root r⟩ in point coordinates (over the root's nonzero coordinates only). */
function rootKey(c: EscapeCandidates, leader: ArrayLike<number>, r: number): number {
  const { rootTerms, rootTermStart } = c;
  let key = 0;
  for (let t = rootTermStart[r] as number, end = rootTermStart[r + 1] as number; t < end; t++) {
    const term = rootTerms[t] as number;
    key += (leader[term >> 4] as number) * ((term & 15) - 8);
  }
  return key;
}

/**
 * The rank (1 … rootCount) of root `rootIndex` given the leader L: one plus the number of roots that
 * come before it when roots are ordered by ⟨L, m⟩ ascending, ties by root index.
 *
 * @example
 * escapeRank(candidates, leader, candidates.indexOf(mu)); // 1 when μ is the facet L sits against
 */
export function escapeRank(c: EscapeCandidates, leader: ArrayLike<number>, rootIndex: number): number {
  const target = rootKey(c, leader, rootIndex);
  let before = 0;
  for (let r = 0; r < c.rootCount; r++) {
    const key = rootKey(c, leader, r);
    if (key < target || (key === target && r < rootIndex)) before++;
  }
  return before + 1;
}

/** Scratch of `rootOfRank` (ranks are at most MAX_ESCAPE_RANK; single-threaded use). */
const rankKeys = /*#__PURE__*/ new Float64Array(MAX_ESCAPE_RANK);
const rankIndices = /*#__PURE__*/ new Int32Array(MAX_ESCAPE_RANK);

/**
 * The root of rank `rank` (1 … min(rootCount, MAX_ESCAPE_RANK)) given the leader L, as its index in
 * `roots`: the inverse of {@link escapeRank}. Keeps the `rank` smallest (key, index) pairs seen so far.
 */
export function rootOfRank(c: EscapeCandidates, leader: ArrayLike<number>, rank: number): number {
  const keys = rankKeys;
  const indices = rankIndices;
  let filled = 0;
  for (let r = 0; r < c.rootCount; r++) {
    const key = rootKey(c, leader, r);
    // Roots arrive in index order, so an equal key never displaces an earlier root.
    if (filled === rank && key >= (keys[rank - 1] as number)) continue;
    let slot = filled < rank ? filled++ : rank - 1;
    while (slot > 0 && (keys[slot - 1] as number) > key) {
      keys[slot] = keys[slot - 1] as number;
      indices[slot] = indices[slot - 1] as number;
      slot--;
    }
    keys[slot] = key;
    indices[slot] = r;
  }
  return indices[rank - 1] as number;
}
