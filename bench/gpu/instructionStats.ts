import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import { f16GemvShaderSource } from '../../src/gpu/kernels/f16Gemv.js';
import { f32GemvShaderSource } from '../../src/gpu/kernels/f32Gemv.js';
import { int4GemvShaderSource } from '../../src/gpu/kernels/int4Gemv.js';
import { latticeGemvShaderSource, latticeLeaderTableCopies } from '../../src/gpu/kernels/latticeGemv.js';
import { D3_GROUP_SCALE, d3GroupScaledLeaderTable } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { latticeGemvI8LeaderTable, latticeGemvI8ShaderSource } from '../../src/gpu/kernels/latticeGemvI8.js';
import { PADDED_LEADER_ENTRIES, type LeaderTable, type LeaderTableArgs } from '../../src/gpu/kernels/gemvI8Common.js';
import { e8ResidueGemvShaderSource } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { d3QuadGemvShaderSource, d3QuadLeaderCopies } from '../../src/gpu/kernels/d3QuadGemvI8.js';
import { e8PointGemvShaderSource } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { latticeCodeBits, schemeScaleIndexBits } from '../../src/gpu/latticeOperand.js';
import { streamReadShaderSource } from '../../src/gpu/kernels/streamRead.js';
import { e8MatmulShaderSource, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { matmulF32ShaderSource } from '../../src/gpu/kernels/matmulF32.js';
import { pairMatmulShaderSource } from '../../src/gpu/kernels/pairMatmul.js';
import { tableMatmulShaderSource } from '../../src/gpu/kernels/tableMatmul.js';
import { tableLayout, type TableLayout, type TableLayoutKind } from '../../src/gpu/tableLayout.js';
import type { ProductKernel } from '../../src/gpu/engine.js';
import { leaderTableCopies, universalGemvShaderSource } from '../../src/gpu/kernels/universalGemv.js';
import { universalGemvI8LeaderTable, universalGemvI8ShaderSource } from '../../src/gpu/kernels/universalGemvI8.js';
import { weightOnlyGemvShaderSource } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { hadamardShaderSource, planHadamardRotation, rotationThreads } from '../../src/gpu/kernels/hadamard.js';
import { SCHEMES, type SchemeName } from '../../src/quantize/schemes.js';
import { assembleSpirv, buildCompilePipeline, compileRdnaIsa, helperBindings, ISA_CLASSES, rdnaLoopStats, rdnaTools, type IsaClass, type IsaLoopOptions, type IsaLoopStats, type RdnaCompilation } from './rdnaIsa.js';
import { analyzeSpirv, splitDumps, uniformWords, type SpirvLoopStats } from './spirv.js';

/*
 * Instructions per code byte of every GEMV kernel of the report, from the SPIR-V Dawn emits (method:
 * bench/gpu/spirv.ts). `spirvChildMain` runs in a child process started by `instructionStats` with
 * Dawn's `dump_shaders` toggle: it compiles each kernel's WGSL (the variant the benchmark runs, with
 * a `// spirv-stats: KEY` marker line) and Dawn prints WGSL and SPIR-V on stdout, which the parent
 * parses. Kernels whose code depends on uniform values (the universal GEMV reads q and the code
 * width from its uniforms) are analysed with those values known, so only the branches that run are
 * counted; the deterministic GEMV compiles one module per scheme (as the benchmark's device does).
 */

/** The universal schemes whose GEMVs the benchmark measures (and counts). */
export const UNIVERSAL_SCHEMES: readonly SchemeName[] = ['e8-4bit', 'e8-q16', 'd3-q6', 'e8-3bit'];
/** The deterministic schemes whose GEMVs the benchmark measures (and counts). */
export const DETERMINISTIC_SCHEMES: readonly SchemeName[] = ['d3-q6-deterministic', 'e8-q16-deterministic'];

/** One kernel to analyse. */
interface SpirvSubject {
  readonly key: string;
  /** Subjects with the same module key share one compiled module (e.g. the E8 universal schemes). */
  readonly moduleKey: string;
  readonly code: string;
  /** WGSL names of the storage buffers of packed weights (the code stream, and the escape nibbles of the int8-input GEMV). */
  readonly codeVariables: readonly string[];
  /** Uniform members with known values (struct name and values). */
  readonly uniforms?: { readonly struct: string; readonly values: Readonly<Record<string, number>> };
}

function universalSubject(scheme: SchemeName, subgroups: boolean, workgroupBytes: number): SpirvSubject {
  const s = SCHEMES[scheme];
  if (s.kind !== 'lattice' || s.mode !== 'universal') throw new Error(`${scheme} is not universal`);
  // q and the code width are compile-time constants of the kernel (one pipeline per scheme).
  const code = universalGemvShaderSource({ lattice: s.lattice, rhsTile: 1, subgroups, q: s.q, leaderTableCopies: leaderTableCopies(s.lattice, s.q, 1, workgroupBytes) });
  return { key: `universal:${scheme}`, moduleKey: `universal-${scheme}`, code, codeVariables: ['codes'] };
}

/** The leader-table layouts other than the default that the benchmark times kernel alone (bench/gpu.ts). */
const OTHER_LAYOUTS: readonly LeaderTableArgs[] = [{ leaderCopies: 8 }, { leaderCopies: 16 }, { leaderCopies: 32 }, { padLeaderTable: true }];

/** The key suffix of a layout (int8Row in bench/gpu/gemvCases.ts names its rows' keys the same way). */
function layoutSuffix(layout: LeaderTableArgs): string {
  return `:layout${layout.leaderCopies ?? ''}${layout.padLeaderTable === true ? '-padded' : ''}`;
}

/** `table`, or null where it is the kernel's `standard` one (its default row already counts it). */
function otherThanDefault(table: LeaderTable | null, standard: LeaderTable): LeaderTable | null {
  return table !== null && table.copies === standard.copies && table.entries === standard.entries ? null : table;
}

/**
 * The leader table of `layout` where the device's workgroup memory holds it as asked, else null (the
 * benchmark reports such a row as unsupported: no count to show for it).
 */
function layoutTable(table: (layout: LeaderTableArgs) => LeaderTable, layout: LeaderTableArgs): LeaderTable | null {
  try {
    const t = table(layout);
    return layout.padLeaderTable === true && t.entries !== PADDED_LEADER_ENTRIES ? null : t;
  } catch {
    return null;
  }
}

/**
 * The int8-input GEMVs for d3-q6 (universalGemvI8.ts), d3-q6-deterministic and the group-scaled D3
 * prototype (latticeGemvI8.ts), and the E8 residue and point GEMVs of `int8Inputs` (e8ResidueGemvI8.ts,
 * e8PointGemvI8.ts), per byte of codes as every other kernel (their escape nibbles, scale indices and
 * side bytes are not counted; the point form's codes are its int8 points).
 */
function int8Subjects(subgroups: boolean, dotPath: DotPath, workgroupBytes: number): SpirvSubject[] {
  return [
    {
      key: `universal-i8:d3-q6:${dotPath}`,
      moduleKey: `universal-i8-${dotPath}`,
      code: universalGemvI8ShaderSource({ q: 6, rhsTile: 1, subgroups, dotPath, leaderTable: universalGemvI8LeaderTable(6, 1, workgroupBytes) }),
      codeVariables: ['codes'],
    },
    ...(['cubic', 'table'] as const).map((scaleMultiples) => ({
      key: `lattice-i8:d3-q6-deterministic:${dotPath}${scaleMultiples === 'table' ? ':table' : ''}`,
      moduleKey: `lattice-i8-${dotPath}-${scaleMultiples}`,
      code: latticeGemvI8ShaderSource({ q: 6, scale: { place: 'block', multiples: scaleMultiples }, indexBits: 2, rhsTile: 1, subgroups, dotPath, leaderTable: latticeGemvI8LeaderTable(6, 1, workgroupBytes, { scaleMultiples }) }),
      codeVariables: ['codes'],
    })),
    // The other leader-table layouts of the two D3 kernels and of the prototype, as the benchmark times them.
    // A layout that is the kernel's default (8 copies of the universal one, 16 of the deterministic one) is left out.
    ...OTHER_LAYOUTS.flatMap((layout): SpirvSubject[] => {
      const universal = otherThanDefault(layoutTable((l) => universalGemvI8LeaderTable(6, 1, workgroupBytes, l), layout), universalGemvI8LeaderTable(6, 1, workgroupBytes));
      const deterministic = otherThanDefault(layoutTable((l) => latticeGemvI8LeaderTable(6, 1, workgroupBytes, l), layout), latticeGemvI8LeaderTable(6, 1, workgroupBytes));
      return [
        ...(universal === null
          ? []
          : [{
              key: `universal-i8:d3-q6:${dotPath}${layoutSuffix(layout)}`,
              moduleKey: `universal-i8-${dotPath}${layoutSuffix(layout)}`,
              code: universalGemvI8ShaderSource({ q: 6, rhsTile: 1, subgroups, dotPath, leaderTable: universal }),
              codeVariables: ['codes'],
            }]),
        ...(deterministic === null
          ? []
          : [{
              key: `lattice-i8:d3-q6-deterministic:${dotPath}${layoutSuffix(layout)}`,
              moduleKey: `lattice-i8-${dotPath}-cubic${layoutSuffix(layout)}`,
              code: latticeGemvI8ShaderSource({ q: 6, scale: { place: 'block', multiples: 'cubic' }, indexBits: 2, rhsTile: 1, subgroups, dotPath, leaderTable: deterministic }),
              codeVariables: ['codes'],
            }]),
      ];
    }),
    ...((): SpirvSubject[] => {
      const layout: LeaderTableArgs = { leaderCopies: 32 };
      const table = layoutTable((l) => d3GroupScaledLeaderTable(1, workgroupBytes, l), layout);
      return table === null
        ? []
        : [{
            key: `group-scaled-i8:${dotPath}${layoutSuffix(layout)}`,
            moduleKey: `group-scaled-i8-${dotPath}${layoutSuffix(layout)}`,
            code: latticeGemvI8ShaderSource({ q: 6, scale: D3_GROUP_SCALE, indexBits: 4, rhsTile: 1, subgroups, dotPath, leaderTable: table }),
            codeVariables: ['codes'],
          }];
    })(),
    // The D3 quad GEMV (the codes in whole quads per column), with its default table (32 copies where
    // they fit this device's workgroup memory beside the staged x̂, else the most that fit) and with 16 and 1.
    ...([undefined, 16, 1] as const).flatMap((copies): SpirvSubject[] => {
      // A count that does not fit is refused by d3QuadLeaderCopies (the benchmark reports its row unsupported).
      const table = layoutTable(({ leaderCopies }) => ({ copies: d3QuadLeaderCopies(1, workgroupBytes, leaderCopies), entries: PADDED_LEADER_ENTRIES }), copies === undefined ? {} : { leaderCopies: copies });
      return table === null ? [] : [{
        key: `d3-quad-i8:d3-q6-deterministic:${dotPath}${copies === undefined ? '' : `:copies${copies}`}`,
        moduleKey: `d3-quad-i8-${dotPath}-${copies ?? 'default'}`,
        code: d3QuadGemvShaderSource({ rhsTile: 1, subgroups, dotPath, copies: table.copies }),
        codeVariables: ['quad_words'],
      }];
    }),
    {
      key: `e8-residue-i8:e8-q16-deterministic:${dotPath}`,
      moduleKey: `e8-residue-i8-${dotPath}`,
      code: e8ResidueGemvShaderSource({ rhsTile: 1, subgroups, dotPath }),
      codeVariables: ['quad_words'],
    },
    // The universal E8 schemes' int8-input GEMV (one kernel for every q, one module): per byte of int8
    // points, under the key of each scheme the benchmark times it with.
    ...(['e8-4bit', 'e8-q16'] as const).map((scheme) => ({
      key: `e8-point-i8:${scheme}:${dotPath}`,
      moduleKey: `e8-point-i8-${dotPath}`,
      code: e8PointGemvShaderSource({ rhsTile: 1, subgroups, dotPath }),
      codeVariables: ['points'],
    })),
    {
      key: `group-scaled-i8:${dotPath}`,
      moduleKey: `group-scaled-i8-${dotPath}`,
      code: latticeGemvI8ShaderSource({ q: 6, scale: D3_GROUP_SCALE, indexBits: 4, rhsTile: 1, subgroups, dotPath, leaderTable: d3GroupScaledLeaderTable(1, workgroupBytes) }),
      codeVariables: ['codes'],
    },
  ];
}

function latticeSubject(scheme: SchemeName, workgroupBytes: number): SpirvSubject {
  const s = SCHEMES[scheme];
  if (s.kind !== 'lattice' || s.mode !== 'deterministic') throw new Error(`${scheme} is not deterministic`);
  const variant = {
    lattice: s.lattice,
    q: s.q,
    codeBits: latticeCodeBits(s),
    indexBits: schemeScaleIndexBits(s),
    leaderTableCopies: latticeLeaderTableCopies(s.lattice, s.q, workgroupBytes),
  };
  return { key: `lattice:${scheme}`, moduleKey: `lattice-${scheme}`, code: latticeGemvShaderSource(1, variant), codeVariables: ['codes'] };
}

/**
 * The E8 product's staging loop (shaders/e8_matmul.wgsl): one block of A or B per iteration, its code
 * and index read, its leader decoded (q compiled in, as for two operands of one scheme), packed and
 * stored, per byte of one operand's codes (both operands' loads are in the loop, one runs).
 */
function e8ProductSubject(scheme: SchemeName, dotPath: DotPath): SpirvSubject {
  const s = SCHEMES[scheme];
  if (s.kind !== 'lattice' || s.mode !== 'deterministic' || s.lattice !== 'E8') throw new Error(`${scheme} is not a deterministic E8 scheme`);
  const shape = { lattice: s.lattice, q: s.q, codeBits: latticeCodeBits(s), indexBits: schemeScaleIndexBits(s) };
  return { key: `product:${scheme}:${dotPath}`, moduleKey: `product-${scheme}-${dotPath}`, code: e8MatmulShaderSource({ dotPath, a: shape, b: shape }), codeVariables: ['a_codes'] };
}

/**
 * A product kernel counted per multiply-accumulate of C = AᵀB in RDNA3 machine code: one iteration of
 * its slice loop (staging the operands in workgroup memory, decoding them there where the kernel
 * does, the barriers and the compute over the slice), divided by what one invocation accumulates in it.
 */
interface ProductSubject {
  readonly key: string;
  readonly moduleKey: string;
  readonly code: string;
  /** WGSL names of the operands' storage buffers (what the slice loop loads). */
  readonly codeVariables: readonly string[];
  /** Entry products one invocation accumulates per slice at full depth: its 4 × 4 entries × the slice's coordinates. */
  readonly macsPerIteration: number;
  /** Trips of the slice loop's run-time-bounded loops at full depth, in program order (analyzeRdnaIsa's `assumedTrips`). */
  readonly assumedTrips: readonly number[];
}

/** A `const NAME: u32 = Nu;` of a kernel's WGSL: its tiling, read where the kernel declares it. */
function wgslU32Constant(code: string, name: string): number {
  const m = new RegExp(`const ${name}: u32 = (\\d+)u;`).exec(code);
  if (m === null) throw new Error(`the kernel's WGSL declares no const ${name}: u32`);
  return Number(m[1]);
}

/**
 * A product subject: per slice, an invocation accumulates its (TILE / THREADS_EDGE)² entries of C over
 * SLICE units of `coordinates` each (all constants of the kernel's WGSL).
 */
function productSubject(key: string, moduleKey: string, code: string, codeVariables: readonly string[], coordinates: number, assumedTrips: (slice: number, code: string) => readonly number[]): ProductSubject {
  const slice = wgslU32Constant(code, 'SLICE');
  const entries = (wgslU32Constant(code, 'TILE') / wgslU32Constant(code, 'THREADS_EDGE')) ** 2;
  return { key, moduleKey, code, codeVariables, macsPerIteration: entries * slice * coordinates, assumedTrips: assumedTrips(slice, code) };
}

/** The deterministic E8 scheme whose product is counted per MAC. */
const E8_PRODUCT_SCHEME = 'e8-q16-deterministic';

/** The keys of the products' per-MAC counts (productSubjects), one builder per kernel. */
export const MAC_KEYS = {
  f32: 'mac:f32',
  d3: (layout: TableLayoutKind, dotPath: DotPath): string => `mac:d3-table:${layout}${layout === 'leaders' ? `:${dotPath}` : ''}`,
  e8: (dotPath: DotPath): string => `mac:${E8_PRODUCT_SCHEME}:${dotPath}`,
  pair: (dotPath: DotPath): string => `mac:universal-pair:${dotPath}`,
} as const;

/**
 * The key of the per-MAC count of the kernel GpuEngine.productKernel names for a pair of `scheme`
 * matrices, with the engine's table layout and dot path: the decoding paths run the f32 matmul after
 * their decode passes; the E8 product is counted for e8-q16-deterministic only (null otherwise).
 */
export function productMacKey(kernel: ProductKernel, scheme: SchemeName, tableLayout: TableLayoutKind, dotPath: DotPath): string | null {
  switch (kernel) {
    case 'd3-table':
      return MAC_KEYS.d3(tableLayout, dotPath);
    case 'e8-dot':
      return scheme === E8_PRODUCT_SCHEME ? MAC_KEYS.e8(dotPath) : null;
    case 'universal-i8':
      return MAC_KEYS.pair(dotPath);
    case 'universal-decode':
    case 'decode-f32':
      return MAC_KEYS.f32;
  }
}

/**
 * The products at 4096³ that bench/README.md ("Products: what bounds them on an H200") compares: the
 * f32 tiled matmul (also what `universal-decode` runs after decoding), the D3 product in each table
 * layout that fits the device (the leaders layout per dot path), the E8 product and the universal pair
 * product. Slice depths and tiles are read from each kernel's WGSL constants (the D3 product's SLICE
 * is its layout's); the run-time trip counts assumed are those of a full slice with the usual
 * multiples (slice_blocks and flush_blocks at the slice depth, E8's decode_steps).
 */
function productSubjects(dotPaths: readonly DotPath[], workgroupBytes: number): ProductSubject[] {
  // The compute loop runs slice_blocks (D3) or SLICE (pair) steps; E8's slice loop decodes in
  // decode_steps = 2·SLICE·TILE/THREADS steps (e8Matmul.ts) and sums in runs of flush_blocks = SLICE.
  const oneLoop = (slice: number): readonly number[] => [slice];
  const e8Loops = (slice: number, code: string): readonly number[] => [(2 * slice * wgslU32Constant(code, 'TILE')) / wgslU32Constant(code, 'THREADS'), 1, slice];
  const d3 = (layout: TableLayout, dotPath: DotPath): ProductSubject =>
    productSubject(MAC_KEYS.d3(layout.kind, dotPath), `mac-d3-${layout.kind}-${dotPath}`, tableMatmulShaderSource({ layout, dotPath }), ['a_codes', 'b_codes'], 3, oneLoop);
  const e8 = (dotPath: DotPath): ProductSubject => {
    // The staging loop's subject: the same module, compiled once.
    const staging = e8ProductSubject(E8_PRODUCT_SCHEME, dotPath);
    return productSubject(MAC_KEYS.e8(dotPath), staging.moduleKey, staging.code, ['a_codes', 'b_codes'], 8, e8Loops);
  };
  const tables = (['full', 'triangle'] as const).flatMap((kind) => {
    const layout = tableLayout(kind, workgroupBytes);
    return layout === null ? [] : [d3(layout, 'plain')];
  });
  const leaders = tableLayout('leaders', workgroupBytes);
  return [
    productSubject(MAC_KEYS.f32, 'mac-f32', matmulF32ShaderSource(), ['a', 'b'], 1, () => []),
    ...(leaders === null ? [] : dotPaths.map((dotPath) => d3(leaders, dotPath))),
    ...tables,
    ...dotPaths.flatMap((dotPath) => [
      e8(dotPath),
      productSubject(MAC_KEYS.pair(dotPath), `mac-pair-${dotPath}`, pairMatmulShaderSource(dotPath), ['a_pairs', 'b_pairs'], 8, oneLoop),
    ]),
  ];
}

/** Every kernel the report shows (subgroup variants where the benchmark's device uses them). */
function subjects(
  subgroups: boolean,
  f16: boolean,
  schemes: { universal: readonly SchemeName[]; deterministic: readonly SchemeName[]; int8DotPaths: readonly DotPath[]; workgroupBytes: number },
): SpirvSubject[] {
  return [
    { key: 'stream', moduleKey: 'stream', code: streamReadShaderSource(), codeVariables: ['data'] },
    { key: 'f32', moduleKey: 'f32', code: f32GemvShaderSource({ chunkWidth: 4, subgroups }), codeVariables: ['w'] },
    ...(f16 ? [{ key: 'f16', moduleKey: 'f16', code: f16GemvShaderSource(subgroups), codeVariables: ['w'] }] : []),
    { key: 'int4', moduleKey: 'int4', code: int4GemvShaderSource({ subgroups, input: 'f32' }), codeVariables: ['codes'] },
    ...schemes.int8DotPaths.map((dotPath) => ({ key: `int4-i8:${dotPath}`, moduleKey: `int4-i8:${dotPath}`, code: int4GemvShaderSource({ subgroups, input: dotPath }), codeVariables: ['codes'] })),
    ...schemes.universal.map((scheme) => universalSubject(scheme, subgroups, schemes.workgroupBytes)),
    ...schemes.int8DotPaths.flatMap((dotPath) => int8Subjects(subgroups, dotPath, schemes.workgroupBytes)),
    ...schemes.deterministic.map((scheme) => latticeSubject(scheme, schemes.workgroupBytes)),
    ...schemes.deterministic
      .filter((scheme) => SCHEMES[scheme].kind === 'lattice' && SCHEMES[scheme].lattice === 'E8')
      .flatMap((scheme) => schemes.int8DotPaths.map((dotPath) => e8ProductSubject(scheme, dotPath))),
    { key: 'weightonly:4', moduleKey: 'weightonly:4', code: weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32', codeBits: 4 }), codeVariables: ['codes'] },
    // 6 bits: what the quantizers' codes at rate 4 take (5 codes per word, a word's top 2 bits unused).
    { key: 'weightonly:6', moduleKey: 'weightonly:6', code: weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32', codeBits: 6 }), codeVariables: ['codes'] },
    { key: 'weightonly:packed', moduleKey: 'weightonly:packed', code: weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32' }), codeVariables: ['codes'] },
    // The int8-input loop (QuantizedLinear's int8Inputs for fixed-width weight-only weights) at 4 and 6 bits.
    ...schemes.int8DotPaths.flatMap((dotPath) =>
      ([4, 6] as const).map((codeBits) => ({ key: `weightonly:${codeBits}:i8:${dotPath}`, moduleKey: `weightonly:${codeBits}:i8:${dotPath}`, code: weightOnlyGemvShaderSource({ vectorBlock: 1, inputFormat: 'f32', codeBits, int8Dot: dotPath }), codeVariables: ['codes'] })),
    ),
  ];
}

/**
 * Widths of the benchmark's rotation rows, whose kernels `exportSpirv` exports for the driver's
 * statistics: the model widths, and the m = 12 / m = 1 pairs of "The rotation's passes" (bench/README.md;
 * 6144 is one workgroup of 1024 invocations holding an m = 12 window, as 12288 is on an H200).
 */
const ROTATION_WIDTHS = [4096, 8192, 14336, 28672, 768, 1024, 6144, 12288];

/**
 * The rotation kernel's variants (workgroup memory, invocations, block m) that one column of each of
 * ROTATION_WIDTHS runs, spread (the default) or in the fewest passes, on the exporting device's limits
 * (so on lavapipe's 32 KB some plans differ from an H200's 48 KB: the variants still pair blocks of
 * m = 1 and m = 12, whose passes the H200 ran 2.5–3× apart). Only for `exportSpirv`: the rotation has
 * no loop over packed weights to count.
 */
function rotationSubjects(request: SpirvChildRequest): SpirvSubject[] {
  const limits = { maxComputeInvocationsPerWorkgroup: request.maxInvocations, maxComputeWorkgroupSizeX: request.maxInvocations };
  // Each also with batchedLoads (an experiment the rotation rows time): its keys end in ':batched'.
  return ROTATION_WIDTHS.flatMap((n) =>
    [true, false].flatMap((spread) =>
      [false, true].map((batchedLoads): SpirvSubject => {
        const plan = planHadamardRotation(n, request.workgroupBytes, { columns: 1, spread });
        const variant = { workgroupElements: plan.workgroupElements, subgroups: false, block: plan.block, threads: rotationThreads({ limits }, plan.workgroupElements), batchedLoads };
        return {
          key: `rotation:${n}:${spread ? 'spread' : 'fewest'}${batchedLoads ? ':batched' : ''}`,
          moduleKey: `rotation-m${variant.block}-${variant.workgroupElements}-${variant.threads}${batchedLoads ? '-batched' : ''}`,
          code: hadamardShaderSource(variant),
          codeVariables: [],
        };
      }),
    ),
  );
}

/**
 * The child's request for the kernels the benchmark runs on a device with these features and limits:
 * the variants it compiles (subgroups, f16, the packed dot path where WGSL has them) and the table
 * copies its workgroup memory allows.
 */
export function spirvChildRequest(
  features: { readonly subgroups: boolean; readonly shaderF16: boolean; readonly packed4x8IntegerDotProduct: boolean },
  limits: Pick<GPUSupportedLimits, 'maxComputeWorkgroupStorageSize' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'>,
): SpirvChildRequest {
  return {
    subgroups: features.subgroups,
    f16: features.shaderF16,
    universal: UNIVERSAL_SCHEMES,
    deterministic: DETERMINISTIC_SCHEMES,
    int8DotPaths: features.packed4x8IntegerDotProduct ? ['packed', 'plain'] : ['plain'],
    workgroupBytes: limits.maxComputeWorkgroupStorageSize,
    maxInvocations: Math.min(limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX),
  };
}

/** The child's arguments: which variants to compile. */
export interface SpirvChildRequest {
  readonly subgroups: boolean;
  readonly f16: boolean;
  readonly universal: readonly SchemeName[];
  readonly deterministic: readonly SchemeName[];
  /** Dot-product paths of the int8-input GEMV to count ('packed' only where WGSL has it). */
  readonly int8DotPaths: readonly DotPath[];
  /** The benchmark device's maxComputeWorkgroupStorageSize (the deterministic GEMV's table copies depend on it). */
  readonly workgroupBytes: number;
  /** Its invocations per workgroup at most (the rotation's variants depend on it). */
  readonly maxInvocations: number;
  /** Also compile the rotation kernel's variants (`rotationSubjects`; `exportSpirv` sets it). */
  readonly rotations?: boolean;
}

/**
 * Every module a request names: the report's kernels (with `subgroups` and `f16` as the compiling
 * device allows), the products' slice loops, and the rotation's variants where asked (`rotations`).
 */
function requestedSubjects(request: SpirvChildRequest, subgroups: boolean, f16: boolean): SpirvSubject[] {
  return [...subjects(subgroups, f16, request), ...productSubjects(request.int8DotPaths, request.workgroupBytes), ...(request.rotations === true ? rotationSubjects(request) : [])];
}

/** Child process: compile every subject with shader dumps on (Dawn prints them on stdout). */
export async function spirvChildMain(request: SpirvChildRequest): Promise<void> {
  const gpu = await requestNodeGpuDevice({ label: 'spirv stats device', flags: ['enable-dawn-features=dump_shaders,disable_symbol_renaming'] });
  const { device } = gpu;
  const compiled = new Set<string>();
  for (const subject of requestedSubjects(request, request.subgroups && gpu.features.subgroups, request.f16 && gpu.features.shaderF16)) {
    if (compiled.has(subject.moduleKey)) continue;
    compiled.add(subject.moduleKey);
    const module = device.createShaderModule({ label: subject.moduleKey, code: `// spirv-stats: ${subject.moduleKey}\n${subject.code}` });
    device.createComputePipeline({ label: subject.moduleKey, layout: 'auto', compute: { module, entryPoint: 'main' } });
    await device.queue.onSubmittedWorkDone();
    writeSync(2, `spirv stats: compiled ${subject.moduleKey}\n`);
  }
  device.destroy();
}

/** A kernel's inner loop counted on its SPIR-V and, compiled from that SPIR-V, in RDNA3 machine code. */
export interface KernelInstructionStats extends SpirvLoopStats {
  /** bench/gpu/rdnaIsa.ts: the same loop as RADV compiles it for an RDNA3 GPU, or why it was not counted. */
  readonly rdna3: IsaLoopStats | { readonly error: string };
}

/** A product's slice loop in RDNA3 machine code, per multiply-accumulate (productSubjects). */
export interface ProductMacStats extends IsaLoopStats {
  /** Entry products one invocation accumulates per iteration (a full slice). */
  readonly macsPerIteration: number;
  /** instructions / macsPerIteration. */
  readonly perMac: number;
  readonly perMacByClass: Readonly<Record<IsaClass, number>>;
}

/** A product kernel's statistics: RDNA3 only (its slice loop loads both operands, so a per-code-byte SPIR-V count says little). */
export interface ProductInstructionStats {
  readonly kind: 'product';
  readonly rdna3: ProductMacStats | { readonly error: string };
}

/** Statistics per kernel key (or the error that stopped them); products' keys start with `mac:`. */
export type InstructionStats = Map<string, KernelInstructionStats | ProductInstructionStats | { readonly error: string }>;

/**
 * Runs the child (the same entry file, `--spirv-child REQUEST_JSON`, which calls `spirvChildMain`)
 * and returns Dawn's SPIR-V text of each module, by module key.
 */
function spirvDumps(request: SpirvChildRequest, timeoutMs: number): Map<string, string> {
  const entry = process.argv[1];
  if (entry === undefined) throw new Error('cannot find the entry script to start the SPIR-V child');
  const result = spawnSync(process.execPath, [...process.execArgv, entry, '--spirv-child', JSON.stringify(request)], {
    encoding: 'utf8',
    maxBuffer: 512 * 2 ** 20,
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`SPIR-V child exited with ${result.status}: ${(result.stderr ?? '').split('\n').slice(-5).join(' ')}`);
  return splitDumps(result.stdout);
}

/** One module of `exportSpirv`'s manifest. */
export interface ExportedModule {
  /** The report's kernel keys compiled from this module (instructionStats' keys; products' start with `mac:`). */
  readonly keys: readonly string[];
  readonly moduleKey: string;
  /** The binary module, relative to the manifest. */
  readonly file: string;
  /** The helper's BINDINGS argument. */
  readonly bindings: string;
  readonly entryPoint: string;
  /** Invocations per workgroup (the module's LocalSize). */
  readonly workgroupInvocations: number;
  /** RADV's statistics of the module compiled for RDNA3 (VGPRs, LDS size, …), or why there are none. */
  readonly radv: Readonly<Record<string, number>> | { readonly error: string };
}

/** What `exportSpirv` writes as manifest.json. */
export interface SpirvExport {
  readonly made: string;
  /** The adapter whose Dawn emitted the SPIR-V. */
  readonly emittedOn: string;
  readonly request: SpirvChildRequest;
  readonly modules: readonly ExportedModule[];
}

/** The module's invocations per workgroup, from its `OpExecutionMode … LocalSize x y z`. */
function workgroupInvocations(spirv: string): number {
  const m = /OpExecutionMode %\S+ LocalSize (\d+) (\d+) (\d+)/.exec(spirv);
  return m === null ? 0 : Number(m[1]) * Number(m[2]) * Number(m[3]);
}

/**
 * Writes every kernel module of the report, and the rotation kernel's variants (`rotationSubjects`), as a
 * SPIR-V binary into `dir` with a manifest.json and
 * the helper bench/isa/compile_pipeline.c built beside them, so that a machine with no Node, Dawn,
 * spirv-tools or compiler (the lent NVIDIA GPU) can have its own driver compile each module and report
 * its statistics (bench/gpu/pipeline_stats.py). The SPIR-V is what this machine's Dawn emits for the
 * request's features (another adapter's Dawn may emit slightly different code: it is the same WGSL).
 *
 * @example
 * exportSpirv({ subgroups: true, f16: true, universal: ['e8-4bit'], deterministic: [], int8DotPaths: ['packed'], workgroupBytes: 32768, maxInvocations: 1024 }, '.dev/spirv', 600_000, 'llvmpipe');
 */
export function exportSpirv(kernels: SpirvChildRequest, dir: string, timeoutMs: number, emittedOn: string): SpirvExport {
  const request: SpirvChildRequest = { ...kernels, rotations: true };
  const dumps = spirvDumps(request, timeoutMs);
  mkdirSync(dir, { recursive: true });
  const failed = buildCompilePipeline(join(dir, 'compile_pipeline'));
  if (failed !== null) throw new Error(failed);
  const tools = rdnaTools();
  const byModule = new Map<string, string[]>();
  for (const subject of requestedSubjects(request, request.subgroups, request.f16)) {
    byModule.set(subject.moduleKey, [...(byModule.get(subject.moduleKey) ?? []), subject.key]);
  }
  const modules: ExportedModule[] = [];
  for (const [moduleKey, keys] of byModule) {
    const text = dumps.get(moduleKey);
    if (text === undefined) continue;
    const file = `${String(modules.length).padStart(3, '0')}-${moduleKey.replace(/[^A-Za-z0-9_.-]/g, '_')}.spv`;
    assembleSpirv(text, join(dir, file));
    let radv: ExportedModule['radv'];
    try {
      radv = tools.ok ? compileRdnaIsa(text, tools, 'dawn_entry_point').statistics : { error: tools.reason };
    } catch (error) {
      radv = { error: error instanceof Error ? error.message : String(error) };
    }
    modules.push({ keys, moduleKey, file, bindings: helperBindings(text), entryPoint: 'dawn_entry_point', workgroupInvocations: workgroupInvocations(text), radv });
  }
  const manifest: SpirvExport = { made: new Date().toISOString(), emittedOn, request, modules };
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

/**
 * Runs the child (same entry file, `--spirv-child REQUEST_JSON`) and analyses its dumps.
 *
 * @example
 * const stats = await instructionStats({ subgroups: true, f16: true, universal: ['e8-4bit'], deterministic: [] });
 */
export function instructionStats(request: SpirvChildRequest, timeoutMs: number): InstructionStats {
  const stats: InstructionStats = new Map();
  const dumps = spirvDumps(request, timeoutMs);
  const tools = rdnaTools();
  const compiled = new Map<string, RdnaCompilation | { readonly error: string }>();
  // The module compiled for RDNA3 once per module key (several kernel keys share one).
  const rdna3 = (subject: SpirvSubject | ProductSubject, spirv: string, options: IsaLoopOptions = {}): IsaLoopStats | { readonly error: string } => {
    if (!tools.ok) return { error: tools.reason };
    let compilation = compiled.get(subject.moduleKey);
    if (compilation === undefined) {
      try {
        compilation = compileRdnaIsa(spirv, tools, 'dawn_entry_point');
      } catch (error) {
        compilation = { error: error instanceof Error ? error.message : String(error) };
      }
      compiled.set(subject.moduleKey, compilation);
    }
    if ('error' in compilation) return compilation;
    try {
      return rdnaLoopStats(compilation, spirv, subject.codeVariables, options);
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) };
    }
  };
  const perMac = (subject: ProductSubject, loop: IsaLoopStats): ProductMacStats => ({
    ...loop,
    macsPerIteration: subject.macsPerIteration,
    perMac: loop.instructions / subject.macsPerIteration,
    perMacByClass: Object.fromEntries(ISA_CLASSES.map((c) => [c, (loop.perCodeByteByClass[c] * loop.codeBytes) / subject.macsPerIteration])) as Record<IsaClass, number>,
  });
  for (const subject of subjects(request.subgroups, request.f16, request)) {
    const text = dumps.get(subject.moduleKey);
    if (text === undefined) {
      stats.set(subject.key, { error: 'no SPIR-V dump found (Dawn printed none for this module)' });
      continue;
    }
    try {
      const words = subject.uniforms ? uniformWords(subject.code, subject.uniforms.struct, subject.uniforms.values) : new Map<number, number>();
      stats.set(subject.key, { ...analyzeSpirv(text, subject.codeVariables, words), rdna3: rdna3(subject, text) });
    } catch (error) {
      stats.set(subject.key, { error: error instanceof Error ? error.message : String(error) });
    }
  }
  for (const subject of productSubjects(request.int8DotPaths, request.workgroupBytes)) {
    const text = dumps.get(subject.moduleKey);
    if (text === undefined) {
      stats.set(subject.key, { error: 'no SPIR-V dump found (Dawn printed none for this module)' });
      continue;
    }
    const loop = rdna3(subject, text, { outermost: true, assumedTrips: subject.assumedTrips });
    stats.set(subject.key, { kind: 'product', rdna3: 'error' in loop ? loop : perMac(subject, loop) });
  }
  return stats;
}
