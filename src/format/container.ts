import { check, LatticeMatmulError, describeValue, quoted } from '../errors.js';
import { latticeCodeBits, scaleIndexBits } from '../gpu/latticeOperand.js';
import {
  checkTensorName,
  readSafetensors,
  writeSafetensors,
  type SafetensorsDtype,
  type SafetensorsHeader,
  type SafetensorsReadOptions,
  type SafetensorsTensorInput,
} from '../io/safetensors.js';
import { HUGE_ESCAPE, largestEscapeRank } from '../lattices/escapes.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { latticeSpec, universalCodec, type UniversalCodec } from '../quantize/latticeSpec.js';
import {
  checkDitherKeys,
  DITHER_KEYS,
  MAX_EXPLICIT_COORDINATE,
  UniversalEscapeWalker,
  type DitherKeyCount,
  type UniversalEscapeStreams,
} from '../quantize/universalCode.js';
import { isSupportedColumnNorm, MAX_COLUMN_NORM } from '../quantize/prepareColumn.js';
import { absmaxOptions } from '../quantize/quantize.js';
import type {
  DeterministicLatticeMatrix,
  QuantizedMatrix,
  ScalarQuantizedMatrix,
  UniversalLatticeMatrix,
} from '../quantize/quantizedMatrix.js';
import { latticeRates, SIDE_FLOAT_BITS, universalRatesOf } from '../quantize/rates.js';
import { scaleGrid, scaleGridMismatch } from '../quantize/scaleGrid.js';
import { checkEscapeSymbols, deterministicTailProblem } from '../quantize/checkQuantized.js';
import {
  resolveScheme,
  type DeterministicLatticeScheme,
  type IntScheme,
  type Nvfp4Scheme,
  type Scheme,
  type UniversalLatticeScheme,
} from '../quantize/schemes.js';
import { isPlainObject } from '../quantize/strictOptions.js';
import { NONCE_LIMIT } from '../quantize/options.js';
import { isRotationLength, isShortWindowedRotation, rotationLengthsText, rotationPlan } from '../rotation/hadamard.js';
import { absmaxSideBitsPerEntry } from '../scalar/absmax.js';
import { E2M1_MAX, fromE4M3Bits, toFloat16 } from '../scalar/floatFormats.js';
import { NVFP4_BLOCK_SIZE, nvfp4VectorBits } from '../scalar/nvfp4.js';
import { MAX_CODE_BITS, type PackedWeightCodes } from '../weightonly/packedCodes.js';
import { weightOnlyNeedsVersion3, WeightOnlyQuantized } from '../weightonly/quantized.js';
import { WEIGHT_ONLY_METHODS, type WeightOnlyMethod } from '../weightonly/method.js';
import type { RotationKind } from '../weightonly/basis.js';
import { readBitsAt, streamWords, unpackColumnFields } from './bitFields.js';
import { crc32, crc32Continue } from './crc32.js';
import { packField, packedLayout, unpackField } from './packing.js';
import {
  packUniversalStored,
  unpackUniversalCodes,
  unpackUniversalEscapes,
  universalWordsPerColumn,
  type UniversalStoredWords,
} from './universalLayout.js';

/*
 * The quantized container: every kind of quantized matrix of this library in one safetensors file
 * (docs/FORMAT.md is the byte-level specification; this module is its reference reader and writer).
 *
 * A container is an ordinary safetensors file (src/io/safetensors.ts), so any safetensors tool lists
 * and reads its tensors. Its `__metadata__` holds the format name and version, the ordered list of
 * matrix names, one canonical JSON description per matrix (scheme, sizes, counts, and the CRC-32 of
 * each of its tensors), the caller's own metadata (`user.` keys) and a CRC-32 over all of that. Each
 * matrix's packed words are tensors named `<matrix>.<field>` in exactly the layouts the CPU unpackers
 * and the GPU kernels read (src/format/universalLayout.ts, packing.ts, bitFields.ts,
 * src/weightonly/packedCodes.ts), so a GPU upload copies them as they are (weight-only codes that
 * fit 8 bits excepted: `uploadWeightOnly` repacks them to fixed width for a faster kernel).
 *
 * Reading is checking. Nothing large is allocated before the header and every description have been
 * validated: the description implies each tensor's dtype and shape (computed from rows, cols, the
 * scheme and the escape counts, with overflow-safe arithmetic), and the file's tensors must be exactly
 * those; a tensor's bytes are copied only after its CRC-32 matched, and each copy or decoded array is
 * at most a fixed multiple of the bytes it comes from. The values are then checked (codes < q^d,
 * counts equal to what the bits say, ranks, table indices, scale indices, finite and bounded scales,
 * norms and means), so every accepted matrix decodes to finite values (`dequantize`, `decodeRotated`;
 * see `CONTAINER_MAX_DECODED_NORM`) and `matmulAT` of accepted matrices is finite or refused by its
 * own range check (`checkProductRange`), as for any quantized matrix. A description must be
 * byte for byte the one this writer would produce for its values (canonical JSON), and padding bits
 * must be zero, so a matrix has exactly one encoding.
 */

/** The `format` metadata value of a quantized container. */
export const CONTAINER_FORMAT = 'lattice-matmul.quantized';

/**
 * The newest `format_version` this library reads (it reads every one up to it). A larger version is
 * refused as "newer". Version 2 changed one thing: E8's universal dither hashes its second word with a
 * second column key (`DitherKeyCount`). Version 3 adds one: a rotation of n ≤ 1024 rows that is not a
 * Hadamard length may be the unpadded two-window one (`rotationPlan(n, n)`, the default past 256 rows;
 * earlier versions pad every such n). The writer writes the oldest version its matrices need (3 for a
 * two-window rotation of n ≤ 1024, else 2 for an E8 universal matrix with two keys, else 1), which
 * older readers read.
 */
export const CONTAINER_FORMAT_VERSION = 3;

/** Every `format_version` this library reads. */
const CONTAINER_VERSIONS = [1, 2, 3] as const;

/** Most rows of a lattice or scalar matrix (the rotation's limit; weight-only matrices have their own). */
export const CONTAINER_MAX_ROWS = 2 ** 30;

/**
 * Largest bound on the norm of a decoded (rotated) column that a container holds. Norms, means and
 * gains are held to the library's input range (`MAX_COLUMN_NORM` = 2^100, in which `quantize`
 * works); the decoded column can be larger than its norm by the code's factor (at
 * most β·(q·(2 + M) + 2), see `decodeUniversal`), and `dequantize` forms f32 sums of up to √N ≤ 2^15
 * entries of it in the inverse rotation: with ‖x̂‖ ≤ 2^110 they stay below 2^125, and the result plus
 * a mean of at most 2^100 below f32's 2^128. Matrices quantized from the library's range stay far
 * inside (their factor is below 2^10 unless β and q are both near their maxima).
 */
export const CONTAINER_MAX_DECODED_NORM = 2 ** 110;

/**
 * ‖L‖ ≤ q·R in λ units for every coset leader L: L/q is a point's offset from its nearest lattice
 * point, at most the covering radius R (D3 and E8: 1; Z^8: √2). 2 bounds all three.
 */
export const LEADER_RADIUS = 2;

/** ‖Z‖/DITHER_GRID ≤ this (λ units): the dither box's half-diagonal (D3 √1.5, E8 √2.5625). */
const DITHER_RADIUS = 2;

/**
 * A bound, in λ units, on ‖λ/s − Z/DITHER_GRID‖ for one block of a universal code whose escape μ has
 * norm `escapeNorm` = ‖μ‖/s (0 without an escape): λ = L + q·μ with ‖L‖/s ≤ q·LEADER_RADIUS, and the
 * dither adds at most DITHER_RADIUS. The block's rotated entries are (ν_j/√N)·β times that vector.
 * The one per-block bound of the container reader (`CONTAINER_MAX_DECODED_NORM`) and of the GPU
 * upload's escape-aware column bounds (src/gpu/universalOperand.ts).
 */
export function universalBlockBound(q: number, escapeNorm: number): number {
  return q * (LEADER_RADIUS + escapeNorm) + DITHER_RADIUS;
}

/**
 * Calls `visit(column, escapeNorm, explicit)` for every escaped block of a universal matrix, in
 * column-major block order: escapeNorm = ‖μ‖/s in λ units (a root's norm for a ranked escape, the
 * table row's for a long one, the explicit μ's for 0xFFFF), `explicit` for an explicit ("huge") μ.
 * One pass over the per-block escape symbols plus O(d) per long escape (`UniversalEscapeWalker`,
 * which refuses escape streams that disagree with the symbols).
 */
export function forEachEscapedBlock(
  lattice: UniversalLatticeScheme['lattice'],
  m: UniversalEscapeStreams,
  visit: (column: number, escapeNorm: number, explicit: boolean) => void,
): void {
  const walker = new UniversalEscapeWalker(lattice, m);
  while (walker.nextEscaped()) visit(walker.column, walker.escapeNorm(), walker.longIndex === HUGE_ESCAPE);
}

const KEY_FORMAT = 'format';
const KEY_VERSION = 'format_version';
const KEY_MATRICES = 'matrices';
const KEY_CHECKSUM = 'checksum';
const MATRIX_PREFIX = 'matrix.';

/**
 * Whether safetensors metadata says it is a quantized container: its `format` names one, or it has
 * every kind of key only a container writes (`checksum`, `matrices` and a `matrix.<name>`), as a
 * container whose `format` key or value was damaged still does. One of those keys alone is not a
 * claim: a plain model's metadata may carry a `checksum` or a `matrices` entry of its own.
 */
export function claimsToBeContainer(metadata: Readonly<Record<string, string>> | null): boolean {
  if (metadata === null) return false;
  if (metadata[KEY_FORMAT] === CONTAINER_FORMAT) return true;
  const keys = Object.keys(metadata);
  return keys.includes(KEY_CHECKSUM) && keys.includes(KEY_MATRICES) && keys.some((key) => key.startsWith(MATRIX_PREFIX));
}

/**
 * The `format_version` of a container's metadata when it is a version newer than this library reads
 * (a reader refuses it as "newer", not as malformed: docs/FORMAT.md §9), else null.
 */
export function newerContainerVersion(metadata: Readonly<Record<string, string>> | null): string | null {
  const versionText = metadata?.[KEY_VERSION];
  // Any canonical decimal integer: compared as a BigInt, so 10 digits and more are newer too.
  if (typeof versionText !== 'string' || !/^[1-9][0-9]*$/.test(versionText)) return null;
  return BigInt(versionText) > BigInt(CONTAINER_FORMAT_VERSION) ? versionText : null;
}
const USER_PREFIX = 'user.';

