import { randomBytes } from 'node:crypto';
import { type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, realpath, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { openRegularFile } from './regularFile.js';
import { readSafetensorsHeader, type ByteSource } from './byteSource.js';
import { abortedError, check, checkPositiveInteger, counted, describeValue, LatticeMatmulError } from '../errors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import {
  checkedTensorBytes,
  checkTensorName,
  headerTensorInfo,
  planSafetensors,
  planSafetensorsLayout,
  safetensorsBytesToFloat32,
  safetensorsTypedData,
  SAFETENSORS_READ_OPTION_KEYS,
  type SafetensorsHeader,
  type SafetensorsMetadata,
  type SafetensorsReadOptions,
  type SafetensorsTensorInfo,
  type SafetensorsTensorInput,
  type SafetensorsTensorLayout,
  type SafetensorsTensors,
  type SafetensorsTypedArray,
  type TensorByteRange,
} from './safetensors.js';

/*
 * safetensors files on disk (Node only). Opening reads the 8-byte length field and the N-byte header,
 * nothing else, and validates them exactly as `readSafetensors` does (against the file's size from
 * fstat); each tensor is then read on demand by its byte range, so a 15 GB model is never loaded
 * whole. Writing goes to a temporary file in the same directory, which is fsynced and then renamed
 * over the target, so a reader never sees a half-written file.
 */

/** Node refuses single reads and writes above 2 GiB − 1; larger tensors go in pieces of this size. */
const IO_CHUNK_BYTES = 1 << 30;

/** Fills `target` from the file at `position`, or refuses (the file got shorter). */
async function readExactly(handle: FileHandle, target: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, IO_CHUNK_BYTES);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    check(
      bytesRead > 0,
      () => `${what}: the file ended after ${position + done} bytes while reading ${target.byteLength} bytes at ${position}; did it change since it was opened?`,
    );
    done += bytesRead;
  }
}

/** The open file as a ByteSource (reads of exactly the bytes asked for). */
function fileSource(handle: FileHandle, byteLength: number, path: string): ByteSource {
  const name = `safetensors file ${describePath(path)}`;
  return {
    name,
    byteLength,
    read: async (offset, length) => {
      const bytes = new Uint8Array(length);
      await readExactly(handle, bytes, offset, name);
      return bytes;
    },
  };
}

function describePath(path: string): string {
  return JSON.stringify(path);
}

/** Refuses a path that is not a non-empty string with the library's error (node:fs and node:path throw TypeErrors). */
export function checkPath(path: string): void {
  check(typeof path === 'string' && path.length > 0, () => `safetensors path must be a non-empty string, got ${describeValue(path)}`);
}

/**
 * An open safetensors file whose header has been validated; tensors are read on demand. Call
 * `close()` when done.
 *
 * @example
 * const file = await openSafetensorsFile('model.safetensors');
 * try {
 *   for (const t of file.tensors) console.log(t.name, t.dtype, t.shape);
 *   const w = await file.readTensorAsFloat32('lm_head.weight');
 * } finally {
 *   await file.close();
 * }
 */
export class SafetensorsFile {
  private closed = false;

  private constructor(
    /** The path the file was opened from. */
    readonly path: string,
    private readonly handle: FileHandle,
    /** The file's size in bytes when it was opened. */
    readonly fileByteLength: number,
    /** The validated header. */
    readonly header: SafetensorsHeader,
    /** The file's modification time (ns) when it was opened: a read refuses a file written since. */
    private readonly openedMtimeNs: bigint,
  ) {}

