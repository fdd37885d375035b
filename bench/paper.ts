/**
 * The seed paper's table ([1], docs/ARCHITECTURE.md "References"), reproduced on the CPU reference: NMSE of ÂᵀB̂ for iid N(0,1)
 * matrices with n rows, for each scheme, with its stored-rate loss against the bound Γ(R) first; then
 * the universality table (NMSE on correlated data relative to Gaussian data, against n, every scheme),
 * time-sharing below R*, stress tables, and the GPU rows.
 *
 *   npm start                                  # n = 1536, a quick run
 *   npm run paper -- --n 6144 --seed 1 --json out.json
 *
 * Entries of AᵀB are identically distributed and every column is quantized independently, so the
 * NMSE over `--cols` sampled columns of A and B estimates the n × n figure without its n³ cost; the
 * standard error of the estimate is printed. `--cols n` runs the full square product.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { testMatrixPair, type DataKind } from '../src/data/testMatrices.js';
import { matmulATExact, productConcentration, productNmse, type Matrix } from '../src/matrix.js';
import { expectedNmse } from '../src/product/expectedError.js';
import { matmulAT } from '../src/product/matmulAT.js';
import { quantize, type QuantizeOptions } from '../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../src/quantize/quantizedMatrix.js';
import { resolveScheme, type SchemeName } from '../src/quantize/schemes.js';
import { gamma, gammaInverse, R_STAR } from '../src/theory/gamma.js';
import { timeSharedProductNmse, timeSharingFraction } from '../src/theory/timeSharing.js';
import { markdownTable, parseArgs, progress, progressDone } from './lib/args.js';
import { gpuRows, type GpuRow } from './lib/gpuRows.js';
import { requestNodeGpuDevice } from '../src/gpu/nodeGpu.js';
import { describeAdapter } from '../src/gpu/device.js';
import { TIMESTAMP_QUERY_DAWN_FLAGS } from '../src/gpu/timing.js';

const args = parseArgs(process.argv.slice(2), {
  n: 'number',
  cols: 'number',
  seed: 'number',
  json: 'string',
  md: 'string',
  'no-stress': 'flag',
  'no-gpu': 'flag',
  'universality-n': 'string',
  'universality-cols': 'number',
});
const n = (args.get('n') as number | undefined) ?? 6144;
const cols = Math.min(n, (args.get('cols') as number | undefined) ?? 256);
const seed = (args.get('seed') as number | undefined) ?? 1;
if (!Number.isInteger(n) || n < 8) throw new Error(`--n must be an integer ≥ 8, got ${n}`);
if (!Number.isInteger(cols) || cols < 2) throw new Error(`--cols must be an integer ≥ 2, got ${cols}`);
const universalityNs = ((args.get('universality-n') as string | undefined) ?? '512,2048,8192').split(',').map(Number);
const universalityCols = (args.get('universality-cols') as number | undefined) ?? 32;

interface Row {
  scheme: string;
  data: DataKind;
  bitsStored: number;
  bitsEntropy: number;
  nmse: number;
  nmseStdError: number;
  /** expectedNmse for universal schemes (the guarantee), else null. */
  predicted: number | null;
  gamma: number;
  rateLossEntropy: number;
  rateLossStored: number;
  /** Stored-rate loss of the opt-in shrunk estimate (`matmulAT(…, { shrink: 'product' })`, universal schemes), else null. */
  rateLossShrunk: number | null;
  seconds: number;
}

