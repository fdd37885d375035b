import { check, checkOneOf, describeValue } from '../errors.js';
import { INT_GRIDS, SCALE_FORMATS, type IntGrid, type ScaleFormat } from '../scalar/absmax.js';
import { latticeSpec, MAX_UNIVERSAL_Q, type LatticeName } from './latticeSpec.js';
import { checkKnownKeys, isPlainObject } from './strictOptions.js';

/**
 * How a block that does not fit the coarse lattice (overload) is retried with a larger scale
 * (deterministic lattice schemes only).
 * - `ladder`: scales β·ratio^T, T = 0, 1, …, steps − 1, the first one that fits (the seed paper's
 *   scheme; T is side information, counted by its entropy). A block that overloads on every rung is
 *   shrunk toward the origin until it fits (clipping), so the error stays bounded.
 * - `betaSet`: one of a few scales per block, the one of least error among those that fit (NestQuant;
 *   a log2(k)-bit index per block).
 */
export type OverloadRule =
  | { readonly kind: 'ladder'; readonly beta: number; readonly ratio: number; readonly steps: number }
  | { readonly kind: 'betaSet'; readonly betas: readonly number[] };

/**
 * The universal nested-lattice quantizer (the default): one scale β for every block, subtractive
 * dither, and overload paid in rate by escape codes. Its product error depends only on the norms:
 * E‖ÂᵀB̂ − AᵀB‖²_F = (2D + D²)·‖A‖²_F‖B‖²_F / N with D = β²σ²(Λ), for every A and B
 * (`expectedProductError`).
 */
export interface UniversalLatticeScheme {
  readonly kind: 'lattice';
  readonly mode: 'universal';
  readonly lattice: 'D3' | 'E8';
  /** Nesting ratio: q^d codes per block (E8: two parts of 4 base-q digits). 3 ≤ q ≤ 64. */
  readonly q: number;
  /** The scale of the fine lattice relative to a unit-variance coordinate. */
  readonly beta: number;
}

/**
 * The deterministic nested-lattice quantizer of the seed paper (ladder) and NestQuant (β set): no
 * dither, a per-block scale index. **Not universal**: identical or correlated inputs get identical
 * errors that add coherently, so on correlated operands (Gram matrices, parallel columns) its error
 * grows with n (README, "Universality"). Kept for reproducing the papers and for comparison.
 */
export interface DeterministicLatticeScheme {
  readonly kind: 'lattice';
  readonly mode: 'deterministic';
  /** 'Z' means Z^8: blocks of 8 coordinates sharing one scale index. */
  readonly lattice: LatticeName;
  readonly q: number;
  readonly overload: OverloadRule;
}

/** A nested-lattice scheme: universal (dithered, the default) or deterministic. */
export type LatticeScheme = UniversalLatticeScheme | DeterministicLatticeScheme;

/** Scalar absmax integer quantization of the rotated coordinates (baseline). */
export interface IntScheme {
  readonly kind: 'int';
  readonly bits: number;
  /** Entries sharing one scale; `'column'` = the whole rotated column (the seed's ℓ∞ baseline). */
  readonly groupSize: number | 'column';
  readonly grid: IntGrid;
  readonly scaleFormat: ScaleFormat;
}

/** NVFP4: E2M1 values, an E4M3 scale per 16 entries, one fp32 tensor scale (baseline). */
export interface Nvfp4Scheme {
  readonly kind: 'nvfp4';
}

/** A quantization scheme: a nested-lattice scheme, or a scalar baseline (absmax INT, NVFP4). */
export type Scheme = LatticeScheme | IntScheme | Nvfp4Scheme;

