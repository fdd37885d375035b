import { check } from '../../src/errors.js';
import { codeBufferByteLength, createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { gpuQuantizeLattice } from '../../src/gpu/gpuQuantize.js';
import { dispatchF16Gemv, f16GemvSupported, f16PaddedLength, f16WeightBytes, packF16Weights } from '../../src/gpu/kernels/f16Gemv.js';
import { dispatchF32Gemv } from '../../src/gpu/kernels/f32Gemv.js';
import {
  dequantizeInt4Weights,
  dispatchInt4Gemv,
  dispatchInt4GemvI8,
  dispatchInt4InputsI8,
  int4GemvI8Reference,
  int4GemvI8RoundingDepth,
  int4GemvRoundingDepth,
  int4PaddedLength,
  int4WeightBytes,
  quantizeInt4InputsI8,
  quantizeInt4Weights,
  type Int4Weights,
} from '../../src/gpu/kernels/int4Gemv.js';
import { dispatchLatticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { dispatchInputsI8, dispatchRotatedInputsI8, quantizeInputsI8, type InputsI8Operand, type RecordedInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { d3QuadForm, d3QuadGemvReference, d3QuadLeaderCopies, dispatchD3QuadGemvI8, dispatchD3QuadInputs, GpuD3QuadMatrix, type D3QuadMatrix } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import { D3, leaderTable, VoronoiCode } from '../../src/lattices/index.js';
import { d3GroupScaledLeaderTable, dispatchD3GroupScaledGemvI8, GpuD3GroupScaledMatrix } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { dispatchLatticeGemvI8, latticeGemvI8LeaderTable, type LatticeGemvI8TableArgs } from '../../src/gpu/kernels/latticeGemvI8.js';
import { PADDED_LEADER_ENTRIES, type LeaderCopies, type LeaderTable, type LeaderTableArgs } from '../../src/gpu/kernels/gemvI8Common.js';
import { dispatchStreamRead, streamReadSinkBytes, streamXor } from '../../src/gpu/kernels/streamRead.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { dispatchE8ResidueGemvI8, dispatchE8ResidueInputs, e8ResidueBytes, e8ResidueGemvReference, GpuE8QuadMatrix, GpuE8ResidueMatrix, quantizeE8InputsI8, type E8InputsI8Values, type RecordedE8InputsI8 } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { e8ResidueForm, type E8ResidueMatrix } from '../../src/quantize/e8Residues.js';
import { e8PointForm, type E8PointMatrix } from '../../src/quantize/e8Points.js';
import { dispatchE8PointGemvI8, e8PointBytes, e8PointGemvReference, GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchUniversalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { dispatchUniversalGemvI8, universalGemvI8LeaderTable, UniversalGemvI8Weights } from '../../src/gpu/kernels/universalGemvI8.js';
import { dispatchWeightOnlyGemv, WeightOnlyGpuMatrix } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { dispatchWeightOnlyInputsI8, weightOnlyGemvI8Reference, weightOnlyInputsI8, type RecordedWeightOnlyInputsI8 } from '../../src/gpu/kernels/weightOnlyInputsI8.js';
import { fixedRowVec4s, type FixedCodeBits } from '../../src/weightonly/packedCodes.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import type { PreparedCommands } from '../../src/gpu/prepared.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import type { GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { Rng } from '../../src/rotation/random.js';
import { encodeD3GroupScaled, groupIndexWordsPerColumn, type D3GroupScaledMatrix } from '../../src/quantize/d3GroupScale.js';
import { SCHEMES, type SchemeName } from '../../src/quantize/schemes.js';
import { WeightOnlyQuantized } from '../../src/weightonly/quantized.js';
import {
  callsFor,
  copiesFor,
  copyOf,
  failedRow,
  gemvNmse,
  gemvShape,
  gigaPerSecond,
  makeCopies,
  nmseCheck,
  prepared,
  row,
  rowSamples,
  tiledColumns,
  timeCalls,
  uploadTiled,
  type AlternativeTo,
  type BenchRow,
  type RowCheck,
  type BenchSettings,
  type GemvProblem,
} from './common.js';

/*
 * The GEMV rows: the streaming read, the baselines (f32, f16, int4 g32), the universal lattice GEMV
 * (universalGemv.ts), the deterministic lattice GEMV (latticeGemv.ts) and the weight-only GEMV
 * (weightOnlyGemv.ts), each through its public dispatch function recorded once as prepared commands
 * (so the timed stream replays calls without creating anything) over enough distinct copies of the
 * weights to fill the working set: call i reads copy i mod copies, as a decode step reads each layer
 * once, so the weights come from memory, not from the L2 cache.
 */

/** A weight ready to be streamed: its prepared calls (one per copy), what one call reads, and its check. */
interface GemvSubject {
  readonly bitsPerEntry: number;
  /** Bytes of one copy of the weights (codes, scales, side fields). */
  readonly weightBytes: number;
  readonly calls: readonly PreparedCommands[];
  /** Reads the output of the last call and checks it (`metric`: what `value` measures, when not the NMSE against the exact product). */
  readonly check: () => Promise<{ value: number; limit: number; metric?: string }>;
  readonly destroy: () => void;
}

/** A GEMV kernel of the report. */
export interface GemvKernel {
  readonly name: string;
  /** Key of its SPIR-V statistics (see instructionStats.ts). */
  readonly spirvKey: string;
  readonly k: number;
  /** The int8-input kernels' "kernel alone" rows: x̂ made once before the timed calls (BenchRow.xPrepared). */
  readonly xPrepared?: boolean;
  /** A row that times an alternative to one of the library's defaults (BenchRow.alternativeTo). */
  readonly alternativeTo?: AlternativeTo;
  /** Why it cannot run here, or null. */
  readonly unsupported?: (context: GpuContext) => string | null;
  readonly build: (context: GpuContext, problem: GemvProblem, settings: BenchSettings) => Promise<GemvSubject>;
}

/** The streaming-read row: `bytes` of distinct buffers (at most 256 MiB each), read once per call. */
export async function streamRow(context: GpuContext, bytes: number, settings: BenchSettings): Promise<BenchRow> {
  const { device } = context;
  const kernel = 'stream read (16 B loads)';
  check(Number.isInteger(bytes) && bytes > 0 && bytes % 16 === 0, () => `stream row: bytes must be a positive multiple of 16 (the kernel's loads, and streamCheck's lanes), got ${bytes}`);
  const shape = `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const buffers: GPUBuffer[] = [];
  try {
    const chunk = Math.min(256 * 2 ** 20, device.limits.maxBufferSize - (device.limits.maxBufferSize % 16), bytes);
    const seedWords = new Uint32Array(Math.min(chunk, 16 * 2 ** 20) / 4);
    const rng = new Rng(settings.seed);
    for (let i = 0; i < seedWords.length; i++) seedWords[i] = rng.nextInt(0x10000) * 0x10000 + rng.nextInt(0x10000);
    for (let done = 0; done < bytes; done += chunk) {
      const size = Math.min(chunk, bytes - done);
      buffers.push(await uploadTiled(device, `bench stream ${buffers.length}`, seedWords, 1, seedWords.byteLength, Math.ceil(size / seedWords.byteLength)));
    }
    const sizes = buffers.map((buffer, i) => Math.min(chunk, bytes - i * chunk));
    const calls = buffers.map((buffer, i) =>
      prepared(device, `bench stream ${i}`, (encoder, scratch) => dispatchStreamRead(device, encoder, scratch, { data: buffer, bytes: sizes[i] as number })),
    );
    const rounds = Math.max(1, Math.ceil(settings.minCalls / Math.max(1, Math.round(bytes / 2 ** 28))));
    const timing = await timeCalls(context, kernel, rounds * calls.length, (encoder, call) => (calls[call % calls.length] as PreparedCommands).record(encoder), settings);
    for (const call of calls) call.destroy();
    const ms = timing.perCallMs * calls.length;
    // The row may be the bandwidth yardstick every share divides by (addRatios): it must have read every byte it is timed for.
    const check = await streamCheck(device, buffers, sizes, seedWords);
    return row({
      kernel,
      family: 'stream',
      check,
      shape,
      bytesRead: bytes,
      ms,
      gbps: gigaPerSecond(bytes, ms),
      copies: buffers.length,
      workingSetBytes: bytes,
      callsPerSample: rounds * calls.length,
      ...rowSamples(timing, calls.length),
      timing: timing.method,
      spirvKey: 'stream',
    });
  } catch (error) {
    return failedRow({ kernel, family: 'stream', shape }, error);
  } finally {
    for (const buffer of buffers) buffer.destroy();
  }
}

/**
 * The stream row's check: the XOR of every 16-byte word the kernel read, over all its buffers, against
 * its CPU twin `streamXor` over the same words (each buffer is `seedWords` repeated, the last copy cut
 * at the buffer's size). Counts the lanes that differ: 0 when every byte was read once.
 */
async function streamCheck(device: GPUDevice, buffers: readonly GPUBuffer[], sizes: readonly number[], seedWords: Uint32Array): Promise<RowCheck> {
  const got = new Uint32Array(4);
  const want = new Uint32Array(4);
  const xorInto = (into: Uint32Array, lanes: Uint32Array) => {
    for (let lane = 0; lane < 4; lane++) into[lane] = ((into[lane] as number) ^ (lanes[lane] as number)) >>> 0;
  };
  const seedXor = streamXor(seedWords);
  for (const [i, buffer] of buffers.entries()) {
    const bytes = sizes[i] as number;
    const sinkBytes = streamReadSinkBytes(device, { bytes });
    const sink = await runAndRead(device, 'bench stream check', sinkBytes, (run) => {
      const out = run.storage('bench stream check sink', sinkBytes);
      dispatchStreamRead(device, run.encoder, run.scratch, { data: buffer, bytes, sink: out });
      return out;
    });
    xorInto(got, streamXor(new Uint32Array(sink)));
    // An even number of whole copies of the seed cancels in the XOR.
    if (Math.floor(bytes / seedWords.byteLength) % 2 === 1) xorInto(want, seedXor);
    const restWords = (bytes % seedWords.byteLength) / 4;
    if (restWords > 0) xorInto(want, streamXor(seedWords.subarray(0, restWords)));
  }
  const lanesDiffering = [0, 1, 2, 3].filter((lane) => got[lane] !== want[lane]).length;
  return nmseCheck(lanesDiffering, 0, 'lanes of the XOR of every 16-byte word read that differ from its CPU twin (streamXor)');
}

/** Times one GEMV kernel at one problem: build, stream over the copies, check, free. */
export async function gemvRow(context: GpuContext, kernel: GemvKernel, problem: GemvProblem, settings: BenchSettings): Promise<BenchRow> {
  const family = kernel.k === 1 ? 'gemv' : 'batched';
  const base = { kernel: kernel.name, family, shape: gemvShape(problem), k: kernel.k, spirvKey: kernel.spirvKey, xPrepared: kernel.xPrepared ?? false, alternativeTo: kernel.alternativeTo ?? null } as const;
  const unsupported = kernel.unsupported?.(context) ?? null;
  if (unsupported !== null) return row({ ...base, status: 'unsupported', note: unsupported });
  let subject: GemvSubject | undefined;
  try {
    // Batched rows do k times the decode work per byte: on a CPU adapter (--quick) two copies keep them short.
    subject = await kernel.build(context, problem, settings.quick && kernel.k > 1 ? { ...settings, maxCopies: 2 } : settings);
    const calls = subject.calls;
    const callsPerSample = callsFor(calls.length, settings);
    const timing = await timeCalls(context, `${kernel.name} ${base.shape}`, callsPerSample, (encoder, call) => (calls[call % calls.length] as PreparedCommands).record(encoder), settings);
    const checked = await subject.check();
    const bytesRead = subject.weightBytes + 4 * problem.n * kernel.k;
    const ms = timing.perCallMs;
    return row({
      ...base,
      bitsPerEntry: subject.bitsPerEntry,
      bytesRead,
      ms,
      gbps: gigaPerSecond(bytesRead, ms),
      gflops: gigaPerSecond(2 * problem.n * problem.cols * kernel.k, ms),
      copies: calls.length,
      workingSetBytes: calls.length * subject.weightBytes,
      callsPerSample,
      ...rowSamples(timing),
      timing: timing.method,
      check: nmseCheck(checked.value, checked.limit, checked.metric),
    });
  } catch (error) {
    return failedRow(base, error);
  } finally {
    subject?.destroy();
  }
}

/** Reads y (cols × k f32) and returns its NMSE against the exact product. */
async function nmseOf(device: GPUDevice, y: GPUBuffer, problem: GemvProblem, limit: number): Promise<{ value: number; limit: number }> {
  const data = new Float32Array(await readBufferExclusive(device, y, 4 * problem.cols * problem.x.cols));
  return { value: gemvNmse(data, problem), limit };
}

/** u, the unit roundoff of f32. */
const F32_UNIT = 2 ** -24;

/**
 * The NMSE a kernel's f32 sums may put between y and its float64 twin (the same decoded weights times
 * the same x): each y_j within `depth`·u·Σ_i|ŵ_ij·x_i| ≤ depth·u·‖ŵ_j‖‖x‖ (depth: the most f32 roundings
 * a term goes through), so n·Σ_j (y_j − twin_j)² / (‖W‖²‖x‖²) ≤ n·(depth·u)²·‖Ŵ‖²/‖W‖², taken twice for
 * ‖Ŵ‖ ≠ ‖W‖. ≈ 10⁻⁹ (n = 1024) to 4·10⁻⁵ (the weight-only kernel at n = 28672); a y with 1/32 of its
 * entries missing is ≈ 0.03 from its twin.
 */
function f32SumLimit(n: number, depth: number): number {
  return 2 * n * (depth * F32_UNIT) ** 2;
}

/**
 * What x rounded to int8 on the GPU may add against a twin that rounds it on the CPU: a level rounded
 * the other way where 127·x/m lies within 10⁻⁴ of a half-integer (the GPU divides in f32) moves the
 * NMSE by ≈ s²/‖x‖² (s = m/127 of its group of 32: ≈ 3·10⁻⁷ at n = 1024, less at larger n); a few such.
 */
const INT8_ROUNDING_TWIN_SLACK = 1e-6;

/**
 * A check against a twin (`twin`: y of the problem's tile columns, float64, as the problem's yTile),
 * which catches what the exact product's loose limit would not (a missing or wrong share of y), and
 * against the exact product: the row passes only if both do; the figure shown is the twin's, or the
 * exact product's where that one fails, the other named in the metric.
 */
async function twinCheck(device: GPUDevice, y: GPUBuffer, problem: GemvProblem, twin: { readonly y: ArrayLike<number>; readonly limit: number; readonly name: string }, exactLimit: number): Promise<{ value: number; limit: number; metric: string }> {
  const data = new Float32Array(await readBufferExclusive(device, y, 4 * problem.cols * problem.x.cols));
  const exact = gemvNmse(data, problem);
  check(problem.cols % (twin.y.length / problem.x.cols) === 0, 'bench: a reference covers whole repeats of the columns');
  const vsTwin = gemvNmse(data, problem, twin.y);
  if (!(exact <= exactLimit)) return { value: exact, limit: exactLimit, metric: `nmse vs exact float64 (vs ${twin.name}: ${vsTwin.toExponential(2)})` };
  return { value: vsTwin, limit: twin.limit, metric: `nmse vs ${twin.name} (vs exact float64: ${exact.toExponential(2)})` };
}

/** y_j = Σ_i ŵ_ij·x_i in float64 for each column of `w` (n × cols, column-major) and the problem's first x. */
function decodedProduct(w: { readonly rows: number; readonly cols: number; readonly data: ArrayLike<number> }, x: Float32Array): Float64Array {
  const y = new Float64Array(w.cols);
  for (let j = 0; j < w.cols; j++) {
    let total = 0;
    for (let i = 0; i < w.rows; i++) total += (w.data[j * w.rows + i] as number) * (x[i] as number);
    y[j] = total;
  }
  return y;
}

/** x (or X) uploaded, zero-padded to `paddedRows` per column. */
function uploadX(device: GPUDevice, problem: GemvProblem, paddedRows = problem.n): GPUBuffer {
  const k = problem.x.cols;
  const data = new Float32Array(paddedRows * k);
  for (let r = 0; r < k; r++) data.set(problem.x.data.subarray(r * problem.n, (r + 1) * problem.n), r * paddedRows);
  return createBufferWithData(device, 'bench x', data, STORAGE_USAGE);
}

/** The whole W (f32, n × cols) on the GPU, repeated from the tile. */
function uploadW(device: GPUDevice, problem: GemvProblem): Promise<GPUBuffer> {
  return uploadTiled(device, `bench W ${gemvShape(problem)}`, problem.tile.data, problem.tile.cols, 4 * problem.n, problem.cols);
}

function destroyAll(buffers: readonly GPUBuffer[]): void {
  for (const buffer of buffers) buffer.destroy();
}

export const f32Kernel: GemvKernel = {
  name: 'f32 GEMV',
  spirvKey: 'f32',
  k: 1,
  async build({ device }, problem, settings) {
    const { n, cols } = problem;
    const weightBytes = 4 * n * cols;
    const w = await uploadW(device, problem);
    const weights = await makeCopies(device, w, copiesFor(weightBytes, settings), (encoder, i) => copyOf(device, encoder, w, `bench f32 W copy ${i}`));
    const x = uploadX(device, problem);
    const y = createBuffer(device, 'bench f32 y', 4 * cols, STORAGE_USAGE);
    const calls = weights.map((copy, i) => prepared(device, `bench f32 gemv ${i}`, (encoder, scratch) => dispatchF32Gemv(device, encoder, scratch, { w: copy, x, y, n, cols })));
    return {
      bitsPerEntry: 32,
      weightBytes,
      calls,
      check: () => nmseOf(device, y, problem, 1e-8),
      destroy: () => {
        for (const call of calls) call.destroy();
        destroyAll([...weights, x, y]);
      },
    };
  },
};

export const f16Kernel: GemvKernel = {
  name: 'f16 GEMV (shader-f16)',
  spirvKey: 'f16',
  k: 1,
  unsupported: ({ device }) => (f16GemvSupported(device) ? null : "unsupported on this adapter (no 'shader-f16')"),
  async build({ device }, problem, settings) {
    const { n, cols } = problem;
    const packed = packF16Weights(problem.tile);
    const weightBytes = f16WeightBytes(n, cols);
    const w = await uploadTiled(device, 'bench f16 W', packed.words, problem.tile.cols, 16 * packed.chunks, cols);
    const weights = await makeCopies(device, w, copiesFor(weightBytes, settings), (encoder, i) => copyOf(device, encoder, w, `bench f16 W copy ${i}`));
    const x = uploadX(device, problem, f16PaddedLength(n));
    const y = createBuffer(device, 'bench f16 y', 4 * cols, STORAGE_USAGE);
    const calls = weights.map((copy, i) => prepared(device, `bench f16 gemv ${i}`, (encoder, scratch) => dispatchF16Gemv(device, encoder, scratch, { w: copy, x, y, n, cols })));
    return {
      bitsPerEntry: (8 * weightBytes) / (n * cols),
      weightBytes,
      calls,
      check: () => nmseOf(device, y, problem, 1e-5),
      destroy: () => {
        for (const call of calls) call.destroy();
        destroyAll([...weights, x, y]);
      },
    };
  },
};

/** The int4 g32 weights of a problem, copied to fill the working set, with x (padded to whole groups) and y. */
async function int4Subject(device: GPUDevice, problem: GemvProblem, settings: BenchSettings): Promise<{ q: Int4Weights; pairs: { codes: GPUBuffer; scales: GPUBuffer }[]; x: GPUBuffer; y: GPUBuffer; weightBytes: number }> {
  const { n, cols } = problem;
  const q = quantizeInt4Weights(problem.tile);
  const codes = await uploadTiled(device, 'bench int4 codes', q.codes, problem.tile.cols, 16 * q.groups, cols);
  const scales = await uploadTiled(device, 'bench int4 scales', q.scales, problem.tile.cols, 4 * q.scaleWords, cols);
  const weightBytes = int4WeightBytes(n, cols);
  const pairs = await makeCopies(device, { codes, scales }, copiesFor(weightBytes, settings), (encoder, i) => ({
    codes: copyOf(device, encoder, codes, `bench int4 codes copy ${i}`),
    scales: copyOf(device, encoder, scales, `bench int4 scales copy ${i}`),
  }));
  return { q, pairs, x: uploadX(device, problem, int4PaddedLength(n)), y: createBuffer(device, 'bench int4 y', 4 * cols, STORAGE_USAGE), weightBytes };
}

/** The int4 rows' limit on the NMSE against the exact product (their own is ≈ 0.0095 on Gaussian W; a wrong kernel gives ≈ 1). */
const INT4_EXACT_LIMIT = 0.05;

/**
 * The int4 kernel's CPU twin on the problem's x: the dequantized tile (`dequantizeInt4Weights`, exact
 * in f32) times x in float64, or, with int8 x, times x̂ rounded on the CPU (`int4GemvI8Reference`),
 * with the NMSE its f32 sums (and x̂'s ties) may put between them.
 */
function int4Twin(problem: GemvProblem, q: Int4Weights, int8X: boolean): { y: Float64Array; limit: number; name: string } {
  const x = problem.x.data.subarray(0, problem.n);
  if (!int8X) return { y: decodedProduct(dequantizeInt4Weights(q), x), limit: f32SumLimit(problem.n, int4GemvRoundingDepth(problem.n) + 1), name: 'its CPU twin' };
  const limit = f32SumLimit(problem.n, int4GemvI8RoundingDepth(problem.n) + 1) + INT8_ROUNDING_TWIN_SLACK;
  return { y: int4GemvI8Reference(q, quantizeInt4InputsI8(x)), limit, name: 'its CPU twin' };
}

/** A GEMV subject over int4 weights whose calls `record` records; `destroyMore` frees what `record` needs beyond the weights, x and y. */
function int4Rows(device: GPUDevice, problem: GemvProblem, subject: Awaited<ReturnType<typeof int4Subject>>, calls: readonly PreparedCommands[], int8X: boolean, destroyMore: () => void = () => undefined): GemvSubject {
  const { q, pairs, x, y, weightBytes } = subject;
  return {
    bitsPerEntry: (8 * weightBytes) / (problem.n * problem.cols),
    weightBytes,
    calls,
    check: () => twinCheck(device, y, problem, int4Twin(problem, q, int8X), INT4_EXACT_LIMIT),
    destroy: () => {
      for (const call of calls) call.destroy();
      destroyMore();
      destroyAll([...pairs.flatMap((pair) => [pair.codes, pair.scales]), x, y]);
    },
  };
}

export const int4Kernel: GemvKernel = {
  name: 'int4 g32 GEMV',
  spirvKey: 'int4',
  k: 1,
  async build({ device }, problem, settings) {
    const { n, cols } = problem;
    const subject = await int4Subject(device, problem, settings);
    const { x, y } = subject;
    const calls = subject.pairs.map((pair, i) => prepared(device, `bench int4 gemv ${i}`, (encoder, scratch) => dispatchInt4Gemv(device, encoder, scratch, { ...pair, x, y, n, cols })));
    return int4Rows(device, problem, subject, calls, false);
  },
};

/**
 * The int4 g32 GEMV with x rounded to int8 per group of 32 (dispatchInt4GemvI8), as llama.cpp's
 * WebGPU backend multiplies Q4_0 by a vector: the whole call rounds x and runs the kernel;
 * `xPrepared`: x̂ made once beforehand (the kernel alone).
 */
export function int4I8Kernel(dotPath: DotPath, xPrepared: boolean): GemvKernel {
  return {
    name: `int4 g32 GEMV, int8 x (${dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}`,
    spirvKey: `int4-i8:${dotPath}`,
    k: 1,
    xPrepared,
    unsupported: (context) => int8Refusal(context, dotPath),
    async build({ device }, problem, settings) {
      const { n, cols } = problem;
      const subject = await int4Subject(device, problem, settings);
      const { x, y } = subject;
      const inputScratch = new GpuScratch(device);
      let given: RecordedE8InputsI8 | undefined;
      if (xPrepared) {
        const encoder = device.createCommandEncoder({ label: 'bench int4 x̂ for the kernel-alone row' });
        given = dispatchInt4InputsI8(device, encoder, inputScratch, { x, n });
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
      }
      const calls = subject.pairs.map((pair, i) =>
        prepared(device, `bench int4 gemv (int8 x) ${i}`, (encoder, scratch) => {
          const inputsI8 = given ?? dispatchInt4InputsI8(device, encoder, scratch, { x, n });
          dispatchInt4GemvI8(device, encoder, scratch, { ...pair, inputsI8, y, n, cols, dotPath });
        }),
      );
      return int4Rows(device, problem, subject, calls, true, () => inputScratch.destroy());
    },
  };
}

/** A universal lattice matrix (interface form) over copied buffers. */
export function universalCopy(device: GPUDevice, encoder: GPUCommandEncoder, m: GpuUniversalMatrix, i: number): GpuUniversalMatrix {
  const copy = (buffer: GPUBuffer, what: string): GPUBuffer => copyOf(device, encoder, buffer, `bench universal ${what} copy ${i}`);
  return {
    kind: 'lattice',
    mode: 'universal',
    rows: m.rows,
    cols: m.cols,
    length: m.length,
    keptLength: m.keptLength,
    seed: m.seed,
    rotate: m.rotate,
    scheme: m.scheme,
    nonce: m.nonce,
    ditherKeys: m.ditherKeys,
    blocksPerColumn: m.blocksPerColumn,
    escapeCount: m.escapeCount,
    nonRootCount: m.nonRootCount,
    hasMeans: m.hasMeans,
    maxColumnNorm: m.maxColumnNorm,
    codes: copy(m.codes, 'codes'),
    escapeBits: copy(m.escapeBits, 'escape bits'),
    escapeStarts: copy(m.escapeStarts, 'escape starts'),
    escapeIds: copy(m.escapeIds, 'escape ids'),
    escapeTable: copy(m.escapeTable, 'escape table'),
    side: copy(m.side, 'side'),
  };
}

export function universalBuffers(m: GpuUniversalMatrix): GPUBuffer[] {
  return [m.codes, m.escapeBits, m.escapeStarts, m.escapeIds, m.escapeTable, m.side];
}

/**
 * Bytes of a universal matrix that its GEMV reads: every stored stream for the f32-input GEMV; for the
 * int8-input one (d3-q6), the codes, its escape nibbles (made from the escape streams at layer creation),
 * the escape table and the side floats — not the escape bits, starts and ids it never reads.
 */
export function universalGemvBytes(device: GPUDevice, m: GpuUniversalMatrix, int8: boolean): number {
  if (!int8) return bytesOf(universalBuffers(m));
  // Universal E8 with int8 inputs reads its points (QuantizedLinear repacks them), D3 its codes and nibbles.
  if (m.scheme.lattice === 'E8') return e8PointBytes({ blocksPerColumn: m.blocksPerColumn, cols: m.cols, hasMeans: m.hasMeans });
  const form = UniversalGemvI8Weights.create(device, m, 'bench int8 weights (bytes)');
  try {
    return bytesOf([m.codes, form.nibbles, m.escapeTable, m.side]);
  } finally {
    form.destroy();
  }
}

export function deterministicCopy(device: GPUDevice, encoder: GPUCommandEncoder, m: GpuDeterministicMatrix, i: number): GpuDeterministicMatrix {
  const copy = (buffer: GPUBuffer, what: string): GPUBuffer => copyOf(device, encoder, buffer, `bench lattice ${what} copy ${i}`);
  return {
    kind: 'lattice',
    mode: 'deterministic',
    rows: m.rows,
    cols: m.cols,
    length: m.length,
    keptLength: m.keptLength,
    seed: m.seed,
    rotate: m.rotate,
    scheme: m.scheme,
    unit: m.unit,
    multiples: m.multiples,
    blocksPerColumn: m.blocksPerColumn,
    codeBits: m.codeBits,
    scaleIndexBits: m.scaleIndexBits,
    maxColumnNorm: m.maxColumnNorm,
    codes: copy(m.codes, 'codes'),
    scaleIndices: copy(m.scaleIndices, 'scale indices'),
    norms: copy(m.norms, 'norms'),
    gains: m.gains === null ? null : copy(m.gains, 'gains'),
    means: m.means === null ? null : copy(m.means, 'means'),
  };
}

export function deterministicBuffers(m: GpuDeterministicMatrix): GPUBuffer[] {
  return [m.codes, m.scaleIndices, m.norms, ...(m.gains ? [m.gains] : []), ...(m.means ? [m.means] : [])];
}

/**
 * Bytes a deterministic matrix's GEMV reads per call: its stored buffers, or for E8 with int8 inputs
 * the residue form the layer repacks them into (`e8ResidueBytes`).
 */
export function deterministicGemvBytes(m: GpuDeterministicMatrix, int8: boolean): number {
  if (int8 && m.scheme.lattice === 'E8') return e8ResidueBytes({ blocksPerColumn: m.blocksPerColumn, cols: m.cols, hasMeans: m.means !== null });
  return bytesOf(deterministicBuffers(m));
}

/** Bytes of every buffer of a weight. */
function bytesOf(buffers: readonly GPUBuffer[]): number {
  return buffers.reduce((sum, buffer) => sum + buffer.size, 0);
}

/** The whole W quantized on the GPU with `scheme` (the library's GPU encoder). */
export async function quantizedW(device: GPUDevice, problem: GemvProblem, scheme: SchemeName, seed: number): ReturnType<typeof gpuQuantizeLattice> {
  const w = await uploadW(device, problem);
  try {
    // Universal codes get a nonce from the seed, so that a run with a given --seed reads the same codes
    // (escape counts, bytes and NMSE) as the last one; deterministic schemes take none.
    const preset = SCHEMES[scheme];
    const nonce = preset.kind === 'lattice' && preset.mode === 'universal' ? { nonce: BigInt(seed) } : {};
    return await gpuQuantizeLattice(device, { buffer: w, rows: problem.n, cols: problem.cols }, { scheme, seed, ...nonce });
  } finally {
    w.destroy();
  }
}

/** NMSE limits of the lattice schemes (≈ 3–10× their expected NMSE on Gaussian data: a wrong kernel gives ≈ 1). */
function latticeLimit(scheme: SchemeName): number {
  return scheme === 'e8-3bit' || scheme.startsWith('d3') ? 0.12 : 0.05;
}

/** The universal GEMV (dispatchUniversalGemv) for `scheme` with k right-hand sides. */
export function universalKernel(scheme: SchemeName, k = 1): GemvKernel {
  return {
    name: `universal GEMV ${scheme}${k > 1 ? ` (k = ${k})` : ''}`,
    spirvKey: `universal:${scheme}`,
    k,
    async build({ device }, problem, settings) {
      const { n, cols } = problem;
      const q = await quantizedW(device, problem, scheme, settings.seed);
      if (q.mode !== 'universal') throw new Error(`${scheme} is not a universal scheme`);
      const weightBytes = bytesOf(universalBuffers(q));
      const weights = await makeCopies<GpuUniversalMatrix>(device, q, copiesFor(weightBytes, settings), (encoder, i) => universalCopy(device, encoder, q, i));
      const x = uploadX(device, problem);
      const y = createBuffer(device, 'bench universal y', 4 * cols * k, STORAGE_USAGE);
      const calls = weights.map((w, i) => prepared(device, `bench universal gemv ${i}`, (encoder, scratch) => dispatchUniversalGemv(device, encoder, scratch, { w, x, y, rhs: k })));
      return {
        bitsPerEntry: (8 * weightBytes) / (n * cols),
        weightBytes,
        calls,
        check: () => nmseOf(device, y, problem, latticeLimit(scheme)),
        destroy: () => {
          for (const call of calls) call.destroy();
          q.destroy();
          destroyAll([...weights.slice(1).flatMap(universalBuffers), x, y]);
        },
      };
    },
  };
}

/**
 * The int8-input universal GEMV (dispatchUniversalGemvI8) for d3-q6, with packed dot products where
 * WGSL has them. Its weight bytes are what it reads: the codes, the escape nibbles made at upload,
 * the escape table and the norms (the original escape streams stay in memory for the other kernels
 * but are not read).
 */
export function int8InputKernel(dotPath: DotPath, xPrepared = false, layout: LeaderTableArgs = {}): GemvKernel {
  return {
    ...int8Row('universal GEMV d3-q6', 'universal-i8:d3-q6', dotPath, xPrepared, layout, (bytes) => universalGemvI8LeaderTable(latticeQ('d3-q6'), 1, bytes, layout)),
    k: 1,
    xPrepared,
    async build(context, problem, settings) {
      const { device } = context;
      const { n, cols } = problem;
      const q = await quantizedW(device, problem, 'd3-q6', settings.seed);
      if (q.mode !== 'universal') throw new Error('d3-q6 is not a universal scheme');
      const weightBytes = universalGemvBytes(device, q, true);
      const matrices = await makeCopies<GpuUniversalMatrix>(device, q, copiesFor(weightBytes, settings), (encoder, i) => universalCopy(device, encoder, q, i));
      const weights = matrices.map((w, i) => UniversalGemvI8Weights.create(device, w, `bench int8 weights ${i}`));
      const x = uploadX(device, problem);
      const y = createBuffer(device, 'bench int8 y', 4 * cols, STORAGE_USAGE);
      const given = xPrepared ? await preparedInputs(device, q, x) : undefined;
      const calls = weights.map((w, i) =>
        prepared(device, `bench int8 gemv ${i}`, (encoder, scratch) => dispatchUniversalGemvI8(device, encoder, scratch, { weights: w, x, y, rhs: 1, dotPath, inputsI8: given?.inputs, ...layout })),
      );
      return {
        bitsPerEntry: (8 * weightBytes) / (n * cols),
        weightBytes,
        calls,
        check: async () => twinCheck(device, y, problem, { y: await universalF32Reference(device, q, x, problem), limit: INT8_X_REFERENCE_LIMIT, name: 'the f32-input universal GEMV' }, latticeLimit('d3-q6')),
        destroy: () => {
          for (const call of calls) call.destroy();
          given?.scratch.destroy();
          for (const w of weights) w.destroy();
          q.destroy();
          destroyAll([...matrices.slice(1).flatMap(universalBuffers), x, y]);
        },
      };
    },
  };
}

/**
 * The int8-input universal rows' limit on the NMSE against the f32-input universal GEMV on the same
 * codes (`universalF32Reference`). The bench quantizes W on the GPU, so the CPU twin of
 * test/gpu/int8InputGemv.test.ts (a CPU matrix's rotated decode) has nothing to decode; the f32-input
 * kernel, checked against its own CPU twin in test/gpu/universalGemv.test.ts, reads the same codes.
 * They differ by x̃ rounded to int8 per group of 32 (step s = m/127): ≈ Σ_k s²/12 / ‖x‖² ≈ 3·10⁻⁵ on
 * Gaussian x, an average over every output (a few % spread at 1024 outputs); a y with 1/32 of its
 * entries missing is ≈ 0.03 from the reference, where the exact product's limit (0.12, 5× the
 * scheme's own 0.0245) would pass it.
 */
const INT8_X_REFERENCE_LIMIT = 1e-3;

/** y of the f32-input universal GEMV (dispatchUniversalGemv) on `q` and x: the int8-input rows' reference. */
async function universalF32Reference(device: GPUDevice, q: GpuUniversalMatrix, x: GPUBuffer, problem: GemvProblem): Promise<Float32Array> {
  const bytes = 4 * problem.cols;
  const data = await runAndRead(device, 'bench universal f32-input reference', bytes, (run) => {
    const out = run.storage('bench universal f32-input reference y', bytes);
    dispatchUniversalGemv(device, run.encoder, run.scratch, { w: q, x, y: out, rhs: 1 });
    return out;
  });
  return new Float32Array(data);
}

/**
 * x rotated with W's seed and rounded to int8 for W once (dispatchRotatedInputsI8; x rounded as it is,
 * dispatchInputsI8, for an unrotated W), submitted: the x̂ that the "kernel alone" rows' calls share
 * (W's copies have W's seed and shape). The scratch holds it.
 */
async function preparedInputs(device: GPUDevice, w: InputsI8Operand, x: GPUBuffer): Promise<{ inputs: RecordedInputsI8; scratch: GpuScratch }> {
  const scratch = new GpuScratch(device);
  const encoder = device.createCommandEncoder({ label: 'bench x̂ for the kernel-alone rows' });
  const inputs = w.rotate
    ? dispatchRotatedInputsI8(device, encoder, scratch, { w, x, xRotated: scratch.buffer('bench x̃', 4 * w.length, STORAGE_USAGE), rhs: 1 })
    : dispatchInputsI8(device, encoder, scratch, { w, xRotated: x, rhs: 1 });
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return { inputs, scratch };
}

/** The nesting ratio q of a lattice scheme (the int8-input kernels' leader count is q³). */
function latticeQ(scheme: SchemeName): number {
  const s = SCHEMES[scheme];
  if (s.kind !== 'lattice') throw new Error(`bench: ${scheme} is not a lattice scheme`);
  return s.q;
}

/** What an int8-input row varies of its kernel's defaults: leader-table layout, dot path, another variant. */
interface Int8RowVariant {
  readonly dotPath: DotPath;
  readonly xPrepared: boolean;
  readonly layout: LeaderTableArgs;
  /** Another variant of the kernel: its name, SPIR-V key suffix and the choice it is an alternative in. */
  readonly variant?: { readonly name: string; readonly spirvSuffix: string; readonly choice: string };
}

/** An int8-input row's name. */
function int8RowName(base: string, { dotPath, xPrepared, layout, variant }: Int8RowVariant): string {
  return `${base}, int8 inputs (${dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}${forcedLayout(layout).name}${variant === undefined ? '' : `, ${variant.name}`}`;
}

/** A forced leader-table layout as a row-name suffix and a SPIR-V key suffix (both '' for the default layout). */
function forcedLayout({ leaderCopies, padLeaderTable }: LeaderTableArgs): { readonly name: string; readonly key: string } {
  const padded = padLeaderTable === true;
  if (leaderCopies === undefined && !padded) return { name: '', key: '' };
  return {
    name: `${leaderCopies === undefined ? '' : `, ${leaderCopies} leader-table copies`}${padded ? ', leader table padded to 256 entries per copy' : ''}`,
    key: `:layout${leaderCopies ?? ''}${padded ? '-padded' : ''}`,
  };
}

/**
 * The default an int8-input row is an alternative to (BenchRow.alternativeTo), or undefined for a row
 * of the defaults: a leader-table layout against the default one, another variant against the
 * kernel's default form, the plain dot path against the packed one (the default where WGSL has it;
 * the same calls otherwise).
 */
function int8Alternative(base: string, form: Int8RowVariant): AlternativeTo | undefined {
  const standard = (fields: Partial<Int8RowVariant>): string => int8RowName(base, { dotPath: form.dotPath, xPrepared: form.xPrepared, layout: {}, ...fields });
  if (form.layout.leaderCopies !== undefined) return { choice: 'leader-table copies', defaultKernel: standard({}) };
  if (form.layout.padLeaderTable === true) return { choice: 'leader table padded to 256 entries', defaultKernel: standard({}) };
  if (form.variant !== undefined) return { choice: form.variant.choice, defaultKernel: standard({}) };
  if (form.dotPath === 'plain') return { choice: 'dot path', defaultKernel: standard({ dotPath: 'packed' }) };
  return undefined;
}

/**
 * Why an int8-input row cannot run on `context`, or null: the packed dot path where WGSL lacks packed
 * 8-bit dot products, else what `table(workgroupBytes)` says (it throws where the kernel's leader
 * table does not fit, or returns why the row's layout is not the one it would get).
 */
function int8Refusal(context: GpuContext, dotPath: DotPath, table?: (workgroupBytes: number) => string | null): string | null {
  if (dotPath === 'packed' && dotPathFor(context.features) !== 'packed') return 'WGSL here has no packed_4x8_integer_dot_product';
  try {
    return table?.(context.device.limits.maxComputeWorkgroupStorageSize) ?? null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Names, SPIR-V keys and defaults of the int8-input GEMV rows. `layout` forcing a leader-table layout
 * (copies, or the table padded to 256 entries per copy; the default keeps 16 copies of the 216 leaders
 * where they fit, the universal kernel 8: gemvI8Common.ts): a row that compares it with the default on one GPU, unsupported
 * where `table(workgroupBytes)` refuses it; `variant` given: a row of another variant of the kernel.
 */
function int8Row(
  base: string,
  spirvKey: string,
  dotPath: DotPath,
  xPrepared: boolean,
  layout: LeaderTableArgs,
  table: (workgroupBytes: number) => LeaderTable,
  variant?: Int8RowVariant['variant'],
): Pick<GemvKernel, 'name' | 'spirvKey' | 'unsupported' | 'alternativeTo'> {
  const form: Int8RowVariant = { dotPath, xPrepared, layout, ...(variant === undefined ? {} : { variant }) };
  const alternativeTo = int8Alternative(base, form);
  return {
    name: int8RowName(base, form),
    // Leader-table layouts other than the default get a key of their own: the instruction counts are
    // compiled for the default layout only, and must not be shown as theirs.
    spirvKey: `${spirvKey}:${dotPath}${variant?.spirvSuffix ?? ''}${forcedLayout(layout).key}`,
    ...(alternativeTo === undefined ? {} : { alternativeTo }),
    unsupported: (context) =>
      int8Refusal(context, dotPath, (bytes) => {
        const { entries } = table(bytes);
        // Padding falls back to the leaders alone where it does not fit: not the row's layout.
        return layout.padLeaderTable === true && entries !== PADDED_LEADER_ENTRIES ? 'the padded leader table does not fit the workgroup memory' : null;
      }),
  };
}

/**
 * The deterministic lattice GEMV for a deterministic scheme: dispatchLatticeGemv, or with `int8`
 * dispatchLatticeGemvI8 (d3-q6-deterministic) with that dot-product path (and `scaleMultiples`: its
 * scale multiples from a table instead of the default cubic, to compare the two on one GPU).
 */
export function deterministicKernel(scheme: SchemeName, int8: DotPath | null = null, xPrepared = false, layout: LatticeGemvI8TableArgs = {}): GemvKernel {
  const tableVariant = layout.scaleMultiples === 'table' ? { name: 'scale multiples from a table (the former form)', spirvSuffix: ':table', choice: 'scale multiples (a cubic, or a table)' } : undefined;
  return {
    ...(int8 === null
      ? { name: `lattice GEMV ${scheme}`, spirvKey: `lattice:${scheme}` }
      : int8Row(
          `lattice GEMV ${scheme}`,
          `lattice-i8:${scheme}`,
          int8,
          xPrepared,
          layout,
          (bytes) => latticeGemvI8LeaderTable(latticeQ(scheme), 1, bytes, layout),
          tableVariant,
        )),
    k: 1,
    xPrepared,
    async build({ device }, problem, settings) {
      const { n, cols } = problem;
      const q = await quantizedW(device, problem, scheme, settings.seed);
      if (q.mode !== 'deterministic') throw new Error(`${scheme} is not a deterministic scheme`);
      const weightBytes = bytesOf(deterministicBuffers(q));
      const weights = await makeCopies<GpuDeterministicMatrix>(device, q, copiesFor(weightBytes, settings), (encoder, i) => deterministicCopy(device, encoder, q, i));
      const x = uploadX(device, problem);
      const y = createBuffer(device, 'bench lattice y', 4 * cols, STORAGE_USAGE);
      check(int8 !== null || !xPrepared, 'bench: the kernel-alone rows are int8-input rows');
      const given = xPrepared ? await preparedInputs(device, q, x) : undefined;
      const calls = weights.map((w, i) =>
        prepared(device, `bench lattice gemv ${i}`, (encoder, scratch) =>
          int8 === null
            ? dispatchLatticeGemv(device, encoder, scratch, { w, x, y })
            : dispatchLatticeGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath: int8, inputsI8: given?.inputs, ...layout }),
        ),
      );
      return {
        bitsPerEntry: (8 * weightBytes) / (n * cols),
        weightBytes,
        calls,
        check: () => nmseOf(device, y, problem, latticeLimit(scheme)),
        destroy: () => {
          for (const call of calls) call.destroy();
          given?.scratch.destroy();
          q.destroy();
          destroyAll([...weights.slice(1).flatMap(deterministicBuffers), x, y]);
        },
      };
    },
  };
}

/**
 * Distinct columns the group-scaled prototype encodes (on the CPU: 16 trial encodings per block, ≈ 2.5 s
 * per million entries, once per problem) and repeats to the layer's width; its check compares each
 * column with the exact product of the tile column it repeats.
 */
const GROUP_SCALED_TILE_COLS = 128;

/** The prototype's codes of each problem's first tile columns, shared by its rows. */
const groupScaledTiles = new WeakMap<GemvProblem, D3GroupScaledMatrix>();

function groupScaledTile(problem: GemvProblem, distinct: number): D3GroupScaledMatrix {
  const known = groupScaledTiles.get(problem);
  if (known !== undefined) return known;
  const m = encodeD3GroupScaled({ rows: problem.n, cols: distinct, data: problem.tile.data.subarray(0, problem.n * distinct) });
  groupScaledTiles.set(problem, m);
  return m;
}

/**
 * The group-scaled D3 prototype's int8-input GEMV (dispatchD3GroupScaledGemvI8: one scale index per
 * group of 4 blocks, 3 bits per entry; bench/README.md "D3: one scale index per group of 4 blocks?"),
 * kernel alone (x̂ made once, as the deterministic kernel-alone rows), to set beside
 * d3-q6-deterministic's: its codes come from the CPU encoder on the first GROUP_SCALED_TILE_COLS
 * columns of the tile, unrotated (they are Gaussian already), repeated on the GPU.
 */
export function groupScaledKernel(dotPath: DotPath, layout: LeaderTableArgs = {}): GemvKernel {
  return {
    ...int8Row('group-scaled D3 GEMV (prototype: a scale index per group of 4 blocks)', 'group-scaled-i8', dotPath, true, layout, (bytes) => d3GroupScaledLeaderTable(1, bytes, layout)),
    k: 1,
    xPrepared: true,
    async build({ device }, problem, settings) {
      const { n, cols } = problem;
      // One right-hand side: the check below takes the first `distinct` exact products of the tile.
      check(problem.x.cols === 1, 'bench: the group-scaled rows have one right-hand side');
      const distinct = Math.min(cols, problem.tile.cols, GROUP_SCALED_TILE_COLS);
      const m = groupScaledTile(problem, distinct);
      const created: GPUBuffer[] = [];
      try {
        const fields = [
          { what: 'codes', data: m.codes, columnBytes: 4 * m.groupsPerColumn, bytes: codeBufferByteLength(4 * m.groupsPerColumn * cols) }, // whole quads
          { what: 'group scale indices', data: m.groupIndices, columnBytes: 4 * groupIndexWordsPerColumn(m.groupsPerColumn) },
          { what: 'norms', data: m.norms, columnBytes: 4 },
        ];
        const { weights, weightBytes } = await prototypeWeights(device, 'bench group-scaled', fields, distinct, cols, settings, created, ([codes, indices, norms]) => new GpuD3GroupScaledMatrix({ ...m, cols }, codes as GPUBuffer, indices as GPUBuffer, norms as GPUBuffer));
        const full = weights[0] as GpuD3GroupScaledMatrix;
        const x = uploadX(device, problem);
        const y = createBuffer(device, 'bench group-scaled y', 4 * cols, STORAGE_USAGE);
        created.push(x, y);
        const given = await preparedInputs(device, full, x);
        const calls = weights.map((w, i) =>
          prepared(device, `bench group-scaled gemv ${i}`, (encoder, scratch) => dispatchD3GroupScaledGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, dotPath, inputsI8: given.inputs, ...layout })),
        );
        return {
          bitsPerEntry: (8 * weightBytes) / (n * cols),
          weightBytes,
          calls,
          check: () => nmseOf(device, y, repeatedProblem(problem, distinct), latticeLimit('d3-q6-deterministic')),
          destroy: () => {
            for (const call of calls) call.destroy();
            given.scratch.destroy();
            destroyAll(created);
          },
        };
      } catch (error) {
        destroyAll(created);
        throw error;
      }
    },
  };
}

/**
 * The E8 residue rows' limit on the NMSE against their CPU twin: f32 rounding (≈ 10⁻¹⁴) and the few
 * levels the GPU's f32 division may round the other way (each ≈ 10⁻⁹ of ‖W‖²‖x‖²/n at these sizes).
 */
const E8_RESIDUE_TWIN_LIMIT = 1e-6;

/** The rotation seed of the E8 residue rows' matrices. */
const E8_RESIDUE_SEED = 5;

/** Distinct columns the E8 residue rows quantize on the CPU (e8-q16-deterministic) and repeat. */
const E8_RESIDUE_TILE_COLS = 64;

/** The residue form of each problem's first tile columns, shared by its rows. */
const e8ResidueTiles = new WeakMap<GemvProblem, E8ResidueMatrix>();

function e8ResidueTile(problem: GemvProblem, distinct: number): E8ResidueMatrix {
  const known = e8ResidueTiles.get(problem);
  if (known !== undefined) return known;
  const tile = { rows: problem.n, cols: distinct, data: problem.tile.data.subarray(0, problem.n * distinct) };
  // Rotated, as the library quantizes by default: the whole call rotates x as the scheme's rows do.
  const m = e8ResidueForm(quantize(tile, { scheme: 'e8-q16-deterministic', center: false, seed: E8_RESIDUE_SEED }) as DeterministicLatticeMatrix);
  e8ResidueTiles.set(problem, m);
  return m;
}

/**
 * The E8 residue GEMV (dispatchE8ResidueGemvI8, what QuantizedLinear's int8Inputs runs for
 * e8-q16-deterministic weights: their leaders repacked as residue nibbles and a side byte, 5 bits per
 * entry; bench/README.md "E8: leaders stored as residues"), beside the scheme's f32-input E8 GEMV:
 * its codes come from the CPU encoder on the first E8_RESIDUE_TILE_COLS columns of the tile, rotated
 * as by default, repeated on the GPU. `xPrepared`: x̃ and x̂ made once beforehand (the kernel alone);
 * else each call rotates x and rounds x̃, as the scheme's rows rotate theirs.
 */
export function e8ResidueKernel(dotPath: DotPath, xPrepared: boolean, k = 1): GemvKernel {
  check(k === 1 || !xPrepared, 'bench: an E8 residue row with several right-hand sides is a whole call');
  return {
    name: `E8 residue GEMV e8-q16-deterministic (leaders repacked as residues), int8 inputs (${dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}${k > 1 ? ` (k = ${k})` : ''}`,
    // A batch runs the tile variant (8 right-hand sides), whose instructions the report does not count.
    spirvKey: `e8-residue-i8:e8-q16-deterministic:${dotPath}${k > 1 ? ':tile8' : ''}`,
    k,
    xPrepared,
    unsupported: (context) => int8Refusal(context, dotPath),
    async build({ device }, problem, settings) {
      const distinct = Math.min(problem.cols, problem.tile.cols, E8_RESIDUE_TILE_COLS);
      const m = e8ResidueTile(problem, distinct);
      return buildE8QuadRows(device, problem, settings, {
        label: 'bench e8 residue',
        m,
        distinct,
        fields: [
          { what: 'residues', data: m.residues, columnBytes: 16 * m.quadsPerColumn },
          { what: 'sides', data: m.sides, columnBytes: 4 * m.quadsPerColumn },
          { what: 'column scales', data: m.columnScales, columnBytes: 4 },
        ],
        make: ([residues, sides, scales]) => new GpuE8ResidueMatrix(device, { ...m, cols: problem.cols, hasMeans: false }, residues as GPUBuffer, sides as GPUBuffer, scales as GPUBuffer),
        record: (encoder, scratch, w, io) => dispatchE8ResidueGemvI8(device, encoder, scratch, { ...io, w }),
        dotPath,
        xPrepared,
        exactLimit: latticeLimit('e8-q16-deterministic'),
        // The twin catches what the exact product's loose limit would not: a wrong parity lane moves the
        // exact NMSE from 3.7e-3 to 5.9e-3 only.
        twin: (inputs) => e8ResidueGemvReference(m, inputs),
      });
    },
  };
}

/** The D3 quad form of each problem's first tile columns, shared by its rows. */
const d3QuadTiles = new WeakMap<GemvProblem, D3QuadMatrix>();

function d3QuadTile(problem: GemvProblem, distinct: number): D3QuadMatrix {
  const known = d3QuadTiles.get(problem);
  if (known !== undefined) return known;
  const tile = { rows: problem.n, cols: distinct, data: problem.tile.data.subarray(0, problem.n * distinct) };
  // Rotated, as the library quantizes by default: the whole call rotates x as the scheme's rows do.
  const m = d3QuadForm(quantize(tile, { scheme: 'd3-q6-deterministic', center: false, seed: E8_RESIDUE_SEED }) as DeterministicLatticeMatrix);
  d3QuadTiles.set(problem, m);
  return m;
}

/** The D3 leaders (the quad GEMV's twin decodes through them). */
const D3_LEADERS = /*#__PURE__*/ leaderTable(new VoronoiCode(D3, 6));

/**
 * The D3 quad GEMV (dispatchD3QuadGemvI8: d3-q6-deterministic codes laid out at upload in whole quads
 * of 16 blocks per column, the same 3.33 bits per entry; bench/README.md "D3: codes in whole quads"),
 * beside the deterministic D3 kernel that reads the codes as stored: its codes come from the CPU
 * encoder on the first E8_RESIDUE_TILE_COLS columns of the tile, rotated as by default, repeated on the
 * GPU. `xPrepared`: x̃ and x̂ made once beforehand (the kernel alone); else each call rotates x and
 * rounds x̃. `leaderCopies`: the kernel's table copies, an alternative to its default (32 where they fit).
 */
export function d3QuadKernel(dotPath: DotPath, xPrepared: boolean, leaderCopies?: LeaderCopies, k = 1): GemvKernel {
  check(k === 1 || (!xPrepared && leaderCopies === undefined), 'bench: a D3 quad row with several right-hand sides is a whole call with the default table');
  const name = (copies?: LeaderCopies): string =>
    `D3 quad GEMV d3-q6-deterministic (codes in whole quads per column), int8 inputs (${dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}${copies === undefined ? '' : `, ${copies} table cop${copies === 1 ? 'y' : 'ies'}`}${k > 1 ? ` (k = ${k})` : ''}`;
  return {
    name: name(leaderCopies),
    // A batch runs the tile variant (8 right-hand sides), whose instructions the report does not count.
    spirvKey: `d3-quad-i8:d3-q6-deterministic:${dotPath}${leaderCopies === undefined ? '' : `:copies${leaderCopies}`}${k > 1 ? ':tile8' : ''}`,
    ...(leaderCopies === undefined ? {} : { alternativeTo: { choice: 'D3 quad table copies', defaultKernel: name() } }),
    k,
    xPrepared,
    unsupported: (context) =>
      int8Refusal(context, dotPath, (bytes) => {
        d3QuadLeaderCopies(k === 1 ? 1 : 8, bytes, leaderCopies);
        return null;
      }),
    async build({ device }, problem, settings) {
      const distinct = Math.min(problem.cols, problem.tile.cols, E8_RESIDUE_TILE_COLS);
      const m = d3QuadTile(problem, distinct);
      return buildE8QuadRows(device, problem, settings, {
        label: 'bench d3 quad',
        m: { seed: m.seed, keptLength: m.keptLength, quadsPerColumn: m.quadsPerColumn },
        distinct,
        fields: [
          { what: 'quad codes', data: m.codes, columnBytes: 16 * m.quadsPerColumn },
          { what: 'quad scale indices', data: m.indices, columnBytes: 4 * m.quadsPerColumn },
          { what: 'column scales', data: m.columnScales, columnBytes: 4 },
        ],
        make: ([codes, indices, scales]) => new GpuD3QuadMatrix(device, { ...m, cols: problem.cols, hasMeans: false }, codes as GPUBuffer, indices as GPUBuffer, scales as GPUBuffer),
        record: (encoder, scratch, w, io) => dispatchD3QuadGemvI8(device, encoder, scratch, { ...io, w, ...(leaderCopies === undefined ? {} : { leaderCopies }) }),
        dotPath,
        xPrepared,
        exactLimit: latticeLimit('d3-q6-deterministic'),
        twin: (inputs) => d3QuadGemvReference(m, D3_LEADERS, inputs),
        inputs: (encoder, scratch, w, x) => dispatchD3QuadInputs(device, encoder, scratch, w, x),
        cpuInputs: (xRotated) => quantizeInputsI8(xRotated, m.keptLength, 4 * m.quadsPerColumn),
      });
    },
  };
}

/** Distinct columns the E8 point rows quantize on the CPU (a universal E8 scheme) and repeat. */
const E8_POINT_TILE_COLS = 64;

/** The point form of each problem's first tile columns per scheme, shared by its rows. */
const e8PointTiles = new WeakMap<GemvProblem, Map<SchemeName, E8PointMatrix>>();

function e8PointTile(problem: GemvProblem, scheme: SchemeName, distinct: number): E8PointMatrix {
  const known = e8PointTiles.get(problem)?.get(scheme);
  if (known !== undefined) return known;
  const tile = { rows: problem.n, cols: distinct, data: problem.tile.data.subarray(0, problem.n * distinct) };
  // Rotated, as the library quantizes by default: the whole call rotates x as the scheme's rows do.
  const m = e8PointForm(quantize(tile, { scheme, center: false, seed: E8_RESIDUE_SEED, nonce: 11n }) as UniversalLatticeMatrix);
  const forProblem = e8PointTiles.get(problem) ?? new Map<SchemeName, E8PointMatrix>();
  forProblem.set(scheme, m);
  e8PointTiles.set(problem, forProblem);
  return m;
}

/**
 * The E8 point GEMV (dispatchE8PointGemvI8, what QuantizedLinear's int8Inputs runs for the universal E8
 * schemes: their lattice points repacked as int8, 8 bits per entry read; the dither regenerated per
 * block), beside the scheme's f32-input universal GEMV: its codes come from the CPU encoder on the first
 * E8_POINT_TILE_COLS columns of the tile, rotated as by default, repeated on the GPU (their dither keys
 * with them). `xPrepared`: x̃ and x̂ made once beforehand (the kernel alone); else each call rotates x
 * and rounds x̃.
 */
export function e8PointKernel(scheme: SchemeName, dotPath: DotPath, xPrepared: boolean): GemvKernel {
  return {
    name: `E8 point GEMV ${scheme} (lattice points repacked as int8), int8 inputs (${dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}`,
    spirvKey: `e8-point-i8:${scheme}:${dotPath}`,
    k: 1,
    xPrepared,
    unsupported: (context) => int8Refusal(context, dotPath),
    async build({ device }, problem, settings) {
      check(problem.x.cols === 1, 'bench: the E8 point rows have one right-hand side');
      const distinct = Math.min(problem.cols, problem.tile.cols, E8_POINT_TILE_COLS);
      const m = e8PointTile(problem, scheme, distinct);
      return buildE8QuadRows(device, problem, settings, {
        label: 'bench e8 point',
        m,
        distinct,
        fields: [
          { what: 'points', data: m.points, columnBytes: 32 * m.quadsPerColumn },
          // The trailing overflow word (and its pair) stay 0: every point of the tile fits int8.
          { what: 'dither keys', data: m.ditherKeys, columnBytes: 8, bytes: 8 * problem.cols + 8 },
          { what: 'norms', data: m.norms, columnBytes: 4 },
        ],
        make: ([points, keys, norms]) => new GpuE8PointMatrix(device, { ...m, cols: problem.cols, hasMeans: false }, points as GPUBuffer, keys as GPUBuffer, norms as GPUBuffer),
        record: (encoder, scratch, w, io) => dispatchE8PointGemvI8(device, encoder, scratch, { ...io, w }),
        dotPath,
        xPrepared,
        exactLimit: latticeLimit(scheme),
        twin: (inputs) => e8PointGemvReference(m, inputs),
      });
    },
  };
}

/** A prototype's per-column field on the CPU: `columnBytes` per column, `bytes` in all once repeated (default: per column). */
interface PrototypeField {
  readonly what: string;
  readonly data: ArrayBufferView;
  readonly columnBytes: number;
  readonly bytes?: number;
}

/**
 * The rows of an E8 int8-input GEMV (residue or point form) on a CPU-made tile of `distinct` columns
 * repeated on the GPU to the problem's width (`fields`, `make`: prototypeWeights): x and y, x̂ made
 * once for the kernel-alone rows (`xPrepared`), one prepared call per weight copy (`record`), and a
 * check against the CPU twin (`twin`, on x̂ rounded on the CPU: it catches what the exact product's
 * loose limit would not), the exact product's NMSE (`exactLimit`) named beside it.
 */
async function buildE8QuadRows<W extends GpuE8QuadMatrix>(
  device: GPUDevice,
  problem: GemvProblem,
  settings: BenchSettings,
  spec: {
    readonly label: string;
    readonly m: { readonly seed: number; readonly keptLength: number; readonly quadsPerColumn: number };
    readonly distinct: number;
    readonly fields: readonly PrototypeField[];
    readonly make: (buffers: readonly GPUBuffer[]) => W;
    readonly record: (encoder: GPUCommandEncoder, scratch: GpuScratch, w: W, io: { y: GPUBuffer; rhs: number; dotPath: DotPath } & ({ x: GPUBuffer } | { inputsI8: RecordedE8InputsI8 })) => void;
    readonly dotPath: DotPath;
    readonly xPrepared: boolean;
    readonly exactLimit: number;
    readonly twin: (inputs: E8InputsI8Values) => Float64Array;
    /** x̂ from x once (the kernel-alone rows); default E8's groups of 32 (`dispatchE8ResidueInputs`). */
    readonly inputs?: (encoder: GPUCommandEncoder, scratch: GpuScratch, w: W, x: GPUBuffer) => RecordedE8InputsI8;
    /** x̃ rounded on the CPU as the kernel reads it; default E8's groups of 32 (`quantizeE8InputsI8`). */
    readonly cpuInputs?: (xRotated: Float32Array) => E8InputsI8Values;
  },
): Promise<GemvSubject> {
  const { n, cols } = problem;
  const { label, m, distinct } = spec;
  // Right-hand sides: one, or a prefill's batch (whole calls only, checked against the exact product).
  const k = problem.x.cols;
  check(k === 1 || !spec.xPrepared, 'bench: the kernel-alone rows have one right-hand side');
  const created: GPUBuffer[] = [];
  try {
    const { weights, weightBytes } = await prototypeWeights(device, label, spec.fields, distinct, cols, settings, created, spec.make);
    const full = weights[0] as W;
    const x = uploadX(device, problem);
    const y = createBuffer(device, `${label} y`, 4 * cols * k, STORAGE_USAGE);
    created.push(x, y);
    let given: { inputs: RecordedE8InputsI8; scratch: GpuScratch } | undefined;
    if (spec.xPrepared) {
      // x̃ = R·x and x̂ made once (what the whole call does first).
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder({ label: `${label} x̂ for the kernel-alone rows` });
      given = { inputs: spec.inputs === undefined ? dispatchE8ResidueInputs(device, encoder, scratch, full, x) : spec.inputs(encoder, scratch, full, x), scratch };
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    }
    const calls = weights.map((w, i) =>
      prepared(device, `${label} gemv ${i}`, (encoder, scratch) => spec.record(encoder, scratch, w, { y, rhs: k, dotPath: spec.dotPath, ...(given === undefined ? { x } : { inputsI8: given.inputs }) })),
    );
    return {
      bitsPerEntry: (8 * weightBytes) / (n * cols),
      weightBytes,
      calls,
      check: async () => {
        const repeated = repeatedProblem(problem, distinct);
        // The twin takes one right-hand side; a batch's rows are checked against the exact product.
        if (k > 1) return nmseOf(device, y, repeated, spec.exactLimit);
        const xRotated = new RandomizedHadamard(n, m.seed).forward(problem.x.data.subarray(0, n));
        const twin = spec.twin(spec.cpuInputs === undefined ? quantizeE8InputsI8(xRotated, m.keptLength, m.quadsPerColumn) : spec.cpuInputs(xRotated));
        // Both limits hold, as for the other twin-checked rows: the twin's and the exact product's.
        return twinCheck(device, y, repeated, { y: twin, limit: E8_RESIDUE_TWIN_LIMIT, name: 'its CPU twin' }, spec.exactLimit);
      },
      destroy: () => {
        for (const call of calls) call.destroy();
        given?.scratch.destroy();
        destroyAll(created);
      },
    };
  } catch (error) {
    destroyAll(created);
    throw error;
  }
}

/**
 * A prototype's weights over the working set: each field's `distinct` columns uploaded and repeated on
 * the GPU to `cols` columns, then copies of those buffers (copiesFor), each set made into a matrix by
 * `make`. Every buffer goes into `created` (the caller destroys them).
 */
async function prototypeWeights<T>(
  device: GPUDevice,
  label: string,
  fields: readonly PrototypeField[],
  distinct: number,
  cols: number,
  settings: BenchSettings,
  created: GPUBuffer[],
  make: (buffers: readonly GPUBuffer[]) => T,
): Promise<{ weights: T[]; weightBytes: number }> {
  const full = await withValidation(device, `${label} tiling`, async () => {
    const encoder = device.createCommandEncoder({ label: `${label} tiling` });
    const tiles = fields.map((field) => createBufferWithData(device, `${label} ${field.what} (tile)`, field.data, STORAGE_USAGE));
    created.push(...tiles);
    const buffers = fields.map((field, i) => tiledColumns(device, encoder, `${label} ${field.what}`, tiles[i] as GPUBuffer, distinct, field.columnBytes, cols, field.bytes));
    created.push(...buffers);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    return buffers;
  });
  const weightBytes = full.reduce((total, buffer) => total + buffer.size, 0);
  const weights = await makeCopies(device, make(full), copiesFor(weightBytes, settings), (encoder, i) =>
    make(
      full.map((buffer, k) => {
        const made = copyOf(device, encoder, buffer, `${label} ${fields[k]?.what ?? ''} copy ${i}`);
        created.push(made);
        return made;
      }),
    ),
  );
  return { weights, weightBytes };
}

/** `problem` with W made of its first `distinct` tile columns repeated: column j's exact product for right-hand side r is yTile[r·distinct + j mod distinct]. */
function repeatedProblem(problem: GemvProblem, distinct: number): GemvProblem {
  const { n } = problem;
  const tileCols = problem.tile.cols;
  // Right-hand side r's exact products are yTile[r·tileCols …]: keep the first `distinct` of each.
  const yTile = new Float64Array(distinct * problem.x.cols);
  for (let r = 0; r < problem.x.cols; r++) yTile.set(problem.yTile.subarray(r * tileCols, r * tileCols + distinct), r * distinct);
  return { ...problem, tile: { rows: n, cols: distinct, data: problem.tile.data.subarray(0, n * distinct) }, yTile, wNorm2: repeatedNorm2(problem, distinct) };
}

/** ‖W‖²_F of `problem`'s W built from its first `distinct` tile columns repeated. */
function repeatedNorm2(problem: GemvProblem, distinct: number): number {
  let total = 0;
  for (let j = 0; j < distinct; j++) {
    let norm = 0;
    for (let i = 0; i < problem.n; i++) norm += (problem.tile.data[j * problem.n + i] as number) ** 2;
    total += norm * Math.ceil((problem.cols - j) / distinct);
  }
  return total;
}

/** RTN codes of the tile, 4 bits (levels −8…7, one step for every input feature), no rotation. */
function rtnTile(problem: GemvProblem): WeightOnlyQuantized {
  const { n, tile } = problem;
  const outputs = tile.cols;
  const step = 0.34; // ≈ the MSE-optimal 16-level step for N(0, 1)
  const codes = new Int32Array(n * outputs);
  for (let j = 0; j < outputs; j++) {
    for (let i = 0; i < n; i++) codes[j * n + i] = Math.max(-8, Math.min(7, Math.round((tile.data[j * n + i] as number) / step)));
  }
  return new WeightOnlyQuantized({ method: 'rtn', n, outputs, codes, columnScales: new Float32Array(n).fill(step), rowScales: null, rotation: 'none', seed: 0 });
}

/** The weight-only rows' limit on the NMSE against the exact product (their own is ≈ 0.011: RTN at 4 bits; a wrong kernel gives ≈ 1). */
const WEIGHT_ONLY_EXACT_LIMIT = 0.05;

/**
 * Most f32 roundings a term of the weight-only GEMV goes through, as test/gpu/weightOnlyGemv.test.ts
 * bounds it: the codes one lane sums (4-bit codes: 32 per vec4, vec4 c to lane c mod 64 packed; 8 per
 * word, word w to lane w mod 64 in the fixed layout: at most 32·⌈n/2048⌉ either way), 16 for the
 * reduction and the scales, 2 for the products.
 */
function weightOnlyRoundingDepth(n: number): number {
  return 32 * Math.ceil(n / 2048) + 16 + 2;
}

/**
 * The int8-input weight-only GEMV's CPU twin: the tile's codes times x̂ rounded on the CPU
 * (`weightOnlyInputsI8`, x unrotated as the rows upload it), within the f32 sums' limit (a lane's
 * words, one fused multiply-add each, 16 for the reduction and the scales) plus x̂'s ties.
 */
function weightOnlyI8Twin(problem: GemvProblem, codes: WeightOnlyQuantized, bits: FixedCodeBits): { y: Float64Array; limit: number; name: string } {
  const records = weightOnlyInputsI8(problem.x.data.subarray(0, problem.n), codes.columnScales, problem.n, bits);
  const depth = Math.ceil((4 * fixedRowVec4s(problem.n, bits)) / 64) + 16 + 2;
  return { y: weightOnlyGemvI8Reference(codes, bits, records).y, limit: f32SumLimit(problem.n, depth) + INT8_ROUNDING_TWIN_SLACK, name: 'its CPU twin' };
}

/** The weight-only kernel's CPU twin: the tile's decoded codes (`decode`, row scales 1 as uploaded) times x in float64. */
function weightOnlyTwin(problem: GemvProblem, codes: WeightOnlyQuantized): { y: Float64Array; limit: number; name: string } {
  return { y: decodedProduct(codes.decode(), problem.x.data.subarray(0, problem.n)), limit: f32SumLimit(problem.n, weightOnlyRoundingDepth(problem.n)), name: 'its CPU twin' };
}

/** The weight-only row's name: in the layout the library picks (4 bits per code here), or packed. */
const WEIGHT_ONLY_NAME = 'weight-only GEMV (4-bit RTN codes)';

/** How an int8-input weight-only row forms x̂: in each call (the whole call) or once beforehand (the kernel alone). */
interface WeightOnlyInt8 {
  readonly dotPath: DotPath;
  readonly xPrepared: boolean;
}

/**
 * The weight-only GEMV (dispatchWeightOnlyGemv): 4-bit RTN codes of the tile (so W's rows repeat),
 * uploaded through WeightOnlyGpuMatrix in `layout` ('auto': the fixed 4-bit layout the library picks
 * for them; 'packed': the serialized layout, the alternative in the defaults table) and repeated on
 * the GPU to all outputs; with `int8`, on x rounded to int8 with s folded in
 * (dispatchWeightOnlyInputsI8, what QuantizedLinear's int8Inputs records), in the call or beforehand.
 */
const weightOnlyKernelFor = (layout: 'auto' | 'packed', int8: WeightOnlyInt8 | null = null): GemvKernel => ({
  name:
    int8 !== null
      ? `${WEIGHT_ONLY_NAME}, int8 inputs (${int8.dotPath === 'packed' ? 'dot4I8Packed' : 'plain 8-bit dot'})${int8.xPrepared ? ', kernel alone (x̂ made once beforehand)' : ''}`
      : layout === 'auto'
        ? WEIGHT_ONLY_NAME
        : `${WEIGHT_ONLY_NAME}, packed layout (b_i bits each, the serialized form)`,
  spirvKey: int8 !== null ? `weightonly:4:i8:${int8.dotPath}` : layout === 'auto' ? 'weightonly:4' : 'weightonly:packed',
  k: 1,
  ...(int8 === null ? {} : { xPrepared: int8.xPrepared, unsupported: (context: GpuContext) => int8Refusal(context, int8.dotPath) }),
  ...(layout === 'auto' ? {} : { alternativeTo: { choice: 'weight-only code layout (fixed 4/8 bits, or packed)', defaultKernel: WEIGHT_ONLY_NAME } }),
  async build({ device }, problem, settings) {
    const { n, cols } = problem;
    const codes = rtnTile(problem);
    const tileMatrix = new WeightOnlyGpuMatrix(device, codes, { label: 'bench weight-only tile', layout });
    const { rowVec4s, codeBits } = tileMatrix;
    const created: GPUBuffer[] = [];
    try {
      const full = await withValidation(device, 'bench weight-only tiling', async () => {
        const encoder = device.createCommandEncoder({ label: 'bench weight-only tiling' });
        const codes = createBuffer(device, 'bench weight-only codes', 16 * rowVec4s * cols, STORAGE_USAGE);
        created.push(codes);
        // The row scales tiled as the codes are: the upload scales them with the column scales
        // (uploadScaleExponent), so ones would not match the tile's column scales.
        const rowScales = createBuffer(device, 'bench weight-only row scales', 4 * cols, STORAGE_USAGE);
        created.push(rowScales);
        for (let j0 = 0; j0 < cols; j0 += problem.tile.cols) {
          const tileCols = Math.min(problem.tile.cols, cols - j0);
          encoder.copyBufferToBuffer(tileMatrix.codes, 0, codes, 16 * rowVec4s * j0, 16 * rowVec4s * tileCols);
          encoder.copyBufferToBuffer(tileMatrix.rowScales, 0, rowScales, 4 * j0, 4 * tileCols);
        }
        device.queue.submit([encoder.finish()]);
        await device.queue.onSubmittedWorkDone();
        return { codes, codeLayout: tileMatrix.codeLayout ?? undefined, columnScales: tileMatrix.columnScales, rowScales };
      });
      const weightBytes = full.codes.size + (full.codeLayout?.size ?? 0) + full.columnScales.size + full.rowScales.size;
      const weights = await makeCopies(device, full, copiesFor(weightBytes, settings), (encoder, i) => {
        const copies = {
          codes: copyOf(device, encoder, full.codes, `bench weight-only codes copy ${i}`),
          ...(full.codeLayout === undefined ? {} : { codeLayout: copyOf(device, encoder, full.codeLayout, `bench weight-only layout copy ${i}`) }),
          columnScales: copyOf(device, encoder, full.columnScales, `bench weight-only column scales copy ${i}`),
          rowScales: copyOf(device, encoder, full.rowScales, `bench weight-only row scales copy ${i}`),
        };
        created.push(copies.codes, ...(copies.codeLayout === undefined ? [] : [copies.codeLayout]), copies.columnScales, copies.rowScales);
        return copies;
      });
      const x = uploadX(device, problem);
      const y = createBuffer(device, 'bench weight-only y', 4 * cols, STORAGE_USAGE);
      created.push(x, y);
      const inputScratch = new GpuScratch(device);
      let calls: PreparedCommands[];
      if (int8 === null) {
        calls = weights.map((w, i) =>
          prepared(device, `bench weight-only gemv ${i}`, (encoder, scratch) => dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, codeBits, x, y, n, outputs: cols, rowVec4s })),
        );
      } else {
        check(codeBits !== 'packed', 'bench: int8 weight-only rows take fixed-width codes');
        const inputs = (encoder: GPUCommandEncoder, scratch: GpuScratch, columnScales: GPUBuffer): RecordedWeightOnlyInputsI8 => dispatchWeightOnlyInputsI8(device, encoder, scratch, { x, columnScales, n, codeBits, vectors: 1 });
        let given: RecordedWeightOnlyInputsI8 | undefined;
        if (int8.xPrepared) {
          const encoder = device.createCommandEncoder({ label: 'bench weight-only x̂ for the kernel-alone row' });
          given = inputs(encoder, inputScratch, full.columnScales);
          device.queue.submit([encoder.finish()]);
          await device.queue.onSubmittedWorkDone();
        }
        calls = weights.map((w, i) =>
          prepared(device, `bench weight-only gemv (int8 x) ${i}`, (encoder, scratch) =>
            // Every copy with the first's column scales (n floats; the int8 GEMV reads them only through
            // x̂), so that x̂ made once serves them all, as the GEMV checks.
            dispatchWeightOnlyGemv(device, encoder, scratch, { ...w, columnScales: full.columnScales, codeBits, inputsI8: given ?? inputs(encoder, scratch, full.columnScales), int8Dot: int8.dotPath, y, n, outputs: cols, rowVec4s }),
          ),
        );
      }
      return {
        bitsPerEntry: (8 * weightBytes) / (n * cols),
        weightBytes,
        calls,
        check: () => twinCheck(device, y, problem, int8 === null || codeBits === 'packed' ? weightOnlyTwin(problem, codes) : weightOnlyI8Twin(problem, codes, codeBits), WEIGHT_ONLY_EXACT_LIMIT),
        destroy: () => {
          for (const call of calls) call.destroy();
          inputScratch.destroy();
          destroyAll(created);
          tileMatrix.destroy();
        },
      };
    } catch (error) {
      destroyAll(created);
      tileMatrix.destroy();
      throw error;
    }
  },
});

/** The weight-only GEMV in the layout the library picks, and in the packed layout. */
export const weightOnlyKernel: GemvKernel = weightOnlyKernelFor('auto');
export const weightOnlyPackedKernel: GemvKernel = weightOnlyKernelFor('packed');

/** The weight-only GEMV on int8 inputs (fixed-width codes): the whole call, or the kernel alone. */
export function weightOnlyI8Kernel(dotPath: DotPath, xPrepared: boolean): GemvKernel {
  return weightOnlyKernelFor('auto', { dotPath, xPrepared });
}
