/*
 * Instructions per code byte of a GEMV's inner loop, counted on the SPIR-V that Dawn (Tint) emits
 * for the kernel — the same module that runs, robustness clamps and loop guards included. Dawn prints
 * the SPIR-V when its `dump_shaders` toggle is on (instance flag
 * `enable-dawn-features=dump_shaders,disable_symbol_renaming`), on the process's stdout from native
 * code, so the benchmark compiles the kernels in a child process and parses what it prints
 * (`--spirv-child` mode of bench/gpu.ts).
 *
 * Method (`analyzeSpirv`):
 * - The inner loop is the innermost loop (OpLoopMerge) whose own blocks — or functions they call —
 *   load from the kernel's code buffers (the packed weights: the WGSL variables named per kernel);
 *   when that loop has a constant trip count (loads unrolled ahead of the decode), the innermost
 *   loop around it with a runtime trip count, so one iteration covers the loads and their decode.
 * - One iteration's cost is the static count of its instructions: every block of the loop once
 *   (both sides of every branch whose condition is not known, so rarely taken paths such as escape
 *   handling count fully; a branch on a constant, a constant call argument or a uniform member whose
 *   value the caller gives — e.g. the lattice of a kernel that handles several — follows the taken
 *   side only), the
 *   bodies of called functions inlined, nested loops multiplied by their trip count when it is a
 *   constant (found from the comparison of the induction variable with a constant, through
 *   constant call arguments, its initial store and its increment; an unknown trip count counts once
 *   and is reported).
 * - Instructions are scalar-equivalent: an operation on a vecN counts N (NVIDIA's ISA is scalar per
 *   lane), a dot product of vecN counts N, a load or store counts 1 (a vec4 load is one 128-bit
 *   load). Not counted: labels, merges, unconditional branches, function-variable declarations and
 *   plain loads/stores of function variables (registers after mem2reg), OpCompositeExtract /
 *   OpCompositeConstruct / OpCopyObject / OpBitcast / OpVectorShuffle (register renaming), calls
 *   (their bodies are counted).
 * - Code bytes per iteration: the bytes of the loads from the code binding in one iteration, counted
 *   the same way (a vec4<u32> load is 16 bytes).
 * - Each counted instruction is also put in a class by the SM resource it is assumed to use on an
 *   NVIDIA Hopper GPU (`PipeClass`; bench/README.md, "An H200's budget per byte"): the ALU pipe
 *   (integer add, shifts, logic, compares, selects, min/max, bit-field extracts), the FMA pipe's
 *   integer side (integer multiplies, which become IMAD, and packed dot products, IDP4A), f32
 *   arithmetic (either FMA pipe; an integer add of an integer product goes with the product, as the
 *   driver fuses them into one IMAD), memory (loads, stores, atomics, barriers: the load/store path),
 *   address arithmetic (access chains: LEA on the ALU or IMAD on the FMA pipe, the driver's choice),
 *   branches, and the rest (conversions, other extended instructions).
 * SPIR-V instructions are not machine instructions (the driver hoists loop invariants such as
 * uniform loads, fuses and-or into one LOP3, removes some of Tint's clamps), so this is an estimate
 * of the ALU issue per byte, good for ranking kernels and for finding the expensive ones; a hand
 * count of the WGSL comments gives the same order.
 */

/** The result of analysing one kernel's SPIR-V. */
export interface SpirvLoopStats {
  /** Scalar-equivalent SPIR-V instructions per iteration of the inner loop. */
  readonly instructions: number;
  /** Bytes loaded from the code binding per iteration. */
  readonly codeBytes: number;
  /** instructions / codeBytes. */
  readonly perCodeByte: number;
  /** The instructions per code byte by the SM resource they are assumed to use (they sum to perCodeByte). */
  readonly perCodeByteByClass: Readonly<Record<PipeClass, number>>;
  /** Nested loops whose trip count was not a recognisable constant (each counted once). */
  readonly unknownTrips: number;
  /** SPIR-V instructions of the whole module (for scale). */
  readonly moduleInstructions: number;
}

