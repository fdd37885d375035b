import latticeDecodeSource from '../../../shaders/lattice_decode.wgsl?raw';
import universalDecodeSource from '../../../shaders/universal_decode.wgsl?raw';
import escapeTableSource from '../../../shaders/universal_escape_table.wgsl?raw';
import counterHashSource from '../../../shaders/counter_hash.wgsl?raw';
import { check } from '../../errors.js';
import { DITHER_GRID, type LatticeSpec } from '../../quantize/latticeSpec.js';
import { nonceWords } from '../../quantize/universalCode.js';
import { RandomStream } from '../../rotation/random.js';
import { windowBinding } from '../pipelines.js';
import type { UniformScalar } from '../uniformLayout.js';
import type { GpuUniversalMatrix, UniversalOperandLayout } from '../universalOperand.js';
import { bindingWindow, itemsPerBinding, type BindingWindow } from '../workSplit.js';

/*
 * The WGSL shared by the universal kernels: a small header generated from the lattice's `LatticeSpec`
 * (what truly varies between D3 and E8: dimension, nearest-point rule, generator, dither fields), the
 * integer lattice rules (shaders/lattice_decode.wgsl) and the decode library
 * (shaders/universal_decode.wgsl).
 */

/**
 * Uniform members every universal kernel declares for the decode library (shaders/universal_decode.wgsl):
 * spread them into the kernel's `UniformLayout` and fill them with {@link universalOperandUniforms}.
 */
export const UNIVERSAL_OPERAND_MEMBERS = {
  q: 'u32',
  code_bits: 'u32',
  blocks: 'u32', // blocks per column
  code_words: 'u32', // code words per column
  bit_words: 'u32', // escape-bit words (= escape starts) per column
  code_first: 'u32', // word offset of the dispatch's first column in the codes binding
  bits_first: 'u32', // … in the escape-bits binding
  starts_first: 'u32', // … in the escape-starts binding
  root_words: 'u32', // i32 words of roots at the start of the escape table
  nonroot_count: 'u32',
  nonce_lo: 'u32',
  nonce_hi: 'u32',
  dither_keys: 'u32', // the column keys E8's dither hashes: 1 or 2 (UniversalLatticeMatrix.ditherKeys)
  column_offset: 'u32', // global index of the dispatch's first column
} as const satisfies Record<string, UniformScalar>;

/** The nearest-point rule ids of shaders/lattice_decode.wgsl. */
const RULES = { D3: 'NEAREST_D', E8: 'NEAREST_E8', Z: 'NEAREST_Z' } as const;
const LIFTS = { D3: 'lift_d3(digits)', E8: 'lift_e8(digits)', Z: 'digits' } as const;

/**
 * Hash word t of a block's dither (of `words`), as a WGSL expression of `keys` (the column's dither keys,
 * `dither_key`: x for word 0, y for word 1) and `block`: the twin of blockDither's counter hashes
 * (src/quantize/universalCode.ts). Every kernel that regenerates the dither writes it from here.
 */
export function blockHashWgsl(words: number, t: number): string {
  return `mix32(${blockHashInputWgsl(words, t, t === 0 ? 'keys.x' : 'keys.y')})`;
}

/** What blockHashWgsl hashes: the key of hash word t (the WGSL expression `key`) xor the counter of word t of `block`. */
export function blockHashInputWgsl(words: number, t: number, key: string): string {
  return `${key} ^ (block * ${words}u + ${t}u)`;
}

/** The generated header: constants, the generator (`u_lift`) and the block dither (`block_dither`). */
export function universalLatticeHeader(spec: LatticeSpec): string {
  const { words, fields } = spec.dither;
  check(fields.length === spec.dimension, () => `${spec.name}: ${fields.length} dither fields for dimension ${spec.dimension}`);
  const hashes = Array.from({ length: words }, (_, t) => `  let h${t} = ${blockHashWgsl(words, t)};`);
  const d = spec.dimension;
  const { numerators, determinant } = spec.lattice.basisInverse;
  const coefficientLines = Array.from({ length: d }, (_, i) => {
    const terms = Array.from({ length: d }, (_, j) => numerators[i * d + j] as number)
      .map((n, j) => (n === 0 ? '' : `${n} * p[${j}]`))
      .filter((t) => t !== '');
    return `  u[${i}] = (${terms.length > 0 ? terms.join(' + ') : '0'}) / ${determinant};`;
  });
  const coordinates = fields.map(
    (field, v) => `  z[${v}] = i32((h${field.word} >> ${field.shift}u) & ${2 ** field.bits - 1}u) - ${2 ** (field.bits - 1)};`,
  );
  return [
    `// Generated from latticeSpec('${spec.name}') (src/quantize/latticeSpec.ts).`,
    `const U_DIM: u32 = ${spec.dimension}u;`,
    `const U_POINT_SCALE: i32 = ${spec.pointScale};`,
    `const U_RULE: u32 = ${RULES[spec.name]};`,
    `const U_DITHER_WORDS: u32 = ${words}u;`,
    `const U_DITHER_GRID: i32 = ${DITHER_GRID};`,
    `const STREAM_DITHER: u32 = ${RandomStream.dither}u;`,
    `const STREAM_SECOND_DITHER: u32 = ${RandomStream.secondDither}u;`,
    `const STREAM_ROUNDING: u32 = ${RandomStream.rounding}u;`,
    'fn u_lift(digits: LatticePoint) -> LatticePoint {',
    `  return ${LIFTS[spec.name]};`,
    '}',
    '// The generator coefficients u = basis⁻¹ · P of a lattice point P (point coordinates; exact).',
    'fn u_coefficients(p: LatticePoint) -> LatticePoint {',
    '  var u = LatticePoint();',
    ...coefficientLines,
    '  return u;',
    '}',
    '// blockDither: the dither numerators Z of block `block` for the column keys `keys` (dither_key).',
    'fn block_dither(keys: vec2<u32>, block: u32) -> LatticePoint {',
    ...hashes,
    '  var z = LatticePoint();',
    ...coordinates,
    '  return z;',
    '}',
    '',
  ].join('\n');
}

