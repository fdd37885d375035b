import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readQuantizedContainer, writeQuantizedContainer, type ContainerEntryInput } from '../../src/format/container.js';
import { openQuantizedContainer } from '../../src/format/containerReader.js';
import { httpRangeSource, urlForMessages, type HttpRangeSourceOptions } from '../../src/io/byteSource.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * httpRangeSource against servers as they really behave: bodies that stop coming or never end,
 * answers that go wrong for some requests only, a file replaced between two range requests (with and
 * without an ETag), redirects, and concurrent reads. Each case is read right or refused by name; none
 * hangs, and none returns bytes of two versions (the container's per-tensor CRC-32s catch what the
 * source cannot see). test/format/containerReader.test.ts has the servers that misbehave from the start.
 */

/** Fixed-size schemes, so that two containers of other data have the same size and layout. */
function container(seed: number): Uint8Array {
  const entries: ContainerEntryInput[] = [
    { name: 'q', matrix: quantize(gaussianMatrix(64, 3, seed), { scheme: 'int4-g32', seed: 2 }) },
    { name: 'k', matrix: quantize(gaussianMatrix(96, 5, seed + 1), { scheme: 'd3-q6-deterministic', seed: 2 }) },
    { name: 'v', matrix: quantize(gaussianMatrix(64, 3, seed + 2), { scheme: 'int4-g32', seed: 2 }) },
  ];
  return writeQuantizedContainer(entries, { model: 'ranges' });
}
const v1 = container(1);
const v2 = container(100);
const whole = readQuantizedContainer(v1);
const names = ['q', 'k', 'v'];

type Handler = (request: IncomingMessage, response: ServerResponse, n: number) => void;

/** The asked range of `bytes` (the last byte clamped to its end). */
function rangeOf(request: IncomingMessage, bytes: Uint8Array): [number, number] {
  const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '') as RegExpExecArray;
  return [Number(match[1]), Math.min(Number(match[2]), bytes.byteLength - 1)];
}

