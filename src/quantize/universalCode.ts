import { check, describeValue, LatticeMatmulError } from '../errors.js';
import { escapeRank, HUGE_ESCAPE, largestEscapeRank, MAX_ESCAPE_RANK, rootOfRank, type EscapeCandidates } from '../lattices/escapes.js';
import { counterHash, mix32, RandomStream } from '../rotation/random.js';
import { DITHER_GRID, latticeSpec, universalCodec, type LatticeName, type LatticeSpec, type UniversalCodec } from './latticeSpec.js';
import type { UniversalLatticeMatrix } from './quantizedMatrix.js';

/*
 * The universal (dithered) lattice code of one column, block by block — the CPU reference that the
 * GPU encoder (shaders/universal_encode.wgsl) and every decoder follow exactly.
 *
 * Per column j of a matrix with nonce ν (64 bits, drawn per quantization) the encoder has three keys,
 *   ditherKey_j = counterHash(ν_lo, RandomStream.dither, ν_hi, j),
 *   secondKey_j = counterHash(ν_lo, RandomStream.secondDither, ν_hi, j)   (E8's second hash word),
 *   roundKey_j  = counterHash(ν_lo, RandomStream.rounding, ν_hi, j),
 * and works on the rotated column r (scaled by a power of two, see columnScaling.ts) with
 * g = fround(G / ν'), G = fround(√N · DITHER_GRID / β), ν' the canonical f32 norm of r:
 *   1. fixed point with randomized rounding, for every coordinate i of the blocks (zero past keptLength):
 *        y = fround(r_i · g), f = y − floor(y) (exact), w = (mix32(roundKey ^ i) >>> 8) · 2^−24,
 *        X_i = floor(y) + (f ≥ 1 − w ? 1 : 0)
 *      so that E[X_i] = y: the fixed-point step adds no error correlated with the input.
 *   2. dither: block k reads `spec.dither.words` hash words h_t = mix32(key_t ^ (k·words + t)), key_0 =
 *      ditherKey, key_1 = secondKey (E8; ditherKey in containers of format version 1: `DitherKeyCount`),
 *      coordinate v's numerator Z_v = field_v(h) − 2^(bits_v − 1): uniform over the grid points of a
 *      box that is a fundamental domain of Λ.
 *   3. λ = nearest lattice point to (X + Z) / DITHER_GRID (exact integer rules, Lattice.nearestDithered),
 *      in point coordinates P, mirrored by a fair bit: m = mix32(roundKey ^ k·d) & 1 (bit 0 of the
 *      rounding hash of the block's first coordinate, whose bits 8–31 are its rounding threshold), and
 *      with m = 1, P = −Q(−(X + Z)). Both rules commute with lattice shifts, and they are each other's
 *      negation, and the dither is uniform on its grid for uniform keys, so the error's mean is exactly
 *      0 (D_n's "ties upward" alone left a constant of the grid, ≈ 1.5·10⁻⁵ lattice units; E8's two
 *      words from one key, ≈ 10⁻⁵ that depended on the block); the decoder does not need m.
 *      Code c = encode(P); leader L = decode(c).
 *   4. escape when P ≠ L: μ = (P − L)/q; the symbol is its rank among the roots (1…15) given L, else
 *      LONG_ESCAPE with μ's index in the extended table (or HUGE_ESCAPE and μ itself).
 * The decoder rebuilds λ = L + q·μ and outputs β·(λ/pointScale − Z/DITHER_GRID): the error is
 * β·(λ − x/β − z), uniform on the Voronoi cell of the grid points and independent of the data
 * (subtractive dither), so E‖ÂᵀB̂ − AᵀB‖² depends on the norms only (README, "The guarantee").
 */

/** The escape symbol of a block whose μ is in the long-escape stream. */
export const LONG_ESCAPE = MAX_ESCAPE_RANK + 1;

