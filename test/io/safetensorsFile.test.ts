import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { readSafetensors, writeSafetensors, type SafetensorsTensors } from '../../src/io/safetensors.js';
import { checkSafetensorsFileWritable, leftoverTemporaries, openSafetensorsFile, SafetensorsFileWriter, stickyDirectoryForbidsReplacing, writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { fuzzCaseArb, fuzzCaseBytes } from './safetensorsFuzz.js';

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'safetensors-test-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

async function refusalOf(body: () => Promise<unknown>): Promise<string> {
  try {
    await body();
  } catch (error) {
    expect(error).toBeInstanceOf(LatticeMatmulError);
    return (error as Error).message;
  }
  throw new Error('expected a LatticeMatmulError, but nothing was thrown');
}

const sample: SafetensorsTensors = {
  'layers.0.codes': { dtype: 'U32', shape: [3, 2], data: new Uint32Array([1, 2, 3, 4, 5, 0xffffffff]) },
  'layers.0.scale': { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
  bias: { dtype: 'BF16', shape: [], data: new Uint16Array([0x3f80]) },
  empty: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
  flags: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
};

describe('safetensors files on disk', () => {
  it('openSafetensorsFile and SafetensorsFileWriter.create refuse misspelt options (maxHeaderByte: 1 left the limit at its maximum)', async () => {
    const path = join(directory, 'options.safetensors');
    await writeSafetensorsFile(path, sample);
    expect(await refusalOf(() => openSafetensorsFile(path, { maxHeaderByte: 1 } as never))).toMatch(/^openSafetensorsFile options: unknown option 'maxHeaderByte' \(did you mean 'maxHeaderBytes'\?\)/);
    expect(await refusalOf(() => openSafetensorsFile(path, null as never))).toMatch(/^openSafetensorsFile options must be an object, got null$/);
    expect(await refusalOf(() => SafetensorsFileWriter.create(join(directory, 'never.safetensors'), { copyChunkByte: 1 } as never))).toMatch(/^SafetensorsFileWriter\.create options: unknown option 'copyChunkByte' \(did you mean 'copyChunkBytes'\?\)/);
  });

  it("refuses a path that is not a non-empty string with the library's error, not node:fs's or node:path's TypeError", async () => {
    for (const path of [undefined, null, 7, {}, Symbol('path'), '']) {
      const got = typeof path === 'symbol' ? 'a symbol' : path;
      const message = (refused: string): void => expect(refused, String(got)).toMatch(/^safetensors path must be a non-empty string, got /);
      message(await refusalOf(() => openSafetensorsFile(path as never)));
      message(await refusalOf(() => writeSafetensorsFile(path as never, sample)));
      message(await refusalOf(() => checkSafetensorsFileWritable(path as never)));
      // It threw node:path's TypeError ('The "path" argument must be of type string').
      message(await refusalOf(() => leftoverTemporaries(path as never)));
    }
  });

  it('writes the same bytes as writeSafetensors and reads every tensor back', async () => {
    const path = join(directory, 'sample.safetensors');
    await writeSafetensorsFile(path, sample, { scheme: 'd3-q6' });
    const bytes = new Uint8Array(await readFile(path));
    expect([...bytes]).toEqual([...writeSafetensors(sample, { scheme: 'd3-q6' })]);

    const file = await openSafetensorsFile(path);
    try {
      expect(file.metadata).toEqual({ scheme: 'd3-q6' });
      expect(file.fileByteLength).toBe(bytes.byteLength);
      expect(file.header).toEqual(readSafetensors(bytes).header);
      const codes = await file.readTensor('layers.0.codes');
      expect(codes).toBeInstanceOf(Uint32Array);
      expect([...codes]).toEqual([1, 2, 3, 4, 5, 0xffffffff]);
      expect([...(await file.readTensorAsFloat32('layers.0.scale'))]).toEqual([1, -2]);
      expect([...(await file.readTensorAsFloat32('bias'))]).toEqual([1]);
      expect((await file.readTensor('empty')).length).toBe(0);
      expect([...(await file.readTensorBytes('flags'))]).toEqual([1, 0, 1]);
      // A byte range of one tensor (one expert of stacked experts): those bytes of the tensor only.
      const whole = await file.readTensorBytes('layers.0.codes');
      expect([...(await file.readTensorBytes('layers.0.codes', { begin: 4, end: 12 }))]).toEqual([...whole.subarray(4, 12)]);
      expect((await file.readTensorBytes('layers.0.codes', { begin: 24, end: 24 })).length).toBe(0);
      expect(await refusalOf(() => file.readTensorBytes('layers.0.codes', { begin: 8, end: 25 }))).toMatch(/the range \[8, 25\) is not within tensor "layers\.0\.codes"'s 24 bytes/);
      expect(await refusalOf(() => file.readTensorBytes('layers.0.codes', { begin: -1, end: 4 }))).toMatch(/is not within/);
      expect(await refusalOf(() => file.readTensorAsFloat32('flags'))).toMatch(/has dtype BOOL; readTensorAsFloat32 converts/);
      expect(await refusalOf(() => file.readTensor('nope'))).toMatch(/has no tensor named "nope"/);
    } finally {
      await file.close();
    }
    expect(await refusalOf(() => file.readTensor('bias'))).toMatch(/is closed/);
    await file.close(); // twice is harmless
  });

  it('replaces an existing file atomically and leaves no temporary file behind', async () => {
    const path = join(directory, 'replace.safetensors');
    await writeFile(path, 'old contents');
    await writeSafetensorsFile(path, sample);
    expect((await readFile(path)).byteLength).toBe(writeSafetensors(sample).byteLength);
    expect((await readdir(directory)).filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it('leaves the old file untouched when writing fails', async () => {
    const path = join(directory, 'keep.safetensors');
    await writeFile(path, 'old contents');
    const bad = { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array(3) } };
    expect(await refusalOf(() => writeSafetensorsFile(path, bad))).toMatch(/= 8 bytes, but its data has 12 bytes/);
    expect(await refusalOf(() => writeSafetensorsFile(join(directory, 'no-such-dir', 'x.safetensors'), sample))).toMatch(/cannot write safetensors file/);
    expect(await readFile(path, 'utf8')).toBe('old contents');
    expect((await readdir(directory)).filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it('writes through a symbolic link: the link stays, the file it points to is replaced', async () => {
    const dir = await mkdtemp(join(directory, 'link-'));
    await mkdir(join(dir, 'models'));
    await writeFile(join(dir, 'models', 'v3.safetensors'), 'old contents');
    await symlink(join('models', 'v3.safetensors'), join(dir, 'latest.safetensors'));
    await checkSafetensorsFileWritable(join(dir, 'latest.safetensors'));
    await writeSafetensorsFile(join(dir, 'latest.safetensors'), sample);
    expect((await lstat(join(dir, 'latest.safetensors'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, 'latest.safetensors'))).toBe(join('models', 'v3.safetensors'));
    expect(Buffer.compare(await readFile(join(dir, 'models', 'v3.safetensors')), writeSafetensors(sample))).toBe(0);
    expect([...(await readdir(dir)), ...(await readdir(join(dir, 'models')))].filter((name) => name.includes('.tmp'))).toEqual([]);
  });

  it.skipIf(process.platform === 'win32')('a replaced file keeps its permission bits (a read-only file stays read-only)', async () => {
    for (const mode of [0o640, 0o444]) {
      const path = join(directory, `mode-${mode.toString(8)}.safetensors`);
      await writeFile(path, 'old contents');
      await chmod(path, mode);
      await writeSafetensorsFile(path, sample);
      expect((await stat(path)).mode & 0o777).toBe(mode);
      expect((await readFile(path)).byteLength).toBe(writeSafetensors(sample).byteLength);
    }
  });

  it.skipIf(process.platform === 'win32')('refuses, before writing anything, a path that ends with a separator, a dangling link and a target that is not a regular file', async () => {
    const dir = await mkdtemp(join(directory, 'special-'));
    await symlink(join(dir, 'nowhere'), join(dir, 'dangling'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    const cases: [string, RegExp][] = [
      [join(dir, 'new-dir') + '/', /it ends with a path separator, so it names a directory, not a file/],
      [join(dir, 'dangling'), /it is a symbolic link whose target does not resolve to a file \(ENOENT\)/],
      [join(dir, 'fifo'), /it is not a regular file \(a FIFO, a socket or a device\)/],
      ['/dev/null', /it is not a regular file/],
    ];
    for (const [path, message] of cases) {
      expect(await refusalOf(() => checkSafetensorsFileWritable(path)), path).toMatch(message);
      expect(await refusalOf(() => writeSafetensorsFile(path, sample)), path).toMatch(message);
    }
    // Nothing was created, renamed or replaced.
    expect((await readdir(dir)).sort()).toEqual(['dangling', 'fifo']);
    expect((await lstat(join(dir, 'fifo'))).isFIFO()).toBe(true);
    // Nor is a FIFO read (before: opening it waited for a writer, for ever).
    expect(await refusalOf(() => openSafetensorsFile(join(dir, 'fifo')))).toMatch(/safetensors path ".*fifo" is not a regular file/);
  });

  it('in a directory with the sticky bit, only the owner of a file or of the directory (or root) may replace it', () => {
    const sticky = { mode: 0o41777, uid: 0 };
    const plain = { mode: 0o40777, uid: 0 };
    const theirs = { uid: 1000 };
    const mine = { uid: 1001 };
    expect(stickyDirectoryForbidsReplacing(sticky, theirs, 1001)).toBe(true);
    expect(stickyDirectoryForbidsReplacing(sticky, mine, 1001)).toBe(false);
    expect(stickyDirectoryForbidsReplacing({ ...sticky, uid: 1001 }, theirs, 1001)).toBe(false); // the directory is mine
    expect(stickyDirectoryForbidsReplacing(sticky, theirs, 0)).toBe(false); // root
    expect(stickyDirectoryForbidsReplacing(plain, theirs, 1001)).toBe(false); // no sticky bit
    expect(stickyDirectoryForbidsReplacing(sticky, theirs, undefined)).toBe(false); // no user ids (Windows)
  });

  // Root may chown a file to another user; the check then runs as if this process were a third user.
  it.skipIf(process.getuid?.() !== 0)('refuses, before the work, to replace another user\'s file in a sticky directory', async () => {
    const dir = await mkdtemp(join(directory, 'sticky-'));
    await chmod(dir, 0o1777);
    const path = join(dir, 'theirs.safetensors');
    await writeFile(path, 'old contents');
    await chown(path, 1000, 1000);
    const getuid = vi.spyOn(process, 'getuid').mockReturnValue(1001);
    try {
      expect(await refusalOf(() => checkSafetensorsFileWritable(path))).toMatch(/belongs to another user, in a directory with the sticky bit \(such as \/tmp\), where only a file's owner may replace it/);
      await checkSafetensorsFileWritable(join(dir, 'new.safetensors')); // a new file is fine
      getuid.mockReturnValue(1000);
      await checkSafetensorsFileWritable(path); // its owner may
    } finally {
      getuid.mockRestore();
    }
    expect(await readFile(path, 'utf8')).toBe('old contents');
    expect((await readdir(dir)).sort()).toEqual(['theirs.safetensors']);
  });

  it('an abort during the write stops it between tensors: the old file stays, no temporary file is left', async () => {
    const path = join(directory, 'abort.safetensors');
    await writeFile(path, 'old contents');
    // Aborted once the temporary file is open (the write's first await), before its first tensor.
    const controller = new AbortController();
    const writing = writeSafetensorsFile(path, sample, undefined, { signal: controller.signal });
    controller.abort('interrupted');
    expect(await refusalOf(() => writing)).toMatch(/writing .*abort\.safetensors.* was aborted: interrupted/);
    expect(await readFile(path, 'utf8')).toBe('old contents');
    expect((await readdir(directory)).filter((name) => name.includes('.tmp'))).toEqual([]);
    // Not aborted: written as usual.
    await writeSafetensorsFile(path, sample, undefined, { signal: new AbortController().signal });
    expect((await readFile(path)).byteLength).toBe(writeSafetensors(sample).byteLength);
  });

  it('the signal is the one given when the call is made, not one put in its options object afterwards', async () => {
    const path = join(directory, 'swapped.safetensors');
    await writeFile(path, 'old contents');
    const controller = new AbortController();
    const options: { signal: AbortSignal } = { signal: controller.signal };
    const writing = writeSafetensorsFile(path, sample, undefined, options);
    // Read after an await, the swapped-in signal was obeyed and the file written despite the abort.
    options.signal = new AbortController().signal;
    controller.abort('interrupted');
    expect(await refusalOf(() => writing)).toMatch(/was aborted: interrupted/);
    expect(await readFile(path, 'utf8')).toBe('old contents');
  });

  it('opens a 16 GiB (sparse) file by reading its header only, and reads one tensor by range', async () => {
    const path = join(directory, 'sparse.safetensors');
    const big = 2 ** 34;
    const header = `{"big":{"dtype":"U8","shape":[${big}],"data_offsets":[0,${big}]},"small":{"dtype":"F32","shape":[2],"data_offsets":[${big},${big + 8}]}}`;
    const json = new TextEncoder().encode(header);
    const prefix = new Uint8Array(8 + json.byteLength);
    new DataView(prefix.buffer).setUint32(0, json.byteLength, true);
    prefix.set(json, 8);
    const tail = new Uint8Array(new Float32Array([1.5, -3]).buffer);
    const handle = await open(path, 'w');
    try {
      await handle.write(prefix, 0, prefix.byteLength, 0);
      await handle.write(tail, 0, tail.byteLength, prefix.byteLength + big); // the gap stays a hole
    } finally {
      await handle.close();
    }
    try {
      const started = performance.now();
      const file = await openSafetensorsFile(path);
      try {
        expect(file.info('big').byteLength).toBe(big);
        expect([...(await file.readTensorAsFloat32('small'))]).toEqual([1.5, -3]);
        expect(performance.now() - started).toBeLessThan(2000);
      } finally {
        await file.close();
      }
    } finally {
      await rm(path, { force: true });
    }
  });

  it('refuses hostile files, missing files and files that shrink after opening', async () => {
    const hostile = join(directory, 'hostile.safetensors');
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
    await writeFile(hostile, huge);
    expect(await refusalOf(() => openSafetensorsFile(hostile))).toMatch(/hostile.safetensors.*header length 4611686018427387904 exceeds the limit/);
    await writeFile(hostile, new Uint8Array(5));
    expect(await refusalOf(() => openSafetensorsFile(hostile))).toMatch(/5 bytes long, shorter than the 8-byte/);
    expect(await refusalOf(() => openSafetensorsFile(join(directory, 'missing.safetensors')))).toMatch(/cannot open safetensors file .*ENOENT/);
    expect(await refusalOf(() => openSafetensorsFile(directory))).toMatch(/is not a regular file/);

    const shrinking = join(directory, 'shrinking.safetensors');
    await writeSafetensorsFile(shrinking, sample);
    const file = await openSafetensorsFile(shrinking);
    try {
      await truncate(shrinking, file.header.dataStart + 4);
      expect(await refusalOf(() => file.readTensor('layers.0.codes'))).toMatch(/the file ended after \d+ bytes .* did it change since it was opened/);
    } finally {
      await file.close();
    }
  });

  it('refuses a read after the file was written in place (same size, or grown), and reads on when it was replaced by a rename', async () => {
    const path = join(directory, 'rewritten.safetensors');
    const overwriteInPlace = async (bytes: Uint8Array, position: number): Promise<void> => {
      // The coarse clock that stamps mtime ticks every few ms: let it move past the open's stamp.
      await new Promise((resolve) => setTimeout(resolve, 30));
      const handle = await open(path, 'r+');
      try {
        await handle.write(bytes, 0, bytes.byteLength, position);
      } finally {
        await handle.close();
      }
    };
    await writeSafetensorsFile(path, sample);
    const file = await openSafetensorsFile(path);
    try {
      const before = await file.readTensor('layers.0.codes');
      await overwriteInPlace(new Uint8Array([0xa5]), file.header.dataStart);
      expect(await refusalOf(() => file.readTensor('layers.0.codes'))).toMatch(
        /rewritten\.safetensors" was written since it was opened \(its modification time changed\): tensor "layers\.0\.codes" may not be what its header describes; open it again$/,
      );
      const reopened = await openSafetensorsFile(path);
      try {
        expect(await reopened.readTensor('layers.0.codes')).not.toEqual(before);
        await overwriteInPlace(new Uint8Array(3), reopened.fileByteLength);
        expect(await refusalOf(() => reopened.readTensor('layers.0.codes'))).toMatch(/was written since it was opened \(\d+ bytes then, \d+ now\)/);
      } finally {
        await reopened.close();
      }
    } finally {
      await file.close();
    }
    // A writer that renames a new file over the path leaves the open file's bytes as they were: the
    // new file's codes differ (same layout), and the open file still reads the old ones.
    await writeSafetensorsFile(path, sample);
    const kept = await openSafetensorsFile(path);
    try {
      const replacement = { ...sample, 'layers.0.codes': { dtype: 'U32', shape: [3, 2], data: new Uint32Array([7, 7, 7, 7, 7, 7]) } } as const;
      await writeSafetensorsFile(path, replacement);
      expect([...(await kept.readTensor('layers.0.codes'))]).toEqual([1, 2, 3, 4, 5, 0xffffffff]);
    } finally {
      await kept.close();
    }
  });

  it('agrees with the in-memory reader on 300 fuzzed files (fixed seed)', async () => {
    const path = join(directory, 'fuzz.safetensors');
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fuzzCaseArb, async (c) => {
        const bytes = fuzzCaseBytes(c);
        await writeFile(path, bytes);
        let memory: ReturnType<typeof readSafetensors> | LatticeMatmulError;
        try {
          memory = readSafetensors(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(LatticeMatmulError);
          memory = error as LatticeMatmulError;
        }
        let file: Awaited<ReturnType<typeof openSafetensorsFile>> | undefined;
        try {
          file = await openSafetensorsFile(path);
        } catch (error) {
          expect(error).toBeInstanceOf(LatticeMatmulError);
          expect(memory).toBeInstanceOf(LatticeMatmulError);
          // Same cause: the file reader's message is the in-memory one with the path in front.
          expect((error as Error).message.endsWith((memory as Error).message)).toBe(true);
          refused++;
          return;
        }
        try {
          expect(memory).not.toBeInstanceOf(LatticeMatmulError);
          const archive = memory as ReturnType<typeof readSafetensors>;
          expect(file.header).toEqual(archive.header);
          for (const t of archive.tensors) expect([...(await file.readTensorBytes(t.name))]).toEqual([...archive.tensorBytes(t.name)]);
        } finally {
          await file.close();
        }
      }),
      { seed: 77, numRuns: 300 },
    );
    expect(refused).toBeGreaterThan(100);
    expect(refused).toBeLessThan(300);
  });
});

describe('leftoverTemporaries', () => {
  it("lists the temporaries a writer of the path leaves (a killed one's spill folder) with their bytes, and nothing else", async () => {
    const where = join(directory, 'leftovers');
    await rm(where, { recursive: true, force: true });
    await mkdir(where);
    const path = join(where, 'out.safetensors');
    expect(await leftoverTemporaries(path)).toEqual([]);
    // A writer that never ends, as one in a process killed outright: its spill folder holds the tensor.
    const writer = await SafetensorsFileWriter.create(path);
    await writer.add('t', { dtype: 'F32', shape: [100], data: new Float32Array(100) });
    const [spill] = await readdir(where);
    // A temporary file as an atomic write leaves it, and names that are not this path's temporaries.
    await writeFile(join(where, '.out.safetensors.abcdef012345.tmp'), new Uint8Array(10));
    for (const name of ['.out.safetensors.xyz.tmp', '.other.safetensors.abcdef012345.tmp', '.out.safetensors.ABCDEF012345.tmp', 'out.safetensors.abcdef012345.tmp']) {
      await writeFile(join(where, name), 'x');
    }
    const expected = [
      { path: join(where, spill as string), bytes: 400 },
      { path: join(where, '.out.safetensors.abcdef012345.tmp'), bytes: 10 },
    ];
    expect(await leftoverTemporaries(path)).toEqual(expected);
    // Through a symbolic link: the writer replaces the file it names, beside that file.
    await writeFile(path, 'old');
    const elsewhere = join(directory, 'leftovers-link');
    await rm(elsewhere, { recursive: true, force: true });
    await mkdir(elsewhere);
    await symlink(path, join(elsewhere, 'link.safetensors'));
    expect(await leftoverTemporaries(join(elsewhere, 'link.safetensors'))).toEqual(expected);
    await writer.abort();
    expect(await leftoverTemporaries(path)).toEqual([expected[1]]);
    // A folder that cannot be read (here: missing) has none.
    expect(await leftoverTemporaries(join(directory, 'missing', 'out.safetensors'))).toEqual([]);
  });

  it('a file that appears at a new output while it is written is kept, and the write refused (was replaced silently)', async () => {
    const where = join(directory, 'appeared');
    await rm(where, { recursive: true, force: true });
    await mkdir(where);
    const path = join(where, 'out.safetensors');
    const writer = await SafetensorsFileWriter.create(path);
    await writer.add('t', { dtype: 'F32', shape: [4], data: new Float32Array([1, 2, 3, 4]) });
    await writeFile(path, 'precious'); // another program, or a second run with the same output
    await expect(writer.finish()).rejects.toThrow(/a file appeared there while it was being written .* it was left as it is and nothing was written/);
    expect(await readFile(path, 'utf8')).toBe('precious');
    expect(await readdir(where)).toEqual(['out.safetensors']); // no temporary left
    // A path that stays free is written as before (by a hard link of the finished temporary).
    await writeSafetensorsFile(join(where, 'second.safetensors'), sample);
    expect(readSafetensors(new Uint8Array(await readFile(join(where, 'second.safetensors')))).header).toEqual(readSafetensors(writeSafetensors(sample)).header);
    expect((await readdir(where)).sort()).toEqual(['out.safetensors', 'second.safetensors']);
  });

  it('finds the temporaries of a name cut to fit the 255-byte limit', async () => {
    const where = join(directory, 'leftovers-long');
    await rm(where, { recursive: true, force: true });
    await mkdir(where);
    const path = join(where, `${'é'.repeat(125)}.st`); // 254 bytes: the temporary name keeps fewer of its characters
    const writer = await SafetensorsFileWriter.create(path);
    const [spill] = await readdir(where);
    expect(await leftoverTemporaries(path)).toEqual([{ path: join(where, spill as string), bytes: 0 }]);
    await writer.abort();
  });
});
