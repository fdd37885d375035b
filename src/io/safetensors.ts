import { float16BitsToFloat32Bits } from '../scalar/floatFormats.js';
import { LatticeMatmulError, check, describeValue } from '../errors.js';
import { checkOptionalBoolean, checkOptionsObject } from '../quantize/strictOptions.js';

/*
 * The safetensors container (https://github.com/huggingface/safetensors), read and written without
 * dependencies and without `node:` imports, so it runs in a browser too.
 *
 * Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON (an object mapping tensor names to
 * `{ "dtype", "shape", "data_offsets": [begin, end] }`, plus an optional `"__metadata__"` object of
 * strings), then the data buffer. Offsets are relative to the first byte after the header; tensors are
 * row-major and little-endian. The header may be padded with trailing spaces.
 *
 * What the reader accepts is what the reference implementation (the Rust crate behind the Python
 * package) accepts, minus a few things it lets through silently, which are refused here with a
 * `LatticeMatmulError` naming what is wrong:
 * - header length N ≤ 100,000,000 (the reference's limit) and 8 + N ≤ the bytes there are;
 * - shapes have at most `SAFETENSORS_MAX_RANK` (1024) dimensions (the reference has no limit);
 * - the header is valid UTF-8 and one JSON object, followed only by JSON whitespace;
 * - each tensor entry has exactly the fields dtype, shape, data_offsets (the reference ignores unknown
 *   fields; here they are refused so that a typo cannot go unnoticed); dtype is one of the reference's;
 *   shape and offsets are integer literals (no fraction, no exponent, no sign) ≤ 2^53 − 1;
 * - begin ≤ end ≤ data length, and end − begin = product(shape) · dtype bits / 8, computed with a cap
 *   so that no arithmetic overflows and no loop runs longer than the header is;
 * - data regions, sorted by offset, follow one another with no overlap and no hole, and together cover
 *   the data buffer exactly (the reference's rule);
 * - `__metadata__` is null or an object of string values;
 * - duplicate keys anywhere are refused (`JSON.parse` silently keeps the last one, as serde's maps
 *   do for tensor names and metadata keys). That is why the header is read by the small
 *   schema-directed parser below rather than JSON.parse: it sees every key, checks integer syntax,
 *   never recurses deeper than three levels, and its work is linear in N;
 * - tensor names are non-empty, well-formed Unicode (no lone surrogates from `\u` escapes) and not
 *   `__metadata__`.
 *
 * Nothing large is allocated before those checks pass: the reader keeps views into the caller's bytes,
 * and a tensor's data is copied only on request, sized by the validated byte range.
 */

/** The reference implementation's limit on the JSON header length N, in bytes. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/**
 * Most dimensions a shape may have. The reference sets no limit, but NumPy allows 64 and no model
 * has more than a handful; without a limit a 100 MB header could hold one shape of 50 million
 * dimensions, which takes seconds and gigabytes to hold as a JavaScript array.
 */
export const SAFETENSORS_MAX_RANK = 1024;

/**
 * Largest data buffer accepted: 2^50 bytes (1 PiB), so that `bytes · 8` (bit counts of sub-byte
 * dtypes) stays an exact double.
 */
const MAX_DATA_BYTES = 2 ** 50;

/**
 * Every dtype of the reference implementation, in its order (increasing alignment); the writer sorts
 * tensors by this order, descending, then by name, as the reference does.
 */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

/** A safetensors element type. */
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

const DTYPE_BITS: ReadonlyMap<string, number> = new Map<SafetensorsDtype, number>([
  ['BOOL', 8],
  ['F4', 4],
  ['F6_E2M3', 6],
  ['F6_E3M2', 6],
  ['U8', 8],
  ['I8', 8],
  ['F8_E5M2', 8],
  ['F8_E4M3', 8],
  ['F8_E8M0', 8],
  ['F8_E4M3FNUZ', 8],
  ['F8_E5M2FNUZ', 8],
  ['I16', 16],
  ['U16', 16],
  ['F16', 16],
  ['BF16', 16],
  ['I32', 32],
  ['U32', 32],
  ['F32', 32],
  ['C64', 64],
  ['F64', 64],
  ['I64', 64],
  ['U64', 64],
]);

const DTYPE_RANK: ReadonlyMap<string, number> = new Map(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

/**
 * Whether `value` names a safetensors dtype.
 *
 * @example
 * isSafetensorsDtype('BF16'); // true
 */
export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && DTYPE_BITS.has(value);
}

/**
 * Bits per element of `dtype` (4 for F4, 6 for the F6 types, 64 for C64 = two f32).
 *
 * @example
 * safetensorsDtypeBits('BF16'); // 16
 */
export function safetensorsDtypeBits(dtype: SafetensorsDtype): number {
  const bits = DTYPE_BITS.get(dtype);
  check(bits !== undefined, () => `dtype must be one of ${SAFETENSORS_DTYPES.join(', ')}, got ${describeValue(dtype)}`);
  return bits;
}

/** The typed arrays that tensors are read into and written from. */
export type SafetensorsTypedArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

/**
 * The typed array each dtype is read into (and may be written from; a `Uint8Array` of the raw
 * little-endian bytes is accepted for every dtype). F16 and BF16 come as raw bit patterns
 * (`Uint16Array`; `tensorAsFloat32` converts them), the FP8/FP6/FP4 types and BOOL as raw bytes, C64
 * as interleaved (re, im) f32 pairs.
 */
const DTYPE_ARRAY: ReadonlyMap<string, string> = new Map<SafetensorsDtype, string>([
  ['BOOL', 'Uint8Array'],
  ['F4', 'Uint8Array'],
  ['F6_E2M3', 'Uint8Array'],
  ['F6_E3M2', 'Uint8Array'],
  ['U8', 'Uint8Array'],
  ['I8', 'Int8Array'],
  ['F8_E5M2', 'Uint8Array'],
  ['F8_E4M3', 'Uint8Array'],
  ['F8_E8M0', 'Uint8Array'],
  ['F8_E4M3FNUZ', 'Uint8Array'],
  ['F8_E5M2FNUZ', 'Uint8Array'],
  ['I16', 'Int16Array'],
  ['U16', 'Uint16Array'],
  ['F16', 'Uint16Array'],
  ['BF16', 'Uint16Array'],
  ['I32', 'Int32Array'],
  ['U32', 'Uint32Array'],
  ['F32', 'Float32Array'],
  ['C64', 'Float32Array'],
  ['F64', 'Float64Array'],
  ['I64', 'BigInt64Array'],
  ['U64', 'BigUint64Array'],
]);

/**
 * Name of the typed array that `tensorData` returns for `dtype`.
 *
 * @example
 * safetensorsArrayType('BF16'); // 'Uint16Array' (raw bits; tensorAsFloat32 converts)
 */
export function safetensorsArrayType(dtype: SafetensorsDtype): string {
  safetensorsDtypeBits(dtype);
  return DTYPE_ARRAY.get(dtype) as string;
}

/** Typed arrays alias the host's byte order; every host JavaScript runs on today is little-endian. */
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkLittleEndianHost(what: string): void {
  check(
    HOST_IS_LITTLE_ENDIAN,
    `${what}: this host is big-endian, and safetensors data is little-endian; typed views would be byte-swapped`,
  );
}

