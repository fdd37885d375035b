/**
 * Node entry point (`lattice-matmul/node`): WebGPU through Dawn (the npm `webgpu` package), which
 * finds a software Vulkan driver (Mesa lavapipe) when the machine has no GPU.
 *
 * @example
 * import { requestNodeGpuDevice, openSafetensorsFile } from 'lattice-matmul/node';
 * import { GpuEngine } from 'lattice-matmul';
 * const context = await requestNodeGpuDevice();
 * const engine = GpuEngine.create(context);
 * const model = await openSafetensorsFile('model.safetensors'); // header only; tensors on demand
 *
 * @module lattice-matmul/node
 */
export { nodeGpu, requestNodeGpuDevice, SOFTWARE_VULKAN_ICDS, type NodeGpuOptions } from './gpu/nodeGpu.js';
export { openSafetensorsFile, writeSafetensorsFile, leftoverTemporaries, SafetensorsFile } from './io/safetensorsFile.js';
export { openSafetensorsModel, type SafetensorsModel, type SafetensorsTensorSource } from './io/safetensorsModel.js';
export { openQuantizedContainerFile, writeQuantizedContainerFile, QuantizedContainerFile, QuantizedContainerFileWriter } from './format/containerFile.js';
