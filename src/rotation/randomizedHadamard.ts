import { check, checkPositiveInteger, describeValue, LatticeMatmulError } from '../errors.js';
import { checkMatrix, firstNonFinite, type Matrix } from '../matrix.js';
import { hadamardTransformInPlace, hadamardTransposeInPlace, rotationLength, rotationPlan, type RotationPlan } from './hadamard.js';
import { counterHash, counterSign, RandomStream } from './random.js';

/**
 * The randomized Hadamard rotation shared by both operands ([1]), following `rotationPlan(n, N)`:
 * x ↦ W_{r−1}·D_{r−1} ⋯ W_0·D_0 · pad(x). `pad` appends zeros up to N (`rotationLength(n)` by default; zeros change
 * no inner product). Stage k has a window [o_k, o_k + L_k); D_k flips the window's entries (only) by the signs
 * s^(k)_p = −1 ⇔ bit 31 of counterHash(seed, RandomStream.rotationSigns, p, k) (p: the index in the
 * whole vector; s^(0)_p = counterSign(seed, RandomStream.rotationSigns, p)), and W_k applies
 * c_k·H_{L_k} to the window, H the unnormalized Hadamard matrix of `hadamardTransformInPlace`,
 * c_k = fround(1/√L_k); entries outside the window are left alone. With one stage (window [0, N)) this
 * is c·H_N·D·pad(x); with two, the windows [0, L) and [n − L, n) overlap and the second stage's own
 * signs make every output a random-sign mixture of the whole vector. Each stage is orthogonal (up to
 * f32 rounding), so the map is. Two encoders that share `seed` rotate with the same matrix, so inner
 * products survive the rotation.
 *
 * f32 discipline (a contract: the WebGPU kernel reproduces it bit for bit, up to the sign of zero,
 * which WGSL may ignore):
 * - forward: t_p = x_p for p < n, +0 for n ≤ p < N. Then for each stage k in order:
 *   t_p = s^(k)_p · t_p for the window's p < n (a sign flip, exact; the padding, which only one-stage
 *   plans have, stays +0); `hadamardTransformInPlace` on t[o_k … o_k + L_k) with window-local indices;
 *   t_p = fround(t_p · c_k) on the window. Output t. (One stage: t_p = s_p·x_p, H_N, times c, as
 *   before windowed plans.)
 * - inverse: t = a copy of y; for each stage k from the last to the first: `hadamardTransposeInPlace` on
 *   the window; t_p = s^(k)_p · fround(t_p · c_k) on the window. Output t_p for p < rows.
 *
 * @example
 * const rotation = new RandomizedHadamard(200, 42);  // length 256, one stage
 * const y = rotation.forward(x);                      // Float32Array(256), ‖y‖ ≈ ‖x‖
 * const back = rotation.inverse(y);                   // Float32Array(200) ≈ x
 * new RandomizedHadamard(896, 42).length;             // 896: windows [0, 768) and [128, 896)
 * new RandomizedHadamard(896, 42, 1024).length;       // 1024: one stage, padded (time-sharing, format ≤ 2)
 * new RandomizedHadamard(11008, 42).length;           // 11008: windows [0, 10240) and [768, 11008)
 */
export class RandomizedHadamard {
  /** Entries of an input vector. */
  readonly n: number;
  /** N: entries of a rotated vector (`rotationLength(n)` unless the constructor was given another). */
  readonly length: number;
  /** The u32 seed of the signs. */
  readonly seed: number;
  /** The stages (`rotationPlan(n, length)`). */
  readonly plan: RotationPlan;
  /** c_k = fround(1/√L_k) of each stage, in the order of `plan.stages`. */
  readonly stageScales: readonly number[];
  /** c = fround(1/√L_0) of the first stage: the only one unless the plan has two windows. */
  readonly scale: number;
  /** s^(0)_p for p < N as f32 ±1 (the padded tail's signs serve `inverseColumns` with rows > n). */
  private readonly signs: Float32Array;
  /** s^(k)_{o_k + i} for the later stages k ≥ 1, window-local (empty for a one-stage plan). */
  private readonly stageSigns: readonly Float32Array[];
  /** Working copy for the inverse (its output has only n of the N entries). */
  private readonly scratch: Float32Array;

