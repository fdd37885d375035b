/**
 * The long GPU-vs-CPU exactness sweep (for `npm run fuzz`):
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs test/reliability/exactnessSweepCli.ts [--shapes 10000] [--minutes M] [--seed S]
 *
 * Quantizes `--shapes` random cases (exactnessSweep.ts) on the GPU and the CPU and exits 1 on any
 * difference; with `--minutes` it stops early at the deadline and says how many shapes it covered.
 */
import { GpuEngine } from '../../src/gpu/engine.js';
import { requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import { runExactnessSweep } from './exactnessSweep.js';
import { numberOption } from '../numberOption.js';


const shapes = numberOption('shapes', 10_000) as number;
const minutes = numberOption('minutes', undefined);
const seed = numberOption('seed', Date.now() % 1_000_000) as number;
const start = performance.now();

const context = await requestNodeGpuDevice({ label: 'exactness sweep' });
const engine = GpuEngine.create(context);
console.log(`GPU-vs-CPU exactness sweep on ${context.adapter?.info.description || context.adapter?.info.vendor || 'the default adapter'}: seed ${seed}, ${shapes} shapes${minutes === undefined ? '' : `, at most ${minutes} min`}`);
const counts = await runExactnessSweep(engine, {
  seed,
  shapes,
  ...(minutes === undefined ? {} : { deadline: start + minutes * 60_000 }),
  onProgress: (c) => console.log(`  ${c.tried} shapes: identical ${c.identical}, mismatches ${c.mismatches.length}`),
});
engine.destroy();
context.device.destroy();
console.log(`exactness sweep: tried ${counts.tried} / identical ${counts.identical} / mismatches ${counts.mismatches.length} (${((performance.now() - start) / 1000).toFixed(0)} s)`);
for (const mismatch of counts.mismatches.slice(0, 20)) console.error(`  ${mismatch}`);
if (counts.mismatches.length > 0) process.exit(1);
if (counts.tried < shapes) console.log(`(stopped at the deadline after ${counts.tried} of ${shapes} shapes)`);
