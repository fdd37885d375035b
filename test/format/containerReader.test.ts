import { openAsBlob } from 'node:fs';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntryInput, type QuantizedContainer } from '../../src/format/container.js';
import { openQuantizedContainer } from '../../src/format/containerReader.js';
import { containerFuzzCorpus } from './containerFuzzProperty.js';
import { blobSource, bytesSource, httpRangeSource, type ByteSource } from '../../src/io/byteSource.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { WeightOnlyQuantized } from '../../src/weightonly/quantized.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';

/*
 * openQuantizedContainer: a container read one matrix at a time from a ByteSource (memory, a Blob, an
 * HTTP resource by byte ranges), as a page loads a model layer by layer. Each source gives the entries
 * and matrices `readQuantizedContainer` gives from the whole bytes; opening reads the header only and
 * `read(name)` only that matrix's tensors; hostile bytes and misbehaving servers are refused.
 */

const entries: ContainerEntryInput[] = [
  { name: 'q', matrix: quantize(gaussianMatrix(64, 3, 1), { scheme: 'e8-q16', seed: 2, nonce: 3 }) },
  { name: 'k', matrix: quantize(gaussianMatrix(96, 5, 2), { scheme: 'd3-q6-deterministic', seed: 2 }) },
  { name: 'v', matrix: quantize(gaussianMatrix(64, 3, 4), { scheme: 'int4-g32', seed: 2 }) },
  { name: 'o', matrix: quantizeWeights(gaussianMatrix(32, 8, 5), null, { method: 'rtn', step: 0.2 }) },
];
const bytes = writeQuantizedContainer(entries, { model: 'lazy' });
const whole = readQuantizedContainer(bytes);
const header = readSafetensors(bytes).header;

/** `source`, with every read recorded as [offset, length]. */
function counting(source: ByteSource): { source: ByteSource; reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    reads,
    source: {
      name: source.name,
      byteLength: source.byteLength,
      read: (offset, length) => {
        reads.push([offset, length]);
        return source.read(offset, length);
      },
    },
  };
}

/** The entries and matrices of the source equal those `readQuantizedContainer` reads from the whole bytes. */
async function expectAsWhole(source: ByteSource): Promise<void> {
  const container = await openQuantizedContainer(source);
  expect([container.formatVersion, container.metadata]).toEqual([whole.formatVersion, whole.metadata]);
  expect(container.entries.map((e) => [e.name, e.kind, e.rows, e.cols])).toEqual([
    ['q', 'universal', 64, 3],
    ['k', 'deterministic', 96, 5],
    ['v', 'scalar', 64, 3],
    ['o', 'weight-only', 32, 8],
  ]);
  expect(whole.entries.map((e) => [e.name, e.kind])).toEqual(container.entries.map((e) => [e.name, e.kind]));
  for (const { name } of entries) {
    const read = (await container.read(name)).matrix;
    const expected = whole.get(name).matrix;
    if (expected instanceof WeightOnlyQuantized) expect(Array.from((read as WeightOnlyQuantized).serialize())).toEqual(Array.from(expected.serialize()));
    else expect(read).toEqual(expected);
  }
  expect((await container.readAll()).entries.map((e) => e.name)).toEqual(['q', 'k', 'v', 'o']);
  await expect(container.read('nope')).rejects.toThrow(/has no matrix named "nope" \(it has "q", "k", "v", "o"\)$/);
}

/** How a test server answers: honestly, or one way of misbehaving. */
type ServerMode = 'ranges' | 'no ranges' | 'gzip' | 'changing etag' | 'no content-range' | 'wrong range' | 'not found' | 'html fallback' | 'silent' | 'tiny';

