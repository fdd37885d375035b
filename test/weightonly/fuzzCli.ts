/**
 * Longer fuzz runs of the weight-only reader, outside the test suite (for `npm run fuzz`):
 *
 *   node --import tsx test/weightonly/fuzzCli.ts --minutes 10 [--seed 1] [--runs 1000000]
 *
 * Runs fast-check cases (bit flips, truncations, field damage, resealed variants) until `--runs` cases
 * or `--minutes` have passed, prints the tallies, and exits 1 on the first violation (fast-check prints
 * the seed and counterexample).
 */
import { runWeightOnlyFuzz } from './fuzzProperty.js';
import { numberOption } from '../numberOption.js';


const minutes = numberOption('minutes', undefined);
const seed = numberOption('seed', Date.now() % 1_000_000) as number;
const runs = numberOption('runs', minutes === undefined ? 12_000 : 100_000_000) as number;

console.log(`weight-only fuzz: seed ${seed}${minutes === undefined ? `, ${runs} cases` : `, ${minutes} min`}`);
try {
  const report = runWeightOnlyFuzz({ seed, runs, ...(minutes === undefined ? {} : { timeLimitMs: minutes * 60_000 }) });
  console.log(
    `weight-only fuzz: tried ${report.tried} / refused clearly ${report.refused} / accepted identical ${report.acceptedIdentical} / ` +
      `accepted valid variant ${report.acceptedVariant} / silent wrong ${report.silentWrong} / slowest ${report.maxMilliseconds.toFixed(1)} ms`,
  );
  if (report.silentWrong > 0) process.exit(1);
} catch (error) {
  console.error(`FAILED (seed ${seed}): ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
