// @vitest-environment happy-dom
import { beforeAll, describe, expect, it } from 'vitest';
import { describeRun } from '../../demo/demoRun.js';
import { drawErrorPlot } from '../../demo/errorPlot.js';
import { drawRatePlot, type RatePoint } from '../../demo/rdPlot.js';
import { renderHistory, renderLatest, renderTimings } from '../../demo/render.js';
import type { CpuCheck, RunResult } from '../../demo/runProtocol.js';

/*
 * What the demo draws and writes, in Node on happy-dom (the environment comment above): where the
 * rate–distortion plot puts each scheme's point against its own axis ticks (a log-scale error axis),
 * where Γ(R) runs, which way the error picture's axes point, and the figures of the latest-run list,
 * the history and the timings. Expected values come from the ticks the plot labels, from Γ's closed
 * form, or are written out by hand; demo.test.ts checks the same page in Chromium.
 */

/** Γ(3) = 2·2⁻⁶ − 2⁻¹² = 127/4096 and Γ(3.5) = 2·2⁻⁷ − 2⁻¹⁴ = 255/16384 (R ≥ R* ≈ 0.9: Γ's curved piece). */
const GAMMA_3 = 127 / 4096;
const GAMMA_3_5 = 255 / 16384;

/** The elements below `root` that match `selector`, in document order. */
function all(root: ParentNode, selector: string): Element[] {
  return Array.from(root.querySelectorAll(selector));
}

/** The first element below `root` that matches `selector`; the test fails if there is none. */
function first(root: ParentNode, selector: string): Element {
  const element = root.querySelector(selector);
  if (element === null) throw new Error(`nothing matches ${selector}`);
  return element;
}

/** A numeric attribute (a coordinate); a missing one fails the test rather than reading as 0. */
function numberAttribute(element: Element, name: string): number {
  const value = element.getAttribute(name);
  if (value === null) throw new Error(`<${element.tagName}> has no ${name}`);
  return Number(value);
}

/** An element's text ('' for none). */
function text(element: Element | undefined): string {
  return element?.textContent ?? '';
}

/** The decade gridlines (label → y) and the rate ticks (label → x) of a drawn rate–distortion plot. */
function rateAxes(plot: HTMLElement): { decadeY: Map<string, number>; rateX: Map<string, number> } {
  const grid = first(first(plot, 'svg'), 'g');
  const decadeY = new Map<string, number>();
  const rateX = new Map<string, number>();
  const nodes = Array.from(grid.children);
  for (let i = 0; i + 1 < nodes.length; i += 2) {
    const [line, label] = [nodes[i] as Element, nodes[i + 1] as Element];
    if (label.classList.contains('rate-tick')) rateX.set(text(label), numberAttribute(line, 'x1'));
    else decadeY.set(text(label), numberAttribute(line, 'y1'));
  }
  return { decadeY, rateX };
}

function point(scheme: RatePoint['scheme'], bitsStored: number, bitsEntropy: number, nmse: number, current = false): RatePoint {
  return { scheme, label: scheme, bitsStored, bitsEntropy, nmse, current };
}