  /** Opens `path` and validates its header; see `openSafetensorsFile`. */
  static async open(path: string, options: SafetensorsReadOptions = {}): Promise<SafetensorsFile> {
    checkOptionsObject(options, SAFETENSORS_READ_OPTION_KEYS, 'openSafetensorsFile options');
    checkPath(path);
    const { handle, size: fileByteLength, mtimeNs } = await openRegularFile(path, `cannot open safetensors file ${describePath(path)}`, `safetensors path ${describePath(path)}`);
    try {
      const source = fileSource(handle, fileByteLength, path);
      const header = await readSafetensorsHeader(source, source.name, options);
      return new SafetensorsFile(path, handle, fileByteLength, header, mtimeNs);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** The tensors, ordered by data offset. */
  get tensors(): readonly SafetensorsTensorInfo[] {
    return this.header.tensors;
  }

  /** `__metadata__`, or null. */
  get metadata(): Readonly<Record<string, string>> | null {
    return this.header.metadata;
  }

  /** Whether a tensor named `name` exists. */
  has(name: string): boolean {
    return this.header.tensorsByName.has(name);
  }

  /** The validated description of tensor `name`. */
  info(name: string): SafetensorsTensorInfo {
    return headerTensorInfo(this.header, name, `safetensors file ${describePath(this.path)}`);
  }

  /**
   * Reads the raw little-endian bytes of tensor `name` into a new Uint8Array of exactly its size, or
   * only its bytes [begin, end) with `range` (one expert of a 3-D tensor of stacked experts).
   */
  async readTensorBytes(name: string, range?: TensorByteRange): Promise<Uint8Array> {
    const info = this.info(name);
    check(!this.closed, () => `safetensors file ${describePath(this.path)} is closed`);
    const { begin, end } = range ?? { begin: 0, end: info.byteLength };
    check(
      Number.isSafeInteger(begin) && Number.isSafeInteger(end) && begin >= 0 && begin <= end && end <= info.byteLength,
      () => `readTensorBytes: the range [${describeValue(begin)}, ${describeValue(end)}) is not within tensor ${JSON.stringify(name)}'s ${info.byteLength} bytes`,
    );
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(end - begin);
    } catch (error) {
      throw new LatticeMatmulError(`cannot allocate ${end - begin} bytes for tensor ${JSON.stringify(name)}`, { cause: error });
    }
    let now: { size: bigint; mtimeNs: bigint };
    try {
      await readExactly(this.handle, bytes, this.header.dataStart + info.dataOffsets[0] + begin, `safetensors file ${describePath(this.path)}`);
      // A file written in place since it was opened (a download or a copy over it) may hold another
      // model's bytes at the header's offsets: checked after the read, so a write during it counts too.
      now = await this.handle.stat({ bigint: true });
    } catch (error) {
      // Closed while this read ran (Promise.all of reads, then close without awaiting them): Node's
      // bare "file closed" Error, named here as the closed-file refusal it is.
      if (this.closed && !(error instanceof LatticeMatmulError)) {
        throw new LatticeMatmulError(`safetensors file ${describePath(this.path)} was closed while tensor ${JSON.stringify(name)} was read`, { cause: error });
      }
      throw error;
    }
    check(
      now.size === BigInt(this.fileByteLength) && now.mtimeNs === this.openedMtimeNs,
      () =>
        `safetensors file ${describePath(this.path)} was written since it was opened (` +
        (now.size === BigInt(this.fileByteLength) ? 'its modification time changed' : `${this.fileByteLength} bytes then, ${now.size} now`) +
        `): tensor ${JSON.stringify(name)} may not be what its header describes; open it again`,
    );
    return bytes;
  }

  /** Reads tensor `name` as its typed array (see `safetensorsArrayType`), freshly allocated. */
  async readTensor(name: string): Promise<SafetensorsTypedArray> {
    const info = this.info(name);
    return safetensorsTypedData(info, await this.readTensorBytes(name), false);
  }

  /** Reads tensor `name` (F32, F16, BF16 or F64) as a new Float32Array; NaN and ±Inf kept. */
  async readTensorAsFloat32(name: string): Promise<Float32Array> {
    const info = this.info(name);
    // Refuse other dtypes before reading anything.
    check(
      info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16' || info.dtype === 'F64',
      () => `tensor ${JSON.stringify(name)} has dtype ${info.dtype}; readTensorAsFloat32 converts F32, F16, BF16 and F64`,
    );
    return safetensorsBytesToFloat32(info, await this.readTensorBytes(name));
  }

  /** Closes the file; later reads are refused. Closing twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * Opens a safetensors file and validates its header (reading only the first 8 + N bytes); tensors are
 * then read one at a time by byte range (`options.maxHeaderBytes` lowers the header limit). Malformed or hostile files are refused with a
 * `LatticeMatmulError` before anything of the size the header claims is allocated.
 *
 * @example
 * const file = await openSafetensorsFile('model.safetensors');
 * const scheme = file.metadata?.scheme;
 * const codes = await file.readTensor('layers.0.codes'); // Uint32Array for a U32 tensor
 * await file.close();
 */
export function openSafetensorsFile(path: string, options?: SafetensorsReadOptions): Promise<SafetensorsFile> {
  return SafetensorsFile.open(path, options);
}

/** What the temporary name adds to the target's: '.', '.', 12 hex digits and '.tmp'. */
const TEMPORARY_NAME_EXTRA_BYTES = 18;

/** Target names up to this many bytes are kept whole in the temporary name (longer ones are cut). */
const TEMPORARY_NAME_MIN_BYTES = 64;

/**
 * A fresh temporary path next to `path`: `.<name>.<12 hex digits>.tmp`, with `<name>` cut (at a UTF-8
 * character boundary) so that the whole name is no longer than `path`'s own name, or 64 bytes for a
 * shorter one: any name the file system takes for the target fits, even one near its 255-byte limit.
 */
function temporaryPathFor(path: string): string {
  return join(dirname(path), `${temporaryPrefixFor(path)}${randomBytes(6).toString('hex')}.tmp`);
}

/** `.<name>.`, the start of every temporary name `temporaryPathFor(path)` gives. */
function temporaryPrefixFor(path: string): string {
  const name = basename(path);
  const budget = Math.max(Buffer.byteLength(name), TEMPORARY_NAME_MIN_BYTES) - TEMPORARY_NAME_EXTRA_BYTES;
  let kept = '';
  let bytes = 0;
  for (const character of name) {
    bytes += Buffer.byteLength(character);
    if (bytes > budget) break;
    kept += character;
  }
  return `.${kept}.`;
}

/**
 * The temporary files and spill folders beside `path` that writers of it left (named as
 * `temporaryPathFor(path)` names them; only a process killed outright leaves one), with the bytes
 * each holds, largest first. Reported, never removed: another process may be writing `path` now.
 * A folder that cannot be read gives none.
 *
 * @example
 * for (const { path, bytes } of await leftoverTemporaries('model.lmq.safetensors')) console.warn(`left over: ${path} (${bytes} bytes)`);
 */
export async function leftoverTemporaries(path: string): Promise<{ readonly path: string; readonly bytes: number }[]> {
  // Checked first: node:path's functions would throw their own TypeError for a path that is no string.
  checkPath(path);
  // Where the writer puts them: beside the file a symbolic link names, as it replaces that file.
  const target = (await replacedFile(path).catch(() => ({ path }))).path;
  const prefix = temporaryPrefixFor(target);
  const folder = dirname(target);
  let names: string[];
  try {
    names = (await readdir(folder)).filter((name) => name.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length)));
  } catch {
    return [];
  }
  const found = await Promise.all(names.map(async (name) => ({ path: join(folder, name), bytes: await bytesUnder(join(folder, name)) })));
  return found.sort((a, b) => b.bytes - a.bytes);
}

