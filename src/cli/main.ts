#!/usr/bin/env node
/**
 * The lattice-matmul command line.
 *
 *   lattice-matmul quantize MODEL -o OUT.lmq.safetensors [--scheme e8-4bit] [--tensors REGEX]
 *                           [--seed N] [--nonce N] [--device auto|gpu|cpu] [--workers N] [--force] [--quiet]
 *                           (MODEL: a .safetensors file, or a model's shard index)
 *   lattice-matmul inspect FILE
 *   lattice-matmul schemes
 *   lattice-matmul --version   (also -V, version)
 *
 * Exit codes: 0 done, 1 a file or its data refused, 2 a command line that cannot run (with the usage),
 * 130 interrupted (Ctrl-C; nothing written); 143 and 129 for SIGTERM and SIGHUP, likewise. A signal
 * that comes once the output is written stops nothing: the command prints its summary and exits 0.
 */
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';
import { counted, LatticeMatmulError } from '../errors.js';
import { NONCE_LIMIT } from '../quantize/options.js';
import { resolveScheme, SCHEME_NAMES, type SchemeName } from '../quantize/schemes.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import { suggestion } from '../quantize/strictOptions.js';
import { checkQuantizeModelOptions, inspectFile, quantizeModel, type QuantizeModelReport } from './commands.js';
import { printableName, terminalSafe } from './terminalText.js';

/** The signals that stop `quantize` cleanly (nothing written). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const QUANTIZE_USAGE = `lattice-matmul quantize MODEL -o OUT.safetensors [--scheme NAME] [--tensors REGEX]
                 [--exclude REGEX] [--transpose REGEX] [--seed N] [--nonce N] [--device auto|gpu|cpu] [--workers N] [--force] [--quiet]`;
const QUANTIZE_HELP = `quantize  writes the selected 2-D float tensors of at least 8 × 8 (F32/F16/BF16/F64,
          PyTorch (out, in) weights) of a safetensors model to one quantized container
          (docs/FORMAT.md). MODEL is a .safetensors file, or the shard index of a model in several
          (model.safetensors.index.json, with its shards in the same folder). --scheme defaults
          to e8-4bit; --tensors keeps tensors whose names match the regular expression (default:
          all but biases; a 3-D tensor it matches, such as stacked MoE experts, is quantized
          slice by slice as matrices NAME.0, NAME.1, …); MoE routers, position tables and
          recurrent layers' elementwise parameters and LoRA factors (A_log, time_*) stay in
          float whatever --tensors says, as in llama.cpp; --exclude leaves out tensors whose
          names match; tensors it leaves out that look like weights (FP8 or integer codes of a
          quantized checkpoint, 3-D tensors) are warned of; --transpose reads the tensors whose
          names match as (in, out), as GPT-2's Conv1D and OpenAI CLIP's text_projection store
          them (both warned of), and writes them (out, in); --device auto uses a hardware GPU
          when there is one, CPU worker threads otherwise; --nonce makes the file reproducible
          (matrix i gets nonce + i; by default nonces are random); --seed N (default 1) seeds
          the rotation's random signs; --workers N caps the CPU worker threads (default: one per
          core); --force (-f) replaces an existing OUT (refused otherwise); --quiet prints no
          progress. Ctrl-C stops it and leaves no OUT (exit code 130; SIGTERM 143, SIGHUP 129)
          unless OUT is already complete. --nonce is refused for schemes without dither
          (deterministic and scalar ones); scalar schemes quantize on the CPU (--device gpu with
          one is refused).`;
const INSPECT_USAGE = 'lattice-matmul inspect FILE';
const INSPECT_HELP = `inspect   lists a container's matrices (scheme, shape, stored bits per entry and, for universal
          codes, the expected weight NMSE and the guaranteed NMSE of a product with another matrix
          of the same scheme; relative to the centred columns for a scheme marked "(centred)") or,
          for a plain safetensors file or a shard index, the tensors quantize would select, and
          why not the others.`;
const SCHEMES_USAGE = 'lattice-matmul schemes';
const SCHEMES_HELP = 'schemes   lists the scheme names.';

const USAGE = `usage:
  ${QUANTIZE_USAGE}
  ${INSPECT_USAGE}
  ${SCHEMES_USAGE}
  lattice-matmul --version (or -V)
  lattice-matmul help [COMMAND]   (also COMMAND --help)

${QUANTIZE_HELP}
${INSPECT_HELP}
${SCHEMES_HELP}`;

/**
 * The version in the package's package.json: two directories up from this module both in the package
 * (dist/cli/main.js) and in the sources (src/cli/main.ts).
 */
