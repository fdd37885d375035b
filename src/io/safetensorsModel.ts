import { dirname, join } from 'node:path';
import { check, LatticeMatmulError, quoted } from '../errors.js';
import { parseShardIndexJson, SAFETENSORS_MAX_HEADER_BYTES, type SafetensorsTensorInfo, type TensorByteRange } from './safetensors.js';
import { openRegularFile } from './regularFile.js';
import { checkPath, openSafetensorsFile, type SafetensorsFile } from './safetensorsFile.js';

/*
 * A model's tensors in safetensors files (Node only): one file, or the shards that a Hugging Face index
 * (`model.safetensors.index.json`: { "metadata": {…}, "weight_map": { tensor name: shard file name } })
 * maps them to, as models above a few GB are published. Every shard is opened as a SafetensorsFile (its
 * header validated, its tensors read on demand) and the index is checked against the shards' headers
 * before any tensor is read: a tensor the index names but its shard lacks, a tensor in a shard the index
 * does not map there, or a shard name that is a path are refused, naming the tensor and the file, so a
 * partial or mixed download is never quantized as if it were the model.
 */

/** The reading side of a model that `quantize` and `inspect` use; a `SafetensorsFile` is one. */
export interface SafetensorsTensorSource {
  /** Every tensor: a file's in data-offset order; a sharded model's shard by shard, in the index's order of shards. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** The model's string metadata, or null. */
  readonly metadata: Readonly<Record<string, string>> | null;
  /** The validated description of tensor `name`. */
  info(name: string): SafetensorsTensorInfo;
  /** Reads the raw little-endian bytes of tensor `name` (or its bytes [begin, end) with `range`) into a new Uint8Array of exactly that size. */
  readTensorBytes(name: string, range?: TensorByteRange): Promise<Uint8Array>;
  /** Reads tensor `name` (F32, F16, BF16 or F64) as a new Float32Array; NaN and ±Inf kept. */
  readTensorAsFloat32(name: string): Promise<Float32Array>;
  /** Closes the file, or every shard; closing twice is harmless. */
  close(): Promise<void>;
}

/** A model in one file or in shards, with the files it was read from. */
export interface SafetensorsModel extends SafetensorsTensorSource {
  /** The file, or the index and then every shard, each with its own metadata (a shard's `__metadata__`, the index's "metadata"). */
  readonly files: readonly { readonly path: string; readonly metadata: Readonly<Record<string, string>> | null }[];
}

/** Whether `path` names a shard index (`….json`) rather than a safetensors file. */
export function isShardIndexPath(path: string): boolean {
  return path.toLowerCase().endsWith('.json');
}

/**
 * Opens a model: a safetensors file, or a shard index (a path ending in `.json`) with the shards it
 * names, which must lie in the index's folder.
 *
 * @example
 * const model = await openSafetensorsModel('Llama-3-8B/model.safetensors.index.json');
 * try {
 *   const w = await model.readTensorAsFloat32('model.layers.0.mlp.down_proj.weight'); // from its shard
 * } finally {
 *   await model.close();
 * }
 */
export async function openSafetensorsModel(path: string): Promise<SafetensorsModel> {
  // Before isShardIndexPath, which would throw a TypeError for a path that is no string.
  checkPath(path);
  if (!isShardIndexPath(path)) {
    const file = await openSafetensorsFile(path);
    return {
      files: [{ path, metadata: file.metadata }],
      tensors: file.tensors,
      metadata: file.metadata,
      info: (name) => file.info(name),
      readTensorBytes: (name, range) => file.readTensorBytes(name, range),
      readTensorAsFloat32: (name) => file.readTensorAsFloat32(name),
      close: () => file.close(),
    };
  }
  const index = parseShardIndex(await readIndexBytes(path), path);
  const shards = new Map<string, SafetensorsFile>();
  try {
    for (const shard of index.shards) shards.set(shard, await openSafetensorsFile(join(dirname(path), shard)));
    return new ShardedSafetensors(path, index, shards);
  } catch (error) {
    await Promise.all([...shards.values()].map((file) => file.close().catch(() => undefined)));
    throw error;
  }
}

