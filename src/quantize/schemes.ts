import { check } from '../errors.js';
import type { IntGrid } from '../scalar/absmax.js';

/**
 * How a block that does not fit the coarse lattice (overload) is retried with a larger scale.
 * - `ladder`: scales β·ratio^T, T = 0, 1, …, steps − 1, the first one that fits (the seed paper's
 *   scheme; T is side information, counted by its entropy). A block that overloads on every rung is
 *   shrunk toward the origin until it fits (clipping), so the error stays bounded.
 * - `betaSet`: one of a few scales per block, the one of least error among those that fit (NestQuant;
 *   a log2(k)-bit index per block).
 */
export type OverloadRule =
  | { readonly kind: 'ladder'; readonly beta: number; readonly ratio: number; readonly steps: number }
  | { readonly kind: 'betaSet'; readonly betas: readonly number[] };

/** Nested-lattice quantization of d-dimensional blocks: Λ = lattice, Voronoi code with ratio q. */
export interface LatticeScheme {
  readonly kind: 'lattice';
  /** 'Z' means Z^8: blocks of 8 coordinates sharing one scale index. */
  readonly lattice: 'D3' | 'E8' | 'Z';
  readonly q: number;
  readonly overload: OverloadRule;
}

/** Scalar absmax integer quantization of the rotated coordinates (baseline). */
export interface IntScheme {
  readonly kind: 'int';
  readonly bits: number;
  /** Entries sharing one scale; `'column'` = the whole rotated column (the seed's ℓ∞ baseline). */
  readonly groupSize: number | 'column';
  readonly grid: IntGrid;
  readonly scaleFormat: 'fp32' | 'fp16';
}

/** NVFP4: E2M1 values, an E4M3 scale per 16 entries, one fp32 tensor scale (baseline). */
export interface Nvfp4Scheme {
  readonly kind: 'nvfp4';
}

export type Scheme = LatticeScheme | IntScheme | Nvfp4Scheme;

/**
 * Named schemes. The lattice parameters were chosen by sweeps on iid Gaussian data (n = 768 and 6144) to reproduce
 * the seed paper's operating point (D3) and NestQuant's (E8).
 */
export const SCHEMES = {
  /** D3, q = 6: 216 codes (one byte per 3 entries) + a 2-bit ladder index; the seed paper's scheme. */
  'd3-q6': { kind: 'lattice', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: Math.SQRT2, steps: 4 } },
  /** E8, q = 16: one u32 per 8 entries + a 2-bit index into 4 scales (4.25 bits). */
  'e8-q16': { kind: 'lattice', lattice: 'E8', q: 16, overload: { kind: 'betaSet', betas: [0.2, 0.28, 0.392, 0.5488] } },
  /** The seed paper's 3-bit ℓ∞ scalar baseline: 8 equal cells over [−max, max] per column. */
  'int3-absmax': { kind: 'int', bits: 3, groupSize: 'column', grid: 'midrise', scaleFormat: 'fp32' },
  /** INT4, symmetric, one fp16 scale per 32 entries (what WebGPU int4 kernels ship). */
  'int4-g32': { kind: 'int', bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' },
  'int4-g128': { kind: 'int', bits: 4, groupSize: 128, grid: 'symmetric', scaleFormat: 'fp16' },
  nvfp4: { kind: 'nvfp4' },
} as const satisfies Record<string, Scheme>;

export type SchemeName = keyof typeof SCHEMES;

/** Resolves a name or checks an explicit scheme, with clear errors. */
export function resolveScheme(scheme: SchemeName | Scheme): Scheme {
  if (typeof scheme === 'string') {
    const named = (SCHEMES as Record<string, Scheme>)[scheme];
    check(named !== undefined, () => `unknown scheme '${scheme}'; known: ${Object.keys(SCHEMES).join(', ')}`);
    return named;
  }
  check(typeof scheme === 'object' && scheme !== null, 'scheme must be a scheme name or a scheme object');
  switch (scheme.kind) {
    case 'lattice':
      checkLatticeScheme(scheme);
      return scheme;
    case 'int':
      check(Number.isInteger(scheme.bits) && scheme.bits >= 2 && scheme.bits <= 8, () => `int scheme bits must be 2..8, got ${scheme.bits}`);
      check(
        scheme.groupSize === 'column' || (Number.isInteger(scheme.groupSize) && scheme.groupSize >= 1),
        () => `int scheme groupSize must be a positive integer or 'column', got ${String(scheme.groupSize)}`,
      );
      check(scheme.grid === 'midrise' || scheme.grid === 'symmetric', () => `int scheme grid must be 'midrise' or 'symmetric', got ${String(scheme.grid)}`);
      check(scheme.scaleFormat === 'fp32' || scheme.scaleFormat === 'fp16', () => `int scheme scaleFormat must be 'fp32' or 'fp16'`);
      return scheme;
    case 'nvfp4':
      return scheme;
    default:
      return check(false, () => `unknown scheme kind '${String((scheme as { kind?: unknown }).kind)}'`) as never;
  }
}

function checkLatticeScheme(scheme: LatticeScheme): void {
  check(['D3', 'E8', 'Z'].includes(scheme.lattice), () => `unsupported lattice '${String(scheme.lattice)}' (use 'D3', 'E8' or 'Z')`);
  // q = 2 is a valid Voronoi code but a useless quantizer: half of the shortest vectors are not
  // their coset's leader, so blocks near them overload and collapse to 0 (measured NMSE > 1).
  check(Number.isInteger(scheme.q) && scheme.q >= 3, () => `lattice scheme q must be an integer ≥ 3, got ${scheme.q}`);
  const dimension = scheme.lattice === 'D3' ? 3 : 8;
  check(
    scheme.q ** dimension <= 2 ** 32,
    () => `q = ${scheme.q} gives ${scheme.q}^${dimension} codes per ${scheme.lattice} block, more than a 32-bit code holds (E8 and Z allow q ≤ 16)`,
  );
  const rule = scheme.overload;
  check(typeof rule === 'object' && rule !== null, 'lattice scheme needs an overload rule');
  if (rule.kind === 'ladder') {
    check(rule.beta > 0 && Number.isFinite(rule.beta), () => `ladder beta must be positive, got ${rule.beta}`);
    check(rule.ratio > 1 && Number.isFinite(rule.ratio), () => `ladder ratio must be > 1, got ${rule.ratio}`);
    check(Number.isInteger(rule.steps) && rule.steps >= 1 && rule.steps <= 16, () => `ladder steps must be 1..16, got ${rule.steps}`);
  } else if (rule.kind === 'betaSet') {
    const betas = rule.betas;
    check(Array.isArray(betas) && betas.length >= 1 && betas.length <= 16, 'betaSet needs 1..16 betas');
    for (let i = 0; i < betas.length; i++) {
      const b = betas[i] as number;
      check(b > 0 && Number.isFinite(b), () => `betaSet betas must be positive, got ${b}`);
      if (i > 0) check(b > (betas[i - 1] as number), 'betaSet betas must be increasing');
    }
  } else {
    check(false, () => `unknown overload rule '${String((rule as { kind?: unknown }).kind)}'`);
  }
}
