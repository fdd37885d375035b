/**
 * A growing list of 32-bit integers, for the per-block streams of a matrix (escape ranks, ids, long
 * escapes, non-root records) whose length is known only once they are built.
 *
 * Why not a number[] with push: V8 caps a plain array's backing store at about 1.3·10⁸ elements, and
 * `TypedArray.from(source, map)` first builds such an array. Past the cap the process aborts ("invalid
 * array length … heap out of memory"), an error no `catch` sees: a universal d3-q6 lm_head of
 * 4096 × 128256 (1.75·10⁸ blocks) ended the CLI after all its work. A typed buffer that doubles has no
 * such cap (and takes 4 bytes per value instead of 8).
 */
export class Int32Builder {
  private values: Int32Array;
  private count = 0;

  constructor(initialCapacity = 1024) {
    this.values = new Int32Array(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  push(value: number): void {
    if (this.count === this.values.length) {
      const grown = new Int32Array(2 * this.values.length);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.count++] = value;
  }

  /** The values pushed so far (a view: later pushes may or may not show in it). */
  view(): Int32Array {
    return this.values.subarray(0, this.count);
  }
}
