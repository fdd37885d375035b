import { check } from '../errors.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { latticeSpec } from './latticeSpec.js';
import type { DeterministicLatticeMatrix } from './quantizedMatrix.js';
import { deterministicQuadForm, type DeterministicQuadForm } from './quadForm.js';
import type { DeterministicLatticeScheme } from './schemes.js';

/*
 * The residue form: the leaders of an e8-q16-deterministic matrix repacked for a GEMV that decodes
 * them in a few byte-lane instructions instead of the nearest-point rule (≈ 25 instructions per block
 * instead of ≈ 185; src/gpu/kernels/e8ResidueGemvI8.ts, the GEMV of QuantizedLinear's `int8Inputs`
 * for these weights, which the GPU benchmark times beside the scheme's own E8 GEMV: bench/README.md,
 * "E8: leaders stored as residues"). The codes stay what the library stores (and what `read()`
 * returns); this is a layout made at upload, 40 bits per block instead of the stored 34 (code and
 * scale index): 18 % more bytes read for ≈ 7× fewer instructions per block.
 *
 * Why it works. A leader ℓ of E8 with q = 16 (point coordinates, pointScale 2) is the rounding error of
 * the lifted point against 16·E8: every coordinate is its residue mod 32 taken in [−16, 16), except
 * at most one, which the parity fix moved by ±32 (gemv_decode_e8_bytes.wgsl derives this), and all
 * eight have one parity. So ℓ_i = (v_i − 16) + f_i with v_i = central(ℓ_i) + 16 ∈ [0, 32), v_i =
 * 2·n_i + p for a nibble n_i and the shared parity p, and f_i ∈ {0, ±32} nonzero for at most one i.
 *
 * Layout per block: one residue word (nibble n_i at bits 4i, the order of the code's digits, so that
 * `(word << 1) & 0x1e1e1e1e` holds coordinates 0, 2, 4, 6 and `(word >> 3) & 0x1e1e1e1e` coordinates
 * 1, 3, 5, 7 as bytes) and one side byte:
 *   bit 0      p, the parity of the leader's coordinates;
 *   bits 1–3   i, the coordinate the fix moves (0 when none);
 *   bits 4–5   the block's scale index (the scheme has 4 multiples);
 *   bits 6–7   the fix: 00 none, 01 +32, 11 −32 (so that the byte masked by 0xc0, read as i8, is 2·f_i:
 *              0, +64 or −64).
 * Columns are padded to whole quads (4 blocks: a 16-byte load of residue words and one side word) with
 * the origin's block (residues 16, i.e. nibbles 8, parity 0, no fix).
 */

/** Blocks per quad: a 16-byte load of residue words and one word of side bytes. */
export const E8_RESIDUE_QUAD_BLOCKS = 4;

/** Quads per column of a matrix with `blocksPerColumn` blocks (the last one padded with the origin). */
export function e8ResidueQuads(blocksPerColumn: number): number {
  return Math.ceil(blocksPerColumn / E8_RESIDUE_QUAD_BLOCKS);
}

/** E8 with q = 16: residues mod 2q = 32 in 5 bits. */
const Q = 16;
const PERIOD = 2 * Q;

/** An e8-q16-deterministic matrix in the residue form (see the module comment). */
export interface E8ResidueMatrix extends DeterministicQuadForm {
  /** 4·quadsPerColumn residue words per column. */
  readonly residues: Uint32Array;
  /** quadsPerColumn words of side bytes per column (byte t: block 4·quad + t). */
  readonly sides: Uint32Array;
}

/** Why a deterministic matrix (on the CPU or uploaded) cannot take the residue form, or null. */
export function e8ResidueUnsupported(m: { readonly scheme: DeterministicLatticeScheme; readonly multiples: ArrayLike<number> }): string | null {
  if (m.scheme.lattice !== 'E8' || m.scheme.q !== Q) return `the residue form is for E8 with q = 16 (e8-q16-deterministic); this matrix is ${m.scheme.lattice} with q = ${m.scheme.q}`;
  if (m.multiples.length > 4) return `the residue form holds 2-bit scale indices; this matrix has ${m.multiples.length} multiples`;
  return null;
}

