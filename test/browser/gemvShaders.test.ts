import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f16GemvShaderSource } from '../../src/gpu/kernels/f16Gemv.js';
import { hadamardShaderSource } from '../../src/gpu/kernels/hadamard.js';
import { int4GemvShaderSource } from '../../src/gpu/kernels/int4Gemv.js';
import { latticeGemvShaderSource } from '../../src/gpu/kernels/latticeGemv.js';
import { D3_GROUP_SCALE, d3GroupScaledLeaderTable } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { latticeGemvI8LeaderTable, latticeGemvI8ShaderSource } from '../../src/gpu/kernels/latticeGemvI8.js';
import { universalGemvFinishShaderSource, universalGemvShaderSource } from '../../src/gpu/kernels/universalGemv.js';
import { inputsI8ShaderSource } from '../../src/gpu/kernels/inputsI8.js';
import { nonFiniteTailShaderSource } from '../../src/gpu/kernels/nonFiniteTail.js';
import { escapeNibblesShaderSource, universalGemvI8LeaderTable, universalGemvI8ShaderSource } from '../../src/gpu/kernels/universalGemvI8.js';
import { weightOnlyGemvShaderSource } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { e8MatmulShaderSource } from '../../src/gpu/kernels/e8Matmul.js';
import { e8InputsShaderSource, e8ResidueGemvShaderSource, e8ResidueRepackShaderSource } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { browserUnavailableReason, launchChromium, startDemoServer, type Chromium } from './browserHarness.js';

/*
 * The GEMV kernels' WGSL (and the E8 product's) compiles in Chromium (WebGPU on SwiftShader, the
 * browser's own Tint), not only in the Dawn that Node runs: every variant an app can reach — f32 and int8 inputs, tiles of 1 and
 * 8 right-hand sides, plain and subgroup reductions where the browser offers subgroups, packed dot
 * products where its WGSL has packed_4x8_integer_dot_product — through createShaderModule and
 * getCompilationInfo, on the demo's page (a secure origin, as WebGPU needs).
 */

const unavailable = browserUnavailableReason();

interface Shader {
  readonly name: string;
  readonly code: string;
  /** Needs the 'subgroups' feature / the packed dot product language feature. */
  readonly subgroups?: boolean;
  readonly packed?: boolean;
  readonly f16?: boolean;
}

