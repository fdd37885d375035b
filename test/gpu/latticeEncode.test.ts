import { describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { createUniformBuffer, UniformPacker } from '../../src/gpu/uniforms.js';
import { dispatchColumnPrep, QUANTIZE_STATUS_BYTES, QuantizeStatusWord } from '../../src/gpu/kernels/columnPrep.js';
import {
  createLatticeTableBuffer,
  dispatchLatticeEncode,
  latticeCodeWgsl,
  latticeConstants,
  latticeTableBytes,
} from '../../src/gpu/kernels/latticeEncode.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { packedLayout, unpackField } from '../../src/format/packing.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { column, type Matrix } from '../../src/matrix.js';
import { LatticeBlockEncoder, type BlockCode } from '../../src/quantize/latticeEncoder.js';
import { prepareColumn } from '../../src/quantize/prepareColumn.js';
import { quantize, schemeLattice, type GainMode } from '../../src/quantize/quantize.js';
import { FIXED_POINT_LIMIT, scaleGrid, type ScaleGrid } from '../../src/quantize/scaleGrid.js';
import { SCHEMES, type DeterministicLatticeScheme } from '../../src/quantize/schemes.js';
import { Rng } from '../../src/rotation/random.js';
import { contextOnTestDevice, f32Bits, gpuUnavailableReason, hex } from './gpuTestDevice.js';
import { asDeterministic } from './latticeTestSupport.js';

/*
 * The kernels of the deterministic GPU lattice quantizer, each against its CPU twin (the universal
 * encoder has its own, universalEncode.test.ts):
 * - the WGSL block encoder (shaders/lattice_code.wgsl, through a probe entry point) against
 *   LatticeBlockEncoder.encodeBlock on fixed-point blocks chosen to sit on Voronoi boundaries
 *   (coordinates that are multiples of den/4, where nearest-point ties and coset-boundary ties
 *   happen), to overload every scale, and to clip;
 * - the column prep kernel against prepareColumn (exponent, mean, every prepared value, bit for bit);
 * - the encode kernel, fed the CPU's prepared columns, against quantize(…, { rotate: false }).
 */

const noGpu = await gpuUnavailableReason();

/** Z^8, q = 16, a 4-rung ladder (an asymmetric INT4 with a shared per-block scale). */
const Z_LADDER: DeterministicLatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.25, ratio: 2, steps: 4 } };
/** E8 with a wide ladder: multiples up to 16·2^11, so E8's distance comparison needs more than 32 bits. */
const E8_WIDE_LADDER: DeterministicLatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 16, overload: { kind: 'ladder', beta: 0.2, ratio: 2, steps: 12 } };
/** D3 with 16 rungs of ratio 2: denominators up to 2^25 (beyond E8's bound, within D3's). */
const D3_LONG_LADDER: DeterministicLatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.2, ratio: 2, steps: 16 } };
/** D3 with an odd q and least-error selection. */
const D3_Q5_BETA_SET: DeterministicLatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 5, overload: { kind: 'betaSet', betas: [0.3, 0.45, 0.7] } };

