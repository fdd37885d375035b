import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectFile, quantizeModel, selectTensors, unreadWeights } from '../../src/cli/commands.js';
import { openQuantizedContainerFile } from '../../src/format/containerFile.js';
import type { SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { dequantize } from '../../src/product/dequantize.js';
import { float16BitsToFloat32Bits } from '../../src/scalar/floatFormats.js';
import { WeightOnlyQuantized } from '../../src/weightonly/quantized.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * What quantize selects by default in checkpoints laid out as real projects publish them (two audits'
 * cases): a DeepSeek-V3-style FP8 weight beside its F32 block scales, GPTQ/AWQ's packed I32 `qweight`
 * beside F16 `scales`, Marlin's `B` beside `s`, MoE experts stacked in one 3-D tensor with 2-D stacked
 * biases (gpt-oss and Llama-4 in BF16), a GPT-2 mask [1, 1, n, n], a ViT cls_token [1, 1, d], a
 * convolution kernel, next to an ordinary dense layer. Before, quantize exited 0 having quantized the
 * scales and biases as if they were weights. Now scales and biases are left out with why, what it
 * cannot read is named for what it is, a checkpoint mostly made of that is refused unless --tensors is
 * given, and a warning before any work gives the share of the model's bytes left out.
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

const BYTES_PER = { F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, I32: 4 } as const;
type Layout = Record<string, [Parameters<typeof tensor>[0], number[]]>;

/** name → (dtype, shape): the checkpoint of the cases below. */
const CHECKPOINT: Layout = {
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
  // Marlin: codes B, scales s.
  'model.layers.0.mlp.gate_proj.B': ['I32', [16, 64]],
  'model.layers.0.mlp.gate_proj.s': ['F16', [8, 64]],
  // gpt-oss / Llama-4 in BF16: experts stacked, biases 2-D; the router stays in float by default.
  'model.layers.0.mlp.experts.gate_up_proj': ['BF16', [8, 16, 32]],
  'model.layers.0.mlp.experts.gate_up_proj_bias': ['BF16', [8, 32]],
  'model.layers.0.mlp.router.weight': ['BF16', [8, 16]],
  // Not weights to warn of: GPT-2's causal mask, ViT's cls_token, a convolution kernel.
  'h.0.attn.bias': ['F32', [1, 1, 16, 16]],
  'vit.embeddings.cls_token': ['F32', [1, 1, 16]],
  'conv1d.weight': ['F32', [16, 16, 3]],
  'lm_head.weight': ['F16', [32, 16]],
};

let work: string;
const model = (): string => join(work, 'checkpoint.safetensors');

/** Writes `layout` to `path` (Gaussian floats, arbitrary codes). */
async function writeLayout(path: string, layout: Layout): Promise<void> {
  const tensors: Record<string, SafetensorsTensorInput> = {};
  Object.entries(layout).forEach(([name, [dtype, shape]], i) => (tensors[name] = tensor(dtype, shape, i + 1)));
  await writeSafetensorsFile(path, tensors);
}

