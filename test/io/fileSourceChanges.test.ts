import { openAsBlob } from 'node:fs';
import { mkdtemp, open, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { readQuantizedContainer } from '../../src/format/container.js';
import { openQuantizedContainerFile } from '../../src/format/containerFile.js';
import { openQuantizedContainer } from '../../src/format/containerReader.js';
import { blobSource } from '../../src/io/byteSource.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { sameLayoutContainer } from './sameLayoutContainers.js';

/*
 * The Node file source and a Blob of a file (fs.openAsBlob) when the file changes between reading the
 * header and reading a matrix, and when reads run together: each matrix is read right (from the
 * version that was opened) or refused by name, never from two versions.
 */

const container = (seed: number): Uint8Array => sameLayoutContainer(seed, 'file');
const v1 = container(1);
const v2 = container(100); // the same size and layout, other data
const whole = readQuantizedContainer(v1);

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'file-source-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Ways the file at `path` changes: each leaves another file than the one opened. */
const changes: [string, (path: string) => Promise<void>, RegExp | null][] = [
  ['truncated', (path) => truncate(path, v1.byteLength >> 1), /the file ended after \d+ bytes while reading|NotReadableError/],
  [
    'rewritten in place, same size',
    async (path) => {
      const handle = await open(path, 'r+');
      await handle.write(v2, 0, v2.byteLength, 0);
      await handle.close();
    },
    // Or, written within the file system's timestamp granularity (same size, same modification time),
    // refused by the container's per-tensor CRC-32 instead.
    /was written since it was opened \(its modification time changed\)|NotReadableError|tensor "\w+" is corrupted: its checksum is [0-9a-f]{8} but its bytes give/,
  ],
  [
    'replaced by a rename (the open file stays as it was)',
    async (path) => {
      await writeFile(`${path}.new`, v2);
      await rename(`${path}.new`, path);
    },
    null,
  ],
];

describe('a container file that changes after its header was read', () => {
  it.each(changes)('%s: the file reader reads the opened version or refuses', async (what, change, refusal) => {
    const path = join(directory, `file-${what.length}.lmq.safetensors`);
    await writeFile(path, v1);
    const file = await openQuantizedContainerFile(path);
    try {
      expect((await file.read('q')).matrix).toEqual(whole.get('q').matrix);
      await change(path);
      const read = file.read('k').then((entry) => entry.matrix);
      if (refusal === null) expect(await read).toEqual(whole.get('k').matrix);
      else await expect(read).rejects.toThrow(refusal);
    } finally {
      await file.close();
    }
  });

  it.each(changes)('%s: a Blob of the file (fs.openAsBlob) refuses', async (what, change) => {
    const path = join(directory, `blob-${what.length}.lmq.safetensors`);
    await writeFile(path, v1);
    const reader = await openQuantizedContainer(blobSource(await openAsBlob(path), 'model'));
    expect((await reader.read('q')).matrix).toEqual(whole.get('q').matrix);
    await change(path);
    // Node's Blob of a file notices a change by its size and modification time; a file replaced at the
    // same size within the file system's timestamp granularity (CI saw it for the rename) slips past
    // that, and the container's per-tensor CRC-32 refuses the other version's bytes instead.
    await expect(reader.read('k')).rejects.toThrow(
      /^model: reading \d+ bytes at \d+ failed \(NotReadableError: .*\); did the file change or go since it was opened\?|^quantized container: matrix "k": tensor "\w+" is corrupted: its checksum is [0-9a-f]{8} but its bytes give [0-9a-f]{8}$/,
    );
  });

  it('concurrent reads (file and Blob sources) equal the sequential ones', async () => {
    const path = join(directory, 'concurrent.lmq.safetensors');
    await writeFile(path, v1);
    const expected = ['q', 'k', 'v', 'q', 'k', 'v'].map((name) => whole.get(name).matrix);
    const file = await openQuantizedContainerFile(path);
    try {
      expect(await Promise.all(['q', 'k', 'v', 'q', 'k', 'v'].map(async (name) => (await file.read(name)).matrix))).toEqual(expected);
    } finally {
      await file.close();
    }
    for (const blob of [await openAsBlob(path), new Blob([v1.slice()])]) {
      const reader = await openQuantizedContainer(blobSource(blob));
      expect(await Promise.all(['q', 'k', 'v', 'q', 'k', 'v'].map(async (name) => (await reader.read(name)).matrix))).toEqual(expected);
    }
  });

  it('a file closed while a read runs refuses that read with a LatticeMatmulError, not Node\'s bare "file closed"', async () => {
    const path = join(directory, 'closing.safetensors');
    // 32 MiB: the read is still running when close() is called.
    await writeSafetensorsFile(path, { a: { dtype: 'F32', shape: [1 << 20, 8], data: new Float32Array(8 << 20) } });
    for (let i = 0; i < 3; i++) {
      const file = await openSafetensorsFile(path);
      const reading = file.readTensorBytes('a').catch((error: unknown) => error);
      await file.close();
      const refusal = await reading;
      expect(refusal).toBeInstanceOf(LatticeMatmulError);
      expect((refusal as Error).message).toMatch(/^safetensors file ".*closing\.safetensors" was closed while tensor "a" was read$/);
    }
  });
});
