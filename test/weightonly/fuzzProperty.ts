import fc from 'fast-check';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { MAX_HAAR_N } from '../../src/weightonly/basis.js';
import { crc32 } from '../../src/format/crc32.js';
import { quantizeWeights, WeightOnlyQuantized } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';

/*
 * The fuzz property of the weight-only format (`WeightOnlyQuantized.deserialize`), shared by
 * test/weightonly/fuzz.test.ts (a fixed seed, ~12,000 cases, CI) and a longer-running script
 * (`runWeightOnlyFuzz({ seed, timeLimitMs })`).
 *
 * Every case starts from a valid file of a small corpus (every method, every rotation, row scales,
 * every code width 1 … 25, n = 1) and damages it:
 * - `flip`: one bit flipped (also exhaustively, every bit of two files);
 * - `truncate`: cut to a shorter length;
 * - `damage`: 1 … 8 bytes overwritten, sometimes bytes appended;
 * - `resealed`: 1 … 3 fields rewritten with values chosen to hit the reader's checks (sizes ± 1,
 *   0, 2^31, 2^32 − 1, MAX_HAAR_N ± 1, widths 0 / 25 / 26, NaN, ±Infinity, f32 max, 2^48, −0, …),
 *   optionally the tail cut, and then the checksum recomputed: what an attacker who knows the
 *   format can write.
 * What must hold, for each case:
 * - the reader either throws a `LatticeMatmulError` or returns a matrix (no other exception);
 * - damage without a recomputed checksum is never accepted unless the bytes decode to exactly the
 *   original (a "silent wrong" fails the property at once);
 * - a resealed file that is accepted is a valid matrix: `decode()` is finite everywhere and
 *   `serialize()` gives back exactly the bytes read (the format is canonical);
 * - reading and decoding take at most `maxCaseMs` (default 50 ms, the fastest of three timings for
 *   a case over 5 ms; the measured maximum is reported);
 * - typed-array allocations during reading and decoding stay within what the bytes justify:
 *   ≤ 128·length + 4 KB, plus 40·n² for the dense rotation's basis (n ≤ MAX_HAAR_N).
 */

/** One valid file of the corpus. */
export interface CorpusEntry {
  readonly name: string;
  readonly q: WeightOnlyQuantized;
  readonly bytes: Uint8Array;
}

let corpus: CorpusEntry[] | undefined;

/** The corpus of valid files (built once). */
export function fuzzCorpus(): readonly CorpusEntry[] {
  corpus ??= buildCorpus();
  return corpus;
}

function buildCorpus(): CorpusEntry[] {
  const entries: [string, WeightOnlyQuantized][] = [];
  entries.push(['rtn n=16 (no Σ_X)', quantizeWeights(gaussianMatrix(16, 12, 1), null, { method: 'rtn', step: 0.5 })]);
  const sigma24 = spreadSpectrumCovariance(24, 2, 2).sigma;
  entries.push(['gptq n=24 hadamard', quantizeWeights(gaussianMatrix(24, 10, 2), sigma24, { method: 'gptq', step: 0.25, rotate: true, seed: 5 })]);
  const sigma10 = spreadSpectrumCovariance(10, 2, 3).sigma;
  entries.push(['watersic n=10 haar rescaled', quantizeWeights(gaussianMatrix(10, 30, 3), sigma10, { method: 'watersic', step: 0.05, rotate: true, rescale: true, seed: 6 })]);
  const sigma33 = spreadSpectrumCovariance(33, 2, 4).sigma;
  entries.push(['watersic n=33 wide codes', quantizeWeights(gaussianMatrix(33, 9, 4), sigma33, { method: 'watersic', step: 1e-4 })]);
  entries.push(['widths 1…25', everyWidth()]);
  entries.push(['n=1 outputs=1', new WeightOnlyQuantized({ method: 'rtn', n: 1, outputs: 1, codes: new Int32Array([-3]), columnScales: new Float32Array([0.25]), rowScales: null, rotation: 'hadamard', seed: 1 })]);
  return entries.map(([name, q]) => ({ name, q, bytes: q.serialize() }));
}

