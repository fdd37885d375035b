import { describe, expect, it } from 'vitest';
import { formatBits, formatNmse, formatRate, formatSignedBits, formatTime } from '../../demo/format.js';
import { capsText, SIZE_CAPS, sizeProblem } from '../../demo/limits.js';
import { ranOnText } from '../../demo/render.js';
import type { AdapterSummary, RunRequest } from '../../demo/runProtocol.js';

/*
 * The demo's number formats, cap texts and run descriptions, in Node (pure functions, no browser). The timings table
 * showed "1.60 ms · 1.00e+3 k entries/s" for a 100 × 16 quantization: the worker's clock counts in
 * 0.1 ms, so 1,600 entries in 1.6 ms is 999,999.99… entries/s, which toPrecision(3) writes as 1.00e+3.
 */

describe('formatRate', () => {
  it('takes the prefix after rounding: 1,600 entries in 1.6 ms is 1.00 M entries/s', () => {
    expect(formatRate(1600, 1.6, 'entries')).toBe('1.00 M entries/s');
    expect(formatRate(999_600, 1000, 'entries')).toBe('1.00 M entries/s');
    expect(formatRate(999_400, 1000, 'entries')).toBe('999 k entries/s');
    expect(formatRate(999.7, 1000, 'FLOP')).toBe('1.00 k FLOP/s');
    expect(formatRate(5, 1000, 'FLOP')).toBe('5.00 FLOP/s');
  });

  it('has a T prefix: a GPU product of 8192 × 2048 columns in 40 ms is 1.72 T FLOP/s, not 1.72e+3 G', () => {
    expect(formatRate(2 * 8192 * 2048 * 2048, 40, 'FLOP')).toBe('1.72 T FLOP/s');
    expect(formatRate(999.9e9, 1000, 'FLOP')).toBe('1.00 T FLOP/s');
  });

  it('never writes an exponent for rates from 1 per second to 100 T per second', () => {
    for (let exponent = 0; exponent <= 14; exponent += 0.01) {
      const text = formatRate(10 ** exponent, 1000, 'FLOP');
      expect(text, String(exponent)).toMatch(/^\d{1,3}(\.\d+)? ([kMGT] )?FLOP\/s$/);
    }
  });
});

describe('formatTime', () => {
  it('switches to seconds where the milliseconds round to 1000', () => {
    expect(formatTime(999.4)).toBe('999 ms');
    expect(formatTime(999.7)).toBe('1.00 s');
    expect(formatTime(1000)).toBe('1.00 s');
    expect(formatTime(0.5)).toBe('0.50 ms');
    expect(formatTime(12.34)).toBe('12.3 ms');
  });

  it('never writes an exponent from 0.01 ms to 100 s', () => {
    for (let exponent = -2; exponent <= 5; exponent += 0.001) {
      expect(formatTime(10 ** exponent), String(exponent)).toMatch(/^\d{1,3}(\.\d+)? m?s$/);
    }
  });

  it('writes whole seconds from 999.5 s on (toPrecision(3) wrote "1.00e+3 s"), up to a day and beyond', () => {
    expect(formatTime(999_400)).toBe('999 s');
    expect(formatTime(999_600)).toBe('1000 s');
    expect(formatTime(1_234_567)).toBe('1235 s');
    for (let exponent = 5; exponent <= 9; exponent += 0.001) {
      expect(formatTime(10 ** exponent), String(exponent)).toMatch(/^\d+(\.\d+)? s$/);
    }
  });
});

describe('formatNmse, formatBits and formatSignedBits', () => {
  it('writes an error with four significant digits, in exponent form below 10⁻³, and says what a non-finite one is', () => {
    expect(formatNmse(0.0123456)).toBe('0.01235');
    expect(formatNmse(0.5)).toBe('0.5000');
    expect(formatNmse(1.25)).toBe('1.250');
    expect(formatNmse(0.001)).toBe('0.001000');
    expect(formatNmse(0.000999)).toBe('9.990e-4');
    expect(formatNmse(3.14159e-4)).toBe('3.142e-4');
    expect(formatNmse(Number.NaN)).toBe('NaN');
    expect(formatNmse(Number.POSITIVE_INFINITY)).toBe('Infinity');
  });

  it('writes bits with three decimals, a signed rate loss with a real minus sign', () => {
    expect(formatBits(4.0625)).toBe('4.063');
    expect(formatBits(2)).toBe('2.000');
    expect(formatSignedBits(0.4921)).toBe('+0.492');
    expect(formatSignedBits(-0.0314)).toBe('−0.031');
    expect(formatSignedBits(0)).toBe('+0.000');
    expect(formatSignedBits(null)).toBe('—');
  });
});

describe('capsText', () => {
  it('names both caps, since a size within the first can exceed the second', () => {
    expect(capsText('cpu')).toBe('n × columns = 262,144 and n × columns² = 67,108,864');
    expect(capsText('webgpu')).toBe('n × columns = 16,777,216 and n × columns² = 68,719,476,736');
    // A software renderer's cap on the product's entries refuses sizes the other two allow (8 × 4096), so it is named.
    expect(capsText('software-webgpu')).toBe('n × columns = 1,048,576, n × columns² = 134,217,728 and columns² = 1,048,576');
    // 300 × 500: 150,000 entries, within the first cap; 75,000,000 multiply-adds, beyond the second.
    expect(300 * 500).toBeLessThan(SIZE_CAPS.cpu.entries);
    expect(sizeProblem(300, 500, 'cpu')).toBe('n × columns² = 75,000,000 multiply-adds is more than the CPU reference runs here (67,108,864).');
  });
});

describe('ranOnText', () => {
  const adapter = (vendor: string, architecture: string): AdapterSummary => ({
    vendor,
    architecture,
    device: '',
    description: '',
    workgroupStorageBytes: 16384,
    features: [],
    softwareRenderer: false,
  });
  const request = { backend: 'webgpu' } as RunRequest;

  it('names the adapter by what it reveals, never "WebGPU ( )"', () => {
    expect(ranOnText({ ranOn: 'webgpu', adapter: adapter('google', 'swiftshader'), request })).toBe('WebGPU (google swiftshader)');
    expect(ranOnText({ ranOn: 'webgpu', adapter: adapter('apple', ''), request })).toBe('WebGPU (apple)');
    expect(ranOnText({ ranOn: 'webgpu', adapter: adapter('', ''), request })).toBe('WebGPU');
    expect(ranOnText({ ranOn: 'cpu', adapter: null, request })).toBe('CPU reference (the GPU engine encodes lattice schemes only)');
  });
});
