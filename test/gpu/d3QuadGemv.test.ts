import { describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { d3QuadForm, d3QuadGemvI8, d3QuadGemvReference, d3Quads, d3QuadUnsupported, dispatchD3QuadGemvI8, dispatchD3QuadInputsI8, GpuD3QuadMatrix, type D3QuadMatrix } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import type { LeaderCopies } from '../../src/gpu/kernels/gemvI8Common.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { INPUT_GROUP, quantizeInputsI8, type InputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { latticeGemvI8, latticeInt8InputsUnsupported } from '../../src/gpu/kernels/latticeGemvI8.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { itemsPerBinding } from '../../src/gpu/workSplit.js';
import { D3, leaderTable, VoronoiCode } from '../../src/lattices/index.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { Rng } from '../../src/rotation/random.js';
import { e8TestWeights } from './e8GemvSupport.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The D3 quad GEMV (src/gpu/kernels/d3QuadGemvI8.ts: d3-q6-deterministic codes laid out in whole
 * quads of 16 blocks per column) against its CPU twins:
 * 1. the GPU repack of an uploaded matrix = d3QuadForm, word for word;
 * 2. y against d3QuadGemvReference on the GPU's own x̂ (read back): a group's integer sum is exact
 *    (|·| < 2^24, so its f32 conversion too), so they differ by f32 rounding only, at most 2·D·u·S
 *    (S = Σ_g |s_g·sum_g|·ν_jγ_j·unit, D the roundings along a path: the group's scaling and the 4-term
 *    dot of a quad, a lane's ⌈quads/32⌉ additions, 5 levels of the lane tree, the column scale and
 *    unit); y against the exact product Σ_k ŵ̃_jk·x̃_k (decodeRotated, x̃ not rounded) within the int8
 *    inputs' bound Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g} |ŵ̃_jk| plus that;
 * 3. the whole call (rotation, rounding, μ·Σx) within the int8 inputs' bound of the exact product, and
 *    within the f32 rounding of the deterministic D3 kernel of latticeGemvI8.ts on the same matrix;
 * over shapes of 1 to 86 quads per column (one block, a quad cut short, a second step of one quad),
 * 1 to 33 columns (a workgroup of 16 and a remainder), 1, 3 and 9 right-hand sides (the tile of 8),
 * every dot path and the table's copies. A wrong code byte, scale index or table entry moves an output
 * by ≈ |y|/√N, far above each tolerance.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;
const LEADERS = leaderTable(new VoronoiCode(D3, 6));

/** The GPU's x̂ of each right-hand side (4·quads groups of 12), levels in coordinate order and scales (f32). */
async function readQuadInputs(device: GPUDevice, inputs: GPUBuffer, groups: number, rhs: number): Promise<InputsI8[]> {
  const words = new Uint32Array(await readBuffer(device, inputs, 20 * groups * rhs));
  const scales = new Float32Array(words.buffer, 16 * groups * rhs, groups * rhs);
  return Array.from({ length: rhs }, (_, r) => {
    const levels = new Int8Array(INPUT_GROUP * groups);
    for (let g = 0; g < groups; g++) {
      for (let b = 0; b < 4; b++) {
        const word = words[4 * (r * groups + g) + b] as number;
        expect(word >>> 24, 'x̂ words have their high byte 0 (the kernel\'s table puts k there)').toBe(0);
        for (let c = 0; c < 3; c++) levels[INPUT_GROUP * g + 3 * b + c] = (word << (24 - 8 * c)) >> 24;
      }
    }
    return { levels, scales: Float64Array.from(scales.subarray(r * groups, (r + 1) * groups)) };
  });
}

