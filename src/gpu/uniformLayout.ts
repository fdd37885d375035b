import { check } from '../errors.js';
import { UniformPacker } from './uniforms.js';

/** The scalar types a uniform member may have (4 bytes, 4-byte aligned). */
export type UniformScalar = 'u32' | 'i32' | 'f32';

/**
 * A fixed-length array of 4-component vectors, WGSL `array<vec4<T>, N>`: elements 16 bytes apart (the
 * stride the uniform address space requires of array elements, so no element needs padding), the
 * array 16-byte aligned. The form for tables in a uniform (small integer matrices, per-scale
 * constants): element k of a flat table is component k % 4 of element k / 4.
 */
export type UniformVec4Array = `array<vec4<${UniformScalar}>, ${number}>`;

/** The type of a uniform member: a scalar or an array of vec4. */
export type UniformMemberType = UniformScalar | UniformVec4Array;

/** The value `pack` takes for a member of type `T`: a number, or for `array<vec4<…>, N>` its 4·N components in order. */
export type UniformValue<T extends UniformMemberType> = T extends UniformScalar ? number : ArrayLike<number>;

/** The values of every member of a layout, by name. */
export type UniformValues<Members extends Record<string, UniformMemberType>> = { readonly [K in keyof Members]: UniformValue<Members[K]> };

/** Where a member lies in the struct and how its values are written. */
interface MemberPlan {
  readonly name: string;
  /** The scalar type of the member or of its vectors' components. */
  readonly scalar: UniformScalar;
  /** Vectors of an array member; undefined for a scalar. */
  readonly vectors: number | undefined;
  /** Byte offset in the struct. */
  readonly offset: number;
  /** Bytes the member occupies. */
  readonly size: number;
}

const SCALARS: readonly string[] = ['u32', 'i32', 'f32'];
const VEC4_ARRAY = /^array<vec4<(u32|i32|f32)>, ?([1-9][0-9]*)>$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/**
 * The offsets of WGSL's memory layout rules for these members (WGSL §"Alignment and Size"): a scalar
 * has alignment and size 4; `array<vec4<T>, N>` has alignment 16 and size 16·N (the vec4 stride of 16
 * already satisfies the uniform address space's rule that array strides be multiples of 16). A member
 * starts at the first multiple of its alignment after the previous member; WGSL leaves the bytes in
 * between unused, and `pack` writes zeros there.
 */
function planMembers(structName: string, members: Record<string, UniformMemberType>): MemberPlan[] {
  const plans: MemberPlan[] = [];
  let end = 0;
  for (const [name, type] of Object.entries(members)) {
    check(IDENTIFIER.test(name) && name !== '_', () => `uniform ${structName}: member name '${name}' is not a WGSL identifier`);
    let scalar: UniformScalar;
    let vectors: number | undefined;
    let alignment: number;
    let size: number;
    const array = VEC4_ARRAY.exec(type);
    if (SCALARS.includes(type)) {
      scalar = type as UniformScalar;
      alignment = 4;
      size = 4;
    } else {
      check(
        array !== null,
        () => `uniform ${structName}.${name}: type must be u32, i32, f32 or array<vec4<u32|i32|f32>, N> (N ≥ 1), got '${String(type)}'`,
      );
      scalar = array[1] as UniformScalar;
      vectors = Number(array[2]);
      check(Number.isSafeInteger(vectors), () => `uniform ${structName}.${name}: array length ${array[2]} is too large`);
      alignment = 16;
      size = 16 * vectors;
    }
    const offset = roundUp(end, alignment);
    plans.push({ name, scalar, vectors, offset, size });
    end = offset + size;
  }
  return plans;
}

/**
 * A uniform struct declared once: the WGSL `struct` is generated from this declaration and the host
 * packs values by member name, so the two can never disagree (a missing or unknown member is an
 * error, and so is an array value of the wrong length). Members are 4-byte scalars or
 * `array<vec4<T>, N>` tables; WGSL's alignment padding before an array is computed here, so a
 * declaration lists only the members that carry data.
 *
 * @example
 * const Params = new UniformLayout('GemvParams', { cols: 'u32', scale: 'f32', multiples: 'array<vec4<i32>, 4>' });
 * const wgsl = `${Params.wgsl()}\n@group(0) @binding(0) var<uniform> params: GemvParams;`;
 * const bytes = Params.pack({ cols: 8, scale: 0.5, multiples: new Int32Array(16) }); // a UniformPacker
 * Params.offsetOf('multiples'); // 16: WGSL aligns the array to 16 bytes
 */
export class UniformLayout<Members extends Record<string, UniformMemberType>> {
  private readonly plans: readonly MemberPlan[];
  /** Bytes of the struct in WGSL (a multiple of its alignment: 16 with an array member, else 4). */
  readonly byteSize: number;

  constructor(
    readonly structName: string,
    readonly members: Members,
  ) {
    check(IDENTIFIER.test(structName), () => `uniform struct name '${structName}' is not a WGSL identifier`);
    check(Object.keys(members).length > 0, () => `uniform struct ${structName} needs at least one member`);
    this.plans = planMembers(structName, members);
    const last = this.plans[this.plans.length - 1] as MemberPlan;
    const alignment = this.plans.some((p) => p.vectors !== undefined) ? 16 : 4;
    this.byteSize = roundUp(last.offset + last.size, alignment);
  }

  /** The WGSL declaration `struct Name { member: type, … }`. */
  wgsl(): string {
    const lines = this.plans.map((p) => `  ${p.name}: ${p.vectors === undefined ? p.scalar : `array<vec4<${p.scalar}>, ${p.vectors}>`},`);
    return `struct ${this.structName} {\n${lines.join('\n')}\n}\n`;
  }

  /** Byte offset of member `name` in the struct (WGSL's layout). */
  offsetOf(name: keyof Members & string): number {
    const plan = this.plans.find((p) => p.name === name);
    check(plan !== undefined, () => `uniform ${this.structName} has no member ${String(name)}`);
    return plan.offset;
  }

  /**
   * Packs `values` (one per member, range-checked by type; an array member takes exactly 4·N values)
   * at the members' offsets, with zeros in WGSL's padding.
   */
  pack(values: UniformValues<Members>): UniformPacker {
    const packer = new UniformPacker();
    const given = values as Readonly<Record<string, number | ArrayLike<number> | undefined>>;
    for (const { name, scalar, vectors, offset } of this.plans) {
      const value = given[name];
      const label = `${this.structName}.${name}`;
      check(value !== undefined, () => `uniform ${label} has no value`);
      packer.padTo(offset);
      if (vectors === undefined) {
        check(typeof value === 'number', () => `uniform ${label} must be a number, got ${typeof value}`);
        packer[scalar](value, label);
      } else {
        check(
          typeof value === 'object' && value !== null && value.length === 4 * vectors,
          () => `uniform ${label} (array<vec4<${scalar}>, ${vectors}>) needs ${4 * vectors} values, got ${typeof value === 'object' && value !== null ? value.length : typeof value}`,
        );
        for (let i = 0; i < value.length; i++) packer[scalar](value[i] as number, `${label}[${i >> 2}][${i & 3}]`);
      }
    }
    for (const name of Object.keys(given)) check(Object.hasOwn(this.members, name), () => `uniform ${this.structName} has no member ${name}`);
    return packer.padTo(this.byteSize);
  }
}
