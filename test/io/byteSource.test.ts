import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { openQuantizedContainer } from '../../src/format/containerReader.js';
import { blobSource, bytesSource } from '../../src/io/byteSource.js';
import { writeSafetensors } from '../../src/io/safetensors.js';

/* Byte sources hand back exactly the bytes asked for, or refuse: never fewer, read as if they were all. */

/** A Blob whose slices come back one byte short, as a file that shrank after it was picked. */
class ShrinkingBlob extends Blob {
  override slice(start?: number, end?: number, contentType?: string): Blob {
    const last = end ?? this.size;
    return super.slice(start, Math.max(start ?? 0, last - 1), contentType);
  }
}

describe('blobSource', () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => i);

  it('reads the bytes of the range asked for', async () => {
    const source = blobSource(new Blob([bytes]));
    expect(source.byteLength).toBe(40);
    expect(Array.from(await source.read(3, 5))).toEqual([3, 4, 5, 6, 7]);
    expect(Array.from(await source.read(40, 0))).toEqual([]);
  });

  it('refuses a read that comes back short, naming the source and the range', async () => {
    const source = blobSource(new ShrinkingBlob([bytes]), 'model.lmq.safetensors');
    await expect(source.read(8, 16)).rejects.toThrow(LatticeMatmulError);
    await expect(source.read(8, 16)).rejects.toThrow('model.lmq.safetensors: read 15 bytes at 8 where 16 were asked for; did the file change?');
  });

  it('a container opened from such a blob is refused, not parsed from a header missing its last byte', async () => {
    const file = writeSafetensors({ w: { dtype: 'U8', shape: [4], data: new Uint8Array(4) } });
    await expect(openQuantizedContainer(blobSource(new Blob([file.slice()]), 'whole'))).rejects.toThrow(/not a lattice-matmul quantized container/);
    await expect(openQuantizedContainer(blobSource(new ShrinkingBlob([file.slice()]), 'shrunk'))).rejects.toThrow(/shrunk: read 7 bytes at 0 where 8 were asked for/);
  });

  it('bytesSource refuses a range past its end', async () => {
    const source = bytesSource(bytes, 'mem');
    await expect(source.read(38, 3)).rejects.toThrow(/mem: cannot read 3 bytes at 38 of 40/);
    expect(Array.from(await source.read(38, 2))).toEqual([38, 39]);
  });
});
