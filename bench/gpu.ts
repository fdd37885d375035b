/**
 * The headless WebGPU benchmark (Dawn in Node): the lattice kernels (encode, GEMV from codes, D3
 * table product, E8 product) against an f32 GEMV / matmul and an int4 group-32 GEMV, same shapes, same run. Reports
 * time, effective GB/s, GFLOP/s, speed relative to the f32 kernel and NMSE against the exact float64
 * result; prints a table and writes JSON and Markdown.
 *
 *   npm run bench                       # GEMV 4096 × 4096, product 1024 × 256 × 256
 *   npm run bench -- --quick            # tiny shapes, for CI (< 1 minute on lavapipe)
 *   npm run bench -- --n 8192 --cols 8192 --json out.json --md out.md --only 'GEMV'
 *   npm run bench -- --peak-gbs 3350     # adds "% of peak" (the card's memory bandwidth, e.g. H100 SXM)
 *
 * `--only REGEX` keeps the cases whose names match, plus the f32 baselines (for the ratios).
 *
 * Timing: GPU timestamp queries when the adapter has them (Dawn's timestamp quantization turned off),
 * else the wall clock around `onSubmittedWorkDone`; `--wall-clock` forces the latter. Before every
 * timed sample a buffer larger than the GPU's L2 cache is cleared (`--flush-mb`, 0 to skip), so the
 * weights come from memory as in a real decode step, not from the cache the previous sample filled.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createBuffer, STORAGE_USAGE } from '../src/gpu/buffers.js';
import { requestNodeGpuDevice } from '../src/gpu/nodeGpu.js';
import { TIMESTAMP_QUERY_DAWN_FLAGS } from '../src/gpu/timing.js';
import { gaussianMatrix } from '../src/rotation/random.js';
import { f32GemvCase, f32MatmulCase, int4GemvCase } from './gpu/baselineCases.js';
import { gemvProblem, type BenchCase, type BenchContext } from './gpu/benchCase.js';
import {
  d3EncodeCase,
  d3GemvCase,
  d3GemvRotatingCase,
  d3TableProductCase,
  e8EncodeCase,
  e8GemvCase,
  e8ProductCase,
} from './gpu/latticeCases.js';
import { addSpeedups, measureCase, type BenchRow, type TimingSettings } from './gpu/measure.js';
import { adapterLine, jsonReport, markdownReport, resultsTable, type BenchEnvironment } from './gpu/report.js';
import { parseArgs, progress, progressDone } from './lib/args.js';

/** Every measured kernel, in the order of the table. */
const CASES: readonly BenchCase[] = [
  f32GemvCase,
  int4GemvCase,
  d3GemvCase,
  d3GemvRotatingCase,
  e8GemvCase,
  d3EncodeCase,
  e8EncodeCase,
  f32MatmulCase,
  d3TableProductCase,
  e8ProductCase,
];

