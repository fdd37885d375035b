import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { quantizeWeights, WeightOnlyQuantized, type QuantizeWeightsOptions } from '../../src/weightonly/index.js';
import { haarOrthogonal } from '../../src/weightonly/linalg.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';

function quantized(n: number, outputs: number, options: QuantizeWeightsOptions): WeightOnlyQuantized {
  return quantizeWeights(gaussianMatrix(n, outputs, n + outputs), spreadSpectrumCovariance(n, 2, 1).sigma, options);
}

describe('decoding', () => {
  it.each(['watersic', 'gptq', 'rtn'] as const)('%s without rotation: Ŵ[j, i] = fround(z · s_i) exactly', (method) => {
    const q = quantized(16, 40, { method, rate: 3 });
    const wHat = q.decode();
    expect(wHat.rows).toBe(16);
    expect(wHat.cols).toBe(40);
    for (let j = 0; j < 40; j++) for (let i = 0; i < 16; i++) {
      expect(wHat.data[j * 16 + i]).toBe(Math.fround((q.codes[j * 16 + i] as number) * (q.columnScales[i] as number)));
    }
  });

  it('with rescalers: Ŵ[j, i] = fround(fround(z · s_i) · t_j)', () => {
    const q = quantized(12, 30, { method: 'watersic', rate: 4, rescale: true });
    const t = q.rowScales as Float32Array;
    expect(t).not.toBeNull();
    const wHat = q.decode();
    for (let j = 0; j < 30; j++) for (let i = 0; i < 12; i++) {
      expect(wHat.data[j * 12 + i]).toBe(Math.fround(Math.fround((q.codes[j * 12 + i] as number) * (q.columnScales[i] as number)) * (t[j] as number)));
    }
  });

  it('with a Hadamard rotation: Ŵ = the inverse rotation of every decoded column', () => {
    const q = quantized(32, 20, { method: 'gptq', rate: 3, rotate: true, seed: 77 });
    expect(q.rotation).toBe('hadamard');
    const expected = new RandomizedHadamard(32, 77).inverseColumns(q.decodeRotated());
    expect(Array.from(q.decode().data)).toEqual(Array.from(expected.data));
  });

  it('with a dense rotation (n = 10 is no Hadamard length): Ŵ = Qᵀ·Ŵ\' per column', () => {
    const q = quantized(10, 300, { method: 'watersic', rate: 3, rotate: true, seed: 5 });
    expect(q.rotation).toBe('haar');
    const qm = haarOrthogonal(10, 5);
    const rotated = q.decodeRotated();
    const wHat = q.decode();
    for (let j = 0; j < 300; j++) for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let k = 0; k < 10; k++) s += (qm[k * 10 + i] as number) * (rotated.data[j * 10 + k] as number);
      expect(wHat.data[j * 10 + i]).toBe(Math.fround(s));
    }
  });
});

describe('serialize / deserialize', () => {
  const variants: [string, number, number, QuantizeWeightsOptions][] = [
    ['watersic', 16, 64, { method: 'watersic', rate: 3 }],
    ['gptq rotated', 64, 16, { method: 'gptq', rate: 4, rotate: true, seed: 9 }],
    ['rtn 16-bit codes', 8, 8, { method: 'rtn', step: 1e-3 }],
    ['rtn 32-bit codes', 8, 8, { method: 'rtn', step: 1e-6 }],
    ['watersic rescaled, dense rotation', 12, 50, { method: 'watersic', rate: 4, rescale: true, rotate: true, seed: 3 }],
  ];
  it.each(variants)('%s: round trip decodes to the same Ŵ bit for bit', (_name, n, outputs, options) => {
    const q = quantized(n, outputs, options);
    const bytes = q.serialize();
    const back = WeightOnlyQuantized.deserialize(bytes);
    expect(back.method).toBe(q.method);
    expect(back.rotation).toBe(q.rotation);
    expect(back.seed).toBe(q.seed);
    expect(Array.from(back.codes)).toEqual(Array.from(q.codes));
    expect(Array.from(back.columnScales)).toEqual(Array.from(q.columnScales));
    expect(back.rowScales === null).toBe(q.rowScales === null);
    expect(Array.from(back.decode().data)).toEqual(Array.from(q.decode().data));
    expect(back.rate).toBe(q.rate);
  });

  it('writes the documented layout', () => {
    const q = quantized(8, 6, { method: 'rtn', step: 0.5 });
    const bytes = q.serialize();
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(String.fromCharCode(...bytes.subarray(0, 4))).toBe('LMWQ');
    expect(view.getUint32(4, true)).toBe(1);
    expect(view.getUint32(8, true)).toBe(8);
    expect(view.getUint32(12, true)).toBe(6);
    expect(view.getUint32(16, true)).toBe(8); // codes of a Gaussian at step 0.5 fit in int8
    expect(view.getUint32(20, true)).toBe(0); // rtn
    expect(view.getUint32(24, true)).toBe(0); // no rotation
    expect(view.getUint32(32, true)).toBe(0); // no row scales
    expect(view.getFloat32(36, true)).toBe(0.5);
    const codesAt = 36 + 4 * 8;
    expect(bytes.length).toBe(codesAt + 8 * 6);
    // Output j, input i at j·n + i, as signed bytes.
    expect(view.getInt8(codesAt + 3 * 8 + 5)).toBe(q.codes[3 * 8 + 5]);
    expect(q.storedBitsPerEntry).toBeCloseTo((8 * bytes.length) / 48, 12);
  });

  it.each([
    ['a truncated buffer', (b: Uint8Array) => b.subarray(0, b.length - 1), /bytes/],
    ['a bad magic', (b: Uint8Array) => { const c = b.slice(); c[0] = 0; return c; }, /magic/],
    ['an unknown version', (b: Uint8Array) => { const c = b.slice(); c[4] = 9; return c; }, /version/],
    ['a bad code width', (b: Uint8Array) => { const c = b.slice(); c[16] = 12; return c; }, /code width/],
    ['too few bytes for a header', () => new Uint8Array(10), /too short/],
  ])('refuses %s with a LatticeMatmulError', (_name, corrupt, message) => {
    const bytes = quantized(8, 6, { method: 'rtn', step: 0.5 }).serialize();
    expect(() => WeightOnlyQuantized.deserialize(corrupt(bytes))).toThrow(LatticeMatmulError);
    expect(() => WeightOnlyQuantized.deserialize(corrupt(bytes))).toThrow(message);
  });
});
