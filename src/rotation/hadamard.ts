import { check, LatticeMatmulError, describeValue } from '../errors.js';

/*
 * Unnormalized Hadamard transforms of length N = m·2^k, m ∈ {1, 12, 20}: H_N = H_{2^k} ⊗ H_m with the
 * Sylvester matrix H_{2^k} (entry (a, a') = (−1)^popcount(a & a')) and a Paley matrix H_m. Entry
 * (a·m + b, a'·m + b') of H_N is H_{2^k}[a][a'] · H_m[b][b'].
 *
 * Rotation plans (`rotationLength`, `rotationPlan`): a vector of n entries is rotated either by one
 * such transform (zero-padded to a Hadamard length, as for small n) or, unpadded, by two transforms
 * on overlapping windows, so that model widths such as 11008 pay no padding.
 *
 * The f32 operation order of `hadamardTransformInPlace` is a contract: the WebGPU rotation kernel
 * reproduces it bit for bit (see that function's documentation).
 */

/** The odd factors m a rotation length may have (besides 1). */
export type HadamardBase = 1 | 12 | 20;

/** True when `v` is a positive integer power of two (1, 2, 4, …). */
function isPowerOfTwo(v: number): boolean {
  if (!Number.isSafeInteger(v) || v < 1) return false;
  while (v % 2 === 0) v /= 2;
  return v === 1;
}

/** Smallest m·2^k ≥ n for k ≥ 0. */
function smallestScaledPowerOfTwo(m: number, n: number): number {
  let v = m;
  while (v < n) v *= 2;
  return v;
}

/** Smallest single Hadamard length m·2^k ≥ n (m ∈ {1, 12, 20}): the rotation length before windowed plans. */
function smallestHadamardLength(n: number): number {
  return Math.min(smallestScaledPowerOfTwo(1, n), smallestScaledPowerOfTwo(12, n), smallestScaledPowerOfTwo(20, n));
}

/** Largest single Hadamard length m·2^k ≤ n (m ∈ {1, 12, 20}); it exceeds 3n/4 (consecutive lengths differ by ≤ 4/3). */
function largestHadamardLength(n: number): number {
  let best = 1;
  for (const m of [1, 12, 20]) {
    for (let v = m; v <= n; v *= 2) best = Math.max(best, v);
  }
  return best;
}

/**
 * The longest n (not a Hadamard length) that a one-stage, zero-padded rotation exists for: the
 * smallest Hadamard length ≥ n, at most 4/3·n (1000 → 1024, 9 → 12). Longer vectors rotate unpadded
 * in two windows (see `rotationPlan`). Time-sharing, which needs one stage, is limited to it.
 */
export const MAX_PADDED_ROTATION_N = 1024;

/**
 * The longest n (not a Hadamard length) that `rotationLength` pads by default. Vectors of 257 to 1024
 * entries rotate unpadded in two windows unless one stage is asked for (`oneStageRotationLength`):
 * model widths such as 576, 896 and 960 then store no padding (the padded plan, which containers of
 * format version 2 and earlier hold for every n ≤ 1024, rotates them to 640, 1024 and 1024 entries:
 * 11 %, 14 % and 7 % more). Below it, windows of
 * small Hadamard lengths would bound a rotated entry's variance less tightly, and padding costs little.
 */
export const MAX_DEFAULT_PADDED_ROTATION_N = 256;

/** True when n is a single Hadamard length m·2^k (m ∈ {1, 12, 20}). */
export function isHadamardLength(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && smallestHadamardLength(n) === n;
}

/**
 * One stage of a rotation plan: the entries [offset, offset + length) of the (padded) vector are
 * sign-flipped by the stage's own random signs and rotated by c·H_length, c = fround(1/√length).
 */
export interface RotationStage {
  /** First entry of the stage's window. */
  readonly offset: number;
  /** L = m · pow2, a single Hadamard length (see `hadamardFactors`). */
  readonly length: number;
  readonly m: HadamardBase;
  readonly pow2: number;
}

/** How a vector of n entries is rotated: its rotated length N and the stages, applied in order. */
export interface RotationPlan {
  /** N ≥ n: n plus the zero padding (`rotationLength(n)` by default). */
  readonly length: number;
  /**
   * One stage [0, N) when N is a single Hadamard length; else two windows of the same length L,
   * [0, L) then [N − L, N), which overlap (2L > N) and together cover the vector.
   */
  readonly stages: readonly RotationStage[];
}

