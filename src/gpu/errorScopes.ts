import { LatticeMatmulError } from '../errors.js';

/*
 * Per-call error isolation and the device-loss policy.
 *
 * WebGPU error scopes belong to the device, not to a call: an error goes to the scope on top of the
 * device's stack *at the moment the failing API call is made*, and `popErrorScope` pops whatever is on
 * top. Two async calls whose push … pop spans overlap therefore catch each other's errors and pop each
 * other's scopes (measured before this module serialized them: of 50 overlapping calls with 10 invalid
 * ones, 8 invalid calls resolved with all-zero results and 7 valid ones rejected).
 *
 * So every **section** (`withValidation`) owns the device exclusively: a per-device promise chain
 * (`WeakMap<GPUDevice, …>`) runs the sections of this library one at a time, and each section's
 * push scopes → record/submit → await completion or readback → pop scopes happens inside it.
 *
 * THE RULE (no AsyncLocalStorage in browsers, so sections are not re-entrant):
 * - Only outermost entry points open a section: `withValidation`, and what is built on it
 *   (`runAndRead` and the kernels' convenience functions, `timeGpuWork`, `readBufferExclusive`, the
 *   engine's and the quantizer's public methods).
 * - Inside a section's `work`, call only lock-free primitives: `dispatch…` functions, `createBuffer`,
 *   `uploadToBuffer`, `readBuffer`, `recordReadback`, `submitAndConfirm`, `GpuScratch`. Calling any
 *   entry point from inside `work` (awaiting it) would wait for the section that is waiting for it: a
 *   deadlock. A call made while `work` runs synchronously is detected and refused with a
 *   `LatticeMatmulError`; one made after an `await` inside `work` cannot be told apart from an
 *   independent concurrent call and deadlocks, hence the rule.
 * - `readBuffer` outside any section still never resolves with data that the GPU did not copy (it
 *   checks its own submission, see buffers.ts), but a failure of it can land in the error scope of
 *   a section running at the same time; outside sections use `readBufferExclusive`.
 *
 * What stays outside this module's control: GPU work and error scopes of the *application* on the
 * same device. An error of the application's own calls made while one of our sections is pending
 * lands in our scope (our call then rejects, naming that error), and an application that pushes or
 * pops its own scopes while our section is pending unbalances our push/pop pairs (our errors go to
 * its scope; we may pop its scope, or find the stack empty, which we report). Results stay safe
 * even then: `runAndRead` and `readBuffer` confirm on the GPU that their submission ran before they
 * return data (a rejected submission never reads as zeros).
 *
 * Device loss: once `device.lost` resolves, every pending section on that device (waiting for its
 * turn or running) and every later one rejects with a `GpuDeviceLostError` carrying the reason and
 * message of the `GPUDeviceLostInfo`, instead of an empty `AbortError` from `mapAsync` or a hang. A new
 * device has its own state and works normally.
 */

/**
 * The error of every call of this library on a lost device (a `LatticeMatmulError`). `reason` and
 * `lostMessage` are WebGPU's `GPUDeviceLostInfo`; after a loss, request a new device and create new
 * engines on it.
 *
 * @example
 * try {
 *   await engine.matmulAT(qa, qb);
 * } catch (error) {
 *   if (error instanceof GpuDeviceLostError) context = await requestGpuDevice(); // start over
 *   else throw error;
 * }
 */
export class GpuDeviceLostError extends LatticeMatmulError {
  override readonly name: string = 'GpuDeviceLostError';
  /** `GPUDeviceLostInfo.reason`: 'destroyed' after `device.destroy()`, else 'unknown'. */
  readonly reason: GPUDeviceLostReason;
  /** `GPUDeviceLostInfo.message` (the driver's explanation). */
  readonly lostMessage: string;

