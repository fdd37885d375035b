import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { check, LatticeMatmulError } from '../errors.js';

/*
 * Opening files for reading (Node only). Kept apart from the modules whose declarations the package
 * ships: its signature names node:fs types, which a consumer without @types/node cannot resolve.
 */

/**
 * Opens `path` for reading and checks that it is a regular file, closing it otherwise. Non-blocking, so
 * that a FIFO opens at once (a plain open waits for a writer: forever, for `inspect fifo`) and is
 * refused; reads of a regular file ignore the flag. Returns the file's size and modification time (ns)
 * as opened. `cannotOpen` starts the message of a failed open,
 * `named` that of a file that is not a regular one.
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
    check(stats.isFile(), () => `${named} is not a regular file`);
    return { handle, size: Number(stats.size), mtimeNs: stats.mtimeNs };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}
