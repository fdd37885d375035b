/**
 * Stored bits per entry of every preset at the widths real models use (rotation padding included), and
 * the Gaussian NMSE next to the guarantee for the universal ones.
 *
 *   npm run presets                       # n = 4096, 11008, 14336; writes bench/out/presets-rates.{json,md}
 *   npm run presets -- --n 768,5120 --cols 32
 *
 * Each cell quantizes a Gaussian n × cols matrix (bitsStored counts everything stored: codes, escapes or
 * scale indices, norms) and multiplies two of them for the NMSE.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { matmulAT } from '../src/product/matmulAT.js';
import { expectedNmse } from '../src/product/expectedError.js';
import { quantize } from '../src/quantize/quantize.js';
import { resolveScheme, SCHEME_NAMES } from '../src/quantize/schemes.js';
import { rotationLength } from '../src/rotation/hadamard.js';
import { gaussianMatrix } from '../src/rotation/random.js';
import { productNmse } from '../src/matrix.js';
import { gammaInverse } from '../src/theory/gamma.js';
import { markdownTable, parseArgs, progress, progressDone } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'string', cols: 'number', json: 'string', md: 'string' });
const widths = ((args.get('n') as string | undefined) ?? '4096,11008,14336').split(',').map(Number);
const cols = (args.get('cols') as number | undefined) ?? 32;

interface Cell {
  scheme: string;
  n: number;
  length: number;
  bitsStored: number;
  bitsEntropy: number;
  nmse: number;
  predicted: number | null;
  rateLossStored: number;
}
const cells: Cell[] = [];
for (const n of widths) {
  const a = gaussianMatrix(n, cols, 1);
  const b = gaussianMatrix(n, cols, 2);
  for (const name of SCHEME_NAMES) {
    progress(`${name}, n = ${n}…`);
    const scheme = resolveScheme(name);
    const universal = scheme.kind === 'lattice' && scheme.mode === 'universal';
    const qa = quantize(a, { scheme: name, seed: 1, ...(universal ? { nonce: 1 } : {}) });
    const qb = quantize(b, { scheme: name, seed: 1, ...(universal ? { nonce: 2 } : {}) });
    const nmse = productNmse(matmulAT(qa, qb), a, b);
    cells.push({
      scheme: name,
      n,
      length: qa.length,
      bitsStored: qa.bitsStored,
      bitsEntropy: qa.bitsEntropy,
      nmse,
      predicted: universal ? expectedNmse(qa, qb) : null,
      rateLossStored: qa.bitsStored - gammaInverse(Math.min(1, nmse)),
    });
  }
}
progressDone();

const f = (x: number, digits: number): string => x.toFixed(digits);
const text = [
  `Stored bits per entry (rotation padding included) and Gaussian NMSE, ${cols} + ${cols} columns`,
  '',
  markdownTable(
    ['scheme', ...widths.map((n) => `bits at n = ${n} (N = ${rotationLength(n)})`), `NMSE at n = ${widths[0]}`, 'predicted', `stored rate loss at n = ${widths[0]}`],
    SCHEME_NAMES.map((name) => {
      const row = cells.filter((c) => c.scheme === name);
      const first = row[0] as Cell;
      return [name, ...row.map((c) => f(c.bitsStored, 3)), f(first.nmse, 4), first.predicted === null ? '—' : f(first.predicted, 4), f(first.rateLossStored, 3)];
    }),
  ),
  '',
].join('\n');
console.log(text);
mkdirSync('bench/out', { recursive: true });
writeFileSync((args.get('json') as string | undefined) ?? 'bench/out/presets-rates.json', `${JSON.stringify({ cols, cells }, null, 1)}\n`);
writeFileSync((args.get('md') as string | undefined) ?? 'bench/out/presets-rates.md', text);
