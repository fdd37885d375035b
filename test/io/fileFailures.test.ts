import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

/*
 * File-system failures around a finished or failed write (audit of the CLI under injected failures):
 * node:fs/promises' unlink fails with EIO for temporaries while `failing`, and rm with EACCES while
 * `rmFails` (as when the output's folder is made read-only mid-run).
 */
const state = vi.hoisted(() => ({ failing: false, rmFails: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...original,
    unlink: async (path: Parameters<typeof original.unlink>[0]) => {
      if (state.failing && String(path).endsWith('.tmp')) throw Object.assign(new Error(`EIO: i/o error, unlink '${String(path)}'`), { code: 'EIO' });
      return original.unlink(path);
    },
    rm: async (...args: Parameters<typeof original.rm>) => {
      if (state.rmFails) throw Object.assign(new Error(`EACCES: permission denied, rmdir '${String(args[0])}'`), { code: 'EACCES' });
      return original.rm(...args);
    },
  };
});

const { leftoverTemporaries, SafetensorsFileWriter, writeSafetensorsFile } = await import('../../src/io/safetensorsFile.js');
const { readSafetensors } = await import('../../src/io/safetensors.js');

const work = mkdtempSync(join(tmpdir(), 'lattice-matmul-place-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('placing a finished file', () => {
  it('succeeds when only the removal of the temporary name fails; the next write reports that name as a leftover', async () => {
    const path = join(work, 'out.safetensors');
    const data = Float32Array.from({ length: 12 }, (_, i) => i - 5.5);
    state.failing = true;
    try {
      await writeSafetensorsFile(path, { w: { dtype: 'F32', shape: [3, 4], data } });
    } finally {
      state.failing = false;
    }
    expect(Array.from(readSafetensors(readFileSync(path)).tensorAsFloat32('w'))).toEqual(Array.from(data));
    const left = await leftoverTemporaries(path);
    expect(left).toHaveLength(1);
    expect(left[0]?.bytes).toBe(readFileSync(path).byteLength);
  });

  it('a failed write whose spill folder cannot be removed removes its files one by one and says where the folder is', async () => {
    const dir = mkdtempSync(join(work, 'spill-'));
    const path = join(dir, 'model.lmq.safetensors');
    const writer = await SafetensorsFileWriter.create(path);
    for (const name of ['a', 'b', 'c']) await writer.add(name, { dtype: 'F32', shape: [4], data: new Float32Array(4).fill(1) });
    // The folder of spill files beside the output; one file removed behind the writer's back makes finish fail.
    const [folder] = readdirSync(dir).filter((name) => name.startsWith('.model.lmq.safetensors.'));
    expect(folder).toBeDefined();
    const spill = join(dir, folder as string);
    const [first] = readdirSync(spill);
    unlinkSync(join(spill, first as string));
    state.rmFails = true;
    try {
      await expect(writer.finish()).rejects.toThrow(/; its spill folder ".*model\.lmq\.safetensors\..*\.tmp" could not be removed \(0 files, 0 bytes left in it\): remove it$/);
    } finally {
      state.rmFails = false;
    }
    expect(readdirSync(spill)).toEqual([]); // every spill file removed (fs.rm's failure left them all)
    expect(existsSync(path)).toBe(false);
  });
});
