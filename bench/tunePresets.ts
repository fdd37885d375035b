/**
 * Tunes the universal lattice presets (src/quantize/schemes.ts) along the rate–distortion frontier.
 *
 *   npm run tune                      # full sweep (a few minutes), writes bench/out/presets.{json,md}
 *   npm run tune -- --quick           # coarse sweep (CI)
 *
 * For every lattice (D3, E8), nesting ratio q and scale β on a geometric grid, the library's own block
 * encoder (src/quantize/universalCode.ts: randomized rounding, dither, exact nearest point, escapes) runs
 * on blocks of iid N(0, 1) coordinates — what a rotated, normalized column looks like — and the script
 * records the escape statistics and the error energy per coordinate D. Then
 *   stored bits/entry  = (code bits + 1 escape bit + 4·escapes + 16·long escapes + …)/d + 32/n (norm),
 *   NMSE               = 2D + D² (exact for the universal code, D measured here as a check),
 *   stored rate loss   = stored bits − Γ⁻¹(NMSE).
 * For each target rate it keeps the configuration of least stored rate loss within ±TOLERANCE bits of
 * the target. Everything is deterministic (fixed seeds), so a rerun prints the same table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { HUGE_ESCAPE } from '../src/lattices/escapes.js';
import { universalCodec, type LatticeName } from '../src/quantize/latticeSpec.js';
import { SIDE_FLOAT_BITS } from '../src/quantize/rates.js';
import { blockDither, blockMirror, LONG_ESCAPE, randomizedRound, UniversalBlockDecoder, UniversalBlockEncoder, type UniversalBlock } from '../src/quantize/universalCode.js';
import { DITHER_GRID } from '../src/quantize/latticeSpec.js';
import { Rng } from '../src/rotation/random.js';
import { empiricalEntropy } from '../src/theory/entropy.js';
import { gammaInverse } from '../src/theory/gamma.js';
import { markdownTable, parseArgs, progress, progressDone } from './lib/args.js';

const args = parseArgs(process.argv.slice(2), { quick: 'flag', json: 'string', md: 'string', n: 'number' });
const quick = args.get('quick') === true;
/** The column length whose side information (one f32 norm) is charged to the rate. */
const n = (args.get('n') as number | undefined) ?? 4096;
const TARGETS = [2, 2.5, 3, 3.5, 4, 4.5, 5];
const TOLERANCE = 0.13;
const SWEEP_COORDINATES = quick ? 24_000 : 96_000;
const CONFIRM_COORDINATES = quick ? 96_000 : 960_000;

interface Point {
  lattice: LatticeName;
  q: number;
  beta: number;
  bitsStored: number;
  bitsEntropy: number;
  escapeRate: number;
  longRate: number;
  distortion: number;
  predictedDistortion: number;
  nmse: number;
  rateLoss: number;
  coordinates: number;
}

/** Encodes `coordinates` iid N(0,1) coordinates in blocks and measures rates and error. */
function measure(lattice: LatticeName, q: number, beta: number, coordinates: number, seed: number): Point {
  const codec = universalCodec(lattice, q, beta);
  const { spec } = codec;
  const d = spec.dimension;
  const blocks = Math.ceil(coordinates / d);
  const encoder = new UniversalBlockEncoder(codec);
  const decoder = new UniversalBlockDecoder(codec);
  const rng = new Rng(seed);
  const x = new Float64Array(d);
  const fixed = new Int32Array(d);
  const dither = new Int32Array(d);
  const point = new Int32Array(d);
  const block: UniversalBlock = { code: 0, symbol: 0, longIndex: 0 };
  const symbols = new Float64Array(LONG_ESCAPE + 1);
  let longs = 0;
  let huge = 0;
  let error = 0;
  const ditherKeys = { first: rng.nextU32(), second: rng.nextU32() };
  const roundKey = rng.nextU32();
  for (let b = 0; b < blocks; b++) {
    for (let v = 0; v < d; v++) {
      x[v] = rng.nextGaussian();
      fixed[v] = randomizedRound(Math.fround((x[v] as number) * (DITHER_GRID / beta)), roundKey, b * d + v);
    }
    blockDither(codec, ditherKeys, b, dither);
    encoder.encode(fixed, 0, dither, blockMirror(roundKey, b, d), block);
    symbols[block.symbol] = (symbols[block.symbol] as number) + 1;
    if (block.symbol === LONG_ESCAPE) {
      longs++;
      if (block.longIndex === HUGE_ESCAPE) huge++;
    }
    decoder.decode(block.code, block.symbol, block.longIndex, encoder.mu, point);
    for (let v = 0; v < d; v++) {
      const decoded = beta * ((point[v] as number) / spec.pointScale - (dither[v] as number) / DITHER_GRID);
      error += (decoded - (x[v] as number)) ** 2;
    }
  }
  const escapes = blocks - (symbols[0] as number);
  const perBlockStored = codec.codeBits + 1 + (4 * escapes + 16 * longs + 32 * d * huge) / blocks;
  const perBlockEntropy = d * Math.log2(q) + empiricalEntropy(symbols) + (16 * longs + 32 * d * huge) / blocks;
  const side = SIDE_FLOAT_BITS / n;
  const distortion = error / (blocks * d);
  const nmse = 2 * distortion + distortion * distortion;
  const bitsStored = perBlockStored / d + side;
  return {
    lattice,
    q,
    beta,
    bitsStored,
    bitsEntropy: perBlockEntropy / d + side,
    escapeRate: escapes / blocks,
    longRate: longs / blocks,
    distortion,
    predictedDistortion: codec.distortion,
    nmse,
    rateLoss: nmse < 1 ? bitsStored - gammaInverse(nmse) : Infinity,
    coordinates: blocks * d,
  };
}

