import commonSource from '../../../shaders/gemv_i8_common.wgsl?raw';
import leaderTableSource from '../../../shaders/leader_table.wgsl?raw';
import { check, checkOneOf } from '../../errors.js';
import { checkOptionalBoolean } from '../../quantize/strictOptions.js';
import { codeBufferByteLength } from '../buffers.js';
import { bindingWindow, itemsPerBinding, type BindingWindow } from '../workSplit.js';
import { lanesWorkgroupBytes } from './universalGemv.js';
import { GEMV_OUTPUT_WGSL } from './gemvCall.js';

/*
 * The host side of shaders/gemv_i8_common.wgsl, the streaming loop of both int8-input GEMVs
 * (universalGemvI8.ts, latticeGemvI8.ts): how many columns a lane serves, hence a workgroup, and the
 * codes bound as whole 16-byte quads (the kernels declare them `array<vec4<u32>>`).
 */

/** Columns per lane: x̂ of a group is loaded once for all of them (see the shader's header). */
export const I8_LANE_COLUMNS = 2;

/** Columns per workgroup: 8 slots of 32 lanes (shaders/universal_gemv_lanes.wgsl), LANE_COLUMNS columns each. */
export const I8_WORKGROUP_COLUMNS = 8 * I8_LANE_COLUMNS;

/** Bytes of one code quad: the kernels' vec4<u32> load. */
export const CODE_QUAD_BYTES = 16;

/**
 * Copies of the packed leader table a kernel keeps in workgroup memory: lane l of a column slot reads
 * copy l mod copies, so 32 copies make every lookup of a warp conflict-free, 16 take 2 passes through
 * the banks and 8 ≈ 2.9 (shaders/gemv_i8_common.wgsl weighs that against the copies' fill).
 */
export type LeaderCopies = 1 | 2 | 4 | 8 | 16 | 32;

const LEADER_COPY_CHOICES: readonly LeaderCopies[] = [32, 16, 8, 4, 2, 1];

/** Copies kept unless asked for more: see shaders/gemv_i8_common.wgsl. */
const DEFAULT_LEADER_COPIES: LeaderCopies = 16;

/** The leader-table layout options the int8-input GEMVs share. */
export interface LeaderTableArgs {
  /**
   * Copies of the leader table (1…32, a power of two that fits the device's workgroup memory: 32
   * copies of D3's 216 leaders take 27 KB). Default: 16 (the universal D3 GEMV: 8), or the most that
   * fit below that. More copies make each lookup cheaper in workgroup-memory bandwidth and the table's
   * fill dearer; which wins depends on the GPU and the kernel (the benchmark times others beside the
   * default).
   */
  readonly leaderCopies?: LeaderCopies;
  /**
   * Pad each copy to 256 entries where the copies still fit (default false: the leaders alone). The
   * same results; padded, the bounds clamp WebGPU puts on each lookup can never bind, so a GPU's
   * compiler could drop it (see i8LeaderEntries; lavapipe's and RADV's do not). The benchmark times both.
   */
  readonly padLeaderTable?: boolean;
}

/** Workgroup bytes the leader table may use: what the lanes' reduction and the kernel's own tables leave. */
function leaderTableBudget(rhsTile: number, kernelBytes: number, workgroupBytes: number): number {
  return workgroupBytes - lanesWorkgroupBytes(rhsTile) - kernelBytes;
}

/**
 * How many copies of a table of `leaders` packed leaders (4 bytes each) a kernel keeps: `requested`
 * when given (checked), else the most up to `most` (16 by default) that fit `workgroupBytes` beside the
 * lanes' reduction for a tile of `rhsTile` right-hand sides and the kernel's own tables (`kernelBytes`).
 *
 * @example
 * i8LeaderCopies(216, 1, 64, 16384); // 16: 13 824 bytes beside 1 KB of partial sums
 * i8LeaderCopies(216, 8, 64, 16384); // 8: 6912 bytes beside 8 KB of partial sums
 * i8LeaderCopies(216, 1, 64, 32768, 32); // 32: 27 648 bytes
 */
