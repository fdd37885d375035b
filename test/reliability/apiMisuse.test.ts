import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { crc32, crc32Continue } from '../../src/format.js';
import * as api from '../../src/index.js';

/*
 * API misuse: every public CPU function of 'lattice-matmul', called with hostile arguments (null,
 * undefined, wrong types, NaN, huge numbers, prototype-polluting names, objects with the wrong shape,
 * arrays instead of typed arrays, matrices of the wrong length…), must either do its job or throw a
 * LatticeMatmulError naming the problem — never a TypeError or RangeError from deep inside, never a
 * hang. The cases come from fast-check with a fixed seed; the counts go into docs/RELIABILITY.md.
 */

const good = api.gaussianMatrix(24, 3, 1);
const goodQ = api.quantize(good, { scheme: 'e8-q16', seed: 1, nonce: 1 });
const goodQd = api.quantize(good, { scheme: 'd3-q6-deterministic', seed: 1 });

/** Values a careless or hostile caller passes. */
const hostile = fc.constantFrom<unknown>(
  null,
  undefined,
  0,
  -1,
  1.5,
  Number.NaN,
  Infinity,
  2 ** 53,
  '',
  'e8-q16',
  'toString',
  '__proto__',
  'constructor',
  true,
  Symbol('x'),
  10n,
  {},
  [],
  [1, 2, 3],
  { rows: 2, cols: 2, data: [1, 2, 3, 4] },
  { rows: 2, cols: 2, data: new Float32Array(3) },
  { rows: -2, cols: 2, data: new Float32Array(4) },
  { rows: 2, cols: 2, data: new Float32Array([1, Number.NaN, 3, 4]) },
  { rows: 1e9, cols: 1e9, data: new Float32Array(4) },
  { scheme: 'toString' },
  { scheme: '__proto__' },
  { scheme: 'e8-q16', sead: 3 },
  { scheme: 'e8-q16', seed: '7' },
  { scheme: 'e8-q16', nonce: -1 },
  { scheme: 'e8-q16', center: 'yes' },
  { scheme: 'e8-q16', gain: 'mmse' },
  { scheme: { kind: 'lattice', lattice: 'E8', q: 16 } },
  { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 1e6, beta: 0.2 } },
  { scheme: { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 16, beta: -1 } },
  { kind: 'lattice' },
  { kind: 'scalar', rows: 2 },
  new Float32Array(5),
  new Uint8Array(16),
  new Uint16Array(8),
  () => 1,
  // String() and `in` throw on an object without a prototype; a typed array without one has no constructor or byteLength.
  Object.create(null),
  Object.setPrototypeOf(new Float32Array(4), null),
  good,
  goodQ,
  goodQd,
  { ...goodQ, norms: new Float32Array(1) },
  { ...goodQ, codes: null },
  { ...goodQ, rows: 7 },
);