const args = parseArgs(process.argv.slice(2), {
  quick: 'flag',
  json: 'string',
  md: 'string',
  n: 'number',
  cols: 'number',
  'product-n': 'number',
  'product-cols': 'number',
  seed: 'number',
  warmup: 'number',
  samples: 'number',
  repeats: 'number',
  'flush-mb': 'number',
  'wall-clock': 'flag',
  only: 'string',
  'peak-gbs': 'number',
});
const quick = args.get('quick') === true;
const option = (name: string, fallback: number): number => {
  const value = (args.get(name) as number | undefined) ?? fallback;
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer, got ${value}`);
  return value;
};
const n = option('n', quick ? 512 : 4096);
const cols = option('cols', quick ? 256 : 4096);
const productN = option('product-n', quick ? 256 : 1024);
const productCols = option('product-cols', quick ? 64 : 256);
const seed = option('seed', 1);
const flushMb = option('flush-mb', 64);
const jsonPath = (args.get('json') as string | undefined) ?? 'bench/out/gpu.json';
const mdPath = (args.get('md') as string | undefined) ?? 'bench/out/gpu.md';
const only = args.has('only') ? new RegExp(args.get('only') as string, 'i') : null;
for (const [name, value] of [['n', n], ['cols', cols], ['product-n', productN], ['product-cols', productCols]] as const) {
  if (value < 1) throw new Error(`--${name} must be at least 1`);
}

const gpu = await requestNodeGpuDevice({ label: 'bench device', flags: TIMESTAMP_QUERY_DAWN_FLAGS });
const { device, adapter, features, limits } = gpu;
const info = adapter.info;
const useTimestamps = features.timestampQuery && args.get('wall-clock') !== true;
const environment: BenchEnvironment = {
  adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
  features: { ...features },
  limits: { ...limits },
  timing: useTimestamps
    ? 'GPU timestamp queries (empty passes with timestampWrites around the recorded work; quantization off)'
    : `wall clock around queue.onSubmittedWorkDone()${features.timestampQuery ? ' (--wall-clock)' : ' (no timestamp-query feature)'}`,
  quick,
  date: new Date().toISOString(),
  node: process.version,
  command: ['bench/gpu.ts', ...process.argv.slice(2)].join(' '),
  peakGbPerSecond: (args.get('peak-gbs') as number | undefined) ?? null,
};
console.log(`Device: ${adapterLine(environment)}`);
console.log(`Features: ${Object.entries(features).map(([name, on]) => `${name}=${on ? 'yes' : 'no'}`).join(' ')}`);
console.log(`Limits: ${Object.entries(limits).map(([name, value]) => `${name}=${value}`).join(' ')}`);
console.log(`Timing: ${environment.timing}`);

progress(`generating data (GEMV ${n} × ${cols}, product ${productN} × ${productCols} × ${productCols})`);
const w = gaussianMatrix(n, cols, seed);
const x = gaussianMatrix(n, 1, seed + 1).data;
const context: BenchContext = {
  gpu,
  seed,
  gemv: gemvProblem(w, x),
  product: { n: productN, a: gaussianMatrix(productN, productCols, seed + 2), b: gaussianMatrix(productN, productCols, seed + 3) },
  shared: new Map(),
};

const flush = flushMb > 0 ? createBuffer(device, 'bench cache flush', flushMb * 2 ** 20, STORAGE_USAGE) : null;
const settings: TimingSettings = {
  warmup: option('warmup', quick ? 1 : 2),
  samples: Math.max(1, option('samples', quick ? 5 : 7)),
  repeats: Math.max(1, option('repeats', 1)),
  timestampQuery: useTimestamps,
  prelude: flush ? (encoder) => encoder.clearBuffer(flush) : undefined,
};

const rows: BenchRow[] = [];
const selected = CASES.filter((benchCase) => only === null || only.test(benchCase.name) || benchCase.baseline === null);
for (const benchCase of selected) {
  progress(`measuring ${benchCase.name}`);
  const started = performance.now();
  const row = await measureCase(context, benchCase, settings);
  rows.push(row);
  progress(`  ${benchCase.name}: ${row.error ?? `${row.medianMs?.toFixed(3)} ms`} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}
progressDone();
addSpeedups(rows);
for (const entry of context.shared.values()) entry.destroy();
await device.queue.onSubmittedWorkDone();
flush?.destroy();
device.destroy();

console.log('');
console.log(resultsTable(rows, environment.peakGbPerSecond));
const notes = [...new Set(rows.flatMap((row) => row.notes))];
if (notes.length > 0) console.log(`\n${notes.map((note) => `- ${note}`).join('\n')}`);
for (const [path, text] of [
  [jsonPath, jsonReport(rows, environment)],
  [mdPath, markdownReport(rows, environment)],
] as const) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}
console.log(`\nwrote ${jsonPath} and ${mdPath}`);
const failed = rows.filter((row) => row.error !== null);
if (failed.length > 0) {
  console.error(`\n${failed.length} kernel(s) failed:\n${failed.map((row) => `- ${row.name}: ${row.error}`).join('\n')}`);
  process.exitCode = 1;
}
const problems = rows.flatMap((row) => row.problems);
if (problems.length > 0) {
  console.error(`\nWrong results:\n${problems.map((problem) => `- ${problem}`).join('\n')}`);
  process.exitCode = 1;
}
