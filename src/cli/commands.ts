import { lstat, realpath, stat, statfs } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkPositiveInteger, counted, LatticeMatmulError } from '../errors.js';
import { adapterIdentity, type AdapterIdentity } from '../gpu/device.js';
import { claimsToBeContainer, CONTAINER_FORMAT, newerContainerVersion, type ContainerEntryInfo, type ContainerEntryInput, type ContainerMatrix } from '../format/container.js';
import { openQuantizedContainerFile, QuantizedContainerFileWriter } from '../format/containerFile.js';
import { isSafetensorsDtype, SAFETENSORS_MAX_HEADER_BYTES, safetensorsBytesToFloat32, safetensorsTypedData, type SafetensorsTensorInfo } from '../io/safetensors.js';
import { checkSafetensorsFileWritable, leftoverTemporaries, openSafetensorsFile } from '../io/safetensorsFile.js';
import { isShardIndexPath, openSafetensorsModel, type SafetensorsModel, type SafetensorsTensorSource } from '../io/safetensorsModel.js';
import { firstNonFinite, type MatrixInput } from '../matrix.js';
import { universalCodec } from '../quantize/latticeSpec.js';
import { COLUMN_NORM_ADVICE } from '../quantize/prepareColumn.js';
import { NONCE_LIMIT, resolveQuantizeOptions, throwIfAborted } from '../quantize/options.js';
import { FP16_SCALE_ADVICE } from '../quantize/quantize.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { resolveScheme, SCHEME_NAMES, type SchemeName } from '../quantize/schemes.js';
import { WeightOnlyQuantized } from '../weightonly/quantized.js';
import { ProgressBar, formatDuration } from './progressBar.js';
import { printableName } from './terminalText.js';
import { QuantizerThreadError, QuantizeWorkerPool } from './workerPool.js';

/** How the CLI's range refusals end: the tensor is quantized as the file stores it, so a rescaling happens there. */
const FILE_RESCALE_ADVICE = 'in the model file first (the CLI quantizes each tensor as stored)';

/*
 * The CLI's commands (src/cli/main.ts parses the arguments):
 *   quantize MODEL -o OUT.safetensors [--scheme e8-4bit] [--tensors REGEX] [--device auto|gpu|cpu]
 *     (MODEL: a .safetensors file, or a shard index read through src/io/safetensorsModel.ts)
 *   inspect FILE
 * A PyTorch weight of shape (out, in), row-major, is exactly this library's column-major in × out matrix,
 * so tensors are quantized as they are stored, one column per output feature.
 */

/** Options of {@link quantizeModel}. */
export interface QuantizeModelOptions {
  readonly input: string;
  readonly output: string;
  readonly scheme: SchemeName;
  /** Tensors whose names match are quantized (2-D float tensors only). Default: every 2-D float tensor. */
  readonly tensors?: RegExp;
  /** Tensors whose names match are left out, whatever `tensors` selects (the CLI's --exclude). */
  readonly exclude?: RegExp;
  /**
   * Selected tensors whose names match are stored (in, out), as GPT-2's Conv1D weights are (`x @ W`),
   * and are read transposed: the container holds every matrix (out, in). Matching none is refused.
   */
  readonly transpose?: RegExp;
  readonly seed?: number;
  /** First nonce: matrix i gets nonce + i (reproducible files). Default: random nonces. */
  readonly nonce?: bigint;
  /** 'auto' uses a hardware GPU when there is one, worker threads otherwise. */
  readonly device?: 'auto' | 'gpu' | 'cpu';
  readonly workers?: number;
  readonly quiet?: boolean;
  /** Replace an existing output (the CLI's --force). Default: refuse it, so no file is lost to a mistyped -o. */
  readonly replace?: boolean;
  readonly signal?: AbortSignal;
  /** Where messages go (default: stderr). */
  readonly log?: (line: string) => void;
  /** The header size the container is checked against after its first matrix (default and most: SAFETENSORS_MAX_HEADER_BYTES; tests pass less). */
  readonly maxHeaderBytes?: number;
}

/** What `quantizeModel` did. */
export interface QuantizeModelReport {
  /** Each matrix written, with its bits per entry as the file stores them (what `inspect` prints). */
  readonly quantized: readonly { readonly name: string; readonly rows: number; readonly cols: number; readonly bitsPerEntry: number }[];
  /** Each tensor left out of the container, with why (`selectTensors`). */
  readonly skipped: readonly SkippedTensor[];
  readonly device: string;
  readonly seconds: number;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
/** The names of GPT-2's Conv1D weights (stored (in, out)); Qwen-1, StarCoder and CLIP reuse some of them for nn.Linear (out, in). */
const GPT2_CONV1D = /(^|\.)(c_attn|q_attn|c_fc|c_proj)\.weight$/;

/**
 * Whether the selected matrices look like GPT-2's Conv1D weights by their names *and* shapes: a
 * `c_attn` of [d, 3d] (or [d, 2d], cross-attention's) or a `c_fc` wider than tall, stored (in, out).
 * nn.Linear models that reuse the names store [3d, d] and [4d, d].
 */
function looksLikeConv1D(tensors: readonly SafetensorsTensorInfo[]): boolean {
  return tensors.some(({ name, shape }) => {
    if (shape.length !== 2) return false;
    const [rows, cols] = shape as readonly [number, number];
    if (/(^|\.)c_attn\.weight$/.test(name)) return cols === 3 * rows || cols === 2 * rows;
    return /(^|\.)c_fc\.weight$/.test(name) && cols > rows;
  });
}
/** The smallest side of a tensor `quantize` selects: smaller ones are kept out of the container. */
const MIN_TENSOR_SIDE = 8;
/** What `selectTensors` selects, in words (for the message when it selects nothing). */
const SELECTABLE = `2-D float tensor (${[...FLOAT_DTYPES].join('/')}) of at least ${MIN_TENSOR_SIDE} × ${MIN_TENSOR_SIDE}`;
/**
 * Names a layer's weight has in quantized checkpoints, stored in a non-float dtype: FP8 `weight`
 * (DeepSeek-V3), GPTQ/AWQ `qweight`, compressed-tensors `weight_packed`, Marlin `B`, EXL2 `q_weight`,
 * HQQ `W_q`; gpt-oss's MXFP4 experts end in `_blocks`.
 */
const QUANTIZED_WEIGHT_NAMES = ['weight', 'qweight', 'weight_packed', 'B', 'q_weight', 'W_q', 'codes'];
/** Above this share of a model's bytes in what `quantize` cannot read, it refuses to start unless --tensors is given. */
const MOSTLY_UNREAD = 0.5;

/** A tensor `quantize` leaves out of the container, and why, in words. */
export interface SkippedTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Why, in words ("a 1-D tensor, not a matrix"); the CLI prints it after the dtype and shape. */
  readonly reason: string;
  /**
   * Weights `quantize` cannot read as they are: the codes of a quantized checkpoint ('codes'), or a
   * 3-D float tensor of stacked matrices (MoE experts) that `--tensors` does not select ('stacked'); null
   * for what it does not select (norms, biases, masks, scales, convolution kernels, `--tensors`).
   * `quantize` warns of these before it starts, and refuses when they are most of the model.
   */
  readonly unread: 'codes' | 'stacked' | null;
}

/**
 * Whether `info` holds the codes of a weight of a quantized checkpoint: a non-float tensor of 2 or more
 * dimensions named as such a weight (QUANTIZED_WEIGHT_NAMES), or whose last two dimensions both
 * exceed 1 (optimum-quanto's `_data`, FP8 under other names), unless named as an index table (`…index`,
 * `…ids`: Swin's `relative_position_index` [49, 49], `position_ids`; VPTQ's codes, `indices`, still count).
 */
function isQuantizedCodes(info: SafetensorsTensorInfo): boolean {
  const { shape } = info;
  if (FLOAT_DTYPES.has(info.dtype) || info.dtype === 'BOOL' || info.dtype === 'C64' || shape.length < 2) return false;
  if (isNamedCodes(info)) return true;
  return (shape.at(-1) as number) > 1 && (shape.at(-2) as number) > 1 && !/(^|[._])(index|ids)$/.test(info.name);
}

/** Whether `info` is named as the codes of a quantized weight (QUANTIZED_WEIGHT_NAMES, `*_blocks`). */
function isNamedCodes(info: SafetensorsTensorInfo): boolean {
  const last = info.name.slice(info.name.lastIndexOf('.') + 1);
  return QUANTIZED_WEIGHT_NAMES.includes(last) || last.endsWith('_blocks');
}

