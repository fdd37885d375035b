import { check } from '../errors.js';
import { GpuScratch } from './scratch.js';

/*
 * Prepared commands: record what a `dispatch…` function does once — it creates its uniform and scratch
 * buffers and its bind groups then — and replay the same commands into any command encoder later,
 * creating nothing. A decode step of an LLM records hundreds of GEMVs per token into one encoder; with
 * prepared commands that costs a few `setPipeline` / `setBindGroup` / `dispatchWorkgroups` calls each,
 * in one compute pass per run of consecutive passes (`mergePasses`).
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

/** A recorded list of commands and the buffers it owns; `record` replays it, `destroy` frees it. */
export class PreparedCommands {
  private destroyed = false;

  constructor(
    readonly label: string,
    private readonly commands: readonly Command[],
    private readonly scratch: GpuScratch,
  ) {}

  /** Replays the commands at the end of `encoder` (which must not be inside a pass). Creates no GPU objects but the passes. */
  record(encoder: GPUCommandEncoder): void {
    check(!this.destroyed, () => `${this.label}: these prepared commands were destroyed`);
    for (const command of this.commands) {
      if (command.kind === 'clear') {
        encoder.clearBuffer(command.buffer, command.offset, command.size);
      } else if (command.kind === 'copy') {
        encoder.copyBufferToBuffer(command.source, command.sourceOffset, command.destination, command.destinationOffset, command.size);
      } else {
        const pass = encoder.beginComputePass(command.label === undefined ? undefined : { label: command.label });
        for (const step of command.steps) {
          if (step.kind === 'pipeline') pass.setPipeline(step.pipeline);
          else if (step.kind === 'bind') pass.setBindGroup(step.index, step.group);
          else pass.dispatchWorkgroups(step.x, step.y, step.z);
        }
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

function refuse(what: string): never {
  throw new Error(`prepared commands cannot capture ${what}: only compute passes, clearBuffer and copyBufferToBuffer are supported`);
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
  const commands: Command[] = [];
  const scratch = new GpuScratch(device);
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
 * beginComputePass/end instead of one each.
 */
function mergePasses(commands: readonly Command[]): Command[] {
  const merged: Command[] = [];
  let run: Extract<Command, { kind: 'pass' }>[] = [];
  const flush = (): void => {
    if (run.length === 1) merged.push(run[0] as Command);
    else if (run.length > 1) {
      const labels = run.map((pass) => pass.label).filter((passLabel) => passLabel !== undefined);
      merged.push({ kind: 'pass', label: labels.length > 0 ? labels.join(' → ') : undefined, steps: run.flatMap((pass) => pass.steps) });
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
