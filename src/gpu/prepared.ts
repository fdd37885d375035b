import { check, describeValue, checkLabel, LatticeMatmulError } from '../errors.js';
import { throwIfDeviceLost } from './errorScopes.js';
import { GpuScratch, sharingScratch } from './scratch.js';

/*
 * Prepared commands: record what a `dispatch…` function does once — it creates its uniform and scratch
 * buffers and its bind groups then — and replay the same commands into any command encoder later,
 * creating nothing. A decode step of an LLM records hundreds of GEMVs per token into one encoder; with
 * prepared commands that costs a few `setPipeline` / `setBindGroup` / `dispatchWorkgroups` calls each,
 * in one compute pass per run of consecutive passes (`mergePasses`), or in the caller's own compute
 * pass: opening and closing a pass is the largest host cost of a replay (Dawn in Node, measured on
 * this project's CI machine: ≈ 4.3 µs per empty pass against ≈ 2 µs for a setPipeline, setBindGroup and
 * dispatchWorkgroups), so an app that records a decode step's layers into one pass pays about half.
 *
 * The capture encoder implements the subset of GPUCommandEncoder and GPUComputePassEncoder the kernels
 * use (compute passes, clearBuffer, copyBufferToBuffer); any other call is refused, so a kernel that
 * grows a new command cannot be replayed wrongly.
 */

type Command =
  | { readonly kind: 'pass'; readonly label: string | undefined; readonly steps: readonly PassStep[] }
  | { readonly kind: 'clear'; readonly buffer: GPUBuffer; readonly offset: number | undefined; readonly size: number | undefined }
  | { readonly kind: 'copy'; readonly source: GPUBuffer; readonly sourceOffset: number; readonly destination: GPUBuffer; readonly destinationOffset: number; readonly size: number };

type PassStep =
  | { readonly kind: 'pipeline'; readonly pipeline: GPUComputePipeline }
  | { readonly kind: 'bind'; readonly index: number; readonly group: GPUBindGroup | null }
  | { readonly kind: 'dispatch'; readonly x: number; readonly y: number; readonly z: number };

/**
 * Where prepared commands are replayed: a command encoder (outside a pass), or an open compute pass of
 * the caller's, when the commands are only dispatches (`PreparedCommands.fitsInPass`).
 */
export type CommandTarget = GPUCommandEncoder | GPUComputePassEncoder;

/** Whether `target` is a command encoder (it can begin passes) rather than a compute pass. */
export function isCommandEncoder(target: CommandTarget): target is GPUCommandEncoder {
  return typeof (target as Partial<GPUCommandEncoder>).beginComputePass === 'function';
}

/**
 * A recorded list of commands and the buffers it owns; `record` replays it, `destroy` frees it. Made by
 * {@link prepareCommands}.
 *
 * @hideconstructor
 */
export class PreparedCommands {
  private destroyed = false;
  /** Whether the commands are compute dispatches only, which a caller's open compute pass can take. */
  readonly fitsInPass: boolean;

  constructor(
    readonly label: string,
    private readonly commands: readonly Command[],
    private readonly scratch: GpuScratch,
  ) {
    this.fitsInPass = commands.every((command) => command.kind === 'pass');
  }

