/**
 * Would one scale index per group of 4 D3 blocks (12 entries, one code word: the unit the int8-input
 * GEMV already reads) cost much accuracy? d3-q6-deterministic stores a 2-bit ladder index per block
 * (3 entries); the int8-input GEMV spends ≈ 5 of its ≈ 15 instructions per block on it (the field, the
 * cubic for 6k, the multiply of the block's dot product), so a per-group index would leave ≈ 9 per
 * block (bench/README.md, "One scale per group of 4 blocks"). This measures, on Gaussian columns (what
 * the randomized Hadamard rotation makes of any column), with the library's own block encoder
 * (`LatticeBlockEncoder`, first-fit ladder, clipping where no scale fits):
 *   - per block: the scheme as it is (the baseline, checked against `quantize` + `dequantize`);
 *   - per group of 4 blocks: the smallest ladder step at which all 4 blocks fit (clipping at the
 *     largest where none does), with the scheme's 4-step ladder and with finer ladders over the
 *     same span (8 and 16 steps) or a wider one,
 * and prints the stored bits per entry (codes and indices; the per-column floats add ≈ 0.01 at 4096
 * rows), the NMSE ‖ŵ − w‖²/‖w‖², and the rate loss R − ½·log2(1/NMSE): the bits above the Gaussian
 * rate-distortion bound (lower is better; a fair way to compare schemes of different rates).
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs bench/d3GroupScale.ts [--n 4096 --cols 256]
 */
import { dequantize } from '../src/product/dequantize.js';
import { dequantizeD3GroupScaled, encodeD3GroupScaled, GROUP_SCALE_STEPS } from '../src/quantize/d3GroupScale.js';
import { fixedPointNumerator, toFixedPoint } from '../src/quantize/columnScaling.js';
import { LatticeBlockEncoder, type BlockCode } from '../src/quantize/latticeEncoder.js';
import { latticeSpec } from '../src/quantize/latticeSpec.js';
import { quantize } from '../src/quantize/quantize.js';
import { FRACTION_BITS, scaleGrid, type ScaleGrid } from '../src/quantize/scaleGrid.js';
import { SCHEMES, type DeterministicLatticeScheme } from '../src/quantize/schemes.js';
import { gaussianMatrix } from '../src/rotation/random.js';
import { markdownTable, parseArgs } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'number', cols: 'number' });
const n = (args.get('n') as number | undefined) ?? 4096;
const cols = (args.get('cols') as number | undefined) ?? 256;
const GROUP_BLOCKS = 4;

const scheme = SCHEMES['d3-q6-deterministic'] as DeterministicLatticeScheme;
if (scheme.overload.kind !== 'ladder') throw new Error('d3-q6-deterministic is expected to use a ladder');
const { lattice, maxDenominator } = latticeSpec('D3');
const d = lattice.dimension;
const s = lattice.pointScale;
const ladder = scheme.overload;

/**
 * One scale index per `blocksPerIndex` blocks, over the ladder β·ratio^t, t < steps, chosen by first
 * fit (the smallest step at which every block fits, as the scheme does per block) or by least error
 * (the step whose total squared error over the blocks, clipped ones included, is least).
 */
interface Variant {
  readonly name: string;
  readonly blocksPerIndex: number;
  readonly steps: number;
  readonly ratio: number;
  readonly choice: 'first fit' | 'least error';
}
const span = ladder.ratio ** (ladder.steps - 1);
const variants: Variant[] = [
  { name: 'per block (the scheme)', blocksPerIndex: 1, steps: ladder.steps, ratio: ladder.ratio, choice: 'first fit' },
  { name: 'per block, least error', blocksPerIndex: 1, steps: ladder.steps, ratio: ladder.ratio, choice: 'least error' },
  { name: 'per group of 4, same ladder', blocksPerIndex: GROUP_BLOCKS, steps: ladder.steps, ratio: ladder.ratio, choice: 'first fit' },
  { name: 'per group of 4, same ladder, least error', blocksPerIndex: GROUP_BLOCKS, steps: ladder.steps, ratio: ladder.ratio, choice: 'least error' },
  { name: 'per group of 4, 8 steps, same span', blocksPerIndex: GROUP_BLOCKS, steps: 8, ratio: span ** (1 / 7), choice: 'first fit' },
  { name: 'per group of 4, 8 steps, same span, least error', blocksPerIndex: GROUP_BLOCKS, steps: 8, ratio: span ** (1 / 7), choice: 'least error' },
  { name: 'per group of 4, 16 steps, same span, least error', blocksPerIndex: GROUP_BLOCKS, steps: 16, ratio: span ** (1 / 15), choice: 'least error' },
];

/** A grid of the single multiple `k` of `grid` (encodes at that scale, or clips there). */
const singleScale = (grid: ScaleGrid, k: number): ScaleGrid => ({ unit: grid.unit, multiples: Int32Array.of(k), indexBits: 0, leastError: false });

/**
 * Σ over a column of (X_i − X̂_i)² and Σ X_i², in fixed-point units (X̂ = den·P/s), for one variant.
 */
