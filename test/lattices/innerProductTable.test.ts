import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { innerProductTable, leaderTable, MAX_TABLE_CODES } from '../../src/lattices/innerProductTable.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { zLattice } from '../../src/lattices/zLattice.js';

describe.each([
  ['D3', 6],
  ['D3', 4],
  ['E8', 2],
  ['Z1', 16],
] as const)('tables of VoronoiCode(%s, %i)', (name, q) => {
  const lattice = name === 'D3' ? D3 : name === 'E8' ? E8 : zLattice(1);
  const code = new VoronoiCode(lattice, q);
  const d = lattice.dimension;
  const size = code.size;

  it('leaderTable row c is decode(c)', () => {
    const leaders = leaderTable(code);
    expect(leaders.length).toBe(size * d);
    for (let c = 0; c < size; c++) expect([...leaders.subarray(c * d, (c + 1) * d)]).toEqual([...code.decode(c)]);
  });

  it('innerProductTable is symmetric and T[a·size + b] = ⟨decode(a), decode(b)⟩', () => {
    const table = innerProductTable(code);
    expect(table.length).toBe(size * size);
    const leaders = Array.from({ length: size }, (_, c) => code.decode(c));
    let hi = -Infinity;
    let diagonalMax = -Infinity;
    for (let a = 0; a < size; a++) {
      for (let b = 0; b < size; b++) {
        const expected = leaders[a]!.reduce((acc, v, i) => acc + v * (leaders[b]![i] as number), 0);
        const entry = table[a * size + b] as number;
        if (entry !== expected || entry !== table[b * size + a]) expect.fail(`T[${a}][${b}] = ${entry}, expected ${expected}`);
        hi = Math.max(hi, entry);
      }
      diagonalMax = Math.max(diagonalMax, table[a * size + a] as number);
    }
    // Cauchy–Schwarz: the largest entry is the largest squared norm, on the diagonal.
    expect(hi).toBe(diagonalMax);
  });
});

describe('innerProductTable(D3, 6)', () => {
  it('entries lie in [−30, 36]: int8 on the GPU', () => {
    const table = innerProductTable(new VoronoiCode(D3, 6));
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of table) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-30);
    expect(hi).toBeLessThanOrEqual(36);
    expect(lo).toBeGreaterThanOrEqual(-128);
  });

  it(`codes larger than MAX_TABLE_CODES (${MAX_TABLE_CODES}) are refused`, () => {
    const big = new VoronoiCode(E8, 4);
    expect(big.size).toBeGreaterThan(MAX_TABLE_CODES);
    expect(() => innerProductTable(big)).toThrow(LatticeMatmulError);
    expect(() => leaderTable(big)).toThrow(/at most 1024 codes/);
  });
});
