/** Number formats of the page. */

/** Milliseconds as "840 ms", "2.31 s" or, from 999.5 s on, whole seconds ("1234 s"). */
export function formatTime(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  // The unit follows the rounded value: 999.7 ms is "1.00 s" (toPrecision(3) wrote "1.00e+3 ms").
  if (Number(ms.toPrecision(3)) < 1000) return `${ms.toPrecision(3)} ms`;
  const seconds = ms / 1000;
  // Likewise past 999.5 s, where toPrecision(3) wrote "1.00e+3 s": whole seconds.
  return Number(seconds.toPrecision(3)) < 1000 ? `${seconds.toPrecision(3)} s` : `${Math.round(seconds)} s`;
}

/** An error like 0.06128 or 3.1e-4, four significant digits. */
export function formatNmse(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return value >= 1e-3 ? value.toPrecision(4) : value.toExponential(3);
}

/** Bits per entry with three decimals. */
export function formatBits(value: number): string {
  return value.toFixed(3);
}

/** A signed number of bits ("+0.492", "−0.031"). */
export function formatSignedBits(value: number | null): string {
  if (value === null) return '—';
  const text = Math.abs(value).toFixed(3);
  return value < 0 ? `−${text}` : `+${text}`;
}

/** The prefixes of `formatRate`, largest first. */
const RATE_PREFIXES: ReadonlyArray<readonly [number, string]> = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/** A rate such as "12.4 M entries/s" (per second from a count and milliseconds). */
export function formatRate(count: number, ms: number, unit: string): string {
  if (ms <= 0) return '—';
  const perSecond = (count / ms) * 1000;
  // The prefix follows the value rounded to three digits: 999,999.99 entries/s (1,600 entries in a
  // 1.6 ms stage, the worker's clock counting in 0.1 ms) is "1.00 M", where toPrecision(3) wrote
  // "1.00e+3 k"; and a GPU's product passes 1,000 G FLOP/s ("1.23 T", not "1.23e+3 G").
  const rounded = Number(perSecond.toPrecision(3));
  const [scale, prefix] = RATE_PREFIXES.find(([threshold]) => rounded >= threshold) ?? [1, ''];
  return `${(perSecond / scale).toPrecision(3)} ${prefix ? `${prefix} ` : ''}${unit}/s`;
}

/** An integer with thousands separators. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
