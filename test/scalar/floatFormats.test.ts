import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  E2M1_MAX,
  E4M3_MAX,
  FP16_MAX,
  float16Bits,
  float16BitsToFloat32Bits,
  fp16Scale,
  fromE2M1Bits,
  fromE4M3Bits,
  fromFloat16Bits,
  nextFloat32Up,
  toE2M1Bits,
  toE4M3Bits,
  toFloat16,
} from '../../src/scalar/floatFormats.js';

// Oracles written from the format definitions alone: decode a bit pattern from its fields, then
// find the nearest value by scanning every finite pattern (ties to the even pattern).

function decodeFields(bits: number, exponentBits: number, mantissaBits: number, bias: number): number {
  const sign = bits >> (exponentBits + mantissaBits) ? -1 : 1;
  const exponent = (bits >> mantissaBits) & ((1 << exponentBits) - 1);
  const mantissa = bits & ((1 << mantissaBits) - 1);
  const magnitude =
    exponent === 0
      ? (mantissa / 2 ** mantissaBits) * 2 ** (1 - bias)
      : (1 + mantissa / 2 ** mantissaBits) * 2 ** (exponent - bias);
  return sign * magnitude;
}

interface Table {
  bits: number[];
  values: number[];
}

/** All non-negative finite patterns of a format (positive half; sign handled by symmetry). */
function positiveTable(exponentBits: number, mantissaBits: number, bias: number, isFinite: (bits: number) => boolean): Table {
  const bits: number[] = [];
  const values: number[] = [];
  for (let b = 0; b < 1 << (exponentBits + mantissaBits); b++) {
    if (!isFinite(b)) continue;
    bits.push(b);
    values.push(decodeFields(b, exponentBits, mantissaBits, bias));
  }
  return { bits, values };
}

/** Nearest pattern by linear scan; on an exact tie the pattern with an even last bit. */
function nearestByScan(x: number, table: Table, signShift: number): number {
  const a = Math.abs(x);
  let best = 0;
  let bestDistance = Infinity;
  for (let i = 0; i < table.values.length; i++) {
    const d = Math.abs(a - (table.values[i] as number));
    const b = table.bits[i] as number;
    if (d < bestDistance || (d === bestDistance && b % 2 === 0)) {
      best = b;
      bestDistance = d;
    }
  }
  return (x < 0 || Object.is(x, -0) ? 1 << signShift : 0) | best;
}

const FP16_TABLE = positiveTable(5, 10, 15, (b) => b < 0x7c00);
const E4M3_TABLE = positiveTable(4, 3, 7, (b) => b !== 0x7f);
const E2M1_TABLE = positiveTable(2, 1, 1, () => true);

/** Test inputs: every value of the table, every midpoint (a tie), and points a little off them. */
function probes(table: Table, stride: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < table.values.length; i += stride) {
    const lo = table.values[i] as number;
    const hi = table.values[i + 1] as number;
    const mid = (lo + hi) / 2;
    out.push(lo, mid, mid * (1 + 1e-9), mid * (1 - 1e-9), lo + (hi - lo) * 0.3);
  }
  return out;
}

