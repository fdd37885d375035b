import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { CONTAINER_FORMAT_VERSION, readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { QuantizedContainerFileWriter } from '../../src/format/containerFile.js';
import { dequantize } from '../../src/product/dequantize.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matvecAT } from '../../src/product/matvec.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { expectedNmse } from '../../src/product/expectedError.js';
import { productNmse } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { editDescription, resealed } from './containerFuzzProperty.js';

/*
 * Container format versions (docs/FORMAT.md §9). Version 2 changed one thing: E8's universal dither
 * hashes its second word with a second column key (`DitherKeyCount`, src/quantize/universalCode.ts).
 * fixtures/universal-v1.safetensors was written by the library before that change (at a0ffad0, format
 * version 1), and fixtures/universal-v1.expected.json holds what `dequantize` returned for its entries
 * then: a reader must keep decoding a version-1 file to exactly those values (a regression fixture of
 * the former implementation's output, on purpose).
 */

const fixture = new URL('./fixtures/', import.meta.url);
/** sha256 of an f32 array's bytes, as the fixtures' .expected.json files hold them. */
const sha = (data: Float32Array): string => createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
const v1Bytes = (): Uint8Array => new Uint8Array(readFileSync(new URL('universal-v1.safetensors', fixture)));
const v1Expected = (): Record<string, number[]> =>
  (JSON.parse(readFileSync(new URL('universal-v1.expected.json', fixture), 'utf8')) as { entries: Record<string, number[]> }).entries;

const universalOf = (bytes: Uint8Array, name: string): UniversalLatticeMatrix => {
  const entry = readQuantizedContainer(bytes).get(name);
  if (entry.kind !== 'universal') throw new Error(`${name} is not universal`);
  return entry.matrix;
};

const versionOf = (bytes: Uint8Array): number => readQuantizedContainer(bytes).formatVersion;

describe('container format versions', () => {
  it('a version-1 file still decodes to the values its writer gave (E8 with one dither key, D3 unchanged)', () => {
    const bytes = v1Bytes();
    expect(versionOf(bytes)).toBe(1);
    const expected = v1Expected();
    expect(Object.keys(expected).sort()).toEqual(['d3_q6', 'e8_2bit', 'e8_q16_centred']);
    for (const [name, values] of Object.entries(expected)) {
      const m = universalOf(bytes, name);
      expect(m.ditherKeys, name).toBe(m.scheme.lattice === 'E8' ? 1 : 2);
      expect(Array.from(dequantize(m).data as Float32Array), name).toEqual(values);
    }
  });

  it('the one-key decode is what the version-1 E8 codes need: read as two keys they decode elsewhere', () => {
    const m = universalOf(v1Bytes(), 'e8_2bit');
    const right = decodeRotated(m);
    const wrong = decodeRotated({ ...m, ditherKeys: 2 });
    let differ = 0;
    for (let i = 0; i < right.length; i++) if (right[i] !== wrong[i]) differ++;
    // Word 1 holds the fields of coordinates 0, 5, 6 and 7: half of the entries.
    expect(differ).toBeGreaterThan(0.4 * right.length);
  });

  it('writes version 2 only for a container with an E8 matrix of two dither keys, version 1 otherwise', () => {
    expect(CONTAINER_FORMAT_VERSION).toBe(3);
    const e8 = quantize(gaussianMatrix(16, 2, 1), { scheme: 'e8-2bit', seed: 1, nonce: 7 });
    const d3 = quantize(gaussianMatrix(12, 2, 2), { scheme: 'd3-q6', seed: 1, nonce: 8 });
    const deterministic = quantize(gaussianMatrix(16, 2, 3), { scheme: 'e8-q16-deterministic', seed: 1 });
    expect(e8.ditherKeys).toBe(2);
    const withE8 = writeQuantizedContainer([{ name: 'e8', matrix: e8 }, { name: 'd3', matrix: d3 }]);
    expect(versionOf(withE8)).toBe(2);
    expect(universalOf(withE8, 'e8').ditherKeys).toBe(2);
    expect(Array.from(dequantize(universalOf(withE8, 'e8')).data)).toEqual(Array.from(dequantize(e8).data));
    // Older readers read these: nothing in them changed.
    expect(versionOf(writeQuantizedContainer([{ name: 'd3', matrix: d3 }, { name: 'det', matrix: deterministic }]))).toBe(1);
    // A version-1 E8 matrix written again keeps its version (and its decode).
    const old = universalOf(v1Bytes(), 'e8_2bit');
    const again = writeQuantizedContainer([{ name: 'old', matrix: old }, { name: 'd3', matrix: d3 }]);
    expect(versionOf(again)).toBe(1);
    expect(Array.from(dequantize(universalOf(again, 'old')).data)).toEqual(v1Expected()['e8_2bit']);
  });

  it('decides on the resolved scheme: an E8 matrix whose scheme is a preset name gets version 2 and decodes as written', () => {
    const e8 = quantize(gaussianMatrix(16, 2, 1), { scheme: 'e8-2bit', seed: 1, nonce: 7 });
    const named = { ...e8, scheme: 'e8-2bit' } as unknown as UniversalLatticeMatrix;
    const bytes = writeQuantizedContainer([{ name: 'e8', matrix: named }]);
    expect(versionOf(bytes)).toBe(2);
    expect(Array.from(dequantize(universalOf(bytes, 'e8')).data)).toEqual(Array.from(dequantize(e8).data));
    const old = universalOf(v1Bytes(), 'e8_2bit');
    expect(() => writeQuantizedContainer([{ name: 'old', matrix: old }, { name: 'new', matrix: named }])).toThrow(/cannot share a container/);
  });

  it('writes version 3 for a two-window rotation of 256 < n ≤ 1024 rows (every kind), and only then', () => {
    const a = gaussianMatrix(300, 3, 4);
    for (const scheme of ['d3-q6', 'e8-2bit', 'd3-q6-deterministic', 'int4-g32'] as const) {
      const nonce = scheme === 'd3-q6' || scheme === 'e8-2bit' ? { nonce: 5 } : {};
      const q = quantize(a, { scheme, seed: 2, ...nonce });
      expect(q.length, scheme).toBe(300);
      const bytes = writeQuantizedContainer([{ name: 'w', matrix: q }]);
      expect(versionOf(bytes), scheme).toBe(3);
      expect(Array.from(dequantize(readQuantizedContainer(bytes).get('w').matrix as typeof q).data), scheme).toEqual(Array.from(dequantize(q).data));
      // Time-shared, the same rows take the padded one-stage rotation (320), which older versions hold.
      if (scheme !== 'int4-g32') {
        const shared = quantize(a, { scheme, seed: 2, ...nonce, keepFraction: 0.5 });
        expect(shared.length, scheme).toBe(320);
        expect(versionOf(writeQuantizedContainer([{ name: 'w', matrix: shared }])), scheme).toBe(scheme.startsWith('e8') ? 2 : 1);
      }
    }
    // Unrotated, a Hadamard length, n ≤ 256, or n > 1024: no version 3.
    expect(versionOf(writeQuantizedContainer([{ name: 'w', matrix: quantize(a, { scheme: 'd3-q6', seed: 2, rotate: false }) }]))).toBe(1);
    for (const n of [100, 768, 1100]) {
      expect(versionOf(writeQuantizedContainer([{ name: 'w', matrix: quantize(gaussianMatrix(n, 1, 5), { scheme: 'd3-q6', seed: 2 }) }])), `n = ${n}`).toBe(1);
    }
    // A weight-only matrix rotated in two windows (rotate: true at n = 300).
    const w = quantizeWeights(gaussianMatrix(300, 40, 6), null, { method: 'rtn', rate: 3, rotate: true, seed: 3 });
    expect(w.rotation).toBe('hadamard');
    const wBytes = writeQuantizedContainer([{ name: 'w', matrix: w }]);
    expect(versionOf(wBytes)).toBe(3);
    const back = readQuantizedContainer(wBytes).get('w');
    expect(back.kind === 'weight-only' && Array.from(back.matrix.decode().data)).toEqual(Array.from(w.decode().data));
    // A version-1 E8 matrix cannot share a container with one that needs version 3.
    const old = universalOf(v1Bytes(), 'e8_2bit');
    expect(() => writeQuantizedContainer([{ name: 'old', matrix: old }, { name: 'w', matrix: w }])).toThrow(/cannot share a container/);
  });

  it('a container of matrices that need version 2 and version 3 is version 3, in either order, in both writers', async () => {
    // e8-q16 at 64 rows: two dither keys (version 2), one window; d3-q6 at 300 rows: two windows (version 3).
    const e8 = quantize(gaussianMatrix(64, 2, 1), { scheme: 'e8-q16', seed: 1, nonce: 2 });
    const d3 = quantize(gaussianMatrix(300, 2, 3), { scheme: 'd3-q6', seed: 1, nonce: 4 });
    expect(versionOf(writeQuantizedContainer([{ name: 'e8', matrix: e8 }]))).toBe(2);
    expect(versionOf(writeQuantizedContainer([{ name: 'd3', matrix: d3 }]))).toBe(3);
    const dir = await mkdtemp(join(tmpdir(), 'lm-versions-'));
    try {
      for (const [first, second] of [
        [e8, d3],
        [d3, e8],
      ] as const) {
        const entries = [
          { name: 'a', matrix: first },
          { name: 'b', matrix: second },
        ];
        const bytes = writeQuantizedContainer(entries);
        expect(versionOf(bytes)).toBe(3);
        const read = readQuantizedContainer(bytes);
        expect(Array.from(dequantize(read.get('b').matrix as typeof second).data)).toEqual(Array.from(dequantize(second).data));
        const path = join(dir, 'c.safetensors');
        const writer = await QuantizedContainerFileWriter.create(path);
        for (const entry of entries) await writer.add(entry);
        await writer.finish();
        expect(Array.from(new Uint8Array(await readFile(path)))).toEqual(Array.from(bytes));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a two-window rotation of n ≤ 1024 in a container of version 1 or 2, and time-sharing over two windows', () => {
    const q = quantize(gaussianMatrix(300, 3, 4), { scheme: 'd3-q6', seed: 2, nonce: 5 });
    const bytes = writeQuantizedContainer([{ name: 'w', matrix: q }]);
    for (const version of ['1', '2']) {
      const old = resealed(bytes, (r) => (r.metadata.format_version = version));
      expect(() => readQuantizedContainer(old)).toThrow(new RegExp(`length is 300, the unpadded two-window rotation of 300 ≤ 1024 rows, which a container of format version ${version} cannot hold`));
    }
    const w = quantizeWeights(gaussianMatrix(300, 40, 6), null, { method: 'rtn', rate: 3, rotate: true, seed: 3 });
    const wOld = resealed(writeQuantizedContainer([{ name: 'w', matrix: w }]), (r) => (r.metadata.format_version = '2'));
    expect(() => readQuantizedContainer(wOld)).toThrow(/rotation is 'hadamard' for n = 300, the unpadded two-window rotation/);
    // keptLength < length over two windows: refused when read (quantize never writes it).
    const shared = resealed(bytes, (r) => editDescription(r, 'w', (d) => (d.keptLength = 150)));
    expect(() => readQuantizedContainer(shared)).toThrow(/keptLength 150 < length 300 \(time-sharing\) over the two-window rotation of 300 rows/);
    // A length that is no rotation of the rows at all.
    const wrong = resealed(bytes, (r) => editDescription(r, 'w', (d) => (d.length = 301)));
    expect(() => readQuantizedContainer(wrong)).toThrow(/length is 301, but the rotation of 300 rows has length 300 or 320/);
  });

  it('a version-2 file of padded rotations (300 → 320, 896 → 1024 rows, written before version 3) decodes as its writer decoded it, and keeps its version', () => {
    const bytes = new Uint8Array(readFileSync(new URL('padded-v2.safetensors', fixture)));
    const expected = (JSON.parse(readFileSync(new URL('padded-v2.expected.json', fixture), 'utf8')) as { entries: Record<string, { length: number; dequantize: string; matvec: string | null }> }).entries;
    const container = readQuantizedContainer(bytes);
    expect(container.formatVersion).toBe(2);
    expect(container.entries.map((e) => e.name).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, want] of Object.entries(expected)) {
      const entry = container.get(name);
      if (entry.kind === 'weight-only') {
        expect(entry.matrix.rotation, name).toBe('haar'); // what rotate: true picked at 300 before version 3
        expect(sha(entry.matrix.decode().data), name).toBe(want.dequantize);
        continue;
      }
      const q = entry.matrix;
      expect([q.length, q.keptLength], name).toEqual([want.length, want.length]);
      expect(sha(dequantize(q).data as Float32Array), name).toBe(want.dequantize);
      expect(sha(matvecAT(q, gaussianMatrix(q.rows, 2, 99)).data), name).toBe(want.matvec);
    }
    // Written again, its matrices need no version 3 (padded plans; E8 with two keys: version 2).
    const again = writeQuantizedContainer(container.entries.map((e) => ({ name: e.name, matrix: container.get(e.name).matrix })));
    expect(versionOf(again)).toBe(2);
  });

  it('a version-3 file (every kind: two-window rotations, time-sharing, centred, deterministic, scalar, weight-only hadamard) decodes as its writer decoded it', () => {
    // fixtures/current-v3.safetensors: written at the commit its .expected.json names; docs/decode_container.py
    // gives the same dequantize bytes (test/format/referenceDecoder.test.ts), so the hashes are not only
    // the library's word. A later change to rotation signs, dither, packing or decoding that alters what a
    // user's existing file decodes to fails here.
    const bytes = new Uint8Array(readFileSync(new URL('current-v3.safetensors', fixture)));
    const expected = (
      JSON.parse(readFileSync(new URL('current-v3.expected.json', fixture), 'utf8')) as {
        entries: Record<string, { kind: string; length: number | null; dequantize: string; matvec: string | null }>;
      }
    ).entries;
    const container = readQuantizedContainer(bytes);
    expect(container.formatVersion).toBe(3);
    expect(container.entries.map((e) => e.name).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, want] of Object.entries(expected)) {
      const entry = container.get(name);
      expect(entry.kind, name).toBe(want.kind);
      if (entry.kind === 'weight-only') {
        expect(sha(entry.matrix.decode().data as Float32Array), name).toBe(want.dequantize);
        continue;
      }
      const q = entry.matrix;
      if ('length' in q) expect(q.length, name).toBe(want.length);
      expect(sha(dequantize(q).data as Float32Array), name).toBe(want.dequantize);
      expect(sha(matvecAT(q, gaussianMatrix(q.rows, 2, 99)).data), name).toBe(want.matvec);
    }
    // Written again from what was read: still version 3, and the same matrices.
    const again = readQuantizedContainer(writeQuantizedContainer(container.entries.map((e) => ({ name: e.name, matrix: container.get(e.name).matrix }))));
    expect(again.formatVersion).toBe(3);
    for (const { name } of again.entries) {
      const entry = again.get(name);
      const data = entry.kind === 'weight-only' ? (entry.matrix.decode().data as Float32Array) : (dequantize(entry.matrix).data as Float32Array);
      expect(sha(data), name).toBe(expected[name]?.dequantize);
    }
  });

  it('a padded matrix of an old file pairs with one quantized now only through rotatedLength, and the refusal says so', () => {
    const container = readQuantizedContainer(new Uint8Array(readFileSync(new URL('padded-v2.safetensors', fixture))));
    const entry = container.get('e8_4bit_896');
    if (entry.kind !== 'universal') throw new Error('not universal');
    const old = entry.matrix;
    expect([old.rows, old.length, old.seed]).toEqual([896, 1024, 12]);
    const b = gaussianMatrix(896, 3, 8);
    const fresh = quantize(b, { scheme: 'e8-4bit', seed: 12, nonce: 3 });
    expect(fresh.length).toBe(896);
    expect(() => matmulAT(old, fresh)).toThrow(
      /^A and B are rotated to different lengths \(1024 and 896 entries for 896 rows\), so their rotations differ: .* quantize the other with rotatedLength: 1024 \(and the same seed\) to pair them$/,
    );
    const paired = quantize(b, { scheme: 'e8-4bit', seed: 12, nonce: 3, rotatedLength: old.length });
    expect(paired.length).toBe(1024);
    // Against the product of the decoded A, the error is B's alone: below the guarantee's for both (≈ 0.013),
    // where a B rotated otherwise would give an NMSE near 1.
    const decodedA = dequantize(old) as { rows: number; cols: number; data: Float32Array };
    expect(productNmse(matmulAT(old, paired), decodedA, b)).toBeLessThan(4 * expectedNmse(old, paired));
    // rotatedLength is checked against n, and needs a rotation.
    expect(() => quantize(b, { scheme: 'e8-4bit', seed: 12, rotatedLength: 960 })).toThrow(/rotatedLength 960 is not a rotated length of 896 rows \(896 or 1024\)/);
    expect(() => quantize(b, { scheme: 'e8-4bit', rotate: false, rotatedLength: 1024 })).toThrow(/rotatedLength applies to rotated matrices only/);
    expect(() => quantize(b, { scheme: 'e8-4bit', rotatedLength: 0 })).toThrow(/rotatedLength must be a positive integer, got 0/);
    // Time-sharing over the two-window length is refused; over the padded one it is what keepFraction < 1 picks anyway.
    expect(() => quantize(b, { scheme: 'e8-4bit', rotatedLength: 896, keepFraction: 0.5 })).toThrow(/needs a one-stage rotation, but n = 896 is rotated in 2 overlapping windows to 896 entries; its one-stage rotation pads to 1024/);
    expect(quantize(b, { scheme: 'e8-4bit', keepFraction: 0.5 }).length).toBe(1024);
  });

  it('still names a malformed entry (not a TypeError) and refuses a ditherKeys other than 1 or 2', () => {
    expect(() => writeQuantizedContainer([null as unknown as { name: string; matrix: UniversalLatticeMatrix }])).toThrow(LatticeMatmulError);
    expect(() => writeQuantizedContainer([null as unknown as { name: string; matrix: UniversalLatticeMatrix }])).toThrow(/entry 0 must be/);
    const e8 = quantize(gaussianMatrix(16, 2, 1), { scheme: 'e8-2bit', seed: 1, nonce: 7 });
    expect(() => writeQuantizedContainer([{ name: 'e8', matrix: { ...e8, ditherKeys: 3 } as unknown as UniversalLatticeMatrix }])).toThrow(/ditherKeys must be 1 or 2/);
  });

  it('refuses one container for E8 matrices of one and of two dither keys, and matrices without the field', () => {
    const old = universalOf(v1Bytes(), 'e8_2bit');
    const e8 = quantize(gaussianMatrix(16, 2, 1), { scheme: 'e8-2bit', seed: 1, nonce: 7 });
    expect(() => writeQuantizedContainer([{ name: 'old', matrix: old }, { name: 'new', matrix: e8 }])).toThrow(/cannot share a container/);
    const { ditherKeys: _, ...without } = e8;
    expect(() => dequantize(without as UniversalLatticeMatrix)).toThrow(LatticeMatmulError);
    expect(() => dequantize(without as UniversalLatticeMatrix)).toThrow(/ditherKeys must be 1 or 2/);
  });
});
