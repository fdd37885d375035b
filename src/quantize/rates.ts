import { empiricalEntropy } from '../theory/entropy.js';

/** Bits of one side-information float per column (a norm, and a mean and a gain when kept). */
export const SIDE_FLOAT_BITS = 32;

/** What the rate accounting of a lattice-quantized matrix needs. */
export interface LatticeRateInputs {
  readonly rows: number;
  readonly cols: number;
  readonly blocksPerColumn: number;
  /** Bits of one packed code and q^d, the number of codes. */
  readonly codeBits: number;
  readonly codeCount: number;
  /** Bits of one stored scale index. */
  readonly indexBits: number;
  /** How many blocks use each scale index (for its empirical entropy). */
  readonly indexCounts: ArrayLike<number>;
  /** Side floats per column: 1 (norm) + 1 with means + 1 with gains. */
  readonly sideFloatsPerColumn: number;
}

/**
 * Bits per original entry of a lattice-quantized matrix: `bitsStored` counts the packed layout (codes,
 * fixed-width scale indices, side floats); `bitsEntropy` counts codes at log2(q^d) and the scale index
 * by its empirical entropy (the seed paper's accounting). The CPU quantizer and the GPU read-back both
 * use this, so the two report the same numbers.
 */
export function latticeRates(inputs: LatticeRateInputs): { bitsStored: number; bitsEntropy: number } {
  const blocks = inputs.blocksPerColumn * inputs.cols;
  const entries = inputs.rows * inputs.cols;
  const sideBits = inputs.cols * SIDE_FLOAT_BITS * inputs.sideFloatsPerColumn;
  return {
    bitsStored: (blocks * (inputs.codeBits + inputs.indexBits) + sideBits) / entries,
    bitsEntropy: (blocks * (Math.log2(inputs.codeCount) + empiricalEntropy(inputs.indexCounts)) + sideBits) / entries,
  };
}