/** Recent plans, by n and N: callers ask for the same n per column, per dispatch and per kernel. */
const planCache = new Map<string, RotationPlan>();
const PLAN_CACHE_SIZE = 256;

function stage(offset: number, length: number): RotationStage {
  return Object.freeze({ offset, length, ...hadamardFactors(length) });
}

function checkRotationN(n: number, what: string): void {
  check(Number.isSafeInteger(n) && n >= 1, () => `${what}: n must be a positive integer, got ${describeValue(n)}`);
}

/**
 * Whether a vector of n entries can be rotated to N = `length` entries, the pairs `rotationPlan`
 * accepts: N = n when n is a Hadamard length or exceeds MAX_DEFAULT_PADDED_ROTATION_N (two windows if
 * it is not one), or N = the smallest Hadamard length ≥ n when n ≤ MAX_PADDED_ROTATION_N (one stage).
 *
 * @example
 * isRotationLength(896, 896);  // true: two windows of 768
 * isRotationLength(896, 1024); // true: one stage, padded
 * isRotationLength(100, 100);  // false: n ≤ 256 that is not a Hadamard length pads
 */
export function isRotationLength(n: number, length: number): boolean {
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(length)) return false;
  // The default length, or the padded one-stage length where one exists.
  return length === defaultRotationLength(n) || (n <= MAX_PADDED_ROTATION_N && length === smallestHadamardLength(n));
}

/** The rotated lengths n may have, for messages: "896 or 1024", "128", "11008". */
export function rotationLengthsText(n: number): string {
  const lengths = [n, smallestHadamardLength(n)].filter((N, i, all) => all.indexOf(N) === i && isRotationLength(n, N));
  return lengths.join(' or ');
}

/**
 * The rotation plan of a vector of `n` entries rotated to N = `length` entries (default
 * `rotationLength(n)`): its stages. A contract: quantized data depends on it. A quantized matrix holds
 * its N (`length`), from which its plan follows; `isRotationLength` says which (n, N) exist.
 *
 * **The rule.**
 * - N = n, a single Hadamard length m·2^k (m ∈ {1, 12, 20}): one stage.
 * - N > n, the smallest Hadamard length ≥ n (n ≤ 1024, MAX_PADDED_ROTATION_N): one stage; entries
 *   n … N − 1 are zeros (1000 → 1024, 9 → 12).
 * - N = n > 256 (MAX_DEFAULT_PADDED_ROTATION_N), not a Hadamard length: no padding, two stages with
 *   windows [0, L) and [n − L, n), where L is the largest Hadamard length ≤ n (L > 3n/4, so the windows
 *   overlap in 2L − n > n/2 entries).
 * By default (`rotationLength`) every n > 256 rotates with no padding at all (576, 896, 960, 11008,
 * 13824, 14336, 28672 included), and a Hadamard length keeps its single-stage rotation bit for bit.
 * Containers of format version 2 and earlier hold the padded plan for every n ≤ 1024.
 *
 * **Why two overlapping windows and not blocks.** A block-diagonal rotation (N = N_1 + N_2 + …)
 * never mixes entries of different blocks, so a vector whose energy sits in a small block (an
 * outlier channel in the last 768 of 11008 = 10240 + 768) keeps it there: those rotated entries are
 * √(N/N_k) times the average, beyond what the quantizer's scales cover (measured with d3-q6 and
 * e8-q16 on Gaussian data with four ×100 outlier channels in the small block: product NMSE 35 to 530
 * times that of one padded transform). With the windows and a second, independent sign diagonal on the
 * second window, every rotated entry is a random-sign sum whose variance is at most N/L ≤ 4/3 times
 * the average ‖x‖²/N, whatever x is: for p < n − L it is ‖x_{[0,L)}‖²/L, for p ≥ n − L it is
 * ((2L − n)·‖x_{[0,L)}‖²/L + ‖x_{[L,n)}‖²)/L (expectations over the signs). The price is a second
 * transform of length L. One consequence for callers that keep only some rotated coordinates (time
 * sharing): the kept set weighs every input equally (in expectation) only if it keeps the same
 * fraction of [0, n − L) and of [n − L, n); a plain prefix over-weighs the inputs in [0, L), which is
 * why time-sharing takes the one-stage plan (`oneStageRotationLength`).
 *
 * @example
 * rotationPlan(100);        // { length: 128, stages: [{ offset: 0, length: 128, m: 1, pow2: 128 }] }
 * rotationPlan(896);        // { length: 896, stages: [{ offset: 0, length: 768, m: 12, pow2: 64 },
 *                           //                         { offset: 128, length: 768, m: 12, pow2: 64 }] }
 * rotationPlan(896, 1024);  // { length: 1024, stages: [{ offset: 0, length: 1024, m: 1, pow2: 1024 }] }
 * rotationPlan(11008);      // { length: 11008, stages: [{ offset: 0, length: 10240, m: 20, pow2: 512 },
 *                           //                           { offset: 768, length: 10240, m: 20, pow2: 512 }] }
 */