/** Why a tensor of dtype `dtype` is not read, in words; null for a float dtype quantize reads. */
function dtypeReason(info: SafetensorsTensorInfo): string | null {
  const { dtype } = info;
  if (FLOAT_DTYPES.has(dtype)) return null;
  const start = 'start from the unquantized checkpoint';
  if (isQuantizedCodes(info)) return `the codes of a weight of an already quantized checkpoint (FP8, GPTQ, AWQ, …), which quantize does not read: ${start}`;
  if (/^F[468]/.test(dtype)) return `an ${dtype.slice(0, 2)} tensor, which quantize does not read (it reads ${[...FLOAT_DTYPES].join(', ')})`;
  if (/^[IU]\d+$/.test(dtype)) return 'an integer tensor';
  return dtype === 'BOOL' ? 'a boolean tensor' : `a ${dtype} tensor, not a real float one`;
}

/**
 * The codes of a quantized weight in the same layer as tensor `name` (the names share everything
 * before the last dot), or null. Float tensors beside them are their scales or zero points:
 * DeepSeek-V3's `weight_scale_inv` beside an FP8 `weight`, GPTQ/AWQ's `scales` beside `qweight`,
 * Marlin's `s` beside `B`. Where a layer holds several (gpt-oss's experts: `gate_up_proj_blocks` and
 * `down_proj_blocks`), `X_scales` and `X_bias` belong to `X_blocks`.
 */
function quantizedSibling(codesByPrefix: ReadonlyMap<string, SafetensorsTensorInfo>, byName: ReadonlyMap<string, SafetensorsTensorInfo>, name: string): SafetensorsTensorInfo | null {
  const prefix = layerPrefix(name);
  if (prefix === '') return null;
  const last = name.slice(prefix.length);
  const stem = last.slice(0, last.lastIndexOf('_'));
  const blocks = stem === '' ? undefined : byName.get(`${prefix}${stem}_blocks`);
  return blocks !== undefined && isQuantizedCodes(blocks) ? blocks : (codesByPrefix.get(prefix) ?? null);
}

/** A tensor's layer: its name up to and with the last dot ('' for a name without one). */
function layerPrefix(name: string): string {
  return name.slice(0, name.lastIndexOf('.') + 1);
}

/**
 * Why `quantize` keeps the tensor `name` in float, whatever `--tensors` selects (as llama.cpp's
 * quantizer keeps such tensors; a broad `--tensors`, such as the '^(?!.*bias$)' its refusal advises,
 * must not pull them in), or null:
 * - an MoE router (it picks which experts each token runs, and is a sliver of the model): `…router`
 *   (`.layer`, `.classifier`, `.gate`, `.proj`: Granite, DBRX, Switch, AFMoE, Gemma 4), `…primary_router`,
 *   or `…gate` (`.wg`: Hunyuan) in a module with experts or named `moe` (Step); not `gate_proj`;
 * - a table of position embeddings or biases (added to activations or attention logits, not
 *   multiplied): BERT's `position_embeddings`, CLIP's `position_embedding`, OpenAI CLIP's
 *   `positional_embedding`, `pos_embed`, `wpe`, `embed_positions`, DETR's `query_position_embeddings`,
 *   T5's `relative_attention_bias`, Swin's `relative_position_bias_table`, DeBERTa's `rel_embeddings`,
 *   `token_type_embeddings`;
 * - parameters of a recurrent layer used elementwise or as small LoRA factors: Mamba's `A_log`,
 *   RWKV's `time_*`, RWKV-7's `att.w1` … `g2` and `r_k` (BlinkDL's names) or `w_lora` … `g_lora`
 *   (flash-linear-attention's).
 * `expertModules`: the module names with experts (`model.layers.0.mlp`).
 */
function keptInFloat(name: string, expertModules: ReadonlySet<string>): string | null {
  const always = '(whatever --tensors selects)';
  const gate = /^(.*)\.gate(\.wg)?\.weight$/.exec(name);
  const gateModule = gate?.[1];
  if (
    /(^|\.)(router(\.(layer|classifier|gate|proj))?|primary_router)\.weight$/.test(name) ||
    (gateModule !== undefined && (expertModules.has(gateModule) || /(^|\.)moe$/.test(gateModule)))
  ) {
    return `an MoE router, by its name: it picks the experts each token runs, so it stays in float, as llama.cpp keeps it ${always}`;
  }
  if (/(^|\.)(position_embeddings?|positional_embedding(_vlm)?|pos_embed|wpe|embed_positions|query_position_embeddings|relative_attention_bias|relative_position_bias_table|rel_embeddings|token_type_embeddings)(\.weight)?$/.test(name)) {
    return `a table of position or token-type embeddings or biases, by its name: added to the activations, not multiplied, so it stays in float ${always}`;
  }
  if (/(^|\.)(A_log|time_[A-Za-z0-9_]+|r_k)$/.test(name) || /(^|\.)(att|attention)\.[wavg][12]$/.test(name) || /(^|\.)[wavg]_lora\./.test(name)) {
    return `a parameter of a recurrent layer (Mamba's A_log, RWKV's time_* and LoRA factors), by its name: used elementwise or as a small factor, so it stays in float as llama.cpp keeps it ${always}`;
  }
  return null;
}

/** Whether `name` is a bias by its name: `bias`, `…_bias` (MoE experts' stacked biases). */
function isNamedBias(name: string): boolean {
  return /(^|[._])bias$/.test(name);
}

/** The modules that hold MoE experts: `model.layers.0.mlp` for `model.layers.0.mlp.experts.3.up_proj.weight` or `….mlp.experts.gate_up_proj`. */
function expertModulesOf(names: Iterable<string>): Set<string> {
  const modules = new Set<string>();
  for (const name of names) {
    const match = /^(.*)\.experts(\.|$)/.exec(name);
    if (match !== null) modules.add(match[1] as string);
  }
  return modules;
}

/**
 * One matrix `quantize` writes: a 2-D tensor, or slice i of a 3-D one ([i, :, :], one of stacked MoE
 * experts), as the file stores it.
 */
export interface MatrixSource {
  /** Its name in the container: the tensor's, or `<tensor>.<i>` for slice i. */
  readonly name: string;
  readonly tensor: string;
  /** i for slice i of a 3-D tensor, else null. */
  readonly slice: number | null;
  /** The 2-D matrix as stored: its dtype, [rows, cols] and bytes (its `name` is the container's). */
  readonly info: SafetensorsTensorInfo;
  /** Its raw little-endian bytes, read from the file. */
  read(): Promise<Uint8Array>;
}

/** Slice i ([i, :, :]) of the 3-D tensor `info` as a matrix source. */
function sliceSource(file: SafetensorsTensorSource, info: SafetensorsTensorInfo, i: number): MatrixSource {
  const [, rows, cols] = info.shape as readonly [number, number, number];
  const bytes = info.byteLength / (info.shape[0] as number);
  const begin = i * bytes;
  const name = `${info.name}.${i}`;
  const slice: SafetensorsTensorInfo = { name, dtype: info.dtype, shape: [rows, cols], elementCount: rows * cols, dataOffsets: [info.dataOffsets[0] + begin, info.dataOffsets[0] + begin + bytes], byteLength: bytes };
  return { name, tensor: info.name, slice: i, info: slice, read: () => file.readTensorBytes(info.name, { begin, end: begin + bytes }) };
}

/**
 * What `quantize` would quantize: the 2-D float tensors of at least 8 × 8 that `pattern` matches
 * (without a `pattern`, all but those named as biases: `bias`, `…_bias`, the stacked biases of MoE
 * experts), and each slice of a 3-D float tensor that `pattern` matches (stacked experts: by default
 * they are left out, see `unreadWeights`), minus what `exclude` matches; the others with the
 * reason they are left out. Never selected: float tensors beside a weight stored quantized (its
 * scales, zero points), and what stays in float whatever `pattern` says (`keptInFloat`: MoE
 * routers, position tables, recurrent layers' elementwise parameters).
 */
