// The WebGPU types (GPUDevice, GPUBuffer, …) of this package's declarations are the global ones:
// TypeScript 6 and later have them in their "DOM" library; for TypeScript 5 the entry points'
// declarations under types/ts5/ (package.json's `types@<6` condition) add @webgpu/types, a dependency.
// A reference to @webgpu/types here would reach every TypeScript, and collide with TypeScript 6's DOM.
import { check, checkOneOf, LatticeMatmulError, describeValue, checkLabel } from '../errors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { isGpuContext, watchDeviceLoss } from './errorScopes.js';

/**
 * Optional GPU capabilities the kernels use when present (each has a plain path otherwise).
 * `packed4x8IntegerDotProduct` is a WGSL *language* feature (`dot4I8Packed` …), not a device feature:
 * it comes from `GPU.wgslLanguageFeatures`, and is `false` where that set is not exposed.
 */
export interface GpuFeatures {
  readonly subgroups: boolean;
  readonly shaderF16: boolean;
  readonly timestampQuery: boolean;
  readonly packed4x8IntegerDotProduct: boolean;
}

/** The device limits the kernels size themselves by (the values granted to the device, not the adapter's). */
export interface GpuLimits {
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly minStorageBufferOffsetAlignment: number;
  readonly minUniformBufferOffsetAlignment: number;
}

/** A device with what the kernels need to know about it (what `requestGpuDevice` returns, with its adapter). */
export interface GpuContext {
  readonly device: GPUDevice;
  /** The adapter, when known (null for a device handed over by an application). */
  readonly adapter: GPUAdapter | null;
  readonly features: GpuFeatures;
  readonly limits: GpuLimits;
}

/**
 * Options of `requestGpuDevice`: `adapter` and `powerPreference` exclude each other (the preference
 * chooses an adapter; a given one is already chosen), so giving both does not compile, as it is
 * refused at run time.
 */
export type RequestGpuDeviceOptions = OneAdapterChoice<DeviceRequestFields>;

/** `O` with `adapter` or `powerPreference`, not both. */
export type OneAdapterChoice<O> = (O & { readonly powerPreference?: undefined }) | (O & { readonly adapter?: undefined });

/**
 * Every option of `requestGpuDevice` (`RequestGpuDeviceOptions` allows `adapter` or `powerPreference`, not both).
 *
 * @inline
 */
export interface DeviceRequestFields {
  /** The WebGPU entry point: `navigator.gpu` when omitted (in Node pass `await nodeGpu()`). */
  readonly gpu?: GPU;
  /** An adapter to use instead of requesting one. An adapter creates one device only (WebGPU rule). */
  readonly adapter?: GPUAdapter;
  /**
   * Ask for this much workgroup storage instead of the adapter's maximum, to exercise the kernels'
   * smaller-memory paths. At least 16384 (the WebGPU default, which every device gets anyway) and at
   * most the adapter's limit.
   */
  readonly workgroupStorageLimit?: number;
  /** Label of the device (shows in validation messages). */
  readonly label?: string;
  /** Passed to `requestAdapter`: 'low-power' or 'high-performance'. Refused together with `adapter`. */
  readonly powerPreference?: GPUPowerPreference;
}

/** The values of `powerPreference`. */
const POWER_PREFERENCES = ['low-power', 'high-performance'] as const satisfies readonly GPUPowerPreference[];

/**
 * The GPU objects each device of `requestGpuDevice` came from or `gpuContextOf(device, gpu)` was given,
 * the last given last. For the last one's WGSL language features: `gpuContextOf(device)` sees the
 * same features as the context (Node has no `navigator.gpu`: without this,
 * `GpuEngine.create(context.device)` assumed no `packed_4x8_integer_dot_product` and chose other
 * defaults than `GpuEngine.create(context)`). And to keep them alive while the device is: Dawn in
 * Node (npm `webgpu`) crashes the process at random when the object its `create()` returned is
 * garbage-collected before its devices, and an app that keeps only the device (a `const gpu` read by
 * nothing after `requestAdapter()`) lost it at the next collection; a WeakMap's value lives as long as
 * its key. Every one given is kept, not only the last: which one the device came from is not known
 * here, and a second one given must not release it.
 */
const gpusOfDevice = /*#__PURE__*/ new WeakMap<GPUDevice, GPU[]>();