  /**
   * Replays the commands at the end of `target`: a command encoder (not inside a pass), or an open
   * compute pass when `fitsInPass` (its steps then run in that pass, after what it recorded before; the
   * pass's pipeline and bind groups are left as the last dispatch set them). Creates no GPU objects but
   * the encoder's passes.
   */
  record(target: CommandTarget): void {
    check(!this.destroyed, () => `${this.label}: these prepared commands were destroyed`);
    check(
      typeof target === 'object' && target !== null && (isCommandEncoder(target) || typeof (target as Partial<GPUComputePassEncoder>).dispatchWorkgroups === 'function'),
      () => `${this.label}: record needs a GPUCommandEncoder or an open GPUComputePassEncoder, got ${describeValue(target)}`,
    );
    // A lost device records nothing and reports nothing: the outputs would silently keep old values.
    throwIfDeviceLost(this.scratch.device, `${this.label}: record`);
    if (!isCommandEncoder(target)) {
      check(this.fitsInPass, () => `${this.label}: these commands include a buffer ${this.commands.find((command) => command.kind !== 'pass')?.kind ?? ''}, which a compute pass cannot record; record them into the command encoder`);
      for (const command of this.commands) if (command.kind === 'pass') replaySteps(target, command.steps);
      return;
    }
    for (const command of this.commands) {
      if (command.kind === 'clear') {
        target.clearBuffer(command.buffer, command.offset, command.size);
      } else if (command.kind === 'copy') {
        target.copyBufferToBuffer(command.source, command.sourceOffset, command.destination, command.destinationOffset, command.size);
      } else {
        const pass = target.beginComputePass(command.label === undefined ? undefined : { label: command.label });
        replaySteps(pass, command.steps);
        pass.end();
      }
    }
  }