describe('latticeTableBytes (CPU)', () => {
  const ladder = (lattice: 'D3' | 'E8' | 'Z', ratio: number, steps: number): DeterministicLatticeScheme => ({
    kind: 'lattice',
    mode: 'deterministic',
    lattice,
    q: lattice === 'D3' ? 6 : 16,
    overload: { kind: 'ladder', beta: 0.3, ratio, steps },
  });

  it('lays out q, determinant, grid, clip steps, generator, inverse, denominators and multiples', () => {
    const scheme = SCHEMES['e8-q16-deterministic'];
    const lattice = schemeLattice(scheme);
    const grid = scaleGrid(scheme.overload);
    const words = new Int32Array(latticeTableBytes(lattice, scheme.q, grid).slice().buffer);
    expect(words.length).toBe(168); // the WGSL struct: 8 header words, 2 × 64 matrix words, 2 × 16 grid words
    expect(Array.from(words.subarray(0, 5))).toEqual([16, lattice.basisInverse.determinant, 4, 1, 16]);
    expect(Array.from(words.subarray(8, 72))).toEqual(Array.from(lattice.basis));
    expect(Array.from(words.subarray(72, 136))).toEqual(Array.from(lattice.basisInverse.numerators));
    expect(Array.from(words.subarray(136, 140))).toEqual(Array.from(grid.multiples, (k) => k * 64));
    expect(Array.from(words.subarray(152, 156))).toEqual(Array.from(grid.multiples));
  });

  it('refuses scale multiples beyond exact integer encoding (E8: k·64 < 2^24; D3, Z: k·64 < 2^29)', () => {
    const table = (scheme: DeterministicLatticeScheme) => () => latticeTableBytes(schemeLattice(scheme), scheme.q, scaleGrid(scheme.overload));
    // Ratio 2: the largest multiple is 16·2^(steps − 1), its denominator 2^(steps + 9).
    expect(table(ladder('E8', 2, 14))).not.toThrow();
    expect(table(ladder('E8', 2, 15))).toThrow(LatticeMatmulError);
    expect(table(ladder('D3', 2, 16))).not.toThrow();
    expect(table(ladder('Z', 2, 16))).not.toThrow();
    // Ratio 32: 16·32^4 = 2^24, denominator 2^30.
    expect(table(ladder('D3', 32, 5))).toThrow(LatticeMatmulError);
  });
});

const PROBE_SOURCE = /* wgsl */ `
struct ProbeParams {
  count: u32,
}

@group(0) @binding(0) var<uniform> lattice: LatticeTable;
@group(0) @binding(1) var<uniform> probe: ProbeParams;
@group(0) @binding(2) var<storage, read> blocks: array<i32>;
@group(0) @binding(3) var<storage, read_write> results: array<u32>;

// Per block: code, scale index, clipped, then the 8 point coordinates.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let b = id.x;
  if (b >= probe.count) {
    return;
  }
  var x: LatticePoint;
  for (var i = 0u; i < LATTICE_DIMENSION; i = i + 1u) {
    x[i] = blocks[b * LATTICE_DIMENSION + i];
  }
  let block = encode_block(&x);
  let out = b * 11u;
  results[out] = block.code;
  results[out + 1u] = block.scale_index;
  results[out + 2u] = select(0u, 1u, block.clipped);
  for (var i = 0u; i < 8u; i = i + 1u) {
    results[out + 3u + i] = bitcast<u32>(block.point[i]);
  }
}
`;

const RESULT_WORDS = 11;

/**
 * Runs a probe's entry point `main`, compiled after the library's lattice code, over `count` items,
 * 64 a workgroup. `makeInputs` makes the buffers bound at 0, 1, … (null: a binding the entry point
 * does not use); the output, `resultWords` words per item, is bound after them and returned. Every
 * buffer is destroyed, whatever happens.
 */
async function runLatticeCodeProbe(
  device: GPUDevice,
  label: string,
  source: string,
  count: number,
  resultWords: number,
  makeInputs: () => readonly (GPUBuffer | null)[],
  constants?: Record<string, number>,
): Promise<Uint32Array> {
  const buffers: GPUBuffer[] = [];
  try {
    return await withValidation(device, label, async () => {
      const inputs = makeInputs();
      for (const buffer of inputs) if (buffer !== null) buffers.push(buffer);
      const output = createBuffer(device, `${label} results`, 4 * resultWords * count, STORAGE_USAGE);
      buffers.push(output);
      const pipeline = device.createComputePipeline({
        label,
        layout: 'auto',
        compute: { module: device.createShaderModule({ label, code: `${latticeCodeWgsl()}\n${source}` }), entryPoint: 'main', ...(constants === undefined ? {} : { constants }) },
      });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [...inputs, output].flatMap((buffer, binding) => (buffer === null ? [] : [{ binding, resource: { buffer } }])),
      });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil(count / 64));
      pass.end();
      device.queue.submit([encoder.finish()]);
      return new Uint32Array(await readBuffer(device, output, 4 * resultWords * count));
    });
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

