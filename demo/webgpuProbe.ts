/** What the page found out about WebGPU on the main thread, before the worker starts the engine. */
export type WebGpuProbe =
  | { readonly available: true; readonly description: string }
  | { readonly available: false; readonly reason: string };

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
    adapter = await gpu.requestAdapter();
  } catch (error) {
    return { available: false, reason: `WebGPU is present, but asking it for a GPU failed: ${String(error)}.` };
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
