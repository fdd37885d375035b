import { check } from '../errors.js';
import { VoronoiCode } from '../lattices/voronoiCode.js';
import { DITHER_GRID, universalCodec } from '../quantize/latticeSpec.js';
import { absmaxOptions, schemeLattice } from '../quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, ScalarQuantizedMatrix, UniversalLatticeMatrix } from '../quantize/quantizedMatrix.js';
import { blockDither, columnKeys, ditherWordKeys, forEachUniversalPoint } from '../quantize/universalCode.js';
import { absmaxDequantize } from '../scalar/absmax.js';
import { nvfp4Dequantize } from '../scalar/nvfp4.js';

/** The most values `decodeRotated` (so `dequantize`, `matvecAT`, `matmulAT`) decodes at once: 2^31 − 1. */
export const MAX_DECODED_ENTRIES = 2 ** 31 - 1;

/**
 * Decodes every column of `q` into the rotated domain (before the inverse rotation and the mean):
 * a Float64Array of `cols × length`, column-major, zeros beyond `keptLength`.
 */
export function decodeRotated(q: QuantizedMatrix): Float64Array {
  // A time-shared matrix stores as few as d entries per column whatever its length, so a small file
  // can describe a huge decode: refuse it by name, not with a RangeError from the allocation.
  check(
    q.cols * q.length <= MAX_DECODED_ENTRIES,
    () => `decoding ${q.cols} columns of ${q.length} rotated entries takes ${q.cols * q.length} values, more than the CPU decoder holds (2^31 − 1)`,
  );
  if (q.kind === 'scalar') return decodeScalarRotated(q);
  return q.mode === 'universal' ? decodeUniversalRotated(q) : decodeDeterministicRotated(q);
}

function decodeUniversalRotated(q: UniversalLatticeMatrix): Float64Array {
  const codec = universalCodec(q.scheme.lattice, q.scheme.q, q.scheme.beta);
  const d = codec.spec.dimension;
  const out = new Float64Array(q.cols * q.length);
  const dither = new Int32Array(d);
  let wordKeys = { first: 0, second: 0 }; // column j's, set at its block 0
  let pointStep = 0;
  let ditherStep = 0;
  forEachUniversalPoint(q, (j, b, point) => {
    if (b === 0) {
      wordKeys = ditherWordKeys(columnKeys(q.nonce, j), q.ditherKeys);
      // x̂ = (ν/√N)·β·(λ/s − Z/M): both terms scaled once per column.
      pointStep = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.scheme.beta / codec.spec.pointScale);
      ditherStep = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.scheme.beta / DITHER_GRID);
    }
    blockDither(codec, wordKeys, b, dither);
    for (let v = 0; v < d; v++) {
      const k = b * d + v;
      if (k >= q.keptLength) break;
      out[j * q.length + k] = pointStep * (point[v] as number) - ditherStep * (dither[v] as number);
    }
  });
  return out;
}

function decodeDeterministicRotated(q: DeterministicLatticeMatrix): Float64Array {
  const lattice = schemeLattice(q.scheme);
  const code = new VoronoiCode(lattice, q.scheme.q);
  const d = lattice.dimension;
  const out = new Float64Array(q.cols * q.length);
  const leader = new Int32Array(d);
  for (let j = 0; j < q.cols; j++) {
    const columnScale = ((q.norms[j] as number) / Math.sqrt(q.length)) * (q.gains ? (q.gains[j] as number) : 1) * (q.unit / lattice.pointScale);
    for (let b = 0; b < q.blocksPerColumn; b++) {
      const index = j * q.blocksPerColumn + b;
      code.decode(q.codes[index] as number, leader);
      const step = columnScale * (q.multiples[q.scaleIndices[index] as number] as number);
      for (let i = 0; i < d; i++) {
        const k = b * d + i;
        if (k >= q.keptLength) break;
        out[j * q.length + k] = step * (leader[i] as number);
      }
    }
  }
  return out;
}

function decodeScalarRotated(q: ScalarQuantizedMatrix): Float64Array {
  const out = new Float64Array(q.cols * q.length);
  const column = new Float32Array(q.length);
  for (let j = 0; j < q.cols; j++) {
    const codes = q.codes.subarray(j * q.length, (j + 1) * q.length);
    const groups = [j * q.groupsPerColumn, (j + 1) * q.groupsPerColumn] as const;
    if (q.scheme.kind === 'int') {
      const scales = (q.scales as Float32Array).subarray(...groups);
      absmaxDequantize({ codes, scales }, q.length, absmaxOptions(q.scheme, q.length), column);
    } else {
      const blockScales = (q.scales as Uint8Array).subarray(...groups);
      nvfp4Dequantize({ codes, blockScales }, q.length, q.tensorScale, column);
    }
    out.set(column, j * q.length);
  }
  return out;
}

/** The largest norm of a decoded column (+ its mean's contribution when centred). */
export function columnNormBound(q: QuantizedMatrix, decoded: Float64Array): number {
  let largest = 0;
  for (let j = 0; j < q.cols; j++) {
    let sum = 0;
    for (let k = j * q.length; k < (j + 1) * q.length; k++) sum += (decoded[k] as number) ** 2;
    const mean = q.means ? Math.abs(q.means[j] as number) * Math.sqrt(q.rows) : 0;
    largest = Math.max(largest, Math.sqrt(sum) + mean);
  }
  return largest;
}
