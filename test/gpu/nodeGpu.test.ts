import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SOFTWARE_VULKAN_ICDS } from '../../src/gpu/nodeGpu.js';
import { gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * nodeGpu() in fresh child processes, because what it does depends on the process environment:
 * - with the Vulkan loader's default search hidden (XDG_DATA_DIRS / XDG_CONFIG_DIRS pointed at an
 *   empty folder, as on a machine whose only driver lives outside the search path) it must find a
 *   software ICD by itself and set VK_ICD_FILENAMES;
 * - an explicit VK_ICD_FILENAMES is honoured, and a broken one gives a LatticeMatmulError naming it;
 * - a process exits by itself after GPU work, whether or not it destroyed its device.
 */

const noGpu = await gpuUnavailableReason();
const emptyDir = mkdtempSync(join(tmpdir(), 'lattice-empty-'));
const probe = join(import.meta.dirname, 'fixtures', 'nodeGpuProbe.ts');
const rawLoader = join(import.meta.dirname, '..', '..', 'scripts', 'raw-loader.mjs');

interface ProbeResult {
  readonly status: number | null;
  readonly signal: string | null;
  readonly report: Record<string, unknown>;
  readonly seconds: number;
}

function runProbe(mode: string, env: Record<string, string | undefined>): ProbeResult {
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...process.env, ...env })) if (value !== undefined) childEnv[name] = value;
  const started = performance.now();
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--import', rawLoader, probe, mode], {
    env: childEnv,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const seconds = (performance.now() - started) / 1000;
  const line = child.stdout.split('\n').find((l) => l.startsWith('{'));
  const report = line ? (JSON.parse(line) as Record<string, unknown>) : { stdout: child.stdout, stderr: child.stderr };
  return { status: child.status, signal: child.signal, report, seconds };
}

const softwareIcdPresent = SOFTWARE_VULKAN_ICDS.some((icd) => existsSync(icd));

describe.skipIf(noGpu !== undefined)('nodeGpu in a child process', () => {
  it.skipIf(!softwareIcdPresent && !process.env.CI)('finds a software driver when the loader search finds none', () => {
    const result = runProbe('adapter', {
      VK_ICD_FILENAMES: undefined,
      VK_DRIVER_FILES: undefined,
      XDG_DATA_DIRS: emptyDir,
      XDG_CONFIG_DIRS: emptyDir,
    });
    expect(result.report).toMatchObject({ ok: true, icdBefore: null });
    expect(SOFTWARE_VULKAN_ICDS).toContain(result.report.icdAfter);
    expect(result.status).toBe(0);
  });

  it('honours an explicit VK_ICD_FILENAMES and reports a broken one clearly', () => {
    const result = runProbe('adapter', { VK_ICD_FILENAMES: join(emptyDir, 'missing_icd.json') });
    expect(result.status).toBe(1);
    expect(result.report.ok).toBe(false);
    expect(result.report.name).toBe('LatticeMatmulError');
    expect(String(result.report.message)).toContain(`VK_ICD_FILENAMES=${join(emptyDir, 'missing_icd.json')}: no adapter`);
  });

  it.each(['work-destroy', 'work-keep'])('the process exits by itself after GPU work (%s)', (mode) => {
    const result = runProbe(mode, {});
    expect(result.signal).toBeNull(); // not killed by the 60 s timeout
    expect(result.status).toBe(0);
    expect(result.report).toMatchObject({ ok: true, product: [11] });
    expect(result.seconds).toBeLessThan(30);
  });
});