/** The weight-only rotations (`WeightOnlyQuantized.fromPacked` checks each against n). */
const WEIGHT_ROTATIONS: readonly RotationKind[] = ['none', 'hadamard', 'haar'];

// ─── Public types ────────────────────────────────────────────────────────────────────────────────

/** What a container holds: a quantized matrix of `quantize()` or a weight-only matrix. */
export type ContainerMatrix = QuantizedMatrix | WeightOnlyQuantized;

/** One matrix to write, under a name unique in the container. */
export interface ContainerEntryInput {
  readonly name: string;
  readonly matrix: ContainerMatrix;
}

/** The packed words of a deterministic lattice matrix, in the GPU layout (`packField`). */
export interface DeterministicStoredWords {
  /** `packField(codes, codeBits, blocksPerColumn, cols).words`. */
  readonly codes: Uint32Array;
  readonly codeBits: number;
  /** `packField(scaleIndices, scaleIndexBits, blocksPerColumn, cols).words`. */
  readonly scaleIndices: Uint32Array;
  readonly scaleIndexBits: number;
}

/** The packed codes of a scalar matrix: per column, `codeBits`-bit fields (`packColumnFields`). */
export interface ScalarStoredWords {
  readonly codes: Uint32Array;
  readonly codeBits: number;
}

/** A universal lattice matrix read from a container, with its stored words as the file holds them. */
export interface UniversalContainerEntry {
  readonly name: string;
  readonly kind: 'universal';
  readonly matrix: UniversalLatticeMatrix;
  readonly stored: UniversalStoredWords;
}

/** A deterministic lattice matrix read from a container. */
export interface DeterministicContainerEntry {
  readonly name: string;
  readonly kind: 'deterministic';
  readonly matrix: DeterministicLatticeMatrix;
  readonly stored: DeterministicStoredWords;
}

/** A scalar baseline (INT absmax, NVFP4) read from a container. */
export interface ScalarContainerEntry {
  readonly name: string;
  readonly kind: 'scalar';
  readonly matrix: ScalarQuantizedMatrix;
  readonly stored: ScalarStoredWords;
}

/** A weight-only matrix read from a container; `matrix.packedCodes` is `stored` (not repacked). */
export interface WeightOnlyContainerEntry {
  readonly name: string;
  readonly kind: 'weight-only';
  readonly matrix: WeightOnlyQuantized;
  readonly stored: PackedWeightCodes;
}

/** A matrix read from a container. */
export type ContainerEntry = UniversalContainerEntry | DeterministicContainerEntry | ScalarContainerEntry | WeightOnlyContainerEntry;

/** The kinds of matrices a container holds. */
export type ContainerEntryKind = ContainerEntry['kind'];

/** One tensor of a container entry, as its description implies it. */
export interface ContainerTensorInfo {
  /** The safetensors tensor name, `<matrix>.<field>`. */
  readonly name: string;
  readonly field: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** CRC-32 of the tensor's bytes, from the description. */
  readonly crc32: number;
}

/** What the header says about one matrix, validated, before any tensor is read. */
export interface ContainerEntryInfo {
  readonly name: string;
  readonly kind: ContainerEntryKind;
  /** Rows and columns of the matrix (weight-only: n inputs and outputs, the layout of `decode()`). */
  readonly rows: number;
  readonly cols: number;
  /** The description JSON as stored. */
  readonly description: string;
  readonly tensors: readonly ContainerTensorInfo[];
}

/** A container read into memory: every entry validated and decoded. */
export interface QuantizedContainer {
  readonly formatVersion: number;
  /** The caller's metadata as written (a null-prototype object). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The entries in the order they were written. */
  readonly entries: readonly ContainerEntry[];
  /** Whether an entry named `name` exists. */
  has(name: string): boolean;
  /** The entry named `name`; refuses an unknown name with a `LatticeMatmulError`. */
  get(name: string): ContainerEntry;
}

// ─── Descriptions ────────────────────────────────────────────────────────────────────────────────

interface LatticeCommon {
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly seed: number;
  readonly rotate: boolean;
  readonly centred: boolean;
}

interface UniversalFields extends LatticeCommon {
  readonly kind: 'universal';
  readonly scheme: UniversalLatticeScheme;
  readonly keptLength: number;
  readonly nonce: bigint;
  /** Not in the description: 1 for E8 in a container of format version 1, else 2 (`containerDitherKeys`). */
  readonly ditherKeys: DitherKeyCount;
  readonly escapes: number;
  readonly longEscapes: number;
  readonly explicitEscapes: number;
}

interface DeterministicFields extends LatticeCommon {
  readonly kind: 'deterministic';
  readonly scheme: DeterministicLatticeScheme;
  readonly keptLength: number;
  readonly gains: boolean;
  readonly unit: number;
  readonly multiples: readonly number[];
  readonly clippedBlocks: number;
}

interface ScalarFields extends LatticeCommon {
  readonly kind: 'scalar';
  readonly scheme: IntScheme | Nvfp4Scheme;
  readonly tensorScale: number;
}

interface WeightOnlyFields {
  readonly kind: 'weight-only';
  readonly method: WeightOnlyMethod;
  readonly rotation: RotationKind;
  readonly seed: number;
  readonly n: number;
  readonly outputs: number;
  readonly rowVec4s: number;
  readonly rowScales: boolean;
}

/** The values of one description (everything but the tensor checksums). */
type DescriptionFields = UniversalFields | DeterministicFields | ScalarFields | WeightOnlyFields;

/** A tensor a description implies. */
interface TensorSpec {
  readonly field: string;
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** A validated description and the tensors it implies, with their checksums. */
interface EntryPlan {
  readonly name: string;
  readonly fields: DescriptionFields;
  readonly tensors: readonly (TensorSpec & { readonly crc32: number })[];
  readonly description: string;
}

/** The scheme as canonical JSON: fixed key order, only the fields of its kind. */
function schemeObject(scheme: Scheme): Record<string, unknown> {
  switch (scheme.kind) {
    case 'lattice':
      if (scheme.mode === 'universal') return { kind: 'lattice', mode: 'universal', lattice: scheme.lattice, q: scheme.q, beta: scheme.beta };
      return {
        kind: 'lattice',
        mode: 'deterministic',
        lattice: scheme.lattice,
        q: scheme.q,
        overload:
          scheme.overload.kind === 'ladder'
            ? { kind: 'ladder', beta: scheme.overload.beta, ratio: scheme.overload.ratio, steps: scheme.overload.steps }
            : { kind: 'betaSet', betas: [...scheme.overload.betas] },
      };
    case 'int':
      return { kind: 'int', bits: scheme.bits, groupSize: scheme.groupSize, grid: scheme.grid, scaleFormat: scheme.scaleFormat };
    case 'nvfp4':
      return { kind: 'nvfp4' };
  }
}

function hex8(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}

/** The canonical description JSON: what the writer stores and what the reader must find, byte for byte. */
function descriptionJson(fields: DescriptionFields, checksums: ReadonlyMap<string, number>, tensors: readonly TensorSpec[]): string {
  const crcs: Record<string, string> = {};
  for (const t of tensors) crcs[t.field] = hex8(checksums.get(t.field) as number);
  let body: Record<string, unknown>;
  switch (fields.kind) {
    case 'universal':
      body = {
        kind: 'universal',
        scheme: schemeObject(fields.scheme),
        rows: fields.rows,
        cols: fields.cols,
        length: fields.length,
        keptLength: fields.keptLength,
        seed: fields.seed,
        rotate: fields.rotate,
        nonce: fields.nonce.toString(),
        centred: fields.centred,
        escapes: fields.escapes,
        longEscapes: fields.longEscapes,
        explicitEscapes: fields.explicitEscapes,
      };
      break;
    case 'deterministic':
      body = {
        kind: 'deterministic',
        scheme: schemeObject(fields.scheme),
        rows: fields.rows,
        cols: fields.cols,
        length: fields.length,
        keptLength: fields.keptLength,
        seed: fields.seed,
        rotate: fields.rotate,
        centred: fields.centred,
        gains: fields.gains,
        unit: fields.unit,
        multiples: [...fields.multiples],
        clippedBlocks: fields.clippedBlocks,
      };
      break;
    case 'scalar':
      body = {
        kind: 'scalar',
        scheme: schemeObject(fields.scheme),
        rows: fields.rows,
        cols: fields.cols,
        length: fields.length,
        seed: fields.seed,
        rotate: fields.rotate,
        centred: fields.centred,
        tensorScale: fields.tensorScale,
      };
      break;
    case 'weight-only':
      body = {
        kind: 'weight-only',
        method: fields.method,
        rotation: fields.rotation,
        seed: fields.seed,
        n: fields.n,
        outputs: fields.outputs,
        rowVec4s: fields.rowVec4s,
        rowScales: fields.rowScales,
      };
      break;
  }
  return JSON.stringify({ ...body, tensors: crcs });
}

// ─── Overflow-safe sizes and the tensors a description implies ──────────────────────────────────

/** Product of non-negative safe integers, refused when it is not a safe integer (no silent rounding). */
function safeProduct(what: string, ...factors: number[]): number {
  let product = 1;
  for (const f of factors) {
    product *= f;
    check(Number.isSafeInteger(product), () => `${what}: ${factors.join(' × ')} is too large`);
  }
  return product;
}

/** u32 words holding `count` fields of `bits` bits, overflow-checked. */
function safeStreamWords(what: string, count: number, bits: number): number {
  return Math.ceil(safeProduct(what, count, bits) / 32);
}

const DTYPE_BYTES: Readonly<Record<string, number>> = { U32: 4, I32: 4, F32: 4, U8: 1, F8_E4M3: 1 };

function tensor(matrix: string, field: string, dtype: SafetensorsDtype, shape: number[]): TensorSpec {
  const byteLength = safeProduct(`matrix ${JSON.stringify(matrix)}: tensor ${field}`, ...shape, DTYPE_BYTES[dtype] as number);
  return { field, name: `${matrix}.${field}`, dtype, shape, byteLength };
}

/** The universal codec of a scheme (its code width and tables). */
function codecOfScheme(scheme: UniversalLatticeScheme): UniversalCodec {
  return universalCodec(scheme.lattice, scheme.q, scheme.beta);
}

/** The tensors a validated description implies, in the description's order. */
function impliedTensors(name: string, fields: DescriptionFields): TensorSpec[] {
  const what = `matrix ${quoted(name)}`;
  switch (fields.kind) {
    case 'universal': {
      const codec = codecOfScheme(fields.scheme);
      const d = codec.spec.dimension;
      const blocksPerColumn = Math.ceil(fields.keptLength / d);
      const words = universalWordsPerColumn(codec, blocksPerColumn);
      const list = [
        tensor(name, 'codes', 'U32', [fields.cols, words.codes]),
        tensor(name, 'escape_bits', 'U32', [fields.cols, words.escapeBits]),
        tensor(name, 'escape_ranks', 'U32', [safeStreamWords(what, fields.escapes, 4)]),
        tensor(name, 'long_escapes', 'U32', [safeStreamWords(what, fields.longEscapes, 16)]),
        tensor(name, 'explicit_escapes', 'I32', [fields.explicitEscapes, d]),
        tensor(name, 'norms', 'F32', [fields.cols]),
      ];
      if (fields.centred) list.push(tensor(name, 'means', 'F32', [fields.cols]));
      return list;
    }
    case 'deterministic': {
      const d = latticeSpec(fields.scheme.lattice).dimension;
      const blocksPerColumn = Math.ceil(fields.keptLength / d);
      const list = [
        tensor(name, 'codes', 'U32', [fields.cols, packedLayout(latticeCodeBits(fields.scheme), blocksPerColumn).wordsPerColumn]),
        tensor(name, 'scale_indices', 'U32', [fields.cols, packedLayout(scaleIndexBits(fields.multiples.length), blocksPerColumn).wordsPerColumn]),
        tensor(name, 'norms', 'F32', [fields.cols]),
      ];
      if (fields.gains) list.push(tensor(name, 'gains', 'F32', [fields.cols]));
      if (fields.centred) list.push(tensor(name, 'means', 'F32', [fields.cols]));
      return list;
    }
    case 'scalar': {
      const { bits, groups } = scalarLayout(fields);
      const list = [
        tensor(name, 'codes', 'U32', [fields.cols, safeStreamWords(what, fields.length, bits)]),
        tensor(name, 'scales', fields.scheme.kind === 'int' ? 'F32' : 'F8_E4M3', [fields.cols, groups]),
      ];
      if (fields.centred) list.push(tensor(name, 'means', 'F32', [fields.cols]));
      return list;
    }
    case 'weight-only': {
      const list = [
        tensor(name, 'codes', 'U32', [fields.outputs, safeProduct(what, 4, fields.rowVec4s)]),
        tensor(name, 'code_widths', 'U8', [fields.n]),
        tensor(name, 'column_scales', 'F32', [fields.n]),
      ];
      if (fields.rowScales) list.push(tensor(name, 'row_scales', 'F32', [fields.outputs]));
      return list;
    }
  }
}

/** Bits per scalar code and scale groups per column. */
function scalarLayout(fields: Pick<ScalarFields, 'scheme' | 'length'>): { bits: number; groups: number } {
  if (fields.scheme.kind === 'nvfp4') return { bits: 4, groups: Math.ceil(fields.length / NVFP4_BLOCK_SIZE) };
  const groupSize = fields.scheme.groupSize === 'column' ? fields.length : fields.scheme.groupSize;
  return { bits: fields.scheme.bits, groups: Math.ceil(fields.length / groupSize) };
}

// ─── Parsing a description ───────────────────────────────────────────────────────────────────────

/** Typed, range-checked access to the fields of a parsed description; messages name the matrix and field. */
class DescriptionReader {
  constructor(
    private readonly matrix: string,
    private readonly object: Record<string, unknown>,
  ) {}

