/**
 * Longer fuzz runs of the quantized container reader, outside the test suite (for `npm run fuzz`):
 *
 *   node --import tsx test/format/containerFuzzCli.ts --minutes 10 [--seed 1] [--runs 5000] [--exhaustive]
 *
 * Runs batches of `--runs` fast-check cases with seeds seed, seed + 1, … until `--minutes` have passed
 * (one batch without `--minutes`), `--exhaustive` first flipping every bit and truncating at every
 * length of the corpus files; prints the counts after each batch and exits 1 on any silent wrong
 * (a failure lists its case, which `containerFuzzCaseBytes` rebuilds).
 */
import { runContainerFuzz } from './containerFuzzProperty.js';
import { numberOption } from '../numberOption.js';


const minutes = numberOption('minutes', undefined);
const seed = numberOption('seed', Date.now() % 1_000_000) as number;
const runs = numberOption('runs', 5000) as number;
const exhaustive = process.argv.includes('--exhaustive');

console.log(`quantized container fuzz: seed ${seed}, ${runs} cases per batch${minutes === undefined ? '' : `, ${minutes} min`}${exhaustive ? ', exhaustive flips first' : ''}`);
const counts = runContainerFuzz({
  seed,
  runs,
  ...(minutes === undefined ? {} : { minutes }),
  ...(exhaustive ? { exhaustiveBytes: Infinity } : {}),
  onBatch: (c, batchSeed) =>
    console.log(
      `  after seed ${batchSeed}: tried ${c.tried}, refused clearly ${c.refused}, accepted identical ${c.acceptedIdentical}, ` +
        `accepted valid variant ${c.acceptedVariant}, silent wrong ${c.silentWrong}, slowest ${c.slowestMs.toFixed(1)} ms`,
    ),
});
console.log(
  `quantized container fuzz: tried ${counts.tried} / refused clearly ${counts.refused} / accepted identical ${counts.acceptedIdentical} / ` +
    `accepted valid variant ${counts.acceptedVariant} / silent wrong ${counts.silentWrong}`,
);
if (counts.silentWrong > 0) {
  for (const failure of counts.failures) console.error(`  ${failure}`);
  process.exit(1);
}
