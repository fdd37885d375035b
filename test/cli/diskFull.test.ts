import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeModel } from '../../src/cli/commands.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * quantize on a disk that fills: a warning after the first matrix when the container will not fit,
 * and an error that says the disk is full, how much the container needs and what was free, leaving
 * nothing behind. The full disk is a 200 KiB tmpfs, which needs mount(8) and the right to mount
 * (root, as CI runs); elsewhere those cases are skipped, loudly.
 */

const work = mkdtempSync(join(tmpdir(), 'lattice-matmul-disk-'));
const model = join(work, 'model.safetensors');
// Mounted at collection, so that the case is reported as skipped (not passed) where it cannot run.
const small = ((): string | null => {
  const folder = join(work, 'small');
  mkdirSync(folder);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', folder], { stdio: 'pipe' });
    return folder;
  } catch (error) {
    console.warn(`\n*** disk-full test SKIPPED: cannot mount a small tmpfs here (${(error as Error).message.split('\n')[0]})\n`);
    return null;
  }
})();

beforeAll(async () => {
  // Two 512 × 512 weights: ≈ 128 KiB each at e8-4bit; the first fits the tmpfs, both do not.
  await writeSafetensorsFile(model, {
    'x.weight': { dtype: 'F32', shape: [512, 512], data: gaussianMatrix(512, 512, 1).data },
    'y.weight': { dtype: 'F32', shape: [512, 512], data: gaussianMatrix(512, 512, 2).data },
  });
});

afterAll(() => {
  if (small !== null) execFileSync('umount', [small], { stdio: 'pipe' });
  rmSync(work, { recursive: true, force: true });
});

describe('quantize on a disk that fills', () => {
  it('is not warned about where the container fits', async () => {
    const lines: string[] = [];
    const output = join(work, 'roomy.lmq.safetensors');
    await quantizeModel({ input: model, output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, log: (line) => lines.push(line) });
    expect(lines.filter((line) => line.includes('disk'))).toEqual([]);
    rmSync(output);
  });

  it.skipIf(small === null)('warns after the first matrix, then says the disk is full, what the container needs and what was free, and leaves nothing', async () => {
    const folder = small as string;
    // What the container really takes, written where it fits (the same nonces: the same bytes).
    const roomy = join(work, 'reference.lmq.safetensors');
    await quantizeModel({ input: model, output: roomy, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, nonce: 7n, log: () => {} });
    const actualMiB = statSync(roomy).size / 2 ** 20;
    const lines: string[] = [];
    const output = join(folder, 'out.lmq.safetensors');
    const failure = await quantizeModel({ input: model, output, scheme: 'e8-4bit', device: 'cpu', workers: 1, quiet: true, nonce: 7n, log: (line) => lines.push(line) }).then(
      () => null,
      (error: unknown) => error as Error,
    );
    expect(failure).not.toBeNull();
    const message = (failure as Error).message;
    expect(message).toMatch(/ENOSPC/);
    const said = /the disk holding .*small is full: the container needs about ([\d.]+) MiB \(at the bits per entry of the matrix written so far\), and its folder had ([\d.]+) MiB free when quantize started$/.exec(message);
    expect(said, message).not.toBeNull();
    const [, neededMiB, freeMiB] = said as unknown as [string, string, string];
    // One matrix of two, at the same rate: the estimate is the container's data to the printed 0.1 MiB.
    expect(Math.abs(Number(neededMiB) - actualMiB)).toBeLessThanOrEqual(0.06);
    expect(Number(freeMiB)).toBeCloseTo(200 / 1024, 1);
    // The warning came first, with the same figures.
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warning: quantize may run out of disk space: the container needs about [\d.]+ MiB/);
    // No output, no spill folder.
    expect(readdirSync(folder)).toEqual([]);
  });
});
