import { abortedError, check, checkOneOf, describeValue } from '../errors.js';
import { resolveScheme, type Scheme, type SchemeName, type SCHEMES } from './schemes.js';
import { checkKnownKeys, checkOptionalBoolean, isPlainObject } from './strictOptions.js';

/** How the decoder rescales each decoded column of a deterministic lattice scheme (see {@link QuantizeOptions.gain}). */
const GAIN_MODES = ['unbiased', 'mmse', 'none'] as const;
/**
 * How the decoder rescales each decoded column of a deterministic lattice scheme (see
 * {@link QuantizeOptions.gain}).
 *
 * @useDeclaredType
 */
export type GainMode = (typeof GAIN_MODES)[number];

/** Progress of a long quantization: columns done out of the total. */
export type QuantizeProgress = (done: number, total: number) => void;

/** Options of `quantize` (CPU) and `GpuEngine.quantize`. */
export interface QuantizeOptions {
  /**
   * A named scheme (`SCHEMES`: 'e8-q16', 'd3-q6', the rate presets, 'int4-g32', 'nvfp4', …) or an
   * explicit one. Lattice presets are universal unless their name ends in '-deterministic'.
   */
  readonly scheme: SchemeName | Scheme;
  /** Seed of the shared random rotation: A and B must use the same one. Default 1. */
  readonly seed?: number;
  /**
   * The universal code's dither nonce (a non-negative safe integer, or a bigint below 2^64). Default: drawn at random,
   * so two quantizations of the same matrix have independent errors, as the guarantee requires. Give
   * one only to reproduce a result; never give the same nonce to two different matrices that will be
   * multiplied (their errors would not be independent: `matmulAT` refuses such a pair).
   */
  readonly nonce?: number | bigint;
  /** Subtract each column's mean first (kept as side information). Default false. */
  readonly center?: boolean;
  /** Apply the randomized Hadamard rotation. Default true. */
  readonly rotate?: boolean;
  /**
   * Per-column gain of **deterministic** lattice schemes (32 bits of side information):
   * - `'unbiased'` (default): γ = ‖u‖² / ⟨u, û⟩, no component of error along the input.
   * - `'mmse'`: γ = ⟨u, û⟩ / ‖û‖², the seed paper's MMSE scaling (shrinks every inner product).
   * - `'none'`: γ = 1.
   * Universal schemes refuse it: a per-column gain would break their guarantee.
   */
  readonly gain?: GainMode;
  /**
   * Time-sharing for rates below R* ≈ 0.906 (seed paper [1]; src/theory/timeSharing.ts): quantize only this fraction κ of the rotated
   * coordinates and drop the rest. Default 1. Lattice schemes only; `expectedProductError` covers κ = 1.
   * Dropped coordinates decode to 0 with no 1/κ rescale (the seed paper's choice, the least error for
   * independent Gaussian columns), so E Ĉ = κ·AᵀB and the error depends on the data: over the dither and
   * the rotation, product NMSE ≈ κ·NMSE₁ + (1 − κ)²ρ + κ(1 − κ)(1 + ρ/n), ρ = n‖AᵀB‖²/(‖A‖²‖B‖²), which is
   * 1 − κ(1 − NMSE₁) only where ρ ≈ 1 (for A = B at κ = 0.25 it is ≈ 10× that).
   */
  readonly keepFraction?: number;
  /**
   * N, the length the columns are rotated to: by default `rotationLength(n)` (n itself past 256 rows),
   * or with keepFraction < 1 the one-stage padded length. A product needs both operands rotated alike:
   * to pair with a matrix rotated to another length — one from a container of format version 2 or
   * earlier, which padded every 256 < n ≤ 1024 that is not m·2^k (896 → 1024) — pass its `length` here
   * (with its `seed`). Must be a rotated length of n (`isRotationLength`); needs rotate.
   */
  readonly rotatedLength?: number;
  /** Called with (columns done, total) as the quantization advances (CPU: every few columns). */
  readonly onProgress?: QuantizeProgress;
  /**
   * Aborts the quantization: it then throws (CPU) or rejects (GPU: at once, also while it waits for the
   * device; what it built is freed) a LatticeMatmulError saying so.
   */
  readonly signal?: AbortSignal;
}

