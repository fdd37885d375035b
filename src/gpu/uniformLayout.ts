import { check } from '../errors.js';
import { UniformPacker } from './uniforms.js';

/** The scalar types a uniform member may have (all 4 bytes, so the struct has no padding between members). */
export type UniformScalar = 'u32' | 'i32' | 'f32';

/**
 * A uniform struct declared once: the WGSL `struct` is generated from this declaration and the host
 * packs values by member name, so the two can never disagree (a missing or unknown member is an error).
 *
 * @example
 * const Params = new UniformLayout('GemvParams', { cols: 'u32', scale: 'f32' });
 * const wgsl = `${Params.wgsl()}\n@group(0) @binding(0) var<uniform> params: GemvParams;`;
 * const bytes = Params.pack({ cols: 8, scale: 0.5 }); // a UniformPacker in declaration order
 */
export class UniformLayout<Members extends Record<string, UniformScalar>> {
  constructor(
    readonly structName: string,
    readonly members: Members,
  ) {
    check(Object.keys(members).length > 0, () => `uniform struct ${structName} needs at least one member`);
  }

  /** The WGSL declaration `struct Name { member: type, … }`. */
  wgsl(): string {
    const lines = Object.entries(this.members).map(([name, type]) => `  ${name}: ${type},`);
    return `struct ${this.structName} {\n${lines.join('\n')}\n}\n`;
  }

  /** Packs `values` (one per member, range-checked by type) in declaration order. */
  pack(values: { readonly [K in keyof Members]: number }): UniformPacker {
    const packer = new UniformPacker();
    for (const [name, type] of Object.entries(this.members)) {
      const value = (values as Record<string, number | undefined>)[name];
      check(value !== undefined, () => `uniform ${this.structName}.${name} has no value`);
      if (type === 'u32') packer.u32(value, `${this.structName}.${name}`);
      else if (type === 'i32') packer.i32(value, `${this.structName}.${name}`);
      else packer.f32(value, `${this.structName}.${name}`);
    }
    for (const name of Object.keys(values)) check(Object.hasOwn(this.members, name), () => `uniform ${this.structName} has no member ${name}`);
    return packer;
  }
}
