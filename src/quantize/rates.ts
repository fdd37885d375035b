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

/** What the rate accounting of a universal lattice matrix needs. */
export interface UniversalRateInputs {
  readonly rows: number;
  readonly cols: number;
  readonly blocksPerColumn: number;
  /** Bits of a block's code (all parts) and log2 of the number of codes, q^d. */
  readonly codeBits: number;
  readonly codeEntropyBits: number;
  /** How many blocks have each escape symbol (0 none, 1…15 rank, 16 long). */
  readonly symbolCounts: ArrayLike<number>;
  readonly longCount: number;
  readonly hugeCount: number;
  readonly dimension: number;
  /** Side floats per column: 1 (norm) + 1 with means. */
  readonly sideFloatsPerColumn: number;
}

/**
 * Bits per original entry of a universal lattice matrix. `bitsStored` counts the packed layout
 * (src/format/universalLayout.ts: per-column code and escape-bit streams, the 4-bit rank stream, the
 * 16-bit long-escape stream, explicit escapes, side floats) word for word; `bitsEntropy` counts codes
 * at log2(q^d), the escape symbol per block by its empirical entropy, long and explicit escapes as
 * stored, and the side floats.
 */
export function universalRates(inputs: UniversalRateInputs): { bitsStored: number; bitsEntropy: number } {
  const { rows, cols, blocksPerColumn, codeBits, dimension, longCount, hugeCount } = inputs;
  const entries = rows * cols;
  const blocks = blocksPerColumn * cols;
  let escapes = 0;
  for (let s = 1; s < inputs.symbolCounts.length; s++) escapes += inputs.symbolCounts[s] as number;
  const sideBits = cols * SIDE_FLOAT_BITS * inputs.sideFloatsPerColumn;
  const words =
    cols * Math.ceil((blocksPerColumn * codeBits) / 32) + // codes, all parts of a block back to back
    cols * Math.ceil(blocksPerColumn / 32) + // escape bits
    Math.ceil((escapes * 4) / 32) + // ranks
    Math.ceil((longCount * 16) / 32) + // long escapes
    hugeCount * dimension; // explicit escapes, one i32 per coordinate
  const explicitBits = longCount * 16 + hugeCount * 32 * dimension;
  return {
    bitsStored: (32 * words + sideBits) / entries,
    bitsEntropy: (blocks * (inputs.codeEntropyBits + empiricalEntropy(inputs.symbolCounts)) + explicitBits + sideBits) / entries,
  };
}

/**
 * {@link universalRates} of a universal matrix from its escape symbols: the one accounting the CPU
 * quantizer and the GPU read-back share.
 */
export function universalRatesOf(
  codec: { readonly codeBits: number; readonly q: number; readonly spec: { readonly dimension: number } },
  rows: number,
  cols: number,
  blocksPerColumn: number,
  escapes: Uint8Array,
  longEscapes: ArrayLike<number>,
  hugeCount: number,
  hasMeans: boolean,
): { bitsStored: number; bitsEntropy: number } {
  const symbolCounts = new Float64Array(17);
  for (const symbol of escapes) symbolCounts[symbol] = (symbolCounts[symbol] as number) + 1;
  const d = codec.spec.dimension;
  return universalRates({
    rows,
    cols,
    blocksPerColumn,
    codeBits: codec.codeBits,
    codeEntropyBits: d * Math.log2(codec.q),
    symbolCounts,
    longCount: longEscapes.length,
    hugeCount,
    dimension: d,
    sideFloatsPerColumn: 1 + (hasMeans ? 1 : 0),
  });
}