// ─── Header model ────────────────────────────────────────────────────────────────────────────────

/** One tensor of a safetensors header, validated. */
export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  /** Row-major shape; `[]` is a scalar. */
  readonly shape: readonly number[];
  /** product(shape) (1 for a scalar, 0 when any dimension is 0); a C64 element is one complex. */
  readonly elementCount: number;
  /** [begin, end) in bytes, relative to the start of the data buffer (the byte after the header). */
  readonly dataOffsets: readonly [number, number];
  /** end − begin. */
  readonly byteLength: number;
}

/** Bytes [begin, end) of one tensor's data, counted from its first byte. */
export interface TensorByteRange {
  readonly begin: number;
  readonly end: number;
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** N, the JSON header's length in bytes (padding included). */
  readonly headerByteLength: number;
  /** 8 + N: where the data buffer starts in the file. */
  readonly dataStart: number;
  /** Length of the data buffer; the tensors cover it exactly. */
  readonly dataByteLength: number;
  /** The tensors, ordered by data offset. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** The same tensors by name, in the header's order. */
  readonly tensorsByName: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** `__metadata__` (a null-prototype object), or null when absent or null in the file. */
  readonly metadata: Readonly<Record<string, string>> | null;
}

/** Options of the readers. */
export interface SafetensorsReadOptions {
  /**
   * Largest header length N accepted, in bytes: at most (and by default) the reference's
   * `SAFETENSORS_MAX_HEADER_BYTES`. Parsing takes time and memory linear in N (about 10 µs and a few
   * hundred bytes per tensor), so a page reading untrusted files may want less; real headers are
   * tens to hundreds of kilobytes.
   */
  readonly maxHeaderBytes?: number;
}

/** The keys of {@link SafetensorsReadOptions}: the readers refuse any other (`maxHeaderByte: 1` left the limit at its maximum). */
export const SAFETENSORS_READ_OPTION_KEYS = ['maxHeaderBytes'] as const satisfies readonly (keyof SafetensorsReadOptions)[];

function maxHeaderBytesOf(options: SafetensorsReadOptions | undefined): number {
  // Only undefined means the default: null is refused like any other wrong value.
  const limit = options === undefined || options.maxHeaderBytes === undefined ? SAFETENSORS_MAX_HEADER_BYTES : options.maxHeaderBytes;
  check(
    Number.isSafeInteger(limit) && limit >= 0 && limit <= SAFETENSORS_MAX_HEADER_BYTES,
    () => `maxHeaderBytes must be an integer in [0, ${SAFETENSORS_MAX_HEADER_BYTES}], got ${describeValue(limit)}`,
  );
  return limit;
}

function describeShape(shape: readonly number[]): string {
  const shown = shape.length > 16 ? [...shape.slice(0, 16), '…'] : shape;
  return `[${shown.join(', ')}]`;
}

// ─── Header length ───────────────────────────────────────────────────────────────────────────────

/**
 * `bytes` as a Uint8Array: itself, or a view of the whole ArrayBuffer. An engine may allocate an
 * ArrayBuffer larger than a typed array can view (Node 20: a 5 GB buffer, views up to 2^32 bytes); the
 * view's bare RangeError ("Invalid typed array length: undefined") becomes a refusal that says so and
 * names the readers that never hold a whole file.
 */
export function asBytes(bytes: ArrayBuffer | Uint8Array, what: string): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  check(bytes instanceof ArrayBuffer, () => `${what} must be an ArrayBuffer or a Uint8Array, got ${describeValue(bytes)}`);
  try {
    return new Uint8Array(bytes);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new LatticeMatmulError(
      `${what}: an ArrayBuffer of ${bytes.byteLength} bytes is more than this JavaScript engine lets a Uint8Array view; ` +
        'read a file that large in pieces (openSafetensorsFile or openQuantizedContainerFile in Node, blobSource for a File or Blob)',
      { cause: error },
    );
  }
}

function checkFileLength(fileByteLength: number): void {
  check(
    Number.isSafeInteger(fileByteLength) && fileByteLength >= 0,
    () => `safetensors file length must be a non-negative safe integer, got ${describeValue(fileByteLength)}`,
  );
  check(
    fileByteLength >= 8,
    () => `safetensors file is ${fileByteLength} bytes long, shorter than the 8-byte header length field`,
  );
}

/**
 * A hint when the first 8 bytes are those of another format a model comes in: a zip archive (PyTorch's
 * `torch.save`, pytorch_model.bin, whose first 8 bytes read as a header length of tens of GB: the message
 * alone reads as a file too large), a legacy PyTorch pickle, llama.cpp's GGUF; or printable
 * ASCII: the file is text (an HTML page a web server sent for a missing file, an error message, a Git
 * LFS pointer). '' otherwise.
 */
function startHint(first8: Uint8Array): string {
  const head = first8.subarray(0, 8);
  const starts = (...bytes: number[]): boolean => bytes.every((byte, i) => head[i] === byte);
  const convert = 'not a safetensors file; convert it first (safetensors.torch.save_file)';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return ` (the file starts with a zip archive's signature: a PyTorch checkpoint written by torch.save, such as pytorch_model.bin, ${convert})`;
  // Legacy torch.save: pickle protocol 2 (\x80\x02), then its magic number 0x1950a86a20f9469cfc6c as a LONG1 (\x8a\x0a…).
  if (starts(0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46)) return ` (the file starts with a Python pickle: a PyTorch checkpoint in torch.save's legacy format, ${convert})`;
  if (starts(0x47, 0x47, 0x55, 0x46)) return ` (the file starts with "GGUF": a llama.cpp GGUF file, not a safetensors file; start from the model's safetensors files)`;
  if (!head.every((byte) => (byte >= 0x20 && byte <= 0x7e) || (byte >= 0x09 && byte <= 0x0d))) return '';
  return ` (the file starts with ${JSON.stringify(String.fromCharCode(...head))}: text, such as an HTML page or a Git LFS pointer, not a safetensors file)`;
}

/**
 * Reads and checks the header length N from the first 8 bytes of a safetensors file of
 * `fileByteLength` bytes: N ≤ `SAFETENSORS_MAX_HEADER_BYTES` (or `options.maxHeaderBytes`) and
 * 8 + N ≤ `fileByteLength`.
 *
 * @example
 * const first8 = new Uint8Array([16, 0, 0, 0, 0, 0, 0, 0]);
 * safetensorsHeaderLength(first8, 24); // 16
 */
export function safetensorsHeaderLength(
  first8: Uint8Array,
  fileByteLength: number,
  options?: SafetensorsReadOptions,
): number {
  const limit = maxHeaderBytesOf(options);
  checkFileLength(fileByteLength);
  check(
    first8 instanceof Uint8Array && first8.byteLength >= 8,
    () => `safetensors header length needs the first 8 bytes of the file, got ${first8 instanceof Uint8Array ? first8.byteLength : describeValue(first8)}`,
  );
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  check(
    high === 0 && low <= limit,
    () => `safetensors header length ${view.getBigUint64(0, true)} exceeds the limit of ${limit} bytes${startHint(first8)}`,
  );
  check(
    8 + low <= fileByteLength,
    () =>
      `safetensors header length ${low} exceeds the ${fileByteLength - 8} bytes that follow the length field ` +
      `(file of ${fileByteLength} bytes, truncated or not safetensors)`,
  );
  return low;
}

