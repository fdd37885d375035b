import { afterAll, beforeAll, type TestContext } from 'vitest';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { GpuEngine, type GpuEngineOptions } from '../../src/gpu/engine.js';
import { nodeGpu, requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import type { DeviceRequestFields, GpuContext, OneAdapterChoice } from '../../src/gpu/device.js';

/*
 * How GPU tests get a device. Dawn runs on whatever Vulkan driver `nodeGpu()` finds (Mesa lavapipe or
 * SwiftShader on a machine without a GPU). Where no adapter exists the GPU tests are skipped with a
 * loud message, except in CI (`process.env.CI` set), where a missing adapter fails the run: CI
 * installs lavapipe (scripts/ensure-system.sh), so no adapter there is a broken setup, not a reason
 * to pass.
 */

/**
 * A device with WebGPU's default limits (nothing required: 8 storage buffers per shader stage, 16 KB of
 * workgroup memory, 256 invocations per workgroup, 128 MiB bindings), as an app may create one: the
 * kernels' paths for the smallest devices (the universal GEMV's split form, 256-invocation variants).
 * The caller destroys it.
 */
export async function defaultLimitsDevice(label = 'default-limits device'): Promise<GPUDevice> {
  const adapter = await (await nodeGpu()).requestAdapter();
  if (adapter === null) throw new Error(`no adapter for the ${label}`);
  return adapter.requestDevice({ label });
}

/** Why GPU tests cannot run here, or undefined when a device could be created. Computed once per file. */
let unavailable: Promise<string | undefined> | undefined;

/**
 * Resolves to undefined when a WebGPU device can be created, else to the reason. Throws in CI.
 * Use at the top level of a test file: `const noGpu = await gpuUnavailableReason();` then
 * `describe.skipIf(noGpu !== undefined)(…)`.
 */
export function gpuUnavailableReason(): Promise<string | undefined> {
  unavailable ??= (async () => {
    try {
      const context = await requestNodeGpuDevice({ label: 'gpu availability probe' });
      context.device.destroy();
      return undefined;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (process.env.CI) {
        throw new Error(`CI has no WebGPU adapter, so the GPU tests cannot run: ${reason}`, { cause: error });
      }
      console.warn(`\n*** GPU tests SKIPPED: no WebGPU adapter. ${reason}\n`);
      return reason;
    }
  })();
  return unavailable;
}

/**
 * A fresh device (destroy it in afterAll; `contextOnTestDevice` does both for a describe block).
 * Devices are not shared between files: each vitest file runs in its own process.
 */
export function testDevice(options: OneAdapterChoice<Omit<DeviceRequestFields, 'gpu'>> = {}): Promise<TestDeviceContext> {
  return requestNodeGpuDevice({ label: 'test device', ...options });
}

/** The context of a test device: a `GpuContext` with the adapter it came from. */
export type TestDeviceContext = GpuContext & { readonly adapter: GPUAdapter };

/**
 * A fresh test device (`testDevice(options)`) for the `describe` block that calls this: requested in
 * its beforeAll, destroyed in its afterAll. Read `suite.context` inside the block's tests; read
 * before beforeAll has run (e.g. while the block is being collected) it throws.
 *
 * @example
 * describe.skipIf(noGpu !== undefined)('…', () => {
 *   const suite = contextOnTestDevice();
 *   it('…', async () => { const { device } = suite.context; … });
 * });
 */
export function contextOnTestDevice(options: OneAdapterChoice<Omit<DeviceRequestFields, 'gpu'>> = {}): { readonly context: TestDeviceContext } {
  let context: TestDeviceContext | undefined;
  beforeAll(async () => {
    context = await testDevice(options);
  });
  afterAll(() => context?.device.destroy());
  return {
    get context() {
      if (context === undefined) throw new Error('contextOnTestDevice: read suite.context inside a test, after beforeAll');
      return context;
    },
  };
}

/**
 * A `GpuEngine` (with `engineOptions`) on a fresh test device for the `describe` block that calls this: made in its
 * beforeAll, destroyed with the device in its afterAll. Read `suite.engine` and `suite.context`
 * inside the block's tests (they are set once beforeAll has run).
 *
 * @example
 * describe.skipIf(noGpu !== undefined)('…', () => {
 *   const suite = engineOnTestDevice();
 *   it('…', async () => { await suite.engine.quantize(a, { scheme: 'e8-q16' }); });
 * });
 */
export function engineOnTestDevice(engineOptions: GpuEngineOptions = {}): { readonly context: TestDeviceContext; readonly engine: GpuEngine } {
  const onDevice = contextOnTestDevice();
  let engine: GpuEngine | undefined;
  // Registered after the device's hooks: vitest runs afterAll hooks in reverse (sequence.hooks
  // 'stack'), so the engine goes before its device.
  beforeAll(() => {
    engine = GpuEngine.create(onDevice.context, engineOptions);
  });
  afterAll(() => engine?.destroy());
  return {
    get context() {
      return onDevice.context;
    },
    get engine() {
      if (engine === undefined) throw new Error('engineOnTestDevice: read suite.engine inside a test, after beforeAll');
      return engine;
    },
  };
}

/**
 * Skips the running test, reported as skipped (not passed), where the test device lacks what it needs
 * (`needs`: "shader-f16", "subgroups", …) — and fails it in CI, whose lavapipe has every feature and
 * limit these tests ask for, so that a device that stops granting one is a failure there, not a skip.
 * A test that only returned early instead passed without checking anything.
 */
export function skipUnless(context: TestContext, has: boolean, needs: string): asserts has {
  if (has) return;
  if (process.env.CI) throw new Error(`the test device has no ${needs}, which CI's lavapipe has`);
  context.skip(`the test device has no ${needs}`);
}

/** Bits of an f32 value. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The u32 bit pattern of `Math.fround(x)`. */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0] as number;
}

