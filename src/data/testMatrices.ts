import { check, checkPositiveInteger } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { Rng } from '../rotation/random.js';

/**
 * Kinds of test data. Gaussian is the seed paper's setting; the others stress a deterministic
 * quantizer the way DESIGN §2 asks (large inner products, shared outlier coordinates, heavy tails).
 */
export type DataKind = 'gaussian' | 'heavy-tailed' | 'outlier-rows' | 'low-rank';

export const DATA_KINDS: readonly DataKind[] = ['gaussian', 'heavy-tailed', 'outlier-rows', 'low-rank'];

/**
 * A pair (A, B) of n × a and n × b matrices of the given kind, reproducible from `seed`:
 * - `gaussian`: iid N(0, 1).
 * - `heavy-tailed`: iid Student-t with 3 degrees of freedom (infinite kurtosis).
 * - `outlier-rows`: Gaussian, with 1% of the rows (coordinates) scaled by 20 in both A and B, like
 *   the outlier channels of LLM activations.
 * - `low-rank`: A and B share a rank-4 column space (plus 5% noise), so AᵀB has large entries.
 *
 * @example
 * const { a, b } = testMatrixPair('heavy-tailed', 768, 64, 64, 1);
 */
export function testMatrixPair(kind: DataKind, n: number, aCols: number, bCols: number, seed: number): { a: Matrix; b: Matrix } {
  checkPositiveInteger(n, 'n');
  checkPositiveInteger(aCols, 'aCols');
  checkPositiveInteger(bCols, 'bCols');
  check(DATA_KINDS.includes(kind), () => `unknown data kind '${kind}'; known: ${DATA_KINDS.join(', ')}`);
  const rng = new Rng(seed);
  const a = new Float32Array(n * aCols);
  const b = new Float32Array(n * bCols);
  switch (kind) {
    case 'gaussian':
      fill(a, () => rng.nextGaussian());
      fill(b, () => rng.nextGaussian());
      break;
    case 'heavy-tailed': {
      const studentT = (): number => {
        const z = rng.nextGaussian();
        let chi2 = 0;
        for (let k = 0; k < 3; k++) chi2 += rng.nextGaussian() ** 2;
        return z / Math.sqrt(chi2 / 3);
      };
      fill(a, studentT);
      fill(b, studentT);
      break;
    }
    case 'outlier-rows': {
      const outliers = new Set<number>();
      const count = Math.max(1, Math.round(n / 100));
      while (outliers.size < Math.min(count, n)) outliers.add(rng.nextInt(n));
      for (const [m, cols] of [[a, aCols], [b, bCols]] as const) {
        for (let j = 0; j < cols; j++) {
          for (let i = 0; i < n; i++) m[j * n + i] = rng.nextGaussian() * (outliers.has(i) ? 20 : 1);
        }
      }
      break;
    }
    case 'low-rank': {
      const rank = 4;
      const basis = Float64Array.from({ length: n * rank }, () => rng.nextGaussian());
      for (const [m, cols] of [[a, aCols], [b, bCols]] as const) {
        for (let j = 0; j < cols; j++) {
          const weights = Array.from({ length: rank }, () => rng.nextGaussian());
          for (let i = 0; i < n; i++) {
            let v = 0.05 * rng.nextGaussian();
            for (let r = 0; r < rank; r++) v += (weights[r] as number) * (basis[r * n + i] as number);
            m[j * n + i] = v;
          }
        }
      }
      break;
    }
  }
  return { a: { rows: n, cols: aCols, data: a }, b: { rows: n, cols: bCols, data: b } };
}

function fill(data: Float32Array, draw: () => number): void {
  for (let i = 0; i < data.length; i++) data[i] = draw();
}