describe('drawRatePlot', () => {
  const plot = document.createElement('div');
  const points = [point('d3-q6', 2, 2, 0.1), point('e8-q16', 4, 3, 10 ** -2.5, true), point('int4-g32', 4, 4, Number.NaN), point('nvfp4', 4.5, 4.5, 0)];

  beforeAll(() => drawRatePlot(plot, points));

  it('draws each finite point at its rate tick and, on the log scale, at its decade (10^−2.5 halfway between 0.01 and 0.001)', () => {
    const { decadeY, rateX } = rateAxes(plot);
    const groups = all(plot, 'g.point');
    // Points without a finite positive error are left out; the latest point is drawn last.
    expect(groups.map((g) => g.getAttribute('data-scheme'))).toEqual(['d3-q6', 'e8-q16']);
    expect(groups.map((g) => Number(g.getAttribute('data-bits')))).toEqual([2, 4]);
    const [d3, e8] = groups.map((g) => first(g, 'circle.stored')) as [Element, Element];
    expect(numberAttribute(d3, 'cx')).toBe(rateX.get('2'));
    expect(numberAttribute(d3, 'cy')).toBe(decadeY.get('0.1'));
    expect(numberAttribute(e8, 'cx')).toBe(rateX.get('4'));
    const [upper, lower] = [decadeY.get('0.01') as number, decadeY.get('1e-3') as number];
    expect(lower).toBeGreaterThan(upper);
    expect(Math.abs(numberAttribute(e8, 'cy') - (upper + lower) / 2)).toBeLessThanOrEqual(0.1);
    // The decades are evenly spaced (a log scale), 1 at the top.
    expect(Math.abs((decadeY.get('0.1') as number) - (decadeY.get('1') as number) - (upper - (decadeY.get('0.1') as number)))).toBeLessThanOrEqual(0.1);
    expect(decadeY.get('1')).toBeLessThan(decadeY.get('0.1') as number);
    // The decades fill the plot: 1 on the top of the y axis, the lowest on the x axis.
    const axes = all(plot, 'line.axis');
    const yAxis = axes
      .filter((line) => numberAttribute(line, 'x1') === numberAttribute(line, 'x2'))
      .sort((p, q) => numberAttribute(p, 'x1') - numberAttribute(q, 'x1'))[0] as Element;
    const xAxis = axes.find((line) => numberAttribute(line, 'y1') === numberAttribute(line, 'y2')) as Element;
    const ys = [...decadeY.values()];
    expect(Math.min(...ys)).toBe(numberAttribute(yAxis, 'y1'));
    expect(Math.max(...ys)).toBe(numberAttribute(xAxis, 'y1'));
    expect(decadeY.get('1')).toBe(numberAttribute(yAxis, 'y1'));
  });

  it('draws the entropy-coded rate hollow at its own tick, only where it differs, and rings and labels the latest point', () => {
    const { rateX } = rateAxes(plot);
    const [d3Group, e8Group] = all(plot, 'g.point') as [Element, Element];
    expect(all(d3Group, 'circle.entropy')).toHaveLength(0);
    const hollow = first(e8Group, 'circle.entropy');
    const filled = first(e8Group, 'circle.stored');
    expect(numberAttribute(hollow, 'cx')).toBe(rateX.get('3'));
    expect(numberAttribute(hollow, 'cy')).toBe(numberAttribute(filled, 'cy'));
    expect(hollow.getAttribute('fill')).toBe('none');
    const ring = first(e8Group, 'circle.current-ring');
    expect([numberAttribute(ring, 'cx'), numberAttribute(ring, 'cy')]).toEqual([numberAttribute(filled, 'cx'), numberAttribute(filled, 'cy')]);
    expect(all(e8Group, 'text').map(text)).toEqual(['e8-q16']);
    expect(all(d3Group, 'circle.current-ring')).toHaveLength(0);
  });

  it('draws Γ(R) through Γ(3) = 127/4096 and Γ(5) on the same log scale', () => {
    const { decadeY, rateX } = rateAxes(plot);
    const curve = first(plot, 'polyline.curve');
    const vertices = (curve.getAttribute('points') ?? '').split(' ').map((pair) => pair.split(',').map(Number) as [number, number]);
    const top = decadeY.get('1') as number;
    const perDecade = (decadeY.get('0.1') as number) - top;
    for (const [rate, value] of [['3', GAMMA_3], ['5', 2 * 2 ** -10 - 2 ** -20]] as const) {
      const vertex = vertices.find(([x]) => x === rateX.get(rate));
      expect(vertex, `a vertex at rate ${rate}`).toBeDefined();
      expect(Math.abs((vertex?.[1] ?? Number.NaN) - (top - Math.log10(value) * perDecade))).toBeLessThanOrEqual(0.15);
    }
  });

  it('extends both axes past the extreme point (11.75 bits: 0 to 12 in steps of 2; NMSE 3·10⁻⁷: down to 10⁻⁷), the point in place', () => {
    const wide = document.createElement('div');
    drawRatePlot(wide, [point('d3-q6-deterministic', 11.75, 11.75, 3e-7, true)]);
    const { rateX, decadeY } = rateAxes(wide);
    expect([...rateX.keys()]).toEqual(['0', '2', '4', '6', '8', '10', '12']);
    const marker = first(first(wide, 'g.point'), 'polygon.stored');
    // A diamond: its points' x span is centred on the point.
    const xs = (marker.getAttribute('points') ?? '').split(' ').map((pair) => Number(pair.split(',')[0]));
    const centre = (Math.min(...xs) + Math.max(...xs)) / 2;
    const [x10, x12] = [rateX.get('10') as number, rateX.get('12') as number];
    expect(Math.abs(centre - (x10 + 0.875 * (x12 - x10)))).toBeLessThanOrEqual(0.15);
    // The error axis reaches down to the decade below the point (3·10⁻⁷: 10⁻⁷), and the point lies
    // between that decade's line and the next one up, inside the plot.
    expect(decadeY.has('1e-7')).toBe(true);
    const ys = (marker.getAttribute('points') ?? '').split(' ').map((pair) => Number(pair.split(',')[1]));
    const middle = (Math.min(...ys) + Math.max(...ys)) / 2;
    expect(middle).toBeLessThan(decadeY.get('1e-7') as number);
    expect(middle).toBeGreaterThan(decadeY.get('1e-6') as number);
  });

  it('draws the latest point last (on top) wherever it stands in the history', () => {
    const reordered = document.createElement('div');
    drawRatePlot(reordered, [point('e8-q16', 4, 3, 0.01, true), point('d3-q6', 2, 2, 0.1), point('nvfp4', 4.5, 4.5, 0.02)]);
    expect(all(reordered, 'g.point').map((g) => g.getAttribute('data-scheme'))).toEqual(['d3-q6', 'nvfp4', 'e8-q16']);
  });

  it('lists one legend entry per scheme family shown', () => {
    const legendPlot = document.createElement('div');
    drawRatePlot(legendPlot, [point('e8-q16', 4, 4, 0.01), point('e8-4bit', 4.2, 4, 0.012), point('nvfp4', 4.5, 4.5, 0.02, true)]);
    expect(all(legendPlot, 'li').map(text).sort()).toEqual(['E8 (universal)', 'NVFP4']);
  });
});

