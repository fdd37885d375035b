import { check, checkOneOf, checkPositiveInteger, describeValue, LatticeMatmulError } from '../errors.js';
import { HUGE_ESCAPE, largestEscapeRank } from '../lattices/escapes.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { isRotationLength, MAX_PADDED_ROTATION_N, oneStageRotationLength, rotationLengthsText, rotationPlan } from '../rotation/hadamard.js';
import { isSupportedColumnNorm, MAX_COLUMN_NORM } from './prepareColumn.js';
import { latticeSpec, universalCodec, type LatticeName, type LatticeSpec } from './latticeSpec.js';
import { scaleGrid, scaleGridMismatch } from './scaleGrid.js';
import type { QuantizedMatrix } from './quantizedMatrix.js';
import { resolveScheme, type DeterministicLatticeScheme, type Scheme } from './schemes.js';
import { checkDitherKeys, LONG_ESCAPE, MAX_EXPLICIT_COORDINATE } from './universalCode.js';

/*
 * Quantized matrices are plain objects (they serialize, cross workers, and come back from the
 * container reader), so a caller can hand over one that was edited, truncated or built by hand. Every
 * function that reads one checks its structure first: kinds, shapes, typed arrays of the right type
 * and length, escape streams that add up, finite norms, and every value that selects something (a
 * code word below q^d, a scale index below the multiples, an escape rank among the roots): a code word
 * past q^d would read past the table product's table (NaN) and a rank past the roots a stale entry.
 */

function checkTyped(value: unknown, type: { new (n: number): ArrayLike<number>; name: string }, length: number, what: string): void {
  check(value instanceof type, () => `${what} must be a ${type.name}, got ${describeValue(value)}`);
  const actual = (value as ArrayLike<number>).length;
  check(actual === length, () => `${what} has ${actual} entries, expected ${length}`);
}

function checkFiniteArray(values: ArrayLike<number>, what: string, low: number, high: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    check(Number.isFinite(v) && v >= low && v <= high, () => `${what}[${i}] = ${v} is outside [${low}, ${high}]`);
  }
}

function checkOptionalMeans(means: unknown, cols: number, name: string): void {
  if (means === null) return;
  checkTyped(means, Float32Array, cols, `${name}.means`);
  checkFiniteArray(means as Float32Array, `${name}.means`, -MAX_COLUMN_NORM, MAX_COLUMN_NORM);
}

/** Every code word (low 32 bits, plus 2^32 × `high` for codes over 32 bits) below q^d = `codeCount`. */
function checkCodeWords(codes: Uint32Array, high: Uint16Array | null, codeCount: number, name: string): void {
  for (let i = 0; i < codes.length; i++) {
    const code = (codes[i] as number) + (high === null ? 0 : (high[i] as number) * 2 ** 32);
    check(code < codeCount, () => `${name}.codes[${i}]${high === null ? '' : ' (with codesHigh)'} = ${code} is not below q^d = ${codeCount}`);
  }
}

/**
 * Refuses a block's escape symbol that is neither 0 (none), a root's rank 1 … min(15, roots) nor
 * LONG_ESCAPE, naming it as `name`[i]; returns the number of long escapes. Shared by every reader of a
 * universal matrix and by the container writer (whose packer would otherwise refuse it by its internals).
 */
export function checkEscapeSymbols(escapes: Uint8Array, spec: Pick<LatticeSpec, 'name' | 'escapes'>, name: string): number {
  const maxRank = largestEscapeRank(spec.escapes);
  let longCount = 0;
  for (let i = 0; i < escapes.length; i++) {
    const symbol = escapes[i] as number;
    if (symbol === LONG_ESCAPE) longCount++;
    // Tested before check() is called: no message closure per block of a large matrix.
    else if (symbol > maxRank) check(false, () => `${name}[${i}] = ${symbol} is not an escape symbol (0, a rank 1…${maxRank} among the ${spec.escapes.rootCount} roots of ${spec.name}, or ${LONG_ESCAPE})`);
  }
  return longCount;
}

/**
 * Why a deterministic D3 matrix's codes are not what its decoders agree on, or null: a last, partial
 * block (keptLength not a multiple of 3) whose coset leader has a nonzero coordinate past keptLength.
 * Every decode drops such a coordinate, but the D3 inner-product tables (the CPU table product and the
 * GPU d3-table kernel) cannot, so those products would disagree with `dequantize` and the GEMV.
 * `quantize` never writes one for D3: the padded coordinates are 0, and D_n's rounding breaks ties
 * toward the lowest index, so they stay 0 (none in 150,000 last blocks of Gaussian, integer,
 * half-integer and clipped data); a forged file can. E8 leaders are nonzero there by nature (the
 * ½-coset), and every E8 product drops those coordinates as its decode does: no rule for E8.
 */
