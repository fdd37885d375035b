import { describe, expect, it } from 'vitest';
import { gigaPerSecond, row, unsteady, type BenchRow } from '../../bench/gpu/common.js';
import { addRatios, markdownReport } from '../../bench/gpu/report.js';
import { issueTargets } from '../../bench/gpu/targets.js';
import { emptyBenchEnvironment } from './benchEnvironment.js';

/*
 * The figures the benchmark's speed claims rest on (bench/gpu/report.ts addRatios, the GEMV table;
 * bench/gpu/targets.ts at its thresholds), on made-up rows whose every ratio is known by hand: each
 * baseline is taken at the row's own shape (and, for steps, the same layer count), in the stated
 * direction (> 1: faster than the baseline), and a target is met at exactly its threshold.
 */

const GEMV = '8192 × 28672';
const OTHER = '8192 × 8192';
const PRODUCT = '4096 × 4096 × 4096';
const ok = { metric: 'nmse vs exact float64', value: 0.01, limit: 0.1, ok: true };

/** Columns of the row of `kernel` in the Markdown GEMV table (cells trimmed; the first is the kernel). */
function tableCells(markdown: string, kernel: string): string[] {
  const line = markdown.split('\n').find((l) => l.startsWith(`| ${kernel} `));
  if (line === undefined) throw new Error(`no table row for ${kernel}`);
  return line.split('|').slice(1, -1).map((cell) => cell.trim());
}

const env = emptyBenchEnvironment();