  constructor(deviceLabel: string, info: GPUDeviceLostInfo, what: string) {
    super(
      `${what}: the WebGPU device ${deviceLabel ? `"${deviceLabel}" ` : ''}was lost (reason: ${info.reason}): ` +
        `${(info.message || '(no message)').replace(/\.+$/, '')}. Every call on a lost device fails; request a new device ` +
        '(requestGpuDevice, or requestNodeGpuDevice in Node) and create new engines on it.',
    );
    this.reason = info.reason;
    this.lostMessage = info.message;
  }
}

/** What this module knows about one device. */
interface DeviceState {
  /** Set once `device.lost` has resolved. */
  lost: GPUDeviceLostInfo | undefined;
  /** Called once when the device is lost (pending sections and waits), then cleared. */
  readonly lostListeners: Set<(info: GPUDeviceLostInfo) => void>;
  /** Resolves when the last section queued so far has finished (the promise-chain mutex). */
  tail: Promise<void>;
  /** Sections whose `work` is executing synchronously right now (nesting detection). */
  synchronousDepth: number;
  /** `what` of the section holding the device, for messages. */
  holder: string | undefined;
}

const states = /*#__PURE__*/ new WeakMap<GPUDevice, DeviceState>();

/**
 * How long a failed GPU operation (a rejected `mapAsync`) waits for `device.lost` before it is
 * reported as a plain failure: Dawn rejects pending maps with an empty `AbortError` at about the same
 * time as it resolves `device.lost`, and the loss is the better explanation.
 */
const LOSS_GRACE_MS = 250;

function stateOf(device: GPUDevice): DeviceState {
  let state = states.get(device);
  if (state === undefined) {
    checkIsDevice(device);
    const created: DeviceState = {
      lost: undefined,
      lostListeners: new Set(),
      tail: Promise.resolve(),
      synchronousDepth: 0,
      holder: undefined,
    };
    states.set(device, created);
    void device.lost.then(
      (info) => {
        created.lost = info;
        const listeners = [...created.lostListeners];
        created.lostListeners.clear();
        for (const listener of listeners) listener(info);
      },
      () => undefined, // a `lost` promise that rejects (not a WebGPU behaviour) is ignored
    );
    state = created;
  }
  return state;
}

/**
 * Refuses, on a device's first use by the library, what is not a GPUDevice: above all the context
 * `requestGpuDevice()` / `requestNodeGpuDevice()` return, which functions that take a device were
 * given instead of its `.device` and then failed with "Cannot read properties of undefined".
 */
export function checkIsDevice(device: unknown): void {
  const candidate = device as { readonly lost?: { readonly then?: unknown } } | null;
  if (typeof candidate === 'object' && candidate !== null && typeof candidate.lost?.then === 'function') return;
  throw new LatticeMatmulError(
    isGpuContext(device)
      ? 'expected a GPUDevice, got the context requestGpuDevice() / requestNodeGpuDevice() returns: pass its .device'
      : `expected a GPUDevice, got ${device === null ? 'null' : typeof device === 'object' ? 'an object without GPUDevice.lost' : typeof device}`,
  );
}

/** Whether `value` is the context `requestGpuDevice()` returns ({ device, features, limits, … }), not a GPUDevice. */
export function isGpuContext(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'device' in value && 'features' in value && 'limits' in value && !('createBuffer' in value);
}

/**
 * Starts watching `device.lost` (idempotent). `requestGpuDevice` calls it for every device it
 * creates; a device from elsewhere is watched from its first use by this library.
 */
export function watchDeviceLoss(device: GPUDevice): void {
  stateOf(device);
}

/**
 * Whether `device` was lost (destroyed, or lost by the driver), as far as this library has seen:
 * `device.lost` resolves asynchronously, so right after `device.destroy()` this is still `false`
 * for a moment; calls made in that moment reject with the loss all the same.
 *
 * @example
 * if (isDeviceLost(context.device)) context = await requestGpuDevice();
 */
export function isDeviceLost(device: GPUDevice): boolean {
  return stateOf(device).lost !== undefined;
}