// ─── Header JSON ─────────────────────────────────────────────────────────────────────────────────

interface RawEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

/** Value of a JSON escape letter (after the backslash), or -1; `\u` is handled apart. */
function simpleEscape(c: number): number {
  switch (c) {
    case 0x22: // "
    case 0x5c: // \
    case 0x2f: // /
      return c;
    case 0x62: // b
      return 0x08;
    case 0x66: // f
      return 0x0c;
    case 0x6e: // n
      return 0x0a;
    case 0x72: // r
      return 0x0d;
    case 0x74: // t
      return 0x09;
    default:
      return -1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** Describes where a value sits, for error messages; built only when a message is needed. */
type Context = () => string;

/** A JSON number literal, matched at a position (sticky). */
const JSON_NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * A JSON reader that knows the header's schema: an object of tensor entries (objects of dtype,
 * shape, data_offsets) and `__metadata__` (null or an object of strings). It consumes each character
 * at most once (a few look-aheads aside), so its work is linear in the header length, and it never
 * recurses more than three levels. Error messages are built only on failure.
 */
class HeaderParser {
  private pos = 0;

  constructor(
    private readonly text: string,
    /** What the text is, for messages. */
    private readonly what = 'safetensors header',
  ) {}

  fail(message: string): never {
    throw new LatticeMatmulError(`${this.what}: ${message} (at character ${this.pos} of ${this.text.length})`);
  }

  private peek(): number {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  private found(): string {
    if (this.pos >= this.text.length) return 'the end of the text';
    return JSON.stringify(this.text.slice(this.pos, this.pos + 12) + (this.pos + 12 < this.text.length ? '…' : ''));
  }

  private skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (; pos < text.length; pos++) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    }
    this.pos = pos;
  }

  private expect(char: number, context: Context): void {
    if (this.peek() !== char) this.fail(`expected '${String.fromCharCode(char)}' ${context()}, found ${this.found()}`);
    this.pos++;
  }

  /** A JSON string, with escapes; lone surrogates (from `\u` escapes) are refused. */
  parseString(context: Context): string {
    if (this.peek() !== 0x22) this.fail(`expected a string (${context()}), found ${this.found()}`);
    const text = this.text;
    let pos = this.pos + 1;
    // Fast path: no escapes, a single slice.
    let runStart = pos;
    let parts: string[] | undefined;
    for (;;) {
      if (pos >= text.length) {
        this.pos = pos;
        this.fail(`unterminated string (${context()})`);
      }
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        const last = text.slice(runStart, pos);
        this.pos = pos + 1;
        if (parts === undefined) return last;
        parts.push(last);
        return parts.join('');
      }
      if (c < 0x20) {
        this.pos = pos;
        this.fail(`control character U+${c.toString(16).padStart(4, '0')} must be escaped in a string (${context()})`);
      }
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      parts ??= [];
      if (pos > runStart) parts.push(text.slice(runStart, pos));
      this.pos = pos;
      const e = pos + 1 < text.length ? text.charCodeAt(pos + 1) : -1;
      const simple = simpleEscape(e);
      if (simple >= 0) {
        parts.push(String.fromCharCode(simple));
        pos += 2;
      } else if (e === 0x75) {
        const unit = this.hex4(pos + 2, context);
        pos += 6;
        if (unit >= 0xdc00 && unit <= 0xdfff) this.fail(`lone low surrogate \\u${unit.toString(16)} in a string (${context()})`);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (text.charCodeAt(pos) !== 0x5c || text.charCodeAt(pos + 1) !== 0x75) {
            this.fail(`lone high surrogate \\u${unit.toString(16)} in a string (${context()})`);
          }
          const low = this.hex4(pos + 2, context);
          if (low < 0xdc00 || low > 0xdfff) {
            this.fail(`high surrogate \\u${unit.toString(16)} not followed by a low surrogate (${context()})`);
          }
          parts.push(String.fromCharCode(unit, low));
          pos += 6;
        } else {
          parts.push(String.fromCharCode(unit));
        }
      } else {
        this.fail(`invalid escape in a string (${context()}), found ${this.found()}`);
      }
      runStart = pos;
    }
  }

  /** The 4 hex digits at `at` (after a `\u`), as a number. */
  private hex4(at: number, context: Context): number {
    let value = 0;
    for (let i = 0; i < 4; i++) {
      const digit = at + i < this.text.length ? hexValue(this.text.charCodeAt(at + i)) : -1;
      if (digit < 0) this.fail(`\\u must be followed by 4 hex digits in a string (${context()})`);
      value = value * 16 + digit;
    }
    return value;
  }

  /** The number-like token at the position, for messages (cut after 40 characters). */
  private numberToken(): string {
    const token = /^[-+.eE0-9]*/.exec(this.text.slice(this.pos, this.pos + 41))?.[0] ?? '';
    return token.length > 40 ? `${token.slice(0, 40)}…` : token;
  }

  /**
   * `[int, int, …]` of non-negative integer literals ≤ 2^53 − 1 (digits only: no sign, fraction,
   * exponent or leading zero), at most `maxLength` of them (refused as soon as the array grows past).
   * One tight loop over local variables: this is the parser's hot path.
   */
  private parseIntegerArray(context: Context, maxLength: number, unit: string): number[] {
    this.expect(0x5b, () => `to open ${context()}`);
    const text = this.text;
    const length = text.length;
    const values: number[] = [];
    this.skipWhitespace();
    let pos = this.pos;
    let c: number;
    if (pos < length && text.charCodeAt(pos) === 0x5d) {
      this.pos = pos + 1;
      return values;
    }
    for (;;) {
      while (pos < length && ((c = text.charCodeAt(pos)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) pos++;
      const index = values.length;
      this.pos = pos; // for messages
      if (index === maxLength) this.fail(`${context()} has more than ${maxLength} ${unit}`);
      c = pos < length ? text.charCodeAt(pos) : -1;
      if (c < 0x30 || c > 0x39) this.fail(`${context()}[${index}] must be a non-negative integer, found ${this.found()}`);
      let value = c - 0x30;
      pos++;
      c = pos < length ? text.charCodeAt(pos) : -1;
      if (value === 0 && c >= 0x30 && c <= 0x39) this.fail(`${context()}[${index}] has a leading zero, which JSON does not allow`);
      while (c >= 0x30 && c <= 0x39) {
        // Exact while value ≤ 2^53 − 1; once the true value passes it the rounded one does too.
        value = value * 10 + (c - 0x30);
        if (value > Number.MAX_SAFE_INTEGER) this.fail(`${context()}[${index}] ${this.numberToken()} exceeds 2^53 - 1`);
        pos++;
        c = pos < length ? text.charCodeAt(pos) : -1;
      }
      if (c === 0x2e || c === 0x65 || c === 0x45) {
        this.fail(`${context()}[${index}] must be an integer literal without fraction or exponent, found ${this.numberToken()}`);
      }
      values.push(value);
      while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        pos++;
        c = pos < length ? text.charCodeAt(pos) : -1;
      }
      if (c === 0x2c) {
        pos++;
      } else if (c === 0x5d) {
        this.pos = pos + 1;
        return values;
      } else {
        this.pos = pos;
        this.fail(`expected ',' or ']' in ${context()}, found ${this.found()}`);
      }
    }
  }

  /**
   * Walks the members of an object whose '{' comes next, calling `member(key)` with the position on
   * the value; `member` must consume the value, and returns false when `key` was seen before in this
   * object (each caller tracks keys in the structure it builds anyway), which is refused.
   */
  private parseObject(context: Context, member: (key: string) => boolean): void {
    this.expect(0x7b, () => `to open ${context()}`);
    this.skipWhitespace();
    if (this.peek() === 0x7d) {
      this.pos++;
      return;
    }
    const keyContext = (): string => `a key of ${context()}`;
    for (;;) {
      this.skipWhitespace();
      const keyStart = this.pos;
      const key = this.parseString(keyContext);
      this.skipWhitespace();
      this.expect(0x3a, () => `after the key ${describeValue(key)} in ${context()}`);
      this.skipWhitespace();
      if (!member(key)) {
        this.pos = keyStart;
        this.fail(`duplicate key ${describeValue(key)} in ${context()}`);
      }
      this.skipWhitespace();
      const c = this.peek();
      if (c === 0x2c) {
        this.pos++;
      } else if (c === 0x7d) {
        this.pos++;
        return;
      } else {
        this.fail(`expected ',' or '}' in ${context()}, found ${this.found()}`);
      }
    }
  }

  private parseMetadata(): Record<string, string> | null {
    return this.parseTextRecord(() => '__metadata__', (key) => this.parseString(() => `the __metadata__ value of ${describeValue(key)}; values must be strings`));
  }

  /**
   * null, or an object whose values `value` reads as text, into a null-prototype record (so that a key
   * such as "__proto__" is an ordinary key); a duplicate key is refused. `notAnObject`, when given, is
   * the refusal of anything else (else the object's opening brace is expected).
   */
  private parseTextRecord(context: Context, value: (key: string) => string, notAnObject?: string): Record<string, string> | null {
    if (this.text.startsWith('null', this.pos)) {
      this.pos += 4;
      return null;
    }
    if (notAnObject !== undefined && this.peek() !== 0x7b) this.fail(`${notAnObject}, found ${this.found()}`);
    const record = Object.create(null) as Record<string, string>;
    this.parseObject(context, (key) => {
      if (key in record) return false;
      record[key] = value(key);
      return true;
    });
    return record;
  }

  private parseEntry(name: string): RawEntry {
    const what = (): string => `tensor ${describeValue(name)}`;
    if (this.peek() !== 0x7b) this.fail(`${what()} must be an object { dtype, shape, data_offsets }, found ${this.found()}`);
    let dtype: SafetensorsDtype | undefined;
    let shape: number[] | undefined;
    let offsets: number[] | undefined;
    this.parseObject(what, (key) => {
      if (key === 'dtype') {
        if (dtype !== undefined) return false;
        const start = this.pos;
        const value = this.parseString(() => `the dtype of ${what()}`);
        if (!isSafetensorsDtype(value)) {
          this.pos = start;
          this.fail(`${what()} has unknown dtype ${describeValue(value)}; known: ${SAFETENSORS_DTYPES.join(', ')}`);
        }
        dtype = value;
      } else if (key === 'shape') {
        if (shape !== undefined) return false;
        shape = this.parseIntegerArray(() => `the shape of ${what()}`, SAFETENSORS_MAX_RANK, 'dimensions');
      } else if (key === 'data_offsets') {
        if (offsets !== undefined) return false;
        offsets = this.parseIntegerArray(() => `the data_offsets of ${what()}`, 2, 'numbers');
        if (offsets.length !== 2) this.fail(`the data_offsets of ${what()} must be [begin, end], got ${describeValue(offsets.length)} numbers`);
      } else {
        this.fail(`${what()} has an unexpected field ${describeValue(key)}; expected dtype, shape, data_offsets`);
      }
      return true;
    });
    if (dtype === undefined) this.fail(`${what()} has no dtype`);
    if (shape === undefined) this.fail(`${what()} has no shape`);
    if (offsets === undefined) this.fail(`${what()} has no data_offsets`);
    return { name, dtype, shape, begin: offsets[0] as number, end: offsets[1] as number };
  }

  /**
   * The whole header: each entry goes through `validate` as soon as it is read (so a hostile entry
   * is refused before the rest is parsed) and into `byName`, in file order; returns the metadata.
   */
  parseHeader(
    validate: (entry: RawEntry) => SafetensorsTensorInfo,
    byName: Map<string, SafetensorsTensorInfo>,
  ): Record<string, string> | null {
    this.skipWhitespace();
    if (this.pos >= this.text.length) this.fail('the header is empty');
    if (this.peek() !== 0x7b) this.fail(`the header must be a JSON object, found ${this.found()}`);
    let metadata: Record<string, string> | null = null;
    let metadataSeen = false;
    this.parseObject(
      () => 'the header',
      (key) => {
        if (key === '__metadata__') {
          if (metadataSeen) return false;
          metadataSeen = true;
          metadata = this.parseMetadata();
          return true;
        }
        if (byName.has(key)) return false;
        if (key.length === 0) this.fail('a tensor name is empty');
        byName.set(key, validate(this.parseEntry(key)));
        return true;
      },
    );
    this.skipWhitespace();
    if (this.pos < this.text.length) {
      this.fail(`unexpected ${this.found()} after the header object; only whitespace may pad the header`);
    }
    return metadata;
  }

  /**
   * A Hugging Face shard index: { "metadata": null or an object of strings, numbers, booleans or
   * nulls (kept as their JSON text), "weight_map": { tensor name: shard file name } }; no other
   * field, no duplicate key, nothing deeper.
   */
  parseShardIndex(): { weightMap: Map<string, string>; metadata: Record<string, string> } {
    this.skipWhitespace();
    if (this.peek() !== 0x7b) this.fail(`the index must be a JSON object, found ${this.found()}`);
    const weightMap = new Map<string, string>();
    let metadata: Record<string, string> | null = null;
    let seenMap = false;
    let seenMetadata = false;
    this.parseObject(
      () => 'the index',
      (key) => {
        if (key === 'weight_map') {
          if (seenMap) return false;
          seenMap = true;
          if (this.peek() !== 0x7b) this.fail(`"weight_map" must be an object of tensor name → shard file name, found ${this.found()}`);
          this.parseObject(
            () => '"weight_map"',
            (tensor) => {
              if (weightMap.has(tensor)) return false;
              weightMap.set(tensor, this.parseString(() => `the shard of tensor ${describeValue(tensor)} in "weight_map"; it must be a file name`));
              return true;
            },
          );
        } else if (key === 'metadata') {
          if (seenMetadata) return false;
          seenMetadata = true;
          metadata = this.parseTextRecord(() => '"metadata"', (name) => this.parseScalarText(() => `the "metadata" value of ${describeValue(name)}`), '"metadata" must be an object');
        } else {
          this.fail(`the index has an unexpected field ${describeValue(key)}; expected "metadata" and "weight_map"`);
        }
        return true;
      },
    );
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.found()} after the index object`);
    if (!seenMap) this.fail('the index has no "weight_map"');
    return { weightMap, metadata: metadata ?? (Object.create(null) as Record<string, string>) };
  }

  /** A string (its value), or a number, true, false or null (its JSON text). */
  private parseScalarText(context: Context): string {
    if (this.peek() === 0x22) return this.parseString(context);
    for (const literal of ['true', 'false', 'null']) {
      if (this.text.startsWith(literal, this.pos)) {
        this.pos += literal.length;
        return literal;
      }
    }
    JSON_NUMBER.lastIndex = this.pos;
    const number = JSON_NUMBER.exec(this.text)?.[0];
    if (number === undefined) this.fail(`${context()} must be a string, a number, true, false or null, found ${this.found()}`);
    this.pos += number.length;
    return number;
  }
}

/**
 * product(shape) and the byte length it implies, or a refusal: the product is computed with a cap
 * (what `byteRange` bytes could hold), so nothing overflows whatever the shape says.
 */
function checkEntrySize(entry: RawEntry, dataByteLength: number): SafetensorsTensorInfo {
  const { name, dtype, shape, begin, end } = entry;
  const what = (): string => `safetensors: tensor ${describeValue(name)}`;
  if (!(begin <= end)) {
    throw new LatticeMatmulError(`${what()} has data_offsets [${begin}, ${end}]; need begin ≤ end ≤ ${dataByteLength} (the data buffer's length)`);
  }
  if (!(end <= dataByteLength)) {
    // Offsets in order that run past the data: most often a file cut short, which the message must say.
    throw new LatticeMatmulError(
      `${what()} has data_offsets [${begin}, ${end}], but the data after the header is ${dataByteLength} bytes: ` +
        `the file is at least ${end - dataByteLength} bytes shorter than its header says (truncated, as by an interrupted download or copy: fetch or copy it again)`,
    );
  }
  const bits = DTYPE_BITS.get(dtype) as number;
  const byteRange = end - begin;
  const maxElements = Math.floor((byteRange * 8) / bits);
  let elements = 1;
  for (const dim of shape) {
    if (dim === 0) {
      elements = 0;
      break;
    }
  }
  if (elements !== 0) {
    for (const dim of shape) {
      const next = elements * dim;
      if (!(elements <= maxElements / dim && next <= maxElements)) {
        throw new LatticeMatmulError(
          `${what()} has shape ${describeShape(shape)} of ${dtype}, more elements than its data_offsets ` +
            `[${begin}, ${end}] (${byteRange} bytes) hold`,
        );
      }
      elements = next;
    }
  }
  const totalBits = elements * bits; // ≤ byteRange · 8 ≤ 2^53: exact
  if (totalBits % 8 !== 0) {
    throw new LatticeMatmulError(`${what()} has ${elements} elements of ${bits}-bit ${dtype}, which do not end on a byte boundary`);
  }
  if (totalBits / 8 !== byteRange) {
    throw new LatticeMatmulError(
      `${what()} has shape ${describeShape(shape)} of ${dtype} = ${totalBits / 8} bytes, but data_offsets ` +
        `[${begin}, ${end}] span ${byteRange} bytes`,
    );
  }
  // Frozen, so that a caller cannot move a tensor's byte range outside what was validated.
  return Object.freeze({
    name,
    dtype,
    shape: Object.freeze(shape),
    elementCount: elements,
    dataOffsets: Object.freeze([begin, end] as [number, number]),
    byteLength: byteRange,
  });
}