/** Keeps `gpu` alive as long as `device`, as the GPU object whose language features its contexts take. */
function keepGpu(device: GPUDevice, gpu: GPU): void {
  const gpus = gpusOfDevice.get(device) ?? [];
  const at = gpus.indexOf(gpu);
  if (at >= 0) gpus.splice(at, 1);
  gpus.push(gpu);
  gpusOfDevice.set(device, gpus);
}

export const REQUEST_OPTION_KEYS = ['gpu', 'adapter', 'workgroupStorageLimit', 'label', 'powerPreference'] as const satisfies readonly (keyof RequestGpuDeviceOptions)[];

/** The WebGPU default of `maxComputeWorkgroupStorageSize`: a smaller request is raised to it. */
export const DEFAULT_WORKGROUP_STORAGE_SIZE = 16384;

/** The limits taken from the adapter into `requiredLimits`, so the device gets the real maxima. */
const REQUESTED_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  // 10 let the universal GEMV write Y without a finishing pass (fusedFinishSupported).
  'maxStorageBuffersPerShaderStage',
] as const;

/** Device features enabled whenever the adapter has them. */
const OPTIONAL_FEATURES: readonly GPUFeatureName[] = ['subgroups', 'shader-f16', 'timestamp-query'];

/** The `requiredLimits` and `requiredFeatures` of a device request (see {@link deviceRequirements}). */
export interface DeviceRequirements {
  readonly requiredLimits: Record<string, number>;
  readonly requiredFeatures: GPUFeatureName[];
}

/**
 * What this library asks of a device: the adapter's own maxima of the limits its kernels adapt to
 * (workgroup memory, storage bindings and buffer sizes, workgroup counts, storage buffers per shader
 * stage) and the optional features it uses where the adapter has them (`subgroups`, `shader-f16`,
 * `timestamp-query`). `requestGpuDevice` requests exactly this; an app that creates its own device
 * (to share it with the rest of the app) can spread it into its request. A device with WebGPU's
 * defaults works too, on the slower paths: 16 KB of workgroup memory (smaller tables, more rotation
 * passes) and 8 storage buffers per stage (the universal GEMV adds a sums pass and a finishing pass).
 *
 * @example
 * const adapter = await navigator.gpu.requestAdapter();
 * if (adapter === null) throw new Error('no WebGPU adapter');
 * const device = await adapter.requestDevice({ label: 'my app', ...deviceRequirements(adapter) });
 * const engine = GpuEngine.create(device);
 */
export function deviceRequirements(adapter: GPUAdapter): DeviceRequirements {
  check(typeof adapter === 'object' && adapter !== null && typeof adapter.limits === 'object' && typeof adapter.features?.has === 'function', 'deviceRequirements needs a GPUAdapter');
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  return { requiredLimits, requiredFeatures: OPTIONAL_FEATURES.filter((feature) => adapter.features.has(feature)) };
}

/** The fields of `GPUAdapterInfo` that say which adapter it is (what the CLI's probe reports). */
export const ADAPTER_IDENTITY_FIELDS = ['vendor', 'architecture', 'device', 'description'] as const;

/** Which adapter it is, in `ADAPTER_IDENTITY_FIELDS`. */
export type AdapterIdentity = Pick<GPUAdapterInfo, (typeof ADAPTER_IDENTITY_FIELDS)[number]>;

/**
 * The identity fields of `info` as a plain object (Dawn's `GPUAdapterInfo` keeps them in getters, which
 * `JSON.stringify` does not see), each a string: `''` for one missing or not a string.
 */
export function adapterIdentity(info: object): AdapterIdentity {
  const fields = info as Record<string, unknown>;
  const identity = { vendor: '', architecture: '', device: '', description: '' } satisfies AdapterIdentity;
  for (const field of ADAPTER_IDENTITY_FIELDS) {
    const value = fields[field];
    if (typeof value === 'string') identity[field] = value;
  }
  return identity;
}

/** `info`'s identity fields joined by `separator`, in their order, empty ones left out. */
export function describeAdapter(info: AdapterIdentity, separator: string): string {
  return ADAPTER_IDENTITY_FIELDS.map((field) => info[field]).filter(Boolean).join(separator);
}

