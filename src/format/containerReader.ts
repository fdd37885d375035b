import { check, describeValue, quoted } from '../errors.js';
import { checkByteSource, readSafetensorsHeader, type ByteSource } from '../io/byteSource.js';
import { headerTensorInfo, SAFETENSORS_READ_OPTION_KEYS, type SafetensorsReadOptions } from '../io/safetensors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { containerOf, decodeContainerEntry, parseContainerLayout, type ContainerEntry, type ContainerEntryInfo, type ContainerLayout, type EntryPlanHandle, type QuantizedContainer } from './container.js';

/*
 * A quantized container read one matrix at a time (docs/FORMAT.md; the checks are those of
 * src/format/container.ts). Opening reads and validates the safetensors header, the metadata checksum
 * and every description, and no tensor data; `read(name)` then reads that matrix's tensors by their
 * byte ranges, checksums them, checks and decodes them. Browser-safe: the bytes come from a ByteSource
 * (a Blob, an HTTP resource read by ranges, memory); Node's `openQuantizedContainerFile` is this
 * reader on a file.
 */

/**
 * An open quantized container. `entries` describes every matrix (validated, nothing read yet);
 * `read(name)` reads one. Made by {@link openQuantizedContainer}.
 *
 * @hideconstructor
 * @example
 * const container = await openQuantizedContainer(await httpRangeSource('/model.lmq.safetensors'));
 * for (const info of container.entries) {
 *   const layer = QuantizedLinear.create(device, uploadContainerEntry(device, await container.read(info.name)));
 * }
 */
export class QuantizedContainerReader {
  protected constructor(
    private readonly layout: ContainerLayout,
    /** Names the container in messages. */
    protected readonly what: string,
    private readonly tensorBytes: (name: string) => Promise<Uint8Array>,
  ) {}

  /** Reads and validates the header of the container in `source`; see `openQuantizedContainer`. */
  static async fromSource(source: ByteSource, options?: SafetensorsReadOptions): Promise<QuantizedContainerReader> {
    checkByteSource(source, 'openQuantizedContainer');
    // As readQuantizedContainer and openQuantizedContainerFile: a misspelt option ({ maxHeaderByte: 1 })
    // left the limit at its maximum, and null threw a TypeError.
    if (options !== undefined) checkOptionsObject(options, SAFETENSORS_READ_OPTION_KEYS, 'openQuantizedContainer options');
    const what = `quantized container ${source.name}`;
    const header = await readSafetensorsHeader(source, what, options);
    const tensorBytes = (name: string): Promise<Uint8Array> => {
      const info = headerTensorInfo(header, name, what);
      return source.read(header.dataStart + info.dataOffsets[0], info.byteLength);
    };
    return new QuantizedContainerReader(parseContainerLayout(header), what, tensorBytes);
  }

  get formatVersion(): number {
    return this.layout.formatVersion;
  }

  /** The caller's metadata as written. */
  get metadata(): Readonly<Record<string, string>> {
    return this.layout.metadata;
  }

  /** Every matrix, in the order written: name, kind, size and tensors (validated, not read). */
  get entries(): readonly ContainerEntryInfo[] {
    return this.layout.entries;
  }

  /** Whether a matrix named `name` exists. */
  has(name: string): boolean {
    return this.layout.plans.has(name);
  }

  /** The validated description of matrix `name`. */
  info(name: string): ContainerEntryInfo {
    return this.plan(name).info;
  }

  /**
   * Reads matrix `name`: its tensors (each at most the size its description and the header agree on),
   * their checksums, then every check of `readQuantizedContainer`.
   */
  async read(name: string): Promise<ContainerEntry> {
    const plan = this.plan(name);
    const bytes = new Map<string, Uint8Array>();
    for (const tensor of plan.info.tensors) bytes.set(tensor.name, await this.tensorBytes(tensor.name));
    return decodeContainerEntry(plan, (tensor) => bytes.get(tensor.name) as Uint8Array);
  }

  /** Reads every matrix (a whole model in memory; prefer `read` per matrix for large files). */
  async readAll(): Promise<QuantizedContainer> {
    const entries: ContainerEntry[] = [];
    for (const info of this.layout.entries) entries.push(await this.read(info.name));
    return containerOf(this.layout, entries);
  }

  private plan(name: string): EntryPlanHandle {
    const plan = this.layout.plans.get(name);
    // describeValue for a name that is no string: quoted(undefined) threw a TypeError.
    check(plan !== undefined, () => `${this.what} has no matrix named ${typeof name === 'string' ? quoted(name) : describeValue(name)} (it has ${this.layout.entries.map((e) => quoted(e.name)).join(', ')})`);
    return plan;
  }
}

/**
 * Opens the quantized container (docs/FORMAT.md) in `source` and validates its header, metadata
 * checksum and descriptions, reading no tensor data; matrices are then read one at a time with
 * `read(name)`, so a page holds one layer's codes at a time instead of the whole file. Malformed,
 * corrupted or hostile bytes are refused with a `LatticeMatmulError`.
 *
 * @example
 * const container = await openQuantizedContainer(blobSource(fileInput.files[0]));
 * const q = await container.read('layers.0.q');
 */
export function openQuantizedContainer(source: ByteSource, options?: SafetensorsReadOptions): Promise<QuantizedContainerReader> {
  return QuantizedContainerReader.fromSource(source, options);
}
