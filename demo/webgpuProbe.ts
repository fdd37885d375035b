/** What the page found out about WebGPU on the main thread, before the worker starts the engine. */
export type WebGpuProbe =
  | { readonly available: true; readonly description: string }
  | { readonly available: false; readonly reason: string };

/**
 * How long the page waits for `requestAdapter()` (a browser answers within a second or two, also when
 * it starts its GPU process): a request that never answers (a wedged driver or GPU process) must not
 * keep the page from its CPU reference.
 */
export const ADAPTER_TIMEOUT_MS = 10_000;

/** `promise`, or a rejection with `message` once `ms` have passed without an answer. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Checks for `navigator.gpu` and asks it for an adapter. The run worker later requests its own
 * adapter and device; this check only decides what the page says and which backend it offers.
 */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) {
    const why = window.isSecureContext
      ? 'This browser does not offer WebGPU (navigator.gpu is missing).'
      : 'WebGPU is only offered to secure pages (https or http://localhost), and this page is not one.';
    return { available: false, reason: why };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await withTimeout(gpu.requestAdapter(), ADAPTER_TIMEOUT_MS, `the browser did not answer the request for an adapter within ${ADAPTER_TIMEOUT_MS / 1000} s`);
  } catch (error) {
    return { available: false, reason: `WebGPU is present, but asking it for a GPU failed: ${error instanceof Error ? error.message : String(error)}.` };
  }
  if (!adapter) {
    return {
      available: false,
      reason: 'WebGPU is present, but the browser offers no GPU adapter (no supported GPU, or GPU access is turned off).',
    };
  }
  const info = adapter.info;
  const description = [info.vendor, info.architecture, info.device, info.description].filter((part) => part).join(' · ');
  return { available: true, description: description || 'an unnamed adapter' };
}
