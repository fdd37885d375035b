import { describe, expect, it } from 'vitest';
import { E8 } from '../../src/lattices/e8.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { e8ResidueForm, e8ResidueUnsupported, leaderOfResidue, residueOfLeader, scaleIndexOfSide } from '../../src/quantize/e8Residues.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';

/*
 * The E8 residue form's repack (src/quantize/e8Residues.ts) against the library's decode: every
 * leader it holds is VoronoiCode.decode's, and the form decodes to decodeRotated's columns.
 */

const code = new VoronoiCode(E8, 16);

describe('E8 residue form', () => {
  it('holds every sampled leader of E8 with q = 16 exactly, fixes included', () => {
    const rng = new Rng(1);
    const leader = new Int32Array(8);
    const back = new Int32Array(8);
    let fixed = 0;
    const samples = 200_000;
    for (let t = 0; t < samples; t++) {
      // Digits drawn near the ends of their range too (0, 1, 14, 15 make boundary points).
      let index = 0;
      for (let i = 0; i < 8; i++) {
        const digit = t % 3 === 0 ? [0, 1, 14, 15][rng.nextInt(4)]! : rng.nextInt(16);
        index += digit * 16 ** i;
      }
      code.decode(index, leader);
      const { word, side } = residueOfLeader(leader);
      expect(side >> 4 & 3).toBe(0);
      if ((side & 0xc0) !== 0) fixed++;
      leaderOfResidue(word, side, back);
      if (!back.every((v, i) => v === leader[i])) expect(Array.from(back)).toEqual(Array.from(leader));
    }
    // The parity fix moves a coordinate out of [−16, 16) in a large share of the blocks: the path is exercised.
    expect(fixed / samples).toBeGreaterThan(0.2);
  });

  it('refuses what is not a leader of E8 with q = 16', () => {
    expect(() => residueOfLeader([1, 0, 0, 0, 0, 0, 0, 0])).toThrow(/parity/);
    expect(() => residueOfLeader([48, 0, 0, 0, 0, 0, 0, 0])).toThrow(/not a leader/);
    expect(() => residueOfLeader([20, 20, 0, 0, 0, 0, 0, 0])).toThrow(/not a leader/);
  });

  for (const [rows, cols] of [[8, 1], [100, 3], [256, 5], [1000, 2]] as const) {
    it(`decodes to decodeRotated's columns (${rows} × ${cols}, scale indices kept)`, () => {
      const w = gaussianMatrix(rows, cols, rows + cols);
      // Graded blocks: every rung of the scheme's 4 scales is used.
      for (let k = 0; k < w.data.length; k++) w.data[k] = (w.data[k] as number) * 3 ** ((Math.floor(k / 8) % 4) - 1.5);
      const m = quantize(w, { scheme: 'e8-q16-deterministic', center: false, rotate: false, gain: 'none' }) as DeterministicLatticeMatrix;
      const r = e8ResidueForm(m);
      const expected = decodeRotated(m);
      const leader = new Int32Array(8);
      const used = new Set<number>();
      for (let j = 0; j < cols; j++) {
        for (let b = 0; b < r.blocksPerColumn; b++) {
          const side = ((r.sides[j * r.quadsPerColumn + (b >> 2)] as number) >>> (8 * (b & 3))) & 0xff;
          const index = scaleIndexOfSide(side);
          used.add(index);
          expect(index).toBe(m.scaleIndices[j * m.blocksPerColumn + b]);
          leaderOfResidue(r.residues[j * r.quadsPerColumn * 4 + b] as number, side, leader);
          for (let i = 0; i < 8 && b * 8 + i < m.keptLength; i++) {
            const value = (r.columnScales[j] as number) * r.columnUnit * (r.multiples[index] as number) * (leader[i] as number);
            expect(value).toBeCloseTo(expected[j * m.length + b * 8 + i] as number, 12);
          }
        }
        // Padding blocks are the origin.
        for (let b = r.blocksPerColumn; b < 4 * r.quadsPerColumn; b++) {
          expect(Array.from(leaderOfResidue(r.residues[j * r.quadsPerColumn * 4 + b] as number, 0, leader))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
        }
      }
      if (rows >= 256) expect(used.size).toBe(4);
    });
  }

  it('says why other matrices have no residue form', () => {
    const w = gaussianMatrix(64, 2, 9);
    expect(e8ResidueUnsupported(quantize(w, { scheme: 'e8-q16-deterministic', center: false }) as DeterministicLatticeMatrix)).toBeNull();
    // Centred matrices carry their means into the form (the GEMV adds μ_j·Σx).
    const centred = quantize(w, { scheme: 'e8-q16-deterministic', center: true }) as DeterministicLatticeMatrix;
    expect(e8ResidueUnsupported(centred)).toBeNull();
    expect(Array.from(e8ResidueForm(centred).means ?? [])).toEqual(Array.from(centred.means ?? [NaN]));
    expect(e8ResidueUnsupported(quantize(w, { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix)).toMatch(/E8 with q = 16/);
    expect(() => e8ResidueForm(quantize(w, { scheme: 'd3-q6-deterministic' }) as DeterministicLatticeMatrix)).toThrow(/E8 with q = 16/);
  });
});