export function rotationPlan(n: number, length?: number): RotationPlan {
  checkRotationN(n, 'rotationPlan');
  const N = length ?? defaultRotationLength(n);
  check(
    isRotationLength(n, N),
    () =>
      `rotationPlan: no rotation of n = ${n} entries to ${describeValue(length)}: N is n (a Hadamard length, or n > ${MAX_DEFAULT_PADDED_ROTATION_N}) ` +
      `or the smallest Hadamard length ≥ n (${smallestHadamardLength(n)}, for n ≤ ${MAX_PADDED_ROTATION_N})`,
  );
  const key = `${n}:${N}`;
  const cached = planCache.get(key);
  if (cached !== undefined) return cached;
  let plan: RotationPlan;
  if (N > n || isHadamardLength(n)) {
    plan = Object.freeze({ length: N, stages: Object.freeze([stage(0, N)]) });
  } else {
    const window = largestHadamardLength(n);
    plan = Object.freeze({ length: n, stages: Object.freeze([stage(0, window), stage(n - window, window)]) });
  }
  if (planCache.size >= PLAN_CACHE_SIZE) planCache.clear();
  planCache.set(key, plan);
  return plan;
}

function defaultRotationLength(n: number): number {
  const next = smallestHadamardLength(n);
  return next === n || n <= MAX_DEFAULT_PADDED_ROTATION_N ? next : n;
}

/**
 * The length N a vector of `n` entries is rotated to by default (`quantize`, `RandomizedHadamard`):
 * n itself when n is a single Hadamard length m·2^k (m ∈ {1, 12, 20}) or n > 256; otherwise the
 * smallest m·2^k ≥ n (zero padding).
 *
 * @example
 * rotationLength(3);     // 4
 * rotationLength(9);     // 12
 * rotationLength(100);   // 128
 * rotationLength(768);   // 768 = 12·64
 * rotationLength(896);   // 896: two windows of 768, no padding (format version 2: 1024)
 * rotationLength(11008); // 11008: two windows of 10240, no padding
 */
export function rotationLength(n: number): number {
  checkRotationN(n, 'rotationLength');
  return defaultRotationLength(n);
}

/**
 * The length of the one-stage rotation of `n` entries: the smallest Hadamard length ≥ n, which
 * time-sharing needs (a kept prefix of a two-window rotation weighs the inputs unequally, see
 * `rotationPlan`). Refused for n > 1024 that is not a Hadamard length.
 *
 * @example
 * oneStageRotationLength(896);  // 1024
 * oneStageRotationLength(4096); // 4096
 */
export function oneStageRotationLength(n: number): number {
  checkRotationN(n, 'oneStageRotationLength');
  const next = smallestHadamardLength(n);
  check(
    isRotationLength(n, next),
    () => `oneStageRotationLength: n = ${n} has no one-stage rotation: it is not a Hadamard length (m·2^k, m ∈ {1, 12, 20}) and exceeds ${MAX_PADDED_ROTATION_N}; pad the columns to ${next} first`,
  );
  return next;
}

/**
 * True when the rotation of n entries to `length` is one that containers of format version 2 and
 * earlier cannot hold: two windows for 256 < n ≤ 1024 (they pad every such n). A container holding one
 * is written as version 3.
 */
