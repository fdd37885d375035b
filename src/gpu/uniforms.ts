import { check, describeValue } from '../errors.js';
import { createBufferWithData, UNIFORM_USAGE } from './buffers.js';

/**
 * Packs kernel parameters into the bytes of a WGSL uniform struct, one 4-byte scalar (`u32`, `i32`,
 * `f32`) per call, in the order of the struct's members; `padTo` inserts the zero words WGSL puts
 * before a 16-byte-aligned member. The result is padded to a multiple of 16 bytes. Values are
 * range-checked so that a size that does not fit a `u32` fails here, not as a wrapped index on the GPU.
 * Kernels declare their struct once with `UniformLayout` (src/gpu/uniformLayout.ts), which generates
 * the WGSL and drives this packer by member name; use the packer directly only for ad-hoc probes.
 *
 * @example
 * // struct Params { rows: u32, cols: u32, scale: f32 }
 * const params = new UniformPacker().u32(n, 'rows').u32(cols, 'cols').f32(0.5, 'scale');
 * const buffer = scratch.uniform('probe params', params); // a GpuScratch's uniform buffer (or write params.bytes() yourself)
 */
export class UniformPacker {
  private readonly words: number[] = [];
  private readonly kinds: ('u32' | 'i32' | 'f32')[] = [];

  /** Appends a `u32` member. */
  u32(value: number, name: string): this {
    check(
      Number.isInteger(value) && value >= 0 && value <= 0xffffffff,
      () => `uniform ${name} must be an integer in [0, 2^32 - 1], got ${describeValue(value)}`,
    );
    return this.push(value, 'u32');
  }

  /** Appends an `i32` member. */
  i32(value: number, name: string): this {
    check(
      Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff,
      () => `uniform ${name} must be an integer in [-2^31, 2^31 - 1], got ${describeValue(value)}`,
    );
    return this.push(value, 'i32');
  }

  /** Appends an `f32` member (rounded to f32). */
  f32(value: number, name: string): this {
    check(Number.isFinite(value), () => `uniform ${name} must be finite, got ${describeValue(value)}`);
    return this.push(value, 'f32');
  }

  /**
   * Appends zero words up to byte `offset` (a multiple of 4, at or past the current end): the implicit
   * padding WGSL puts before a member with a larger alignment, e.g. a 16-byte-aligned `array<vec4<…>>`.
   */
  padTo(offset: number): this {
    const end = 4 * this.words.length;
    check(
      Number.isInteger(offset) && offset % 4 === 0 && offset >= end,
      () => `uniform padding must end at a multiple of 4 at or past byte ${end}, got ${describeValue(offset)}`,
    );
    while (4 * this.words.length < offset) this.push(0, 'u32');
    return this;
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
