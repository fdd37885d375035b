/**
 * Node entry point (`lattice-matmul/node`): WebGPU through Dawn (the npm `webgpu` package), which
 * finds a software Vulkan driver (Mesa lavapipe) when the machine has no GPU.
 *
 * @example
 * import { requestNodeGpuDevice } from 'lattice-matmul/node';
 * import { GpuEngine } from 'lattice-matmul';
 * const context = await requestNodeGpuDevice();
 * const engine = GpuEngine.create(context);
 */
export { nodeGpu, requestNodeGpuDevice, SOFTWARE_VULKAN_ICDS, type NodeGpuOptions } from './gpu/nodeGpu.js';
