import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { AllocationProbe, runSafetensorsFuzz } from './safetensorsFuzz.js';

describe('safetensors reader under fuzzing', () => {
  it('the allocation probe sees the allocations the library makes', () => {
    // Without this the fuzz test's "no allocation larger than the input" would pass vacuously.
    const file = writeSafetensors({ h: { dtype: 'F16', shape: [1000], data: new Uint16Array(1000) } });
    const archive = readSafetensors(file);
    const probe = new AllocationProbe();
    probe.install();
    try {
      expect(probe.measure(() => archive.tensorAsFloat32('h')).largest).toBe(4000);
      expect(probe.measure(() => archive.tensorData('h', { copy: true })).largest).toBe(2000);
      expect(probe.measure(() => archive.tensorData('h')).largest).toBe(0); // an aligned view
    } finally {
      probe.uninstall();
    }
    expect(Uint8Array.name).toBe('Uint8Array');
  });

  it('refuses or reads validly 15,000 mutated files (fixed seed)', () => {
    const started = performance.now();
    const { counts, details } = runSafetensorsFuzz({ seed: 20_250_611, numRuns: 15_000 });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `safetensors fuzz (seed 20250611): tried ${counts.tried}, refused clearly ${counts.refused}, ` +
        `parsed validly ${counts.parsed} (${counts.parsedWithTensors} with tensors), other ${counts.other}; ` +
        `slowest case ${counts.slowestMs.toFixed(1)} ms, ${seconds.toFixed(1)} s in all`,
    );
    expect(counts.failures).toEqual([]);
    expect(details.failed).toBe(false);
    expect(counts.tried).toBeGreaterThanOrEqual(10_000);
    expect(counts.other).toBe(0);
    expect(counts.refused + counts.parsed).toBe(counts.tried);
    // Both outcomes must be well represented, or the mutations are too weak (or too strong) to test much.
    expect(counts.parsed).toBeGreaterThan(counts.tried / 20);
    expect(counts.parsedWithTensors).toBeGreaterThan(counts.tried / 40);
    expect(counts.refused).toBeGreaterThan(counts.tried / 2);
  });
});
