import { describe, expect, it } from 'vitest';
import { pipelineKeys } from '../../demo/gpuRun.js';
import { N_MAX, N_MIN } from '../../demo/limits.js';
import { planHadamardRotation } from '../../src/gpu/kernels/hadamard.js';

/*
 * Which demo runs include compiling GPU pipelines, in Node. The worker said so of a device's first run
 * only; but each scheme's first run compiles its pipelines (12–15 s on SwiftShader) and the first run
 * at a new rotation length a rotation variant (about 9 s there), and those runs were shown as warm.
 */

describe('pipelineKeys', () => {
  it('keys a run by its kernels (scheme or universal lattice, product kernel) and its rotation variant', () => {
    expect(pipelineKeys('e8-q16', 1000, 32, 'universal-i8')).toEqual(['E8 (universal), universal-i8 product', 'rotation 768']);
    // The E8 rate presets share the universal E8 pipelines; another lattice or product kernel does not.
    expect(pipelineKeys('e8-4bit', 1000, 32, 'universal-i8')).toEqual(pipelineKeys('e8-q16', 1000, 32, 'universal-i8'));
    expect(pipelineKeys('d3-q6', 1000, 32, 'universal-i8')[0]).toBe('D3 (universal), universal-i8 product');
    expect(pipelineKeys('e8-q16', 1000, 32, 'universal-decode')[0]).toBe('E8 (universal), universal-decode product');
    expect(pipelineKeys('d3-q6-deterministic', 1000, 32, 'd3-table')).toEqual(['d3-q6-deterministic, d3-table product', 'rotation 768']);
    expect(pipelineKeys('e8-q16-deterministic', 1000, 32, 'e8-dot')[0]).toBe('e8-q16-deterministic, e8-dot product');
    // Two overlapping windows of 768 entries (12 · 2^6), as for n = 896; n = 200 and 256 pad to 256.
    expect(pipelineKeys('e8-q16', 896, 32, 'universal-i8')).toEqual(pipelineKeys('e8-q16', 1000, 32, 'universal-i8'));
    expect(pipelineKeys('e8-q16', 200, 32, 'universal-i8')[1]).toBe('rotation 256');
    expect(pipelineKeys('e8-q16', 256, 1, 'universal-i8')[1]).toBe('rotation 256, fewer than 8 columns');
  });

  it('gives every n of one rotation key the same rotation pipeline variant (workgroup size and block)', () => {
    for (const storageBytes of [16384, 32768, 49152]) {
      for (const cols of [1, 7, 8, 64]) {
        const variants = new Map<string, string>();
        for (let n = N_MIN; n <= N_MAX; n++) {
          const key = pipelineKeys('e8-q16', n, cols, 'universal-i8')[1] ?? '';
          const plan = planHadamardRotation(n, storageBytes, { columns: cols });
          const variant = `${plan.workgroupElements}/${plan.block}`;
          expect(variants.get(key) ?? variant, `n = ${n}, ${cols} columns, ${storageBytes} bytes`).toBe(variant);
          variants.set(key, variant);
        }
      }
    }
  });

  it('tells apart the rotation variants of 8192 rows with fewer than 8 columns and with more', () => {
    const few = planHadamardRotation(8192, 32768, { columns: 4 });
    const many = planHadamardRotation(8192, 32768, { columns: 16 });
    expect(few.workgroupElements).not.toBe(many.workgroupElements);
    expect(pipelineKeys('e8-q16', 8192, 4, 'universal-i8')[1]).not.toBe(pipelineKeys('e8-q16', 8192, 16, 'universal-i8')[1]);
  });
});
