import { createBuffer } from './buffers.js';
import { createUniformBuffer, type UniformPacker } from './uniforms.js';

/**
 * Buffers a dispatch creates for its own use (uniform parameter blocks, intermediate results). The
 * `dispatch…` functions record into a caller's command encoder, so these must outlive the encoder's
 * submission: call `destroy()` after `queue.submit` (WebGPU keeps destroyed buffers alive until the
 * submitted work that uses them has finished).
 *
 * A scratch made with `{ shareIntermediates: true }` (as `QuantizedLinear` prepares its commands) takes
 * its intermediate buffers (`intermediate`) from a pool of its device that every such scratch shares:
 * a model's layers recorded at one token count hold one rotated input between them instead of one
 * each. That is sound because WebGPU runs a queue's commands in order, each dispatch seeing the writes
 * of the ones before it, and because an intermediate buffer is written in full by the commands recorded
 * with it before they read it, and read by nothing after them.
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
  /** Pool keys this scratch holds (shared intermediates), released on `destroy()` or when collected. */
  private readonly heldKeys: string[] = [];
  private readonly pool: IntermediatePool | null;
  private registered = false;

  constructor(
    readonly device: GPUDevice,
    options: { readonly shareIntermediates?: boolean } = {},
  ) {
    this.pool = options.shareIntermediates === true ? intermediatePoolOf(device) : null;
  }

  /** A uniform buffer holding `params`, destroyed with the scratch. */
  uniform(label: string, params: UniformPacker): GPUBuffer {
    return this.track(createUniformBuffer(this.device, label, params));
  }

  /** A buffer of `byteLength` bytes, destroyed with the scratch. */
  buffer(label: string, byteLength: number, usage: number): GPUBuffer {
    return this.track(createBuffer(this.device, label, byteLength, usage));
  }

  /**
   * A buffer for an intermediate result: one that the commands recorded with this scratch write in
   * full before they read it, and that nothing reads after them (so its content at the start of a
   * replay does not matter). Its own buffer, as `buffer` makes it, unless the scratch shares
   * intermediates: then the k-th request of this size and usage is the pool's k-th buffer of them, the
   * same one for every sharing scratch of the device.
   */
  intermediate(label: string, byteLength: number, usage: number): GPUBuffer {
    if (this.pool === null) return this.buffer(label, byteLength, usage);
    const sameKind = `${usage}:${byteLength}:`;
    const ordinal = this.heldKeys.filter((key) => key.startsWith(sameKind)).length;
    const key = `${sameKind}${ordinal}`;
    if (!this.registered) {
      // A scratch dropped without destroy() (prepared commands a layer's cache let go) gives its
      // holds back when it is collected.
      collectedScratch.register(this, { pool: this.pool, keys: this.heldKeys }, this);
      this.registered = true;
    }
    this.heldKeys.push(key);
    return this.pool.take(key, label, byteLength, usage);
  }

  /** Destroys every buffer created so far and gives back shared ones (the scratch can be reused afterwards). */
  destroy(): void {
    for (const buffer of this.buffers.splice(0)) buffer.destroy();
    if (this.pool !== null) {
      for (const key of this.heldKeys.splice(0)) this.pool.release(key, 'destroyed');
      if (this.registered) collectedScratch.unregister(this);
      this.registered = false;
    }
  }

  private track(buffer: GPUBuffer): GPUBuffer {
    this.buffers.push(buffer);
    return buffer;
  }
}

interface PoolEntry {
  readonly buffer: GPUBuffer;
  holders: number;
  /** Whether a holder was collected rather than destroyed: commands it recorded may not have run yet. */
  collectedHolder: boolean;
}

/**
 * The intermediate buffers one device's sharing scratches hold, by key (usage, size, ordinal), with
 * the number of scratches holding each. A buffer no scratch holds leaves the pool; it is destroyed
 * only if every holder was destroyed explicitly, whose callers promise that what they recorded has
 * been submitted. A collected holder made no such promise (a command buffer recorded from it may still
 * wait for its submit), so the buffer is then left to the garbage collector, as the holder was.
 */
class IntermediatePool {
  private readonly entries = new Map<string, PoolEntry>();

  constructor(private readonly device: GPUDevice) {}

  take(key: string, label: string, byteLength: number, usage: number): GPUBuffer {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const buffer = createBuffer(this.device, `shared intermediate #${key.slice(key.lastIndexOf(':') + 1)} of ${byteLength} bytes (first for ${label})`, byteLength, usage);
      entry = { buffer, holders: 0, collectedHolder: false };
      this.entries.set(key, entry);
    }
    entry.holders += 1;
    return entry.buffer;
  }

  release(key: string, how: 'destroyed' | 'collected'): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    entry.holders -= 1;
    if (how === 'collected') entry.collectedHolder = true;
    if (entry.holders > 0) return;
    this.entries.delete(key);
    if (!entry.collectedHolder) entry.buffer.destroy();
  }

  /** The buffers in the pool now. */
  buffers(): GPUBuffer[] {
    return [...this.entries.values()].map((entry) => entry.buffer);
  }
}

const pools = new WeakMap<GPUDevice, IntermediatePool>();

function intermediatePoolOf(device: GPUDevice): IntermediatePool {
  let pool = pools.get(device);
  if (pool === undefined) {
    pool = new IntermediatePool(device);
    pools.set(device, pool);
  }
  return pool;
}

const collectedScratch = new FinalizationRegistry<{ readonly pool: IntermediatePool; readonly keys: string[] }>(({ pool, keys }) => {
  for (const key of keys.splice(0)) pool.release(key, 'collected');
});

/** The intermediate buffers that sharing scratches of `device` hold now (for tests and memory accounting). */
export function sharedIntermediateBuffers(device: GPUDevice): GPUBuffer[] {
  return pools.get(device)?.buffers() ?? [];
}