/** The SM resource an instruction is assumed to use on an NVIDIA Hopper GPU (see the module comment). */
export type PipeClass = 'alu' | 'intMultiply' | 'float' | 'memory' | 'address' | 'branch' | 'other';

/** Every class, in the order reports list them. */
export const PIPE_CLASSES: readonly PipeClass[] = ['alu', 'intMultiply', 'float', 'memory', 'address', 'branch', 'other'];

const ALU_OPS = new Set([
  'OpIAdd', 'OpISub', 'OpSNegate', 'OpNot',
  'OpShiftLeftLogical', 'OpShiftRightLogical', 'OpShiftRightArithmetic',
  'OpBitwiseAnd', 'OpBitwiseOr', 'OpBitwiseXor',
  'OpBitFieldUExtract', 'OpBitFieldSExtract', 'OpBitFieldInsert', 'OpBitCount', 'OpBitReverse',
  'OpSelect', 'OpLogicalAnd', 'OpLogicalOr', 'OpLogicalNot', 'OpLogicalEqual', 'OpLogicalNotEqual', 'OpAny', 'OpAll',
  'OpIEqual', 'OpINotEqual',
  'OpULessThan', 'OpULessThanEqual', 'OpUGreaterThan', 'OpUGreaterThanEqual',
  'OpSLessThan', 'OpSLessThanEqual', 'OpSGreaterThan', 'OpSGreaterThanEqual',
  'OpFOrdEqual', 'OpFOrdNotEqual', 'OpFOrdLessThan', 'OpFOrdLessThanEqual', 'OpFOrdGreaterThan', 'OpFOrdGreaterThanEqual',
  'OpFUnordEqual', 'OpFUnordNotEqual', 'OpFUnordLessThan', 'OpFUnordLessThanEqual', 'OpFUnordGreaterThan', 'OpFUnordGreaterThanEqual',
  'OpIsNan', 'OpIsInf',
]);
const INT_MULTIPLY_OPS = new Set(['OpIMul', 'OpSDot', 'OpUDot', 'OpSUDot', 'OpSDotAccSat', 'OpUDotAccSat', 'OpSUDotAccSat', 'OpSDotKHR', 'OpUDotKHR', 'OpSUDotKHR']);
const FLOAT_OPS = new Set(['OpFAdd', 'OpFSub', 'OpFMul', 'OpFNegate', 'OpVectorTimesScalar', 'OpDot']);
const MEMORY_OPS = new Set(['OpLoad', 'OpStore', 'OpControlBarrier', 'OpMemoryBarrier']);
/** GLSL.std.450 extended instructions on the ALU pipe (min/max/clamp as IMNMX/FMNMX, bit scans) and on the FMA pipes. */
const ALU_EXT = new Set(['UMin', 'UMax', 'SMin', 'SMax', 'UClamp', 'SClamp', 'FMin', 'FMax', 'NMin', 'NMax', 'FClamp', 'NClamp', 'SAbs', 'FAbs', 'SSign', 'FindUMsb', 'FindSMsb', 'FindILsb']);
const FLOAT_EXT = new Set(['Fma', 'FMix']);

/** The class of a counted instruction (see the module comment). */
export function pipeClass(op: string, extInst?: string): PipeClass {
  if (op === 'OpExtInst') return extInst !== undefined && ALU_EXT.has(extInst) ? 'alu' : extInst !== undefined && FLOAT_EXT.has(extInst) ? 'float' : 'other';
  if (ALU_OPS.has(op)) return 'alu';
  if (INT_MULTIPLY_OPS.has(op)) return 'intMultiply';
  if (FLOAT_OPS.has(op)) return 'float';
  if (MEMORY_OPS.has(op) || op.startsWith('OpAtomic')) return 'memory';
  if (op === 'OpAccessChain' || op === 'OpInBoundsAccessChain' || op === 'OpPtrAccessChain') return 'address';
  if (op === 'OpBranchConditional' || op === 'OpSwitch') return 'branch';
  return 'other';
}

