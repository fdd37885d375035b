import { formatCount } from './format.js';
import type { Backend } from './runProtocol.js';

/*
 * Size limits of a run. The CPU reference quantizes at roughly 1–3 µs per entry and multiplies at a
 * few ns per multiply-add (measured in Node/V8), so these caps keep a CPU run of one scheme under
 * about a second and "run all schemes" under a few seconds. The GPU caps keep A, B and the product
 * under 64 MiB each, below every adapter's default storage-buffer binding size (128 MiB).
 *
 * A software renderer (WebGPU emulated on the CPU: Chromium's SwiftShader where no GPU is usable, or
 * Mesa's llvmpipe/lavapipe) gets caps of its own. There a product is one submission that runs for
 * minutes at the GPU caps (about 0.15–0.2 G multiply-adds per second on SwiftShader with two CPU
 * cores: 24 s for 4096 × 1024, e8-q16), and a cancelled run cannot stop work already submitted: the
 * page would wait for it. Multiply-adds are not the only cost there: quantizing costs about 1.5–3 ms
 * per column besides its cost per entry, and the product about 0.7–1.7 µs per entry of AᵀB (columns²)
 * besides its multiply-adds. So wide, short sizes within the first two caps were slow: 8 × 4096 (2^27
 * multiply-adds) took 54 s in the page with e8-q16 (12 s to quantize each of A and B, 29 s for the
 * product) and 40 s with d3-q6-deterministic, 8 × 2048 14–26 s. Hence the third cap, on the product's
 * entries (columns ≤ 1024). Within the three, on SwiftShader in headless Chromium with two CPU cores
 * shared with other work (load 3–6), each step of a run took at most 4.2 s once its pipelines were
 * compiled (1–3 s as a rule), at the caps' corners 8192 × 128, 2048 × 256, 128 × 1024 and 8 × 1024, and
 * the page's own work after a run (transfer, plots, tables) under 0.1 s. A scheme's first run compiles
 * its pipelines, and the first run at a new n a rotation variant: such a step took up to 15 s. "Run all
 * schemes" took 91–117 s at those four corners (every scheme's first run on that page).
 */

export const N_MIN = 8;
export const N_MAX = 8192;
export const COLS_MIN = 1;
export const COLS_MAX = 4096;

/** What a run's size is judged against: the CPU reference, WebGPU on a GPU, or WebGPU on a software renderer. */
export type SizeTarget = Backend | 'software-webgpu';

/** The caps of one target. */
export interface SizeCaps {
  /** Largest n·cols (entries of one operand). */
  readonly entries: number;
  /** Largest n·cols² (multiply-adds of the product). */
  readonly productMacs: number;
  /** Largest cols² (entries of the product AᵀB). */
  readonly productEntries: number;
  /** The target in a sentence: "… is more than {where} runs here". */
  readonly where: string;
}

export const SIZE_CAPS: Readonly<Record<SizeTarget, SizeCaps>> = {
  cpu: { entries: 2 ** 18, productMacs: 2 ** 26, productEntries: COLS_MAX ** 2, where: 'the CPU reference' },
  webgpu: { entries: 2 ** 24, productMacs: 2 ** 36, productEntries: COLS_MAX ** 2, where: 'WebGPU' },
  'software-webgpu': { entries: 2 ** 20, productMacs: 2 ** 27, productEntries: 2 ** 20, where: 'WebGPU on a software renderer' },
};

/**
 * A target's caps in words ("n × columns = 262,144 and n × columns² = 67,108,864"): both, since a size
 * within the first can still be refused by the second (300 × 500 on the CPU reference), and the cap on
 * the product's entries where it refuses sizes the other two allow (a software renderer: 8 × 4096).
 */
export function capsText(target: SizeTarget): string {
  const { entries, productMacs, productEntries } = SIZE_CAPS[target];
  const macs = `n × columns² = ${formatCount(productMacs)}`;
  if (!productEntriesBind(target)) return `n × columns = ${formatCount(entries)} and ${macs}`;
  return `n × columns = ${formatCount(entries)}, ${macs} and columns² = ${formatCount(productEntries)}`;
}

/** Whether a target's cap on the product's entries refuses a size its other caps and the ranges allow. */
function productEntriesBind(target: SizeTarget): boolean {
  const { entries, productMacs, productEntries } = SIZE_CAPS[target];
  // The most columns the other caps allow, at the smallest n.
  const widest = Math.min(COLS_MAX, Math.floor(entries / N_MIN), Math.floor(Math.sqrt(productMacs / N_MIN)));
  return widest * widest > productEntries;
}

/** The target of a run on `backend`; `softwareRenderer` is the engine's adapter's (`AdapterSummary`). */
export function sizeTarget(backend: Backend, softwareRenderer: boolean): SizeTarget {
  return backend === 'webgpu' && softwareRenderer ? 'software-webgpu' : backend;
}

/** The adapter facts `isSoftwareRenderer` reads (GPUAdapterInfo; `isFallbackAdapter` where the browser has it). */
export interface AdapterFacts {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter?: boolean;
}

/** Whether an adapter emulates the GPU on the CPU: a fallback adapter, or SwiftShader, llvmpipe or lavapipe by name. */
export function isSoftwareRenderer(info: AdapterFacts): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.vendor, info.architecture, info.device, info.description].some((part) => /swiftshader|llvmpipe|lavapipe/i.test(part));
}

/** Up to this many product entries the exact AᵀB is computed for the NMSE (n·cols² multiply-adds). */
export const EXACT_NMSE_MAX_MACS = 1 << 27;
/** Otherwise the NMSE is estimated from this many product entries drawn at random. */
export const NMSE_SAMPLE_ENTRIES = 4096;
/** The product is handed to the page (and to tests) when it has at most this many entries. */
export const PRODUCT_EXPORT_MAX_ENTRIES = 4096;
/** Rotated coordinates shown in the error picture. */
export const ERROR_SAMPLE_POINTS = 384;

/** Why a size cannot run on `target`, or null when it can. */
export function sizeProblem(n: number, cols: number, target: SizeTarget): string | null {
  if (!Number.isInteger(n) || n < N_MIN || n > N_MAX) return `n must be a whole number from ${N_MIN} to ${N_MAX}.`;
  if (!Number.isInteger(cols) || cols < COLS_MIN || cols > COLS_MAX) {
    return `Columns must be a whole number from ${COLS_MIN} to ${COLS_MAX}.`;
  }
  const { entries, productMacs, productEntries, where } = SIZE_CAPS[target];
  if (n * cols > entries) {
    return `n × columns = ${formatCount(n * cols)} is more than ${where} runs here (${formatCount(entries)}).`;
  }
  if (n * cols * cols > productMacs) {
    return `n × columns² = ${formatCount(n * cols * cols)} multiply-adds is more than ${where} runs here (${formatCount(productMacs)}).`;
  }
  if (cols * cols > productEntries) {
    return `columns² = ${formatCount(cols * cols)} entries of AᵀB is more than ${where} runs here (${formatCount(productEntries)}, that is up to ${formatCount(Math.floor(Math.sqrt(productEntries)))} columns).`;
  }
  return null;
}
