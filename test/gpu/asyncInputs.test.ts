import { describe, expect, it } from 'vitest';
import { requestGpuDevice } from '../../src/gpu/device.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { latticeDequantize } from '../../src/gpu/kernels/latticeDequantize.js';
import { universalDequantize } from '../../src/gpu/kernels/universalDequantize.js';
import { weightOnlyGemm, weightOnlyGemv, type WeightOnlyGemvOptions } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { nodeGpu } from '../../src/gpu/nodeGpu.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * Public calls that return a promise read what they are given when they are made (audit helper-188,
 * after helper-183's): their work runs when their turn on the device comes, and an app may reuse an
 * options object or a CPU matrix for the next call before then. Before, universalDequantize read its
 * rotation options at its turn and let any key through (rotation.outputOffset wrote a centred
 * matrix 16 bytes on: every entry wrong, no error); weightOnlyGemv and weightOnlyGemm uploaded the
 * caller's WeightOnlyQuantized at their turn (scales zeroed after the call: zeros) and read their
 * options then (an int8Inputs set after the call rounded x to int8); requestGpuDevice read
 * workgroupStorageLimit and label after awaiting the adapter.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('async GPU calls read their inputs when made', () => {
  const suite = contextOnTestDevice();

  // latticeDequantize read options.rotation at its turn, unchecked: outputOffset 16 shifted a centred
  // matrix by 4 entries into its means' room (the first 4 entries the first column's mean alone), no error.
  it.each([
    ['universalDequantize', { scheme: 'e8-4bit', nonce: 5n, center: true }],
    ['latticeDequantize', { scheme: 'd3-q6-deterministic', seed: 3, center: true }],
  ] as const)('%s: rotation options checked and copied when the call is made', async (name, options) => {
    const { device } = suite.context;
    const q = quantize(gaussianMatrix(64, 4, 5), options);
    type Dequantize = (options?: { rotation?: Record<string, unknown> }) => Promise<Matrix>;
    let dequantize: Dequantize;
    let w: { destroy(): void };
    if (name === 'universalDequantize') {
      const universal = uploadUniversalMatrix(device, q as UniversalLatticeMatrix);
      [w, dequantize] = [universal, (options) => universalDequantize(device, universal, options as never)];
    } else {
      const lattice = uploadLatticeMatrix(device, q as DeterministicLatticeMatrix);
      [w, dequantize] = [lattice, (options) => latticeDequantize(device, lattice, options as never)];
    }
    try {
      const alone = await dequantize();
      // A key the rotation options do not have (a HadamardInverseArgs one): refused, not forwarded.
      await expect(dequantize({ rotation: { outputOffset: 16 } })).rejects.toThrow(new RegExp(`${name} options: rotation: unknown option 'outputOffset'`));
      await expect(dequantize({ rotaton: {} } as never)).rejects.toThrow(new RegExp(`${name} options: unknown option 'rotaton'`));
      // The caller's object changed after the call, before its turn (an earlier call holds the device).
      const rotation: Record<string, unknown> = { spread: false };
      const earlier = dequantize();
      const later = dequantize({ rotation });
      rotation.outputOffset = 16;
      rotation.spread = 'yes';
      const [first, second] = await Promise.all([earlier, later]);
      expect(first).toEqual(alone);
      expect(second).toEqual(alone);
    } finally {
      w.destroy();
    }
  });

  it('weightOnlyGemv / weightOnlyGemm: the matrix and the options as they were when the call was made', async () => {
    const { device } = suite.context;
    const q = quantizeWeights(gaussianMatrix(64, 32, 7), null, { method: 'rtn', rate: 3 });
    const x = gaussianMatrix(64, 1, 8).data;
    const alone = await weightOnlyGemv(device, q, x);
    const int8 = await weightOnlyGemv(device, q, x, { int8Inputs: 'plain' });
    expect(int8).not.toEqual(alone); // the option would show
    const xm = gaussianMatrix(64, 3, 9);
    const aloneGemm = await weightOnlyGemm(device, q, xm);

    // The options object reused: an int8Inputs set after the call.
    const options: { -readonly [K in keyof WeightOnlyGemvOptions]: WeightOnlyGemvOptions[K] } = {};
    const reusedOptions = Promise.all([weightOnlyGemv(device, q, x), weightOnlyGemv(device, q, x, options), weightOnlyGemm(device, q, xm, options)]);
    options.int8Inputs = 'plain';
    const [, y, ym] = await reusedOptions;
    expect(y).toEqual(alone);
    expect(ym).toEqual(aloneGemm);

    // The matrix's scales zeroed after the call (before: y of zeros).
    const scales = q.columnScales.slice();
    const reusedMatrix = Promise.all([weightOnlyGemv(device, q, x), weightOnlyGemv(device, q, x), weightOnlyGemm(device, q, xm)]);
    q.columnScales.fill(0);
    try {
      const [, y2, ym2] = await reusedMatrix;
      expect(y2).toEqual(alone);
      expect(ym2).toEqual(aloneGemm);
    } finally {
      q.columnScales.set(scales);
    }

    // A matrix with row scales (rescaled), its codes and row scales refilled after the call (the next
    // matrix's, say): before the snapshot copied them, the codes were packed at the call's turn.
    const w = gaussianMatrix(64, 32, 10);
    const sigma = { rows: 64, cols: 64, data: new Float32Array(64 * 64).map((_, k) => (k % 65 === 0 ? 1 + (k % 7) / 7 : 0)) };
    const r = quantizeWeights(w, sigma, { method: 'rtn', rate: 3, rescale: true });
    expect(r.rowScales).not.toBeNull();
    const rAlone = await weightOnlyGemv(device, r, x);
    const rAloneGemm = await weightOnlyGemm(device, r, xm);
    const [codes, rowScales] = [r.codes.slice(), (r.rowScales as Float32Array).slice()];
    const reusedArrays = Promise.all([weightOnlyGemv(device, r, x), weightOnlyGemv(device, r, x), weightOnlyGemm(device, r, xm)]);
    r.codes.reverse();
    r.rowScales?.fill(0.5);
    try {
      const [, y3, ym3] = await reusedArrays;
      expect(y3).toEqual(rAlone);
      expect(ym3).toEqual(rAloneGemm);
    } finally {
      r.codes.set(codes);
      r.rowScales?.set(rowScales);
    }
  });

  it('requestGpuDevice: workgroupStorageLimit and label as given', async () => {
    const gpu = await nodeGpu();
    const adapter = await gpu.requestAdapter();
    const most = adapter?.limits.maxComputeWorkgroupStorageSize ?? 0;
    const options: { gpu: GPU; workgroupStorageLimit: number; label: string } = { gpu, workgroupStorageLimit: 16384, label: 'asked' };
    const requested = requestGpuDevice(options);
    options.workgroupStorageLimit = most;
    options.label = 'later';
    const { device } = await requested;
    try {
      expect(device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      expect(device.label).toBe('asked');
    } finally {
      device.destroy();
    }
  });
});
