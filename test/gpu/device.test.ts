import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { deviceRequirements, gpuContextOf, isSoftwareAdapter, noAdapterMessage, requestGpuDevice } from '../../src/gpu/device.js';
import { fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { nodeGpu, requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { BufferUsage, checkBufferSize, createBuffer, createBufferWithData, readBuffer, recordReadback, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { UniformPacker } from '../../src/gpu/uniforms.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow, workgroupGrid } from '../../src/gpu/workSplit.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

const noGpu = await gpuUnavailableReason();

describe('requestGpuDevice without WebGPU', () => {
  it('throws a LatticeMatmulError when there is no navigator.gpu', async () => {
    await expect(requestGpuDevice()).rejects.toThrow(LatticeMatmulError);
    await expect(requestGpuDevice()).rejects.toThrow(/navigator\.gpu/);
  });

  it('throws a LatticeMatmulError when the GPU has no adapter', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    await expect(requestGpuDevice({ gpu: noAdapter })).rejects.toThrow(noAdapterMessage(true));
    // A browser user (the demo page, after a GPU reset) is not told about Node or Mesa.
    expect(noAdapterMessage(true)).toMatch(/In Node use nodeGpu\(\) from lattice-matmul\/node.*mesa-vulkan-drivers/);
    expect(noAdapterMessage(false)).toBe('WebGPU found no adapter (no usable GPU or software driver, or WebGPU is disabled).');
  });
});

describe('requestGpuDevice / nodeGpu options (no GPU needed)', () => {
  const adapter = { limits: {}, features: new Set() } as unknown as GPUAdapter;
  const gpu = { requestAdapter: async () => adapter } as unknown as GPU;

  it('requestGpuDevice refuses powerPreference with an adapter (it was ignored), a bad powerPreference, and a gpu that is not one', async () => {
    // @ts-expect-error adapter and powerPreference exclude each other (RequestGpuDeviceOptions); JS callers are refused at run time
    await expect(requestGpuDevice({ gpu, adapter, powerPreference: 'low-power' })).rejects.toThrow(
      /^requestGpuDevice options: powerPreference chooses the adapter, so it cannot go with adapter/,
    );
    await expect(requestGpuDevice({ gpu, powerPreference: 'fast' as never })).rejects.toThrow(
      /^requestGpuDevice options: powerPreference must be 'low-power' or 'high-performance', got "fast"$/,
    );
    await expect(requestGpuDevice({ gpu: null as never })).rejects.toThrow(/^requestGpuDevice options: gpu must be a GPU .*, got null$/);
  });

  it('nodeGpu refuses options outside { flags } and a null options object; requestNodeGpuDevice refuses gpu (it was replaced silently)', async () => {
    await expect(nodeGpu({ flag: ['x'] } as never)).rejects.toThrow(/^nodeGpu options: unknown option 'flag' \(did you mean 'flags'\?\); known: flags$/);
    await expect(nodeGpu(null as never)).rejects.toThrow(/^nodeGpu options must be an object, got null$/); // was a TypeError
    await expect(nodeGpu({ flags: 'x' } as never)).rejects.toThrow(/^nodeGpu options: flags must be an array of strings, got "x"$/);
    await expect(requestNodeGpuDevice({ gpu } as never)).rejects.toThrow(/^requestNodeGpuDevice options: gpu is not an option here .*pass your GPU to requestGpuDevice/);
    await expect(requestNodeGpuDevice({ lable: 'x' } as never)).rejects.toThrow(/^requestNodeGpuDevice options: unknown option 'lable' \(did you mean 'label'\?\)/);
  });
});

describe('shared helpers (CPU)', () => {
  it('isSoftwareAdapter tells CPU stand-ins (lavapipe, SwiftShader) from GPUs by what they say of themselves', () => {
    const info = (vendor: string, architecture: string, device: string, description: string) => ({ vendor, architecture, device, description });
    // Dawn's lavapipe on this machine (bench/results/lavapipe-*.json) and SwiftShader's Vulkan device.
    expect(isSoftwareAdapter(info('mesa', 'software', 'llvmpipe-llvm-15-0-6-256-bits-', 'llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1'))).toBe(true);
    expect(isSoftwareAdapter(info('google', '', '', 'SwiftShader Device (Subzero)'))).toBe(true);
    for (const gpu of [info('nvidia', 'hopper', '', 'NVIDIA H200'), info('amd', 'rdna-3', '', 'AMD Radeon RX 7900 XTX'), info('', '', '', '')]) expect(isSoftwareAdapter(gpu)).toBe(false);
  });

  it('buffer sizes: padded to whole 4-byte words (at least one), refused beyond maxBufferSize up front, never smaller than their data', () => {
    // A stand-in device that records what it was asked to create (the sizing is host arithmetic).
    const created: GPUBufferDescriptor[] = [];
    const device = {
      limits: { maxBufferSize: 1024 },
      createBuffer: (descriptor: GPUBufferDescriptor) => {
        created.push(descriptor);
        return { getMappedRange: () => new ArrayBuffer(descriptor.size), unmap: () => undefined };
      },
    } as unknown as GPUDevice;
    for (const [asked, size] of [[0, 4], [1, 4], [4, 4], [5, 8], [1021, 1024], [1024, 1024]] as const) {
      createBuffer(device, `${asked} bytes`, asked, STORAGE_USAGE);
      expect(created.pop()?.size, `${asked} bytes`).toBe(size);
    }
    // 1025 bytes pad to 1028, past the limit: refused before WebGPU returns an invalid buffer.
    expect(() => createBuffer(device, 'too large', 1025, STORAGE_USAGE)).toThrow(/^too large: 1028 bytes is more than this device's maxBufferSize \(1024\)/);
    expect(() => checkBufferSize(device, 'at the limit', 1024)).not.toThrow();
    expect(() => createBufferWithData(device, 'short', new Uint8Array(8), STORAGE_USAGE, 4)).toThrow(/^short: a 4-byte buffer cannot hold 8 bytes of data$/);
    expect(created).toEqual([]);
  });

  it('workgroupGrid covers the count within the per-dimension limit', () => {
    for (const [count, max] of [
      [1, 65535],
      [65535, 65535],
      [65536, 65535],
      [100_000, 65535],
      [45, 7],
      [49, 7],
    ] as const) {
      const [x, y] = workgroupGrid(count, max);
      expect(x * y).toBeGreaterThanOrEqual(count);
      expect(x * (y - 1)).toBeLessThan(count); // no whole row wasted
      expect(x * y - count).toBeLessThan(y); // x is the fewest columns for y rows: less than one workgroup per row wasted
      expect(Math.max(x, y)).toBeLessThanOrEqual(max);
    }
    expect(() => workgroupGrid(50, 7)).toThrow(/do not fit/);
  });

  it('bindingWindow starts at an aligned offset and covers the range', () => {
    expect(bindingWindow(1000, 400, 256)).toEqual({ offset: 768, size: 632, firstElement: 58 });
    expect(bindingWindow(512, 8, 256)).toEqual({ offset: 512, size: 8, firstElement: 0 });
    expect(itemsPerBinding(4096, 134217728, 256)).toBe(32767);
    expect(() => itemsPerBinding(1000, 1000, 256)).toThrow(/does not fit/);
  });

  it('valuesWindow binds the whole words around 16-bit values and counts the first value in halves; 32-bit values in words', () => {
    // Bytes [1002, 1008): words [1000, 1008), bound from 768 (the aligned offset below), first half 2·58 + 1.
    expect(valuesWindow(1002, 3, 2, 256)).toEqual({ offset: 768, size: 240, firstElement: 117 });
    // Bytes [1002, 1006) end mid-word: the binding must still hold the word [1004, 1008) of the last value.
    expect(valuesWindow(1002, 2, 2, 256)).toEqual({ offset: 768, size: 240, firstElement: 117 });
    expect(valuesWindow(1000, 1, 2, 256)).toEqual({ offset: 768, size: 236, firstElement: 116 });
    // 3 words from byte 1000 bound from 768 (232 bytes of slack + 12), first word 232 / 4.
    expect(valuesWindow(1000, 3, 4, 256)).toEqual({ offset: 768, size: 244, firstElement: 58 });
  });

  it('bindingCap takes the smaller of the knob and the device limit, and refuses a knob that is not a positive integer', () => {
    const device = { limits: { maxStorageBufferBindingSize: 1 << 27 } } as GPUDevice;
    expect(bindingCap(device, undefined, 'k')).toBe(1 << 27);
    expect(bindingCap(device, 1000, 'k')).toBe(1000);
    expect(bindingCap(device, 1 << 30, 'k')).toBe(1 << 27);
    for (const bad of [0, -4, 1.5]) expect(() => bindingCap(device, bad, 'k')).toThrow(`k: maxBindingBytes must be a positive integer, got ${bad}`);
  });

  it('UniformPacker lays out u32, i32, f32 little-endian, padded to 16 bytes, and range-checks', () => {
    const bytes = new UniformPacker().u32(0xffffffff, 'a').i32(-2, 'b').f32(0.1, 'c').u32(7, 'd').u32(9, 'e').bytes();
    expect(bytes.byteLength).toBe(32);
    const view = new DataView(bytes.buffer);
    expect([view.getUint32(0, true), view.getInt32(4, true), view.getFloat32(8, true), view.getUint32(16, true)]).toEqual([
      0xffffffff,
      -2,
      Math.fround(0.1),
      9,
    ]);
    expect(() => new UniformPacker().u32(-1, 'rows')).toThrow(/rows/);
    expect(() => new UniformPacker().u32(2 ** 32, 'rows')).toThrow(/rows/);
    expect(() => new UniformPacker().f32(Number.NaN, 'scale')).toThrow(/scale/);
    // i32's whole range, both ends, and nothing past them.
    const ends = new DataView(new UniformPacker().i32(-(2 ** 31), 'low').i32(2 ** 31 - 1, 'high').bytes().buffer);
    expect([ends.getInt32(0, true), ends.getInt32(4, true)]).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    expect(() => new UniformPacker().i32(-(2 ** 31) - 1, 'low')).toThrow(/low/);
    expect(() => new UniformPacker().i32(2 ** 31, 'high')).toThrow(/high/);
  });
});

describe.skipIf(noGpu !== undefined)('requestGpuDevice on Dawn', () => {
  it('requests the adapter’s real limits and enables its optional features', async () => {
    const gpu = await nodeGpu();
    const adapter = await gpu.requestAdapter();
    expect(adapter).not.toBeNull();
    const context = await requestGpuDevice({ gpu, label: 'limits test' });
    try {
      for (const name of [
        'maxComputeWorkgroupStorageSize',
        'maxStorageBufferBindingSize',
        'maxBufferSize',
        'maxComputeInvocationsPerWorkgroup',
        'maxComputeWorkgroupSizeX',
        'maxComputeWorkgroupsPerDimension',
      ] as const) {
        expect(context.limits[name], name).toBe(adapter?.limits[name]);
        expect(context.device.limits[name], name).toBe(adapter?.limits[name]);
      }
      // What lets the universal GEMV's product write Y itself (10 storage buffers per stage).
      expect(context.device.limits.maxStorageBuffersPerShaderStage).toBe(adapter?.limits.maxStorageBuffersPerShaderStage);
      expect(context.features.subgroups).toBe(adapter?.features.has('subgroups'));
      expect(context.features.shaderF16).toBe(adapter?.features.has('shader-f16'));
      expect(context.features.timestampQuery).toBe(adapter?.features.has('timestamp-query'));
      expect(context.features.packed4x8IntegerDotProduct).toBe(
        gpu.wgslLanguageFeatures.has('packed_4x8_integer_dot_product'),
      );
      expect(context.device.label).toBe('limits test');
      // Every limit of the context is the device's own (the alignments too, which the device gets by default).
      for (const [name, value] of Object.entries(context.limits)) expect(value, name).toBe(context.device.limits[name as keyof GPUSupportedLimits]);
    } finally {
      context.device.destroy();
    }
  });

  it('deviceRequirements: an app\'s own device requested with it gets the adapter\'s limits and features; one with the defaults does not', async () => {
    const gpu = await nodeGpu();
    const adapter = await gpu.requestAdapter();
    if (adapter === null) throw new Error('no adapter');
    const requirements = deviceRequirements(adapter);
    expect(Object.keys(requirements.requiredLimits)).toContain('maxStorageBuffersPerShaderStage');
    for (const [name, value] of Object.entries(requirements.requiredLimits)) expect(value, name).toBe(adapter.limits[name as keyof GPUSupportedLimits]);
    expect(requirements.requiredFeatures).toEqual((['subgroups', 'shader-f16', 'timestamp-query'] as const).filter((f) => adapter.features.has(f)));
    const own = await adapter.requestDevice({ label: 'app device', ...requirements });
    const defaults = await (await gpu.requestAdapter())?.requestDevice({ label: 'default device' });
    try {
      // An app's own device: its WGSL language features come from navigator.gpu, or none are assumed,
      // until the app gives its GPU object (which the device's later contexts then use).
      const ambient = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
      expect(gpuContextOf(own).features.packed4x8IntegerDotProduct).toBe(ambient?.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false);
      const context = gpuContextOf(own, gpu);
      expect(context.features.packed4x8IntegerDotProduct).toBe(gpu.wgslLanguageFeatures.has('packed_4x8_integer_dot_product'));
      expect(gpuContextOf(own).features).toEqual(context.features);
      expect(context.limits.maxComputeWorkgroupStorageSize).toBe(adapter.limits.maxComputeWorkgroupStorageSize);
      expect(context.features.subgroups).toBe(adapter.features.has('subgroups'));
      // The universal GEMV's fused product (10 storage buffers per stage) where the adapter allows it;
      // never on a device with WebGPU's default of 8.
      expect(fusedFinishSupported(own)).toBe(adapter.limits.maxStorageBuffersPerShaderStage >= 10);
      expect(defaults?.limits.maxStorageBuffersPerShaderStage).toBe(8);
      expect(fusedFinishSupported(defaults as GPUDevice)).toBe(false);
      expect(() => deviceRequirements(null as unknown as GPUAdapter)).toThrow(/needs a GPUAdapter/);
    } finally {
      own.destroy();
      defaults?.destroy();
    }
  });

  it('gpuContextOf: a bare GPUDevice gets a context with no adapter and the device’s own features and limits; a context passes through', async () => {
    const gpu = await nodeGpu();
    const context = await requestGpuDevice({ gpu, label: 'bare device test', workgroupStorageLimit: 16384 });
    try {
      expect(context.adapter).not.toBeNull();
      const bare = gpuContextOf(context.device, gpu);
      expect(bare.adapter).toBeNull();
      expect(bare.device).toBe(context.device);
      // The granted limits (16384 here, below the adapter's), not the adapter's.
      expect(bare.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      expect(bare.limits).toEqual(context.limits);
      expect(bare.features).toEqual(context.features);
      // Without a GPU object, a device of requestGpuDevice has the WGSL language features of the GPU it
      // came from (before: navigator.gpu's, which Node lacks, so packed dot products were assumed absent).
      expect(gpuContextOf(context.device).features).toEqual(context.features);
      expect(gpuContextOf(context.device).features.packed4x8IntegerDotProduct).toBe(gpu.wgslLanguageFeatures.has('packed_4x8_integer_dot_product'));
      expect(gpuContextOf(context)).toBe(context);
      expect(() => gpuContextOf(null as unknown as GPUDevice)).toThrow(LatticeMatmulError);
      expect(() => gpuContextOf({ limits: {} } as unknown as GPUDevice)).toThrow(/expected a GPUDevice/);
    } finally {
      context.device.destroy();
    }
  });

  // Dawn in Node (npm webgpu) crashes the process at random when the GPU object its create() returned
  // is garbage-collected before its devices (a newcomer's `const gpu = create([])`, read by nothing after
  // requestAdapter, died 6 times in 6). The library keeps the GPU objects it is given alive as long as
  // the device: each of them, not only the last (which one the device came from it cannot tell).
  // Stand-in GPU objects (with the adapter given, only their WGSL language features are read); one
  // more, kept by nothing, shows that the collections ran.
  it('requestGpuDevice({ gpu }) and gpuContextOf(device, gpu) keep every GPU object given alive as long as the device; the last given tells the features', async () => {
    v8.setFlagsFromString('--expose_gc');
    const collect = vm.runInNewContext('gc') as () => void;
    const standIn = (...features: string[]): GPU => ({ wgslLanguageFeatures: new Set(features), requestAdapter: () => Promise.resolve(null) }) as unknown as GPU;
    const real = await nodeGpu();
    const made = async (): Promise<{ devices: GPUDevice[]; kept: WeakRef<GPU>[]; unkept: WeakRef<GPU> }> => {
      const [first, second, third] = [standIn(), standIn(), standIn('packed_4x8_integer_dot_product')];
      const adapter = await real.requestAdapter();
      if (adapter === null) throw new Error('no adapter');
      const context = await requestGpuDevice({ gpu: first, adapter, label: 'kept GPU test' });
      const own = await (await real.requestAdapter())?.requestDevice({ label: 'kept GPU test, app device' });
      if (own === undefined) throw new Error('no adapter');
      gpuContextOf(own, second);
      expect(gpuContextOf(own, third).features.packed4x8IntegerDotProduct).toBe(true);
      expect(gpuContextOf(own).features.packed4x8IntegerDotProduct, 'the last GPU object given').toBe(true);
      return { devices: [context.device, own], kept: [first, second, third].map((gpu) => new WeakRef(gpu)), unkept: new WeakRef(standIn()) };
    };
    const { devices, kept, unkept } = await made();
    try {
      // A WeakRef's target lives until the end of the job that made or dereferenced it: collect in a later one.
      const tick = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 10));
      for (let round = 0; round < 5; round++) {
        await tick();
        collect();
        await tick();
        if (unkept.deref() === undefined) break;
      }
      expect(unkept.deref(), 'a GPU object nothing keeps is collected').toBeUndefined();
      expect(kept.map((ref) => ref.deref() !== undefined)).toEqual([true, true, true]);
    } finally {
      for (const device of devices) device.destroy();
    }
  });

  it('honours a smaller workgroupStorageLimit and refuses one outside [16384, adapter limit]', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    try {
      expect(small.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    } finally {
      small.device.destroy();
    }
    const adapterLimit = (await (await nodeGpu()).requestAdapter())?.limits.maxComputeWorkgroupStorageSize ?? 0;
    await expect(testDevice({ workgroupStorageLimit: 8192 })).rejects.toThrow(/workgroupStorageLimit/);
    await expect(testDevice({ workgroupStorageLimit: adapterLimit + 1 })).rejects.toThrow(/workgroupStorageLimit/);
    // Both ends of the interval are allowed: the adapter's own limit too.
    const largest = await testDevice({ workgroupStorageLimit: adapterLimit });
    try {
      expect(largest.limits.maxComputeWorkgroupStorageSize).toBe(adapterLimit);
    } finally {
      largest.device.destroy();
    }
  });

  it('withValidation turns a validation error into a LatticeMatmulError and keeps the scopes balanced', async () => {
    const { device } = await testDevice();
    try {
      await expect(
        withValidation(device, 'bad buffer', () => {
          device.createBuffer({ label: 'bad', size: 4, usage: 0xffff });
        }),
      ).rejects.toThrow(/WebGPU error in bad buffer: GPUValidationError/);
      // The scopes were popped: a valid call afterwards passes and returns its value.
      await expect(withValidation(device, 'fine', () => 42)).resolves.toBe(42);
      // An exception from the work itself propagates unchanged.
      await expect(
        withValidation(device, 'throws', () => {
          throw new RangeError('boom');
        }),
      ).rejects.toThrow(RangeError);
      // Every scope the three sections pushed was popped, so the device's stack is empty again: a scope
      // left behind would catch (and hide from the app) the app's own errors of its kind.
      await expect(device.popErrorScope()).rejects.toThrow();
    } finally {
      device.destroy();
    }
  });

  it('uploads (unaligned lengths padded) and reads back at an offset', async () => {
    const { device } = await testDevice();
    const buffer = createBuffer(device, 'roundtrip', 64, STORAGE_USAGE);
    try {
      uploadToBuffer(device, buffer, new Uint8Array([1, 2, 3, 4, 5, 6, 7]), 8);
      const bytes = new Uint8Array(await readBuffer(device, buffer, 7, 8));
      expect(Array.from(bytes)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(buffer.label).toBe('roundtrip');
      await expect(readBuffer(device, buffer, 64, 4)).rejects.toThrow(/cannot read 64 bytes/);
      // The primitive under readBuffer checks the range itself: read past the end, its copy would stop
      // at the buffer's end and the rest come back as the staging buffer's zeros.
      expect(() => recordReadback(device, device.createCommandEncoder(), buffer, 64, 4)).toThrow(/^roundtrip: cannot read 64 bytes at offset 4 from a 64-byte buffer$/);
      // Refused on the host: WebGPU would report these writes only to an error scope and leave the
      // buffer as it was, so the app would compute with stale data.
      expect(() => uploadToBuffer(device, buffer, new Uint8Array(4), 2)).toThrow(/^roundtrip: upload offset 2 is not a non-negative multiple of 4$/);
      const odd = device.createBuffer({ label: 'seven bytes', size: 7, usage: BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
      try {
        // 7 bytes are written as 8 (whole words), one past the end of a 7-byte buffer.
        expect(() => uploadToBuffer(device, odd, new Uint8Array(7))).toThrow(/^seven bytes: cannot upload 7 bytes at offset 0 into a 7-byte buffer$/);
        // Reading its last 3 bytes would copy a word that reaches past its end: refused by name.
        await expect(readBuffer(device, odd, 7)).rejects.toThrow(/^seven bytes: cannot read its last 7 bytes/);
      } finally {
        odd.destroy();
      }
    } finally {
      buffer.destroy();
      device.destroy();
    }
  });
});
