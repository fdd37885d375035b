import { gamma, R_STAR, type SchemeName } from '../src/index.js';
import { SCHEME_NAMES, schemeStyle, type SchemeStyle } from './schemeStyle.js';
import { drawingWidth, px, svg, svgRoot } from './svg.js';

/** One measured scheme on the rate–distortion plot. */
export interface RatePoint {
  readonly scheme: SchemeName;
  /** E.g. "e8-q16" or "d3-q6-deterministic (gain: unbiased)", for the tooltip. */
  readonly label: string;
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  readonly nmse: number;
  /** The latest run: drawn with a ring and a label. */
  readonly current: boolean;
}

/** The plot's widest drawing (a desktop panel), its narrowest (a phone) and its height at the widest. */
const WIDEST = 640;
const NARROWEST = 300;
const HEIGHT_AT_WIDEST = 400;
/** Below 480 units wide the height stops following the width: the decades need room for their labels. */
const MIN_HEIGHT = 300;
const MARGIN = { left: 62, right: 14, top: 14, bottom: 46 };
/** The rate axis runs to at least this many bits, further when a point needs it. */
const RATE_AXIS_MIN = 6;
/** Filled markers closer than this (px) sit on one another: the later one is drawn smaller, with an outline. */
const STACK_DISTANCE = 5;
const STORED_RADIUS = 5.5;

/**
 * Draws Γ(R) on a log-scale error axis, the region below it (unreachable for Gaussian data) and the
 * measured points, into `container` (replacing what was there), with the legend below the plot. The
 * rate axis covers every point (at least 0 to 6 bits): no point is drawn away from its rate.
 */
