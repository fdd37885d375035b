import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeModel, selectTensors } from '../../src/cli/commands.js';
import { openQuantizedContainerFile } from '../../src/format/containerFile.js';
import type { SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { openSafetensorsFile, writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { dequantize } from '../../src/product/dequantize.js';
import { float16BitsToFloat32Bits } from '../../src/scalar/floatFormats.js';
import { WeightOnlyQuantized } from '../../src/weightonly/quantized.js';
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
      expectSkipped('model.layers.0.mlp.down_proj.weight', /^an F8 tensor, as quantized checkpoints store weights: .*start from the unquantized checkpoint$/, true);
      expectSkipped('model.layers.0.mlp.down_proj.weight_scale_inv', /^beside model\.layers\.0\.mlp\.down_proj\.weight \(F8_E4M3\), a weight stored quantized: its scales or zero points, not a weight$/, false);
      expectSkipped('model.layers.0.mlp.up_proj.qweight', /^an integer tensor: packed codes of an already quantized checkpoint/, true);
      expectSkipped('model.layers.0.mlp.up_proj.scales', /beside model\.layers\.0\.mlp\.up_proj\.qweight \(I32\)/, false);
      expectSkipped('model.layers.0.mlp.up_proj.qzeros', /^an integer tensor$/, true);
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj', /^a 3-D tensor: quantize takes 2-D matrices/, true);
      expectSkipped('model.layers.0.mlp.experts.gate_up_proj_bias', /^a bias, by its name \(--tensors selects it\)$/, false);
      expectSkipped('model.layers.0.self_attn.q_proj.bias', /^a 1-D tensor, not a matrix$/, false);
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
      "warning: h.0.attn.c_attn.weight and 2 other tensors are named as GPT-2's Conv1D weights, which are stored (in, out): quantize reads (out, in), so the container would hold them transposed; if they are, pass --transpose 'c_attn|c_fc|c_proj'",
    ]);
  });

  /** Matrix `name` of a container, decoded ((in, out) column-major: W row-major). */
  const decoded = async (container: Awaited<ReturnType<typeof openQuantizedContainerFile>>, name: string) => {
    const { matrix } = await container.read(name);
    return matrix instanceof WeightOnlyQuantized ? matrix.decode() : dequantize(matrix);
  };

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
      const attn = await decoded(container, 'h.0.attn.c_attn.weight');
      expect(errorAgainst(attn, c_attn, true)).toBeLessThan(0.05);
      const proj = await decoded(container, 'h.0.mlp.c_proj.weight');
      expect(errorAgainst(proj, c_proj, true)).toBeLessThan(0.05);
      expect(errorAgainst(proj, c_proj, false)).toBeGreaterThan(1);
      const fc = await decoded(container, 'h.0.mlp.c_fc.weight');
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
      /has the row 3 \(output feature 3\) whose entries, the largest 1\.000e-300 in magnitude, all underflow to 0/,
    );
  });

  it('is refused when it matches none of the selected tensors', async () => {
    await expect(quantizeModel({ input: gpt2, output: join(work, 'none.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, transpose: /qkv/, log: () => {} })).rejects.toThrow(
      '--transpose qkv matches none of the 3 selected tensors',
    );
  });
});

describe('quantize: a refused tensor, and how to quantize the others', () => {
  it('names a --tensors that leaves it out; following it quantizes the rest', async () => {
    const path = join(work, 'late-nan.safetensors');
    const bad = gaussianMatrix(16 * 16, 1, 51).data;
    bad[3 * 16 + 7] = Number.NaN;
    await writeSafetensorsFile(path, { 'layers.0.weight': tensor('F32', [16, 16], 52), 'lm_head.weight': { dtype: 'F32', shape: [16, 16], data: bad } });
    const run = (tensors?: RegExp) =>
      quantizeModel({ input: path, output: join(work, 'late-nan.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: () => {}, ...(tensors === undefined ? {} : { tensors }) });
    const refusal = await run().then(
      () => '',
      (error: unknown) => String(error),
    );
    expect(refusal).toMatch(/tensor "lm_head\.weight" has a non-finite entry NaN at \[3, 7\]; to quantize the other tensors without it, pass --tensors '\^\(\?!lm_head\\\.weight\$\)'$/);
    const advised = /--tensors '([^']*)'/.exec(refusal)?.[1] as string;
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
