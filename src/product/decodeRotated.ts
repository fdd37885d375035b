import { VoronoiCode } from '../lattices/voronoiCode.js';
import { absmaxOptions, schemeLattice } from '../quantize/quantize.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix, ScalarQuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { absmaxDequantize } from '../scalar/absmax.js';
import { nvfp4Dequantize } from '../scalar/nvfp4.js';

/**
 * Decodes every column of `q` into the rotated domain (before the inverse rotation and the mean):
 * a Float64Array of `cols × length`, column-major, zeros beyond `keptLength`.
 */
export function decodeRotated(q: QuantizedMatrix): Float64Array {
  return q.kind === 'lattice' ? decodeLatticeRotated(q) : decodeScalarRotated(q);
}

function decodeLatticeRotated(q: LatticeQuantizedMatrix): Float64Array {
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
