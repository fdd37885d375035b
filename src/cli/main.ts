#!/usr/bin/env node
/**
 * The lattice-matmul command line.
 *
 *   lattice-matmul quantize MODEL.safetensors -o OUT.lmq.safetensors [--scheme e8-4bit] [--tensors REGEX]
 *                           [--seed N] [--nonce N] [--device auto|gpu|cpu] [--workers N] [--quiet]
 *   lattice-matmul inspect FILE
 *   lattice-matmul schemes
 */
import { parseArgs } from 'node:util';
import { LatticeMatmulError } from '../errors.js';
import { resolveScheme, SCHEME_NAMES, type SchemeName } from '../quantize/schemes.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import { inspectFile, quantizeModel } from './commands.js';

const USAGE = `usage:
  lattice-matmul quantize MODEL.safetensors -o OUT.safetensors [--scheme NAME] [--tensors REGEX]
                 [--seed N] [--nonce N] [--device auto|gpu|cpu] [--workers N] [--quiet]
  lattice-matmul inspect FILE
  lattice-matmul schemes

quantize  writes the selected 2-D float tensors (F32/F16/BF16/F64, PyTorch (out, in) weights) of a
          safetensors model to a quantized container (docs/FORMAT.md). --scheme defaults to e8-4bit;
          --tensors keeps tensors whose names match the regular expression; --device auto uses a
          hardware GPU when there is one, CPU worker threads otherwise; --nonce makes the file
          reproducible (matrix i gets nonce + i; by default nonces are random).
inspect   lists a container's matrices (scheme, shape, stored bits per entry, predicted error) or,
          for a plain safetensors file, the tensors quantize would select.
schemes   lists the scheme names.`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === 'schemes') {
    const rows = SCHEME_NAMES.map((name) => {
      const scheme = resolveScheme(name);
      const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
      const d = universal ? universalCodec(scheme.lattice, scheme.q, scheme.beta).distortion : null;
      return [name, scheme.kind === 'lattice' ? scheme.mode : scheme.kind, d === null ? '—' : (2 * d + d * d).toFixed(5)];
    });
    process.stdout.write(`${table(['scheme', 'kind', 'product NMSE (guaranteed)'], rows)}\n`);
    return 0;
  }
  if (command === 'quantize') {
    const { values, positionals } = parseArgs({
      args: [...rest],
      allowPositionals: true,
      strict: true,
      options: {
        output: { type: 'string', short: 'o' },
        scheme: { type: 'string', default: 'e8-4bit' },
        tensors: { type: 'string' },
        seed: { type: 'string' },
        nonce: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        workers: { type: 'string' },
        quiet: { type: 'boolean', default: false },
      },
    });
    const input = positionals[0];
    if (input === undefined || positionals.length > 1) throw new LatticeMatmulError('quantize needs exactly one input file');
    if (values.output === undefined) throw new LatticeMatmulError('quantize needs -o OUTPUT');
    const scheme = values.scheme as string;
    if (!SCHEME_NAMES.includes(scheme as SchemeName)) throw new LatticeMatmulError(`unknown scheme '${scheme}'; known: ${SCHEME_NAMES.join(', ')}`);
    const device = values.device as string;
    if (device !== 'auto' && device !== 'gpu' && device !== 'cpu') throw new LatticeMatmulError(`--device must be auto, gpu or cpu, got '${device}'`);
    const integer = (text: string | undefined, what: string): number | undefined => {
      if (text === undefined) return undefined;
      const value = Number(text);
      if (!Number.isSafeInteger(value) || value < 0) throw new LatticeMatmulError(`${what} must be a non-negative integer, got '${text}'`);
      return value;
    };
    let tensors: RegExp | undefined;
    if (values.tensors !== undefined) {
      try {
        tensors = new RegExp(values.tensors);
      } catch (error) {
        throw new LatticeMatmulError(`--tensors is not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    let nonce: bigint | undefined;
    if (values.nonce !== undefined) {
      if (!/^\d+$/.test(values.nonce)) throw new LatticeMatmulError(`--nonce must be a non-negative integer, got '${values.nonce}'`);
      nonce = BigInt(values.nonce);
    }
    const workers = integer(values.workers, '--workers');
    const seed = integer(values.seed, '--seed');
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort('interrupted'));
    const report = await quantizeModel({
      input,
      output: values.output,
      scheme: scheme as SchemeName,
      ...(tensors === undefined ? {} : { tensors }),
      ...(seed === undefined ? {} : { seed }),
      ...(nonce === undefined ? {} : { nonce }),
      ...(workers === undefined ? {} : { workers: Math.max(1, workers) }),
      device,
      quiet: values.quiet === true,
      signal: controller.signal,
    });
    const rows = report.quantized.map((q) => [q.name, `${q.cols} × ${q.rows}`, q.bitsStored.toFixed(3)]);
    process.stdout.write(`${table(['tensor', 'shape (out × in)', 'bits/entry'], rows)}\n`);
    if (report.skipped.length > 0) process.stdout.write(`not quantized (kept out of the container): ${report.skipped.join(', ')}\n`);
    process.stdout.write(`wrote ${values.output} (${report.device}, ${report.seconds.toFixed(1)} s)\n`);
    return 0;
  }
  if (command === 'inspect') {
    const { positionals } = parseArgs({ args: [...rest], allowPositionals: true, strict: true, options: {} });
    const path = positionals[0];
    if (path === undefined || positionals.length > 1) throw new LatticeMatmulError('inspect needs exactly one file');
    const result = await inspectFile(path);
    if (result.kind === 'safetensors') {
      const rows = result.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, t.quantizable ? 'yes' : 'no']);
      process.stdout.write(`${path}: a safetensors file (not a quantized container)\n${table(['tensor', 'dtype', 'shape', 'quantizable'], rows)}\n`);
      return 0;
    }
    const rows = result.rows.map((r) => [
      r.name,
      r.kind,
      r.scheme,
      `${r.shape[0]} × ${r.shape[1]}`,
      r.bitsPerEntry.toFixed(3),
      String(r.bytes),
      r.weightError === null ? '—' : r.weightError.toExponential(2),
      r.productNmse === null ? '—' : r.productNmse.toFixed(5),
    ]);
    process.stdout.write(`${table(['matrix', 'kind', 'scheme', 'shape (out × in)', 'bits/entry', 'bytes', 'weight error D', 'product NMSE (guaranteed)'], rows)}\n`);
    return 0;
  }
  throw new LatticeMatmulError(`unknown command '${command}'\n${USAGE}`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof LatticeMatmulError || (error instanceof Error && error.name === 'TypeError' && 'code' in error) ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`lattice-matmul: ${message}\n`);
    process.exitCode = 1;
  },
);