/** The ticks of a drawn error picture: tick value → x of its vertical gridline, and → y of its horizontal one. */
function errorAxes(root: Element): { xOf: Map<number, number>; yOf: Map<number, number> } {
  // Per tick v: a vertical gridline at x(v), a horizontal one at y(v), then the two labels.
  const lines = Array.from(root.children).filter((child) => child.matches('line.gridline'));
  const labels = Array.from(root.children).filter((child) => child.matches('text.tick'));
  const xOf = new Map<number, number>();
  const yOf = new Map<number, number>();
  for (let t = 0; 2 * t + 1 < lines.length; t++) {
    const v = Number(labels[2 * t]?.textContent);
    xOf.set(v, numberAttribute(lines[2 * t] as Element, 'x1'));
    yOf.set(v, numberAttribute(lines[2 * t + 1] as Element, 'y1'));
  }
  return { xOf, yOf };
}

describe('drawErrorPlot', () => {
  it('draws input across and reconstruction up, on the ticks of their σ values', () => {
    const plot = document.createElement('div');
    drawErrorPlot(plot, { input: [1, -2, 0.5], decoded: [1.5, -2, 0.25], rmsError: 0.123456 }, 'e8-q16');
    const root = first(plot, 'svg');
    const { xOf, yOf } = errorAxes(root);
    // Limit 3 σ (at least ±3), one tick per σ.
    expect([...xOf.keys()]).toEqual([-3, -2, -1, 0, 1, 2, 3]);
    expect(yOf.get(2)).toBeLessThan(yOf.get(1) as number);
    const dots = all(root, 'circle');
    expect(dots).toHaveLength(3);
    const [firstDot, secondDot] = dots as [Element, Element];
    expect(numberAttribute(firstDot, 'cx')).toBe(xOf.get(1));
    expect(Math.abs(numberAttribute(firstDot, 'cy') - ((yOf.get(1) as number) + (yOf.get(2) as number)) / 2)).toBeLessThanOrEqual(0.1);
    expect([numberAttribute(secondDot, 'cx'), numberAttribute(secondDot, 'cy')]).toEqual([xOf.get(-2), yOf.get(-2)]);
    // The diagonal of perfect reconstruction runs from (−3, −3) to (3, 3).
    const diagonal = first(root, 'line.diagonal');
    expect(['x1', 'y1', 'x2', 'y2'].map((name) => numberAttribute(diagonal, name))).toEqual([xOf.get(-3), yOf.get(-3), xOf.get(3), yOf.get(3)]);
    expect(all(root, 'text').map(text)).toContain('RMS error 0.123 σ');
  });

  it('widens its range to the largest value (ticks every 2 σ past ±4, every 4 σ past ±8), at most ±12, and keeps larger values on its edge', () => {
    const ticks = (input: number[], decoded: number[]): number[] => {
      const plot = document.createElement('div');
      drawErrorPlot(plot, { input, decoded, rmsError: 0.5 }, 'd3-q6');
      return [...errorAxes(first(plot, 'svg')).xOf.keys()];
    };
    // ⌈4.2⌉ = 5: from −5 in steps of 2.
    expect(ticks([4.2, -1], [4, -1])).toEqual([-5, -3, -1, 1, 3, 5]);
    // ⌈−8.5⌉ in magnitude: 9, in steps of 4.
    expect(ticks([1], [-8.5])).toEqual([-9, -5, -1, 3, 7]);
    // A reconstruction of 30 σ: the range stops at ±12 and its dot sits on the top edge, at the +12 line.
    const plot = document.createElement('div');
    drawErrorPlot(plot, { input: [2, 30], decoded: [30, 2], rmsError: 20 }, 'd3-q6');
    const root = first(plot, 'svg');
    const { xOf, yOf } = errorAxes(root);
    expect([...xOf.keys()]).toEqual([-12, -8, -4, 0, 4, 8, 12]);
    const [upper, right] = all(root, 'circle') as [Element, Element];
    expect(numberAttribute(upper, 'cy')).toBe(yOf.get(12));
    expect(numberAttribute(right, 'cx')).toBe(xOf.get(12));
  });
});

