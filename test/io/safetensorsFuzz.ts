import fc from 'fast-check';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  SAFETENSORS_DTYPES,
  readSafetensors,
  safetensorsDtypeBits,
  type SafetensorsArchive,
  type SafetensorsDtype,
} from '../../src/io/safetensors.js';

/*
 * Fuzzing the safetensors reader: start from a valid file, edit its JSON header structurally (hostile
 * shapes and offsets, duplicate keys, bad names and metadata, …), then mutate bytes (bit flips,
 * overwrites, truncation, insertion, deletion, a different header length). Every result must be
 * refused with a LatticeMatmulError or read as a structurally valid archive whose tensors lie inside
 * the buffer; nothing may throw anything else, take long, or create a typed array larger than the input.
 *
 * Used by safetensorsFuzz.test.ts (a fixed-seed CI run) and by safetensorsFuzzCli.ts (longer runs).
 */

// ─── Valid base files, written by hand (independently of writeSafetensors) ───────────────────────

interface BaseTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
}

interface BaseFile {
  readonly tensors: BaseTensor[];
  readonly metadata: [string, string][] | null;
  /** Order of the entries in the JSON (a permutation of data order). */
  readonly jsonOrder: number[];
  /** Seed of the data bytes. */
  readonly dataSeed: number;
  /** Spaces after the JSON; any count is valid. */
  readonly padding: number;
}

const NAMES = ['w', 'model.layers.0.mlp.down_proj.weight', 'b', 'é', 'codes', 'scale', '日本', 'x.y'];