/** A parsed shard index: each tensor's shard, the shards in order of first mention, and the index's metadata as strings. */
interface ShardIndex {
  readonly shardOf: ReadonlyMap<string, string>;
  readonly shards: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Reads an index file: a regular file (a FIFO is refused at once, not waited on) of at most SAFETENSORS_MAX_HEADER_BYTES. */
async function readIndexBytes(path: string): Promise<Uint8Array> {
  const { handle, size } = await openRegularFile(path, `cannot open shard index ${quoted(path)}`, `shard index ${quoted(path)}`);
  try {
    // An index lists one short line per tensor (≈ 100 KB for a 400B model); the bound is the one a
    // safetensors header has.
    check(size <= SAFETENSORS_MAX_HEADER_BYTES, () => `shard index ${quoted(path)} has ${size} bytes, more than the ${SAFETENSORS_MAX_HEADER_BYTES} an index may have`);
    return new Uint8Array(await handle.readFile());
  } finally {
    await handle.close();
  }
}

/** A shard's file name as an index gives it: a plain name in the index's folder (a symbolic link there is followed, as in the Hugging Face cache), never a path. */
function checkShardName(shard: string, tensor: string, where: string): void {
  check(
    shard.length > 0 && shard !== '.' && shard !== '..' && !/[/\\\0]/.test(shard),
    () => `${where}: weight_map[${quoted(tensor)}] is ${quoted(shard)}; a shard must be a file name in the index's folder, not a path`,
  );
}

/** Parses and checks an index (`path` names it in messages). */
function parseShardIndex(bytes: Uint8Array, path: string): ShardIndex {
  const where = `shard index ${quoted(path)}`;
  const { weightMap, metadata } = parseShardIndexJson(bytes, where);
  const shards = new Set<string>();
  for (const [tensor, shard] of weightMap) {
    checkShardName(shard, tensor, where);
    shards.add(shard);
  }
  check(weightMap.size > 0, () => `${where}: "weight_map" lists no tensor`);
  // Hugging Face writes { "total_size": <bytes> }: kept, as text, with any other entry.
  return { shardOf: weightMap, shards: [...shards], metadata: { ...metadata } };
}

/** The tensors of a shard index's files, checked against it. */
class ShardedSafetensors implements SafetensorsModel {
  readonly files: SafetensorsModel['files'];
  readonly tensors: readonly SafetensorsTensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly fileOf: ReadonlyMap<string, SafetensorsFile>;

  constructor(
    private readonly indexPath: string,
    index: ShardIndex,
    private readonly shards: ReadonlyMap<string, SafetensorsFile>,
  ) {
    const where = `shard index ${quoted(indexPath)}`;
    const fileOf = new Map<string, SafetensorsFile>();
    const tensors: SafetensorsTensorInfo[] = [];
    for (const [shard, file] of shards) {
      for (const info of file.tensors) {
        const mapped = index.shardOf.get(info.name);
        check(
          mapped === shard,
          () =>
            `${where}: shard ${quoted(shard)} holds tensor ${quoted(info.name)}, which the index ${mapped === undefined ? 'does not list' : `maps to ${quoted(mapped)}`}; are the index and its shards from one download?`,
        );
        fileOf.set(info.name, file);
        tensors.push(info);
      }
    }
    for (const [tensor, shard] of index.shardOf) {
      check(fileOf.has(tensor), () => `${where} maps tensor ${quoted(tensor)} to shard ${quoted(shard)}, which does not hold it; are the index and its shards from one download?`);
    }
    this.files = [{ path: indexPath, metadata: index.metadata }, ...[...shards.values()].map((file) => ({ path: file.path, metadata: file.metadata }))];
    this.tensors = tensors;
    this.fileOf = fileOf;
    this.metadata = { ...commonMetadata([...shards.values()]), ...index.metadata };
  }

  info(name: string): SafetensorsTensorInfo {
    return this.file(name).info(name);
  }

  async readTensorBytes(name: string, range?: TensorByteRange): Promise<Uint8Array> {
    return this.file(name).readTensorBytes(name, range);
  }

  async readTensorAsFloat32(name: string): Promise<Float32Array> {
    return this.file(name).readTensorAsFloat32(name);
  }

  /** Closes every shard; closing twice is harmless. */
  async close(): Promise<void> {
    await Promise.all([...this.shards.values()].map((file) => file.close()));
  }

  private file(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (file === undefined) throw new LatticeMatmulError(`the shards of ${quoted(this.indexPath)} hold no tensor named ${quoted(name)}`);
    return file;
  }
}

/** The `__metadata__` entries every shard has with the same value (such as Hugging Face's "format": "pt"). */
function commonMetadata(files: readonly SafetensorsFile[]): Record<string, string> {
  const [first, ...rest] = files;
  return Object.fromEntries(Object.entries(first?.metadata ?? {}).filter(([key, value]) => rest.every((file) => file.metadata !== null && Object.hasOwn(file.metadata, key) && file.metadata[key] === value)));
}