/** n = 25, 3 outputs: input feature i has codes of exactly i + 1 bits, row scales. */
function everyWidth(): WeightOnlyQuantized {
  const n = 25;
  const outputs = 3;
  const rng = new Rng(11);
  const codes = new Int32Array(n * outputs);
  for (let i = 0; i < n; i++) {
    const half = 2 ** i;
    codes[i] = -half;
    codes[n + i] = half - 1;
    codes[2 * n + i] = Math.floor(rng.nextFloat() * 2 * half) - half;
  }
  const columnScales = Float32Array.from({ length: n }, (_, i) => 2 ** -i);
  return new WeightOnlyQuantized({ method: 'gptq', n, outputs, codes, columnScales, rowScales: new Float32Array([1, -0.5, 2]), rotation: 'none', seed: 0 });
}

/** Where each part of a version 2 file lies (from the matrix that wrote it). */
function regions(entry: CorpusEntry): Record<'header' | 'codes' | 'widths' | 'scales' | 'checksum', readonly [number, number]> {
  const { q, bytes } = entry;
  const codesEnd = 48 + 16 * q.packedCodes.rowVec4s * q.outputs;
  const widthsEnd = codesEnd + 4 * Math.ceil(q.n / 4);
  return {
    header: [8, 48],
    codes: [48, codesEnd],
    widths: [codesEnd, widthsEnd],
    scales: [widthsEnd, bytes.length - 4],
    checksum: [bytes.length - 4, bytes.length],
  };
}

const INTERESTING_U32 = [
  0, 1, 2, 3, 24, 25, 26, 255, 256, MAX_HAAR_N - 1, MAX_HAAR_N, MAX_HAAR_N + 1, 3000, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
  0xfffffffe, 0xffffffff, 0x7fc00000, 0x7f800000, 0xff800000, 0x7f7fffff, 0xff7fffff, 0x57800000, 0x58000000, 0x57800001,
  0x47800000, 0x47800001, 0xc7800001, 0x00000001, 0x3f800000, 0xbf800000,
];
const INTERESTING_U8 = [0, 1, 2, 7, 8, 24, 25, 26, 32, 128, 255];

/** One field rewrite of a resealed mutation; the value is resolved against the file at apply time. */
export interface FieldEdit {
  readonly region: 'header' | 'codes' | 'widths' | 'scales';
  readonly position: number;
  /** Interesting value (index), a random value, or the old value plus a small delta. */
  readonly value: { readonly interesting: number } | { readonly random: number } | { readonly delta: number };
}

/** A damage to one corpus file. */
export type Mutation =
  | { readonly kind: 'flip'; readonly blob: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly blob: number; readonly cut: number }
  | { readonly kind: 'damage'; readonly blob: number; readonly edits: readonly (readonly [number, number])[]; readonly append: readonly number[] }
  | { readonly kind: 'resealed'; readonly blob: number; readonly edits: readonly FieldEdit[]; readonly cut: number };

export type MutationKind = Mutation['kind'];

/** The fast-check arbitrary of mutations of the corpus files. */
export function mutationArbitrary(regionsOnly?: readonly FieldEdit['region'][]): fc.Arbitrary<Mutation> {
  const blob = fc.nat({ max: fuzzCorpus().length - 1 });
  const position = fc.nat();
  const fieldEdit: fc.Arbitrary<FieldEdit> = fc.record({
    region: fc.constantFrom(...(regionsOnly ?? (['header', 'header', 'codes', 'widths', 'scales'] as const))),
    position,
    value: fc.oneof(
      fc.record({ interesting: fc.nat() }),
      fc.record({ random: fc.nat({ max: 0xffffffff }) }),
      fc.record({ delta: fc.integer({ min: -3, max: 3 }) }),
    ),
  });
  const resealed = fc.record({
    kind: fc.constant('resealed' as const),
    blob,
    edits: fc.array(fieldEdit, { minLength: 1, maxLength: 3 }),
    cut: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }) }),
  });
  if (regionsOnly !== undefined) return resealed;
  return fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), blob, bit: position }),
    fc.record({ kind: fc.constant('truncate' as const), blob, cut: fc.integer({ min: 1, max: 1 << 16 }) }),
    fc.record({
      kind: fc.constant('damage' as const),
      blob,
      edits: fc.array(fc.tuple(position, fc.nat({ max: 255 })), { minLength: 1, maxLength: 8 }),
      append: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }) }),
    }),
    resealed,
  );
}

