/**
 * lattice-matmul: estimate AᵀB from A and B compressed independently to 2–5 bits per entry with
 * nested-lattice (Voronoi) codes, on the CPU (the reference) or on WebGPU.
 *
 * The universal lattice schemes (the default: 'e8-q16', 'd3-q6', 'e8-2bit' … 'e8-5bit') have a
 * product error that depends only on the norms, for any A and B: `expectedProductError(qa, qb)`.
 *
 * Entry points: 'lattice-matmul' (everything browser-safe), 'lattice-matmul/gpu' (the WebGPU part
 * alone), 'lattice-matmul/format' (safetensors and the quantized container), 'lattice-matmul/node'
 * (Dawn for Node and file access).
 *
 * @example
 * import { gaussianMatrix, quantize, matmulAT, expectedNmse, productNmse } from 'lattice-matmul';
 * const a = gaussianMatrix(1024, 64, 1), b = gaussianMatrix(1024, 64, 2);
 * const qa = quantize(a, { scheme: 'e8-q16' }), qb = quantize(b, { scheme: 'e8-q16' });
 * console.log(qa.bitsStored, productNmse(matmulAT(qa, qb), a, b), expectedNmse(qa, qb)); // ≈ 4.27 bits (4.270: the 32 bits of each column's norm are 32/n of a bit at n = 1024), ≈ 0.009, 0.009
 *
 * @module lattice-matmul
 */
export { LatticeMatmulError } from './errors.js';
export {
  type Matrix,
  type HalfMatrix,
  type MatrixInput,
  matrix,
  checkMatrix,
  column,
  matmulATExact,
  productNmse,
  toFloat32Matrix,
} from './matrix.js';

export { quantize, type QuantizeOptions, type QuantizeOptionsFor, type GainMode, type QuantizeProgress } from './quantize/quantize.js';
export { resolveQuantizeOptions, randomNonce, QUANTIZE_OPTION_KEYS, type ResolvedQuantizeOptions } from './quantize/options.js';
export {
  SCHEMES,
  SCHEME_NAMES,
  resolveScheme,
  type SchemeName,
  type Scheme,
  type LatticeScheme,
  type UniversalLatticeScheme,
  type DeterministicLatticeScheme,
  type IntScheme,
  type Nvfp4Scheme,
  type OverloadRule,
} from './quantize/schemes.js';
export type {
  QuantizedMatrix,
  LatticeQuantizedMatrix,
  UniversalLatticeMatrix,
  DeterministicLatticeMatrix,
  ScalarQuantizedMatrix,
  QuantizedMatrixFor,
} from './quantize/quantizedMatrix.js';
export { latticeSpec, universalCodec, DITHER_GRID, type LatticeName, type LatticeSpec, type UniversalCodec, type DitherField } from './quantize/latticeSpec.js';
export { MIN_COLUMN_NORM, MAX_COLUMN_NORM, MAX_NORM_PRODUCT } from './quantize/prepareColumn.js';
export { LONG_ESCAPE, type DitherKeyCount } from './quantize/universalCode.js';
export { HUGE_ESCAPE, type EscapeCandidates } from './lattices/escapes.js';
export { checkQuantizedMatrix } from './quantize/checkQuantized.js';
export { e8ResidueForm, e8ResidueUnsupported, type E8ResidueMatrix } from './quantize/e8Residues.js';
export { e8PointForm, e8PointUnsupported, type E8PointMatrix } from './quantize/e8Points.js';
export { matmulAT, type MatmulOptions } from './product/matmulAT.js';
export { universalPairProduct } from './product/universalPairProduct.js';
export { matvecAT } from './product/matvec.js';
export { dequantize } from './product/dequantize.js';
export { expectedProductError, expectedNmse } from './product/expectedError.js';
export { packField, unpackField, packedLayout, type PackedField } from './format/packing.js';

export { type Lattice, D3, E8, zLattice, VoronoiCode, innerProductTable, leaderTable } from './lattices/index.js';
export type { IntegerInverse } from './lattices/integerMatrix.js';

export { RandomizedHadamard } from './rotation/randomizedHadamard.js';
export {
  rotationLength,
  rotationPlan,
  isRotationLength,
  oneStageRotationLength,
  MAX_PADDED_ROTATION_N,
  MAX_DEFAULT_PADDED_ROTATION_N,
  type RotationPlan, type RotationStage, type HadamardBase } from './rotation/hadamard.js';
export { Rng, gaussianMatrix, counterHash, RandomStream } from './rotation/random.js';
export { testMatrixPair, DATA_KINDS, type DataKind } from './data/testMatrices.js';

export { gamma, gammaInverse, rateLoss, R_STAR, GAMMA_AT_R_STAR } from './theory/gamma.js';
export { empiricalEntropy } from './theory/entropy.js';
export { effectiveRate, scalarRateLoss } from './theory/highRate.js';
export { timeSharingFraction } from './theory/timeSharing.js';

export { absmaxQuantize, absmaxDequantize, type AbsmaxOptions, type AbsmaxCodes, type IntGrid, type ScaleFormat } from './scalar/absmax.js';
export { nvfp4Quantize, nvfp4Dequantize, nvfp4TensorScale, type Nvfp4Codes } from './scalar/nvfp4.js';
export { float16Bits, fromFloat16Bits, toFloat16, float16BitsToFloat32Bits, FP16_MAX } from './scalar/floatFormats.js';

export * from './weightonly/index.js';
export * from './gpu.js';
export * from './format.js';
