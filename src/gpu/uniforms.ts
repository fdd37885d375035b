import { check } from '../errors.js';
import { createBufferWithData, UNIFORM_USAGE } from './buffers.js';

/**
 * Packs scalar kernel parameters into the bytes of a WGSL uniform struct whose members are all 4-byte
 * scalars (`u32`, `i32`, `f32`), declared in the same order as the calls. The result is padded to a
 * multiple of 16 bytes, the size WGSL gives such a struct in the uniform address space. Values are
 * range-checked so that a size that does not fit a `u32` fails here, not as a wrapped index on the GPU.
 *
 * @example
 * // struct Params { rows: u32, cols: u32, scale: f32 }
 * const params = new UniformPacker().u32(n, 'rows').u32(cols, 'cols').f32(0.5, 'scale');
 * const buffer = createUniformBuffer(device, 'hadamard params', params);
 */
export class UniformPacker {
  private readonly words: number[] = [];
  private readonly kinds: ('u32' | 'i32' | 'f32')[] = [];

  /** Appends a `u32` member. */
  u32(value: number, name: string): this {
    check(
      Number.isInteger(value) && value >= 0 && value <= 0xffffffff,
      () => `uniform ${name} must be an integer in [0, 2^32 - 1], got ${value}`,
    );
    return this.push(value, 'u32');
  }

  /** Appends an `i32` member. */
  i32(value: number, name: string): this {
    check(
      Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff,
      () => `uniform ${name} must be an integer in [-2^31, 2^31 - 1], got ${value}`,
    );
    return this.push(value, 'i32');
  }

  /** Appends an `f32` member (rounded to f32). */
  f32(value: number, name: string): this {
    check(Number.isFinite(value), () => `uniform ${name} must be finite, got ${value}`);
    return this.push(value, 'f32');
  }

  /** The packed bytes, zero-padded to a multiple of 16. */
  bytes(): Uint8Array {
    const wordCount = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buffer = new ArrayBuffer(wordCount * 4);
    const view = new DataView(buffer);
    this.words.forEach((value, i) => {
      const kind = this.kinds[i];
      if (kind === 'f32') view.setFloat32(4 * i, value, true);
      else if (kind === 'i32') view.setInt32(4 * i, value, true);
      else view.setUint32(4 * i, value, true);
    });
    return new Uint8Array(buffer);
  }

  private push(value: number, kind: 'u32' | 'i32' | 'f32'): this {
    this.words.push(value);
    this.kinds.push(kind);
    return this;
  }
}

/** A labelled uniform buffer holding `params`. */
export function createUniformBuffer(device: GPUDevice, label: string, params: UniformPacker): GPUBuffer {
  return createBufferWithData(device, label, params.bytes(), UNIFORM_USAGE);
}