describe('fp16', () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [1 / 3, 0x3555],
    [0.1, 0x2e66],
    [65504, 0x7bff],
    [65519.99, 0x7bff],
    [65520, 0x7c00], // the tie above 65504 rounds to even, i.e. overflows
    [-1e6, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 quanta: even
    [0, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
  ])('float16Bits(%s) = %s', (x, bits) => {
    expect(float16Bits(x)).toBe(bits);
  });

  it('gives the fp16 value of 1/3 and 0.1', () => {
    expect(toFloat16(1 / 3)).toBe(0.333251953125);
    expect(toFloat16(0.1)).toBe(0.0999755859375);
    expect(toFloat16(65504)).toBe(FP16_MAX);
    expect(toFloat16(70000)).toBe(Infinity);
  });

  it('decodes every non-NaN pattern like the field formula', () => {
    for (let b = 0; b < 0x10000; b++) {
      const magnitude = b & 0x7fff;
      if (magnitude > 0x7c00) {
        expect(() => fromFloat16Bits(b)).toThrow(LatticeMatmulError);
      } else if (magnitude === 0x7c00) {
        expect(fromFloat16Bits(b)).toBe(b & 0x8000 ? -Infinity : Infinity);
      } else {
        expect(fromFloat16Bits(b)).toBe(decodeFields(b, 5, 10, 15));
      }
    }
  });

  it('rounds to nearest, ties to even, like a scan over all values', () => {
    for (const x of probes(FP16_TABLE, 97)) {
      expect(float16Bits(x)).toBe(nearestByScan(x, FP16_TABLE, 15));
      expect(float16Bits(-x)).toBe(nearestByScan(-x, FP16_TABLE, 15));
    }
  });

  it('round-trips every finite value exactly', () => {
    for (let i = 0; i < FP16_TABLE.values.length; i += 7) {
      const v = FP16_TABLE.values[i] as number;
      expect(toFloat16(v)).toBe(v);
      expect(float16Bits(v)).toBe(FP16_TABLE.bits[i]);
    }
  });

  it('float16BitsToFloat32Bits widens every pattern to the f32 bits of the same value (the safetensors F16 reader)', () => {
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    for (let b = 0; b < 0x10000; b++) {
      u32[0] = float16BitsToFloat32Bits(b);
      const magnitude = b & 0x7fff;
      // The sign bit moves to bit 31 whatever the value (−0 stays −0, a negative NaN stays negative).
      expect((u32[0] as number) >>> 31).toBe(b >>> 15);
      if (magnitude > 0x7c00) {
        expect(f32[0]).toBeNaN();
        expect((u32[0] as number) & 0x7fffff).toBe((b & 0x3ff) * 2 ** 13); // the payload, shifted to f32's top mantissa bits
      } else if (magnitude === 0x7c00) {
        expect(f32[0]).toBe(b & 0x8000 ? -Infinity : Infinity);
      } else {
        // Normals and the subnormals m·2^-24 (which f32 holds as normals): the field formula, exactly.
        expect(f32[0]).toBe(decodeFields(b, 5, 10, 15));
      }
    }
  });

  it('refuses NaN and bad bit patterns', () => {
    expect(() => float16Bits(Number.NaN)).toThrow(LatticeMatmulError);
    expect(() => fromFloat16Bits(0x10000)).toThrow(LatticeMatmulError);
    expect(() => fromFloat16Bits(-1)).toThrow(LatticeMatmulError);
    expect(() => fromFloat16Bits(1.5)).toThrow(LatticeMatmulError);
  });
});

describe('fp16Scale', () => {
  it('returns the smallest fp16 value ≥ x', () => {
    const inputs = [1 / 3, 0.1, 1, 2.5, 7.1, 1e-6, 3e-8, 1234.567, 65503, 65504];
    for (const x of inputs) {
      const scale = fp16Scale(x);
      expect(scale).toBeGreaterThanOrEqual(x);
      expect(toFloat16(scale)).toBe(scale);
      // No fp16 value lies in [x, scale): the one below scale is < x.
      const index = FP16_TABLE.values.indexOf(scale);
      expect(index).toBeGreaterThan(0);
      expect(FP16_TABLE.values[index - 1] as number).toBeLessThan(x);
    }
  });

  it('keeps exact values, rounds 1/3 up to 0x3556 and tiny scales up to 2^-24', () => {
    expect(fp16Scale(0)).toBe(0);
    expect(fp16Scale(0.25)).toBe(0.25);
    expect(fp16Scale(FP16_MAX)).toBe(FP16_MAX);
    expect(fp16Scale(1 / 3)).toBe(fromFloat16Bits(0x3556));
    expect(fp16Scale(1e-12)).toBe(2 ** -24);
  });

  it.each([65504.5, 1e6, -1, Number.NaN, Infinity])('refuses %s', (x) => {
    expect(() => fp16Scale(x)).toThrow(LatticeMatmulError);
  });
});

