import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMES, type SchemeName } from '../../src/quantize/schemes.js';
import { gammaInverse } from '../../src/theory/gamma.js';

/*
 * The README's preset tables ("Presets") against the theory, recomputed here rather than read from the
 * library's constants: a preset's (lattice, q, β) is the shipped scheme's, its NMSE is 2D + D² with
 * D = β²σ²(Λ), and its stored rate loss is bits − Γ⁻¹(NMSE) of the row's own figures, each to the
 * precision the table prints. The measurements themselves (bits, measured NMSE) come from the benches
 * the README names (`npm run tune`, `npm run paper`); what this checks is that a row's numbers agree
 * with each other and with the schemes, so a re-tuned preset or a row mixing two runs' figures fails.
 */

/**
 * σ²(Λ) per coordinate of the lattices as the library scales them: E8 = D8 ∪ (D8 + ½) has volume 1 and
 * normalized second moment G(E8) = 929/12960 (Conway–Sloane, SPLAG ch. 21), so σ² = G; D3 = {x ∈ Z³ :
 * Σx even} has volume 2 and G(D3) = G(A3) = 0.0787450…, so σ² = G·2^(2/3) = 1/8.
 */
const G_D3 = 0.078745;
const SIGMA2: Record<'D3' | 'E8', number> = { E8: 929 / 12960, D3: G_D3 * 2 ** (2 / 3) };

const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** The lines of the README section under `## heading`, up to the next `## `. */
function section(heading: string): string[] {
  const lines = readme.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  expect(start, `README has a "## ${heading}" section`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((line, i) => i > start && line.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** The body rows (cells trimmed) of the table whose header row starts with `headerStart`. */
function table(lines: string[], headerStart: string): string[][] {
  const header = lines.findIndex((line) => line.startsWith(headerStart));
  expect(header, `a table whose header starts with "${headerStart}"`).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (let i = header + 2; i < lines.length && (lines[i] as string).startsWith('|'); i++) {
    rows.push((lines[i] as string).split('|').slice(1, -1).map((cell) => cell.trim()));
  }
  expect(rows.length).toBeGreaterThan(0);
  return rows;
}

/** A printed number and half a unit of its last printed digit (the precision it is given to). */
function printed(cell: string): { value: number; half: number } {
  const match = /^-?\d+(?:\.(\d+))?$/.exec(cell);
  expect(match, `"${cell}" is a plain decimal number`).not.toBeNull();
  return { value: Number(cell), half: 0.5 * 10 ** -((match?.[1] ?? '').length) };
}

/** The largest change of Γ⁻¹ over NMSE values within `half` of `nmse` (Γ⁻¹ is monotone). */
function inverseSpread(nmse: number, half: number): number {
  const center = gammaInverse(nmse);
  return Math.max(Math.abs(gammaInverse(nmse - half) - center), Math.abs(gammaInverse(Math.min(1, nmse + half)) - center));
}

/** 2D + D² for a universal scheme of the README (n = N: every n below is a Hadamard length). */
function predictedNmse(lattice: 'D3' | 'E8', beta: number): number {
  const d = beta * beta * SIGMA2[lattice];
  return 2 * d + d * d;
}

function universalPreset(name: string): { lattice: 'D3' | 'E8'; q: number; beta: number } {
  expect(Object.hasOwn(SCHEMES, name), `${name} is a preset`).toBe(true);
  const scheme = SCHEMES[name as SchemeName];
  if (scheme.kind !== 'lattice' || scheme.mode !== 'universal') throw new Error(`${name} is not a universal preset`);
  return scheme;
}

describe('README "Presets": the rate-preset table', () => {
  const rows = table(section('Presets'), '| preset | lattice, q, β |');

  it('lists every universal preset once', () => {
    const listed = rows.map((row) => (row[0] as string).replaceAll('`', ''));
    const universal = Object.entries(SCHEMES)
      .filter(([, s]) => s.kind === 'lattice' && s.mode === 'universal')
      .map(([name]) => name);
    expect([...listed].sort()).toEqual([...universal].sort());
  });

  it.each(rows.map((row) => [(row[0] as string).replaceAll('`', ''), row] as const))('%s: lattice, q, β are the scheme\'s; NMSE is 2D + D²; the loss is bits − Γ⁻¹(NMSE) of the row', (name, row) => {
    const [, config, bitsCell, entropyCell, nmseCell, lossCell] = row as string[];
    const scheme = universalPreset(name);
    const match = /^(D3|E8), (\d+), ([\d.]+)/.exec(config as string);
    expect(match, `"${config}" names lattice, q, β`).not.toBeNull();
    expect({ lattice: match?.[1], q: Number(match?.[2]), beta: Number(match?.[3]) }).toEqual({ lattice: scheme.lattice, q: scheme.q, beta: scheme.beta });

    const bits = printed(bitsCell as string);
    const entropy = printed(entropyCell as string);
    const nmse = printed(nmseCell as string);
    const loss = printed(lossCell as string);
    expect(entropy.value).toBeLessThanOrEqual(bits.value);

    // The rows' D is measured (`npm run tune`: D/(β²σ²) = 0.999–1.000 over 960,000 coordinates, whose relative
    // s.e. is ≈ 0.06 %; e8-q16's row −0.2 %, from fewer): 0.4 % beyond the rounding.
    const predicted = predictedNmse(scheme.lattice, scheme.beta);
    expect(Math.abs(nmse.value - predicted)).toBeLessThanOrEqual(nmse.half + 0.004 * predicted);

    // The loss of the row's own bits and NMSE, to the rounding of all three.
    const recomputed = bits.value - gammaInverse(nmse.value);
    expect(Math.abs(loss.value - recomputed), `${name}: ${bits.value} − Γ⁻¹(${nmse.value}) = ${recomputed.toFixed(4)}`).toBeLessThanOrEqual(
      bits.half + loss.half + inverseSpread(nmse.value, nmse.half) + 1e-9,
    );
  });
});

describe('README "Presets": the n = 4096 comparison table', () => {
  const rows = table(section('Presets'), '| scheme | stored rate loss | bits stored | NMSE | predicted (universal) |');

  it.each(rows.map((row) => [(row[0] as string).split(' ')[0]?.replaceAll('`', '') as string, row] as const))('%s: the loss is bits − Γ⁻¹(NMSE); a universal row predicts 2D + D²', (name, row) => {
    const [, lossCell, bitsCell, nmseCell, predictedCell] = row as string[];
    const loss = printed(lossCell as string);
    const bits = printed(bitsCell as string);
    const nmse = printed(nmseCell as string);
    const recomputed = bits.value - gammaInverse(nmse.value);
    expect(Math.abs(loss.value - recomputed), `${name}: ${bits.value} − Γ⁻¹(${nmse.value}) = ${recomputed.toFixed(4)}`).toBeLessThanOrEqual(
      bits.half + loss.half + inverseSpread(nmse.value, nmse.half) + 1e-9,
    );
    if (predictedCell === '—') return;
    const scheme = universalPreset(name);
    const predicted = printed(predictedCell as string);
    expect(Math.abs(predicted.value - predictedNmse(scheme.lattice, scheme.beta))).toBeLessThanOrEqual(predicted.half + 1e-12);
  });
});

describe('the second moments used above', () => {
  it('σ²(D3) of the volume-2 lattice is 1/8, σ²(E8) of the volume-1 lattice 929/12960 ≈ 0.0717', () => {
    expect(SIGMA2.D3).toBeCloseTo(1 / 8, 6);
    expect(SIGMA2.E8).toBeCloseTo(0.071682, 6);
  });
});