/** A finished run as the worker reports it; the figures below are chosen so the expected texts can be written by hand. */
function result(overrides: Partial<RunResult> = {}): RunResult {
  return {
    request: { scheme: 'e8-q16', gain: 'unbiased', n: 256, cols: 32, dataKind: 'gaussian', dataSeed: 1, rotationSeed: 2, backend: 'cpu', checkAgainstCpu: true },
    ranOn: 'cpu',
    productKernel: null,
    nonces: { a: '11', b: '22' },
    predictedNmse: 0.025,
    bitsStored: 3.5,
    bitsEntropy: 3.25,
    nmse: GAMMA_3,
    nmseSampledEntries: null,
    timings: { generate: 1, quantizeA: 2, quantizeB: 4, product: 0.5, measure: 16, cpuCheck: 32 },
    compilesGpuPipelines: false,
    firstCpuRun: false,
    tableLayout: null,
    adapter: null,
    product: null,
    errorSample: { input: [0], decoded: [0], rmsError: 0 },
    cpuCheck: null,
    cpuCheckSkipped: null,
    ...overrides,
  };
}

/** A description list's terms → their descriptions (its children in pairs). */
function facts(list: HTMLElement): Map<string, string> {
  const map = new Map<string, string>();
  const nodes = Array.from(list.children);
  for (let i = 0; i + 1 < nodes.length; i += 2) map.set(text(nodes[i]), text(nodes[i + 1]));
  return map;
}