/**
 * Is this adapter a CPU stand-in (Mesa lavapipe, SwiftShader) rather than a GPU? Read from what the
 * adapter says of itself (WebGPU has no adapter type). Internal: the CLI leaves such an adapter to its
 * worker threads, and the benchmark judges no speed target on one.
 */
export function isSoftwareAdapter(info: AdapterIdentity): boolean {
  return /llvmpipe|lavapipe|swiftshader|software/.test(describeAdapter(info, ' ').toLowerCase());
}

/** What to do about a missing adapter in Node (a browser user is told nothing about Node or Mesa). */
const NODE_NO_ADAPTER_ADVICE =
  ' In Node use nodeGpu() from lattice-matmul/node, which also finds a software Vulkan driver: install Mesa lavapipe ' +
  '(Debian/Ubuntu packages mesa-vulkan-drivers and libvulkan1; Dawn needs Mesa ≥ 24, on Debian 12 from bookworm-backports) or SwiftShader.';

/** requestGpuDevice's refusal when WebGPU offers no adapter: with advice about Node only in Node. */
export function noAdapterMessage(inNode: boolean): string {
  return `WebGPU found no adapter (no usable GPU or software driver, or WebGPU is disabled).${inNode ? NODE_NO_ADAPTER_ADVICE : ''}`;
}

/** Whether this code runs in Node (not in a browser or a browser's worker). */
function runsInNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions?.node === 'string';
}

/**
 * Requests a WebGPU device with the adapter's real compute and buffer limits (not the WebGPU
 * defaults), and with `subgroups`, `shader-f16` and `timestamp-query` enabled where the adapter has
 * them. Device loss (other than `destroy()`) and uncaptured errors are logged with `console.error`.
 * Call `device.destroy()` when done.
 *
 * Device loss: from the moment `device.lost` resolves, every pending and later call of this library
 * on the device rejects with a `GpuDeviceLostError` (a `LatticeMatmulError` carrying the loss's
 * reason and message); `isDeviceLost(device)` says so. Request a new device (and new engines on it)
 * to continue.
 *
 * @throws LatticeMatmulError when there is no WebGPU (`navigator.gpu` missing), no adapter, or the
 *   device request fails.
 * @example
 * // Browser:
 * const { device, features, limits } = await requestGpuDevice();
 * // Node (Dawn):
 * import { nodeGpu } from 'lattice-matmul/node';
 * const gpu = await nodeGpu();
 * const inNode = await requestGpuDevice({ gpu });
 * // Force the 16 KB workgroup-memory fallback in a test:
 * const small = await requestGpuDevice({ gpu, workgroupStorageLimit: 16384 });
 */
export async function requestGpuDevice(options: RequestGpuDeviceOptions = {}): Promise<GpuContext & { readonly adapter: GPUAdapter }> {
  checkOptionsObject(options, REQUEST_OPTION_KEYS, 'requestGpuDevice options');
  const gpu = options.gpu === undefined ? browserGpu() : options.gpu;
  check(typeof gpu === 'object' && gpu !== null && typeof gpu.requestAdapter === 'function', () => `requestGpuDevice options: gpu must be a GPU (navigator.gpu, or nodeGpu() in Node), got ${describeValue(gpu)}`);
  const { powerPreference } = options;
  if (powerPreference !== undefined) {
    checkOneOf(powerPreference, POWER_PREFERENCES, 'requestGpuDevice options: powerPreference');
    check(options.adapter === undefined, 'requestGpuDevice options: powerPreference chooses the adapter, so it cannot go with adapter (which is already chosen): pass one of them');
  }
  // Read before the await, as the rest: the options object is the caller's, who may reuse it for the
  // next request once this call is made (read after it, a workgroupStorageLimit of 16384 changed
  // meanwhile gave the device another limit than the one asked for).
  const { workgroupStorageLimit: storageLimit, label } = options;
  if (label !== undefined) checkLabel(label, 'requestGpuDevice');
  const adapter = options.adapter === undefined ? await gpu.requestAdapter(powerPreference === undefined ? undefined : { powerPreference }) : options.adapter;
  check(adapter !== null, () => noAdapterMessage(runsInNode()));

  const { requiredLimits, requiredFeatures } = deviceRequirements(adapter);
  if (storageLimit !== undefined) {
    const adapterLimit = adapter.limits.maxComputeWorkgroupStorageSize;
    check(
      Number.isInteger(storageLimit) && storageLimit >= DEFAULT_WORKGROUP_STORAGE_SIZE && storageLimit <= adapterLimit,
      () =>
        `workgroupStorageLimit must be an integer in [${DEFAULT_WORKGROUP_STORAGE_SIZE}, ${adapterLimit}] ` +
        `(the adapter's maxComputeWorkgroupStorageSize), got ${describeValue(storageLimit)}`,
    );
    requiredLimits.maxComputeWorkgroupStorageSize = storageLimit;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      label: label ?? 'lattice-matmul device',
      requiredLimits,
      requiredFeatures,
    });
  } catch (error) {
    throw new LatticeMatmulError(`WebGPU requestDevice failed: ${errorMessage(error)}`);
  }
  watchDevice(device);
  keepGpu(device, gpu);
  return { ...describeDevice(device, gpu.wgslLanguageFeatures), adapter };
}

