import { describe, expect, it } from 'vitest';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import { CLIP_STEPS, LatticeBlockEncoder, type BlockCode } from '../../src/quantize/latticeEncoder.js';
import { FRACTION_BITS, scaleGrid, type ScaleGrid } from '../../src/quantize/scaleGrid.js';
import { SCHEMES, type OverloadRule } from '../../src/quantize/schemes.js';
import { Rng } from '../../src/rotation/random.js';

/*
 * The block encoder against brute force over scales: for every scale j, the nearest point of
 * X / (k_j·2^F) is computed with the lattice and tested for representability with the Voronoi code
 * directly (decode-and-compare through `isRepresentable`); the expected choice follows from the rule's
 * definition (ladder: first scale that fits; betaSet: least squared error among those that fit).
 */

interface ScaleTrial {
  readonly fits: boolean;
  readonly point: Int32Array;
  /** Squared reconstruction error in fixed-point units: Σ (X_i − k_j·2^F·P_i/s)². */
  readonly error: number;
}

function trialsOverScales(lattice: Lattice, code: VoronoiCode, grid: ScaleGrid, x: readonly number[]): ScaleTrial[] {
  const s = lattice.pointScale;
  return Array.from(grid.multiples, (k) => {
    const den = k * 2 ** FRACTION_BITS;
    const point = lattice.nearestScaled(x, den, new Int32Array(lattice.dimension));
    let error = 0;
    for (let i = 0; i < x.length; i++) error += ((x[i] as number) - (den * (point[i] as number)) / s) ** 2;
    return { fits: code.isRepresentable(point), point, error };
  });
}

/** A block of d fixed-point integers: Gaussian coordinates (in units of β₀) times `spread`. */
function randomBlock(rng: Rng, d: number, unit: number, spread: number): number[] {
  return Array.from({ length: d }, () => Math.round((rng.nextGaussian() * spread * 2 ** FRACTION_BITS) / unit));
}

const CASES: [string, Lattice, number, OverloadRule][] = [
  ['D3 q=6 ladder (d3-q6-deterministic)', D3, 6, SCHEMES['d3-q6-deterministic'].overload],
  ['E8 q=16 betaSet (e8-q16-deterministic)', E8, 16, SCHEMES['e8-q16-deterministic'].overload],
  ['E8 q=4 ladder', E8, 4, { kind: 'ladder', beta: 0.5, ratio: 1.5, steps: 3 }],
  ['D3 q=4 betaSet', D3, 4, { kind: 'betaSet', betas: [0.3, 0.45, 0.7, 1.1] }],
  ['Z8 q=8 ladder', zLattice(8), 8, { kind: 'ladder', beta: 0.75, ratio: Math.SQRT2, steps: 4 }],
];

