/** Minimal `--name value` / `--flag` parsing for the bench scripts, with clear errors. */
export function parseArgs(argv: readonly string[], known: Record<string, 'number' | 'string' | 'flag'>): Map<string, string | number | boolean> {
  const out = new Map<string, string | number | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') continue;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}'`);
    const name = arg.slice(2);
    const kind = known[name];
    if (kind === undefined) throw new Error(`unknown option --${name}; known: ${Object.keys(known).map((k) => `--${k}`).join(' ')}`);
    if (kind === 'flag') {
      out.set(name, true);
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    if (kind === 'number') {
      const parsed = Number(value);
      if (!Number.isFinite(parsed)) throw new Error(`--${name} must be a number, got '${value}'`);
      out.set(name, parsed);
    } else {
      out.set(name, value);
    }
  }
  return out;
}

/** A progress line on stderr that rewrites itself on a terminal and prints plain lines otherwise. */
export function progress(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${message}`);
  else process.stderr.write(`${message}\n`);
}

export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** Renders rows as an aligned text table (also valid Markdown). */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((cell, c) => cell.padEnd(widths[c] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
