import { readFileSync } from 'node:fs';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { LatticeMatmulError } from '../../src/errors.js';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntryInput, type QuantizedContainer } from '../../src/format/container.js';
import { readSafetensors, writeSafetensors, type SafetensorsDtype } from '../../src/io/safetensors.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { AllocationProbe } from '../io/safetensorsFuzz.js';

/*
 * The quantized container under damage: the property behind test/format/containerFuzz.test.ts and a
 * later `npm run fuzz` (export `runContainerFuzz`).
 *
 * Start from small valid containers holding every kind of matrix, then damage them: byte mutations
 * (bit flips, overwritten bytes, truncation, insertion, deletion, appended bytes, a different header
 * length), and "resealed" edits that change the header or a tensor and then recompute every checksum
 * the way docs/FORMAT.md specifies (with node:zlib's CRC-32, not the library's), so that the reader's
 * checks behind the checksums are reached: hostile description fields, hostile tensor words, tensors
 * of another shape, missing or extra tensors, metadata keys, versions, non-canonical JSON.
 *
 * Every case must be either refused with a LatticeMatmulError, or accepted, and then every matrix
 * decodes to finite values (dequantize; weight-only: decode), matmulAT of the matrix with itself is
 * finite or refused by matmulAT's f32 range check, and
 * the container is identical to the original (written again, it gives the original's bytes). Only a
 * resealed edit may be accepted as a different valid container ("variant"). A changed byte accepted
 * without a reseal, any other exception, a case slower than HANG_MS, or an allocation during reading
 * larger than 32 bytes per file byte (+ 4 KiB) is a failure ("silent wrong").
 */

// ─── The corpus ─────────────────────────────────────────────────────────────────────────────────

/** Spikes plus noise, unrotated: μ leaves the root shell and the extended table (explicit escapes). */
export function spikyMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    for (let i = 0; i < rows; i++) data[j * rows + i] = 0.01 * rng.nextGaussian();
    data[j * rows + rng.nextInt(rows)] = 50;
  }
  return { rows, cols, data };
}

function weightOnly(n: number, outputs: number, method: 'rtn' | 'gptq' | 'watersic', extra: { rotate?: boolean; rescale?: boolean } = {}) {
  return quantizeWeights(gaussianMatrix(n, outputs, n + outputs), spreadSpectrumCovariance(n, 2, 1).sigma, { method, step: 0.3, ...extra });
}

/** The matrices of fixtures/universal-v1.safetensors (format version 1: E8 with one dither key, D3). */
function versionOneEntries(): ContainerEntryInput[] {
  const container = readQuantizedContainer(new Uint8Array(readFileSync(new URL('./fixtures/universal-v1.safetensors', import.meta.url))));
  return container.entries.map((e) => ({ name: e.name, matrix: e.matrix }));
}