describe('E4M3 (OCP FP8 E4M3FN)', () => {
  it.each([
    [448, 0x7e],
    [-448, 0xfe],
    [500, 0x7e], // saturates
    [1e9, 0x7e],
    [Infinity, 0x7e],
    [464, 0x7e], // tie between 448 and (NaN-coded) 480: saturates anyway
    [0.015625, 0x08], // 2^-6, smallest normal
    [0.001953125, 0x01], // 2^-9, smallest subnormal
    [2 ** -10, 0x00], // tie between 0 and 2^-9
    [3 * 2 ** -11, 0x01],
    [1, 0x38],
    [1.0625, 0x38], // tie between 1 and 1.125: even mantissa
    [1.1875, 0x3a], // tie between 1.125 and 1.25: even mantissa (1.25)
    [240, 0x77],
    [256, 0x78],
    [17, 0x58],
    [18, 0x59],
    [0, 0x00],
    [-0, 0x80],
  ])('toE4M3Bits(%s) = %s', (x, bits) => {
    expect(toE4M3Bits(x)).toBe(bits);
  });

  it('decodes every pattern like the field formula, and refuses the NaNs', () => {
    for (let b = 0; b < 256; b++) {
      if ((b & 0x7f) === 0x7f) expect(() => fromE4M3Bits(b)).toThrow(LatticeMatmulError);
      else expect(fromE4M3Bits(b)).toBe(decodeFields(b, 4, 3, 7));
    }
    expect(fromE4M3Bits(0x7e)).toBe(E4M3_MAX);
    expect(fromE4M3Bits(0x01)).toBe(0.001953125);
  });

  it('rounds to nearest, ties to even, like a scan over all values', () => {
    for (const x of probes(E4M3_TABLE, 1)) {
      expect(toE4M3Bits(x)).toBe(nearestByScan(x, E4M3_TABLE, 7));
      expect(toE4M3Bits(-x)).toBe(nearestByScan(-x, E4M3_TABLE, 7));
    }
  });

  it('refuses NaN and bad bit patterns', () => {
    expect(() => toE4M3Bits(Number.NaN)).toThrow(LatticeMatmulError);
    expect(() => fromE4M3Bits(256)).toThrow(LatticeMatmulError);
  });
});

describe('E2M1 (FP4)', () => {
  it('has the values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}', () => {
    const expected = [0, 0.5, 1, 1.5, 2, 3, 4, 6];
    for (let code = 0; code < 8; code++) {
      expect(fromE2M1Bits(code)).toBe(expected[code]);
      expect(fromE2M1Bits(code + 8)).toBe(-(expected[code] as number));
    }
    expect(Object.is(fromE2M1Bits(8), -0)).toBe(true);
    expect(fromE2M1Bits(7)).toBe(E2M1_MAX);
  });

  it.each([
    [0.25, 0], // tie 0 | 0.5 → even code 0
    [0.26, 1],
    [0.75, 2], // tie 0.5 | 1 → code 2
    [1.25, 2], // tie 1 | 1.5 → code 2
    [1.75, 4], // tie 1.5 | 2 → code 4
    [2.5, 4], // tie 2 | 3 → code 4
    [2.9, 5],
    [3.5, 6], // tie 3 | 4 → code 6
    [5, 6], // tie 4 | 6 → code 6
    [5.01, 7],
    [6, 7],
    [7, 7], // saturates
    [1e30, 7],
    [-2.5, 12],
    [-7, 15],
    [-0.1, 8],
  ])('toE2M1Bits(%s) = %s', (x, code) => {
    expect(toE2M1Bits(x)).toBe(code);
  });

  it('rounds to nearest, ties to even code, like a scan over all values', () => {
    for (const x of probes(E2M1_TABLE, 1)) {
      expect(toE2M1Bits(x)).toBe(nearestByScan(x, E2M1_TABLE, 3));
      expect(toE2M1Bits(-x)).toBe(nearestByScan(-x, E2M1_TABLE, 3));
    }
  });

  it('refuses NaN and bad codes', () => {
    expect(() => toE2M1Bits(Number.NaN)).toThrow(LatticeMatmulError);
    expect(() => fromE2M1Bits(16)).toThrow(LatticeMatmulError);
  });
});

describe('nextFloat32Up', () => {
  it('steps to the next f32', () => {
    expect(nextFloat32Up(1)).toBe(1 + 2 ** -23);
    expect(nextFloat32Up(0)).toBe(2 ** -149);
    expect(nextFloat32Up(2 ** -126 - 2 ** -149)).toBe(2 ** -126);
    const v = Math.fround(0.1);
    expect(nextFloat32Up(v) - v).toBe(2 ** -27); // one ulp in [2^-4, 2^-3)
    expect(nextFloat32Up(E4M3_MAX)).toBe(448 + 2 ** -15);
  });

  it('refuses non-f32 and negative input', () => {
    expect(() => nextFloat32Up(0.1)).toThrow(LatticeMatmulError);
    expect(() => nextFloat32Up(-1)).toThrow(LatticeMatmulError);
  });
});
