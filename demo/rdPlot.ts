import { gamma, R_STAR, type SchemeName } from '../src/index.js';
import { SCHEME_NAMES, schemeStyle, type SchemeStyle } from './schemeStyle.js';
import { px, svg, svgRoot } from './svg.js';

/** One measured scheme on the rate–distortion plot. */
export interface RatePoint {
  readonly scheme: SchemeName;
  /** E.g. "e8-q16" or "d3-q6-deterministic (unbiased gain)", for the tooltip. */
  readonly label: string;
  readonly bitsStored: number;
  readonly bitsEntropy: number;
  readonly nmse: number;
  /** The latest run: drawn with a ring and a label. */
  readonly current: boolean;
}

const WIDTH = 640;
const HEIGHT = 400;
const MARGIN = { left: 62, right: 14, top: 14, bottom: 46 };
const RATE_MAX = 6;

/**
 * Draws Γ(R) for R ∈ [0, 6] on a log-scale error axis, the unreachable region below it, and the
 * measured points, into `container` (replacing what was there).
 */
export function drawRatePlot(container: HTMLElement, points: readonly RatePoint[]): void {
  const finite = points.filter((p) => Number.isFinite(p.nmse) && p.nmse > 0);
  // Decades down to Γ(6) ≈ 5·10⁻⁴ at least, further if a point is lower.
  const lowest = Math.min(gamma(RATE_MAX), ...finite.map((p) => p.nmse));
  const decadeMin = Math.floor(Math.log10(lowest * 0.8));
  const highest = Math.max(1, ...finite.map((p) => p.nmse));
  const decadeMax = Math.max(0, Math.ceil(Math.log10(highest)));

  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (rate: number): number => MARGIN.left + (Math.min(Math.max(rate, 0), RATE_MAX) / RATE_MAX) * plotWidth;
  const y = (nmse: number): number =>
    MARGIN.top + ((decadeMax - Math.log10(nmse)) / (decadeMax - decadeMin)) * plotHeight;

  const root = svgRoot(
    WIDTH,
    HEIGHT,
    'Rate–distortion plot',
    `Normalized product error (log scale, 10^${decadeMin} to 10^${decadeMax}) against bits per entry (0 to ${RATE_MAX}): ` +
      `the bound Γ(R) and ${finite.length} measured scheme${finite.length === 1 ? '' : 's'}.`,
  );

  // Grid and ticks.
  const grid = svg('g');
  for (let rate = 0; rate <= RATE_MAX; rate++) {
    grid.append(
      svg('line', { class: 'gridline', x1: px(x(rate)), x2: px(x(rate)), y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom }),
      svg('text', { class: 'tick', x: px(x(rate)), y: HEIGHT - MARGIN.bottom + 16, 'text-anchor': 'middle' }, String(rate)),
    );
  }
  for (let decade = decadeMin; decade <= decadeMax; decade++) {
    const value = 10 ** decade;
    grid.append(
      svg('line', { class: 'gridline', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: px(y(value)), y2: px(y(value)) }),
      svg('text', { class: 'tick', x: MARGIN.left - 6, y: px(y(value) + 4), 'text-anchor': 'end' }, decadeLabel(decade)),
    );
  }
  root.append(grid);

  // Γ(R) and the unreachable region under it.
  const curve: string[] = [];
  const steps = 240;
  for (let i = 0; i <= steps; i++) {
    const rate = (RATE_MAX * i) / steps;
    curve.push(`${px(x(rate))},${px(y(Math.max(gamma(rate), 10 ** decadeMin)))}`);
  }
  const bottom = HEIGHT - MARGIN.bottom;
  root.append(
    svg('polygon', { class: 'unreachable', points: `${px(x(0))},${bottom} ${curve.join(' ')} ${px(x(RATE_MAX))},${bottom}` }),
    svg('polyline', { class: 'curve', points: curve.join(' ') }),
    // Labels inside the shaded region, which no measured point can enter.
    svg('text', { x: px(x(5.1)), y: px(y(gamma(5.1)) + 20), 'text-anchor': 'middle' }, 'Γ(R)'),
    svg('text', { class: 'tick', x: px(x(4.6)), y: px(bottom - 10), 'text-anchor': 'middle' }, 'unreachable'),
    svg('line', { class: 'axis', x1: px(x(R_STAR)), x2: px(x(R_STAR)), y1: px(y(gamma(R_STAR)) - 5), y2: px(y(gamma(R_STAR)) + 5) }),
    svg('text', { class: 'tick', x: px(x(R_STAR) + 4), y: px(y(gamma(R_STAR)) + 16) }, 'R*'),
  );

  // Axes and their labels.
  root.append(
    svg('line', { class: 'axis', x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: bottom, y2: bottom }),
    svg('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: bottom }),
    svg('text', { x: px(MARGIN.left + plotWidth / 2), y: HEIGHT - 8, 'text-anchor': 'middle' }, 'bits per entry R'),
    svg(
      'text',
      { x: 14, y: px(MARGIN.top + plotHeight / 2), 'text-anchor': 'middle', transform: `rotate(-90 14 ${px(MARGIN.top + plotHeight / 2)})` },
      'product NMSE (log scale)',
    ),
  );

  // The measured points: filled at bits stored, hollow at entropy-coded bits, joined by a thin line.
  const current = finite.filter((p) => p.current);
  for (const point of [...finite.filter((p) => !p.current), ...current]) {
    const style = schemeStyle(point.scheme);
    const group = svg('g');
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
      group.append(
        svg('line', { x1: px(x(point.bitsEntropy)), x2: px(x(point.bitsStored)), y1: px(yPoint), y2: px(yPoint), stroke: style.colour, 'stroke-width': 1.2 }),
        marker(style, x(point.bitsEntropy), yPoint, 4.5, false),
      );
    }
    group.append(marker(style, x(point.bitsStored), yPoint, 5.5, true));
    if (point.current) {
      group.append(svg('circle', { class: 'current-ring', cx: px(x(point.bitsStored)), cy: px(yPoint), r: 10 }));
      group.append(svg('text', { x: px(x(point.bitsStored) + 13), y: px(yPoint - 10) }, point.label));
    }
    root.append(group);
  }

  root.append(legend(finite));
  container.replaceChildren(root);
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

/** The scheme families on the plot (one entry per legend label), in the bottom-left corner. */
function legend(points: readonly RatePoint[]): SVGElement {
  const shown = new Set(points.map((p) => p.scheme));
  const entries = new Map<string, SchemeStyle>();
  for (const scheme of SCHEME_NAMES) {
    const style = schemeStyle(scheme);
    if (shown.has(scheme) && !entries.has(style.legend)) entries.set(style.legend, style);
  }
  const group = svg('g');
  if (entries.size === 0) return group;
  const rowHeight = 18;
  const width = 186;
  const height = entries.size * rowHeight + 10;
  // Bottom left lies deep in the unreachable region (Γ(2) ≈ 0.12 > 0.01): no point or curve goes there.
  const left = MARGIN.left + 8;
  const top = HEIGHT - MARGIN.bottom - height - 8;
  group.append(svg('rect', { class: 'legend-box', x: left, y: top, width, height, rx: 4 }));
  [...entries].forEach(([label, style], i) => {
    const cy = top + 14 + i * rowHeight;
    group.append(marker(style, left + 14, cy, 5, true), svg('text', { x: left + 28, y: cy + 4 }, label));
  });
  return group;
}

function decadeLabel(decade: number): string {
  if (decade === 0) return '1';
  if (decade === -1) return '0.1';
  if (decade === -2) return '0.01';
  return `1e${decade}`;
}