/**
 * |X| must stay at or below this: then every numerator X + Z and the points and escapes derived from it
 * are exact integers in the encoder's i32 arithmetic (CPU and WGSL alike), and |μ| fits 16 bits.
 * A rotated coordinate only gets there when |u| > 2^22/256·β ≈ 16384·β, impossible after the rotation
 * below N ≈ 2^28 (|u| ≤ √N, and typically |u| < 6).
 */
export const UNIVERSAL_FIXED_LIMIT = 2 ** 22;

/**
 * Largest |coordinate| of an explicit escape μ (point coordinates) that a universal matrix may hold:
 * the encoder's fixed-point limit (UNIVERSAL_FIXED_LIMIT) keeps every μ below 2^15; the container
 * reader and `checkQuantizedMatrix` refuse more, so λ = leader + q·μ and every integer a decoder forms
 * from it (the pair form's c = λ·DITHER_GRID/pointScale − Z ≤ 2^30 for q ≤ 64) stay within i32.
 */
export const MAX_EXPLICIT_COORDINATE = 2 ** 16;

/** 2^−24: a 24-bit integer times this is an exact f32. */
const TWO_POW_MINUS_24 = 1 / 16777216;

/** G = fround(√N · DITHER_GRID / β): the numerator of the per-column gain g = fround(G / ν'). */
export function universalNumerator(length: number, beta: number): number {
  return Math.fround((Math.sqrt(length) * DITHER_GRID) / beta);
}

/** The 64-bit nonce as two u32 halves. */
export function nonceWords(nonce: bigint): { readonly lo: number; readonly hi: number } {
  return { lo: Number(nonce & 0xffffffffn), hi: Number((nonce >> 32n) & 0xffffffffn) };
}

/** The dither and rounding keys of column j (see the file comment). */
export function columnKeys(nonce: bigint, column: number): { readonly dither: number; readonly secondDither: number; readonly round: number } {
  const { lo, hi } = nonceWords(nonce);
  return {
    dither: counterHash(lo, RandomStream.dither, hi, column),
    secondDither: counterHash(lo, RandomStream.secondDither, hi, column),
    round: counterHash(lo, RandomStream.rounding, hi, column),
  };
}

/**
 * How many column keys E8's dither hashes: 2 (its second hash word from `secondDither`), what this
 * library writes, or 1 (both words from `dither`), the E8 matrices of containers of format version 1.
 * Two independent uniform keys make a block's 64 dither bits uniform on the grid, so the error's mean is
 * exactly 0; one key reaches 2³² of the 2⁶⁴ grid points, which left a mean of ≈ 10⁻⁵ lattice units
 * that depends on the block (docs/ARCHITECTURE.md). D3 reads one word: the count changes nothing.
 */
export type DitherKeyCount = 1 | 2;

/** What the encoders write (`UniversalLatticeMatrix.ditherKeys`). */
export const DITHER_KEYS: DitherKeyCount = 2;

/**
 * Refuses a `ditherKeys` that is not a `DitherKeyCount`, naming `what` (e.g. `q.ditherKeys`): a matrix
 * built without the field would otherwise decode E8 with one key, silently. Every consumer that takes
 * a universal matrix from outside (`checkQuantizedMatrix`, the GPU upload, the container writer) calls it.
 */
export function checkDitherKeys(value: unknown, what: string): asserts value is DitherKeyCount {
  check(
    value === 1 || value === 2,
    () => `${what} must be 1 or 2 (2 for what this library quantizes, 1 for the E8 matrices of containers of format version 1), got ${describeValue(value)}`,
  );
}

/** The key of each of a block's dither hash words for a column with `keys` (`columnKeys`). */
export function ditherWordKeys(keys: { readonly dither: number; readonly secondDither: number }, count: DitherKeyCount): { readonly first: number; readonly second: number } {
  return { first: keys.dither, second: count === 2 ? keys.secondDither : keys.dither };
}

/**
 * Writes the d dither numerators Z of block `block` into `out`: hash word t is
 * mix32(key_t ^ (block·words + t)), key_0 = `first`, key_1 = `second` (`ditherWordKeys`).
 */
