/**
 * Why the E8 GEMVs stay instruction-bound: what it would cost to store E8 blocks in a form a GPU
 * decodes without the nearest-point rule. For each universal E8 preset, on a Gaussian matrix, every
 * block's lattice point λ = G·u − q·κ (u the base-q digits of its code) is decoded on the CPU, and
 * this prints
 *   - the stored bits per entry (the format as it is),
 *   - how many distinct "wrap" points κ = (G·u − λ)/q the blocks use (κ includes the escape μ), i.e.
 *     the side information per block that would let a kernel skip the nearest-point decode (a table
 *     lookup of κ instead), and what that adds per entry,
 *   - the share of blocks whose λ fits int8 per coordinate (a decode-free form at 8 bits per entry).
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs bench/e8DecodeForms.ts [--n 4096 --cols 64]
 */
import { universalCodec } from '../src/quantize/latticeSpec.js';
import { quantize } from '../src/quantize/quantize.js';
import { SCHEMES, type UniversalLatticeScheme } from '../src/quantize/schemes.js';
import { universalBlockCode, UniversalPointReader } from '../src/quantize/universalCode.js';
import { gaussianMatrix } from '../src/rotation/random.js';
import { markdownTable, parseArgs } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'number', cols: 'number' });
const n = (args.get('n') as number | undefined) ?? 4096;
const cols = (args.get('cols') as number | undefined) ?? 64;

const rows: string[][] = [];
for (const name of ['e8-3bit', 'e8-4bit', 'e8-q16', 'e8-5bit'] as const) {
  const scheme = SCHEMES[name] as UniversalLatticeScheme;
  const q = quantize(gaussianMatrix(n, cols, 5), { scheme: name, seed: 1, nonce: 2 });
  if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error(`${name} is not universal`);
  const codec = universalCodec('E8', scheme.q, scheme.beta);
  const { basis } = codec.spec.lattice;
  const reader = new UniversalPointReader(q);
  const walker = reader.blocks;
  const wraps = new Set<string>();
  let fitsInt8 = 0;
  let escaped = 0;
  const blocks = q.cols * q.blocksPerColumn;
  while (walker.next()) {
    const code = universalBlockCode(q, walker.index);
    if (walker.symbol !== 0) escaped++;
    const point = reader.point();
    // u: the base-q digits of the code; G·u − λ = q·κ.
    let rest = code;
    const digits: number[] = [];
    for (let i = 0; i < 8; i++) {
      digits.push(rest % scheme.q);
      rest = Math.floor(rest / scheme.q);
    }
    const wrap: number[] = [];
    let small = true;
    for (let i = 0; i < 8; i++) {
      let sum = 0;
      for (let j = 0; j < 8; j++) sum += (basis[i * 8 + j] as number) * (digits[j] as number);
      wrap.push((sum - (point[i] as number)) / scheme.q);
      if (Math.abs(point[i] as number) > 127) small = false;
    }
    wraps.add(wrap.join(','));
    if (small) fitsInt8++;
  }
  const wrapBits = Math.ceil(Math.log2(wraps.size));
  rows.push([
    name,
    String(scheme.q),
    `${codec.codeBits}`,
    `${((100 * escaped) / blocks).toFixed(1)}%`,
    String(wraps.size),
    `${wrapBits} (+${(wrapBits / 8).toFixed(2)})`,
    `${((100 * fitsInt8) / blocks).toFixed(2)}%`,
  ]);
}
console.log(`E8 blocks of a Gaussian ${n} × ${cols} matrix (seed 1, nonce 2), every block decoded on the CPU:\n`);
console.log(
  markdownTable(['scheme', 'q', 'code bits / block', 'escaped blocks', 'distinct wrap points κ', 'bits / block to store κ (per entry)', 'blocks with every λ_i in [−127, 127]'], rows),
);