const LATTICE_QS: Record<'D3' | 'E8', number[]> = {
  D3: [3, 4, 5, 6, 7, 8, 10, 11, 12, 14, 16, 20, 22, 25, 28, 32, 40],
  E8: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 26, 28, 30, 32],
};

const sweep: Point[] = [];
for (const lattice of ['E8', 'D3'] as const) {
  for (const q of LATTICE_QS[lattice]) {
    // β where the code just covers a unit-variance coordinate, then a geometric grid around it.
    const center = (2.9 / q) * (lattice === 'E8' ? 1.4 : 1.3);
    for (let step = -8; step <= 8; step++) {
      const beta = Number((center * 1.06 ** step).toPrecision(4));
      progress(`sweep ${lattice} q=${q} β=${beta}`);
      sweep.push(measure(lattice, q, beta, SWEEP_COORDINATES, 1));
    }
  }
}
progressDone();

interface Preset {
  target: number;
  point: Point;
}
const presets: Preset[] = [];
for (const target of TARGETS) {
  const candidates = sweep
    .filter((p) => Math.abs(p.bitsStored - target) <= TOLERANCE)
    .sort((a, b) => a.rateLoss - b.rateLoss)
    .slice(0, 4);
  // Confirm the best few on more data (and an independent seed) before choosing.
  const confirmed = candidates.map((c) => measure(c.lattice, c.q, c.beta, CONFIRM_COORDINATES, 2)).filter((p) => Math.abs(p.bitsStored - target) <= TOLERANCE);
  confirmed.sort((a, b) => a.rateLoss - b.rateLoss);
  const best = confirmed[0];
  if (best !== undefined) presets.push({ target, point: best });
}

const fmt = (v: number, digits: number): string => v.toFixed(digits);
const table = markdownTable(
  ['target', 'lattice', 'q', 'β', 'bits stored', 'bits entropy', 'escapes', 'long', 'NMSE', 'D / (β²σ²)', 'stored rate loss'],
  presets.map(({ target, point: p }) => [
    String(target),
    p.lattice,
    String(p.q),
    String(p.beta),
    fmt(p.bitsStored, 3),
    fmt(p.bitsEntropy, 3),
    `${(100 * p.escapeRate).toFixed(1)} %`,
    `${(100 * p.longRate).toFixed(2)} %`,
    p.nmse.toExponential(3),
    fmt(p.distortion / p.predictedDistortion, 4),
    fmt(p.rateLoss, 3),
  ]),
);
const frontier = markdownTable(
  ['lattice', 'q', 'best β', 'bits stored', 'NMSE', 'stored rate loss'],
  (['E8', 'D3'] as const).flatMap((lattice) =>
    LATTICE_QS[lattice].map((q) => {
      const best = sweep.filter((p) => p.lattice === lattice && p.q === q).sort((a, b) => a.rateLoss - b.rateLoss)[0] as Point;
      return [lattice, String(q), String(best.beta), fmt(best.bitsStored, 3), best.nmse.toExponential(3), fmt(best.rateLoss, 3)];
    }),
  ),
);
const header = `Universal presets (n = ${n} for the norm's side bits; ${CONFIRM_COORDINATES} Gaussian coordinates per confirmed point)`;
console.log(`${header}\n\n${table}\n\nBest β per (lattice, q) in the sweep:\n\n${frontier}`);
const jsonPath = (args.get('json') as string | undefined) ?? 'bench/out/presets.json';
const mdPath = (args.get('md') as string | undefined) ?? 'bench/out/presets.md';
mkdirSync('bench/out', { recursive: true });
writeFileSync(jsonPath, JSON.stringify({ n, tolerance: TOLERANCE, presets, sweep }, null, 1));
writeFileSync(mdPath, `${header}\n\n${table}\n\n${frontier}\n`);
