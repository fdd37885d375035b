import { check, describeValue } from '../errors.js';
import type { QuantizedMatrix, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';

/*
 * What two quantized operands of one product must share, in one place: `matmulAT` and the error
 * predictions of expectedError.ts (which describe `matmulAT`'s result) refuse exactly the same pairs.
 * Both operands must have passed `checkQuantizedMatrix` first.
 */

/**
 * Why operands of `rows` rows rotated to `lengthA` and `lengthB` entries do not multiply, and the
 * remedy: since format version 3, 256 < n ≤ 1024 rows rotate unpadded, where older files padded.
 */
export function differentRotatedLengths(rows: number, lengthA: number, lengthB: number): string {
  return (
    `A and B are rotated to different lengths (${lengthA} and ${lengthB} entries for ${rows} rows), so their rotations differ: ` +
    'one was time-shared or comes from a container of format version 2 or earlier, which padded the rotation; ' +
    `quantize the other with rotatedLength: ${Math.max(lengthA, lengthB)} (and the same seed) to pair them`
  );
}

/** Refuses operands that `matmulAT` cannot multiply: rows, rotation, kept length, centring. */
export function checkCompatible(qa: QuantizedMatrix, qb: QuantizedMatrix): void {
  check(qa.rows === qb.rows, () => `A and B must have the same number of rows (got ${describeValue(qa.rows)} and ${qb.rows})`);
  check(qa.rotate === qb.rotate, 'A and B must both be rotated or both not');
  check(!qa.rotate || qa.seed === qb.seed, () => `A and B were rotated with different seeds (${qa.seed} and ${qb.seed}); quantize both with the same seed`);
  check(qa.length === qb.length, () => differentRotatedLengths(qa.rows, qa.length, qb.length));
  check(qa.keptLength === qb.keptLength, () => `A and B keep different numbers of rotated coordinates (${qa.keptLength} and ${qb.keptLength})`);
  check((qa.means === null) === (qb.means === null), 'A and B must both be centred or both not (the mean term needs both means)');
}

/**
 * The matrix when `qa` and `qb` are one universal quantization — the same object, or the same nonce
 * and equal in every field that defines the quantized matrix (its shape, rotation, scheme, norms,
 * means, codes and escape streams) — so that their product is a Gram matrix ÂᵀÂ; null when they are
 * not (independent nonces, or not both universal). Two different matrices with the same nonce are
 * refused: their dithers are the same, so their errors are not independent and neither the
 * independent-pair estimate nor the Gram one holds. `bitsStored` and `bitsEntropy` are not compared:
 * they are counted from the fields that are.
 */
export function isSameQuantization(qa: QuantizedMatrix, qb: QuantizedMatrix): UniversalLatticeMatrix | null {
  if (qa.kind !== 'lattice' || qa.mode !== 'universal' || qb.kind !== 'lattice' || qb.mode !== 'universal') return null;
  if (qa === qb) return qa;
  if (qa.nonce !== qb.nonce) return null;
  const same =
    qa.rows === qb.rows &&
    qa.cols === qb.cols &&
    qa.length === qb.length &&
    qa.keptLength === qb.keptLength &&
    qa.rotate === qb.rotate &&
    qa.seed === qb.seed &&
    qa.blocksPerColumn === qb.blocksPerColumn &&
    qa.scheme.lattice === qb.scheme.lattice &&
    qa.scheme.q === qb.scheme.q &&
    qa.scheme.beta === qb.scheme.beta &&
    equalOptionalArrays(qa.means, qb.means) &&
    equalArrays(qa.norms, qb.norms) &&
    equalArrays(qa.codes, qb.codes) &&
    equalOptionalArrays(qa.codesHigh, qb.codesHigh) &&
    equalArrays(qa.escapes, qb.escapes) &&
    equalArrays(qa.longEscapes, qb.longEscapes) &&
    equalArrays(qa.hugeEscapes, qb.hugeEscapes);
  check(
    same,
    'A and B were quantized with the same nonce: their quantization errors are not independent, so the product would be biased. ' +
      'Let quantize draw the nonce (the default), or give each matrix its own.',
  );
  return qa;
}

function equalOptionalArrays(a: ArrayLike<number> | null, b: ArrayLike<number> | null): boolean {
  return a === null || b === null ? a === b : equalArrays(a, b);
}

function equalArrays(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