export function blockDither(codec: UniversalCodec, wordKeys: { readonly first: number; readonly second: number }, block: number, out: Int32Array): void {
  const { words, fields } = codec.spec.dither;
  const h0 = mix32((wordKeys.first ^ (block * words)) >>> 0);
  const h1 = words === 2 ? mix32((wordKeys.second ^ (block * words + 1)) >>> 0) : 0;
  for (let v = 0; v < fields.length; v++) {
    const field = fields[v] as (typeof fields)[number];
    const word = field.word === 0 ? h0 : h1;
    const m = (word >>> field.shift) & ((1 << field.bits) - 1);
    out[v] = m - (1 << (field.bits - 1));
  }
}

/**
 * Step 3's mirror bit of block `block` (d coordinates): bit 0 of the rounding hash of its first
 * coordinate, whose bits 8–31 set that coordinate's rounding; for a uniform key the two are independent.
 */
export function blockMirror(roundKey: number, block: number, d: number): boolean {
  return (mix32((roundKey ^ (block * d)) >>> 0) & 1) === 1;
}

/** Step 1 for one coordinate: the fixed-point integer of y = fround(r·g) by randomized rounding. */
export function randomizedRound(y: number, roundKey: number, coordinate: number): number {
  const floor = Math.floor(y);
  // Exact (float64). In f32 too but for y in (−½, 0), where y + 1 may round: the shader tests y ≥ −w there.
  const fraction = y - floor;
  const w = (mix32((roundKey ^ coordinate) >>> 0) >>> 8) * TWO_POW_MINUS_24;
  return floor + (fraction >= 1 - w ? 1 : 0);
}

/** What the encoder produced for one block. */
export interface UniversalBlock {
  /** The code Σ u_i q^i (split into parts by the caller). */
  code: number;
  /** 0: no escape; 1…15: rank; LONG_ESCAPE. */
  symbol: number;
  /** With LONG_ESCAPE: the extended-table index, or HUGE_ESCAPE (then `mu` holds μ). */
  longIndex: number;
}

/**
 * Encodes blocks of fixed-point integers with the dither of a column: the integer steps 2–4 above.
 * Holds its scratch; one instance per quantization.
 */
export class UniversalBlockEncoder {
  private readonly numerator: Int32Array;
  private readonly point: Int32Array;
  private readonly leader: Int32Array;
  /** μ of the last escaped block (point coordinates). */
  readonly mu: Int32Array;

  constructor(readonly codec: UniversalCodec) {
    const d = codec.spec.dimension;
    this.numerator = new Int32Array(d);
    this.point = new Int32Array(d);
    this.leader = new Int32Array(d);
    this.mu = new Int32Array(d);
  }

  /**
   * Encodes the block X = x[offset … offset + d) (|X_i| ≤ UNIVERSAL_FIXED_LIMIT) with dither numerators Z
   * and mirror bit `mirror` (`blockMirror`) into `out`.
   */
  encode(x: ArrayLike<number>, offset: number, dither: Int32Array, mirror: boolean, out: UniversalBlock): void {
    const { spec, code, q } = this.codec;
    const d = spec.dimension;
    const sign = mirror ? -1 : 1;
    for (let v = 0; v < d; v++) this.numerator[v] = sign * ((x[offset + v] as number) + (dither[v] as number));
    spec.lattice.nearestDithered(this.numerator, DITHER_GRID, this.point);
    if (mirror) for (let v = 0; v < d; v++) this.point[v] = -(this.point[v] as number);
    out.code = code.encode(this.point);
    code.decode(out.code, this.leader);
    out.symbol = 0;
    out.longIndex = 0;
    let escaped = false;
    for (let v = 0; v < d; v++) {
      const difference = (this.point[v] as number) - (this.leader[v] as number);
      this.mu[v] = difference / q; // exact: P − L ∈ qΛ
      if (difference !== 0) escaped = true;
    }
    if (!escaped) return;
    const candidates = spec.escapes;
    const index = candidates.indexOf(this.mu);
    if (index >= 0 && index < candidates.rootCount) {
      const rank = escapeRank(candidates, this.leader, index);
      if (rank <= MAX_ESCAPE_RANK) {
        out.symbol = rank;
        return;
      }
    }
    out.symbol = LONG_ESCAPE;
    out.longIndex = index >= 0 ? index : HUGE_ESCAPE;
  }
}

