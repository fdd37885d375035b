import { SCHEMES, type GainMode, type SchemeName } from '../src/index.js';

/**
 * How a scheme is drawn: colour (Okabe–Ito, distinguishable with colour-blindness), marker shape, its
 * own label, and the legend entry it shares with its family (the E8 rate presets are one family: one
 * colour and one legend entry, told apart by where they sit on the rate axis).
 */
export interface SchemeStyle {
  readonly colour: string;
  readonly marker: 'circle' | 'square' | 'triangle' | 'diamond';
  readonly label: string;
  readonly legend: string;
}

const E8_UNIVERSAL = { colour: '#009E73', marker: 'circle', legend: 'E8 (universal)' } as const;
const D3_COLOUR = '#0072B2';

const STYLES: Readonly<Record<SchemeName, SchemeStyle>> = {
  'e8-2bit': { ...E8_UNIVERSAL, label: 'E8, 2 bits' },
  'e8-2.5bit': { ...E8_UNIVERSAL, label: 'E8, 2.5 bits' },
  'e8-3bit': { ...E8_UNIVERSAL, label: 'E8, 3 bits' },
  'e8-3.5bit': { ...E8_UNIVERSAL, label: 'E8, 3.5 bits' },
  'e8-4bit': { ...E8_UNIVERSAL, label: 'E8, 4 bits' },
  'e8-4.5bit': { ...E8_UNIVERSAL, label: 'E8, 4.5 bits' },
  'e8-5bit': { ...E8_UNIVERSAL, label: 'E8, 5 bits' },
  'e8-q16': { ...E8_UNIVERSAL, label: 'E8, q = 16' },
  'd3-q6': { colour: D3_COLOUR, marker: 'circle', label: 'D3, q = 6', legend: 'D3, q = 6 (universal)' },
  // The papers' deterministic quantizers: the same colours as their lattices, a diamond marker.
  'd3-q6-deterministic': { colour: D3_COLOUR, marker: 'diamond', label: 'D3, q = 6, deterministic', legend: 'D3, q = 6 (deterministic)' },
  'e8-q16-deterministic': { colour: E8_UNIVERSAL.colour, marker: 'diamond', label: 'E8, q = 16, deterministic', legend: 'E8, q = 16 (deterministic)' },
  'int3-absmax': { colour: '#E69F00', marker: 'square', label: 'INT3 absmax', legend: 'INT3 absmax' },
  'int4-g32': { colour: '#D55E00', marker: 'square', label: 'INT4, group 32', legend: 'INT4, group 32' },
  'int4-g128': { colour: '#CC79A7', marker: 'square', label: 'INT4, group 128', legend: 'INT4, group 128' },
  nvfp4: { colour: '#56B4E9', marker: 'triangle', label: 'NVFP4', legend: 'NVFP4' },
};

export function schemeStyle(scheme: SchemeName): SchemeStyle {
  return STYLES[scheme];
}

/** The scheme names in the library's order. */
export const SCHEME_NAMES = Object.keys(SCHEMES) as SchemeName[];

/** The scheme the page selects at first: a universal preset (the library's default kind of scheme). */
export const DEFAULT_SCHEME: SchemeName = 'e8-q16';

/** How the scheme picker groups the presets. */
export type SchemeGroup = 'universal' | 'deterministic' | 'scalar';

export const SCHEME_GROUP_LABELS: Readonly<Record<SchemeGroup, string>> = {
  universal: 'Universal lattice codes (error set by the norms alone)',
  deterministic: 'Deterministic lattice codes (the papers; not universal)',
  scalar: 'Scalar baselines',
};

export function schemeGroup(scheme: SchemeName): SchemeGroup {
  const resolved = SCHEMES[scheme];
  if (resolved.kind !== 'lattice') return 'scalar';
  return resolved.mode;
}

/** Lattice schemes run on the GPU engine; scalar ones do not. */
export function isLatticeScheme(scheme: SchemeName): boolean {
  return SCHEMES[scheme].kind === 'lattice';
}

/** The gain modes as the page's Gain picker names them (and run labels repeat them). */
export const GAIN_LABELS: Readonly<Record<GainMode, string>> = { unbiased: 'unbiased', mmse: 'MMSE', none: 'none' };

/** What each gain mode is and where it comes from: the Gain picker shows it after the label. */
export const GAIN_NOTES: Readonly<Record<GainMode, string>> = {
  unbiased: 'the library’s default',
  mmse: 'the seed paper’s, as in the README’s table',
  none: 'γ = 1',
};

/** Only the deterministic lattice schemes take a gain mode (the universal code refuses one). */
export function takesGain(scheme: SchemeName): boolean {
  return schemeGroup(scheme) === 'deterministic';
}

/** Universal schemes come with a predicted error (`expectedNmse`) and draw a dither nonce per matrix. */
export function isUniversalScheme(scheme: SchemeName): boolean {
  return schemeGroup(scheme) === 'universal';
}