function universal(lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme {
  return { kind: 'lattice', mode: 'universal', lattice, q, beta };
}

/**
 * Named schemes. The rate presets `e8-<R>bit` were tuned on iid Gaussian data by `npm run tune`
 * (bench/tunePresets.ts: for each target stored rate R, the (lattice, q, β) of least stored-rate loss
 * within ±0.13 bit; stored bits at n = 4096 in the comments, with the loss against Γ).
 */
const PRESETS = {
  /**
   * ≈ 2.13 stored bits (E8, q = 3), stored-rate loss 0.67 bit. β predates the current tune output, which
   * picks 1.353 (2.055 bits, loss 0.69): on the sweep's coordinates 1.277 measures 2.131 bits, just past
   * the ±0.13 window (README "Presets").
   */
  'e8-2bit': universal('E8', 3, 1.277),
  /** ≈ 2.48 stored bits (E8, q = 4), loss 0.47 bit. */
  'e8-2.5bit': universal('E8', 4, 0.9033),
  /** ≈ 3.03 stored bits (E8, q = 6), loss 0.41 bit. */
  'e8-3bit': universal('E8', 6, 0.6022),
  /** ≈ 3.37 stored bits (E8, q = 8), loss 0.34 bit. */
  'e8-3.5bit': universal('E8', 8, 0.4517),
  /** ≈ 3.98 stored bits (E8, q = 12), loss 0.35 bit. */
  'e8-4bit': universal('E8', 12, 0.3011),
  /** ≈ 4.60 stored bits (E8, q = 19), loss 0.30 bit. */
  'e8-4.5bit': universal('E8', 19, 0.1902),
  /** ≈ 5.05 stored bits (E8, q = 24, 37-bit codes), loss 0.34 bit. */
  'e8-5bit': universal('E8', 24, 0.142),
  /** D3, q = 6, β = 0.45: the seed paper's lattice and code size, universal (≈ 3.37 stored bits, loss 0.74 bit). */
  'd3-q6': universal('D3', 6, 0.45),
  /** E8, q = 16, β = 0.25: one u32 code per 8 entries plus escapes (≈ 4.25 stored bits). */
  'e8-q16': universal('E8', 16, 0.25),
  /** The seed paper's deterministic D3 scheme: 216 codes + a 2-bit ladder index. Not universal. */
  'd3-q6-deterministic': { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: Math.SQRT2, steps: 4 } },
  /** NestQuant-style deterministic E8: a u32 code + a 2-bit index into 4 scales (4.25 bits). Not universal. */
  'e8-q16-deterministic': { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 16, overload: { kind: 'betaSet', betas: [0.2, 0.28, 0.392, 0.5488] } },
  /** The seed paper's 3-bit ℓ∞ scalar baseline: 8 equal cells over [−max, max] per column. */
  'int3-absmax': { kind: 'int', bits: 3, groupSize: 'column', grid: 'midrise', scaleFormat: 'fp32' },
  /** INT4, symmetric, one fp16 scale per 32 entries (what WebGPU int4 kernels ship). */
  'int4-g32': { kind: 'int', bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' },
  'int4-g128': { kind: 'int', bits: 4, groupSize: 128, grid: 'symmetric', scaleFormat: 'fp16' },
  nvfp4: { kind: 'nvfp4' },
} as const satisfies Record<string, Scheme>;

/**
 * The name of a preset scheme: a key of {@link SCHEMES}.
 *
 * @useDeclaredType
 */
export type SchemeName = keyof typeof PRESETS;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * The named schemes (frozen: a preset cannot be changed by accident, and every quantized matrix holds
 * its own copy of its scheme).
 */
export const SCHEMES: { readonly [K in SchemeName]: (typeof PRESETS)[K] } = deepFreeze(PRESETS);

/** The scheme names, for messages and for iterating (frozen, like `SCHEMES`). */
export const SCHEME_NAMES: readonly SchemeName[] = Object.freeze(Object.keys(SCHEMES) as SchemeName[]);

/**
 * Resolves a scheme name or checks an explicit scheme object, strictly: the name must be a preset's own
 * name (not `'toString'`), an object must have exactly the fields of its kind with values of the right
 * type. Returns a frozen copy, so a caller's later change to its object changes nothing here.
 *
 * @example
 * resolveScheme('e8-q16').beta;                                     // the preset, typed as it: 0.25
 * resolveScheme({ kind: 'lattice', mode: 'universal', lattice: 'E8', q: 12, beta: 0.3 });
 */
export function resolveScheme<K extends SchemeName>(scheme: K): (typeof SCHEMES)[K];
export function resolveScheme(scheme: SchemeName | Scheme): Scheme;
export function resolveScheme(scheme: SchemeName | Scheme): Scheme {
  if (typeof scheme === 'string') {
    check(Object.hasOwn(SCHEMES, scheme), () => `unknown scheme '${scheme}'; known: ${SCHEME_NAMES.join(', ')}`);
    return copyScheme(SCHEMES[scheme as SchemeName]);
  }
  check(isPlainObject(scheme), () => `scheme must be a scheme name (${SCHEME_NAMES.join(', ')}) or a scheme object, got ${describeValue(scheme)}`);
  const kind = (scheme as { kind?: unknown }).kind;
  switch (kind) {
    case 'lattice':
      return copyScheme(checkLatticeScheme(scheme as LatticeScheme));
    case 'int':
      return copyScheme(checkIntScheme(scheme as IntScheme));
    case 'nvfp4':
      checkKnownKeys(scheme, ['kind'], 'nvfp4 scheme');
      return copyScheme(scheme as Nvfp4Scheme);
    default:
      return check(false, () => `unknown scheme kind ${describeValue(kind)} (use 'lattice', 'int' or 'nvfp4')`) as never;
  }
}

/** A frozen deep copy of a checked scheme. */
function copyScheme<S extends Scheme>(scheme: S): S {
  const copy = JSON.parse(JSON.stringify(scheme)) as S;
  return deepFreeze(copy);
}

function checkNumber(value: unknown, what: string, condition: (v: number) => boolean, requirement: string): void {
  check(typeof value === 'number' && condition(value), () => `${what} must be ${requirement}, got ${describeValue(value)}`);
}

/**
 * The range of a deterministic scheme's first scale β₀ (the ladder's β, a β set's smallest): its
 * fixed-point unit β₀/16 is what every code decision and every decoded value is scaled by. The
 * largest scale is then at most 2^19·β₀ (`scaleGrid`'s span). Outside it the CPU and the GPU parted:
 * by β₀ = 10^24 (not yet at 10^20) the GPU's code-domain products formed unit² in f32, overflowed,
 * and returned NaN for blocks that all decode to 0 (the CPU: 0); at β₀ = 10^−38 the unit is
 * subnormal and √N·2^6/unit is +Infinity, which the GPU encoder refused as an internal uniform while
 * the CPU clipped every block to 0. Neither end is a useful quantizer: below 2^−14 even a column's
 * RMS coordinate (1) lies beyond the fixed point's range 2^14·β₀ (|X| ≤ 2^24) and is clamped, and
 * the universal schemes' β stops at 64 too.
 */
const MIN_DETERMINISTIC_BETA = 2 ** -14;
/** The largest β of a universal scheme and of a deterministic scheme's first scale. */
const MAX_SCHEME_BETA = 64;
const DETERMINISTIC_BETA_RANGE = `a number in [2^−14, ${MAX_SCHEME_BETA}] (the scale relative to a unit-variance coordinate; the presets use 0.2–0.4)`;

function isDeterministicBeta(beta: number): boolean {
  return beta >= MIN_DETERMINISTIC_BETA && beta <= MAX_SCHEME_BETA;
}

function checkLatticeScheme(scheme: LatticeScheme): LatticeScheme {
  const mode = (scheme as { mode?: unknown }).mode;
  check(mode === 'universal' || mode === 'deterministic', () => `a lattice scheme needs mode 'universal' or 'deterministic', got ${describeValue(mode)}`);
  if (mode === 'universal') {
    checkKnownKeys(scheme as UniversalLatticeScheme, ['kind', 'mode', 'lattice', 'q', 'beta'], 'universal lattice scheme');
    check(scheme.lattice === 'D3' || scheme.lattice === 'E8', () => `universal lattice schemes use 'D3' or 'E8', got ${describeValue(scheme.lattice)}`);
    checkNumber(scheme.q, 'lattice scheme q', (q) => Number.isInteger(q) && q >= 3 && q <= MAX_UNIVERSAL_Q, `an integer in [3, ${MAX_UNIVERSAL_Q}]`);
    checkNumber((scheme as UniversalLatticeScheme).beta, 'lattice scheme beta', (b) => Number.isFinite(b) && b > 0 && b <= MAX_SCHEME_BETA, `a positive number ≤ ${MAX_SCHEME_BETA}`);
    return scheme;
  }
  checkKnownKeys(scheme as DeterministicLatticeScheme, ['kind', 'mode', 'lattice', 'q', 'overload'], 'deterministic lattice scheme');
  latticeSpec(scheme.lattice as LatticeName);
  // q = 2 is a valid Voronoi code but a useless quantizer: half of the shortest vectors are not
  // their coset's leader, so blocks near them overload and collapse to 0 (measured NMSE > 1).
  checkNumber(scheme.q, 'lattice scheme q', (q) => Number.isInteger(q) && q >= 3, 'an integer ≥ 3');
  const dimension = scheme.lattice === 'D3' ? 3 : 8;
  check(
    scheme.q ** dimension <= 2 ** 32,
    () => `q = ${scheme.q} gives ${scheme.q}^${dimension} codes per ${scheme.lattice} block, more than a 32-bit code holds (deterministic E8 and Z allow q ≤ 16)`,
  );
  const rule = (scheme as DeterministicLatticeScheme).overload;
  check(isPlainObject(rule), 'a deterministic lattice scheme needs an overload rule object');
  if (rule.kind === 'ladder') {
    checkKnownKeys(rule, ['kind', 'beta', 'ratio', 'steps'], 'ladder overload rule');
    checkNumber(rule.beta, 'ladder beta', isDeterministicBeta, DETERMINISTIC_BETA_RANGE);
    checkNumber(rule.ratio, 'ladder ratio', (r) => r > 1 && Number.isFinite(r), '> 1');
    checkNumber(rule.steps, 'ladder steps', (s) => Number.isInteger(s) && s >= 1 && s <= 16, 'an integer in 1..16');
  } else if (rule.kind === 'betaSet') {
    checkKnownKeys(rule, ['kind', 'betas'], 'betaSet overload rule');
    const betas = rule.betas;
    check(Array.isArray(betas) && betas.length >= 1 && betas.length <= 16, 'betaSet needs an array of 1..16 betas');
    for (let i = 0; i < betas.length; i++) {
      const b = betas[i];
      // The first β is bounded as the ladder's; the others only have to be finite and increasing.
      if (i === 0) checkNumber(b, 'the first betaSet beta', isDeterministicBeta, DETERMINISTIC_BETA_RANGE);
      else {
        checkNumber(b, 'betaSet betas', (v) => v > 0 && Number.isFinite(v), 'positive numbers');
        check((b as number) > (betas[i - 1] as number), 'betaSet betas must be increasing');
      }
    }
  } else {
    check(false, () => `unknown overload rule kind ${describeValue((rule as { kind?: unknown }).kind)} (use 'ladder' or 'betaSet')`);
  }
  return scheme;
}

function checkIntScheme(scheme: IntScheme): IntScheme {
  checkKnownKeys(scheme, ['kind', 'bits', 'groupSize', 'grid', 'scaleFormat'], 'int scheme');
  checkNumber(scheme.bits, 'int scheme bits', (b) => Number.isInteger(b) && b >= 2 && b <= 8, 'an integer in 2..8');
  check(
    scheme.groupSize === 'column' || (typeof scheme.groupSize === 'number' && Number.isInteger(scheme.groupSize) && scheme.groupSize >= 1),
    () => `int scheme groupSize must be a positive integer or 'column', got ${describeValue(scheme.groupSize)}`,
  );
  checkOneOf(scheme.grid, INT_GRIDS, 'int scheme grid');
  checkOneOf(scheme.scaleFormat, SCALE_FORMATS, 'int scheme scaleFormat');
  return scheme;
}