/** Runs the probe on `blocks` (d integers each) and returns the raw result words. */
function probeEncodeBlocks(device: GPUDevice, lattice: Lattice, q: number, grid: ScaleGrid, blocks: Int32Array): Promise<Uint32Array> {
  const count = blocks.length / lattice.dimension;
  return runLatticeCodeProbe(
    device,
    'lattice code probe',
    PROBE_SOURCE,
    count,
    RESULT_WORDS,
    () => [
      createLatticeTableBuffer(device, lattice, q, grid),
      createUniformBuffer(device, 'probe params', new UniformPacker().u32(count, 'count')),
      createBufferWithData(device, 'probe blocks', blocks, STORAGE_USAGE),
    ],
    latticeConstants(lattice),
  );
}

/**
 * Fixed-point blocks that stress the encoder: multiples of den_j/4 (half- and quarter-integer λ, where
 * rounding ties, D_n parity flips and E8's two cosets tie), spread over ±0.8·q so that coset-boundary
 * ties and overloads happen at every scale; plain random blocks; huge blocks that overload every scale
 * (clipping, up to the clamp limit); and the zero block.
 */
function stressBlocks(lattice: Lattice, q: number, grid: ScaleGrid, seed: number): Int32Array {
  const rng = new Rng(seed);
  const d = lattice.dimension;
  const blocks: number[] = [];
  // Fixed-point inputs never exceed the clamp of toFixedPoint.
  const push = (f: (i: number) => number) => {
    for (let i = 0; i < d; i++) blocks.push(Math.max(-FIXED_POINT_LIMIT, Math.min(FIXED_POINT_LIMIT, f(i))));
  };
  const dens = Array.from(grid.multiples, (k) => k * 64);
  const span = Math.ceil(0.8 * q * 4) * lattice.pointScale;
  for (let t = 0; t < 1500; t++) {
    const den = dens[rng.nextInt(dens.length)] as number;
    push(() => ((rng.nextInt(2 * span + 1) - span) * den) / 4);
  }
  for (let t = 0; t < 300; t++) {
    const den = dens[rng.nextInt(dens.length)] as number;
    push(() => Math.round(rng.nextGaussian() * den * q * 0.3));
  }
  for (let t = 0; t < 150; t++) {
    const magnitude = 2 ** (10 + rng.nextInt(15));
    push(() => Math.round((rng.nextFloat() * 2 - 1) * magnitude));
  }
  push(() => 0);
  push((i) => (i % 2 === 0 ? FIXED_POINT_LIMIT : -FIXED_POINT_LIMIT));
  push(() => FIXED_POINT_LIMIT);
  return Int32Array.from(blocks);
}

interface ProbeCase {
  readonly name: string;
  readonly scheme: DeterministicLatticeScheme;
  /** The inputs reach every scale and clip (not so for a ladder far wider than the clamp range). */
  readonly coversEveryScale: boolean;
}

const PROBE_CASES: readonly ProbeCase[] = [
  { name: 'D3, q = 6, ladder (d3-q6-deterministic)', scheme: SCHEMES['d3-q6-deterministic'], coversEveryScale: true },
  { name: 'E8, q = 16, betaSet (e8-q16-deterministic)', scheme: SCHEMES['e8-q16-deterministic'], coversEveryScale: true },
  { name: 'Z8, q = 16, ladder', scheme: Z_LADDER, coversEveryScale: true },
  { name: 'E8, q = 16, ladder with multiples up to 2^15 (64-bit distances)', scheme: E8_WIDE_LADDER, coversEveryScale: true },
  { name: 'D3, q = 5, betaSet', scheme: D3_Q5_BETA_SET, coversEveryScale: true },
  { name: 'D3, q = 6, 16-rung ladder of ratio 2 (denominators up to 2^25)', scheme: D3_LONG_LADDER, coversEveryScale: false },
];