describe('openQuantizedContainer', () => {
  let server: Server;
  let base = '';
  let mode: ServerMode = 'ranges';
  let requests = 0;
  beforeAll(async () => {
    server = createServer((request: IncomingMessage, response: ServerResponse) => {
      requests++;
      if (mode === 'not found') return void response.writeHead(404, 'Not Found').end('missing');
      // A single-page app's server: its index.html, 200, for any path.
      if (mode === 'html fallback') return void response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<!DOCTYPE html><html></html>');
      if (mode === 'silent') return; // never answers (closed when the server closes)
      if (mode === 'tiny') return void response.writeHead(206, { 'Content-Range': 'bytes 0-4/5', 'Content-Length': 5 }).end(bytes.subarray(0, 5));
      const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
      if (mode === 'no ranges' || range === null) return void response.writeHead(200, { 'Content-Length': bytes.byteLength }).end(bytes);
      const first = Number(range[1]);
      const last = Math.min(Number(range[2]), bytes.byteLength - 1);
      const sentFirst = mode === 'wrong range' && first > 0 ? first + 1 : first;
      const body = bytes.subarray(sentFirst, last + 1);
      const headers: Record<string, string | number> = { 'Content-Length': body.byteLength, ETag: mode === 'changing etag' ? `"v${requests}"` : '"v1"' };
      if (mode !== 'no content-range') headers['Content-Range'] = `bytes ${sentFirst}-${last}/${bytes.byteLength}`;
      if (mode === 'gzip') headers['Content-Encoding'] = 'gzip';
      response.writeHead(206, headers).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.lmq.safetensors`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('from memory, a Blob and HTTP byte ranges: the entries and matrices of readQuantizedContainer', async () => {
    mode = 'ranges';
    await expectAsWhole(bytesSource(bytes));
    await expectAsWhole(blobSource(new Blob([bytes.slice()])));
    await expectAsWhole(await httpRangeSource(base));
  });

  it('opening reads the length field and the header only; read(name) reads only that matrix’s tensors', async () => {
    const { source, reads } = counting(bytesSource(bytes));
    const container = await openQuantizedContainer(source);
    expect(reads).toEqual([
      [0, 8],
      [8, header.headerByteLength],
    ]);
    reads.length = 0;
    await container.read('k');
    const kTensors = header.tensors.filter((t) => t.name.startsWith('k.'));
    expect(kTensors.length).toBeGreaterThan(1);
    expect(reads.map(([offset, length]) => [offset - header.dataStart, length]).sort((a, b) => a[0]! - b[0]!)).toEqual(
      kTensors.map((t) => [t.dataOffsets[0], t.byteLength]).sort((a, b) => a[0]! - b[0]!),
    );
  });

  it('refuses a truncated source at open, and a corrupted tensor when its matrix is read (the others read)', async () => {
    await expect(openQuantizedContainer(bytesSource(bytes.subarray(0, bytes.byteLength - 1), 'cut.lmq'))).rejects.toThrow(/^quantized container cut\.lmq: .*the file is at least 1 bytes shorter than its header says \(truncated/);
    await expect(openQuantizedContainer(bytesSource(bytes.subarray(0, 5)))).rejects.toThrow(/5 bytes long, shorter than the 8-byte header length field/);
    const damaged = bytes.slice();
    const at = header.dataStart + (header.tensorsByName.get('v.codes')?.dataOffsets[0] as number) + 3;
    damaged[at] = (damaged[at] as number) ^ 0x40;
    const container = await openQuantizedContainer(blobSource(new Blob([damaged.slice()]), 'damaged'));
    await expect(container.read('v')).rejects.toThrow(/matrix "v": tensor "codes" is corrupted/);
    expect((await container.read('q')).matrix).toEqual(whole.get('q').matrix);
  });

  it('a Blob of a file on disk that changes after it was opened: refused by name, not a bare DOMException', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lattice-blob-'));
    try {
      const path = join(dir, 'model.lmq.safetensors');
      await writeFile(path, bytes);
      const container = await openQuantizedContainer(blobSource(await openAsBlob(path), 'model.lmq.safetensors'));
      expect((await container.read('q')).matrix).toEqual(whole.get('q').matrix);
      await appendFile(path, new Uint8Array([0]));
      const refusal = await container.read('k').catch((error: unknown) => error);
      expect(refusal).toBeInstanceOf(LatticeMatmulError);
      expect((refusal as Error).message).toMatch(/^model\.lmq\.safetensors: reading \d+ bytes at \d+ failed \(NotReadableError: .*\); did the file change or go since it was opened\?/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not a ByteSource, naming the sources', async () => {
    await expect(openQuantizedContainer({} as never)).rejects.toThrow(/^openQuantizedContainer needs a ByteSource \(\{ name, byteLength, read\(offset, length\) \}: bytesSource, blobSource, httpRangeSource\), got/);
    expect(() => bytesSource('text' as never)).toThrow(LatticeMatmulError);
    expect(() => blobSource(bytes as never)).toThrow(/blobSource needs a Blob or File/);
    await expect(httpRangeSource(7 as never)).rejects.toThrow(/^httpRangeSource needs a URL, got 7$/);
    await expect(httpRangeSource(base, null as never)).rejects.toThrow(/^httpRangeSource options must be an object, got null$/);
    // A misspelt option was ignored and its default used ({ retry: 0 } retried twice).
    await expect(httpRangeSource(base, { retry: 0 } as never)).rejects.toThrow(/^httpRangeSource options: unknown option 'retry'; known: fetch, headers, signal, responseTimeoutMs, retries$/);
    // A name that is no string: a symbol made every later message throw a TypeError, an object printed "[object Object]".
    expect(() => bytesSource(bytes, Symbol('model') as never)).toThrow(/^bytesSource: the name must be a string, got a symbol$/);
    expect(() => blobSource(new Blob([]), { file: 'model' } as never)).toThrow(/^blobSource: the name must be a string, got /);
    await expect(bytesSource(bytes).read(bytes.byteLength - 2, 3)).rejects.toThrow(/cannot read 3 bytes at \d+ of \d+/);
  });

  it('refuses options that are not an object or hold a misspelt key, as readQuantizedContainer does (they were ignored, or a TypeError)', async () => {
    // maxHeaderByte: the limit the caller asked for was silently not applied.
    await expect(openQuantizedContainer(bytesSource(bytes), { maxHeaderByte: 64 } as never)).rejects.toThrow(
      /^openQuantizedContainer options: unknown option 'maxHeaderByte' \(did you mean 'maxHeaderBytes'\?\); known: maxHeaderBytes$/,
    );
    for (const options of [null, 5, 'maxHeaderBytes']) {
      await expect(openQuantizedContainer(bytesSource(bytes), options as never), String(options)).rejects.toThrow(/^openQuantizedContainer options must be an object, got /);
    }
    await expect(openQuantizedContainer(bytesSource(bytes), { maxHeaderBytes: 64 })).rejects.toThrow(/exceeds the limit of 64 bytes$/);
    expect((await openQuantizedContainer(bytesSource(bytes), {})).entries).toHaveLength(4);
  });

  it('read and info refuse a name that is no matrix\'s, naming it even when it is no string (quoted(undefined) threw a TypeError); has says false', async () => {
    const container = await openQuantizedContainer(bytesSource(bytes));
    await expect(container.read(undefined as never)).rejects.toThrow(/has no matrix named undefined \(it has "q", "k", "v", "o"\)$/);
    expect(() => container.info(Symbol('q') as never)).toThrow(/has no matrix named a symbol \(it has "q", "k", "v", "o"\)$/);
    expect(() => container.info(7 as never)).toThrow(LatticeMatmulError);
    expect([container.has('q'), container.has('nope')]).toEqual([true, false]);
  });

  it.each([
    ['no ranges', /does not serve ranges; fetch the file whole and use readQuantizedContainer$/],
    ['not found', /the request for bytes 0-7 was answered 404 Not Found$/],
    ['html fallback', /the server sent an HTML page \(200\) for a byte range: is the URL right\? \(a single-page app's server answers a missing file with its index\.html\)$/],
    ['gzip', /the response is compressed \(Content-Encoding: gzip\)/],
    ['no content-range', /no readable Content-Range header \(a server on another origin must send Access-Control-Expose-Headers: Content-Range\)$/],
  ] as const)('a server that answers with %s is refused when the source is made', async (serverMode, message) => {
    mode = serverMode;
    await expect(httpRangeSource(base)).rejects.toThrow(message);
  });

  it.each([
    ['changing etag', /the resource changed while it was read \(another size or ETag\)$/],
    ['wrong range', /asked for bytes 8-\d+, the server sent 9-\d+$/],
  ] as const)('a server whose later answers go wrong (%s) is refused at the read', async (serverMode, message) => {
    mode = 'ranges';
    const source = await httpRangeSource(base);
    mode = serverMode;
    await expect(openQuantizedContainer(source)).rejects.toThrow(message);
  });

  it('passes headers, the abort signal and no-store to every request; the first asks for the 8-byte length field and keeps it', async () => {
    mode = 'ranges';
    const seen: [string | null, string | null, RequestCache | undefined][] = [];
    const fetchSpy: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      seen.push([headers.get('range'), headers.get('authorization'), init?.cache]);
      return fetch(input, init);
    };
    const controller = new AbortController();
    const source = await httpRangeSource(new URL(base), { fetch: fetchSpy, headers: { Authorization: 'Bearer t' }, signal: controller.signal });
    expect(Array.from(await source.read(0, 8))).toEqual(Array.from(bytes.subarray(0, 8)));
    expect(Array.from(await source.read(8, 4))).toEqual(Array.from(bytes.subarray(8, 12)));
    // Not "bytes=0-0": Vite's servers answer that with the whole file.
    expect(seen).toEqual([
      ['bytes=0-7', 'Bearer t', 'no-store'],
      ['bytes=8-11', 'Bearer t', 'no-store'],
    ]);
    controller.abort(new Error('user left the page'));
    await expect(source.read(8, 4)).rejects.toThrow(/^http:.*: the request for bytes 8-11 failed: user left the page$/);
  });

  it('a server that does not answer is refused after responseTimeoutMs; a resource shorter than 8 bytes is read whole and refused as a container', async () => {
    mode = 'silent';
    await expect(httpRangeSource(base, { responseTimeoutMs: 200 })).rejects.toThrow(/: the request for bytes 0-7 failed: no answer within 200 ms$/);
    await expect(httpRangeSource(base, { responseTimeoutMs: 0 })).rejects.toThrow(/responseTimeoutMs must be a positive number of milliseconds \(Infinity for none\), got 0/);
    mode = 'tiny';
    const tiny = await httpRangeSource(base);
    expect(tiny.byteLength).toBe(5);
    await expect(openQuantizedContainer(tiny)).rejects.toThrow(/5 bytes long, shorter than the 8-byte header length field/);
  });
});

describe('openQuantizedContainer and readQuantizedContainer agree on damaged files', () => {
  it('every bit flip and truncation of the smallest fuzz corpus file: both refuse, or both read the same matrices', async () => {
    const smallest = [...containerFuzzCorpus()].sort((a, b) => a.byteLength - b.byteLength)[0] as Uint8Array;
    const damaged: Uint8Array[] = [];
    for (let bit = 0; bit < 8 * smallest.byteLength; bit++) {
      const flipped = smallest.slice();
      flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
      damaged.push(flipped);
    }
    for (let length = 0; length < smallest.byteLength; length++) damaged.push(smallest.slice(0, length));
    let refusedByBoth = 0;
    for (const [i, file] of damaged.entries()) {
      let whole: QuantizedContainer | LatticeMatmulError;
      try {
        whole = readQuantizedContainer(file);
      } catch (error) {
        if (!(error instanceof LatticeMatmulError)) throw error;
        whole = error;
      }
      const lazy = await openQuantizedContainer(bytesSource(file))
        .then((container) => container.readAll())
        .catch((error: unknown) => error);
      if (whole instanceof LatticeMatmulError) {
        expect(lazy, `case ${i}: refused whole (${whole.message}), read lazily`).toBeInstanceOf(LatticeMatmulError);
        refusedByBoth++;
      } else {
        expect(lazy, `case ${i}`).not.toBeInstanceOf(Error);
        expect((lazy as QuantizedContainer).entries.map((e) => e.matrix)).toEqual(whole.entries.map((e) => e.matrix));
      }
    }
    // Flipped bits and truncations are all caught (checksums and framing), so all are refusals.
    expect(refusedByBoth).toBe(damaged.length);
    expect(damaged.length).toBeGreaterThan(1000);
  }, 120_000);
});
