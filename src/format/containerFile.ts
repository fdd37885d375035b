import { check } from '../errors.js';
import { planSafetensorsLayout, SAFETENSORS_READ_OPTION_KEYS, type SafetensorsReadOptions } from '../io/safetensors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { openSafetensorsFile, SafetensorsFileWriter, writeSafetensorsFile, type SafetensorsFile } from '../io/safetensorsFile.js';
import { QuantizedContainerReader } from './containerReader.js';
import {
  combinedContainerVersion,
  containerMetadata,
  containerVersionOf,
  parseContainerLayout,
  planContainerEntry,
  planQuantizedContainer,
  type ContainerEntryInput,
  type ContainerLayout,
  type ContainerVersion,
} from './container.js';

/*
 * Quantized containers on disk (Node only; the format is docs/FORMAT.md, the checks those of
 * src/format/container.ts). Opening reads and validates the safetensors header, the metadata
 * checksum and every description, and no tensor data: a model's matrices are then read one at a time
 * (`read(name)`), each tensor by its byte range, checksummed, then checked and decoded. Writing goes
 * through `writeSafetensorsFile` (a temporary file, fsynced, renamed over the target).
 */

/**
 * An open quantized container file. `entries` describes every matrix (validated, nothing read yet);
 * `read(name)` reads one. Call `close()` when done.
 *
 * @example
 * const file = await openQuantizedContainerFile('model.lmq.safetensors');
 * try {
 *   for (const info of file.entries) console.log(info.name, info.kind, info.rows, info.cols);
 *   const q = await file.read('layers.0.q');
 * } finally {
 *   await file.close();
 * }
 */
export class QuantizedContainerFile extends QuantizedContainerReader {
  private constructor(
    private readonly file: SafetensorsFile,
    layout: ContainerLayout,
  ) {
    super(layout, `quantized container file ${JSON.stringify(file.path)}`, (name) => file.readTensorBytes(name));
  }