/** The valid containers the fuzzing starts from (small, so mutations hit headers and data alike). */
export function containerCorpus(): readonly { readonly name: string; readonly entries: ContainerEntryInput[]; readonly metadata: Record<string, string> }[] {
  return [
    {
      name: 'universal D3 + E8 spiky + deterministic',
      entries: [
        { name: 'a', matrix: quantize(gaussianMatrix(40, 3, 1), { scheme: 'd3-q6', seed: 3, nonce: 101, center: true }) },
        { name: 'spiky', matrix: quantize(spikyMatrix(24, 3, 2), { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 0.3 }, seed: 3, nonce: 102, rotate: false }) },
        { name: 'det', matrix: quantize(gaussianMatrix(30, 2, 3), { scheme: 'd3-q6-deterministic', seed: 3, gain: 'mmse' }) },
      ],
      metadata: { model: 'fuzz' },
    },
    {
      name: 'scalar + weight-only',
      entries: [
        { name: 'int4', matrix: quantize(gaussianMatrix(40, 2, 4), { scheme: 'int4-g32', seed: 5 }) },
        { name: 'nvfp4', matrix: quantize(gaussianMatrix(20, 2, 5), { scheme: 'nvfp4', seed: 5, center: true }) },
        { name: 'rtn', matrix: weightOnly(8, 6, 'rtn') },
      ],
      metadata: {},
    },
    {
      name: 'wide codes + weight-only with rotation and rescalers',
      entries: [
        { name: 'e8-5bit', matrix: quantize(gaussianMatrix(32, 2, 6), { scheme: 'e8-5bit', seed: 7, nonce: 103 }) },
        { name: 'int3', matrix: quantize(gaussianMatrix(16, 2, 7), { scheme: 'int3-absmax', seed: 7 }) },
        { name: 'ws', matrix: weightOnly(16, 5, 'watersic', { rotate: true, rescale: true }) },
      ],
      metadata: { 'é': 'ü', ['__proto__']: 'x' },
    },
    {
      // Format version 3: rotations of 256 < n ≤ 1024 rows that is not m·2^k in two windows (257:
      // [0, 256) and [1, 257)) for the universal, deterministic and scalar kinds, and a weight-only
      // matrix rotated so (`hadamard` at n = 260).
      name: 'version 3: two-window rotations',
      entries: [
        { name: 'v3', matrix: quantize(gaussianMatrix(257, 2, 8), { scheme: 'd3-q6', seed: 9, nonce: 104 }) },
        { name: 'v3e8', matrix: quantize(gaussianMatrix(260, 1, 9), { scheme: 'e8-q16-deterministic', seed: 9 }) },
        { name: 'v3int', matrix: quantize(gaussianMatrix(257, 1, 11), { scheme: 'int4-g32', seed: 9 }) },
        { name: 'v3ws', matrix: quantizeWeights(gaussianMatrix(260, 2, 10), null, { method: 'rtn', step: 0.5, rotate: true, seed: 9 }) },
      ],
      metadata: {},
    },
    {
      // Format version 1: E8 universal matrices with one dither key (fixtures/universal-v1.safetensors,
      // written before version 2), kept at version 1 when written again.
      name: 'version 1: E8 with one dither key',
      entries: versionOneEntries(),
      metadata: {},
    },
  ].map((c) => ({ ...c, metadata: Object.fromEntries(Object.entries(c.metadata)) }));
}

// ─── Raw access and resealing (independent of the library's writer) ────────────────────────────

/** A safetensors file as editable parts. */
export interface RawContainer {
  metadata: Record<string, string>;
  tensors: Map<string, { dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }>;
}

export function rawRead(bytes: Uint8Array): RawContainer {
  const archive = readSafetensors(bytes);
  const metadata: Record<string, string> = Object.fromEntries(Object.entries(archive.metadata ?? {}));
  const tensors = new Map<string, { dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }>();
  for (const t of archive.tensors) tensors.set(t.name, { dtype: t.dtype, shape: [...t.shape], data: archive.tensorBytes(t.name).slice() });
  return { metadata, tensors };
}

function hex8(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}

/** The metadata checksum exactly as docs/FORMAT.md specifies it, computed with node:zlib. */
export function specMetadataChecksum(metadata: Readonly<Record<string, string>>): string {
  const pairs = Object.keys(metadata)
    .filter((k) => k !== 'checksum')
    .map((k) => [Buffer.from(k, 'utf8'), Buffer.from(metadata[k] as string, 'utf8')] as const)
    .sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [];
  for (const [key, value] of pairs) {
    for (const part of [key, value]) {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(part.length);
      parts.push(length, part);
    }
  }
  return hex8(zlibCrc32(Buffer.concat(parts)));
}

/** Recomputes every description's tensor checksums (where it parses) and then the metadata checksum. */
export function reseal(raw: RawContainer, textEdit?: (key: string, json: string) => string): void {
  for (const key of Object.keys(raw.metadata)) {
    if (!key.startsWith('matrix.')) continue;
    const name = key.slice('matrix.'.length);
    let json = raw.metadata[key] as string;
    try {
      const parsed: unknown = JSON.parse(json);
      if (typeof parsed === 'object' && parsed !== null && 'tensors' in parsed) {
        const tensors = (parsed as { tensors: unknown }).tensors;
        if (typeof tensors === 'object' && tensors !== null) {
          for (const field of Object.keys(tensors)) {
            const t = raw.tensors.get(`${name}.${field}`);
            if (t !== undefined) (tensors as Record<string, unknown>)[field] = hex8(zlibCrc32(t.data));
          }
        }
        json = JSON.stringify(parsed);
      }
    } catch {
      // Not JSON: left as it is (the reader must refuse it).
    }
    raw.metadata[key] = textEdit ? textEdit(key, json) : json;
  }
  raw.metadata.checksum = specMetadataChecksum(raw.metadata);
}

