import { check, describeValue } from '../errors.js';
import { D3 } from '../lattices/d3.js';
import { E8 } from '../lattices/e8.js';
import { escapeCandidates, type EscapeCandidates } from '../lattices/escapes.js';
import type { Lattice } from '../lattices/lattice.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { zLattice } from '../lattices/zLattice.js';

/*
 * One description per lattice: everything the CPU quantizer, the GPU quantizer, the decoders, the
 * readers and the operand checks need to know about D3, E8 and Z^8, in one place.
 */

/** The lattices of lattice schemes ('Z' is Z^8: 8 scalar coordinates sharing one code word). */
export type LatticeName = 'D3' | 'E8' | 'Z';

/**
 * Resolution of the universal quantizer's fixed-point grid, per λ unit: a rotated coordinate u is
 * represented by the integer X with X / DITHER_GRID ≈ u / β (randomized rounding), and the dither is
 * uniform over the grid points of a fundamental domain of Λ. With both on one grid the quantization
 * error is exactly uniform over the (discrete) Voronoi cell and independent of the input; 256 keeps the
 * dither of a D3 block in one 32-bit hash word and an E8 block in two.
 */
export const DITHER_GRID = 256;

/** Where one coordinate's dither numerator comes from in a block's hash words. */
export interface DitherField {
  /** Which of the block's hash words (0 or 1). */
  readonly word: number;
  /** The field is bits `shift … shift + bits − 1` of that word. */
  readonly shift: number;
  readonly bits: number;
}

/** A lattice as the quantizers see it. */
export interface LatticeSpec {
  readonly name: LatticeName;
  readonly lattice: Lattice;
  readonly dimension: number;
  readonly pointScale: 1 | 2;
  /**
   * σ²(Λ): the second moment per coordinate of the Voronoi cell, in λ units (D3 1/8, E8 929/12960,
   * Z 1/12). The universal quantizer's error per coordinate is β²σ² exactly.
   */
  readonly secondMoment: number;
  /**
   * R(Λ): the largest distance from a point of space to Λ, in λ units (D3 and E8 1, Z^8 √2). A
   * universal code's decoded block is its input plus an error of norm at most β·R (in the block's units).
   */
  readonly coveringRadius: number;
  /** The lattice id of the WGSL decoders (LATTICE_D3, LATTICE_E8, LATTICE_Z8 in shaders/lattice_decode.wgsl). */
  readonly gpuId: number;
  /** Largest denominator of the exact integer nearest-point routines (E8 compares squared distances). */
  readonly maxDenominator: number;
  /**
   * The dither of one block: `words` hash words, coordinate i's numerator read from `fields[i]` as
   * m_i − 2^(bits−1), i.e. uniform over [−w_i/2, w_i/2) in λ units with w_i = 2^bits / DITHER_GRID:
   * a box that is a fundamental domain of Λ (D3: [1, 1, 2]; E8: [½, 1, 1, 1, 1, 1, 1, 2]).
   */
  readonly dither: { readonly words: 1 | 2; readonly fields: readonly DitherField[] };
  /** Escape candidates (roots, extended table), built on first use. */
  readonly escapes: EscapeCandidates;
}

/** Squared norm bound (λ units) of the extended escape table: D3's first shells, E8's first two. */
const EXTENDED_NORM2 = { D3: 16, E8: 4, Z: 4 } as const;

function spec(fields: Omit<LatticeSpec, 'escapes' | 'dimension' | 'pointScale'>): LatticeSpec {
  let escapes: EscapeCandidates | undefined;
  const { lattice } = fields;
  return Object.freeze({
    ...fields,
    dimension: lattice.dimension,
    pointScale: lattice.pointScale,
    get escapes(): EscapeCandidates {
      escapes ??= escapeCandidates(lattice, EXTENDED_NORM2[fields.name] * lattice.pointScale ** 2);
      return escapes;
    },
  });
}

const byte = (word: number, index: number): DitherField => ({ word, shift: 8 * index, bits: 8 });

