/**
 * lattice-matmul: estimate AᵀB from A and B compressed independently to 2–5 bits per entry with
 * nested-lattice (Voronoi) codes, on the CPU (the reference) or on WebGPU.
 *
 * @example
 * import { gaussianMatrix, quantize, matmulAT, productNmse } from 'lattice-matmul';
 * const a = gaussianMatrix(1536, 64, 1), b = gaussianMatrix(1536, 64, 2);
 * const qa = quantize(a, { scheme: 'd3-q6', seed: 7 }), qb = quantize(b, { scheme: 'd3-q6', seed: 7 });
 * console.log(qa.bitsEntropy, productNmse(matmulAT(qa, qb), a, b)); // ≈ 3.0 bits, ≈ 0.06
 */
export { LatticeMatmulError } from './errors.js';
export { type Matrix, matrix, checkMatrix, column, matmulATExact, productNmse } from './matrix.js';

export { quantize, type QuantizeOptions, type GainMode } from './quantize/quantize.js';
export { SCHEMES, resolveScheme, type SchemeName, type Scheme, type LatticeScheme, type IntScheme, type Nvfp4Scheme, type OverloadRule } from './quantize/schemes.js';
export type { QuantizedMatrix, LatticeQuantizedMatrix, ScalarQuantizedMatrix } from './quantize/quantizedMatrix.js';
export { matmulAT } from './product/matmulAT.js';
export { dequantize } from './product/dequantize.js';
export { packField, unpackField, packedLayout, type PackedField } from './format/packing.js';

export { type Lattice, D3, E8, zLattice, VoronoiCode, innerProductTable, leaderTable } from './lattices/index.js';

export { RandomizedHadamard } from './rotation/randomizedHadamard.js';
export { rotationLength } from './rotation/hadamard.js';
export { Rng, gaussianMatrix, counterHash, RandomStream } from './rotation/random.js';
export { testMatrixPair, DATA_KINDS, type DataKind } from './data/testMatrices.js';

export { gamma, gammaInverse, rateLoss, R_STAR, GAMMA_AT_R_STAR } from './theory/gamma.js';
export { empiricalEntropy } from './theory/entropy.js';
export { effectiveRate, scalarRateLoss } from './theory/highRate.js';
export { timeSharingFraction } from './theory/timeSharing.js';

export { absmaxQuantize, absmaxDequantize, type AbsmaxOptions, type AbsmaxCodes, type IntGrid } from './scalar/absmax.js';
export { nvfp4Quantize, nvfp4Dequantize, nvfp4TensorScale, type Nvfp4Codes } from './scalar/nvfp4.js';

export { requestGpuDevice, type GpuContext, type GpuFeatures, type GpuLimits, type RequestGpuDeviceOptions } from './gpu/device.js';
export { GpuEngine, type GpuEngineOptions, type ProductKernel } from './gpu/engine.js';
export { GpuLatticeQuantizedMatrix, gpuQuantizeLattice, uploadLatticeMatrix, type GpuMatrixInput, type GpuQuantizeOptions } from './gpu/gpuQuantize.js';
export type { GpuLatticeMatrix } from './gpu/latticeOperand.js';
export type { TableLayoutKind } from './gpu/tableLayout.js';
export type { DotPath } from './gpu/kernels/e8Matmul.js';

export * from './weightonly/index.js';
export {
  weightOnlyGemv,
  weightOnlyGemm,
  uploadWeightOnly,
  dispatchWeightOnlyGemv,
  WeightOnlyGpuMatrix,
} from './gpu/kernels/weightOnlyGemv.js';
