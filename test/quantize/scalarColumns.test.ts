import { describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { prepareColumn } from '../../src/quantize/prepareColumn.js';
import { absmaxOptions, quantize } from '../../src/quantize/quantize.js';
import type { ScalarQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { absmaxQuantize } from '../../src/scalar/absmax.js';
import { nvfp4Quantize, nvfp4TensorScale } from '../../src/scalar/nvfp4.js';
import { countAllocations } from '../weightonly/fuzzProperty.js';

/*
 * quantize's scalar schemes (int, NVFP4) rotate one column at a time instead of staging the whole
 * rotated matrix (length × cols f32): int schemes encode each column as it is rotated, NVFP4 rotates
 * every column twice (its tensor scale needs all the columns' maxima first). Pinned here: codes,
 * scales, tensor scale and means bit for bit those of the staged algorithm (written out below), on
 * shapes rotated to a longer length, unrotated, centred or not; refusals in the staged order; and no
 * staging allocation (typed-array bytes counted by wrapping the constructors, not RSS).
 */

type ScalarName = 'int4-g32' | 'int4-g128' | 'int3-absmax' | 'nvfp4';
const SCALAR: readonly ScalarName[] = ['int4-g32', 'int4-g128', 'int3-absmax', 'nvfp4'];

/** The staged algorithm: every column prepared, rotated and scaled back into one length × cols array, then encoded. */
function stagedReference(m: Matrix, scheme: ScalarName, seed: number, center: boolean, rotate: boolean): { codes: Uint8Array; scales: Float32Array | Uint8Array; tensorScale: number; means: Float32Array | null } {
  const length = rotate ? rotationLength(m.rows) : m.rows;
  const rotation = rotate ? new RandomizedHadamard(m.rows, seed) : null;
  const staged = new Float32Array(length * m.cols);
  const scaled = new Float32Array(m.rows);
  const means = center ? new Float32Array(m.cols) : null;
  let tensorAbsMax = 0;
  for (let j = 0; j < m.cols; j++) {
    const target = staged.subarray(j * length, (j + 1) * length);
    const prepared = prepareColumn(m.data.subarray(j * m.rows, (j + 1) * m.rows), center, rotation, scaled, target);
    if (means) means[j] = Math.fround(prepared.scaledMean * 2 ** -prepared.exponent);
    for (let i = 0; i < length; i++) {
      target[i] = Math.fround((target[i] as number) * 2 ** -prepared.exponent);
      tensorAbsMax = Math.max(tensorAbsMax, Math.abs(target[i] as number));
    }
  }
  const codes = new Uint8Array(length * m.cols);
  const scaleParts: (Float32Array | Uint8Array)[] = [];
  const tensorScale = scheme === 'nvfp4' ? nvfp4TensorScale(tensorAbsMax) : 1;
  for (let j = 0; j < m.cols; j++) {
    const x = staged.subarray(j * length, (j + 1) * length);
    if (scheme === 'nvfp4') {
      const result = nvfp4Quantize(x, tensorScale);
      codes.set(result.codes, j * length);
      scaleParts.push(result.blockScales);
    } else {
      const preset = { 'int4-g32': { bits: 4, groupSize: 32 }, 'int4-g128': { bits: 4, groupSize: 128 }, 'int3-absmax': { bits: 3, groupSize: 'column' } } as const;
      const grid = scheme === 'int3-absmax' ? 'midrise' : 'symmetric';
      const result = absmaxQuantize(x, absmaxOptions({ kind: 'int', ...preset[scheme], grid, scaleFormat: scheme === 'int3-absmax' ? 'fp32' : 'fp16' }, length));
      codes.set(result.codes, j * length);
      scaleParts.push(result.scales);
    }
  }
  const total = scaleParts.reduce((s, p) => s + p.length, 0);
  const scales = scheme === 'nvfp4' ? new Uint8Array(total) : new Float32Array(total);
  let offset = 0;
  for (const part of scaleParts) {
    scales.set(part, offset);
    offset += part.length;
  }
  return { codes, scales, tensorScale, means };
}

function scaledColumns(m: Matrix, factors: Readonly<Record<number, number>>): Matrix {
  const data = Float32Array.from(m.data);
  for (const [j, f] of Object.entries(factors)) for (let i = 0; i < m.rows; i++) data[Number(j) * m.rows + i] = (data[Number(j) * m.rows + i] as number) * f;
  return { rows: m.rows, cols: m.cols, data };
}

describe('scalar quantize rotates column by column', () => {
  it.each(SCALAR)('%s: codes, scales, tensor scale and means are the staged algorithm\'s, bit for bit', (scheme) => {
    for (const [rows, cols] of [[300, 70], [17, 129], [256, 3]] as const) {
      for (const center of [false, true]) {
        for (const rotate of [true, false]) {
          const m = gaussianMatrix(rows, cols, rows + cols);
          const q = quantize(m, { scheme, seed: 9, center, rotate }) as ScalarQuantizedMatrix;
          const expected = stagedReference(m, scheme, 9, center, rotate);
          expect(q.codes).toEqual(expected.codes);
          expect(q.scales).toEqual(expected.scales);
          expect(q.tensorScale).toBe(expected.tensorScale);
          expect(q.means).toEqual(expected.means);
        }
      }
    }
  });

  it.each(SCALAR.filter((s) => s !== 'int3-absmax'))('%s: a column out of its scale range is refused after every column\'s own checks, as when staged', (scheme) => {
    const m = gaussianMatrix(64, 8, 1);
    const progress: number[] = [];
    const onProgress = (done: number): void => void progress.push(done);
    // Column 2 too small for the scales (fp16 or E4M3): refused once all 8 columns are prepared.
    expect(() => quantize(scaledColumns(m, { 2: 2 ** -40 }), { scheme, seed: 1, onProgress })).toThrow(scheme === 'nvfp4' ? /column 2's largest entry after rotation .* below E4M3's normal range/ : /column 2's largest entry after rotation .* needs a scale below fp16's normal range/);
    expect(progress).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // …unless a later column fails its own check first: column 5's norm.
    progress.length = 0;
    expect(() => quantize(scaledColumns(m, { 2: 2 ** -40, 5: 2 ** 120 }), { scheme, seed: 1, onProgress })).toThrow(/^column 5 has norm .* outside the supported range/);
    expect(progress).toEqual([1, 2, 3, 4, 5]);
  });

  it.each(SCALAR)('%s: allocates the codes and per-column buffers, not a length × cols f32 staging of the rotated matrix', (scheme) => {
    const m = gaussianMatrix(256, 256, 2);
    const { result, bytes } = countAllocations(() => quantize(m, { scheme, seed: 3 }));
    expect(result.ok).toBe(true);
    const codes = 256 * 256;
    const staging = 4 * 256 * 256;
    expect(bytes - codes).toBeLessThan(staging / 2);
  });
});