  /** `matrix "<name>"`, for messages. */
  get label(): string {
    return `matrix ${JSON.stringify(this.matrix)}`;
  }

  fail(message: string): never {
    throw new LatticeMatmulError(`quantized container: matrix ${JSON.stringify(this.matrix)}: ${message}`);
  }

  expectKeys(keys: readonly string[]): void {
    for (const key of Object.keys(this.object)) {
      if (!keys.includes(key)) this.fail(`unknown description field ${describeValue(key)} (a ${String(this.object.kind)} matrix has ${keys.join(', ')})`);
    }
    for (const key of keys) if (!Object.hasOwn(this.object, key)) this.fail(`description field "${key}" is missing`);
  }

  value(key: string): unknown {
    return this.object[key];
  }

  integer(key: string, min: number, max: number): number {
    const v = this.object[key];
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max)) {
      this.fail(`description field "${key}" must be an integer in [${min}, ${max}], got ${describeValue(v)}`);
    }
    return v;
  }

  boolean(key: string): boolean {
    const v = this.object[key];
    if (typeof v !== 'boolean') this.fail(`description field "${key}" must be true or false, got ${describeValue(v)}`);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.object[key];
    if (!(typeof v === 'string' && (allowed as readonly string[]).includes(v))) {
      this.fail(`description field "${key}" must be one of ${allowed.join(', ')}, got ${describeValue(v)}`);
    }
    return v as T;
  }

  scheme(): Scheme {
    const v = this.object.scheme;
    if (!isPlainObject(v)) this.fail(`description field "scheme" must be a scheme object, got ${describeValue(v)}`);
    try {
      return resolveScheme(v as unknown as Scheme);
    } catch (error) {
      if (error instanceof LatticeMatmulError) this.fail(`invalid scheme: ${error.message}`);
      throw error;
    }
  }
}

/** Rows, cols, length, seed, rotate and centring, checked against each other. */
function latticeCommon(r: DescriptionReader, version: number): LatticeCommon {
  const rows = r.integer('rows', 1, CONTAINER_MAX_ROWS);
  const cols = r.integer('cols', 1, Number.MAX_SAFE_INTEGER);
  const rotate = r.boolean('rotate');
  const length = r.integer('length', 1, Number.MAX_SAFE_INTEGER);
  if (!rotate) {
    if (length !== rows) r.fail(`length is ${length}, but an unrotated matrix has length = rows = ${rows}`);
  } else {
    if (!isRotationLength(rows, length)) r.fail(`length is ${length}, but the rotation of ${rows} rows has length ${rotationLengthsText(rows)}`);
    checkRotationVersion(r, rows, length, version, `length is ${length}`);
  }
  return { rows, cols, length, rotate, seed: r.integer('seed', 0, 0xffffffff), centred: r.boolean('centred') };
}

function keptLengthOf(r: DescriptionReader, common: LatticeCommon, d: number): number {
  const { length } = common;
  const keptLength = r.integer('keptLength', 1, length);
  if (keptLength !== length && keptLength % d !== 0) r.fail(`keptLength ${keptLength} is neither the length ${length} nor a whole number of ${d}-entry blocks`);
  // Time-sharing keeps a prefix, which only a one-stage rotation mixes evenly (`checkTimeSharedRotation`).
  if (keptLength < length && common.rotate && rotationPlan(common.rows, length).stages.length > 1) {
    r.fail(`keptLength ${keptLength} < length ${length} (time-sharing) over the two-window rotation of ${common.rows} rows; time-sharing needs a one-stage rotation`);
  }
  return keptLength;
}

/**
 * Refuses a two-window rotation of n ≤ 1024 (`what`: the field that gives it) in a container older than
 * version 3, which has none: it pads every such n (a weight-only matrix takes the dense rotation).
 */
function checkRotationVersion(r: DescriptionReader, rows: number, length: number, version: number, what: string): void {
  if (version < 3 && isShortWindowedRotation(rows, length)) {
    r.fail(`${what}, the unpadded two-window rotation of ${rows} ≤ 1024 rows, which a container of format version ${version} cannot hold (it is format version 3)`);
  }
}

/**
 * The column keys E8's dither hashes in a container of `version`: one key up to version 1, a key per
 * hash word from version 2. D3 reads one word, so its count is 2 in every version.
 */
function containerDitherKeys(lattice: UniversalLatticeScheme['lattice'], version: number): DitherKeyCount {
  return lattice === 'E8' && version < 2 ? 1 : DITHER_KEYS;
}

/** The lattice of a universal matrix's scheme (a name or an object), or null where it has none (the per-entry checks report it). */
function universalLattice(matrix: unknown): string | null {
  if (typeof matrix !== 'object' || matrix === null || matrix instanceof WeightOnlyQuantized) return null;
  const m = matrix as Partial<UniversalLatticeMatrix>;
  if (m.kind !== 'lattice' || m.mode !== 'universal') return null;
  try {
    const scheme = resolveScheme(m.scheme as Scheme);
    return scheme.kind === 'lattice' ? scheme.lattice : null;
  } catch {
    return null;
  }
}

/**
 * The format version a container of these matrices needs: 3 if one has a two-window rotation of n ≤
 * 1024, else 2 if one is E8 with two dither keys, else 1. Entries that are not well formed count for
 * none: the writer refuses them by name afterwards.
 */
function containerVersionFor(entries: readonly ContainerEntryInput[]): ContainerVersion {
  let version: ContainerVersion | null = null;
  for (const entry of entries) version = combinedContainerVersion(version, containerVersionOf(entry));
  return version ?? 1;
}

/** The format versions a writer writes. */
export type ContainerVersion = 1 | 2 | 3;

/**
 * The format version an entry's matrix needs: exactly 1 for a universal E8 matrix with one dither key
 * (read from a version-1 container); at least 3 for a two-window rotation of n ≤ 1024 (the unpadded
 * default for 256 < n ≤ 1024); at least 2 for a universal E8 matrix with two keys; null for any other
 * matrix, or a malformed entry (refused by the entry's own checks), which reads the same in every version.
 */
export function containerVersionOf(entry: unknown): ContainerVersion | null {
  const matrix: unknown = typeof entry === 'object' && entry !== null ? (entry as Partial<ContainerEntryInput>).matrix : null;
  const oneKeyE8 = universalLattice(matrix) === 'E8' && (matrix as UniversalLatticeMatrix).ditherKeys === 1;
  if (oneKeyE8) return 1;
  if (hasShortWindowedRotation(matrix)) return 3;
  return universalLattice(matrix) === 'E8' ? 2 : null;
}

/** True when `matrix` is rotated in two windows with n ≤ 1024 (`isShortWindowedRotation`), which needs format version 3. */
function hasShortWindowedRotation(matrix: unknown): boolean {
  if (typeof matrix !== 'object' || matrix === null) return false;
  if (matrix instanceof WeightOnlyQuantized) return weightOnlyNeedsVersion3(matrix.rotation, matrix.n);
  const m = matrix as Partial<QuantizedMatrix>;
  return m.rotate === true && typeof m.rows === 'number' && typeof m.length === 'number' && isShortWindowedRotation(m.rows, m.length);
}

/**
 * The version of a container holding matrices that need `a` and `b` (null: any; 1: exactly 1; 2 and
 * 3: at least that), or a refusal when one needs exactly 1 and the other more.
 */