const baseTensorArb: fc.Arbitrary<BaseTensor> = fc.record({
  name: fc.constantFrom(...NAMES),
  dtype: fc.constantFrom<SafetensorsDtype>(...SAFETENSORS_DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
});

function elementBytes(dtype: SafetensorsDtype, shape: readonly number[]): number | undefined {
  const elements = shape.reduce((p, d) => p * d, 1);
  const bits = elements * safetensorsDtypeBits(dtype);
  return bits % 8 === 0 ? bits / 8 : undefined;
}

const baseFileArb: fc.Arbitrary<BaseFile> = fc
  .record({
    tensors: fc.uniqueArray(baseTensorArb, { maxLength: 5, selector: (t) => t.name }),
    metadata: fc.option(fc.array(fc.tuple(fc.constantFrom('format', 'scheme', 'k', '', '__proto__'), fc.string({ maxLength: 6 })), { maxLength: 3 }), { nil: null }),
    order: fc.array(fc.nat(), { minLength: 5, maxLength: 5 }),
    dataSeed: fc.integer(),
    padding: fc.integer({ min: 0, max: 9 }),
  })
  .map(({ tensors, metadata, order, dataSeed, padding }) => {
    // Sub-byte dtypes need a whole number of bytes; give them an even/quadruple-friendly shape.
    const fixed = tensors.map((t) => (elementBytes(t.dtype, t.shape) === undefined ? { ...t, shape: [8] } : t));
    const jsonOrder = fixed.map((_, i) => i).sort((a, b) => (order[a] ?? 0) - (order[b] ?? 0) || a - b);
    const uniqueMetadata = metadata === null ? null : [...new Map(metadata).entries()];
    return { tensors: fixed, metadata: uniqueMetadata, jsonOrder, dataSeed, padding };
  });

interface HeaderModel {
  entries: { key: string; fields: [string, string][] }[];
  metadata: string | undefined;
  leading: string;
  trailing: string;
}

function modelOf(base: BaseFile): { model: HeaderModel; dataLength: number } {
  let offset = 0;
  const ranges = base.tensors.map((t) => {
    const bytes = elementBytes(t.dtype, t.shape) as number;
    const range = [offset, offset + bytes];
    offset += bytes;
    return range;
  });
  const entries = base.jsonOrder.map((i) => {
    const t = base.tensors[i] as BaseTensor;
    const range = ranges[i] as number[];
    return {
      key: JSON.stringify(t.name),
      fields: [
        ['"dtype"', JSON.stringify(t.dtype)],
        ['"shape"', `[${t.shape.join(',')}]`],
        ['"data_offsets"', `[${range.join(',')}]`],
      ] as [string, string][],
    };
  });
  const metadata =
    base.metadata === null ? undefined : `{${base.metadata.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
  return { model: { entries, metadata, leading: '', trailing: ' '.repeat(base.padding) }, dataLength: offset };
}

function headerText(model: HeaderModel): string {
  const members = model.entries.map((e) => `${e.key}:{${e.fields.map(([k, v]) => `${k}:${v}`).join(',')}}`);
  if (model.metadata !== undefined) members.unshift(`"__metadata__":${model.metadata}`);
  return `${model.leading}{${members.join(',')}}${model.trailing}`;
}

function assemble(json: Uint8Array, dataLength: number, dataSeed: number): Uint8Array {
  const file = new Uint8Array(8 + json.byteLength + dataLength);
  new DataView(file.buffer).setUint32(0, json.byteLength, true);
  file.set(json, 8);
  let state = dataSeed >>> 0;
  for (let i = 8 + json.byteLength; i < file.byteLength; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    file[i] = state >>> 24;
  }
  return file;
}

// ─── Structural JSON edits ───────────────────────────────────────────────────────────────────────

const HOSTILE_NUMBERS = [
  '0',
  '1',
  '00',
  '-1',
  '-0',
  '1.5',
  '1.0',
  '1e3',
  '1E2',
  '4294967296',
  '9007199254740991',
  '9007199254740992',
  '18446744073709551615',
  '18446744073709551616',
  '9'.repeat(400),
  '0x10',
  'NaN',
  'Infinity',
  'null',
  '"1"',
  '[]',
];

const HOSTILE_SHAPES = [
  '[]',
  '[0]',
  '[4294967296,4294967296,4294967296]',
  '[9007199254740991,9007199254740991]',
  '[9007199254740991,0]',
  '[0,9007199254740991,9007199254740991]',
  '[65536,65536]',
  `[${Array(2000).fill(1).join(',')}]`,
  `[${Array(1024).fill(1).join(',')}]`,
  `[${Array(300).fill(2).join(',')}]`,
  '[1,]',
  '[,1]',
  '[-2,-2]',
  '[1.5]',
  '["1"]',
  '[[1]]',
  '{}',
  'null',
  '[1 2]',
];

const HOSTILE_DTYPES = ['"F32"', '"F16"', '"BF16"', '"U8"', '"F4"', '"C64"', '"f32"', '"F8"', '""', '"__proto__"', '"toString"', '32', 'null'];

const HOSTILE_NAMES = ['""', '"__metadata__"', '"\\ud800"', '"\\udc00x"', '"\\ud800\\u0041"', '"a\\u0000b"', '"\u0001"', '"\\x41"', '"a\\"b"', '"__proto__"', '"constructor"', '"w"', '"b"'];

const HOSTILE_METADATA = ['{"k":"v"}', '{}', 'null', '{"a":1}', '{"a":"b","a":"c"}', '[]', '"x"', '{"__proto__":"x"}', '{"k":"\\ud800"}', '{"k":{"n":"v"}}', '{"k":"v",}', '{"k" "v"}'];

const HOSTILE_VALUES = ['[]', 'null', '{}', '1', '"x"', 'true', '{"dtype":"U8"}'];

const PADDINGS = ['', ' ', '        ', '\t\n\r ', '\u0000', 'x', '}', ',', '\ufeff', '{}'];

type JsonEdit =
  | { kind: 'number'; which: number; literal: string }
  | { kind: 'shape'; entry: number; text: string }
  | { kind: 'dtype'; entry: number; text: string }
  | { kind: 'name'; entry: number; text: string }
  | { kind: 'metadata'; text: string }
  | { kind: 'value'; entry: number; text: string }
  | { kind: 'duplicateEntry'; entry: number; at: number }
  | { kind: 'overlap'; entry: number; other: number }
  | { kind: 'shiftOffsets'; entry: number; delta: number }
  | { kind: 'swapOffsets'; entry: number }
  | { kind: 'removeField'; entry: number; field: number }
  | { kind: 'addField'; entry: number; key: string; value: string }
  | { kind: 'removeEntry'; entry: number }
  | { kind: 'padding'; leading: string; trailing: string };

const jsonEditArb: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({ kind: fc.constant('number' as const), which: fc.nat(), literal: fc.constantFrom(...HOSTILE_NUMBERS) }),
  fc.record({ kind: fc.constant('shape' as const), entry: fc.nat(), text: fc.constantFrom(...HOSTILE_SHAPES) }),
  fc.record({ kind: fc.constant('dtype' as const), entry: fc.nat(), text: fc.constantFrom(...HOSTILE_DTYPES) }),
  fc.record({ kind: fc.constant('name' as const), entry: fc.nat(), text: fc.constantFrom(...HOSTILE_NAMES) }),
  fc.record({ kind: fc.constant('metadata' as const), text: fc.constantFrom(...HOSTILE_METADATA) }),
  fc.record({ kind: fc.constant('value' as const), entry: fc.nat(), text: fc.constantFrom(...HOSTILE_VALUES) }),
  fc.record({ kind: fc.constant('duplicateEntry' as const), entry: fc.nat(), at: fc.nat() }),
  fc.record({ kind: fc.constant('overlap' as const), entry: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('shiftOffsets' as const), entry: fc.nat(), delta: fc.integer({ min: -9, max: 9 }) }),
  fc.record({ kind: fc.constant('swapOffsets' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('removeField' as const), entry: fc.nat(), field: fc.nat() }),
  fc.record({
    kind: fc.constant('addField' as const),
    entry: fc.nat(),
    key: fc.constantFrom('"dtype"', '"shape"', '"data_offsets"', '"extra"', '"__proto__"'),
    value: fc.constantFrom('"U8"', '[1]', '[0,1]', '1', 'null'),
  }),
  fc.record({ kind: fc.constant('removeEntry' as const), entry: fc.nat() }),
  fc.record({ kind: fc.constant('padding' as const), leading: fc.constantFrom(...PADDINGS), trailing: fc.constantFrom(...PADDINGS) }),
);

function pick<T>(items: T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

function setField(fields: [string, string][], key: string, value: string): void {
  const field = fields.find(([k]) => k === key);
  if (field !== undefined) field[1] = value;
}

function offsetsOf(fields: [string, string][]): number[] | undefined {
  const text = fields.find(([k]) => k === '"data_offsets"')?.[1];
  const match = text === undefined ? null : /^\[(\d+),(\d+)\]$/.exec(text);
  return match === null ? undefined : [Number(match[1]), Number(match[2])];
}

/** Applies a structural edit to the model, or (for 'number') returns a text edit to apply later. */
function applyJsonEdit(model: HeaderModel, edit: JsonEdit): ((text: string) => string) | undefined {
  const entry = 'entry' in edit ? pick(model.entries, edit.entry) : undefined;
  switch (edit.kind) {
    case 'number':
      return (text) => {
        const matches = [...text.matchAll(/\d+/g)];
        const m = pick(matches, edit.which);
        return m === undefined ? text : text.slice(0, m.index) + edit.literal + text.slice(m.index + m[0].length);
      };
    case 'shape':
      if (entry !== undefined) setField(entry.fields, '"shape"', edit.text);
      return undefined;
    case 'dtype':
      if (entry !== undefined) setField(entry.fields, '"dtype"', edit.text);
      return undefined;
    case 'name':
      if (entry !== undefined) entry.key = edit.text;
      return undefined;
    case 'metadata':
      model.metadata = edit.text;
      return undefined;
    case 'value':
      if (entry !== undefined) entry.fields = [];
      if (entry !== undefined) return (text) => text.replace(`${entry.key}:{}`, `${entry.key}:${edit.text}`);
      return undefined;
    case 'duplicateEntry':
      if (entry !== undefined) model.entries.splice(edit.at % (model.entries.length + 1), 0, { key: entry.key, fields: entry.fields.map(([k, v]) => [k, v]) });
      return undefined;
    case 'overlap': {
      const other = pick(model.entries, edit.other);
      const offsets = other === undefined ? undefined : offsetsOf(other.fields);
      if (entry !== undefined && offsets !== undefined) setField(entry.fields, '"data_offsets"', `[${offsets.join(',')}]`);
      return undefined;
    }
    case 'shiftOffsets': {
      const offsets = entry === undefined ? undefined : offsetsOf(entry.fields);
      if (entry !== undefined && offsets !== undefined) {
        setField(entry.fields, '"data_offsets"', `[${offsets.map((o) => Math.max(0, o + edit.delta)).join(',')}]`);
      }
      return undefined;
    }
    case 'swapOffsets': {
      const offsets = entry === undefined ? undefined : offsetsOf(entry.fields);
      if (entry !== undefined && offsets !== undefined) setField(entry.fields, '"data_offsets"', `[${offsets[1]},${offsets[0]}]`);
      return undefined;
    }
    case 'removeField':
      if (entry !== undefined && entry.fields.length > 0) entry.fields.splice(edit.field % entry.fields.length, 1);
      return undefined;
    case 'addField':
      entry?.fields.push([edit.key, edit.value]);
      return undefined;
    case 'removeEntry':
      if (entry !== undefined) model.entries.splice(model.entries.indexOf(entry), 1);
      return undefined;
    case 'padding':
      model.leading = edit.leading;
      model.trailing = edit.trailing;
      return undefined;
  }
}

// ─── Byte mutations ──────────────────────────────────────────────────────────────────────────────

type ByteMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'headerLength'; value: bigint; relative: boolean };

const HEADER_LENGTHS = [0n, 1n, 2n, 7n, 8n, 100_000_000n, 100_000_001n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0xff, 0x22, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d, 0x30, 0x39, 0x20, 0x5c, 0x80, 0xc0, 0xed, 0xf4) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 9 }) }),
  fc.record({
    kind: fc.constant('headerLength' as const),
    value: fc.oneof(fc.constantFrom(...HEADER_LENGTHS), fc.bigInt({ min: -16n, max: 16n })),
    relative: fc.boolean(),
  }),
);

function applyByteMutation(file: Uint8Array, m: ByteMutation): Uint8Array {
  const n = file.byteLength;
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return file;
      const out = file.slice();
      out[m.at % n] = (out[m.at % n] as number) ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (n === 0) return file;
      const out = file.slice();
      out[m.at % n] = m.value;
      return out;
    }
    case 'truncate':
      return file.slice(0, m.keep % (n + 1));
    case 'insert': {
      const at = m.at % (n + 1);
      return Uint8Array.from([...file.subarray(0, at), ...m.bytes, ...file.subarray(at)]);
    }
    case 'delete': {
      const at = m.at % (n + 1);
      return Uint8Array.from([...file.subarray(0, at), ...file.subarray(at + m.count)]);
    }
    case 'append':
      return Uint8Array.from([...file, ...m.bytes]);
    case 'headerLength': {
      if (n < 8) return file;
      const out = file.slice();
      const view = new DataView(out.buffer);
      const current = view.getBigUint64(0, true);
      const value = m.relative ? current + m.value : m.value;
      view.setBigUint64(0, BigInt.asUintN(64, value), true);
      return out;
    }
  }
}

/** One fuzz case: a valid base, JSON edits, whether N is recomputed after them, byte mutations. */
export interface FuzzCase {
  readonly base: BaseFile;
  readonly jsonEdits: JsonEdit[];
  readonly byteMutations: ByteMutation[];
}

/** The fast-check arbitrary of fuzz cases (about a tenth are left unmutated and must parse). */
export const fuzzCaseArb: fc.Arbitrary<FuzzCase> = fc.record({
  base: baseFileArb,
  jsonEdits: fc.array(jsonEditArb, { maxLength: 2 }),
  byteMutations: fc.array(byteMutationArb, { maxLength: 3 }),
});

/** The bytes of a fuzz case. */
export function fuzzCaseBytes(c: FuzzCase): Uint8Array {
  const { model, dataLength } = modelOf(c.base);
  const textEdits = c.jsonEdits.map((e) => applyJsonEdit(model, e));
  let text = headerText(model);
  for (const edit of textEdits) if (edit !== undefined) text = edit(text);
  let file = assemble(new TextEncoder().encode(text), dataLength, c.base.dataSeed);
  for (const m of c.byteMutations) file = applyByteMutation(file, m);
  return file;
}

// ─── Allocation probe ────────────────────────────────────────────────────────────────────────────

const PROBED = [
  'ArrayBuffer',
  'Uint8Array',
  'Int8Array',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'Int32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
] as const;

/**
 * While installed, replaces the global ArrayBuffer and typed array constructors by proxies that
 * record the largest allocation (in bytes) made while `active` is set; views of an existing buffer
 * are not allocations. The library refers to these constructors through globals, so the probe sees
 * every `new Float32Array(n)` it makes.
 */
export class AllocationProbe {
  active = false;
  largest = 0;
  private originals = new Map<string, unknown>();

  install(): void {
    const scope = globalThis as unknown as Record<string, unknown>;
    for (const name of PROBED) {
      const original = scope[name] as (new (...args: unknown[]) => object) & { BYTES_PER_ELEMENT?: number };
      this.originals.set(name, original);
      const bytesPer = original.BYTES_PER_ELEMENT ?? 1;
      scope[name] = new Proxy(original, {
        construct: (target, args: unknown[], newTarget) => {
          if (this.active) {
            const first = args[0];
            let bytes = 0;
            if (typeof first === 'number') bytes = first * bytesPer;
            else if (Array.isArray(first) || ArrayBuffer.isView(first)) bytes = (first as ArrayLike<unknown>).length * bytesPer;
            this.largest = Math.max(this.largest, bytes);
          }
          return Reflect.construct(target, args, newTarget === scope[name] ? target : newTarget) as object;
        },
      });
    }
  }

  uninstall(): void {
    const scope = globalThis as unknown as Record<string, unknown>;
    for (const [name, original] of this.originals) scope[name] = original;
    this.originals.clear();
  }

  /** Runs `body` with recording on, starting from 0; returns its result and the largest allocation. */
  measure<T>(body: () => T): { result: T; largest: number } {
    this.largest = 0;
    this.active = true;
    try {
      return { result: body(), largest: this.largest };
    } finally {
      this.active = false;
    }
  }
}

// ─── The property ────────────────────────────────────────────────────────────────────────────────

/** What the fuzz run saw. */
export interface FuzzCounts {
  tried: number;
  refused: number;
  parsed: number;
  other: number;
  /** Parsed archives with at least one tensor. */
  parsedWithTensors: number;
  /** Slowest single case, in milliseconds. */
  slowestMs: number;
  /** First few failures (other errors or broken invariants), for the report. */
  failures: string[];
}

export function emptyCounts(): FuzzCounts {
  return { tried: 0, refused: 0, parsed: 0, other: 0, parsedWithTensors: 0, slowestMs: 0, failures: [] };
}

/** Independent check of a parsed archive: every invariant recomputed from the bytes. */
function checkArchive(archive: SafetensorsArchive, bytes: Uint8Array, probe: AllocationProbe): string | undefined {
  const h = archive.header;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (h.headerByteLength !== n || h.dataStart !== 8 + n) return `header length ${h.headerByteLength} ≠ field ${n}`;
  if (h.dataStart + h.dataByteLength !== bytes.byteLength) return 'data buffer does not end at the end of the file';
  const names = new Set<string>();
  let covered = 0;
  for (const t of h.tensors) {
    if (t.name.length === 0 || t.name === '__metadata__' || names.has(t.name)) return `bad or repeated name ${t.name}`;
    names.add(t.name);
    const [begin, end] = t.dataOffsets;
    if (begin !== covered || end < begin || end > h.dataByteLength) return `tensor ${t.name} [${begin}, ${end}] breaks the tiling at ${covered}`;
    covered = end;
    const elements = t.shape.reduce((p, d) => p * BigInt(d), 1n);
    const bits = elements * BigInt(safetensorsDtypeBits(t.dtype));
    if (bits % 8n !== 0n || bits / 8n !== BigInt(end - begin) || BigInt(t.elementCount) !== elements) {
      return `tensor ${t.name} shape/bytes mismatch`;
    }
    const raw = archive.tensorBytes(t.name);
    if (raw.buffer !== bytes.buffer || raw.byteOffset !== bytes.byteOffset + h.dataStart + begin || raw.byteLength !== end - begin) {
      return `tensor ${t.name} bytes outside their range`;
    }
    const copy = probe.measure(() => archive.tensorData(t.name, { copy: true }));
    if (copy.largest > t.byteLength || copy.result.byteLength !== t.byteLength) return `tensor ${t.name} copy allocated ${copy.largest}`;
    const viewed = archive.tensorData(t.name);
    if (viewed.byteLength !== t.byteLength) return `tensor ${t.name} view has ${viewed.byteLength} bytes`;
    try {
      const floats = probe.measure(() => archive.tensorAsFloat32(t.name));
      if (floats.result.length !== t.elementCount || floats.largest > 2 * t.byteLength) return `tensor ${t.name} float conversion wrong size`;
    } catch (error) {
      if (!(error instanceof LatticeMatmulError) || ['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) throw error;
    }
  }
  if (covered !== h.dataByteLength) return `tensors cover ${covered} of ${h.dataByteLength} bytes`;
  if (h.metadata !== null && Object.values(h.metadata).some((v) => typeof v !== 'string')) return 'non-string metadata';
  return undefined;
}

/** Longest a single case may take before it counts as a hang. */
export const HANG_MS = 2000;

/** Runs one case through the reader and records the outcome; returns whether it was acceptable. */
export function runFuzzCase(c: FuzzCase, counts: FuzzCounts, probe: AllocationProbe): boolean {
  const bytes = fuzzCaseBytes(c);
  counts.tried++;
  const started = performance.now();
  let problem: string | undefined;
  try {
    const parsed = probe.measure(() => readSafetensors(bytes));
    if (parsed.largest > bytes.byteLength) problem = `parsing allocated ${parsed.largest} bytes for an input of ${bytes.byteLength}`;
    else problem = checkArchive(parsed.result, bytes, probe);
    if (problem === undefined) {
      counts.parsed++;
      if (parsed.result.tensors.length > 0) counts.parsedWithTensors++;
    }
  } catch (error) {
    if (error instanceof LatticeMatmulError) counts.refused++;
    else problem = `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
  }
  const elapsed = performance.now() - started;
  counts.slowestMs = Math.max(counts.slowestMs, elapsed);
  if (problem === undefined && elapsed > HANG_MS) problem = `took ${elapsed.toFixed(0)} ms`;
  if (problem !== undefined) {
    counts.other++;
    if (counts.failures.length < 5) counts.failures.push(`${problem} — case ${fc.stringify(c).slice(0, 2000)}`);
    return false;
  }
  return true;
}