/** Answers the range of `bytes` as a range server does (206, Content-Range, an ETag unless null). */
function serve(bytes: Uint8Array, etag: string | null, request: IncomingMessage, response: ServerResponse): void {
  const [first, last] = rangeOf(request, bytes);
  const headers: Record<string, string | number> = { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${bytes.byteLength}` };
  if (etag !== null) headers.ETag = etag;
  response.writeHead(206, headers).end(bytes.subarray(first, last + 1));
}

/** `promise`, or a rejection naming a hang after `ms` (the bug these tests guard against was a hang). */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hung for ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('httpRangeSource against misbehaving servers', () => {
  let server: Server;
  let url = '';
  let handler: Handler = () => undefined;
  let requests = 0;
  beforeAll(async () => {
    server = createServer((request, response) => handler(request, response, ++requests));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.lmq.safetensors`;
  });
  beforeEach(() => {
    requests = 0;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Opens the container at `url` and reads every matrix, one after another. */
  async function readEvery(options?: HttpRangeSourceOptions): Promise<unknown[]> {
    const reader = await openQuantizedContainer(await httpRangeSource(url, options));
    const matrices: unknown[] = [];
    for (const name of names) matrices.push((await reader.read(name)).matrix);
    return matrices;
  }
  const expected = names.map((name) => whole.get(name).matrix);

  it('a body that stops coming (after its headers, or mid-way) is refused after responseTimeoutMs, not waited for forever', async () => {
    // Requests 1 and 2 are the length field and the header; the third is the first matrix's first tensor.
    for (const sent of [0, 5]) {
      handler = (request, response, n) => {
        if (n < 3) return serve(v1, '"a"', request, response);
        const [first, last] = rangeOf(request, v1);
        response.writeHead(206, { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}` });
        if (sent > 0) response.write(v1.subarray(first, first + sent));
        else response.flushHeaders();
      };
      requests = 0;
      await expect(withinMs(readEvery({ responseTimeoutMs: 300 }), 5000)).rejects.toThrow(/: reading bytes \d+-\d+ failed: no bytes of the body came within 300 ms$/);
    }
  });

  it('a slow body whose pieces keep coming within responseTimeoutMs is read to its end', async () => {
    handler = (request, response, n) => {
      if (n < 3) return serve(v1, '"a"', request, response);
      const [first, last] = rangeOf(request, v1);
      response.writeHead(206, { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}`, ETag: '"a"' });
      // 8 bytes every 40 ms: a 160-byte tensor takes 0.8 s, far beyond the 250 ms timeout, each piece within it.
      let at = first;
      const timer = setInterval(() => {
        response.write(v1.subarray(at, Math.min(at + 8, last + 1)));
        at += 8;
        if (at > last) {
          clearInterval(timer);
          response.end();
        }
      }, 40);
    };
    const reader = await openQuantizedContainer(await httpRangeSource(url, { responseTimeoutMs: 250 }));
    expect((await reader.read('k')).matrix).toEqual(whole.get('k').matrix);
  });

  it('a body longer than asked (endless, even) is refused at the first byte too many, without holding it', async () => {
    handler = (request, response, n) => {
      if (n < 3) return serve(v1, '"a"', request, response);
      const [first, last] = rangeOf(request, v1);
      // The right Content-Range, then 64 KiB pieces until the client goes away (at most 5 s).
      response.writeHead(206, { 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}`, ETag: '"a"' });
      const piece = new Uint8Array(1 << 16);
      const timer = setInterval(() => (response.destroyed ? clearInterval(timer) : response.write(piece)), 2);
      setTimeout(() => {
        clearInterval(timer);
        response.destroy();
      }, 5000);
    };
    const started = Date.now();
    await expect(readEvery()).rejects.toThrow(/: asked for \d+ bytes at \d+, the response held more than \d+$/);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('responseTimeoutMs: a number past the 2^31 − 1 ms a timer can wait means no limit; a string is refused', async () => {
    handler = (request, response) => serve(v1, '"a"', request, response);
    // setTimeout fires at once past 2^31 − 1 ms: every request was refused as "no answer within 10000000000 ms".
    expect(await readEvery({ responseTimeoutMs: 1e10 })).toEqual(expected);
    expect(await readEvery({ responseTimeoutMs: Infinity })).toEqual(expected);
    // '500' passed the old check and then set no timer at all.
    await expect(httpRangeSource(url, { responseTimeoutMs: '500' as never })).rejects.toThrow(/responseTimeoutMs must be a positive number of milliseconds \(Infinity for none\), got "500"$/);
    await expect(httpRangeSource(url, { responseTimeoutMs: Number.NaN })).rejects.toThrow(/responseTimeoutMs must be a positive number/);
  });

  it('a Content-Range of unknown total ("bytes 0-7/*") is named as such, not as a missing header', async () => {
    handler = (_request, response) => void response.writeHead(206, { 'Content-Range': 'bytes 0-7/*', 'Content-Length': 8 }).end(v1.subarray(0, 8));
    await expect(httpRangeSource(url)).rejects.toThrow(/: the response's Content-Range "bytes 0-7\/\*" is not one range of a resource of known size \(bytes FIRST-LAST\/TOTAL\)$/);
  });

  it.each([
    ['the whole file (200) for one request', (n: number) => n === 4, (response: ServerResponse): void => void response.writeHead(200, { 'Content-Length': v1.byteLength }).end(v1), /does not serve ranges/],
    ['416 for one request', (n: number) => n === 4, (response: ServerResponse): void => void response.writeHead(416).end(), /was answered 416 Range Not Satisfiable$/],
    ['503 for one request (no retry)', (n: number) => n === 4, (response: ServerResponse): void => void response.writeHead(503).end('busy'), /was answered 503 Service Unavailable$/],
  ] as const)('a server that answers %s is refused at that read', async (_what, when, answer, message) => {
    handler = (request, response, n) => (when(n) ? answer(response) : serve(v1, '"a"', request, response));
    await expect(readEvery()).rejects.toThrow(message);
  });

  it('a body one byte short or long of its Content-Range, or cut off, is refused', async () => {
    for (const [delta, cut, message] of [
      [-1, false, /asked for \d+ bytes at \d+, the response held \d+$/],
      [2, false, /asked for \d+ bytes at \d+, the response held more than \d+$/],
      [0, true, /reading bytes \d+-\d+ failed: terminated$/],
    ] as const) {
      handler = (request, response, n) => {
        if (n !== 4) return serve(v1, '"a"', request, response);
        const [first, last] = rangeOf(request, v1);
        const body = v1.subarray(first, last + 1 + delta);
        response.writeHead(206, { 'Content-Length': body.byteLength, 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}`, ETag: '"a"' });
        if (!cut) return void response.end(body);
        response.write(body.subarray(0, 4));
        setTimeout(() => response.destroy(), 20);
      };
      requests = 0;
      await expect(readEvery()).rejects.toThrow(message);
    }
  });

  it('a file replaced by one of the same size between two requests: refused, whether or not the server sends an ETag', async () => {
    // From request `at` on, the server has v2 (same size and layout, other data).
    for (const at of [3, 4, 5, 6]) {
      for (const [etag1, etag2, message] of [
        ['"a"', '"b"', /the resource changed while it was read \(another size or ETag\)$/],
        [null, null, /tensor "\w+" is corrupted: its checksum is [0-9a-f]{8} but its bytes give [0-9a-f]{8}$/],
        ['W/"same"', 'W/"same"', /tensor "\w+" is corrupted/],
      ] as const) {
        handler = (request, response, n) => (n < at ? serve(v1, etag1, request, response) : serve(v2, etag2, request, response));
        requests = 0;
        await expect(readEvery()).rejects.toThrow(message);
      }
    }
  });

  it("a signed URL's query and credentials stay out of the source's name and its messages", async () => {
    expect(urlForMessages('https://bucket.s3.amazonaws.com/m.lmq.safetensors?X-Amz-Signature=abc123&X-Amz-Credential=AKIA')).toBe('https://bucket.s3.amazonaws.com/m.lmq.safetensors?…');
    expect(urlForMessages('https://user:secret@host.example/a/b.safetensors#part')).toBe('https://host.example/a/b.safetensors');
    expect(urlForMessages(new URL('http://127.0.0.1:8080/m?token=x'))).toBe('http://127.0.0.1:8080/m?…');
    expect(urlForMessages('models/m.safetensors')).toBe('models/m.safetensors');
    handler = (_request, response) => void response.writeHead(404).end();
    const signed = `${url}?token=s3cr3t`;
    const refusal = await httpRangeSource(signed).then(() => null, (error: unknown) => error as Error);
    expect(refusal?.message).toMatch(/\?…: /);
    expect(refusal?.message).not.toContain('s3cr3t');
    handler = (request, response) => serve(v1, '"a"', request, response);
    expect((await httpRangeSource(signed)).name).toBe(`${url}?…`);
  });

  it('redirects (301, 302, 307, 308) to another path are followed', async () => {
    for (const status of [301, 302, 307, 308]) {
      handler = (request, response) => (request.url === '/model.lmq.safetensors' ? void response.writeHead(status, { Location: '/elsewhere' }).end() : serve(v1, '"a"', request, response));
      expect(await readEvery()).toEqual(expected);
    }
  });

  describe('many concurrent reads through a browser\'s 6 connections per host (undici\'s own Agent, as Node\'s fetch uses)', () => {
    const names12 = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const big = writeQuantizedContainer(names12.map((name, i) => ({ name, matrix: quantize(gaussianMatrix(512, 64, i), { scheme: 'int4-g32', seed: 2 }) })));
    const bigWhole = readQuantizedContainer(big);
    /** An honest server on a slow link: headers at once, the body 256 bytes per 20 ms (a 16 KiB tensor: 1.3 s). */
    const slow: Handler = (request, response) => {
      const [first, last] = rangeOf(request, big);
      response.writeHead(206, { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${big.byteLength}`, ETag: '"big"' });
      let at = first;
      const timer = setInterval(() => {
        if (response.destroyed) return void clearInterval(timer);
        response.write(big.subarray(at, Math.min(at + 256, last + 1)));
        at += 256;
        if (at > last) {
          clearInterval(timer);
          response.end();
        }
      }, 20);
    };
    /** fetch through a pool of 6 connections: requests past them wait, their signal (and timer) running. */
    async function sixConnectionFetch(): Promise<typeof fetch> {
      await (await fetch(url, { headers: { Range: 'bytes=0-7' } })).arrayBuffer(); // makes the global dispatcher
      const dispatcher = (globalThis as unknown as Record<symbol, { constructor: new (options: object) => unknown } | undefined>)[Symbol.for('undici.globalDispatcher.1')];
      expect(dispatcher).toBeDefined();
      const pool = new (dispatcher as { constructor: new (options: object) => unknown }).constructor({ connections: 6 });
      return (input, init) => fetch(input, { ...init, dispatcher: pool } as RequestInit);
    }

    it('are read, not refused as unanswered while they wait for a connection', async () => {
      handler = slow;
      // Before, a request's responseTimeoutMs ran while it waited behind six 1.3 s bodies.
      const reader = await openQuantizedContainer(await httpRangeSource(url, { fetch: await sixConnectionFetch(), responseTimeoutMs: 1000 }));
      const matrices = await Promise.all(names12.map(async (name) => (await reader.read(name)).matrix));
      expect(matrices).toEqual(names12.map((name) => bigWhole.get(name).matrix));
    });

    it('an abort refuses the requests in flight and those waiting, which are never sent', async () => {
      handler = slow;
      const controller = new AbortController();
      const reader = await openQuantizedContainer(await httpRangeSource(url, { signal: controller.signal }));
      const sent = requests;
      const reads = Promise.allSettled(names12.map((name) => reader.read(name)));
      // Wait for the first six to reach the server (a loaded machine may take a while), then a little
      // longer: no seventh is sent while the six bodies (1.3 s each) are still coming.
      for (const start = Date.now(); requests - sent < 6 && Date.now() - start < 5000; ) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(requests - sent).toBe(6);
      controller.abort(new Error('user left the page'));
      const settled = await withinMs(reads, 5000);
      expect(settled.map((result) => (result.status === 'rejected' ? (result.reason as Error).message.replace(/^.*: /, '') : 'read'))).toEqual(names12.map(() => 'user left the page'));
      expect(requests - sent).toBe(6);
    });
  });

  it('concurrent reads of every matrix, answered out of order, equal the sequential ones', async () => {
    handler = (request, response) => void setTimeout(() => serve(v1, '"a"', request, response), Math.random() * 30);
    const reader = await openQuantizedContainer(await httpRangeSource(url));
    const twice = [...names, ...names];
    const matrices = await Promise.all(twice.map(async (name) => (await reader.read(name)).matrix));
    expect(matrices).toEqual([...expected, ...expected]);
  });
});