/** The public functions and constructors taking plain arguments (GPU ones are probed in their own tests). */
const FUNCTIONS: Record<string, (...args: unknown[]) => unknown> = {
  quantize: (a, b) => api.quantize(a as never, b as never),
  matmulAT: (a, b) => api.matmulAT(a as never, b as never),
  matvecAT: (a, b) => api.matvecAT(a as never, b as never),
  dequantize: (a) => api.dequantize(a as never),
  expectedProductError: (a, b) => api.expectedProductError(a as never, b as never),
  expectedNmse: (a, b) => api.expectedNmse(a as never, b as never),
  resolveScheme: (a) => api.resolveScheme(a as never),
  resolveQuantizeOptions: (a) => api.resolveQuantizeOptions(a),
  matrix: (a, b, c) => api.matrix(a as never, b as never, c as never),
  checkMatrix: (a) => api.checkMatrix(a as never, 'm'),
  toFloat32Matrix: (a) => api.toFloat32Matrix(a as never),
  matmulATExact: (a, b) => api.matmulATExact(a as never, b as never),
  productNmse: (a, b, c) => api.productNmse(a as never, b as never, c as never),
  gamma: (a) => api.gamma(a as never),
  gammaInverse: (a) => api.gammaInverse(a as never),
  rateLoss: (a, b) => api.rateLoss(a as never, b as never),
  timeSharingFraction: (a, b) => api.timeSharingFraction(a as never, b as never),
  empiricalEntropy: (a) => api.empiricalEntropy(a as never),
  rotationLength: (a) => api.rotationLength(a as never),
  rotationPlan: (a) => api.rotationPlan(a as never),
  RandomizedHadamard: (a, b) => new api.RandomizedHadamard(a as never, b as never),
  Rng: (a) => new api.Rng(a as never),
  gaussianMatrix: (a, b, c) => api.gaussianMatrix(a as never, b as never, c as never),
  testMatrixPair: (a, b, c, d) => api.testMatrixPair(a as never, b as never, c as never, d as never, 1),
  counterHash: (a, b, c) => api.counterHash(a as never, b as never, c as never),
  latticeSpec: (a) => api.latticeSpec(a as never),
  universalCodec: (a, b, c) => api.universalCodec(a as never, b as never, c as never),
  VoronoiCode: (a, b) => new api.VoronoiCode(a as never, b as never),
  'D3.decode': (a, b) => api.D3.decode(a as never, b as never),
  'E8.encode': (a, b) => api.E8.encode(a as never, b as never),
  zLattice: (a) => api.zLattice(a as never),
  absmaxQuantize: (a, b) => api.absmaxQuantize(a as never, b as never),
  nvfp4Quantize: (a, b) => api.nvfp4Quantize(a as never, b as never),
  float16Bits: (a) => api.float16Bits(a as never),
  fromFloat16Bits: (a) => api.fromFloat16Bits(a as never),
  quantizeWeights: (a, b, c) => api.quantizeWeights(a as never, b as never, c as never),
  'WeightOnlyQuantized.deserialize': (a) => api.WeightOnlyQuantized.deserialize(a as never),
  packField: (a, b, c, d) => api.packField(a as never, b as never, c as never, d as never),
  unpackField: (a, b, c) => api.unpackField(a as never, b as never, c as never),
  packedLayout: (a, b) => api.packedLayout(a as never, b as never),
  leaderTable: (a) => api.leaderTable(a as never),
  innerProductTable: (a) => api.innerProductTable(a as never),
  'D3.nearest': (a) => api.D3.nearest(a as never),
  'E8.nearest': (a) => api.E8.nearest(a as never),
  'zLattice(4).nearest': (a) => api.zLattice(4).nearest(a as never),
  crc32: (a, b, c) => crc32(a as never, b as never, c as never),
  crc32Continue: (a, b, c, d) => crc32Continue(a as never, b as never, c as never, d as never),
  readSafetensors: (a) => api.readSafetensors(a as never),
  writeSafetensors: (a, b) => api.writeSafetensors(a as never, b as never),
};

type Outcome = 'returned' | 'refused' | 'other';

function call(name: string, args: unknown[]): { outcome: Outcome; error?: unknown } {
  try {
    (FUNCTIONS[name] as (...a: unknown[]) => unknown)(...args);
    return { outcome: 'returned' };
  } catch (error) {
    return error instanceof LatticeMatmulError ? { outcome: 'refused' } : { outcome: 'other', error };
  }
}

describe('API misuse (fast-check, seed 20261130)', () => {
  it('every public CPU function returns or throws a LatticeMatmulError', () => {
    const counts: Record<Outcome, number> = { returned: 0, refused: 0, other: 0 };
    const others: string[] = [];
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(FUNCTIONS)), fc.array(hostile, { minLength: 0, maxLength: 4 }), (name, args) => {
        const { outcome, error } = call(name, args);
        counts[outcome]++;
        if (outcome === 'other' && others.length < 40) others.push(`${name}(${args.map((a) => typeof a).join(', ')}): ${String(error)}`);
      }),
      { seed: 20261130, numRuns: 6000 },
    );
    console.log(`API misuse: tried ${counts.returned + counts.refused + counts.other}, refused clearly ${counts.refused}, returned ${counts.returned}, other errors ${counts.other}`);
    expect(others).toEqual([]);
  });
});