  /**
   * @param length N, the rotated length: `rotationLength(n)` by default; a quantized matrix passes its
   *   own (`q.length`), which may be the one-stage padded length of a time-shared or older matrix.
   */
  constructor(n: number, seed: number, length?: number) {
    checkPositiveInteger(n, 'RandomizedHadamard n');
    check(
      Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff,
      () => `RandomizedHadamard seed must be an integer in [0, 2^32 - 1], got ${describeValue(seed)}`,
    );
    this.n = n;
    this.seed = seed;
    this.plan = rotationPlan(n, length ?? rotationLength(n));
    this.length = this.plan.length;
    check(
      this.length <= 1 << 30,
      () => `RandomizedHadamard: n = ${n} pads to ${this.length} entries, more than this library supports (2^30)`,
    );
    this.stageScales = Object.freeze(this.plan.stages.map((s) => Math.fround(1 / Math.sqrt(s.length))));
    this.scale = this.stageScales[0] as number;
    this.signs = new Float32Array(this.length);
    for (let i = 0; i < this.length; i++) this.signs[i] = counterSign(seed, RandomStream.rotationSigns, i);
    this.stageSigns = this.plan.stages.slice(1).map(({ offset, length }, k) => {
      const signs = new Float32Array(length);
      for (let i = 0; i < length; i++) signs[i] = stageSign(seed, offset + i, k + 1);
      return signs;
    });
    this.scratch = new Float32Array(this.length);
  }

  /** s^(0)_i = counterSign(seed, RandomStream.rotationSigns, i) for any u32 index i: the first stage's sign. */
  sign(i: number): 1 | -1 {
    return counterSign(this.seed, RandomStream.rotationSigns, i);
  }

  /**
   * The rotation of x (see the class): a Float32Array of N = `length` entries (written into `out` when given).
   * `out` may be `x` itself only when n = N.
   */
  forward(x: Float32Array, out?: Float32Array): Float32Array {
    check(x instanceof Float32Array, 'RandomizedHadamard.forward: x must be a Float32Array');
    check(x.length === this.n, () => `RandomizedHadamard.forward: x has ${x.length} entries, expected n = ${this.n}`);
    const largest = checkFinite(x, 'RandomizedHadamard.forward: x');
    const result = out ?? new Float32Array(this.length);
    checkOutput(result, this.length, x, 'RandomizedHadamard.forward');
    this.forwardUnchecked(x, result); // may overwrite x (out === x): its largest entry was taken before
    checkNoOverflow(result, () => largest, 'RandomizedHadamard.forward: x');
    return result;
  }

  /**
   * The first n entries of the transposed rotation of y: the inverse of `forward` (up to f32 rounding) for y of
   * N = `length` entries. Returns a Float32Array of n entries (written into `out` when given).
   */
  inverse(y: Float32Array, out?: Float32Array): Float32Array {
    check(y instanceof Float32Array, 'RandomizedHadamard.inverse: y must be a Float32Array');
    check(
      y.length === this.length,
      () => `RandomizedHadamard.inverse: y has ${y.length} entries, expected N = length = ${this.length}`,
    );
    const largest = checkFinite(y, 'RandomizedHadamard.inverse: y');
    const result = out ?? new Float32Array(this.n);
    checkOutput(result, this.n, undefined, 'RandomizedHadamard.inverse');
    this.inverseUnchecked(y, result, this.n);
    checkNoOverflow(result, () => largest, 'RandomizedHadamard.inverse: y');
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
    checkNoOverflow(data, () => largestMagnitude(m.data), 'RandomizedHadamard.forwardColumns: the matrix');
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
      () => `RandomizedHadamard.inverseColumns: rows must be an integer in [1, ${this.length}], got ${describeValue(rows)}`,
    );
    const N = this.length;
    const data = new Float32Array(rows * m.cols);
    for (let j = 0; j < m.cols; j++) {
      this.inverseUnchecked(m.data.subarray(j * N, (j + 1) * N), data.subarray(j * rows, (j + 1) * rows), rows);
    }
    checkNoOverflow(data, () => largestMagnitude(m.data), 'RandomizedHadamard.inverseColumns: the matrix');
    return { rows, cols: m.cols, data };
  }

  private forwardUnchecked(x: Float32Array, out: Float32Array): void {
    const { n, length: N, signs, stageScales, stageSigns } = this;
    // D_0 flips the first window's entries; the rest wait for their own stage's signs.
    const first = this.plan.stages[0] as (typeof this.plan.stages)[number];
    const signedEnd = Math.min(n, first.offset + first.length);
    if (out !== x) out.set(x.subarray(signedEnd), signedEnd);
    for (let i = 0; i < signedEnd; i++) out[i] = (signs[i] as number) * (x[i] as number);
    out.fill(0, n, N);
    this.plan.stages.forEach(({ offset, length }, k) => {
      const window = out.subarray(offset, offset + length);
      const flips = k === 0 ? undefined : (stageSigns[k - 1] as Float32Array);
      if (flips !== undefined) for (let i = 0; i < length; i++) window[i] = (flips[i] as number) * (window[i] as number);
      hadamardTransformInPlace(window, length);
      const scale = stageScales[k] as number;
      // A Float32Array store rounds the float64 product of two f32 values exactly like Math.fround.
      for (let i = 0; i < length; i++) window[i] = (window[i] as number) * scale;
    });
  }

  private inverseUnchecked(y: Float32Array, out: Float32Array, rows: number): void {
    const { signs, scratch, stageScales, stageSigns } = this;
    scratch.set(y);
    const { stages } = this.plan;
    for (let k = stages.length - 1; k >= 0; k--) {
      const { offset, length } = stages[k] as (typeof stages)[number];
      const window = scratch.subarray(offset, offset + length);
      hadamardTransposeInPlace(window, length);
      const scale = stageScales[k] as number;
      const flips = k === 0 ? signs.subarray(offset, offset + length) : (stageSigns[k - 1] as Float32Array);
      for (let i = 0; i < length; i++) window[i] = (flips[i] as number) * Math.fround((window[i] as number) * scale);
    }
    out.set(scratch.subarray(0, rows));
  }
}

