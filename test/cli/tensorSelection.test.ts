import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeModel, selectTensors } from '../../src/cli/commands.js';
import { openQuantizedContainerFile } from '../../src/format/containerFile.js';
import type { SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { openSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * What quantize selects by default in checkpoints laid out as real projects publish them (an audit's
 * cases): a DeepSeek-V3-style FP8 weight beside its F32 block scales, a GPTQ/AWQ-style packed I32
 * `qweight` beside F16 `scales`, MoE experts stacked in one 3-D tensor with 2-D stacked biases (gpt-oss
 * and Llama-4 in BF16), next to an ordinary dense layer. Before, quantize exited 0 having quantized the
 * scales and biases as if they were weights, and said of the FP8 weight that it was "not a 2-D float
 * tensor". Now scales and biases are left out with why, the weights it cannot read are named for what
 * they are, and a warning before any work gives their share of the model's entries.
 */

/** A tensor of `shape` in `dtype`, its data any bytes of the right size (Gaussian for float dtypes). */
function tensor(dtype: 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'I32', shape: number[], seed: number): SafetensorsTensorInput {
  const count = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'F32') return { dtype, shape, data: gaussianMatrix(count, 1, seed).data };
  if (dtype === 'I32') return { dtype, shape, data: new Int32Array(count).map((_, i) => (i * 2654435761) | 0) };
  if (dtype === 'F8_E4M3') return { dtype, shape, data: new Uint8Array(count).map((_, i) => (i * 37) & 0x77) };
  // 16-bit floats: ±0.5…1 (exponent 0x3e for bf16, 0x38 for f16 in the high byte), any sign.
  const high = dtype === 'BF16' ? 0x3f00 : 0x3800;
  return { dtype, shape, data: new Uint16Array(count).map((_, i) => high | (i * 97) % 128 | ((i & 1) << 15)) };
}

/** name → (dtype, shape): the checkpoint of the cases below. */
const CHECKPOINT: Record<string, [Parameters<typeof tensor>[0], number[]]> = {
  'model.layers.0.self_attn.q_proj.weight': ['F32', [16, 16]],
  'model.layers.0.self_attn.q_proj.bias': ['F32', [16]],
  'model.layers.0.input_layernorm.weight': ['F32', [16]],
  // DeepSeek-V3: FP8 weight, F32 scales per 128 × 128 block (here 8 × 8 of them).
  'model.layers.0.mlp.down_proj.weight': ['F8_E4M3', [64, 64]],
  'model.layers.0.mlp.down_proj.weight_scale_inv': ['F32', [8, 8]],
  // GPTQ/AWQ: 8 codes per I32, F16 scales and I32 zero points per group.
  'model.layers.0.mlp.up_proj.qweight': ['I32', [16, 64]],
  'model.layers.0.mlp.up_proj.scales': ['F16', [8, 64]],
  'model.layers.0.mlp.up_proj.qzeros': ['I32', [8, 8]],
  // gpt-oss / Llama-4 in BF16: experts stacked, biases 2-D; the router is an ordinary matrix.
  'model.layers.0.mlp.experts.gate_up_proj': ['BF16', [8, 16, 32]],
  'model.layers.0.mlp.experts.gate_up_proj_bias': ['BF16', [8, 32]],
  'model.layers.0.mlp.router.weight': ['BF16', [8, 16]],
  'lm_head.weight': ['F16', [32, 16]],
};

let work: string;
const model = (): string => join(work, 'checkpoint.safetensors');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-selection-'));
  const tensors: Record<string, SafetensorsTensorInput> = {};
  Object.entries(CHECKPOINT).forEach(([name, [dtype, shape]], i) => (tensors[name] = tensor(dtype, shape, i + 1)));
  await writeSafetensorsFile(model(), tensors);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('quantize: what it selects in quantized, MoE and dense checkpoints', () => {
  it('selects the dense matrices; leaves out scales, biases and what it cannot read, each with why', async () => {
    const file = await openSafetensorsFile(model());
    try {
      const { selected, skipped } = selectTensors(file, undefined);
      expect(selected.sort()).toEqual(['lm_head.weight', 'model.layers.0.mlp.router.weight', 'model.layers.0.self_attn.q_proj.weight']);
      const why = new Map(skipped.map((t) => [t.name, t]));
      const expectSkipped = (name: string, reason: RegExp, unreadable: boolean): void => {
        expect(why.get(name)?.reason, name).toMatch(reason);
        expect(why.get(name)?.unreadable, name).toBe(unreadable);
      };
      expectSkipped('model.layers.0.mlp.down_proj.weight', /^F8_E4M3 \[64, 64\]: an F8 tensor, as quantized checkpoints store weights: .*start from the unquantized checkpoint$/, true);
      expectSkipped('model.layers.0.mlp.down_proj.weight_scale_inv', /^F32 \[8, 8\]: beside model\.layers\.0\.mlp\.down_proj\.weight \(F8_E4M3\), a weight stored quantized: its scales or zero points, not a weight$/, false);
      expectSkipped('model.layers.0.mlp.up_proj.qweight', /^I32 \[16, 64\]: an integer tensor: packed codes of an already quantized checkpoint/, true);
      expectSkipped('model.layers.0.mlp.up_proj.scales', /beside model\.layers\.0\.mlp\.up_proj\.qweight \(I32\)/, false);
      expectSkipped('model.layers.0.mlp.up_proj.qzeros', /^I32 \[8, 8\]: an integer tensor$/, true);
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj', /^BF16 \[8, 16, 32\]: a 3-D tensor: quantize takes 2-D matrices/, true);
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj_bias', /^BF16 \[8, 32\]: a bias, by its name \(--tensors selects it\)$/, false);
      expectSkipped('model.layers.0.self_attn.q_proj.bias', /^F32 \[16\]: a 1-D tensor, not a matrix$/, false);
      expect(skipped.length + selected.length).toBe(Object.keys(CHECKPOINT).length);
      // --tensors selects a 2-D bias; never the scales of a quantized weight, nor what cannot be read.
      const all = selectTensors(file, /./);
      expect(all.selected).toContain('model.layers.0.mlp.experts.gate_up_proj_bias');
      expect(all.selected).not.toContain('model.layers.0.mlp.up_proj.scales');
      expect(all.selected).not.toContain('model.layers.0.mlp.down_proj.weight');
    } finally {
      await file.close();
    }
  });

  it('warns before any work, even when quiet, of the tensors it cannot read and their share of the entries; writes the rest', async () => {
    const lines: string[] = [];
    const output = join(work, 'out.lmq.safetensors');
    const report = await quantizeModel({ input: model(), output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    // The share from the checkpoint's own shapes: FP8 weight, qweight, qzeros, stacked experts.
    const entries = (name: string): number => (CHECKPOINT[name]?.[1] ?? []).reduce((a, b) => a * b, 1);
    const unread = ['model.layers.0.mlp.down_proj.weight', 'model.layers.0.mlp.up_proj.qweight', 'model.layers.0.mlp.up_proj.qzeros', 'model.layers.0.mlp.experts.gate_up_proj'];
    const total = Object.keys(CHECKPOINT).reduce((sum, name) => sum + entries(name), 0);
    const share = ((100 * unread.reduce((sum, name) => sum + entries(name), 0)) / total).toFixed(1);
    expect(lines[0]).toBe(
      `warning: quantize cannot read 4 tensors of the model, ${share} % of its entries, likely weights (the low-precision or integer codes of a quantized checkpoint, tensors of 3 or more dimensions): they are left out of the container, and listed at the end with why`,
    );
    expect(report.quantized.map((q) => q.name).sort()).toEqual(['lm_head.weight', 'model.layers.0.mlp.router.weight', 'model.layers.0.self_attn.q_proj.weight']);
    const written = await openQuantizedContainerFile(output);
    try {
      expect(written.entries.map((e) => e.name).sort()).toEqual(report.quantized.map((q) => q.name).sort());
    } finally {
      await written.close();
    }
  });

  it('says nothing of unread tensors for a dense float checkpoint', async () => {
    const dense = join(work, 'dense.safetensors');
    await writeSafetensorsFile(dense, { 'a.weight': tensor('F32', [16, 16], 1), 'a.bias': tensor('F32', [16], 2) });
    const lines: string[] = [];
    await quantizeModel({ input: dense, output: join(work, 'dense.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines).toEqual([]);
  });
});