export function drawRatePlot(container: HTMLElement, points: readonly RatePoint[]): void {
  const finite = points.filter((p) => Number.isFinite(p.nmse) && p.nmse > 0 && Number.isFinite(p.bitsStored) && Number.isFinite(p.bitsEntropy));
  const { rateMax, rateStep } = rateAxis(finite);
  // Decades down to Γ(min(rateMax, 8)) at least (Γ(6) ≈ 5·10⁻⁴), further if a point is lower; beyond,
  // the curve runs along the bottom of the plot.
  const lowest = Math.min(gamma(Math.min(rateMax, 8)), ...finite.map((p) => p.nmse));
  const decadeMin = Math.floor(Math.log10(lowest * 0.8));
  const highest = Math.max(1, ...finite.map((p) => p.nmse));
  const decadeMax = Math.max(0, Math.ceil(Math.log10(highest)));

  const width = drawingWidth(container, NARROWEST, WIDEST);
  const height = Math.max(MIN_HEIGHT, Math.round((HEIGHT_AT_WIDEST * width) / WIDEST));
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const x = (rate: number): number => MARGIN.left + (Math.max(rate, 0) / rateMax) * plotWidth;
  const y = (nmse: number): number =>
    MARGIN.top + ((decadeMax - Math.log10(nmse)) / (decadeMax - decadeMin)) * plotHeight;

  const root = svgRoot(
    width,
    height,
    'Rate–distortion plot',
    `Normalized product error (log scale, 10^${decadeMin} to 10^${decadeMax}) against bits per entry (0 to ${rateMax}): ` +
      `the bound Γ(R) for Gaussian data and ${finite.length} measured scheme${finite.length === 1 ? '' : 's'}.`,
  );

  // Grid and ticks.
  const grid = svg('g');
  for (let rate = 0; rate <= rateMax; rate += rateStep) {
    grid.append(
      svg('line', { class: 'gridline', x1: px(x(rate)), x2: px(x(rate)), y1: MARGIN.top, y2: height - MARGIN.bottom }),
      svg('text', { class: 'tick rate-tick', x: px(x(rate)), y: height - MARGIN.bottom + 16, 'text-anchor': 'middle' }, String(rate)),
    );
  }
  for (let decade = decadeMin; decade <= decadeMax; decade++) {
    const value = 10 ** decade;
    grid.append(
      svg('line', { class: 'gridline', x1: MARGIN.left, x2: width - MARGIN.right, y1: px(y(value)), y2: px(y(value)) }),
      svg('text', { class: 'tick', x: MARGIN.left - 6, y: px(y(value) + 4), 'text-anchor': 'end' }, decadeLabel(decade)),
    );
  }
  root.append(grid);

  // Γ(R) and the region under it (unreachable for Gaussian data).
  const floor = 10 ** decadeMin;
  const curve: string[] = [];
  const steps = 240;
  for (let i = 0; i <= steps; i++) {
    const rate = (rateMax * i) / steps;
    curve.push(`${px(x(rate))},${px(y(Math.max(gamma(rate), floor)))}`);
  }
  const bottom = height - MARGIN.bottom;
  const labelRate = Math.min(5.1, 0.85 * rateMax);
  root.append(
    svg('polygon', { class: 'unreachable', points: `${px(x(0))},${bottom} ${curve.join(' ')} ${px(x(rateMax))},${bottom}` }),
    svg('polyline', { class: 'curve', points: curve.join(' ') }),
    svg('text', { x: px(x(labelRate)), y: px(y(gamma(labelRate)) + 20), 'text-anchor': 'middle' }, 'Γ(R)'),
    regionLabel(x, (rate) => y(Math.max(gamma(rate), floor)), rateMax, bottom),
    svg('line', { class: 'axis', x1: px(x(R_STAR)), x2: px(x(R_STAR)), y1: px(y(gamma(R_STAR)) - 5), y2: px(y(gamma(R_STAR)) + 5) }),
    // Below and left of the tick: Γ falls to the right, so below-right it crossed the label on narrow plots.
    svg('text', { class: 'tick', x: px(x(R_STAR) - 4), y: px(y(gamma(R_STAR)) + 16), 'text-anchor': 'end' }, 'R*'),
  );

  // Axes and their labels.
  root.append(
    svg('line', { class: 'axis', x1: MARGIN.left, x2: width - MARGIN.right, y1: bottom, y2: bottom }),
    svg('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: bottom }),
    svg('text', { x: px(MARGIN.left + plotWidth / 2), y: height - 8, 'text-anchor': 'middle' }, 'bits per entry R'),
    svg(
      'text',
      { x: 14, y: px(MARGIN.top + plotHeight / 2), 'text-anchor': 'middle', transform: `rotate(-90 14 ${px(MARGIN.top + plotHeight / 2)})` },
      'product NMSE (log scale)',
    ),
  );

  // The measured points: filled at bits stored, hollow at entropy-coded bits, joined by a thin line. A
  // filled marker drawn where another already is gets smaller and outlined, so both stay visible.
  const placed: Array<{ x: number; y: number }> = [];
  /** Every marker drawn so far (filled and hollow), which the latest point's label should not cover. */
  const markers: Array<{ x: number; y: number }> = [];
  const current = finite.filter((p) => p.current);
  for (const point of [...finite.filter((p) => !p.current), ...current]) {
    const style = schemeStyle(point.scheme);
    // The exact values, for scripts and tests (the title rounds them).
    const group = svg('g', { class: 'point', 'data-scheme': point.scheme, 'data-bits': point.bitsStored, 'data-nmse': point.nmse });
    group.append(
      svg(
        'title',
        {},
        `${point.label}: NMSE ${point.nmse.toPrecision(3)} at ${point.bitsStored.toFixed(3)} bits stored` +
          ` (${point.bitsEntropy.toFixed(3)} entropy-coded); Γ = ${gamma(point.bitsStored).toPrecision(3)}`,
      ),
    );
    const yPoint = y(point.nmse);
    if (Math.abs(point.bitsEntropy - point.bitsStored) > 0.01) {
      markers.push({ x: x(point.bitsEntropy), y: yPoint });
      const hollow = marker(style, x(point.bitsEntropy), yPoint, 4.5, false);
      hollow.classList.add('entropy');
      group.append(
        svg('line', { x1: px(x(point.bitsEntropy)), x2: px(x(point.bitsStored)), y1: px(yPoint), y2: px(yPoint), stroke: style.colour, 'stroke-width': 1.2 }),
        hollow,
      );
    }
    const xPoint = x(point.bitsStored);
    const under = placed.filter((p) => Math.hypot(p.x - xPoint, p.y - yPoint) < STACK_DISTANCE).length;
    const filled = marker(style, xPoint, yPoint, STORED_RADIUS * 0.6 ** under, true);
    filled.classList.add('stored');
    if (under > 0) filled.classList.add('stacked');
    placed.push({ x: xPoint, y: yPoint });
    markers.push({ x: xPoint, y: yPoint });
    group.append(filled);
    if (point.current) {
      group.append(svg('circle', { class: 'current-ring', cx: px(xPoint), cy: px(yPoint), r: 10 }));
      const spot = labelSpot(point.label, xPoint, yPoint, markers.slice(0, -1), { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom });
      group.append(svg('text', { x: px(spot.x), y: px(spot.y), 'text-anchor': spot.anchor }, point.label));
    }
    root.append(group);
  }

  container.replaceChildren(root, legend(finite));
}

/** The rate axis: 0 to at least `RATE_AXIS_MIN` bits, rounded up to a tick past the largest rate shown. */
function rateAxis(points: readonly RatePoint[]): { rateMax: number; rateStep: number } {
  const highest = Math.max(RATE_AXIS_MIN, ...points.flatMap((p) => [p.bitsStored, p.bitsEntropy]));
  const rateStep = highest <= 10 ? 1 : highest <= 20 ? 2 : highest <= 50 ? 5 : 10;
  return { rateMax: Math.ceil(highest / rateStep) * rateStep, rateStep };
}

/**
 * "unreachable for Gaussian data", at the bottom of the region under Γ, right-aligned where the curve
 * is still high enough above the axis (the region narrows as the rate axis grows); on two lines when
 * one does not fit.
 */
function regionLabel(x: (rate: number) => number, curveY: (rate: number) => number, rateMax: number, bottom: number): SVGElement {
  let right = 0;
  for (let i = 0; i <= 240; i++) {
    const rate = (rateMax * i) / 240;
    if (curveY(rate) > bottom - 26) break;
    right = rate;
  }
  const anchorX = x(right) - 6;
  const text = svg('text', { class: 'tick region-label', x: px(anchorX), y: px(bottom - 9), 'text-anchor': 'end' });
  if (anchorX - MARGIN.left >= 170) {
    text.textContent = 'unreachable for Gaussian data';
  } else {
    text.append(
      svg('tspan', { x: px(anchorX), dy: -13 }, 'unreachable for'),
      svg('tspan', { x: px(anchorX), dy: 13 }, 'Gaussian data'),
    );
  }
  return text;
}

/** A marker of the scheme's shape centred at (cx, cy). */
function marker(style: SchemeStyle, cx: number, cy: number, radius: number, filled: boolean): SVGElement {
  const paint = filled
    ? { fill: style.colour, stroke: style.colour, 'stroke-width': 1 }
    : { fill: 'none', stroke: style.colour, 'stroke-width': 1.6 };
  switch (style.marker) {
    case 'circle':
      return svg('circle', { cx: px(cx), cy: px(cy), r: radius, ...paint });
    case 'square': {
      const side = radius * 1.7;
      return svg('rect', { x: px(cx - side / 2), y: px(cy - side / 2), width: px(side), height: px(side), ...paint });
    }
    case 'triangle': {
      const r = radius * 1.25;
      const points = [
        [cx, cy - r],
        [cx + r * 0.866, cy + r / 2],
        [cx - r * 0.866, cy + r / 2],
      ];
      return svg('polygon', { points: points.map(([px0, py0]) => `${px(px0 as number)},${px(py0 as number)}`).join(' '), ...paint });
    }
    case 'diamond': {
      const r = radius * 1.3;
      const points = [
        [cx, cy - r],
        [cx + r, cy],
        [cx, cy + r],
        [cx - r, cy],
      ];
      return svg('polygon', { points: points.map(([px0, py0]) => `${px(px0 as number)},${px(py0 as number)}`).join(' '), ...paint });
    }
  }
}

/** Average advance of a character of the plot's 12 px labels, and their height, for placing them. */
const LABEL_CHAR_WIDTH = 6.8;
const LABEL_HEIGHT = 12;
/** How far from a marker's centre a label must stay (its radius and a gap). */
const MARKER_CLEARANCE = 7;

/**
 * Where to write the latest point's label: beside its ring, above or below, right or left, whichever
 * of those four spots stays inside the plot and covers the fewest other markers (ties: above, then
 * right in the plot's left half and left in its right half, as before). A label too wide for either
 * side (a long scheme name on a phone's narrow plot) goes above or below the ring, slid along to stay
 * inside, rather than over an axis or past the plot's edge; wider than the plot, it starts at its left.
 */
export function labelSpot(
  label: string,
  xPoint: number,
  yPoint: number,
  markers: readonly { readonly x: number; readonly y: number }[],
  area: { readonly left: number; readonly right: number; readonly top: number; readonly bottom: number },
): { x: number; y: number; anchor: 'start' | 'end' } {
  const width = label.length * LABEL_CHAR_WIDTH;
  const rightFirst = xPoint <= (area.left + area.right) / 2;
  type Spot = { x: number; y: number; anchor: 'start' | 'end' };
  const beside: Spot[] = [-10, 20].flatMap((dy) =>
    (rightFirst ? [1, -1] : [-1, 1]).map((side) => ({ x: xPoint + 13 * side, y: yPoint + dy, anchor: side > 0 ? ('start' as const) : ('end' as const) })),
  );
  // Above and below the ring, clear of it, centred on it as far as the plot's edges allow.
  const slidX = Math.max(area.left, Math.min(xPoint - width / 2, area.right - width));
  const slid: Spot[] = [-14, 24].map((dy) => ({ x: slidX, y: yPoint + dy, anchor: 'start' as const }));
  const box = (c: Spot) => ({
    left: c.anchor === 'start' ? c.x : c.x - width,
    right: c.anchor === 'start' ? c.x + width : c.x,
    top: c.y - LABEL_HEIGHT + 2,
    bottom: c.y + 3,
  });
  const inside = (c: Spot): boolean => {
    const b = box(c);
    return b.left >= area.left && b.right <= area.right && b.top >= area.top && b.bottom <= area.bottom;
  };
  const covered = (c: Spot): number => {
    const b = box(c);
    return markers.filter((m) => m.x > b.left - MARKER_CLEARANCE && m.x < b.right + MARKER_CLEARANCE && m.y > b.top - MARKER_CLEARANCE && m.y < b.bottom + MARKER_CLEARANCE).length;
  };
  // The first spot covering fewest markers, among the first of these lists that has one inside: beside
  // the ring; slid over it; and, for a label wider than the plot, slid from its left edge anyway.
  const choices = [beside.filter(inside), slid.filter(inside), slid].find((list) => list.length > 0) as Spot[];
  let best = choices[0] as Spot;
  for (const candidate of choices) if (covered(candidate) < covered(best)) best = candidate;
  return best;
}

/** The scheme families on the plot (one entry per legend label), as a list below it. */
function legend(points: readonly RatePoint[]): HTMLElement {
  const shown = new Set(points.map((p) => p.scheme));
  const entries = new Map<string, SchemeStyle>();
  for (const scheme of SCHEME_NAMES) {
    const style = schemeStyle(scheme);
    if (shown.has(scheme) && !entries.has(style.legend)) entries.set(style.legend, style);
  }
  const list = document.createElement('ul');
  list.className = 'legend';
  list.setAttribute('aria-label', 'Legend');
  for (const [label, style] of entries) {
    const item = document.createElement('li');
    const icon = svg('svg', { viewBox: '0 0 16 16', 'aria-hidden': 'true' });
    icon.append(marker(style, 8, 8, 5, true));
    item.append(icon, label);
    list.append(item);
  }
  return list;
}

function decadeLabel(decade: number): string {
  if (decade === 0) return '1';
  if (decade === -1) return '0.1';
  if (decade === -2) return '0.01';
  return `1e${decade}`;
}
