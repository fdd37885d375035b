import { writeQuantizedContainer, type ContainerEntryInput } from '../../src/format/container.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/**
 * A small container (matrices q, k, v) of fixed-size schemes, so that two of other seeds have the
 * same size and layout: a file "replaced" by the other one between two reads changes only data bytes.
 */
export function sameLayoutContainer(seed: number, model: string): Uint8Array {
  const entries: ContainerEntryInput[] = [
    { name: 'q', matrix: quantize(gaussianMatrix(64, 3, seed), { scheme: 'int4-g32', seed: 2 }) },
    { name: 'k', matrix: quantize(gaussianMatrix(96, 5, seed + 1), { scheme: 'd3-q6-deterministic', seed: 2 }) },
    { name: 'v', matrix: quantize(gaussianMatrix(64, 3, seed + 2), { scheme: 'int4-g32', seed: 2 }) },
  ];
  return writeQuantizedContainer(entries, { model });
}
