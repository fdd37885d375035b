import { existsSync } from 'node:fs';
import { check, describeValue, LatticeMatmulError } from '../errors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { REQUEST_OPTION_KEYS, requestGpuDevice, type DeviceRequestFields, type GpuContext, type OneAdapterChoice, type RequestGpuDeviceOptions } from './device.js';

/*
 * WebGPU in Node through Dawn (npm `webgpu`), which runs on Vulkan. On a machine without a GPU the
 * Vulkan driver is a software one: Mesa lavapipe (`mesa-vulkan-drivers` ≥ 24; bookworm's 22.3 is
 * refused by Dawn) or the SwiftShader that Debian's chromium ships outside the loader's search path.
 *
 * How the driver is found (checked with Dawn 0.6.2 on lavapipe 25 and SwiftShader 5):
 * 1. The Vulkan loader reads `VK_ICD_FILENAMES` / `VK_DRIVER_FILES` each time Dawn creates an
 *    instance (each `create()`), so the variables need not be set before the first `create()`: after
 *    a `create()` that found no adapter, setting them and calling `create()` again works.
 * 2. Without those variables the loader searches /usr/share/vulkan/icd.d and friends, which finds
 *    lavapipe when it is installed (and prefers a real GPU: Dawn ranks discrete, integrated, then CPU
 *    adapters). Only when that finds no adapter do we point `VK_ICD_FILENAMES` at the known software
 *    ICDs in turn and retry. Where the user set either variable it is honoured and nothing is tried.
 * 3. A failed attempt makes Dawn print "vkCreateInstance failed" warnings on stderr; they are harmless.
 *
 * Setting `process.env` changes the C environment only in the main thread and in child processes
 * (vitest's default `forks` pool); inside a `worker_threads` worker export the variable yourself.
 */

/** Software Vulkan ICDs tried in order when the loader's default search finds no adapter. */
export const SOFTWARE_VULKAN_ICDS: readonly string[] = [
  '/usr/share/vulkan/icd.d/lvp_icd.json', // Mesa lavapipe (Debian/Ubuntu mesa-vulkan-drivers)
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', // Mesa lavapipe (Fedora naming)
  '/usr/lib/chromium/vk_swiftshader_icd.json', // SwiftShader from Debian's chromium
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json', // … from Ubuntu/older chromium packaging
];

/** Options of `nodeGpu`. */
export interface NodeGpuOptions {
  /** Dawn instance flags passed to `create()` (e.g. `enable-dawn-features=…`). */
  readonly flags?: readonly string[];
}

const NODE_GPU_OPTION_KEYS = ['flags'] as const satisfies readonly (keyof NodeGpuOptions)[];

/** The keys `requestNodeGpuDevice` knows: `requestGpuDevice`'s and `nodeGpu`'s (it refuses `gpu` with its own message). */
const REQUEST_NODE_OPTION_KEYS = [...REQUEST_OPTION_KEYS, ...NODE_GPU_OPTION_KEYS];

