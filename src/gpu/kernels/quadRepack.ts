import { throwIfDeviceLost } from '../errorScopes.js';
import frameSource from '../../../shaders/quad_repack.wgsl?raw';
import { check, checkLabel } from '../../errors.js';
import { createBuffer, STORAGE_USAGE } from '../buffers.js';
import { checkGpuDeterministicMatrix, checkMatrixUsable, columnRanges, columnSideWindows, operandColumnsPerBinding, operandWindows, operandWordsPerColumn, type GpuDeterministicMatrix } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';

/*
 * The repack of a deterministic matrix on the GPU into a quad form (the E8 residue form,
 * shaders/e8_residue_repack.wgsl; the D3 quad form, shaders/d3_quad_repack.wgsl): one invocation per
 * (column, quad), in ranges of columns whose fields fit a storage binding, writing two buffers of
 * words per quad and the column side (ν_j·γ_j of every column, then μ_j when centred): the frame
 * shaders/quad_repack.wgsl. What differs between the forms is the body's `repack_quad`.
 */

/** Invocations per workgroup of shaders/quad_repack.wgsl: one per quad. */
export const QUAD_REPACK_THREADS = 256;

/** The repack shaders' uniforms (one struct for both forms). */
const RepackParams = /*#__PURE__*/ new UniformLayout('QuadRepackParams', {
  cols: 'u32', // columns of this dispatch
  blocks: 'u32', // blocks per column
  quads: 'u32', // quads per column
  code_first: 'u32', // word of the dispatch's first column in the codes binding
  code_words: 'u32', // code words per column
  index_first: 'u32', // word of the dispatch's first column in the scale-index binding
  index_words: 'u32', // scale-index words per column
  index_bits: 'u32', // 1 or 2
  has_gains: 'u32',
  has_means: 'u32',
  quad_first: 'u32', // word of the dispatch's first column in the first output (the quads' words)
  side_first: 'u32', // word of the dispatch's first column in the second output (a word per quad)
  column_first: 'u32', // element of ν·γ of the dispatch's first column in the output side
  means_first: 'u32', // element of μ of the dispatch's first column in the output side
});

/** The WGSL of a repack whose body is `body` (its `repack_quad`), in the frame of shaders/quad_repack.wgsl, after `library` (e.g. a decoder). */
export function quadRepackShaderSource(body: string, library = ''): string {
  return `${library}\n${RepackParams.wgsl()}\n${body}\n${frameSource}`;
}

/** The pipelines of one form's repack (`body`: its shader, `library`: what goes in front, e.g. a decoder). */
export function quadRepackPipelines(label: string, body: string, library = ''): KernelPipelines<undefined, GPUComputePipeline> {
  return new KernelPipelines({
    label,
    bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'read-only-storage', 'storage', 'storage', 'storage'],
    compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label, code: quadRepackShaderSource(body, library) }),
  });
}

/** What one form's repack brings to {@link repackDeterministicQuads}. */
export interface QuadRepackSpec {
  /** Names the repack in messages ('GpuE8ResidueMatrix.repack'). */
  readonly what: string;
  /** Why `m` cannot take this form, or null. */
  readonly unsupported: (m: GpuDeterministicMatrix) => string | null;
  readonly quads: (blocksPerColumn: number) => number;
  /** The two outputs: label suffix and bytes per quad. */
  readonly outputs: readonly [{ readonly name: string; readonly quadBytes: number }, { readonly name: string; readonly quadBytes: number }];
  readonly pipelines: KernelPipelines<undefined, GPUComputePipeline>;
}

/**
 * Repacks `m` on the GPU (one submit on `device.queue`) into the two word buffers of a quad form and
 * its column side, in ranges of columns whose fields fit a storage binding (`maxBindingBytes`,
 * default the device's limit), after the checks every repack makes (a live matrix of this device, a
 * label, `spec.unsupported`). The result does not read `m`. The caller makes its matrix object of the
 * buffers (and destroys them if that fails).
 */
