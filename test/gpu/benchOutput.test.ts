import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sourceCommit, writeAtomically } from '../../bench/gpu/output.js';

/* The benchmark's report output (bench/gpu/output.ts): the commit it names, and whole-file writes. */

const dirs: string[] = [];
const scratchDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-output-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('bench report output', () => {
  it('names the device kit\'s COMMIT beside the bundle first, else git\'s HEAD, else null', () => {
    const kit = scratchDir();
    const hash = 'a'.repeat(40);
    writeFileSync(join(kit, 'COMMIT'), `${hash}\n`);
    expect(sourceCommit(join(kit, 'gpu.mjs'), kit)).toBe(hash);
    // This checkout: git's HEAD (a 40-digit hash), whatever the script's directory holds.
    expect(sourceCommit(null, process.cwd())).toMatch(/^[0-9a-f]{40}$/);
    // Outside any checkout, with no COMMIT file: null, no throw.
    const bare = scratchDir();
    expect(sourceCommit(join(bare, 'gpu.mjs'), bare)).toBeNull();
  });

  it('writes through a temporary file and a rename: the whole text, no file left beside it', () => {
    const dir = scratchDir();
    const path = join(dir, 'out', 'gpu.json');
    writeAtomically(path, 'first');
    writeAtomically(path, '{"second": true}\n');
    expect(readFileSync(path, 'utf8')).toBe('{"second": true}\n');
    expect(readdirSync(join(dir, 'out'))).toEqual(['gpu.json']);
  });
});
