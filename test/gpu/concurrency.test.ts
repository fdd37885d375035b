import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, type Matrix } from '../../src/matrix.js';
import {
  BufferUsage,
  checkBufferUsable,
  createBuffer,
  createBufferWithData,
  readBuffer,
  readBufferExclusive,
  STORAGE_USAGE,
  SubmissionChecks,
  submitAndConfirm,
  uploadToBuffer,
} from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { dispatchMatmulF32, matmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { timeGpuWork } from '../../src/gpu/timing.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * Per-call error isolation (src/gpu/errorScopes.ts): many overlapping calls of this library on one
 * device, valid and invalid mixed, with operands destroyed by other tasks while the calls run. Every
 * valid call must return the CPU reference's values, every invalid one must reject with a
 * LatticeMatmulError, and no call may resolve with wrong values ("silent wrong"). The counts go to
 * docs/RELIABILITY.md: `npx vitest run test/gpu/concurrency.test.ts` prints them.
 *
 * The matrices hold small integers (|x| ≤ 4, n ≤ 9), so every f32 sum is exact and a correct answer
 * equals the float64 reference entry for entry: any deviation is a wrong answer, not rounding.
 */

const noGpu = await gpuUnavailableReason();

/** Fixed seed of the plan (fast-check), so a failure reproduces. */
const PLAN_SEED = 20250617;
/** Overlapping calls in the mixed run. */
const CALLS = 1200;

/** What a call is, and so what it must do. */
type CaseKind =
  | 'valid: matmulF32 on CPU matrices'
  | 'valid: runAndRead with caller buffers'
  | 'valid: readBufferExclusive'
  | 'valid: readBuffer inside withValidation'
  | 'valid: timeGpuWork'
  | 'invalid: input destroyed before the call'
  | 'invalid: input too small'
  | 'invalid: input without STORAGE usage'
  | 'invalid: input still mapped'
  | 'invalid: output destroyed before the call'
  | 'invalid: output without COPY_SRC'
  | 'invalid: CPU shapes disagree'
  | 'invalid: read of a destroyed buffer'
  | 'invalid: timeGpuWork on a destroyed buffer'
  | 'racy: own input destroyed by another task'
  | 'racy: shared input destroyed by another task';

type Expectation = 'valid' | 'invalid' | 'racy';

function expectationOf(kind: CaseKind): Expectation {
  return kind.startsWith('valid') ? 'valid' : kind.startsWith('invalid') ? 'invalid' : 'racy';
}

/** When another task destroys a racy case's operand. */
type Trigger =
  | { readonly kind: 'microtask' }
  | { readonly kind: 'timeout'; readonly ms: number }
  | { readonly kind: 'after call'; readonly index: number };

interface CaseSpec {
  readonly kind: CaseKind;
  readonly n: number;
  readonly aCols: number;
  readonly bCols: number;
  readonly dataSeed: number;
  readonly trigger: Trigger;
  /** Which shared operand a shared racy case uses. */
  readonly shared: number;
}

const SHARED_OPERANDS = 12;
const SHARED_N = 8;
const SHARED_COLS = 8;

const weighted = <T,>(value: T, weight: number) => ({ arbitrary: fc.constant(value), weight });
const kindArbitrary: fc.Arbitrary<CaseKind> = fc.oneof(
  weighted<CaseKind>('valid: matmulF32 on CPU matrices', 8),
  weighted<CaseKind>('valid: runAndRead with caller buffers', 8),
  weighted<CaseKind>('valid: readBufferExclusive', 3),
  weighted<CaseKind>('valid: readBuffer inside withValidation', 3),
  weighted<CaseKind>('valid: timeGpuWork', 1),
  weighted<CaseKind>('invalid: input destroyed before the call', 4),
  weighted<CaseKind>('invalid: input too small', 2),
  weighted<CaseKind>('invalid: input without STORAGE usage', 3),
  weighted<CaseKind>('invalid: input still mapped', 2),
  weighted<CaseKind>('invalid: output destroyed before the call', 2),
  weighted<CaseKind>('invalid: output without COPY_SRC', 1),
  weighted<CaseKind>('invalid: CPU shapes disagree', 1),
  weighted<CaseKind>('invalid: read of a destroyed buffer', 2),
  weighted<CaseKind>('invalid: timeGpuWork on a destroyed buffer', 1),
  weighted<CaseKind>('racy: own input destroyed by another task', 6),
  weighted<CaseKind>('racy: shared input destroyed by another task', 6),
);

const planArbitrary = fc.array(
  fc.record({
    kind: kindArbitrary,
    // n = 1 and sizes that are not multiples of the 64-wide tile are the edge cases here.
    n: fc.integer({ min: 1, max: 9 }),
    aCols: fc.integer({ min: 1, max: 9 }),
    bCols: fc.integer({ min: 1, max: 9 }),
    dataSeed: fc.integer({ min: 1, max: 0x7fffffff }),
    trigger: fc.oneof(
      fc.constant<Trigger>({ kind: 'microtask' }),
      fc.integer({ min: 0, max: 40 }).map((ms): Trigger => ({ kind: 'timeout', ms })),
      fc.integer({ min: 0, max: CALLS - 1 }).map((index): Trigger => ({ kind: 'after call', index })),
    ),
    shared: fc.integer({ min: 0, max: SHARED_OPERANDS - 1 }),
  }),
  { minLength: CALLS, maxLength: CALLS },
);

/** Small-integer matrix from a seed (mulberry32), so sums are exact in f32. */
function integerMatrix(rows: number, cols: number, seed: number): Matrix {
  let state = seed >>> 0;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = (((t ^ (t >>> 14)) >>> 0) % 9) - 4;
  }
  return { rows, cols, data };
}

