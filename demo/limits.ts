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
 * page would wait for it. At 2^20 entries and 2^27 multiply-adds (2048 × 256 and 8192 × 128), each
 * step of a run took at most 2.3 s there once its pipelines were compiled (a scheme's first run
 * compiles them: its first step then took up to 11 s, the D3 table product 4.1 s).
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
  /** The target in a sentence: "… is more than {where} runs here". */
  readonly where: string;
}

export const SIZE_CAPS: Readonly<Record<SizeTarget, SizeCaps>> = {
  cpu: { entries: 2 ** 18, productMacs: 2 ** 26, where: 'the CPU reference' },
  webgpu: { entries: 2 ** 24, productMacs: 2 ** 36, where: 'WebGPU' },
  'software-webgpu': { entries: 2 ** 20, productMacs: 2 ** 27, where: 'WebGPU on a software renderer' },
};

/**
 * A target's caps in words ("n × columns = 262,144 and n × columns² = 67,108,864"): both, since a size
 * within the first can still be refused by the second (300 × 500 on the CPU reference).
 */
export function capsText(target: SizeTarget): string {
  const { entries, productMacs } = SIZE_CAPS[target];
  return `n × columns = ${formatCount(entries)} and n × columns² = ${formatCount(productMacs)}`;
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
  const { entries, productMacs, where } = SIZE_CAPS[target];
  if (n * cols > entries) {
    return `n × columns = ${formatCount(n * cols)} is more than ${where} runs here (${formatCount(entries)}).`;
  }
  if (n * cols * cols > productMacs) {
    return `n × columns² = ${formatCount(n * cols * cols)} multiply-adds is more than ${where} runs here (${formatCount(productMacs)}).`;
  }
  return null;
}
