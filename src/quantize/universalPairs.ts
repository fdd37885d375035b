import { check, describeValue } from '../errors.js';
import { DITHER_GRID, universalCodec } from './latticeSpec.js';
import type { UniversalLatticeMatrix } from './quantizedMatrix.js';
import { blockDither, columnKeys, ditherWordKeys, forEachUniversalPoint, universalDitherUnit } from './universalCode.js';

/*
 * The pair form of a universal matrix, for its products with packed 8-bit dot products on the GPU
 * (GpuEngine's 'universal-i8' product kernel: src/gpu/kernels/universalPairs.ts makes the form,
 * src/gpu/kernels/pairMatmul.ts multiplies two). This module is its CPU twin.
 *
 * A universal matrix's decoded entry is ν_j·unit·c with the integer c = λ·DITHER_GRID/pointScale − Z
 * (unit = β/(DITHER_GRID·√N), `universalDitherUnit`; E8: c = 128λ − Z, D3: 256λ − Z), so a product
 * of two is Σ c_a·c_b scaled once per entry. c has up to ≈ 14 bits, too many for one int8 lane, so
 * each c is split into two with a radix R = 2^r: c = R·h + l, h in [−128, 127], l in [−R/2, R/2).
 * Then
 *   c_a·c_b = R²·h_a·h_b + R·(h_a·l_b + l_a·h_b) + l_a·l_b,
 * and the product kernel forms the first two terms with three packed dot products per 4 coordinates
 * (dot4I8Packed: 4 multiply-adds each) where the f32 product spends 4 multiply-adds. The last term is
 * dropped (for unshifted columns, below); the radix keeps it small. A product takes the smallest R whose h holds every coordinate of
 * a leader or a root escape of both schemes unshifted (`pairRadixBits`: |λ_i| ≤ 2q·pointScale, so
 * |c| ≤ 512q + 256): R = 16 for e8-2bit, 32 for d3-q6 and e8-3bit, 64 for e8-4bit, 128 for e8-q16
 * and e8-5bit, and never more than 128 (`MAX_DITHER_RADIX_BITS`: for q ≥ 32 a column whose |c| passes
 * pairLimit(7) is shifted, below). Then l is −Z mod R, a function of the dither alone (R divides
 * DITHER_GRID/pointScale),
 * and Σ l_a·l_b is data-independent noise of variance N·(R²/12)² in c² units, against the product's
 * own error of ≈ 2·NMSE·σ_c⁴ per coordinate (σ_c ≈ DITHER_GRID/β): it adds 0.0001 % (e8-2bit) to
 * 0.02 % (e8-q16) to the error variance (measured: docs/PERFORMANCE.md, "Products"). Its mean, N/4 (l's mean is
 * −1/2), is added in its place (`droppedLowMean`), so what is dropped has mean 0. The tests bound it
 * exactly (`pairSums`' ll).
 *
 * A column whose largest |c| is beyond `pairLimit(r)` (a long escape far above the column's RMS, which
 * the rotation makes rare) is stored as round(c / 2^s) (ties to even: `roundShift`) with the smallest shift s that fits, and its
 * factor multiplied by 2^s (so f·2^s ≥ 1 marks it: f is in [0.5, 1)): its small coordinates lose s bits
 * (an error of at most 1/pairLimit(r) ≈ 2^-(r+7) of the column's largest coordinate: ≈ 2^-11 at R = 16,
 * 2^-14 at R = 128),
 * nothing is refused. Its l is
 * then no longer the dither's alone (it holds bits s … s + r − 1 of c, which reach λ's once s + r > 7 for E8, > 8 for D3), so its mean follows the data and
 * a dropped Σ l_a·l_b would add up over N (measured: 135× the guarantee's error for two shifted
 * columns of a spike on a constant, e8-4bit at n = 4096; 1988× with e8-5bit): for a pair of columns of
 * which either is shifted the product keeps Σ l_a·l_b (a fourth packed dot product per 4 coordinates,
 * in the workgroups whose tile holds a shifted column).
 *
 * Layout: a unit of 8 rotated coordinates per vec4<u32>: (h of coordinates 0–3, h of 4–7, l of 0–3,
 * l of 4–7), byte i of a word holding coordinate i of its four (two's complement); units past
 * keptLength hold zeros. Per column: `factors[j]` = f_j·2^s_j and `exponents[j]` = e_j, where
 * ν_j = f_j·2^e_j with f_j in [0.5, 1) (frexp), so that C's entries are formed without leaving f32
 * and the exponents applied last, as the decoded product does (shaders/product_epilogue.wgsl).
 */

