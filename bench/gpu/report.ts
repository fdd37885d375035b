import { markdownTable } from '../lib/args.js';
import type { BenchRow } from './measure.js';

/*
 * The benchmark's outputs: the printed table (also the Markdown file's table), the Markdown file
 * with the device and the definitions, and the JSON with every figure.
 */

/** What the report says about where it ran. */
export interface BenchEnvironment {
  readonly adapter: { vendor: string; architecture: string; device: string; description: string };
  readonly features: Record<string, boolean>;
  readonly limits: Record<string, number>;
  readonly timing: string;
  readonly quick: boolean;
  readonly date: string;
  readonly node: string;
  readonly command: string;
  /** The card's memory bandwidth in GB/s (`--peak-gbs`), for the "% of peak" column; null when not given. */
  readonly peakGbPerSecond: number | null;
}

function significant(value: number | null, digits = 3): string {
  if (value === null || !Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toFixed(Math.min(decimals, 6));
}

function scientific(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  return value === 0 ? '0' : value.toExponential(2);
}

/**
 * The results as an aligned table (valid Markdown). Failed cases show their error. With
 * `peakGbPerSecond`, a column gives each kernel's GB/s as a share of it.
 */
export function resultsTable(rows: readonly BenchRow[], peakGbPerSecond: number | null = null): string {
  const peak = peakGbPerSecond !== null && peakGbPerSecond > 0 ? peakGbPerSecond : null;
  const header = ['kernel', 'shape', 'bits/entry', 'time (ms)', 'GB/s', ...(peak ? ['% of peak'] : []), 'GFLOP/s', 'speed vs f32', 'NMSE', 'timing'];
  return markdownTable(
    header,
    rows.map((row) => {
      if (row.error !== null) {
        const cells = [row.name, row.shape, significant(row.bitsPerEntry), 'FAILED'];
        while (cells.length < header.length - 1) cells.push('');
        return [...cells, row.error.split('\n')[0]?.slice(0, 120) ?? ''];
      }
      return [
        row.name,
        row.shape,
        significant(row.bitsPerEntry),
        significant(row.medianMs),
        significant(row.gbPerSecond),
        ...(peak ? [row.gbPerSecond === null ? '—' : `${((100 * row.gbPerSecond) / peak).toFixed(1)}%`] : []),
        significant(row.gflopPerSecond),
        row.speedupVsF32 === null ? '—' : `${significant(row.speedupVsF32)}×`,
        scientific(row.nmse),
        row.method ?? '—',
      ];
    }),
  );
}

/** A one-line description of the adapter. */
export function adapterLine(environment: BenchEnvironment): string {
  const { vendor, architecture, device, description } = environment.adapter;
  return [description || device, vendor && `vendor ${vendor}`, architecture && `architecture ${architecture}`].filter(Boolean).join(', ');
}

/** The Markdown report. */
export function markdownReport(rows: readonly BenchRow[], environment: BenchEnvironment): string {
  const features = Object.entries(environment.features)
    .map(([name, on]) => `${name} ${on ? 'yes' : 'no'}`)
    .join(', ');
  const notes = [...new Set(rows.flatMap((row) => [...row.problems.map((problem) => `**PROBLEM**: ${problem}`), ...row.notes]))];
  return [
    '# WebGPU kernel benchmark',
    '',
    `- Device: ${adapterLine(environment)}`,
    `- Features: ${features}`,
    `- Workgroup storage: ${environment.limits.maxComputeWorkgroupStorageSize} bytes; max storage binding: ${environment.limits.maxStorageBufferBindingSize} bytes`,
    `- Timing: ${environment.timing}`,
    `- Run: \`${environment.command}\` on ${environment.date}, Node ${environment.node}${environment.quick ? ' (quick shapes)' : ''}`,
    '',
    resultsTable(rows, environment.peakGbPerSecond),
    '',
    'Definitions: time is the median over the samples; GB/s counts the bytes of weights or codes (with',
    'scales and per-column fields) read, plus the vector for GEMV (encode: the f32 input read);',
    'GFLOP/s counts 2·n·cols per GEMV and 2·n·a·b per product (the dense equivalent); "speed vs f32" is',
    'the f32 kernel\'s time (same shape, same run: f32 GEMV for GEMV and encode, f32 matmul for products)',
    'divided by this kernel\'s; NMSE is n‖ŷ − y‖²/(‖W‖²‖x‖²) for GEMV and n‖Ĉ − AᵀB‖²/(‖A‖²‖B‖²) for',
    'products, against the exact float64 result, on iid N(0, 1) data.' +
      (environment.peakGbPerSecond ? ` "% of peak" divides GB/s by ${environment.peakGbPerSecond} GB/s (--peak-gbs).` : ''),
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes.map((note) => `- ${note}`), ''] : []),
  ].join('\n');
}

/** The JSON report. */
export function jsonReport(rows: readonly BenchRow[], environment: BenchEnvironment): string {
  return `${JSON.stringify({ environment, results: rows }, null, 2)}\n`;
}