/** The scheme object a name or a scheme type stands for (a union stays a union). */
export type SchemeOf<S> = S extends SchemeName ? (typeof SCHEMES)[S] : S;

/** `true` when some member of the scheme union `T` may have `V` as its field `K`; `never` otherwise. */
export type MayHave<T, K extends string, V> = T extends { readonly [P in K]: infer X } ? (V extends X ? true : never) : never;

/**
 * The options `quantize` accepts for the scheme `S`: {@link QuantizeOptions},
 * less the options `S` refuses at run time, so the compiler catches them:
 * - `gain` other than `'none'` only for deterministic lattice schemes;
 * - `nonce` only for universal lattice schemes;
 * - `keepFraction` other than 1 only for lattice schemes.
 * A scheme known only as `SchemeName` or `Scheme` (or a union that may be of the right kind) keeps
 * every option: `resolveQuantizeOptions` still checks it at run time.
 *
 * @example
 * const ok: QuantizeOptionsFor<'e8-q16-deterministic'> = { scheme: 'e8-q16-deterministic', gain: 'mmse' };
 * // @ts-expect-error: a universal scheme has no gain
 * const wrong: QuantizeOptionsFor<'e8-q16'> = { scheme: 'e8-q16', gain: 'mmse' };
 */
export type QuantizeOptionsFor<S extends SchemeName | Scheme> = QuantizeOptions & { readonly scheme: S } & QuantizeOptionsRefused<SchemeOf<S>>;

/** What the scheme (union) `T` refuses: an option is refused only where no member of `T` takes it. */
type QuantizeOptionsRefused<T> = ([MayHave<T, 'mode', 'deterministic'>] extends [never] ? { readonly gain?: 'none' } : unknown) &
  ([MayHave<T, 'mode', 'universal'>] extends [never] ? { readonly nonce?: undefined } : unknown) &
  ([MayHave<T, 'kind', 'lattice'>] extends [never] ? { readonly keepFraction?: 1 } : unknown);

/** The options of one quantization, checked and with every default applied, resolved once. */
export interface ResolvedQuantizeOptions {
  readonly scheme: Scheme;
  readonly seed: number;
  /** The dither nonce of universal schemes; null for the others. */
  readonly nonce: bigint | null;
  readonly center: boolean;
  readonly rotate: boolean;
  /** 'none' except for deterministic lattice schemes. */
  readonly gain: GainMode;
  readonly keepFraction: number;
  /** The rotated length asked for; null for the default (`rotatedLength` in quantize.ts resolves it with n). */
  readonly rotatedLength: number | null;
  readonly onProgress: QuantizeProgress | null;
  readonly signal: AbortSignal | null;
}

/** The keys of {@link QuantizeOptions}. */
export const QUANTIZE_OPTION_KEYS = ['scheme', 'seed', 'nonce', 'center', 'rotate', 'gain', 'keepFraction', 'rotatedLength', 'onProgress', 'signal'] as const;

/** Nonces are below 2^64 (a u64: the dither hash's key, and the container's nonce field). */
export const NONCE_LIMIT = 1n << 64n;

/** A fresh 64-bit nonce from the platform's cryptographic random source. */
export function randomNonce(): bigint {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (BigInt(words[1] as number) << 32n) | BigInt(words[0] as number);
}

/**
 * A scheme as a message names it: the preset's name when one was given ('int4-g32'), else its kind
 * ('a deterministic lattice scheme', 'an int scheme').
 */
export function describeSchemeChoice(given: unknown, scheme: Scheme): string {
  if (typeof given === 'string') return `'${given}'`;
  return scheme.kind === 'lattice' ? `a ${scheme.mode} lattice scheme` : `an ${scheme.kind} scheme`;
}

/**
 * Checks `options` strictly (unknown keys refused with a suggestion, every value's type checked) and
 * applies the defaults. `extraKeys` are keys a caller adds (the GPU quantizer's `maxBindingBytes`).
 *
 * @example
 * resolveQuantizeOptions({ scheme: 'e8-q16', seed: 7 }).nonce; // a random bigint
 */