/** Rotated coordinates per unit of the pair form (one vec4<u32>). */
export const PAIR_UNIT = 8;

/** Words per unit: h of 4 coordinates, h of the next 4, then their l. */
export const PAIR_UNIT_WORDS = 4;

/** The largest radix bits: l of a radix-256 split, in [−128, 128), still fits int8. */
export const MAX_PAIR_RADIX_BITS = 8;

/** A universal matrix's pair form (see the module comment). */
export interface UniversalPairColumns {
  readonly length: number;
  readonly cols: number;
  /** r of the radix R = 2^r: c = R·h + l. */
  readonly radixBits: number;
  /** ceil(length / PAIR_UNIT). */
  readonly unitsPerColumn: number;
  /** PAIR_UNIT_WORDS words per unit, unitsPerColumn units per column. */
  readonly words: Uint32Array;
  /** f_j·2^s_j per column (exact in f32). */
  readonly factors: Float32Array;
  /** e_j per column: ν_j = f_j·2^e_j. */
  readonly exponents: Int32Array;
  /** s_j per column (0 unless the column has a |c| beyond pairLimit). */
  readonly shifts: Int32Array;
  /** β/(DITHER_GRID·√N). */
  readonly unit: number;
}

/** Refuses radix bits that are not an integer in [0, MAX_PAIR_RADIX_BITS], naming `what`. */
export function checkPairRadixBits(radixBits: number, what: string): void {
  check(
    Number.isInteger(radixBits) && radixBits >= 0 && radixBits <= MAX_PAIR_RADIX_BITS,
    () => `${what}: radixBits must be an integer in [0, ${MAX_PAIR_RADIX_BITS}], got ${describeValue(radixBits)}`,
  );
}

/** The largest |c| stored unshifted at radix 2^r: h = ⌊(c + R/2) / R⌋ stays in [−128, 127] (16319 at r = 7). */
export function pairLimit(radixBits: number): number {
  const radix = 2 ** radixBits;
  return 128 * radix - Math.floor(radix / 2) - 1;
}

/**
 * The largest radix bits a product takes, 7: R = 2^r must divide DITHER_GRID/pointScale of both
 * lattices (E8: 128, D3: 256), so that an unshifted column's l = c mod R is −Z mod R, the dither's
 * alone, whose mean the kernel adds for the Σ l_a·l_b it drops. At R = 256 an E8 column's l holds the
 * lowest bit of λ too (c = 128λ − Z), whose mean follows the data: the dropped term then added up
 * coherently over N (measured: 3.1× the guarantee's error for E8 q = 32, β = 2, on one Gaussian column
 * quantized twice, n = 16384; the radix 2^8 went to every q ≥ 32). Columns with larger |c| are shifted.
 */
export const MAX_DITHER_RADIX_BITS = 7;

/**
 * The radix bits of a product of universal schemes with these q: the smallest r whose unshifted range
 * holds every leader and root-escape coordinate, |c| ≤ 512q + 256 for the larger q, at most
 * `MAX_DITHER_RADIX_BITS` (q ≥ 32: a column with a coordinate beyond pairLimit(7) is then shifted).
 */
export function pairRadixBits(qa: number, qb: number): number {
  const largest = 512 * Math.max(qa, qb) + 256;
  let r = 0;
  while (r < MAX_DITHER_RADIX_BITS && pairLimit(r) < largest) r++;
  return r;
}