export function combinedContainerVersion(a: ContainerVersion | null, b: ContainerVersion | null): ContainerVersion | null {
  if (a === null || b === null) return a ?? b;
  check(
    (a === 1) === (b === 1),
    'writeQuantizedContainer: E8 universal matrices read from a container of format version 1 (one dither key) cannot share a container with matrices ' +
      'that need a newer version (E8 universal matrices with two keys, or the unpadded rotation of 256 < n ≤ 1024 rows, version 3): write them to separate containers',
  );
  return a > b ? a : b;
}

function parseFields(r: DescriptionReader, kind: unknown, version: number): DescriptionFields {
  switch (kind) {
    case 'universal': {
      r.expectKeys(['kind', 'scheme', 'rows', 'cols', 'length', 'keptLength', 'seed', 'rotate', 'nonce', 'centred', 'escapes', 'longEscapes', 'explicitEscapes', 'tensors']);
      const scheme = r.scheme();
      if (scheme.kind !== 'lattice' || scheme.mode !== 'universal') r.fail(`a universal matrix needs a universal lattice scheme, got kind ${scheme.kind}`);
      const common = latticeCommon(r, version);
      const d = latticeSpec(scheme.lattice).dimension;
      const keptLength = keptLengthOf(r, common, d);
      const nonceText = r.value('nonce');
      if (!(typeof nonceText === 'string' && /^(0|[1-9][0-9]{0,19})$/.test(nonceText) && BigInt(nonceText) < NONCE_LIMIT)) {
        r.fail(`description field "nonce" must be a decimal integer below 2^64 (no sign, no leading zeros), got ${describeValue(nonceText)}`);
      }
      const blocks = safeProduct(r.label, Math.ceil(keptLength / d), common.cols);
      const escapes = r.integer('escapes', 0, blocks);
      const longEscapes = r.integer('longEscapes', 0, escapes);
      const explicitEscapes = r.integer('explicitEscapes', 0, longEscapes);
      return { kind: 'universal', scheme, ...common, keptLength, nonce: BigInt(nonceText), ditherKeys: containerDitherKeys(scheme.lattice, version), escapes, longEscapes, explicitEscapes };
    }
    case 'deterministic': {
      r.expectKeys(['kind', 'scheme', 'rows', 'cols', 'length', 'keptLength', 'seed', 'rotate', 'centred', 'gains', 'unit', 'multiples', 'clippedBlocks', 'tensors']);
      const scheme = r.scheme();
      if (scheme.kind !== 'lattice' || scheme.mode !== 'deterministic') r.fail(`a deterministic matrix needs a deterministic lattice scheme, got kind ${scheme.kind}`);
      const common = latticeCommon(r, version);
      const spec = latticeSpec(scheme.lattice);
      const keptLength = keptLengthOf(r, common, spec.dimension);
      // unit and multiples are stored for readers in other languages; they must be this scheme's grid.
      const grid = scaleGrid(scheme.overload, spec.maxDenominator);
      const unit = r.value('unit');
      const multiples = r.value('multiples');
      const mismatch = scaleGridMismatch(grid, unit, multiples);
      if (mismatch !== null) r.fail(mismatch);
      const blocks = safeProduct(r.label, Math.ceil(keptLength / spec.dimension), common.cols);
      return {
        kind: 'deterministic',
        scheme,
        ...common,
        keptLength,
        gains: r.boolean('gains'),
        unit: grid.unit,
        multiples: Array.from(grid.multiples),
        clippedBlocks: r.integer('clippedBlocks', 0, blocks),
      };
    }
    case 'scalar': {
      r.expectKeys(['kind', 'scheme', 'rows', 'cols', 'length', 'seed', 'rotate', 'centred', 'tensorScale', 'tensors']);
      const scheme = r.scheme();
      if (scheme.kind !== 'int' && scheme.kind !== 'nvfp4') r.fail(`a scalar matrix needs an int or nvfp4 scheme, got kind ${scheme.kind}`);
      const common = latticeCommon(r, version);
      const tensorScale = r.value('tensorScale');
      if (scheme.kind === 'int' && tensorScale !== 1) r.fail(`tensorScale of an int scheme must be 1, got ${describeValue(tensorScale)}`);
      if (!(typeof tensorScale === 'number' && Number.isFinite(tensorScale) && tensorScale > 0 && Math.fround(tensorScale) === tensorScale)) {
        r.fail(`tensorScale must be a positive finite f32 value, got ${describeValue(tensorScale)}`);
      }
      return { kind: 'scalar', scheme, ...common, tensorScale };
    }
    case 'weight-only': {
      r.expectKeys(['kind', 'method', 'rotation', 'seed', 'n', 'outputs', 'rowVec4s', 'rowScales', 'tensors']);
      const n = r.integer('n', 1, Number.MAX_SAFE_INTEGER);
      const rotation = r.oneOf('rotation', WEIGHT_ROTATIONS);
      if (rotation === 'hadamard') checkRotationVersion(r, n, n, version, `rotation is 'hadamard' for n = ${n}`);
      return {
        kind: 'weight-only',
        method: r.oneOf('method', WEIGHT_ONLY_METHODS),
        rotation,
        seed: r.integer('seed', 0, 0xffffffff),
        n,
        outputs: r.integer('outputs', 1, Number.MAX_SAFE_INTEGER),
        // A row holds n codes of at most MAX_CODE_BITS bits: more vec4 than that are never needed.
        rowVec4s: r.integer('rowVec4s', 1, Math.max(1, Math.ceil((n * MAX_CODE_BITS) / 128))),
        rowScales: r.boolean('rowScales'),
      };
    }
    default:
      return r.fail(`description field "kind" must be universal, deterministic, scalar or weight-only, got ${describeValue(kind)}`);
  }
}

/**
 * Parses and validates the description of matrix `name`: every field, the tensors it implies (with
 * their checksums), and that `json` is exactly the canonical JSON of those values.
 */
function parseDescription(name: string, json: string, version: number): EntryPlan {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new LatticeMatmulError(`quantized container: matrix ${quoted(name)}: its description is not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (!isPlainObject(parsed)) throw new LatticeMatmulError(`quantized container: matrix ${quoted(name)}: its description must be a JSON object`);
  const r: DescriptionReader = new DescriptionReader(name, parsed);
  const fields = parseFields(r, parsed.kind, version);
  const specs = impliedTensors(name, fields);
  const crcs = r.value('tensors');
  if (!isPlainObject(crcs)) r.fail(`description field "tensors" must be an object of CRC-32 values, got ${describeValue(crcs)}`);
  const expected = specs.map((t) => t.field);
  for (const key of Object.keys(crcs)) {
    if (!expected.includes(key)) r.fail(`description lists a tensor ${describeValue(key)} that a matrix like this does not have (it has ${expected.join(', ')})`);
  }
  const checksums = new Map<string, number>();
  for (const field of expected) {
    const v = crcs[field];
    if (!(typeof v === 'string' && /^[0-9a-f]{8}$/.test(v))) r.fail(`the CRC-32 of tensor "${field}" must be 8 lowercase hex digits, got ${describeValue(v)}`);
    checksums.set(field, Number.parseInt(v, 16));
  }
  const canonical = descriptionJson(fields, checksums, specs);
  if (canonical !== json) r.fail('its description is not in canonical form (key order, number format and spacing must be those of the writer)');
  return { name, fields, description: json, tensors: specs.map((t) => ({ ...t, crc32: checksums.get(t.field) as number })) };
}

// ─── Metadata ────────────────────────────────────────────────────────────────────────────────────

const encoder = new TextEncoder();

function compareUtf8(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/**
 * CRC-32 of the metadata: every entry but `checksum`, ordered by the UTF-8 bytes of the key, each as
 * u32 little-endian byte length + UTF-8 key + u32 length + UTF-8 value.
 */
function metadataChecksum(metadata: Readonly<Record<string, string>>): number {
  const pairs = Object.keys(metadata)
    .filter((key) => key !== KEY_CHECKSUM)
    .map((key) => [encoder.encode(key), encoder.encode(metadata[key] as string)] as const)
    .sort((a, b) => compareUtf8(a[0], b[0]));
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  let crc = 0;
  for (const [key, value] of pairs) {
    for (const part of [key, value]) {
      lengthView.setUint32(0, part.length, true);
      crc = crc32Continue(crc, length);
      crc = crc32Continue(crc, part);
    }
  }
  return crc;
}

/** The validated header of a container: its metadata and each entry's plan. */
export interface ContainerLayout {
  readonly formatVersion: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly entries: readonly ContainerEntryInfo[];
  /** Internal: the plans `decodeContainerEntry` needs, by name. */
  readonly plans: ReadonlyMap<string, EntryPlanHandle>;
}

/** An opaque validated entry plan (internal to the container modules). */
export interface EntryPlanHandle {
  readonly info: ContainerEntryInfo;
}

interface PlanHandle extends EntryPlanHandle {
  readonly plan: EntryPlan;
}

function containerError(message: string): LatticeMatmulError {
  return new LatticeMatmulError(`quantized container: ${message}`);
}

/**
 * Validates a safetensors header as a quantized container: format and version, the metadata
 * checksum, the matrix list and every description, and that the file's tensors are exactly the ones
 * the descriptions imply (names, dtypes, shapes). Reads no tensor data. Shared by the in-memory reader
 * and the file reader (src/format/containerFile.ts).
 *
 * @example
 * const layout = parseContainerLayout(readSafetensors(bytes).header);
 * layout.entries.map((e) => e.name);
 */
export function parseContainerLayout(header: SafetensorsHeader): ContainerLayout {
  const metadata = header.metadata;
  if (metadata === null || metadata[KEY_FORMAT] !== CONTAINER_FORMAT) {
    throw containerError(
      `not a lattice-matmul quantized container: the safetensors metadata has ${metadata === null ? 'no "format"' : `"format" = ${describeValue(metadata[KEY_FORMAT])}`}, expected ${JSON.stringify(CONTAINER_FORMAT)}`,
    );
  }
  const newer = newerContainerVersion(metadata);
  if (newer !== null) {
    const shown = newer.length <= 24 ? newer : `${newer.slice(0, 12)}…(${newer.length} digits)`;
    throw containerError(`format_version ${shown} is newer than this library reads (${CONTAINER_FORMAT_VERSION}); update lattice-matmul`);
  }
  const versionText = metadata[KEY_VERSION];
  const version = CONTAINER_VERSIONS.find((v) => versionText === String(v));
  if (version === undefined) throw containerError(`format_version must be ${CONTAINER_VERSIONS.map((v) => `"${v}"`).join(' or ')}, got ${describeValue(versionText)}`);
  const stored = metadata[KEY_CHECKSUM];
  if (!(typeof stored === 'string' && /^[0-9a-f]{8}$/.test(stored))) throw containerError(`metadata "checksum" must be 8 lowercase hex digits, got ${describeValue(stored)}`);
  const computed = metadataChecksum(metadata);
  if (Number.parseInt(stored, 16) !== computed) {
    throw containerError(`the metadata is corrupted: its checksum is ${stored} but the metadata gives ${hex8(computed)}`);
  }
  const names = parseNames(metadata[KEY_MATRICES]);
  const nameSet = new Set(names); // a Set: containers may hold tens of thousands of matrices
  const user: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of Object.keys(metadata)) {
    if (key.startsWith(USER_PREFIX)) {
      user[key.slice(USER_PREFIX.length)] = metadata[key] as string;
    } else if (key.startsWith(MATRIX_PREFIX)) {
      if (!nameSet.has(key.slice(MATRIX_PREFIX.length))) throw containerError(`metadata key ${describeValue(key)} describes a matrix that is not in "matrices"`);
    } else if (![KEY_FORMAT, KEY_VERSION, KEY_CHECKSUM, KEY_MATRICES].includes(key)) {
      throw containerError(`unknown metadata key ${describeValue(key)} (the caller's keys start with "${USER_PREFIX}")`);
    }
  }
  const plans = new Map<string, PlanHandle>();
  const expectedTensors = new Map<string, TensorSpec>();
  for (const name of names) {
    const json = metadata[MATRIX_PREFIX + name];
    if (json === undefined) throw containerError(`matrix ${quoted(name)} is listed in "matrices" but has no ${quoted(MATRIX_PREFIX + name)} description`);
    const plan = parseDescription(name, json, version);
    for (const t of plan.tensors) {
      // Field names have no dots, so `<matrix>.<field>` names are distinct for distinct pairs.
      expectedTensors.set(t.name, t);
    }
    const info: ContainerEntryInfo = {
      name,
      kind: plan.fields.kind,
      rows: plan.fields.kind === 'weight-only' ? plan.fields.n : plan.fields.rows,
      cols: plan.fields.kind === 'weight-only' ? plan.fields.outputs : plan.fields.cols,
      description: json,
      tensors: plan.tensors.map((t) => ({ name: t.name, field: t.field, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, crc32: t.crc32 })),
    };
    plans.set(name, { info, plan });
  }
  for (const t of header.tensors) {
    const spec = expectedTensors.get(t.name);
    if (spec === undefined) throw containerError(`tensor ${describeValue(t.name)} belongs to no matrix of the container`);
    if (t.dtype !== spec.dtype || t.shape.length !== spec.shape.length || t.shape.some((dim, i) => dim !== spec.shape[i])) {
      throw containerError(`tensor ${describeValue(t.name)} is ${t.dtype} [${t.shape.join(', ')}], but its matrix's description implies ${spec.dtype} [${spec.shape.join(', ')}]`);
    }
  }
  for (const name of expectedTensors.keys()) {
    if (!header.tensorsByName.has(name)) throw containerError(`tensor ${describeValue(name)} is missing`);
  }
  return { formatVersion: version, metadata: user, entries: [...plans.values()].map((p) => p.info), plans };
}