/**
 * The first coordinate, in `spec`'s extended escape table, of the row that long escape index
 * `longIndex` (not HUGE_ESCAPE) names; refuses an index past the table.
 */
function extendedRow(spec: LatticeSpec, candidates: EscapeCandidates, longIndex: number): number {
  if (longIndex >= candidates.extendedCount) outsideTable(spec, longIndex);
  return longIndex * candidates.dimension;
}

// Out of line: the walker's and the decoder's hot paths build no message.
function outsideTable(spec: LatticeSpec, longIndex: number): never {
  throw new LatticeMatmulError(`long escape index ${longIndex} is outside the ${spec.name} table (${spec.escapes.extendedCount} entries)`);
}

/**
 * Decodes one block to its lattice point λ = L + q·μ (point coordinates) into `out`, from its code and
 * escape, in the form the encoder gives them (`UniversalBlock`; `UniversalEscapeWalker` reads it back
 * from a matrix's streams): `longIndex` is the extended index of a LONG_ESCAPE block and, for
 * HUGE_ESCAPE, `huge` holds μ itself.
 */
export class UniversalBlockDecoder {
  private readonly leader: Int32Array;

  constructor(readonly codec: UniversalCodec) {
    this.leader = new Int32Array(codec.spec.dimension);
  }

  decode(code: number, symbol: number, longIndex: number, huge: ArrayLike<number> | null, out: Int32Array): void {
    const { spec, q } = this.codec;
    const d = spec.dimension;
    const candidates = spec.escapes;
    this.codec.code.decode(code, this.leader);
    let table: Int32Array | null = null;
    let row = 0;
    if (symbol >= 1 && symbol <= MAX_ESCAPE_RANK) {
      table = candidates.roots;
      row = rootOfRank(candidates, this.leader, symbol) * d;
    } else if (symbol === LONG_ESCAPE && longIndex !== HUGE_ESCAPE) {
      table = candidates.extended;
      row = extendedRow(spec, candidates, longIndex);
    }
    for (let v = 0; v < d; v++) {
      let mu = 0;
      if (table !== null) mu = table[row + v] as number;
      else if (symbol === LONG_ESCAPE) mu = (huge as ArrayLike<number>)[v] as number;
      out[v] = (this.leader[v] as number) + q * mu;
    }
  }
}

/** What `UniversalEscapeWalker` reads of a universal matrix: its per-block escape symbols and the two side streams. */
export type UniversalEscapeStreams = Pick<UniversalLatticeMatrix, 'cols' | 'blocksPerColumn' | 'escapes' | 'longEscapes' | 'hugeEscapes'>;

/**
 * The one reader of a universal matrix's escape streams: steps through its blocks in storage order
 * (column by column, block by block; `next`), or through its escaped blocks only (`nextEscaped`, one
 * pass over the symbols plus O(d) per long escape), and keeps the cursors of `longEscapes` (one entry
 * per LONG_ESCAPE block, in block order) and `hugeEscapes` (d coordinates per HUGE_ESCAPE entry).
 * After a step that returned true it describes the block it is on: `index`, `column`, `block`, its
 * `symbol`, its `longIndex` and μ of a long escape (`mu` from `muOffset`), in the form the decoder
 * takes (`UniversalBlockDecoder`, or `UniversalPointReader.point()` for that block, on demand).
 *
 * It refuses, naming what is missing, the streams that disagree with the symbols it has read (fewer
 * long escapes than LONG_ESCAPE symbols, fewer explicit coordinates than HUGE_ESCAPE entries), a symbol
 * that is neither 0, a rank nor LONG_ESCAPE, and a long index past the extended table: never a μ read
 * past a stream's end.
 *
 * @example
 * const walker = new UniversalEscapeWalker(m.scheme.lattice, m);
 * while (walker.nextEscaped()) largest[walker.column] = Math.max(largest[walker.column], walker.escapeNorm());
 */
