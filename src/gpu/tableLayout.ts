import { check, checkOneOf, describeValue } from '../errors.js';
import { D3 } from '../lattices/d3.js';
import { innerProductTable, leaderTable } from '../lattices/innerProductTable.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { createBufferWithData, STORAGE_USAGE } from './buffers.js';

/*
 * How the D3, q = 6 inner-product table T[a][b] = ⟨leader(a), leader(b)⟩ (216 × 216, entries in
 * [−30, 36]) is held in workgroup memory by the table product kernel (shaders/d3_table_matmul.wgsl),
 * chosen from the device's granted `maxComputeWorkgroupStorageSize`:
 *
 * - 'full'     (≥ 48 KB): all 46,656 int8 entries, row-major: entry a·216 + b. One read per pair.
 * - 'triangle' (≥ 32 KB): the 23,436-byte upper triangle (T is symmetric), row-major: for
 *              lo = min(a, b), hi = max(a, b) the entry lo·(431 − lo)/2 + hi. One read per pair plus
 *              a min, a max and a multiply.
 * - 'leaders'  (16 KB, every device): the 216 leaders, 3 int8 each in one u32 (864 bytes). The
 *              kernel looks each block's leader up once, as it copies the block into its slice, with
 *              the block's scale multiple beside it in a second slice; a pair's inner product is then
 *              one packed 8-bit dot product of two registers (or 3 multiply-adds on the plain path).
 *
 * The default is 'leaders' on every device: per pair of blocks it reads no workgroup memory, where
 * the full and triangle tables cost a random byte read per pair (several passes through the banks
 * per warp-wide read) and its extraction, plus both scale multiples from their indices; bench/README.md
 * ("Products: what bounds them on an H200") has the estimate, and on lavapipe it is the fastest too.
 * The two tables stay as options (`layout`), which the benchmark times beside it.
 *
 * Entries are int8 packed 4 per u32, little-endian (byte i of word w is entry 4w + i), as WGSL has no
 * 8-bit workgroup arrays; the kernel sign-extends with `extractBits`. The rest of workgroup memory
 * holds two code slices of TABLE_TILE columns × sliceBlocks blocks (one u32 each), and in the leaders
 * layout two slices of scale multiples as large: the largest slice depth in {16, 8, 4} that fits
 * beside the table.
 */

/** The code the table serves: D3, q = 6 (216 codes). */
export const TABLE_CODES = 216;
/** C entries per workgroup edge in the table kernel (its TILE). */
export const TABLE_TILE = 64;

/** The D3 inner-product table layouts of the deterministic products. */
export const TABLE_LAYOUT_KINDS = ['full', 'triangle', 'leaders'] as const;
/**
 * A D3 inner-product table layout of the deterministic products (`GpuEngineOptions.tableLayout`).
 *
 * @useDeclaredType
 */
export type TableLayoutKind = (typeof TABLE_LAYOUT_KINDS)[number];

export interface TableLayout {
  readonly kind: TableLayoutKind;
  /** The WGSL constant TABLE_LAYOUT: 0 full, 1 triangle, 2 leaders. */
  readonly id: number;
  /** u32 words of the table in workgroup memory. */
  readonly tableWords: number;
  /** Blocks per code slice (the WGSL constant SLICE). */
  readonly sliceBlocks: number;
  /** Total workgroup memory of the kernel in bytes: table + two slices. */
  readonly workgroupBytes: number;
}

/** The kernel's TABLE_LAYOUT ids (LAYOUT_FULL, LAYOUT_TRIANGLE, LAYOUT_LEADERS in shaders/d3_table_matmul.wgsl). */
export const TABLE_LAYOUT_IDS: Readonly<Record<TableLayoutKind, number>> = { full: 0, triangle: 1, leaders: 2 };
const TABLE_BYTES: Record<TableLayoutKind, number> = {
  full: TABLE_CODES * TABLE_CODES, // 46,656
  triangle: (TABLE_CODES * (TABLE_CODES + 1)) / 2, // 23,436
  leaders: 4 * TABLE_CODES, // 864: 3 int8 + one zero byte per leader
};
const SLICE_CHOICES = [16, 8, 4] as const;

/**
 * Workgroup bytes of the slices at a given depth: two code slices, and two slices of scale multiples
 * in the leaders layout (the others declare them with one unused entry each: K_SLICE in the kernel).
 */
function sliceBytes(kind: TableLayoutKind, sliceBlocks: number): number {
  const codeSlices = 2 * TABLE_TILE * sliceBlocks * 4;
  return kind === 'leaders' ? 2 * codeSlices : codeSlices + 2 * 4;
}

/**
 * The layout `kind` sized for a device granting `maxWorkgroupStorage` bytes, or null when it does not fit.
 *
 * @example
 * tableLayout('full', 49152); // { kind: 'full', tableWords: 11664, sliceBlocks: 4, workgroupBytes: 48712, … }
 */
