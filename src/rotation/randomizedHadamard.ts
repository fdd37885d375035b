import { check, checkPositiveInteger } from '../errors.js';
import { checkMatrix, firstNonFinite, type Matrix } from '../matrix.js';
import { hadamardTransformInPlace, hadamardTransposeInPlace, rotationLength } from './hadamard.js';
import { counterSign, RandomStream } from './random.js';

/**
 * The randomized Hadamard rotation x ↦ c · H_N · D · pad(x) of DESIGN §3 step 3: `pad` appends zeros up
 * to N = rotationLength(n) (zeros change no inner product), D = diag(s_0, …, s_{N−1}) holds the signs
 * s_i = counterSign(seed, RandomStream.rotationSigns, i), H_N is the unnormalized Hadamard matrix of
 * `hadamardTransformInPlace`, and c = fround(1/√N) makes the map (nearly, in f32) orthogonal. Two
 * encoders that share `seed` rotate with the same matrix, so inner products survive the rotation.
 *
 * f32 discipline (the WebGPU kernel reproduces it bit for bit, up to the sign of zero, which WGSL
 * may ignore):
 * - forward: out[i] = s_i · x_i for i < n (a sign flip, exact), +0 for n ≤ i < N; then
 *   `hadamardTransformInPlace(out, N)`; then out[i] = fround(out[i] · c).
 * - inverse: t = `hadamardTransposeInPlace(copy of y, N)`; out[i] = s_i · fround(t[i] · c) for i < n.
 *
 * @example
 * const rotation = new RandomizedHadamard(1000, 42); // length 1024
 * const y = rotation.forward(x);                     // Float32Array(1024), ‖y‖ ≈ ‖x‖
 * const back = rotation.inverse(y);                  // Float32Array(1000) ≈ x
 */
export class RandomizedHadamard {
  /** Entries of an input vector. */
  readonly n: number;
  /** N = rotationLength(n): entries of a rotated vector. */
  readonly length: number;
  /** The u32 seed of the signs. */
  readonly seed: number;
  /** c = fround(1/√N). */
  readonly scale: number;
  /** s_i for i < N as f32 ±1 (the padded tail's signs serve `inverseColumns` with rows > n). */
  private readonly signs: Float32Array;
  /** Working copy for the inverse (its output has only n of the N entries). */
  private readonly scratch: Float32Array;

  constructor(n: number, seed: number) {
    checkPositiveInteger(n, 'RandomizedHadamard n');
    check(
      Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff,
      () => `RandomizedHadamard seed must be an integer in [0, 2^32 - 1], got ${seed}`,
    );
    this.n = n;
    this.seed = seed;
    this.length = rotationLength(n);
    check(
      this.length <= 1 << 30,
      () => `RandomizedHadamard: n = ${n} pads to ${this.length} entries, more than this library supports (2^30)`,
    );
    this.scale = Math.fround(1 / Math.sqrt(this.length));
    this.signs = new Float32Array(this.length);
    for (let i = 0; i < this.length; i++) this.signs[i] = counterSign(seed, RandomStream.rotationSigns, i);
    this.scratch = new Float32Array(this.length);
  }

  /** s_i = counterSign(seed, RandomStream.rotationSigns, i) for any u32 index i. */
  sign(i: number): 1 | -1 {
    return counterSign(this.seed, RandomStream.rotationSigns, i);
  }

  /**
   * c · H_N · D · pad(x): a Float32Array of N = `length` entries (written into `out` when given).
   * `out` may be `x` itself only when n = N.
   */
  forward(x: Float32Array, out?: Float32Array): Float32Array {
    check(x instanceof Float32Array, 'RandomizedHadamard.forward: x must be a Float32Array');
    check(x.length === this.n, () => `RandomizedHadamard.forward: x has ${x.length} entries, expected n = ${this.n}`);
    checkFinite(x, 'RandomizedHadamard.forward: x');
    const result = out ?? new Float32Array(this.length);
    checkOutput(result, this.length, x, 'RandomizedHadamard.forward');
    this.forwardUnchecked(x, result);
    return result;
  }