/** `options.flags` as a new array, after checking `options` (a plain object whose flags, if any, are strings). */
function checkedFlags(options: NodeGpuOptions, what: string): string[] {
  checkOptionsObject(options, NODE_GPU_OPTION_KEYS, what);
  const { flags } = options;
  if (flags === undefined) return [];
  check(Array.isArray(flags) && flags.every((flag) => typeof flag === 'string'), () => `${what}: flags must be an array of strings, got ${describeValue(flags)}`);
  return [...flags];
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

let dawnModule: Promise<DawnModule> | undefined;
let globalsInstalled = false;
const gpuByFlags = /*#__PURE__*/ new Map<string, Promise<GPU>>();

/**
 * The WebGPU entry point in Node (Dawn, from the npm package `webgpu`), with a working adapter. It
 * installs Dawn's globals (`GPUBufferUsage`, `GPUMapMode`, …) once, and finds a software Vulkan driver
 * by itself when the machine has no GPU (see `SOFTWARE_VULKAN_ICDS`). The result is cached per flag set.
 *
 * A Node process exits normally after its GPU work (checked with Dawn 0.6.2); still `destroy()` each
 * device when done so its memory is freed at once and pending work fails fast instead of leaking.
 *
 * @throws LatticeMatmulError when `webgpu` is not installed or no adapter can be found (the message
 *   lists what was tried).
 * @example
 * import { nodeGpu } from 'lattice-matmul/node';
 * import { requestGpuDevice } from 'lattice-matmul';
 * const { device } = await requestGpuDevice({ gpu: await nodeGpu() });
 * // … work …
 * device.destroy();
 */
export function nodeGpu(options: NodeGpuOptions = {}): Promise<GPU> {
  let flags: string[];
  try {
    flags = checkedFlags(options, 'nodeGpu options');
  } catch (error) {
    return Promise.reject(error as Error);
  }
  const key = flags.join('\n');
  let gpu = gpuByFlags.get(key);
  if (gpu === undefined) {
    gpu = findGpuWithAdapter(flags);
    gpuByFlags.set(key, gpu);
    // A failure is not cached: the user may install a driver or set VK_ICD_FILENAMES and retry.
    gpu.catch(() => gpuByFlags.delete(key));
  }
  return gpu;
}

/**
 * `requestGpuDevice` on `nodeGpu()`: a Dawn device with the adapter's real limits. Its options are
 * `requestGpuDevice`'s (but `gpu`, which is `nodeGpu({ flags })`) and `flags`.
 *
 * @example
 * const { device, limits } = await requestNodeGpuDevice({ workgroupStorageLimit: 16384 });
 * try { … } finally { device.destroy(); }
 */
export async function requestNodeGpuDevice(
  options: OneAdapterChoice<Omit<DeviceRequestFields, 'gpu'>> & NodeGpuOptions = {},
): Promise<GpuContext & { readonly adapter: GPUAdapter }> {
  // Typed with `gpu` so that the key list may hold it: it passes the unknown-key check to be refused below by name.
  checkOptionsObject(options as RequestGpuDeviceOptions & NodeGpuOptions, REQUEST_NODE_OPTION_KEYS, 'requestNodeGpuDevice options');
  check((options as RequestGpuDeviceOptions).gpu === undefined, 'requestNodeGpuDevice options: gpu is not an option here (the GPU is nodeGpu({ flags })): pass your GPU to requestGpuDevice({ gpu }) instead');
  const { flags, ...deviceOptions } = options;
  return requestGpuDevice({ ...deviceOptions, gpu: await nodeGpu(flags === undefined ? {} : { flags }) });
}

async function findGpuWithAdapter(flags: string[]): Promise<GPU> {
  const dawn = await loadDawn();
  const attempts: string[] = [];
  const tryCreate = async (description: string): Promise<GPU | null> => {
    const gpu = dawn.create([...flags]);
    const adapter = await gpu.requestAdapter();
    attempts.push(`${description}: ${adapter ? 'adapter found' : 'no adapter'}`);
    return adapter ? gpu : null;
  };

  const explicit = explicitIcdSetting();
  const found = await tryCreate(explicit ?? 'Vulkan loader default search');
  if (found) return found;

  if (explicit === undefined) {
    for (const icd of SOFTWARE_VULKAN_ICDS) {
      if (!existsSync(icd)) continue;
      process.env.VK_ICD_FILENAMES = icd;
      const gpu = await tryCreate(`VK_ICD_FILENAMES=${icd}`);
      if (gpu) return gpu;
    }
    delete process.env.VK_ICD_FILENAMES;
  }

  throw new LatticeMatmulError(
    `Dawn (npm webgpu) found no WebGPU adapter. Tried: ${attempts.join('; ')}. ` +
      (explicit === undefined
        ? `None of the software drivers ${SOFTWARE_VULKAN_ICDS.join(', ')} worked or exists. `
        : 'Unset VK_ICD_FILENAMES / VK_DRIVER_FILES to let it search, or point them at a working ICD. ') +
      'Install a Vulkan driver: a GPU vendor driver, or the software driver Mesa lavapipe (Debian/Ubuntu: ' +
      'apt-get install mesa-vulkan-drivers libvulkan1; Dawn needs Mesa ≥ 24, on Debian 12 from bookworm-backports).',
  );
}

/** `VAR=value` for the first Vulkan driver-selection variable the user set, if any. */
function explicitIcdSetting(): string | undefined {
  for (const name of ['VK_ICD_FILENAMES', 'VK_DRIVER_FILES']) {
    const value = process.env[name];
    if (value) return `${name}=${value}`;
  }
  return undefined;
}

async function loadDawn(): Promise<DawnModule> {
  dawnModule ??= import('webgpu').then(
    (module: DawnModule) => module,
    (error: unknown) => {
      dawnModule = undefined;
      throw new LatticeMatmulError(
        `WebGPU in Node needs the npm package "webgpu" (Dawn): npm install webgpu (${
          error instanceof Error ? error.message : String(error)
        })`,
      );
    },
  );
  const dawn = await dawnModule;
  if (!globalsInstalled) {
    // GPUBufferUsage, GPUMapMode, GPUShaderStage, … : keep anything the environment already defines.
    for (const [name, value] of Object.entries(dawn.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
    }
    globalsInstalled = true;
  }
  return dawn;
}
