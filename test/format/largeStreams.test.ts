import { describe, expect, it } from 'vitest';
import { Int32Builder } from '../../src/format/int32Builder.js';
import { packEscapeBits } from '../../src/format/universalLayout.js';
import { readField } from '../../src/format/bitFields.js';

/*
 * Per-block streams of matrices with more than 10⁸ blocks (a universal lm_head: d3-q6 at
 * 4096 × 128256 has 1.75·10⁸). V8 aborts the process, past any catch, when a plain array grows
 * beyond ≈ 1.3·10⁸ elements, which `Uint8Array.from(escapes, map)` built on the way: writing such a
 * container ended the CLI after all its work (exit 134). Int32Builder replaces the pushes onto plain arrays.
 */
describe('per-block streams past 10⁸ blocks', () => {
  it('packEscapeBits packs 1.1·10⁸ blocks (one bit each, the escapes where they are)', () => {
    const blocks = 110_000_000;
    const escapes = new Uint8Array(blocks);
    const marked = [0, 31, 32, 99_999_999, 104_999_999, blocks - 1];
    for (const b of marked) escapes[b] = b % 2 === 0 ? 3 : 16;
    const words = packEscapeBits({ escapes, blocksPerColumn: blocks, cols: 1 });
    expect(words.length).toBe(Math.ceil(blocks / 32));
    let set = 0;
    for (const word of words) for (let w = word; w !== 0; w &= w - 1) set++;
    expect(set).toBe(marked.length);
    for (const b of marked) expect(readField(words, 0, b, 1), `block ${b}`).toBe(1);
    expect(readField(words, 0, 1, 1)).toBe(0);
  });

  it('Int32Builder keeps every value in order as it grows, and its view has exactly the pushed ones', () => {
    const builder = new Int32Builder(1);
    for (let i = 0; i < 5000; i++) builder.push(i % 2 === 0 ? i : -i);
    expect(builder.length).toBe(5000);
    const view = builder.view();
    expect(view.length).toBe(5000);
    expect(view[0]).toBe(0);
    expect(view[4999]).toBe(-4999);
    expect(Array.from(view).every((v, i) => v === (i % 2 === 0 ? i : -i))).toBe(true);
    expect(new Int32Builder().view().length).toBe(0);
  });
});
