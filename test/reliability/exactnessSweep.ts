import fc from 'fast-check';
import { LatticeMatmulError } from '../../src/errors.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { DATA_KINDS, testMatrixPair, type DataKind } from '../../src/data/testMatrices.js';
import type { GpuEngine } from '../../src/gpu/engine.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { SchemeName } from '../../src/quantize/schemes.js';

/*
 * The GPU-vs-CPU exactness sweep (issue 8): random shapes (n = 1 … 3000, across the padded, Hadamard
 * and two-window rotations; 1 … 9 columns), random data kinds and power-of-two scales, every lattice
 * preset the GPU quantizes, centring on and off. The GPU encoder must give the CPU's quantization
 * bit for bit: codes, escapes, scale indices, norms and means (gains, computed by a reduction in
 * another order, within 1e-5). Used by test/reliability/exactness.test.ts (a short run in CI) and by
 * `npm run fuzz` (≥ 10,000 shapes).
 */

const SCHEMES: SchemeName[] = ['e8-q16', 'd3-q6', 'e8-2bit', 'e8-3bit', 'e8-4bit', 'e8-5bit', 'd3-q6-deterministic', 'e8-q16-deterministic'];
const GAIN_TOLERANCE = 1e-5;

export interface SweepCase {
  readonly n: number;
  readonly cols: number;
  readonly kind: DataKind;
  readonly scheme: SchemeName;
  readonly exponent: number;
  readonly center: boolean;
  readonly seed: number;
}

export interface SweepCounts {
  tried: number;
  identical: number;
  mismatches: string[];
}

/** Shapes weighted toward the edges: tiny n, around the padding and window limits, odd sizes. */
export const sweepCaseArbitrary: fc.Arbitrary<SweepCase> = fc.record({
  n: fc.oneof(
    fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 41, max: 1024 }),
    fc.constantFrom(96, 128, 255, 256, 257, 768, 1023, 1024, 1025, 1536, 2048, 2049),
    fc.integer({ min: 1025, max: 3000 }),
  ),
  cols: fc.integer({ min: 1, max: 9 }),
  kind: fc.constantFrom(...DATA_KINDS),
  scheme: fc.constantFrom(...SCHEMES),
  exponent: fc.constantFrom(-90, -20, 0, 0, 0, 20, 90),
  center: fc.boolean(),
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
});

function caseMatrix(c: SweepCase): Matrix {
  // 'permuted' exists only at Hadamard lengths; fall back to Gaussian elsewhere.
  const kind = c.kind === 'permuted' && rotationLength(c.n) !== c.n ? 'gaussian' : c.kind;
  const { a } = testMatrixPair(kind, c.n, c.cols, 1, c.seed);
  const scale = 2 ** c.exponent;
  return { rows: a.rows, cols: a.cols, data: Float32Array.from(a.data, (v) => v * scale) };
}

const bits = (v: number): number => new Uint32Array(new Float32Array([v + 0]).buffer)[0] as number;

function sameBits(a: Float32Array | null, b: Float32Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((v, i) => bits(v) === bits(b[i] as number));
}