/**
 * c / 2^s rounded to the nearest integer, ties to even: ⌊(c + 2^(s−1) − 1 + bit s of c) / 2^s⌋ (the
 * GPU's arithmetic shift), c for s = 0. Ties to even, not up: rounding half up adds +0.5 (in units of
 * c) to every coordinate of a shifted column on average, an error that adds up coherently in a
 * product with a column of one sign (measured: 2.3 % of the guarantee's error at n = 896 on a spike
 * against a constant column). Ties to even is symmetric (round(−c) = −round(c)), and its tie
 * direction, bit s of c, is the dither's alone for s < 7 (c = 128λ − Z for E8, 256λ − Z for D3, so
 * c's low bits are −Z's: uniform, whatever the data), so the rounding error has mean 0 there; s ≥ 7
 * takes a spike of one coordinate at N ≥ 2^20.
 */
export function roundShift(c: number, s: number): number {
  if (s === 0) return c;
  const scale = 2 ** s;
  return Math.floor((c + scale / 2 - 1 + (Math.floor(c / scale) & 1)) / scale);
}

/** The smallest s ≥ 0 for which every c with |c| ≤ `largest` rounds into [−pairLimit(r), pairLimit(r)]. */
export function pairShift(largest: number, radixBits: number): number {
  const limit = pairLimit(radixBits);
  let s = 0;
  while (roundShift(largest, s) > limit) s++;
  return s;
}

/**
 * The largest shift that keeps a shifted column's rounding the dither's alone: for s ≤ 6, c mod 2^s
 * and the tie bit s of c are bits of −Z (c = 128λ − Z for E8, 256λ − Z for D3). At s = 7 the tie
 * follows λ's lowest bit, and from s = 8 on the rounding takes c to multiples of DITHER_GRID, which
 * undoes the dither: the pair form's coordinate is then a deterministic rounding of y/β, whose error
 * adds up coherently over N (measured on two unrotated constant columns with E8 q = 64, β = 1/10000.3:
 * 416× the guarantee's error at n = 4096, 6800× at n = 65536; s = 7, β = 1/5000.3: a bias of 0.36 of
 * the error's standard deviation at n = 4096). Operands that could need more take the decode path
 * (`largestPairShift`, pairMatmul.ts's `pairProductKeepsDither`).
 */
export const MAX_DITHERED_PAIR_SHIFT = 6;

/**
 * The largest shift `universalPairColumns` can give any column of a universal operand of this β and
 * rotated length N at radix 2^r, whatever its data: a normalized column has |y_i| ≤ ‖y‖ = √N (ν_j is
 * f32: 2^-10 of margin), and the decoded coordinate is within the fine lattice's covering radius
 * (1 for E8 and D3 in units of β, plus the fixed point's last bit) of y_i, so
 * |c| = DITHER_GRID·|ŷ_i|/β ≤ DITHER_GRID·(√N·(1 + 2^-10)/β + 1) + 2.
 */
export function largestPairShift(m: { readonly scheme: { readonly beta: number }; readonly length: number }, radixBits: number): number {
  const largest = Math.ceil(DITHER_GRID * ((Math.sqrt(m.length) * (1 + 2 ** -10)) / m.scheme.beta + 1) + 2);
  // Far beyond any shift the pair form can take (and pairShift's loop): 31 stands for "too many".
  return Number.isFinite(largest) && largest < 2 ** 52 ? pairShift(largest, radixBits) : 31;
}

/** c = R·h + l (R = 2^r) with h = ⌊(c + ⌊R/2⌋) / R⌋ and l in [−⌊R/2⌋, R − ⌊R/2⌋). */
export function splitPair(c: number, radixBits: number): { readonly h: number; readonly l: number } {
  const radix = 2 ** radixBits;
  const h = Math.floor((c + Math.floor(radix / 2)) / radix);
  return { h, l: c - radix * h };
}