/** Bytes of the file at `path`, or of the files directly in the folder at `path` (a spill folder is flat); 0 if it is gone. */
async function bytesUnder(path: string): Promise<number> {
  try {
    const stats = await lstat(path);
    if (!stats.isDirectory()) return stats.size;
    const sizes = await Promise.all((await readdir(path)).map((name) => lstat(join(path, name)).then((entry) => entry.size, () => 0)));
    return sizes.reduce((sum, size) => sum + size, 0);
  } catch {
    return 0;
  }
}

/** A refusal to write `path`, with the reason. */
function writeRefusal(path: string): (reason: string, cause?: unknown) => never {
  return (reason, cause) => {
    throw new LatticeMatmulError(`cannot write safetensors file ${describePath(path)}: ${reason}`, cause === undefined ? undefined : { cause });
  };
}

/**
 * The file that writing `path` replaces: `path` itself, or, when `path` is a symbolic link, the file
 * it points to, so that the link keeps pointing at the new file (as writing through it would; renaming
 * over the link would replace the link itself and leave its target as it was). Refused: a path that
 * ends with a separator (it names a directory, even one that does not exist), a link to nothing, and
 * anything but a regular file (a FIFO, a device such as /dev/stdout: the writer renames a new file
 * over its target, which would put a file where the special file was instead of writing into it).
 * Also returns the target's stats when it exists (null for a new file).
 */