function noClasses(): Record<PipeClass, number> {
  return { alu: 0, intMultiply: 0, float: 0, memory: 0, address: 0, branch: 0, other: 0 };
}

interface Instruction {
  readonly result: string | null;
  readonly op: string;
  readonly args: readonly string[];
}

interface Block {
  readonly label: string;
  readonly instructions: Instruction[];
}

interface SpirvFunction {
  readonly name: string;
  readonly params: string[];
  readonly blocks: Block[];
}

const FREE_OPS = new Set([
  'OpLabel',
  'OpBranch',
  'OpLoopMerge',
  'OpSelectionMerge',
  'OpVariable',
  'OpFunctionParameter',
  'OpCompositeExtract',
  'OpCompositeConstruct',
  'OpCopyObject',
  'OpBitcast',
  'OpVectorShuffle',
  'OpFunctionCall',
  'OpReturn',
  'OpReturnValue',
  'OpUnreachable',
  'OpLine',
  'OpNoLine',
  'OpNop',
]);

function parseLine(line: string): Instruction | null {
  const text = line.trim();
  if (text === '' || text.startsWith(';')) return null;
  const tokens = text.split(/\s+/);
  if (tokens[1] === '=') return { result: tokens[0] as string, op: tokens[2] as string, args: tokens.slice(3) };
  return { result: null, op: tokens[0] as string, args: tokens.slice(1) };
}

class Module {
  readonly types = new Map<string, Instruction>();
  readonly constants = new Map<string, number>();
  readonly globals = new Map<string, string>(); // variable → storage class
  readonly bindings = new Map<string, number>(); // variable → binding
  readonly functions = new Map<string, SpirvFunction>();
  readonly defs = new Map<string, Instruction>(); // result id → defining instruction (functions too)
  instructionCount = 0;

  constructor(text: string) {
    let current: SpirvFunction | null = null;
    let block: Block | null = null;
    for (const line of text.split('\n')) {
      const ins = parseLine(line);
      if (ins === null) continue;
      this.instructionCount++;
      if (ins.result !== null) this.defs.set(ins.result, ins);
      if (ins.op === 'OpDecorate' && ins.args[1] === 'Binding') this.bindings.set(ins.args[0] as string, Number(ins.args[2]));
      if (current === null) {
        if (ins.op.startsWith('OpType')) this.types.set(ins.result as string, ins);
        else if (ins.op === 'OpConstant' && ins.result !== null) this.constants.set(ins.result, Number(ins.args[1]));
        else if (ins.op === 'OpVariable' && ins.result !== null) this.globals.set(ins.result, ins.args[1] as string);
        else if (ins.op === 'OpFunction' && ins.result !== null) {
          current = { name: ins.result, params: [], blocks: [] };
          this.functions.set(ins.result, current);
        }
        continue;
      }
      if (ins.op === 'OpFunctionEnd') {
        current = null;
        block = null;
      } else if (ins.op === 'OpFunctionParameter') {
        current.params.push(ins.result as string);
      } else if (ins.op === 'OpLabel') {
        block = { label: ins.result as string, instructions: [] };
        current.blocks.push(block);
      } else if (block !== null) {
        block.instructions.push(ins);
      }
    }
  }

  /** Components of a type (1 for scalars). */
  width(typeId: string | undefined): number {
    const type = typeId === undefined ? undefined : this.types.get(typeId);
    if (type?.op === 'OpTypeVector') return Number(type.args[1]);
    return 1;
  }

  /** Bytes of a value of the type (scalars and vectors). */
  bytes(typeId: string | undefined): number {
    const type = typeId === undefined ? undefined : this.types.get(typeId);
    if (type === undefined) return 0;
    if (type.op === 'OpTypeVector') return Number(type.args[1]) * this.bytes(type.args[0]);
    if (type.op === 'OpTypeInt' || type.op === 'OpTypeFloat') return Number(type.args[0]) / 8;
    return 0;
  }

