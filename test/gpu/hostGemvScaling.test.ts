import { beforeAll, describe, expect, it } from 'vitest';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { d3GroupScaledGemvI8, GpuD3GroupScaledMatrix } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { d3QuadGemvI8, GpuD3QuadMatrix } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { e8PointGemvI8, GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { e8ResidueGemvI8, GpuE8ResidueMatrix } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { latticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { latticeGemvI8 } from '../../src/gpu/kernels/latticeGemvI8.js';
import { universalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { universalGemvI8, UniversalGemvI8Weights } from '../../src/gpu/kernels/universalGemvI8.js';
import type { Matrix } from '../../src/matrix.js';
import { encodeD3GroupScaled } from '../../src/quantize/d3GroupScale.js';
import { e8PointForm } from '../../src/quantize/e8Points.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The GEMVs' host entry points (universalGemv, latticeGemv and the int8-input ones) scale x per column
 * by a power of two on the way up and y back, as GpuEngine.matvec does. Without it, an x of f32
 * subnormals (which WGSL lets a GPU flush to zero) gave results 20–100 % wrong, or all 0, and a huge x
 * overflowed the GPU's sums. The check: x·2^s gives exactly y·2^s (f32-rounded once) for s far below
 * and above 0, y being the same helper's result on the same f32 values brought back up by 2^−s.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('host GEMV helpers scale x exactly', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  const n = 96;
  const cols = 10;
  const rhs = 2;
  const w = gaussianMatrix(n, cols, 21);
  /** x whose columns have a largest |entry| in [1, 2) (so the helper's own scaling is by 2^0). */
  const x: Matrix = (() => {
    const m = gaussianMatrix(n, rhs, 22);
    for (let r = 0; r < rhs; r++) {
      const column = m.data.subarray(r * n, (r + 1) * n);
      const largest = column.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      column.forEach((v, i) => (column[i] = Math.fround(v / largest) * 1.5));
    }
    return m;
  })();

  type Helper = (x: Matrix) => Promise<Matrix>;
  const universal = (scheme: 'e8-4bit' | 'd3-q6') => quantize(w, { scheme, seed: 3, nonce: 4n }) as UniversalLatticeMatrix;
  const deterministic = (scheme: 'd3-q6-deterministic' | 'e8-q16-deterministic') => quantize(w, { scheme, seed: 3 }) as DeterministicLatticeMatrix;
  interface Case {
    readonly run: Helper;
    readonly destroy: () => void;
    /** The s tried (default −140, −146, +100). */
    readonly shifts?: readonly number[];
  }
  const helpers: Record<string, () => Case> = {
    universalGemv: () => {
      const gpu = uploadLatticeMatrix(device, universal('e8-4bit'));
      return { run: (v) => universalGemv(device, gpu, v), destroy: () => gpu.destroy() };
    },
    universalGemvI8: () => {
      const gpu = uploadLatticeMatrix(device, universal('d3-q6'));
      const weights = UniversalGemvI8Weights.create(device, gpu);
      return {
        run: (v) => universalGemvI8(device, weights, v, { dotPath: dotPathFor(suite.context.features) }),
        destroy: () => {
          weights.destroy();
          gpu.destroy();
        },
      };
    },
    latticeGemv: () => {
      const gpu = uploadLatticeMatrix(device, deterministic('e8-q16-deterministic'));
      return { run: (v) => latticeGemv(device, gpu, v), destroy: () => gpu.destroy() };
    },
    'latticeGemv with a given R·x': () => {
      const q = deterministic('d3-q6-deterministic');
      const gpu = uploadLatticeMatrix(device, q);
      const rotation = new RandomizedHadamard(n, q.seed);
      const rotate = (v: Matrix): Float32Array => {
        const out = new Float32Array(q.length * v.cols);
        for (let r = 0; r < v.cols; r++) rotation.forward(v.data.subarray(r * n, (r + 1) * n), out.subarray(r * q.length, (r + 1) * q.length));
        return out;
      };
      // R·x from the CPU, in f32: of an x of subnormals it would itself be inexact, so s stays in f32's normal range.
      return { run: (v) => latticeGemv(device, gpu, v, { xRotated: rotate(v) }), destroy: () => gpu.destroy(), shifts: [-100, 100] };
    },
    latticeGemvI8: () => {
      const gpu = uploadLatticeMatrix(device, deterministic('d3-q6-deterministic'));
      return { run: (v) => latticeGemvI8(device, gpu, v, { dotPath: dotPathFor(suite.context.features) }), destroy: () => gpu.destroy() };
    },
    d3QuadGemvI8: () => {
      const gpu = uploadLatticeMatrix(device, deterministic('d3-q6-deterministic'));
      const quad = GpuD3QuadMatrix.repack(device, gpu, 'W');
      return {
        run: (v) => d3QuadGemvI8(device, quad, v, { dotPath: dotPathFor(suite.context.features) }),
        destroy: () => {
          quad.destroy();
          gpu.destroy();
        },
      };
    },
    e8ResidueGemvI8: () => {
      const gpu = uploadLatticeMatrix(device, deterministic('e8-q16-deterministic'));
      const residues = GpuE8ResidueMatrix.repack(device, gpu, 'W');
      return {
        run: (v) => e8ResidueGemvI8(device, residues, v, { dotPath: dotPathFor(suite.context.features) }),
        destroy: () => {
          residues.destroy();
          gpu.destroy();
        },
      };
    },
    e8PointGemvI8: () => {
      const points = GpuE8PointMatrix.upload(device, e8PointForm(universal('e8-4bit')), 'W');
      return { run: (v) => e8PointGemvI8(device, points, v, { dotPath: dotPathFor(suite.context.features) }), destroy: () => points.destroy() };
    },
    d3GroupScaledGemvI8: () => {
      const grouped = GpuD3GroupScaledMatrix.upload(device, encodeD3GroupScaled(w), 'W');
      return { run: (v) => d3GroupScaledGemvI8(device, grouped, v, { dotPath: dotPathFor(suite.context.features) }), destroy: () => grouped.destroy() };
    },
  };

  it.each(Object.keys(helpers))('%s: x·2^s gives y·2^s for s = −140 (f32 subnormals), −146 and +100, per right-hand side', async (name) => {
    const { run, destroy, shifts = [-140, -146, 100] } = (helpers[name] as () => Case)();
    try {
      expect((await run(x)).data.some((v) => Math.abs(v) > 0.5)).toBe(true);
      for (const s of shifts) {
        // x·2^s in f32 (subnormals lose bits), and the same values brought back up exactly: the helper
        // must give for the first what it gives for the second, times 2^s (rounded to f32 once).
        // Only the first right-hand side is shifted: each column is scaled (and y unscaled) on its own.
        const scaled: Matrix = { ...x, data: Float32Array.from(x.data, (v, i) => (i < n ? v * 2 ** s : v)) };
        const unscaled: Matrix = { ...x, data: Float32Array.from(scaled.data, (v, i) => (i < n ? v * 2 ** -s : v)) };
        expect(scaled.data.some((v) => v !== 0)).toBe(true);
        const y = await run(unscaled);
        const got = await run(scaled);
        for (let i = 0; i < y.data.length; i++) expect(got.data[i], `s = ${s}, output ${i}`).toBe(Math.fround((y.data[i] as number) * (i < cols ? 2 ** s : 1)));
      }
    } finally {
      destroy();
    }
  });
});