/** Lattice rules + hash + generated header: what both the universal encoder and decoders build on. */
export function universalLatticeWgsl(spec: LatticeSpec): string {
  return `${latticeDecodeSource}\n${counterHashSource}\n${universalLatticeHeader(spec)}`;
}

/**
 * {@link universalLatticeWgsl} + shaders/universal_escape_table.wgsl (`dither_key`, `nonroot_mu`): for a
 * kernel that reads the escape table but not the escape streams.
 */
export function universalEscapeTableWgsl(spec: LatticeSpec): string {
  return `${universalLatticeWgsl(spec)}\n${escapeTableSource}`;
}

/** {@link universalEscapeTableWgsl} + the decode library: what a universal decoding kernel is compiled after. */
export function universalDecodeWgsl(spec: LatticeSpec): string {
  return `${universalEscapeTableWgsl(spec)}\n${universalDecodeSource}`;
}

/**
 * The binding types of a universal operand's five buffers, in the order of
 * `UniversalOperandWindows.bindings` (codes, escape bits, escape starts, escape ids, escape table): a
 * kernel's binding list spreads them where its WGSL declares them.
 */
export const UNIVERSAL_OPERAND_BINDINGS = ['read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'read-only-storage'] as const;

/** The bindings of columns [first, first + count) of a universal operand, and the uniforms that go with them. */
export interface UniversalOperandWindows {
  readonly codes: BindingWindow;
  readonly escapeBits: BindingWindow;
  readonly escapeStarts: BindingWindow;
  readonly uniforms: { readonly [K in keyof typeof UNIVERSAL_OPERAND_MEMBERS]: number };
  /**
   * The operand's five bindings in the order shaders/universal_decode.wgsl names them: `codes`,
   * `escape_bits`, `escape_starts` (windowed), `escape_ids`, `escape_table` (whole).
   */
  readonly bindings: readonly GPUBufferBinding[];
}

/** Windows and uniforms of columns [first, first + count) of `m` (see `bindingWindow`). */
export function universalOperandWindows(m: GpuUniversalMatrix, layout: UniversalOperandLayout, first: number, count: number, alignment: number): UniversalOperandWindows {
  const codes = bindingWindow(4 * layout.codeWords * first, 4 * layout.codeWords * count, alignment);
  const escapeBits = bindingWindow(4 * layout.bitWords * first, 4 * layout.bitWords * count, alignment);
  const escapeStarts = bindingWindow(4 * layout.bitWords * first, 4 * layout.bitWords * count, alignment);
  const nonce = nonceWords(m.nonce);
  return {
    codes,
    escapeBits,
    escapeStarts,
    bindings: [
      windowBinding(m.codes, codes),
      windowBinding(m.escapeBits, escapeBits),
      windowBinding(m.escapeStarts, escapeStarts),
      { buffer: m.escapeIds },
      { buffer: m.escapeTable },
    ],
    uniforms: {
      q: m.scheme.q,
      code_bits: layout.codec.codeBits,
      blocks: m.blocksPerColumn,
      code_words: layout.codeWords,
      bit_words: layout.bitWords,
      code_first: codes.firstElement,
      bits_first: escapeBits.firstElement,
      starts_first: escapeStarts.firstElement,
      root_words: layout.rootWords,
      nonroot_count: m.nonRootCount,
      nonce_lo: nonce.lo,
      nonce_hi: nonce.hi,
      dither_keys: m.ditherKeys,
      column_offset: first,
    },
  };
}

/** How many columns of `m` one binding of at most `maxBindingBytes` holds (codes, escape bits and starts). */
export function universalColumnsPerBinding(layout: UniversalOperandLayout, maxBindingBytes: number, alignment: number): number {
  return Math.min(itemsPerBinding(4 * layout.codeWords, maxBindingBytes, alignment), itemsPerBinding(4 * layout.bitWords, maxBindingBytes, alignment));
}
