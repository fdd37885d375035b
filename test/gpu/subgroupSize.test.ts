import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/device.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The subgroup size the kernels run at. Lavapipe's is 8; CI runs the subgroup kernels' tests again with
 * LP_NATIVE_VECTOR_WIDTH=128, where Mesa's subgroups have 4 invocations (.ci/run), and sets
 * LATTICE_EXPECT_SUBGROUP_SIZE so that this test fails if the variable stopped taking effect (a later
 * Mesa, say) and the second run quietly repeated the first. Elsewhere it only reports the size.
 */

const noGpu = await gpuUnavailableReason();
const expected = process.env.LATTICE_EXPECT_SUBGROUP_SIZE;

const PROBE = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> sizes: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) thread: u32, @builtin(subgroup_size) size: u32) {
  sizes[thread] = size;
}`;

describe.skipIf(noGpu !== undefined)('the subgroup size of this adapter', () => {
  let context: GpuContext;
  beforeAll(async () => {
    context = await testDevice();
  });
  afterAll(() => context?.device.destroy());

  it(expected === undefined ? 'is reported (no size expected: LATTICE_EXPECT_SUBGROUP_SIZE unset)' : `is ${expected}, as LATTICE_EXPECT_SUBGROUP_SIZE says`, async () => {
    if (!context.features.subgroups) {
      expect(expected, 'a subgroup size was expected, but the device has no subgroups').toBeUndefined();
      return;
    }
    const { device } = context;
    const module = device.createShaderModule({ label: 'subgroup size probe', code: PROBE });
    const pipeline = device.createComputePipeline({ label: 'subgroup size probe', layout: 'auto', compute: { module, entryPoint: 'main' } });
    const bytes = await runAndRead(device, 'subgroup size probe', 4 * 64, (run) => {
      const sizes = run.storage('subgroup sizes', 4 * 64);
      const pass = run.encoder.beginComputePass({ label: 'subgroup size probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ label: 'subgroup size probe', layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: sizes } }] }));
      pass.dispatchWorkgroups(1);
      pass.end();
      return sizes;
    });
    const sizes = new Set(new Uint32Array(bytes));
    console.log(`subgroup size: ${[...sizes].join(', ')}`);
    expect(sizes.size).toBe(1);
    if (expected !== undefined) expect([...sizes]).toEqual([Number(expected)]);
  });
});