export function selectTensors(file: SafetensorsTensorSource, pattern: RegExp | undefined, exclude?: RegExp): { selected: MatrixSource[]; skipped: SkippedTensor[] } {
  const selected: MatrixSource[] = [];
  const skipped: SkippedTensor[] = [];
  const byName = new Map(file.tensors.map((info) => [info.name, info]));
  // Each layer's codes: the tensor named as codes where there is one (so that GPTQ's qzeros and
  // gpt-oss's *_scales are its companions), else the first unnamed one.
  const codesByPrefix = new Map<string, SafetensorsTensorInfo>();
  for (const info of file.tensors) {
    const prefix = layerPrefix(info.name);
    const known = codesByPrefix.get(prefix);
    if (prefix !== '' && isQuantizedCodes(info) && (known === undefined || (isNamedCodes(info) && !isNamedCodes(known)))) codesByPrefix.set(prefix, info);
  }
  const matches = (regex: RegExp | undefined, name: string): boolean => regex !== undefined && statelessTest(regex, name);
  const expertModules = expertModulesOf(byName.keys());
  for (const info of file.tensors) {
    const skip = (reason: string, unread: SkippedTensor['unread'] = null): void => {
      skipped.push({ name: info.name, dtype: info.dtype, shape: info.shape, reason, unread });
    };
    const { shape } = info;
    const dims = shape.length;
    const tooSmall = (rows: number, cols: number): boolean => rows < MIN_TENSOR_SIDE || cols < MIN_TENSOR_SIDE;
    // A stack of matrices: [E, rows, cols] with fewer of them than rows or columns (MoE experts: [128, 2880, 5760]),
    // not a convolution kernel ([768, 48, 128]), nor leading dimensions of 1 (a [1, 197, 768] embedding).
    const stacked = dims === 3 && (shape[0] as number) > 1 && (shape[0] as number) < Math.min(shape[1] as number, shape[2] as number) && !tooSmall(shape[1] as number, shape[2] as number);
    const byDtype = dtypeReason(info);
    // A companion of a layer's codes: a float tensor beside them (scales), or an integer one, not
    // named as codes, beside codes that are (GPTQ's qzeros, gpt-oss's *_scales).
    const sibling = quantizedSibling(codesByPrefix, byName, info.name);
    const companion = sibling !== null && sibling !== info && (byDtype === null || (isQuantizedCodes(info) && !isNamedCodes(info) && isNamedCodes(sibling)));
    const matched = matches(pattern, info.name);
    const inFloat = keptInFloat(info.name, expertModules);
    const slices = stacked ? Array.from({ length: shape[0] as number }, (_, i) => `${info.name}.${i}`) : [];
    if (companion) skip(`beside ${sibling.name} (${sibling.dtype}), the codes of a quantized weight: ${isNamedBias(info.name) ? 'its bias' : 'its scales or zero points'}, not a weight`);
    else if (byDtype !== null) skip(byDtype, isQuantizedCodes(info) ? 'codes' : null);
    else if (matches(exclude, info.name)) skip('matched by --exclude');
    else if (inFloat !== null) skip(inFloat);
    else if (stacked && slices.some((name) => byName.has(name))) skip(`a 3-D tensor of stacked matrices whose slices' names (${info.name}.0 …) are those of other tensors in the file: not quantized`, 'stacked');
    else if (stacked && matched) for (let i = 0; i < slices.length; i++) selected.push(sliceSource(file, info, i));
    else if (stacked) skip(`a 3-D tensor of stacked matrices, such as MoE experts: --tensors selects it, each slice [i, :, :] a matrix ${info.name}.i`, 'stacked');
    else if (dims > 2) skip(`a ${dims}-D tensor, not a stack of matrices (a convolution kernel, an embedding with leading dimensions of 1?): not quantized`);
    else if (dims !== 2) skip(`a ${dims}-D tensor, not a matrix`);
    else if (tooSmall(shape[0] as number, shape[1] as number)) skip(`smaller than ${MIN_TENSOR_SIDE} × ${MIN_TENSOR_SIDE}`);
    else if (pattern !== undefined && !matched) skip('not matched by --tensors');
    else if (pattern === undefined && isNamedBias(info.name)) skip('a bias, by its name (--tensors selects it)');
    else selected.push({ name: info.name, tensor: info.name, slice: null, info, read: () => file.readTensorBytes(info.name) });
  }
  return { selected, skipped };
}

/** `regex.test(text)` without the lastIndex state a /g or /y regular expression carries from call to call. */
export function statelessTest(regex: RegExp, text: string): boolean {
  regex.lastIndex = 0;
  const result = regex.test(text);
  regex.lastIndex = 0;
  return result;
}

/**
 * What `quantize` says before it starts of the weights it leaves out (`SkippedTensor.unread`), with
 * their share of the model's bytes; null when there are none. `refuse`: they are more than half the
 * model's bytes and no --tensors was given (a quantized checkpoint, or a model of stacked experts,
 * whose container would hold little of it).
 */
export function unreadWeights(file: SafetensorsTensorSource, skipped: readonly SkippedTensor[], patternGiven: boolean): { readonly message: string; readonly refuse: boolean } | null {
  const kinds = new Map(skipped.filter((t) => t.unread !== null).map((t) => [t.name, t.unread]));
  if (kinds.size === 0) return null;
  let all = 0;
  const bytes = { codes: 0, stacked: 0 };
  const count = { codes: 0, stacked: 0 };
  for (const info of file.tensors) {
    all += info.byteLength;
    const kind = kinds.get(info.name);
    if (kind === 'codes' || kind === 'stacked') {
      bytes[kind] += info.byteLength;
      count[kind]++;
    }
  }
  const share = (b: number): string => {
    const percent = all === 0 ? 0 : (100 * b) / all;
    return `${percent < 0.1 ? percent.toPrecision(1) : percent.toFixed(1)} % of the model's bytes`;
  };
  const parts: string[] = [];
  if (count.codes > 0) parts.push(`${counted(count.codes, 'tensor')} of quantized codes (${share(bytes.codes)}): an already quantized checkpoint, whose unquantized original is what quantize reads`);
  if (count.stacked > 0) parts.push(`${counted(count.stacked, '3-D tensor')} of stacked matrices such as MoE experts (${share(bytes.stacked)}), which --tensors selects slice by slice (with --transpose for those stored (in, out), as Llama 4's and gpt-oss's experts are)`);
  const refuse = !patternGiven && bytes.codes + bytes.stacked > MOSTLY_UNREAD * all;
  const what = parts.join('; and ');
  return refuse
    ? { message: `quantize would leave out most of the model: ${what}. Pass --tensors to quantize only what it selects ('^(?!.*bias$)' selects every tensor it can read but biases and what stays in float)`, refuse }
    : { message: `warning: quantize leaves out ${what}; the list at the end says why for each tensor`, refuse };
}

/**
 * Runs `work` over `items` with at most `limit` calls pending and hands each result to `consume` in
 * item order, one call at a time. No work starts `window` or more items ahead of the next result to
 * consume, so at most `window` results are held at once: a model's quantized matrices need not fit in
 * memory together. The first failure (of `work` or `consume`) starts no further work and aborts the
 * `signal` each call of `work` was given, so that pending calls stop early; it is thrown once they
 * have settled.
 */
export async function forEachInOrder<T, R>(
  items: readonly T[],
  limit: number,
  window: number,
  work: (item: T, index: number, signal: AbortSignal) => Promise<R>,
  consume: (result: R, index: number) => Promise<void>,
): Promise<void> {
  checkPositiveInteger(limit, 'forEachInOrder limit');
  checkPositiveInteger(window, 'forEachInOrder window');
  const stop = new AbortController();
  const finished = new Map<number, R>();
  let next = 0;
  let consumed = 0;
  let failure: { readonly error: unknown } | null = null;
  // One event for every change (a result, a consumption, a failure): whoever waits looks again.
  let waiters: (() => void)[] = [];
  const changed = (): void => {
    const woken = waiters;
    waiters = [];
    for (const wake of woken) wake();
  };
  const change = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));
  const fail = (error: unknown): void => {
    failure ??= { error };
    stop.abort(failure.error);
    changed();
  };
  const runner = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      if (next >= consumed + window) {
        await change();
        continue;
      }
      const index = next++;
      try {
        finished.set(index, await work(items[index] as T, index, stop.signal));
        changed();
      } catch (error) {
        fail(error);
      }
    }
  };
  const runners = Array.from({ length: Math.max(1, Math.min(limit, window, items.length)) }, runner);
  while (failure === null && consumed < items.length) {
    if (!finished.has(consumed)) {
      await change();
      continue;
    }
    const result = finished.get(consumed) as R;
    finished.delete(consumed);
    try {
      await consume(result, consumed);
      consumed++;
      changed();
    } catch (error) {
      fail(error);
    }
  }
  await Promise.all(runners);
  if (failure !== null) throw (failure as { readonly error: unknown }).error;
}

/** What the adapter probe reports: the adapter's description, or null when Dawn found none. */
type ProbedAdapter = { readonly info: AdapterIdentity | null };

/** How long the adapter probe may take (Dawn's start and one adapter request take ≈ 0.1–0.5 s). */
const ADAPTER_PROBE_TIMEOUT_MS = 30_000;

