import { describe, expect, it } from 'vitest';
import { checkMatrixUsable } from '../../src/gpu/latticeOperand.js';

/*
 * The refusal of a GPU matrix from another device, by its message alone: checkMatrixUsable compares
 * devices by identity and reads only their labels, so stand-ins with a label do (no adapter needed).
 * lifecycle.test.ts checks the refusal itself on real devices of distinct labels.
 */

function fakeDevice(label: string): GPUDevice {
  return { label } as unknown as GPUDevice;
}

describe('checkMatrixUsable: a matrix of another device', () => {
  it('names both labels when they differ', () => {
    const weight = { device: fakeDevice('loader'), isDestroyed: false };
    expect(() => checkMatrixUsable(weight, fakeDevice('renderer'), 'QuantizedLinear: the weight', 'layer')).toThrow(
      `QuantizedLinear: the weight was uploaded to another GPUDevice than the layer's (on "loader", the layer on "renderer"); upload it to the layer's device`,
    );
  });

  // Two devices from requestNodeGpuDevice() share its default label, and an app's own devices are often
  // unlabelled: the message must not read as if the matrix were on the layer's device.
  it.each(['lattice-matmul device', ''])('says that the devices share the label %j instead of naming it twice', (label) => {
    const weight = { device: fakeDevice(label), isDestroyed: false };
    expect(() => checkMatrixUsable(weight, fakeDevice(label), 'W', 'engine')).toThrow(
      `W was uploaded to another GPUDevice than the engine's (both devices are labelled ${JSON.stringify(label)}: label them to tell them apart); upload it to the engine's device`,
    );
  });

  it('accepts a live matrix of the same device, and refuses it destroyed', () => {
    const device = fakeDevice('lattice-matmul device');
    expect(() => checkMatrixUsable({ device, isDestroyed: false }, device, 'W', 'engine')).not.toThrow();
    expect(() => checkMatrixUsable({ device, isDestroyed: true }, device, 'W', 'engine')).toThrow('W was destroyed');
  });
});
