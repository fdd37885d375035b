import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeQuantizedContainer, type ContainerEntryInput } from '../../src/format/container.js';
import { QuantizedContainerFileWriter, writeQuantizedContainerFile } from '../../src/format/containerFile.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix, ScalarQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights, WeightOnlyQuantized } from '../../src/weightonly/index.js';

/*
 * The container writers read what they are given when the call is made (audit helper-188): an app
 * may reuse an entry object, a matrix's arrays or a metadata record for the next matrix once the call
 * is made, before it settles. Before, `QuantizedContainerFileWriter.add` packed its entry only after
 * an await (the next matrix was written under this one's name), both writers wrote a matrix's norms,
 * scales, … from the caller's arrays after awaits (a refilled array was written with the checksum of
 * the old values: the write succeeded, the read refused it), and `create` copied its metadata after an
 * await (a changed value was written unchecked). Each check compares the file with the bytes of
 * `writeQuantizedContainer` for what was asked.
 */

let directory = '';
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'writer-inputs-test-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

const q1 = quantize(gaussianMatrix(64, 3, 1), { scheme: 'e8-4bit', nonce: 1n }) as UniversalLatticeMatrix;
const q2 = quantize(gaussianMatrix(64, 3, 2), { scheme: 'e8-4bit', nonce: 2n }) as UniversalLatticeMatrix;
const scalar = quantize(gaussianMatrix(64, 3, 3), { scheme: 'int4-g32' }) as ScalarQuantizedMatrix;
const weightOnly = quantizeWeights(gaussianMatrix(16, 32, 4), null, { method: 'rtn', rate: 3 });

/** The container `writeQuantizedContainer` writes for `entries` (and `metadata`). */
function expected(entries: readonly ContainerEntryInput[], metadata?: Record<string, string>): Uint8Array {
  return writeQuantizedContainer(entries, metadata);
}

describe('container writers read their inputs when the call is made', () => {
  it('QuantizedContainerFileWriter.add: the entry object reused for the next matrix', async () => {
    const path = join(directory, 'reused-entry.lmq.safetensors');
    const writer = await QuantizedContainerFileWriter.create(path);
    const entry: { name: string; matrix: UniversalLatticeMatrix } = { name: 'first', matrix: q1 };
    const added = writer.add(entry);
    entry.name = 'second';
    entry.matrix = q2;
    await added;
    await writer.finish();
    // Before: one matrix named 'second' holding q2.
    expect(new Uint8Array(await readFile(path))).toEqual(expected([{ name: 'first', matrix: q1 }]));
  });

  it("QuantizedContainerFileWriter.add: the matrix's arrays refilled after the call", async () => {
    const path = join(directory, 'refilled.lmq.safetensors');
    const writer = await QuantizedContainerFileWriter.create(path);
    const lattice = { ...q1, norms: q1.norms.slice() };
    const ints = { ...scalar, scales: (scalar.scales as Float32Array).slice() };
    const first = writer.add({ name: 'lattice', matrix: lattice });
    lattice.norms.fill(5); // before: packed after this, the file held norms of 5
    await first;
    const second = writer.add({ name: 'int4', matrix: ints });
    await new Promise((resolve) => setImmediate(resolve)); // the spill has begun
    ints.scales.fill(7); // before: written with the old scales' checksum
    await second;
    await writer.finish();
    expect(new Uint8Array(await readFile(path))).toEqual(expected([{ name: 'lattice', matrix: q1 }, { name: 'int4', matrix: scalar }]));
  });

  it('QuantizedContainerFileWriter.create: the metadata record changed before it resolves', async () => {
    const path = join(directory, 'metadata.lmq.safetensors');
    const metadata: Record<string, string> = { model: 'asked' };
    const creating = QuantizedContainerFileWriter.create(path, { metadata });
    metadata.model = '\ud800'; // before: written unchecked, then refused by finish after all the work
    const writer = await creating;
    await writer.add({ name: 'w', matrix: q1 });
    await writer.finish();
    expect(new Uint8Array(await readFile(path))).toEqual(expected([{ name: 'w', matrix: q1 }], { model: 'asked' }));
  });

  it("writeQuantizedContainerFile: a matrix's arrays refilled after the call", async () => {
    const path = join(directory, 'whole.lmq.safetensors');
    const lattice = { ...q1, norms: q1.norms.slice() };
    const columnScales = weightOnly.columnScales.slice();
    const writing = writeQuantizedContainerFile(path, [
      { name: 'lattice', matrix: lattice },
      { name: 'weights', matrix: weightOnly },
    ]);
    lattice.norms.fill(5);
    weightOnly.columnScales.fill(3);
    try {
      // Before: the write succeeded with norms and scales that were not the checksummed ones.
      await writing;
    } finally {
      weightOnly.columnScales.set(columnScales);
    }
    expect(new Uint8Array(await readFile(path))).toEqual(expected([{ name: 'lattice', matrix: q1 }, { name: 'weights', matrix: weightOnly }]));
  });

  it("both writers: a weight-only matrix's packed codes as given to fromPacked (the caller's words), refilled after the call", async () => {
    // fromPacked keeps the packed words as given (packedCodes returns them): a converter that reuses
    // one buffer for each next matrix's words refills them while the write runs.
    for (const how of ['add', 'writeQuantizedContainerFile'] as const) {
      const words = weightOnly.packedCodes.words.slice();
      const given = WeightOnlyQuantized.fromPacked({
        method: weightOnly.method,
        rotation: weightOnly.rotation,
        seed: weightOnly.seed,
        packed: { ...weightOnly.packedCodes, words },
        columnScales: weightOnly.columnScales.slice(),
        rowScales: weightOnly.rowScales?.slice() ?? null,
      });
      const path = join(directory, `packed-${how}.lmq.safetensors`);
      let writing: Promise<void>;
      if (how === 'add') {
        const writer = await QuantizedContainerFileWriter.create(path);
        writing = writer.add({ name: 'weights', matrix: given }).then(() => writer.finish());
      } else {
        writing = writeQuantizedContainerFile(path, [{ name: 'weights', matrix: given }]);
      }
      words.fill(0x12345678);
      await writing;
      expect(new Uint8Array(await readFile(path)), how).toEqual(expected([{ name: 'weights', matrix: weightOnly }]));
    }
  });

  it('writeQuantizedContainerFile: the signal it was given, not one put in its options object afterwards', async () => {
    const path = join(directory, 'signal.lmq.safetensors');
    const first = new AbortController();
    const options: { signal: AbortSignal } = { signal: first.signal };
    const writing = writeQuantizedContainerFile(path, [{ name: 'w', matrix: q1 }], undefined, options);
    options.signal = new AbortController().signal; // for the next write
    first.abort();
    // Before: the write obeyed the new signal and wrote the file.
    await expect(writing).rejects.toThrow(/abort/i);
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });
});