/**
 * Throws a `GpuDeviceLostError` for `what` when `device` is known to be lost.
 *
 * @example
 * throwIfDeviceLost(device, 'reading C'); // at the start of a lock-free primitive
 */
export function throwIfDeviceLost(device: GPUDevice, what: string): void {
  const { lost } = stateOf(device);
  if (lost !== undefined) throw new GpuDeviceLostError(device.label, lost, what);
}

/**
 * The error to report for a failed GPU operation (`error`, e.g. a `mapAsync` rejection) of `what`:
 * a `GpuDeviceLostError` when the device is lost (waiting briefly for `device.lost`, which may
 * resolve just after the operation failed), else a `LatticeMatmulError` naming `what` and the
 * original error, which it keeps as `cause`.
 *
 * @example
 * try { await staging.mapAsync(GPUMapMode.READ); } catch (error) { throw await gpuFailure(device, 'reading C', error); }
 */
export async function gpuFailure(device: GPUDevice, what: string, error: unknown): Promise<LatticeMatmulError> {
  const state = stateOf(device);
  if (state.lost === undefined) await waitForLoss(state, LOSS_GRACE_MS);
  if (state.lost !== undefined) return new GpuDeviceLostError(device.label, state.lost, what);
  if (error instanceof LatticeMatmulError) return error;
  return new LatticeMatmulError(`${what} failed: ${describeError(error)}`, { cause: error });
}

/**
 * Runs `work` inside WebGPU `validation` and `out-of-memory` error scopes and throws a
 * `LatticeMatmulError` naming `what` if either caught an error, so a bad bind group, an invalid
 * shader, a destroyed buffer in a submission or an allocation failure surfaces where it happened
 * instead of as an uncaptured-error log.
 *
 * The section is exclusive per device: sections of this library on one device run one at a time
 * (in call order), so overlapping async calls never see each other's errors. It is **not
 * re-entrant**: inside `work` use only lock-free primitives (`dispatch…`, `readBuffer`,
 * `recordReadback`, `submitAndConfirm`), never another `withValidation` or an entry point built on it
 * (see the rule at the top of this file). On a lost device it rejects with a `GpuDeviceLostError`,
 * also while waiting for its turn or while `work` is pending.
 *
 * Work that the *application* submits on the same device while `work` is pending is caught too,
 * and application error scopes pushed meanwhile unbalance ours: that is outside this library's
 * control. Failures reported through promises (`mapAsync`) reject those promises and are not scope
 * errors. An exception of `work` propagates unchanged unless a scope caught an error (the scope's
 * message wins, with the exception as `cause`) or the device was lost.
 *
 * @example
 * await withValidation(device, 'matmul f32', async () => {
 *   const encoder = device.createCommandEncoder({ label: 'matmul f32' });
 *   dispatchMatmulF32(device, encoder, scratch, args);
 *   await submitAndConfirm(device, encoder, 'matmul f32');
 * });
 */
export async function withValidation<T>(device: GPUDevice, what: string, work: () => T | Promise<T>): Promise<T> {
  const state = stateOf(device);
  throwIfDeviceLost(device, what);
  if (state.synchronousDepth > 0) {
    throw new LatticeMatmulError(
      `withValidation('${what}') was called from inside the section '${state.holder ?? '?'}' on the same device. ` +
        'Sections are exclusive per device and not re-entrant, so this would deadlock: call it after the outer ' +
        'section, or use the lock-free primitives (dispatch…, readBuffer, recordReadback) inside it.',
    );
  }
  const previous = state.tail;
  let release: () => void = () => undefined;
  state.tail = new Promise<void>((resolve) => {
    release = resolve;
  });
  try {
    await untilLost(device, state, what, previous);
    return await untilLost(device, state, what, runScoped(device, state, what, work));
  } finally {
    release();
  }
}

/**
 * Runs `fn` synchronously, marked as part of the current section's work on `device`, so that an
 * entry point it calls by mistake is refused instead of deadlocking. For callbacks that a section
 * invokes after an `await` (e.g. `timeGpuWork`'s `record`).
 *
 * @example
 * const cleanup = insideSection(device, 'timing', () => record(encoder));
 */
