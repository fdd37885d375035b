import { check, describeValue } from '../errors.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { packedLayout, packField, unpackField } from '../format/packing.js';
import type { Matrix } from '../matrix.js';
import { fixedPointNumerator, toFixedPoint } from './columnScaling.js';
import { LatticeBlockEncoder, type BlockCode } from './latticeEncoder.js';
import { latticeSpec } from './latticeSpec.js';
import { FRACTION_BITS, scaleGrid, type ScaleGrid } from './scaleGrid.js';
import { SCHEMES, type DeterministicLatticeScheme } from './schemes.js';

/*
 * A prototype, not a scheme of the library: D3 with q = 6 (the 8-bit codes of d3-q6-deterministic) and
 * one scale index per group of 4 blocks (12 entries, one code word) instead of one per block, chosen
 * by least error over a 16-step ladder spanning the scheme's own. bench/README.md ("D3: one scale
 * index per group of 4 blocks?") measures what it costs in accuracy (bench/d3GroupScale.ts) and what
 * it could gain in a GEMV (the group-scaled variant of the int8-input deterministic GEMV,
 * src/gpu/kernels/d3GroupScaledGemvI8.ts, which the GPU benchmark times beside the scheme's). It has no
 * rotation, gain, centring, container entry or product: its columns are taken as given (the benchmark
 * feeds it Gaussian columns, what the randomized Hadamard rotation makes of any column), so that a
 * GPU run can tell whether the format is worth building.
 */

/** Blocks per scale index: one code word of 8-bit codes. */
export const GROUP_SCALE_BLOCKS = 4;

/** Steps of the prototype's ladder by default (4-bit indices, 8 per u32 word: at most 16). */
export const GROUP_SCALE_STEPS = 16;

/** Bits of one group's scale index. */
export const GROUP_SCALE_INDEX_BITS = 4;

/** A matrix in the group-scaled prototype form: column j ≈ ν_j·unit·k_g·P_b/(pointScale·√rows) on block b of group g. */
export interface D3GroupScaledMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly blocksPerColumn: number;
  /** ceil(blocksPerColumn / 4): code words per column, one scale index each. */
  readonly groupsPerColumn: number;
  /** The ladder's unit and integer multiples (scaleGrid). */
  readonly unit: number;
  readonly multiples: Int32Array;
  /** The 8-bit D3 codes (the Voronoi code of each block's point), packed 4 per word: `groupsPerColumn` words per column. */
  readonly codes: Uint32Array;
  /** The groups' 4-bit scale indices, packed 8 per word: ceil(groupsPerColumn / 8) words per column. */
  readonly groupIndices: Uint32Array;
  /** ν_j = ‖w_j‖ (f32). */
  readonly norms: Float32Array;
}

/** Bits of one block's code: d3-q6's 216 leaders in a byte, 4 per word (one group). */
const GROUP_SCALE_CODE_BITS = 8;

/** Words per column of the packed group scale indices (`packField`'s layout: 8 per word). */
export function groupIndexWordsPerColumn(groupsPerColumn: number): number {
  return packedLayout(GROUP_SCALE_INDEX_BITS, groupsPerColumn).wordsPerColumn;
}

/** The groups' scale indices unpacked (`unpackField` of `groupIndices`): cols × groupsPerColumn, column-major. */
export function groupScaleIndices(m: D3GroupScaledMatrix): Uint32Array {
  return unpackField({ words: m.groupIndices, bits: GROUP_SCALE_INDEX_BITS, ...packedLayout(GROUP_SCALE_INDEX_BITS, m.groupsPerColumn) }, m.groupsPerColumn, m.cols);
}

/** d3-q6-deterministic, whose codes, ladder span and column unit the prototype shares. */
export function groupScaledBaseScheme(): DeterministicLatticeScheme & { overload: { kind: 'ladder' } } {
  const scheme = SCHEMES['d3-q6-deterministic'];
  if (scheme.kind !== 'lattice' || scheme.mode !== 'deterministic' || scheme.overload.kind !== 'ladder') throw new Error('d3-q6-deterministic is expected to be a deterministic ladder scheme');
  return scheme as DeterministicLatticeScheme & { overload: { kind: 'ladder' } };
}

