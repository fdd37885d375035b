/**
 * The WebGPU part of lattice-matmul ('lattice-matmul/gpu'): the engine, the quantized linear layer of
 * the decode path, device helpers, uploads and the kernels' `dispatch…` functions for apps that record
 * into their own command encoders. Every function takes the device (or a buffer of it) explicitly;
 * objects that own GPU memory have `destroy()`.
 *
 * @example
 * import { GpuEngine, QuantizedLinear } from 'lattice-matmul/gpu';
 * const engine = GpuEngine.create(device);                       // your own GPUDevice
 * const w = await engine.quantize({ buffer: wBuffer, rows: 4096, cols: 4096 }, { scheme: 'e8-q16' });
 * const layer = QuantizedLinear.create(device, w, { activations: 'f16' });
 * layer.record(encoder, xBuffer, yBuffer);                       // y = W·x, nothing allocated per call
 *
 * @module lattice-matmul/gpu
 */
export { requestGpuDevice, deviceRequirements, gpuContextOf, type DeviceRequirements, type GpuContext, type GpuFeatures, type GpuLimits, type RequestGpuDeviceOptions } from './gpu/device.js';
export { GpuDeviceLostError, isDeviceLost } from './gpu/errorScopes.js';
export { GpuEngine, gemvInputNormLimit, type GpuEngineOptions, type ProductKernel, type UniversalProductPath, type DeterministicProductPath } from './gpu/engine.js';
export {
  GpuLatticeQuantizedMatrix,
  gpuQuantizeLattice,
  uploadLatticeMatrix,
  type GpuLatticeQuantized,
  type GpuQuantizedFor,
  type GpuQuantizeOptions,
} from './gpu/gpuQuantize.js';
export type { GpuMatrixInput } from './gpu/matrixInput.js';
export type { GpuLatticeMatrix, GpuDeterministicMatrix } from './gpu/latticeOperand.js';
export { MatrixColumnSide, type NamedBuffer } from './gpu/latticeOperand.js';
export { GpuUniversalQuantizedMatrix, uploadUniversalMatrix, type GpuUniversalMatrix } from './gpu/universalOperand.js';
export { QuantizedLinear, type QuantizedLinearOptions, type LinearRecordOptions, type LinearGroupOptions, type QuantizedLinearGroup, type LinearWeight, type LinearOptionsFor, type BufferSlice } from './gpu/quantizedLinear.js';
export type { BiasFormat } from './gpu/kernels/gemvCall.js';
export { prepareCommands, PreparedCommands, type CommandTarget } from './gpu/prepared.js';
export { GpuScratch } from './gpu/scratch.js';
export { UniformPacker } from './gpu/uniforms.js';
export { readBufferExclusive } from './gpu/buffers.js';
export type { TableLayoutKind } from './gpu/tableLayout.js';
export { dotPathFor, type DotPath } from './gpu/kernels/e8Matmul.js';
export {
  universalGemv,
  dispatchUniversalGemv,
  dispatchUniversalCallSums,
  universalCallSumsKey,
  type RecordedCallSums,
  type UniversalCallSumsArgs,
  type UniversalGemvArgs,
  type UniversalGemvOptions,
} from './gpu/kernels/universalGemv.js';
export {
  universalGemvI8,
  dispatchUniversalGemvI8,
  UniversalGemvI8Weights,
  int8InputsUnsupported,
  type UniversalGemvI8Args,
  type UniversalGemvI8Options,
} from './gpu/kernels/universalGemvI8.js';
export { dispatchHadamard, rotationRoundsInPass, type HadamardArgs, type HadamardInt8Output, type HadamardOptions, type HadamardPlanOptions } from './gpu/kernels/hadamard.js';
export { latticeGemv, dispatchLatticeGemv, type LatticeGemvArgs } from './gpu/kernels/latticeGemv.js';
export { latticeGemvI8, dispatchLatticeGemvI8, latticeInt8InputsUnsupported, type LatticeGemvI8Args, type LatticeGemvI8Options, type ScaleMultipleSource } from './gpu/kernels/latticeGemvI8.js';
export type { LeaderCopies } from './gpu/kernels/gemvI8Common.js';
export {
  e8ResidueGemvI8,
  dispatchE8ResidueGemvI8,
  dispatchE8InputsI8,
  dispatchRotatedE8InputsI8,
  e8InputsKey,
  e8ResidueBytes,
  GpuE8ResidueMatrix,
  type E8ResidueGemvI8Args,
  type E8ResidueGemvI8Options,
  type E8InputsI8Args,
  type E8InputsOperand,
  type RotatedE8InputsI8Args,
  type RecordedE8InputsI8,
} from './gpu/kernels/e8ResidueGemvI8.js';
export { e8PointGemvI8, dispatchE8PointGemvI8, e8PointBytes, GpuE8PointMatrix, type E8PointGemvI8Args, type E8PointGemvI8Options } from './gpu/kernels/e8PointGemvI8.js';
export {
  d3QuadGemvI8,
  dispatchD3QuadGemvI8,
  dispatchD3QuadInputsI8,
  d3QuadForm,
  d3QuadUnsupported,
  GpuD3QuadMatrix,
  type D3QuadMatrix,
  type D3QuadGemvI8Args,
  type D3QuadGemvI8Options,
  type D3QuadInputsI8Args,
} from './gpu/kernels/d3QuadGemvI8.js';
export {
  dispatchInputsI8,
  dispatchRotatedInputsI8,
  type InputsI8Args,
  type InputsI8Operand,
  type RecordedInputsI8,
  type RotatedInputsI8Args,
  type SharedInputsI8Arg,
} from './gpu/kernels/inputsI8.js';
export { universalDequantize, dispatchUniversalDequantize, type UniversalDequantizeOptions, type UniversalDequantizeArgs } from './gpu/kernels/universalDequantize.js';
export { dispatchF16ToF32, dispatchEpilogue, type ActivationFormat, type F16ToF32Args, type EpilogueArgs } from './gpu/kernels/activationIo.js';
export { dispatchWeightOnlyInputsI8, type WeightOnlyInputsI8Args, type RecordedWeightOnlyInputsI8 } from './gpu/kernels/weightOnlyInputsI8.js';
export {
  weightOnlyGemv,
  weightOnlyGemm,
  uploadWeightOnly,
  dispatchWeightOnlyGemv,
  WeightOnlyGpuMatrix,
  type UploadWeightOnlyOptions,
  type WeightOnlyCodeBits,
  type WeightOnlyGemvOptions,
  type WeightOnlyGemvArgs,
  type WeightOnlyLayout,
  type WeightOnlyMatrixGemvArgs,
  type WeightOnlyVectorBlock,
} from './gpu/kernels/weightOnlyGemv.js';
export type { FixedCodeBits } from './weightonly/packedCodes.js';
export { uploadContainerEntry, type GpuContainerMatrix } from './gpu/containerUpload.js';