/**
 * Asks for Dawn's adapter in a child process (adapterProbe.ts, run as this process runs: built, or the
 * sources through tsx) whose stderr is dropped, so that `--device auto` on a machine with only a
 * software Vulkan driver says nothing of it: Dawn prints warnings about that driver's limits when it
 * opens the adapter. Undefined when the probe fails in any way (the caller then asks in this process
 * and reports what goes wrong).
 */
async function probeAdapterQuietly(): Promise<ProbedAdapter | undefined> {
  const here = import.meta.url;
  const probe = join(dirname(fileURLToPath(here)), here.endsWith('.ts') ? 'adapterProbe.ts' : 'adapterProbe.js');
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, probe], { timeout: ADAPTER_PROBE_TIMEOUT_MS });
    const report: unknown = JSON.parse(stdout);
    if (typeof report !== 'object' || report === null || !('info' in report)) return undefined;
    const { info } = report;
    if (info === null) return { info: null };
    if (typeof info !== 'object') return undefined;
    return { info: adapterIdentity(info) };
  } catch {
    return undefined;
  }
}

/** A GPU quantizer when one should be used, else null. */
async function gpuQuantizer(device: 'auto' | 'gpu' | 'cpu', log: (line: string) => void): Promise<{ quantize: (m: MatrixInput, options: object) => Promise<QuantizedMatrix>; close: () => void; name: string } | null> {
  if (device === 'cpu') return null;
  try {
    const { isSoftwareAdapter, requestGpuDevice } = await import('../gpu/device.js');
    // Look at the adapter before creating a device: a CPU stand-in is left alone, since worker threads
    // quantize faster than it, and it is looked at from a child process, so that Dawn's warnings about
    // it stay out of this one's stderr. (Dawn and the engine are loaded only past this point.)
    if (device === 'auto') {
      const probed = await probeAdapterQuietly();
      if (probed !== undefined && (probed.info === null || isSoftwareAdapter(probed.info))) return null;
    }
    const { nodeGpu } = await import('../gpu/nodeGpu.js');
    const { GpuEngine } = await import('../gpu/engine.js');
    const gpuEntry = await nodeGpu();
    const adapter = await gpuEntry.requestAdapter();
    if (device === 'auto' && (adapter === null || isSoftwareAdapter(adapter.info))) return null;
    const context = await requestGpuDevice({ gpu: gpuEntry, ...(adapter === null ? {} : { adapter }), label: 'lattice-matmul CLI' });
    const engine = GpuEngine.create(context);
    const info = context.adapter.info;
    return {
      // Dawn's device strings are slugs that may end in a dash where it cut the driver's text short
      // ('llvmpipe-llvm-15-0-6-256-bits-').
      name: `GPU (${[info.vendor, info.architecture, info.device].map((part) => part.replace(/-+$/, '')).filter(Boolean).join(' ') || 'WebGPU'})`,
      quantize: async (m, options) => {
        const gpu = await engine.quantize(m, options as Parameters<typeof engine.quantize>[1]);
        try {
          return await gpu.read();
        } finally {
          gpu.destroy();
        }
      },
      close: () => context.device.destroy(),
    };
  } catch (error) {
    if (device === 'gpu') throw error;
    log(`no usable GPU (${error instanceof Error ? error.message : String(error)}); quantizing on the CPU`);
    return null;
  }
}

/**
 * Refuses an output that is one of the input files (the model, its index or a shard: the same path,
 * another path to it, a symbolic or hard link): the container would replace the model while it is
 * being read.
 */
async function checkOutputIsNotInput(inputs: readonly string[], output: string): Promise<void> {
  // A path that does not stat is a new file (or one checkSafetensorsFileWritable refuses), not an input.
  const outputStats = await stat(output, { bigint: true }).catch(() => null);
  if (outputStats === null) return;
  // (An output that stats but does not resolve, such as /dev/stdout on a pipe, is not an input either;
  // checkSafetensorsFileWritable, called first, refuses it.)
  const outputPath = await realpath(output).catch(() => null);
  for (const input of inputs) {
    const inputStats = await stat(input, { bigint: true });
    // Device and inode catch hard links too; realpath covers file systems that report no inode numbers (0).
    const sameInode = inputStats.ino !== 0n && inputStats.dev === outputStats.dev && inputStats.ino === outputStats.ino;
    if (sameInode || (await realpath(input)) === outputPath) {
      throw new LatticeMatmulError(`the output ${JSON.stringify(output)} is the input file ${JSON.stringify(input)}; quantize would overwrite the model it reads`);
    }
  }
}

/** Refuses an existing `output` (a file, a link, anything at that path) unless `replace`. */
async function checkOutputIsNew(output: string, replace: boolean): Promise<void> {
  if (replace) return;
  const existing = await lstat(output).catch(() => null);
  if (existing === null) return;
  const what = existing.isFile() ? `a file of ${existing.size} bytes` : existing.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
  throw new LatticeMatmulError(`the output ${JSON.stringify(output)} exists (${what}); pass --force to replace it`);
}

/** A tensor as the quantizers take it: f32, or the 16-bit data of an F16 or BF16 tensor. */
type WeightData = { readonly rows: number; readonly cols: number; readonly data: Float32Array } | { readonly rows: number; readonly cols: number; readonly data: Uint16Array; readonly format: 'f16' | 'bf16' };

/**
 * Tensor `name` as the (in, out) matrix the quantizers take: F16 and BF16 as their 16-bit data (the
 * CPU workers widen one column at a time, so a 1 GB bf16 tensor no longer takes 2 GB of f32 beside its
 * bytes; the GPU engine widens it whole, as it did), else as f32 (F64 rows that round to zero refused).
 */
async function readWeight(source: MatrixSource, inFeatures: number, out: number, transposed: boolean, exclude: RegExp | undefined): Promise<WeightData> {
  const { info } = source;
  const format = info.dtype === 'F16' ? 'f16' : info.dtype === 'BF16' ? 'bf16' : null;
  if (format !== null) {
    const data = safetensorsTypedData(info, await source.read(), false) as Uint16Array;
    return { rows: inFeatures, cols: out, data: transposed ? transposeRows(data, inFeatures, out) : data, format };
  }
  const stored = safetensorsBytesToFloat32(info, await source.read());
  const data = transposed ? transposeRows(stored, inFeatures, out) : stored;
  await checkNoRowUnderflows(source, data, inFeatures, transposed, exclude);
  return { rows: inFeatures, cols: out, data };
}

/** The `rows` × `cols` row-major `data` transposed: `cols` × `rows`, row-major. */
function transposeRows<T extends Float32Array | Uint16Array>(data: T, rows: number, cols: number): T {
  const result = new (data.constructor as new (length: number) => T)(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) result[c * rows + r] = data[r * cols + c] as number;
  return result;
}

/**
 * Refuses an F64 tensor with a row (an output feature: the quantizer's column) that is nonzero in the
 * file but all zeros once narrowed to the f32 it is quantized in (every |x| at most 2^−150). It would be
 * quantized as a zero column without a word, a whole output feature lost, while a row a little larger
 * is refused by the quantizer's norm range. (A row with some entries that underflow and others that do
 * not keeps its norm to within f32 rounding: those entries are below 2^−126, the row's norm at least
 * 2^−100.) The F64 bytes are read again only when some narrowed row is zero.
 */