// Universal presets (the default), the papers' deterministic schemes (the seed paper's estimator uses
// the MMSE gain), and the scalar baselines.
const SCHEMES: readonly { label: string; scheme: SchemeName; options?: Partial<QuantizeOptions> }[] = [
  { label: 'e8-2bit', scheme: 'e8-2bit' },
  { label: 'e8-2.5bit', scheme: 'e8-2.5bit' },
  { label: 'e8-3bit', scheme: 'e8-3bit' },
  { label: 'd3-q6', scheme: 'd3-q6' },
  { label: 'e8-3.5bit', scheme: 'e8-3.5bit' },
  { label: 'e8-4bit', scheme: 'e8-4bit' },
  { label: 'e8-q16', scheme: 'e8-q16' },
  { label: 'e8-4.5bit', scheme: 'e8-4.5bit' },
  { label: 'e8-5bit', scheme: 'e8-5bit' },
  { label: 'd3-q6-deterministic (MMSE gain)', scheme: 'd3-q6-deterministic', options: { gain: 'mmse' } },
  { label: 'd3-q6-deterministic', scheme: 'd3-q6-deterministic' },
  { label: 'e8-q16-deterministic', scheme: 'e8-q16-deterministic' },
  { label: 'int3-absmax', scheme: 'int3-absmax' },
  { label: 'int4-g32', scheme: 'int4-g32' },
  { label: 'int4-g128', scheme: 'int4-g128' },
  { label: 'nvfp4', scheme: 'nvfp4' },
];
const STRESS_SCHEMES = new Set(['d3-q6', 'e8-q16', 'd3-q6-deterministic (MMSE gain)', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int4-g32', 'nvfp4']);
/** Data kinds of the stress tables (the correlated families have their own table below). */
const STRESS_KINDS: readonly DataKind[] = ['heavy-tailed', 'outlier-rows', 'low-rank'];

/** Quantizes A and B with `scheme`: distinct nonces (universal), one shared rotation seed. */
function quantizePair(scheme: SchemeName, options: Partial<QuantizeOptions>, a: Matrix, b: Matrix, nonce: number): { qa: QuantizedMatrix; qb: QuantizedMatrix } {
  const resolved = resolveScheme(scheme);
  const universal = resolved.kind === 'lattice' && resolved.mode === 'universal';
  return {
    qa: quantize(a, { scheme, seed, ...options, ...(universal ? { nonce: 2 * nonce + 1 } : {}) }),
    qb: quantize(b, { scheme, seed, ...options, ...(universal ? { nonce: 2 * nonce + 2 } : {}) }),
  };
}

function measure(label: string, scheme: SchemeName, options: Partial<QuantizeOptions>, data: DataKind, a: Matrix, b: Matrix, exact: Matrix): Row {
  const start = performance.now();
  const { qa, qb } = quantizePair(scheme, options, a, b, 1);
  const estimate = matmulAT(qa, qb);
  const nmse = productNmse(estimate, a, b);
  const seconds = (performance.now() - start) / 1000;
  const universal = qa.kind === 'lattice' && qa.mode === 'universal';
  const shrunkNmse = universal ? productNmse(matmulAT(qa, qb, { shrink: 'product' }), a, b) : null;
  return {
    scheme: label,
    data,
    bitsStored: qa.bitsStored,
    bitsEntropy: qa.bitsEntropy,
    nmse,
    nmseStdError: standardError(estimate, exact, a, b),
    predicted: universal ? expectedNmse(qa, qb) : null,
    gamma: gamma(qa.bitsStored),
    rateLossEntropy: qa.bitsEntropy - gammaInverse(Math.min(1, nmse)),
    rateLossStored: qa.bitsStored - gammaInverse(Math.min(1, nmse)),
    rateLossShrunk: shrunkNmse === null ? null : qa.bitsStored - gammaInverse(Math.min(1, shrunkNmse)),
    seconds,
  };
}

/** Standard error of the NMSE estimate, from the spread of per-entry squared errors. */
function standardError(estimate: Matrix, exact: Matrix, a: Matrix, b: Matrix): number {
  const count = exact.data.length;
  let normA = 0;
  let normB = 0;
  for (const v of a.data) normA += v * v;
  for (const v of b.data) normB += v * v;
  const scale = (a.rows * count) / (normA * normB);
  let mean = 0;
  let meanSquare = 0;
  for (let k = 0; k < count; k++) {
    const e = ((estimate.data[k] as number) - (exact.data[k] as number)) ** 2 * scale;
    mean += e / count;
    meanSquare += (e * e) / count;
  }
  return Math.sqrt(Math.max(0, meanSquare - mean * mean) / count);
}

const rows: Row[] = [];
const kinds: readonly DataKind[] = args.get('no-stress') ? ['gaussian'] : ['gaussian', ...STRESS_KINDS];
const total = SCHEMES.length + (kinds.length - 1) * STRESS_SCHEMES.size;
for (const kind of kinds) {
  const { a, b } = testMatrixPair(kind, n, cols, cols, seed);
  const exact = matmulATExact(a, b);
  for (const { label, scheme, options } of SCHEMES) {
    if (kind !== 'gaussian' && !STRESS_SCHEMES.has(label)) continue;
    progress(`[${rows.length + 1}/${total}] ${kind}: ${label} (n = ${n}, ${cols} + ${cols} columns)…`);
    rows.push(measure(label, scheme, options ?? {}, kind, a, b, exact));
  }
}
progressDone();

// Universality: NMSE on correlated data relative to Gaussian data of the same size, for every scheme.
// One run per cell (rank-one data fluctuate by about ±20 % between runs for 32 columns; the test suite
// averages over nonces, test/quantize/universality.test.ts).
const CORRELATED: readonly { name: string; data: DataKind; pairing: 'independent' | 'twice' | 'gram' }[] = [
  { name: 'parallel columns', data: 'parallel', pairing: 'independent' },
  { name: 'A = B quantized twice', data: 'parallel', pairing: 'twice' },
  { name: 'AᵀA (one quantization)', data: 'parallel', pairing: 'gram' },
  { name: 'shared low rank', data: 'low-rank', pairing: 'independent' },
];
interface UniversalityRow {
  scheme: string;
  n: number;
  gaussianNmse: number;
  ratios: Record<string, number>;
}
const universality: UniversalityRow[] = [];
for (const size of universalityNs) {
  const gaussianPair = testMatrixPair('gaussian', size, universalityCols, universalityCols, seed);
  const pairs = CORRELATED.map((family) => {
    const { a, b } = testMatrixPair(family.data, size, universalityCols, universalityCols, seed);
    return { family, a, b: family.pairing === 'independent' ? b : a };
  });
  for (const { label, scheme, options } of SCHEMES) {
    progress(`universality: ${label}, n = ${size}…`);
    const nmseOf = (a: Matrix, b: Matrix, pairing: 'independent' | 'twice' | 'gram'): number => {
      const { qa, qb } = quantizePair(scheme, options ?? {}, a, b, 3);
      return productNmse(matmulAT(qa, pairing === 'gram' ? qa : qb), a, b);
    };
    const gaussianNmse = nmseOf(gaussianPair.a, gaussianPair.b, 'independent');
    const ratios: Record<string, number> = {};
    for (const { family, a, b } of pairs) ratios[family.name] = nmseOf(a, b, family.pairing) / gaussianNmse;
    universality.push({ scheme: label, n: size, gaussianNmse, ratios });
  }
}
progressDone();

// Below R* (≈ 0.906 bit) the seed's answer is time-sharing: quantize a fraction κ of the rotated
// coordinates and drop the rest. With the seed's D3 scheme as the quantizer, κ = R / 3 bits reaches rate R.
interface TimeSharingRow {
  targetRate: number;
  keepFraction: number;
  bitsEntropy: number;
  nmse: number;
  predicted: number;
  gamma: number;
}
const PAPER_D3 = 'd3-q6-deterministic (MMSE gain)';
const timeSharing: TimeSharingRow[] = [];
{
  const { a, b } = testMatrixPair('gaussian', n, cols, cols, seed);
  const full = rows.find((r) => r.data === 'gaussian' && r.scheme === PAPER_D3);
  // ρ = n‖AᵀB‖²/(‖A‖²‖B‖²) of this draw (≈ 1 for independent Gaussian columns, not exactly).
  const concentration = productConcentration(a, b);
  for (const targetRate of [0.25, 0.5, 0.75]) {
    progress(`time-sharing at ${targetRate} bit…`);
    const base = full?.bitsEntropy ?? 3;
    const keepFraction = timeSharingFraction(targetRate, base);
    const qa = quantize(a, { scheme: 'd3-q6-deterministic', gain: 'mmse', seed, keepFraction });
    const qb = quantize(b, { scheme: 'd3-q6-deterministic', gain: 'mmse', seed, keepFraction });
    const nmse = productNmse(matmulAT(qa, qb), a, b);
    timeSharing.push({
      targetRate,
      keepFraction,
      bitsEntropy: qa.bitsEntropy,
      nmse,
      // The kept fraction is κ rounded to whole blocks of 3.
      predicted: timeSharedProductNmse({ keptFraction: qa.keptLength / qa.length, fullNmse: full?.nmse ?? nmse, concentration, rows: n, rotatedLength: qa.length }),
      gamma: gamma(qa.bitsEntropy),
    });
  }
  progressDone();
}

const f = (x: number, digits: number): string => x.toFixed(digits);
const header = ['scheme', 'rate loss (stored)', "with shrink: 'product'", 'bits stored', 'NMSE', 'predicted', '± s.e.', 'Γ(R stored)', 'bits entropy', 'rate loss (entropy)', 'time s'];
const table = (selected: readonly Row[]): string =>
  markdownTable(
    header,
    selected.map((r) => [
      r.scheme,
      f(r.rateLossStored, 3),
      r.rateLossShrunk === null ? '—' : f(r.rateLossShrunk, 3),
      f(r.bitsStored, 3),
      f(r.nmse, 4),
      r.predicted === null ? '—' : f(r.predicted, 4),
      f(r.nmseStdError, 4),
      f(r.gamma, 4),
      f(r.bitsEntropy, 3),
      f(r.rateLossEntropy, 3),
      f(r.seconds, 1),
    ]),
  );
let text = `Gaussian N(0,1), n = ${n}, ${cols} + ${cols} columns, seed ${seed}. Rate loss = bits − Γ⁻¹(NMSE); "predicted" = expectedNmse (universal schemes)\n\n${table(rows.filter((r) => r.data === 'gaussian'))}\n`;
text += `\nSeed paper (n = 6144): D3 q = 6 0.0593 at 3.015 entropy bits, 3-bit scalar 0.1668, Γ(3.015) = 0.0304.\n`;
text += `\nUniversality: NMSE on correlated data ÷ NMSE on Gaussian data of the same size (${universalityCols} + ${universalityCols} columns, one run each; ≈ 1 for a universal scheme)\n\n`;
text += markdownTable(
  ['scheme', 'n', 'Gaussian NMSE', ...CORRELATED.map((c) => c.name)],
  universality.map((r) => [r.scheme, String(r.n), f(r.gaussianNmse, 4), ...CORRELATED.map((c) => `×${f(r.ratios[c.name] as number, 2)}`)]),
);
text += `\n\nTime-sharing below R* = ${f(R_STAR, 3)} (${PAPER_D3} on a fraction κ of the rotated coordinates), Gaussian, n = ${n}\n\n`;
text += markdownTable(
  ['target rate', 'κ', 'bits entropy', 'NMSE', 'predicted', 'Γ(R)'],
  timeSharing.map((r) => [f(r.targetRate, 2), f(r.keepFraction, 3), f(r.bitsEntropy, 3), f(r.nmse, 4), f(r.predicted, 4), f(r.gamma, 4)]),
);
text += `\n`;
for (const kind of kinds.filter((k) => k !== 'gaussian')) {
  text += `\n${kind}, n = ${n}\n\n${table(rows.filter((r) => r.data === kind))}\n`;
}

// GPU rows: the same Gaussian matrices through the WebGPU engine (Dawn; a software Vulkan driver
// where the machine has no GPU). Same codes, so the same NMSE as the CPU rows.
let gpu: { adapter: string; tableLayout: string; rows: GpuRow[] } | { skipped: string } | undefined;
if (!args.get('no-gpu')) {
  try {
    const context = await requestNodeGpuDevice({ label: 'paper table', flags: TIMESTAMP_QUERY_DAWN_FLAGS });
    try {
      const { a, b } = testMatrixPair('gaussian', n, cols, cols, seed);
      const info = context.adapter.info;
      const onGpu = await gpuRows(context, a, b, seed, (label) => progress(`GPU: ${label} (n = ${n}, ${cols} + ${cols} columns)…`));
      progressDone();
      gpu = { adapter: describeAdapter(info, ' / '), tableLayout: onGpu.tableLayout, rows: onGpu.rows };
    } finally {
      context.device.destroy();
    }
  } catch (error) {
    progressDone();
    gpu = { skipped: error instanceof Error ? error.message : String(error) };
  }
}
if (gpu && 'rows' in gpu) {
  text += `\nWebGPU (${gpu.adapter}; D3 table layout '${gpu.tableLayout}'), Gaussian, n = ${n}, ${cols} + ${cols} columns\n\n`;
  text += markdownTable(
    ['scheme', 'NMSE (GPU)', 'NMSE (CPU, same codes)', 'codes = CPU', 'product kernel', 'quantize ms/matrix', 'product ms', 'f32 matmul ms', 'speed vs f32'],
    gpu.rows.map((r) => [r.scheme, f(r.nmse, 4), f(r.cpuNmse, 4), r.codesIdentical ? 'yes' : 'NO', r.kernel, f(r.quantizeMs, 1), f(r.productMs, 2), f(r.f32MatmulMs, 2), `${f(r.f32MatmulMs / r.productMs, 2)}×`]),
  );
  text += `\n\n(kernel times: ${gpu.rows[0]?.timing ?? ''}; quantize: wall clock of the whole call incl. upload; "speed vs f32" is the f32 matmul's time over the product's, above 1 = faster than f32, as README's ratios)\n`;
} else if (gpu) {
  text += `\nGPU rows skipped: ${gpu.skipped}\n`;
}
console.log(text);

const jsonPath = args.get('json') as string | undefined;
if (jsonPath) {
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify({ n, cols, seed, rows, universality, timeSharing, gpu }, null, 2)}\n`);
  console.log(`wrote ${jsonPath}`);
}
const mdPath = args.get('md') as string | undefined;
if (mdPath) {
  mkdirSync(dirname(mdPath), { recursive: true });
  writeFileSync(mdPath, text);
}
if (gpu && 'rows' in gpu && gpu.rows.some((r) => !r.codesIdentical)) {
  console.error('GPU codes differ from the CPU codes');
  process.exitCode = 1;
}