export function isShortWindowedRotation(n: number, length: number): boolean {
  // isRotationLength too: n ≤ 256 that is no Hadamard length has no unpadded rotation at all (it pads),
  // and a description of one must be refused for that, not for its format version.
  return length === n && n <= MAX_PADDED_ROTATION_N && !isHadamardLength(n) && isRotationLength(n, length);
}

/**
 * Splits a rotation length as N = m · pow2. The split is unique: m = 1 when N is a power of two,
 * else 12 when N/12 is one, else 20 when N/20 is one (12·2^a = 20·2^b is impossible, and neither is
 * a power of two). Any other N is an error.
 *
 * @example
 * hadamardFactors(6144); // { m: 12, pow2: 512 }
 */
export function hadamardFactors(N: number): { m: HadamardBase; pow2: number } {
  check(
    Number.isSafeInteger(N) && N >= 1,
    () => `hadamardFactors: N must be a positive integer, got ${describeValue(N)}`,
  );
  if (isPowerOfTwo(N)) return { m: 1, pow2: N };
  if (N % 12 === 0 && isPowerOfTwo(N / 12)) return { m: 12, pow2: N / 12 };
  if (N % 20 === 0 && isPowerOfTwo(N / 20)) return { m: 20, pow2: N / 20 };
  throw new LatticeMatmulError(
    `hadamardFactors: ${N} is not of the form m·2^k with m in {1, 12, 20}; pad to rotationLength(n) first`,
  );
}

/**
 * The Paley construction I of a Hadamard matrix of order q + 1 for a prime q ≡ 3 (mod 4), row-major.
 * With the quadratic character χ mod q (χ(0) = 0, χ(a) = +1 for a nonzero square, −1 otherwise) and the
 * Jacobsthal matrix Q[i][j] = χ(j − i) — skew-symmetric because χ(−1) = −1 when q ≡ 3 (mod 4) —
 * ```
 * H = I + S,   S = [  0   1ᵀ ]
 *                  [ −1   Q  ]
 * ```
 * S is skew with S·Sᵀ = q·I, so H·Hᵀ = I + S·Sᵀ = (q + 1)·I. H is not symmetric (H + Hᵀ = 2I), which
 * is why the transposed transform exists.
 */
function paleyHadamard(q: number): Int8Array {
  const isSquare = new Array<boolean>(q).fill(false);
  for (let x = 1; x < q; x++) isSquare[(x * x) % q] = true;
  const chi = (a: number): number => {
    const r = ((a % q) + q) % q;
    if (r === 0) return 0;
    return isSquare[r] === true ? 1 : -1;
  };
  const m = q + 1;
  const h = new Int8Array(m * m);
  for (let j = 0; j < m; j++) h[j] = 1;
  for (let i = 1; i < m; i++) {
    h[i * m] = -1;
    for (let j = 1; j < m; j++) h[i * m + j] = (i === j ? 1 : 0) + chi(j - i);
  }
  return h;
}

function transposeSquare(h: Int8Array, m: number): Int8Array {
  const t = new Int8Array(m * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) t[j * m + i] = h[i * m + j] as number;
  return t;
}

const H12 = paleyHadamard(11);
const H20 = paleyHadamard(19);
const H12T = transposeSquare(H12, 12);
const H20T = transposeSquare(H20, 20);

/**
 * The 12 × 12 Hadamard matrix (entries ±1) of the Paley construction mod 11, row-major: entry (b, b')
 * is `hadamard12[b * 12 + b']`. H·Hᵀ = 12·I. Read-only: the transform keeps its own copy, so writing
 * here would only desynchronize the GPU kernel's sign constants, generated from it.
 */
export const hadamard12: Readonly<Int8Array> = H12.slice();

/** The 20 × 20 Hadamard matrix of the Paley construction mod 19, row-major, like `hadamard12`. */
export const hadamard20: Readonly<Int8Array> = H20.slice();

/** One scratch block for step 1 (largest m is 20); safe because JavaScript runs one transform at a time. */
const blockScratch = new Float32Array(20);

function checkTransformArgs(x: Float32Array, N: number, what: string): HadamardBase {
  check(x instanceof Float32Array, `${what}: x must be a Float32Array`);
  const { m } = hadamardFactors(N);
  check(x.length >= N, () => `${what}: x has ${x.length} entries, fewer than N = ${N}`);
  return m;
}

