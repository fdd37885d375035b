/**
 * The pair product's error on the pair it once got wrong: two columns that the rotation turns into a
 * spike on a constant, so that both are stored shifted in the pair form, whose pair must keep
 * Σ l_a·l_b (docs/PERFORMANCE.md, the products' pair form: dropping the term gave 135× the guarantee's
 * error at e8-4bit and 1988× at e8-5bit, n = 4096). Over `--nonces` independent quantizations of both
 * columns it prints, per scheme, the squared error of the pair product (`universalPairProduct`, the
 * GPU kernel's CPU twin) and of the decoded product (`matmulAT`) against the exact product of the
 * unquantized columns, each divided by the guarantee (`expectedProductError`): mean ± its standard
 * error over the nonces (the nonces are shared, so the two means move together; the last column is
 * the mean of (pair − decoded)² over the guarantee, what the pair form itself adds). A second table
 * takes test/quantize/universalPairs.test.ts's no-bias case: 4 shifted spike columns against 4 columns
 * that rotate to the constant 1 (unshifted), e8-4bit: the pair form's added error, (pair − decoded)²
 * averaged over the 16 entries and the nonces, and its mean over nonces squared (a bias would keep it
 * from falling as 1/nonces), both over the guarantee.
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs bench/pairSpikeError.ts [--n 4096 --nonces 400 --seed 3]
 */
import type { Matrix } from '../src/matrix.js';
import { expectedProductError } from '../src/product/expectedError.js';
import { matmulAT } from '../src/product/matmulAT.js';
import { universalPairProduct } from '../src/product/universalPairProduct.js';
import { quantize } from '../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../src/quantize/quantizedMatrix.js';
import { pairRadixBits, universalPairColumns } from '../src/quantize/universalPairs.js';
import { rotatedSpikeOnConstant } from '../test/quantize/rotatedSpikes.js';
import { markdownTable, parseArgs } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'number', nonces: 'number', seed: 'number' });
const n = (args.get('n') as number | undefined) ?? 4096;
const nonces = (args.get('nonces') as number | undefined) ?? 400;
const seed = (args.get('seed') as number | undefined) ?? 3;
const schemes = ['e8-4bit', 'e8-5bit'] as const;

/** Columns that the rotation of `seed` turns into a spike on a constant at `at`, or into the constant alone where `at` is null. */
function rotatedSpikesOnConstant(at: readonly (number | null)[], flat = 0.02): Matrix {
  const data = new Float32Array(n * at.length);
  at.forEach((position, j) => data.set(rotatedSpikeOnConstant(n, seed, position, flat), j * n));
  return { rows: n, cols: at.length, data };
}

/** Mean and standard error of the mean. */
function meanAndError(values: readonly number[]): { mean: number; error: number } {
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
  const variance = values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, error: Math.sqrt(variance / values.length) };
}

const a = rotatedSpikesOnConstant([5]);
const b = rotatedSpikesOnConstant([77]);
let exact = 0;
for (let k = 0; k < n; k++) exact += (a.data[k] as number) * (b.data[k] as number);

const rows: string[][] = [];
for (const scheme of schemes) {
  const pair: number[] = [];
  const decoded: number[] = [];
  const between: number[] = [];
  for (let t = 0; t < nonces; t++) {
    const qa = quantize(a, { scheme, seed, nonce: 2 * t + 1 }) as UniversalLatticeMatrix;
    const qb = quantize(b, { scheme, seed, nonce: 2 * t + 2 }) as UniversalLatticeMatrix;
    if (t === 0) {
      // The case this measures: both columns shifted in the pair form.
      const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
      const shifts = [universalPairColumns(qa, radixBits).shifts[0], universalPairColumns(qb, radixBits).shifts[0]];
      if (!shifts.every((shift) => (shift as number) > 0)) throw new Error(`${scheme}: the spike columns are not shifted (shifts ${shifts.join(', ')})`);
    }
    const guarantee = expectedProductError(qa, qb);
    const p = universalPairProduct(qa, qb).data[0] as number;
    const d = matmulAT(qa, qb).data[0] as number;
    pair.push((p - exact) ** 2 / guarantee);
    decoded.push((d - exact) ** 2 / guarantee);
    between.push((p - d) ** 2 / guarantee);
  }
  const shown = ({ mean, error }: { mean: number; error: number }): string => `${mean.toFixed(3)} ± ${error.toFixed(3)}`;
  rows.push([scheme, shown(meanAndError(pair)), shown(meanAndError(decoded)), meanAndError(between).mean.toExponential(2)]);
}

console.log(`Two columns of ${n} that rotate to a spike on a constant (seed ${seed}), ${nonces} nonces: squared error / the guarantee\n`);
console.log(markdownTable(['scheme', 'pair product', 'decoded product', '(pair − decoded)²'], rows));

// Shifted spikes against unshifted constants: what the pair form adds, and whether it has a bias.
const spikes = rotatedSpikesOnConstant([0, 97, 194, 291].map((at) => at % n));
const constants = rotatedSpikesOnConstant([null, null, null, null], 1);
const entries = spikes.cols * constants.cols;
const meanDifference = new Float64Array(entries);
let addedError = 0;
let guaranteeSum = 0;
for (let t = 0; t < nonces; t++) {
  const qa = quantize(spikes, { scheme: 'e8-4bit', seed, nonce: 2 * t + 1 }) as UniversalLatticeMatrix;
  const qb = quantize(constants, { scheme: 'e8-4bit', seed, nonce: 2 * t + 2 }) as UniversalLatticeMatrix;
  if (t === 0 && !universalPairColumns(qa, pairRadixBits(qa.scheme.q, qb.scheme.q)).shifts.every((shift) => shift > 0)) {
    throw new Error('e8-4bit: the spike columns are not shifted');
  }
  guaranteeSum += expectedProductError(qa, qb);
  const pair = universalPairProduct(qa, qb).data;
  const decoded = matmulAT(qa, qb).data;
  for (let i = 0; i < entries; i++) {
    const d = (pair[i] as number) - (decoded[i] as number);
    meanDifference[i] = (meanDifference[i] as number) + d / nonces;
    addedError += (d * d) / (nonces * entries);
  }
}
const guarantee = guaranteeSum / nonces;
const squaredMean = meanDifference.reduce((sum, v) => sum + v * v, 0) / entries;
console.log(`\n${spikes.cols} shifted spike columns against ${constants.cols} columns that rotate to the constant 1, e8-4bit, ${nonces} nonces (over the guarantee)\n`);
console.log(
  markdownTable(
    ['(pair − decoded)²', 'mean over nonces, squared', 'the same if unbiased (÷ nonces)'],
    [[(addedError / guarantee).toExponential(2), (squaredMean / guarantee).toExponential(2), (addedError / guarantee / nonces).toExponential(2)]],
  ),
);
