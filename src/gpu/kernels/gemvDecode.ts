import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import gemvDecodeSource from '../../../shaders/gemv_decode.wgsl?raw';
import gemvDecodeE8BytesSource from '../../../shaders/gemv_decode_e8_bytes.wgsl?raw';
import { check, describeValue } from '../../errors.js';
import { MAX_UNIVERSAL_Q, type LatticeName } from '../../quantize/latticeSpec.js';

/*
 * The leader decode of the GEMV kernels (universal and deterministic lattice codes) with q a
 * compile-time constant: a small generated header (q, the rounding denominator, the base-q digits, a
 * floor division by the denominator, `gemv_leader`) in front of shaders/gemv_decode.wgsl. Each kernel
 * compiles one pipeline per (lattice, q) it meets, so the digits are shifts or divisions by a constant
 * (a multiply-high after the driver's constant folding) and the nearest-point rules divide by
 * constants: no runtime division in the inner loop.
 */

/** Dimension and point scale of each lattice (E8 points are held doubled). */
const SHAPES: Record<LatticeName, { readonly dimension: number; readonly pointScale: number; readonly leader: string }> = {
  D3: { dimension: 3, pointScale: 1, leader: 'gemv_leader_d3(lift_d3(digits))' },
  E8: { dimension: 8, pointScale: 2, leader: 'gemv_leader_e8(lift_e8(digits))' },
  Z: { dimension: 8, pointScale: 1, leader: 'gemv_leader_z8(digits)' },
};

/** A WGSL u32 literal. */
function u32(value: number): string {
  return `${value}u`;
}

/**
 * `gemv_digits(low, high)`: the base-q digits of the code high·2^32 + low, least significant first.
 * Bit fields for q a power of two; else divisions by the constant q, the first digits of a code wider
 * than 32 bits in 16-bit limbs (q ≤ 64, so a partial remainder shifted by 16 fits 32 bits) until the
 * rest q^(d − k) fits 32 bits (the twin of universal_digits / code_digits).
 */
function digitsWgsl(d: number, q: number): string[] {
  const lines = ['fn gemv_digits(low: u32, high: u32) -> LatticePoint {', '  var digits = LatticePoint();'];
  const log2 = Math.log2(q);
  if (Number.isInteger(log2)) {
    const mask = u32(q - 1);
    for (let i = 0; i < d; i++) {
      const offset = i * log2;
      let value: string;
      if (offset + log2 <= 32) value = `extractBits(low, ${u32(offset)}, ${u32(log2)})`;
      else if (offset >= 32) value = `extractBits(high, ${u32(offset - 32)}, ${u32(log2)})`;
      else value = `((low >> ${u32(offset)}) | (high << ${u32(32 - offset)})) & ${mask}`;
      lines.push(`  digits[${i}] = i32(${value});`);
    }
  } else {
    let limbDigits = 0;
    while (q ** (d - limbDigits) > 2 ** 32) limbDigits++;
    const Q = u32(q);
    lines.push('  var rest = low;', '  var rest_high = high;');
    for (let i = 0; i < d; i++) {
      if (i < limbDigits) {
        lines.push(
          '  {',
          `    let high_quotient = rest_high / ${Q};`,
          `    let t1 = ((rest_high - high_quotient * ${Q}) << 16u) | (rest >> 16u);`,
          `    let q1 = t1 / ${Q};`,
          `    let t2 = ((t1 - q1 * ${Q}) << 16u) | (rest & 0xffffu);`,
          `    let q2 = t2 / ${Q};`,
          `    digits[${i}] = i32(t2 - q2 * ${Q});`,
          '    rest_high = high_quotient;',
          '    rest = (q1 << 16u) | q2;',
          '  }',
        );
      } else {
        lines.push('  {', `    let next = rest / ${Q};`, `    digits[${i}] = i32(rest - next * ${Q});`, '    rest = next;', '  }');
      }
    }
  }
  lines.push('  return digits;', '}');
  return lines;
}

/**
 * Whether a decode takes gemv_leader_e8_bytes (the 8 coordinates as bytes of two words): E8 with q ≤ 16,
 * so that a lifted coordinate plus 2q stays below 128 and the worst-coordinate keys m·8 + i (m ≤ q)
 * fit a byte.
 */
function e8ByteLanes(lattice: LatticeName, q: number): boolean {
  return lattice === 'E8' && q <= 16;
}

/**
 * `gemv_digit_bytes(low, high)`: the 8 base-q digits of a code as bytes, (u0, u2, u4, u6) in x and
 * (u1, u3, u5, u7) in y (q ≤ 16, so the code fits `low`): for q = 16 two masks of the nibbles, for
 * another power of two a bit field per digit, else the digits of `gemv_digits` placed in their bytes.
 */
function digitBytesWgsl(q: number): string[] {
  const bits = Math.log2(q);
  if (bits === 4) return ['fn gemv_digit_bytes(low: u32, high: u32) -> vec2<u32> {', '  return vec2<u32>(low & 0x0f0f0f0fu, (low >> 4u) & 0x0f0f0f0fu);', '}'];
  const digit = (i: number) => (Number.isInteger(bits) ? `extractBits(low, ${u32(i * bits)}, ${u32(bits)})` : `u32(digits[${i}])`);
  const word = (first: number) => [0, 1, 2, 3].map((lane) => (lane === 0 ? digit(first) : `(${digit(first + 2 * lane)} << ${u32(8 * lane)})`)).join(' | ');
  return [
    'fn gemv_digit_bytes(low: u32, high: u32) -> vec2<u32> {',
    ...(Number.isInteger(bits) ? [] : ['  let digits = gemv_digits(low, high);']),
    `  return vec2<u32>(${word(0)},`,
    `                   ${word(1)});`,
    '}',
  ];
}

