import type { Backend } from './runProtocol.js';

/*
 * Size limits of a run. The CPU reference quantizes at roughly 1–3 µs per entry and multiplies at a
 * few ns per multiply-add (measured in Node/V8), so these caps keep a CPU run of one scheme under
 * about a second and "run all schemes" under a few seconds. The GPU caps keep A, B and the product
 * under 64 MiB each, below every adapter's default storage-buffer binding size (128 MiB).
 */

export const N_MIN = 8;
export const N_MAX = 8192;
export const COLS_MIN = 1;
export const COLS_MAX = 4096;

/** Largest n·cols (entries of one operand) per backend. */
export const MAX_ENTRIES: Readonly<Record<Backend, number>> = { cpu: 1 << 18, webgpu: 1 << 24 };
/** Largest n·cols² (multiply-adds of the product) per backend. */
export const MAX_PRODUCT_MACS: Readonly<Record<Backend, number>> = { cpu: 1 << 26, webgpu: 2 ** 36 };

/** Up to this many product entries the exact AᵀB is computed for the NMSE (n·cols² multiply-adds). */
export const EXACT_NMSE_MAX_MACS = 1 << 27;
/** Otherwise the NMSE is estimated from this many product entries drawn at random. */
export const NMSE_SAMPLE_ENTRIES = 4096;
/** The product is handed to the page (and to tests) when it has at most this many entries. */
export const PRODUCT_EXPORT_MAX_ENTRIES = 4096;
/** Rotated coordinates shown in the error picture. */
export const ERROR_SAMPLE_POINTS = 384;

/** Why a size cannot run on `backend`, or null when it can. */
export function sizeProblem(n: number, cols: number, backend: Backend): string | null {
  if (!Number.isInteger(n) || n < N_MIN || n > N_MAX) return `n must be a whole number from ${N_MIN} to ${N_MAX}.`;
  if (!Number.isInteger(cols) || cols < COLS_MIN || cols > COLS_MAX) {
    return `Columns must be a whole number from ${COLS_MIN} to ${COLS_MAX}.`;
  }
  const where = backend === 'cpu' ? 'the CPU reference' : 'WebGPU';
  if (n * cols > MAX_ENTRIES[backend]) {
    return `n × columns = ${formatCount(n * cols)} is more than ${where} runs here (${formatCount(MAX_ENTRIES[backend])}).`;
  }
  if (n * cols * cols > MAX_PRODUCT_MACS[backend]) {
    return `n × columns² = ${formatCount(n * cols * cols)} multiply-adds is more than ${where} runs here (${formatCount(MAX_PRODUCT_MACS[backend])}).`;
  }
  return null;
}

function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}
