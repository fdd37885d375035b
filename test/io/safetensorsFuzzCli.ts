/**
 * Longer fuzz runs of the safetensors reader, outside the test suite:
 *
 *   node --import tsx test/io/safetensorsFuzzCli.ts --minutes 10 [--seed 1] [--runs 20000]
 *
 * Runs batches of `--runs` cases with seeds seed, seed + 1, … until `--minutes` have passed (or one
 * batch when `--minutes` is absent), prints the counts after each batch, and exits 1 on the first
 * failure with its seed and counterexample (rerun that batch with `--seed S` to reproduce).
 */
import { runSafetensorsFuzz } from './safetensorsFuzz.js';
import { numberOption } from '../numberOption.js';


const minutes = numberOption('minutes', undefined);
const seed = numberOption('seed', Date.now() % 1_000_000) as number;
const numRuns = numberOption('runs', 20_000) as number;

console.log(`safetensors fuzz: seed ${seed}, ${numRuns} cases per batch${minutes === undefined ? '' : `, ${minutes} min`}`);
const { counts, details } = runSafetensorsFuzz({
  seed,
  numRuns,
  ...(minutes === undefined ? {} : { minutes }),
  onBatch: (c, batchSeed) =>
    console.log(
      `  after seed ${batchSeed}: tried ${c.tried}, refused clearly ${c.refused}, parsed validly ${c.parsed}, ` +
        `other ${c.other}, slowest ${c.slowestMs.toFixed(1)} ms`,
    ),
});
console.log(`safetensors fuzz: tried ${counts.tried} / refused clearly ${counts.refused} / parsed validly ${counts.parsed} / other ${counts.other}`);
if (details.failed || counts.other > 0) {
  console.error(`FAILED (seed ${details.seed}, path ${details.counterexamplePath ?? '?'}):`);
  for (const failure of counts.failures) console.error(`  ${failure}`);
  process.exit(1);
}