/** Orders tensors by offset and checks that they tile [0, dataByteLength) with no overlap or hole. */
function checkCoverage(tensors: SafetensorsTensorInfo[], dataByteLength: number): void {
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let covered = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < covered) {
      const p = previous as SafetensorsTensorInfo;
      throw new LatticeMatmulError(
        `safetensors: tensor ${describeValue(t.name)} (data_offsets [${begin}, ${end}]) overlaps tensor ` +
          `${describeValue(p.name)} (data_offsets [${p.dataOffsets[0]}, ${p.dataOffsets[1]}])`,
      );
    }
    check(
      begin === covered,
      () =>
        `safetensors: ${begin - covered} bytes before tensor ${describeValue(t.name)} (data_offsets [${begin}, ${end}]) ` +
        `belong to no tensor; the tensors must cover the data buffer without holes`,
    );
    covered = end;
    previous = t;
  }
  check(
    covered === dataByteLength,
    () =>
      `safetensors: the tensors cover ${covered} bytes but the data buffer has ${dataByteLength}; ` +
      `the last ${dataByteLength - covered} bytes belong to no tensor`,
  );
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses and validates the JSON header (the N bytes after the length field) of a file whose data
 * buffer is `dataByteLength` bytes long.
 *
 * @example
 * const json = new TextEncoder().encode('{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}');
 * parseSafetensorsHeaderJson(json, 2).tensors[0]?.shape; // [2]
 */