describe('describeRun', () => {
  it('derives Γ at the stored bits, the rate loss bits − Γ⁻¹(NMSE), measured / predicted and the total time', () => {
    const run = describeRun(result(), 7);
    expect(run.index).toBe(7);
    expect(run.gammaAtBits).toBeCloseTo(GAMMA_3_5, 15);
    // NMSE Γ(3) needs 3 bits at least: 3.5 stored is 0.5 more.
    expect(run.rateLoss).toBeCloseTo(0.5, 12);
    expect(run.measuredOverPredicted).toBeCloseTo(GAMMA_3 / 0.025, 12);
    expect(run.totalMs).toBe(1 + 2 + 4 + 0.5 + 16 + 32);
    expect(run.label).toBe('e8-q16');
    // Below Γ: negative.
    expect(describeRun(result({ bitsStored: 2.75 }), 1).rateLoss).toBeCloseTo(-0.25, 12);
  });

  it('has no rate loss outside Γ’s range (0, 1] and no ratio without a prediction; names the gain of deterministic schemes', () => {
    expect(describeRun(result({ nmse: 1.5 }), 1).rateLoss).toBeNull();
    expect(describeRun(result({ nmse: 0 }), 1).rateLoss).toBeNull();
    // Γ(0) = 1: NMSE 1 needs no bits.
    expect(describeRun(result({ nmse: 1 }), 1).rateLoss).toBeCloseTo(3.5, 12);
    expect(describeRun(result({ predictedNmse: null }), 1).measuredOverPredicted).toBeNull();
    const request = { ...result().request, scheme: 'd3-q6-deterministic' as const, gain: 'mmse' as const };
    expect(describeRun(result({ request, predictedNmse: null, nonces: null }), 1).label).toBe('d3-q6-deterministic (gain: MMSE)');
  });
});

describe('renderLatest', () => {
  const cpuCheck = (valuesDiffering: number): CpuCheck => ({ valuesCompared: 1234, valuesDiffering, gainsRelativeDifference: null, productRelativeDifference: 2.5e-7 });

  it('writes the bits, the NMSE (exact or sampled), the prediction, Γ and the signed rate loss', () => {
    const list = document.createElement('dl');
    renderLatest(list, describeRun(result({ nmse: 0.0123456 }), 1));
    const shown = facts(list);
    expect(shown.get('Bits stored')).toBe("3.500 per entry, of which 0.125 for each column's f32 norm (32/n; the README's preset table is at n = 4096)");
    expect(shown.get('Bits, entropy-coded')).toBe('3.250 per entry');
    expect(shown.get('Product NMSE')).toBe('0.01235');
    // 0.0123456 / 0.025 = 0.493824.
    expect(shown.get('Predicted NMSE')).toBe('0.02500 for any data of these norms (measured / predicted = 0.494)');
    expect(shown.get('Γ(bits stored)')).toBe('0.01556');
    expect(shown.get('Size')).toBe('A, B: 256 × 32; product 32 × 32');
    expect(shown.get('Dither nonces')).toMatch(/^A: 11, B: 22 /);

    const sampled = document.createElement('dl');
    renderLatest(sampled, describeRun(result({ nmse: 3.14159e-4, nmseSampledEntries: 4096, predictedNmse: null, nonces: null }), 1));
    const sampledFacts = facts(sampled);
    expect(sampledFacts.get('Product NMSE')).toBe('≈ 3.142e-4 (from 4,096 sampled entries)');
    expect(sampledFacts.get('Bits stored')).toBe('3.500 per entry');
    expect(sampledFacts.get('Predicted NMSE')).toBe('— (only universal schemes have a guarantee)');
    expect(sampledFacts.has('Dither nonces')).toBe(false);
  });

  it('signs the rate loss: + above Γ, − below it with the reason, a dash above NMSE 1', () => {
    const rateLoss = (overrides: Partial<RunResult>): string | undefined => {
      const list = document.createElement('dl');
      renderLatest(list, describeRun(result(overrides), 1));
      return facts(list).get('Rate loss');
    };
    expect(rateLoss({})).toBe('+0.500 bits');
    expect(rateLoss({ bitsStored: 2.75 })).toBe('−0.250 bits (below Γ by chance: Γ bounds the expected error on Gaussian data, and a small product’s error fluctuates)');
    expect(rateLoss({ nmse: 2 })).toBe('— (NMSE above 1)');
  });

  it('reports the check against the CPU as identical or differing, with its class', () => {
    for (const [differing, expected, className] of [
      [0, 'codes identical bit for bit (1,234 values); product within 2.5e-7', 'ok'],
      [3, '3 of 1,234 code values differ; product within 2.5e-7', 'bad'],
    ] as const) {
      const list = document.createElement('dl');
      renderLatest(list, describeRun(result({ cpuCheck: cpuCheck(differing) }), 1));
      const cell = all(list, 'dd').find((dd) => text(dd).startsWith(expected.slice(0, 12)));
      expect(cell?.textContent).toBe(expected);
      expect(cell?.classList.contains(className)).toBe(true);
    }
    // A deterministic run's gains (f32 sums) are compared too: 1.23e-7 is written 1.2e-7.
    const withGains = document.createElement('dl');
    renderLatest(withGains, describeRun(result({ cpuCheck: { ...cpuCheck(0), gainsRelativeDifference: 1.23e-7 } }), 1));
    expect(facts(withGains).get('Against the CPU')).toBe('codes identical bit for bit (1,234 values); gains within 1.2e-7; product within 2.5e-7');
  });

  it('names the GPU product kernel, with the D3 table layout, and nothing for a CPU run', () => {
    const kernelOf = (overrides: Partial<RunResult>): string | undefined => {
      const list = document.createElement('dl');
      renderLatest(list, describeRun(result(overrides), 1));
      return facts(list).get('GPU product kernel');
    };
    expect(kernelOf({ ranOn: 'webgpu', productKernel: 'd3-table', tableLayout: 'triangle' })).toBe('d3-table (triangle layout)');
    expect(kernelOf({ ranOn: 'webgpu', productKernel: 'universal-i8' })).toBe('universal-i8');
    expect(kernelOf({})).toBeUndefined();
  });
});

