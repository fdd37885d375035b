import { describe, expect, it } from 'vitest';
import { engineOnTestDevice, gpuUnavailableReason } from '../gpu/gpuTestDevice.js';
import { runExactnessSweep } from './exactnessSweep.js';

/*
 * The GPU-vs-CPU exactness sweep, short form (the long one, ≥ 10,000 shapes, is `npm run fuzz`):
 * random shapes, data kinds, scales and presets; the GPU encoder must match the CPU bit for bit.
 */

const SHAPES = process.env.CI ? 300 : 200;
const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('GPU-vs-CPU exactness sweep (fast-check seed 20261130)', () => {
  const suite = engineOnTestDevice();

  it(`${SHAPES} random shapes: codes, escapes, norms and means equal`, async () => {
    const counts = await runExactnessSweep(suite.engine, { seed: 20261130, shapes: SHAPES });
    console.log(`exactness sweep: tried ${counts.tried}, identical ${counts.identical}, mismatches ${counts.mismatches.length}`);
    expect(counts.mismatches.slice(0, 5)).toEqual([]);
    expect(counts.tried).toBe(SHAPES);
  }, 600_000);
});