export function insideSection<T>(device: GPUDevice, what: string, fn: () => T): T {
  const state = stateOf(device);
  const holder = state.holder;
  state.synchronousDepth++;
  state.holder = what;
  try {
    return fn();
  } finally {
    state.synchronousDepth--;
    state.holder = holder;
  }
}

async function runScoped<T>(device: GPUDevice, state: DeviceState, what: string, work: () => T | Promise<T>): Promise<T> {
  throwIfDeviceLost(device, what);
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let outcome: { readonly value: T } | { readonly error: unknown };
  try {
    // Only the synchronous part of `work` is marked; see the rule at the top of the file.
    outcome = { value: await insideSection(device, what, work) };
  } catch (error) {
    outcome = { error };
  }
  // Pop both scopes whatever happened, innermost first, so the device's scope stack stays balanced.
  let scopeErrors: (GPUError | null)[];
  try {
    scopeErrors = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
  } catch (popError) {
    throw new LatticeMatmulError(
      `${what}: the device's error-scope stack was unbalanced (${describeError(popError)}): code outside ` +
        'lattice-matmul pushed or popped error scopes on this device while the call was pending',
      { cause: 'error' in outcome ? outcome.error : popError },
    );
  }
  // A lost device resolves pops with null and drops submitted work silently: the loss decides.
  if (state.lost !== undefined) throw new GpuDeviceLostError(device.label, state.lost, what);
  const messages = scopeErrors
    .filter((error): error is GPUError => error !== null)
    .map((error) => `${error.constructor.name}: ${error.message}`);
  if (messages.length > 0) {
    throw new LatticeMatmulError(
      `WebGPU error in ${what}: ${messages.join('\n')}`,
      'error' in outcome ? { cause: outcome.error } : undefined,
    );
  }
  if ('error' in outcome) {
    // A failure that the loss explains (e.g. an empty AbortError from mapAsync) is reported as the loss.
    if (!(outcome.error instanceof LatticeMatmulError)) throw await gpuFailureOrOriginal(device, state, what, outcome.error);
    throw outcome.error;
  }
  return outcome.value;
}

/** The loss if the device turns out to be lost within the grace period, else `error` itself. */
async function gpuFailureOrOriginal(device: GPUDevice, state: DeviceState, what: string, error: unknown): Promise<unknown> {
  if (!isDomAbort(error)) return error;
  await waitForLoss(state, LOSS_GRACE_MS);
  return state.lost !== undefined ? new GpuDeviceLostError(device.label, state.lost, what) : error;
}

/** WebGPU reports aborted operations (mapAsync on a lost device, a destroyed mapping) as DOMException AbortError. */
function isDomAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'OperationError');
}

/** `promise`, or a `GpuDeviceLostError` as soon as the device is lost (whichever comes first). */
function untilLost<T>(device: GPUDevice, state: DeviceState, what: string, promise: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (state.lost !== undefined) {
      // Keep a late rejection of `promise` handled.
      promise.catch(() => undefined);
      reject(new GpuDeviceLostError(device.label, state.lost, what));
      return;
    }
    const onLost = (info: GPUDeviceLostInfo): void => reject(new GpuDeviceLostError(device.label, info, what));
    state.lostListeners.add(onLost);
    promise.then(
      (value) => {
        state.lostListeners.delete(onLost);
        resolve(value);
      },
      (error: unknown) => {
        state.lostListeners.delete(onLost);
        reject(error);
      },
    );
  });
}

/** Resolves when the device is lost or after `ms` milliseconds, whichever comes first. */
function waitForLoss(state: DeviceState, ms: number): Promise<void> {
  if (state.lost !== undefined) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      state.lostListeners.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    state.lostListeners.add(done);
  });
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message || '(no message)'}`;
  return String(error);
}