function parseNames(text: string | undefined): string[] {
  let names: unknown;
  try {
    names = JSON.parse(text ?? '');
  } catch (error) {
    throw new LatticeMatmulError(`quantized container: metadata "matrices" must be a JSON array of names, got ${describeValue(text)}`, { cause: error });
  }
  if (!(Array.isArray(names) && names.every((n) => typeof n === 'string' && n.length > 0))) {
    throw containerError('metadata "matrices" must be a JSON array of non-empty names');
  }
  const list = names as string[];
  if (new Set(list).size !== list.length) throw containerError('metadata "matrices" names a matrix twice');
  if (JSON.stringify(list) !== text) throw containerError('metadata "matrices" is not in canonical form');
  return list;
}

// ─── Decoding an entry ───────────────────────────────────────────────────────────────────────────

/** Typed arrays alias the host's byte order; the file is little-endian. */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function copyAs<T>(bytes: Uint8Array, make: (buffer: ArrayBuffer) => T): T {
  check(HOST_IS_LITTLE_ENDIAN, 'quantized container: this host is big-endian; the file is little-endian');
  const buffer = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buffer).set(bytes);
  return make(buffer);
}

const asU32 = (bytes: Uint8Array): Uint32Array => copyAs(bytes, (b) => new Uint32Array(b));
const asI32 = (bytes: Uint8Array): Int32Array => copyAs(bytes, (b) => new Int32Array(b));
const asF32 = (bytes: Uint8Array): Float32Array => copyAs(bytes, (b) => new Float32Array(b));
const asU8 = (bytes: Uint8Array): Uint8Array => copyAs(bytes, (b) => new Uint8Array(b));

/** The bits of `words` past `usedBits` in each column's last word must be zero (one encoding per matrix). */
function checkStreamPadding(fail: (message: string) => never, words: Uint32Array, columns: number, wordsPerColumn: number, usedBits: number, what: string): void {
  const tail = usedBits % 32;
  if (tail === 0 || wordsPerColumn === 0) return;
  for (let j = 0; j < columns; j++) {
    const last = words[j * wordsPerColumn + wordsPerColumn - 1] as number;
    if (last >>> tail !== 0) fail(`${what}: padding bits of ${columns === 1 ? 'the stream' : `column ${j}`} are not zero`);
  }
}

/**
 * Norms 0 or in [2^-100, 2^100], the range `quantize` writes (`isSupportedColumnNorm`; smaller
 * nonzero norms would decode subnormally on the GPU); means finite within ±2^100 (`MAX_COLUMN_NORM`).
 */
function checkNormsAndMeans(fail: (message: string) => never, norms: Float32Array, means: Float32Array | null): void {
  for (let j = 0; j < norms.length; j++) {
    const v = norms[j] as number;
    if (!isSupportedColumnNorm(v)) fail(`norm of column ${j} is ${v}; norms must be 0 or within [2^-100, 2^100]`);
  }
  if (means === null) return;
  for (let j = 0; j < means.length; j++) {
    const v = means[j] as number;
    if (!(Math.abs(v) <= MAX_COLUMN_NORM)) fail(`mean of column ${j} is ${v}; means must be finite with |mean| ≤ 2^100`);
  }
}

function checkColumnBound(fail: (message: string) => never, j: number, bound: number): void {
  if (!(bound <= CONTAINER_MAX_DECODED_NORM)) {
    fail(`column ${j} can decode to a norm up to ${bound.toExponential(3)}, beyond the container's limit 2^110 (dequantizing it could overflow f32)`);
  }
}

/**
 * Checks and decodes one entry from its tensors' bytes (`bytesOf` returns each tensor's bytes, of the
 * size the plan says): checksums first, then copies, then every value. Shared by the in-memory and
 * the file reader.
 *
 * @example
 * const entry = decodeContainerEntry(layout.plans.get('w')!, (t) => archive.tensorBytes(t.name));
 */
export function decodeContainerEntry(handle: EntryPlanHandle, bytesOf: (tensor: ContainerTensorInfo) => Uint8Array): ContainerEntry {
  const { plan } = handle as PlanHandle;
  const fail = (message: string): never => {
    throw new LatticeMatmulError(`quantized container: matrix ${quoted(plan.name)}: ${message}`);
  };
  const data = new Map<string, Uint8Array>();
  for (const t of handle.info.tensors) {
    const bytes = bytesOf(t);
    if (bytes.byteLength !== t.byteLength) fail(`tensor "${t.field}" has ${bytes.byteLength} bytes, expected ${t.byteLength}`);
    const computed = crc32(bytes);
    if (computed !== t.crc32) fail(`tensor "${t.field}" is corrupted: its checksum is ${hex8(t.crc32)} but its bytes give ${hex8(computed)}`);
    data.set(t.field, bytes);
  }
  const get = (field: string): Uint8Array => data.get(field) as Uint8Array;
  const optional = (field: string): Uint8Array | null => data.get(field) ?? null;
  const fields = plan.fields;
  switch (fields.kind) {
    case 'universal':
      return decodeUniversal(plan.name, fields, get, optional, fail);
    case 'deterministic':
      return decodeDeterministic(plan.name, fields, get, optional, fail);
    case 'scalar':
      return decodeScalar(plan.name, fields, get, optional, fail);
    case 'weight-only':
      return decodeWeightOnly(plan.name, fields, get, optional, fail);
  }
}

type Fail = (message: string) => never;
type Get = (field: string) => Uint8Array;
type Optional = (field: string) => Uint8Array | null;

