import { describe, expect, it } from 'vitest';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The subgroup size the kernels run at. Lavapipe's is 8; CI runs the subgroup kernels' tests again with
 * LP_NATIVE_VECTOR_WIDTH=128, where Mesa's subgroups have 4 invocations (.ci/run), and sets
 * LATTICE_EXPECT_SUBGROUP_SIZE so that this test fails if the variable stopped taking effect (a later
 * Mesa, say) and the second run quietly repeated the first. Elsewhere it only reports the size.
 * Another run is at size 16 (LP_NATIVE_VECTOR_WIDTH=512, on a CPU with AVX-512). Mesa reports the
 * size it is asked for but runs no wider than the CPU's vectors: asked for 1024 bits on an AVX-512 CPU
 * it reports 32 and runs subgroups of 16 invocations. So the probe also counts each subgroup's
 * invocations (subgroupAdd(1)): a reported size that is not the one run fails here, by name, instead of
 * as every subgroup kernel's "the shuffles ran" test (their vote sees the short subgroups and takes
 * the plain tree).
 */

const noGpu = await gpuUnavailableReason();
const expected = process.env.LATTICE_EXPECT_SUBGROUP_SIZE;

const PROBE = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> sizes: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) thread: u32, @builtin(subgroup_size) size: u32) {
  sizes[thread] = size;
  sizes[64u + thread] = subgroupAdd(1u);
}`;

describe.skipIf(noGpu !== undefined)('the subgroup size of this adapter', () => {
  const suite = contextOnTestDevice();

  it(expected === undefined ? 'is reported (no size expected: LATTICE_EXPECT_SUBGROUP_SIZE unset)' : `is ${expected}, as LATTICE_EXPECT_SUBGROUP_SIZE says`, async () => {
    if (!suite.context.features.subgroups) {
      expect(expected, 'a subgroup size was expected, but the device has no subgroups').toBeUndefined();
      return;
    }
    const { device } = suite.context;
    const module = device.createShaderModule({ label: 'subgroup size probe', code: PROBE });
    const pipeline = device.createComputePipeline({ label: 'subgroup size probe', layout: 'auto', compute: { module, entryPoint: 'main' } });
    const bytes = await runAndRead(device, 'subgroup size probe', 4 * 128, (run) => {
      const sizes = run.storage('subgroup sizes', 4 * 128);
      const pass = run.encoder.beginComputePass({ label: 'subgroup size probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, device.createBindGroup({ label: 'subgroup size probe', layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: sizes } }] }));
      pass.dispatchWorkgroups(1);
      pass.end();
      return sizes;
    });
    const words = new Uint32Array(bytes);
    const sizes = new Set(words.subarray(0, 64));
    const counted = new Set(words.subarray(64));
    console.log(`subgroup size: ${[...sizes].join(', ')} (invocations counted per subgroup: ${[...counted].join(', ')})`);
    expect(sizes.size).toBe(1);
    expect([...counted], 'the subgroups run as many invocations as subgroup_size says').toEqual([...sizes]);
    if (expected !== undefined) expect([...sizes]).toEqual([Number(expected)]);
  });
});