  /** The variable a pointer was derived from (through access chains), or the id itself. */
  root(pointer: string): string {
    let id = pointer;
    for (let depth = 0; depth < 64; depth++) {
      const def = this.defs.get(id);
      if (def === undefined || (def.op !== 'OpAccessChain' && def.op !== 'OpInBoundsAccessChain' && def.op !== 'OpPtrAccessChain')) return id;
      id = def.args[1] as string;
    }
    return id;
  }

  isFunctionVariable(pointer: string): boolean {
    const def = this.defs.get(pointer);
    return def?.op === 'OpVariable' && def.args[1] === 'Function';
  }
}

interface Loop {
  readonly header: string;
  readonly merge: string;
  readonly continueTarget: string;
  readonly blocks: Set<string>;
}

function successors(block: Block): string[] {
  const last = block.instructions[block.instructions.length - 1];
  if (last === undefined) return [];
  if (last.op === 'OpBranch') return [last.args[0] as string];
  if (last.op === 'OpBranchConditional') return [last.args[1] as string, last.args[2] as string];
  if (last.op === 'OpSwitch') return last.args.slice(1).filter((_, i) => i % 2 === 0 || i === 0) as string[];
  return [];
}

function loopsOf(fn: SpirvFunction): Loop[] {
  const byLabel = new Map(fn.blocks.map((b) => [b.label, b]));
  const loops: Loop[] = [];
  for (const block of fn.blocks) {
    const merge = block.instructions.find((i) => i.op === 'OpLoopMerge');
    if (merge === undefined) continue;
    const mergeLabel = merge.args[0] as string;
    const blocks = new Set<string>([block.label]);
    const stack = successors(block);
    while (stack.length > 0) {
      const label = stack.pop() as string;
      if (label === mergeLabel || blocks.has(label)) continue;
      blocks.add(label);
      const next = byLabel.get(label);
      if (next) stack.push(...successors(next));
    }
    loops.push({ header: block.label, merge: mergeLabel, continueTarget: merge.args[1] as string, blocks });
  }
  return loops;
}

interface Cost {
  instructions: number;
  byClass: Record<PipeClass, number>;
  codeBytes: number;
  unknownTrips: number;
  loadsCode: boolean;
}

class Analyzer {
  private readonly loopCache = new Map<string, Loop[]>();

  constructor(
    private readonly module: Module,
    private readonly codeVariables: Set<string>,
    /** Known words of the uniform buffer (binding 0), by 4-byte index: branches on them are decided. */
    private readonly uniformWords: ReadonlyMap<number, number>,
  ) {}

