import { SCHEMES, type SchemeName } from '../src/index.js';

/** How a scheme is drawn: colour (Okabe–Ito, distinguishable with colour-blindness) and marker shape. */
export interface SchemeStyle {
  readonly colour: string;
  readonly marker: 'circle' | 'square' | 'triangle';
  readonly label: string;
}

const STYLES: Readonly<Record<SchemeName, SchemeStyle>> = {
  'd3-q6': { colour: '#0072B2', marker: 'circle', label: 'D3, q = 6' },
  'e8-q16': { colour: '#009E73', marker: 'circle', label: 'E8, q = 16' },
  'int3-absmax': { colour: '#E69F00', marker: 'square', label: 'INT3 absmax' },
  'int4-g32': { colour: '#D55E00', marker: 'square', label: 'INT4, group 32' },
  'int4-g128': { colour: '#CC79A7', marker: 'square', label: 'INT4, group 128' },
  nvfp4: { colour: '#56B4E9', marker: 'triangle', label: 'NVFP4' },
};

export function schemeStyle(scheme: SchemeName): SchemeStyle {
  return STYLES[scheme];
}

/** The scheme names in the library's order. */
export const SCHEME_NAMES = Object.keys(SCHEMES) as SchemeName[];

/** Lattice schemes take a gain mode; scalar ones do not. */
export function isLatticeScheme(scheme: SchemeName): boolean {
  return SCHEMES[scheme].kind === 'lattice';
}
