import { check, checkPositiveInteger } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { rotationLength } from '../rotation/hadamard.js';
import { Rng } from '../rotation/random.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';

/**
 * Kinds of test data. Gaussian is the seed paper's setting; the others stress a quantizer the way
 * The universality guarantee is about (README, "Universality"): large inner products (low rank, parallel columns), shared
 * outlier coordinates, heavy tails, flat rotated columns (spikes), and pairs whose rotated columns are
 * permutations of each other (block norms perfectly correlated while AᵀB is small).
 */
export type DataKind = 'gaussian' | 'heavy-tailed' | 'outlier-rows' | 'low-rank' | 'parallel' | 'spikes' | 'two-spikes' | 'permuted';

/** Every {@link DataKind}, in a fixed order (for iterating). */
export const DATA_KINDS: readonly DataKind[] = ['gaussian', 'heavy-tailed', 'outlier-rows', 'low-rank', 'parallel', 'spikes', 'two-spikes', 'permuted'];

/**
 * A pair (A, B) of n × a and n × b matrices of the given kind, reproducible from `seed`:
 * - `gaussian`: iid N(0, 1).
 * - `heavy-tailed`: iid Student-t with 3 degrees of freedom (infinite kurtosis).
 * - `outlier-rows`: Gaussian, with 1% of the rows (coordinates) scaled by 20 in both A and B, like
 *   the outlier channels of LLM activations.
 * - `low-rank`: A and B share a rank-4 column space (plus 5% noise), so AᵀB has large entries.
 * - `parallel`: every column of A and B is ±c_j·u for one shared direction u (plus 1% noise), with
 *   weights c_j = 1 + (j mod 5) (the universality study's rank-one family; AᵀB is rank one and large).
 * - `spikes`: each column is one entry of 40 at a random row plus N(0, 0.05²) noise: flat after the
 *   rotation.
 * - `two-spikes`: two equal entries of 40 per column, in distinct rows (one for n = 1; rotated values in {0, ±√2·40/√N}).
 * - `permuted`: B's rotated columns are A's with neighbouring coordinates swapped (rotation `rotationSeed`),
 *   so every block of B has the norm of the matching block of A while ⟨a, b⟩ is small.
 *
 * @example
 * const { a, b } = testMatrixPair('heavy-tailed', 768, 64, 64, 1);
 */
export function testMatrixPair(kind: DataKind, n: number, aCols: number, bCols: number, seed: number, rotationSeed = 1): { a: Matrix; b: Matrix } {
  checkPositiveInteger(n, 'n');
  checkPositiveInteger(aCols, 'aCols');
  checkPositiveInteger(bCols, 'bCols');
  check(DATA_KINDS.includes(kind), () => `unknown data kind '${kind}'; known: ${DATA_KINDS.join(', ')}`);
  const rng = new Rng(seed);
  const a = new Float32Array(n * aCols);
  const b = new Float32Array(n * bCols);
  switch (kind) {
    case 'parallel': {
      const u = Float64Array.from({ length: n }, () => rng.nextGaussian());
      for (const [m, cols] of [[a, aCols], [b, bCols]] as const) {
        for (let j = 0; j < cols; j++) {
          const weight = (1 + (j % 5)) * (rng.nextU32() % 2 === 0 ? 1 : -1);
          for (let i = 0; i < n; i++) m[j * n + i] = weight * ((u[i] as number) + 0.01 * rng.nextGaussian());
        }
      }
      break;
    }
    case 'spikes':
    case 'two-spikes': {
      const count = kind === 'spikes' ? 1 : 2;
      for (const [m, cols] of [[a, aCols], [b, bCols]] as const) {
        for (let j = 0; j < cols; j++) {
          for (let i = 0; i < n; i++) m[j * n + i] = 0.05 * rng.nextGaussian();
          // Distinct rows (where there are two): a repeated row made a single spike.
          const first = rng.nextInt(n);
          m[j * n + first] = 40;
          if (count === 2 && n > 1) {
            let second = rng.nextInt(n);
            while (second === first) second = rng.nextInt(n);
            m[j * n + second] = 40;
          }
        }
      }
      break;
    }
    case 'permuted': {
      const rotation = new RandomizedHadamard(n, rotationSeed);
      const length = rotationLength(n);
      check(length === n, () => `'permuted' data needs an unpadded rotation, rotationLength(n) = n (a Hadamard length, or n > 256), got n = ${n}`);
      const y = new Float32Array(n);
      const swapped = new Float32Array(n);
      const cols = Math.max(aCols, bCols);
      for (let j = 0; j < cols; j++) {
        for (let i = 0; i < n; i++) y[i] = rng.nextGaussian();
        for (let i = 0; i < n; i++) swapped[i] = y[i % 2 === 0 ? Math.min(i + 1, n - 1) : i - 1] as number;
        if (j < aCols) a.set(rotation.inverse(y), j * n);
        if (j < bCols) b.set(rotation.inverse(swapped), j * n);
      }
      break;
    }
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