export function tableLayout(kind: TableLayoutKind, maxWorkgroupStorage: number): TableLayout | null {
  // Not `kind in TABLE_LAYOUT_IDS`: 'toString' is in every object, and `in` throws on an object without a prototype.
  checkOneOf(kind, TABLE_LAYOUT_KINDS, 'tableLayout');
  const tableWords = Math.ceil(TABLE_BYTES[kind] / 4);
  for (const sliceBlocks of SLICE_CHOICES) {
    const workgroupBytes = 4 * tableWords + sliceBytes(kind, sliceBlocks);
    if (workgroupBytes <= maxWorkgroupStorage) {
      return { kind, id: TABLE_LAYOUT_IDS[kind], tableWords, sliceBlocks, workgroupBytes };
    }
  }
  return null;
}

/**
 * The default table layout for a device's granted `maxComputeWorkgroupStorageSize`: the leaders
 * (see above), with the deepest slices that fit.
 *
 * @example
 * chooseTableLayout(device.limits.maxComputeWorkgroupStorageSize); // { kind: 'leaders', sliceBlocks: 16, … } at ≥ 17,248 bytes
 */
export function chooseTableLayout(maxWorkgroupStorage: number): TableLayout {
  check(
    Number.isInteger(maxWorkgroupStorage) && maxWorkgroupStorage > 0,
    () => `maxWorkgroupStorage must be a positive integer, got ${describeValue(maxWorkgroupStorage)}`,
  );
  const layout = tableLayout('leaders', maxWorkgroupStorage);
  check(
    layout !== null,
    () => `the D3 table kernel needs at least ${4 * TABLE_CODES + sliceBytes('leaders', 4)} bytes of workgroup memory, the device grants ${maxWorkgroupStorage}`,
  );
  return layout;
}

/** Index of entry (a, b) in the row-major upper triangle: lo·(431 − lo)/2 + hi. */
export function triangleIndex(a: number, b: number): number {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return (lo * (2 * TABLE_CODES - 1 - lo)) / 2 + hi;
}

const wordsByKind = /*#__PURE__*/ new Map<TableLayoutKind, Uint32Array>();

/**
 * The table words of a layout (int8 entries, 4 per u32, little-endian), built once from the CPU
 * reference (`innerProductTable` / `leaderTable` of D3, q = 6).
 */
export function tableWords(kind: TableLayoutKind): Uint32Array {
  let words = wordsByKind.get(kind);
  if (words === undefined) {
    const code = new VoronoiCode(D3, 6);
    const bytes = new Int8Array(4 * Math.ceil(TABLE_BYTES[kind] / 4));
    if (kind === 'leaders') {
      const leaders = leaderTable(code);
      for (let c = 0; c < TABLE_CODES; c++) for (let i = 0; i < 3; i++) bytes[4 * c + i] = leaders[3 * c + i] as number;
    } else {
      const table = innerProductTable(code);
      for (let a = 0; a < TABLE_CODES; a++) {
        for (let b = kind === 'full' ? 0 : a; b < TABLE_CODES; b++) {
          const value = table[a * TABLE_CODES + b] as number;
          check(value >= -128 && value <= 127, () => `D3 q = 6 table entry ${value} does not fit int8`);
          bytes[kind === 'full' ? a * TABLE_CODES + b : triangleIndex(a, b)] = value;
        }
      }
    }
    words = new Uint32Array(bytes.buffer);
    wordsByKind.set(kind, words);
  }
  return words;
}

/** Sign-extended byte `index` of little-endian packed words (the WGSL `extractBits(i32(word), 8·(index % 4), 8)`). */
function packedInt8(words: Uint32Array, index: number): number {
  const word = words[index >> 2] as number;
  return ((word << (24 - 8 * (index & 3))) >> 24) | 0;
}

/**
 * T[a][b] read from layout words exactly as the kernel reads them (its CPU twin, for tests).
 *
 * @example
 * tableEntry('triangle', tableWords('triangle'), 5, 7); // = innerProductTable(…)[5 * 216 + 7]
 */
export function tableEntry(kind: TableLayoutKind, words: Uint32Array, a: number, b: number): number {
  if (kind === 'full') return packedInt8(words, a * TABLE_CODES + b);
  if (kind === 'triangle') return packedInt8(words, triangleIndex(a, b));
  let dot = 0;
  for (let i = 0; i < 3; i++) dot += packedInt8(words, 4 * a + i) * packedInt8(words, 4 * b + i);
  return dot;
}

const buffersByDevice = /*#__PURE__*/ new WeakMap<GPUDevice, Map<TableLayoutKind, GPUBuffer>>();

/**
 * A storage buffer holding `tableWords(kind)`, created once per device and kept for the device's
 * lifetime (about 46 KB at most; `device.destroy()` frees it). The kernels copy it into workgroup memory.
 */
export function deviceTableBuffer(device: GPUDevice, kind: TableLayoutKind): GPUBuffer {
  let byKind = buffersByDevice.get(device);
  if (byKind === undefined) {
    byKind = new Map();
    buffersByDevice.set(device, byKind);
  }
  let buffer = byKind.get(kind);
  if (buffer === undefined) {
    buffer = createBufferWithData(device, `D3 q=6 ${kind} table`, tableWords(kind), STORAGE_USAGE);
    byKind.set(kind, buffer);
  }
  return buffer;
}