  /**
   * The first n entries of D · c · H_Nᵀ · y: the inverse of `forward` (up to f32 rounding) for y of
   * N = `length` entries. Returns a Float32Array of n entries (written into `out` when given).
   */
  inverse(y: Float32Array, out?: Float32Array): Float32Array {
    check(y instanceof Float32Array, 'RandomizedHadamard.inverse: y must be a Float32Array');
    check(
      y.length === this.length,
      () => `RandomizedHadamard.inverse: y has ${y.length} entries, expected N = length = ${this.length}`,
    );
    checkFinite(y, 'RandomizedHadamard.inverse: y');
    const result = out ?? new Float32Array(this.n);
    checkOutput(result, this.n, undefined, 'RandomizedHadamard.inverse');
    this.inverseUnchecked(y, result, this.n);
    return result;
  }

  /**
   * `forward` applied to every column of an n-row matrix: a new N × cols matrix.
   *
   * @example
   * const rotated = new RandomizedHadamard(a.rows, seed).forwardColumns(a); // rows = rotationLength(a.rows)
   */
  forwardColumns(m: Matrix): Matrix {
    checkMatrix(m, 'RandomizedHadamard.forwardColumns input');
    check(
      m.rows === this.n,
      () => `RandomizedHadamard.forwardColumns: the matrix has ${m.rows} rows, expected n = ${this.n}`,
    );
    const N = this.length;
    const data = new Float32Array(N * m.cols);
    for (let j = 0; j < m.cols; j++) {
      this.forwardUnchecked(m.data.subarray(j * m.rows, (j + 1) * m.rows), data.subarray(j * N, (j + 1) * N));
    }
    return { rows: N, cols: m.cols, data };
  }

  /**
   * `inverse` applied to every column of an N-row matrix, keeping the first `rows` entries of each
   * (default n; up to N, where rows past n undo the rotation of the zero padding and are ≈ 0 for a
   * rotated input).
   */
  inverseColumns(m: Matrix, rows: number = this.n): Matrix {
    checkMatrix(m, 'RandomizedHadamard.inverseColumns input');
    check(
      m.rows === this.length,
      () => `RandomizedHadamard.inverseColumns: the matrix has ${m.rows} rows, expected N = length = ${this.length}`,
    );
    check(
      Number.isInteger(rows) && rows >= 1 && rows <= this.length,
      () => `RandomizedHadamard.inverseColumns: rows must be an integer in [1, ${this.length}], got ${rows}`,
    );
    const N = this.length;
    const data = new Float32Array(rows * m.cols);
    for (let j = 0; j < m.cols; j++) {
      this.inverseUnchecked(m.data.subarray(j * N, (j + 1) * N), data.subarray(j * rows, (j + 1) * rows), rows);
    }
    return { rows, cols: m.cols, data };
  }

  private forwardUnchecked(x: Float32Array, out: Float32Array): void {
    const { n, length: N, scale, signs } = this;
    for (let i = 0; i < n; i++) out[i] = (signs[i] as number) * (x[i] as number);
    out.fill(0, n, N);
    hadamardTransformInPlace(out, N);
    // A Float32Array store rounds the float64 product of two f32 values exactly like Math.fround.
    for (let i = 0; i < N; i++) out[i] = (out[i] as number) * scale;
  }

  private inverseUnchecked(y: Float32Array, out: Float32Array, rows: number): void {
    const { length: N, scale, signs, scratch } = this;
    scratch.set(y);
    hadamardTransposeInPlace(scratch, N);
    for (let i = 0; i < rows; i++) out[i] = (signs[i] as number) * Math.fround((scratch[i] as number) * scale);
  }
}

function checkFinite(v: Float32Array, what: string): void {
  const bad = firstNonFinite(v);
  check(bad < 0, () => `${what} has a non-finite entry ${v[bad]} at index ${bad}`);
}

/**
 * `out` must be a Float32Array of `expected` entries and, when it shares memory with the input, be
 * the input itself (the elementwise first step then reads each entry before writing it).
 */
function checkOutput(out: Float32Array, expected: number, input: Float32Array | undefined, what: string): void {
  check(out instanceof Float32Array, `${what}: out must be a Float32Array`);
  check(out.length === expected, () => `${what}: out has ${out.length} entries, expected ${expected}`);
  if (input === undefined || out === input || out.buffer !== input.buffer) return;
  const outEnd = out.byteOffset + out.byteLength;
  const inEnd = input.byteOffset + input.byteLength;
  check(
    outEnd <= input.byteOffset || inEnd <= out.byteOffset,
    `${what}: out overlaps x without being x; pass a separate array`,
  );
}