export function rawWrite(raw: RawContainer): Uint8Array {
  return writeSafetensors(raw.tensors, raw.metadata);
}

/** `bytes` with `edit` applied to its parts and every checksum recomputed. */
export function resealed(bytes: Uint8Array, edit: (raw: RawContainer) => void, textEdit?: (key: string, json: string) => string): Uint8Array {
  const raw = rawRead(bytes);
  edit(raw);
  reseal(raw, textEdit);
  return rawWrite(raw);
}

/** Parses, edits and re-serializes the description of matrix `name` (checksums are resealed later). */
export function editDescription(raw: RawContainer, name: string, edit: (description: Record<string, unknown>) => void): void {
  const key = `matrix.${name}`;
  const description = JSON.parse(raw.metadata[key] as string) as Record<string, unknown>;
  edit(description);
  raw.metadata[key] = JSON.stringify(description);
}

// ─── Mutations ──────────────────────────────────────────────────────────────────────────────────

type ByteMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'append'; bytes: number[] }
  | { kind: 'headerLength'; delta: number };

const HOSTILE_VALUES: unknown[] = [
  0, 1, -1, 2, 3, 7, 8, 1.5, 0.1, 64, 65, 2 ** 16, 2 ** 30, 2 ** 30 + 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e300, -0,
  // Rotation lengths around version 3's two-window rotations (rows 257 and 260 of the corpus).
  256, 257, 260, 264, 320, 1024, 2 ** 32 - 1,
  '1', '0', '18446744073709551615', '18446744073709551616', '-1', '01', '', 'none', 'hadamard', 'haar', 'rtn', 'gptq', 'E8', 'D3', 'Z',
  null, true, false, [], {}, [1, 2], { kind: 'nvfp4' }, { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 64, beta: 64 },
];

const HOSTILE_WORDS = [0, 1, 2, 0xf, 0xd8, 0xff, 0xffff, 0x10000, 0x7f800000, 0xff800000, 0x7fc00000, 0x5f800000, 0x7f7fffff, 0x80000000, 0xffffffff];

type ResealedEdit =
  | { kind: 'field'; entry: number; key: number; value: number; nested: boolean }
  | { kind: 'dropField'; entry: number; key: number }
  | { kind: 'addField'; entry: number; value: number }
  | { kind: 'word'; tensor: number; at: number; value: number }
  | { kind: 'dataFlip'; tensor: number; at: number; bit: number }
  | { kind: 'reshape'; tensor: number; grow: boolean }
  | { kind: 'dropTensor'; tensor: number }
  | { kind: 'extraTensor' }
  | { kind: 'metadata'; which: number }
  | { kind: 'spacing'; entry: number };

const METADATA_EDITS: ((raw: RawContainer) => void)[] = [
  (r) => (r.metadata.format_version = '2'),
  (r) => (r.metadata.format_version = '1'), // v2: E8 decodes with one key (a variant); v3: two windows refused
  (r) => (r.metadata.format_version = '3'), // v1: E8 decodes with two keys (a variant); v2: nothing changes
  (r) => (r.metadata.format_version = '4'),
  (r) => (r.metadata.format_version = '0'),
  (r) => (r.metadata.format_version = '01'),
  (r) => (r.metadata.format_version = ' 1'),
  (r) => (r.metadata.format = 'lattice-matmul.quantized2'),
  (r) => delete r.metadata.format,
  (r) => delete r.metadata.matrices,
  (r) => (r.metadata.surprise = 'x'),
  (r) => (r.metadata['user.added'] = 'fine'), // a valid variant
  (r) => (r.metadata.matrices = JSON.stringify((JSON.parse(r.metadata.matrices as string) as string[]).reverse())), // valid: order
  (r) => (r.metadata.matrices = JSON.stringify((JSON.parse(r.metadata.matrices as string) as string[]).slice(1))),
  (r) => (r.metadata.matrices = JSON.stringify([...(JSON.parse(r.metadata.matrices as string) as string[]), 'ghost'])),
  (r) => (r.metadata.matrices = (r.metadata.matrices as string).replace(',', ', ')),
  (r) => (r.metadata['matrix.ghost'] = '{}'),
];

