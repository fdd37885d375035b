import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { CONTAINER_FORMAT_VERSION, readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { dequantize } from '../../src/product/dequantize.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * Container format versions (docs/FORMAT.md §9). Version 2 changed one thing: E8's universal dither
 * hashes its second word with a second column key (`DitherKeyCount`, src/quantize/universalCode.ts).
 * fixtures/universal-v1.safetensors was written by the library before that change (at a0ffad0, format
 * version 1), and fixtures/universal-v1.expected.json holds what `dequantize` returned for its entries
 * then: a reader must keep decoding a version-1 file to exactly those values (a regression fixture of
 * the former implementation's output, on purpose).
 */

const fixture = new URL('./fixtures/', import.meta.url);
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
    expect(CONTAINER_FORMAT_VERSION).toBe(2);
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
