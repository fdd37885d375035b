import { describe, expect, it, vi } from 'vitest';
import { ProgressBar } from '../../src/cli/progressBar.js';
import { printableName, terminalSafe } from '../../src/cli/terminalText.js';
import { describeValue, quoted } from '../../src/errors.js';

/*
 * Tensor names come from the file's header, so they may hold anything: the CLI prints them through
 * `printableName` in its tables and its progress line, and no control character reaches the terminal.
 * Before, the progress line printed them raw (ESC sequences, a carriage return, a bell).
 */

/** Every C0 control, DEL and every C1 control. */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/u; // eslint-disable-line no-control-regex

describe('printableName', () => {
  it.each([
    ['model.layers.0.self_attn.q_proj.weight'],
    ['couche.poids_é_日本.weight'],
    ['a b-c/d:e'],
  ])('leaves %j as it is', (name) => {
    expect(printableName(name)).toBe(name);
  });

  it.each([
    ['evil\x1b[31mRED\x1b[0m\rX.weight', '"evil\\u001b[31mRED\\u001b[0m\\rX.weight"'],
    ['b\x07ell.weight', '"b\\u0007ell.weight"'],
    ['tab\tname', '"tab\\tname"'],
    ['csi\u009b31m.weight', '"csi\\u009b31m.weight"'],
    ['del\u007f', '"del\\u007f"'],
  ])('quotes %j with its controls escaped', (name, printed) => {
    expect(printableName(name)).toBe(printed);
    expect(printableName(name)).not.toMatch(CONTROLS);
    expect(JSON.parse(printableName(name))).toBe(name); // the quoted form reads back as the name
  });
});

describe('ProgressBar', () => {
  for (const isTTY of [false, true]) {
    it(`prints a hostile label without its control characters (${isTTY ? 'terminal' : 'log'})`, () => {
      const written: string[] = [];
      const stream = { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
      // A log's first line comes 2 s after the start (test/cli/progressBar.test.ts).
      vi.useFakeTimers({ toFake: ['performance'] });
      try {
        const bar = new ProgressBar(10, stream);
        vi.advanceTimersByTime(2000);
        bar.update(4, 'evil\x1b[31mRED\x1b[0m\rX\x07.weight');
      } finally {
        vi.useRealTimers();
      }
      expect(written).toHaveLength(1);
      // A terminal's own redraw prefix (\r and ESC[K) is the bar's; nothing after it comes from the label.
      const line = isTTY ? (written[0] as string).replace(/^\r\x1b\[K/, '') : (written[0] as string).replace(/\n$/, ''); // eslint-disable-line no-control-regex
      expect(line).toMatch(/ 40 % .* "evil\\u001b\[31mRED\\u001b\[0m\\rX\\u0007\.weight"$/);
      expect(line).not.toMatch(CONTROLS);
    });
  }
});

describe('ProgressBar.clear', () => {
  it('clears a drawn bar from a terminal line (so that an error message starts its own line), and prints nothing otherwise', () => {
    for (const [isTTY, draw, expected] of [
      [true, true, ['\r\x1b[K']],
      [true, false, []],
      [false, true, []],
    ] as const) {
      const written: string[] = [];
      const stream = { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
      const bar = new ProgressBar(10, stream);
      if (draw) bar.update(3, 't2');
      written.length = 0;
      bar.clear();
      expect(written, `isTTY ${isTTY}, drawn ${draw}`).toEqual(expected);
    }
  });
});

describe('terminalSafe and quoted (error messages)', () => {
  it('terminalSafe escapes every control character but the newline', () => {
    expect(terminalSafe('a "b\x1b[2J\u009b" c\nline two\t\x7f')).toBe('a "b\\u001b[2J\\u009b" c\nline two\\u0009\\u007f');
    expect(terminalSafe('plain message')).toBe('plain message');
  });

  it('quoted (and describeValue) escape DEL and the C1 controls, which JSON leaves as they are', () => {
    expect(JSON.stringify('\u009b')).toBe('"\u009b"'); // the reason
    expect(quoted('x\u009b\x7f\x1b')).toBe('"x\\u009b\\u007f\\u001b"');
    expect(describeValue('x\u009b')).toBe('"x\\u009b"');
    expect(JSON.parse(quoted('x\u009b\x7f\x1b'))).toBe('x\u009b\x7f\x1b');
  });
});

