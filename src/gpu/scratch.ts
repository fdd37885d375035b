import { createBuffer } from './buffers.js';
import { createUniformBuffer, type UniformPacker } from './uniforms.js';

/**
 * Buffers a dispatch creates for its own use (uniform parameter blocks, intermediate results). The
 * `dispatch…` functions record into a caller's command encoder, so these must outlive the encoder's
 * submission: call `destroy()` after `queue.submit` (WebGPU keeps destroyed buffers alive until the
 * submitted work that uses them has finished).
 *
 * The scratch of `QuantizedLinear`'s prepared commands (`sharingScratch`, internal) takes its
 * intermediate buffers (`intermediate`) from a pool of its device that every such scratch shares: a
 * model's layers recorded at one token count hold one rotated input between them instead of one each.
 * That is sound because WebGPU runs a queue's commands in order, each dispatch seeing the writes of
 * the ones before it; because a layer's record writes each intermediate in full before it reads it and
 * hands none out; and because a record's commands run contiguously, so no other record runs between an
 * intermediate's write and its last read. (A caller's own scratch cannot share: the x̂ that
 * `dispatchInputsI8` returns, read by later calls, would be overwritten by a layer recorded between.)
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

  constructor(readonly device: GPUDevice) {}

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
   * full before they read it (its content when they start does not matter). Here the same as `buffer`;
   * in the scratch of a layer's prepared commands, which reads its intermediates only within its own
   * record, the k-th request of this size and usage is the pool's k-th buffer of them, shared by the
   * device's layers.
   */
  intermediate(label: string, byteLength: number, usage: number): GPUBuffer {
    const pool = sharingPools.get(this);
    if (pool === undefined) return this.buffer(label, byteLength, usage);
    const sameKind = `${usage}:${byteLength}:`;
    const ordinal = this.heldKeys.filter((key) => key.startsWith(sameKind)).length;
    const key = `${sameKind}${ordinal}`;
    if (this.heldKeys.length === 0) {
      // A scratch dropped without destroy() (prepared commands a layer's cache let go) gives its
      // holds back when it is collected (registered while it holds any).
      collectedScratch.register(this, { pool, keys: this.heldKeys }, this);
    }
    this.heldKeys.push(key);
    return pool.take(key, label, byteLength, usage);
  }

  /** Destroys every buffer created so far and gives back shared ones (the scratch can be reused afterwards). */
  destroy(): void {
    for (const buffer of this.buffers.splice(0)) buffer.destroy();
    const pool = sharingPools.get(this);
    if (pool !== undefined) {
      if (this.heldKeys.length > 0) collectedScratch.unregister(this);
      for (const key of this.heldKeys.splice(0)) pool.release(key, 'destroyed');
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

/** The pool of each sharing scratch (`sharingScratch`). */
const sharingPools = new WeakMap<GpuScratch, IntermediatePool>();

/**
 * A scratch whose intermediates come from the device's shared pool: for commands that read their
 * intermediates only within one contiguous record and hand none out (QuantizedLinear's prepared sets).
 */
export function sharingScratch(device: GPUDevice): GpuScratch {
  const scratch = new GpuScratch(device);
  sharingPools.set(scratch, intermediatePoolOf(device));
  return scratch;
}

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
