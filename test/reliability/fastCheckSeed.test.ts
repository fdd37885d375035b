import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// test/setup/fastCheckSeed.ts: property tests without a seed of their own are reproducible.
describe('the fast-check seed of the test run', () => {
  it('is fixed unless LATTICE_FC_SEED asks for another', () => {
    const asked = process.env.LATTICE_FC_SEED;
    const seed = fc.readConfigureGlobal().seed;
    if (asked === 'random') expect(seed).toBeUndefined();
    else expect(seed).toBe(asked === undefined || asked === '' ? 20261202 : Number(asked));
  });
});
