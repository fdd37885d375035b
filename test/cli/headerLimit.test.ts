import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantizeModel } from '../../src/cli/commands.js';
import type { SafetensorsTensorInput } from '../../src/io/safetensors.js';
import { writeSafetensorsFile } from '../../src/io/safetensorsFile.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * quantize refuses a container whose header would pass the safetensors limit (100 MB, ≈ 73,000
 * matrices) after its first matrix, from an estimate, rather than when the file is finished. The
 * limit is lowered here (`maxHeaderBytes`) so that 40 small tensors reach it: the estimate must
 * refuse a header 10 % over the limit and accept one exactly at it (no refusal of a file that fits).
 */

let work: string;
const model = (): string => join(work, 'experts.safetensors');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lattice-matmul-header-'));
  // A short first name, then longer ones: the estimate adds each name's extra bytes.
  const tensors: Record<string, SafetensorsTensorInput> = { 'a.weight': { dtype: 'F32', shape: [8, 16], data: gaussianMatrix(16, 8, 1).data } };
  for (let i = 0; i < 39; i++) tensors[`model.layers.${i % 3}.mlp.experts.${i}.down_proj.weight`] = { dtype: 'F32', shape: [8, 16], data: gaussianMatrix(16, 8, 2 + i).data };
  await writeSafetensorsFile(model(), tensors);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** The bytes before a safetensors file's data: its 8-byte length field and its header. */
function headerBytesOf(path: string): number {
  return 8 + Number(new DataView(readFileSync(path).buffer).getBigUint64(0, true));
}

describe('quantize and the safetensors header limit', () => {
  it.each(['e8-4bit', 'int4-g32'] as const)('%s: refuses after the first matrix a header a tenth past the limit, and writes one exactly at it', async (scheme) => {
    const fits = join(work, `fits-${scheme}.lmq.safetensors`);
    const options = { input: model(), scheme, device: 'cpu', workers: 1, quiet: true, nonce: scheme === 'e8-4bit' ? 5n : undefined, log: () => {} } as const;
    const { nonce, ...common } = options;
    const base = nonce === undefined ? common : { ...common, nonce };
    await quantizeModel({ ...base, output: join(work, `reference-${scheme}.lmq.safetensors`) });
    const actual = headerBytesOf(join(work, `reference-${scheme}.lmq.safetensors`));
    // At the limit: written (the estimate does not refuse what fits).
    await quantizeModel({ ...base, output: fits, maxHeaderBytes: actual });
    expect(headerBytesOf(fits)).toBe(actual);
    // 10 % past it: refused, naming the limit and the way out, with nothing left behind.
    const refused = join(work, `refused-${scheme}.lmq.safetensors`);
    await expect(quantizeModel({ ...base, output: refused, maxHeaderBytes: Math.floor(actual / 1.1) })).rejects.toThrow(
      /the container's header would take about [\d.]+ MB for 40 matrices \(≈ \d+ bytes each\), past the \d+-byte limit of a safetensors header, which readers refuse: quantize the tensors into several containers/,
    );
    expect(existsSync(refused)).toBe(false);
    expect(readdirSync(work).filter((name) => name.startsWith('.'))).toEqual([]);
  });
});
