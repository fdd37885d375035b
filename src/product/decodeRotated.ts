import { check } from '../errors.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { DITHER_GRID, universalCodec } from '../quantize/latticeSpec.js';
import { absmaxOptions, schemeLattice } from '../quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, ScalarQuantizedMatrix, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { blockDither, columnKeys, ditherWordKeys, UniversalPointReader } from '../quantize/universalCode.js';
import { absmaxDequantize } from '../scalar/absmax.js';
import { nvfp4Dequantize } from '../scalar/nvfp4.js';

/** The most values `decodeRotated` (so `dequantize`, `matvecAT`, `matmulAT`) decodes at once: 2^31 − 1. */
export const MAX_DECODED_ENTRIES = 2 ** 31 - 1;

/**
 * Refuses a matrix whose rotated decode (`cols × length` values) exceeds `MAX_DECODED_ENTRIES`, as
 * `decodeRotated` does, for the decoders that hold one column (or a few) at a time.
 */
export function checkDecodedSize(q: QuantizedMatrix): void {
  // A time-shared matrix stores as few as d entries per column whatever its length, so a small file
  // can describe a huge decode: refuse it by name, not with a RangeError from the allocation.
  check(
    q.cols * q.length <= MAX_DECODED_ENTRIES,
    () => `decoding ${q.cols} columns of ${q.length} rotated entries takes ${q.cols * q.length} values, more than the CPU decoder holds (2^31 − 1)`,
  );
}

/**
 * Decodes every column of `q` into the rotated domain (before the inverse rotation and the mean):
 * a Float64Array of `cols × length`, column-major, zeros beyond `keptLength`. Column j is what the
 * j-th call of `rotatedColumnDecoder(q)` writes (the decoders that hold one column at a time use that).
 */
export function decodeRotated(q: QuantizedMatrix): Float64Array {
  checkDecodedSize(q);
  const out = new Float64Array(q.cols * q.length);
  const decodeNext = rotatedColumnDecoder(q);
  for (let j = 0; j < q.cols; j++) decodeNext(out.subarray(j * q.length, (j + 1) * q.length));
  return out;
}

/**
 * A function that decodes the next column of `q` (column 0 on its first call, then 1, 2, …) into
 * `out` (`length` entries; zeros beyond `keptLength`, whatever `out` held): column by column what
 * `decodeRotated` holds for all of them, bit for bit, in one column's memory. It needs no size check:
 * callers that stand for `decodeRotated` call `checkDecodedSize` first.
 */
export function rotatedColumnDecoder(q: QuantizedMatrix): (out: Float64Array) => void {
  if (q.kind === 'scalar') return scalarColumnDecoder(q);
  return q.mode === 'universal' ? universalColumnDecoder(q) : deterministicColumnDecoder(q);
}

/** The count of entries of a lattice column that its blocks write (the rest, to `length`, is 0). */
function writtenLength(q: UniversalLatticeMatrix | DeterministicLatticeMatrix, d: number): number {
  return Math.min(q.keptLength, q.blocksPerColumn * d, q.length);
}

function universalColumnDecoder(q: UniversalLatticeMatrix): (out: Float64Array) => void {
  const codec = universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta);
  const d = codec.spec.dimension;
  const written = writtenLength(q, d);
  const reader = new UniversalPointReader(q);
  const dither = new Int32Array(d);
  let j = 0;
  return (out) => {
    const wordKeys = ditherWordKeys(columnKeys(q.nonce, j), q.ditherKeys);
    // x̂ = (ν/√N)·β·(λ/s − Z/M): both terms scaled once per column.
    const pointStep = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.scheme.beta / codec.spec.pointScale);
    const ditherStep = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.scheme.beta / DITHER_GRID);
    for (let b = 0; b < q.blocksPerColumn; b++) {
      const point = reader.next();
      blockDither(codec, wordKeys, b, dither);
      for (let v = 0; v < d; v++) {
        const k = b * d + v;
        if (k >= q.keptLength) break;
        out[k] = pointStep * (point[v] as number) - ditherStep * (dither[v] as number);
      }
    }
    out.fill(0, written, q.length);
    j++;
  };
}

function deterministicColumnDecoder(q: DeterministicLatticeMatrix): (out: Float64Array) => void {
  const lattice = schemeLattice(q.scheme);
  const code = new VoronoiCode(lattice, q.scheme.q);
  const d = lattice.dimension;
  const written = writtenLength(q, d);
  const leader = new Int32Array(d);
  let j = 0;
  return (out) => {
    const columnScale = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.gains ? (q.gains[j] as number) : 1) * (q.unit / lattice.pointScale);
    for (let b = 0; b < q.blocksPerColumn; b++) {
      const index = j * q.blocksPerColumn + b;
      code.decode(q.codes[index] as number, leader);
      const step = columnScale * (q.multiples[q.scaleIndices[index] as number] as number);
      for (let i = 0; i < d; i++) {
        const k = b * d + i;
        if (k >= q.keptLength) break;
        out[k] = step * (leader[i] as number);
      }
    }
    out.fill(0, written, q.length);
    j++;
  };
}

function scalarColumnDecoder(q: ScalarQuantizedMatrix): (out: Float64Array) => void {
  const column = new Float32Array(q.length);
  const options = q.scheme.kind === 'int' ? absmaxOptions(q.scheme, q.length) : null;
  let j = 0;
  return (out) => {
    const codes = q.codes.subarray(j * q.length, (j + 1) * q.length);
    const groups = [j * q.groupsPerColumn, (j + 1) * q.groupsPerColumn] as const;
    if (options !== null) {
      const scales = (q.scales as Float32Array).subarray(...groups);
      absmaxDequantize({ codes, scales }, q.length, options, column);
    } else {
      const blockScales = (q.scales as Uint8Array).subarray(...groups);
      nvfp4Dequantize({ codes, blockScales }, q.length, q.tensorScale, column);
    }
    out.set(column);
    j++;
  };
}

/** The norm of one decoded column (+ its mean's contribution when centred): `columnNormBound`'s term for column j. */
export function decodedColumnNorm(q: QuantizedMatrix, j: number, decoded: Float64Array, offset = 0): number {
  let sum = 0;
  for (let k = offset; k < offset + q.length; k++) sum += (decoded[k] as number) ** 2;
  const mean = q.means ? Math.abs(q.means[j] as number) * Math.sqrt(q.rows) : 0;
  return Math.sqrt(sum) + mean;
}

/**
 * `columnNormBound(q, decodeRotated(q))` decoding one column at a time (one column's memory, not
 * cols × length float64): for callers that need the decoded norms but not the decode.
 */
export function streamedColumnNormBound(q: QuantizedMatrix): number {
  const decodeNext = rotatedColumnDecoder(q);
  const decoded = new Float64Array(q.length);
  let largest = 0;
  for (let j = 0; j < q.cols; j++) {
    decodeNext(decoded);
    largest = Math.max(largest, decodedColumnNorm(q, j, decoded));
  }
  return largest;
}

/** The largest norm of a decoded column (+ its mean's contribution when centred). */
export function columnNormBound(q: QuantizedMatrix, decoded: Float64Array): number {
  let largest = 0;
  for (let j = 0; j < q.cols; j++) largest = Math.max(largest, decodedColumnNorm(q, j, decoded, j * q.length));
  return largest;
}