export function parseSafetensorsHeaderJson(
  headerBytes: Uint8Array,
  dataByteLength: number,
): Pick<SafetensorsHeader, 'tensors' | 'tensorsByName' | 'metadata'> {
  check(headerBytes instanceof Uint8Array, () => `safetensors header must be a Uint8Array, got ${describeValue(headerBytes)}`);
  check(
    Number.isSafeInteger(dataByteLength) && dataByteLength >= 0 && dataByteLength <= MAX_DATA_BYTES,
    () => `safetensors data buffer length must be an integer in [0, 2^50], got ${describeValue(dataByteLength)}`,
  );
  // TextDecoder refuses views of a SharedArrayBuffer in browsers; a copy is at most N bytes.
  const plain = headerBytes.buffer instanceof ArrayBuffer ? headerBytes : headerBytes.slice();
  let text: string;
  try {
    text = STRICT_UTF8.decode(plain);
  } catch (error) {
    throw new LatticeMatmulError(`safetensors header (${headerBytes.byteLength} bytes) is not valid UTF-8`, { cause: error });
  }
  const tensorsByName = new Map<string, SafetensorsTensorInfo>();
  const metadata = new HeaderParser(text).parseHeader((entry) => checkEntrySize(entry, dataByteLength), tensorsByName);
  const tensors = [...tensorsByName.values()];
  checkCoverage(tensors, dataByteLength);
  return { tensors, tensorsByName, metadata };
}

/**
 * Parses a Hugging Face shard index (`model.safetensors.index.json`) as strictly as a header: valid
 * UTF-8, one JSON object with "weight_map" (tensor name → shard file name) and optional "metadata"
 * (strings, numbers, booleans or nulls, each kept as text: `{"total_size": 16060522496}` gives
 * "16060522496"), no duplicate key, no lone surrogate, nothing deeper; work linear in its length.
 * `what` names it in messages. The shard names are not checked here (src/io/safetensorsModel.ts does).
 *
 * @example
 * const text = '{"metadata":{"total_size":8},"weight_map":{"w":"model-00001-of-00001.safetensors"}}';
 * parseShardIndexJson(new TextEncoder().encode(text), 'index').weightMap.get('w'); // 'model-00001-of-00001.safetensors'
 */