export class UniversalEscapeWalker {
  /** μ of a HUGE_ESCAPE block (point coordinates): a buffer reused for every such block. */
  readonly explicit: Int32Array;
  readonly spec: LatticeSpec;
  // The spec's fields as own fields (its `escapes` is a getter), and its table's measures.
  private readonly candidates: EscapeCandidates;
  private readonly measures: EscapeMeasures;
  private readonly d: number;
  private readonly pointScale: number;
  /** The lattice's largest rank (`largestEscapeRank`): D3 has 12 roots, so 13…15 name none. */
  private readonly maxRank: number;
  private readonly blocks: number;
  /** `column` and the index of its first block, brought up to `index` when asked (`settle`). */
  private currentColumn = 0;
  private columnStart = 0;
  private longCursor = 0;
  private hugeCursor = 0;
  // The current block (read through the getters: only a step changes them).
  private at = -1;
  private atSymbol = 0;
  private atLongIndex = 0;
  private atMu: Int32Array | null = null;
  private atMuOffset = 0;

  // The streams as own fields: one load each per step, whatever the matrix object's shape.
  private readonly escapes: Uint8Array;
  private readonly longEscapes: Uint16Array;
  private readonly hugeEscapes: Int32Array;
  private readonly blocksPerColumn: number;

  constructor(lattice: LatticeName, m: UniversalEscapeStreams) {
    this.spec = latticeSpec(lattice);
    this.candidates = this.spec.escapes;
    this.measures = escapeMeasures(this.spec);
    this.d = this.spec.dimension;
    this.pointScale = this.spec.pointScale;
    this.maxRank = largestEscapeRank(this.candidates);
    this.escapes = m.escapes;
    this.longEscapes = m.longEscapes;
    this.hugeEscapes = m.hugeEscapes;
    this.blocksPerColumn = m.blocksPerColumn;
    this.explicit = new Int32Array(this.d);
    this.blocks = m.cols * m.blocksPerColumn;
  }

  /** The column-major index of the current block (column·blocksPerColumn + block); −1 before the first step. */
  get index(): number {
    return this.at;
  }

  /** The current block's escape symbol: 0 (none), a rank 1…MAX_ESCAPE_RANK, or LONG_ESCAPE. */
  get symbol(): number {
    return this.atSymbol;
  }

  /** With LONG_ESCAPE: the extended-table index, or HUGE_ESCAPE (then `explicit` holds μ); else 0. */
  get longIndex(): number {
    return this.atLongIndex;
  }

  /**
   * With LONG_ESCAPE: the array holding μ (d coordinates from `muOffset`): the extended table, or
   * `explicit`. Else null: a ranked escape's root depends on the block's leader (`rootOfRank`), which
   * only a decode knows.
   */
  get mu(): Int32Array | null {
    return this.atMu;
  }

  /** Where μ starts in `mu`. */
  get muOffset(): number {
    return this.atMuOffset;
  }

  /** The current block's column. */
  get column(): number {
    this.settle();
    return this.currentColumn;
  }

  /** The current block's index within its column. */
  get block(): number {
    this.settle();
    return this.at - this.columnStart;
  }

  /** Steps to the next block; false past the last (cols × blocksPerColumn) block. */
  next(): boolean {
    const index = this.at + 1;
    if (index >= this.blocks) {
      this.at = this.blocks;
      return false;
    }
    this.at = index;
    this.read(this.escapes[index] as number);
    return true;
  }

  /** Steps to the next escaped block (symbol ≠ 0), passing over the others; false when none is left. */
  nextEscaped(): boolean {
    const { escapes } = this;
    const blocks = this.blocks;
    let index = this.at + 1;
    while (index < blocks && escapes[index] === 0) index++;
    if (index >= blocks) {
      this.at = blocks;
      return false;
    }
    this.at = index;
    this.read(escapes[index] as number);
    return true;
  }