/** s^(k)_p of the class documentation: −1 when bit 31 of counterHash(seed, rotationSigns, p, k) is set. */
function stageSign(seed: number, p: number, k: number): 1 | -1 {
  return counterHash(seed, RandomStream.rotationSigns, p, k) >>> 31 === 1 ? -1 : 1;
}

/**
 * The signs s^(k)_p of stage k for the positions p = offset … offset + length − 1, packed one bit each:
 * bit i mod 32 of word ⌊i / 32⌋ is set when s^(k)_{offset+i} = −1. What the GPU rotation reads
 * instead of hashing every element (src/gpu/rotationSigns.ts).
 *
 * @example
 * packedStageSigns(42, 0, 0, 1024); // 32 words: the first stage's signs of a 1024-entry rotation
 */
export function packedStageSigns(seed: number, k: number, offset: number, length: number): Uint32Array {
  const words = new Uint32Array(Math.ceil(length / 32));
  for (let i = 0; i < length; i++) {
    if (stageSign(seed, offset + i, k) === -1) words[i >>> 5] = ((words[i >>> 5] as number) | (1 << (i & 31))) >>> 0;
  }
  return words;
}

function largestMagnitude(values: Float32Array): number {
  let largest = 0;
  for (const v of values) largest = Math.max(largest, Math.abs(v));
  return largest;
}

/**
 * The transform sums up to L = 2^k entries in f32 before it scales by 1/√L (as the GPU kernels do, bit
 * for bit), so inputs within a factor L of f32's largest value can overflow on the way although the
 * rotated entries would fit: refused, naming the power of two to scale the input by. The input's largest
 * entry is needed only for the message.
 */
function checkNoOverflow(result: Float32Array, largestOfInput: () => number, what: string): void {
  if (firstNonFinite(result) < 0) return;
  const largestInput = largestOfInput();
  // After the scaling every entry is at most 2^97, and sums of up to 2^30 of them (the rotation's
  // longest window) stay below 2^127.
  const shift = Math.max(1, Math.ceil(Math.log2(largestInput)) - 97);
  throw new LatticeMatmulError(
    `${what} has entries up to ${largestInput.toPrecision(6)}, too large for the rotation's f32 sums (they overflowed); multiply the input by 2^-${shift} and the result by 2^${shift}`,
  );
}

/** Refuses a non-finite entry of `v`, naming it; returns the largest |v_i| (the same pass). */
function checkFinite(v: Float32Array, what: string): number {
  let largest = 0;
  for (let i = 0; i < v.length; i++) {
    const magnitude = Math.abs(v[i] as number);
    if (!Number.isFinite(magnitude)) throw new LatticeMatmulError(`${what} has a non-finite entry ${v[i]} at index ${i}`);
    if (magnitude > largest) largest = magnitude;
  }
  return largest;
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