export function parseShardIndexJson(bytes: Uint8Array, what: string): { weightMap: ReadonlyMap<string, string>; metadata: Readonly<Record<string, string>> } {
  const plain = bytes.buffer instanceof ArrayBuffer ? bytes : bytes.slice();
  let text: string;
  try {
    text = STRICT_UTF8.decode(plain);
  } catch (error) {
    throw new LatticeMatmulError(`${what} (${bytes.byteLength} bytes) is not valid UTF-8`, { cause: error });
  }
  return new HeaderParser(text, what).parseShardIndex();
}

/** Options of `parseSafetensorsHeader`. */
export interface ParseSafetensorsHeaderOptions extends SafetensorsReadOptions {
  /** Length of the whole file when `bytes` is only a prefix of it (default: `bytes.byteLength`). */
  readonly fileByteLength?: number;
}

/**
 * Parses and validates a safetensors header. `bytes` is the whole file, or a prefix of it holding at
 * least the 8 + N header bytes when `options.fileByteLength` (the whole file's length) is given; the
 * data buffer is not read.
 *
 * @example
 * const file = writeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
 * parseSafetensorsHeader(file).tensors[0]; // { name: 'w', dtype: 'F32', shape: [2], dataOffsets: [0, 8], … }
 */
export function parseSafetensorsHeader(
  bytes: ArrayBuffer | Uint8Array,
  options: ParseSafetensorsHeaderOptions = {},
): SafetensorsHeader {
  checkOptionsObject(options, ['maxHeaderBytes', 'fileByteLength'], 'parseSafetensorsHeader options');
  const view = asBytes(bytes, 'safetensors bytes');
  const total = options.fileByteLength === undefined ? view.byteLength : options.fileByteLength;
  checkFileLength(total);
  check(view.byteLength >= 8, () => `safetensors header needs the first 8 bytes of the file, got ${describeValue(view.byteLength)}`);
  const headerByteLength = safetensorsHeaderLength(view, total, options);
  const dataStart = 8 + headerByteLength;
  check(
    view.byteLength >= dataStart,
    () => `safetensors header needs the first ${dataStart} bytes of the file, got ${describeValue(view.byteLength)}`,
  );
  const dataByteLength = total - dataStart;
  const { tensors, tensorsByName, metadata } = parseSafetensorsHeaderJson(view.subarray(8, dataStart), dataByteLength);
  return { headerByteLength, dataStart, dataByteLength, tensors, tensorsByName, metadata };
}

// ─── Typed data ──────────────────────────────────────────────────────────────────────────────────

/**
 * A typed array of `dtype` over `byteLength` bytes of `buffer` at `byteOffset` (which must be aligned
 * to the element size). Internal: shared with the Node file reader.
 */
export function safetensorsTypedView(
  dtype: SafetensorsDtype,
  buffer: ArrayBufferLike,
  byteOffset: number,
  byteLength: number,
): SafetensorsTypedArray {
  switch (DTYPE_ARRAY.get(dtype)) {
    case 'Int8Array':
      return new Int8Array(buffer, byteOffset, byteLength);
    case 'Uint16Array':
      return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'Int16Array':
      return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'Uint32Array':
      return new Uint32Array(buffer, byteOffset, byteLength / 4);
    case 'Int32Array':
      return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'Float32Array':
      return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'Float64Array':
      return new Float64Array(buffer, byteOffset, byteLength / 8);
    case 'BigInt64Array':
      return new BigInt64Array(buffer, byteOffset, byteLength / 8);
    case 'BigUint64Array':
      return new BigUint64Array(buffer, byteOffset, byteLength / 8);
    default:
      return new Uint8Array(buffer, byteOffset, byteLength);
  }
}

function bytesPerArrayElement(dtype: SafetensorsDtype): number {
  switch (DTYPE_ARRAY.get(dtype)) {
    case 'Uint16Array':
    case 'Int16Array':
      return 2;
    case 'Uint32Array':
    case 'Int32Array':
    case 'Float32Array':
      return 4;
    case 'Float64Array':
    case 'BigInt64Array':
    case 'BigUint64Array':
      return 8;
    default:
      return 1;
  }
}

/**
 * The typed array for one tensor's bytes: a view of `bytes` when its offset is aligned for the array
 * type and `copy` is false, else a fresh copy of exactly its bytes. Internal: shared with the Node
 * file reader.
 */