async function checkNoRowUnderflows(source: MatrixSource, narrowed: Float32Array, inFeatures: number, transposed: boolean, exclude: RegExp | undefined): Promise<void> {
  if (source.info.dtype !== 'F64') return;
  const out = narrowed.length / inFeatures;
  // Where entry i of output feature `row` lies in the file: row-major (out, in), or (in, out) transposed.
  const stored = (row: number, i: number): number => (transposed ? i * out + row : row * inFeatures + i);
  let original: DataView | null = null;
  for (let row = 0; row * inFeatures < narrowed.length; row++) {
    const start = row * inFeatures;
    if (narrowed.subarray(start, start + inFeatures).some((value) => value !== 0)) continue;
    if (original === null) {
      const bytes = await source.read();
      original = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    let largest = 0;
    for (let i = 0; i < inFeatures; i++) largest = Math.max(largest, Math.abs(original.getFloat64(8 * stored(row, i), true)));
    if (largest > 0) {
      throw new LatticeMatmulError(
        `${describeSource(source)} has the ${transposed ? 'column' : 'row'} ${row}${transposed ? ' of the stored (in, out) matrix' : ''} (output feature ${row}) whose entries, the largest ${largest.toExponential(3)} in magnitude, ` +
          `all underflow to 0 in the f32 range they are quantized in; scale the tensor up ${FILE_RESCALE_ADVICE}${leaveOutAdvice(source, exclude)}`,
      );
    }
  }
}

/**
 * How to quantize a model's other tensors when one is refused: the --exclude that leaves it out (a 3-D
 * tensor whole), joined to the `exclude` already given (--exclude is given once).
 */
function leaveOutAdvice(source: MatrixSource, exclude: RegExp | undefined): string {
  const pattern = `^${source.tensor.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
  const full = exclude === undefined ? pattern : `(${exclude.source})|${pattern}`;
  // In single quotes for a shell (a quote as '\'').
  return `; to quantize the other tensors without it, ${exclude === undefined ? 'add' : 'make it'} --exclude '${full.replaceAll("'", "'\\''")}'`;
}

/** "tensor "name"", or "slice i of tensor "name"", for messages. */
function describeSource(source: MatrixSource): string {
  return `${source.slice === null ? '' : `slice ${source.slice} of `}tensor ${JSON.stringify(source.tensor)}`;
}

/**
 * A quantizer's error about tensor `name`, restated in the file's terms. The quantizer sees the (out, in)
 * weight as its column-major in × out matrix, after narrowing to f32, and says neither the tensor's name
 * nor its index; a non-finite entry (the quantizer's own refusal) is looked up again in the file for its
 * [out, in] index and, for F64, the value that did not fit in f32.
 */
async function tensorError(source: MatrixSource, transposed: boolean, exclude: RegExp | undefined, error: unknown): Promise<unknown> {
  const what = describeSource(source);
  // The thread, not the tensor, failed: name the tensor, with nothing about its columns or entries.
  if (error instanceof QuantizerThreadError) return new LatticeMatmulError(`${what}: ${error.message}`, { cause: error });
  if (!(error instanceof LatticeMatmulError)) return error;
  const { info } = source;
  const inFeatures = info.shape[1] as number;
  const data = safetensorsBytesToFloat32(info, await source.read());
  const bad = firstNonFinite(data);
  if (bad < 0) {
    // The quantizer's remedy (rescale the matrix) is not the CLI user's to apply: the CLI quantizes
    // each tensor as stored.
    let message = error.message;
    if (message.endsWith(COLUMN_NORM_ADVICE)) message = `${message.slice(0, -COLUMN_NORM_ADVICE.length)}multiply the tensor by a power of two ${FILE_RESCALE_ADVICE}`;
    // A scalar scheme's fp16 scales: a lattice scheme's are f32.
    if (message.endsWith(FP16_SCALE_ADVICE)) message = `${message.slice(0, -FP16_SCALE_ADVICE.length)}quantize it with a lattice scheme (f32 scales), or multiply the tensor by a power of two ${FILE_RESCALE_ADVICE}`;
    return new LatticeMatmulError(`${what} (the quantizer's column j is its ${transposed ? 'column j, read transposed' : 'row j'}): ${message}${leaveOutAdvice(source, exclude)}`, { cause: error });
  }
  // The index in the file's terms: [i, row, col] in a slice i of a 3-D tensor.
  const at = `[${source.slice === null ? '' : `${source.slice}, `}${Math.floor(bad / inFeatures)}, ${bad % inFeatures}]`;
  const name = JSON.stringify(source.tensor);
  if (info.dtype === 'F64') {
    const bytes = await source.read();
    const value = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(8 * bad, true);
    if (Number.isFinite(value)) {
      return new LatticeMatmulError(`tensor ${name} has the entry ${value} at ${at}, outside the f32 range (|x| < 3.4e38) it is quantized in; scale the tensor down ${FILE_RESCALE_ADVICE}${leaveOutAdvice(source, exclude)}`, { cause: error });
    }
  }
  return new LatticeMatmulError(`tensor ${name} has a non-finite entry ${data[bad]} at ${at}${leaveOutAdvice(source, exclude)}`, { cause: error });
}

/**
 * Refuses what the options alone make impossible, before any file is opened: a seed out of range, a
 * nonce for a scheme without dither (the quantizer's own checks, naming the flags), `--device gpu`
 * with a scalar scheme (the GPU quantizer encodes lattice schemes). The CLI reports these as
 * command-line errors (exit code 2).
 */
export function checkQuantizeModelOptions(options: Pick<QuantizeModelOptions, 'scheme' | 'seed' | 'nonce' | 'device' | 'workers'>): void {
  // The CLI parses --workers as a positive integer; a direct caller's NaN would start no thread and
  // wait for ever, a fraction would start one thread more than asked.
  if (options.workers !== undefined && !(Number.isSafeInteger(options.workers) && options.workers >= 1)) {
    throw new LatticeMatmulError(`quantizeModel workers must be a positive integer, got ${options.workers}`);
  }
  if (options.device === 'gpu' && !encodesOnGpu(options.scheme)) {
    throw new LatticeMatmulError(`--device gpu --scheme ${options.scheme}: the GPU quantizer encodes lattice schemes; ${options.scheme} is a scalar baseline, quantized on the CPU (--device cpu or auto)`);
  }
  const flags = [`--scheme ${options.scheme}`, ...(options.seed === undefined ? [] : [`--seed ${options.seed}`]), ...(options.nonce === undefined ? [] : [`--nonce ${options.nonce}`])];
  checkQuantizeOptions(
    { scheme: options.scheme, ...(options.seed === undefined ? {} : { seed: options.seed }), ...(options.nonce === undefined ? {} : { nonce: options.nonce }) },
    flags.join(' '),
  );
}

/**
 * The model's own `__metadata__` (its format, its creator's notes), kept in the container as
 * `user.source-metadata.<key>`: the container holds the quantized tensors, and nothing the model said
 * about itself should be lost with the tensors left out. A sharded model's metadata is what every
 * shard says alike plus the index's; an entry a shard says otherwise (or alone) is kept as
 * `user.source-metadata.<shard file>.<key>`.
 */
function sourceMetadata(model: Pick<SafetensorsModel, 'metadata' | 'files'>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(model.metadata ?? {})) kept[`source-metadata.${key}`] = value;
  if (model.files.length > 1) {
    for (const file of model.files) {
      for (const [key, value] of Object.entries(file.metadata ?? {})) {
        if (model.metadata?.[key] !== value) kept[`source-metadata.${basename(file.path)}.${key}`] = value;
      }
    }
  }
  return kept;
}

/** Whether the GPU quantizer encodes `scheme` (lattice schemes; the scalar baselines run on the CPU). */
function encodesOnGpu(scheme: SchemeName): boolean {
  return resolveScheme(scheme).kind === 'lattice';
}

/** Runs the quantizer's own checks of `options` now, not at the first tensor, naming the command-line flags. */
function checkQuantizeOptions(options: object, what: string): void {
  try {
    resolveQuantizeOptions(options);
  } catch (error) {
    if (error instanceof LatticeMatmulError) throw new LatticeMatmulError(`${what}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * Says (even under --quiet: it is about the disk, not progress) which hidden temporaries an earlier
 * write of `output` left, and how much they hold: a run killed outright (out of memory, SIGKILL)
 * leaves its spill folder, as large as the tensors it had quantized. Not removed: another run may
 * be writing the same file now.
 */
async function reportLeftovers(output: string, log: (line: string) => void): Promise<void> {
  const leftovers = await leftoverTemporaries(output);
  if (leftovers.length === 0) return;
  const bytes = leftovers.reduce((sum, leftover) => sum + leftover.bytes, 0);
  const names = leftovers.map((leftover) => printableName(basename(leftover.path))).join(', ');
  const name = printableName(basename(output));
  log(`note: an earlier write of ${name} that did not end left ${formatSize(bytes)} beside it (${names}): remove them if no other run is writing ${name}`);
}

/**
 * Refuses, after the first matrix, a container whose header would pass `limit` once every selected
 * tensor is in it, rather than when it is finished, hours later. The header grows by about the first
 * matrix's share for each (`firstBytes` − `emptyBytes`), plus (its tensors + 2) bytes for each byte a
 * name is longer than the first's: a name is written in each of its tensors' names, its description's
 * key and the list of matrices. Numbers and padding differ by a few bytes between matrices: 3 % margin.
 */
function checkHeaderFits(names: readonly string[], first: string, emptyBytes: number, firstBytes: number, tensorsPerMatrix: number, limit: number): void {
  const encoder = new TextEncoder();
  const length = (name: string): number => encoder.encode(JSON.stringify(name)).byteLength;
  const perMatrix = firstBytes - emptyBytes;
  const firstLength = length(first);
  let estimate = emptyBytes;
  for (const name of names) estimate += perMatrix + (tensorsPerMatrix + 2) * (length(name) - firstLength);
  if (estimate > 1.03 * limit) {
    throw new LatticeMatmulError(
      `the container's header would take about ${(estimate / 1e6).toFixed(1)} MB for ${names.length} matrices (≈ ${perMatrix} bytes each), ` +
        `past the ${limit}-byte limit of a safetensors header, which readers refuse: quantize the tensors into several containers (--tensors REGEX selects each part)`,
    );
  }
}

