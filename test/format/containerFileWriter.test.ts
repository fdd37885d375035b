import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntryInput } from '../../src/format/container.js';
import { openQuantizedContainerFile, QuantizedContainerFileWriter, writeQuantizedContainerFile } from '../../src/format/containerFile.js';
import { writeSafetensors, type SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { SafetensorsFileWriter } from '../../src/io/safetensorsFile.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';

/*
 * Writing a safetensors file and a quantized container piece by piece (SafetensorsFileWriter,
 * QuantizedContainerFileWriter: one tensor or matrix in memory at a time, spilled to disk): the bytes
 * the in-memory writers give for the same tensors or entries, and no file left behind by a failure,
 * an abort or an aborted signal.
 */

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'container-writer-test-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** A fresh folder in the test folder, for counting what a writer leaves there. */
async function folder(name: string): Promise<string> {
  const path = join(directory, name);
  await rm(path, { recursive: true, force: true });
  await mkdir(path);
  return path;
}

const tensors: Record<string, SafetensorsTensorInput> = {
  'b.codes': { dtype: 'U32', shape: [3, 5], data: Uint32Array.from({ length: 15 }, (_, i) => i * 0x01010101) },
  'a.scale': { dtype: 'F16', shape: [7], data: Uint16Array.from({ length: 7 }, (_, i) => 0x3c00 + i) },
  'c.flags': { dtype: 'BOOL', shape: [4], data: new Uint8Array([1, 0, 0, 1]) },
  'z.empty': { dtype: 'F32', shape: [0, 9], data: new Float32Array(0) },
  'm.big': { dtype: 'F64', shape: [37], data: Float64Array.from({ length: 37 }, (_, i) => Math.sqrt(i)) },
  'i.bytes': { dtype: 'I8', shape: [2, 3, 5], data: Int8Array.from({ length: 30 }, (_, i) => i - 15) },
};

function tensor(name: string): SafetensorsTensorInput {
  const found = tensors[name];
  if (found === undefined) throw new Error(`no test tensor ${name}`);
  return found;
}

describe('SafetensorsFileWriter', () => {
  it.each([1, 7, 1 << 26])('writes the bytes writeSafetensors gives, in whatever order the tensors are added (copies of %i bytes)', async (copyChunkBytes) => {
    const where = await folder(`tensors-${copyChunkBytes}`);
    const path = join(where, 'out.safetensors');
    const writer = await SafetensorsFileWriter.create(path, { copyChunkBytes });
    // Added in an order that is neither the file's (dtype, then name) nor the object's.
    for (const name of ['m.big', 'c.flags', 'z.empty', 'b.codes', 'i.bytes', 'a.scale']) await writer.add(name, tensor(name));
    await writer.finish({ note: 'streamed', format: 'pt' });
    expect(new Uint8Array(await readFile(path))).toEqual(writeSafetensors(tensors, { note: 'streamed', format: 'pt' }));
    // The spill folder is gone.
    expect(await readdir(where)).toEqual(['out.safetensors']);
  });

  it('removes each spill file once its tensor is copied, so the disk holds the tensors about once while it finishes', async () => {
    const where = await folder('progressive');
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'), { copyChunkBytes: 1 });
    for (const name of Object.keys(tensors)) await writer.add(name, tensor(name));
    const [hidden] = await readdir(where);
    const spill = join(where, hidden as string);
    expect(hidden).toMatch(/^\.out\.safetensors\.[0-9a-f]{12}\.tmp$/);
    expect((await readdir(spill)).length).toBe(5); // every tensor with bytes (z.empty has none)
    // Count the spill files while finish copies byte by byte (hundreds of writes).
    const counts: number[] = [];
    let finished = false;
    const finishing = writer.finish().finally(() => (finished = true));
    while (!finished) counts.push((await readdir(spill).catch(() => [])).length);
    await finishing;
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
    expect(counts.filter((count) => count > 0 && count < 5).length).toBeGreaterThan(0);
    expect(await readdir(where)).toEqual(['out.safetensors']);
  });

  it('refuses a name added twice and a bad tensor without losing what was added, and any call once done', async () => {
    const where = await folder('refusals');
    const path = join(where, 'out.safetensors');
    const writer = await SafetensorsFileWriter.create(path);
    await writer.add('x', tensor('a.scale'));
    await expect(writer.add('x', tensor('b.codes'))).rejects.toThrow(/tensor "x" is added twice/);
    await expect(writer.add('w', null as unknown as SafetensorsTensorInput)).rejects.toThrow(LatticeMatmulError);
    await expect(writer.add('y', { dtype: 'F32', shape: [3], data: new Float32Array(2) })).rejects.toThrow(/shape \[3\] of F32 = 12 bytes, but its data has 8 bytes/);
    // A refused tensor changes nothing: the writer goes on, and its name is still free.
    expect(writer.endReason).toBe(null);
    await writer.add('y', tensor('m.big'));
    await writer.finish({ note: 'after refusals' });
    expect(writer.endReason).toBe('has finished');
    expect(new Uint8Array(await readFile(path))).toEqual(writeSafetensors({ x: tensor('a.scale'), y: tensor('m.big') }, { note: 'after refusals' }));
    expect(await readdir(where)).toEqual(['out.safetensors']);
    await expect(writer.add('z', tensor('a.scale'))).rejects.toThrow(/the writer of ".*out\.safetensors" has finished$/);
    await writer.abort(); // harmless once done: the file stays
    expect(writer.endReason).toBe('has finished');
    expect(await readdir(where)).toEqual(['out.safetensors']);
  });

  it('ends at a failed write, removing the spill folder and leaving no output', async () => {
    const where = await folder('failed-write');
    const controller = new AbortController();
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'), { signal: controller.signal });
    await writer.add('a', tensor('b.codes'));
    expect((await readdir(where)).length).toBe(1); // the hidden spill folder
    controller.abort('stop');
    await expect(writer.add('b', tensor('a.scale'))).rejects.toThrow(/writing ".*out\.safetensors" was aborted: stop/);
    expect(writer.endReason).toMatch(/^stopped when a call failed \(writing ".*out\.safetensors" was aborted: stop\)$/);
    expect(await readdir(where)).toEqual([]);
    // Every later call is refused with how it ended, not a guess between finished and aborted.
    await expect(writer.finish()).rejects.toThrow(/the writer of ".*out\.safetensors" stopped when a call failed \(writing .* was aborted: stop\)/);
  });

  it.each([
    ['', /tensor name must not be empty/],
    ['__metadata__', /tensor name "__metadata__" is reserved for the metadata/],
    ['a\ud800', /tensor name "a\\ud800" has a lone surrogate/],
    [42, /tensor name must be a string, got 42/],
  ])('refuses the name %j when it is added, not at finish', async (name, message) => {
    const where = await folder('names');
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'));
    await expect(writer.add(name as string, tensor('a.scale'))).rejects.toThrow(message);
    await writer.abort();
    expect(await readdir(where)).toEqual([]);
  });

  it('abort() during an add makes that add fail and leaves no file', async () => {
    const where = await folder('abort-during-add');
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'));
    const running = writer.add('a', tensor('m.big'));
    const outcome = running.then(() => 'resolved', (error: unknown) => error);
    await writer.abort();
    // abort() resolves once the running add has ended and cleaned up: a process may exit right here.
    expect(await readdir(where)).toEqual([]);
    expect(writer.endReason).toBe('was aborted');
    expect(String(await outcome)).toMatch(/writing ".*out\.safetensors" was aborted/);
    await expect(writer.finish()).rejects.toThrow(/the writer of ".*out\.safetensors" was aborted$/);
  });

  it.each(['abort()', 'an aborted signal'])('%s during an add of a large tensor stops it between pieces: the add fails, no file is left', async (how) => {
    const where = await folder(`abort-mid-add-${how}`);
    const controller = new AbortController();
    // 1 MiB in pieces of 1 KiB: 1024 writes, each at least one turn of the event loop.
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'), { signal: controller.signal, copyChunkBytes: 1024 });
    const large: SafetensorsTensorInput = { dtype: 'U8', shape: [1 << 20], data: new Uint8Array(1 << 20).fill(7) };
    const outcome = writer.add('large', large).then(() => 'resolved', (error: unknown) => error);
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    if (how === 'abort()') await writer.abort();
    else controller.abort('stop');
    const result = await outcome;
    // The add fails. Before, an aborted signal let it spill the whole tensor and succeed (abort() made it
    // fail too, but only once all of it was spilled: the same outcome, later).
    expect(String(result)).toMatch(how === 'abort()' ? /writing ".*out\.safetensors" was aborted$/ : /writing ".*out\.safetensors" was aborted: stop$/);
    expect(writer.endReason).toMatch(how === 'abort()' ? /^was aborted$/ : /^stopped when a call failed \(writing .* was aborted: stop\)$/);
    expect(await readdir(where)).toEqual([]);
  });

  it('abort() during a finish resolves once the finish has ended, leaving the old file or the whole new one', async () => {
    // Few turns stop it mid-copy; 400 let it write its last byte first (both outcomes are met).
    for (const turns of [0, 1, 3, 10, 40, 400]) {
      const where = await folder(`abort-during-finish-${turns}`);
      const path = join(where, 'out.safetensors');
      await writeFile(path, 'old');
      const writer = await SafetensorsFileWriter.create(path, { copyChunkBytes: 7 });
      for (const name of ['m.big', 'b.codes', 'i.bytes']) await writer.add(name, tensor(name));
      const outcome = writer.finish().then(() => 'finished', (error: unknown) => error);
      for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
      await writer.abort();
      expect(await readdir(where), `after ${turns} turns`).toEqual(['out.safetensors']);
      const bytes = new Uint8Array(await readFile(path));
      const result = await outcome;
      if (result === 'finished') expect(bytes).toEqual(writeSafetensors({ 'm.big': tensor('m.big'), 'b.codes': tensor('b.codes'), 'i.bytes': tensor('i.bytes') }));
      else {
        expect(String(result)).toMatch(/was aborted/);
        expect(new TextDecoder().decode(bytes)).toBe('old');
      }
    }
  });

  it('refuses bad metadata at finish without losing the tensors', async () => {
    const where = await folder('finish-refusal');
    const path = join(where, 'out.safetensors');
    const writer = await SafetensorsFileWriter.create(path);
    await writer.add('x', tensor('a.scale'));
    await expect(writer.finish({ note: 5 } as unknown as Record<string, string>)).rejects.toThrow(/must be a string/);
    expect(writer.endReason).toBe(null);
    await writer.finish({ note: 'fine' });
    expect(new Uint8Array(await readFile(path))).toEqual(writeSafetensors({ x: tensor('a.scale') }, { note: 'fine' }));
    expect(await readdir(where)).toEqual(['out.safetensors']);
  });

  it('refuses a call that overlaps another, which goes on', async () => {
    const where = await folder('overlap');
    const writer = await SafetensorsFileWriter.create(join(where, 'out.safetensors'));
    const first = writer.add('a', tensor('b.codes'));
    await expect(writer.add('b', tensor('a.scale'))).rejects.toThrow(/is busy: await each call before the next/);
    await first;
    await writer.finish();
    expect(await readdir(where)).toEqual(['out.safetensors']);
  });

  it('abort() and an aborted signal leave no new file, and the old one as it was', async () => {
    const where = await folder('aborts');
    const path = join(where, 'out.safetensors');
    await writeFile(path, 'old contents');
    const aborted = await SafetensorsFileWriter.create(path);
    await aborted.add('a', tensor('b.codes'));
    await aborted.abort();
    expect(await readdir(where)).toEqual(['out.safetensors']);
    const controller = new AbortController();
    const signalled = await SafetensorsFileWriter.create(path, { signal: controller.signal });
    await signalled.add('a', tensor('b.codes'));
    controller.abort('stop');
    await expect(signalled.finish()).rejects.toThrow(/writing ".*out\.safetensors" was aborted: stop/);
    expect(await readdir(where)).toEqual(['out.safetensors']);
    expect(await readFile(path, 'utf8')).toBe('old contents');
  });
});

describe('QuantizedContainerFileWriter', () => {
  const entries = (): ContainerEntryInput[] => [
    { name: 'layers.0.e8', matrix: quantize(gaussianMatrix(40, 5, 1), { scheme: 'e8-4bit', seed: 3, nonce: 11 }) },
    { name: 'layers.0.d3', matrix: quantize(gaussianMatrix(31, 4, 2), { scheme: 'd3-q6', seed: 3, nonce: 12, center: true }) },
    { name: 'layers.1.det', matrix: quantize(gaussianMatrix(24, 3, 3), { scheme: 'd3-q6-deterministic', seed: 5 }) },
    { name: 'layers.1.e8det', matrix: quantize(gaussianMatrix(16, 3, 4), { scheme: 'e8-q16-deterministic', seed: 5 }) },
    { name: 'layers.2.int4', matrix: quantize(gaussianMatrix(64, 2, 5), { scheme: 'int4-g32', seed: 1 }) },
    { name: 'layers.2.nvfp4', matrix: quantize(gaussianMatrix(48, 2, 6), { scheme: 'nvfp4', seed: 1 }) },
    { name: 'layers.3.weightonly', matrix: quantizeWeights(gaussianMatrix(16, 64, 7), null, { method: 'rtn', step: 0.3 }) },
  ];

  it('writes the bytes writeQuantizedContainer gives for the same entries, matrix by matrix', async () => {
    const where = await folder('container');
    const path = join(where, 'model.lmq.safetensors');
    const writer = await QuantizedContainerFileWriter.create(path, { metadata: { model: 'demo' } });
    for (const entry of entries()) await writer.add(entry);
    await writer.finish();
    const expected = writeQuantizedContainer(entries(), { model: 'demo' });
    expect(new Uint8Array(await readFile(path))).toEqual(expected);
    expect(readQuantizedContainer(expected).formatVersion).toBe(2);
    expect(await readdir(where)).toEqual(['model.lmq.safetensors']);
  });

  it('create refuses a misspelt option ({ metdata } wrote a container without the metadata); the file functions refuse theirs', async () => {
    const where = await folder('options');
    const path = join(where, 'm.safetensors');
    await expect(QuantizedContainerFileWriter.create(path, { metdata: { model: 'demo' } } as never)).rejects.toThrow(
      /^QuantizedContainerFileWriter\.create options: unknown option 'metdata' \(did you mean 'metadata'\?\); known: metadata, signal$/,
    );
    await expect(writeQuantizedContainerFile(path, entries(), {}, { sigal: null } as never)).rejects.toThrow(/^writeQuantizedContainerFile options: unknown option 'sigal' \(did you mean 'signal'\?\)/);
    await expect(openQuantizedContainerFile(path, { maxHeaderByte: 1 } as never)).rejects.toThrow(/^openQuantizedContainerFile options: unknown option 'maxHeaderByte'/);
    expect(await readdir(where)).toEqual([]);
  });

  it('gives the format version the in-memory writer does: 1 without an E8 universal matrix, whatever comes first', async () => {
    const where = await folder('versions');
    const path = join(where, 'v.safetensors');
    const withoutE8 = entries().filter((e) => !e.name.endsWith('.e8'));
    const writer = await QuantizedContainerFileWriter.create(path);
    for (const entry of withoutE8) await writer.add(entry);
    await writer.finish();
    const bytes = new Uint8Array(await readFile(path));
    expect(bytes).toEqual(writeQuantizedContainer(withoutE8));
    expect(readQuantizedContainer(bytes).formatVersion).toBe(1);
    // The E8 matrix last, after entries checked under version 1: still the same bytes, version 2.
    const e8Last = [...withoutE8, ...entries().filter((e) => e.name.endsWith('.e8'))];
    const late = await QuantizedContainerFileWriter.create(path);
    for (const entry of e8Last) await late.add(entry);
    await late.finish();
    expect(new Uint8Array(await readFile(path))).toEqual(writeQuantizedContainer(e8Last));
  });

  it('refuses what writeQuantizedContainer refuses, with its message, and goes on as if the refused entry had not come', async () => {
    const where = await folder('container-refusals');
    const path = join(where, 'x.safetensors');
    const [first, second] = entries() as [ContainerEntryInput, ContainerEntryInput];
    const writer = await QuantizedContainerFileWriter.create(path, { metadata: { model: 'demo' } });
    await writer.add(first);
    await expect(writer.add(first)).rejects.toThrow(/entry 1: the name "layers\.0\.e8" is used twice/);
    // A matrix that fails its checks in packing, under a name that stays free.
    const broken = { ...(second.matrix as UniversalLatticeMatrix), norms: new Float32Array(1) };
    await expect(writer.add({ name: second.name, matrix: broken })).rejects.toThrow(/writeQuantizedContainer: matrix "layers\.0\.d3"/);
    // E8 matrices of one and of two dither keys (a version-1 matrix stands in as one key).
    const e8 = first.matrix as UniversalLatticeMatrix;
    await expect(writer.add({ name: 'old', matrix: { ...e8, ditherKeys: 1 } })).rejects.toThrow(/cannot share a container/);
    // A name whose tensors' names safetensors refuses: refused before any of its tensors is spilled.
    await expect(writer.add({ name: 'bad\ud800', matrix: second.matrix })).rejects.toThrow(/writeQuantizedContainer: matrix "bad\\ud800": tensor name "bad\\ud800\..*" has a lone surrogate/);
    await writer.add(second);
    await writer.finish();
    expect(new Uint8Array(await readFile(path))).toEqual(writeQuantizedContainer([first, second], { model: 'demo' }));
    expect(await readdir(where)).toEqual(['x.safetensors']);
    // Metadata is checked when the writer is made, before any work.
    await rm(path);
    await expect(QuantizedContainerFileWriter.create(path, { metadata: { note: 3 } as unknown as Record<string, string> })).rejects.toThrow(/container metadata "note" must be a string, got 3/);
    await expect(QuantizedContainerFileWriter.create(path, { metadata: { note: 'a\ud800' } })).rejects.toThrow(/metadata value of "user\.note" "a\\ud800" has a lone surrogate/);
    expect(await readdir(where)).toEqual([]);
  });

  it('leaves no file after abort(), whatever was added or refused', async () => {
    const where = await folder('container-abort');
    const [first] = entries() as [ContainerEntryInput];
    const writer = await QuantizedContainerFileWriter.create(join(where, 'x.safetensors'));
    await writer.add(first);
    await expect(writer.add(first)).rejects.toThrow(/is used twice/);
    await writer.abort();
    expect(await readdir(where)).toEqual([]);
    await expect(writer.add({ name: 'later', matrix: first.matrix })).rejects.toThrow(/QuantizedContainerFileWriter: the writer was aborted$/);
    // Refused before packing: a matrix that packing would refuse meets the same message.
    const broken = { ...(first.matrix as UniversalLatticeMatrix), norms: new Float32Array(1) };
    await expect(writer.add({ name: 'broken', matrix: broken })).rejects.toThrow(/QuantizedContainerFileWriter: the writer was aborted$/);
  });

  it('an aborted signal stops the writer before an add packs its entry, leaving no file', async () => {
    const where = await folder('container-signal');
    const [first, second] = entries() as [ContainerEntryInput, ContainerEntryInput];
    const controller = new AbortController();
    const writer = await QuantizedContainerFileWriter.create(join(where, 'x.safetensors'), { signal: controller.signal });
    await writer.add(first);
    controller.abort('stop');
    // A matrix that packing would refuse: the signal is met first.
    const broken = { ...(second.matrix as UniversalLatticeMatrix), norms: new Float32Array(1) };
    await expect(writer.add({ name: 'late', matrix: broken })).rejects.toThrow(/writing ".*x\.safetensors" was aborted: stop/);
    expect(await readdir(where)).toEqual([]);
    await expect(writer.add(second)).rejects.toThrow(/the writer stopped when a call failed \(writing ".*x\.safetensors" was aborted: stop\)/);
  });

  it('refuses an add after finish before packing the entry', async () => {
    const where = await folder('container-after-finish');
    const [first, second] = entries() as [ContainerEntryInput, ContainerEntryInput];
    const writer = await QuantizedContainerFileWriter.create(join(where, 'x.safetensors'));
    await writer.add(first);
    await writer.finish();
    const broken = { ...(second.matrix as UniversalLatticeMatrix), norms: new Float32Array(1) };
    await expect(writer.add({ name: 'late', matrix: broken })).rejects.toThrow(/QuantizedContainerFileWriter: the writer has finished$/);
    await expect(writer.add(second)).rejects.toThrow(/the writer has finished$/);
    expect(await readdir(where)).toEqual(['x.safetensors']);
  });

  it('refuses an add that overlaps another, which goes on', async () => {
    const where = await folder('container-overlap');
    const path = join(where, 'x.safetensors');
    const [first, second] = entries();
    const writer = await QuantizedContainerFileWriter.create(path);
    const running = writer.add(first as ContainerEntryInput);
    await expect(writer.add(second as ContainerEntryInput)).rejects.toThrow(/an add or finish is running; await each call before the next/);
    await running;
    await writer.finish();
    expect(readQuantizedContainer(new Uint8Array(await readFile(path))).entries.map((e) => e.name)).toEqual(['layers.0.e8']);
  });
});