async function replacedFile(path: string): Promise<{ path: string; stats: Stats | null }> {
  const refuse = writeRefusal(path);
  if (path.endsWith('/') || path.endsWith(sep)) refuse('it ends with a path separator, so it names a directory, not a file');
  const linkStats = await lstat(path).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOENT: a new file; ENOTDIR: a directory on the way that is not one. The caller's look at the
    // directory explains either. Anything else is refused.
    return code === 'ENOENT' || code === 'ENOTDIR' ? null : refuse(code === 'ENAMETOOLONG' ? 'its name is longer than the file system allows (ENAMETOOLONG)' : (error as Error).message, error);
  });
  if (linkStats === null) return { path, stats: null };
  let target = path;
  if (linkStats.isSymbolicLink()) {
    target = await realpath(path).catch((error: unknown) =>
      refuse(`it is a symbolic link whose target does not resolve to a file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error),
    );
  }
  const stats = target === path ? linkStats : await stat(target).catch((error: unknown) => refuse((error as Error).message, error));
  if (stats.isDirectory()) refuse(target === path ? 'it is a directory' : `it is a symbolic link to the directory ${describePath(target)}`);
  if (!stats.isFile()) refuse('it is not a regular file (a FIFO, a socket or a device): the writer replaces a file by renaming a new one over it, so it cannot write into it');
  return { path: target, stats };
}

/**
 * Whether a directory with the sticky bit (such as /tmp) keeps the user `uid` from replacing `target`:
 * there only the owner of the file or of the directory (or root) may rename over it, though anyone who
 * can write the directory may create a file in it. `uid` undefined (Windows): never.
 */
export function stickyDirectoryForbidsReplacing(directory: { readonly mode: number; readonly uid: number }, target: { readonly uid: number }, uid: number | undefined): boolean {
  return uid !== undefined && uid !== 0 && (directory.mode & 0o1000) !== 0 && target.uid !== uid && directory.uid !== uid;
}

/**
 * Checks that `writeSafetensorsFile(path, …)` can write `path`, leaving nothing behind: the name fits
 * the file system, `path` names a regular file or a new one (through a symbolic link, the file it
 * points to), its directory exists and takes a new file under the temporary name the writer will use
 * (permissions, a read-only file system), and an existing file may be replaced there (a directory with
 * the sticky bit, such as /tmp, lets only a file's owner replace it). A long job calls it first, so
 * that a bad output path is refused before the work rather than after it.
 *
 * @example
 * await checkSafetensorsFileWritable('out/model.lmq.safetensors'); // throws if out/ is missing
 */
export async function checkSafetensorsFileWritable(path: string): Promise<void> {
  checkPath(path);
  const refuse = writeRefusal(path);
  const replaced = await replacedFile(path);
  const directory = dirname(replaced.path);
  const directoryStats = await stat(directory).catch((error: unknown) =>
    refuse((error as NodeJS.ErrnoException).code === 'ENOENT' ? `its directory ${describePath(directory)} does not exist` : `its directory ${describePath(directory)} cannot be used (${(error as Error).message})`, error),
  );
  if (!directoryStats.isDirectory()) refuse(`${describePath(directory)} is not a directory`);
  if (replaced.stats !== null && stickyDirectoryForbidsReplacing(directoryStats, replaced.stats, process.getuid?.())) {
    refuse(`${describePath(replaced.path)} belongs to another user, in a directory with the sticky bit (such as /tmp), where only a file's owner may replace it`);
  }
  const temporary = temporaryPathFor(replaced.path);
  try {
    const handle = await open(temporary, 'wx');
    await handle.close();
  } catch (error) {
    refuse(`cannot create a file in ${describePath(directory)} (${(error as Error).message})`, error);
  }
  await unlink(temporary);
}

/**
 * Writes tensors (and optional string metadata) to `path` as a safetensors file, atomically: the
 * bytes go to a temporary file in the same directory, which is flushed to disk and then renamed over
 * `path` (through a symbolic link, over the file it points to; a replaced file keeps its permission
 * bits). Tensor data is written straight from the given arrays (no whole-file buffer), after awaits:
 * leave those arrays unchanged until the promise settles (a safetensors file has no checksum, so data
 * changed meanwhile would be written as it is then; copying every tensor first would double a model's
 * memory). The tensors' dtypes and shapes, the metadata and the options are read when the call is made.
 * Same layout and checks as `writeSafetensors`; `path` must name a regular file or a new one. An aborted
 * `signal` stops the write between tensors, leaving no file (the target keeps what it had).
 *
 * @example
 * await writeSafetensorsFile('model.lattice.safetensors', {
 *   codes: { dtype: 'U32', shape: [4096, 64], data: packedCodes },
 * }, { format: 'lattice-matmul', scheme: 'd3-q6' });
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: SafetensorsTensors,
  metadata?: SafetensorsMetadata,
  options: { readonly signal?: AbortSignal } = {},
): Promise<void> {
  checkPath(path);
  const plan = planSafetensors(tensors, metadata);
  // Read now: the options object is the caller's, and a signal swapped in it meanwhile was obeyed instead.
  const { signal } = options;
  await writeAtomically(path, await replacedFile(path), signal, async (write) => {
    for (const chunk of [plan.header, ...plan.chunks]) await write(chunk);
  });
}

/**
 * Writes a file at `path` (`replaced`: what it replaces, from `replacedFile`) atomically: `body`
 * appends bytes through `write` to a temporary file in the same directory, which is then flushed to
 * disk and renamed over the target (keeping a replaced file's permission bits). An aborted `signal`
 * (checked before each write) or any failure leaves no file, and the target as it was.
 */
async function writeAtomically(
  path: string,
  replaced: { readonly path: string; readonly stats: Stats | null },
  signal: AbortSignal | undefined,
  body: (write: (bytes: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const temporary = temporaryPathFor(replaced.path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx');
    const file = handle;
    let position = 0;
    await body(async (chunk) => {
      // Between pieces (each one write of up to 1 GiB): an abort leaves no file, as a failure does.
      throwIfSignalAborted(signal, path);
      await writeFully(file, chunk, position);
      position += chunk.byteLength;
    });
    // A replaced file keeps its permissions (a read-only model stays read-only), as in-place editors do.
    if (replaced.stats !== null) await handle.chmod(replaced.stats.mode & 0o777);
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (replaced.stats === null) await placeNewFile(temporary, replaced.path, path);
    else await rename(temporary, replaced.path);
  } catch (error) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    await unlink(temporary).catch(() => undefined);
    if (error instanceof LatticeMatmulError) throw error;
    throw new LatticeMatmulError(`cannot write safetensors file ${describePath(path)}: ${(error as Error).message}`, { cause: error });
  }
  // Make the rename itself durable where the platform allows opening a directory (not on Windows).
  try {
    const directory = await open(dirname(replaced.path), 'r');
    await directory.sync().finally(() => directory.close());
  } catch {
    // Best effort only: the file is complete and in place either way.
  }
}

/**
 * Puts the finished `temporary` at `target`, which did not exist when the write began, without
 * replacing a file that appeared there meanwhile (another program's, or a second run writing the
 * same output): a rename would replace it silently. A hard link fails if the name exists; where the
 * file system has no hard links, the name is looked at just before the rename (a narrower window).
 */
async function placeNewFile(temporary: string, target: string, path: string): Promise<void> {
  const appeared = () =>
    new LatticeMatmulError(
      `cannot write ${describePath(path)}: a file appeared there while it was being written (another program, or a second run writing the same output); it was left as it is and nothing was written`,
    );
  try {
    await link(temporary, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw appeared();
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    if ((await lstat(target).catch(() => null)) !== null) throw appeared();
    await rename(temporary, target);
    return;
  }
  // The file is complete and in place: removing the temporary's name is best effort. A failure there
  // (EIO) failed the whole write, with the output valid at its path and a rerun refused; the name left
  // is reported by the next write like any leftover (leftoverTemporaries).
  await unlink(temporary).catch(() => undefined);
}

/** Refuses to go on writing `path` once `signal` has aborted. */
function throwIfSignalAborted(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted === true) throw abortedError(signal, `writing ${describePath(path)}`);
}

/** Writes all of `bytes` at `position`, in pieces Node accepts. */
async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(bytes.byteLength - done, IO_CHUNK_BYTES);
    const { bytesWritten } = await handle.write(bytes, done, length, position + done);
    done += bytesWritten;
  }
}