export function deterministicTailProblem(lattice: LatticeName, q: number, codes: ArrayLike<number>, blocksPerColumn: number, keptLength: number, cols: number): string | null {
  if (lattice !== 'D3') return null;
  const d = latticeSpec(lattice).dimension;
  const first = keptLength - (blocksPerColumn - 1) * d; // coordinates of the last block that exist
  if (first === d) return null;
  const code = new VoronoiCode(latticeSpec(lattice).lattice, q);
  const point = new Int32Array(d);
  for (let j = 0; j < cols; j++) {
    const index = j * blocksPerColumn + blocksPerColumn - 1;
    code.decode(codes[index] as number, point);
    for (let i = first; i < d; i++) {
      if (point[i] !== 0) return `code ${codes[index]} of the last block of column ${j} has a nonzero coordinate ${i} past the column's ${keptLength} coordinates (a decode drops it, the inner-product tables cannot)`;
    }
  }
  return null;
}

/**
 * Refuses time-sharing (`what`: keeping a prefix of the rotated coordinates) over a rotation of n =
 * `rows` to `length` that is not one stage. A prefix is an unbiased sample of a column's energy only when every
 * rotated coordinate mixes every input alike: a one-stage (padded) rotation. The two-window rotation
 * of longer columns (rotationPlan) over-weighs the first window in a prefix (measured: estimate/exact
 * 0.44 instead of 0.52 at κ = 0.5, n = 3000), and inputs past the first window reach only the second:
 * a prefix that ends before it never reads them, so a NaN there would give finite products.
 */
export function checkTimeSharedRotation(rows: number, length: number, rotate: boolean, what: string): void {
  if (!rotate) return;
  const stages = rotationPlan(rows, length).stages.length;
  check(
    stages === 1,
    () =>
      `${what} (time-sharing) needs a one-stage rotation, but n = ${rows} is rotated in ${stages} overlapping windows to ${length} entries; ` +
      (rows <= MAX_PADDED_ROTATION_N
        ? `its one-stage rotation pads to ${oneStageRotationLength(rows)} (quantize with keepFraction < 1 does)`
        : `use n ≤ ${MAX_PADDED_ROTATION_N} or a Hadamard length (m·2^k, m ∈ {1, 12, 20}), or pad the columns to a Hadamard length`),
  );
}

/**
 * Checks that `q` is a well-formed quantized matrix, throwing a `LatticeMatmulError` that names the
 * first field that is not. Cost: one pass over the per-block side arrays.
 */