/**
 * `gemv_lane_split(v)`: (t, r) per byte lane with v = den·t + r, 0 ≤ r < den (den = 2q, v < 4·den and
 * below 128): a shift and a mask for den a power of two, else t as three compares (bit 7 of
 * v + 128 − c·den, c = 1, 2, 3).
 */
function laneSplitWgsl(den: number): string[] {
  const lanes = (value: number) => `${u32(value)} * 0x01010101u`;
  const log2 = Math.log2(den);
  const body = Number.isInteger(log2)
    ? [`  return vec2<u32>((v >> ${u32(log2)}) & 0x03030303u, v & (${lanes(den - 1)}));`]
    : [
        `  let t = (((v + ${lanes(128 - den)}) >> 7u) & 0x01010101u) + (((v + ${lanes(128 - 2 * den)}) >> 7u) & 0x01010101u)`,
        `      + (((v + ${lanes(128 - 3 * den)}) >> 7u) & 0x01010101u);`,
        `  return vec2<u32>(t, v - t * ${u32(den)});`,
      ];
  return ['fn gemv_lane_split(v: u32) -> vec2<u32> {', ...body, '}'];
}

/**
 * The generated header of shaders/gemv_decode.wgsl for one lattice and q (see that file for what it
 * declares). For E8 with q ≤ 16 its `gemv_leader` calls gemv_leader_e8_bytes, which
 * {@link gemvDecodeWgsl} appends: take the decode from there.
 *
 * @example
 * gemvDecodeHeader('E8', 16); // G_DEN = 32: digits and roundings are shifts
 */
function gemvDecodeHeader(lattice: LatticeName, q: number): string {
  const shape = SHAPES[lattice];
  check(shape !== undefined, () => `gemv decode: unknown lattice ${describeValue(lattice)}`);
  // E8's distance comparison in i32 needs den = 2q ≤ 128; codes wider than 32 bits (16-bit limbs) q ≤ 64.
  const codeRange = q ** shape.dimension;
  check(
    Number.isInteger(q) && q >= 2 && codeRange <= 2 ** 48 && (codeRange <= 2 ** 32 || q <= MAX_UNIVERSAL_Q) && (lattice !== 'E8' || q <= MAX_UNIVERSAL_Q),
    () => `gemv decode: ${lattice} q = ${q} is not supported (q ≥ 2, codes of at most 48 bits, E8 and codes over 32 bits: q ≤ ${MAX_UNIVERSAL_Q})`,
  );
  const den = shape.pointScale * q;
  const log2Den = Math.log2(den);
  const byteLanes = e8ByteLanes(lattice, q);
  // Lifted coordinates are ≥ −2(q − 1) > −OFFSET·den, so p + OFFSET·den is a non-negative u32.
  const OFFSET = 4;
  const floorDen = Number.isInteger(log2Den)
    ? [`  return vec2<i32>(p >> ${u32(log2Den)}, p & ${den - 1});`]
    : [`  let t = i32(u32(p + ${OFFSET * den}) / ${u32(den)}) - ${OFFSET};`, `  return vec2<i32>(t, p - t * ${den});`];
  return [
    `// Generated by gemvDecodeHeader('${lattice}', ${q}) (src/gpu/kernels/gemvDecode.ts).`,
    `const G_Q: i32 = ${q};`,
    `const G_DEN: i32 = ${den};`,
    ...digitsWgsl(shape.dimension, q),
    ...(byteLanes ? [...digitBytesWgsl(q), ...laneSplitWgsl(den)] : []),
    '// (t, r) with p = G_DEN·t + r, 0 ≤ r < G_DEN (p a lifted coordinate).',
    'fn gemv_floor_den(p: i32) -> vec2<i32> {',
    ...floorDen,
    '}',
    '// The coset leader of a code (point coordinates; E8 doubled).',
    'fn gemv_leader(low: u32, high: u32) -> LatticePoint {',
    ...(byteLanes ? ['  return gemv_leader_e8_bytes(gemv_digit_bytes(low, high));'] : ['  let digits = gemv_digits(low, high);', `  return ${shape.leader};`]),
    '}',
    '',
  ].join('\n');
}

/**
 * The header and shaders/gemv_decode.wgsl, for a kernel that already has shaders/lattice_decode.wgsl
 * (the universal kernels get it from `universalDecodeWgsl`).
 */
export function gemvDecodeWgsl(lattice: LatticeName, q: number): string {
  const byteLanes = e8ByteLanes(lattice, q) ? `\n${gemvDecodeE8BytesSource}` : '';
  return `${gemvDecodeHeader(lattice, q)}\n${gemvDecodeSource}${byteLanes}`;
}

/** shaders/lattice_decode.wgsl followed by {@link gemvDecodeWgsl}: for a kernel without the lattice rules. */
export function gemvDecodeWithRulesWgsl(lattice: LatticeName, q: number): string {
  return `${latticeDecodeSource}\n${gemvDecodeWgsl(lattice, q)}`;
}
