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
  if (!/[\u0000-\u001f\u007f-\u009f]/.test(name)) return name;
  // JSON escapes C0 controls but leaves DEL and the C1 controls (0x9b is an 8-bit CSI) as they are.
  return JSON.stringify(name).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