  /**
   * ‖μ‖/s of the current block in λ units (s the point scale): 0 without an escape, the roots' norm for
   * a ranked escape, the table row's or the explicit μ's for a long one.
   */
  escapeNorm(): number {
    if (this.atSymbol === 0) return 0;
    if (this.atMu === null) return this.measures.rootNorm;
    if (this.atLongIndex !== HUGE_ESCAPE) return this.measures.norms[this.atLongIndex] as number;
    return Math.sqrt(squaredNorm(this.explicit, 0, this.d)) / this.pointScale;
  }

  /**
   * A bound on max_v |μ_v| of the current block (point coordinates): 0 without an escape, the largest
   * over all roots for a ranked escape, exact for a long one.
   */
  escapeLargest(): number {
    if (this.atSymbol === 0) return 0;
    if (this.atMu === null) return this.measures.rootLargest;
    if (this.atLongIndex !== HUGE_ESCAPE) return this.measures.largest[this.atLongIndex] as number;
    return largestMagnitude(this.explicit, 0, this.d);
  }

  /** Brings the column up to `index`, which only grows: O(cols) over a walk, no division per block. */
  private settle(): void {
    const perColumn = this.blocksPerColumn;
    while (this.at - this.columnStart >= perColumn) {
      this.currentColumn++;
      this.columnStart += perColumn;
    }
  }

  private read(symbol: number): void {
    this.atSymbol = symbol;
    this.atLongIndex = 0;
    this.atMu = null;
    // A rank past the lattice's roots would decode a stale root (`rootOfRank` keeps only rootCount).
    if (symbol > this.maxRank) {
      if (symbol > MAX_ESCAPE_RANK) this.readLong(symbol);
      else this.notASymbol(symbol);
    }
  }

  /** Reads the current LONG_ESCAPE block's entry of the long stream (and its μ from the explicit one). */
  private readLong(symbol: number): void {
    if (symbol !== LONG_ESCAPE) this.notASymbol(symbol);
    const { longEscapes, hugeEscapes } = this;
    check(this.longCursor < longEscapes.length, 'the universal matrix has fewer long escapes than its escape symbols announce');
    const longIndex = longEscapes[this.longCursor++] as number;
    this.atLongIndex = longIndex;
    if (longIndex === HUGE_ESCAPE) {
      const { explicit, d } = this;
      check(this.hugeCursor + d <= hugeEscapes.length, 'the universal matrix has fewer explicit escapes than its long escapes announce');
      for (let v = 0; v < d; v++) explicit[v] = hugeEscapes[this.hugeCursor++] as number;
      this.atMu = explicit;
      this.atMuOffset = 0;
    } else {
      this.atMu = this.candidates.extended;
      this.atMuOffset = extendedRow(this.spec, this.candidates, longIndex);
    }
  }

  private notASymbol(symbol: number): never {
    throw new LatticeMatmulError(`block ${this.block} of column ${this.column} has escape symbol ${symbol}: not 0, a rank 1…${this.maxRank} or ${LONG_ESCAPE}`);
  }
}

/** Per lattice: ‖μ‖/s and max_v |μ_v| of each extended-table row, and of the roots (all alike in norm). */
interface EscapeMeasures {
  readonly norms: Float64Array;
  readonly largest: Float64Array;
  readonly rootNorm: number;
  readonly rootLargest: number;
}

const escapeMeasuresOf = new Map<string, EscapeMeasures>();

function escapeMeasures(spec: LatticeSpec): EscapeMeasures {
  let found = escapeMeasuresOf.get(spec.name);
  if (found === undefined) {
    const { extended, extendedCount, roots, rootCount } = spec.escapes;
    const d = spec.dimension;
    const norms = new Float64Array(extendedCount);
    const largest = new Float64Array(extendedCount);
    for (let r = 0; r < extendedCount; r++) {
      norms[r] = Math.sqrt(squaredNorm(extended, r * d, d)) / spec.pointScale;
      largest[r] = largestMagnitude(extended, r * d, d);
    }
    let rootLargest = 0;
    for (let r = 0; r < rootCount; r++) rootLargest = Math.max(rootLargest, largestMagnitude(roots, r * d, d));
    found = { norms, largest, rootNorm: Math.sqrt(squaredNorm(roots, 0, d)) / spec.pointScale, rootLargest };
    escapeMeasuresOf.set(spec.name, found);
  }
  return found;
}

