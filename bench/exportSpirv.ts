/**
 * Exports every kernel module of the GPU benchmark's report as SPIR-V binaries, with a manifest and
 * the pipeline helper (bench/isa/compile_pipeline.c) built beside them, for a GPU machine that has
 * no Node, compiler or spirv-tools: there `bench/gpu/pipeline_stats.py DIR OUT.json` has the machine's
 * own driver compile each module and report what its compiler says of it (on NVIDIA: the register
 * count, hence how many warps an SM holds). The SPIR-V is the one this machine's Dawn emits, with the
 * features and limits of its adapter (recorded in the manifest).
 *
 *   npm run bench:export-spirv -- --out .dev/spirv
 *
 * Options: --out DIR (default .dev/spirv), --no-subgroups, --no-f16 (the variants to emit).
 */
import { requestNodeGpuDevice } from '../src/gpu/nodeGpu.js';
import { exportSpirv, spirvChildMain, spirvChildRequest, type SpirvChildRequest } from './gpu/instructionStats.js';
import { parseArgs } from './lib/args.js';

const argv = process.argv.slice(2);
if (argv[0] === '--spirv-child') {
  await spirvChildMain(JSON.parse(argv[1] ?? '{}') as SpirvChildRequest);
  process.exit(0);
}
const args = parseArgs(argv, { out: 'string', 'no-subgroups': 'flag', 'no-f16': 'flag' });
const dir = (args.get('out') as string | undefined) ?? '.dev/spirv';

const gpu = await requestNodeGpuDevice({ label: 'spirv export device' });
const { features, limits } = gpu;
const info = gpu.adapter.info;
const request = spirvChildRequest({ ...features, subgroups: features.subgroups && args.get('no-subgroups') !== true, shaderF16: features.shaderF16 && args.get('no-f16') !== true }, limits);
gpu.device.destroy();
const manifest = exportSpirv(request, dir, 10 * 60 * 1000, info.description || info.device || info.vendor || 'unknown adapter');
console.log(`wrote ${manifest.modules.length} modules, ${dir}/manifest.json and ${dir}/compile_pipeline`);
console.log(`on the GPU machine: python3 bench/gpu/pipeline_stats.py ${dir} OUT.json OUT.md (with the device kit's env.sh sourced)`);