/** The f32 value of a u32 bit pattern. */
export function f32FromBits(bits: number): number {
  u32[0] = bits;
  return f32[0] as number;
}

/** Hex of a u32 bit pattern, for failure messages. */
export function hex(bits: number): string {
  return `0x${(bits >>> 0).toString(16).padStart(8, '0')}`;
}

/** What {@link trackBuffers} returns. */
export interface BufferTracker {
  /** The labels of the buffers created since tracking began and not destroyed yet. */
  live(): string[];
  /** Stops tracking (the device's own `createBuffer` again). */
  restore(): void;
  /** When set, a creation whose descriptor it accepts throws `allocation failed` (an allocation failing part-way through a call). */
  failWhen: ((descriptor: GPUBufferDescriptor) => boolean) | null;
}

/**
 * Tracks the buffers `device` creates until `restore()`, so that a test can check what a call left
 * allocated (`live()`), also when an allocation fails part-way (`failWhen`). Call `restore()` in a `finally`.
 */
export function trackBuffers(device: GPUDevice): BufferTracker {
  const original = device.createBuffer.bind(device);
  const live = new Map<GPUBuffer, string>();
  const tracker: BufferTracker = {
    live: () => [...live.values()],
    restore: () => void (device.createBuffer = original),
    failWhen: null,
  };
  device.createBuffer = (descriptor) => {
    if (tracker.failWhen?.(descriptor) === true) throw new Error('allocation failed');
    const buffer = original(descriptor);
    live.set(buffer, descriptor.label ?? '');
    const destroy = buffer.destroy.bind(buffer);
    Object.defineProperty(buffer, 'destroy', { value: () => (live.delete(buffer), destroy()), configurable: true });
    return buffer;
  };
  return tracker;
}

/**
 * Runs a WGSL probe: `code`'s entry point `main`, with `input` (u32 words) at binding 0 and an output of
 * `outputBytes` at binding 1 (layout 'auto'), over `invocations` invocations in workgroups of 64 (the
 * probe returns past its cases), and returns the output's bytes. For tests that run library WGSL
 * functions directly against their CPU twins.
 */
export async function runWgslProbe(device: GPUDevice, label: string, code: string, input: Uint32Array, outputBytes: number, invocations: number): Promise<ArrayBuffer> {
  return runAndRead(device, label, outputBytes, (run) => {
    // Inside the run's validation section, so that a WGSL error fails the call.
    const pipeline = device.createComputePipeline({ label, layout: 'auto', compute: { module: device.createShaderModule({ label, code }), entryPoint: 'main' } });
    const buffers = [run.upload(`${label} input`, input), run.storage(`${label} output`, outputBytes)] as const;
    const pass = run.encoder.beginComputePass({ label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) }));
    pass.dispatchWorkgroups(Math.ceil(invocations / 64));
    pass.end();
    return buffers[1];
  });
}