// A pure IIFE: the calls inside would otherwise keep the table (and D3, E8) in every bundle.
const SPECS: Readonly<Record<LatticeName, LatticeSpec>> = /*#__PURE__*/ (() => Object.freeze({
  D3: spec({
    name: 'D3',
    lattice: D3,
    secondMoment: 1 / 8,
    coveringRadius: 1,
    gpuId: 0,
    maxDenominator: 2 ** 29,
    dither: { words: 1, fields: [byte(0, 0), byte(0, 1), { word: 0, shift: 23, bits: 9 }] },
  }),
  E8: spec({
    name: 'E8',
    lattice: E8,
    secondMoment: 929 / 12960,
    coveringRadius: 1,
    gpuId: 1,
    maxDenominator: 2 ** 24,
    dither: {
      words: 2,
      fields: [
        { word: 1, shift: 16, bits: 7 },
        byte(0, 0),
        byte(0, 1),
        byte(0, 2),
        byte(0, 3),
        byte(1, 0),
        byte(1, 1),
        { word: 1, shift: 23, bits: 9 },
      ],
    },
  }),
  Z: spec({
    name: 'Z',
    lattice: zLattice(8),
    secondMoment: 1 / 12,
    coveringRadius: Math.SQRT2,
    gpuId: 2,
    maxDenominator: 2 ** 29,
    dither: { words: 2, fields: [0, 1, 2, 3].flatMap((i) => [byte(0, i), byte(1, i)]) },
  }),
}))();

/**
 * The description of a lattice by name.
 *
 * @example
 * latticeSpec('E8').secondMoment; // 929 / 12960
 */
export function latticeSpec(name: LatticeName): LatticeSpec {
  const found = typeof name === 'string' && Object.hasOwn(SPECS, name) ? SPECS[name] : undefined;
  check(found !== undefined, () => `unknown lattice ${describeValue(name)} (use 'D3', 'E8' or 'Z')`);
  return found;
}

/** The universal code of one scheme: the lattice, q, β and everything derived from them. */
export interface UniversalCodec {
  readonly spec: LatticeSpec;
  readonly q: number;
  readonly beta: number;
  readonly code: VoronoiCode;
  /**
   * Bits of a block's code Σ u_i q^i: ceil(d · log2 q), up to 48 (E8, q = 64). A code wider than 32 bits
   * is held as its low 32 bits and its high bits (`UniversalLatticeMatrix.codesHigh`).
   */
  readonly codeBits: number;
  /** D = β²·σ²(Λ): the error energy per coordinate, relative to the normalized column (norm √N). */
  readonly distortion: number;
}

/** Largest q of a universal code: E8's q^8 = 2^48 stays an exact JavaScript number. */
export const MAX_UNIVERSAL_Q = 64;

/**
 * Voronoi codes by lattice and q, built once. Not by β: β comes from files too, and a container header
 * can name thousands of distinct values (kept per β, a refused file left ≈ 1.2 KB each behind); the
 * lattices and q (3…64) bound this cache at a few hundred entries.
 */
const voronoiCodes = /*#__PURE__*/ new Map<string, VoronoiCode>();

/**
 * The universal codec of (lattice, q, β) (its Voronoi code built once per lattice and q).
 *
 * @example
 * universalCodec('E8', 16, 0.25).codeBits; // 32
 */
export function universalCodec(name: LatticeName, q: number, beta: number): UniversalCodec {
  const s = latticeSpec(name);
  check(Number.isInteger(q) && q >= 3 && q <= MAX_UNIVERSAL_Q, () => `q must be an integer in [3, ${MAX_UNIVERSAL_Q}], got ${describeValue(q)}`);
  check(typeof beta === 'number' && Number.isFinite(beta) && beta > 0, () => `beta must be a positive number, got ${describeValue(beta)}`);
  const key = `${name}/${q}`;
  let code = voronoiCodes.get(key);
  if (code === undefined) {
    code = new VoronoiCode(s.lattice, q);
    voronoiCodes.set(key, code);
  }
  return Object.freeze({ spec: s, q, beta, code, codeBits: code.codeBits, distortion: beta * beta * s.secondMoment });
}
