import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { formatDuration, ProgressBar } from '../../src/cli/progressBar.js';

/** A stand-in stderr that records what is written; `isTTY` as given. */
function stream(isTTY: boolean): { readonly writes: string[]; readonly stream: NodeJS.WriteStream } {
  const writes: string[] = [];
  const fake = { isTTY, write: (chunk: string) => writes.push(chunk) > 0 };
  return { writes, stream: fake as unknown as NodeJS.WriteStream };
}

describe('ProgressBar', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('without a terminal (a log) writes its first line only after the first 2 s, then one line every 2 s', () => {
    const { writes, stream: log } = stream(false);
    const bar = new ProgressBar(100, log);
    bar.update(2, 'a.weight');
    vi.advanceTimersByTime(1900);
    bar.update(60, 'b.weight');
    // Before: the first update printed at once, "2 %  ETA 28 s" for a job that ended in a second.
    expect(writes).toEqual([]);
    bar.finish('quantized 2 tensors in 1 s');
    expect(writes).toEqual(['quantized 2 tensors in 1 s\n']);

    const { writes: later, stream: laterLog } = stream(false);
    const long = new ProgressBar(100, laterLog);
    long.update(10, 'c.weight');
    vi.advanceTimersByTime(2000);
    long.update(40, 'c.weight');
    expect(later).toHaveLength(1);
    // 30 % in the 2 s since the first progress: 60 % to go, 4 s.
    expect(later[0]).toMatch(/^\[█{10}░{14}\] {2}40 % {2}ETA 4 s {2}c\.weight\n$/);
    vi.advanceTimersByTime(1000);
    long.update(60, 'd.weight');
    expect(later).toHaveLength(1);
    vi.advanceTimersByTime(1000);
    long.update(80, 'e.weight');
    expect(later).toHaveLength(2);
  });

  it('takes the pace from the first progress, not from the start: no ETA from a start-up and 1 %', () => {
    const { writes, stream: terminal } = stream(true);
    const bar = new ProgressBar(100, terminal);
    vi.advanceTimersByTime(2000); // workers starting, the first tensor read
    bar.update(1, 'a.weight');
    // Before: "ETA 3 min 18 s" (2 s for 1 %) for a run 10 s long.
    expect(writes.at(-1)).toMatch(/ {2}1 % {2}ETA \? {2}a\.weight$/);
    vi.advanceTimersByTime(200);
    bar.update(3, 'a.weight');
    // Not yet a quarter of a second of pace: still no estimate.
    expect(writes.at(-1)).toMatch(/ {2}3 % {2}ETA \? {2}a\.weight$/);
    vi.advanceTimersByTime(800);
    bar.update(11, 'a.weight');
    // 10 % in the second since the first progress: 89 % left, 8.9 s.
    expect(writes.at(-1)).toMatch(/ {2}11 % {2}ETA 9 s {2}a\.weight$/);
  });

  it('on a terminal draws at once, in place, then at most every 100 ms', () => {
    const { writes, stream: terminal } = stream(true);
    const bar = new ProgressBar(10, terminal);
    bar.update(1, 'a.weight');
    expect(writes).toHaveLength(1);
    expect(writes[0]).toMatch(/^\r\x1b\[K\[.*\] {2}10 % {2}ETA /); // eslint-disable-line no-control-regex
    vi.advanceTimersByTime(50);
    bar.update(2, 'b.weight');
    expect(writes).toHaveLength(1);
    vi.advanceTimersByTime(60);
    bar.update(3, 'c.weight');
    expect(writes).toHaveLength(2);
    bar.finish('done');
    expect(writes.slice(-2)).toEqual(['\r\x1b[K', 'done\n']);
  });

  it('at its ends: a first report of 0 sets no pace, a count past the total shows 100 %, and the end says ETA 0 s', () => {
    const { writes, stream: terminal } = stream(true);
    const bar = new ProgressBar(40, terminal);
    bar.update(0, 'a.weight'); // the 0 columns done of a tensor just started
    vi.advanceTimersByTime(2000);
    bar.update(4, 'a.weight');
    // The pace is taken from 4 columns on, not from the 0 two seconds before (which would say 18 s).
    expect(writes.at(-1)).toMatch(/ {2}10 % {2}ETA \? {2}a\.weight$/);
    vi.advanceTimersByTime(1000);
    bar.update(50, 'b.weight');
    expect(writes.at(-1)).toMatch(/^\r\x1b\[K\[█{24}\] 100 % {2}ETA 0 s {2}b\.weight$/); // eslint-disable-line no-control-regex
    // Done at the first report: no pace to measure, nothing left either.
    const { writes: once, stream: other } = stream(true);
    new ProgressBar(8, other).update(8, 'c.weight');
    expect(once.at(-1)).toMatch(/ 100 % {2}ETA 0 s {2}c\.weight$/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [59.4, '59 s'],
    [59.5, '1 min 00 s'],
    [60, '1 min 00 s'],
    [185, '3 min 05 s'],
    [3599.4, '59 min 59 s'],
    [3599.5, '1 h 00 min'],
    [3600, '1 h 00 min'],
    [3725, '1 h 02 min'],
    [90_000, '25 h 00 min'],
    [-1, '?'],
    [Number.NaN, '?'],
    [Number.POSITIVE_INFINITY, '?'],
  ])('%s s is "%s"', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});