  /** The value of an integer/boolean id when it is decidable: constants, bound parameters, known uniform words, and comparisons of those. */
  valueOf(id: string, params: Map<string, number>, depth = 0): number | undefined {
    const m = this.module;
    const constant = this.constantOf(id, params);
    if (constant !== undefined) return constant;
    const def = m.defs.get(id);
    if (def === undefined || depth > 16) return undefined;
    if (def.op === 'OpConstantTrue') return 1;
    if (def.op === 'OpConstantFalse') return 0;
    if (def.op === 'OpCompositeExtract') {
      const load = m.defs.get(def.args[1] as string);
      if (load?.op !== 'OpLoad') return undefined;
      const chain = m.defs.get(load.args[1] as string);
      if (chain?.op !== 'OpAccessChain' || m.globals.get(chain.args[1] as string) !== 'Uniform' || m.bindings.get(chain.args[1] as string) !== 0) return undefined;
      const indices = chain.args.slice(2).map((index) => m.constants.get(index));
      // Tint's std140 form: member 0 is an array of vec4<u32>; the vec4 index, then the component.
      if (indices.length !== 2 || indices[0] !== 0 || indices[1] === undefined) return undefined;
      return this.uniformWords.get(4 * indices[1] + Number(def.args[2]));
    }
    const a = def.args[1] === undefined ? undefined : this.valueOf(def.args[1], params, depth + 1);
    const b = def.args[2] === undefined ? undefined : this.valueOf(def.args[2], params, depth + 1);
    switch (def.op) {
      case 'OpLogicalNot':
        return a === undefined ? undefined : a === 0 ? 1 : 0;
      case 'OpLogicalAnd':
        return a === 0 || b === 0 ? 0 : a !== undefined && b !== undefined ? 1 : undefined;
      case 'OpLogicalOr':
        return a === 1 || b === 1 ? 1 : a !== undefined && b !== undefined ? 0 : undefined;
    }
    if (a === undefined || b === undefined) return undefined;
    switch (def.op) {
      case 'OpIEqual':
      case 'OpLogicalEqual':
        return a === b ? 1 : 0;
      case 'OpINotEqual':
      case 'OpLogicalNotEqual':
        return a !== b ? 1 : 0;
      case 'OpULessThan':
      case 'OpSLessThan':
        return a < b ? 1 : 0;
      case 'OpUGreaterThan':
      case 'OpSGreaterThan':
        return a > b ? 1 : 0;
      case 'OpULessThanEqual':
      case 'OpSLessThanEqual':
        return a <= b ? 1 : 0;
      case 'OpUGreaterThanEqual':
      case 'OpSGreaterThanEqual':
        return a >= b ? 1 : 0;
      default:
        return undefined;
    }
  }

  /** Blocks of `fn` reachable from `start` without entering `stop`, following only the taken side of decidable branches. */
  reachable(fn: SpirvFunction, start: string, stop: string | null, params: Map<string, number>): Set<string> {
    const byLabel = new Map(fn.blocks.map((b) => [b.label, b]));
    const seen = new Set<string>();
    const stack = [start];
    while (stack.length > 0) {
      const label = stack.pop() as string;
      if (label === stop || seen.has(label)) continue;
      seen.add(label);
      const block = byLabel.get(label);
      if (block === undefined) continue;
      const last = block.instructions[block.instructions.length - 1];
      if (last?.op === 'OpBranchConditional') {
        const decided = this.valueOf(last.args[0] as string, params);
        if (decided !== undefined) {
          stack.push((decided !== 0 ? last.args[1] : last.args[2]) as string);
          continue;
        }
      }
      stack.push(...successors(block));
    }
    return seen;
  }

  loops(fn: SpirvFunction): Loop[] {
    let loops = this.loopCache.get(fn.name);
    if (loops === undefined) {
      loops = loopsOf(fn);
      this.loopCache.set(fn.name, loops);
    }
    return loops;
  }

  /** Constant value of an id: an OpConstant or a parameter bound to a constant argument. */
  constantOf(id: string, params: Map<string, number>): number | undefined {
    return this.module.constants.get(id) ?? params.get(id);
  }

  instructionCost(ins: Instruction): number {
    const m = this.module;
    if (FREE_OPS.has(ins.op)) return 0;
    if ((ins.op === 'OpLoad' || ins.op === 'OpStore') && m.isFunctionVariable(ins.op === 'OpLoad' ? (ins.args[1] as string) : (ins.args[0] as string))) return 0;
    if (ins.op === 'OpLoad' || ins.op === 'OpStore' || ins.op === 'OpAccessChain' || ins.op === 'OpBranchConditional' || ins.op === 'OpAtomicIAdd' || ins.op === 'OpAtomicLoad') return 1;
    if (ins.op === 'OpDot') return m.width(m.defs.get(ins.args[1] as string)?.args[0]);
    if (ins.op === 'OpControlBarrier' || ins.op === 'OpMemoryBarrier') return 1;
    return ins.result === null ? 1 : m.width(ins.args[0]);
  }

