/**
 * How far one product's squared error strays from its expectation (README, "The guarantee"): for
 * independent quantizations of A and B (fresh nonces each draw), the relative standard deviation of
 * ‖ÂᵀB̂ − AᵀB‖²_F over the draws, beside √(2/(a·b)) (a × b entries in general position) and the
 * parallel-column bound 1.15·√((1/a_eff + 1/b_eff)/2), a_eff = ‖A‖⁴_F / Σ‖a_i‖⁴; and the mean
 * error over expectedProductError (1 up to sampling noise: the guarantee itself).
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs bench/productSpread.ts [--n 256 --draws 400]
 */
import { testMatrixPair } from '../src/data/testMatrices.js';
import { matmulATExact, type Matrix } from '../src/matrix.js';
import { expectedProductError } from '../src/product/expectedError.js';
import { matmulAT } from '../src/product/matmulAT.js';
import { quantize } from '../src/quantize/quantize.js';
import type { SchemeName } from '../src/quantize/schemes.js';
import { gaussianMatrix } from '../src/rotation/random.js';
import { markdownTable, parseArgs } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'number', draws: 'number' });
const n = (args.get('n') as number | undefined) ?? 256;
const draws = (args.get('draws') as number | undefined) ?? 400;

/** ‖A‖⁴_F / Σ‖a_i‖⁴: the number of columns of similar norm A acts like. */
function effectiveColumns(m: Matrix): number {
  let total = 0;
  let fourth = 0;
  for (let j = 0; j < m.cols; j++) {
    let square = 0;
    for (let i = 0; i < m.rows; i++) square += (m.data[j * m.rows + i] as number) ** 2;
    total += square;
    fourth += square * square;
  }
  return (total * total) / fourth;
}

const cases: { name: string; a: Matrix; b: Matrix; scheme: SchemeName }[] = [
  { name: 'Gaussian, 8 × 8 columns', a: gaussianMatrix(n, 8, 1), b: gaussianMatrix(n, 8, 2), scheme: 'e8-q16' },
  { name: 'Gaussian, 8 × 8 columns', a: gaussianMatrix(n, 8, 1), b: gaussianMatrix(n, 8, 2), scheme: 'd3-q6' },
  { name: 'Gaussian, 32 × 32 columns', a: gaussianMatrix(n, 32, 1), b: gaussianMatrix(n, 32, 2), scheme: 'e8-q16' },
  { name: 'parallel, 32 × 32 columns', ...testMatrixPair('parallel', n, 32, 32, 1), scheme: 'e8-q16' },
];

const rows: string[][] = [];
for (const { name, a, b, scheme } of cases) {
  const exact = matmulATExact(a, b);
  const errors: number[] = [];
  let expected = 0;
  for (let t = 0; t < draws; t++) {
    const qa = quantize(a, { scheme, nonce: 2 * t + 1 });
    const qb = quantize(b, { scheme, nonce: 2 * t + 2 });
    const c = matmulAT(qa, qb);
    errors.push(c.data.reduce((s, v, k) => s + (v - (exact.data[k] as number)) ** 2, 0));
    expected = expectedProductError(qa, qb); // the same for every draw: norms and schemes only
  }
  const mean = errors.reduce((s, v) => s + v, 0) / draws;
  const spread = Math.sqrt(errors.reduce((s, v) => s + (v - mean) ** 2, 0) / (draws - 1)) / mean;
  const bound = 1.15 * Math.sqrt((1 / effectiveColumns(a) + 1 / effectiveColumns(b)) / 2);
  rows.push([name, scheme, spread.toFixed(3), Math.sqrt(2 / (a.cols * b.cols)).toFixed(3), bound.toFixed(3), (mean / expected).toFixed(3)]);
}
console.log(`n = ${n}, ${draws} independent quantizations of A and B per row\n`);
console.log(markdownTable(['data', 'scheme', 'relative std of ‖ÂᵀB̂ − AᵀB‖²', '√(2/(a·b))', '1.15·√((1/a_eff + 1/b_eff)/2)', 'mean / expected'], rows));