/** The damaged bytes of a mutation. */
export function applyMutation(mutation: Mutation): Uint8Array {
  const entry = fuzzCorpus()[mutation.blob] as CorpusEntry;
  const original = entry.bytes;
  switch (mutation.kind) {
    case 'flip': {
      const out = original.slice();
      const bit = mutation.bit % (8 * out.length);
      out[bit >>> 3] = (out[bit >>> 3] as number) ^ (1 << (bit & 7));
      return out;
    }
    case 'truncate':
      return original.slice(0, Math.max(0, original.length - 1 - (mutation.cut % original.length)));
    case 'damage': {
      const out = new Uint8Array(original.length + mutation.append.length);
      out.set(original);
      out.set(mutation.append, original.length);
      for (const [at, value] of mutation.edits) out[at % original.length] = value;
      return out;
    }
    case 'resealed': {
      const parts = regions(entry);
      const out = original.slice();
      const view = new DataView(out.buffer);
      for (const edit of mutation.edits) {
        const [start, end] = parts[edit.region];
        if (edit.region === 'widths') {
          const at = start + (edit.position % (end - start));
          out[at] = resolve(edit.value, out[at] as number, INTERESTING_U8, 0xff);
        } else {
          const at = start + 4 * (edit.position % ((end - start) / 4));
          view.setUint32(at, resolve(edit.value, view.getUint32(at, true), INTERESTING_U32, 0xffffffff), true);
        }
      }
      const sealed = out.slice(0, out.length - Math.min(mutation.cut, out.length - 4));
      new DataView(sealed.buffer).setUint32(sealed.length - 4, crc32(sealed, 0, sealed.length - 4), true);
      return sealed;
    }
  }
}

function resolve(value: FieldEdit['value'], old: number, interesting: readonly number[], mask: number): number {
  if ('interesting' in value) return interesting[value.interesting % interesting.length] as number;
  if ('random' in value) return value.random & mask;
  return (old + value.delta) & mask;
}

/** What happened to one case. */
export type Outcome = 'refused' | 'identical' | 'variant';

/** Tallies of a fuzz run. */
export interface FuzzReport {
  tried: number;
  /** Refused with a LatticeMatmulError. */
  refused: number;
  /** Accepted, and equal to the original in every field, bit for bit. */
  acceptedIdentical: number;
  /** Resealed files accepted as another valid matrix (finite decode, canonical bytes). */
  acceptedVariant: number;
  /** Damage without a recomputed checksum accepted as a different matrix: always 0 (the property fails otherwise). */
  silentWrong: number;
  byKind: Record<MutationKind | 'exhaustive flip', { tried: number; refused: number; acceptedIdentical: number; acceptedVariant: number }>;
  /** Refusals by the reader's reason (first words of the message). */
  reasons: Record<string, number>;
  /** Slowest case: reading and decoding, in ms (the fastest of three timings for a case over 5 ms). */
  maxMilliseconds: number;
  /** Cases slower than 5 ms in all three timings. */
  slowerThan5Ms: number;
  /** Largest typed-array allocation of a case, in bytes per byte of its file. */
  maxAllocationRatio: number;
}

export function emptyReport(): FuzzReport {
  const kind = () => ({ tried: 0, refused: 0, acceptedIdentical: 0, acceptedVariant: 0 });
  return {
    tried: 0, refused: 0, acceptedIdentical: 0, acceptedVariant: 0, silentWrong: 0,
    byKind: { flip: kind(), truncate: kind(), damage: kind(), resealed: kind(), 'exhaustive flip': kind() },
    reasons: {}, maxMilliseconds: 0, slowerThan5Ms: 0, maxAllocationRatio: 0,
  };
}

/** Options of {@link examine} and {@link runWeightOnlyFuzz}. */
export interface FuzzOptions {
  /** A case that takes longer (fastest of three timings) fails the property. Default 50 ms. */
  readonly maxCaseMs?: number;
}

/**
 * The property for one damaged file: throws (an Error naming the violation) when it does not hold,
 * else tallies the outcome into `report` and returns it.
 */