describe('benchmark ratios: each against the baseline of the same shape, in the stated direction', () => {
  /*
   * Baselines at two shapes, those of the other shape listed first (a lookup that ignored the shape
   * would find them): f16 2 ms and f32 4 ms at OTHER, 1 ms and 3 ms at GEMV. The lattice rows take
   * 0.5 ms at both, so vs f16 = 4 and vs f32 = 8 at OTHER, 2 and 6 at GEMV.
   */
  function rows(): BenchRow[] {
    return [
      row({ kernel: 'stream read', family: 'stream', shape: '1024 MiB', ms: 0.25, gbps: 4000 }),
      // An int4 GEMV reading at twice the stream's GB/s: not a plain f32/f16 GEMV, so no yardstick.
      row({ kernel: 'int4 g32 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'int4', ms: 0.1, gbps: 8000, check: ok }),
      row({ kernel: 'f16 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'f16', ms: 1, gbps: 470, check: ok }),
      row({ kernel: 'f32 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'f32', ms: 3, gbps: 300, check: ok }),
      row({ kernel: 'f16 GEMV', family: 'gemv', shape: OTHER, spirvKey: 'f16', ms: 2, gbps: 67, check: ok }),
      row({ kernel: 'f32 GEMV', family: 'gemv', shape: OTHER, spirvKey: 'f32', ms: 4, gbps: 67, check: ok }),
      row({ kernel: 'lattice GEMV at GEMV', family: 'gemv', shape: GEMV, spirvKey: 'lattice-i8:d3-q6-deterministic:packed', ms: 0.5, gbps: 1000, check: ok }),
      row({ kernel: 'lattice GEMV at OTHER', family: 'gemv', shape: OTHER, spirvKey: 'lattice-i8:d3-q6-deterministic:packed', ms: 0.5, gbps: 2000, check: ok }),
      // A batched row (k = 8) is compared with no single-token baseline.
      row({ kernel: 'lattice GEMV k = 8', family: 'batched', shape: OTHER, k: 8, spirvKey: 'lattice-i8:d3-q6-deterministic:packed', ms: 0.5, gbps: 2000, check: ok }),
      // Host rows time the host: no share of the bandwidth, whatever their GB/s field.
      row({ kernel: 'host cost', family: 'host', shape: OTHER, ms: 1, gbps: 2000 }),
      // Decode steps: the f16 step of 100 layers first, then the one of 200 layers, then the quantized step of 200.
      row({ kernel: 'decode step: 100 × f16 GEMV (baseline), one encoder', family: 'decode-step', shape: OTHER, spirvKey: 'f16', ms: 1, callsPerSample: 100, gbps: 1000 }),
      row({ kernel: 'decode step: 200 × f16 GEMV (baseline), one encoder', family: 'decode-step', shape: OTHER, spirvKey: 'f16', ms: 4, callsPerSample: 200, gbps: 1000 }),
      row({ kernel: 'decode step: 200 × QuantizedLinear, one encoder', family: 'decode-step', shape: OTHER, ms: 2, callsPerSample: 200, gbps: 3000 }),
      // Products: the f32 matmul at another shape first (1 ms), then at PRODUCT (10 ms); the engine product 5 ms.
      row({ kernel: 'f32 tiled matmul AᵀB', family: 'product', shape: '128 × 128 × 128', ms: 1, check: ok }),
      row({ kernel: 'f32 tiled matmul AᵀB', family: 'product', shape: PRODUCT, ms: 10, check: ok }),
      row({ kernel: 'engine product', family: 'product', shape: PRODUCT, ms: 5, check: ok, productKernel: 'd3-table' }),
    ];
  }
  const byKernel = (all: readonly BenchRow[], kernel: string): BenchRow => {
    const found = all.find((r) => r.kernel === kernel);
    if (found === undefined) throw new Error(kernel);
    return found;
  };

  it('vs f16 and vs f32 are the baseline GEMV of the same shape over the row (f16 for vs f16, f32 for vs f32)', () => {
    const all = rows();
    addRatios(all);
    expect(byKernel(all, 'lattice GEMV at GEMV')).toMatchObject({ vsF16: 1 / 0.5, vsF32: 3 / 0.5 });
    expect(byKernel(all, 'lattice GEMV at OTHER')).toMatchObject({ vsF16: 2 / 0.5, vsF32: 4 / 0.5 });
    expect(byKernel(all, 'lattice GEMV k = 8')).toMatchObject({ vsF16: null, vsF32: null });
  });

  it('a decode step against the f16 step of the same layer count; a product against the f32 matmul of the same shape', () => {
    const all = rows();
    addRatios(all);
    expect(byKernel(all, 'decode step: 200 × QuantizedLinear, one encoder').vsF16).toBe(4 / 2);
    expect(byKernel(all, 'engine product').vsF32).toBe(10 / 5);
  });

  it('the share of the bandwidth divides by the stream or a plain f32/f16 GEMV only; host rows get none', () => {
    const all = rows();
    addRatios(all);
    // Yardstick: the stream's 4000 GB/s (the int4 row's 8000 is not a candidate).
    expect(byKernel(all, 'lattice GEMV at GEMV').fractionOfStream).toBe(1000 / 4000);
    expect(byKernel(all, 'decode step: 200 × QuantizedLinear, one encoder').fractionOfStream).toBe(3000 / 4000);
    expect(byKernel(all, 'host cost').fractionOfStream).toBeNull();
  });

  it('the GEMV table shows decimal MB, µs, GB/s, the share in percent, then vs f16 and vs f32 in that order', () => {
    const lattice = row({ kernel: 'lattice GEMV', family: 'gemv', shape: GEMV, k: 1, spirvKey: 'lattice-i8:d3-q6-deterministic:packed', bitsPerEntry: 3, bytesRead: 123_456_789, ms: 0.25, gbps: 1000, check: ok });
    const all = [
      row({ kernel: 'stream read', family: 'stream', shape: '1024 MiB', ms: 0.25, gbps: 4000 }),
      row({ kernel: 'f16 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'f16', ms: 1, gbps: 470, check: ok }),
      row({ kernel: 'f32 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'f32', ms: 2, gbps: 470, check: ok }),
      lattice,
    ];
    addRatios(all);
    const cells = tableCells(markdownReport(all, env, new Map(), null), 'lattice GEMV');
    // kernel, shape, k, bits/entry, MB read (123 456 789 B = 123 MB, not 117.7 MiB), µs (0.25 ms), GB/s,
    // of stream (1000/4000), vs f16 (1/0.25), vs f32 (2/0.25).
    expect(cells.slice(0, 10)).toEqual(['lattice GEMV', GEMV, '1', '3.00', '123', '250', '1000', '25.0%', '4.00×', '8.00×']);
  });
});

describe('issue 10 targets at exactly their thresholds, and only from rows at the target shape', () => {
  /** A run at the target shapes: stream 4000 GB/s; the D3 and E8 rows and baselines as given. */
  function run(d3: Partial<BenchRow>, baselines: { f16Ms: number; int4Ms: number }, extra: BenchRow[] = []): BenchRow[] {
    return [
      row({ kernel: 'stream read', family: 'stream', shape: '1024 MiB', ms: 0.25, gbps: 4000 }),
      row({ kernel: 'f16 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'f16', ms: baselines.f16Ms, gbps: 470, check: ok }),
      row({ kernel: 'int4 g32 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'int4', ms: baselines.int4Ms, gbps: 400, check: ok }),
      row({ kernel: 'D3 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'lattice-i8:d3-q6-deterministic:packed', ms: 0.25, gbps: 2800, check: ok, ...d3 }),
      row({ kernel: 'E8 GEMV', family: 'gemv', shape: GEMV, spirvKey: 'e8-residue-i8:e8-q16-deterministic:packed', ms: 0.4, gbps: 2400, check: ok }),
      row({ kernel: 'f32 tiled matmul AᵀB', family: 'product', shape: PRODUCT, ms: 10, check: ok }),
      row({ kernel: 'engine product', family: 'product', shape: PRODUCT, ms: 10, check: ok, productKernel: 'd3-table' }),
      ...extra,
    ];
  }
  const judge = (rows: BenchRow[]): (boolean | null)[] => {
    addRatios(rows);
    return issueTargets(rows).map((t) => t.met);
  };

  it('met at exactly 70 %, 3.5×, 1.2×, 60 % and 1× (≥, not >)', () => {
    // 2800/4000 = 0.7; 0.875/0.25 = 3.5; 0.3/0.25 = 1.2; 2400/4000 = 0.6; 10/10 = 1 (all exact in binary64).
    expect(judge(run({}, { f16Ms: 0.875, int4Ms: 0.3 }))).toEqual([true, true, true, true, null, true]);
  });

  it('not met just under 3.5× the f16 GEMV or 1.2× the int4 GEMV', () => {
    // 0.87/0.25 = 3.48×; 0.29/0.25 = 1.16×.
    expect(judge(run({}, { f16Ms: 0.87, int4Ms: 0.29 })).slice(0, 3)).toEqual([true, false, false]);
  });

  it('a faster row or baseline at another shape decides nothing at the target shape', () => {
    const elsewhere = [
      // A D3 row at 90 % of the stream, at another shape.
      row({ kernel: 'D3 GEMV small', family: 'gemv', shape: '1024 × 1024', spirvKey: 'lattice-i8:d3-q6-deterministic:packed', ms: 0.001, gbps: 3600, check: ok }),
      // An int4 GEMV 100× faster, at another shape: not the yardstick of the target shape's row.
      row({ kernel: 'int4 g32 GEMV small', family: 'gemv', shape: '1024 × 1024', spirvKey: 'int4', ms: 0.003, gbps: 400, check: ok }),
    ];
    const rows = run({ gbps: 2000 }, { f16Ms: 0.875, int4Ms: 0.3 }, elsewhere);
    addRatios(rows);
    const targets = issueTargets(rows);
    expect(targets[0]).toMatchObject({ met: false, measured: `50.0 %: D3 GEMV at ${GEMV}` });
    expect(targets[2]).toMatchObject({ met: true, measured: `1.20×: D3 GEMV at ${GEMV}` });
  });
});

describe('a timing retaken only when its spread exceeds 1.2×', () => {
  it('a spread of exactly 1.2× is steady', () => {
    expect(unsteady([1, 1.2])).toBe(false);
  });
});

describe('GB/s and GFLOP/s of a call', () => {
  it('are 10⁹ per second (decimal), from milliseconds', () => {
    // 1 GB (10⁹ B) in 1000 ms: 1 GB/s; a 1 GiB stream (2³⁰ B) in 0.25 ms: 4294.967296 GB/s (not 4096);
    // 2·8192·28672 FLOP in 1 ms: 469.762048 GFLOP/s.
    expect(gigaPerSecond(1e9, 1000)).toBe(1);
    expect(gigaPerSecond(2 ** 30, 0.25)).toBeCloseTo(4294.967296, 9);
    expect(gigaPerSecond(2 * 8192 * 28672, 1)).toBeCloseTo(469.762048, 9);
  });
});
