import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { readQuantizedContainer } from '../../src/format/container.js';
import { isShortWindowedRotation } from '../../src/rotation/hadamard.js';
import { AllocationProbe } from '../io/safetensorsFuzz.js';
import {
  containerFuzzCorpus,
  emptyContainerFuzzCounts,
  runContainerFuzz,
  runContainerFuzzCase,
  type ContainerFuzzCounts,
} from './containerFuzzProperty.js';

/*
 * The container reader under damage (the property is in containerFuzzProperty.ts): every single-bit
 * flip and every truncation of five corpus files holding all kinds of matrices and every format version
 * (1: E8 with one dither key; 2; 3: two-window rotations of 256 < n ≤ 1024), then 6,000 fast-check
 * cases (fixed seed) of byte mutations and resealed edits. The tallies are printed for
 * docs/RELIABILITY.md.
 */

const SEED = 20_250_701;

function summary(c: ContainerFuzzCounts): string {
  const kinds = Object.entries(c.byKind)
    .sort((a, b) => b[1].tried - a[1].tried)
    .map(([kind, t]) => `  ${kind.padEnd(22)} tried ${String(t.tried).padStart(6)}  refused ${String(t.refused).padStart(6)}`)
    .join('\n');
  const reasons = Object.entries(c.reasons).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ');
  return [
    `quantized container fuzz (seed ${SEED}): tried ${c.tried} / refused clearly ${c.refused} / accepted identical ${c.acceptedIdentical} / ` +
      `accepted valid variant (resealed) ${c.acceptedVariant} / silent wrong ${c.silentWrong}` +
      ` (accepted with a product matmulAT refused as beyond f32: ${c.productsRefused})`,
    kinds,
    `  refusal reasons: ${reasons}`,
    `  slowest case ${c.slowestMs.toFixed(1)} ms; largest allocation while reading ${c.largestAllocationRatio.toFixed(2)} bytes per file byte`,
  ].join('\n');
}

describe('quantized container under fuzzing', () => {
  it('≥ 10,000 damaged files: each refused with a LatticeMatmulError or read as identical (or, resealed, as a valid variant)', () => {
    const counts = runContainerFuzz({ seed: SEED, runs: 6000, exhaustiveBytes: Infinity });
    console.log(summary(counts));
    expect(counts.failures).toEqual([]);
    expect(counts.silentWrong).toBe(0);
    expect(counts.tried).toBeGreaterThanOrEqual(10_000);
    expect(counts.refused + counts.acceptedIdentical + counts.acceptedVariant).toBe(counts.tried);
    // No flipped bit and no truncation is ever accepted: the checksums and the framing see them all.
    for (const kind of ['exhaustive flip', 'exhaustive truncate', 'flip', 'truncate'] as const) {
      expect(counts.byKind[kind]?.tried ?? 0, kind).toBeGreaterThan(100);
      expect(counts.byKind[kind]?.refused, kind).toBe(counts.byKind[kind]?.tried);
    }
    // The resealed edits reach the checks behind the checksums, and some are valid variants (so the
    // finite-decoding check ran on files the reader accepted).
    for (const reason of ['checksum', 'safetensors framing', 'format or version', 'non-canonical', 'metadata keys', 'tensor shapes', 'description fields', 'codes and escapes', 'scales and norms', 'weight-only checks']) {
      expect(counts.reasons[reason] ?? 0, reason).toBeGreaterThan(0);
    }
    expect(Object.keys(counts.reasons).filter((r) => r.startsWith('other'))).toEqual([]);
    expect(counts.acceptedVariant).toBeGreaterThan(100);
    expect(counts.slowestMs).toBeLessThan(2000);
  }, 120_000);

  it('the property fails on a silent wrong: a flip the reader would accept is reported', () => {
    // Self-test of the property: present the original file as the result of a mutation of another
    // corpus file; the reader accepts it (it is valid), and the property must call it silent wrong.
    const corpus = containerFuzzCorpus();
    const counts = emptyContainerFuzzCounts();
    const probe = new AllocationProbe();
    probe.install();
    try {
      const problem = runContainerFuzzCase({ base: 0, kind: 'bytes', mutations: [{ kind: 'headerLength', delta: 0 }] }, corpus, [corpus[1] as Uint8Array], counts, probe);
      expect(problem).toMatch(/accepted as a different container/);
      expect(counts.silentWrong).toBe(1);
    } finally {
      probe.uninstall();
    }
  });

  it('every corpus file is read back and every one of its bytes matters', () => {
    for (const bytes of containerFuzzCorpus()) {
      expect(() => readQuantizedContainer(bytes)).not.toThrow();
      expect(() => readQuantizedContainer(bytes.subarray(0, bytes.length - 1))).toThrow(LatticeMatmulError);
    }
  });

  it('the corpus holds every format version and what each added: E8 with one dither key (1), with two (2), two-window rotations of 256 < n ≤ 1024 (3)', () => {
    const containers = containerFuzzCorpus().map((bytes) => readQuantizedContainer(bytes));
    expect([...new Set(containers.map((c) => c.formatVersion))].sort()).toEqual([1, 2, 3]);
    const entries = containers.flatMap((c) => c.entries);
    const universalE8 = entries.flatMap((e) => (e.kind === 'universal' && e.matrix.scheme.lattice === 'E8' ? [e.matrix.ditherKeys] : []));
    expect(new Set(universalE8)).toEqual(new Set([1, 2]));
    // Version 3's fields: length = rows, not a Hadamard length, for the lattice kinds; 'hadamard' at such an n.
    const twoWindow = entries.filter((e) => e.kind !== 'weight-only' && e.matrix.rotate && isShortWindowedRotation(e.matrix.rows, e.matrix.length));
    expect(new Set(twoWindow.map((e) => e.kind))).toEqual(new Set(['universal', 'deterministic', 'scalar']));
    expect(entries.some((e) => e.kind === 'weight-only' && e.matrix.rotation === 'hadamard' && isShortWindowedRotation(e.matrix.n, e.matrix.n))).toBe(true);
  });
});
