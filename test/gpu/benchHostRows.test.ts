import { describe, expect, it } from 'vitest';
import { countAllocations, gemvProblem, type BenchSettings } from '../../bench/gpu/common.js';
import { hostRows } from '../../bench/gpu/hostCases.js';
import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { gpuQuantizeLattice } from '../../src/gpu/gpuQuantize.js';
import { dispatchUniversalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { QuantizedLinear } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The benchmark's host rows (bench/gpu/hostCases.ts) count the GPU objects each recorded call creates;
 * the README quotes them. Their timings are not checked (a shared machine's microseconds prove
 * nothing), their counts are: each against one call of the same kind counted here on its own.
 */

const noGpu = await gpuUnavailableReason();

/** Only `seed` matters to the host rows; the rest as a quick run has them. */
const settings: BenchSettings = {
  quick: true,
  seed: 7,
  warmup: 1,
  warmupMs: 0,
  primeMs: 0,
  maxTimings: 1,
  samples: 2,
  workingSetBytes: 0,
  minCalls: 1,
  maxCopies: 1,
  tileCols: 64,
  timestampQuery: false,
};

describe.skipIf(noGpu !== undefined)('the benchmark host rows', () => {
  const suite = contextOnTestDevice();

  // 40 calls give the re-preparing row rounds of 4 records into its 3 outputs, 30 rounds of 3: a round
  // that started again from the first output found the last two still prepared (7.36 objects per call
  // at --quick's 200 calls, where every call creates 8), one that started on the second, the last two.
  it('count per call the GPU objects of one call: none for a prepared replay, a whole preparation for each call cycling past maxPrepared, a plain dispatch\'s for a fresh scratch', async () => {
    const { device } = suite.context;
    const problem = gemvProblem(64, 256, 1, settings.tileCols, settings.seed);
    const w = await gpuQuantizeLattice(device, problem.tile, { scheme: 'e8-4bit', seed: settings.seed, nonce: BigInt(settings.seed) });
    const x = createBuffer(device, 'host rows x', 4 * problem.n, STORAGE_USAGE);
    const ys = [0, 1].map((i) => createBuffer(device, `host rows y ${i}`, 4 * problem.cols, STORAGE_USAGE));
    const [y0, y1] = ys as [GPUBuffer, GPUBuffer];
    const layer = QuantizedLinear.create(device, w, { maxTokens: 1 });
    const scratches: GpuScratch[] = [];
    try {
      const encoder = device.createCommandEncoder({ label: 'host rows twins' });
      // Each counted after a first call of its kind (pipelines compiled, shared buffers made).
      const plainDispatch = (): void => {
        const scratch = new GpuScratch(device);
        scratches.push(scratch);
        dispatchUniversalGemv(device, encoder, scratch, { w, x, y: y0, rhs: 1 });
      };
      plainDispatch();
      const plain = countAllocations(device, plainDispatch).allocations;
      layer.record(encoder, x, y0);
      const preparation = countAllocations(device, () => layer.record(encoder, x, y1)).allocations;
      const replay = countAllocations(device, () => layer.record(encoder, x, y1)).allocations;
      encoder.finish();
      expect([replay, preparation > 0, plain > 0]).toEqual([0, true, true]);

      for (const calls of [30, 40]) {
        const rows = await hostRows(suite.context, problem, 'e8-4bit', calls, settings);
        expect(rows.map((r) => [r.kernel, r.status])).toEqual([
          ['host: QuantizedLinear.record (prepared), e8-4bit', 'ok'],
          ['host: QuantizedLinear.record (prepared), e8-4bit, into one compute pass', 'ok'],
          ['host: QuantizedLinear.record cycling through maxPrepared + 1 outputs (re-prepares every call), e8-4bit', 'ok'],
          ['host: dispatchUniversalGemv (fresh scratch per call), e8-4bit', 'ok'],
        ]);
        // The prepared rows report their total over every timed call, the others per call.
        expect(rows.map((r) => r.allocationsAfterFirst), `${calls} calls`).toEqual([0, 0, preparation, plain]);
        // The prepared rows time the calls asked for; the re-preparing row visits each of its 3 outputs per round.
        expect([rows[0]?.callsPerSample, rows[1]?.callsPerSample, (rows[2]?.callsPerSample ?? 0) >= 3]).toEqual([calls, calls, true]);
      }
    } finally {
      layer.destroy();
      for (const scratch of scratches) scratch.destroy();
      for (const buffer of [x, ...ys]) buffer.destroy();
      w.destroy();
    }
  });
});
