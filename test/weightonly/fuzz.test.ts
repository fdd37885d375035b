import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { WeightOnlyQuantized } from '../../src/weightonly/index.js';
import {
  acceptedMutants,
  applyMutation,
  countAllocations,
  emptyReport,
  examine,
  fuzzCorpus,
  runWeightOnlyFuzz,
  type FuzzReport,
} from './fuzzProperty.js';

/*
 * The format's fuzz test (the property is in fuzzProperty.ts): a fixed seed, every single-bit flip
 * of two corpus files, then 9,000 fast-check cases; ~12,000 damaged files in about a second. The
 * tallies are printed for docs/RELIABILITY.md.
 */

const SEED = 20_240_611;

function summary(report: FuzzReport): string {
  const kinds = Object.entries(report.byKind)
    .map(([kind, t]) => `  ${kind.padEnd(16)} tried ${String(t.tried).padStart(5)}  refused ${String(t.refused).padStart(5)}  identical ${String(t.acceptedIdentical).padStart(3)}  valid variant ${String(t.acceptedVariant).padStart(4)}`)
    .join('\n');
  const reasons = Object.entries(report.reasons).sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r} ${c}`).join(', ');
  return [
    `weight-only format fuzz (seed ${SEED}): tried ${report.tried}, refused clearly ${report.refused}, accepted identical ${report.acceptedIdentical}, ` +
      `accepted valid variant (checksum recomputed) ${report.acceptedVariant}, silent wrong ${report.silentWrong}`,
    kinds,
    `  refusal reasons: ${reasons}`,
    `  slowest case ${report.maxMilliseconds.toFixed(2)} ms (${report.slowerThan5Ms} over 5 ms); largest allocation ${report.maxAllocationRatio.toFixed(1)} bytes per file byte (dense-rotation basis excluded)`,
  ].join('\n');
}

describe('weight-only format fuzz', () => {
  it('≥ 10,000 damaged files: each refused with a LatticeMatmulError or read back exactly; no bit flip accepted', () => {
    const report = runWeightOnlyFuzz({ seed: SEED, runs: 9000, exhaustiveBlobs: [0, 5] });
    console.log(summary(report));
    expect(report.tried).toBeGreaterThanOrEqual(10_000);
    expect(report.silentWrong).toBe(0);
    expect(report.refused + report.acceptedIdentical + report.acceptedVariant).toBe(report.tried);
    // The checksum: no flipped bit and no truncation is ever accepted.
    for (const kind of ['flip', 'exhaustive flip', 'truncate'] as const) {
      expect(report.byKind[kind].refused).toBe(report.byKind[kind].tried);
      expect(report.byKind[kind].tried).toBeGreaterThan(1000);
    }
    // Only a resealed file can be a different valid matrix.
    for (const kind of ['flip', 'exhaustive flip', 'truncate', 'damage'] as const) expect(report.byKind[kind].acceptedVariant).toBe(0);
    // The generator reaches the checks behind the checksum, and accepted variants (so the finite and
    // canonical checks ran).
    for (const reason of ['checksum', 'length', 'code widths', 'padding', 'scales', 'rotation', 'flags', 'method', 'version', 'magic']) {
      expect(report.reasons[reason] ?? 0, reason).toBeGreaterThan(0);
    }
    expect(Object.keys(report.reasons).filter((r) => r.startsWith('other'))).toEqual([]);
    expect(report.byKind.resealed.acceptedVariant).toBeGreaterThan(50);
  });

  it('the property fails on a silent wrong: damaged bytes presented as unsealed damage', () => {
    const mutant = acceptedMutants(1, 7)[0] as WeightOnlyQuantized;
    // Corpus files differ in (n, outputs), so the sizes name the file the mutant came from.
    const origin = fuzzCorpus().find((e) => e.q.n === mutant.n && e.q.outputs === mutant.outputs);
    if (origin === undefined) throw new Error('the mutant matches no corpus file');
    expect(() => examine(origin, mutant.serialize(), false, 'damage', emptyReport())).toThrow(/silent wrong/);
    expect(examine(origin, mutant.serialize(), true, 'resealed', emptyReport())).toBe('variant');
  });

  it('the property fails on a slow case and on a non-LatticeMatmulError', () => {
    const entry = fuzzCorpus()[2];
    if (entry === undefined) throw new Error('corpus too small');
    expect(() => examine(entry, entry.bytes, false, 'damage', emptyReport(), { maxCaseMs: 0 })).toThrow(/took .* ms/);
    expect(() => examine(entry, 'not bytes' as unknown as Uint8Array, false, 'damage', emptyReport())).not.toThrow(); // a LatticeMatmulError: refused
    const bytes = applyMutation({ kind: 'flip', blob: 2, bit: 100 });
    expect(() => WeightOnlyQuantized.deserialize(bytes)).toThrow(LatticeMatmulError);
  });

  it('countAllocations counts typed arrays made by length, by copy and by from(), not views', () => {
    const buffer = new ArrayBuffer(64);
    const { result, bytes } = countAllocations(() => {
      const a = new Float32Array(1000);
      const b = Float64Array.from([1, 2, 3]);
      const c = new Uint8Array(buffer, 8, 16);
      const d = new Int32Array(a);
      return a.length + b.length + c.length + d.length;
    });
    expect(result).toEqual({ ok: true, value: 2019 });
    expect(bytes).toBe(4000 + 24 + 4000);
    expect(new Float32Array(3)).toBeInstanceOf(Float32Array); // constructors restored
  });
});
