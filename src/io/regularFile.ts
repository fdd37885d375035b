import { constants as fsConstants } from 'node:fs';
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { check, LatticeMatmulError, quoted } from '../errors.js';

/*
 * Opening files for reading (Node only). Kept apart from the modules whose declarations the package
 * ships: its signature names node:fs types, which a consumer without @types/node cannot resolve.
 */

/**
 * Opens `path` for reading and checks that it is a regular file, closing it otherwise. Non-blocking, so
 * that a FIFO opens at once (a plain open waits for a writer: forever, for `inspect fifo`) and is
 * refused; reads of a regular file ignore the flag. Returns the file's size and modification time (ns)
 * as opened. `cannotOpen` starts the message of a failed open,
 * `named` that of a file that is not a regular one; a folder is refused with the files in it to pass
 * instead (`folderHint`).
 */
export async function openRegularFile(path: string, cannotOpen: string, named: string): Promise<{ handle: FileHandle; size: number; mtimeNs: bigint }> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (error) {
    throw new LatticeMatmulError(`${cannotOpen}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const stats = await handle.stat({ bigint: true });
    if (stats.isDirectory()) throw new LatticeMatmulError(`${named} is not a regular file but a folder${await folderHint(path)}`);
    check(stats.isFile(), () => `${named} is not a regular file`);
    return { handle, size: Number(stats.size), mtimeNs: stats.mtimeNs };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/**
 * What to pass instead of the folder `path`: a Hugging Face model is downloaded as a folder, and its
 * path is what a user types first. Names its shard index, or its safetensors file(s); '' where the
 * folder cannot be listed.
 */
async function folderHint(path: string): Promise<string> {
  let names: string[];
  try {
    // Not hidden files: a spill folder or temporary file an interrupted `quantize` left.
    names = (await readdir(path)).filter((name) => !name.startsWith('.')).sort();
  } catch {
    return '';
  }
  const indexes = names.filter((name) => name.endsWith('.safetensors.index.json'));
  const files = names.filter((name) => name.endsWith('.safetensors'));
  const listed = (list: readonly string[]): string => [...list.slice(0, 3).map((name) => quoted(join(path, name))), ...(list.length > 3 ? ['…'] : [])].join(', ');
  if (indexes.length === 1) return `: pass the shard index in it, ${listed(indexes)}`;
  if (indexes.length > 1) return `: pass one of the shard indexes in it, ${listed(indexes)}`;
  if (files.length === 1) return `: pass the safetensors file in it, ${listed(files)}`;
  if (files.length > 1) return `: pass one of its ${files.length} safetensors files, ${listed(files)}`;
  return ': pass a safetensors file (it holds none)';
}