describe.skipIf(noGpu !== undefined)('WGSL block encoder (shaders/lattice_code.wgsl) = LatticeBlockEncoder', () => {
  const suite = contextOnTestDevice();

  it.each(PROBE_CASES)('$name: code, scale index, clipping and point of every block', async ({ scheme, coversEveryScale }) => {
    const lattice = schemeLattice(scheme);
    const grid = scaleGrid(scheme.overload);
    const d = lattice.dimension;
    const blocks = stressBlocks(lattice, scheme.q, grid, 17);
    const results = await probeEncodeBlocks(suite.context.device, lattice, scheme.q, grid, blocks);

    const encoder = new LatticeBlockEncoder(lattice, scheme.q, grid);
    const block: BlockCode = { code: 0, scaleIndex: 0, clipped: false };
    const decoded = new Int32Array(d);
    const mismatches: string[] = [];
    const indexCounts = new Array<number>(grid.multiples.length).fill(0);
    let clipped = 0;
    const count = blocks.length / d;
    for (let b = 0; b < count; b++) {
      const x = blocks.subarray(b * d, (b + 1) * d);
      encoder.encodeBlock(x, block, decoded);
      const r = results.subarray(b * RESULT_WORDS, (b + 1) * RESULT_WORDS);
      const point = Array.from(r.subarray(3, 3 + d), (v) => v | 0);
      const same =
        r[0] === block.code && r[1] === block.scaleIndex && r[2] === (block.clipped ? 1 : 0) && point.every((v, i) => v === decoded[i]);
      if (!same && mismatches.length < 5) {
        mismatches.push(
          `block [${Array.from(x).join(', ')}]: GPU code ${r[0]} index ${r[1]} clipped ${r[2]} point [${point.join(', ')}], ` +
            `CPU code ${block.code} index ${block.scaleIndex} clipped ${block.clipped} point [${Array.from(decoded).join(', ')}]`,
        );
      }
      indexCounts[block.scaleIndex] = (indexCounts[block.scaleIndex] as number) + 1;
      if (block.clipped) clipped++;
    }
    expect(mismatches).toEqual([]);
    if (coversEveryScale) {
      // The inputs reach every scale, and the clipping path.
      expect(indexCounts.every((c) => c > 0), `blocks per scale index: ${indexCounts.join(', ')}`).toBe(true);
      expect(clipped).toBeGreaterThan(50);
    } else {
      expect(indexCounts.filter((c) => c > 0).length).toBeGreaterThan(4);
    }
  });
});

const WIDE_PROBE_SOURCE = /* wgsl */ `
// The library's uniform, declared for its functions; the probe itself does not read it.
@group(0) @binding(0) var<uniform> lattice: LatticeTable;
@group(0) @binding(1) var<storage, read> values: array<i32>;
@group(0) @binding(2) var<storage, read_write> results: array<u32>;

// Per pair (v, w): v² (low, high), v² + w² (low, high), v² < w².
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let k = id.x;
  if (k >= arrayLength(&values) / 2u) {
    return;
  }
  let v = wide_square(values[2u * k]);
  let w = wide_square(values[2u * k + 1u]);
  let sum = wide_add(v, w);
  results[5u * k] = v.x;
  results[5u * k + 1u] = v.y;
  results[5u * k + 2u] = sum.x;
  results[5u * k + 3u] = sum.y;
  results[5u * k + 4u] = select(0u, 1u, wide_less(v, w));
}
`;

/**
 * Pairs for the 64-bit arithmetic: the 16-bit halves' edges (a zero low or high half, where the
 * carry of the low word's sum is 0 although the sum equals lo²; a cross term whose shift by 17
 * wraps to exactly 2^32), the extremes |v| = 2^31 − 1, equal squares (v, −v: not less), squares
 * equal in the high word and ordered by the low one, low words whose sum carries, and random
 * magnitudes from 2^0 to 2^31.
 */
function widePairs(): Int32Array {
  const edges = [0, 1, -1, 0xffff, 0x10000, -0x10000, 0x18000, 0x1ffff, 0x20000, 0x30000, 1 << 24, (1 << 29) + 12345, -(2 ** 30), 2 ** 31 - 1, -(2 ** 31 - 1)];
  const pairs: number[] = [];
  for (const v of edges) for (const w of edges) pairs.push(v, w);
  // (2^16 + 1)² and (2^16 + 2)² share the high word 1; 0xb505² is just above 2^31, so twice it carries out of the low word.
  pairs.push(0x10001, 0x10002, 0x10002, 0x10001, 0xb505, 0xb505, 0x7fff_ffff, 0x7fff_fffe);
  const rng = new Rng(29);
  for (let t = 0; t < 2000; t++) {
    const magnitude = () => Math.floor(rng.nextFloat() * 2 ** rng.nextInt(32)) * (rng.nextInt(2) === 0 ? 1 : -1);
    pairs.push(Math.max(-(2 ** 31 - 1), Math.min(2 ** 31 - 1, magnitude())), Math.max(-(2 ** 31 - 1), Math.min(2 ** 31 - 1, magnitude())));
  }
  return Int32Array.from(pairs);
}