function decodeUniversal(name: string, f: UniversalFields, get: Get, optional: Optional, fail: Fail): UniversalContainerEntry {
  const codec = codecOfScheme(f.scheme);
  const { spec, codeBits, q } = codec;
  const d = spec.dimension;
  const candidates = spec.escapes;
  const { cols } = f;
  const blocksPerColumn = Math.ceil(f.keptLength / d);
  const words = universalWordsPerColumn(codec, blocksPerColumn);
  const stored: UniversalStoredWords = {
    codes: asU32(get('codes')),
    escapeBits: asU32(get('escape_bits')),
    ranks: asU32(get('escape_ranks')),
    longs: asU32(get('long_escapes')),
    huge: asI32(get('explicit_escapes')),
  };
  const norms = asF32(get('norms'));
  const meansBytes = optional('means');
  const means = meansBytes === null ? null : asF32(meansBytes);
  checkNormsAndMeans(fail, norms, means);

  // Codes: padding zero, every code < q^d.
  checkStreamPadding(fail, stored.codes, cols, words.codes, blocksPerColumn * codeBits, 'codes');
  const { codes, codesHigh } = unpackUniversalCodes(stored.codes, codec, blocksPerColumn, cols);
  const size = codec.code.size;
  for (let i = 0; i < codes.length; i++) {
    const code = (codes[i] as number) + (codesHigh === null ? 0 : (codesHigh[i] as number) * 2 ** 32);
    if (code >= size) fail(`code ${code} of block ${i % blocksPerColumn} of column ${Math.floor(i / blocksPerColumn)} is not below q^d = ${size}`);
  }
  // Escape bits: padding zero, as many set as the description says.
  checkStreamPadding(fail, stored.escapeBits, cols, words.escapeBits, blocksPerColumn, 'escape bits');
  let escapeCount = 0;
  for (const word of stored.escapeBits) escapeCount += popcount(word);
  if (escapeCount !== f.escapes) fail(`the escape bits mark ${escapeCount} escapes, the description says ${f.escapes}`);
  // Ranks: 1 … min(15, roots) or 0 (long); as many 0 as long escapes.
  checkStreamPadding(fail, stored.ranks, 1, stored.ranks.length, 4 * f.escapes, 'escape ranks');
  const maxRank = largestEscapeRank(candidates);
  let longCount = 0;
  for (let k = 0; k < f.escapes; k++) {
    const rank = readBitsAt(stored.ranks, 0, 4 * k, 4);
    if (rank === 0) longCount++;
    else if (rank > maxRank) fail(`escape ${k} has rank ${rank}, but ${spec.name} has ${candidates.rootCount} roots`);
  }
  if (longCount !== f.longEscapes) fail(`the ranks mark ${longCount} long escapes, the description says ${f.longEscapes}`);
  // Long escapes: an index into the extended table, or 0xffff (explicit); as many 0xffff as explicit escapes.
  checkStreamPadding(fail, stored.longs, 1, stored.longs.length, 16 * f.longEscapes, 'long escapes');
  let hugeCount = 0;
  for (let k = 0; k < f.longEscapes; k++) {
    const index = readBitsAt(stored.longs, 0, 16 * k, 16);
    if (index === HUGE_ESCAPE) hugeCount++;
    else if (index >= candidates.extendedCount) fail(`long escape ${k} has index ${index}, beyond the ${candidates.extendedCount} entries of the ${spec.name} table`);
  }
  if (hugeCount !== f.explicitEscapes) fail(`the long escapes mark ${hugeCount} explicit escapes, the description says ${f.explicitEscapes}`);
  // Explicit escapes: lattice points of bounded coordinates.
  for (let k = 0; k < f.explicitEscapes; k++) {
    const mu = stored.huge.subarray(k * d, (k + 1) * d);
    if (mu.some((v) => Math.abs(v) > MAX_EXPLICIT_COORDINATE)) fail(`explicit escape ${k} has a coordinate beyond ±2^16`);
    if (!spec.lattice.contains(mu)) fail(`explicit escape ${k} is not a point of ${spec.name}`);
  }
  const escapes = unpackUniversalEscapes(stored, blocksPerColumn, cols, d);

  // Decoded column norms: ‖x̂_j‖ ≤ ν_j·β·(q·(R + M_j) + R_Z), M_j the largest ‖μ‖ of the column's
  // escapes: every rotated coordinate is (ν_j/√N)·β·(λ/s − Z/256) and a column has at most N of them.
  const largest = new Float64Array(cols);
  forEachEscapedBlock(f.scheme.lattice, { ...escapes, blocksPerColumn, cols }, (j, escapeNorm) => {
    largest[j] = Math.max(largest[j] as number, escapeNorm);
  });
  for (let j = 0; j < cols; j++) checkColumnBound(fail, j, (norms[j] as number) * f.scheme.beta * universalBlockBound(q, largest[j] as number));

  const rates = universalRatesOf(codec, f.rows, cols, blocksPerColumn, escapes.escapes, escapes.longEscapes, f.explicitEscapes, means !== null);
  const matrix: UniversalLatticeMatrix = {
    kind: 'lattice',
    mode: 'universal',
    scheme: f.scheme,
    rows: f.rows,
    cols,
    length: f.length,
    keptLength: f.keptLength,
    seed: f.seed,
    rotate: f.rotate,
    nonce: f.nonce,
    ditherKeys: f.ditherKeys,
    means,
    norms,
    blocksPerColumn,
    codes,
    codesHigh,
    ...escapes,
    ...rates,
  };
  return { name, kind: 'universal', matrix, stored };
}

function popcount(word: number): number {
  let v = word >>> 0;
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeDeterministic(name: string, f: DeterministicFields, get: Get, optional: Optional, fail: Fail): DeterministicContainerEntry {
  const spec = latticeSpec(f.scheme.lattice);
  const d = spec.dimension;
  const code = new VoronoiCode(spec.lattice, f.scheme.q);
  const blocksPerColumn = Math.ceil(f.keptLength / d);
  const { cols } = f;
  const codeBits = latticeCodeBits(f.scheme);
  const indexBits = scaleIndexBits(f.multiples.length);
  const stored: DeterministicStoredWords = { codes: asU32(get('codes')), codeBits, scaleIndices: asU32(get('scale_indices')), scaleIndexBits: indexBits };
  const norms = asF32(get('norms'));
  const gainsBytes = optional('gains');
  const gains = gainsBytes === null ? null : asF32(gainsBytes);
  const meansBytes = optional('means');
  const means = meansBytes === null ? null : asF32(meansBytes);
  checkNormsAndMeans(fail, norms, means);
  if (gains !== null) {
    for (let j = 0; j < cols; j++) {
      if (!(Math.abs(gains[j] as number) <= MAX_COLUMN_NORM)) fail(`gain of column ${j} is ${gains[j]}; gains must be finite with |gain| ≤ 2^100`);
    }
  }
  const codeLayout = packedLayout(codeBits, blocksPerColumn);
  const codes = unpackField({ words: stored.codes, bits: codeBits, ...codeLayout }, blocksPerColumn, cols);
  for (let i = 0; i < codes.length; i++) {
    if ((codes[i] as number) >= code.size) fail(`code ${codes[i]} of block ${i % blocksPerColumn} of column ${Math.floor(i / blocksPerColumn)} is not below q^d = ${code.size}`);
  }
  // Repacking the checked values must give the stored words: unused bits are zero.
  if (!sameWords(packField(codes, codeBits, blocksPerColumn, cols).words, stored.codes)) fail('codes: unused bits of the packed words are not zero');
  const tail = deterministicTailProblem(f.scheme.lattice, f.scheme.q, codes, blocksPerColumn, f.keptLength, cols);
  if (tail !== null) fail(tail);
  const indexLayout = packedLayout(indexBits, blocksPerColumn);
  const indices = unpackField({ words: stored.scaleIndices, bits: indexBits, ...indexLayout }, blocksPerColumn, cols);
  const indexCounts = new Float64Array(f.multiples.length);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i] as number;
    if (index >= f.multiples.length) fail(`scale index ${index} of block ${i % blocksPerColumn} of column ${Math.floor(i / blocksPerColumn)} is not below the ${f.multiples.length} scales`);
    indexCounts[index] = (indexCounts[index] as number) + 1;
  }
  if (!sameWords(packField(indices, indexBits, blocksPerColumn, cols).words, stored.scaleIndices)) fail('scale indices: unused bits of the packed words are not zero');
  // ‖x̂_j‖ ≤ ν_j·|γ_j|·unit·k_max·q·R: every block decodes to (ν/√N)·γ·unit·k·L/s with ‖L/s‖ ≤ q·R.
  const largestMultiple = f.multiples.reduce((most, k) => Math.max(most, Math.abs(k)), 0);
  for (let j = 0; j < cols; j++) {
    const gain = gains === null ? 1 : Math.abs(gains[j] as number);
    checkColumnBound(fail, j, (norms[j] as number) * gain * f.unit * largestMultiple * f.scheme.q * LEADER_RADIUS);
  }
  const grid = scaleGrid(f.scheme.overload, spec.maxDenominator);
  const rates = latticeRates({
    rows: f.rows,
    cols,
    blocksPerColumn,
    codeBits: code.codeBits,
    codeCount: code.size,
    indexBits: grid.indexBits,
    indexCounts,
    sideFloatsPerColumn: 1 + (means ? 1 : 0) + (gains ? 1 : 0),
  });
  const matrix: DeterministicLatticeMatrix = {
    kind: 'lattice',
    mode: 'deterministic',
    scheme: f.scheme,
    rows: f.rows,
    cols,
    length: f.length,
    keptLength: f.keptLength,
    seed: f.seed,
    rotate: f.rotate,
    means,
    norms,
    gains,
    unit: f.unit,
    multiples: grid.multiples.slice(),
    blocksPerColumn,
    codes,
    scaleIndices: Uint8Array.from(indices),
    clippedBlocks: f.clippedBlocks,
    ...rates,
  };
  return { name, kind: 'deterministic', matrix, stored };
}

function decodeScalar(name: string, f: ScalarFields, get: Get, optional: Optional, fail: Fail): ScalarContainerEntry {
  const { cols, length, scheme } = f;
  const { bits, groups } = scalarLayout(f);
  const stored: ScalarStoredWords = { codes: asU32(get('codes')), codeBits: bits };
  const meansBytes = optional('means');
  const means = meansBytes === null ? null : asF32(meansBytes);
  checkNormsAndMeans(fail, new Float32Array(0), means);
  checkStreamPadding(fail, stored.codes, cols, streamWords(length, bits), length * bits, 'codes');
  const codes = Uint8Array.from(unpackColumnFields(stored.codes, bits, length, cols));
  const groupSize = scheme.kind === 'nvfp4' ? NVFP4_BLOCK_SIZE : scheme.groupSize === 'column' ? length : scheme.groupSize;
  let scales: Float32Array | Uint8Array;
  // Largest |x̂| per group: INT scale·maxLevel (midrise: the scale M itself), NVFP4 6·blockScale·tensorScale.
  const groupPeak = new Float64Array(groups * cols);
  if (scheme.kind === 'int') {
    const floats = asF32(get('scales'));
    const maxLevel = scheme.grid === 'midrise' ? 1 : 2 ** (scheme.bits - 1) - 1;
    for (let g = 0; g < floats.length; g++) {
      const value = floats[g] as number;
      if (!(value >= 0 && Number.isFinite(value))) fail(`scale ${g} is ${value}; scales must be finite and ≥ 0`);
      if (scheme.scaleFormat === 'fp16' && toFloat16(value) !== value) fail(`scale ${g} is ${value}, not an fp16 value (the scheme stores fp16 scales)`);
      groupPeak[g] = value * maxLevel;
    }
    if (scheme.grid === 'symmetric') {
      // Code 0 would be level −2^(b−1), outside the symmetric grid.
      const bad = codes.indexOf(0);
      if (bad >= 0) fail(`code 0 at entry ${bad % length} of column ${Math.floor(bad / length)} is not a symmetric ${scheme.bits}-bit level`);
    }
    scales = floats;
  } else {
    const e4m3 = asU8(get('scales'));
    for (let g = 0; g < e4m3.length; g++) {
      const value = e4m3[g] as number;
      if (value >= 0x7f) fail(`block scale ${g} is E4M3 0x${value.toString(16)}; block scales must be non-negative and not NaN`);
      groupPeak[g] = E2M1_MAX * fromE4M3Bits(value) * f.tensorScale;
    }
    scales = e4m3;
  }
  for (let j = 0; j < cols; j++) {
    let bound2 = 0;
    for (let g = 0; g < groups; g++) {
      const members = Math.min(groupSize, length - g * groupSize);
      bound2 += members * (groupPeak[j * groups + g] as number) ** 2;
    }
    checkColumnBound(fail, j, Math.sqrt(bound2));
  }
  // The accounting of quantize(): codes and scales of the rotated length, plus the side floats.
  const sideBits = SIDE_FLOAT_BITS * (means ? 1 : 0) * cols;
  const columnBits = scheme.kind === 'int' ? length * (scheme.bits + absmaxSideBitsPerEntry(absmaxOptions(scheme, length), length)) : nvfp4VectorBits(length);
  const bitsStored = (cols * columnBits + (scheme.kind === 'nvfp4' ? SIDE_FLOAT_BITS : 0) + sideBits) / (f.rows * cols);
  const matrix: ScalarQuantizedMatrix = {
    kind: 'scalar',
    rows: f.rows,
    cols,
    length,
    keptLength: length,
    seed: f.seed,
    rotate: f.rotate,
    means,
    bitsStored,
    bitsEntropy: bitsStored,
    scheme,
    codes,
    scales,
    tensorScale: f.tensorScale,
    groupsPerColumn: groups,
  };
  return { name, kind: 'scalar', matrix, stored };
}