/**
 * Step 1: y_b = Σ_{b'} table[b·m + b'] · x[base + b'] for every block, summed left to right in f32.
 * The first term is exact (a sign flip of an f32); every later step rounds with `Math.fround`.
 */
function smallHadamardBlocks(x: Float32Array, N: number, m: number, table: Int8Array): void {
  for (let base = 0; base < N; base += m) {
    for (let b = 0; b < m; b++) {
      const row = b * m;
      let acc = (table[row] as number) * (x[base] as number);
      for (let bb = 1; bb < m; bb++) {
        acc = Math.fround(acc + (table[row + bb] as number) * (x[base + bb] as number));
      }
      blockScratch[b] = acc;
    }
    for (let b = 0; b < m; b++) x[base + b] = blockScratch[b] as number;
  }
}

/**
 * Step 2: the fast Walsh–Hadamard transform over the block index a with stride m. For h = 1, 2, …,
 * 2^{k−1} and every a with (a & h) = 0, b ∈ [0, m): (u, v) → (u + v, u − v), each rounded to f32. The
 * pairs of one level are disjoint, so their order does not change any bit; the elements a·m + b for
 * a in one run of h consecutive indices are contiguous, which the loop uses.
 *
 * Storing into a Float32Array rounds the float64 `u + v` to nearest-even f32; since u, v are f32 and
 * 53 ≥ 2·24 + 2, that equals the correctly rounded f32 sum (`Math.fround(u + v)`) exactly.
 */
function walshHadamardStrided(x: Float32Array, N: number, m: number): void {
  for (let half = m; half < N; half *= 2) {
    const span = 2 * half;
    for (let start = 0; start < N; start += span) {
      const end = start + half;
      for (let i = start; i < end; i++) {
        const u = x[i] as number;
        const v = x[i + half] as number;
        x[i] = u + v;
        x[i + half] = u - v;
      }
    }
  }
}

/**
 * Unnormalized H_N · x on `x[0..N)` in place, H_N = H_{2^k} ⊗ H_m (N = m·2^k, see `hadamardFactors`),
 * index i = a·m + b with a ∈ [0, 2^k), b ∈ [0, m). Cost O(N·(m + log N)).
 *
 * **f32 operation order (contract; the GPU kernel reproduces it bit for bit):**
 * 1. if m > 1, for each a and each b: `acc = H_m[b][0]·x[a·m]` (exact), then for b' = 1 … m−1
 *    `acc = fround(acc + H_m[b][b']·x[a·m + b'])`; then x[a·m + b] = acc for all b of the block.
 * 2. for h = 1, 2, 4, …, 2^{k−1}, for each a with (a & h) = 0 and each b: u = x[a·m + b],
 *    v = x[(a + h)·m + b]; x[a·m + b] = fround(u + v), x[(a + h)·m + b] = fround(u − v).
 *
 * @example
 * const x = new Float32Array([1, 0, 0, 0]);
 * hadamardTransformInPlace(x, 4); // x = [1, 1, 1, 1]
 */
export function hadamardTransformInPlace(x: Float32Array, N: number): void {
  const m = checkTransformArgs(x, N, 'hadamardTransformInPlace');
  if (m === 12) smallHadamardBlocks(x, N, 12, H12);
  else if (m === 20) smallHadamardBlocks(x, N, 20, H20);
  walshHadamardStrided(x, N, m);
}

/**
 * Unnormalized H_Nᵀ · x in place: the same two steps and f32 order as `hadamardTransformInPlace`, with
 * H_mᵀ in step 1 (`acc` runs over H_m[b'][b] for b' = 0 … m−1). The Sylvester part is symmetric, so
 * step 2 is unchanged. For m = 1 this equals the forward transform.
 */
export function hadamardTransposeInPlace(x: Float32Array, N: number): void {
  const m = checkTransformArgs(x, N, 'hadamardTransposeInPlace');
  if (m === 12) smallHadamardBlocks(x, N, 12, H12T);
  else if (m === 20) smallHadamardBlocks(x, N, 20, H20T);
  walshHadamardStrided(x, N, m);
}