describe.skipIf(noGpu !== undefined)('the block encoder\'s 64-bit errors (shaders/lattice_code.wgsl: wide_square, wide_add, wide_less) = BigInt arithmetic', () => {
  const suite = contextOnTestDevice();

  it('squares, sums and compares every probed pair exactly', async () => {
    const { device } = suite.context;
    const pairs = widePairs();
    const count = pairs.length / 2;
    // Binding 0 (the library's uniform) is declared for its functions, not used by this entry point.
    const results = await runLatticeCodeProbe(device, 'wide arithmetic probe', WIDE_PROBE_SOURCE, count, 5, () => [
      null,
      createBufferWithData(device, 'wide probe values', pairs, STORAGE_USAGE),
    ]);
    const words = (x: bigint): [number, number] => [Number(x & 0xffff_ffffn), Number(x >> 32n)];
    const mismatches: string[] = [];
    for (let k = 0; k < count; k++) {
      const v = BigInt(pairs[2 * k] as number);
      const w = BigInt(pairs[2 * k + 1] as number);
      const expected = [...words(v * v), ...words(v * v + w * w), v * v < w * w ? 1 : 0];
      const got = Array.from(results.subarray(5 * k, 5 * k + 5));
      if (got.some((x, i) => x !== expected[i]) && mismatches.length < 5) mismatches.push(`(${v}, ${w}): got [${got.join(', ')}], expected [${expected.join(', ')}]`);
    }
    expect(mismatches).toEqual([]);
  });
});

/** A column-major matrix from per-column generators. */
function matrixFromColumns(rows: number, columns: readonly ((i: number) => number)[]): Matrix {
  const data = new Float32Array(rows * columns.length);
  columns.forEach((f, j) => {
    for (let i = 0; i < rows; i++) data[j * rows + i] = f(i);
  });
  return { rows, cols: columns.length, data };
}

/** Columns covering the prep kernel's cases: magnitudes from subnormal to near f32 max, ties, zeros. */
function prepColumns(rows: number, seed: number, withinNormRange = false): Matrix {
  const rng = new Rng(seed);
  const gaussian = () => rng.nextGaussian();
  // Column prep takes any finite input; quantize() refuses column norms outside [2^−100, 2^100], so
  // the encode kernel's cases (compared with quantize) use extremes just inside that range.
  return matrixFromColumns(rows, [
    () => gaussian(),
    () => 0,
    () => 0.7,
    () => gaussian() * (withinNormRange ? 2 ** 90 : 1e30),
    () => gaussian() * (withinNormRange ? 2 ** -90 : 1e-30),
    // The small entries underflow after scaling.
    withinNormRange ? (i) => (i === 0 ? 2 ** 99 : gaussian() * 2 ** -60) : (i) => (i === 0 ? 3e38 : gaussian() * 1e-20),
    // Subnormal inputs, scaled exactly into [1, 2); within the norm range, the smallest normal ones.
    () => gaussian() * (withinNormRange ? 2 ** -95 : 1e-41),
    () => (rng.nextInt(9) - 4 + 0.5) * 2 ** 40, // half-integers
    () => Math.fround((rng.nextInt(13) - 6) / 3) * 2 ** -50, // multiples of 1/3
    () => gaussian() / Math.max(1e-3, rng.nextFloat()), // heavy tails
    // Scaled by 2^−120 into the subnormals: (2k + 1)·2^−150, halfway between k and k + 1 units of
    // 2^−149, rounds to the even one (k = 0 … 7: both parities). Column prep only: quantize() refuses
    // the norm 2^120.
    ...(withinNormRange ? [] : [(i: number) => (i === 0 ? 2 ** 120 : (2 * (i % 8) + 1) * 2 ** -30)]),
  ]);
}

