import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { fixedPointNumerator } from '../../src/quantize/columnScaling.js';
import { dequantizeD3GroupScaled, encodeD3GroupScaled, GROUP_SCALE_BLOCKS, groupScaleGrid, groupScaleIndices } from '../../src/quantize/d3GroupScale.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize } from '../../src/quantize/quantize.js';
import { scaleGrid } from '../../src/quantize/scaleGrid.js';
import { latticeSpec } from '../../src/quantize/latticeSpec.js';
import { SCHEMES } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { relativeSquaredError } from '../relativeError.js';

/*
 * The group-scaled D3 prototype's encoder (src/quantize/d3GroupScale.ts): one scale index per group of
 * 4 blocks chosen by least error. Its GEMV is tested against `dequantizeD3GroupScaled` in
 * test/gpu/int8InputGemv.test.ts.
 */

/** Squared error of each group of 12 entries (4 blocks) of `back` against `w`. */
function groupErrors(w: Matrix, back: Matrix): Float64Array {
  const groupRows = 3 * GROUP_SCALE_BLOCKS;
  const groups = Math.ceil(w.rows / groupRows);
  const errors = new Float64Array(groups * w.cols);
  for (let j = 0; j < w.cols; j++) {
    for (let i = 0; i < w.rows; i++) {
      const at = j * w.rows + i;
      const g = j * groups + Math.floor(i / groupRows);
      errors[g] = (errors[g] as number) + ((back.data[at] as number) - (w.data[at] as number)) ** 2;
    }
  }
  return errors;
}


describe('the group-scaled D3 prototype (one scale index per group of 4 blocks)', () => {
  it('its 16-step ladder holds d3-q6-deterministic\'s 4 multiples as rungs 0, 5, 10 and 15', () => {
    const scheme = SCHEMES['d3-q6-deterministic'];
    if (scheme.kind !== 'lattice' || scheme.mode !== 'deterministic') throw new Error('expected a deterministic scheme');
    const own = scaleGrid(scheme.overload, latticeSpec('D3').maxDenominator);
    const fine = groupScaleGrid(16);
    const coarse = groupScaleGrid(4);
    expect(fine.unit).toBe(own.unit);
    expect(Array.from(coarse.multiples)).toEqual(Array.from(own.multiples));
    expect([0, 5, 10, 15].map((t) => fine.multiples[t])).toEqual(Array.from(own.multiples));
  });

  it('chooses per group the least error: with 16 steps no group is worse than with the 4 of them it contains, and the whole is better', () => {
    for (const seed of [1, 2, 3]) {
      const w = gaussianMatrix(600, 16, seed);
      const fineMatrix = encodeD3GroupScaled(w, 16);
      const fine = groupErrors(w, dequantizeD3GroupScaled(fineMatrix));
      const coarse = groupErrors(w, dequantizeD3GroupScaled(encodeD3GroupScaled(w, 4)));
      const groupsPerColumn = fine.length / w.cols;
      let fineTotal = 0;
      let coarseTotal = 0;
      for (let g = 0; g < fine.length; g++) {
        // The encoder compares errors of the fixed-point column X = round(w·G/ν), whose rounding δ is at
        // most ½ (plus f32's rounding of w·G/ν, ≈ 0.2 at these magnitudes) per entry: in w's units
        // ‖δ‖ ≤ √12/(G/ν) over a group, so by the triangle inequality √fine ≤ √coarse + 2‖δ‖.
        const j = Math.floor(g / groupsPerColumn);
        const delta = Math.sqrt(12) / (fixedPointNumerator(w.rows, fineMatrix.unit) / (fineMatrix.norms[j] as number));
        expect(Math.sqrt(fine[g] as number), `seed ${seed}, group ${g}`).toBeLessThanOrEqual(Math.sqrt(coarse[g] as number) + 2 * delta);
        fineTotal += fine[g] as number;
        coarseTotal += coarse[g] as number;
      }
      expect(fineTotal).toBeLessThan(0.95 * coarseTotal);
    }
  });

  it('on Gaussian columns: above the Gaussian bound at its 3 bits per entry, and between d3-q6-deterministic (an index per block, 3.33 bits) and twice its error', () => {
    const seeds = [11, 12, 13, 14];
    const group: number[] = [];
    const block: number[] = [];
    for (const seed of seeds) {
      const w = gaussianMatrix(1536, 24, seed);
      group.push(relativeSquaredError(dequantizeD3GroupScaled(encodeD3GroupScaled(w)).data, w.data));
      block.push(relativeSquaredError(dequantize(quantize(w, { scheme: 'd3-q6-deterministic', seed: 1, rotate: false, gain: 'none' })).data, w.data));
    }
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    const spread = (v: number[]): number => Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1) / v.length);
    // 36 864 entries per seed: the standard error of each mean is ≈ 1 % of it; the margins are far wider.
    expect(spread(group) / mean(group)).toBeLessThan(0.02);
    expect(mean(group)).toBeGreaterThan(2 ** -6); // D(R) = 2^−2R at R = 8/3 + 4/12 = 3 bits per entry
    expect(mean(group)).toBeGreaterThan(mean(block) + 4 * (spread(group) + spread(block)));
    expect(mean(group)).toBeLessThan(2 * mean(block));
  });

  it('a tie goes to the smaller step: all-zero groups (error 0 at every step) take step 0', () => {
    // 36 rows: 12 blocks, 3 groups per column. Column 0 is zero; column 1 is zero past its first group.
    const w = gaussianMatrix(36, 2, 8);
    w.data.fill(0, 0, 36);
    w.data.fill(0, 36 + 12, 72);
    const indices = groupScaleIndices(encodeD3GroupScaled(w));
    expect([indices[0], indices[1], indices[2], indices[4], indices[5]]).toEqual([0, 0, 0, 0, 0]);
  });

  it('keeps a zero column at zero and refuses non-finite entries, empty shapes and steps it cannot index', () => {
    const w = gaussianMatrix(30, 3, 5);
    w.data.fill(0, 30, 60);
    const back = dequantizeD3GroupScaled(encodeD3GroupScaled(w));
    expect(Array.from(back.data.subarray(30, 60)).every((v) => v === 0)).toBe(true);
    const bad = gaussianMatrix(30, 2, 6);
    bad.data[40] = Number.NaN;
    expect(() => encodeD3GroupScaled(bad)).toThrow(/entry \(10, 1\) is NaN/);
    expect(() => encodeD3GroupScaled({ rows: 0, cols: 2, data: new Float32Array(0) })).toThrow(/at least one row/);
    expect(() => encodeD3GroupScaled(w, 17)).toThrow(/2…16 ladder steps/);
    expect(() => encodeD3GroupScaled(w, 1)).toThrow(/2…16 ladder steps/);
  });
});