export function repackDeterministicQuads(device: GPUDevice, m: GpuDeterministicMatrix, label: string, options: { readonly maxBindingBytes?: number }, spec: QuadRepackSpec): { readonly quads: number; readonly buffers: readonly [GPUBuffer, GPUBuffer, GPUBuffer] } {
  const { what } = spec;
  checkLabel(label, what);
  throwIfDeviceLost(device, what);
  checkGpuDeterministicMatrix(m, `${what}: W`);
  checkMatrixUsable(m, device, `${what}: W`, 'repack');
  const why = spec.unsupported(m);
  check(why === null, () => `${what}: ${why ?? ''}`);
  const quads = spec.quads(m.blocksPerColumn);
  const [first, second] = spec.outputs;
  const words = operandWordsPerColumn(m);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, options.maxBindingBytes, 'quad repack');
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const perRange = Math.min(
    operandColumnsPerBinding(m, maxBinding, alignment),
    itemsPerBinding(first.quadBytes * quads, maxBinding, alignment),
    itemsPerBinding(12, maxBinding, alignment), // the range's gathered norms, gains and means
    Math.floor((QUAD_REPACK_THREADS * maxGroups * maxGroups) / quads),
  );
  check(8 * m.cols <= maxBinding, () => `${what}: the column side of ${m.cols} columns does not fit one storage binding (${maxBinding} bytes)`);
  const hasMeans = m.means !== null;
  const buffers = [
    createBuffer(device, `${label} ${first.name}`, first.quadBytes * quads * m.cols, STORAGE_USAGE),
    createBuffer(device, `${label} ${second.name}`, second.quadBytes * quads * m.cols, STORAGE_USAGE),
    createBuffer(device, `${label} column scales and means`, (hasMeans ? 8 : 4) * m.cols, STORAGE_USAGE),
  ] as const;
  const [quadWords, sideWords, side] = buffers;
  const scratch = new GpuScratch(device);
  try {
    const encoder = device.createCommandEncoder({ label: `${label}: repack` });
    const ranges = columnRanges(m.cols, perRange);
    const gathered = columnSideWindows(encoder, scratch, m, ranges, `${label}: repack`, undefined);
    const { layout, pipeline } = spec.pipelines.get(device, undefined);
    const pass = encoder.beginComputePass({ label: `${label}: repack` });
    pass.setPipeline(pipeline);
    ranges.forEach((range, i) => {
      const rangeLabel = `${label}: repack columns ${range.first}…${range.first + range.count - 1}`;
      const fields = operandWindows(m, range.first, range.count, alignment);
      const firstWindow = bindingWindow(first.quadBytes * quads * range.first, first.quadBytes * quads * range.count, alignment);
      const secondWindow = bindingWindow(second.quadBytes * quads * range.first, second.quadBytes * quads * range.count, alignment);
      const params = RepackParams.pack({
        cols: range.count,
        blocks: m.blocksPerColumn,
        quads,
        code_first: fields.codes.firstElement,
        code_words: words.codes,
        index_first: fields.scaleIndices.firstElement,
        index_words: words.scaleIndices,
        index_bits: m.scaleIndexBits,
        has_gains: m.gains === null ? 0 : 1,
        has_means: hasMeans ? 1 : 0,
        quad_first: firstWindow.firstElement,
        side_first: secondWindow.firstElement,
        column_first: range.first,
        means_first: m.cols + range.first,
      });
      pass.setBindGroup(
        0,
        createKernelBindGroup(device, layout, rangeLabel, [
          { buffer: scratch.uniform(`${rangeLabel} params`, params) },
          windowBinding(m.codes, fields.codes),
          windowBinding(m.scaleIndices, fields.scaleIndices),
          { buffer: (gathered[i] as { buffer: GPUBuffer }).buffer },
          windowBinding(quadWords, firstWindow),
          windowBinding(sideWords, secondWindow),
          { buffer: side },
        ]),
      );
      const [gx, gy] = workgroupGrid(Math.ceil((range.count * quads) / QUAD_REPACK_THREADS), maxGroups);
      pass.dispatchWorkgroups(gx, gy);
    });
    pass.end();
    device.queue.submit([encoder.finish()]);
    return { quads, buffers };
  } catch (error) {
    for (const buffer of buffers) buffer.destroy();
    throw error;
  } finally {
    scratch.destroy();
  }
}