function squaredNorm(values: ArrayLike<number>, offset: number, count: number): number {
  let sum = 0;
  for (let v = 0; v < count; v++) sum += (values[offset + v] as number) ** 2;
  return sum;
}

function largestMagnitude(values: ArrayLike<number>, offset: number, count: number): number {
  let most = 0;
  for (let v = 0; v < count; v++) most = Math.max(most, Math.abs(values[offset + v] as number));
  return most;
}

/** The code of block `index` (column-major) of `m`: `codes[index]` plus `codesHigh[index]`·2^32. */
export function universalBlockCode(m: Pick<UniversalLatticeMatrix, 'codes' | 'codesHigh'>, index: number): number {
  return (m.codes[index] as number) + (m.codesHigh === null ? 0 : (m.codesHigh[index] as number) * 2 ** 32);
}

/** What `UniversalPointReader` reads of a universal matrix. */
export type UniversalPointStreams = UniversalEscapeStreams & Pick<UniversalLatticeMatrix, 'scheme' | 'codes' | 'codesHigh'>;

/**
 * Decodes the lattice points λ of a universal matrix's blocks, following its escape streams with one
 * `UniversalEscapeWalker` (`blocks`): `next()` steps to the next block (block 0 of column 0 first) and
 * returns its point; or step `blocks` yourself (`next`, `nextEscaped`) and call `point()` only for the
 * blocks you need. The point is in a buffer reused for every block. A decoder that holds one column at
 * a time reads with it.
 */
export class UniversalPointReader {
  /** The walker over the matrix's blocks and escape streams; `point()` decodes the block it is on. */
  readonly blocks: UniversalEscapeWalker;
  private readonly decoder: UniversalBlockDecoder;
  private readonly out: Int32Array;

  constructor(private readonly q: UniversalPointStreams) {
    const codec = universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta);
    this.blocks = new UniversalEscapeWalker(q.scheme.lattice, q);
    this.decoder = new UniversalBlockDecoder(codec);
    this.out = new Int32Array(codec.spec.dimension);
  }

  /** The point of the walker's current block. */
  point(): Int32Array {
    const { blocks } = this;
    this.decoder.decode(universalBlockCode(this.q, blocks.index), blocks.symbol, blocks.longIndex, blocks.explicit, this.out);
    return this.out;
  }

  /** Steps to the next block (column-major block index 0, 1, …) and returns its point. */
  next(): Int32Array {
    this.blocks.next();
    return this.point();
  }
}

/**
 * Calls `visit(column, block, point)` with the lattice point λ (point coordinates, in a buffer reused for
 * every block) of every block of `q`, column by column, reading its long and huge escape streams in
 * order (`UniversalPointReader`): the decode that `decodeRotated` and the E8 point form (`e8PointForm`) share.
 */
export function forEachUniversalPoint(q: UniversalLatticeMatrix, visit: (column: number, block: number, point: Int32Array) => void): void {
  const reader = new UniversalPointReader(q);
  for (let j = 0; j < q.cols; j++) {
    for (let b = 0; b < q.blocksPerColumn; b++) visit(j, b, reader.next());
  }
}

/**
 * β/(DITHER_GRID·√N): a universal matrix's decoded entry is ν_j·unit·(λ_v·DITHER_GRID/pointScale − Z_v)
 * (the unit of `decodeRotated`'s dither term, the GEMVs' and the E8 point form's column unit).
 */
export function universalDitherUnit(m: { readonly scheme: { readonly beta: number }; readonly length: number }): number {
  return m.scheme.beta / (DITHER_GRID * Math.sqrt(m.length));
}