  /**
   * The class of a counted instruction: `pipeClass`, except that an integer add or subtract of an
   * integer product (through bitcasts) goes with the product, since the driver fuses the two into one
   * IMAD on the FMA pipe.
   */
  classOf(ins: Instruction): PipeClass {
    const c = pipeClass(ins.op, ins.op === 'OpExtInst' ? ins.args[2] : undefined);
    if ((ins.op === 'OpIAdd' || ins.op === 'OpISub') && ins.args.slice(1, 3).some((id) => this.producer(id)?.op === 'OpIMul')) return 'intMultiply';
    return c;
  }

  /** The instruction that defines `id`, looking through bitcasts. */
  private producer(id: string): Instruction | undefined {
    let def = this.module.defs.get(id);
    for (let depth = 0; def?.op === 'OpBitcast' && depth < 8; depth++) def = this.module.defs.get(def.args[1] as string);
    return def;
  }

  /** Cost of the blocks `labels` of `fn` (nested loops excluded; they are added by the caller). */
  blocksCost(fn: SpirvFunction, labels: Set<string>, params: Map<string, number>, depth: number): Cost {
    const cost: Cost = { instructions: 0, byClass: noClasses(), codeBytes: 0, unknownTrips: 0, loadsCode: false };
    for (const block of fn.blocks) {
      if (!labels.has(block.label)) continue;
      for (const ins of block.instructions) {
        const count = this.instructionCost(ins);
        cost.instructions += count;
        if (count > 0) cost.byClass[this.classOf(ins)] += count;
        if (ins.op === 'OpLoad' && this.codeVariables.has(this.module.root(ins.args[1] as string))) {
          cost.codeBytes += this.module.bytes(ins.args[0]);
          cost.loadsCode = true;
        }
        if (ins.op === 'OpFunctionCall' && depth < 32) {
          const callee = this.module.functions.get(ins.args[1] as string);
          if (callee) {
            const bound = new Map<string, number>();
            callee.params.forEach((param, i) => {
              const value = this.constantOf(ins.args[2 + i] as string, params);
              if (value !== undefined) bound.set(param, value);
            });
            add(cost, this.functionCost(callee, bound, depth + 1));
          }
        }
      }
    }
    return cost;
  }

  functionCost(fn: SpirvFunction, params: Map<string, number>, depth: number): Cost {
    const entry = fn.blocks[0];
    if (entry === undefined) return { instructions: 0, byClass: noClasses(), codeBytes: 0, unknownTrips: 0, loadsCode: false };
    const live = this.reachable(fn, entry.label, null, params);
    const top = this.loops(fn).filter((loop) => live.has(loop.header) && !this.loops(fn).some((outer) => outer !== loop && outer.blocks.has(loop.header)));
    return this.regionCost(fn, live, top, params, depth);
  }

  /** Cost of one iteration of `loop` (its nested loops times their trip counts). */
  loopIterationCost(fn: SpirvFunction, loop: Loop, params: Map<string, number>, depth: number): Cost {
    const live = this.reachable(fn, loop.header, loop.merge, params);
    const inner = this.loops(fn).filter((other) => other !== loop && live.has(other.header));
    const direct = inner.filter((candidate) => !inner.some((outer) => outer !== candidate && outer.blocks.has(candidate.header)));
    return this.regionCost(fn, live, direct, params, depth);
  }

  private regionCost(fn: SpirvFunction, region: Set<string>, nested: Loop[], params: Map<string, number>, depth: number): Cost {
    const own = new Set(region);
    for (const loop of nested) for (const label of loop.blocks) own.delete(label);
    // A decided branch out of a nested loop's merge may have made blocks after it unreachable: keep the region's.
    const cost = this.blocksCost(fn, own, params, depth);
    for (const loop of nested) {
      const trip = this.tripCount(fn, loop, params);
      const body = this.loopIterationCost(fn, loop, params, depth);
      if (trip === undefined) cost.unknownTrips += 1;
      add(cost, body, trip ?? 1);
    }
    return cost;
  }

