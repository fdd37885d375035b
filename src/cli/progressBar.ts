import { printableName } from './terminalText.js';

/*
 * A one-line progress bar on stderr for the CLI: rewritten in place on a terminal, one line per update
 * (throttled) otherwise, so logs of CI runs stay readable.
 */

/** Formats seconds as "1 h 02 min", "3 min 05 s" or "42 s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

/** A progress bar over `total` units (columns of all tensors), with an ETA. */
export class ProgressBar {
  private done = 0;
  private readonly start = performance.now();
  /**
   * When the bar last printed: −∞ on a terminal (the first update draws at once); without one (a log)
   * the start, so a job that ends within the first interval logs no line, and none with an ETA taken
   * from its first fraction of a second.
   */
  private lastPrint: number;
  private readonly interactive: boolean;
  /** The first update that reported progress: the pace is measured from it, not from the start. */
  private first: { readonly time: number; readonly done: number } | null = null;

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = true,
  ) {
    this.interactive = stream.isTTY === true;
    this.lastPrint = this.interactive ? -Infinity : this.start;
  }

  /**
   * Sets the units done and the label of the current item (a tensor's name from the file: printed
   * through `printableName`), and redraws (at most every 100 ms, 2 s without a terminal).
   */
  update(done: number, label: string): void {
    this.done = Math.min(this.total, done);
    const now = performance.now();
    if (this.first === null && this.done > 0) this.first = { time: now, done: this.done };
    if (!this.enabled || now - this.lastPrint < (this.interactive ? 100 : 2000)) return;
    this.lastPrint = now;
    const fraction = this.total === 0 ? 1 : this.done / this.total;
    const eta = this.remainingSeconds(now);
    const width = 24;
    const filled = Math.round(fraction * width);
    const line = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${(100 * fraction).toFixed(0).padStart(3)} %  ETA ${formatDuration(eta)}  ${printableName(label)}`;
    if (this.interactive) this.stream.write(`\r\x1b[K${line}`);
    else this.stream.write(`${line}\n`);
  }

  /**
   * Seconds left at the pace since the first progress, once it spans a quarter of a second; NaN ("?")
   * before. Not from the start: workers spinning up and the first tensor read are not the work's pace
   * (0.3 % after 1.6 s of start said "ETA 8 min 53 s" for a 4 s run).
   */
  private remainingSeconds(now: number): number {
    const first = this.first;
    if (first === null || now - first.time < 250 || this.done <= first.done) return this.done >= this.total ? 0 : Number.NaN;
    return ((now - first.time) / 1000 / (this.done - first.done)) * (this.total - this.done);
  }

  /** Clears the bar from a terminal's line, if it drew one, and prints nothing (an error follows). */
  clear(): void {
    if (this.enabled && this.interactive && this.lastPrint !== -Infinity) this.stream.write('\r\x1b[K');
  }

  /** Clears the line (terminal) and prints `message`. */
  finish(message: string): void {
    if (!this.enabled) return;
    if (this.interactive) this.stream.write('\r\x1b[K');
    this.stream.write(`${message}\n`);
  }
}