export function examine(
  original: CorpusEntry,
  bytes: Uint8Array,
  resealed: boolean,
  kind: keyof FuzzReport['byKind'],
  report: FuzzReport,
  options: FuzzOptions = {},
): Outcome {
  const maxCaseMs = options.maxCaseMs ?? 50;
  const read = () => {
    let decoded: Float32Array | undefined;
    const start = performance.now();
    const counted = countAllocations(() => {
      const q = WeightOnlyQuantized.deserialize(bytes);
      decoded = q.decode().data;
      return q;
    });
    return { ...counted, decoded, elapsed: performance.now() - start };
  };
  let attempt = read();
  // A slow case is timed twice more and the fastest time counts: garbage collection and other
  // processes on a shared machine pause single cases by tens of ms; a reader that really does too
  // much work is slow every time.
  let elapsed = attempt.elapsed;
  for (let retry = 0; retry < 2 && elapsed > 5; retry++) {
    attempt = read();
    elapsed = Math.min(elapsed, attempt.elapsed);
  }
  const { result, bytes: allocated, decoded } = attempt;
  let outcome: Outcome;
  if (!result.ok) {
    if (!(result.error instanceof LatticeMatmulError)) {
      throw new Error(`${kind} of '${original.name}': the reader threw ${String(result.error)} instead of a LatticeMatmulError`);
    }
    outcome = 'refused';
    const reason = reasonOf(result.error.message);
    report.reasons[reason] = (report.reasons[reason] ?? 0) + 1;
  } else {
    const q = result.value;
    const finite = (decoded as Float32Array).every(Number.isFinite);
    if (!finite) throw new Error(`${kind} of '${original.name}': accepted, and decode() is not finite`);
    if (sameMatrix(q, original.q)) {
      outcome = 'identical';
    } else if (!resealed) {
      report.silentWrong++;
      throw new Error(`${kind} of '${original.name}': damaged bytes were accepted as a different matrix (silent wrong)`);
    } else {
      outcome = 'variant';
    }
    const again = q.serialize();
    if (!(again.length === bytes.length && again.every((b, k) => b === bytes[k]))) {
      throw new Error(`${kind} of '${original.name}': accepted bytes are not canonical (serialize() differs)`);
    }
  }
  if (elapsed > maxCaseMs) throw new Error(`${kind} of '${original.name}': took ${elapsed.toFixed(1)} ms (limit ${maxCaseMs})`);
  const n = result.ok ? result.value.n : 0;
  const haar = result.ok && result.value.rotation === 'haar' ? 40 * n * n : 0;
  const budget = 128 * bytes.length + 4096 + haar;
  if (allocated > budget) {
    throw new Error(`${kind} of '${original.name}': allocated ${allocated} bytes for a ${bytes.length}-byte file (budget ${budget})`);
  }
  report.maxMilliseconds = Math.max(report.maxMilliseconds, elapsed);
  if (elapsed > 5) report.slowerThan5Ms++;
  report.maxAllocationRatio = Math.max(report.maxAllocationRatio, (allocated - haar) / Math.max(1, bytes.length));
  const tally = report.byKind[kind];
  report.tried++;
  tally.tried++;
  if (outcome === 'refused') {
    report.refused++;
    tally.refused++;
  } else if (outcome === 'identical') {
    report.acceptedIdentical++;
    tally.acceptedIdentical++;
  } else {
    report.acceptedVariant++;
    tally.acceptedVariant++;
  }
  return outcome;
}

/**
 * Runs the whole fuzz: every single-bit flip of the corpus files whose index is in
 * `exhaustiveBlobs`, then `runs` fast-check cases from `seed` (or as many as fit in `timeLimitMs`).
 * Throws on the first violation (fast-check reports the counterexample and its seed); returns the
 * tallies otherwise.
 *
 * @example
 * const report = runWeightOnlyFuzz({ seed: 42, runs: 1_000_000, timeLimitMs: 60_000 }); // a one-minute run
 */
export function runWeightOnlyFuzz(options: FuzzOptions & { seed: number; runs: number; timeLimitMs?: number; exhaustiveBlobs?: readonly number[] }): FuzzReport {
  const report = emptyReport();
  const entries = fuzzCorpus();
  for (const index of options.exhaustiveBlobs ?? []) {
    const entry = entries[index] as CorpusEntry;
    for (let bit = 0; bit < 8 * entry.bytes.length; bit++) {
      examine(entry, applyMutation({ kind: 'flip', blob: index, bit }), false, 'exhaustive flip', report, options);
    }
  }
  fc.assert(
    fc.property(mutationArbitrary(), (mutation) => {
      examine(entries[mutation.blob] as CorpusEntry, applyMutation(mutation), mutation.kind === 'resealed', mutation.kind, report, options);
    }),
    {
      seed: options.seed,
      numRuns: options.runs,
      ...(options.timeLimitMs === undefined ? {} : { interruptAfterTimeLimit: options.timeLimitMs, markInterruptAsFailure: false }),
    },
  );
  return report;
}