export function resolveQuantizeOptions(options: unknown, what = 'quantize options', extraKeys: readonly string[] = []): ResolvedQuantizeOptions {
  check(isPlainObject(options), () => `${what} must be an object with at least a scheme, e.g. { scheme: 'e8-q16' }`);
  checkKnownKeys(options, [...QUANTIZE_OPTION_KEYS, ...extraKeys], what);
  check(options.scheme !== undefined, () => `${what} need a scheme`);
  const scheme = resolveScheme(options.scheme as SchemeName | Scheme);
  const seed = options.seed === undefined ? 1 : options.seed;
  check(typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, () => `seed must be an integer in [0, 2^32 − 1], got ${describeValue(seed)}`);
  const center = checkOptionalBoolean(options.center, 'center') ?? false;
  const rotate = checkOptionalBoolean(options.rotate, 'rotate') ?? true;
  const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
  const deterministicLattice = scheme.kind === 'lattice' && scheme.mode === 'deterministic';

  let nonce: bigint | null = null;
  if (universal) {
    const given = options.nonce;
    if (given === undefined) {
      nonce = randomNonce();
    } else if (typeof given === 'number') {
      check(Number.isSafeInteger(given) && given >= 0, () => `nonce must be a non-negative safe integer or a bigint below 2^64, got ${describeValue(given)}`);
      nonce = BigInt(given);
    } else {
      check(typeof given === 'bigint' && given >= 0n && given < NONCE_LIMIT, () => `nonce must be a non-negative safe integer or a bigint below 2^64, got ${describeValue(given)}`);
      nonce = given;
    }
  } else {
    check(options.nonce === undefined, () => `nonce applies to universal lattice schemes only (${describeSchemeChoice(options.scheme, scheme)} has no dither)`);
  }

  const gainGiven = options.gain;
  if (gainGiven !== undefined) checkOneOf(gainGiven, GAIN_MODES, 'gain');
  if (gainGiven !== undefined && gainGiven !== 'none') {
    check(deterministicLattice, () =>
      universal
        ? "gain applies to deterministic lattice schemes only: a per-column gain would break the universal code's guarantee (its decoded columns are already unbiased)"
        : 'a gain applies to lattice schemes only',
    );
  }
  const gain: GainMode = deterministicLattice ? ((gainGiven as GainMode | undefined) ?? 'unbiased') : 'none';

  const keepFraction = options.keepFraction === undefined ? 1 : options.keepFraction;
  check(typeof keepFraction === 'number' && keepFraction > 0 && keepFraction <= 1, () => `keepFraction must be a number in (0, 1], got ${describeValue(keepFraction)}`);
  check(keepFraction === 1 || scheme.kind === 'lattice', 'keepFraction (time-sharing) applies to lattice schemes only');
  const rotatedLength = options.rotatedLength ?? null;
  check(
    rotatedLength === null || (typeof rotatedLength === 'number' && Number.isSafeInteger(rotatedLength) && rotatedLength >= 1),
    () => `rotatedLength must be a positive integer, got ${describeValue(rotatedLength)}`,
  );
  check(rotatedLength === null || rotate, 'rotatedLength applies to rotated matrices only (rotate: false keeps length = n)');

  // Only undefined means none: null is refused like any other wrong value.
  const onProgress = options.onProgress;
  check(onProgress === undefined || typeof onProgress === 'function', () => `onProgress must be a function (done, total) => void, got ${describeValue(onProgress)}`);
  const signal = options.signal;
  check(
    signal === undefined || (typeof signal === 'object' && signal !== null && typeof (signal as AbortSignal).aborted === 'boolean'),
    () => `signal must be an AbortSignal, got ${describeValue(signal)}`,
  );
  return Object.freeze({
    scheme,
    seed,
    nonce,
    center,
    rotate,
    gain,
    keepFraction,
    rotatedLength: rotatedLength as number | null,
    onProgress: onProgress === undefined ? null : (onProgress as QuantizeProgress),
    signal: signal === undefined ? null : (signal as AbortSignal),
  });
}

/** Throws a LatticeMatmulError when `signal` was aborted. */
export function throwIfAborted(signal: AbortSignal | null, what: string): void {
  if (signal?.aborted === true) throw abortedError(signal, what);
}