function sameValues(got: Float32Array, expected: Float32Array): boolean {
  return got.length === expected.length && got.every((x, i) => x === expected[i]);
}

/** How a call ended. */
type Outcome = 'answered correctly' | 'refused clearly' | 'silent wrong' | 'unclear error';

interface Tally {
  tried: number;
  refusedClearly: number;
  answeredCorrectly: number;
  silentWrong: number;
  unclearError: number;
  /** Outcomes that contradict the expectation (a valid call refused, an invalid one answered). */
  readonly mismatches: string[];
  readonly byKind: Map<CaseKind, Record<Outcome, number>>;
}

function newTally(): Tally {
  return { tried: 0, refusedClearly: 0, answeredCorrectly: 0, silentWrong: 0, unclearError: 0, mismatches: [], byKind: new Map() };
}

function record(tally: Tally, index: number, kind: CaseKind, outcome: Outcome, detail: string): void {
  tally.tried++;
  if (outcome === 'answered correctly') tally.answeredCorrectly++;
  else if (outcome === 'refused clearly') tally.refusedClearly++;
  else if (outcome === 'silent wrong') tally.silentWrong++;
  else tally.unclearError++;
  const counts = tally.byKind.get(kind) ?? { 'answered correctly': 0, 'refused clearly': 0, 'silent wrong': 0, 'unclear error': 0 };
  counts[outcome]++;
  tally.byKind.set(kind, counts);
  const expectation = expectationOf(kind);
  const ok =
    outcome === 'answered correctly'
      ? expectation !== 'invalid'
      : outcome === 'refused clearly'
        ? expectation !== 'valid'
        : false;
  if (!ok && tally.mismatches.length < 20) tally.mismatches.push(`#${index} ${kind}: ${outcome}: ${detail}`);
}

function report(title: string, tally: Tally): void {
  const lines = [
    `${title}: tried ${tally.tried}, refused clearly ${tally.refusedClearly}, answered correctly ${tally.answeredCorrectly}, ` +
      `silent wrong ${tally.silentWrong}, unclear error ${tally.unclearError}`,
  ];
  for (const [kind, counts] of [...tally.byKind].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(
      `  ${kind}: correct ${counts['answered correctly']}, refused ${counts['refused clearly']}, ` +
        `silent wrong ${counts['silent wrong']}, unclear ${counts['unclear error']}`,
    );
  }
  console.log(lines.join('\n'));
}

