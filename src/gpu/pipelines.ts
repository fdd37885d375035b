import { check } from '../errors.js';
import { checkIsDevice } from './errorScopes.js';
import type { BindingWindow } from './workSplit.js';

/*
 * What every kernel module needs to run: an explicit bind-group layout of buffer bindings (so bind
 * groups are checked against it, and the same layout serves every compile-time variant), pipelines
 * compiled once per device and variant on first use, and bind groups that follow the layout. The
 * cache lives in a WeakMap keyed by the device, so nothing outlives its device. Bindings are listed
 * by position: entry i of a list is `@binding(i)` of group 0 in the WGSL.
 */

/**
 * `GPUShaderStage.COMPUTE` (spec value). The global exists only where WebGPU installed it (browsers;
 * Dawn in Node only after its `globals` are copied, which an app with its own device need not do), so
 * the value is spelled out, as `BufferUsage` in buffers.ts is.
 */
const SHADER_STAGE_COMPUTE = 0x4;

/** A kernel's bind-group layout and the pipeline layout made of it (group 0). */
export interface KernelLayout {
  readonly bindGroupLayout: GPUBindGroupLayout;
  readonly pipelineLayout: GPUPipelineLayout;
}

/**
 * A bind-group layout whose binding i is a compute-stage buffer of type `bindings[i]`, and the
 * pipeline layout holding it as group 0; both carry `label`.
 *
 * @example
 * const { bindGroupLayout, pipelineLayout } = createKernelLayout(device, 'matmul f32', ['uniform', 'read-only-storage', 'read-only-storage', 'storage']);
 */
export function createKernelLayout(device: GPUDevice, label: string, bindings: readonly GPUBufferBindingType[]): KernelLayout {
  checkIsDevice(device); // a GpuContext here has no limits.maxStorageBuffersPerShaderStage to compare with
  // Checked here because WebGPU would report it only as a validation error that leaves the layout
  // invalid, so every later call of the kernel would fail with a message that no longer says why.
  const storageBuffers = storageBufferCount(bindings);
  const limit = device.limits.maxStorageBuffersPerShaderStage;
  check(
    storageBuffers <= limit,
    () =>
      `${label}: the kernel binds ${storageBuffers} storage buffers, more than this device allows per shader stage ` +
      `(maxStorageBuffersPerShaderStage = ${limit}); request the adapter's limit (requestGpuDevice, or deviceRequirements(adapter) for your own device)`,
  );
  const bindGroupLayout = device.createBindGroupLayout({
    label,
    entries: bindings.map((type, binding) => ({ binding, visibility: SHADER_STAGE_COMPUTE, buffer: { type } })),
  });
  const pipelineLayout = device.createPipelineLayout({ label, bindGroupLayouts: [bindGroupLayout] });
  return { bindGroupLayout, pipelineLayout };
}

/** The storage buffers (read-only or not) among a kernel's `bindings`: what maxStorageBuffersPerShaderStage limits. */
export function storageBufferCount(bindings: readonly GPUBufferBindingType[]): number {
  return bindings.filter((type) => type !== 'uniform').length;
}

/** The WGSL of one compile-time variant, and the label its shader module and pipeline get. */
export interface KernelShader {
  readonly label: string;
  readonly code: string;
  /** Values of the shader's `override` constants, if it has any. */
  readonly constants?: Record<string, number>;
}

/**
 * A compute pipeline running the entry point `main` of `shader`, with `pipelineLayout`; the shader
 * module and the pipeline are both labelled `shader.label`.
 */
export function createKernelPipeline(device: GPUDevice, pipelineLayout: GPUPipelineLayout, shader: KernelShader): GPUComputePipeline {
  const module = device.createShaderModule({ label: shader.label, code: shader.code });
  return device.createComputePipeline({
    label: shader.label,
    layout: pipelineLayout,
    compute: { module, entryPoint: 'main', ...(shader.constants === undefined ? {} : { constants: shader.constants }) },
  });
}

/** How `KernelPipelines` builds a kernel's layout and its variants. */
export interface KernelPipelinesDefinition<Variant, Compiled> {
  /** Label of the bind-group layout and the pipeline layout. */
  readonly label: string;
  /** Binding i of group 0 is a buffer of type `bindings[i]` (see `createKernelLayout`). */
  readonly bindings: readonly GPUBufferBindingType[];
  /**
   * Compiles one variant: usually `createKernelPipeline(device, pipelineLayout, { label, code })`;
   * a kernel with several entry points returns one pipeline per entry point.
   */
  readonly compile: (device: GPUDevice, pipelineLayout: GPUPipelineLayout, variant: Variant) => Compiled;
  /**
   * The cache key of a variant: variants with the same key share a pipeline. Default: the variant
   * itself (right for numbers and strings; give a key for objects).
   */
  readonly key?: (variant: Variant) => string | number;
}