export function safetensorsTypedData(info: SafetensorsTensorInfo, bytes: Uint8Array, copy: boolean): SafetensorsTypedArray {
  const size = bytesPerArrayElement(info.dtype);
  if (size > 1) checkLittleEndianHost(`tensor ${describeValue(info.name)}`);
  if (!copy && bytes.byteOffset % size === 0) {
    return safetensorsTypedView(info.dtype, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const fresh = new Uint8Array(bytes.byteLength);
  fresh.set(bytes);
  return safetensorsTypedView(info.dtype, fresh.buffer, 0, fresh.byteLength);
}

/**
 * Converts one tensor's little-endian bytes (F32, F16, BF16 or F64) to a new Float32Array. F16 and
 * BF16 are exact (every value, including subnormals, ±0, ±Inf and NaN payloads, is an f32); F32 is
 * copied bit for bit; F64 is rounded to nearest f32 (ties to even), overflowing to ±Inf. NaN and Inf
 * are kept: callers decide whether to refuse them. Internal: shared with the Node file reader.
 */
export function safetensorsBytesToFloat32(info: SafetensorsTensorInfo, bytes: Uint8Array): Float32Array {
  const n = info.elementCount;
  const dtype = info.dtype;
  check(
    dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64',
    () => `tensor ${describeValue(info.name)} has dtype ${dtype}; tensorAsFloat32 converts F32, F16, BF16 and F64`,
  );
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  // Bytes are assembled explicitly (little-endian), so neither alignment nor host byte order matters.
  if (dtype === 'F32') {
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      bits[i] = ((bytes[j] as number) | ((bytes[j + 1] as number) << 8) | ((bytes[j + 2] as number) << 16) | ((bytes[j + 3] as number) << 24)) >>> 0;
    }
  } else if (dtype === 'F16') {
    for (let i = 0, j = 0; i < n; i++, j += 2) {
      bits[i] = float16BitsToFloat32Bits((bytes[j] as number) | ((bytes[j + 1] as number) << 8));
    }
  } else if (dtype === 'BF16') {
    for (let i = 0, j = 0; i < n; i++, j += 2) {
      bits[i] = (((bytes[j] as number) << 16) | ((bytes[j + 1] as number) << 24)) >>> 0;
    }
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
  }
  return out;
}

// ─── Reader over bytes in memory ─────────────────────────────────────────────────────────────────

/** Options of `SafetensorsArchive.tensorData`. */
export interface TensorDataOptions {
  /** Always return a fresh copy (default: a view of the archive's bytes when aligned). */
  readonly copy?: boolean;
}

/**
 * The description of tensor `name` in a validated header, or a clear error naming `source` (the
 * archive, or the file and its path): the lookup of `SafetensorsArchive.info` and `SafetensorsFile.info`.
 */
export function headerTensorInfo(header: SafetensorsHeader, name: string, source: string): SafetensorsTensorInfo {
  const info = header.tensorsByName.get(name);
  check(info !== undefined, () => `${source} has no tensor named ${describeValue(name)} (it has ${header.tensors.length})`);
  return info;
}

/**
 * A safetensors file held in memory, its header validated. Tensors are views into the bytes it was
 * given (nothing is copied until asked), so those bytes must not be changed while it is in use.
 *
 * @example
 * const archive = readSafetensors(await (await fetch('model.safetensors')).arrayBuffer());
 * for (const t of archive.tensors) console.log(t.name, t.dtype, t.shape);
 * const w = archive.tensorAsFloat32('model.layers.0.mlp.down_proj.weight');
 */
export class SafetensorsArchive {
  /** The validated header. */
  readonly header: SafetensorsHeader;
  private readonly bytes: Uint8Array;

  private constructor(bytes: Uint8Array, header: SafetensorsHeader) {
    this.bytes = bytes;
    this.header = header;
  }

  /** Parses and validates `bytes` (the whole file); see `readSafetensors`. */
  static read(bytes: ArrayBuffer | Uint8Array, options: SafetensorsReadOptions = {}): SafetensorsArchive {
    checkOptionsObject(options, SAFETENSORS_READ_OPTION_KEYS, 'readSafetensors options');
    const view = asBytes(bytes, 'safetensors bytes');
    return new SafetensorsArchive(view, parseSafetensorsHeader(view, { maxHeaderBytes: options.maxHeaderBytes }));
  }

  /** The tensors, ordered by data offset. */
  get tensors(): readonly SafetensorsTensorInfo[] {
    return this.header.tensors;
  }

  /** `__metadata__`, or null. */
  get metadata(): Readonly<Record<string, string>> | null {
    return this.header.metadata;
  }

  /** Whether a tensor named `name` exists. */
  has(name: string): boolean {
    return this.header.tensorsByName.has(name);
  }

  /** The validated description of tensor `name`. */
  info(name: string): SafetensorsTensorInfo {
    return headerTensorInfo(this.header, name, 'safetensors archive');
  }

  /** The raw little-endian bytes of tensor `name` (a view, not a copy). */
  tensorBytes(name: string): Uint8Array {
    const info = this.info(name);
    const expected = this.header.dataStart + this.header.dataByteLength;
    check(
      this.bytes.byteLength === expected,
      () => `safetensors archive: its bytes changed length (${this.bytes.byteLength}, was ${expected}); was the buffer transferred?`,
    );
    const start = this.header.dataStart + info.dataOffsets[0];
    return this.bytes.subarray(start, start + info.byteLength);
  }

  /**
   * Tensor `name` as its typed array (see `safetensorsArrayType`): F16/BF16 as raw `Uint16Array`
   * bits, C64 as interleaved f32 pairs. A view when the data is aligned for the array type, else
   * (or with `copy`) a fresh copy.
   */
  tensorData(name: string, options: TensorDataOptions = {}): SafetensorsTypedArray {
    checkOptionsObject(options, ['copy'], 'tensorData options');
    // `copy: 'yes'` must not mean false (a view where the caller asked for a copy it may keep).
    const copy = checkOptionalBoolean(options.copy, 'tensorData options: copy') ?? false;
    return safetensorsTypedData(this.info(name), this.tensorBytes(name), copy);
  }

  /**
   * Tensor `name` (F32, F16, BF16 or F64) converted to a new Float32Array, row-major; exact for
   * F16/BF16, rounded for F64. NaN and ±Inf are kept as they are.
   */
  tensorAsFloat32(name: string): Float32Array {
    return safetensorsBytesToFloat32(this.info(name), this.tensorBytes(name));
  }
}

export { float16BitsToFloat32Bits };

/**
 * Parses and validates a whole safetensors file held in memory; refuses malformed or hostile bytes
 * with a `LatticeMatmulError` before allocating anything of the size the header claims.
 *
 * @example
 * const file = writeSafetensors({ w: { dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) } });
 * readSafetensors(file).tensorAsFloat32('w'); // Float32Array [1]
 */
export function readSafetensors(bytes: ArrayBuffer | Uint8Array, options?: SafetensorsReadOptions): SafetensorsArchive {
  return SafetensorsArchive.read(bytes, options);
}

// ─── Writer ──────────────────────────────────────────────────────────────────────────────────────

/** A tensor to write: its dtype, row-major shape and data (see `safetensorsArrayType`, or raw bytes). */
export interface SafetensorsTensorInput {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: SafetensorsTypedArray;
}

/** Tensors to write, by name. */
export type SafetensorsTensors =
  | ReadonlyMap<string, SafetensorsTensorInput>
  | Readonly<Record<string, SafetensorsTensorInput>>;

/** String metadata to write as `__metadata__`. */
export type SafetensorsMetadata = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

/** The layout of a file to write: header bytes (length field included) then each tensor's bytes. */
export interface SafetensorsPlan {
  /** The 8-byte length field and the JSON header, padded with spaces to a multiple of 8. */
  readonly header: Uint8Array;
  /** Tensor bytes in file order (views of the inputs' data). */
  readonly chunks: readonly Uint8Array[];
  /** header.byteLength + the sum of the chunks' lengths. */
  readonly totalByteLength: number;
}

function entriesOf<T>(value: ReadonlyMap<string, T> | Readonly<Record<string, T>>, what: string): [string, T][] {
  if (value instanceof Map) return [...(value as ReadonlyMap<string, T>).entries()];
  check(
    typeof value === 'object' && value !== null && !Array.isArray(value),
    () => `${what} must be a Map or a plain object, got ${describeValue(value)}`,
  );
  return Object.entries(value as Readonly<Record<string, T>>);
}

/** Whether `s` is well-formed UTF-16 (no lone surrogates), so that it has a UTF-8 encoding. */
function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c >= 0xdc00) return false;
    const next = s.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

function checkText(value: unknown, what: string): asserts value is string {
  check(typeof value === 'string', () => `${what} must be a string, got ${describeValue(value)}`);
  check(isWellFormed(value), () => `${what} ${describeValue(value)} has a lone surrogate, which UTF-8 cannot encode`);
}

/** Orders strings by Unicode code point, as Rust orders the UTF-8 bytes of `String`s. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function typedArrayTag(data: unknown): string | undefined {
  if (!ArrayBuffer.isView(data) || data instanceof DataView) return undefined;
  // The tag works across realms (a typed array from another frame or worker), unlike instanceof.
  return (data as Uint8Array)[Symbol.toStringTag];
}

/**
 * A tensor to write, checked (a known dtype, a shape of safe integers, data of the dtype's array type or
 * raw bytes and of exactly the shape's size, BOOL bytes 0 or 1), with its data as bytes.
 */