function packageVersion(): string {
  // A path, not `new URL('…', import.meta.url)`, which the build would inline as a data: URL.
  const manifest: unknown = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8'));
  const version = typeof manifest === 'object' && manifest !== null && 'version' in manifest ? manifest.version : undefined;
  if (typeof version !== 'string') throw new LatticeMatmulError("the package's package.json has no version");
  return version;
}

/** The usage line(s) of one command, as the usage of all of them shows them. */
function commandUsage(usage: string): string {
  return `usage:\n  ${usage}`;
}

/** A command line that cannot run as given: exit code 2, with the usage (errors in files or data exit with 1). */
class UsageError extends LatticeMatmulError {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

/** The options of one command, as `parseArgs` takes them. */
interface CommandOptions {
  readonly options: Record<string, ParseArgsOptionDescriptor>;
  readonly allowPositionals?: boolean;
}

/**
 * `parseArgs` of a command's arguments, strictly: its refusals (unknown option, missing value) become
 * usage errors, an unknown option named with the closest known one (`--nonse`: did you mean
 * `--nonce`?), and an option with a value given twice is refused (`-o a -o b` would write b alone).
 */
function parseCommand<T extends CommandOptions>(usage: string, args: readonly string[], command: T) {
  let parsed;
  try {
    parsed = parseArgs({ ...command, args: [...args], strict: true });
  } catch (error) {
    if (!(error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS_'))) throw error;
    throw new UsageError(error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? (unknownOptionMessage(args, command) ?? error.message) : oneLine(error.message), usage);
  }
  const seen = new Set<string>();
  for (const token of optionTokens(args, command)) {
    if (command.options[token.name]?.type !== 'string') continue;
    if (seen.has(token.name)) throw new UsageError(`${optionNames(token.name, command)} is given more than once`, usage);
    seen.add(token.name);
  }
  return parsed;
}

/**
 * Node's parseArgs message on one line, as every other refusal: its "argument is ambiguous" (a value
 * starting with a dash, `--seed -1`) spans three.
 */
function oneLine(message: string): string {
  const ambiguous = /^Option '([^']+)' argument is ambiguous/.exec(message);
  if (ambiguous !== null) {
    const form = /use ('[^']+'(?: or '[^']+')?)/.exec(message)?.[1] ?? "'--name=-XYZ'";
    return `${ambiguous[1] as string} takes a value, and the argument after it starts with a dash; a value that starts with one is written ${form}`;
  }
  return message.split('\n').map((line) => line.trim()).filter((line) => line !== '').join(' ');
}

/** The options given in `args` (known or not), in order, with their names as the command knows them. */
function optionTokens(args: readonly string[], command: CommandOptions) {
  const { tokens } = parseArgs({ args: [...args], options: command.options, allowPositionals: true, strict: false, tokens: true });
  return tokens.flatMap((token) => (token.kind === 'option' ? [token] : []));
}

/** How an option is written: `--output (-o)`. */
function optionNames(name: string, command: CommandOptions): string {
  const short = command.options[name]?.short;
  return `--${name}${short === undefined ? '' : ` (-${short})`}`;
}

/** "unknown option '--nonse' (did you mean '--nonce'?)" for the first option the command does not know. */
function unknownOptionMessage(args: readonly string[], command: CommandOptions): string | null {
  const known = Object.keys(command.options);
  // A known short option (-o) comes back under its long name (output).
  const unknown = optionTokens(args, command).find((t) => !known.includes(t.name));
  if (unknown === undefined) return null;
  const close = suggestion(unknown.name, known);
  const options = known.map((name) => `--${name}`).join(', ');
  return `unknown option '${unknown.rawName}'${close === undefined ? '' : ` (did you mean '--${close}'?)`}; ${options === '' ? 'it takes none' : `known: ${options}`}`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // A fold, not Math.max(...): a spread of more than ≈ 125 000 rows (a container's tensors) overflows the stack.
  const widths = header.map((h, c) => rows.reduce((widest, r) => Math.max(widest, (r[c] ?? '').length), h.length));
  const line = (cells: readonly string[]) => cells.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A decimal integer argument (digits only: no sign, spaces, hex or exponent), at least `min`. */
function integerArgument(text: string | undefined, what: string, min: number, usage: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`${what} must be ${min === 0 ? 'a non-negative' : 'a positive'} decimal integer, got ${JSON.stringify(text)}`, usage);
  }
  return value;
}

/** The commands, in the order the usage lists them (what `help COMMAND` takes). */
const COMMANDS = ['quantize', 'inspect', 'schemes'] as const;

