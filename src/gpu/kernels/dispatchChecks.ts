import { check, describeValue } from '../../errors.js';
import { throwIfDeviceLost } from '../errorScopes.js';
import { GpuScratch } from '../scratch.js';

/**
 * The checks every exported `dispatch*` makes before anything else: a live GPUDevice (not the context
 * `requestGpuDevice()` returns, not one that was lost), something that records compute passes, the
 * library's `GpuScratch`, and an arguments object. Without them a wrong argument failed deep inside
 * with a TypeError ("reading 'limits'", "beginComputePass is not a function").
 */
export function checkDispatch(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: unknown, what: string): void {
  throwIfDeviceLost(device, what);
  checkRecordingTarget(device, encoder, scratch, what);
  check(typeof args === 'object' && args !== null, () => `${what}: the arguments must be an object, got ${describeValue(args)}`);
}

/**
 * Something that records compute passes, and the library's `GpuScratch` of `device`: what every recording
 * call takes (a scratch of another device would make WebGPU drop the caller's whole submission, a
 * validation error only an error scope shows; an encoder's device cannot be asked).
 */
export function checkRecordingTarget(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, what: string): void {
  check(
    typeof encoder === 'object' && encoder !== null && typeof (encoder as { beginComputePass?: unknown }).beginComputePass === 'function',
    () =>
      typeof (encoder as { dispatchWorkgroups?: unknown } | null)?.dispatchWorkgroups === 'function'
        ? `${what}: encoder must be a GPUCommandEncoder, got a compute pass; to record into an open pass, prepare the call once, prepareCommands(device, label, (encoder, scratch) => …), and record that into the pass (its record(pass))`
        : `${what}: encoder must be a GPUCommandEncoder, got ${describeValue(encoder)}`,
  );
  check(scratch instanceof GpuScratch, () => `${what}: scratch must be a GpuScratch (new GpuScratch(device)), got ${describeValue(scratch)}`);
  check(scratch.device === device, () => `${what}: scratch was made for another GPUDevice (new GpuScratch(device) with this one)`);
}