/**
 * The context of a device: the application's own `GPUDevice` (features and limits read from it, loss
 * watched from now on) or a `GpuContext` as it is. `gpu` tells which WGSL language features the
 * implementation has, and is kept alive as long as the device (Dawn in Node crashes when it is
 * collected first; a GPU object given before is kept too); by default, the GPU object the device was
 * last given with or came from (`requestGpuDevice` / `requestNodeGpuDevice`), else `navigator.gpu`
 * where it exists (else none are assumed).
 *
 * @example
 * const engine = GpuEngine.create(myDevice); // calls gpuContextOf(myDevice)
 */
export function gpuContextOf(deviceOrContext: GPUDevice | GpuContext, gpu?: GPU): GpuContext {
  check(typeof deviceOrContext === 'object' && deviceOrContext !== null, 'expected a GPUDevice or the context requestGpuDevice() returns');
  if (isGpuContext(deviceOrContext)) return deviceOrContext as GpuContext;
  const device = deviceOrContext as GPUDevice;
  check(
    typeof device.createBuffer === 'function' && typeof device.features?.has === 'function' && typeof device.limits === 'object',
    'expected a GPUDevice (with createBuffer, features and limits) or the context requestGpuDevice() returns',
  );
  watchDeviceLoss(device);
  if (gpu !== undefined) keepGpu(device, gpu);
  const given = gpusOfDevice.get(device);
  const languageFeatures = (given?.[given.length - 1] ?? (typeof navigator === 'undefined' ? undefined : (navigator as Navigator & { gpu?: GPU }).gpu))?.wgslLanguageFeatures;
  return { ...describeDevice(device, languageFeatures), adapter: null };
}

function describeDevice(device: GPUDevice, languageFeatures: WGSLLanguageFeatures | undefined): Omit<GpuContext, 'adapter'> {
  return {
    device,
    features: {
      subgroups: device.features.has('subgroups'),
      shaderF16: device.features.has('shader-f16'),
      timestampQuery: device.features.has('timestamp-query'),
      packed4x8IntegerDotProduct: languageFeatures?.has('packed_4x8_integer_dot_product') ?? false,
    },
    limits: {
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: device.limits.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
      minUniformBufferOffsetAlignment: device.limits.minUniformBufferOffsetAlignment,
    },
  };
}

function browserGpu(): GPU {
  const gpu = typeof navigator === 'undefined' ? undefined : (navigator as Navigator & { gpu?: GPU }).gpu;
  check(
    gpu !== undefined,
    'WebGPU is not available here (no navigator.gpu). Browsers expose it only on secure origins ' +
      '(https or http://localhost); in Node pass { gpu: await nodeGpu() } from lattice-matmul/node.',
  );
  return gpu;
}

/**
 * Registers the device with the loss policy (src/gpu/errorScopes.ts) at once, so a loss is known
 * even before the first call; logs a lost device (unless it was destroyed on purpose) and errors no
 * error scope caught.
 */
function watchDevice(device: GPUDevice): void {
  watchDeviceLoss(device);
  const label = device.label || 'WebGPU device';
  void device.lost.then((info) => {
    if (info.reason !== 'destroyed') console.error(`lattice-matmul: ${label} was lost (${info.reason}): ${info.message}`);
  });
  device.addEventListener('uncapturederror', (event) => {
    console.error(`lattice-matmul: uncaptured WebGPU error on ${label}: ${event.error.message}`);
  });
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
