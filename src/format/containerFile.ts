import { check } from '../errors.js';
import { planSafetensorsLayout, SAFETENSORS_READ_OPTION_KEYS, type SafetensorsReadOptions, type SafetensorsTensorInput } from '../io/safetensors.js';
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
 * `writeSafetensorsFile`. Everything given is read when the call is made (the matrices' arrays that
 * are written as they are, such as norms and scales, copied), so it may be reused at once.
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
  // Planned now, and the tensors that are views of the matrices' own arrays copied now: they are
  // written only after awaits, and an app that refilled a matrix's norms meanwhile got a file whose
  // norms were not the checksummed ones (written without error, refused when read).
  const matrices = entries.map((entry) => (entry as { matrix?: unknown }).matrix);
  // The options too (writeSafetensorsFile reads the signal after an await: one swapped meanwhile was obeyed instead).
  const { signal } = options;
  await writeSafetensorsFile(path, tensorsOwnedHere(plan.tensors, matrices), plan.metadata, signal === undefined ? {} : { signal });
}

/**
 * `tensors` with every one that is a view of the callers' arrays (any typed array held by one of
 * `matrices`, or by an object one of them holds: norms, means, gains, scalar scales, a weight-only
 * matrix's scales and packed codes) replaced by a copy, the others (packed here) as they are: the
 * writers write them only after awaits, and an app may reuse its arrays once the call is made.
 */
function tensorsOwnedHere(tensors: ReadonlyMap<string, SafetensorsTensorInput>, matrices: readonly unknown[]): Map<string, SafetensorsTensorInput> {
  const callers = new Set<ArrayBufferLike>();
  const collect = (value: unknown, depth: number): void => {
    if (ArrayBuffer.isView(value)) callers.add(value.buffer);
    else if (depth > 0 && typeof value === 'object' && value !== null) for (const inner of Object.values(value)) collect(inner, depth - 1);
  };
  for (const matrix of matrices) collect(matrix, 2);
  const owned = new Map<string, SafetensorsTensorInput>();
  for (const [name, tensor] of tensors) owned.set(name, callers.has(tensor.data.buffer) ? { ...tensor, data: tensor.data.slice() } : tensor);
  return owned;
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
 * `add` and `create` read their arguments when called, as `writeQuantizedContainerFile` does.
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
    private readonly signal: AbortSignal | undefined,
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
    // Copied before the await (the record is the caller's: one changed meanwhile was written, unchecked).
    const copied = { ...metadata };
    const { signal } = options;
    return new QuantizedContainerFileWriter(await SafetensorsFileWriter.create(path, signal === undefined ? {} : { signal }), copied, signal);
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
      // An aborted signal stops the writer before the packing (checkSignal ends it and throws).
      if (this.signal?.aborted === true) await this.file.checkSignal();
      // Packed now, before any await, and the tensors that are the matrix's own arrays copied: the entry
      // is the caller's, who may reuse the object or its arrays once the call is made (read after an
      // await, the next matrix was written under this one's name; norms refilled meanwhile were written
      // with the checksum of the old ones). The tensors are spilled after awaits.
      const version = combinedContainerVersion(this.version, containerVersionOf(entry));
      // An entry that reads the same in either version is checked under the one the container has so far.
      const plan = planContainerEntry(entry, this.entries.length, version ?? 1, this.used); // a refusal changes nothing
      const tensors = tensorsOwnedHere(plan.tensors, [entry.matrix]);
      try {
        for (const [name, tensor] of tensors) await this.file.add(name, tensor);
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