const resealedEditArb: fc.Arbitrary<ResealedEdit> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('field' as const), entry: fc.nat(), key: fc.nat(), value: fc.nat(), nested: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dropField' as const), entry: fc.nat(), key: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addField' as const), entry: fc.nat(), value: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('word' as const), tensor: fc.nat(), at: fc.nat(), value: fc.constantFrom(...HOSTILE_WORDS) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('dataFlip' as const), tensor: fc.nat(), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reshape' as const), tensor: fc.nat(), grow: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dropTensor' as const), tensor: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('extraTensor' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('metadata' as const), which: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('spacing' as const), entry: fc.nat() }) },
);

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0x00, 0xff, 0x20, 0x22, 0x2c, 0x30, 0x31, 0x39, 0x5c, 0x7b, 0x7d, 0x80) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('headerLength' as const), delta: fc.integer({ min: -16, max: 16 }) }) },
);

/** One fuzz case: a corpus file, then either resealed edits or byte mutations. */
export type ContainerFuzzCase =
  | { readonly base: number; readonly kind: 'bytes'; readonly mutations: ByteMutation[] }
  | { readonly base: number; readonly kind: 'resealed'; readonly edits: ResealedEdit[] };

export const containerFuzzCaseArb: fc.Arbitrary<ContainerFuzzCase> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ base: fc.nat(), kind: fc.constant('bytes' as const), mutations: fc.array(byteMutationArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 5, arbitrary: fc.record({ base: fc.nat(), kind: fc.constant('resealed' as const), edits: fc.array(resealedEditArb, { minLength: 1, maxLength: 2 }) }) },
);

function applyByteMutation(file: Uint8Array, m: ByteMutation): Uint8Array {
  const n = file.byteLength;
  switch (m.kind) {
    case 'flip': {
      const out = file.slice();
      out[m.at % n] = (out[m.at % n] as number) ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      const out = file.slice();
      out[m.at % n] = m.value;
      return out;
    }
    case 'truncate':
      return file.slice(0, m.keep % n);
    case 'insert': {
      const at = m.at % (n + 1);
      return Uint8Array.from([...file.subarray(0, at), ...m.bytes, ...file.subarray(at)]);
    }
    case 'delete': {
      const at = m.at % n;
      return Uint8Array.from([...file.subarray(0, at), ...file.subarray(at + m.count)]);
    }
    case 'append':
      return Uint8Array.from([...file, ...m.bytes]);
    case 'headerLength': {
      if (n < 8 || m.delta === 0) return file;
      const out = file.slice();
      const view = new DataView(out.buffer);
      view.setUint32(0, (view.getUint32(0, true) + m.delta) >>> 0, true);
      return out;
    }
  }
}

function pick<T>(list: readonly T[], index: number): T | undefined {
  return list.length === 0 ? undefined : list[index % list.length];
}