/** Bytes free to this user in the folder that will hold `output`, or null where the system does not say. */
async function freeBytesBeside(output: string): Promise<number | null> {
  try {
    const fs = await statfs(dirname(output));
    return fs.bavail * fs.bsize;
  } catch {
    return null;
  }
}

/** `bytes` in MiB or GiB, for messages about the disk. */
function formatSize(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Whether `error` (or an error it wraps) is the system's "no space left on device" or "quota exceeded". */
function isDiskFull(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/** The bytes of tensor data the container will hold, extrapolated from the matrices written so far (their bytes per entry, over every selected entry); null before any. */
function containerBytesEstimate(added: { readonly matrices: number; readonly bytes: number }, entriesAdded: number, entriesTotal: number): number | null {
  return added.matrices === 0 || entriesAdded === 0 ? null : (added.bytes / entriesAdded) * entriesTotal;
}

/**
 * What the container needs on disk (`containerBytesEstimate`) and what the output's folder had free
 * at the start, in words: for the warning after the first matrix and for a disk-full error. Null
 * before any matrix is written.
 */
function diskNeeds(added: { readonly matrices: number; readonly bytes: number }, entriesAdded: number, entriesTotal: number, freeAtStart: number | null): string | null {
  const estimate = containerBytesEstimate(added, entriesAdded, entriesTotal);
  if (estimate === null) return null;
  const free = freeAtStart === null ? '' : `, and its folder had ${formatSize(freeAtStart)} free when quantize started`;
  return `the container needs about ${formatSize(estimate)} (at the bits per entry of the ${added.matrices === 1 ? 'matrix' : `${added.matrices} matrices`} written so far)${free}`;
}

/** Bytes a container entry's tensors take in the file (not counting the header). */
function storedBytes(info: ContainerEntryInfo): number {
  return info.tensors.reduce((sum, t) => sum + t.byteLength, 0);
}

/** Bits per entry of a container entry as the file stores it: what `quantize` and `inspect` print. */
function storedBitsPerEntry(info: ContainerEntryInfo): number {
  return (8 * storedBytes(info)) / (info.rows * info.cols);
}

/**
 * Quantizes the selected tensors of a safetensors model into a quantized container file. The output
 * path is checked before any work (not the input, a writable directory, a name that fits, a regular
 * file or a new one that may be replaced: `checkSafetensorsFileWritable`; a new one unless
 * `replace`); `signal`
 * stops the work, and then nothing is written.
 *
 * @example
 * await quantizeModel({ input: 'model.safetensors', output: 'model.lmq.safetensors', scheme: 'e8-4bit' });
 */
export async function quantizeModel(options: QuantizeModelOptions): Promise<QuantizeModelReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const signal = options.signal ?? null;
  const start = performance.now();
  const scheme = resolveScheme(options.scheme);
  const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
  checkQuantizeModelOptions(options);
  const file = await openSafetensorsModel(options.input);
  let pool: QuantizeWorkerPool | null = null;
  let gpu: Awaited<ReturnType<typeof gpuQuantizer>> = null;
  let bar: ProgressBar | null = null;
  let writer: QuantizedContainerFileWriter | null = null;
  // For what a disk-full failure says: free bytes at the start, entries written and in all.
  let freeAtStart: number | null = null;
  let entriesAdded = 0;
  let totalEntries = 0;
  try {
    checkNoContainer(file, 'quantize reads a plain safetensors model');
    await checkSafetensorsFileWritable(options.output);
    await checkOutputIsNotInput(file.files.map((f) => f.path), options.output);
    await checkOutputIsNew(options.output, options.replace === true);
    await reportLeftovers(options.output, log);
    const { selected, skipped } = selectTensors(file, options.tensors, options.exclude);
    const names = selected.map((source) => source.name);
    // Even under --quiet: the container will lack weights the user may expect in it.
    const unread = unreadWeights(file, skipped, options.tensors !== undefined);
    if (unread?.refuse === true) throw new LatticeMatmulError(unread.message);
    if (unread !== null) log(unread.message);
    if (selected.length === 0) {
      // What the pattern did match, and why it is left out (a router that stays in float, a 1-D bias).
      // Where --exclude left out all there was, say so: "no 2-D float tensor in model.safetensors" alone is false there.
      const excluded = options.exclude === undefined ? [] : selectTensors(file, options.tensors).selected.map((source) => source.tensor);
      if (excluded.length > 0) {
        const names = [...new Set(excluded)];
        const listed = `${names.slice(0, 3).map(printableName).join(', ')}${names.length > 3 ? ', …' : ''}`;
        throw new LatticeMatmulError(
          `--exclude ${(options.exclude as RegExp).source} leaves out every tensor ${options.tensors === undefined ? 'quantize selects' : `--tensors ${options.tensors.source} selects`} in ${options.input}: ${counted(names.length, 'tensor')} (${listed}), so there is nothing to quantize`,
        );
      }
      const matched = options.tensors === undefined ? undefined : skipped.find((t) => statelessTest(options.tensors as RegExp, t.name));
      const why = matched === undefined ? '' : `; it matches ${printableName(matched.name)}, left out: ${matched.reason}`;
      throw new LatticeMatmulError(`no ${SELECTABLE} in ${options.input}${options.tensors === undefined ? '' : ` matches --tensors ${options.tensors.source}`}${why}`);
    }
    if (options.nonce !== undefined) {
      // Matrix i gets nonce + i: the last one's is the largest.
      const last = options.nonce + BigInt(selected.length - 1);
      if (last >= NONCE_LIMIT) {
        throw new LatticeMatmulError(
          `--nonce ${options.nonce} with ${counted(selected.length, 'tensor')} gives the last one nonce ${last}, but nonces are below 2^64: use --nonce ${NONCE_LIMIT - BigInt(selected.length)} or less`,
        );
      }
    }
    // Matched, as --tensors and --exclude are, against the file's tensor names (a 3-D tensor's, for its slices).
    const transposed = new Set(options.transpose === undefined ? [] : selected.filter((source) => statelessTest(options.transpose as RegExp, source.tensor)).map((source) => source.name));
    if (options.transpose !== undefined && transposed.size === 0) throw new LatticeMatmulError(`--transpose ${options.transpose.source} matches none of the ${counted(selected.length, 'selected tensor')}`);
    // The shapes' evidence from the whole file: a --tensors c_proj selects no c_attn to show it.
    // Even under --quiet: the container would hold these matrices transposed.
    for (const warning of orientationWarnings(file.tensors, names.filter((name) => !transposed.has(name)))) log(warning);
    // (out, in) of each selected matrix, whichever way the file stores it.
    const shapes = new Map(selected.map(({ name, info }) => [name, (transposed.has(name) ? [...info.shape].reverse() : info.shape) as readonly number[]]));
    if (!options.quiet) {
      const tied = tiedEmbeddingsNote(file.tensors, names.map((name) => ({ name, shape: shapes.get(name) as readonly number[] })));
      if (tied !== null) log(tied);
    }
    const totalColumns = names.reduce((sum, name) => sum + ((shapes.get(name) as readonly number[])[0] as number), 0);
    const entriesOf = (name: string): number => ((shapes.get(name) as readonly number[])[0] as number) * ((shapes.get(name) as readonly number[])[1] as number);
    totalEntries = names.reduce((sum, name) => sum + entriesOf(name), 0);
    freeAtStart = await freeBytesBeside(options.output);
    // Under --quiet the fallback to the CPU is not reported either (errors still are).
    // A scalar scheme runs on the CPU whatever --device auto finds (--device gpu was refused above).
    gpu = encodesOnGpu(options.scheme) ? await gpuQuantizer(options.device ?? 'auto', options.quiet === true ? () => {} : log) : null;
    // A worker quantizes one tensor at a time: more workers than tensors would only start idle threads.
    const workers = Math.min(options.workers ?? availableParallelism(), selected.length);
    const deviceName = gpu?.name ?? `CPU (${counted(workers, 'worker thread')})`;
    if (!options.quiet) log(`quantizing ${counted(selected.length, 'tensor')} (${totalColumns} columns) of ${basename(options.input)} with ${options.scheme} on ${deviceName}`);
    if (gpu === null) pool = new QuantizeWorkerPool(workers);
    const progress = new ProgressBar(totalColumns, process.stderr, !options.quiet);
    bar = progress;
    const done = new Map<string, number>();
    const progressOf = (name: string) => (columns: number) => {
      done.set(name, columns);
      let sum = 0;
      for (const value of done.values()) sum += value;
      progress.update(sum, name);
    };
    // At most one tensor per worker is read at a time (F16 and BF16 as their 16-bit data: the worker
    // widens one column at a time), and each quantized matrix is spilled to disk in order as soon as
    // those before it are: neither the model's weights nor its quantized matrices need fit in memory.
    const concurrency = gpu !== null ? 1 : (pool as QuantizeWorkerPool).size;
    writer = await QuantizedContainerFileWriter.create(options.output, {
      metadata: { ...sourceMetadata(file), source: basename(options.input), scheme: options.scheme, 'created-by': 'lattice-matmul quantize' },
      ...(signal === null ? {} : { signal }),
    });
    const container = writer;
    const headerEmpty = container.headerBytes();
    await forEachInOrder(selected, concurrency, 2 * concurrency, async (source, index, failed): Promise<ContainerEntryInput> => {
        const { name } = source;
        throwIfAborted(signal, 'quantize');
        // The user's interrupt, or another tensor's failure: either stops this one at once.
        const stopped = signal === null ? failed : AbortSignal.any([signal, failed]);
        const [out, inFeatures] = shapes.get(name) as readonly [number, number];
        const matrix = await readWeight(source, inFeatures, out, transposed.has(name), options.exclude);
        const quantizeOptions = {
          scheme: options.scheme,
          seed: options.seed ?? 1,
          ...(universal && options.nonce !== undefined ? { nonce: options.nonce + BigInt(index) } : {}),
        };
        const onProgress = progressOf(name);
        let quantized: QuantizedMatrix;
        try {
          quantized =
            gpu !== null
              ? await gpu.quantize(matrix, { ...quantizeOptions, signal: stopped })
              : await (pool as QuantizeWorkerPool).run({ ...matrix, options: quantizeOptions }, onProgress, stopped);
        } catch (error) {
          // An interrupt is reported as one, whatever it cut short; a tensor stopped by another's
          // failure reports nothing (that failure is what is thrown).
          throwIfAborted(signal, 'quantize');
          if (failed.aborted) throw error;
          throw await tensorError(source, transposed.has(name), options.exclude, error);
        }
        onProgress(out);
        return { name, matrix: quantized };
    }, async (entry) => {
      const first = entriesAdded === 0;
      await container.add(entry);
      entriesAdded += entriesOf(entry.name);
      // Once, after the first matrix: a run that cannot fit is told now, not when it is finished or the disk fills.
      if (first) {
        const added = container.added;
        checkHeaderFits(names, entry.name, headerEmpty, container.headerBytes(), added.tensors, options.maxHeaderBytes ?? SAFETENSORS_MAX_HEADER_BYTES);
        if (freeAtStart !== null && (containerBytesEstimate(added, entriesAdded, totalEntries) ?? 0) > freeAtStart) {
          progress.clear(); // the warning on a line of its own; the bar redraws at its next update
          log(`warning: quantize may run out of disk space: ${diskNeeds(added, entriesAdded, totalEntries, freeAtStart) ?? ''}`);
        }
      }
    });
    progress.finish(`quantized ${counted(selected.length, 'tensor')} in ${formatDuration((performance.now() - start) / 1000)}`);
    // The last moment an interrupt leaves no file: writing is atomic (a temporary file renamed over the target).
    throwIfAborted(signal, 'quantize');
    await container.finish();
    // Bits per entry as written, the numbers inspect prints: a matrix's bitsStored counts the scheme's own
    // packed layout, which for deterministic and scalar schemes is not the container's.
    const written = await openQuantizedContainerFile(options.output);
    try {
      return {
        quantized: written.entries.map((info) => ({ name: info.name, rows: info.rows, cols: info.cols, bitsPerEntry: storedBitsPerEntry(info) })),
        skipped,
        device: deviceName,
        seconds: (performance.now() - start) / 1000,
      };
    } finally {
      await written.close();
    }
  } catch (error) {
    // The message that follows (an error, an interrupt) starts on a line of its own, not after the bar.
    bar?.clear();
    if (isDiskFull(error) && error instanceof Error) {
      const needs = writer === null ? null : diskNeeds(writer.added, entriesAdded, totalEntries, freeAtStart);
      const where = `the disk holding ${printableName(dirname(options.output))} is full`;
      throw new LatticeMatmulError(`${error.message}; ${where}${needs === null ? '' : `: ${needs}`}`, { cause: error });
    }
    throw error;
  } finally {
    // Nothing once the container is written; else its spill folder is removed.
    await writer?.abort();
    await pool?.close();
    gpu?.close();
    await file.close();
  }
}

/** Refuses a model with a file (the model itself, or a shard) that says it is a quantized container; `advice` ends the message. */
function checkNoContainer(model: SafetensorsModel, advice: string): void {
  const container = model.files.find((f) => claimsToBeContainer(f.metadata));
  if (container !== undefined) throw new LatticeMatmulError(`${container.path} is a quantized container (${CONTAINER_FORMAT}), not a model: ${advice}`);
}

/**
 * The warning for `names` (selected, not transposed) that look like GPT-2's Conv1D weights, stored
 * (in, out), or null: by name, and only when the whole file's c_attn or c_fc has Conv1D's shape.
 */
function conv1dWarning(tensors: readonly SafetensorsTensorInfo[], names: readonly string[]): string | null {
  const conv1d = looksLikeConv1D(tensors) ? names.filter((name) => GPT2_CONV1D.test(name)) : [];
  if (conv1d.length === 0) return null;
  return (
    `warning: ${printableName(conv1d[0] as string)}${conv1d.length === 1 ? ' is' : ` and ${counted(conv1d.length - 1, 'other tensor')} are`} named as GPT-2's Conv1D weights, which are stored (in, out), and this file's c_attn or c_fc has their shape: ` +
    `quantize reads (out, in), so the container would hold them transposed; if they are, pass --transpose 'c_attn|q_attn|c_fc|c_proj'`
  );
}

/** Parameters (not nn.Linear weights: no `.weight`) that models multiply as x @ W, so stored (in, out), and the model that does. */
const IN_OUT_PARAMETERS: readonly { readonly name: string; readonly model: string }[] = [
  { name: 'text_projection', model: 'OpenAI CLIP' },
  { name: 'visual.proj', model: 'OpenAI CLIP' },
  { name: 'mm_input_projection_weight', model: 'Gemma 3' },
];
/** What --transpose must match for them: a name that ends with one of them. */
const IN_OUT_PATTERN = `(${IN_OUT_PARAMETERS.map((p) => p.name.replaceAll('.', String.raw`\.`)).join('|')})$`;

/** The warnings for `names` (selected, not transposed) that models store (in, out): Conv1D weights, IN_OUT_PARAMETERS. */
function orientationWarnings(tensors: readonly SafetensorsTensorInfo[], names: readonly string[]): string[] {
  const named = (name: string, parameter: (typeof IN_OUT_PARAMETERS)[number]): boolean => name === parameter.name || name.endsWith(`.${parameter.name}`);
  const parameters = names.filter((name) => IN_OUT_PARAMETERS.some((p) => named(name, p)));
  const kinds = IN_OUT_PARAMETERS.filter((p) => parameters.some((name) => named(name, p)));
  const warnings = [conv1dWarning(tensors, names)];
  if (parameters.length > 0) {
    warnings.push(
      `warning: ${printableName(parameters[0] as string)}${parameters.length === 1 ? ' is' : ` and ${counted(parameters.length - 1, 'other tensor')} are`} named as parameters that models multiply as x @ W ` +
        `(${kinds.map((p) => `${p.model}'s ${p.name}`).join(', ')}), stored (in, out): quantize reads (out, in), so the container would hold them transposed; pass --transpose '${IN_OUT_PATTERN}'`,
    );
  }
  return warnings.filter((warning): warning is string => warning !== null);
}

/** A language model's input embedding (token → vector), by its name: Llama's, GPT-2's, BERT's, Meta's own, GPT-NeoX's. */
const INPUT_EMBEDDING = /(^|\.)(embed_tokens|wte|word_embeddings|tok_embeddings|embed_in)\.weight$/;
/**
 * An output layer (vector → logits) of its own, by its name: `lm_head`, Meta's `output`, GPT-NeoX's `embed_out`, BERT's MLM
 * `decoder`, ChatGLM's and GLM-4's `output_layer`, the original Phi-1.5/Phi-2 release's `lm_head.linear`.
 */
const OUTPUT_LAYER = /(^|\.)(lm_head|lm_head\.linear|output|output_layer|embed_out|decoder)\.weight$/;

/**
 * A note where a selected input embedding has no output layer beside it in the model: with tied
 * embeddings (`tie_word_embeddings`, Llama 3.2 1B/3B, Gemma, GPT-2) the embedding is the output layer
 * too, and the container holds it once, under the embedding's name; an app looking for `lm_head.weight`
 * finds nothing. Null otherwise. `shape`: the selected matrix's (out, in).
 */
function tiedEmbeddingsNote(tensors: readonly SafetensorsTensorInfo[], selected: readonly { readonly name: string; readonly shape: readonly number[] }[]): string | null {
  if (tensors.some((t) => OUTPUT_LAYER.test(t.name))) return null;
  const embedding = selected.find((m) => INPUT_EMBEDDING.test(m.name));
  if (embedding === undefined) return null;
  const name = printableName(embedding.name);
  return (
    `note: the model has no output layer of its own (no lm_head.weight): if its config ties the word embeddings (tie_word_embeddings), ` +
    `${name} is its output layer too, and the container's ${name} (out × in = ${embedding.shape[0]} × ${embedding.shape[1]}) serves as both: logits = W·h`
  );
}

/** What `inspect` lists for a model (a safetensors file, or a shard index and its shards). */
interface ModelTensors {
  readonly kind: 'safetensors';
  /** The shards a shard index names; null for a single file. */
  readonly shards: number | null;
  /** Each tensor, and null if quantize selects it by default, else why not (`SkippedTensor.reason`). */
  readonly tensors: { name: string; dtype: string; shape: readonly number[]; notSelected: string | null }[];
  /** What a default `quantize` would say before it starts: `unreadWeights`' warning or why it refuses, `orientationWarnings`, `tiedEmbeddingsNote`. */
  readonly notices: readonly string[];
}

/** Every tensor of a model, and whether `quantize` would select it. */
function modelTensors(model: SafetensorsTensorSource, shards: number | null): ModelTensors {
  const { selected, skipped } = selectTensors(model, undefined);
  const why = new Map(skipped.map((t) => [t.name, t.reason]));
  const unread = unreadWeights(model, skipped, false);
  const notices = [
    unread === null ? null : unread.refuse ? `a default quantize refuses: ${unread.message}` : unread.message,
    ...orientationWarnings(model.tensors, selected.map((source) => source.name)),
    tiedEmbeddingsNote(model.tensors, selected.map((source) => ({ name: source.name, shape: source.info.shape }))),
  ].filter((notice): notice is string => notice !== null);
  return { kind: 'safetensors', shards, tensors: model.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, notSelected: why.get(t.name) ?? null })), notices };
}