  /** Constant trip count of a `for (var i = c0; i < c1; i = i + c2)` (or `i = i << 1`) loop, if recognisable. */
  tripCount(fn: SpirvFunction, loop: Loop, params: Map<string, number>): number | undefined {
    const m = this.module;
    const inLoop = fn.blocks.filter((b) => loop.blocks.has(b.label));
    for (const block of inLoop) {
      for (const ins of block.instructions) {
        if (!['OpULessThan', 'OpSLessThan', 'OpULessThanEqual', 'OpSLessThanEqual'].includes(ins.op)) continue;
        const left = m.defs.get(ins.args[1] as string);
        const bound = this.constantOf(ins.args[2] as string, params);
        if (left?.op !== 'OpLoad' || bound === undefined) continue;
        const variable = left.args[1] as string;
        if (!m.isFunctionVariable(variable)) continue;
        let init: number | undefined;
        let step: { kind: 'add' | 'shift'; by: number } | undefined;
        for (const other of fn.blocks) {
          for (const store of other.instructions) {
            if (store.op !== 'OpStore' || store.args[0] !== variable) continue;
            const valueId = store.args[1] as string;
            if (!loop.blocks.has(other.label)) {
              init = this.constantOf(valueId, params);
            } else {
              const def = m.defs.get(valueId);
              const by = def === undefined ? undefined : this.constantOf(def.args[2] as string, params) ?? this.constantOf(def.args[1] as string, params);
              if (def?.op === 'OpIAdd' && by !== undefined) step = { kind: 'add', by };
              else if (def?.op === 'OpShiftLeftLogical' && by !== undefined) step = { kind: 'shift', by };
            }
          }
        }
        if (init === undefined || step === undefined) return undefined;
        const limit = ins.op.endsWith('Equal') ? bound + 1 : bound;
        if (step.kind === 'add') return step.by > 0 ? Math.max(0, Math.ceil((limit - init) / step.by)) : undefined;
        if (init <= 0 || step.by <= 0) return undefined;
        let trips = 0;
        for (let value = init; value < limit && trips < 64; value = value * 2 ** step.by) trips++;
        return trips;
      }
    }
    return undefined;
  }
}

function add(into: Cost, cost: Cost, times = 1): void {
  into.instructions += times * cost.instructions;
  for (const c of PIPE_CLASSES) into.byClass[c] += times * cost.byClass[c];
  into.codeBytes += times * cost.codeBytes;
  into.unknownTrips += cost.unknownTrips;
  into.loadsCode ||= cost.loadsCode;
}

/**
 * Analyses a SPIR-V disassembly (Dawn's dump): the inner loop that loads from the storage buffers
 * declared in WGSL as `codeVariables` (the packed weights, e.g. codes and escape nibbles; see the
 * module comment).
 *
 * @example
 * analyzeSpirv(spirvText, ['codes'], new Map([[8, 1]])); // uniform word 8 is 1: { instructions, codeBytes, perCodeByte, … }
 */
