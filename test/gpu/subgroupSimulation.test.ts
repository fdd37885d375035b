import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/gpu/device.js';
import { f32Gemv } from '../../src/gpu/kernels/f32Gemv.js';
import { hadamardColumns, hadamardInverseColumns } from '../../src/gpu/kernels/hadamard.js';
import { universalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { universalGemvI8, UniversalGemvI8Weights } from '../../src/gpu/kernels/universalGemvI8.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

// Each emulated subgroup size compiles its own variants of the kernels, the universal int8-input GEMV's
// tile of right-hand sides among them (k = 9, both dot paths): cold, lavapipe takes ≈ 45–60 s per such
// pipeline, more than the 120 s of vitest.config.ts for the pair on a loaded 2-core machine.
vi.setConfig({ testTimeout: 300_000 });

/*
 * The subgroup kernels at subgroup sizes lavapipe cannot give: 32 (NVIDIA, where the benchmark's H200
 * run takes the path for a subgroup as wide as a column's 32 lanes), 64 (AMD) and 128. Each module the
 * library compiles with `enable subgroups` is rewritten before compilation into an emulation of an
 * ideal layout — subgroup k is invocations [kS, kS + S), lane = thread mod S — with the shuffles done
 * through workgroup memory (write, barrier, read the partner's slot, barrier). The kernels' own logic
 * (which lanes they pair, when they fall back, how they combine the widths) then runs at size S, and
 * must give what it gives on its plain path, bit for bit (the butterfly adds in the tree's order).
 * The rewrite knows the builtins by name: a kernel that starts using another subgroup builtin fails
 * here until the emulation learns it. A broken emulation (the step h = 16 dropped) is caught: the
 * control at the end. Measured by an audit at S = 4…128: 0 differences.
 */

const noGpu = await gpuUnavailableReason();

/** A module's code with its subgroup builtins emulated at size `size` (`breakStep`: drop that shuffle step). */
function emulateSubgroups(code: string, size: number, breakStep: number | null, compiled: { count: number }): string {
  if (!code.includes('enable subgroups;')) return code;
  compiled.count++;
  let c = code.replace(/\/\/[^\n]*/g, '').replace('enable subgroups;', '');
  c = c.replace(/@builtin\(subgroup_size\) subgroup_size: u32,?\s*/, '');
  c = c.replace(/@builtin\(subgroup_invocation_id\) subgroup_lane: u32,?\s*/, '');
  const main = /fn main\(([\s\S]*?)\)\s*\{/.exec(c);
  if (main === null) throw new Error('a subgroup module without main');
  const at = main.index + main[0].length;
  c = `${c.slice(0, at)}\n  sim_thread = thread; let subgroup_size = SIM_S; let subgroup_lane = thread % SIM_S;\n${c.slice(at)}`;
  c = c.replaceAll('subgroupBroadcastFirst(thread)', '(thread / SIM_S * SIM_S)');
  c = c.replaceAll('subgroupAll(', 'sim_all(');
  c = c.replaceAll('subgroupAdd(1u)', 'SIM_S');
  const vec4Shuffles = c.includes('subgroupShuffleXor(sums.lo');
  c = c.replace(/subgroupShuffleXor\(sums\.(lo|hi), h\)/g, 'sim_xor4(sums.$1, h)');
  c = c.replace(/subgroupShuffleXor\(/g, 'sim_xor1(');
  const unhandled = /subgroup[A-Z]\w*/.exec(c);
  if (unhandled !== null) throw new Error(`the emulation does not know ${unhandled[0]}`);
  const partner = breakStep === null ? 'sim_thread ^ h' : `sim_thread ^ select(h, 0u, h == ${breakStep}u)`;
  const shuffle = vec4Shuffles
    ? `var<workgroup> sim_buf4: array<vec4<f32>, THREADS>;
fn sim_xor4(v: vec4<f32>, h: u32) -> vec4<f32> { sim_buf4[sim_thread] = v; workgroupBarrier(); let r = sim_buf4[${partner}]; workgroupBarrier(); return r; }`
    : `var<workgroup> sim_buf1: array<f32, THREADS>;
fn sim_xor1(v: f32, h: u32) -> f32 { sim_buf1[sim_thread] = v; workgroupBarrier(); let r = sim_buf1[${partner}]; workgroupBarrier(); return r; }`;
  return `${c}
const SIM_S: u32 = ${size}u;
var<private> sim_thread: u32;
fn sim_all(b: bool) -> bool { return b; }
${shuffle}
`;
}

/** Entries whose bits differ (NaN equals NaN). */
function bitsDiffer(a: Float32Array, b: Float32Array): number {
  let differ = 0;
  for (let i = 0; i < a.length; i++) if (!(a[i] === b[i] || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) differ++;
  return differ;
}

const REQUIRE = { subgroups: true, subgroupTestMode: 'require-shuffles' } as const;

for (const [size, breakStep] of [[32, null], [64, null], [128, null], [32, 16]] as const) {
  const control = breakStep !== null;
  describe.skipIf(noGpu !== undefined)(control ? `control: an emulation at ${size} with its step h = ${breakStep} dropped` : `subgroup kernels at an emulated subgroup size of ${size}`, () => {
    let context: GpuContext;
    const compiled = { count: 0 };
    beforeAll(async () => {
      context = await testDevice({ label: `subgroups emulated at ${size}` });
      const { device } = context;
      const compile = device.createShaderModule.bind(device);
      device.createShaderModule = (descriptor) => compile({ ...descriptor, code: emulateSubgroups(descriptor.code, size, breakStep, compiled) });
    });
    afterAll(() => context?.device.destroy());

    it.skipIf(control)('the rotation (one pass and several, two workgroup sizes) equals the CPU bit for bit, forward and inverse', async () => {
      const { device } = context;
      for (const [rows, cols, options] of [[256, 3, {}], [1000, 3, { workgroupElements: 256 }], [20, 5, {}]] as const) {
        const rng = new Rng(rows + size);
        const m: Matrix = { rows, cols, data: Float32Array.from({ length: rows * cols }, () => rng.nextGaussian()) };
        const forward = await hadamardColumns(device, m, 42, { ...REQUIRE, ...options });
        const rotation = new RandomizedHadamard(rows, 42);
        const length = forward.rows;
        const cpu = new Float32Array(length * cols);
        for (let j = 0; j < cols; j++) cpu.set(rotation.forward(m.data.subarray(j * rows, (j + 1) * rows)), j * length);
        expect(bitsDiffer(forward.data, cpu), `${rows} × ${cols} forward`).toBe(0);
        const inverse = await hadamardInverseColumns(device, forward, 42, rows, { ...REQUIRE, ...options });
        const cpuInverse = new Float32Array(rows * cols);
        for (let j = 0; j < cols; j++) cpuInverse.set(rotation.inverse(cpu.subarray(j * length, (j + 1) * length)), j * rows);
        expect(bitsDiffer(inverse.data, cpuInverse), `${rows} × ${cols} inverse`).toBe(0);
      }
      expect(compiled.count, 'no module went through the emulation').toBeGreaterThan(0);
    });

    it.skipIf(control)('the f32 column GEMV gives the exact sums of small integers', async () => {
      const rng = new Rng(7);
      const [n, cols] = [1000, 17];
      const w: Matrix = { rows: n, cols, data: Float32Array.from({ length: n * cols }, () => rng.nextInt(17) - 8) };
      const x = Float32Array.from({ length: n }, () => rng.nextInt(17) - 8);
      const y = await f32Gemv(context.device, w, x, REQUIRE);
      const exact = Float32Array.from({ length: cols }, (_, j) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += (w.data[j * n + i] as number) * (x[i] as number);
        return sum;
      });
      expect(bitsDiffer(y, exact)).toBe(0);
    });

    it(control ? 'is caught: the universal GEMV differs from its plain path' : 'the universal GEMV (f32 and int8 inputs, both dot paths) equals its plain path bit for bit', async () => {
      const { device } = context;
      let differing = 0;
      for (const [scheme, n, cols, k] of [['d3-q6', 1100, 19, 1], ['e8-q16', 512, 12, 3], ['d3-q6', 130, 20, 9]] as const) {
        const gpuW = uploadUniversalMatrix(device, quantize(gaussianMatrix(n, cols, 3), { scheme, seed: 5, nonce: 9 }));
        const x = gaussianMatrix(n, k, 4);
        try {
          const plain = await universalGemv(device, gpuW, x, { subgroups: false });
          differing += bitsDiffer((await universalGemv(device, gpuW, x, REQUIRE)).data, plain.data);
          if (scheme === 'd3-q6' && !control) {
            const weights = UniversalGemvI8Weights.create(device, gpuW);
            try {
              for (const dotPath of ['plain', 'packed'] as const) {
                const reference = await universalGemvI8(device, weights, x, { dotPath, subgroups: false });
                differing += bitsDiffer((await universalGemvI8(device, weights, x, { dotPath, ...REQUIRE })).data, reference.data);
              }
            } finally {
              weights.destroy();
            }
          }
        } finally {
          gpuW.destroy();
        }
      }
      expect(compiled.count, 'no module went through the emulation').toBeGreaterThan(0);
      if (control) expect(differing).toBeGreaterThan(0);
      else expect(differing).toBe(0);
    });
  });
}
