import { describe, expect, it } from 'vitest';
import { row, type BenchRow } from '../../bench/gpu/common.js';
import { defaultComparisons } from '../../bench/gpu/defaults.js';
import { deterministicKernel, groupScaledKernel, int8InputKernel } from '../../bench/gpu/gemvCases.js';
import { Rng } from '../../src/rotation/random.js';

/*
 * The benchmark's comparison of the library's count-chosen defaults with the alternatives it times
 * beside them (bench/gpu/defaults.ts), on rows made up so that each verdict is known by construction,
 * and the link from each alternative GEMV row to its default's row (by name, as a run matches them).
 */

const SHAPE = '8192 × 28672';
const ok = { metric: 'nmse', value: 0.01, limit: 0.1, ok: true };
const DEFAULT = 'lattice GEMV d3-q6-deterministic, int8 inputs (dot4I8Packed), kernel alone (x̂ made once beforehand)';

function timed(kernel: string, samplesMs: number[], fields: Partial<BenchRow> = {}): BenchRow {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return row({ kernel, family: 'gemv', shape: SHAPE, ms: sorted[Math.floor(sorted.length / 2)] ?? null, samplesMs, check: ok, ...fields });
}

const alternative = (kernel: string, samplesMs: number[], fields: Partial<BenchRow> = {}): BenchRow =>
  timed(kernel, samplesMs, { alternativeTo: { choice: 'leader-table copies', defaultKernel: DEFAULT }, ...fields });

describe('defaults against their alternatives', () => {
  it('faster only when every sample of one is below every sample of the other', () => {
    const standard = timed(DEFAULT, [1.0, 1.02, 0.99, 1.01, 1.03, 1.0, 0.98]);
    const rows = [
      standard,
      alternative('32 copies', [0.9, 0.91, 0.92, 0.95, 0.93, 0.9, 0.94]),
      alternative('8 copies', [1.1, 1.05, 1.2, 1.04, 1.06, 1.1, 1.08]),
      // Median 0.95 (faster) but one sample at 1.0 overlaps the default's: no clear difference.
      alternative('padded', [0.95, 0.94, 0.96, 1.0, 0.93, 0.95, 0.97]),
    ];
    const compared = defaultComparisons(rows);
    expect(compared.map((c) => c.verdict)).toEqual(['alternative faster', 'default faster', 'no clear difference']);
    expect(compared[0]).toMatchObject({ choice: 'leader-table copies', shape: SHAPE, defaultKernel: DEFAULT, alternativeKernel: '32 copies', defaultMs: 1.0, alternativeMs: 0.92, note: null });
    expect(compared[0]?.speedup).toBeCloseTo(1.0 / 0.92, 12);
    expect(compared[1]?.speedup).toBeCloseTo(1.0 / 1.08, 12);
  });

  it('not compared, with the reason, where either row is missing, failed, unchecked or at another shape', () => {
    const fast = [0.5, 0.5, 0.5];
    const slow = [1, 1, 1];
    const cases: [BenchRow[], RegExp][] = [
      [[alternative('a', fast)], /^no default row at this shape$/],
      [[timed(DEFAULT, slow, { shape: '1024 × 1024' }), alternative('a', fast)], /^no default row at this shape$/],
      [[timed(DEFAULT, slow, { status: 'failed', note: 'device lost' }), alternative('a', fast)], /^default row failed: device lost$/],
      [[timed(DEFAULT, slow), alternative('a', fast, { status: 'unsupported', note: 'the padded leader table does not fit the workgroup memory' })], /^alternative row unsupported: the padded/],
      [[timed(DEFAULT, slow), alternative('a', fast, { check: { ...ok, value: 1, ok: false } })], /^alternative row not measured, or its check failed$/],
    ];
    for (const [rows, note] of cases) {
      const [c] = defaultComparisons(rows);
      expect(c?.verdict).toBe('not compared');
      expect(c?.speedup).toBeNull();
      expect(c?.note).toMatch(note);
    }
    // Rows without alternativeTo are never compared, and an alternative row is never taken as a default.
    expect(defaultComparisons([timed(DEFAULT, slow)])).toEqual([]);
    const [c] = defaultComparisons([alternative(DEFAULT, slow), alternative('a', fast)]);
    expect(c?.note).toBe('no default row at this shape');
  });

  it('two kernels equally fast get a verdict at the stated rate, 2/C(n + m, n): 1 in 10 with 3 samples each, 1 in 1716 with 7', () => {
    // Both rows' samples drawn from one distribution (timing noise around one mean); the share of
    // trials with a verdict either way, against its binomial standard deviation.
    const rng = new Rng(7);
    const rate = (samples: number, trials: number): number => {
      let verdicts = 0;
      for (let trial = 0; trial < trials; trial++) {
        const draw = (): number[] => Array.from({ length: samples }, () => 1 + 0.05 * rng.nextGaussian());
        const [c] = defaultComparisons([timed(DEFAULT, draw()), alternative('a', draw())]);
        if (c?.verdict !== 'no clear difference') verdicts++;
      }
      return verdicts / trials;
    };
    for (const [samples, trials, p] of [[3, 20_000, 1 / 10], [7, 200_000, 1 / 1716]] as const) {
      const sd = Math.sqrt((p * (1 - p)) / trials);
      expect(Math.abs(rate(samples, trials) - p)).toBeLessThan(5 * sd);
    }
  });

  it("each alternative GEMV row names its default's row, and the defaults' rows name none", () => {
    const pairs = [
      [deterministicKernel('d3-q6-deterministic', 'packed', true, { leaderCopies: 8 }), deterministicKernel('d3-q6-deterministic', 'packed', true), 'leader-table copies'],
      [deterministicKernel('d3-q6-deterministic', 'packed', true, { leaderCopies: 32 }), deterministicKernel('d3-q6-deterministic', 'packed', true), 'leader-table copies'],
      [deterministicKernel('d3-q6-deterministic', 'packed', true, { padLeaderTable: true }), deterministicKernel('d3-q6-deterministic', 'packed', true), 'leader table padded to 256 entries'],
      [deterministicKernel('d3-q6-deterministic', 'packed', true, { scaleMultiples: 'table' }), deterministicKernel('d3-q6-deterministic', 'packed', true), 'scale multiples (a cubic, or a table)'],
      [deterministicKernel('d3-q6-deterministic', 'plain'), deterministicKernel('d3-q6-deterministic', 'packed'), 'dot path'],
      [int8InputKernel('packed', true, { leaderCopies: 32 }), int8InputKernel('packed', true), 'leader-table copies'],
      [int8InputKernel('packed', true, { padLeaderTable: true }), int8InputKernel('packed', true), 'leader table padded to 256 entries'],
      [int8InputKernel('plain'), int8InputKernel('packed'), 'dot path'],
      [groupScaledKernel('packed', { leaderCopies: 32 }), groupScaledKernel('packed'), 'leader-table copies'],
    ] as const;
    for (const [alt, standard, choice] of pairs) {
      expect(alt.alternativeTo).toEqual({ choice, defaultKernel: standard.name });
      expect(standard.alternativeTo).toBeUndefined();
      expect(alt.name).not.toBe(standard.name);
    }
    expect(deterministicKernel('d3-q6-deterministic').alternativeTo).toBeUndefined();
    expect(int8InputKernel('packed').alternativeTo).toBeUndefined();
  });
});
