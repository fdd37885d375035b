/**
 * Files ('lattice-matmul/format'): the safetensors reader and writer, browser-safe, and (once built)
 * the quantized container. Node file access is in 'lattice-matmul/node'.
 *
 * @example
 * import { readSafetensors } from 'lattice-matmul/format';
 * const archive = readSafetensors(bytes);
 * const w = archive.tensorAsFloat32('model.layers.0.mlp.down_proj.weight');
 */
export {
  readSafetensors,
  writeSafetensors,
  planSafetensors,
  parseSafetensorsHeader,
  parseSafetensorsHeaderJson,
  safetensorsHeaderLength,
  safetensorsDtypeBits,
  safetensorsArrayType,
  isSafetensorsDtype,
  SafetensorsArchive,
  SAFETENSORS_DTYPES,
  SAFETENSORS_MAX_HEADER_BYTES,
  SAFETENSORS_MAX_RANK,
  type SafetensorsDtype,
  type SafetensorsTensorInfo,
  type SafetensorsHeader,
  type SafetensorsReadOptions,
  type ParseSafetensorsHeaderOptions,
  type SafetensorsTensorInput,
  type SafetensorsTensors,
  type SafetensorsMetadata,
  type SafetensorsPlan,
  type SafetensorsTypedArray,
  type TensorDataOptions,
} from './io/safetensors.js';