/**
 * `count` matrices read from resealed mutations of the corpus's codes and scales that the reader
 * accepted as matrices different from the original (deterministic from `seed`): inputs for GPU
 * tests that must hold for every accepted file.
 */
export function acceptedMutants(count: number, seed: number): WeightOnlyQuantized[] {
  const out: WeightOnlyQuantized[] = [];
  const candidates = fc.sample(mutationArbitrary(['codes', 'scales']), { seed, numRuns: 200 * count });
  for (const mutation of candidates) {
    if (out.length === count) break;
    try {
      const q = WeightOnlyQuantized.deserialize(applyMutation(mutation));
      if (!sameMatrix(q, (fuzzCorpus()[mutation.blob] as CorpusEntry).q)) out.push(q);
    } catch (error) {
      if (!(error instanceof LatticeMatmulError)) throw error;
    }
  }
  return out;
}

/** Equal in every field, scales bit for bit. */
export function sameMatrix(a: WeightOnlyQuantized, b: WeightOnlyQuantized): boolean {
  const bits = (x: Float32Array | null): Uint32Array | null => (x === null ? null : new Uint32Array(x.buffer, x.byteOffset, x.length));
  const equal = (x: ArrayLike<number> | null, y: ArrayLike<number> | null): boolean =>
    x === null || y === null ? x === y : x.length === y.length && Array.prototype.every.call(x, (v: number, k: number) => v === y[k]);
  return (
    a.method === b.method && a.n === b.n && a.outputs === b.outputs && a.rotation === b.rotation && a.seed === b.seed &&
    equal(a.codes, b.codes) && equal(bits(a.columnScales), bits(b.columnScales)) && equal(bits(a.rowScales), bits(b.rowScales))
  );
}

/** The reader's reason for a refusal, for the tallies. */
function reasonOf(message: string): string {
  const rules: [RegExp, string][] = [
    [/checksum/, 'checksum'],
    [/too short|bytes, its (version 1 )?header/, 'length'],
    [/magic/, 'magic'],
    [/version/, 'version'],
    [/must all be positive|more than one weight-only matrix/, 'sizes'],
    [/code width|widths|bits but its codes need|vec4/, 'code widths'],
    [/padding/, 'padding'],
    [/Scales\[|rowScales|columnScales/, 'scales'],
    [/rotation/, 'rotation'],
    [/method/, 'method'],
    [/flags|reserved/, 'flags'],
  ];
  for (const [pattern, reason] of rules) if (pattern.test(message)) return reason;
  return `other: ${message.slice(0, 60)}`;
}

const TYPED_ARRAYS = [
  'ArrayBuffer', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array',
] as const;

/**
 * Runs `fn` (synchronous) with the typed-array and ArrayBuffer constructors wrapped so that every
 * allocation they make is counted (`new X(length)`, `new X(arrayLike)`, `X.from(…)`; views of an
 * existing buffer and `slice` copies, which use the original constructor, are not), and restores
 * them afterwards.
 */
export function countAllocations<T>(fn: () => T): { result: { ok: true; value: T } | { ok: false; error: unknown }; bytes: number } {
  const globals = globalThis as unknown as Record<string, unknown>;
  const saved: [string, unknown][] = [];
  let bytes = 0;
  for (const name of TYPED_ARRAYS) {
    const original = globals[name] as new (...args: unknown[]) => object;
    saved.push([name, original]);
    globals[name] = new Proxy(original, {
      construct(target, args, newTarget) {
        const made = Reflect.construct(target, args, newTarget) as { byteLength: number };
        const first = args[0];
        const isView = first instanceof (saved[0]?.[1] as typeof ArrayBuffer);
        if (!isView) bytes += made.byteLength;
        return made;
      },
    });
  }
  try {
    return { result: { ok: true, value: fn() }, bytes };
  } catch (error) {
    return { result: { ok: false, error }, bytes };
  } finally {
    for (const [name, original] of saved) globals[name] = original;
  }
}