function applyResealedEdit(raw: RawContainer, e: ResealedEdit): ((key: string, json: string) => string) | undefined {
  const names = (JSON.parse(raw.metadata.matrices ?? '[]') as string[]).filter((n) => raw.metadata[`matrix.${n}`] !== undefined);
  const tensorNames = [...raw.tensors.keys()];
  switch (e.kind) {
    case 'field':
    case 'dropField':
    case 'addField': {
      const name = pick(names, e.entry);
      if (name === undefined) return undefined;
      editDescription(raw, name, (d) => {
        if (e.kind === 'addField') {
          d[`extra${e.value % 3}`] = HOSTILE_VALUES[e.value % HOSTILE_VALUES.length];
          return;
        }
        // Nested edits reach the scheme's fields (and the tensors' checksum map, which the reseal repairs).
        let target = d;
        if (e.kind === 'field' && e.nested && typeof d.scheme === 'object' && d.scheme !== null) {
          target = d.scheme as Record<string, unknown>;
          if (typeof target.overload === 'object' && target.overload !== null && e.value % 2 === 0) target = target.overload as Record<string, unknown>;
        }
        const keys = Object.keys(target).filter((k) => k !== 'tensors');
        const key = pick(keys, e.key);
        if (key === undefined) return;
        if (e.kind === 'dropField') delete target[key];
        else target[key] = HOSTILE_VALUES[e.value % HOSTILE_VALUES.length];
      });
      return undefined;
    }
    case 'word':
    case 'dataFlip': {
      const t = raw.tensors.get(pick(tensorNames, e.tensor) ?? '');
      if (t === undefined || t.data.byteLength === 0) return undefined;
      if (e.kind === 'dataFlip') {
        t.data[e.at % t.data.byteLength] = (t.data[e.at % t.data.byteLength] as number) ^ (1 << e.bit);
      } else if (t.data.byteLength >= 4) {
        new DataView(t.data.buffer, t.data.byteOffset).setUint32(4 * ((e.at % (t.data.byteLength / 4)) | 0), e.value, true);
      } else {
        t.data[e.at % t.data.byteLength] = e.value & 0xff;
      }
      return undefined;
    }
    case 'reshape': {
      const name = pick(tensorNames, e.tensor);
      const t = name === undefined ? undefined : raw.tensors.get(name);
      if (t === undefined || t.shape.length === 0) return undefined;
      const rowBytes = t.data.byteLength / Math.max(1, t.shape[0] as number);
      if (!Number.isInteger(rowBytes) || rowBytes === 0) return undefined;
      const rows = Math.max(0, (t.shape[0] as number) + (e.grow ? 1 : -1));
      const data = new Uint8Array(rows * rowBytes);
      data.set(t.data.subarray(0, data.byteLength));
      raw.tensors.set(name as string, { dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data });
      return undefined;
    }
    case 'dropTensor': {
      const name = pick(tensorNames, e.tensor);
      if (name !== undefined) raw.tensors.delete(name);
      return undefined;
    }
    case 'extraTensor':
      raw.tensors.set(`${names[0] ?? 'x'}.extra`, { dtype: 'U32', shape: [1], data: new Uint8Array(4) });
      return undefined;
    case 'metadata':
      (METADATA_EDITS[e.which % METADATA_EDITS.length] as (raw: RawContainer) => void)(raw);
      return undefined;
    case 'spacing': {
      const name = pick(names, e.entry);
      return (key, json) => (key === `matrix.${name}` ? json.replace('":', '": ') : json);
    }
  }
}

/** The bytes of a fuzz case. */
export function containerFuzzCaseBytes(c: ContainerFuzzCase, corpus: readonly Uint8Array[]): Uint8Array {
  const base = corpus[c.base % corpus.length] as Uint8Array;
  if (c.kind === 'bytes') return c.mutations.reduce(applyByteMutation, base);
  const raw = rawRead(base);
  let textEdit: ((key: string, json: string) => string) | undefined;
  for (const e of c.edits) textEdit = applyResealedEdit(raw, e) ?? textEdit;
  reseal(raw, textEdit);
  return rawWrite(raw);
}

// ─── The property ───────────────────────────────────────────────────────────────────────────────

/** What a fuzz run saw. */
export interface ContainerFuzzCounts {
  tried: number;
  refused: number;
  acceptedIdentical: number;
  /** Accepted resealed edits that make a different valid container (e.g. a user key added). */
  acceptedVariant: number;
  silentWrong: number;
  /** Accepted containers with a matrix whose product matmulAT refused as beyond f32 (counted, not a failure). */
  productsRefused: number;
  /** Per mutation family: tried and refused. */
  byKind: Record<string, { tried: number; refused: number }>;
  /** Refusals by the first words after the matrix name, for the report. */
  reasons: Record<string, number>;
  slowestMs: number;
  /** Largest allocation while reading, in bytes per byte of the file. */
  largestAllocationRatio: number;
  failures: string[];
}

