/**
 * Every error this library throws on purpose is a `LatticeMatmulError`, so an application can tell a
 * bad argument (or an adapter that cannot run a kernel) from a bug. The message names the argument
 * and the value that was refused.
 */
export class LatticeMatmulError extends Error {
  override readonly name: string = 'LatticeMatmulError';
}

/** Throws a `LatticeMatmulError` with `message` unless `condition` holds. */
export function check(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new LatticeMatmulError(typeof message === 'string' ? message : message());
}

/** The error of an aborted operation: "`what` was aborted", with the signal's reason when it has one. */
export function abortedError(signal: AbortSignal, what: string): LatticeMatmulError {
  return new LatticeMatmulError(`${what} was aborted${signal.reason === undefined ? '' : `: ${textOf(signal.reason)}`}`);
}

/**
 * `work`, or an `abortedError` as soon as `signal` aborts, whichever comes first. Work that finishes
 * after the abort is handed to `discard` (its result reaches nobody: free what it owns), and its
 * failure is dropped. For calls that hold a resource while they wait (a device's queue of sections).
 *
 * @example
 * const q = await unlessAborted(section, signal, 'GPU quantize', (late) => late.destroy());
 */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | null, what: string, discard: (late: T) => void): Promise<T> {
  if (signal === null) return work;
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      reject(abortedError(signal, what));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (aborted) discard(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!aborted) reject(error);
      },
    );
  });
}

/**
 * Refuses a value outside `choices`, naming them all: "`what` must be 'a', 'b' or null, got …". For
 * options whose values are declared once, as a const array beside their type, so a new value is added
 * in one place.
 *
 * @example
 * export const DOT_PATHS = ['packed', 'plain'] as const;
 * export type DotPath = (typeof DOT_PATHS)[number];
 * checkOneOf(options.dotPath, DOT_PATHS, 'dotPath'); // "dotPath must be 'packed' or 'plain', got \"fast\""
 */
export function checkOneOf<const T extends string | number | null>(value: unknown, choices: readonly T[], what: string): asserts value is T {
  if ((choices as readonly unknown[]).includes(value)) return;
  const names = choices.map((choice) => (typeof choice === 'string' ? `'${choice}'` : String(choice)));
  const listed = names.length === 1 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names.at(-1) ?? ''}`;
  throw new LatticeMatmulError(`${what} must be ${listed}, got ${describeValue(value)}`);
}

/**
 * Refuses a label that is not a string: WebGPU labels reach native code (Dawn in Node aborts the
 * process on a symbol or an object without a prototype, beyond any try/catch).
 */
export function checkLabel(label: unknown, what: string): asserts label is string {
  check(typeof label === 'string', () => `${what}: label must be a string, got ${describeValue(label)}`);
}

/** A positive integer (sizes, counts), or a clear error naming `what`. */
export function checkPositiveInteger(value: number, what: string): void {
  check(Number.isInteger(value) && value > 0, () => `${what} must be a positive integer, got ${describeValue(value)}`);
}

/**
 * `text` as a JSON string literal with every control character escaped: JSON escapes the C0 controls
 * but leaves DEL and the C1 controls (0x9b is an 8-bit CSI) as they are, so those are written as
 * \\uXXXX too. For names from files (tensors, matrices) in messages that reach a terminal.
 *
 * @example
 * quoted('evil\x1b[31m\u009b2J'); // '"evil\\u001b[31m\\u009b2J"'
 */
export function quoted(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f]/g, unicodeEscape);
}

/** A UTF-16 code unit as the six characters \\uXXXX (JSON's and JavaScript's escape). */
export function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

// A typed array's name and size from its internal slots: its own prototype (hence `constructor` and
// `byteLength`) may be anything, even null.
const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const typedArrayTag = Object.getOwnPropertyDescriptor(typedArrayPrototype, Symbol.toStringTag)?.get;
const typedArrayBytes = Object.getOwnPropertyDescriptor(typedArrayPrototype, 'byteLength')?.get;
const dataViewBytes = Object.getOwnPropertyDescriptor(DataView.prototype, 'byteLength')?.get;

/** "1 tensor", "2 tensors": `count` and `noun`, plural (an s) but for 1, for messages and labels. */
export function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * A short description of any value for an error message. Never throws (a symbol in a template string
 * would, and so would `String` of an object without a prototype, a typed array whose prototype was
 * removed, or a revoked proxy) and never prints a whole array or object.
 */
export function describeValue(value: unknown): string {
  // Quoting shows control characters and quotes in hostile names instead of printing them.
  if (typeof value === 'string') return quoted(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value !== 'object') return String(value); // number, boolean
  try {
    if (Array.isArray(value)) return `an array of length ${value.length}`;
    if (ArrayBuffer.isView(value)) {
      const name = typedArrayTag?.call(value) as string | undefined; // undefined for a DataView
      const bytes = (name === undefined ? dataViewBytes : typedArrayBytes)?.call(value) as number;
      return `a ${name ?? 'DataView'} of ${bytes} bytes`;
    }
  } catch {
    // A revoked proxy throws on Array.isArray.
  }
  return 'an object';
}

/** `String(value)` where it does not throw (an Error, a DOMException, a string), else `describeValue`. */
function textOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    return describeValue(value);
  }
}