/** y against the twin on the GPU's x̂ (f32 rounding) and against the exact product (the int8 inputs' bound). */
function expectWithinBounds(m: D3QuadMatrix, q: DeterministicLatticeMatrix, y: ArrayLike<number>, inputs: InputsI8, x: ArrayLike<number>, what: string): void {
  const twin = d3QuadGemvReference(m, LEADERS, inputs);
  const exactW = decodeRotated(q);
  const cpu = quantizeInputsI8(x, q.keptLength, 4 * m.quadsPerColumn);
  const depth = 1 + 4 + Math.ceil(m.quadsPerColumn / 32) + 5 + 2;
  for (let j = 0; j < m.cols; j++) {
    let s = 0;
    let inputBound = 0;
    for (let g = 0; g < 4 * m.quadsPerColumn; g++) {
      let groupAbs = 0;
      let wAbs = 0;
      for (let k = g * INPUT_GROUP; k < Math.min((g + 1) * INPUT_GROUP, q.keptLength); k++) {
        const wk = exactW[j * q.length + k] as number;
        wAbs += Math.abs(wk);
        groupAbs += Math.abs(wk * (inputs.levels[k] as number));
      }
      s += (inputs.scales[g] as number) * groupAbs;
      inputBound += (cpu.scales[g] as number) * (0.5 + 2e-4) * wAbs;
    }
    const twinTolerance = 2 * depth * U * s + 1e-30;
    expect(Math.abs((y[j] as number) - (twin[j] as number)), `column ${j}, ${what}: against the twin`).toBeLessThanOrEqual(twinTolerance);
    let exact = 0;
    for (let k = 0; k < q.keptLength; k++) exact += (exactW[j * q.length + k] as number) * (x[k] as number);
    expect(Math.abs((y[j] as number) - exact), `column ${j}, ${what}: against the exact product`).toBeLessThanOrEqual(inputBound + twinTolerance);
  }
}