describe.skipIf(noGpu !== undefined)('per-call GPU error isolation', () => {
  const suite = contextOnTestDevice({ label: 'concurrency test device' });
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
    // Destroyed-buffer submissions outside a section (the control below) reach uncapturederror: keep the log short.
    device.addEventListener('uncapturederror', (event) => event.preventDefault());
  });

  /** Test-owned buffers, destroyed at the end of each test. */
  const created: GPUBuffer[] = [];
  const make = (label: string, data: ArrayBufferView, usage = STORAGE_USAGE): GPUBuffer => {
    const buffer = createBufferWithData(device, label, data, usage);
    created.push(buffer);
    return buffer;
  };
  const destroyCreated = (): void => {
    for (const buffer of created.splice(0)) buffer.destroy();
  };

  /** C = AᵀB through runAndRead on caller-owned operand buffers. */
  const productOnBuffers = (a: GPUBuffer, b: GPUBuffer, n: number, aCols: number, bCols: number, output?: GPUBuffer) =>
    runAndRead(device, 'concurrency AᵀB', 4 * aCols * bCols, (run) => {
      const c = output ?? run.storage('concurrency C', 4 * aCols * bCols);
      dispatchMatmulF32(device, run.encoder, run.scratch, { a, b, c, n, aCols, bCols });
      return c;
    });

  it(`${CALLS} overlapping calls, valid and invalid, with operands destroyed mid-run: none answers wrong`, async () => {
    const plan = fc.sample(planArbitrary, { seed: PLAN_SEED, numRuns: 1 })[0];
    if (plan === undefined) throw new Error('fast-check produced no plan');

    const sharedMatrices = Array.from({ length: SHARED_OPERANDS }, (_, s) => integerMatrix(SHARED_N, SHARED_COLS, 1000 + s));
    const sharedBuffers = sharedMatrices.map((m, s) => make(`shared operand ${s}`, m.data));
    const settled: (() => void)[] = [];
    const whenSettled = plan.map(() => new Promise<void>((resolve) => settled.push(resolve)));
    const destroyLater = (buffer: GPUBuffer, trigger: Trigger): void => {
      if (trigger.kind === 'microtask') queueMicrotask(() => buffer.destroy());
      else if (trigger.kind === 'timeout') setTimeout(() => buffer.destroy(), trigger.ms);
      else void whenSettled[trigger.index]?.then(() => buffer.destroy());
    };
    // Each shared operand is destroyed once, by the first racy shared case that names it.
    const sharedDestroyed = new Set<number>();

    /** Starts case `spec`; resolves to the values to compare with `expected`. */
    const start = (spec: CaseSpec): { promise: Promise<Float32Array | 'timing'>; expected: Float32Array | 'timing' } => {
      const { n, aCols, bCols, dataSeed } = spec;
      const a = integerMatrix(n, aCols, dataSeed);
      const b = integerMatrix(n, bCols, dataSeed ^ 0x5bd1e995);
      const product = matmulATExact(a, b).data;
      switch (spec.kind) {
        case 'valid: matmulF32 on CPU matrices':
          return { promise: matmulF32(device, a, b).then((c) => c.data), expected: product };
        case 'valid: runAndRead with caller buffers':
          return {
            promise: productOnBuffers(make('A', a.data), make('B', b.data), n, aCols, bCols).then((bytes) => new Float32Array(bytes)),
            expected: product,
          };
        case 'valid: readBufferExclusive': {
          const buffer = make('read source', a.data);
          return { promise: readBufferExclusive(device, buffer, 4 * n * aCols).then((bytes) => new Float32Array(bytes)), expected: a.data };
        }
        case 'valid: readBuffer inside withValidation': {
          const buffer = make('read source', b.data);
          return {
            promise: withValidation(device, 'read in section', async () => new Float32Array(await readBuffer(device, buffer, 4 * n * bCols))),
            expected: b.data,
          };
        }
        case 'valid: timeGpuWork':
        case 'invalid: timeGpuWork on a destroyed buffer': {
          const aBuffer = make('timed A', a.data);
          const bBuffer = make('timed B', b.data);
          const cBuffer = make('timed C', new Float32Array(aCols * bCols));
          if (spec.kind === 'invalid: timeGpuWork on a destroyed buffer') aBuffer.destroy();
          const promise = timeGpuWork(
            device,
            (encoder) => {
              const scratch = new GpuScratch(device);
              dispatchMatmulF32(device, encoder, scratch, { a: aBuffer, b: bBuffer, c: cBuffer, n, aCols, bCols });
              return () => scratch.destroy();
            },
            { timestampQuery: false, warmup: 0, samples: 1, label: 'timed AᵀB' },
          ).then((timing): 'timing' => {
            if (!(Number.isFinite(timing.medianMs) && timing.medianMs >= 0)) throw new Error(`bad timing ${timing.medianMs}`);
            return 'timing';
          });
          return { promise, expected: 'timing' };
        }
        case 'invalid: input destroyed before the call': {
          const aBuffer = make('A (destroyed)', a.data);
          aBuffer.destroy();
          return { promise: productOnBuffers(aBuffer, make('B', b.data), n, aCols, bCols).then((x) => new Float32Array(x)), expected: product };
        }
        case 'invalid: input too small': {
          // B holds bCols columns, the call claims one more.
          const bBuffer = make('B (one column short)', b.data);
          return { promise: productOnBuffers(make('A', a.data), bBuffer, n, aCols, bCols + 1).then((x) => new Float32Array(x)), expected: product };
        }
        case 'invalid: input without STORAGE usage': {
          const bBuffer = make('B (no STORAGE)', b.data, BufferUsage.UNIFORM | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
          return { promise: productOnBuffers(make('A', a.data), bBuffer, n, aCols, bCols).then((x) => new Float32Array(x)), expected: product };
        }
        case 'invalid: input still mapped': {
          const aBuffer = device.createBuffer({ label: 'A (mapped)', size: 4 * n * aCols, usage: STORAGE_USAGE, mappedAtCreation: true });
          new Float32Array(aBuffer.getMappedRange()).set(a.data);
          created.push(aBuffer);
          return { promise: productOnBuffers(aBuffer, make('B', b.data), n, aCols, bCols).then((x) => new Float32Array(x)), expected: product };
        }
        case 'invalid: output destroyed before the call': {
          const cBuffer = make('C (destroyed)', new Float32Array(aCols * bCols));
          cBuffer.destroy();
          return {
            promise: productOnBuffers(make('A', a.data), make('B', b.data), n, aCols, bCols, cBuffer).then((x) => new Float32Array(x)),
            expected: product,
          };
        }
        case 'invalid: output without COPY_SRC': {
          const cBuffer = make('C (no COPY_SRC)', new Float32Array(aCols * bCols), BufferUsage.STORAGE);
          return {
            promise: productOnBuffers(make('A', a.data), make('B', b.data), n, aCols, bCols, cBuffer).then((x) => new Float32Array(x)),
            expected: product,
          };
        }
        case 'invalid: CPU shapes disagree':
          return { promise: matmulF32(device, a, integerMatrix(n + 1, bCols, dataSeed)).then((c) => c.data), expected: product };
        case 'invalid: read of a destroyed buffer': {
          const buffer = make('read source (destroyed)', a.data);
          buffer.destroy();
          return { promise: readBufferExclusive(device, buffer, 4 * n * aCols).then((x) => new Float32Array(x)), expected: a.data };
        }
        case 'racy: own input destroyed by another task': {
          const aBuffer = make('A (destroyed by another task)', a.data);
          const promise = productOnBuffers(aBuffer, make('B', b.data), n, aCols, bCols).then((x) => new Float32Array(x));
          destroyLater(aBuffer, spec.trigger);
          return { promise, expected: product };
        }
        case 'racy: shared input destroyed by another task': {
          const shared = sharedMatrices[spec.shared] as Matrix;
          const sharedBuffer = sharedBuffers[spec.shared] as GPUBuffer;
          const bShared = integerMatrix(SHARED_N, bCols, dataSeed);
          const promise = productOnBuffers(sharedBuffer, make('B', bShared.data), SHARED_N, SHARED_COLS, bCols).then(
            (x) => new Float32Array(x),
          );
          if (!sharedDestroyed.has(spec.shared)) {
            sharedDestroyed.add(spec.shared);
            destroyLater(sharedBuffer, spec.trigger);
          }
          return { promise, expected: matmulATExact(shared, bShared).data };
        }
      }
    };

    const tally = newTally();
    const startedAt = performance.now();
    await Promise.all(
      plan.map(async (spec, index) => {
        let outcome: Outcome;
        let detail = '';
        try {
          // Starting can throw synchronously (host checks); that is a refusal like any other.
          const { promise, expected } = start(spec);
          const got = await promise;
          const right = expected === 'timing' ? got === 'timing' : got !== 'timing' && sameValues(got, expected);
          outcome = right ? 'answered correctly' : 'silent wrong';
          if (!right && got !== 'timing') detail = `got [${Array.from(got.slice(0, 6)).join(', ')}…]`;
        } catch (error) {
          outcome = error instanceof LatticeMatmulError ? 'refused clearly' : 'unclear error';
          detail = error instanceof Error ? `${error.name}: ${error.message.slice(0, 200)}` : String(error);
        } finally {
          settled[index]?.();
        }
        record(tally, index, spec.kind, outcome, detail);
      }),
    );
    const seconds = (performance.now() - startedAt) / 1000;
    destroyCreated();
    report(`overlapping calls (seed ${PLAN_SEED}, ${seconds.toFixed(1)} s)`, tally);

    expect(tally.tried).toBe(CALLS);
    expect(tally.silentWrong).toBe(0);
    expect(tally.unclearError).toBe(0);
    expect(tally.mismatches).toEqual([]);
    // The plan exercises all three expectations, and the racy ones both ways.
    const racy = [...tally.byKind].filter(([kind]) => expectationOf(kind) === 'racy');
    expect(racy.some(([, counts]) => counts['answered correctly'] > 0)).toBe(true);
    expect(racy.some(([, counts]) => counts['refused clearly'] > 0)).toBe(true);
  });

  it('control: the same kind of overlap with unserialized error scopes does answer wrong on this driver', async () => {
    // The pre-fix pattern (push scopes, submit, read back, pop), without the section and without the
    // submission check. If this ever stops producing silent wrong answers, the driver orders scopes
    // differently and the mixed run above no longer proves much.
    const naive = async (aBuffer: GPUBuffer, bBuffer: GPUBuffer, n: number, cols: number): Promise<Float32Array> => {
      device.pushErrorScope('validation');
      const scratch = new GpuScratch(device);
      const c = createBuffer(device, 'naive C', 4 * cols * cols, STORAGE_USAGE);
      const staging = device.createBuffer({ label: 'naive staging', size: 4 * cols * cols, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
      try {
        const encoder = device.createCommandEncoder({ label: 'naive' });
        dispatchMatmulF32(device, encoder, scratch, { a: aBuffer, b: bBuffer, c, n, aCols: cols, bCols: cols });
        encoder.copyBufferToBuffer(c, 0, staging, 0, 4 * cols * cols);
        device.queue.submit([encoder.finish()]);
        await staging.mapAsync(GPUMapMode.READ);
        const data = new Float32Array(staging.getMappedRange().slice(0));
        const error = await device.popErrorScope();
        if (error) throw new LatticeMatmulError(error.message);
        return data;
      } finally {
        scratch.destroy();
        c.destroy();
        staging.destroy();
      }
    };
    const tally = newTally();
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const a = integerMatrix(8, 8, 7 + i);
        const aBuffer = make('naive A', a.data);
        // Not symmetric under i ↔ 59 − i, the order in which the naive calls pop each other's scopes.
        const invalid = i % 7 === 3;
        if (invalid) aBuffer.destroy();
        const kind: CaseKind = invalid ? 'invalid: input destroyed before the call' : 'valid: runAndRead with caller buffers';
        try {
          const got = await naive(aBuffer, aBuffer, 8, 8);
          const right = sameValues(got, matmulATExact(a, a).data);
          record(tally, i, kind, right ? 'answered correctly' : 'silent wrong', '');
        } catch (error) {
          record(tally, i, kind, error instanceof LatticeMatmulError ? 'refused clearly' : 'unclear error', String(error));
        }
      }),
    );
    destroyCreated();
    report('control without the section', tally);
    expect(tally.silentWrong + tally.mismatches.length).toBeGreaterThan(0);
  });

  it('sections on one device run one at a time, in call order', async () => {
    const events: string[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        withValidation(device, `section ${i}`, async () => {
          events.push(`start ${i}`);
          await new Promise((resolve) => setTimeout(resolve, 5 - i)); // later sections would finish first if they overlapped
          await device.queue.onSubmittedWorkDone();
          events.push(`end ${i}`);
        }),
      ),
    );
    expect(events).toEqual([0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]));
  });

  it('an entry point called from inside a section is refused instead of deadlocking', async () => {
    const a = integerMatrix(4, 3, 1);
    // The nested promises are settled (caught) at once, so a refusal is not an unhandled rejection.
    const settle = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => 'resolved', (error: unknown) => error);
    let inner: Promise<unknown> | undefined;
    const outer = await runAndRead(device, 'outer run', 4 * 3, (run) => {
      inner = settle(matmulF32(device, a, a)); // a nested entry point: must be refused, not queued behind 'outer run'
      return run.upload('outer data', a.data.subarray(0, 3));
    });
    expect(Array.from(new Float32Array(outer))).toEqual(Array.from(a.data.subarray(0, 3)));
    const innerError = await inner;
    expect(innerError).toBeInstanceOf(LatticeMatmulError);
    expect(String(innerError)).toMatch(/inside the section 'outer run'.*deadlock/s);

    let innerFromTiming: Promise<unknown> | undefined;
    await timeGpuWork(
      device,
      () => {
        innerFromTiming ??= settle(readBufferExclusive(device, make('x', a.data), 4));
      },
      { timestampQuery: false, warmup: 1, samples: 1, label: 'outer timing' },
    );
    const timingError = await innerFromTiming;
    expect(timingError).toBeInstanceOf(LatticeMatmulError);
    expect(String(timingError)).toMatch(/inside the section 'outer timing'/);
    destroyCreated();
  });

  it('host checks name the argument: usage flags, mapped buffers, sizes', async () => {
    const data = new Float32Array([1, 2, 3, 4]);
    const noCopySource = make('no copy source', data, BufferUsage.STORAGE);
    await expect(readBuffer(device, noCopySource, 16)).rejects.toThrow(
      /readBuffer: buffer: buffer "no copy source" lacks COPY_SRC usage \(it was created with STORAGE\)/,
    );
    const noCopyDestination = make('no copy destination', data, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
    expect(() => uploadToBuffer(device, noCopyDestination, data)).toThrow(/uploadToBuffer: buffer: .* lacks COPY_DST usage/);
    const mapped = device.createBuffer({ label: 'still mapped', size: 16, usage: STORAGE_USAGE, mappedAtCreation: true });
    created.push(mapped);
    await expect(readBuffer(device, mapped, 16)).rejects.toThrow(/"still mapped" is mapped; unmap it/);
    const target = make('target', data);
    expect(() => uploadToBuffer(device, target, new Float32Array(5))).toThrow(/cannot upload 20 bytes at offset 0 into a 16-byte buffer/);
    expect(() => uploadToBuffer(device, target, data, 2)).toThrow(/offset 2/);
    expect(() => checkBufferUsable(null as unknown as GPUBuffer, BufferUsage.STORAGE, 'matmul: A')).toThrow(/matmul: A must be a GPUBuffer/);
    expect(() => checkBufferUsable(target, BufferUsage.STORAGE | BufferUsage.INDIRECT, 'gemv: x')).toThrow(/gemv: x: .* lacks INDIRECT usage/);
    destroyCreated();
  });

  it('a rejected submission is detected without error scopes, even when the application holds the scope', async () => {
    const buffer = make('destroyed read source', new Float32Array([5, 6, 7, 8]));
    buffer.destroy();
    // The application's own scope swallows the validation error: our readBuffer still refuses.
    device.pushErrorScope('validation');
    await expect(readBuffer(device, buffer, 16)).rejects.toThrow(/rejected the submission/);
    const swallowed = await device.popErrorScope();
    expect(swallowed?.message).toMatch(/destroyed/);

    // submitAndConfirm: a valid submission resolves (and its work is done), a rejected one refuses.
    const a = make('confirm A', new Float32Array([1, 2, 3, 4]));
    const c = make('confirm C', new Float32Array(1));
    const scratch = new GpuScratch(device);
    try {
      await withValidation(device, 'confirm valid', async () => {
        const encoder = device.createCommandEncoder({ label: 'confirm valid' });
        dispatchMatmulF32(device, encoder, scratch, { a, b: a, c, n: 4, aCols: 1, bCols: 1 });
        await submitAndConfirm(device, encoder, 'confirm valid');
      });
      expect(Array.from(new Float32Array(await readBufferExclusive(device, c, 4)))).toEqual([30]);
      a.destroy();
      device.pushErrorScope('validation');
      const encoder = device.createCommandEncoder({ label: 'confirm destroyed' });
      dispatchMatmulF32(device, encoder, scratch, { a, b: a, c, n: 4, aCols: 1, bCols: 1 });
      await expect(submitAndConfirm(device, encoder, 'confirm destroyed')).rejects.toThrow(/confirm destroyed: WebGPU rejected submission 1 of 1/);
      expect((await device.popErrorScope())?.message).toMatch(/destroyed/);
    } finally {
      scratch.destroy();
    }

    // SubmissionChecks names the rejected one among several.
    const good = make('checks good', new Float32Array(4));
    const gone = make('checks gone', new Float32Array(4));
    const sink = make('checks sink', new Float32Array(4));
    gone.destroy();
    const checks = new SubmissionChecks(device, 'three submissions', 3);
    device.pushErrorScope('validation');
    try {
      for (const [i, source] of [good, gone, good].entries()) {
        const encoder = device.createCommandEncoder({ label: `submission ${i}` });
        encoder.copyBufferToBuffer(source, 0, sink, 0, 16);
        checks.mark(encoder, i);
        device.queue.submit([encoder.finish()]);
      }
      await expect(checks.verify()).rejects.toThrow(/three submissions: WebGPU rejected submission 2 of 3/);
    } finally {
      await device.popErrorScope();
      checks.destroy();
      destroyCreated();
    }
  });

  it('application error scopes pushed while our calls are pending cannot make them answer wrong', async () => {
    // Outside our control: the application pushes its own scope at some moment during our call and
    // pops it afterwards. Our push/pop pairs are then unbalanced (we may pop its scope, it pops one
    // of ours), so the error may go anywhere; the submission check still keeps every answer right.
    const tally = newTally();
    for (let i = 0; i < 24; i++) {
      const a = integerMatrix(8, 8, 40 + i);
      const aBuffer = make('A under an app scope', a.data);
      const invalid = i % 2 === 0;
      if (invalid) aBuffer.destroy();
      const kind: CaseKind = invalid ? 'invalid: input destroyed before the call' : 'valid: runAndRead with caller buffers';
      const pending = productOnBuffers(aBuffer, make('B', a.data), 8, 8, 8);
      const delay = i % 6; // 0: microtask; else setTimeout(delay − 1)
      const pushed = new Promise<void>((resolve) => {
        const push = (): void => {
          device.pushErrorScope('validation');
          resolve();
        };
        if (delay === 0) queueMicrotask(push);
        else setTimeout(push, delay - 1);
      });
      try {
        const got = new Float32Array(await pending);
        record(tally, i, kind, sameValues(got, matmulATExact(a, a).data) ? 'answered correctly' : 'silent wrong', '');
      } catch (error) {
        record(tally, i, kind, error instanceof LatticeMatmulError ? 'refused clearly' : 'unclear error', String(error));
      }
      await pushed;
      await device.popErrorScope().catch(() => null);
    }
    destroyCreated();
    report('application scopes interleaved', tally);
    expect(tally.silentWrong).toBe(0);
    expect(tally.unclearError).toBe(0);
    // Invalid calls are all refused; a valid one may be refused only by naming the app's interference.
    const invalidCounts = tally.byKind.get('invalid: input destroyed before the call');
    expect(invalidCounts?.['refused clearly']).toBe(12);
  });
});
