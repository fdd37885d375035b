import { check, describeValue } from '../errors.js';

/*
 * Strict option objects: a misspelled key ({ center: true } written { centre: true }) must not be
 * ignored silently, so every options object of the public API is checked against its list of keys.
 */

/** A non-null, non-array object (what options and scheme objects must be). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Levenshtein distance, for "did you mean" suggestions (short strings only). */
function editDistance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0] as number;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j] as number;
      previous[j] = Math.min(above + 1, (previous[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return previous[b.length] as number;
}

/** The known key closest to `key`, when it is close enough to be a likely typo. */
export function suggestion(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** No constraint when `K` names every key of `T`; else a type that names the missing keys in the compiler's error. */
type NamesEveryKey<T, K extends readonly PropertyKey[]> = [Exclude<keyof T, K[number]>] extends [never] ? unknown : { readonly missingKeys: Exclude<keyof T, K[number]> };

/**
 * Refuses own keys of `object` that are not in `known`, naming the closest known key. `known` is
 * typed as keys of `object`'s type, so a list naming a key that type lacks does not compile.
 *
 * @example
 * const options: { scheme?: string; center?: boolean } = JSON.parse('{ "centre": true }');
 * checkKnownKeys(options, ['scheme', 'center'], 'quantize options'); // throws: … did you mean 'center'?
 */
export function checkKnownKeys<T extends object>(object: T, known: readonly (keyof T & string)[], what: string): void {
  const knownNames: readonly string[] = known;
  for (const key of Object.keys(object)) {
    if (knownNames.includes(key)) continue;
    const close = suggestion(key, knownNames);
    check(false, () => `${what}: unknown option '${key}'${close === undefined ? '' : ` (did you mean '${close}'?)`}; known: ${known.join(', ')}`);
  }
}

/**
 * An options object: a plain object (else "`what` must be an object, got …") whose keys are all
 * `known` (`checkKnownKeys`: `{ token: 5 }` must not silently record 1 token). Returns it, typed as
 * the caller's options. `known` must name exactly the keys of the options' type, or the call does
 * not compile: a key the type lacks (a typo, a renamed option) or a key of the type it leaves out (a
 * new option refused as unknown at run time) is a type error naming the key.
 */
export function checkOptionsObject<T extends object, const K extends readonly (keyof T & string)[]>(options: T, known: K & NamesEveryKey<T, K>, what: string): T {
  check(isPlainObject(options), () => `${what} must be an object, got ${describeValue(options)}`);
  checkKnownKeys(options, known, what);
  return options;
}

/**
 * An optional boolean option: `undefined` (the caller applies its default) or true / false. Anything
 * else ('no', 1) is refused rather than coerced: `rescale: 'no'` must not mean true.
 */
export function checkOptionalBoolean(value: unknown, name: string): boolean | undefined {
  check(value === undefined || typeof value === 'boolean', () => `${name} must be true or false, got ${describeValue(value)}`);
  return value as boolean | undefined;
}