describe.skipIf(noGpu !== undefined)('D3 quad GEMV (GPU) = its CPU twins', () => {
  const suite = contextOnTestDevice();

  it('the GPU repack of an uploaded matrix equals d3QuadForm word for word (gains, means, rotation, a quad cut short, split ranges)', async () => {
    const { device } = suite.context;
    // maxBindingBytes 2048: one column of 3000 rows (1000 blocks: 1000 bytes of codes) per range.
    const cases: [number, number, Omit<QuantizeOptions, 'scheme' | 'nonce'>, number | undefined][] = [
      [3, 1, { rotate: false }, undefined],
      [50, 5, { seed: 3 }, undefined],
      [1000, 17, { seed: 4, gain: 'none', center: true }, undefined],
      [3000, 3, { rotate: false, center: true }, 2048],
    ];
    for (const [rows, cols, options, maxBindingBytes] of cases) {
      const q = quantize(e8TestWeights(rows, cols, rows + 7), { scheme: 'd3-q6-deterministic', ...options }) as DeterministicLatticeMatrix;
      const cpu = d3QuadForm(q);
      expect(cpu.quadsPerColumn).toBe(Math.ceil(q.blocksPerColumn / 16));
      const uploaded = uploadLatticeMatrix(device, q);
      const w = GpuD3QuadMatrix.repack(device, uploaded, 'test repack', maxBindingBytes === undefined ? {} : { maxBindingBytes });
      const what = `${rows} × ${cols}`;
      expect(Array.from(new Uint32Array(await readBuffer(device, w.codes, 4 * cpu.codes.length))), `${what}: codes`).toEqual(Array.from(cpu.codes));
      expect(Array.from(new Uint32Array(await readBuffer(device, w.indices, 4 * cpu.indices.length))), `${what}: indices`).toEqual(Array.from(cpu.indices));
      const side = new Float32Array(await readBuffer(device, w.columnSide, (cpu.means === null ? 4 : 8) * cols));
      expect(Array.from(side.subarray(0, cols)), `${what}: column scales`).toEqual(Array.from(cpu.columnScales));
      if (cpu.means !== null) expect(Array.from(side.subarray(cols)), `${what}: means`).toEqual(Array.from(cpu.means));
      expect([w.columnUnit, w.quadsPerColumn, w.blocksPerColumn, w.rotate, w.seed, w.length, w.keptLength, w.hasMeans]).toEqual([cpu.columnUnit, cpu.quadsPerColumn, cpu.blocksPerColumn, cpu.rotate, cpu.seed, cpu.length, cpu.keptLength, cpu.means !== null]);
      w.destroy();
      uploaded.destroy();
    }
  });

  // Quads per column: 1 (one block), 2 (a quad cut short), 21, 64 (one whole step of 2 × 32), 86 (a
  // second step of 22); columns 1, 16 and 33; right-hand sides 1, 3 (a partial tile) and 9.
  const shapes = [[3, 1, 1], [50, 17, 3], [1000, 33, 1], [3072, 5, 9], [4096, 16, 1]] as const;
  for (const [rows, cols, rhs] of shapes) {
    it(`${rows} × ${cols}, ${rhs} right-hand side${rhs > 1 ? 's' : ''}: the twin on the GPU's x̂ and the exact product`, async () => {
      const { device, features } = suite.context;
      // 4 copies and 1; with one right-hand side also the default (32 copies where they fit beside the
      // staged x̂, else the most that fit). Not with a tile: the same loop as 4 copies, and a variant
      // more would take the 512-bit lavapipe of CI past the test's time.
      const paths: [DotPath, boolean, LeaderCopies | undefined][] = [[dotPathFor(features), false, 4], ['plain', false, 1]];
      if (rhs === 1) paths.push([dotPathFor(features), false, undefined]);
      if (features.subgroups) paths.push([dotPathFor(features), true, 2]);
      const q = quantize(e8TestWeights(rows, cols, rows + cols), { scheme: 'd3-q6-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
      const m = d3QuadForm(q);
      expect(m.quadsPerColumn).toBe(d3Quads(q.blocksPerColumn));
      const rng = new Rng(rows);
      const xAll = new Float32Array(rows * rhs);
      for (let k = 0; k < rows * rhs; k++) xAll[k] = rng.nextGaussian() * (k % 37 === 0 ? 20 : 1);
      for (const [dotPath, subgroups, leaderCopies] of paths) {
        const w = GpuD3QuadMatrix.upload(device, m, 'test d3 quads');
        const xBuffer = createBufferWithData(device, 'test x̃', xAll, STORAGE_USAGE);
        const yBuffer = createBuffer(device, 'test y', 4 * cols * rhs, STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        const encoder = device.createCommandEncoder({ label: 'test d3 quad gemv' });
        const inputsI8 = dispatchD3QuadInputsI8(device, encoder, scratch, { w, xRotated: xBuffer, rhs });
        dispatchD3QuadGemvI8(device, encoder, scratch, { w, inputsI8, y: yBuffer, rhs, dotPath, subgroups, ...(leaderCopies === undefined ? {} : { leaderCopies }), ...(subgroups ? { subgroupTestMode: 'require-shuffles' as const } : {}) });
        device.queue.submit([encoder.finish()]);
        const yAll = new Float32Array(await readBuffer(device, yBuffer, 4 * cols * rhs));
        const inputs = await readQuadInputs(device, inputsI8.inputs, 4 * m.quadsPerColumn, rhs);
        scratch.destroy();
        w.destroy();
        xBuffer.destroy();
        yBuffer.destroy();
        for (let r = 0; r < rhs; r++) {
          expectWithinBounds(m, q, yAll.subarray(r * cols, (r + 1) * cols), inputs[r] as InputsI8, xAll.subarray(r * rows, (r + 1) * rows), `right-hand side ${r}, ${dotPath}, ${leaderCopies ?? 'default'} copies${subgroups ? ', subgroups' : ''}`);
        }
      }
      // Compiling the variants (three tiles of 8 here) is most of the time: ≈ 100 s with a cold shader
      // cache on CI's 512-bit lavapipe, the first time that width runs.
    }, 300_000);
  }

  it('the whole call rotates x and adds μ·Σx: within the int8 inputs\' bound of the exact product, and within f32 rounding of the deterministic D3 kernel', async () => {
    const { device, features } = suite.context;
    const dotPath = dotPathFor(features);
    for (const [rows, cols, rhs, center] of [[100, 5, 1, false], [1000, 17, 2, true], [4096, 3, 1, true]] as const) {
      const q = quantize(e8TestWeights(rows, cols, 3 * rows), { scheme: 'd3-q6-deterministic', center, seed: 11 }) as DeterministicLatticeMatrix;
      expect(q.rotate).toBe(true);
      const rng = new Rng(rows + 1);
      const xAll = new Float32Array(rows * rhs);
      for (let k = 0; k < rows * rhs; k++) xAll[k] = rng.nextGaussian() + (center ? 2 : 0);
      const uploaded = uploadLatticeMatrix(device, q);
      const w = GpuD3QuadMatrix.repack(device, uploaded, 'test rotated quads');
      const yQuad = (await d3QuadGemvI8(device, w, { rows, cols: rhs, data: xAll }, { dotPath })).data;
      const yStored = (await latticeGemvI8(device, uploaded, { rows, cols: rhs, data: xAll }, { dotPath })).data;
      w.destroy();
      uploaded.destroy();
      const exactW = decodeRotated(q);
      for (let r = 0; r < rhs; r++) {
        const x = xAll.subarray(r * rows, (r + 1) * rows);
        const xRotated = new RandomizedHadamard(rows, q.seed).forward(x);
        const cpu = quantizeInputsI8(xRotated, q.keptLength, Math.ceil(q.blocksPerColumn / 4));
        const xSum = x.reduce((a, b) => a + b, 0);
        for (let j = 0; j < cols; j++) {
          let exact = q.means === null ? 0 : (q.means[j] as number) * xSum;
          let magnitude = Math.abs(exact);
          let inputBound = 0;
          for (let k = 0; k < q.keptLength; k++) {
            const wk = exactW[j * q.length + k] as number;
            exact += wk * (xRotated[k] as number);
            magnitude += Math.abs(wk * (xRotated[k] as number));
            inputBound += (cpu.scales[Math.floor(k / INPUT_GROUP)] as number) * (0.5 + 2e-4) * Math.abs(wk);
          }
          const at = r * cols + j;
          const what = `${rows} × ${cols}, right-hand side ${r}, column ${j}`;
          expect(Math.abs((yQuad[at] as number) - exact), `${what}: against the exact product`).toBeLessThanOrEqual(inputBound + 64 * U * magnitude);
          // The same x̂ and the same integer sums: only the order of the f32 additions differs.
          expect(Math.abs((yQuad[at] as number) - (yStored[at] as number)), `${what}: against the deterministic D3 kernel`).toBeLessThanOrEqual(64 * U * (magnitude + inputBound));
        }
      }
    }
    // Compiling the variants is most of the time: ≈ 70 s with a cold shader cache on 512-bit lavapipe.
  }, 300_000);

  it('a code byte past the 216 leaders (only a hand-made upload holds one) adds 0, as the twin says, with the default copies and with 1', async () => {
    const { device, features } = suite.context;
    const rows = 96;
    const q = quantize(e8TestWeights(rows, 3, 5), { scheme: 'd3-q6-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
    const m = d3QuadForm(q);
    const codes = Uint32Array.from(m.codes);
    // Column 0's first code word: the bytes 216, 230, 250 and 255; column 2: byte 2 of its sixth word 240.
    codes[0] = (216 | (230 << 8) | (250 << 16) | (255 << 24)) >>> 0;
    const sixth = 4 * 2 * m.quadsPerColumn + 5;
    codes[sixth] = (((codes[sixth] as number) & ~(0xff << 16)) | (240 << 16)) >>> 0;
    const hacked: D3QuadMatrix = { ...m, codes };
    // What a table clamped at its last leader would give instead: code 215 for every such byte.
    const clamped: D3QuadMatrix = { ...m, codes: codes.map((word) => [0, 8, 16, 24].reduce((w, shift) => (((w >>> shift) & 0xff) >= 216 ? ((w & ~(0xff << shift)) | (215 << shift)) >>> 0 : w), word)) };
    const rng = new Rng(7);
    const x = Float32Array.from({ length: rows }, () => rng.nextGaussian());
    const inputs = quantizeInputsI8(x, q.keptLength, 4 * m.quadsPerColumn);
    const twin = d3QuadGemvReference(hacked, LEADERS, inputs);
    const wrong = d3QuadGemvReference(clamped, LEADERS, inputs);
    const magnitude = twin.reduce((a, b) => a + Math.abs(b), 0) + wrong.reduce((a, b) => a + Math.abs(b), 0);
    // The test can tell the two apart: the clamped table moves columns 0 and 2.
    expect(Math.abs((twin[0] as number) - (wrong[0] as number))).toBeGreaterThan(1e-3 * magnitude);
    expect(Math.abs((twin[2] as number) - (wrong[2] as number))).toBeGreaterThan(1e-3 * magnitude);
    for (const leaderCopies of [undefined, 1] as const) {
      const w = GpuD3QuadMatrix.upload(device, hacked, 'test quads with codes past the leaders');
      const y = (await d3QuadGemvI8(device, w, { rows, cols: 1, data: x }, { dotPath: dotPathFor(features), ...(leaderCopies === undefined ? {} : { leaderCopies }) })).data;
      w.destroy();
      for (let j = 0; j < 3; j++) expect(Math.abs((y[j] as number) - (twin[j] as number)), `column ${j}, ${leaderCopies ?? 'default'} copies`).toBeLessThanOrEqual(1e-5 * magnitude);
    }
  });

  it('splitting the columns over bindings (maxBindingBytes) gives the same bits as one dispatch: centred, a bias, f32 and f16 outputs at ranges starting on odd and even columns', async () => {
    const { device, features } = suite.context;
    // 980 rows: 327 blocks, 21 quads per column (336 bytes of codes), x 3920 bytes. Bindings of 4176
    // bytes hold x (with the 252 bytes of slack an aligned offset may need) and 11 columns of codes:
    // ranges of 11, 11 and 3 columns, from columns 0, 11 and 22; the second starts on an odd column (its
    // first f16 output shares a word with the range before), the third on an even one.
    const [rows, cols, maxBindingBytes] = [980, 25, 4176];
    const q = quantize(e8TestWeights(rows, cols, 10), { scheme: 'd3-q6-deterministic', rotate: false, center: true }) as DeterministicLatticeMatrix;
    const w = GpuD3QuadMatrix.upload(device, d3QuadForm(q), 'test split quads');
    expect(itemsPerBinding(16 * w.quadsPerColumn, maxBindingBytes, device.limits.minStorageBufferOffsetAlignment)).toBe(11);
    const rng = new Rng(10);
    const x = Float32Array.from({ length: rows }, () => rng.nextGaussian() + 1);
    const bias = createBufferWithData(device, 'test bias', Float32Array.from({ length: cols }, (_, j) => j - 12), STORAGE_USAGE);
    const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
    try {
      for (const outputFormat of ['f32', 'f16'] as const) {
        const bytes = 4 * Math.ceil(((outputFormat === 'f16' ? 2 : 4) * cols) / 4);
        const outputs: number[][] = [];
        for (const split of [undefined, maxBindingBytes]) {
          const y = createBuffer(device, 'test y', bytes, STORAGE_USAGE);
          const scratch = new GpuScratch(device);
          const encoder = device.createCommandEncoder({ label: 'test d3 quad split' });
          dispatchD3QuadGemvI8(device, encoder, scratch, { w, x: xBuffer, y, rhs: 1, bias, outputFormat, dotPath: dotPathFor(features), ...(split === undefined ? {} : { maxBindingBytes: split }) });
          device.queue.submit([encoder.finish()]);
          outputs.push(Array.from(new Uint8Array(await readBuffer(device, y, bytes))));
          scratch.destroy();
          y.destroy();
        }
        expect(outputs[1], outputFormat).toEqual(outputs[0]);
        // Equal bits of NaN would say nothing: the outputs are numbers.
        if (outputFormat === 'f32') expect(Array.from(new Float32Array(Uint8Array.from(outputs[0] ?? []).buffer)).every(Number.isFinite)).toBe(true);
      }
    } finally {
      w.destroy();
      bias.destroy();
      xBuffer.destroy();
    }
  });

  it('a scale multiple of 128 (a ladder of ratio 2: 16, 32, 64, 128; the byte holds up to 255) weighs its block in full, as the twin says', async () => {
    const { device, features } = suite.context;
    const rows = 96;
    // The presets' ladders stay below 128 (d3-q6-deterministic: 16, 23, 32, 45); a scheme of the
    // caller's may not, and d3QuadForm takes any multiple in a byte.
    const scheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: 2, steps: 4 } } as const;
    const q = quantize(e8TestWeights(rows, 3, 5), { scheme, center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
    expect(Array.from(q.multiples)).toEqual([16, 32, 64, 128]);
    const m = d3QuadForm(q);
    const rng = new Rng(8);
    const x = Float32Array.from({ length: rows }, () => rng.nextGaussian());
    const inputs = quantizeInputsI8(x, q.keptLength, 4 * m.quadsPerColumn);
    const twin = d3QuadGemvReference(m, LEADERS, inputs);
    // What a kernel that kept 7 bits of k would give (128 → 0): the test can tell the two apart on
    // column 2, whose one nonzero block (its spike) takes the multiple 128.
    const sevenBits = d3QuadGemvReference({ ...m, multiples: m.multiples.map((k) => k & 0x7f) }, LEADERS, inputs);
    const magnitude = twin.reduce((a, b) => a + Math.abs(b), 0);
    expect(Math.abs((twin[2] as number) - (sevenBits[2] as number))).toBeGreaterThan(0.1 * magnitude);
    const w = GpuD3QuadMatrix.upload(device, m, 'test quads with a multiple of 128');
    const y = (await d3QuadGemvI8(device, w, { rows, cols: 1, data: x }, { dotPath: dotPathFor(features) })).data;
    w.destroy();
    for (let j = 0; j < 3; j++) expect(Math.abs((y[j] as number) - (twin[j] as number)), `column ${j}`).toBeLessThanOrEqual(1e-5 * magnitude);
  });

  it('a non-finite x gives NaN outputs, never a finite number', async () => {
    const { device, features } = suite.context;
    const rows = 200;
    const q = quantize(e8TestWeights(rows, 4, 5), { scheme: 'd3-q6-deterministic', rotate: false }) as DeterministicLatticeMatrix;
    const w = GpuD3QuadMatrix.upload(device, d3QuadForm(q), 'test nan');
    for (const bad of [NaN, Infinity]) {
      const x = new Float32Array(rows).fill(0.5);
      x[77] = bad;
      // The host helper refuses a non-finite x; a GPU buffer reaches the kernel as it is.
      const xBuffer = createBufferWithData(device, 'test x', x, STORAGE_USAGE);
      const yBuffer = createBuffer(device, 'test y', 16, STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder();
      dispatchD3QuadGemvI8(device, encoder, scratch, { w, x: xBuffer, y: yBuffer, rhs: 1, dotPath: dotPathFor(features) });
      device.queue.submit([encoder.finish()]);
      const y = new Float32Array(await readBuffer(device, yBuffer, 16));
      for (let j = 0; j < 4; j++) expect(y[j], `x with ${bad}, column ${j}`).toBeNaN();
      scratch.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
    w.destroy();
  });

  it('the repack writes code 0 past a column\'s blocks whatever the upload holds there (equal to d3QuadForm), with 1, 3 and 2 blocks in a column\'s last code word', async () => {
    const { device } = suite.context;
    // 50 rows: 17 blocks, a column's 5th code word holds one block and 3 bytes of padding; 33 rows: 11
    // blocks, 3 and 1; 18 rows: 6 blocks, 2 and 2.
    for (const rows of [50, 33, 18]) {
      const q = quantize(e8TestWeights(rows, 5, 9), { scheme: 'd3-q6-deterministic', rotate: false }) as DeterministicLatticeMatrix;
      const uploaded = uploadLatticeMatrix(device, q);
      const words = Math.ceil(q.blocksPerColumn / 4);
      const kept = q.blocksPerColumn - 4 * (words - 1); // the blocks in a column's last word
      const blockBytes = 2 ** (8 * kept) - 1;
      const codes = new Uint32Array(await readBuffer(device, uploaded.codes, 4 * words * q.cols));
      for (let j = 0; j < q.cols; j++) {
        const last = codes[j * words + words - 1] as number;
        // Garbage in the padding bytes (a hand-written or hostile upload): 0x07, 0xc8, 0xff from byte 1.
        device.queue.writeBuffer(uploaded.codes, 4 * (j * words + words - 1), Uint32Array.of(((last & blockBytes) | (0xffc80700 & ~blockBytes)) >>> 0));
      }
      const w = GpuD3QuadMatrix.repack(device, uploaded, 'test padding');
      const cpu = d3QuadForm(q);
      expect(Array.from(new Uint32Array(await readBuffer(device, w.codes, 4 * cpu.codes.length))), `${rows} rows`).toEqual(Array.from(cpu.codes));
      w.destroy();
      uploaded.destroy();
    }
  });

  it('refuses what it cannot read, by name', () => {
    const { device } = suite.context;
    const e8 = uploadLatticeMatrix(device, quantize(e8TestWeights(64, 2, 1), { scheme: 'e8-q16-deterministic' }) as DeterministicLatticeMatrix);
    expect(() => GpuD3QuadMatrix.repack(device, e8, 'test')).toThrow(/reads D3 codes/);
    e8.destroy();
    const q = quantize(e8TestWeights(48, 2, 1), { scheme: 'd3-q6-deterministic', rotate: false }) as DeterministicLatticeMatrix;
    expect(() => d3QuadForm({ ...q, multiples: Int32Array.of(16, 23, 32, 300) })).toThrow(/in a byte .*16, 23, 32, 300/);
    // A hand-built matrix with 3-bit scale indices: a wider index would spill into its neighbour's field.
    expect(d3QuadUnsupported({ scheme: q.scheme, multiples: q.multiples, scaleIndexBits: 3 })).toMatch(/1 or 2 bits; this matrix has 3/);
    // The stored-layout kernel refuses it too (its module could not be compiled for 3-bit indices).
    expect(latticeInt8InputsUnsupported(q.scheme, 3)).toMatch(/1 or 2 bits; this matrix has 3/);
    expect(latticeInt8InputsUnsupported(q.scheme, 2)).toBeNull();
    expect(d3QuadUnsupported({ scheme: q.scheme, multiples: q.multiples, scaleIndexBits: 2 })).toBeNull();
    const w = GpuD3QuadMatrix.upload(device, d3QuadForm(q), 'test');
    const y = createBuffer(device, 'test y', 8, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    const encoder = device.createCommandEncoder();
    expect(() => dispatchD3QuadGemvI8(device, encoder, scratch, { w, x: y, y, rhs: 1, dotPath: 'plain', leaderCopies: 3 as LeaderCopies })).toThrow(/leaderCopies/);
    w.destroy();
    expect(() => dispatchD3QuadGemvI8(device, encoder, scratch, { w, x: y, y, rhs: 1, dotPath: 'plain' })).toThrow(/live GpuD3QuadMatrix/);
    scratch.destroy();
    y.destroy();
  });
});
