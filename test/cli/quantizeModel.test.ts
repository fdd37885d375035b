import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { quantizeModel } from '../../src/cli/commands.js';
import { openQuantizedContainerFile } from '../../src/format/containerFile.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * quantizeModel called directly (no CLI process): the options each matrix is quantized with, and the
 * progress it reports, checked against the in-process quantizer and the tensors' shapes.
 */

let work: string;
/** Three (out, in) weights of different shapes, in file order; a PyTorch (out, in) weight is the column-major in × out matrix. */
const WEIGHTS = [
  { name: 'a.weight', out: 24, in: 16, seed: 61 },
  { name: 'b.weight', out: 8, in: 40, seed: 62 },
  { name: 'c.weight', out: 16, in: 16, seed: 63 },
] as const;
const matrixOf = (w: (typeof WEIGHTS)[number]) => gaussianMatrix(w.in, w.out, w.seed);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-quantize-model-'));
  await writeSafetensorsFile(join(work, 'model.safetensors'), Object.fromEntries(WEIGHTS.map((w) => [w.name, { dtype: 'F32', shape: [w.out, w.in], data: matrixOf(w).data }] as const)));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('quantizeModel', () => {
  it.each([
    ['--seed and --nonce given', { seed: 5, nonce: 1000n }, 5],
    // The help says: --seed N (default 1).
    ['the default seed', { nonce: 2n ** 64n - 3n }, 1],
  ] as const)('quantizes matrix i with nonce + i and the seed (%s), as the in-process quantizer does', async (_, given, seed) => {
    const output = join(work, `nonces-${seed}.lmq.safetensors`);
    // Two workers: the matrices finish out of order, and are still written in file order with their own nonces.
    await quantizeModel({ input: join(work, 'model.safetensors'), output, scheme: 'e8-3bit', device: 'cpu', workers: 2, quiet: true, log: () => {}, ...given });
    const container = await openQuantizedContainerFile(output);
    try {
      expect(container.entries.map((e) => e.name)).toEqual(WEIGHTS.map((w) => w.name));
      for (const [i, w] of WEIGHTS.entries()) {
        const { matrix } = await container.read(w.name);
        const expected = quantize(matrixOf(w), { scheme: 'e8-3bit', seed, nonce: given.nonce + BigInt(i) });
        expect(matrix, w.name).toEqual(expected);
      }
    } finally {
      await container.close();
    }
  });

  it.each([Number.NaN, 0, -1, 1.5, Number.POSITIVE_INFINITY])('refuses workers: %s before it reads the model or starts a thread', async (workers) => {
    // NaN started no thread and waited for ever; 1.5 started two.
    const output = join(work, 'never.lmq.safetensors');
    await expect(quantizeModel({ input: join(work, 'absent.safetensors'), output, scheme: 'e8-3bit', device: 'cpu', workers, log: () => {} })).rejects.toThrow(
      `quantizeModel workers must be a positive integer, got ${workers}`,
    );
  });

  it("counts progress in output features (the quantizer's columns), so the bar ends at 100 %", async () => {
    // One (out 8, in 40) weight: its 8 columns are all its progress. A total counted in input features
    // (40) would end the bar at 20 %.
    const input = join(work, 'wide.safetensors');
    await writeSafetensorsFile(input, { 'b.weight': { dtype: 'F32', shape: [8, 40], data: matrixOf(WEIGHTS[1]).data } });
    const writes: string[] = [];
    const wasTTY = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => writes.push(String(chunk)) > 0);
    try {
      await quantizeModel({ input, output: join(work, 'wide.lmq.safetensors'), scheme: 'e8-4bit', device: 'cpu', workers: 1, log: () => {} });
    } finally {
      write.mockRestore();
      if (wasTTY === undefined) delete (process.stderr as { isTTY?: boolean }).isTTY;
      else Object.defineProperty(process.stderr, 'isTTY', wasTTY);
    }
    const percents = writes.flatMap((text) => /^\r\x1b\[K\[[█░]+\] +(\d+) % /.exec(text)?.[1] ?? []); // eslint-disable-line no-control-regex
    // Every bar drawn (the first at once, any later one past 100 ms) is of the one finished tensor.
    expect(percents.length, writes.join('|')).toBeGreaterThan(0);
    expect(new Set(percents), writes.join('|')).toEqual(new Set(['100']));
  });
});