describe.skipIf(noGpu !== undefined)('column prep kernel = prepareColumn (no rotation)', () => {
  const suite = contextOnTestDevice();

  it.each([
    [1, false],
    [3, true],
    [13, true],
    [300, false],
    [300, true],
    [600, true],
  ])('n = %i, centring %s: exponents, means and prepared values bit for bit', async (rows, center) => {
    const m = prepColumns(rows, rows + (center ? 1 : 0));
    const { device } = suite.context;
    const scratch = new GpuScratch(device);
    const buffers: GPUBuffer[] = [];
    const make = (label: string, bytes: number) => {
      const buffer = createBuffer(device, label, bytes, STORAGE_USAGE);
      buffers.push(buffer);
      return buffer;
    };
    try {
      const { prepared, exponents, means, status } = await withValidation(device, 'column prep test', async () => {
        const input = createBufferWithData(device, 'prep input', m.data, STORAGE_USAGE);
        buffers.push(input);
        // Outputs at an offset, to exercise binding windows.
        const preparedBuffer = make('prep output', 4 * rows * m.cols + 64);
        const exponentBuffer = make('prep exponents', 4 * m.cols + 8);
        const meanBuffer = make('prep means', 4 * m.cols);
        const statusBuffer = make('prep status', QUANTIZE_STATUS_BYTES);
        const encoder = device.createCommandEncoder();
        encoder.clearBuffer(statusBuffer);
        dispatchColumnPrep(device, encoder, scratch, {
          input,
          prepared: preparedBuffer,
          preparedOffset: 64,
          exponents: exponentBuffer,
          exponentsOffset: 8,
          means: center ? meanBuffer : null,
          status: statusBuffer,
          rows,
          cols: m.cols,
          center,
        });
        device.queue.submit([encoder.finish()]);
        return {
          prepared: new Float32Array(await readBuffer(device, preparedBuffer, 4 * rows * m.cols, 64)),
          exponents: new Int32Array(await readBuffer(device, exponentBuffer, 4 * m.cols, 8)),
          means: new Float32Array(await readBuffer(device, meanBuffer, 4 * m.cols)),
          status: new Uint32Array(await readBuffer(device, statusBuffer, QUANTIZE_STATUS_BYTES)),
        };
      });
      expect(Array.from(status)).toEqual([0, 0, 0, 0]);
      const scaled = new Float32Array(rows);
      const expected = new Float32Array(rows);
      const mismatches: string[] = [];
      for (let j = 0; j < m.cols; j++) {
        const cpu = prepareColumn(column(m, j), center, null, scaled, expected);
        expect(exponents[j], `exponent of column ${j}`).toBe(cpu.exponent + 0); // + 0: the CPU may give −0
        if (center) {
          const cpuMean = Math.fround(cpu.scaledMean * 2 ** -cpu.exponent);
          expect(hex(f32Bits(means[j] as number)), `mean of column ${j}`).toBe(hex(f32Bits(cpuMean)));
        }
        for (let i = 0; i < rows; i++) {
          const got = prepared[j * rows + i] as number;
          const want = expected[i] as number;
          if (f32Bits(got) !== f32Bits(want) && !(got === 0 && want === 0) && mismatches.length < 5) {
            mismatches.push(`column ${j}, row ${i}: got ${got} (${hex(f32Bits(got))}), expected ${want} (${hex(f32Bits(want))})`);
          }
        }
      }
      expect(mismatches).toEqual([]);
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  it('reports the first column with a NaN or an infinity in the status buffer', async () => {
    const { device } = suite.context;
    const m = prepColumns(20, 5);
    m.data[3 * 20 + 7] = Number.NaN;
    m.data[6 * 20 + 1] = Number.POSITIVE_INFINITY;
    const scratch = new GpuScratch(device);
    const buffers: GPUBuffer[] = [];
    try {
      const status = await withValidation(device, 'column prep non-finite test', async () => {
        const input = createBufferWithData(device, 'prep input', m.data, STORAGE_USAGE);
        const prepared = createBuffer(device, 'prep output', 4 * m.data.length, STORAGE_USAGE);
        const exponents = createBuffer(device, 'prep exponents', 4 * m.cols, STORAGE_USAGE);
        const statusBuffer = createBuffer(device, 'prep status', QUANTIZE_STATUS_BYTES, STORAGE_USAGE);
        buffers.push(input, prepared, exponents, statusBuffer);
        const encoder = device.createCommandEncoder();
        encoder.clearBuffer(statusBuffer);
        dispatchColumnPrep(device, encoder, scratch, { input, prepared, exponents, means: null, status: statusBuffer, rows: 20, cols: m.cols, center: false });
        device.queue.submit([encoder.finish()]);
        return new Uint32Array(await readBuffer(device, statusBuffer, QUANTIZE_STATUS_BYTES));
      });
      expect(0xffffffff - (status[QuantizeStatusWord.nonFiniteInput] as number)).toBe(3);
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });
});

interface EncodeCase {
  readonly name: string;
  readonly scheme: DeterministicLatticeScheme;
  readonly rows: number;
  readonly cols: number;
  readonly keepFraction: number;
  readonly gain: GainMode;
  readonly maxBindingBytes?: number;
}

const ENCODE_CASES: readonly EncodeCase[] = [
  { name: 'D3 q = 6, n = 100 (34 blocks, the last one partial)', scheme: SCHEMES['d3-q6-deterministic'], rows: 100, cols: 10, keepFraction: 1, gain: 'unbiased' },
  { name: 'E8 q = 16, n = 13 (a partial block), MMSE gains', scheme: SCHEMES['e8-q16-deterministic'], rows: 13, cols: 10, keepFraction: 1, gain: 'mmse' },
  { name: 'D3 q = 6, n = 800 (more blocks than lanes), no gains', scheme: SCHEMES['d3-q6-deterministic'], rows: 800, cols: 10, keepFraction: 1, gain: 'none' },
  { name: 'D3, time-sharing keeps 40% of n = 96', scheme: SCHEMES['d3-q6-deterministic'], rows: 96, cols: 10, keepFraction: 0.4, gain: 'unbiased' },
  { name: 'E8, columns split over 1 KB bindings', scheme: SCHEMES['e8-q16-deterministic'], rows: 40, cols: 10, keepFraction: 1, gain: 'mmse', maxBindingBytes: 1024 },
  {
    name: 'D3, one scale (no index bits stored)',
    scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.6, ratio: 2, steps: 1 } },
    rows: 30,
    cols: 10,
    keepFraction: 1,
    gain: 'unbiased',
  },
];

/** Relative tolerance of the GPU gains (f32 sums) against the CPU's (float64 sums). */
const GAIN_TOLERANCE = 1e-5;

describe.skipIf(noGpu !== undefined)('lattice encode kernel on prepared columns = quantize(…, { rotate: false })', () => {
  const suite = contextOnTestDevice();

  it.each(ENCODE_CASES)('$name', async ({ scheme, rows, cols, keepFraction, gain, maxBindingBytes }) => {
    const { device } = suite.context;
    const m = prepColumns(rows, 3 * rows + cols, true);
    const cpu = asDeterministic(quantize(m, { scheme, seed: 1, rotate: false, keepFraction, gain }));
    // The CPU's prepared columns and exponents are the kernel's input.
    const prepared = new Float32Array(rows * cols);
    const exponents = new Int32Array(cols);
    const scaled = new Float32Array(rows);
    for (let j = 0; j < cols; j++) {
      const result = prepareColumn(column(m, j), false, null, scaled, prepared.subarray(j * rows, (j + 1) * rows));
      exponents[j] = result.exponent;
    }
    const lattice = schemeLattice(scheme);
    const grid = scaleGrid(scheme.overload);
    const codeBits = Math.ceil(Math.log2(scheme.q ** lattice.dimension));
    const codeLayout = packedLayout(codeBits, cpu.blocksPerColumn);
    const indexBits = Math.max(1, grid.indexBits);
    const indexLayout = packedLayout(indexBits, cpu.blocksPerColumn);

    const scratch = new GpuScratch(device);
    const buffers: GPUBuffer[] = [];
    const make = (label: string, bytes: number) => {
      const buffer = createBuffer(device, label, bytes, STORAGE_USAGE);
      buffers.push(buffer);
      return buffer;
    };
    try {
      const out = await withValidation(device, 'lattice encode test', async () => {
        const rotated = createBufferWithData(device, 'encode input', prepared, STORAGE_USAGE);
        const exponentBuffer = createBufferWithData(device, 'encode exponents', exponents, STORAGE_USAGE);
        buffers.push(rotated, exponentBuffer);
        const codes = make('encode codes', 4 * codeLayout.wordsPerColumn * cols);
        const indices = make('encode indices', 4 * indexLayout.wordsPerColumn * cols);
        const norms = make('encode norms', 4 * cols);
        const gains = gain === 'none' ? null : make('encode gains', 4 * cols);
        const status = make('encode status', QUANTIZE_STATUS_BYTES);
        const encoder = device.createCommandEncoder();
        for (const buffer of [codes, indices, status]) encoder.clearBuffer(buffer);
        dispatchLatticeEncode(device, encoder, scratch, {
          rotated,
          exponents: exponentBuffer,
          codes,
          scaleIndices: indices,
          indexBits,
          norms,
          gains,
          gain,
          status,
          lattice,
          q: scheme.q,
          grid,
          length: rows,
          keptLength: cpu.keptLength,
          cols,
          maxBindingBytes,
        });
        device.queue.submit([encoder.finish()]);
        const words = async (buffer: GPUBuffer, count: number) => new Uint32Array(await readBuffer(device, buffer, 4 * count));
        return {
          codes: unpackField(
            { words: await words(codes, codeLayout.wordsPerColumn * cols), bits: codeBits, ...codeLayout },
            cpu.blocksPerColumn,
            cols,
          ),
          indices: unpackField(
            { words: await words(indices, indexLayout.wordsPerColumn * cols), bits: indexBits, ...indexLayout },
            cpu.blocksPerColumn,
            cols,
          ),
          norms: new Float32Array(await readBuffer(device, norms, 4 * cols)),
          gains: gains ? new Float32Array(await readBuffer(device, gains, 4 * cols)) : null,
          status: await words(status, 4),
        };
      });
      const bad = out.codes.findIndex((c, k) => c !== cpu.codes[k]);
      const where = `column ${Math.floor(bad / cpu.blocksPerColumn)}, block ${bad % cpu.blocksPerColumn}`;
      expect(bad, bad < 0 ? '' : `${where}: GPU code ${out.codes[bad]}, CPU code ${cpu.codes[bad]}`).toBe(-1);
      expect(Array.from(out.codes)).toEqual(Array.from(cpu.codes));
      expect(Array.from(out.indices)).toEqual(Array.from(cpu.scaleIndices));
      expect(Array.from(out.norms, f32Bits)).toEqual(Array.from(cpu.norms, f32Bits));
      expect(out.status[QuantizeStatusWord.clippedBlocks]).toBe(cpu.clippedBlocks);
      if (cpu.gains === null) {
        expect(out.gains).toBeNull();
      } else {
        const gpuGains = out.gains as Float32Array;
        cpu.gains.forEach((want, j) => {
          expect(Math.abs((gpuGains[j] as number) - want), `gain of column ${j}`).toBeLessThanOrEqual(GAIN_TOLERANCE * Math.abs(want));
        });
      }
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  // The gain is looked up in a plain object: 'toString' and 'constructor' are in every object (an `in`
  // check takes them), and the uniform would get no gain mode.
  it.each(['toString', 'constructor', 'mse'])('refuses the gain mode %j by name', (gain) => {
    const { device } = suite.context;
    const scheme = SCHEMES['d3-q6-deterministic'];
    const scratch = new GpuScratch(device);
    const buffers = Array.from({ length: 7 }, (_, i) => createBuffer(device, `gain refusal buffer ${i}`, 1024, STORAGE_USAGE));
    const [rotated, exponents, codes, scaleIndices, norms, gains, status] = buffers as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
    try {
      const args = { rotated, exponents, codes, scaleIndices, norms, gains, gain: gain as GainMode, status, lattice: schemeLattice(scheme), q: scheme.q, grid: scaleGrid(scheme.overload), length: 24, keptLength: 24, cols: 2 };
      expect(() => dispatchLatticeEncode(device, device.createCommandEncoder(), scratch, args)).toThrow(new RegExp(`^lattice encode: unknown gain mode "${gain}"$`));
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });
});