describe.each(CASES)('LatticeBlockEncoder %s', (_name, lattice, q, rule) => {
  const grid = scaleGrid(rule);
  const encoder = new LatticeBlockEncoder(lattice, q, grid);
  const code = new VoronoiCode(lattice, q);
  const d = lattice.dimension;

  it('picks the scale the rule defines, and clips exactly when no scale fits', () => {
    const rng = new Rng(q * 100 + d);
    const result: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
    const decoded = new Int32Array(d);
    const histogram = new Array<number>(grid.multiples.length + 1).fill(0);
    for (let trial = 0; trial < 1500; trial++) {
      // Spread the inputs so that every scale, and clipping, gets used.
      const spread = [0.5, 1, 2, 4, 8][trial % 5] as number;
      const x = randomBlock(rng, d, grid.unit, spread);
      encoder.encodeBlock(x, result, decoded);
      const trials = trialsOverScales(lattice, code, grid, x);
      const fitting = trials.map((t, j) => (t.fits ? j : -1)).filter((j) => j >= 0);
      expect(result.clipped, `block ${x}`).toBe(fitting.length === 0);
      histogram[result.clipped ? grid.multiples.length : result.scaleIndex]!++;
      if (fitting.length === 0) continue;
      let expected = fitting[0] as number;
      if (rule.kind === 'betaSet') {
        for (const j of fitting) if (trials[j]!.error < trials[expected]!.error) expected = j;
      }
      expect(result.scaleIndex, `block ${x}`).toBe(expected);
      expect([...decoded]).toEqual([...trials[expected]!.point]);
      expect(result.code).toBe(code.encode(decoded));
    }
    // Every scale index occurs, and so does clipping.
    for (const [j, count] of histogram.entries()) expect(count, `outcome ${j}`).toBeGreaterThan(0);
  });

  it('a clipped block is the largest shrink x·j/16 (truncated) that fits at the largest scale', () => {
    const rng = new Rng(7 + q);
    const result: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
    const decoded = new Int32Array(d);
    const last = grid.multiples.length - 1;
    const den = (grid.multiples[last] as number) * 2 ** FRACTION_BITS;
    let clipped = 0;
    for (let trial = 0; trial < 300; trial++) {
      const x = randomBlock(rng, d, grid.unit, 3 * q);
      encoder.encodeBlock(x, result, decoded);
      if (!result.clipped) continue;
      clipped++;
      expect(result.scaleIndex).toBe(last);
      expect(code.isRepresentable(decoded)).toBe(true);
      expect(result.code).toBe(code.encode(decoded));
      let expected: Int32Array | null = null;
      for (let j = CLIP_STEPS - 1; j >= 0 && expected === null; j--) {
        const shrunk = x.map((v) => Math.trunc((v * j) / CLIP_STEPS));
        const point = lattice.nearestScaled(shrunk, den, new Int32Array(d));
        if (code.isRepresentable(point)) expected = point;
      }
      expect([...decoded]).toEqual([...(expected as Int32Array)]);
    }
    expect(clipped).toBeGreaterThan(100);
  });

  it('a block just past every scale clips to the first shrink that fits, 15/16 included', () => {
    // Far-out blocks (the test above) never fit at 15/16; a block grown in steps of 1/32 until it
    // clips is at most a step past the largest scale's region, where 15/16 usually fits.
    const rng = new Rng(11 + q);
    const result: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
    const decoded = new Int32Array(d);
    const den = (grid.multiples[grid.multiples.length - 1] as number) * 2 ** FRACTION_BITS;
    let clipped = 0;
    let atFirstStep = 0;
    for (let trial = 0; trial < 60; trial++) {
      const direction = randomBlock(rng, d, grid.unit, 1);
      for (let growth = 1; growth <= 32 * 64; growth++) {
        const x = direction.map((v) => Math.round((v * growth) / 32));
        encoder.encodeBlock(x, result, decoded);
        if (!result.clipped) continue;
        clipped++;
        let expected: number[] | null = null;
        let step = -1;
        for (let j = CLIP_STEPS - 1; j >= 0 && expected === null; j--) {
          const point = lattice.nearestScaled(x.map((v) => Math.trunc((v * j) / CLIP_STEPS)), den, new Int32Array(d));
          if (code.isRepresentable(point)) [expected, step] = [[...point], j];
        }
        expect([...decoded], `block ${x}`).toEqual(expected);
        if (step === CLIP_STEPS - 1) atFirstStep++;
        break;
      }
    }
    expect(clipped).toBeGreaterThan(50);
    expect(atFirstStep).toBeGreaterThan(0);
  });

  it('the zero block codes to the origin at the smallest scale', () => {
    const result: BlockCode = { code: -1, scaleIndex: -1, clipped: true };
    const decoded = new Int32Array(d).fill(9);
    encoder.encodeBlock(new Array<number>(d).fill(0), result, decoded);
    expect(result).toEqual({ code: 0, scaleIndex: 0, clipped: false });
    expect([...decoded]).toEqual(new Array<number>(d).fill(0));
  });
});
