/**
 * How many passes through workgroup memory a warp's leader lookup takes in the int8-input GEMVs
 * (shaders/gemv_i8_common.wgsl), for each number of leader-table copies. Workgroup memory has 32 banks
 * of 4 bytes; a warp's load takes as many passes as the most distinct words any one bank must serve.
 * The kernels keep entry e of copy c at word e·copies + c and let lane l read copy l mod copies; at
 * one lookup, lane l holds block 16·l + s of a run of 32 consecutive code quads of one column (16
 * blocks per quad, s = 0…15). On every such lookup of a Gaussian matrix's D3 codes (both D3 schemes)
 * and on uniform random codes, this prints the mean passes.
 *
 *   node --import tsx --import ./scripts/raw-loader.mjs bench/leaderBankPasses.ts [--n 4096 --cols 32]
 */
import { quantize } from '../src/quantize/quantize.js';
import { gaussianMatrix, Rng } from '../src/rotation/random.js';
import { markdownTable, parseArgs } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { n: 'number', cols: 'number' });
const n = (args.get('n') as number | undefined) ?? 4096;
const cols = (args.get('cols') as number | undefined) ?? 32;
const COPIES = [1, 2, 4, 8, 16, 32] as const;
const LANES = 32;
const BANKS = 32;
const QUAD_BLOCKS = 16;
const LEADERS = 6 ** 3;

/** Passes of one warp-wide lookup: the most distinct words that share a bank. */
function passes(codes: readonly number[], copies: number): number {
  const words = new Map<number, Set<number>>();
  codes.forEach((code, lane) => {
    const word = code * copies + (lane % copies);
    const bank = words.get(word % BANKS) ?? new Set<number>();
    bank.add(word);
    words.set(word % BANKS, bank);
  });
  return Math.max(...Array.from(words.values(), (bank) => bank.size));
}

/** The lookups of every run of 32 quads of every column: each a list of 32 codes, lane by lane. */
function lookups(codes: Uint32Array, blocksPerColumn: number, columns: number): number[][] {
  const all: number[][] = [];
  for (let j = 0; j < columns; j++) {
    for (let run = 0; run + LANES * QUAD_BLOCKS <= blocksPerColumn; run += LANES * QUAD_BLOCKS) {
      for (let s = 0; s < QUAD_BLOCKS; s++) {
        all.push(Array.from({ length: LANES }, (_, lane) => codes[j * blocksPerColumn + run + QUAD_BLOCKS * lane + s] as number));
      }
    }
  }
  return all;
}

const sources: [string, number[][]][] = [];
for (const scheme of ['d3-q6-deterministic', 'd3-q6'] as const) {
  const q = quantize(gaussianMatrix(n, cols, 7), scheme === 'd3-q6' ? { scheme, seed: 1, nonce: 3 } : { scheme, seed: 1 });
  if (q.kind !== 'lattice') throw new Error(`${scheme} is not a lattice scheme`);
  sources.push([`${scheme}, Gaussian ${n} × ${cols}`, lookups(q.codes, q.blocksPerColumn, q.cols)]);
}
const rng = new Rng(11);
sources.push(['uniform codes', Array.from({ length: 20000 }, () => Array.from({ length: LANES }, () => rng.nextU32() % LEADERS))]);

const rows = sources.map(([name, list]) => [name, String(list.length), ...COPIES.map((copies) => (list.reduce((sum, codes) => sum + passes(codes, copies), 0) / list.length).toFixed(2))]);
console.log(markdownTable(['codes', 'lookups', ...COPIES.map((c) => `${c} ${c === 1 ? 'copy' : 'copies'}`)], rows));