  /** Frees the buffers created while preparing (idempotent). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.scratch.destroy();
  }
}

function replaySteps(pass: GPUComputePassEncoder, steps: readonly PassStep[]): void {
  for (const step of steps) {
    if (step.kind === 'pipeline') pass.setPipeline(step.pipeline);
    else if (step.kind === 'bind') pass.setBindGroup(step.index, step.group);
    else pass.dispatchWorkgroups(step.x, step.y, step.z);
  }
}

function refuse(what: string): never {
  throw new LatticeMatmulError(`prepared commands cannot capture ${what}: only compute passes, clearBuffer and copyBufferToBuffer are supported`);
}

/**
 * Runs `record(encoder, scratch)` against a capture encoder and returns the commands it recorded, with
 * the scratch it filled (kept until `destroy()`).
 *
 * @example
 * const gemv = prepareCommands(device, 'layer 3 gemv', (encoder, scratch) =>
 *   dispatchUniversalGemv(device, encoder, scratch, { w, x, y, rhs: 1 }));
 * // every decode step:
 * gemv.record(stepEncoder);
 */
export function prepareCommands(device: GPUDevice, label: string, record: (encoder: GPUCommandEncoder, scratch: GpuScratch) => void): PreparedCommands {
  return prepareInto(new GpuScratch(device), label, record);
}

/**
 * `prepareCommands` with the scratch's intermediates from the device's shared pool (`sharingScratch`):
 * for a record that reads its intermediates only within its own commands (QuantizedLinear).
 */
export function prepareSharingCommands(device: GPUDevice, label: string, record: (encoder: GPUCommandEncoder, scratch: GpuScratch) => void): PreparedCommands {
  return prepareInto(sharingScratch(device), label, record);
}

function prepareInto(scratch: GpuScratch, label: string, record: (encoder: GPUCommandEncoder, scratch: GpuScratch) => void): PreparedCommands {
  checkLabel(label, 'prepareCommands');
  check(typeof record === 'function', () => `prepareCommands: record must be a function (encoder, scratch) => void, got ${describeValue(record)}`);
  const commands: Command[] = [];
  let open: PassStep[] | null = null;
  const pass = {
    setPipeline: (pipeline: GPUComputePipeline) => void (open as PassStep[]).push({ kind: 'pipeline', pipeline }),
    setBindGroup: (index: number, group: GPUBindGroup | null, offsets?: unknown) => {
      if (offsets !== undefined && !(Array.isArray(offsets) && offsets.length === 0)) refuse('dynamic offsets');
      (open as PassStep[]).push({ kind: 'bind', index, group });
    },
    dispatchWorkgroups: (x: number, y = 1, z = 1) => void (open as PassStep[]).push({ kind: 'dispatch', x, y, z }),
    end: () => {
      open = null;
    },
    dispatchWorkgroupsIndirect: () => refuse('dispatchWorkgroupsIndirect'),
    pushDebugGroup: () => undefined,
    popDebugGroup: () => undefined,
    insertDebugMarker: () => undefined,
    label: '',
  };
  const encoder = {
    label,
    beginComputePass: (descriptor?: GPUComputePassDescriptor) => {
      check(open === null, `${label}: a compute pass began inside another`);
      if (descriptor?.timestampWrites !== undefined) refuse('timestamp writes');
      const steps: PassStep[] = [];
      open = steps;
      commands.push({ kind: 'pass', label: descriptor?.label, steps });
      return pass as unknown as GPUComputePassEncoder;
    },
    clearBuffer: (buffer: GPUBuffer, offset?: number, size?: number) => void commands.push({ kind: 'clear', buffer, offset, size }),
    copyBufferToBuffer: (source: GPUBuffer, sourceOffset: number, destination: GPUBuffer, destinationOffset: number, size: number) =>
      void commands.push({ kind: 'copy', source, sourceOffset, destination, destinationOffset, size }),
    beginRenderPass: () => refuse('render passes'),
    copyBufferToTexture: () => refuse('texture copies'),
    copyTextureToBuffer: () => refuse('texture copies'),
    copyTextureToTexture: () => refuse('texture copies'),
    resolveQuerySet: () => refuse('query resolution'),
    writeTimestamp: () => refuse('timestamps'),
    finish: () => refuse('finish'),
    pushDebugGroup: () => undefined,
    popDebugGroup: () => undefined,
    insertDebugMarker: () => undefined,
  };
  try {
    record(encoder as unknown as GPUCommandEncoder, scratch);
    check(open === null, `${label}: a compute pass was left open`);
  } catch (error) {
    scratch.destroy();
    throw error;
  }
  return new PreparedCommands(label, mergePasses(commands), scratch);
}

/**
 * Consecutive compute passes as one pass (labelled with their labels in order). In WebGPU every dispatch
 * is its own synchronization scope, so a dispatch sees the storage writes of the dispatches before it
 * in the same pass exactly as it would across passes; and every recorded pass sets its pipeline and bind
 * groups before it dispatches, so no step depends on state left by an earlier pass. What changes is the
 * host's work per replay: a layer's rotation, rounding, product and epilogue become one
 * beginComputePass/end instead of one each, and a pipeline or bind group that is already set is not set
 * again (`withoutRepeatedState`: three layers of a group running one GEMV pipeline set it once).
 */
function mergePasses(commands: readonly Command[]): Command[] {
  const merged: Command[] = [];
  let run: Extract<Command, { kind: 'pass' }>[] = [];
  const flush = (): void => {
    if (run.length > 0) {
      const labels = run.map((pass) => pass.label).filter((passLabel) => passLabel !== undefined);
      merged.push({ kind: 'pass', label: labels.length > 0 ? labels.join(' → ') : undefined, steps: withoutRepeatedState(run.flatMap((pass) => pass.steps)) });
    }
    run = [];
  };
  for (const command of commands) {
    if (command.kind === 'pass') run.push(command);
    else {
      flush();
      merged.push(command);
    }
  }
  flush();
  return merged;
}

/**
 * The steps of one pass without the setPipeline calls that set the pipeline already set, and the
 * setBindGroup calls that set the group already bound at that index (WebGPU keeps bind groups bound
 * across setPipeline). The state starts unknown, so the first of each is kept: the steps may follow
 * anything in a caller's pass.
 */
function withoutRepeatedState(steps: readonly PassStep[]): PassStep[] {
  let pipeline: GPUComputePipeline | undefined;
  const groups = new Map<number, GPUBindGroup | null>();
  return steps.filter((step) => {
    if (step.kind === 'pipeline') {
      if (step.pipeline === pipeline) return false;
      pipeline = step.pipeline;
    } else if (step.kind === 'bind') {
      if (groups.has(step.index) && groups.get(step.index) === step.group) return false;
      groups.set(step.index, step.group);
    }
    return true;
  });
}