export function i8LeaderCopies(leaders: number, rhsTile: number, kernelBytes: number, workgroupBytes: number, requested?: LeaderCopies, most: LeaderCopies = DEFAULT_LEADER_COPIES): LeaderCopies {
  const budget = leaderTableBudget(rhsTile, kernelBytes, workgroupBytes);
  const fits = (copies: number): boolean => 4 * leaders * copies <= budget;
  if (requested !== undefined) {
    checkOneOf(requested, LEADER_COPY_CHOICES, 'leaderCopies');
    check(fits(requested), () => `leaderCopies: ${requested} copies of ${leaders} leaders need ${4 * leaders * requested} bytes of workgroup memory; ${budget} are left (maxComputeWorkgroupStorageSize ${workgroupBytes})`);
    return requested;
  }
  const copies = LEADER_COPY_CHOICES.find((c) => c <= most && fits(c));
  check(copies !== undefined, () => `int8-input gemv: ${leaders} leaders do not fit ${workgroupBytes} bytes of workgroup memory`);
  return copies;
}

/** The leader table a kernel variant keeps: its copies and the entries of each (i8LeaderEntries). */
export interface LeaderTable {
  readonly copies: LeaderCopies;
  readonly entries: number;
}

/** Entries per copy of a padded leader table: every value of a code byte. */
export const PADDED_LEADER_ENTRIES = 256;

/**
 * Entries per copy of the leader table once its `copies` are chosen (i8LeaderCopies): 256, every value a
 * code byte can hold, where that many copies of 256 fit the same budget; else the `leaders` themselves.
 * Why pad: Tint clamps each lookup's index code·copies + replica to the table's last word. With 256
 * entries that bound is 256·copies − 1, which the index (a byte times a power of two, plus a lane's copy
 * below it) can never exceed, so a compiler that tracks the bits a value can have could drop the clamp
 * (≈ 1 ALU instruction per block; with 216 entries it must keep it). Entries past the leaders hold 0.
 * Whether one does is unknown: lavapipe (Mesa's NIR, then LLVM 15) keeps it, its x86 code for the
 * padded and unpadded deterministic kernel differing only in moves; the SPIR-V keeps it either way.
 * So padding is opt-in (`padLeaderTable`), and the benchmark times it beside the default.
 *
 * @example
 * i8LeaderEntries(216, 16, 1, 64, 32768); // 256: 16 KB beside 1 KB of partial sums
 * i8LeaderEntries(216, 16, 1, 64, 16384); // 216: 16 KB would not fit
 */
export function i8LeaderEntries(leaders: number, copies: LeaderCopies, rhsTile: number, kernelBytes: number, workgroupBytes: number): number {
  check(leaders <= PADDED_LEADER_ENTRIES, () => `int8-input gemv: ${leaders} leaders do not fit 8-bit codes`);
  return 4 * PADDED_LEADER_ENTRIES * copies <= leaderTableBudget(rhsTile, kernelBytes, workgroupBytes) ? PADDED_LEADER_ENTRIES : leaders;
}

/**
 * The leader table of a kernel whose own tables take `kernelBytes`: the copies (i8LeaderCopies, at
 * most `most` unless asked for more) and, with `padLeaderTable`, the entries of each (i8LeaderEntries;
 * else the leaders alone).
 *
 * @example
 * i8LeaderTable(216, 1, 64, 32768, {}); // { copies: 16, entries: 216 }
 * i8LeaderTable(216, 1, 64, 32768, { padLeaderTable: true }); // { copies: 16, entries: 256 }
 */
export function i8LeaderTable(leaders: number, rhsTile: number, kernelBytes: number, workgroupBytes: number, args: LeaderTableArgs, most: LeaderCopies = DEFAULT_LEADER_COPIES): LeaderTable {
  const pad = checkOptionalBoolean(args.padLeaderTable, 'padLeaderTable') ?? false;
  const copies = i8LeaderCopies(leaders, rhsTile, kernelBytes, workgroupBytes, args.leaderCopies, most);
  return { copies, entries: pad ? i8LeaderEntries(leaders, copies, rhsTile, kernelBytes, workgroupBytes) : leaders };
}

