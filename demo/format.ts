/** Number formats of the page. */

/** Milliseconds as "840 ms" or "2.31 s". */
export function formatTime(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1000).toPrecision(3)} s`;
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

/** A rate such as "12.4 M entries/s" (per second from a count and milliseconds). */
export function formatRate(count: number, ms: number, unit: string): string {
  if (ms <= 0) return '—';
  const perSecond = (count / ms) * 1000;
  const [scale, prefix] = perSecond >= 1e9 ? [1e9, 'G'] : perSecond >= 1e6 ? [1e6, 'M'] : perSecond >= 1e3 ? [1e3, 'k'] : [1, ''];
  return `${(perSecond / scale).toPrecision(3)} ${prefix ? `${prefix} ` : ''}${unit}/s`;
}

/** An integer with thousands separators. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
