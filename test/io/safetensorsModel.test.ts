import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { openSafetensorsModel } from '../../src/io/safetensorsModel.js';

/*
 * Models in several safetensors files behind a Hugging Face shard index: tensors read from the shard
 * that holds them, metadata kept, and an index that does not describe its shards refused before any
 * tensor is read, naming the tensor and the file.
 */

let directory = '';
const SHARD_1 = 'model-00001-of-00002.safetensors';
const SHARD_2 = 'model-00002-of-00002.safetensors';
const up = Float32Array.from({ length: 8 * 12 }, (_, i) => i / 7 - 3);
const down = Float32Array.from({ length: 12 * 8 }, (_, i) => Math.sin(i));
const norm = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
const weightMap = { 'up.weight': SHARD_1, 'norm.weight': SHARD_1, 'down.weight': SHARD_2 };

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'safetensors-model-test-'));
  await writeSafetensorsFile(join(directory, SHARD_1), { 'up.weight': { dtype: 'F32', shape: [12, 8], data: up }, 'norm.weight': { dtype: 'F32', shape: [8], data: norm } }, { format: 'pt', part: 'one' });
  await writeSafetensorsFile(join(directory, SHARD_2), { 'down.weight': { dtype: 'F32', shape: [8, 12], data: down } }, { format: 'pt', part: 'two' });
  await mkdir(join(directory, 'folder.json'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Writes `index` (an object, as JSON; text or bytes as they are) as `name` in the test folder and returns its path. */
async function indexFile(name: string, index: unknown): Promise<string> {
  const path = join(directory, name);
  await writeFile(path, typeof index === 'string' || index instanceof Uint8Array ? index : JSON.stringify(index));
  return path;
}

async function refusalOf(path: string): Promise<string> {
  try {
    const model = await openSafetensorsModel(path);
    await model.close();
  } catch (error) {
    expect(error).toBeInstanceOf(LatticeMatmulError);
    return (error as Error).message;
  }
  throw new Error(`expected ${path} to be refused`);
}

describe('a model in shards behind a shard index', () => {
  it('lists the tensors shard by shard, reads each from its shard, and keeps the metadata', async () => {
    const path = await indexFile('model.safetensors.index.json', { metadata: { total_size: 4 * (96 + 96 + 8), note: 'kept' }, weight_map: weightMap });
    const model = await openSafetensorsModel(path);
    try {
      // Shard 1 first (the index mentions it first), its tensors in data order; then shard 2.
      expect(model.tensors.map((t) => t.name)).toEqual(['norm.weight', 'up.weight', 'down.weight']);
      expect(model.info('down.weight').shape).toEqual([8, 12]);
      expect(await model.readTensorAsFloat32('up.weight')).toEqual(up);
      expect(await model.readTensorAsFloat32('down.weight')).toEqual(down);
      expect(await model.readTensorAsFloat32('norm.weight')).toEqual(norm);
      // The index's metadata as text, over what every shard's __metadata__ shares ("part" differs: dropped).
      expect(model.metadata).toEqual({ format: 'pt', total_size: '800', note: 'kept' });
      expect(model.files.map((f) => f.path)).toEqual([path, join(directory, SHARD_1), join(directory, SHARD_2)]);
      expect(model.files[2]?.metadata).toEqual({ format: 'pt', part: 'two' });
      await expect(model.readTensorBytes('missing.weight')).rejects.toThrow(/hold no tensor named "missing\.weight"/);
    } finally {
      await model.close();
    }
    await model.close(); // twice is harmless
  });

  it('follows shards that are symbolic links in the index folder (a Hugging Face cache snapshot links them to its blobs)', async () => {
    const snapshot = join(directory, 'snapshot');
    await mkdir(snapshot);
    await symlink(join('..', SHARD_1), join(snapshot, SHARD_1));
    await symlink(join('..', SHARD_2), join(snapshot, SHARD_2));
    const path = join(snapshot, 'model.safetensors.index.json');
    await writeFile(path, JSON.stringify({ weight_map: weightMap }));
    const model = await openSafetensorsModel(path);
    try {
      expect(await model.readTensorAsFloat32('up.weight')).toEqual(up);
      expect(await model.readTensorAsFloat32('down.weight')).toEqual(down);
    } finally {
      await model.close();
    }
  });

  it('a plain .safetensors path is one file', async () => {
    const model = await openSafetensorsModel(join(directory, SHARD_2));
    try {
      expect(model.tensors.map((t) => t.name)).toEqual(['down.weight']);
      expect(model.files).toEqual([{ path: join(directory, SHARD_2), metadata: { format: 'pt', part: 'two' } }]);
      expect(await model.readTensorAsFloat32('down.weight')).toEqual(down);
    } finally {
      await model.close();
    }
  });

  it("keeps a shard's metadata entry only when every shard has it, with the same value (three shards)", async () => {
    const shards = ['m3-a.safetensors', 'm3-b.safetensors', 'm3-c.safetensors'];
    const shardMetadata: Record<string, string>[] = [
      { format: 'pt', origin: 'x', step: '1' },
      { format: 'pt', origin: 'x', step: '1' },
      { format: 'pt', step: '2' }, // no "origin"; another "step"
    ];
    for (const [k, shard] of shards.entries()) {
      await writeSafetensorsFile(join(directory, shard), { [`t${k}`]: { dtype: 'F32', shape: [1], data: Float32Array.of(k) } }, shardMetadata[k]);
    }
    const path = await indexFile('three.index.json', { weight_map: { t0: shards[0], t1: shards[1], t2: shards[2] } });
    const model = await openSafetensorsModel(path);
    try {
      expect(model.metadata).toEqual({ format: 'pt' });
    } finally {
      await model.close();
    }
  });

  it('keeps metadata values that are numbers, true, false or null as their JSON text', async () => {
    const path = await indexFile('literals.index.json', `{"metadata": {"t": true, "f": false, "n": null, "x": -1.5e3}, "weight_map": ${JSON.stringify(weightMap)}}`);
    const model = await openSafetensorsModel(path);
    try {
      // format: what both shards' __metadata__ share; the four others as the index writes them.
      expect(model.metadata).toEqual({ format: 'pt', t: 'true', f: 'false', n: 'null', x: '-1.5e3' });
    } finally {
      await model.close();
    }
  });

  it('names "__proto__" as a tensor or a metadata key are entries like any other', async () => {
    await writeSafetensorsFile(join(directory, 'proto.safetensors'), { ['__proto__']: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
    const path = await indexFile('proto.index.json', '{"metadata": {"__proto__": "meta"}, "weight_map": {"__proto__": "proto.safetensors"}}');
    const model = await openSafetensorsModel(path);
    try {
      expect(model.tensors.map((t) => t.name)).toEqual(['__proto__']);
      expect(Object.getPrototypeOf(model.metadata)).toBe(Object.prototype);
      expect(Object.entries(model.metadata ?? {})).toEqual([['__proto__', 'meta']]);
    } finally {
      await model.close();
    }
  });

  it.each([
    ['cut short', '{"weight_map": ', /"weight_map" must be an object of tensor name → shard file name, found the end of the text/],
    ['a byte that is not UTF-8', Uint8Array.from([...new TextEncoder().encode('{"weight_map": {"w": "'), 0xff, ...new TextEncoder().encode('"}}')]), /shard index ".*bad\.index\.json" \(26 bytes\) is not valid UTF-8/],
    ['an array', '[]', /the index must be a JSON object, found "\[\]"/],
    ['no weight_map', { metadata: {} }, /the index has no "weight_map"/],
    ['another field', { weight_map: weightMap, extra: 1 }, /the index has an unexpected field "extra"; expected "metadata" and "weight_map"/],
    // A second "weight_map" or "metadata" is refused, not merged into or over the first (JSON.parse keeps the last).
    ['"weight_map" twice', `{"weight_map": {"up.weight": "${SHARD_1}", "norm.weight": "${SHARD_1}"}, "weight_map": {"down.weight": "${SHARD_2}"}}`, /duplicate key "weight_map" in the index/],
    ['"metadata" twice', `{"metadata": {"a": "1"}, "metadata": {"b": "2"}, "weight_map": ${JSON.stringify(weightMap)}}`, /duplicate key "metadata" in the index/],
    ['text after its object', `${JSON.stringify({ weight_map: weightMap })} {}`, /unexpected "{}" after the index object/],
    ['a tensor named twice', `{"weight_map": {"up.weight": "${SHARD_1}", "up.weight": "${SHARD_2}"}}`, /duplicate key "up\.weight" in "weight_map"/],
    ['metadata nested', { metadata: { a: [[[1]]] }, weight_map: weightMap }, /the "metadata" value of "a" must be a string, a number, true, false or null/],
    ['a lone surrogate in its metadata', `{"metadata": {"k": "\\ud800"}, "weight_map": {"up.weight": "${SHARD_1}"}}`, /lone high surrogate \\ud800 in a string \(the "metadata" value of "k"\)/],
    ['an empty weight_map', { weight_map: {} }, /"weight_map" lists no tensor/],
    ['a shard that is not a string', { weight_map: { 'up.weight': 1 } }, /expected a string \(the shard of tensor "up\.weight" in "weight_map"; it must be a file name\), found "1}}"/],
    ['a shard above the folder', { weight_map: { 'up.weight': `../${SHARD_1}` } }, /weight_map\["up\.weight"\] is "\.\.\/model-00001-of-00002\.safetensors"; a shard must be a file name in the index's folder, not a path/],
    ['an absolute shard path', { weight_map: { 'up.weight': '/etc/passwd' } }, /a shard must be a file name in the index's folder, not a path/],
    ['a Windows-style shard path', { weight_map: { 'up.weight': 'sub\\x.safetensors' } }, /not a path/],
    ['the folder itself', { weight_map: { 'up.weight': '..' } }, /not a path/],
    ['metadata that is not an object', { metadata: [1], weight_map: weightMap }, /"metadata" must be an object, found "\[1\]/],
    ['a missing shard', { weight_map: { ...weightMap, 'extra.weight': 'model-00003-of-00003.safetensors' } }, /cannot open safetensors file .*model-00003-of-00003\.safetensors/],
    ['a tensor its shard lacks', { weight_map: { ...weightMap, 'lm_head.weight': SHARD_2 } }, /maps tensor "lm_head\.weight" to shard "model-00002-of-00002\.safetensors", which does not hold it; are the index and its shards from one download\?/],
    ['a tensor the index does not list', { weight_map: { 'up.weight': SHARD_1, 'down.weight': SHARD_2 } }, /shard "model-00001-of-00002\.safetensors" holds tensor "norm\.weight", which the index does not list/],
    ['a tensor mapped to another shard', { weight_map: { ...weightMap, 'down.weight': SHARD_1, 'other.weight': SHARD_2 } }, /shard "model-00002-of-00002\.safetensors" holds tensor "down\.weight", which the index maps to "model-00001-of-00002\.safetensors"/],
  ])('refuses an index with %s', async (_, index, message) => {
    expect(await refusalOf(await indexFile('bad.index.json', index))).toMatch(message);
  });

  it("refuses a path that is not a non-empty string with the library's error (a TypeError from path.toLowerCase before)", async () => {
    for (const path of [undefined, null, 7, {}, [], '']) {
      expect(await refusalOf(path as never), String(path)).toMatch(/^safetensors path must be a non-empty string, got /);
    }
  });

  it('refuses an index that is not a regular file, or is not there', async () => {
    expect(await refusalOf(join(directory, 'folder.json'))).toMatch(/shard index ".*folder\.json" is not a regular file/);
    expect(await refusalOf(join(directory, 'absent.index.json'))).toMatch(/cannot open shard index ".*absent\.index\.json"/);
  });

  it('refuses an index of more than 100 MB (the safetensors header bound) before reading it', async () => {
    // A sparse file: nothing is written, and the refusal must come from its size, not from parsing it.
    const path = await indexFile('huge.index.json', '');
    await truncate(path, 100_000_001);
    expect(await refusalOf(path)).toMatch(/^shard index ".*huge\.index\.json" has 100000001 bytes, more than the 100000000 an index may have$/);
  });

  it("refuses a model's folder (what a download gives) naming what to pass instead", async () => {
    // A Hugging Face model is a folder: its path is what a user types first.
    const folder = await mkdtemp(join(tmpdir(), 'safetensors-model-folder-'));
    try {
      // A folder without an index, then with two files (not hidden ones), then with its index.
      expect(await refusalOf(folder)).toMatch(/safetensors path ".*" is not a regular file but a folder: pass a safetensors file \(it holds none\)$/);
      await writeSafetensorsFile(join(folder, 'model.safetensors'), { 'up.weight': { dtype: 'F32', shape: [12, 8], data: up } });
      await writeFile(join(folder, '.model.safetensors.tmp'), 'spill');
      // Hidden files whose names end in .safetensors are not offered either: macOS's AppleDouble
      // `._model.safetensors` beside a copied model (helper-180: the filter was untested, the spill
      // file's name ends in .tmp).
      await writeFile(join(folder, '._model.safetensors'), '');
      expect(await refusalOf(folder)).toMatch(/is not a regular file but a folder: pass the safetensors file in it, ".*[/\\]model\.safetensors"$/);
      await writeFile(join(folder, 'other.safetensors'), '');
      expect(await refusalOf(folder)).toMatch(/: pass one of its 2 safetensors files, ".*[/\\]model\.safetensors", ".*[/\\]other\.safetensors"$/);
      // Shards without their index: three named, then '…' (helper-180: the cut was untested).
      await writeFile(join(folder, 'model-00001-of-00002.safetensors'), '');
      await writeFile(join(folder, 'model-00002-of-00002.safetensors'), '');
      expect(await refusalOf(folder)).toMatch(/: pass one of its 4 safetensors files, ".*[/\\]model-00001-of-00002\.safetensors", ".*[/\\]model-00002-of-00002\.safetensors", ".*[/\\]model\.safetensors", …$/);
      await writeFile(join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: {} }));
      expect(await refusalOf(folder)).toMatch(/: pass the shard index in it, ".*[/\\]model\.safetensors\.index\.json"$/);
      // Two indexes (a variant's beside the main one, as in repositories with fp16 variants): both named.
      await writeFile(join(folder, 'model.fp16.safetensors.index.json'), JSON.stringify({ weight_map: {} }));
      expect(await refusalOf(folder)).toMatch(/: pass one of the shard indexes in it, ".*[/\\]model\.fp16\.safetensors\.index\.json", ".*[/\\]model\.safetensors\.index\.json"$/);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
