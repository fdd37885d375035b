#!/usr/bin/env node
/**
 * The release fuzz run (issue 8): `npm run fuzz -- --minutes N [--seed S]`.
 *
 * Splits N minutes (default 20) between the four long runs, one after another, each in its own
 * process: the safetensors reader, the quantized container reader, the weight-only reader (fast-check
 * mutations: flips, truncations, field damage, resealed variants) and the GPU-vs-CPU exactness sweep
 * (at least 10,000 random shapes; it gets whatever time it needs for those). Exits 1 when any of
 * them finds a silent wrong answer; prints each one's tallies for docs/RELIABILITY.md.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '20' }, seed: { type: 'string' }, shapes: { type: 'string', default: '10000' } },
  strict: true,
});
const minutes = Number(values.minutes);
const shapes = Number(values.shapes);
if (!(minutes > 0) || !Number.isInteger(shapes) || shapes < 1) {
  console.error('usage: npm run fuzz -- --minutes N [--seed S] [--shapes 10000]');
  process.exit(2);
}
const seed = values.seed ?? String(Date.now() % 1_000_000);
const readerMinutes = String(Math.max(0.1, (minutes * 0.6) / 3).toFixed(2));

const runs = [
  ['safetensors reader', 'test/io/safetensorsFuzzCli.ts', ['--minutes', readerMinutes]],
  ['quantized container reader', 'test/format/containerFuzzCli.ts', ['--minutes', readerMinutes, '--exhaustive']],
  ['weight-only reader', 'test/weightonly/fuzzCli.ts', ['--minutes', readerMinutes]],
  ['GPU-vs-CPU exactness sweep', 'test/reliability/exactnessSweepCli.ts', ['--shapes', String(shapes)]],
];

let failed = false;
for (const [name, script, args] of runs) {
  console.log(`\n=== ${name} ===`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--import', './scripts/raw-loader.mjs', script, '--seed', seed, ...args], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed = true;
    console.error(`=== ${name}: FAILED (exit ${result.status ?? result.signal}) ===`);
  }
}
console.log(failed ? '\nfuzz: FAILED' : '\nfuzz: no silent wrong answer');
process.exit(failed ? 1 : 0);
