import { createBuffer } from './buffers.js';
import { createUniformBuffer, type UniformPacker } from './uniforms.js';

/**
 * Buffers a dispatch creates for its own use (uniform parameter blocks, intermediate results). The
 * `dispatch…` functions record into a caller's command encoder, so these must outlive the encoder's
 * submission: call `destroy()` after `queue.submit` (WebGPU keeps destroyed buffers alive until the
 * submitted work that uses them has finished).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder();
 * dispatchUniversalGemv(device, encoder, scratch, { w, x, y, rhs: 1 });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export class GpuScratch {
  private readonly buffers: GPUBuffer[] = [];

  constructor(readonly device: GPUDevice) {}

  /** A uniform buffer holding `params`, destroyed with the scratch. */
  uniform(label: string, params: UniformPacker): GPUBuffer {
    return this.track(createUniformBuffer(this.device, label, params));
  }

  /** A buffer of `byteLength` bytes, destroyed with the scratch. */
  buffer(label: string, byteLength: number, usage: number): GPUBuffer {
    return this.track(createBuffer(this.device, label, byteLength, usage));
  }

  /** Destroys every buffer created so far (the scratch can be reused afterwards). */
  destroy(): void {
    for (const buffer of this.buffers.splice(0)) buffer.destroy();
  }

  private track(buffer: GPUBuffer): GPUBuffer {
    this.buffers.push(buffer);
    return buffer;
  }
}