function shaders(): Shader[] {
  const list: Shader[] = [
    { name: 'escape nibbles', code: escapeNibblesShaderSource() },
    { name: 'x̃ to int8', code: inputsI8ShaderSource() },
    { name: 'gemv non-finite tail', code: nonFiniteTailShaderSource() },
    { name: 'universal gemv finish D3', code: universalGemvFinishShaderSource('D3') },
    { name: 'int4 gemv', code: int4GemvShaderSource({ subgroups: false, input: 'f32' }) },
    { name: 'int4 gemv, int8 x (plain dot)', code: int4GemvShaderSource({ subgroups: false, input: 'plain' }) },
    { name: 'int4 gemv, int8 x (packed dot)', code: int4GemvShaderSource({ subgroups: false, input: 'packed' }), packed: true },
    { name: 'weight-only gemv', code: weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32' }) },
    { name: 'weight-only gemv, f16 x, 4 vectors', code: weightOnlyGemvShaderSource({ vectorBlock: 4, inputFormat: 'f16' }) },
    { name: 'hadamard (f16 input, int8 output in the last pass)', code: hadamardShaderSource({ workgroupElements: 4096, subgroups: false, block: 1, threads: 1024 }) },
    { name: 'hadamard (m = 12, 256 invocations)', code: hadamardShaderSource({ workgroupElements: 768, subgroups: false, block: 12, threads: 256 }) },
    { name: 'lattice gemv d3-q6-deterministic', code: latticeGemvShaderSource(1) },
    { name: 'f16 gemv', code: f16GemvShaderSource(false), f16: true },
    { name: 'e8 residue gemv: x̃ to int8', code: e8InputsShaderSource() },
    { name: 'e8 residue gemv: repack', code: e8ResidueRepackShaderSource() },
  ];
  for (const subgroups of [false, true]) {
    for (const dotPath of ['plain', 'packed'] as const) {
      for (const rhsTile of [1, 8] as const) {
        list.push({ name: `e8 residue gemv, ${rhsTile} rhs per tile, subgroups ${subgroups}, ${dotPath}`, code: e8ResidueGemvShaderSource({ rhsTile, subgroups, dotPath }), subgroups, packed: dotPath === 'packed' });
      }
    }
  }
  // The E8 product: operands of one lattice and q share the decode with q compiled in; others (E8 × Z^8)
  // take the run-time decoder.
  const e8q16 = { lattice: 'E8', q: 16, codeBits: 32, indexBits: 2 } as const;
  const z8q4 = { lattice: 'Z', q: 4, codeBits: 16, indexBits: 1 } as const;
  for (const dotPath of ['plain', 'packed'] as const) {
    list.push({ name: `e8 product e8-q16-deterministic × itself, ${dotPath}`, code: e8MatmulShaderSource({ dotPath, a: e8q16, b: e8q16 }), packed: dotPath === 'packed' });
    list.push({ name: `e8 product E8 q = 16 × Z^8 q = 4, ${dotPath}`, code: e8MatmulShaderSource({ dotPath, a: e8q16, b: z8q4 }), packed: dotPath === 'packed' });
  }
  for (const rhsTile of [1, 8] as const) {
    for (const subgroups of [false, true]) {
      list.push({ name: `universal gemv d3-q6, tile ${rhsTile}, subgroups ${subgroups}`, code: universalGemvShaderSource({ lattice: 'D3', rhsTile, subgroups, q: 6 }), subgroups });
      list.push({ name: `universal gemv e8-q16, tile ${rhsTile}, subgroups ${subgroups}`, code: universalGemvShaderSource({ lattice: 'E8', rhsTile, subgroups, q: 16 }), subgroups });
      list.push({ name: `universal gemv d3-q6 writing Y, tile ${rhsTile}, subgroups ${subgroups}`, code: universalGemvShaderSource({ lattice: 'D3', rhsTile, subgroups, q: 6, finished: true }), subgroups });
      for (const dotPath of ['plain', 'packed'] as const) {
        const packed = dotPath === 'packed';
        list.push({ name: `universal int8 gemv, tile ${rhsTile}, subgroups ${subgroups}, ${dotPath}`, code: universalGemvI8ShaderSource({ q: 6, rhsTile, subgroups, dotPath, leaderTable: universalGemvI8LeaderTable(6, rhsTile, 32768) }), subgroups, packed });
        for (const scaleMultiples of ['cubic', 'table'] as const) {
          const leaderTable = latticeGemvI8LeaderTable(6, rhsTile, 32768, { scaleMultiples });
          list.push({ name: `lattice int8 gemv, tile ${rhsTile}, subgroups ${subgroups}, ${dotPath}, multiples from a ${scaleMultiples}`, code: latticeGemvI8ShaderSource({ q: 6, scale: { place: 'block', multiples: scaleMultiples }, indexBits: 2, rhsTile, subgroups, dotPath, leaderTable }), subgroups, packed });
        }
        list.push({
          name: `group-scaled D3 int8 gemv (prototype), tile ${rhsTile}, subgroups ${subgroups}, ${dotPath}`,
          code: latticeGemvI8ShaderSource({ q: 6, scale: D3_GROUP_SCALE, indexBits: 4, rhsTile, subgroups, dotPath, leaderTable: d3GroupScaledLeaderTable(rhsTile, 32768) }),
          subgroups,
          packed,
        });
      }
    }
  }
  return list;
}

describe.skipIf(unavailable !== undefined)('GEMV WGSL in Chromium', () => {
  let chromium: Chromium;
  let server: ViteDevServer;
  let url: string;
  beforeAll(async () => {
    ({ server, url } = await startDemoServer());
    chromium = await launchChromium({ webgpu: true });
  }, 120_000);
  afterAll(async () => {
    await chromium?.close();
    await server?.close();
  });

  it('every GEMV variant compiles without errors (variants needing a missing feature are reported, not compiled)', async () => {
    const page = await chromium.browser.newPage();
    await page.goto(url, { waitUntil: 'load' });
    const all = shaders();
    const report = await page.evaluate(async (list: readonly Shader[]) => {
      const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
      if (!gpu) return { error: 'no navigator.gpu', results: [] as { name: string; skipped?: string; errors: string[] }[] };
      const adapter = await gpu.requestAdapter();
      if (!adapter) return { error: 'no adapter', results: [] };
      const wanted = (['subgroups', 'shader-f16'] as const).filter((feature) => adapter.features.has(feature));
      const device = await adapter.requestDevice({ requiredFeatures: wanted });
      const packedDot = gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false;
      const results: { name: string; skipped?: string; errors: string[] }[] = [];
      for (const shader of list) {
        if (shader.subgroups && !device.features.has('subgroups')) results.push({ name: shader.name, skipped: 'no subgroups', errors: [] });
        else if (shader.f16 && !device.features.has('shader-f16')) results.push({ name: shader.name, skipped: 'no shader-f16', errors: [] });
        else if (shader.packed && !packedDot) results.push({ name: shader.name, skipped: 'no packed_4x8_integer_dot_product', errors: [] });
        else {
          const module = device.createShaderModule({ label: shader.name, code: shader.code });
          const info = await module.getCompilationInfo();
          results.push({ name: shader.name, errors: info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`) });
        }
      }
      device.destroy();
      return { error: null, results };
    }, all);
    await page.close();
    expect(report.error).toBeNull();
    expect(report.results).toHaveLength(all.length);
    const failed = report.results.filter((r) => r.errors.length > 0);
    expect(failed, JSON.stringify(failed, null, 1)).toEqual([]);
    const compiled = report.results.filter((r) => r.skipped === undefined);
    // At least the core-WGSL variants (no optional feature) compile everywhere.
    expect(compiled.length).toBeGreaterThanOrEqual(all.filter((s) => !s.subgroups && !s.packed && !s.f16).length);
    const skipped = report.results.filter((r) => r.skipped !== undefined);
    if (skipped.length > 0) console.warn(`GEMV WGSL in Chromium: ${compiled.length} compiled, ${skipped.length} skipped (${[...new Set(skipped.map((r) => r.skipped))].join(', ')})`);
  }, 180_000);
});
