/**
 * Files ('lattice-matmul/format'): the safetensors reader and writer and the quantized container
 * (docs/FORMAT.md), browser-safe. Node file access is in 'lattice-matmul/node'.
 *
 * @example
 * import { readSafetensors } from 'lattice-matmul/format';
 * const archive = readSafetensors(bytes);
 * const w = archive.tensorAsFloat32('model.layers.0.mlp.down_proj.weight');
 *
 * @module lattice-matmul/format
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
  type TensorByteRange,
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
export {
  readQuantizedContainer,
  writeQuantizedContainer,
  CONTAINER_FORMAT,
  CONTAINER_FORMAT_VERSION,
  CONTAINER_MAX_ROWS,
  CONTAINER_MAX_DECODED_NORM,
  type QuantizedContainer,
  type ContainerEntry,
  type ContainerEntryInput,
  type ContainerEntryInfo,
  type ContainerEntryKind,
  type ContainerMatrix,
  type ContainerTensorInfo,
  type UniversalContainerEntry,
  type DeterministicContainerEntry,
  type ScalarContainerEntry,
  type WeightOnlyContainerEntry,
  type DeterministicStoredWords,
  type ScalarStoredWords,
} from './format/container.js';
export { openQuantizedContainer, QuantizedContainerReader } from './format/containerReader.js';
export { bytesSource, blobSource, httpRangeSource, type ByteSource, type HttpRangeSourceOptions } from './io/byteSource.js';
export type { UniversalStoredWords } from './format/universalLayout.js';
export { crc32, crc32Continue } from './format/crc32.js';