/** Bytes written to a spill file, or copied from it into the final one, at a time. */
const COPY_CHUNK_BYTES = 1 << 26;

/**
 * Writes a safetensors file tensor by tensor, for tensors that do not all fit in memory at once (a
 * quantized model): each `add` spills one tensor's bytes to a file of its own in a hidden folder beside
 * `path`, keeping only its name, dtype and shape; `finish` writes the file atomically, exactly as
 * `writeSafetensorsFile` would write the same tensors (the reference layout: tensors ordered by dtype
 * then name), copying each tensor from its spill file and removing that file once it is copied, so the
 * disk holds the tensors about once (plus the header and one tensor) even while it finishes. A refused
 * tensor (bad name, shape or data) changes nothing; a failed write, an aborted signal or `abort()`
 * removes the spill folder and the unfinished output (a process killed outright may leave the folder,
 * hidden: `.<name>.<hex>.tmp`; `leftoverTemporaries(path)` lists such folders). Calls must not overlap.
 *
 * @example
 * const writer = await SafetensorsFileWriter.create('big.safetensors');
 * try {
 *   for (const [name, tensor] of produced()) await writer.add(name, tensor); // one in memory at a time
 *   await writer.finish({ note: 'streamed' });
 * } catch (error) {
 *   await writer.abort();
 *   throw error;
 * }
 */
