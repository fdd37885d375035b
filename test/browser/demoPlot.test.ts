import { describe, expect, it } from 'vitest';
import { labelSpot } from '../../demo/rdPlot.js';

/*
 * The latest point's label on the demo's rate–distortion plot (pure geometry, no browser): it went
 * right of the point (left in the plot's right half) and above it whatever was there, so "e8-q16"
 * covered the E8 4-bit markers of a "Run all schemes". Now it takes the first of four spots beside
 * the ring that stays inside the plot and covers the fewest markers.
 */

const AREA = { left: 62, right: 626, top: 14, bottom: 354 };

describe('labelSpot', () => {
  it('with nothing around: above and to the right in the left half, above and to the left in the right half', () => {
    expect(labelSpot('e8-q16', 200, 200, [], AREA)).toEqual({ x: 213, y: 190, anchor: 'start' });
    expect(labelSpot('e8-q16', 500, 200, [], AREA)).toEqual({ x: 487, y: 190, anchor: 'end' });
  });

  it('moves off markers that the preferred spot would cover, to the spot that covers none', () => {
    // Markers under the above-right and above-left spots: the label goes below, right first.
    const above = [{ x: 240, y: 186 }, { x: 170, y: 186 }];
    expect(labelSpot('e8-q16', 200, 200, above, AREA)).toEqual({ x: 213, y: 220, anchor: 'start' });
    // Also one under the below-right spot: below-left is the only free one.
    expect(labelSpot('e8-q16', 200, 200, [...above, { x: 240, y: 216 }], AREA)).toEqual({ x: 187, y: 220, anchor: 'end' });
  });

  it('stays inside the plot: under the top edge it goes below; a label wider than either side slides above the ring', () => {
    expect(labelSpot('e8-q16', 200, 20, [], AREA)).toEqual({ x: 213, y: 40, anchor: 'start' });
    // 36 characters ≈ 245 px: right of x = 300 it fits (313 … 558 < 626).
    const long = 'd3-q6-deterministic (gain: unbiased)';
    expect(labelSpot(long, 300, 200, [], AREA)).toEqual({ x: 313, y: 190, anchor: 'start' });
    // In a plot 438 px wide it fits on neither side of x = 310 (it was left there, over the y axis's
    // side): centred above the ring instead, 310 − 245/2.
    expect(labelSpot(long, 310, 200, [], { ...AREA, right: 500 })).toEqual({ x: 310 - (36 * 6.8) / 2, y: 186, anchor: 'start' });
    // A phone's plot (62 … 348): slid to keep inside, left of the right edge or right of the left one.
    const phone = { ...AREA, right: 348 };
    const right = labelSpot(long, 300, 200, [], phone);
    expect(right).toEqual({ x: 348 - 36 * 6.8, y: 186, anchor: 'start' });
    expect(labelSpot(long, 120, 200, [], phone)).toEqual({ x: 62, y: 186, anchor: 'start' });
    // Where a spot beside the ring fits, it is taken, as before.
    expect(labelSpot(long, 80, 200, [], phone)).toEqual({ x: 93, y: 190, anchor: 'start' });
    // Below the ring where a marker sits above it.
    expect(labelSpot(long, 300, 200, [{ x: 200, y: 180 }], phone)).toEqual({ x: 348 - 36 * 6.8, y: 224, anchor: 'start' });
    // Wider than the plot: it starts at the plot's left edge.
    expect(labelSpot(long, 150, 200, [], { ...AREA, right: 250 }).x).toBe(62);
  });

  it('when every spot covers something, the one covering fewest', () => {
    const crowd = [{ x: 240, y: 186 }, { x: 250, y: 186 }, { x: 170, y: 186 }, { x: 240, y: 216 }, { x: 170, y: 216 }, { x: 160, y: 216 }];
    expect(labelSpot('e8-q16', 200, 200, crowd, AREA)).toEqual({ x: 187, y: 190, anchor: 'end' });
  });
});