describe('renderHistory and renderTimings', () => {
  it('lists runs newest first, the latest marked, with ≈ on a sampled NMSE and a dash without a prediction', () => {
    const older = describeRun(result(), 1);
    const newer = describeRun(result({ nmse: 3.14159e-4, nmseSampledEntries: 4096, predictedNmse: null, nonces: null, bitsStored: 2.75 }), 2);
    const body = document.createElement('tbody');
    renderHistory(body, [older, newer]);
    const rows = all(body, 'tr');
    expect(rows.map((row) => row.classList.contains('current'))).toEqual([true, false]);
    const cells = rows.map((row) => all(row, 'td').map(text));
    // Index, scheme, data, size, ran on, bits stored, entropy-coded, NMSE, predicted, Γ, rate loss, time.
    expect(cells[0]).toEqual(['2', 'e8-q16', 'gaussian', '256 × 32', 'CPU', '2.750', '3.250', '≈ 3.142e-4', '—', expect.any(String), expect.any(String), '55.5 ms']);
    expect(cells[1]?.slice(5, 11)).toEqual(['3.500', '3.250', '0.03101', '0.02500', '0.01556', '+0.500']);
  });

  it('gives rates only for a warm run on hardware: per second, FLOPs as 2·n·cols²', () => {
    const rows = (overrides: Partial<RunResult>): string[][] => {
      const body = document.createElement('tbody');
      renderTimings(body, describeRun(result(overrides), 1));
      return all(body, 'tr').map((row) => all(row, 'td').map(text));
    };
    // 256 · 32 = 8192 entries in 2 ms: 4.10 M entries/s; 2 · 256 · 32² = 524,288 FLOP in 0.5 ms: 1.05 G FLOP/s.
    const warm = rows({});
    expect(warm).toContainEqual(['Quantize A (CPU)', '2.00 ms · 4.10 M entries/s']);
    expect(warm).toContainEqual(['Quantize B (CPU)', '4.00 ms · 2.05 M entries/s']);
    expect(warm).toContainEqual(['Product AᵀB (CPU)', '0.50 ms · 1.05 G FLOP/s']);
    expect(warm).toContainEqual(['Total', '55.5 ms']);
    const gpuAdapter = { vendor: 'nvidia', architecture: 'hopper', device: '', description: '', workgroupStorageBytes: 32768, features: [], softwareRenderer: false };
    expect(rows({ ranOn: 'webgpu', adapter: gpuAdapter })).toContainEqual(['Product AᵀB (GPU)', '0.50 ms · 1.05 G FLOP/s']);
    for (const cold of [
      { firstCpuRun: true },
      { ranOn: 'webgpu' as const, adapter: gpuAdapter, compilesGpuPipelines: true },
      { ranOn: 'webgpu' as const, adapter: { ...gpuAdapter, softwareRenderer: true } },
    ]) {
      const text = rows(cold).flat().join(' ');
      expect(text, JSON.stringify(cold)).not.toMatch(/\/s/);
      expect(text).toMatch(/no rates/);
    }
  });
});