/** shaders/gemv_i8_common.wgsl with its generated constants and leader table, and shaders/gemv_output.wgsl (`store_output`). */
export function gemvI8CommonWgsl(table: LeaderTable): string {
  return [`const LANE_COLUMNS: u32 = ${I8_LANE_COLUMNS}u;`, leaderTableWgsl(table), commonSource, GEMV_OUTPUT_WGSL].join('\n');
}

/**
 * shaders/leader_table.wgsl (`leader_table`, `fill_leader_table`) with the table's generated
 * constants; the module defines LEADER_COUNT, THREADS and `gemv_leader`.
 */
export function leaderTableWgsl(table: LeaderTable): string {
  return [`const LEADER_COPIES: u32 = ${table.copies}u;`, `const LEADER_TABLE_ENTRIES: u32 = ${table.entries}u;`, leaderTableSource].join('\n');
}

/**
 * Binding offsets of the codes and of what lies beside their quads: the device's storage alignment,
 * and whole quads (a power of two either way).
 */
export function quadAlignment(alignment: number): number {
  return Math.max(alignment, CODE_QUAD_BYTES);
}

/**
 * How many columns of `bytesPerColumn` code bytes one quad binding of at most `maxBindingBytes` holds:
 * `itemsPerBinding` against the limit rounded down to whole quads, since {@link codeQuadWindow} rounds
 * a window's end up to one.
 */
export function codeQuadColumnsPerBinding(bytesPerColumn: number, maxBindingBytes: number, alignment: number): number {
  // One column's worst window: the most slack before an aligned offset, its end rounded up to a quad.
  const oneColumnBytes = Math.ceil((bytesPerColumn + quadAlignment(alignment) - 4) / CODE_QUAD_BYTES) * CODE_QUAD_BYTES;
  check(
    oneColumnBytes <= maxBindingBytes,
    () =>
      `one column of ${bytesPerColumn} code bytes does not fit a storage binding of at most ${maxBindingBytes} bytes: ` +
      `at a ${quadAlignment(alignment)}-byte aligned offset and rounded to whole ${CODE_QUAD_BYTES}-byte quads, its window may take ${oneColumnBytes}; allow at least that`,
  );
  return itemsPerBinding(bytesPerColumn, Math.floor(maxBindingBytes / CODE_QUAD_BYTES) * CODE_QUAD_BYTES, quadAlignment(alignment));
}

/**
 * The codes of columns [first, first + count) (`wordsPerColumn` u32 each, from byte 0 of their
 * buffer) as a binding of whole quads: its offset a multiple of 16 bytes (and of `alignment`), its
 * size rounded up to 16; `firstElement` counts u32 words, so column j's first word is
 * `firstElement + (j − first)·wordsPerColumn` and its quads start at that word / 4.
 *
 * @example
 * codeQuadWindow(342, 40, 16, 256); // { offset: 54528, size: 22080, firstElement: 48 }
 */
export function codeQuadWindow(wordsPerColumn: number, first: number, count: number, alignment: number): BindingWindow {
  const window = bindingWindow(4 * wordsPerColumn * first, 4 * wordsPerColumn * count, quadAlignment(alignment));
  return { ...window, size: Math.ceil(window.size / CODE_QUAD_BYTES) * CODE_QUAD_BYTES };
}

/**
 * Checks that `codes` extends to the quad holding its last code word (`words` u32 in all), which
 * {@link codeQuadWindow} binds: buffers the library makes are sized in whole quads (`createBuffer`);
 * a caller's own buffer needs its size rounded up to 16 bytes.
 */
export function checkCodeQuads(codes: GPUBuffer, words: number, what: string): void {
  const needed = codeBufferByteLength(4 * words);
  check(
    codes.size >= needed,
    () => `${what}: the codes buffer has ${codes.size} bytes; this kernel reads them 16 bytes at a time, so it needs ${needed} (the ${4 * words} bytes of codes rounded up to 16)`,
  );
}