  /** Opens `path` and validates everything but the tensor data; see `openQuantizedContainerFile`. */
  static async open(path: string, options?: SafetensorsReadOptions): Promise<QuantizedContainerFile> {
    if (options !== undefined) checkOptionsObject(options, SAFETENSORS_READ_OPTION_KEYS, 'openQuantizedContainerFile options');
    const file = await openSafetensorsFile(path, options);
    try {
      return new QuantizedContainerFile(file, parseContainerLayout(file.header));
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** The path the file was opened from. */
  get path(): string {
    return this.file.path;
  }

  /** Closes the file; later reads are refused. Closing twice is harmless. */
  close(): Promise<void> {
    return this.file.close();
  }
}

/**
 * Opens a quantized container file (docs/FORMAT.md) and validates its header, metadata checksum and
 * descriptions, reading no tensor data; matrices are then read one at a time with `read(name)`.
 * Malformed, corrupted or hostile files are refused with a `LatticeMatmulError`.
 *
 * @example
 * const file = await openQuantizedContainerFile('model.lmq.safetensors');
 * const w = await file.read('layers.0.q');
 * await file.close();
 */
export function openQuantizedContainerFile(path: string, options?: SafetensorsReadOptions): Promise<QuantizedContainerFile> {
  return QuantizedContainerFile.open(path, options);
}

/**
 * Writes quantized matrices and optional string metadata to `path` as a quantized container,
 * atomically (same checks and bytes as `writeQuantizedContainer`, streamed to disk); `signal` as in
 * `writeSafetensorsFile`.
 *
 * @example
 * await writeQuantizedContainerFile('model.lmq.safetensors', [{ name: 'layers.0.q', matrix: q }], { model: 'demo' });
 */
export async function writeQuantizedContainerFile(
  path: string,
  entries: readonly ContainerEntryInput[],
  metadata?: Readonly<Record<string, string>>,
  options: { readonly signal?: AbortSignal } = {},
): Promise<void> {
  checkOptionsObject(options, ['signal'], 'writeQuantizedContainerFile options');
  const plan = planQuantizedContainer(entries, metadata);
  await writeSafetensorsFile(path, plan.tensors, plan.metadata, options);
}

/**
 * Writes a quantized container matrix by matrix, for models whose quantized matrices do not all fit in
 * memory: `add` packs and checks one entry (as `writeQuantizedContainer` does every one) and spills its
 * tensors to disk; `finish` writes the container atomically, the same bytes `writeQuantizedContainerFile`
 * writes for the same entries in the order they were added and the `metadata` given to `create`
 * (checked there, before any work). The folder needs room for about one container: each tensor's spill
 * is removed once `finish` has copied it (src/io/safetensorsFile.ts, `SafetensorsFileWriter`). A refused entry changes nothing; a failed
 * write, an aborted signal or `abort()` leaves no file; a process killed outright leaves its hidden spill
 * folder, which `leftoverTemporaries(path)` lists. Calls must not overlap (an overlapping one is refused).
 *
 * @example
 * const writer = await QuantizedContainerFileWriter.create('model.lmq.safetensors', { metadata: { model: 'demo' } });
 * try {
 *   for (const name of names) await writer.add({ name, matrix: quantize(await weight(name), { scheme: 'e8-4bit' }) });
 *   await writer.finish();
 * } catch (error) {
 *   await writer.abort();
 *   throw error;
 * }
 */
export class QuantizedContainerFileWriter {
  private readonly entries: { readonly name: string; readonly description: string }[] = [];
  private readonly used = new Set<string>();
  private version: ContainerVersion | null = null;
  private busy = false;

  private constructor(
    private readonly file: SafetensorsFileWriter,
    private readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /**
   * Starts writing `path` (checked as `writeQuantizedContainerFile` checks it); `metadata`: the user's
   * string metadata, checked now; `signal` stops a later `add` or `finish`.
   */
  static async create(
    path: string,
    options: { readonly metadata?: Readonly<Record<string, string>>; readonly signal?: AbortSignal } = {},
  ): Promise<QuantizedContainerFileWriter> {
    // `{ metdata: … }` must not write a container without the user's metadata.
    checkOptionsObject(options, ['metadata', 'signal'], 'QuantizedContainerFileWriter.create options');
    const metadata = options.metadata === undefined ? {} : options.metadata;
    // The metadata of a container of no entries goes through every check the file's will (strings,
    // well-formed Unicode), so that nothing is refused after the work.
    planSafetensorsLayout([], containerMetadata([], 1, metadata));
    return new QuantizedContainerFileWriter(await SafetensorsFileWriter.create(path, options.signal === undefined ? {} : { signal: options.signal }), { ...metadata });
  }

  /**
   * Packs and checks `entry`, then spills its tensors. A refused entry leaves the writer as it was (the
   * next `add` may follow); a failed write aborts it.
   */
  async add(entry: ContainerEntryInput): Promise<void> {
    check(!this.busy, 'QuantizedContainerFileWriter: an add or finish is running; await each call before the next');
    // Refused before packing, which may take long for a large matrix.
    const ended = this.file.endReason;
    check(ended === null, () => `QuantizedContainerFileWriter: the writer ${ended}`);
    this.busy = true;
    try {
      await this.file.checkSignal(); // an aborted signal stops the writer before the packing
      const version = combinedContainerVersion(this.version, containerVersionOf(entry));
      // An entry that reads the same in either version is checked under the one the container has so far.
      const plan = planContainerEntry(entry, this.entries.length, version ?? 1, this.used); // a refusal changes nothing
      try {
        for (const [name, tensor] of plan.tensors) await this.file.add(name, tensor);
      } catch (error) {
        await this.file.abort();
        throw error;
      }
      this.version = version;
      this.entries.push({ name: plan.name, description: plan.description });
    } finally {
      this.busy = false;
    }
  }

  /** Writes the container. */
  async finish(): Promise<void> {
    check(!this.busy, 'QuantizedContainerFileWriter: an add or finish is running; await each call before the next');
    this.busy = true;
    try {
      await this.file.finish(containerMetadata(this.entries, this.version ?? 1, this.metadata));
    } finally {
      this.busy = false;
    }
  }

  /** Stops writing, leaving no file. Harmless once finished. */
  async abort(): Promise<void> {
    await this.file.abort();
  }

  /** Matrices added so far, their tensors, and those tensors' bytes (the container's data, without its header). */
  get added(): { readonly matrices: number; readonly tensors: number; readonly bytes: number } {
    return { matrices: this.entries.length, tensors: this.file.tensorCount, bytes: this.file.dataBytes };
  }

  /** The bytes before the data (length field and header) of the container as `finish` would write it now. */
  headerBytes(): number {
    return this.file.headerBytes(containerMetadata(this.entries, this.version ?? 1, this.metadata));
  }
}