export function checkedTensorBytes(name: string, input: SafetensorsTensorInput): { dtype: SafetensorsDtype; bytes: Uint8Array; shape: number[] } {
  const what = `tensor ${describeValue(name)}`;
  check(typeof input === 'object' && input !== null, () => `${what} must be { dtype, shape, data }, got ${describeValue(input)}`);
  const { dtype, shape, data } = input;
  check(isSafetensorsDtype(dtype), () => `${what} has dtype ${describeValue(dtype)}; known: ${SAFETENSORS_DTYPES.join(', ')}`);
  check(Array.isArray(shape), () => `${what} must have a shape array, got ${describeValue(shape)}`);
  check(
    shape.length <= SAFETENSORS_MAX_RANK,
    () => `${what} has ${shape.length} dimensions; at most ${SAFETENSORS_MAX_RANK} are allowed`,
  );
  for (const [i, dim] of shape.entries()) {
    check(
      Number.isSafeInteger(dim) && dim >= 0,
      () => `${what} has shape[${i}] = ${describeValue(dim)}; dimensions must be non-negative safe integers`,
    );
  }
  const tag = typedArrayTag(data);
  const natural = DTYPE_ARRAY.get(dtype) as string;
  check(
    tag === natural || tag === 'Uint8Array',
    () => `${what} of dtype ${dtype} needs its data as a ${natural} (or a Uint8Array of raw bytes), got ${tag ?? describeValue(data)}`,
  );
  if (tag !== 'Uint8Array') checkLittleEndianHost(what);
  const bits = DTYPE_BITS.get(dtype) as number;
  let elements = shape.includes(0) ? 0 : 1;
  for (const dim of shape) {
    elements *= dim;
    check(elements * bits <= MAX_DATA_BYTES * 8, () => `${what} has shape ${describeShape(shape)}, too many elements to write`);
  }
  check(
    (elements * bits) % 8 === 0,
    () => `${what} has ${elements} elements of ${bits}-bit ${dtype}, which do not end on a byte boundary`,
  );
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  check(
    bytes.byteLength === (elements * bits) / 8,
    () =>
      `${what} has shape ${describeShape(shape)} of ${dtype} = ${(elements * bits) / 8} bytes, but its data has ` +
      `${bytes.byteLength} bytes (${tag} of length ${data.length})`,
  );
  if (dtype === 'BOOL') {
    const bad = bytes.findIndex((b) => b > 1);
    check(bad < 0, () => `${what} is BOOL but holds ${bytes[bad]} at index ${bad}; BOOL bytes must be 0 or 1`);
  }
  return { dtype, bytes, shape: [...shape] };
}

/**
 * Plans a safetensors file: validates the tensors and metadata, orders the tensors as the reference
 * writer does (by the dtype's place in `SAFETENSORS_DTYPES`, the reference's list from the smallest
 * alignment to the largest, later places first, then by name: each tensor's data is aligned to its
 * element size) and builds the header, padded with spaces so that the data starts at a multiple of 8.
 * `writeSafetensors` and the Node file writer use it.
 *
 * @example
 * const plan = planSafetensors({ w: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) } });
 * plan.totalByteLength; // 8 + 56 + 3
 */
export function planSafetensors(tensors: SafetensorsTensors, metadata?: SafetensorsMetadata): SafetensorsPlan {
  const inputs = entriesOf(tensors, 'tensors').map(([name, input]) => {
    checkTensorName(name);
    return { name, ...checkedTensorBytes(name, input) };
  });
  const layout = planSafetensorsLayout(inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: t.bytes.byteLength })), metadata);
  const chunks = layout.order.map((i) => (inputs[i] as (typeof inputs)[number]).bytes);
  return { header: layout.header, chunks, totalByteLength: layout.header.byteLength + layout.dataByteLength };
}

/** A name a tensor may have in a written file: a non-empty, well-formed string other than `__metadata__`. */
export function checkTensorName(name: unknown): asserts name is string {
  checkText(name, 'tensor name');
  check(name.length > 0, 'tensor name must not be empty');
  check(name !== '__metadata__', 'tensor name "__metadata__" is reserved for the metadata');
}

/** A tensor of a file being planned, known by its size alone (the data may be elsewhere: a spill file). */
export interface SafetensorsTensorLayout {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/**
 * The header of a file of `tensors` (checked with `checkedTensorBytes`; names unique) and the order
 * their data follows it in: the reference writer's (see `planSafetensors`). `planSafetensors` and the
 * streaming `SafetensorsFileWriter` share it, so both write the same bytes.
 */
export function planSafetensorsLayout(tensors: readonly SafetensorsTensorLayout[], metadata?: SafetensorsMetadata): { header: Uint8Array; order: number[]; dataByteLength: number } {
  for (const { name } of tensors) checkTensorName(name);
  const order = tensors.map((_, i) => i);
  const at = (i: number): SafetensorsTensorLayout => tensors[i] as SafetensorsTensorLayout;
  order.sort((i, j) => (DTYPE_RANK.get(at(j).dtype) as number) - (DTYPE_RANK.get(at(i).dtype) as number) || compareCodePoints(at(i).name, at(j).name));
  const parts: string[] = [];
  if (metadata !== undefined) {
    const pairs = entriesOf(metadata, 'metadata');
    for (const [key, value] of pairs) {
      checkText(key, 'metadata key');
      checkText(value, `metadata value of ${describeValue(key)}`);
    }
    pairs.sort((a, b) => compareCodePoints(a[0], b[0]));
    parts.push(`"__metadata__":{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  let offset = 0;
  for (const i of order) {
    const t = at(i);
    const end = offset + t.byteLength;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  check(offset <= MAX_DATA_BYTES, () => `safetensors data of ${offset} bytes exceeds the 2^50-byte limit`);
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerByteLength = Math.ceil(json.byteLength / 8) * 8;
  check(
    headerByteLength <= SAFETENSORS_MAX_HEADER_BYTES,
    () => `safetensors header of ${headerByteLength} bytes exceeds the limit of ${SAFETENSORS_MAX_HEADER_BYTES}`,
  );
  const header = new Uint8Array(8 + headerByteLength).fill(0x20, 8);
  new DataView(header.buffer).setUint32(0, headerByteLength, true); // high word stays 0: N < 2^32
  header.set(json, 8);
  return { header, order, dataByteLength: offset };
}

/**
 * Writes tensors (and optional string metadata) as a safetensors file in memory, in the layout the
 * reference implementation writes: `__metadata__` first, tensors by dtype alignment then name, the
 * header padded with spaces to a multiple of 8.
 *
 * @example
 * const bytes = writeSafetensors(
 *   { codes: { dtype: 'U32', shape: [2, 4], data: new Uint32Array(8) } },
 *   { scheme: 'd3-q6' },
 * );
 */
export function writeSafetensors(tensors: SafetensorsTensors, metadata?: SafetensorsMetadata): Uint8Array {
  const plan = planSafetensors(tensors, metadata);
  let out: Uint8Array;
  try {
    out = new Uint8Array(plan.totalByteLength);
  } catch (error) {
    throw new LatticeMatmulError(`safetensors: cannot allocate ${plan.totalByteLength} bytes for the file`, { cause: error });
  }
  out.set(plan.header, 0);
  let at = plan.header.byteLength;
  for (const chunk of plan.chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