/** frexp of a finite number: x = fract·2^exp with |fract| in [0.5, 1) (0, 0 for zero), as WGSL's frexp. */
export function frexp(x: number): { readonly fract: number; readonly exp: number } {
  if (x === 0) return { fract: 0, exp: 0 };
  let exp = Math.floor(Math.log2(Math.abs(x))) + 1;
  // log2 can be off by one near powers of two: correct it exactly.
  while (Math.abs(x) / 2 ** exp >= 1) exp++;
  while (Math.abs(x) / 2 ** exp < 0.5) exp--;
  return { fract: x / 2 ** exp, exp };
}

/**
 * The integers c = λ·DITHER_GRID/pointScale − Z of every rotated coordinate of `m` (column-major,
 * length per column, zeros at and past keptLength): what the pair form splits, exactly.
 */
export function universalIntegerCoordinates(m: UniversalLatticeMatrix): Int32Array {
  const codec = universalCodec(m.scheme.lattice, m.scheme.q, m.scheme.beta);
  const d = codec.spec.dimension;
  const factor = DITHER_GRID / codec.spec.pointScale;
  const out = new Int32Array(m.cols * m.length);
  const dither = new Int32Array(d);
  let wordKeys = { first: 0, second: 0 };
  forEachUniversalPoint(m, (j, b, point) => {
    if (b === 0) wordKeys = ditherWordKeys(columnKeys(m.nonce, j), m.ditherKeys);
    blockDither(codec, wordKeys, b, dither);
    for (let v = 0; v < d; v++) {
      const k = b * d + v;
      if (k >= m.keptLength) break;
      out[j * m.length + k] = factor * (point[v] as number) - (dither[v] as number);
    }
  });
  return out;
}

/**
 * The pair form of `m` at radix 2^radixBits (the twin of the GPU's `dispatchUniversalPairs`).
 *
 * @example
 * const q = quantize(a, { scheme: 'e8-4bit' }) as UniversalLatticeMatrix;
 * const pairs = universalPairColumns(q, pairRadixBits(q.scheme.q, q.scheme.q));
 */
export function universalPairColumns(m: UniversalLatticeMatrix, radixBits: number): UniversalPairColumns {
  check(m.kind === 'lattice' && m.mode === 'universal', 'universalPairColumns: a universal lattice matrix is needed');
  checkPairRadixBits(radixBits, 'universalPairColumns');
  const c = universalIntegerCoordinates(m);
  const units = Math.ceil(m.length / PAIR_UNIT);
  const words = new Uint32Array(m.cols * units * PAIR_UNIT_WORDS);
  const factors = new Float32Array(m.cols);
  const exponents = new Int32Array(m.cols);
  const shifts = new Int32Array(m.cols);
  for (let j = 0; j < m.cols; j++) {
    let largest = 0;
    for (let k = 0; k < m.length; k++) largest = Math.max(largest, Math.abs(c[j * m.length + k] as number));
    const s = pairShift(largest, radixBits);
    const { fract, exp } = frexp(m.norms[j] as number);
    factors[j] = fract * 2 ** s;
    exponents[j] = exp;
    shifts[j] = s;
    for (let k = 0; k < m.length; k++) {
      const { h, l } = splitPair(roundShift(c[j * m.length + k] as number, s), radixBits);
      const unit = (j * units + Math.floor(k / PAIR_UNIT)) * PAIR_UNIT_WORDS;
      const lane = k % PAIR_UNIT;
      const word = lane >> 2;
      const shift = 8 * (lane & 3);
      words[unit + word] = ((words[unit + word] as number) | ((h & 0xff) << shift)) >>> 0;
      words[unit + 2 + word] = ((words[unit + 2 + word] as number) | ((l & 0xff) << shift)) >>> 0;
    }
  }
  return { length: m.length, cols: m.cols, radixBits, unitsPerColumn: units, words, factors, exponents, shifts, unit: universalDitherUnit(m) };
}

/** Byte `lane` of a pair-form word, as a signed value. */
function lane8(word: number, lane: number): number {
  return ((word >>> (8 * lane)) << 24) >> 24;
}