/**
 * The prototype's scale grid: `steps` rungs from d3-q6-deterministic's β to its largest rung (a span
 * of ratio^(steps_scheme − 1) = 2√2), so a group picks among finer steps what the scheme's blocks pick
 * among 4.
 *
 * @example
 * groupScaleGrid().multiples.length; // 16
 */
export function groupScaleGrid(steps: number = GROUP_SCALE_STEPS): ScaleGrid {
  check(Number.isInteger(steps) && steps >= 2 && steps <= 2 ** GROUP_SCALE_INDEX_BITS, () => `the group-scaled prototype takes 2…${2 ** GROUP_SCALE_INDEX_BITS} ladder steps, got ${describeValue(steps)}`);
  const { overload } = groupScaledBaseScheme();
  const span = overload.ratio ** (overload.steps - 1);
  return scaleGrid({ kind: 'ladder', beta: overload.beta, ratio: span ** (1 / (steps - 1)), steps }, latticeSpec('D3').maxDenominator);
}

/**
 * Encodes the columns of `w` as given (no rotation): each column scaled to norm √rows in fixed point
 * (as `quantize` does), each group of 4 blocks encoded at every step of {@link groupScaleGrid}(`steps`) and
 * kept at the step of least squared error (clipped blocks counted at their clipped point; the
 * smaller step on a tie). Refuses non-finite entries and columns whose norm leaves f32's normal range.
 *
 * @example
 * const m = encodeD3GroupScaled(gaussianMatrix(4096, 8, 1));
 * m.codes.length; // 8 · 342 (342 groups of 12 entries per column)
 */
export function encodeD3GroupScaled(w: Matrix, steps: number = GROUP_SCALE_STEPS): D3GroupScaledMatrix {
  const { rows, cols } = w;
  check(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1, () => `encodeD3GroupScaled: the matrix must have at least one row and one column, got ${describeValue(rows)} × ${describeValue(cols)}`);
  const { lattice } = latticeSpec('D3');
  const scheme = groupScaledBaseScheme();
  const d = lattice.dimension;
  const s = lattice.pointScale;
  const grid = groupScaleGrid(steps);
  const blocksPerColumn = Math.ceil(rows / d);
  const groupsPerColumn = Math.ceil(blocksPerColumn / GROUP_SCALE_BLOCKS);
  const numerator = fixedPointNumerator(rows, grid.unit);
  // One encoder per step, each with a grid of that step alone: it encodes there, or clips there.
  const encoders = Array.from(grid.multiples, (k) => new LatticeBlockEncoder(lattice, scheme.q, { unit: grid.unit, multiples: Int32Array.of(k), indexBits: 0, leastError: false }));
  const codes = new Uint32Array(blocksPerColumn * cols);
  const indices = new Uint32Array(groupsPerColumn * cols);
  const norms = new Float32Array(cols);
  const fixed = new Int32Array(groupsPerColumn * GROUP_SCALE_BLOCKS * d); // zero past the rows
  const column = new Float32Array(rows);
  const decoded = new Int32Array(d);
  const block: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
  const stepCodes = new Uint32Array(GROUP_SCALE_BLOCKS);
  const bestCodes = new Uint32Array(GROUP_SCALE_BLOCKS);
  for (let j = 0; j < cols; j++) {
    let sum = 0;
    for (let i = 0; i < rows; i++) {
      const v = w.data[j * rows + i] as number;
      check(Number.isFinite(v), () => `encodeD3GroupScaled: entry (${i}, ${j}) is ${v}`);
      column[i] = v;
      sum += v * v;
    }
    const norm = Math.fround(Math.sqrt(sum));
    check(norm === 0 || (norm >= 2 ** -100 && norm <= 2 ** 100), () => `encodeD3GroupScaled: column ${j} has norm ${norm}; the prototype takes 0 or [2^-100, 2^100]`);
    norms[j] = norm;
    fixed.fill(0);
    if (norm > 0) toFixedPoint(column, Math.fround(numerator / norm), rows, fixed);
    for (let g = 0; g < groupsPerColumn; g++) {
      const first = g * GROUP_SCALE_BLOCKS;
      const last = Math.min(blocksPerColumn, first + GROUP_SCALE_BLOCKS);
      let best = -1;
      let bestError = Infinity;
      encoders.forEach((encoder, step) => {
        const den = (grid.multiples[step] as number) * 2 ** FRACTION_BITS;
        let error = 0;
        for (let b = first; b < last; b++) {
          const x = fixed.subarray(b * d, (b + 1) * d);
          encoder.encodeBlock(x, block, decoded);
          stepCodes[b - first] = block.code;
          for (let i = 0; i < d; i++) error += ((s * (x[i] as number) - den * (decoded[i] as number)) / s) ** 2;
        }
        if (error < bestError) {
          best = step;
          bestError = error;
          bestCodes.set(stepCodes);
        }
      });
      indices[j * groupsPerColumn + g] = best;
      for (let b = first; b < last; b++) codes[j * blocksPerColumn + b] = bestCodes[b - first] as number;
    }
  }
  return {
    rows,
    cols,
    blocksPerColumn,
    groupsPerColumn,
    unit: grid.unit,
    multiples: grid.multiples,
    codes: packField(codes, GROUP_SCALE_CODE_BITS, blocksPerColumn, cols).words,
    groupIndices: packField(indices, GROUP_SCALE_INDEX_BITS, groupsPerColumn, cols).words,
    norms,
  };
}