function columnError(fixed: Int32Array, blocks: number, grid: ScaleGrid, variant: Variant): { error: number; energy: number } {
  const encoders = Array.from(grid.multiples, (k) => new LatticeBlockEncoder(lattice, scheme.q, singleScale(grid, k)));
  const result: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
  const decoded = new Int32Array(d);
  const blockError = (b: number, step: number): { error: number; clipped: boolean } => {
    (encoders[step] as LatticeBlockEncoder).encodeBlock(fixed.subarray(b * d, (b + 1) * d), result, decoded);
    const den = (grid.multiples[step] as number) * 2 ** FRACTION_BITS;
    let error = 0;
    for (let i = 0; i < d; i++) {
      const e = (s * (fixed[b * d + i] as number) - den * (decoded[i] as number)) / s;
      error += e * e;
    }
    return { error, clipped: result.clipped };
  };
  let error = 0;
  const steps = grid.multiples.length;
  for (let first = 0; first < blocks; first += variant.blocksPerIndex) {
    const last = Math.min(blocks, first + variant.blocksPerIndex);
    // Each step's total error over the blocks (clipped blocks at their clipped point) and whether
    // every block fits there.
    let chosen = -1;
    let chosenError = Infinity;
    for (let step = 0; step < steps; step++) {
      let total = 0;
      let fits = true;
      for (let b = first; b < last; b++) {
        const e = blockError(b, step);
        fits &&= !e.clipped;
        total += e.error;
      }
      if (variant.choice === 'first fit') {
        // The smallest step at which every block fits; where none does, the largest (clipping there).
        if (fits || step === steps - 1) {
          chosen = step;
          chosenError = total;
          break;
        }
      } else if (total < chosenError) {
        chosen = step;
        chosenError = total;
      }
    }
    if (chosen < 0) throw new Error('no scale step chosen');
    error += chosenError;
  }
  let energy = 0;
  for (let i = 0; i < blocks * d; i++) energy += (fixed[i] as number) ** 2;
  return { error, energy };
}

const w = gaussianMatrix(n, cols, 7);
const blocksPerColumn = Math.ceil(n / d);
const rows: string[][] = [];
const nmseByVariant = new Map<Variant, number>();
for (const variant of variants) {
  const grid = scaleGrid({ kind: 'ladder', beta: ladder.beta, ratio: variant.ratio, steps: variant.steps }, maxDenominator);
  const numerator = fixedPointNumerator(n, grid.unit);
  const fixed = new Int32Array(blocksPerColumn * d);
  let error = 0;
  let energy = 0;
  for (let j = 0; j < cols; j++) {
    const column = w.data.subarray(j * n, (j + 1) * n);
    let norm = 0;
    for (const v of column) norm += v * v;
    fixed.fill(0);
    toFixedPoint(Float32Array.from(column), Math.fround(numerator / Math.fround(Math.sqrt(norm))), n, fixed);
    const e = columnError(fixed, blocksPerColumn, grid, variant);
    error += e.error;
    energy += e.energy;
  }
  const nmse = error / energy;
  nmseByVariant.set(variant, nmse);
  const bits = (8 * variant.blocksPerIndex + grid.indexBits) / (d * variant.blocksPerIndex);
  rows.push([variant.name, variant.choice, String(variant.steps), variant.ratio.toFixed(3), bits.toFixed(3), nmse.toExponential(3), (bits - 0.5 * Math.log2(1 / nmse)).toFixed(3)]);
}

// The baseline through the library itself (no rotation: the columns are Gaussian already; no gain):
// the per-block row above must match it.
const q = quantize(w, { scheme: 'd3-q6-deterministic', seed: 1, rotate: false, gain: 'none' });
const back = dequantize(q);
let libraryError = 0;
let libraryEnergy = 0;
for (let i = 0; i < w.data.length; i++) {
  libraryError += ((back.data[i] as number) - (w.data[i] as number)) ** 2;
  libraryEnergy += (w.data[i] as number) ** 2;
}

console.log(`D3, q = 6, ${cols} Gaussian columns of ${n}: one ladder index per block or per group of ${GROUP_BLOCKS} blocks\n`);
console.log(markdownTable(['scale index', 'choice', 'steps', 'ratio', 'bits / entry (codes + indices)', 'NMSE', 'rate loss (bits)'], rows));
const libraryNmse = libraryError / libraryEnergy;
console.log(`\nquantize + dequantize (d3-q6-deterministic, rotate: false, gain: 'none'): NMSE ${libraryNmse.toExponential(3)}`);
// The first row re-encodes the scheme block by block; if it does not reproduce the library's error,
// the other rows measure something else than they claim.
const baseline = nmseByVariant.get(variants[0] as Variant) as number;
if (Math.abs(baseline / libraryNmse - 1) > 0.01) {
  console.error(`the per-block row (${baseline.toExponential(3)}) does not reproduce the library's NMSE (${libraryNmse.toExponential(3)})`);
  process.exit(1);
}

// The group-scaled prototype that the GPU benchmark times (src/quantize/d3GroupScale.ts: 16 steps,
// least error) must be the row of the same name.
const prototype = dequantizeD3GroupScaled(encodeD3GroupScaled(w));
let prototypeError = 0;
for (let i = 0; i < w.data.length; i++) prototypeError += ((prototype.data[i] as number) - (w.data[i] as number)) ** 2;
const prototypeNmse = prototypeError / libraryEnergy;
console.log(`encodeD3GroupScaled + dequantizeD3GroupScaled (the GPU benchmark's prototype, ${GROUP_SCALE_STEPS} steps, least error): NMSE ${prototypeNmse.toExponential(3)}`);
const prototypeRow = variants.find((v) => v.blocksPerIndex === GROUP_BLOCKS && v.steps === GROUP_SCALE_STEPS && v.choice === 'least error');
const rowNmse = prototypeRow === undefined ? undefined : nmseByVariant.get(prototypeRow);
if (rowNmse === undefined || Math.abs(rowNmse / prototypeNmse - 1) > 0.01) {
  console.error(`the ${GROUP_SCALE_STEPS}-step least-error row (${rowNmse?.toExponential(3) ?? 'missing'}) does not reproduce the prototype's NMSE (${prototypeNmse.toExponential(3)})`);
  process.exit(1);
}
