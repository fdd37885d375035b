/**
 * `--name N` from the command line of a long-run script (the fuzz and sweep CLIs): a non-negative
 * number, `fallback` when absent; exits with status 2 and a message otherwise.
 */
export function numberOption(name: string, fallback: number | undefined): number | undefined {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} needs a non-negative number, got ${process.argv[at + 1]}`);
    process.exit(2);
  }
  return value;
}