export function emptyContainerFuzzCounts(): ContainerFuzzCounts {
  return { tried: 0, refused: 0, acceptedIdentical: 0, acceptedVariant: 0, silentWrong: 0, productsRefused: 0, byKind: {}, reasons: {}, slowestMs: 0, largestAllocationRatio: 0, failures: [] };
}

/** Longest a case may take. */
export const CONTAINER_HANG_MS = 2000;

/** Largest allocation while reading: 32 bytes per file byte (1-bit weight-only codes as Int32Array), plus 4 KiB. */
function allocationLimit(fileBytes: number): number {
  return 32 * fileBytes + 4096;
}

function finiteArray(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) return false;
  return true;
}

/**
 * Every matrix of an accepted container decodes to finite values, and its product with itself is
 * finite or refused by matmulAT's own range check (the library's policy for every quantized matrix).
 */
function decodesFinite(container: QuantizedContainer, counts: ContainerFuzzCounts): string | undefined {
  for (const entry of container.entries) {
    if (entry.kind === 'weight-only') {
      if (!finiteArray(entry.matrix.decode().data)) return `${entry.name}: decode() not finite`;
      continue;
    }
    if (!finiteArray(dequantize(entry.matrix).data)) return `${entry.name}: dequantize not finite`;
    try {
      if (!finiteArray(matmulAT(entry.matrix, entry.matrix).data)) return `${entry.name}: matmulAT not finite`;
    } catch (error) {
      if (!(error instanceof LatticeMatmulError && /beyond the f32 range/.test(error.message))) throw error;
      counts.productsRefused++;
    }
  }
  return undefined;
}