/**
 * The pipelines of one kernel: the layout is created once per device, each compile-time variant
 * compiled once per device on first use. `Variant` is only what WGSL needs as a constant (workgroup
 * size, array lengths, entry-point prefix); `void` for a kernel without variants.
 *
 * @example
 * const pipelines = new KernelPipelines({
 *   label: 'hadamard',
 *   bindings: ['uniform', 'read-only-storage', 'storage'],
 *   compile: (device, pipelineLayout, variant: HadamardVariant) =>
 *     createKernelPipeline(device, pipelineLayout, { label: `hadamard (${variant.workgroupElements})`, code: hadamardShaderSource(variant) }),
 *   // Every field the WGSL depends on: two variants that share a key would share a pipeline.
 *   key: (variant) => `${variant.workgroupElements}/${variant.block}/${variant.threads}/${variant.subgroups}/${variant.batchedLoads === true}`,
 * });
 * const { layout, pipeline } = pipelines.get(device, { workgroupElements: 2048, subgroups: false, block: 1, threads: 512 });
 */
export class KernelPipelines<Variant = void, Compiled = GPUComputePipeline> {
  private readonly byDevice = new WeakMap<GPUDevice, { readonly layout: KernelLayout; readonly byKey: Map<unknown, Compiled> }>();

  constructor(private readonly definition: KernelPipelinesDefinition<Variant, Compiled>) {}

  /** The bind-group layout and the compiled `variant` for `device` (built on first use). */
  get(device: GPUDevice, variant: Variant): { readonly layout: GPUBindGroupLayout; readonly pipeline: Compiled } {
    const { label, bindings, compile, key } = this.definition;
    let cached = this.byDevice.get(device);
    if (cached === undefined) {
      cached = { layout: createKernelLayout(device, label, bindings), byKey: new Map() };
      this.byDevice.set(device, cached);
    }
    const variantKey = key === undefined ? variant : key(variant);
    let pipeline = cached.byKey.get(variantKey);
    if (pipeline === undefined) {
      pipeline = compile(device, cached.layout.pipelineLayout, variant);
      cached.byKey.set(variantKey, pipeline);
    }
    return { layout: cached.layout.bindGroupLayout, pipeline };
  }
}

/** The part of `buffer` that `window` covers, as a binding resource. */
export function windowBinding(buffer: GPUBuffer, window: BindingWindow): GPUBufferBinding {
  return { buffer, offset: window.offset, size: window.size };
}

/**
 * A labelled bind group of `layout` whose binding i is `resources[i]` (the order of the kernel's
 * `bindings`). A binding larger than the device's `maxStorageBufferBindingSize` is refused here, naming
 * the kernel and the buffer: WebGPU would only report it to the device's uncapturederror event, and a
 * kernel recorded into the caller's encoder would then not run, leaving its output as it was. Kernels
 * split their large operands over binding windows; this catches what a kernel binds whole (per-column
 * side buffers, tables) on a matrix with that many columns. Uniform bindings are far below the limit.
 *
 * @example
 * const bindGroup = createKernelBindGroup(device, layout, label, [
 *   { buffer: scratch.uniform(label, params) },
 *   windowBinding(args.input, inputWindow),
 *   windowBinding(args.output, outputWindow),
 * ]);
 */
export function createKernelBindGroup(
  device: GPUDevice,
  layout: GPUBindGroupLayout,
  label: string,
  resources: readonly GPUBufferBinding[],
): GPUBindGroup {
  const limit = device.limits.maxStorageBufferBindingSize;
  resources.forEach((resource, binding) => {
    const size = resource.size ?? resource.buffer.size - (resource.offset ?? 0);
    check(
      size <= limit,
      () =>
        `${label}: binding ${binding} (${resource.buffer.label === '' ? 'an unlabelled buffer' : `"${resource.buffer.label}"`}) is ${size} bytes, ` +
        `more than one storage binding may hold on this device (maxStorageBufferBindingSize = ${limit}); use fewer columns per matrix`,
    );
  });
  return device.createBindGroup({ label, layout, entries: resources.map((resource, binding) => ({ binding, resource })) });
}
