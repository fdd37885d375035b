import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/*
 * Where the benchmark's reports come from and how they are written: the commit they were measured at,
 * and writes that a killed run cannot leave half done.
 */

const COMMIT_HASH = /^[0-9a-f]{40}$/;

/**
 * The commit this benchmark was built from, for the report: the device kit writes it to COMMIT beside
 * the bundle it runs (`script`; ../shared/device-kit/build.sh sets no variable, and the kit runs
 * outside any checkout), else `git rev-parse HEAD` where this runs in a checkout (`cwd`); null where
 * neither answers (no git, not a checkout). Uncommitted changes are not told.
 */
export function sourceCommit(script: string | null, cwd = process.cwd()): string | null {
  if (script !== null) {
    const kitCommit = join(dirname(script), 'COMMIT');
    if (existsSync(kitCommit)) {
      const text = readFileSync(kitCommit, 'utf8').trim();
      if (COMMIT_HASH.test(text)) return text;
    }
  }
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return COMMIT_HASH.test(head) ? head : null;
  } catch {
    // No git, or not a checkout: the report says so with null.
    return null;
  }
}

/**
 * Writes `text` to `path` through a temporary file in the same directory and a rename (atomic within
 * one file system), so a run killed mid-write leaves the previous report whole, never a truncated one.
 */
export function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, text);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
