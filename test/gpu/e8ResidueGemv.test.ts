import { describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchE8InputsI8, dispatchE8ResidueGemvI8, dispatchRotatedE8InputsI8, E8_INPUT_GROUP, e8ResidueGemvI8, e8ResidueGemvReference, GpuE8ResidueMatrix, quantizeE8InputsI8, type E8InputsI8Values, type E8InputsOperand, type RecordedE8InputsI8 } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { e8ResidueForm } from '../../src/quantize/e8Residues.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import type { DeterministicLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { expectRotatedRoundingEqual } from './rotatedInputsSupport.js';
import { e8TestWeights, expectE8GemvWithinBounds, expectRotatedE8GemvWithinBound, runE8QuadGemv } from './e8GemvSupport.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The E8 residue GEMV (src/gpu/kernels/e8ResidueGemvI8.ts: QuantizedLinear's int8Inputs for
 * e8-q16-deterministic) against its CPU twins, per right-hand side (1, 3 and 9: the tile of 8 and a
 * remainder):
 * 1. x̂ (shaders/e8_inputs_i8.wgsl) = quantizeE8InputsI8: scales within WGSL's 2.5 ULP of f32
 *    division (equal on lavapipe), levels equal but where the GPU's f32 division may round the other
 *    way (127·x̃/m within 10⁻⁴ of a half-integer: then by one);
 * 2. y against e8ResidueGemvReference on the GPU's own x̂: a quad's integer sum is exact, so they
 *    differ by f32 rounding only, at most D·u·S (S = Σ_g |s_g·sum_g|·ν_jγ_j·unit, D = the roundings
 *    along a path: the quad sum's conversion, a lane's ⌈quads/32⌉ multiply-adds, 5 levels of the lane
 *    tree, the column scale and unit; 2× margin);
 * 3. y against the exact product Σ_k ŵ̃_jk·x̃_k (decodeRotated, x̃ not rounded), within the int8 inputs'
 *    bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus the f32 term.
 * A wrong nibble, parity, fix lane or sign, or scale index moves an output by ≈ |y|/√N, far above each.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('E8 residue GEMV (GPU) = its CPU twins', () => {
  const suite = contextOnTestDevice();

  /** y (cols × rhs) and the GPU's x̂ of each right-hand side, for x (rows × rhs) and an unrotated `m`. */
  function run(m: ReturnType<typeof e8ResidueForm>, x: Float32Array, rhs: number, dotPath: DotPath, subgroups: boolean): Promise<{ y: Float32Array; inputs: E8InputsI8Values[] }> {
    const { device } = suite.context;
    return runE8QuadGemv(GpuE8ResidueMatrix.upload(device, m, 'test e8 residues'), x, rhs, dotPath, subgroups, (encoder, scratch, args) => dispatchE8ResidueGemvI8(device, encoder, scratch, args));
  }


  // Quads per column: 1, 4, 8, 32, 65 (a second step of one quad), 128 (two whole steps of 2 × 32);
  // right-hand sides 1, 3 (a partial tile of 8) and 9 (a whole tile and one more).
  const shapes = [[8, 1, 1], [100, 17, 3], [256, 33, 1], [1000, 5, 9], [2080, 3, 1], [4096, 16, 1]] as const;
  for (const [rows, cols, rhs] of shapes) {
    it(`${rows} × ${cols}, ${rhs} right-hand side${rhs > 1 ? 's' : ''}: x̂, the twin and the exact product`, async () => {
      const paths: [DotPath, boolean][] = [[dotPathFor(suite.context.features), false], ['plain', false]];
      if (suite.context.features.subgroups) paths.push([dotPathFor(suite.context.features), true]);
      const q = quantize(e8TestWeights(rows, cols, rows + cols), { scheme: 'e8-q16-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
      const m = e8ResidueForm(q);
      const exactW = decodeRotated(q);
      const rng = new Rng(rows);
      const xAll = new Float32Array(rows * rhs);
      for (let k = 0; k < rows * rhs; k++) xAll[k] = rng.nextGaussian() * (k % 37 === 0 ? 20 : 1);
      for (const [dotPath, subgroups] of paths) {
        const { y: yAll, inputs: inputsAll } = await run(m, xAll, rhs, dotPath, subgroups);
       for (let r = 0; r < rhs; r++) {
        const x = xAll.subarray(r * rows, (r + 1) * rows);
        const y = yAll.subarray(r * cols, (r + 1) * cols);
        const inputs = inputsAll[r] as E8InputsI8Values;
        // 1. x̂.
        const cpu = quantizeE8InputsI8(x, q.keptLength, m.quadsPerColumn);
        for (let g = 0; g < m.quadsPerColumn; g++) {
          // m / 127 in f32: WGSL's division is within 2.5 ULP (of 2^−23 relative at most 2^−22.7).
          const scale = Math.fround(cpu.scales[g] as number);
          if (Number.isNaN(scale)) expect(inputs.scales[g]).toBeNaN();
          else expect(Math.abs((inputs.scales[g] as number) - scale)).toBeLessThanOrEqual(2.5 * 2 ** -23 * scale);
          for (let k = g * E8_INPUT_GROUP; k < (g + 1) * E8_INPUT_GROUP; k++) {
            const gpuLevel = inputs.levels[k] as number;
            const cpuLevel = cpu.levels[k] as number;
            if (gpuLevel !== cpuLevel) {
              const ratio = (127 * (x[k] as number)) / (127 * (cpu.scales[g] as number));
              expect(Math.abs(gpuLevel - cpuLevel)).toBe(1);
              expect(Math.abs(Math.abs(ratio % 1) - 0.5)).toBeLessThan(1e-4);
            }
          }
        }
        // 2. The twin on the GPU's x̂; 3. the exact product.
        expectE8GemvWithinBounds({ y, twin: e8ResidueGemvReference(m, inputs), inputs, x, exactW, length: q.length, keptLength: q.keptLength, quadsPerColumn: m.quadsPerColumn, what: `right-hand side ${r}, ${dotPath}${subgroups ? ', subgroups' : ''}` });
       }
      }
    });
  }

  it('the whole call rotates x for a rotated matrix and adds μ·Σx for a centred one: within the int8 inputs\' bound of the exact product', async () => {
    const { device } = suite.context;
    for (const [rows, cols, rhs, center] of [[100, 5, 1, false], [1000, 17, 2, true], [300, 9, 1, true]] as const) {
      const q = quantize(e8TestWeights(rows, cols, 3 * rows), { scheme: 'e8-q16-deterministic', center, seed: 11 }) as DeterministicLatticeMatrix;
      expect(q.rotate).toBe(true);
      const rng = new Rng(rows + 1);
      const xAll = new Float32Array(rows * rhs);
      for (let k = 0; k < rows * rhs; k++) xAll[k] = rng.nextGaussian() + (center ? 2 : 0);
      const uploaded = uploadLatticeMatrix(device, q);
      const w = GpuE8ResidueMatrix.repack(device, uploaded, 'test rotated residues');
      const yGpu = (await e8ResidueGemvI8(device, w, { rows, cols: rhs, data: xAll }, { dotPath: dotPathFor(suite.context.features) })).data;
      w.destroy();
      uploaded.destroy();
      expectRotatedE8GemvWithinBound(q, xAll, rhs, yGpu, `${rows} × ${cols}`);
    }
  });

  it('the GPU repack of an uploaded matrix equals e8ResidueForm word for word (gains, means, rotation, partial quads, split ranges)', async () => {
    const { device } = suite.context;
    // maxBindingBytes 1536: one column of 2080 rows (65 quads: 1040 bytes of residues) per range.
    const cases: [number, number, Omit<QuantizeOptions, 'scheme' | 'nonce'>, number | undefined][] = [
      [8, 1, { rotate: false }, undefined],
      [100, 5, { seed: 3 }, undefined],
      [1000, 17, { seed: 4, gain: 'none', center: true }, undefined],
      [2080, 3, { rotate: false, center: true }, 1536],
    ];
    for (const [rows, cols, options, maxBindingBytes] of cases) {
      const q = quantize(e8TestWeights(rows, cols, rows + 7), { scheme: 'e8-q16-deterministic', ...options }) as DeterministicLatticeMatrix;
      const cpu = e8ResidueForm(q);
      const uploaded = uploadLatticeMatrix(device, q);
      const w = GpuE8ResidueMatrix.repack(device, uploaded, 'test repack', maxBindingBytes === undefined ? {} : { maxBindingBytes });
      const what = `${rows} × ${cols}`;
      expect(Array.from(new Uint32Array(await readBuffer(device, w.residues, 4 * cpu.residues.length))), `${what}: residues`).toEqual(Array.from(cpu.residues));
      expect(Array.from(new Uint32Array(await readBuffer(device, w.sides, 4 * cpu.sides.length))), `${what}: sides`).toEqual(Array.from(cpu.sides));
      const side = new Float32Array(await readBuffer(device, w.columnSide, (cpu.means === null ? 4 : 8) * cols));
      expect(Array.from(side.subarray(0, cols)), `${what}: column scales`).toEqual(Array.from(cpu.columnScales));
      if (cpu.means !== null) expect(Array.from(side.subarray(cols)), `${what}: means`).toEqual(Array.from(cpu.means));
      expect([w.columnUnit, w.quadsPerColumn, w.rotate, w.seed, w.length, w.keptLength, w.hasMeans]).toEqual([cpu.columnUnit, cpu.quadsPerColumn, cpu.rotate, cpu.seed, cpu.length, cpu.keptLength, cpu.means !== null]);
      w.destroy();
      uploaded.destroy();
    }
    // Refusals, by name.
    const d3 = uploadLatticeMatrix(device, quantize(e8TestWeights(64, 2, 1), { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix);
    expect(() => GpuE8ResidueMatrix.repack(device, d3, 'test')).toThrow(/E8 with q = 16/);
    d3.destroy();
  });

  it('splitting the columns over bindings (maxBindingBytes) gives the same bits as one dispatch, for f32 and f16 outputs with a bias', async () => {
    const { device } = suite.context;
    const rows = 2080;
    const cols = 21;
    const q = quantize(e8TestWeights(rows, cols, 9), { scheme: 'e8-q16-deterministic', rotate: false, center: true }) as DeterministicLatticeMatrix;
    const w = GpuE8ResidueMatrix.upload(device, e8ResidueForm(q), 'test split residues');
    const rng = new Rng(9);
    const x = Float32Array.from({ length: 2 * rows }, () => rng.nextGaussian());
    const bias = createBufferWithData(device, 'test bias', Float32Array.from({ length: cols }, (_, j) => j - 10), STORAGE_USAGE);
    const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
    try {
      for (const outputFormat of ['f32', 'f16'] as const) {
        const outputs: Uint8Array[] = [];
        // 65 quads per column: 1040 bytes of residues; 17408 bytes (x's 2 × 8320 and the slack of an
        // aligned binding fit) hold 16 columns per range: ranges of 16 and 5.
        for (const maxBindingBytes of [undefined, 17408]) {
          const bytes = (outputFormat === 'f16' ? 2 : 4) * cols * 2;
          const y = createBuffer(device, 'test y', 4 * Math.ceil(bytes / 4), STORAGE_USAGE);
          const scratch = new GpuScratch(device);
          const encoder = device.createCommandEncoder({ label: 'test e8 residue split' });
          dispatchE8ResidueGemvI8(device, encoder, scratch, { w, x: xBuffer, y, rhs: 2, bias, outputFormat, dotPath: dotPathFor(suite.context.features), ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }) });
          device.queue.submit([encoder.finish()]);
          outputs.push(new Uint8Array(await readBuffer(device, y, 4 * Math.ceil(bytes / 4))));
          scratch.destroy();
          y.destroy();
        }
        expect(Array.from(outputs[1] as Uint8Array), outputFormat).toEqual(Array.from(outputs[0] as Uint8Array));
      }
    } finally {
      w.destroy();
      bias.destroy();
      xBuffer.destroy();
    }
  });

  it('writes Y and nothing past it: the rows of a partial tile of right-hand sides past rhs keep what the buffer held (f32 and f16)', async () => {
    const { device } = suite.context;
    // 3 right-hand sides: a tile of 8 with 5 rows past Y, which the kernel computes (zeros) and must not store.
    const [rows, cols, rhs] = [100, 5, 3];
    const q = quantize(e8TestWeights(rows, cols, 14), { scheme: 'e8-q16-deterministic', rotate: false, center: true }) as DeterministicLatticeMatrix;
    const w = GpuE8ResidueMatrix.upload(device, e8ResidueForm(q), 'test residues, Y in a larger buffer');
    const rng = new Rng(14);
    const x = createBufferWithData(device, 'test x', Float32Array.from({ length: rows * rhs }, () => rng.nextGaussian()), STORAGE_USAGE);
    const sentinel = 0x7f7f7f7f; // f32 bits (and f16 halves) that no output here has
    const words = 8 * cols; // a whole tile's rows
    try {
      for (const outputFormat of ['f32', 'f16'] as const) {
        const y = createBufferWithData(device, 'test y', new Uint32Array(words).fill(sentinel), STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        const encoder = device.createCommandEncoder({ label: 'test e8 residue y in a larger buffer' });
        dispatchE8ResidueGemvI8(device, encoder, scratch, { w, x, y, rhs, outputFormat, dotPath: dotPathFor(suite.context.features) });
        device.queue.submit([encoder.finish()]);
        const got = new Uint32Array(await readBuffer(device, y, 4 * words));
        scratch.destroy();
        y.destroy();
        // Y's 15 outputs: 15 words, or 15 halves (the high half of word 7 is past Y).
        const halves = outputFormat === 'f16';
        const yWords = halves ? Math.ceil((cols * rhs) / 2) : cols * rhs;
        expect(Array.from(got.subarray(yWords)), `${outputFormat}: the words past Y`).toEqual(new Array<number>(words - yWords).fill(sentinel));
        if (halves) expect((got[yWords - 1] as number) >>> 16, 'f16: the half past Y').toBe(sentinel >>> 16);
        expect(Array.from(got.subarray(0, yWords)).some((word) => word === sentinel), `${outputFormat}: Y written`).toBe(false);
      }
    } finally {
      w.destroy();
      x.destroy();
    }
  });

  it('gives NaN outputs for a non-finite input, and zeros for a zero one', async () => {
    const q = quantize(e8TestWeights(64, 3, 5), { scheme: 'e8-q16-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
    const m = e8ResidueForm(q);
    const x = new Float32Array(64);
    expect(Array.from((await run(m, x, 1, 'plain', false)).y)).toEqual([0, 0, 0]);
    x[40] = Infinity;
    expect((await run(m, x, 1, 'plain', false)).y.every(Number.isNaN)).toBe(true);
  });

  it('refuses x̂ rounded for another shape or count, a centred call without x, and a destroyed matrix', () => {
    const { device } = suite.context;
    const m = e8ResidueForm(quantize(gaussianMatrix(64, 2, 3), { scheme: 'e8-q16-deterministic', center: false, rotate: false }) as DeterministicLatticeMatrix);
    const other = e8ResidueForm(quantize(gaussianMatrix(96, 2, 3), { scheme: 'e8-q16-deterministic', center: false, rotate: false }) as DeterministicLatticeMatrix);
    const centred = e8ResidueForm(quantize(gaussianMatrix(64, 2, 3), { scheme: 'e8-q16-deterministic', center: true, rotate: false }) as DeterministicLatticeMatrix);
    const w = GpuE8ResidueMatrix.upload(device, m, 'test refusals');
    const wOther = GpuE8ResidueMatrix.upload(device, other, 'test refusals, other shape');
    const wCentred = GpuE8ResidueMatrix.upload(device, centred, 'test refusals, centred');
    const scratch = new GpuScratch(device);
    const y = createBuffer(device, 'test y', 96 * 4, STORAGE_USAGE);
    const encoder = device.createCommandEncoder();
    const inputsI8 = dispatchE8InputsI8(device, encoder, scratch, { w: wOther, xRotated: y, rhs: 1 });
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputsI8, y, rhs: 1, dotPath: 'plain' })).toThrow(/rounded for .*96 rows.*but W reads .*64 rows/);
    const own = dispatchE8InputsI8(device, encoder, scratch, { w, xRotated: y, rhs: 1 });
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputsI8: own, y, rhs: 2, dotPath: 'plain' })).toThrow(/hold 1 right-hand sides, the call has 2/);
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w: wCentred, inputsI8: own, y, rhs: 1, dotPath: 'plain' })).toThrow(/centred, so x is needed/);
    w.destroy();
    expect(() => dispatchE8ResidueGemvI8(device, encoder, scratch, { w, inputsI8: own, y, rhs: 1, dotPath: 'plain' })).toThrow(/live GpuE8ResidueMatrix/);
    for (const resource of [wOther, wCentred, scratch, y]) resource.destroy();
  });

  // x̃ rounded in groups of 32 inside the rotation's last pass (dispatchRotatedE8InputsI8) against the
  // rotation and then dispatchE8InputsI8: both read the same f32 x̃ with the same rule, so x̃ and x̂
  // are equal bit for bit, fused or not.
  const operand = (rows: number, seed: number, keptLength = rotationLength(rows)): E8InputsOperand => ({ rows, length: rotationLength(rows), keptLength, quadsPerColumn: Math.ceil(keptLength / 32), rotate: true, seed });
  it.each([
    ['n = 300, 3 columns', operand(300, 5), 3, 'f32', false],
    ['n = 13, 64 columns (many per workgroup)', operand(13, 6), 64, 'f32', false],
    ['n = 250 of N = 256, keptLength 240', operand(250, 7, 240), 4, 'f32', false],
    ['n = 1000, f16 input at an odd half offset', operand(1000, 8), 5, 'f16', false],
    ['n = 300, a NaN in column 1', operand(300, 9), 3, 'f32', true],
    ['n = 1100 (two stages of one pass)', operand(1100, 10), 2, 'f32', false],
    ['n = 20000 (several passes: not fused)', operand(20000, 11), 1, 'f32', false],
  ] as [string, E8InputsOperand, number, 'f32' | 'f16', boolean][])('x̃ rounded in the rotation pass (dispatchRotatedE8InputsI8) equals the rotation, then dispatchE8InputsI8, bit for bit (%s)', async (name, w, rhs, format, withNaN) => {
    const { device } = suite.context;
    const words = await expectRotatedRoundingEqual(
      device,
      { w, rhs, format, withNaN, fused: !name.includes('not fused') },
      (scratch, encoder, x) => dispatchRotatedE8InputsI8(device, encoder, scratch, { ...x, w }),
      (scratch, encoder, xRotated) => dispatchE8InputsI8(device, encoder, scratch, { w, xRotated, rhs }),
    );
    // Not vacuous: levels, offsets and scales were written (and the NaN column's scales are NaN).
    const groups = w.quadsPerColumn;
    const scales = new Float32Array(words.buffer, 48 * groups * rhs, groups * rhs);
    expect(scales.filter((v) => v > 0).length).toBeGreaterThan(0);
    expect(scales.some(Number.isNaN)).toBe(withNaN);
    expect(words.subarray(0, 12 * groups * rhs).some((word) => word !== 0)).toBe(true);
  });

  it('spread: false rounds one column of n = 8192 in the rotation pass (dispatchRotatedE8InputsI8), spread: true after it, with the same bits', async () => {
    const { device } = suite.context;
    const w = operand(8192, 16);
    for (const spread of [false, true]) {
      let recorded: RecordedE8InputsI8 | undefined;
      await expectRotatedRoundingEqual(
        device,
        { w, rhs: 1, format: 'f32', withNaN: false, fused: false },
        (scratch, encoder, x) => (recorded = dispatchRotatedE8InputsI8(device, encoder, scratch, { ...x, w, spread })),
        (scratch, encoder, xRotated) => dispatchE8InputsI8(device, encoder, scratch, { w, xRotated, rhs: 1 }),
      );
      expect(recorded?.inputs.label.includes('rounded in the rotation'), `spread: ${spread}`).toBe(!spread);
    }
  });

  it('the rotation refuses an int8 output of another group size, too few groups or too small a buffer', () => {
    const { device } = suite.context;
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      const x = scratch.buffer('x', 4 * 300, STORAGE_USAGE);
      const out = scratch.buffer('out', 4 * 512, STORAGE_USAGE);
      const inputs = scratch.buffer('inputs', 64, STORAGE_USAGE);
      const rotate = (int8Output: Parameters<typeof dispatchHadamard>[3]['int8Output']) => () => dispatchHadamard(device, encoder, scratch, { input: x, output: out, rows: 300, cols: 1, seed: 1, ...(int8Output === undefined ? {} : { int8Output }) });
      expect(rotate({ buffer: inputs, kept: 300, groups: 16, groupSize: 16 as never })).toThrow(/groupSize must be 12 or 32/);
      expect(rotate({ buffer: inputs, kept: 300, groups: 9, groupSize: 32 })).toThrow(/kept must be in \[1, min\(N, 32·groups\)\]/);
      expect(rotate({ buffer: inputs, kept: 300, groups: 10, groupSize: 32 })).toThrow(/int8Output\.buffer/);
      expect(() => dispatchRotatedE8InputsI8(device, encoder, scratch, { w: { ...operand(300, 1), rotate: false }, x, xRotated: out, rhs: 1 })).toThrow(/for rotated matrices/);
    } finally {
      scratch.destroy();
    }
  });
});