/** Options of `runSafetensorsFuzz`. */
export interface FuzzOptions {
  readonly seed: number;
  /** Cases to run (per batch when `minutes` is given). */
  readonly numRuns: number;
  /** Keep running batches (seed, seed + 1, …) until this many minutes have passed. */
  readonly minutes?: number;
  /** Called after each batch. */
  readonly onBatch?: (counts: FuzzCounts, seed: number) => void;
}

/**
 * Runs the fuzz property with fast-check; returns the counts. With `minutes`, repeats batches of
 * `numRuns` with successive seeds until the time is up (each batch reproduces from its seed).
 */
export function runSafetensorsFuzz(options: FuzzOptions): { counts: FuzzCounts; details: fc.RunDetails<[FuzzCase]> } {
  const counts = emptyCounts();
  const probe = new AllocationProbe();
  const deadline = options.minutes === undefined ? 0 : Date.now() + options.minutes * 60_000;
  let seed = options.seed;
  let details: fc.RunDetails<[FuzzCase]>;
  probe.install();
  try {
    for (;;) {
      details = fc.check(
        fc.property(fuzzCaseArb, (c) => runFuzzCase(c, counts, probe)),
        { seed, numRuns: options.numRuns },
      );
      options.onBatch?.(counts, seed);
      if (details.failed || Date.now() >= deadline) break;
      seed++;
    }
  } finally {
    probe.uninstall();
  }
  return { counts, details };
}