function sameInts(a: ArrayLike<number> | null, b: ArrayLike<number> | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first field where the GPU quantization differs from the CPU one, or null. */
export function firstDifference(gpu: QuantizedMatrix, cpu: QuantizedMatrix): string | null {
  if (gpu.kind !== 'lattice' || cpu.kind !== 'lattice' || gpu.mode !== cpu.mode) return 'kind or mode';
  for (const field of ['rows', 'cols', 'length', 'keptLength', 'blocksPerColumn', 'seed', 'rotate', 'bitsStored', 'bitsEntropy'] as const) {
    if (gpu[field] !== cpu[field]) return `${field}: GPU ${String(gpu[field])}, CPU ${String(cpu[field])}`;
  }
  if (!sameInts(gpu.codes, cpu.codes)) return 'codes';
  if (!sameBits(gpu.norms, cpu.norms)) return 'norms';
  if (!sameBits(gpu.means, cpu.means)) return 'means';
  if (gpu.mode === 'universal') {
    const c = cpu as UniversalLatticeMatrix;
    if (gpu.nonce !== c.nonce) return 'nonce';
    if (!sameInts(gpu.codesHigh, c.codesHigh)) return 'codesHigh';
    if (!sameInts(gpu.escapes, c.escapes)) return 'escapes';
    if (!sameInts(gpu.longEscapes, c.longEscapes)) return 'longEscapes';
    if (!sameInts(gpu.hugeEscapes, c.hugeEscapes)) return 'hugeEscapes';
    return null;
  }
  const c = cpu as DeterministicLatticeMatrix;
  if (!sameInts(gpu.scaleIndices, c.scaleIndices)) return 'scaleIndices';
  if (!sameInts(gpu.multiples, c.multiples) || gpu.unit !== c.unit) return 'scale grid';
  if (gpu.clippedBlocks !== c.clippedBlocks) return 'clippedBlocks';
  if ((gpu.gains === null) !== (c.gains === null)) return 'gains presence';
  if (gpu.gains && c.gains) {
    for (let j = 0; j < c.gains.length; j++) {
      const want = c.gains[j] as number;
      if (!(Math.abs((gpu.gains[j] as number) - want) <= GAIN_TOLERANCE * Math.abs(want))) return `gain ${j}`;
    }
  }
  return null;
}

/** Quantizes one case on the CPU and the GPU; returns null when they agree, else what differs. */
export async function checkCase(engine: GpuEngine, c: SweepCase): Promise<string | null> {
  const m = caseMatrix(c);
  const universal = !c.scheme.endsWith('-deterministic');
  const options = { scheme: c.scheme, seed: c.seed & 0xffff, center: c.center, ...(universal ? { nonce: BigInt(c.seed) * 7919n } : {}) };
  let cpu: QuantizedMatrix;
  try {
    cpu = quantize(m, options);
  } catch (error) {
    // Out of the documented range (e.g. 2^90 · a spike): the GPU must refuse it too.
    if (!(error instanceof LatticeMatmulError)) throw error;
    const refused = await engine.quantize(m, options).then(
      (gpu) => (gpu.destroy(), false),
      (gpuError: unknown) => gpuError instanceof LatticeMatmulError,
    );
    return refused ? null : `${JSON.stringify(c)}: the CPU refused (${error.message}) but the GPU did not refuse clearly`;
  }
  const gpuMatrix = await engine.quantize(m, options);
  try {
    const difference = firstDifference(await gpuMatrix.read(), cpu);
    return difference === null ? null : `${JSON.stringify(c)}: ${difference}`;
  } finally {
    gpuMatrix.destroy();
  }
}

/**
 * Runs `shapes` random cases from `seed` (or until `deadline`, a performance.now() time), calling
 * `onProgress` every 500 cases. Cases are drawn with fast-check's generator (reproducible by seed);
 * the loop is explicit because fast-check's runner is synchronous here and each case awaits the GPU.
 */
export async function runExactnessSweep(
  engine: GpuEngine,
  options: { seed: number; shapes: number; deadline?: number; onProgress?: (counts: SweepCounts) => void },
): Promise<SweepCounts> {
  const counts: SweepCounts = { tried: 0, identical: 0, mismatches: [] };
  const cases = fc.sample(sweepCaseArbitrary, { seed: options.seed, numRuns: options.shapes });
  for (const c of cases) {
    if (options.deadline !== undefined && performance.now() > options.deadline) break;
    const difference = await checkCase(engine, c);
    counts.tried++;
    if (difference === null) counts.identical++;
    else counts.mismatches.push(difference);
    if (counts.tried % 500 === 0) options.onProgress?.(counts);
  }
  return counts;
}