export function analyzeSpirv(text: string, codeVariableNames: readonly string[], uniformWords: ReadonlyMap<number, number> = new Map()): SpirvLoopStats {
  const module = new Module(text);
  // Dawn renumbers bindings in the SPIR-V, so the code buffers are found by their WGSL names, which
  // Tint keeps in the block type's name (`%_ptr_StorageBuffer_codes_block…`) with disable_symbol_renaming.
  const patterns = codeVariableNames.map((name) => new RegExp(`^%_ptr_StorageBuffer_${name}_block(_|$)`));
  const codeVariables = new Set([...module.globals].filter(([id]) => patterns.some((pattern) => pattern.test(module.defs.get(id)?.args[0] ?? ''))).map(([id]) => id));
  if (codeVariables.size === 0) throw new Error(`no storage variable named ${codeVariableNames.map((name) => `'${name}'`).join(' or ')} in the SPIR-V`);
  const analyzer = new Analyzer(module, codeVariables, uniformWords);
  // The innermost loop anywhere whose own blocks (calls included, nested loops excluded) load codes;
  // when its trip count is a constant (a kernel that loads a few words, then decodes them in another
  // constant loop), the innermost loop around it with a runtime trip count: the loop that streams.
  let best: { cost: Cost; size: number } | null = null;
  for (const fn of module.functions.values()) {
    const loops = analyzer.loops(fn);
    for (const loop of loops) {
      const nested = loops.filter((other) => other !== loop && loop.blocks.has(other.header));
      const own = new Set(loop.blocks);
      for (const inner of nested) for (const label of inner.blocks) own.delete(label);
      const direct = analyzer.blocksCost(fn, own, new Map(), 0);
      if (!direct.loadsCode) continue;
      let streaming = loop;
      while (analyzer.tripCount(fn, streaming, new Map()) !== undefined) {
        const around = loops.filter((other) => other !== streaming && other.blocks.has(streaming.header)).sort((a, b) => a.blocks.size - b.blocks.size)[0];
        if (around === undefined) break;
        streaming = around;
      }
      if (best === null || streaming.blocks.size < best.size) best = { cost: analyzer.loopIterationCost(fn, streaming, new Map(), 0), size: streaming.blocks.size };
    }
  }
  if (best === null) throw new Error('no loop loads from the code binding');
  const { instructions, byClass, codeBytes, unknownTrips } = best.cost;
  const perByte = (n: number): number => (codeBytes > 0 ? n / codeBytes : Number.NaN);
  const perCodeByteByClass = noClasses();
  for (const c of PIPE_CLASSES) perCodeByteByClass[c] = perByte(byClass[c]);
  return { instructions, codeBytes, perCodeByte: perByte(instructions), perCodeByteByClass, unknownTrips, moduleInstructions: module.instructionCount };
}

/** The SPIR-V dumps in a child's output, by the `// spirv-stats: ID` marker that starts each kernel's WGSL. */
export function splitDumps(output: string): Map<string, string> {
  const dumps = new Map<string, string>();
  let pendingId: string | null = null;
  const parts = output.split(/^info:\s*$/m);
  for (const part of parts) {
    const marker = /\/\/ spirv-stats: (\S+)/.exec(part);
    if (part.includes('// Dumped WGSL:') && marker) pendingId = marker[1] as string;
    else if (part.includes('Dumped SPIRV disassembly') && pendingId !== null) {
      if (!dumps.has(pendingId)) dumps.set(pendingId, part);
      pendingId = null;
    }
  }
  return dumps;
}

/**
 * Word indices of a uniform struct's members, read from its WGSL declaration (as
 * src/gpu/uniformLayout.ts writes it: scalars of 4 bytes, `array<vec4<T>, N>` 16-byte aligned), and
 * the given values placed at them: the `uniformWords` of `analyzeSpirv`. Names the struct lacks are
 * ignored (a kernel whose uniforms changed loses the assumption, not the count).
 *
 * @example
 * uniformWords(latticeGemvShaderSource(1), 'GemvParams', { lattice: 0, use_table: 1 });
 */
export function uniformWords(wgsl: string, structName: string, values: Readonly<Record<string, number>>): Map<number, number> {
  const words = new Map<number, number>();
  const body = new RegExp(`struct ${structName} \\{([^}]*)\\}`).exec(wgsl)?.[1];
  if (body === undefined) return words;
  let word = 0;
  for (const line of body.split('\n')) {
    const member = /^\s*(\w+)\s*:\s*(.+?),?\s*$/.exec(line);
    if (member === null) continue;
    const [, name, type] = member as unknown as [string, string, string];
    const array = /array<vec4<\w+>,\s*(\d+)>/.exec(type);
    if (array !== null) {
      word = Math.ceil(word / 4) * 4;
      word += 4 * Number(array[1]);
      continue;
    }
    const value = values[name];
    if (value !== undefined) words.set(word, value >>> 0);
    word += 1;
  }
  return words;
}
