import type { SchemeName } from '../src/index.js';
import type { ErrorSample } from './runProtocol.js';
import { schemeStyle } from './schemeStyle.js';
import { drawingWidth, px, svg, svgRoot } from './svg.js';

/** The square plot's widest drawing and its narrowest (a phone). */
const WIDEST = 400;
const NARROWEST = 260;
const MARGIN = { left: 48, right: 12, top: 12, bottom: 44 };

/**
 * A scatter of rotated input coordinates against their reconstruction (both in σ), with the diagonal
 * of perfect reconstruction, into `container`.
 */
export function drawErrorPlot(container: HTMLElement, sample: ErrorSample, scheme: SchemeName): void {
  const extreme = Math.max(3, ...sample.input.map(Math.abs), ...sample.decoded.map(Math.abs));
  const limit = Math.min(12, Math.ceil(extreme));
  const size = drawingWidth(container, NARROWEST, WIDEST);
  const plot = size - MARGIN.left - MARGIN.right;
  const plotHeight = size - MARGIN.top - MARGIN.bottom;
  const x = (v: number): number => MARGIN.left + ((clamp(v, limit) + limit) / (2 * limit)) * plot;
  const y = (v: number): number => MARGIN.top + ((limit - clamp(v, limit)) / (2 * limit)) * plotHeight;

  const root = svgRoot(
    size,
    size,
    'Quantization error picture',
    `${sample.input.length} rotated coordinates of A's first column against their reconstruction; ` +
      `RMS error ${sample.rmsError.toFixed(3)} σ.`,
  );
  const step = limit <= 4 ? 1 : limit <= 8 ? 2 : 4;
  for (let v = -limit; v <= limit; v += step) {
    root.append(
      svg('line', { class: 'gridline', x1: px(x(v)), x2: px(x(v)), y1: MARGIN.top, y2: MARGIN.top + plotHeight }),
      svg('line', { class: 'gridline', x1: MARGIN.left, x2: MARGIN.left + plot, y1: px(y(v)), y2: px(y(v)) }),
      svg('text', { class: 'tick', x: px(x(v)), y: MARGIN.top + plotHeight + 15, 'text-anchor': 'middle' }, String(v)),
      svg('text', { class: 'tick', x: MARGIN.left - 6, y: px(y(v) + 4), 'text-anchor': 'end' }, String(v)),
    );
  }
  root.append(
    svg('line', { class: 'diagonal', x1: px(x(-limit)), y1: px(y(-limit)), x2: px(x(limit)), y2: px(y(limit)) }),
    svg('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left + plot, y1: MARGIN.top + plotHeight, y2: MARGIN.top + plotHeight }),
    svg('line', { class: 'axis', x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + plotHeight }),
    svg('text', { x: px(MARGIN.left + plot / 2), y: size - 8, 'text-anchor': 'middle' }, 'input coordinate (σ)'),
    svg(
      'text',
      { x: 13, y: px(MARGIN.top + plotHeight / 2), 'text-anchor': 'middle', transform: `rotate(-90 13 ${px(MARGIN.top + plotHeight / 2)})` },
      'reconstructed (σ)',
    ),
  );
  const colour = schemeStyle(scheme).colour;
  const dots = svg('g', { fill: colour, 'fill-opacity': 0.65 });
  sample.input.forEach((input, i) => {
    dots.append(svg('circle', { cx: px(x(input)), cy: px(y(sample.decoded[i] as number)), r: 2.2 }));
  });
  root.append(dots);
  root.append(
    svg('text', { x: MARGIN.left + 8, y: MARGIN.top + 16 }, `${schemeStyle(scheme).label}`),
    svg('text', { class: 'tick', x: MARGIN.left + 8, y: MARGIN.top + 32 }, `RMS error ${sample.rmsError.toFixed(3)} σ`),
  );
  container.replaceChildren(root);
}

function clamp(value: number, limit: number): number {
  return Math.max(-limit, Math.min(limit, value));
}