/**
 * What the pair product adds in place of the Σ l_a·l_b it drops for two unshifted columns of
 * `keptLength` coordinates, in c² units: its mean. l = −Z mod R in [−R/2, R/2) is uniform (Z is), so
 * its mean is −1/2 (0 for R = 1, where l is 0), and two columns' dithers are independent (distinct
 * columns or nonces; one nonce for two matrices is refused), so E[l_a·l_b] = 1/4 per coordinate kept.
 * Dropping the term whole biased every such entry by −N/4 c² units (3√N/R² of its own noise's
 * standard deviation: 0.37 at e8-2bit, N = 1024); adding the mean leaves the zero-mean noise alone.
 */
export function droppedLowMean(keptLength: number, radixBits: number): number {
  return radixBits === 0 ? 0 : keptLength / 4;
}

/**
 * The integer sums the product kernel forms for columns i of `a` and j of `b`: hh = Σ h_a·h_b and
 * hl = Σ (h_a·l_b + l_a·h_b), and the dropped ll = Σ l_a·l_b (for the tests' bounds).
 */
export function pairSums(a: UniversalPairColumns, i: number, b: UniversalPairColumns, j: number): { readonly hh: number; readonly hl: number; readonly ll: number } {
  check(a.unitsPerColumn === b.unitsPerColumn && a.radixBits === b.radixBits, 'pairSums: A and B need the same length and radix');
  let hh = 0;
  let hl = 0;
  let ll = 0;
  for (let u = 0; u < a.unitsPerColumn; u++) {
    const ua = (i * a.unitsPerColumn + u) * PAIR_UNIT_WORDS;
    const ub = (j * b.unitsPerColumn + u) * PAIR_UNIT_WORDS;
    for (let lane = 0; lane < PAIR_UNIT; lane++) {
      const w = lane >> 2;
      const byte = lane & 3;
      const ha = lane8(a.words[ua + w] as number, byte);
      const la = lane8(a.words[ua + 2 + w] as number, byte);
      const hb = lane8(b.words[ub + w] as number, byte);
      const lb = lane8(b.words[ub + 2 + w] as number, byte);
      hh += ha * hb;
      hl += ha * lb + la * hb;
      ll += la * lb;
    }
  }
  return { hh, hl, ll };
}

/**
 * The twin of the pair product on the GPU (pairMatmul.ts, then the product epilogue): C = ÂᵀB̂ in
 * float64 from the pair forms (of one radix), a.cols × b.cols column-major, Σ l_a·l_b replaced by its
 * mean (`droppedLowMean`) as the kernel does where neither column is shifted (and kept where one is);
 * plus rows·μ_a·μ_b for centred operands and, for one quantization multiplied by itself (`gram`),
 * the exact diagonal ν_i² + rows·μ_i².
 */
export function pairProductReference(
  qa: UniversalLatticeMatrix,
  a: UniversalPairColumns,
  qb: UniversalLatticeMatrix,
  b: UniversalPairColumns,
  gram: boolean,
): Float64Array {
  const out = new Float64Array(a.cols * b.cols);
  const common = a.unit * b.unit;
  const radix = 2 ** a.radixBits; // b's too: pairSums refuses forms of two radices
  const droppedMean = droppedLowMean(Math.min(qa.keptLength, qb.keptLength), a.radixBits);
  for (let j = 0; j < b.cols; j++) {
    for (let i = 0; i < a.cols; i++) {
      const { hh, hl, ll } = pairSums(a, i, b, j);
      const scale = common * (a.factors[i] as number) * (b.factors[j] as number) * 2 ** ((a.exponents[i] as number) + (b.exponents[j] as number));
      // Σ l_a·l_b is dropped only where both columns are unshifted (l then the dither's alone), its mean added.
      const low = (a.shifts[i] as number) > 0 || (b.shifts[j] as number) > 0 ? ll : droppedMean;
      let value = scale * (radix * radix * hh + radix * hl + low);
      if (qa.means !== null && qb.means !== null) value += qa.rows * (qa.means[i] as number) * (qb.means[j] as number);
      if (gram && i === j) value = (qa.norms[i] as number) ** 2 + (qa.means === null ? 0 : qa.rows * (qa.means[i] as number) ** 2);
      out[j * a.cols + i] = value;
    }
  }
  return out;
}