/** The residue word and side byte (scale index 0) of a leader of E8 with q = 16 (see the module comment). */
export function residueOfLeader(leader: ArrayLike<number>): { word: number; side: number } {
  const p = (leader[0] as number) & 1;
  let word = 0;
  let fixed = 0;
  let fix = 0;
  for (let i = 0; i < 8; i++) {
    const l = leader[i] as number;
    check((l & 1) === p, 'residueOfLeader: the coordinates of an E8 leader share one parity');
    // central(ℓ) ∈ [−16, 16): ℓ's residue mod 32; the rest, 0 or ±32, is the fix.
    const central = ((((l + Q) % PERIOD) + PERIOD) % PERIOD) - Q;
    const f = l - central;
    if (f !== 0) {
      check(fix === 0 && (f === PERIOD || f === -PERIOD), () => `residueOfLeader: (${Array.from(leader).join(', ')}) is not a leader of E8 with q = 16`);
      fixed = i;
      fix = f;
    }
    word += ((central + Q) >> 1) * 2 ** (4 * i);
  }
  const fixBits = fix === 0 ? 0 : fix > 0 ? 1 : 3;
  return { word, side: p | (fixed << 1) | (fixBits << 6) };
}

/** The leader a residue word and side byte hold (the kernel's decode, on the CPU). */
export function leaderOfResidue(word: number, side: number, out: Int32Array = new Int32Array(8)): Int32Array {
  const p = side & 1;
  const fixed = (side >> 1) & 7;
  const fixByte = side & 0xc0;
  const fix = fixByte === 0 ? 0 : ((fixByte << 24) >> 24) / 2; // the byte as i8, halved: ±32
  for (let i = 0; i < 8; i++) {
    const n = Math.floor(word / 2 ** (4 * i)) & 15;
    out[i] = 2 * n + p - Q + (i === fixed ? fix : 0);
  }
  return out;
}

/** The scale index a side byte holds. */
export function scaleIndexOfSide(side: number): number {
  return (side >> 4) & 3;
}

/**
 * Repacks an e8-q16-deterministic matrix into the residue form. Each block's leader comes
 * from `VoronoiCode.decode`, so the form decodes to exactly the matrix's rotated decode.
 *
 * @example
 * const r = e8ResidueForm(quantize(w, { scheme: 'e8-q16-deterministic' }) as DeterministicLatticeMatrix);
 */
export function e8ResidueForm(m: DeterministicLatticeMatrix): E8ResidueMatrix {
  const why = e8ResidueUnsupported(m);
  if (why !== null) check(false, `e8ResidueForm: ${why}`);
  const lattice = latticeSpec('E8').lattice;
  const code = new VoronoiCode(lattice, Q);
  const blocks = m.blocksPerColumn;
  const quads = e8ResidueQuads(blocks);
  const residues = new Uint32Array(m.cols * quads * E8_RESIDUE_QUAD_BLOCKS);
  const sides = new Uint32Array(m.cols * quads);
  const leader = new Int32Array(8);
  const origin = residueOfLeader(leader);
  residues.fill(origin.word);
  for (let j = 0; j < m.cols; j++) {
    for (let b = 0; b < blocks; b++) {
      const index = j * blocks + b;
      code.decode(m.codes[index] as number, leader);
      const { word, side } = residueOfLeader(leader);
      const at = j * quads * E8_RESIDUE_QUAD_BLOCKS + b;
      residues[at] = word;
      const sideAt = j * quads + (b >> 2);
      sides[sideAt] = ((sides[sideAt] as number) | ((side | ((m.scaleIndices[index] as number) << 4)) << (8 * (b & 3)))) >>> 0;
    }
  }
  return { ...deterministicQuadForm(m, quads, m.unit / (lattice.pointScale * Math.sqrt(m.length))), residues, sides };
}
