import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Instructions per code byte of a GEMV's inner loop (and per multiply-accumulate of a product's slice
 * loop: bench/gpu/instructionStats.ts, productSubjects) in real GPU machine code: the SPIR-V that Dawn
 * emits for the kernel (the module bench/gpu/spirv.ts counts) compiled by Mesa's RADV driver and its
 * ACO compiler for an AMD RDNA3 GPU (navi31, the Radeon RX 7900 series), on RADV's null device
 * (RADV_FORCE_FAMILY: no AMD GPU needed, shaders only; RADV_DEBUG=shaders prints the code). Unlike the
 * static SPIR-V count, this is what a GPU's compiler makes of the module: loop invariants hoisted,
 * constant loops unrolled, operations fused (v_lshl_add_u32, v_add3_u32, v_bfe_u32, v_perm_b32),
 * Tint's clamps kept or dropped, branches turned into exec-mask code. It is AMD's ISA, not NVIDIA's
 * (an H200 remains the target of bench/README.md's budget): a second, independent estimate of the
 * instruction cost, and the place to see how a compiler schedules the loads.
 *
 * Tools (all from Debian packages, installed by scripts/ensure-system.sh): `spirv-as` (spirv-tools;
 * Dawn prints SPIR-V as text), a C compiler and the Vulkan headers (libvulkan-dev) for the helper
 * bench/isa/compile_pipeline.c, and RADV (mesa-vulkan-drivers). Where one is missing the counts are
 * skipped with the reason.
 *
 * Method (`analyzeRdnaIsa`):
 * - The inner loop: loops are the ranges closed by a backward branch; the loop taken is the innermost
 *   one that contains a vector-memory load from a code binding (the packed weights; bindings are
 *   told from the buffer descriptors, which RADV loads from the descriptor set 16 bytes per binding in
 *   binding order), or with `outermost` the outermost such loop (a product's slice loop, whose staging
 *   loop may stay a loop of its own).
 * - One iteration is every instruction of the loop once (both sides of a branch: rare paths count
 *   fully, as in the SPIR-V count), nested loops times their trip count when the loop counter's
 *   pattern shows it (`s_mov_b32 sK, a` before the loop, `s_add_u32 sK, sK, b` and `s_cmp_* sK, c`
 *   in it), else once (reported as unknownTrips) or as many times as the caller's `assumedTrips`
 *   says (a product's slice depth, a run-time bound). Scheduling words (s_waitcnt, s_delay_alu,
 *   s_nop, s_clause, …) are not instructions of the work and are not counted.
 * - Code bytes: the bytes of the loop's loads from the code bindings (buffer_load_b128: 16), counted
 *   the same way.
 * - Classes: `valu` (vector ALU, packed dot products included), `valuQuarterRate` (32-bit integer
 *   multiplies and transcendentals, which RDNA issues at a quarter of the rate), `salu` (the scalar
 *   unit: uniform work and exec-mask bookkeeping), `vmem`, `lds`, `smem`, `branch`.
 * - loadsInFlight: the most vector-memory loads outstanding at once in one pass over the loop in
 *   program order (each load adds one, `s_waitcnt vmcnt(n)` leaves at most n): how many loads a wave
 *   keeps in flight, which is what hides the memory's latency when few waves run.
 */

/** The instruction classes of the RDNA ISA counted per code byte. */
export const ISA_CLASSES = ['valu', 'valuQuarterRate', 'salu', 'vmem', 'lds', 'smem', 'branch'] as const;
export type IsaClass = (typeof ISA_CLASSES)[number];

/** One kernel's inner loop in RDNA3 machine code. */
export interface IsaLoopStats {
  /** Instructions per iteration of the inner loop (scheduling words excluded). */
  readonly instructions: number;
  /** Bytes loaded from the code bindings per iteration. */
  readonly codeBytes: number;
  /** instructions / codeBytes. */
  readonly perCodeByte: number;
  readonly perCodeByteByClass: Readonly<Record<IsaClass, number>>;
  /** Most vector-memory loads outstanding at once in the loop (program order). */
  readonly loadsInFlight: number;
  /** Nested loops whose trip count was not recognised (each counted once, or as `assumedTrips` says). */
  readonly unknownTrips: number;
  /** Instructions per iteration by opcode (scheduling words excluded), e.g. `v_dot4_i32_iu8`. */
  readonly opcodes: Readonly<Record<string, number>>;
  /** The compiler: device and driver as the Vulkan driver names them. */
  readonly compiler: string;
}

/** Which loop `analyzeRdnaIsa` counts, and the trips of nested loops whose counts are run-time values. */
export interface IsaLoopOptions {
  /**
   * Count the outermost loop that loads from the code bindings instead of the innermost: a product's
   * slice loop (staging, barrier and compute), where its staging loop may stay a loop of its own.
   */
  readonly outermost?: boolean;
  /**
   * Trip counts of the nested loops whose counter the code does not show (run-time bounds such as a
   * product's slice depth), in program order; there must be exactly one per such loop. Without it,
   * each is counted once and reported in `unknownTrips`.
   */
  readonly assumedTrips?: readonly number[];
}

interface Instruction {
  readonly op: string;
  readonly args: string;
}
type Item = { readonly label: string } | Instruction;

const HINT = /^s_(waitcnt|delay_alu|nop|clause|set_inst_prefetch_distance|inst_prefetch|sleep|ttracedata)/;
const QUARTER_RATE = /^v_(mul_lo_u32|mul_hi_u32|mul_hi_i32|mad_u64_u32|mad_i64_i32|mul_lo_i32|rcp|rsq|sqrt|log|exp|sin|cos)/;

function classOf(op: string): IsaClass | null {
  if (HINT.test(op)) return null;
  if (op.startsWith('ds_')) return 'lds';
  if (/^(buffer|global|flat|scratch)_/.test(op)) return 'vmem';
  if (/^s_(load|buffer_load)/.test(op)) return 'smem';
  if (/^s_(branch|cbranch|setpc|endpgm)/.test(op)) return 'branch';
  if (op.startsWith('s_')) return 'salu';
  if (QUARTER_RATE.test(op)) return 'valuQuarterRate';
  if (op.startsWith('v_')) return 'valu';
  return null;
}

/** Bytes of a vector-memory load (0 for anything else). */
function loadBytes(op: string): number {
  const m = /^(?:buffer|global|flat)_load_(?:d16_(?:hi_)?)?(b|u|i)(\d+)$/.exec(op);
  if (!m) return 0;
  return Number(m[2]) / 8;
}

/** The instructions and labels of the final disassembly (after RADV's `disasm:` line). */
function parseDisassembly(text: string): Item[] {
  const start = text.lastIndexOf('disasm:');
  if (start < 0) throw new Error('no disassembly in the driver output (RADV_DEBUG=shaders printed none)');
  const items: Item[] = [];
  for (const line of text.slice(start).split('\n').slice(1)) {
    const label = /^(BB\d+):\s*$/.exec(line);
    if (label) {
      items.push({ label: label[1] as string });
      continue;
    }
    const m = /^\s+([a-z_0-9]+)(.*?)\s*;\s*[0-9a-f]{8}/.exec(line);
    if (m) {
      items.push({ op: m[1] as string, args: (m[2] ?? '').trim() });
      if (m[1] === 's_endpgm') break;
    }
  }
  return items;
}

interface Loop {
  readonly header: number;
  readonly end: number;
}

/** Trip count of a loop whose uniform counter is set before it and stepped and compared in it. */
function tripCount(items: readonly Item[], loop: Loop): number | null {
  const last = items[loop.end];
  if (last === undefined || !('op' in last)) return null;
  let compare: { reg: string; limit: number; kind: string } | null = null;
  for (let i = loop.end - 1; i > loop.header && i >= loop.end - 24; i--) {
    const it = items[i];
    if (it === undefined || !('op' in it)) continue;
    const m = /^s_cmpk?_(ge|gt|lt|le|lg|eq)_[ui]32$/.exec(it.op);
    if (m) {
      const a = /^(s\d+),\s*(-?(?:0x[0-9a-f]+|\d+))$/.exec(it.args);
      if (a) compare = { reg: a[1] as string, limit: Number(a[2]), kind: m[1] as string };
      break;
    }
  }
  if (compare === null) return null;
  let step: number | null = null;
  for (let i = loop.header; i <= loop.end; i++) {
    const it = items[i];
    if (it === undefined || !('op' in it)) continue;
    const m = /^s_add_[ui]32$/.exec(it.op) ? new RegExp(`^${compare.reg},\\s*${compare.reg},\\s*(\\d+)$`).exec(it.args) : null;
    if (m) step = Number(m[1]);
  }
  let initial: number | null = null;
  for (let i = loop.header - 1; i >= 0 && i >= loop.header - 40; i--) {
    const it = items[i];
    if (it === undefined || !('op' in it)) continue;
    const m = it.op === 's_mov_b32' ? new RegExp(`^${compare.reg},\\s*(\\d+)$`).exec(it.args) : null;
    if (m) {
      initial = Number(m[1]);
      break;
    }
  }
  if (step === null || step <= 0 || initial === null) return null;
  // The back edge is taken while the comparison says "not done" (scc0 after ge/gt/eq, scc1 after lt/le/lg).
  const exitOnTrue = compare.kind === 'ge' || compare.kind === 'gt' || compare.kind === 'eq';
  const expected = exitOnTrue ? 's_cbranch_scc0' : 's_cbranch_scc1';
  if (last.op !== expected) return null;
  const span = compare.kind === 'gt' || compare.kind === 'le' ? compare.limit + 1 - initial : compare.limit - initial;
  const trips = Math.ceil(span / step);
  return trips >= 1 ? trips : null;
}

/**
 * Counts the inner loop of a kernel's RDNA disassembly (RADV_DEBUG=shaders output).
 *
 * @param text the driver's output for one compute shader
 * @param bindings the module's set-0 binding numbers (RADV lays their descriptors out in this order, 16 bytes each)
 * @param codeBindings the bindings that hold the packed weights
 * @param compiler what compiled it (device and driver), copied into the result
 * @example
 * analyzeRdnaIsa(output, [0, 1, 2, 3], [1], 'AMD RADV NAVI31, Mesa 25.0.7');
 */
export function analyzeRdnaIsa(text: string, bindings: readonly number[], codeBindings: readonly number[], compiler: string, options: IsaLoopOptions = {}): IsaLoopStats {
  const items = parseDisassembly(text);
  const labels = new Map<string, number>();
  items.forEach((it, i) => {
    if ('label' in it) labels.set(it.label, i);
  });
  const sorted = [...bindings].sort((a, b) => a - b);
  // Which binding each vector load reads: the descriptor's SGPRs are last written by an s_load of the
  // descriptor set (a b128 per descriptor; b256 and b512 load 2 and 4 in a row).
  const descriptorOf = new Map<number, number>(); // first SGPR → binding
  const codeLoad: boolean[] = items.map(() => false);
  items.forEach((it, i) => {
    if (!('op' in it)) return;
    const load = /^s_load_b(128|256|512)$/.exec(it.op);
    if (load) {
      const a = /^s\[(\d+):\d+\],\s*s\[\d+:\d+\],\s*(0x[0-9a-f]+|\d+)$/.exec(it.args);
      if (a) {
        const first = Number(a[1]);
        const offset = Number(a[2]);
        for (let d = 0; d < Number(load[1]) / 128; d++) {
          const binding = offset % 16 === 0 ? sorted[offset / 16 + d] : undefined;
          if (binding === undefined) descriptorOf.delete(first + 4 * d);
          else descriptorOf.set(first + 4 * d, binding);
        }
      }
      return;
    }
    if (loadBytes(it.op) > 0) {
      const d = /s\[(\d+):\d+\]/.exec(it.args);
      const binding = d ? descriptorOf.get(Number(d[1])) : undefined;
      codeLoad[i] = binding !== undefined && codeBindings.includes(binding);
    }
  });
  const loops: Loop[] = [];
  items.forEach((it, i) => {
    if (!('op' in it) || !/^s_(c)?branch/.test(it.op)) return;
    const target = labels.get(it.args.trim());
    if (target !== undefined && target < i) loops.push({ header: target, end: i });
  });
  const inside = (inner: Loop, outer: Loop): boolean => inner.header >= outer.header && inner.end <= outer.end && inner !== outer;
  const hasCodeLoad = (loop: Loop): boolean => codeLoad.slice(loop.header, loop.end + 1).some(Boolean);
  const candidates = loops.filter(hasCodeLoad);
  // The innermost loop that loads codes (no other such loop inside it), or the outermost (inside none).
  const counted = candidates.find((l) => !candidates.some((m) => (options.outermost === true ? inside(l, m) : inside(m, l))));
  if (counted === undefined) throw new Error('no loop loads from the code bindings');

  let unknownTrips = 0;
  const assumed = options.assumedTrips;
  const counts = Object.fromEntries(ISA_CLASSES.map((c) => [c, 0])) as Record<IsaClass, number>;
  let codeBytes = 0;
  const opcodes: Record<string, number> = {};
  const flat: Instruction[] = []; // the loop's instructions once each, in program order
  // Adds the instructions of `loop` outside its nested loops, and each directly nested loop × its trips.
  const add = (loop: Loop, weight: number): void => {
    const nested = loops.filter((m) => inside(m, loop) && !loops.some((o) => inside(m, o) && inside(o, loop)));
    for (let i = loop.header; i <= loop.end; i++) {
      const n = nested.find((m) => m.header === i);
      if (n !== undefined) {
        let trips = tripCount(items, n);
        if (trips === null) {
          // The caller's count for the unknown loops, in program order (checked against their number below).
          trips = assumed?.[unknownTrips] ?? null;
          unknownTrips++;
        }
        add(n, weight * (trips ?? 1));
        i = n.end;
        continue;
      }
      const it = items[i];
      if (it === undefined || !('op' in it)) continue;
      flat.push(it);
      const c = classOf(it.op);
      if (c !== null) {
        counts[c] += weight;
        opcodes[it.op] = (opcodes[it.op] ?? 0) + weight;
      }
      if (codeLoad[i]) codeBytes += weight * loadBytes(it.op);
    }
  };
  add(counted, 1);
  let outstanding = 0;
  let loadsInFlight = 0;
  for (const it of flat) {
    if (loadBytes(it.op) > 0) loadsInFlight = Math.max(loadsInFlight, ++outstanding);
    const wait = /vmcnt\((\d+)\)/.exec(it.args);
    if (it.op.startsWith('s_waitcnt') && wait) outstanding = Math.min(outstanding, Number(wait[1]));
  }
  const instructions = ISA_CLASSES.reduce((sum, c) => sum + counts[c], 0);
  if (codeBytes === 0) throw new Error('the inner loop loads no code bytes');
  if (assumed !== undefined && assumed.length !== unknownTrips) {
    throw new Error(`the loop has ${unknownTrips} nested loop(s) of unknown trip count, but ${assumed.length} trip count(s) were assumed: the compiler's loop structure is not the one expected`);
  }
  return {
    instructions,
    codeBytes,
    perCodeByte: instructions / codeBytes,
    perCodeByteByClass: Object.fromEntries(ISA_CLASSES.map((c) => [c, counts[c] / codeBytes])) as Record<IsaClass, number>,
    loadsInFlight,
    unknownTrips,
    opcodes,
    compiler,
  };
}

/** A module's set-0 bindings from its SPIR-V text: number, kind, and the WGSL variable's name. */
export function spirvBindings(spirv: string): { readonly binding: number; readonly uniform: boolean; readonly name: string }[] {
  const variables = new Map<string, { uniform: boolean; name: string }>();
  for (const m of spirv.matchAll(/(%\S+) = OpVariable %_ptr_(Uniform|StorageBuffer)_(\w+?)_block\w* (?:Uniform|StorageBuffer)\b/g)) {
    variables.set(m[1] as string, { uniform: m[2] === 'Uniform', name: m[3] as string });
  }
  const out: { binding: number; uniform: boolean; name: string }[] = [];
  for (const m of spirv.matchAll(/OpDecorate (%\S+) Binding (\d+)/g)) {
    const v = variables.get(m[1] as string);
    if (v !== undefined) out.push({ binding: Number(m[2]), ...v });
  }
  return out.sort((a, b) => a.binding - b.binding);
}

/** What compiles SPIR-V for RDNA3 here, or why nothing can. */
export type RdnaTools = { readonly ok: true; readonly helper: string; readonly icd: string } | { readonly ok: false; readonly reason: string };

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/etc/vulkan/icd.d'];
const HELPER_SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', 'isa', 'compile_pipeline.c');

function onPath(command: string, args: readonly string[]): boolean {
  const r = spawnSync(command, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

/**
 * Finds `spirv-as`, RADV's ICD and a C compiler, and builds the helper (cached in the system's
 * temporary directory by the hash of its source).
 */
export function rdnaTools(): RdnaTools {
  if (!onPath('spirv-as', ['--version'])) return { ok: false, reason: 'no spirv-as (Debian package spirv-tools)' };
  const icd = ICD_DIRS.map((d) => join(d, 'radeon_icd.x86_64.json')).concat(ICD_DIRS.map((d) => join(d, 'radeon_icd.json'))).find((p) => existsSync(p));
  if (icd === undefined) return { ok: false, reason: "no RADV Vulkan driver (Debian package mesa-vulkan-drivers: radeon_icd.json)" };
  if (!existsSync(HELPER_SOURCE)) return { ok: false, reason: `the helper's source ${HELPER_SOURCE} is not here (a bundled benchmark: run it from the repository)` };
  const source = readFileSync(HELPER_SOURCE);
  const dir = join(tmpdir(), `lattice-matmul-isa-${createHash('sha256').update(source).digest('hex').slice(0, 16)}`);
  const helper = join(dir, 'compile_pipeline');
  if (!existsSync(helper)) {
    mkdirSync(dir, { recursive: true });
    const failed = buildCompilePipeline(helper);
    if (failed !== null) return { ok: false, reason: failed };
  }
  return { ok: true, helper, icd };
}

/**
 * Builds the helper bench/isa/compile_pipeline.c into `path` with the system's C compiler; null when
 * built, else why not.
 */
export function buildCompilePipeline(path: string): string | null {
  const cc = spawnSync('cc', ['-O1', '-o', path, HELPER_SOURCE, '-lvulkan'], { encoding: 'utf8' });
  if (cc.error === undefined && cc.status === 0) return null;
  return `cannot build bench/isa/compile_pipeline.c (a C compiler and the Vulkan headers, Debian packages gcc and libvulkan-dev): ${(cc.stderr ?? String(cc.error)).split('\n')[0]}`;
}

/** The driver's output for one module: its RDNA3 disassembly, the device and driver named, and its pipeline statistics. */
export interface RdnaCompilation {
  readonly output: string;
  readonly compiler: string;
  /** RADV's statistics of the pipeline (VGPRs, SGPRs, LDS size, Subgroups per SIMD, …): helperStatistics. */
  readonly statistics: Readonly<Record<string, number>>;
}

/**
 * Compiles Dawn's SPIR-V text for RDNA3 (navi31) on RADV's null device.
 *
 * @example
 * const tools = rdnaTools();
 * if (tools.ok) analyzeRdnaIsa(compileRdnaIsa(spirvText, tools, 'dawn_entry_point').output, …);
 */
export function compileRdnaIsa(spirv: string, tools: Extract<RdnaTools, { ok: true }>, entryPoint: string): RdnaCompilation {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-matmul-isa-'));
  try {
    const binary = join(dir, 'module.spv');
    assembleSpirv(spirv, binary);
    const run = spawnSync(tools.helper, [binary, helperBindings(spirv), entryPoint], {
      encoding: 'utf8',
      maxBuffer: 256 * 2 ** 20,
      env: {
        ...process.env,
        VK_ICD_FILENAMES: tools.icd,
        VK_DRIVER_FILES: tools.icd,
        RADV_FORCE_FAMILY: 'navi31',
        RADV_DEBUG: 'shaders',
        MESA_SHADER_CACHE_DISABLE: 'true',
      },
    });
    if (run.error !== undefined || run.status !== 0 || !run.stdout.includes('compiled')) {
      throw new Error(`RADV did not compile the module: ${(run.stderr ?? String(run.error)).trim().split('\n').slice(-1)[0]}`);
    }
    const device = /^device: (.*)$/m.exec(run.stdout)?.[1] ?? 'unknown device';
    const driver = /^driver: (.*)$/m.exec(run.stdout)?.[1] ?? 'unknown driver';
    return { output: run.stderr, compiler: `${device}, ${driver}`, statistics: helperStatistics(run.stdout) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Assembles Dawn's SPIR-V text (its `dump_shaders` output for one module) into a binary module at
 * `path` with `spirv-as`.
 */
export function assembleSpirv(spirv: string, path: string): void {
  // Dawn's dump starts with a comment line of its own; the module starts at "; SPIR-V".
  const start = spirv.indexOf('; SPIR-V');
  const module = start >= 0 ? spirv.slice(start) : spirv;
  const asm = `${path}.spvasm`;
  // Debian bookworm's spirv-as (2023.1) predates SPV_KHR_maximal_reconvergence, which Tint declares;
  // it orders the execution of subgroup operations, not their code, so the module is compiled without it.
  writeFileSync(asm, module.split('\n').filter((line) => !/MaximallyReconvergesKHR|SPV_KHR_maximal_reconvergence/.test(line)).join('\n'));
  try {
    const as = spawnSync('spirv-as', ['--target-env', 'vulkan1.2', asm, '-o', path], { encoding: 'utf8' });
    if (as.error !== undefined || as.status !== 0) throw new Error(`spirv-as failed: ${(as.stderr ?? String(as.error)).split('\n')[0]}`);
  } finally {
    rmSync(asm, { force: true });
  }
}

/** The helper's BINDINGS argument for a module: its set-0 bindings as "0:U,1:S,…". */
export function helperBindings(spirv: string): string {
  return spirvBindings(spirv).map((b) => `${b.binding}:${b.uniform ? 'U' : 'S'}`).join(',');
}

/** The driver's pipeline statistics the helper printed ("statistic: NAME = VALUE" lines), by name. */
export function helperStatistics(stdout: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^statistic: (.+?) = (-?[0-9.]+(?:e[-+]?[0-9]+)?)$/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

/**
 * Compiles one kernel's SPIR-V for RDNA3 and counts its inner loop, the code bindings told by their
 * WGSL names (what the benchmark's report and its test both do).
 *
 * @example
 * const tools = rdnaTools();
 * if (tools.ok) rdnaLoopStats(compileRdnaIsa(spirvText, tools, 'dawn_entry_point'), spirvText, ['codes']);
 */
export function rdnaLoopStats(compilation: RdnaCompilation, spirv: string, codeVariables: readonly string[], options: IsaLoopOptions = {}): IsaLoopStats {
  const bindings = spirvBindings(spirv);
  const codeBindings = bindings.filter((b) => codeVariables.includes(b.name)).map((b) => b.binding);
  return analyzeRdnaIsa(compilation.output, bindings.map((b) => b.binding), codeBindings, compilation.compiler, options);
}