/**
 * Ŵ of a group-scaled matrix (float64 arithmetic, rounded to f32 once): the CPU twin of its GEMV.
 *
 * @example
 * const back = dequantizeD3GroupScaled(encodeD3GroupScaled(w)); // NMSE ≈ 3.8·10⁻² on Gaussian columns
 */
export function dequantizeD3GroupScaled(m: D3GroupScaledMatrix): Matrix {
  const { lattice } = latticeSpec('D3');
  const d = lattice.dimension;
  const code = new VoronoiCode(lattice, groupScaledBaseScheme().q);
  const { rows, cols, blocksPerColumn, groupsPerColumn } = m;
  const indexWords = groupIndexWordsPerColumn(groupsPerColumn);
  check(
    blocksPerColumn === Math.ceil(rows / d) && groupsPerColumn === Math.ceil(blocksPerColumn / GROUP_SCALE_BLOCKS) && m.codes.length === groupsPerColumn * cols && m.groupIndices.length === indexWords * cols && m.norms.length === cols,
    () => `dequantizeD3GroupScaled: the fields do not match a ${rows} × ${cols} matrix (${m.codes.length} code words, ${m.groupIndices.length} index words, ${m.norms.length} norms)`,
  );
  const indices = groupScaleIndices(m);
  const codes = unpackField({ words: m.codes, bits: GROUP_SCALE_CODE_BITS, ...packedLayout(GROUP_SCALE_CODE_BITS, blocksPerColumn) }, blocksPerColumn, cols);
  const data = new Float32Array(rows * cols);
  const point = new Int32Array(d);
  const toEntries = m.unit / (lattice.pointScale * Math.sqrt(rows));
  for (let j = 0; j < cols; j++) {
    for (let b = 0; b < blocksPerColumn; b++) {
      const g = Math.floor(b / GROUP_SCALE_BLOCKS);
      const index = indices[j * groupsPerColumn + g] as number;
      check(index < m.multiples.length, () => `dequantizeD3GroupScaled: column ${j}, group ${g} has scale index ${index}; there are ${m.multiples.length} multiples`);
      code.decode(codes[j * blocksPerColumn + b] as number, point);
      const scale = (m.norms[j] as number) * toEntries * (m.multiples[index] as number);
      for (let i = 0; i < d && b * d + i < rows; i++) data[j * rows + b * d + i] = scale * (point[i] as number);
    }
  }
  return { rows, cols, data };
}