/** Arguments as a message shows them: each in JSON quotes. */
function quoted(args: readonly string[]): string {
  return args.map((a) => JSON.stringify(a)).join(' ');
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('no command given', USAGE);
  if (command === '--help' || command === '-h' || command === 'help') {
    // `help quantize` is `quantize --help`; anything else after it is a mistake, not ignored.
    const [topic, ...more] = rest;
    if (topic !== undefined && more.length === 0 && (COMMANDS as readonly string[]).includes(topic)) return main([topic, '--help']);
    if (topic !== undefined) throw new UsageError(`${command} takes a command name (${COMMANDS.slice(0, -1).join(', ')} or ${COMMANDS[COMMANDS.length - 1]}) or nothing, got ${quoted(rest)}`, USAGE);
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    if (rest.length > 0) throw new UsageError(`${command} takes no arguments, got ${quoted(rest)}`, USAGE);
    process.stdout.write(`lattice-matmul ${packageVersion()}\n`);
    return 0;
  }
  if (command === 'schemes') {
    const usage = commandUsage(SCHEMES_USAGE);
    const { values } = parseCommand(usage, rest, { options: { help: { type: 'boolean', short: 'h', default: false } } });
    if (values.help === true) {
      process.stdout.write(`${usage}\n\n${SCHEMES_HELP}\n`);
      return 0;
    }
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
    const usage = commandUsage(QUANTIZE_USAGE);
    const { values, positionals } = parseCommand(usage, rest, {
      allowPositionals: true,
      options: {
          output: { type: 'string', short: 'o' },
          scheme: { type: 'string', default: 'e8-4bit' },
          tensors: { type: 'string' },
          exclude: { type: 'string' },
          transpose: { type: 'string' },
          seed: { type: 'string' },
          nonce: { type: 'string' },
          device: { type: 'string', default: 'auto' },
          workers: { type: 'string' },
          force: { type: 'boolean', short: 'f', default: false },
          quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help === true) {
      process.stdout.write(`${usage}\n\n${QUANTIZE_HELP}\n`);
      return 0;
    }
    const input = positionals[0];
    if (input === undefined || positionals.length > 1) throw new UsageError(`quantize needs exactly one input file, got ${positionals.length}`, usage);
    if (values.output === undefined) throw new UsageError('quantize needs -o OUTPUT', usage);
    if (values.output === '') throw new UsageError('-o needs a non-empty path', usage);
    const scheme = values.scheme as string;
    if (!SCHEME_NAMES.includes(scheme as SchemeName)) throw new UsageError(`unknown scheme '${scheme}'; known: ${SCHEME_NAMES.join(', ')}`, usage);
    const device = values.device as string;
    if (device !== 'auto' && device !== 'gpu' && device !== 'cpu') throw new UsageError(`--device must be auto, gpu or cpu, got '${device}'`, usage);
    const pattern = (flag: string, value: string | undefined): RegExp | undefined => {
      if (value === undefined) return undefined;
      try {
        return new RegExp(value);
      } catch (error) {
        throw new UsageError(`${flag} is not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`, usage);
      }
    };
    const tensors = pattern('--tensors', values.tensors);
    const exclude = pattern('--exclude', values.exclude);
    const transpose = pattern('--transpose', values.transpose);
    let nonce: bigint | undefined;
    if (values.nonce !== undefined) {
      if (!/^[0-9]+$/.test(values.nonce)) throw new UsageError(`--nonce must be a non-negative decimal integer, got ${JSON.stringify(values.nonce)}`, usage);
      nonce = BigInt(values.nonce);
      // Said here in the flag's own decimal: the quantizer's message would show the bigint as 18446744073709551616n.
      if (nonce >= NONCE_LIMIT) throw new UsageError(`--nonce must be below 2^64 = ${NONCE_LIMIT}, got ${values.nonce}`, usage);
    }
    const workers = integerArgument(values.workers, '--workers', 1, usage);
    const seed = integerArgument(values.seed, '--seed', 0, usage);
    try {
      checkQuantizeModelOptions({ scheme: scheme as SchemeName, device, ...(seed === undefined ? {} : { seed }), ...(nonce === undefined ? {} : { nonce }) });
    } catch (error) {
      if (error instanceof LatticeMatmulError) throw new UsageError(error.message, usage);
      throw error;
    }
    const controller = new AbortController();
    // The first Ctrl-C (or a SIGTERM from `timeout`, `docker stop`, a job scheduler; a SIGHUP from a
    // closed terminal) stops the work and leaves no file, not even the temporary one; a second one
    // (the default action) kills at once. SIGKILL cannot be caught: it may leave a hidden temporary
    // file beside the output, never a partial output.
    let stoppedBy: NodeJS.Signals | null = null;
    const interrupt = (signal: NodeJS.Signals): void => {
      stoppedBy ??= signal;
      controller.abort('interrupted');
    };
    // The handlers stay until the process exits (they do not keep it alive): once the file is written,
    // a signal stops nothing (what is left is the summary), so the exit code does not say 130 for a
    // written file, except for a signal in the last milliseconds, once Node has closed its handles on
    // the way out: its default action then kills the process (the file is complete all the same).
    for (const signal of STOP_SIGNALS) process.once(signal, interrupt);
    // What an interrupt leaves: no output, or with --force the file that was there, as it was.
    const replacing = values.force === true && existsSync(values.output);
    let report: QuantizeModelReport;
    try {
      report = await quantizeModel({
        input,
        output: values.output,
        scheme: scheme as SchemeName,
        ...(tensors === undefined ? {} : { tensors }),
        ...(exclude === undefined ? {} : { exclude }),
        ...(transpose === undefined ? {} : { transpose }),
        ...(seed === undefined ? {} : { seed }),
        ...(nonce === undefined ? {} : { nonce }),
        ...(workers === undefined ? {} : { workers }),
        device,
        quiet: values.quiet === true,
        replace: values.force === true,
        signal: controller.signal,
      });
    } catch (error) {
      if (!controller.signal.aborted) throw error;
      const signal = stoppedBy ?? 'SIGINT';
      process.stderr.write(`lattice-matmul: interrupted (${signal}); ${values.output} ${replacing ? 'was left as it was' : 'was not written'}\n`);
      // The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
      return 128 + osConstants.signals[signal];
    }
    const rows = report.quantized.map((q) => [printableName(q.name), `${q.cols} × ${q.rows}`, q.bitsPerEntry.toFixed(3)]);
    process.stdout.write(`${table(['tensor', 'shape (out × in)', 'bits/entry'], rows)}\n`);
    if (report.skipped.length > 0) {
      // One tensor a line with its reason: a model's hundreds or thousands of norms and biases on one line could not be read.
      const count = counted(report.skipped.length, 'tensor');
      const lines = report.skipped.map((t) => `  ${printableName(t.name)}  (${t.dtype} [${t.shape.join(', ')}]: ${printableName(t.reason)})\n`);
      process.stdout.write(`not quantized (kept out of the container): ${count}\n${lines.join('')}`);
    }
    process.stdout.write(`wrote ${values.output} (${report.device}, ${report.seconds.toFixed(1)} s)\n`);
    return 0;
  }
  if (command === 'inspect') {
    const usage = commandUsage(INSPECT_USAGE);
    const { values, positionals } = parseCommand(usage, rest, { allowPositionals: true, options: { help: { type: 'boolean', short: 'h', default: false } } });
    if (values.help === true) {
      process.stdout.write(`${usage}\n\n${INSPECT_HELP}\n`);
      return 0;
    }
    const path = positionals[0];
    if (path === undefined || positionals.length > 1) throw new UsageError(`inspect needs exactly one file, got ${positionals.length}`, usage);
    const result = await inspectFile(path);
    if (result.kind === 'safetensors') {
      const rows = result.tensors.map((t) => [printableName(t.name), t.dtype, `[${t.shape.join(', ')}]`, t.notSelected === null ? 'yes' : `no: ${t.notSelected}`]);
      const what = result.shards === null ? 'a safetensors file' : `a shard index of ${counted(result.shards, 'safetensors file')}`;
      process.stdout.write(`${path}: ${what} (not a quantized container)\n${table(['tensor', 'dtype', 'shape', 'quantizable'], rows)}\n${result.notices.map((notice) => `${printableName(notice)}\n`).join('')}`);
      return 0;
    }
    const rows = result.rows.map((r) => [
      printableName(r.name),
      r.kind,
      r.scheme,
      `${r.shape[0]} × ${r.shape[1]}`,
      r.bitsPerEntry.toFixed(3),
      String(r.bytes),
      r.weightError === null ? '—' : r.weightError.toExponential(2),
      r.productNmse === null ? '—' : r.productNmse.toFixed(5),
    ]);
    process.stdout.write(`${table(['matrix', 'kind', 'scheme', 'shape (out × in)', 'bits/entry', 'bytes', 'weight NMSE', 'product NMSE (guaranteed)'], rows)}\n`);
    // Which readers take the file: version 3 (unpadded rotations of 257–1024 rows) is refused by older releases.
    process.stdout.write(`format version ${result.formatVersion}\n`);
    return 0;
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)}`, USAGE);
}

// A reader that stops early (`lattice-matmul inspect … | head`) closes the pipe: what is left to print
// is dropped, and the exit code stays the command's (quantize has written its file by then). Without
// a listener the write's EPIPE would be an uncaught exception: a stack trace and exit code 1.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
    process.exitCode = 1;
    if (stream === process.stdout) process.stderr.write(`lattice-matmul: cannot write the output: ${error.message}\n`);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`lattice-matmul: ${terminalSafe(error.message)}\n${error.usage}\n`);
      process.exitCode = 2;
      return;
    }
    const message = error instanceof LatticeMatmulError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`lattice-matmul: ${terminalSafe(message)}\n`);
    process.exitCode = 1;
  },
);
