import { describe, expect, it } from 'vitest';
import { contextOnTestDevice, engineOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

const noGpu = await gpuUnavailableReason();

/** Resolves to the device's loss reason, or to 'still alive' when it is not lost within `ms`. */
function lossWithin(device: GPUDevice, ms: number): Promise<string> {
  return Promise.race([device.lost.then((info) => info.reason), new Promise<string>((resolve) => setTimeout(() => resolve('still alive'), ms))]);
}

/** What reading `read()` threw, or undefined when it returned. */
function thrownBy(read: () => unknown): unknown {
  try {
    read();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe.skipIf(noGpu !== undefined)('contextOnTestDevice and engineOnTestDevice: a device per describe block', () => {
  let device: GPUDevice | undefined;
  let engineDevice: GPUDevice | undefined;

  describe('contextOnTestDevice', () => {
    const suite = contextOnTestDevice({ label: 'helper test device' });
    // Read while the block is collected, before its beforeAll has run.
    const early = thrownBy(() => suite.context);

    it('throws a message naming the fix when read before beforeAll', () => {
      expect(early).toBeInstanceOf(Error);
      expect((early as Error).message).toMatch(/^contextOnTestDevice: read suite\.context inside a test, after beforeAll/);
    });

    it('gives a live device with the options passed (its label) and the adapter inside a test', async () => {
      const { context } = suite;
      device = context.device;
      expect(context.device.label).toBe('helper test device');
      expect(context.adapter).toBeDefined();
      // The same context on every read: one device for the block.
      expect(suite.context).toBe(context);
      expect(await lossWithin(context.device, 50)).toBe('still alive');
    });
  });

  describe('engineOnTestDevice', () => {
    const suite = engineOnTestDevice();
    const early = thrownBy(() => suite.engine);

    it('throws when the engine is read before beforeAll, and gives an engine on its context inside a test', () => {
      expect((early as Error).message).toMatch(/^engineOnTestDevice: read suite\.engine/);
      engineDevice = suite.context.device;
      expect(suite.engine.device).toBe(suite.context.device);
    });
  });

  // Runs after the blocks above, so after their afterAll hooks.
  it("destroys each block's device in its afterAll", async () => {
    if (device === undefined || engineDevice === undefined) throw new Error('the tests above did not run');
    expect(await lossWithin(device, 5000)).toBe('destroyed');
    expect(await lossWithin(engineDevice, 5000)).toBe('destroyed');
  });
});