/** "x.y % of the model's bytes" for the tensors `names` of `layout`, as the CLI words a share. */
function shareOf(layout: Layout, names: readonly string[]): string {
  const bytes = (name: string): number => {
    const [dtype, shape] = layout[name] as Layout[string];
    return BYTES_PER[dtype] * shape.reduce((a, b) => a * b, 1);
  };
  const all = Object.keys(layout).reduce((sum, name) => sum + bytes(name), 0);
  return `${((100 * names.reduce((sum, name) => sum + bytes(name), 0)) / all).toFixed(1)} % of the model's bytes`;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-selection-'));
  await writeLayout(model(), CHECKPOINT);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const CODES = ['model.layers.0.mlp.down_proj.weight', 'model.layers.0.mlp.up_proj.qweight', 'model.layers.0.mlp.gate_proj.B'];
const STACKED = ['model.layers.0.mlp.experts.gate_up_proj'];

describe('quantize: what it selects in quantized, MoE and dense checkpoints', () => {
  it('selects the dense matrices; leaves out scales, biases and what it cannot read, each with why', async () => {
    const file = await openSafetensorsFile(model());
    try {
      const { selected, skipped } = selectTensors(file, undefined);
      expect(selected.map((m) => m.name).sort()).toEqual(['lm_head.weight', 'model.layers.0.self_attn.q_proj.weight']);
      const why = new Map(skipped.map((t) => [t.name, t]));
      const expectSkipped = (name: string, reason: RegExp, unread: 'codes' | 'stacked' | null): void => {
        expect(why.get(name)?.reason, name).toMatch(reason);
        expect(why.get(name)?.unread, name).toBe(unread);
      };
      const codes = /^the codes of a weight of an already quantized checkpoint \(FP8, GPTQ, AWQ, …\), which quantize does not read: start from the unquantized checkpoint$/;
      for (const name of CODES) expectSkipped(name, codes, 'codes');
      expectSkipped('model.layers.0.mlp.down_proj.weight_scale_inv', /^beside model\.layers\.0\.mlp\.down_proj\.weight \(F8_E4M3\), the codes of a quantized weight: its scales or zero points, not a weight$/, null);
      expectSkipped('model.layers.0.mlp.up_proj.scales', /^beside model\.layers\.0\.mlp\.up_proj\.qweight \(I32\)/, null);
      expectSkipped('model.layers.0.mlp.gate_proj.s', /^beside model\.layers\.0\.mlp\.gate_proj\.B \(I32\)/, null);
      expectSkipped('model.layers.0.mlp.up_proj.qzeros', /^beside model\.layers\.0\.mlp\.up_proj\.qweight \(I32\), the codes of a quantized weight: its scales or zero points, not a weight$/, null);
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj', /^a 3-D tensor of stacked matrices, such as MoE experts: --tensors selects it, each slice \[i, :, :\] a matrix model\.layers\.0\.mlp\.experts\.gate_up_proj\.i$/, 'stacked');
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj_bias', /^a bias, by its name \(--tensors selects it\)$/, null);
      expectSkipped('model.layers.0.self_attn.q_proj.bias', /^a 1-D tensor, not a matrix$/, null);
      expectSkipped('model.layers.0.mlp.router.weight', /^an MoE router, by its name/, null);
      expectSkipped('h.0.attn.bias', /^a 4-D tensor, not a stack of matrices \(a convolution kernel, an embedding with leading dimensions of 1\?\): not quantized$/, null);
      expectSkipped('vit.embeddings.cls_token', /^a 3-D tensor, not a stack of matrices/, null);
      expectSkipped('conv1d.weight', /^a 3-D tensor, not a stack of matrices/, null);
      expect(skipped.length + selected.length).toBe(Object.keys(CHECKPOINT).length);
      // --tensors selects a 2-D bias and each slice of a 3-D tensor; never the scales of a quantized
      // weight, nor what cannot be read.
      const all = selectTensors(file, /./).selected.map((m) => m.name);
      expect(all).toContain('model.layers.0.mlp.experts.gate_up_proj_bias');
      expect(all.filter((name) => name.startsWith('model.layers.0.mlp.experts.gate_up_proj.'))).toEqual(Array.from({ length: 8 }, (_, i) => `model.layers.0.mlp.experts.gate_up_proj.${i}`));
      for (const name of [...CODES, 'model.layers.0.mlp.up_proj.scales', 'model.layers.0.mlp.gate_proj.s', 'h.0.attn.bias']) expect(all).not.toContain(name);
      // --exclude wins over --tensors.
      expect(selectTensors(file, /./, /experts|lm_head/).selected.map((m) => m.name).filter((name) => /experts|lm_head/.test(name))).toEqual([]);
    } finally {
      await file.close();
    }
  });

  it('keeps in float what llama.cpp keeps, whatever --tensors says: MoE routers, position tables, Mamba A_log', async () => {
    // Routers as real models name them: Mixtral's block_sparse_moe.gate, Qwen-MoE/DeepSeek/OLMoE's mlp.gate
    // (beside mlp.experts.N), gpt-oss/Jamba's router, Granite/DBRX's router.layer, Switch's router.classifier.
    // Not routers: gate_proj (a dense FFN weight), a gate.weight in a module without experts.
    const layout: Layout = {
      'model.layers.0.block_sparse_moe.gate.weight': ['F32', [8, 64]],
      'model.layers.0.block_sparse_moe.experts.0.w1.weight': ['F32', [32, 64]],
      'model.layers.1.mlp.gate.weight': ['BF16', [16, 64]],
      'model.layers.1.mlp.experts.3.down_proj.weight': ['BF16', [64, 32]],
      'model.layers.1.mlp.gate_proj.weight': ['BF16', [32, 64]],
      'model.layers.2.feed_forward.router.weight': ['F32', [8, 64]],
      'model.layers.3.block_sparse_moe.router.layer.weight': ['F32', [8, 64]],
      'encoder.block.0.layer.1.mlp.router.classifier.weight': ['F32', [8, 64]],
      'vision.blocks.0.gate.weight': ['F32', [64, 64]],
      'bert.embeddings.position_embeddings.weight': ['F32', [128, 64]],
      'bert.embeddings.token_type_embeddings.weight': ['F32', [8, 64]],
      'bert.embeddings.word_embeddings.weight': ['F32', [256, 64]],
      'transformer.wpe.weight': ['F32', [128, 64]],
      'model.decoder.embed_positions.weight': ['F32', [130, 64]],
      'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight': ['F32', [32, 8]],
      'backbone.layers.0.mixer.A_log': ['F32', [128, 16]],
      'backbone.layers.0.mixer.x_proj.weight': ['F32', [40, 128]],
    };
    const path = join(work, 'kept.safetensors');
    await writeLayout(path, layout);
    const file = await openSafetensorsFile(path);
    try {
      const { selected, skipped } = selectTensors(file, undefined);
      const dense = ['model.layers.0.block_sparse_moe.experts.0.w1.weight', 'model.layers.1.mlp.experts.3.down_proj.weight', 'model.layers.1.mlp.gate_proj.weight', 'vision.blocks.0.gate.weight', 'bert.embeddings.word_embeddings.weight', 'backbone.layers.0.mixer.x_proj.weight'];
      expect(selected.map((m) => m.name).sort()).toEqual([...dense].sort());
      const why = new Map(skipped.map((t) => [t.name, t.reason]));
      const routers = ['model.layers.0.block_sparse_moe.gate.weight', 'model.layers.1.mlp.gate.weight', 'model.layers.2.feed_forward.router.weight', 'model.layers.3.block_sparse_moe.router.layer.weight', 'encoder.block.0.layer.1.mlp.router.classifier.weight'];
      for (const name of routers) expect(why.get(name), name).toBe('an MoE router, by its name: it picks the experts each token runs, so it stays in float, as llama.cpp keeps it (whatever --tensors selects)');
      const tables = ['bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'transformer.wpe.weight', 'model.decoder.embed_positions.weight', 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'];
      for (const name of tables) expect(why.get(name), name).toMatch(/^a table of position or token-type embeddings or biases, by its name: added to the activations, not multiplied, so it stays in float \(whatever --tensors selects\)$/);
      expect(why.get('backbone.layers.0.mixer.A_log')).toMatch(/^a parameter of a recurrent layer \(Mamba's A_log, RWKV's time_\* and LoRA factors\), by its name: used elementwise/);
      expect(skipped).toHaveLength(routers.length + tables.length + 1);
      // A broad --tensors (the refusal's advice) does not pull them in; inspect says the same as quantize.
      expect(selectTensors(file, /^(?!.*bias$)/).selected.map((m) => m.name).sort()).toEqual([...dense].sort());
      // A --tensors that matches only such tensors is told why (it said "no 2-D float tensor … matches").
      await expect(quantizeModel({ input: path, output: join(work, 'kept.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, tensors: /router/, log: () => {} })).rejects.toThrow(
        /matches --tensors router; it matches [\w.]*router[\w.]*, left out: an MoE router, by its name: it picks the experts each token runs, so it stays in float, as llama\.cpp keeps it \(whatever --tensors selects\)$/,
      );
      const inspected = await inspectFile(path);
      if (inspected.kind !== 'safetensors') throw new Error('not listed as a model');
      for (const t of inspected.tensors) expect(t.notSelected, t.name).toBe(why.get(t.name) ?? null);
    } finally {
      await file.close();
    }
  });

  it("names as real checkpoints publish them (an audit's 50 architectures): more routers, position tables, recurrent parameters, index tables, gpt-oss's MXFP4 companions", async () => {
    const layout: Layout = {
      // Routers named otherwise: Hunyuan's gate.wg, AFMoE's router.gate, Gemma 4's router.proj,
      // SmallThinker's primary_router, Step's moe.gate (its experts are moe.up_proj: no "experts").
      'model.layers.0.mlp.gate.wg.weight': ['F32', [16, 64]],
      'model.layers.0.mlp.experts.0.up_proj.weight': ['F32', [32, 64]],
      'model.layers.1.mlp.router.gate.weight': ['F32', [16, 64]],
      'model.layers.2.router.proj.weight': ['F32', [8, 64]],
      'model.layers.3.block_sparse_moe.primary_router.weight': ['F32', [8, 64]],
      'model.layers.4.moe.gate.weight': ['F32', [16, 64]],
      'model.layers.4.moe.up_proj.weight': ['F32', [32, 64]],
      // Position tables: CLIP/SigLIP (singular), OpenAI CLIP (no .weight), Llama 4 vision, timm, Swin.
      'vision_model.embeddings.position_embedding.weight': ['F32', [50, 64]],
      'positional_embedding': ['F32', [77, 64]],
      'vision_model.positional_embedding_vlm': ['BF16', [65, 64]],
      'pos_embed': ['F32', [1, 197, 64]],
      'swin.encoder.layers.0.blocks.0.attention.self.relative_position_bias_table': ['F32', [169, 8]],
      // An index buffer, not the codes of a quantized weight.
      'swin.encoder.layers.0.blocks.0.attention.self.relative_position_index': ['I32', [49, 49]],
      'swin.encoder.layers.0.blocks.0.attention.self.query.weight': ['F32', [64, 64]],
      // RWKV-5/6/7 and Zamba: elementwise parameters and LoRA factors llama.cpp keeps in float (3-D ones
      // were taken for stacked experts).
      'rwkv.blocks.0.attention.time_decay': ['F32', [8, 64]],
      'rwkv.blocks.0.attention.time_faaaa': ['F32', [8, 64]],
      'rwkv.blocks.0.attention.time_maa_w1': ['F32', [64, 160]],
      'rwkv.blocks.0.attention.time_maa_w2': ['F32', [5, 32, 64]],
      'rwkv.blocks.0.attention.gate.weight': ['F32', [64, 64]],
      'blocks.0.att.w1': ['F32', [64, 16]],
      'blocks.0.att.g2': ['F32', [16, 64]],
      'blocks.0.att.r_k': ['F32', [8, 64]],
      'model.layers.0.mamba.A_log': ['F32', [2, 64, 16]],
      // flash-linear-attention's RWKV-7 LoRA factors, DETR's and DeBERTa's position tables.
      'model.layers.0.attn.w_lora.lora.0.weight': ['F32', [16, 64]],
      'model.layers.0.attn.g_lora.lora.2.weight': ['F32', [64, 16]],
      'model.query_position_embeddings.weight': ['F32', [100, 64]],
      'deberta.encoder.rel_embeddings.weight': ['F32', [512, 64]],
      // VPTQ: its codes are named indices (I16 in the checkpoints); beside them, centroids and scales.
      'model.layers.1.self_attn.q_proj.indices': ['I32', [1, 64, 16]],
      'model.layers.1.self_attn.q_proj.res_indices': ['I32', [1, 64, 16]],
      'model.layers.1.self_attn.q_proj.weight_scale': ['F32', [64, 16]],
      // A float X_blocks is no quantized codes: X_scales beside it is not its companion.
      'model.layers.2.mixer.in_blocks': ['F32', [64, 64]],
      'model.layers.2.mixer.in_scales': ['F32', [64, 16]],
      // gpt-oss in MXFP4: each expert tensor's scales and bias belong to its own _blocks.
      'model.layers.0.mlp.experts.gate_up_proj_blocks': ['I32', [8, 32, 16]],
      'model.layers.0.mlp.experts.gate_up_proj_scales': ['I32', [8, 32, 2]],
      'model.layers.0.mlp.experts.gate_up_proj_bias': ['BF16', [8, 32]],
      'model.layers.0.mlp.experts.down_proj_blocks': ['I32', [8, 16, 16]],
      'model.layers.0.mlp.experts.down_proj_scales': ['I32', [8, 16, 2]],
      'model.layers.0.mlp.experts.down_proj_bias': ['BF16', [8, 16]],
    };
    const path = join(work, 'published.safetensors');
    await writeLayout(path, layout);
    const file = await openSafetensorsFile(path);
    try {
      const { selected, skipped } = selectTensors(file, undefined);
      expect(selected.map((m) => m.name).sort()).toEqual(
        ['model.layers.0.mlp.experts.0.up_proj.weight', 'model.layers.4.moe.up_proj.weight', 'swin.encoder.layers.0.blocks.0.attention.self.query.weight', 'rwkv.blocks.0.attention.gate.weight', 'model.layers.2.mixer.in_blocks', 'model.layers.2.mixer.in_scales'].sort(),
      );
      const why = new Map(skipped.map((t) => [t.name, t]));
      const expectSkipped = (names: readonly string[], reason: RegExp): void => {
        for (const name of names) {
          expect(why.get(name)?.reason, name).toMatch(reason);
          expect(why.get(name)?.unread, name).toBe(/(_blocks|indices)$/.test(name) ? 'codes' : null);
        }
      };
      expectSkipped(['model.layers.0.mlp.gate.wg.weight', 'model.layers.1.mlp.router.gate.weight', 'model.layers.2.router.proj.weight', 'model.layers.3.block_sparse_moe.primary_router.weight', 'model.layers.4.moe.gate.weight'], /^an MoE router, by its name/);
      expectSkipped(
        ['vision_model.embeddings.position_embedding.weight', 'positional_embedding', 'vision_model.positional_embedding_vlm', 'pos_embed', 'swin.encoder.layers.0.blocks.0.attention.self.relative_position_bias_table', 'model.query_position_embeddings.weight', 'deberta.encoder.rel_embeddings.weight'],
        /^a table of position or token-type embeddings or biases, by its name/,
      );
      expectSkipped(
        ['rwkv.blocks.0.attention.time_decay', 'rwkv.blocks.0.attention.time_faaaa', 'rwkv.blocks.0.attention.time_maa_w1', 'rwkv.blocks.0.attention.time_maa_w2', 'blocks.0.att.w1', 'blocks.0.att.g2', 'blocks.0.att.r_k', 'model.layers.0.mamba.A_log', 'model.layers.0.attn.w_lora.lora.0.weight', 'model.layers.0.attn.g_lora.lora.2.weight'],
        /^a parameter of a recurrent layer \(Mamba's A_log, RWKV's time_\* and LoRA factors\), by its name/,
      );
      expectSkipped(['swin.encoder.layers.0.blocks.0.attention.self.relative_position_index'], /^an integer tensor$/);
      for (const stem of ['gate_up_proj', 'down_proj']) {
        const codes = `model.layers.0.mlp.experts.${stem}_blocks`;
        expectSkipped([codes], /^the codes of a weight of an already quantized checkpoint/);
        expectSkipped([`model.layers.0.mlp.experts.${stem}_scales`], new RegExp(`^beside ${codes.replace(/\./g, '\\.')} \\(I32\\), the codes of a quantized weight: its scales or zero points, not a weight$`));
        expectSkipped([`model.layers.0.mlp.experts.${stem}_bias`], new RegExp(`^beside ${codes.replace(/\./g, '\\.')} \\(I32\\), the codes of a quantized weight: its bias, not a weight$`));
      }
      expectSkipped(['model.layers.1.self_attn.q_proj.indices'], /^the codes of a weight of an already quantized checkpoint/);
      expect(why.get('model.layers.1.self_attn.q_proj.res_indices')?.unread).toBe('codes');
      expectSkipped(['model.layers.1.self_attn.q_proj.weight_scale'], /^beside model\.layers\.1\.self_attn\.q_proj\.indices \(I32\), the codes of a quantized weight: its scales or zero points, not a weight$/);
      // The MXFP4 and VPTQ codes count as unread: no index table, no recurrent 3-D parameter.
      const unread = unreadWeights(file, skipped, false);
      expect(unread?.message).toMatch(/^warning: quantize leaves out 4 tensors of quantized codes \(/);
      expect(unread?.message).not.toMatch(/stacked/);
    } finally {
      await file.close();
    }
  });

  it('warns that parameters models multiply as x @ W (OpenAI CLIP, Gemma 3) would be held transposed; --transpose as advised silences it', async () => {
    const layout: Layout = {
      'text_projection': ['F32', [64, 32]],
      'visual.proj': ['F32', [64, 32]],
      'multi_modal_projector.mm_input_projection_weight': ['F32', [64, 96]],
      // HF CLIP's nn.Linear text_projection.weight is (out, in): no warning for it.
      'text_model.text_projection.weight': ['F32', [32, 64]],
    };
    const path = join(work, 'clip.safetensors');
    await writeLayout(path, layout);
    const inspected = await inspectFile(path);
    if (inspected.kind !== 'safetensors') throw new Error('not listed as a model');
    const advice = String.raw`--transpose '(text_projection|visual\.proj|mm_input_projection_weight)$'`;
    expect(inspected.notices).toEqual([
      `warning: multi_modal_projector.mm_input_projection_weight and 2 other tensors are named as parameters that models multiply as x @ W (OpenAI CLIP's text_projection, OpenAI CLIP's visual.proj, Gemma 3's mm_input_projection_weight), stored (in, out): quantize reads (out, in), so the container would hold them transposed; pass ${advice}`,
    ]);
    const output = join(work, 'clip.lmq.safetensors');
    const lines: string[] = [];
    await quantizeModel({ input: path, output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines).toEqual(inspected.notices);
    lines.length = 0;
    const report = await quantizeModel({ input: path, output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, replace: true, transpose: /(text_projection|visual\.proj|mm_input_projection_weight)$/, log: (line) => lines.push(line) });
    expect(lines).toEqual([]);
    // Held (out, in): text_projection [64 in, 32 out] as 32 × 64.
    expect(report.quantized.find((q) => q.name === 'text_projection')).toMatchObject({ rows: 64, cols: 32 });
  });

  it('refuses before any work a checkpoint mostly made of what it cannot read, unless --tensors is given', async () => {
    const output = join(work, 'out.lmq.safetensors');
    const options = { input: model(), output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true } as const;
    await expect(quantizeModel({ ...options, log: () => {} })).rejects.toThrow(
      `quantize would leave out most of the model: 3 tensors of quantized codes (${shareOf(CHECKPOINT, CODES)}): an already quantized checkpoint, whose unquantized original is what quantize reads; ` +
        `and 1 3-D tensor of stacked matrices such as MoE experts (${shareOf(CHECKPOINT, STACKED)}), which --tensors selects slice by slice (with --transpose for those stored (in, out), as Llama 4's and gpt-oss's experts are). ` +
        "Pass --tensors to quantize only what it selects ('^(?!.*bias$)' selects every tensor it can read but biases and what stays in float)",
    );
    // With --tensors: a warning (also when quiet) of the codes left out; the experts slice by slice.
    const lines: string[] = [];
    const report = await quantizeModel({ ...options, tensors: /./, log: (line) => lines.push(line) });
    expect(lines[0]).toBe(
      `warning: quantize leaves out 3 tensors of quantized codes (${shareOf(CHECKPOINT, CODES)}): an already quantized checkpoint, whose unquantized original is what quantize reads; the list at the end says why for each tensor`,
    );
    const slices = Array.from({ length: 8 }, (_, i) => `model.layers.0.mlp.experts.gate_up_proj.${i}`);
    // The router stays in float even under --tensors.
    const expected = ['lm_head.weight', 'model.layers.0.mlp.experts.gate_up_proj_bias', 'model.layers.0.self_attn.q_proj.weight', ...slices];
    expect(report.quantized.map((q) => q.name).sort()).toEqual(expected.sort());
    const written = await openQuantizedContainerFile(output);
    try {
      expect(written.entries.map((e) => e.name).sort()).toEqual(expected.sort());
      // Slice 5 holds the file's bytes [5, :, :] as a 16 × 32 (out × in) matrix.
      const source = (tensor('BF16', [8, 16, 32], Object.keys(CHECKPOINT).indexOf('model.layers.0.mlp.experts.gate_up_proj') + 1).data as Uint16Array).subarray(5 * 512, 6 * 512);
      const expectedValues = Array.from(source, (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0] as number);
      const decoded = await decodedMatrix(written, 'model.layers.0.mlp.experts.gate_up_proj.5');
      expect([decoded.rows, decoded.cols]).toEqual([32, 16]); // in × out
      const error = decoded.data.reduce((sum, v, k) => sum + (v - (expectedValues[k] as number)) ** 2, 0) / expectedValues.reduce((sum, v) => sum + v * v, 0);
      expect(error).toBeLessThan(0.05); // e8-4bit's ≈ 6.5·10⁻³, far from another slice's ≈ 2
    } finally {
      await written.close();
    }
  });

  it('warns, without refusing, of a few unread weights in a float model; says nothing for a dense one', async () => {
    const layout: Layout = { 'a.weight': ['F32', [64, 64]], 'b.experts': ['F32', [2, 8, 8]], 'a.bias': ['F32', [64]] };
    const path = join(work, 'few.safetensors');
    await writeLayout(path, layout);
    const lines: string[] = [];
    await quantizeModel({ input: path, output: join(work, 'few.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines).toEqual([
      `warning: quantize leaves out 1 3-D tensor of stacked matrices such as MoE experts (${shareOf(layout, ['b.experts'])}), which --tensors selects slice by slice (with --transpose for those stored (in, out), as Llama 4's and gpt-oss's experts are); the list at the end says why for each tensor`,
    ]);
    const dense = join(work, 'dense.safetensors');
    await writeLayout(dense, { 'a.weight': ['F32', [16, 16]], 'a.bias': ['F32', [16]], 'h.0.attn.bias': ['F32', [1, 1, 16, 16]] });
    const quiet: string[] = [];
    await quantizeModel({ input: dense, output: join(work, 'dense.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => quiet.push(line) });
    expect(quiet).toEqual([]);
  });
});

/** Matrix `name` of a container, decoded ((in, out) column-major: W row-major). */
async function decodedMatrix(container: Awaited<ReturnType<typeof openQuantizedContainerFile>>, name: string) {
  const { matrix } = await container.read(name);
  return matrix instanceof WeightOnlyQuantized ? matrix.decode() : dequantize(matrix);
}

describe('quantize: the dtypes it does not read, named for what they are', () => {
  it('an F4, F6 or F8 tensor that is no codes, a boolean one, an integer one and a complex one', async () => {
    // 1-D tensors (no codes of a quantized weight, which have two dimensions or more) and a 2-D BOOL and C64.
    const raw = (dtype: SafetensorsTensorInput['dtype'], shape: number[], bytes: number): SafetensorsTensorInput => ({ dtype, shape, data: new Uint8Array(bytes) });
    const path = join(work, 'dtypes.safetensors');
    await writeSafetensorsFile(path, {
      'lut.f4': raw('F4', [16], 8),
      'lut.f6': raw('F6_E3M2', [16], 12),
      'scale.f8': raw('F8_E8M0', [16], 16),
      'mask': raw('BOOL', [16, 16], 256),
      'counts': raw('U16', [16], 32),
      'freqs': raw('C64', [16, 16], 2048),
    });
    const file = await openSafetensorsFile(path);
    try {
      const { selected, skipped } = selectTensors(file, undefined);
      expect(selected).toEqual([]);
      const reads = 'which quantize does not read (it reads F32, F16, BF16, F64)';
      expect(Object.fromEntries(skipped.map((t) => [t.name, [t.reason, t.unread]]))).toEqual({
        'lut.f4': [`an F4 tensor, ${reads}`, null],
        'lut.f6': [`an F6 tensor, ${reads}`, null],
        'scale.f8': [`an F8 tensor, ${reads}`, null],
        mask: ['a boolean tensor', null],
        counts: ['an integer tensor', null],
        freqs: ['a C64 tensor, not a real float one', null],
      });
    } finally {
      await file.close();
    }
  });
});

describe('quantize --transpose: GPT-2 Conv1D weights, stored (in, out)', () => {
  // GPT-2 names: c_attn (in 16, out 48), mlp.c_proj square (32 × 32, where orientation is silent), c_fc in F16.
  const IN = 16;
  let gpt2: string;
  let c_attn: Float32Array;
  let c_proj: Float32Array;
  let c_fc: Float32Array;
  beforeAll(async () => {
    const fc = tensor('F16', [IN, 24], 43);
    const bits = new Uint32Array((fc.data as Uint16Array).length);
    (fc.data as Uint16Array).forEach((h, k) => (bits[k] = float16BitsToFloat32Bits(h)));
    c_fc = new Float32Array(bits.buffer);
    gpt2 = join(work, 'gpt2.safetensors');
    c_attn = gaussianMatrix(IN * 48, 1, 41).data;
    c_proj = gaussianMatrix(32 * 32, 1, 42).data;
    await writeSafetensorsFile(gpt2, {
      'h.0.attn.c_attn.weight': { dtype: 'F32', shape: [IN, 48], data: c_attn },
      'h.0.mlp.c_proj.weight': { dtype: 'F32', shape: [32, 32], data: c_proj },
      'h.0.mlp.c_fc.weight': fc,
      'h.0.ln_1.weight': tensor('F32', [IN], 44),
    });
  });

  /** ‖Ŵ − W‖²/‖W‖² for the decoded (out, in) matrix against the file's (in, out) data read as W = dataᵀ. */
  const errorAgainst = (decoded: { rows: number; cols: number; data: ArrayLike<number> }, stored: Float32Array, transposed: boolean): number => {
    const inFeatures = decoded.rows;
    const out = decoded.cols;
    let error = 0;
    let norm = 0;
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inFeatures; i++) {
        const w = (transposed ? stored[i * out + o] : stored[o * inFeatures + i]) as number;
        error += ((decoded.data[o * inFeatures + i] as number) - w) ** 2;
        norm += w * w;
      }
    }
    return error / norm;
  };

  it('without it, warns (also when quiet) that the Conv1D-named weights would be held transposed', async () => {
    const lines: string[] = [];
    await quantizeModel({ input: gpt2, output: join(work, 'gpt2-as-stored.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines).toEqual([
      "warning: h.0.attn.c_attn.weight and 2 other tensors are named as GPT-2's Conv1D weights, which are stored (in, out), and this file's c_attn or c_fc has their shape: quantize reads (out, in), so the container would hold them transposed; if they are, pass --transpose 'c_attn|q_attn|c_fc|c_proj'",
    ]);
  });

  it('with it, the container holds W (out, in): the square one decodes close to dataᵀ, not to data', async () => {
    const output = join(work, 'gpt2.lmq.safetensors');
    const lines: string[] = [];
    const report = await quantizeModel({ input: gpt2, output, scheme: 'e8-4bit', nonce: 3n, device: 'cpu', workers: 1, quiet: true, transpose: /c_attn|c_fc|c_proj/, log: (line) => lines.push(line) });
    expect(lines).toEqual([]);
    expect(Object.fromEntries(report.quantized.map((q) => [q.name, [q.rows, q.cols]]))).toEqual({
      'h.0.attn.c_attn.weight': [IN, 48],
      'h.0.mlp.c_proj.weight': [32, 32],
      'h.0.mlp.c_fc.weight': [IN, 24],
    });
    const container = await openQuantizedContainerFile(output);
    try {
      // e8-4bit's weight NMSE is D·n/N ≈ 6.5·10⁻³ (16 and 32 are Hadamard lengths); 0.05 is far above
      // its spread at these sizes, and a transposed read of Gaussian data has an error near 2.
      const attn = await decodedMatrix(container, 'h.0.attn.c_attn.weight');
      expect(errorAgainst(attn, c_attn, true)).toBeLessThan(0.05);
      const proj = await decodedMatrix(container, 'h.0.mlp.c_proj.weight');
      expect(errorAgainst(proj, c_proj, true)).toBeLessThan(0.05);
      expect(errorAgainst(proj, c_proj, false)).toBeGreaterThan(1);
      const fc = await decodedMatrix(container, 'h.0.mlp.c_fc.weight');
      expect(errorAgainst(fc, c_fc, true)).toBeLessThan(0.05);
    } finally {
      await container.close();
    }
  });

  it('an F64 output feature that underflows in f32 is named by its feature when read transposed', async () => {
    const path = join(work, 'gpt2-f64.safetensors');
    // (in 16, out 8); output feature 3 is column 3 of the stored tensor: 1e-300, zero in f32.
    const data = new Float64Array(IN * 8).map((_, k) => (k % 8 === 3 ? 1e-300 : 0.5 + (k % 5)));
    await writeSafetensorsFile(path, { 'h.0.attn.c_proj.weight': { dtype: 'F64', shape: [IN, 8], data } });
    await expect(quantizeModel({ input: path, output: join(work, 'f64.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, transpose: /c_proj/, log: () => {} })).rejects.toThrow(
      /^tensor "h\.0\.attn\.c_proj\.weight" has the column 3 of the stored \(in, out\) matrix \(output feature 3\) whose entries, the largest 1\.000e-300 in magnitude, all underflow to 0 .*; to quantize the other tensors without it, add --exclude '\^h\\\.0\\\.attn\\\.c_proj\\\.weight\$'$/,
    );
  });

  it('is refused when it matches none of the selected tensors', async () => {
    await expect(quantizeModel({ input: gpt2, output: join(work, 'none.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, transpose: /qkv/, log: () => {} })).rejects.toThrow(
      '--transpose qkv matches none of the 3 selected tensors',
    );
  });
});

describe('quantize: a refused tensor, and how to quantize the others', () => {
  it('names the --exclude that leaves it out; following it quantizes the rest', async () => {
    const path = join(work, 'late-nan.safetensors');
    const bad = gaussianMatrix(16 * 16, 1, 51).data;
    bad[3 * 16 + 7] = Number.NaN;
    await writeSafetensorsFile(path, { 'layers.0.weight': tensor('F32', [16, 16], 52), 'lm_head.weight': { dtype: 'F32', shape: [16, 16], data: bad } });
    const run = (exclude?: RegExp) =>
      quantizeModel({ input: path, output: join(work, 'late-nan.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: () => {}, ...(exclude === undefined ? {} : { exclude }) });
    const refusal = await run().then(
      () => '',
      (error: unknown) => String(error),
    );
    expect(refusal).toMatch(/tensor "lm_head\.weight" has a non-finite entry NaN at \[3, 7\]; to quantize the other tensors without it, add --exclude '\^lm_head\\\.weight\$'$/);
    const advised = /--exclude '([^']*)'/.exec(refusal)?.[1] as string;
    const report = await run(new RegExp(advised));
    expect(report.quantized.map((q) => q.name)).toEqual(['layers.0.weight']);
  });

  it('int4-g32: a row too small for fp16 scales is pointed to a lattice scheme, which quantizes it', async () => {
    const path = join(work, 'dead-row.safetensors');
    const data = gaussianMatrix(64 * 32, 1, 53).data;
    for (let i = 0; i < 64; i++) data[5 * 64 + i] = (data[5 * 64 + i] as number) * 1e-6; // row 5: |w| ≲ 4e-6
    await writeSafetensorsFile(path, { 'a.weight': { dtype: 'F32', shape: [32, 64], data } });
    const run = (scheme: 'int4-g32' | 'e8-4bit') => quantizeModel({ input: path, output: join(work, `dead-row-${scheme}.lmq.safetensors`), scheme, device: 'cpu', workers: 1, quiet: true, log: () => {} });
    await expect(run('int4-g32')).rejects.toThrow(/column 5's largest entry after rotation .* needs a scale below fp16's normal range .*; quantize it with a lattice scheme \(f32 scales\), or multiply the tensor by a power of two in the model file first/);
    expect((await run('e8-4bit')).quantized).toHaveLength(1);
  });
});

describe('quantize: warnings and advice that must not mislead', () => {
  it('no Conv1D warning for nn.Linear models that reuse GPT-2 names (StarCoder2, Qwen-1: c_fc [4d, d], c_attn [3d, d])', async () => {
    const path = join(work, 'linear-names.safetensors');
    await writeLayout(path, { 'model.layers.0.mlp.c_fc.weight': ['F32', [64, 16]], 'model.layers.0.mlp.c_proj.weight': ['F32', [16, 64]], 'transformer.h.0.attn.c_attn.weight': ['F32', [48, 16]] });
    const lines: string[] = [];
    await quantizeModel({ input: path, output: join(work, 'linear-names.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines).toEqual([]);
    const inspected = await inspectFile(path);
    expect(inspected.kind === 'safetensors' && inspected.notices).toEqual([]);
  });

  it("the --exclude advice survives a shell for a name with a quote, and names a slice's entry by [i, row, col]", async () => {
    const path = join(work, 'quote.safetensors');
    const experts = gaussianMatrix(3 * 16 * 16, 1, 61).data;
    experts[2 * 256 + 5 * 16 + 9] = Number.POSITIVE_INFINITY;
    await writeSafetensorsFile(path, { "layer's experts": { dtype: 'F32', shape: [3, 16, 16], data: experts }, 'ok.weight': tensor('F32', [16, 16], 62) });
    const refusal = await quantizeModel({ input: path, output: join(work, 'quote.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, tensors: /./, log: () => {} }).then(
      () => '',
      (error: unknown) => String(error),
    );
    expect(refusal).toMatch(/tensor "layer's experts" has a non-finite entry Infinity at \[2, 5, 9\]; to quantize the other tensors without it, add --exclude /);
    // What a shell makes of the advised argument: a regular expression that matches that name only.
    const argument = /--exclude (.*)$/.exec(refusal)?.[1] as string;
    const parsed = execFileSync('bash', ['-c', `printf %s ${argument}`], { encoding: 'utf8' });
    expect(new RegExp(parsed).test("layer's experts")).toBe(true);
    expect(new RegExp(parsed).test('ok.weight')).toBe(false);
  });
});

describe('quantize: a second review of the selection', () => {
  it('codes under other names (optimum-quanto _data, an FP8 w8) count, and their scales are companions, 3-D ones too', async () => {
    const path = join(work, 'other-codes.safetensors');
    const layout: Layout = {
      'l0.q.weight._data': ['I32', [64, 64]],
      'l0.q.weight._scale': ['F32', [64, 8]],
      'l1.w8': ['F8_E4M3', [64, 64]],
      'l1.w8_scale': ['F32', [16, 16]],
      'experts.weight_packed': ['I32', [4, 64, 16]],
      'experts.weight_scale': ['BF16', [4, 64, 16]],
      'embed.weight': ['F32', [32, 16]],
    };
    await writeLayout(path, layout);
    const file = await openSafetensorsFile(path);
    try {
      for (const pattern of [undefined, /./]) {
        const { selected, skipped } = selectTensors(file, pattern);
        expect(selected.map((m) => m.name)).toEqual(['embed.weight']);
        const unread = skipped.filter((t) => t.unread === 'codes').map((t) => t.name);
        expect(unread.sort()).toEqual(['experts.weight_packed', 'l0.q.weight._data', 'l1.w8']);
        for (const name of ['l0.q.weight._scale', 'l1.w8_scale', 'experts.weight_scale']) expect(skipped.find((t) => t.name === name)?.reason, name).toMatch(/^beside .*, the codes of a quantized weight: its scales or zero points, not a weight$/);
      }
    } finally {
      await file.close();
    }
    // Mostly codes: refused by default, and inspect says so.
    await expect(quantizeModel({ input: path, output: join(work, 'other-codes.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: () => {} })).rejects.toThrow(/^quantize would leave out most of the model: 3 tensors of quantized codes/);
    const inspected = await inspectFile(path);
    expect(inspected.kind === 'safetensors' ? inspected.notices[0] : null).toMatch(/^a default quantize refuses: quantize would leave out most of the model/);
  });

  it('GPT-2: the Conv1D evidence comes from the whole file, so --tensors c_proj alone still warns', async () => {
    const path = join(work, 'gpt2-partial.safetensors');
    await writeLayout(path, { 'h.0.attn.c_attn.weight': ['F32', [16, 48]], 'h.0.mlp.c_proj.weight': ['F32', [64, 16]] });
    const lines: string[] = [];
    await quantizeModel({ input: path, output: join(work, 'gpt2-partial.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, tensors: /c_proj/, log: (line) => lines.push(line) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warning: h\.0\.mlp\.c_proj\.weight is named as GPT-2's Conv1D weights, which are stored \(in, out\), and this file's c_attn or c_fc has their shape/);
    // inspect says what a default quantize (both tensors selected) would warn of.
    const inspected = await inspectFile(path);
    expect(inspected.kind === 'safetensors' && inspected.notices).toEqual([
      "warning: h.0.attn.c_attn.weight and 1 other tensor are named as GPT-2's Conv1D weights, which are stored (in, out), and this file's c_attn or c_fc has their shape: quantize reads (out, in), so the container would hold them transposed; if they are, pass --transpose 'c_attn|q_attn|c_fc|c_proj'",
    ]);
  });

  it('--transpose, --tensors and --exclude match tensor names (a 3-D tensor for all its slices), global regular expressions too', async () => {
    const path = join(work, 'experts-in-out.safetensors');
    await writeLayout(path, { 'moe.experts': ['F32', [3, 16, 24]], 'a.weight': ['F32', [16, 16]] });
    const report = await quantizeModel({ input: path, output: join(work, 'experts-in-out.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, tensors: /./g, transpose: /^moe\.experts$/g, log: () => {} });
    // Stored [3, in 16, out 24]: each slice written (out 24, in 16), i.e. rows (in) 16, cols (out) 24.
    expect(report.quantized.map((q) => [q.name, q.rows, q.cols]).sort()).toEqual([
      ['a.weight', 16, 16],
      ['moe.experts.0', 16, 24],
      ['moe.experts.1', 16, 24],
      ['moe.experts.2', 16, 24],
    ]);
    const file = await openSafetensorsFile(path);
    try {
      // A /g exclude keeps no state between tensors: both are left out.
      expect(selectTensors(file, /./g, /weight|experts/g).selected).toEqual([]);
    } finally {
      await file.close();
    }
  });

  it('the --exclude advice joins an --exclude already given', async () => {
    const path = join(work, 'two-bad.safetensors');
    const bad = gaussianMatrix(16 * 16, 1, 71).data;
    bad[17] = Number.NaN;
    await writeSafetensorsFile(path, { 'a.weight': { dtype: 'F32', shape: [16, 16], data: bad }, 'b.weight': tensor('F32', [16, 16], 72), 'c.weight': tensor('F32', [16, 16], 73) });
    const refusal = await quantizeModel({ input: path, output: join(work, 'two-bad.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, exclude: /^c\.weight$/, log: () => {} }).then(
      () => '',
      (error: unknown) => String(error),
    );
    expect(refusal).toMatch(/; to quantize the other tensors without it, make it --exclude '\(\^c\\\.weight\$\)\|\^a\\\.weight\$'$/);
  });
});

describe('quantize: a user journey (helper-177)', () => {
  it('an --exclude that leaves out every selected tensor says so, not that the model has no matrix', async () => {
    const path = join(work, 'all-excluded.safetensors');
    await writeLayout(path, { 'model.layers.0.mlp.up_proj.weight': ['F16', [32, 16]], 'model.norm.weight': ['F16', [16]], 'lm_head.weight': ['F16', [32, 16]] });
    const refusal = (options: { tensors?: RegExp; exclude: RegExp }) =>
      quantizeModel({ input: path, output: join(work, 'all-excluded.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: () => {}, ...options }).then(
        () => '',
        (error: unknown) => String(error),
      );
    // Before: "no 2-D float tensor (F32/F16/BF16/F64) of at least 8 × 8 in …all-excluded.safetensors", of a model that has two.
    expect(await refusal({ exclude: /./ })).toMatch(/--exclude \. leaves out every tensor quantize selects in .*all-excluded\.safetensors: 2 tensors \(lm_head\.weight, model\.layers\.0\.mlp\.up_proj\.weight\), so there is nothing to quantize$/);
    expect(await refusal({ tensors: /up_proj/, exclude: /mlp/ })).toMatch(/--exclude mlp leaves out every tensor --tensors up_proj selects in .*: 1 tensor \(model\.layers\.0\.mlp\.up_proj\.weight\)/);
    // Where --tensors itself selects nothing, that is still what is said.
    expect(await refusal({ tensors: /norm/, exclude: /lm_head/ })).toMatch(/no 2-D float tensor .* matches --tensors norm; it matches model\.norm\.weight, left out: a 1-D tensor, not a matrix$/);
  });
});

describe('quantize: tied embeddings (helper-177)', () => {
  it('says, in quantize and inspect, that a model without lm_head.weight has its embedding as the output layer', async () => {
    const tied: Layout = { 'model.embed_tokens.weight': ['BF16', [64, 16]], 'model.layers.0.mlp.up_proj.weight': ['BF16', [32, 16]], 'model.norm.weight': ['BF16', [16]] };
    const path = join(work, 'tied.safetensors');
    await writeLayout(path, tied);
    const note =
      "note: the model has no output layer of its own (no lm_head.weight): if its config ties the word embeddings (tie_word_embeddings), model.embed_tokens.weight is its output layer too, and the container's model.embed_tokens.weight (out × in = 64 × 16) serves as both: logits = W·h";
    const inspected = await inspectFile(path);
    expect(inspected.kind === 'safetensors' && inspected.notices).toEqual([note]);
    const lines: string[] = [];
    const report = await quantizeModel({ input: path, output: join(work, 'tied.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, log: (line) => lines.push(line) });
    expect(lines).toContain(note);
    expect(report.quantized.map((q) => [q.name, q.cols, q.rows])).toContainEqual(['model.embed_tokens.weight', 64, 16]);
    // With an output layer of its own (untied; Meta's `output.weight` too), nothing to say.
    for (const head of ['lm_head.weight', 'output.weight']) {
      const untied = join(work, `untied-${head}.safetensors`);
      await writeLayout(untied, { ...tied, [head]: ['BF16', [64, 16]] });
      const listed = await inspectFile(untied);
      expect(listed.kind === 'safetensors' && listed.notices).toEqual([]);
    }
  });

  it('tells tied from untied by the names real models use (helper-180)', async () => {
    // Embedding, a layer, and the output layer where the model has one of its own. Before: ChatGLM3's
    // and GLM-4's `transformer.output_layer.weight` and the original Phi-2's `lm_head.linear.weight`
    // were not seen, and the note said those models had no output layer of their own.
    const models: [string, string[], string | null][] = [
      ['gpt-2', ['wte.weight', 'h.0.mlp.c_fc.weight'], 'wte.weight'],
      ['gpt-neox', ['gpt_neox.embed_in.weight', 'gpt_neox.layers.0.attention.dense.weight', 'embed_out.weight'], null],
      ['gpt-neox-tied', ['gpt_neox.embed_in.weight', 'gpt_neox.layers.0.attention.dense.weight'], 'gpt_neox.embed_in.weight'],
      ['bert-mlm', ['bert.embeddings.word_embeddings.weight', 'bert.encoder.layer.0.attention.self.query.weight', 'cls.predictions.decoder.weight'], null],
      ['llama-meta', ['tok_embeddings.weight', 'layers.0.attention.wq.weight', 'output.weight'], null],
      ['llama-meta-tied', ['tok_embeddings.weight', 'layers.0.attention.wq.weight'], 'tok_embeddings.weight'],
      ['chatglm3', ['transformer.embedding.word_embeddings.weight', 'transformer.encoder.layers.0.mlp.dense_4h_to_h.weight', 'transformer.output_layer.weight'], null],
      ['phi-2-original', ['transformer.embd.wte.weight', 'transformer.h.0.mixer.Wqkv.weight', 'lm_head.linear.weight'], null],
      // An encoder-decoder's decoder layers are not an output layer: BART ties its embeddings.
      ['bart', ['model.shared.weight', 'model.decoder.embed_tokens.weight', 'model.decoder.layers.0.self_attn.q_proj.weight'], 'model.decoder.embed_tokens.weight'],
    ];
    for (const [model, names, embedding] of models) {
      const path = join(work, `names-${model}.safetensors`);
      await writeLayout(path, Object.fromEntries(names.map((name) => [name, ['BF16', [64, 16]] as Layout[string]])));
      const listed = await inspectFile(path);
      const notes = listed.kind === 'safetensors' ? listed.notices.filter((notice) => notice.startsWith('note: the model has no output layer')) : [];
      expect(notes.map((note) => /, (\S+) is its output layer too/.exec(note)?.[1]), model).toEqual(embedding === null ? [] : [embedding]);
    }
  });
});
