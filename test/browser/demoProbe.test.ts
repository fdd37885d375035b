import { afterEach, describe, expect, it, vi } from 'vitest';
import { ADAPTER_TIMEOUT_MS, probeWebGpu, withTimeout } from '../../demo/webgpuProbe.js';

/*
 * The page's WebGPU check (demo/webgpuProbe.ts), in Node with a stand-in `navigator.gpu`: WebGPU is
 * reported present only with an adapter in hand; a missing API, a refusal, a failure and a request
 * that never answers each say why, and the page goes on to its CPU reference.
 */

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

function stubGpu(requestAdapter: (() => Promise<unknown>) | null, isSecureContext = true): void {
  vi.stubGlobal('navigator', requestAdapter ? { gpu: { requestAdapter } } : {});
  vi.stubGlobal('window', { isSecureContext });
}

describe('probeWebGpu', () => {
  it('reports an adapter by the parts of its info it reveals', async () => {
    stubGpu(() => Promise.resolve({ info: { vendor: 'nvidia', architecture: '', device: 'H100', description: '' } }));
    expect(await probeWebGpu()).toEqual({ available: true, description: 'nvidia · H100' });
    stubGpu(() => Promise.resolve({ info: { vendor: '', architecture: '', device: '', description: '' } }));
    expect(await probeWebGpu()).toEqual({ available: true, description: 'an unnamed adapter' });
  });

  it('reports no WebGPU, with the reason, without the API, without an adapter, or when the request fails', async () => {
    stubGpu(null);
    expect(await probeWebGpu()).toMatchObject({ available: false, reason: expect.stringMatching(/navigator\.gpu is missing/) });
    stubGpu(null, false);
    expect(await probeWebGpu()).toMatchObject({ available: false, reason: expect.stringMatching(/only offered to secure pages/) });
    stubGpu(() => Promise.resolve(null));
    expect(await probeWebGpu()).toMatchObject({ available: false, reason: expect.stringMatching(/offers no GPU adapter/) });
    stubGpu(() => Promise.reject(new Error('driver wedged')));
    expect(await probeWebGpu()).toEqual({ available: false, reason: 'WebGPU is present, but asking it for a GPU failed: driver wedged.' });
    // A rejection with something other than an Error (a string) still names it.
    stubGpu(() => Promise.reject('blocked by policy'));
    expect(await probeWebGpu()).toEqual({ available: false, reason: 'WebGPU is present, but asking it for a GPU failed: blocked by policy.' });
  });

  it('gives up on a request that never answers after ADAPTER_TIMEOUT_MS (10 s)', async () => {
    vi.useFakeTimers();
    stubGpu(() => new Promise(() => {}));
    const probe = probeWebGpu();
    await vi.advanceTimersByTimeAsync(ADAPTER_TIMEOUT_MS - 1);
    let settled = false;
    void probe.then(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await probe).toEqual({
      available: false,
      reason: 'WebGPU is present, but asking it for a GPU failed: the browser did not answer the request for an adapter within 10 s.',
    });
  });
});

describe('withTimeout', () => {
  it('passes on an answer in time (and its rejection), and clears its timer', async () => {
    vi.useFakeTimers();
    await expect(withTimeout(Promise.resolve(42), 1000, 'late')).resolves.toBe(42);
    await expect(withTimeout(Promise.reject(new Error('refused')), 1000, 'late')).rejects.toThrow('refused');
    expect(vi.getTimerCount()).toBe(0);
  });
});
