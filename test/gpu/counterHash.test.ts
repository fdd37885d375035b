import { describe, expect, it } from 'vitest';
import { counterHash, mix32, Rng } from '../../src/rotation/random.js';
import counterHashSource from '../../shaders/counter_hash.wgsl?raw';
import { contextOnTestDevice, gpuUnavailableReason, hex, runWgslProbe } from './gpuTestDevice.js';

/*
 * shaders/counter_hash.wgsl on its own, against its CPU twin (mix32, counterHash of
 * src/rotation/random.ts): a probe entry point that only runs mix32, mix32_rest after the first
 * xorshift, and counter_hash. Every kernel that hashes (the universal encoder and decoders, the E8
 * point GEMV) is compared with the CPU too, but behind a compile of minutes on lavapipe; this one
 * compiles in a moment, so a change to the hash is judged here first. Inputs: 0, all ones, single bits
 * on both sides of bit 16 (where the xorshifts move bits across), and random words.
 */

const noGpu = await gpuUnavailableReason();

const PROBE = /* wgsl */ `
@group(0) @binding(0) var<storage, read> cases: array<vec4<u32>>;  // (seed, stream, index, sub)
@group(0) @binding(1) var<storage, read_write> hashes: array<vec4<u32>>;  // mix32(seed), mix32_rest(seed ^ seed >> 16), counter_hash, 0
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x >= arrayLength(&cases)) {
    return;
  }
  let c = cases[id.x];
  hashes[id.x] = vec4<u32>(mix32(c.x), mix32_rest(c.x ^ (c.x >> 16u)), counter_hash(c.x, c.y, c.z, c.w), 0u);
}
`;

describe.skipIf(noGpu !== undefined)('counter_hash.wgsl = mix32 and counterHash (CPU)', () => {
  const suite = contextOnTestDevice();

  it('mix32, mix32_rest after the first xorshift and counter_hash give the CPU twin\'s bits', async () => {
    const { device } = suite.context;
    const rng = new Rng(215);
    const u32 = (): number => rng.nextInt(2 ** 16) * 2 ** 16 + rng.nextInt(2 ** 16);
    const words = [0, 1, 0xffffffff, 0x0000ffff, 0xffff0000, 0x8000, 0x10000, 0x80000000, 0x9e3779b9, ...Array.from({ length: 23 }, u32)];
    // Each word as the seed once, with the other three inputs drawn; then each word in the stream, index and sub places.
    const cases = [
      ...words.map((w) => [w, u32(), u32(), u32()]),
      ...words.map((w) => [u32(), w, w, w]),
      ...words.map((w) => [0, 0, w, 0]),
      ...words.map((w) => [w, 0, 0, w]),
    ];
    const bytes = 16 * cases.length;
    const gpu = new Uint32Array(await runWgslProbe(device, 'counter hash probe', `${counterHashSource}\n${PROBE}`, Uint32Array.from(cases.flat()), bytes, cases.length));
    cases.forEach(([seed, stream, index, sub], c) => {
      const what = `case ${c}: (${[seed, stream, index, sub].map((v) => hex(v as number)).join(', ')})`;
      expect(hex(gpu[4 * c] as number), `${what}: mix32`).toBe(hex(mix32(seed as number)));
      expect(hex(gpu[4 * c + 1] as number), `${what}: mix32_rest`).toBe(hex(mix32(seed as number)));
      expect(hex(gpu[4 * c + 2] as number), `${what}: counter_hash`).toBe(hex(counterHash(seed as number, stream as number, index as number, sub as number)));
    });
  });
});
