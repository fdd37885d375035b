import { quoted, unicodeEscape } from '../errors.js';

/**
 * A name from a file (a tensor's) as the CLI prints it: as it is, or JSON-quoted when it holds a
 * control character (C0, DEL or C1), so that a hostile header cannot send escape sequences, carriage returns or bells
 * to the user's terminal, nor break a table's columns and lines with a tab or a newline.
 *
 * @example
 * printableName('model.layers.0.q_proj.weight'); // unchanged
 * printableName('evil\x1b[31m.weight'); // '"evil\\u001b[31m.weight"'
 */
export function printableName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(name) ? quoted(name) : name;
}

/**
 * A message for the terminal (an error's, which may quote a file's names or values): every control
 * character but the newline written as \\uXXXX, so that nothing in it acts on the terminal.
 *
 * @example
 * terminalSafe('bad name "a\x1b[2J"\nsecond line'); // 'bad name "a\\u001b[2J"\nsecond line'
 */
export function terminalSafe(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, unicodeEscape);
}