export function checkQuantizedMatrix(q: QuantizedMatrix, name: string): void {
  check(typeof q === 'object' && q !== null, () => `${name} must be a quantized matrix (from quantize), got ${describeValue(q)}`);
  // A GPU matrix has the same fields with buffers in place of typed arrays: say so, not "q.means must be a Float32Array".
  const codes: unknown = (q as { codes?: unknown }).codes;
  check(
    !(typeof codes === 'object' && codes !== null && typeof (codes as { usage?: unknown }).usage === 'number'),
    () => `${name} is already on the GPU (its codes are a GPUBuffer): this takes a CPU-quantized matrix, from quantize() or a GPU matrix's read()`,
  );
  const kind: unknown = q.kind;
  checkOneOf(kind, ['lattice', 'scalar'], `${name}.kind`);
  checkPositiveInteger(q.rows, `${name}.rows`);
  checkPositiveInteger(q.cols, `${name}.cols`);
  check(typeof q.rotate === 'boolean', () => `${name}.rotate must be a boolean, got ${describeValue(q.rotate)}`);
  check(Number.isInteger(q.seed) && q.seed >= 0 && q.seed <= 0xffffffff, () => `${name}.seed must be a 32-bit unsigned integer, got ${describeValue(q.seed)}`);
  check(
    q.rotate ? isRotationLength(q.rows, q.length) : q.length === q.rows,
    () =>
      q.rotate
        ? `${name}.length must be a rotated length of ${q.rows} rows (${rotationLengthsText(q.rows)}), got ${describeValue(q.length)}`
        : `${name}.length must be ${q.rows} for ${q.rows} rows (rotate: false), got ${describeValue(q.length)}`,
  );
  const length = q.length;
  check(
    Number.isInteger(q.keptLength) && q.keptLength >= 1 && q.keptLength <= length,
    () => `${name}.keptLength must be an integer in [1, ${length}], got ${describeValue(q.keptLength)}`,
  );
  if (q.keptLength < length) checkTimeSharedRotation(q.rows, length, q.rotate, `${name}.keptLength ${q.keptLength} < length ${length}`);
  checkOptionalMeans(q.means, q.cols, name);
  let scheme: Scheme;
  try {
    scheme = resolveScheme(q.scheme);
  } catch (error) {
    throw error instanceof LatticeMatmulError ? new LatticeMatmulError(`${name}.scheme: ${error.message}`) : error;
  }
  const blocks = q.cols * (q.kind === 'lattice' ? q.blocksPerColumn : 0);
  if (q.kind === 'scalar') {
    check(scheme.kind === 'int' || scheme.kind === 'nvfp4', () => `${name} is a scalar matrix but its scheme is a ${scheme.kind} scheme`);
    checkPositiveInteger(q.groupsPerColumn, `${name}.groupsPerColumn`);
    checkTyped(q.codes, Uint8Array, q.cols * length, `${name}.codes`);
    checkTyped(q.scales, scheme.kind === 'nvfp4' ? Uint8Array : Float32Array, q.cols * q.groupsPerColumn, `${name}.scales`);
    if (q.scales instanceof Float32Array) checkFiniteArray(q.scales, `${name}.scales`, 0, Number.MAX_VALUE);
    check(Number.isFinite(q.tensorScale) && q.tensorScale > 0, () => `${name}.tensorScale must be a positive number, got ${describeValue(q.tensorScale)}`);
    return;
  }
  check(scheme.kind === 'lattice' && scheme.mode === q.mode, () => `${name}.mode ${describeValue(q.mode)} does not match its scheme`);
  const d = scheme.lattice === 'D3' ? 3 : 8;
  check(q.blocksPerColumn === Math.ceil(q.keptLength / d), () => `${name}.blocksPerColumn must be ${Math.ceil(q.keptLength / d)}, got ${describeValue(q.blocksPerColumn)}`);
  checkTyped(q.norms, Float32Array, q.cols, `${name}.norms`);
  for (let j = 0; j < q.cols; j++) {
    const norm = q.norms[j] as number;
    check(isSupportedColumnNorm(norm), () => `${name}.norms[${j}] = ${norm} is neither 0 nor in [2^-100, 2^100] (the range quantize writes)`);
  }
  checkTyped(q.codes, Uint32Array, blocks, `${name}.codes`);
  const codeCount = scheme.q ** d;
  if (q.mode === 'deterministic') {
    checkCodeWords(q.codes, null, codeCount, name);
    const tail = deterministicTailProblem(scheme.lattice, scheme.q, q.codes, q.blocksPerColumn, q.keptLength, q.cols);
    check(tail === null, () => `${name}: ${tail ?? ''}`);
    if (q.gains !== null) {
      checkTyped(q.gains, Float32Array, q.cols, `${name}.gains`);
      checkFiniteArray(q.gains, `${name}.gains`, -MAX_COLUMN_NORM, MAX_COLUMN_NORM);
    }
    check(q.multiples instanceof Int32Array, () => `${name}.multiples must be an Int32Array, got ${describeValue(q.multiples)}`);
    // unit and multiples scale every decoded entry (and the table product's sums): they must be the
    // scheme's own grid, as the container reader requires.
    const own = scheme as DeterministicLatticeScheme; // its mode is q.mode, checked above
    const mismatch = scaleGridMismatch(scaleGrid(own.overload, latticeSpec(own.lattice).maxDenominator), q.unit, q.multiples);
    check(mismatch === null, () => `${name}.${mismatch ?? ''}`);
    checkTyped(q.scaleIndices, Uint8Array, blocks, `${name}.scaleIndices`);
    for (let i = 0; i < blocks; i++) {
      check((q.scaleIndices[i] as number) < q.multiples.length, () => `${name}.scaleIndices[${i}] is not below multiples.length = ${q.multiples.length}`);
    }
    return;
  }
  check(
    typeof q.nonce === 'bigint' && q.nonce >= 0n && q.nonce < 2n ** 64n,
    () => `${name}.nonce must be a bigint in [0, 2^64), got ${describeValue(q.nonce)}`,
  );
  checkDitherKeys(q.ditherKeys, `${name}.ditherKeys`);
  const codec = universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta);
  if (codec.codeBits > 32) checkTyped(q.codesHigh, Uint16Array, blocks, `${name}.codesHigh`);
  else check(q.codesHigh === null, () => `${name}.codesHigh must be null for ${codec.codeBits}-bit codes`);
  checkCodeWords(q.codes, q.codesHigh, codeCount, name);
  checkTyped(q.escapes, Uint8Array, blocks, `${name}.escapes`);
  const longCount = checkEscapeSymbols(q.escapes, codec.spec, `${name}.escapes`);
  checkTyped(q.longEscapes, Uint16Array, longCount, `${name}.longEscapes (one per block with escape ${LONG_ESCAPE})`);
  let hugeCount = 0;
  for (let i = 0; i < longCount; i++) {
    const index = q.longEscapes[i] as number;
    if (index === HUGE_ESCAPE) hugeCount++;
    else check(index < codec.spec.escapes.extendedCount, () => `${name}.longEscapes[${i}] = ${index} is outside the ${codec.spec.name} extended table`);
  }
  checkTyped(q.hugeEscapes, Int32Array, hugeCount * d, `${name}.hugeEscapes (${d} per huge escape)`);
  const beyond = q.hugeEscapes.findIndex((v) => Math.abs(v) > MAX_EXPLICIT_COORDINATE);
  check(
    beyond < 0,
    () =>
      `${name}.hugeEscapes[${beyond}] = ${q.hugeEscapes[beyond]} is beyond ±2^16, more than any encoder writes (its fixed-point limit keeps explicit escapes below 2^15) ` +
      'and more than the decoders take in i32',
  );
}