function reasonOf(message: string): string {
  const rules: [RegExp, string][] = [
    [/^safetensors/, 'safetensors framing'],
    [/metadata is corrupted|is corrupted: its checksum|"checksum" must be/, 'checksum'],
    [/not a lattice-matmul|format_version|newer/, 'format or version'],
    [/canonical/, 'non-canonical'],
    [/metadata key|"matrices"|listed in/, 'metadata keys'],
    [/tensor .* is (U|I|F)|is missing|belongs to no matrix|lists a tensor/, 'tensor shapes'],
    [/description field|description is not valid|description must be|invalid scheme|unknown description|length is|keptLength|tensorScale|needs an? [a-z]+ (lattice |or nvfp4 )?scheme/, 'description fields'],
    [/code .* not below|of the last block of column|not a symmetric|scale index|rank|long escape|explicit escape|escape bits mark|ranks mark|long escapes mark|padding|unused bits/, 'codes and escapes'],
    [/norm|mean|gain|scale|beyond the container's limit|columnScales|rowScales/, 'scales and norms'],
    [/code width|widths|input feature|rotation|method/, 'weight-only checks'],
  ];
  for (const [pattern, reason] of rules) if (pattern.test(message.replace(/^quantized container: (matrix "[^"]*": )?/, ''))) return reason;
  return `other: ${message.slice(0, 80)}`;
}

/** Runs one case; returns a failure description, or undefined. */
export function runContainerFuzzCase(
  c: ContainerFuzzCase,
  corpus: readonly Uint8Array[],
  originals: readonly Uint8Array[],
  counts: ContainerFuzzCounts,
  probe: AllocationProbe,
): string | undefined {
  const bytes = containerFuzzCaseBytes(c, corpus);
  const family = c.kind === 'bytes' ? (c.mutations[0] as ByteMutation).kind : `resealed ${(c.edits[0] as ResealedEdit).kind}`;
  counts.tried++;
  const tally = (counts.byKind[family] ??= { tried: 0, refused: 0 });
  tally.tried++;
  const started = performance.now();
  let problem: string | undefined;
  try {
    const { result: container, largest } = probe.measure(() => readQuantizedContainer(bytes));
    counts.largestAllocationRatio = Math.max(counts.largestAllocationRatio, largest / bytes.byteLength);
    if (largest > allocationLimit(bytes.byteLength)) problem = `allocated ${largest} bytes reading a ${bytes.byteLength}-byte file`;
    problem ??= decodesFinite(container, counts);
    if (problem === undefined) {
      const again = writeQuantizedContainer(
        container.entries.map((e) => ({ name: e.name, matrix: e.matrix })),
        container.metadata,
      );
      const original = originals[c.base % originals.length] as Uint8Array;
      const identical = again.length === original.length && again.every((v, i) => v === original[i]);
      if (identical) counts.acceptedIdentical++;
      else if (c.kind === 'resealed') counts.acceptedVariant++;
      else problem = `a ${family} mutation was accepted as a different container`;
    }
  } catch (error) {
    if (error instanceof LatticeMatmulError) {
      counts.refused++;
      tally.refused++;
      const reason = reasonOf(error.message);
      counts.reasons[reason] = (counts.reasons[reason] ?? 0) + 1;
    } else {
      problem = `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
    }
  }
  const elapsed = performance.now() - started;
  counts.slowestMs = Math.max(counts.slowestMs, elapsed);
  if (problem === undefined && elapsed > CONTAINER_HANG_MS) problem = `took ${elapsed.toFixed(0)} ms`;
  if (problem !== undefined) {
    counts.silentWrong++;
    if (counts.failures.length < 10) counts.failures.push(`${problem} (case ${JSON.stringify(c)})`);
  }
  return problem;
}

/** The corpus written by the library (the originals) and the list of their bytes. */
export function containerFuzzCorpus(): Uint8Array[] {
  return containerCorpus().map((c) => writeQuantizedContainer(c.entries, c.metadata));
}

/** Options of `runContainerFuzz`. */
export interface ContainerFuzzOptions {
  readonly seed: number;
  /** fast-check cases per batch. */
  readonly runs: number;
  /** Keep running batches (seeds seed, seed + 1, …) until this many minutes have passed. */
  readonly minutes?: number;
  /**
   * Also flip every bit of the first `exhaustiveBytes` bytes of each corpus file (the whole file when
   * larger), and truncate each file at every length.
   */
  readonly exhaustiveBytes?: number;
  readonly onBatch?: (counts: ContainerFuzzCounts, seed: number) => void;
}

/**
 * Runs the property: optional exhaustive single-bit flips, then `runs` fast-check cases per batch.
 *
 * @example
 * const counts = runContainerFuzz({ seed: 1, runs: 10_000 });
 * console.log(counts.tried, counts.refused, counts.acceptedIdentical, counts.silentWrong);
 */
export function runContainerFuzz(options: ContainerFuzzOptions): ContainerFuzzCounts {
  const corpus = containerFuzzCorpus();
  const counts = emptyContainerFuzzCounts();
  const probe = new AllocationProbe();
  // Build every lazily cached table before measuring allocations.
  for (const bytes of corpus) readQuantizedContainer(bytes);
  probe.install();
  try {
    if (options.exhaustiveBytes !== undefined) {
      corpus.forEach((file, base) => {
        const limit = Math.min(file.byteLength, options.exhaustiveBytes as number);
        for (let at = 0; at < limit; at++) {
          for (let bit = 0; bit < 8; bit++) runContainerFuzzCase({ base, kind: 'bytes', mutations: [{ kind: 'flip', at, bit }] }, corpus, corpus, counts, probe);
        }
        for (let keep = 0; keep < file.byteLength; keep++) runContainerFuzzCase({ base, kind: 'bytes', mutations: [{ kind: 'truncate', keep }] }, corpus, corpus, counts, probe);
      });
      // Tallied as their own families.
      counts.byKind['exhaustive flip'] = counts.byKind.flip ?? { tried: 0, refused: 0 };
      counts.byKind['exhaustive truncate'] = counts.byKind.truncate ?? { tried: 0, refused: 0 };
      delete counts.byKind.flip;
      delete counts.byKind.truncate;
    }
    const deadline = options.minutes === undefined ? 0 : Date.now() + options.minutes * 60_000;
    let seed = options.seed;
    do {
      fc.assert(
        fc.property(containerFuzzCaseArb, (c) => {
          runContainerFuzzCase(c, corpus, corpus, counts, probe);
          return true; // failures are counted, not thrown: the report lists them
        }),
        { seed, numRuns: options.runs },
      );
      options.onBatch?.(counts, seed);
      seed++;
    } while (Date.now() < deadline);
  } finally {
    probe.uninstall();
  }
  return counts;
}