export class SafetensorsFileWriter {
  /** The tensors added, in order: tensor i's bytes (when it has any) are the spill folder's file `i`. */
  private readonly tensors: SafetensorsTensorLayout[] = [];
  private readonly names = new Set<string>();
  /** Σ byteLength of `tensors`, kept as they are added: read after every matrix, of models with 10^5 tensors. */
  private addedBytes = 0;
  /** A call (add, finish, checkSignal) is running. */
  private busy = false;
  /** How the writer ended, null while it is open: every later call is refused with it. */
  private ending: string | null = null;
  /** `abort()` was called while a call ran: that call stops after the piece it is writing and fails. */
  private abortRequested = false;
  /** The call running while busy, settled (never rejects) once it has cleaned up. */
  private running: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly replaced: { readonly path: string; readonly stats: Stats | null },
    private readonly spillFolder: string,
    private readonly signal: AbortSignal | undefined,
    private readonly copyChunkBytes: number,
  ) {}

  /**
   * Starts writing `path` (checked as `writeSafetensorsFile` checks it); `signal` stops a later `add` or
   * `finish`, or the one running once the piece it is writing is written; `copyChunkBytes`: bytes written
   * to or copied from a spill file at a time (default 64 MiB; tests pass less).
   */
  static async create(path: string, options: { readonly signal?: AbortSignal; readonly copyChunkBytes?: number } = {}): Promise<SafetensorsFileWriter> {
    checkOptionsObject(options, ['signal', 'copyChunkBytes'], 'SafetensorsFileWriter.create options');
    const copyChunkBytes = options.copyChunkBytes === undefined ? COPY_CHUNK_BYTES : options.copyChunkBytes;
    checkPositiveInteger(copyChunkBytes, 'copyChunkBytes');
    checkPath(path);
    const replaced = await replacedFile(path);
    const spillFolder = temporaryPathFor(replaced.path);
    try {
      await mkdir(spillFolder);
    } catch (error) {
      throw new LatticeMatmulError(`cannot write safetensors file ${describePath(path)}: ${(error as Error).message}`, { cause: error });
    }
    return new SafetensorsFileWriter(path, replaced, spillFolder, options.signal, copyChunkBytes);
  }

  /**
   * Appends tensor `name` (checked as `writeSafetensorsFile` checks its tensors; a name used twice is
   * refused). A refused tensor leaves the writer as it was, so that hours of earlier work are not lost
   * to one bad input; a failed write or an aborted signal ends it.
   */
  async add(name: string, input: SafetensorsTensorInput): Promise<void> {
    this.checkCallable();
    checkTensorName(name);
    check(!this.names.has(name), () => `tensor ${describeValue(name)} is added twice`);
    const { dtype, shape, bytes } = checkedTensorBytes(name, input);
    await this.step(async () => {
      throwIfSignalAborted(this.signal, this.path);
      if (bytes.byteLength > 0) {
        const spill = await open(this.spillFileOf(this.tensors.length), 'wx');
        try {
          // In pieces, as finish copies: an abort or an aborted signal stops a large tensor midway.
          for (let done = 0; done < bytes.byteLength; ) {
            throwIfSignalAborted(this.signal, this.path);
            this.throwIfAbortRequested();
            const piece = bytes.subarray(done, Math.min(bytes.byteLength, done + this.copyChunkBytes));
            await writeFully(spill, piece, done);
            done += piece.byteLength;
          }
        } finally {
          await spill.close();
        }
      }
      this.names.add(name);
      this.tensors.push({ name, dtype, shape, byteLength: bytes.byteLength });
      this.addedBytes += bytes.byteLength;
    });
  }

  /**
   * Writes the file with `metadata`, removing each spill file once its tensor is copied, then the spill
   * folder; the writer is then done.
   */
  async finish(metadata?: SafetensorsMetadata): Promise<void> {
    this.checkCallable();
    // Refused metadata (or a header over the limit) leaves the writer as it was, as a refused tensor does.
    const layout = planSafetensorsLayout(this.tensors, metadata);
    await this.step(async () => {
      const largest = this.tensors.reduce((most, tensor) => Math.max(most, tensor.byteLength), 1);
      const buffer = new Uint8Array(Math.min(this.copyChunkBytes, largest));
      await writeAtomically(this.path, this.replaced, this.signal, async (write) => {
        const checkedWrite = async (bytes: Uint8Array): Promise<void> => {
          this.throwIfAbortRequested();
          await write(bytes);
        };
        await checkedWrite(layout.header);
        for (const i of layout.order) {
          const { byteLength } = this.tensors[i] as SafetensorsTensorLayout;
          if (byteLength === 0) continue;
          const spillPath = this.spillFileOf(i);
          const spill = await open(spillPath, 'r');
          try {
            for (let done = 0; done < byteLength; ) {
              const piece = buffer.subarray(0, Math.min(buffer.byteLength, byteLength - done));
              await readExactly(spill, piece, done, `the spill file of ${describePath(this.path)}`);
              await checkedWrite(piece);
              done += piece.byteLength;
            }
          } finally {
            await spill.close();
          }
          // Copied: its space goes back now, so the output and the spill never hold all the tensors twice.
          // Best effort: a file that cannot be removed yet must not fail a good container; the folder goes at the end.
          await unlink(spillPath).catch(() => undefined);
        }
      });
      await this.end('has finished');
    });
  }

  /**
   * Stops writing: removes the spill folder and writes nothing (the target keeps what it had). A call
   * that is running fails once the piece it is writing is written (a `finish` that has written its last
   * byte completes), and `abort()` resolves only when that call has
   * ended and cleaned up, so a process may exit right after it. Harmless once done.
   */
  async abort(): Promise<void> {
    if (this.busy) {
      this.abortRequested = true;
      await this.running; // resolves once that call has failed and removed the spill (or finished)
      return;
    }
    if (this.ending === null) await this.end('was aborted');
  }

  /**
   * Ends the writer, as an `add` would, when its signal has aborted; else does nothing. For long work
   * before an `add` (packing a matrix), so that an aborted signal stops it first.
   */
  async checkSignal(): Promise<void> {
    await this.step(async () => throwIfSignalAborted(this.signal, this.path));
  }

  /**
   * How the writer ended, null while it is open (every later call is refused with it): "has finished",
   * "was aborted", or "stopped when a call failed (…)" naming that failure.
   */
  get endReason(): string | null {
    return this.ending;
  }

  /** The bytes of the tensors added so far (what the spill folder holds until `finish` copies them). */
  get dataBytes(): number {
    return this.addedBytes;
  }

  /** The tensors added so far. */
  get tensorCount(): number {
    return this.tensors.length;
  }

  /**
   * The bytes `finish(metadata)` would write before the data now (the length field and the header);
   * refused as `finish` refuses, a header past SAFETENSORS_MAX_HEADER_BYTES included.
   */
  headerBytes(metadata?: SafetensorsMetadata): number {
    return planSafetensorsLayout(this.tensors, metadata).header.byteLength;
  }

  private throwIfAbortRequested(): void {
    if (this.abortRequested) throw new LatticeMatmulError(`writing ${describePath(this.path)} was aborted`);
  }

  /** Refuses a call once done or while another runs. */
  private checkCallable(): void {
    check(this.ending === null, () => `the writer of ${describePath(this.path)} ${this.ending}`);
    check(!this.busy, () => `the writer of ${describePath(this.path)} is busy: await each call before the next`);
  }

  /** Runs one call's writing (refused as `checkCallable` refuses); a failure aborts the writer. */
  private async step(body: () => Promise<void>): Promise<void> {
    this.checkCallable();
    this.busy = true;
    let settled = (): void => {};
    this.running = new Promise((resolve) => (settled = resolve));
    try {
      await body();
      // An abort requested during an add's last piece takes effect now (a finish that wrote its last byte has ended).
      if (this.ending === null) this.throwIfAbortRequested();
    } catch (error) {
      const failure = error instanceof LatticeMatmulError ? error : new LatticeMatmulError(`cannot write safetensors file ${describePath(this.path)}: ${(error as Error).message}`, { cause: error });
      const left = await this.end(this.abortRequested ? 'was aborted' : `stopped when a call failed (${failure.message})`);
      // Spill files that could not be removed are the caller's to remove: say where, not nothing.
      if (left !== null) throw new LatticeMatmulError(`${failure.message}; ${left}`, { cause: failure });
      throw failure;
    } finally {
      this.busy = false;
      settled();
    }
  }

  /**
   * Ends the writer with `reason` (every later call is refused with it) and removes the spill folder;
   * what could not be removed, in words, or null.
   */
  private async end(reason: string): Promise<string | null> {
    this.ending = reason;
    return this.removeSpill();
  }

  private spillFileOf(index: number): string {
    return join(this.spillFolder, String(index));
  }

  /**
   * Removes the spill folder, or as much of it as can be removed, and says what is left (null: nothing).
   * Why file by file after a failed rm: fs.rm gives up at the first EACCES on the folder itself (its
   * parent made read-only mid-run) and leaves the files inside, which could each be removed.
   */
  private async removeSpill(): Promise<string | null> {
    const removed = (): Promise<boolean> => rm(this.spillFolder, { recursive: true, force: true }).then(() => true, () => false);
    if (await removed()) return null;
    const names = await readdir(this.spillFolder).catch(() => null);
    if (names === null) return null; // gone after all
    for (const name of names) await unlink(join(this.spillFolder, name)).catch(() => undefined);
    if (await removed()) return null;
    const left = (await readdir(this.spillFolder).catch(() => [])).length;
    return `its spill folder ${describePath(this.spillFolder)} could not be removed (${counted(left, 'file')}, ${await bytesUnder(this.spillFolder)} bytes left in it): remove it`;
  }

}