function decodeWeightOnly(name: string, f: WeightOnlyFields, get: Get, optional: Optional, fail: Fail): WeightOnlyContainerEntry {
  const packed: PackedWeightCodes = { n: f.n, outputs: f.outputs, widths: asU8(get('code_widths')), rowVec4s: f.rowVec4s, words: asU32(get('codes')) };
  const rowScalesBytes = optional('row_scales');
  const fields = {
    method: f.method,
    rotation: f.rotation,
    seed: f.seed,
    packed,
    columnScales: asF32(get('column_scales')),
    rowScales: rowScalesBytes === null ? null : asF32(rowScalesBytes),
  };
  let matrix: WeightOnlyQuantized;
  try {
    // The weight-only format's own checks (sizes, rotation, widths, scales, canonical packing).
    matrix = WeightOnlyQuantized.fromPacked(fields, 'weight-only codes');
  } catch (error) {
    if (error instanceof LatticeMatmulError) fail(error.message);
    throw error;
  }
  return { name, kind: 'weight-only', matrix, stored: packed };
}

// ─── Writing ─────────────────────────────────────────────────────────────────────────────────────

interface EncodedEntry {
  readonly fields: DescriptionFields;
  readonly data: ReadonlyMap<string, Uint32Array | Int32Array | Float32Array | Uint8Array>;
}

function isTypedArray<T>(value: unknown, type: new (length: number) => T, length: number): value is T {
  return value instanceof type && (value as unknown as ArrayLike<number>).length === length;
}

function checkShape(matrix: QuantizedMatrix, what: string): void {
  for (const key of ['rows', 'cols', 'length', 'keptLength', 'seed'] as const) {
    check(Number.isSafeInteger(matrix[key]) && matrix[key] >= 0, () => `${what}: ${key} must be a non-negative integer, got ${describeValue(matrix[key])}`);
  }
}

/** The description values and tensors of one matrix (no validation beyond what packing needs). */
function encodeEntry(input: ContainerMatrix, what: string): EncodedEntry {
  if (input instanceof WeightOnlyQuantized) {
    const packed = input.packedCodes;
    const data = new Map<string, Uint32Array | Uint8Array | Float32Array>([
      ['codes', packed.words],
      ['code_widths', packed.widths],
      ['column_scales', input.columnScales],
    ]);
    if (input.rowScales !== null) data.set('row_scales', input.rowScales);
    return {
      fields: { kind: 'weight-only', method: input.method, rotation: input.rotation, seed: input.seed, n: input.n, outputs: input.outputs, rowVec4s: packed.rowVec4s, rowScales: input.rowScales !== null },
      data,
    };
  }
  check(isPlainObject(input) && (input.kind === 'lattice' || input.kind === 'scalar'), () => `${what} must be a quantized matrix (quantize()) or a WeightOnlyQuantized`);
  checkShape(input, what);
  // The scheme as the reader will see it (checked, canonical), of the matrix's own kind.
  const scheme = resolveScheme(input.scheme);
  check(
    input.kind === 'scalar' ? scheme.kind !== 'lattice' : scheme.kind === 'lattice' && scheme.mode === input.mode,
    () => `${what}: its scheme (${scheme.kind}) does not match its kind (${input.kind === 'lattice' ? input.mode : input.kind})`,
  );
  const matrix = { ...input, scheme } as QuantizedMatrix;
  const { cols } = matrix;
  const floats = (value: unknown, field: string): Float32Array => {
    check(isTypedArray(value, Float32Array, cols), () => `${what}: ${field} must be a Float32Array of ${cols} entries`);
    return value;
  };
  const common = { rows: matrix.rows, cols, length: matrix.length, seed: matrix.seed, rotate: matrix.rotate, centred: matrix.means !== null };
  const data = new Map<string, Uint32Array | Int32Array | Float32Array | Uint8Array>();
  if (matrix.kind === 'scalar') {
    const { bits } = scalarLayout({ scheme: matrix.scheme, length: matrix.length });
    check(isTypedArray(matrix.codes, Uint8Array, matrix.length * cols), () => `${what}: codes must be a Uint8Array of length × cols entries`);
    data.set('codes', packCodes(matrix.codes, bits, matrix.length, cols));
    check(matrix.scales instanceof (matrix.scheme.kind === 'int' ? Float32Array : Uint8Array), () => `${what}: scales have the wrong array type for the scheme`);
    data.set('scales', matrix.scales);
    if (matrix.means !== null) data.set('means', floats(matrix.means, 'means'));
    return { fields: { kind: 'scalar', scheme: matrix.scheme, ...common, tensorScale: matrix.tensorScale }, data };
  }
  data.set('norms', floats(matrix.norms, 'norms'));
  if (matrix.mode === 'universal') {
    check(typeof matrix.nonce === 'bigint', () => `${what}: nonce must be a bigint`);
    checkDitherKeys(matrix.ditherKeys, `${what}: ditherKeys`);
    const codec = codecOfScheme(matrix.scheme);
    const blocks = safeProduct(what, matrix.blocksPerColumn, cols);
    check(
      isTypedArray(matrix.codes, Uint32Array, blocks) &&
        isTypedArray(matrix.escapes, Uint8Array, blocks) &&
        (codec.codeBits > 32 ? isTypedArray(matrix.codesHigh, Uint16Array, blocks) : matrix.codesHigh === null) &&
        matrix.longEscapes instanceof Uint16Array &&
        matrix.hugeEscapes instanceof Int32Array,
      () => `${what}: codes, codesHigh (for codes over 32 bits), escapes must hold blocksPerColumn × cols entries; longEscapes a Uint16Array, hugeEscapes an Int32Array`,
    );
    // Named here, as every reader of the matrix names it: out of range, the packer refused it by its internals.
    checkEscapeSymbols(matrix.escapes, codec.spec, `${what}: escapes`);
    const stored = packUniversalStored(matrix);
    data.set('codes', stored.codes);
    data.set('escape_bits', stored.escapeBits);
    data.set('escape_ranks', stored.ranks);
    data.set('long_escapes', stored.longs);
    data.set('explicit_escapes', stored.huge);
    if (matrix.means !== null) data.set('means', floats(matrix.means, 'means'));
    const d = latticeSpec(matrix.scheme.lattice).dimension;
    let escapes = 0;
    for (const symbol of matrix.escapes) if (symbol !== 0) escapes++;
    return {
      fields: {
        kind: 'universal',
        scheme: matrix.scheme,
        ...common,
        keptLength: matrix.keptLength,
        nonce: matrix.nonce,
        ditherKeys: matrix.ditherKeys,
        escapes,
        longEscapes: matrix.longEscapes.length,
        explicitEscapes: matrix.hugeEscapes.length / d,
      },
      data,
    };
  }
  const blocks = matrix.blocksPerColumn;
  check(isTypedArray(matrix.codes, Uint32Array, blocks * cols) && isTypedArray(matrix.scaleIndices, Uint8Array, blocks * cols), () => `${what}: codes and scale indices must hold blocksPerColumn × cols entries`);
  check(matrix.multiples instanceof Int32Array && matrix.multiples.length >= 1, () => `${what}: multiples must be a non-empty Int32Array`);
  data.set('codes', packField(matrix.codes, latticeCodeBits(matrix.scheme), blocks, cols).words);
  data.set('scale_indices', packField(matrix.scaleIndices, scaleIndexBits(matrix.multiples.length), blocks, cols).words);
  if (matrix.gains !== null) data.set('gains', floats(matrix.gains, 'gains'));
  if (matrix.means !== null) data.set('means', floats(matrix.means, 'means'));
  return {
    fields: {
      kind: 'deterministic',
      scheme: matrix.scheme,
      ...common,
      keptLength: matrix.keptLength,
      gains: matrix.gains !== null,
      unit: matrix.unit,
      multiples: Array.from(matrix.multiples),
      clippedBlocks: matrix.clippedBlocks,
    },
    data,
  };
}

/** Per-column `bits`-bit fields, each column on a fresh word; refuses values that do not fit. */
function packCodes(values: Uint8Array, bits: number, perColumn: number, cols: number): Uint32Array {
  const limit = 2 ** bits;
  const bad = values.findIndex((v) => v >= limit);
  check(bad < 0, () => `code ${values[bad]} at index ${bad} does not fit ${bits} bits`);
  const wordsPerColumn = streamWords(perColumn, bits);
  const words = new Uint32Array(wordsPerColumn * cols);
  for (let j = 0; j < cols; j++) {
    for (let k = 0; k < perColumn; k++) {
      const bit = k * bits;
      const word = j * wordsPerColumn + (bit >>> 5);
      const shift = bit & 31;
      const value = values[j * perColumn + k] as number;
      words[word] = ((words[word] as number) | (value << shift)) >>> 0;
      if (shift + bits > 32) words[word + 1] = ((words[word + 1] as number) | (value >>> (32 - shift))) >>> 0;
    }
  }
  return words;
}