/** One line of `inspect`. */
export interface InspectRow {
  readonly name: string;
  readonly kind: string;
  /** The scheme's name (or its parameters), with " (centred)" for a matrix quantized with `center: true`, whose figures are its centred columns'. */
  readonly scheme: string;
  /** (out, in) as PyTorch writes the weight. */
  readonly shape: readonly [number, number];
  readonly bitsPerEntry: number;
  readonly bytes: number;
  /**
   * Universal codes that keep every rotated coordinate: the expected relative weight error
   * E‖Ŵ − W‖²_F / ‖W‖²_F = D·n/N (D the scheme's distortion, n = in, N the rotated length: the error is
   * spread evenly over the N rotated coordinates and the n kept rows get n/N of it; W's centred
   * columns for a centred matrix), else null
   * (deterministic and scalar schemes have no such guarantee; time-sharing leaves coordinates out).
   */
  readonly weightError: number | null;
  /** With `weightError`: the guaranteed NMSE (2D + D²)·n/N of a product with an independently quantized matrix of the same scheme (`expectedNmse`). */
  readonly productNmse: number | null;
}

function schemeLabel(matrix: ContainerMatrix): string {
  if (matrix instanceof WeightOnlyQuantized) return `${matrix.method} (weight-only)`;
  const scheme = matrix.scheme;
  const name = SCHEME_NAMES.find((candidate) => JSON.stringify(resolveScheme(candidate)) === JSON.stringify(scheme));
  if (name !== undefined) return name;
  if (scheme.kind === 'lattice') return scheme.mode === 'universal' ? `${scheme.lattice} q=${scheme.q} β=${scheme.beta}` : `${scheme.lattice} q=${scheme.q} (deterministic)`;
  // As the presets name them (int4-g32): bits and group, then what distinguishes it from a preset.
  if (scheme.kind === 'int') return `int${scheme.bits}-${scheme.groupSize === 'column' ? 'column' : `g${scheme.groupSize}`} (${scheme.grid}, ${scheme.scaleFormat} scales)`;
  return scheme.kind;
}