function bytesOfArray(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function sameBytes(a: ArrayBufferView | null, b: ArrayBufferView | null): boolean {
  if (a === null || b === null) return a === b;
  const x = bytesOfArray(a);
  const y = bytesOfArray(b);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** The fields of a matrix that must survive writing and reading bit for bit. */
function survives(original: ContainerMatrix, read: ContainerMatrix): string | undefined {
  if (original instanceof WeightOnlyQuantized || read instanceof WeightOnlyQuantized) {
    const a = original as WeightOnlyQuantized;
    const b = read as WeightOnlyQuantized;
    if (!sameBytes(a.codes, b.codes)) return 'codes';
    if (!sameBytes(a.columnScales, b.columnScales)) return 'columnScales';
    if (!sameBytes(a.rowScales, b.rowScales)) return 'rowScales';
    return undefined;
  }
  for (const key of ['rows', 'cols', 'length', 'keptLength', 'seed', 'rotate'] as const) if (original[key] !== read[key]) return key;
  if (!sameBytes(original.means, read.means)) return 'means';
  if (original.kind === 'scalar' && read.kind === 'scalar') {
    if (original.tensorScale !== read.tensorScale || original.groupsPerColumn !== read.groupsPerColumn) return 'tensorScale or groupsPerColumn';
    if (!sameBytes(original.codes, read.codes)) return 'codes';
    return sameBytes(original.scales, read.scales) ? undefined : 'scales';
  }
  if (original.kind !== 'lattice' || read.kind !== 'lattice') return 'kind';
  if (original.blocksPerColumn !== read.blocksPerColumn) return 'blocksPerColumn';
  if (!sameBytes(original.norms, read.norms) || !sameBytes(original.codes, read.codes)) return 'norms or codes';
  if (original.mode === 'universal' && read.mode === 'universal') {
    if (original.nonce !== read.nonce) return 'nonce';
    // D3 reads one hash word: its count changes nothing, and a reader gives it 2 in every version.
    // (read.scheme is resolved; the original's may be a preset name.)
    if (read.scheme.lattice === 'E8' && original.ditherKeys !== read.ditherKeys) return 'ditherKeys';
    if (!sameBytes(original.codesHigh, read.codesHigh)) return 'codesHigh';
    if (!sameBytes(original.escapes, read.escapes)) return 'escapes';
    if (!sameBytes(original.longEscapes, read.longEscapes)) return 'longEscapes';
    return sameBytes(original.hugeEscapes, read.hugeEscapes) ? undefined : 'hugeEscapes';
  }
  if (original.mode === 'deterministic' && read.mode === 'deterministic') {
    if (!sameBytes(original.scaleIndices, read.scaleIndices)) return 'scaleIndices';
    if (!sameBytes(original.gains, read.gains)) return 'gains';
    if (original.unit !== read.unit || !sameBytes(original.multiples, read.multiples)) return 'unit or multiples';
    return original.clippedBlocks === read.clippedBlocks ? undefined : 'clippedBlocks';
  }
  return 'mode';
}

/** The safetensors tensors and metadata of a container: what both writers store. */
export interface ContainerPlan {
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInput>;
  readonly metadata: ReadonlyMap<string, string>;
}

/**
 * Builds the tensors and metadata of a container and checks them as a reader would: each matrix is
 * packed, described, then decoded back through the reader's checks and compared with the original,
 * so no file is written that the reader would refuse or decode differently. Shared by
 * `writeQuantizedContainer` and `writeQuantizedContainerFile`.
 *
 * @example
 * const plan = planQuantizedContainer([{ name: 'w', matrix: q }]);
 */
export function planQuantizedContainer(entries: readonly ContainerEntryInput[], metadata: Readonly<Record<string, string>> = {}): ContainerPlan {
  check(Array.isArray(entries), 'writeQuantizedContainer needs an array of { name, matrix } entries');
  check(isPlainObject(metadata), 'container metadata must be an object of strings');
  const version = containerVersionFor(entries);
  const tensors = new Map<string, SafetensorsTensorInput>();
  const plans: ContainerEntryPlan[] = [];
  const used = new Set<string>(); // a Set: containers may hold tens of thousands of matrices
  for (const [index, entry] of entries.entries()) {
    const plan = planContainerEntry(entry, index, version, used);
    for (const [name, tensor] of plan.tensors) tensors.set(name, tensor);
    plans.push(plan);
  }
  return { tensors, metadata: containerMetadata(plans, version, metadata) };
}

/** One matrix of a container: its safetensors tensors and its description (`planContainerEntry`). */
export interface ContainerEntryPlan {
  readonly name: string;
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInput>;
  readonly description: string;
}

/**
 * Packs entry `index` of a container of format `version` (the one `containerVersionOf` its matrices
 * need) and checks it as a reader would: described, decoded back through the reader's checks and
 * compared with the original. `used` holds the names taken so far; this one is added to it once planned.
 */
export function planContainerEntry(entry: ContainerEntryInput, index: number, version: ContainerVersion, used: Set<string>): ContainerEntryPlan {
  check(typeof entry === 'object' && entry !== null, () => `entry ${index} must be { name, matrix }`);
  const { name, matrix } = entry;
  check(typeof name === 'string' && name.length > 0, () => `entry ${index}: name must be a non-empty string, got ${describeValue(name)}`);
  check(!used.has(name), () => `entry ${index}: the name ${quoted(name)} is used twice`);
  const what = `writeQuantizedContainer: matrix ${quoted(name)}`;
  try {
    const encoded = encodeEntry(matrix, what);
    const specs = impliedTensors(name, encoded.fields);
    // Refused here, not by the safetensors writer after some of the entry's tensors were spilled.
    for (const spec of specs) checkTensorName(spec.name);
    const checksums = new Map<string, number>();
    const tensors = new Map<string, SafetensorsTensorInput>();
    for (const spec of specs) {
      const array = encoded.data.get(spec.field);
      check(array !== undefined && array.byteLength === spec.byteLength, () => `${what}: tensor ${spec.field} has ${array?.byteLength ?? 0} bytes, its description implies ${spec.byteLength}`);
      checksums.set(spec.field, crc32(bytesOfArray(array)));
      tensors.set(spec.name, { dtype: spec.dtype, shape: spec.shape, data: bytesOfArray(array) });
    }
    const description = descriptionJson(encoded.fields, checksums, specs);
    // Read back what was just written, through every check of the reader.
    const plan = parseDescription(name, description, version);
    const back = decodeContainerEntry({ info: planInfo(plan), plan } as PlanHandle, (t) => bytesOfArray(encoded.data.get(t.field) as ArrayBufferView));
    const differs = survives(matrix, back.matrix);
    check(differs === undefined, () => `${what}: its ${differs} do not survive packing (values outside their fields' range?)`);
    used.add(name); // only once planned: a streaming writer goes on after a refused entry
    return { name, tensors, description };
  } catch (error) {
    if (error instanceof LatticeMatmulError && !error.message.startsWith('writeQuantizedContainer')) {
      throw new LatticeMatmulError(`${what}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/** The metadata of a container of `entries` (in order) and format `version`, with the user's `metadata` and the checksum. */
export function containerMetadata(entries: readonly Pick<ContainerEntryPlan, 'name' | 'description'>[], version: ContainerVersion, metadata: Readonly<Record<string, string>> = {}): ReadonlyMap<string, string> {
  check(isPlainObject(metadata), 'container metadata must be an object of strings');
  const meta: Record<string, string> = Object.create(null) as Record<string, string>;
  meta[KEY_FORMAT] = CONTAINER_FORMAT;
  meta[KEY_VERSION] = String(version);
  for (const { name, description } of entries) meta[MATRIX_PREFIX + name] = description;
  meta[KEY_MATRICES] = JSON.stringify(entries.map((e) => e.name));
  for (const [key, value] of Object.entries(metadata)) {
    check(typeof value === 'string', () => `container metadata ${JSON.stringify(key)} must be a string, got ${describeValue(value)}`);
    meta[USER_PREFIX + key] = value;
  }
  meta[KEY_CHECKSUM] = hex8(metadataChecksum(meta));
  return new Map(Object.entries(meta));
}

function planInfo(plan: EntryPlan): ContainerEntryInfo {
  const f = plan.fields;
  return {
    name: plan.name,
    kind: f.kind,
    rows: f.kind === 'weight-only' ? f.n : f.rows,
    cols: f.kind === 'weight-only' ? f.outputs : f.cols,
    description: plan.description,
    tensors: plan.tensors.map((t) => ({ name: t.name, field: t.field, dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, crc32: t.crc32 })),
  };
}

/**
 * Writes quantized matrices (any kind: universal and deterministic lattice, INT/NVFP4 baselines,
 * weight-only) and optional string metadata as one versioned, checksummed safetensors file
 * (docs/FORMAT.md). Every matrix is read back through the reader's checks before anything is
 * returned, so what this writes, `readQuantizedContainer` reads bit for bit.
 *
 * @example
 * const bytes = writeQuantizedContainer(
 *   [{ name: 'layers.0.q', matrix: quantize(w, { scheme: 'e8-q16', seed: 7 }) }],
 *   { model: 'my-model' },
 * );
 */
export function writeQuantizedContainer(entries: readonly ContainerEntryInput[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const plan = planQuantizedContainer(entries, metadata);
  return writeSafetensors(plan.tensors, plan.metadata);
}

class Container implements QuantizedContainer {
  private readonly byName: ReadonlyMap<string, ContainerEntry>;

  constructor(
    readonly formatVersion: number,
    readonly metadata: Readonly<Record<string, string>>,
    readonly entries: readonly ContainerEntry[],
  ) {
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): ContainerEntry {
    const entry = this.byName.get(name);
    check(entry !== undefined, () => `quantized container has no matrix named ${describeValue(name)} (it has ${[...this.byName.keys()].map((n) => JSON.stringify(n)).join(', ')})`);
    return entry;
  }
}

/** Builds a `QuantizedContainer` from decoded entries (the file reader's `readAll` uses it). */
export function containerOf(layout: ContainerLayout, entries: readonly ContainerEntry[]): QuantizedContainer {
  return new Container(layout.formatVersion, layout.metadata, entries);
}

/**
 * Reads a quantized container (docs/FORMAT.md) from bytes in memory, refusing malformed, corrupted
 * or hostile files with a `LatticeMatmulError` before allocating anything large: the safetensors
 * header, the format version, the metadata checksum and every description are checked first, then
 * each tensor's checksum, then every value. Every entry is decoded (`entries`, `get(name)`), with the
 * stored words a GPU upload uses (`uploadContainerEntry`). `options.maxHeaderBytes` lowers
 * the header limit.
 *
 * @example
 * const container = readQuantizedContainer(new Uint8Array(await (await fetch('model.lmq.safetensors')).arrayBuffer()));
 * const w = container.get('layers.0.q');
 * if (w.kind === 'universal') console.log(matmulAT(w.matrix, qx));
 */
export function readQuantizedContainer(bytes: ArrayBuffer | Uint8Array, options: SafetensorsReadOptions = {}): QuantizedContainer {
  const archive = readSafetensors(bytes, options);
  const layout = parseContainerLayout(archive.header);
  const entries = layout.entries.map((info) => decodeContainerEntry(layout.plans.get(info.name) as EntryPlanHandle, (t) => archive.tensorBytes(t.name)));
  return containerOf(layout, entries);
}