/**
 * The entries of a quantized container (or, for a plain safetensors file, what `quantize` would select).
 *
 * @example
 * const result = await inspectFile('model.lmq.safetensors');
 * if (result.kind === 'container') for (const row of result.rows) console.log(row.name, row.bitsPerEntry);
 * else for (const t of result.tensors) console.log(t.name, t.dtype, t.notSelected ?? 'selected');
 */
export async function inspectFile(path: string): Promise<{ kind: 'container'; formatVersion: number; rows: InspectRow[] } | ModelTensors> {
  if (isShardIndexPath(path)) {
    const model = await openSafetensorsModel(path);
    try {
      checkNoContainer(model, 'inspect it on its own');
      return modelTensors(model, model.files.length - 1);
    } finally {
      await model.close();
    }
  }
  let container;
  try {
    container = await openQuantizedContainerFile(path);
  } catch (error) {
    const safetensors = await openSafetensorsFile(path);
    try {
      if (error instanceof LatticeMatmulError && claimsToBeContainer(safetensors.metadata)) {
        if (newerContainerVersion(safetensors.metadata) !== null) throw new LatticeMatmulError(`${path}: ${error.message}`, { cause: error });
        const format = safetensors.metadata?.format;
        if (format !== CONTAINER_FORMAT) {
          // Its other keys say container, its "format" does not: a damaged one, or another family's.
          throw new LatticeMatmulError(
            `${path} has a quantized container's metadata (checksum, matrices, matrix.…) but its "format" is ${format === undefined ? 'missing' : JSON.stringify(format)}, not "${CONTAINER_FORMAT}": a damaged container, or a file of another format`,
            { cause: error },
          );
        }
        throw new LatticeMatmulError(`${path} looks like a quantized container (its metadata says so) but is damaged: ${error.message}`, { cause: error });
      }
      // A valid safetensors file that is not a container: describe what would be quantized.
      if (error instanceof LatticeMatmulError && safetensors.tensors.every((t) => isSafetensorsDtype(t.dtype))) return modelTensors(safetensors, null);
    } finally {
      await safetensors.close();
    }
    throw error;
  }
  try {
    const rows: InspectRow[] = [];
    for (const info of container.entries) {
      // Named by the file as well as the matrix: inspect may be given several files in a script.
      const entry = await container.read(info.name).catch((error: unknown) => {
        throw error instanceof LatticeMatmulError ? new LatticeMatmulError(`${path}: ${error.message}`, { cause: error }) : error;
      });
      const matrix = entry.matrix;
      const bytes = storedBytes(info);
      const out = info.cols;
      const inFeatures = info.rows;
      let weightError: number | null = null;
      let productNmse: number | null = null;
      if (!(matrix instanceof WeightOnlyQuantized) && matrix.kind === 'lattice' && matrix.mode === 'universal' && matrix.keptLength === matrix.length) {
        const d = universalCodec(matrix.scheme.lattice, matrix.scheme.q, matrix.scheme.beta).distortion;
        const rowShare = matrix.rows / matrix.length; // n/N: the rows get this share of the rotated error
        weightError = d * rowShare;
        productNmse = (2 * d + d * d) * rowShare;
      }
      // A centred matrix's figures are relative to its centred columns, not to W: say so beside the scheme
      // (with column means 3 times the spread, W's own relative error is 10 times smaller than printed).
      const centred = !(matrix instanceof WeightOnlyQuantized) && matrix.means !== null;
      rows.push({ name: info.name, kind: entry.kind, scheme: `${schemeLabel(matrix)}${centred ? ' (centred)' : ''}`, shape: [out, inFeatures], bitsPerEntry: storedBitsPerEntry(info), bytes, weightError, productNmse });
    }
    return { kind: 'container', formatVersion: container.formatVersion, rows };
  } finally {
    await container.close();
  }
}
