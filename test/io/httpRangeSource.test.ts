import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { readQuantizedContainer, writeQuantizedContainer } from '../../src/format/container.js';
import { openQuantizedContainer } from '../../src/format/containerReader.js';
import { httpRangeSource, urlForMessages, type HttpRangeSourceOptions } from '../../src/io/byteSource.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { sameLayoutContainer } from './sameLayoutContainers.js';

/*
 * httpRangeSource against servers as they really behave: bodies that stop coming or never end,
 * answers that go wrong for some requests only, a file replaced between two range requests (with and
 * without an ETag), redirects, and concurrent reads. Each case is read right or refused by name; none
 * hangs, and none returns bytes of two versions (the container's per-tensor CRC-32s catch what the
 * source cannot see). test/format/containerReader.test.ts has the servers that misbehave from the start.
 */

const container = (seed: number): Uint8Array => sameLayoutContainer(seed, 'ranges');
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
      // 1 s, not less: the length field and the header must be answered within it on a loaded machine.
      await expect(withinMs(readEvery({ responseTimeoutMs: 1000 }), 15_000)).rejects.toThrow(/: reading bytes \d+-\d+ failed: no bytes of the body came within 1000 ms$/);
    }
  });

  it('a slow body whose pieces keep coming within responseTimeoutMs is read to its end', async () => {
    handler = (request, response, n) => {
      if (n < 3) return serve(v1, '"a"', request, response);
      const [first, last] = rangeOf(request, v1);
      response.writeHead(206, { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}`, ETag: '"a"' });
      // 4 bytes every 40 ms: a 160-byte tensor takes 1.6 s, beyond the 1 s timeout, each piece far within
      // it (a loaded machine may delay a piece by some 100 ms, not 1 s).
      let at = first;
      const timer = setInterval(() => {
        response.write(v1.subarray(at, Math.min(at + 4, last + 1)));
        at += 4;
        if (at > last) {
          clearInterval(timer);
          response.end();
        }
      }, 40);
    };
    const reader = await openQuantizedContainer(await httpRangeSource(url, { responseTimeoutMs: 1000 }));
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
    ['503 for every request from the 4th (sent three times)', (n: number) => n >= 4, (response: ServerResponse): void => void response.writeHead(503).end('busy'), /was answered 503 Service Unavailable \(after 3 attempts\)$/],
  ] as const)('a server that answers %s is refused at that read', async (_what, when, answer, message) => {
    handler = (request, response, n) => (when(n) ? answer(response) : serve(v1, '"a"', request, response));
    await expect(readEvery()).rejects.toThrow(message);
  });

  it('a body one byte short or long of its Content-Range, or cut off, is refused', async () => {
    for (const [delta, cut, message] of [
      [-1, false, /asked for \d+ bytes at \d+, the response held \d+$/],
      [1, false, /asked for \d+ bytes at \d+, the response held more than \d+$/],
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
      // retries: 0, or the cut body is sent again and read right (the retry tests below).
      await expect(readEvery({ retries: 0 })).rejects.toThrow(message);
    }
  });

  it('reads within the first 8 bytes (kept from the first request) give exactly the bytes asked for', async () => {
    handler = (request, response) => serve(v1, '"a"', request, response);
    const source = await httpRangeSource(url);
    for (const [offset, length] of [
      [0, 8],
      [2, 3],
      [7, 1],
      [0, 0],
    ] as const) {
      expect(Array.from(await source.read(offset, length)), `${offset}, ${length}`).toEqual(Array.from(v1.subarray(offset, offset + length)));
    }
  });

  it('a Content-Range that ends a byte early (with a body to match) is refused as another range', async () => {
    handler = (request, response, n) => {
      if (n !== 4) return serve(v1, '"a"', request, response);
      const [first, last] = rangeOf(request, v1);
      const body = v1.subarray(first, last);
      response.writeHead(206, { 'Content-Length': body.byteLength, 'Content-Range': `bytes ${first}-${last - 1}/${v1.byteLength}`, ETag: '"a"' });
      response.end(body);
    };
    requests = 0;
    await expect(readEvery()).rejects.toThrow(/: asked for bytes (\d+)-(\d+), the server sent \1-\d+$/);
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

  it("fetch's own refusals, which quote the URL whole, keep its credentials and query out of the messages too", async () => {
    expect(urlForMessages('//user:secret@cdn.example/m.safetensors?sig=1')).toBe('//cdn.example/m.safetensors?…');
    handler = (request, response) => serve(v1, '"a"', request, response);
    // The global fetch refuses a URL with credentials, quoting it in its message (and in the cause
    // an app's logs print): refused before it, by name only.
    const withCredentials = url.replace('http://', 'http://user:s3cr3t@') + '?token=t0k3n';
    const refusal = await httpRangeSource(withCredentials).then(() => null, (error: unknown) => error as Error);
    expect(refusal?.message).toMatch(/^httpRangeSource: http:\/\/127\.0\.0\.1:\d+\/model\.lmq\.safetensors\?…: a URL with credentials \(user:password@\) cannot be fetched/);
    expect(inspect(refusal)).not.toMatch(/s3cr3t|t0k3n/);
    // One that does not parse ("Failed to parse URL from …"): its text shown without the query.
    const unparsed = await httpRangeSource('http://127.0.0.1:99999/m?token=t0k3n').then(() => null, (error: unknown) => error as Error);
    expect(unparsed?.message).toMatch(/^http:\/\/127\.0\.0\.1:99999\/m\?…: the request for bytes 0-7 failed: /);
    expect(unparsed?.message).not.toContain('t0k3n');
    // Nor in the cause (fetch's TypeError quoted it, and its own cause, Node's "Invalid URL", held it as
    // `input`); a relative URL, which Node's fetch cannot parse, alike.
    expect(inspect(unparsed)).not.toContain('t0k3n');
    expect(inspect(await httpRangeSource('/m.safetensors?X-Amz-Signature=t0k3n').then(() => null, (error: unknown) => error as Error))).not.toContain('t0k3n');
    // Written as a URL parser reads them, these carry credentials too: after leading spaces or controls,
    // tabs or newlines within, backslashes, "http:" with one slash or none (absolute to fetch).
    for (const written of [' http://user:s3cr3t@h.example/m', '\thttp://user:s3cr3t@h.example/m', 'ht\ntp://user:s3cr3t@h.example/m', '\\\\user:s3cr3t@h.example/m', 'http:\\\\user:s3cr3t@h.example/m', 'http:/user:s3cr3t@h.example/m', 'http:user:s3cr3t@h.example/m']) {
      const error = await httpRangeSource(written).then(() => null, (e: unknown) => e as Error);
      expect(error?.message, JSON.stringify(written)).toMatch(/^httpRangeSource: .*h\.example\/m: a URL with credentials \(user:password@\) cannot be fetched/);
      expect(inspect(error), JSON.stringify(written)).not.toContain('s3cr3t');
    }
    // An options.fetch may take credentials (here sent as a header): not refused.
    const credentialed: typeof fetch = (input, init) => fetch(String(input).replace('user:s3cr3t@', ''), init);
    expect((await httpRangeSource(withCredentials, { fetch: credentialed })).byteLength).toBe(v1.byteLength);
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
      // One listener on the caller's signal for the source, not one per request: 12 passed Node's
      // 10 per signal (MaxListenersExceededWarning on the app's console).
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
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

  describe('a request that failed on the way is sent again', () => {
    /** How many requests reading every matrix takes from a server that answers each right. */
    let plainRequests = 0;
    beforeAll(async () => {
      handler = (request, response) => serve(v1, '"a"', request, response);
      requests = 0;
      await readEvery();
      plainRequests = requests;
    });

    it.each([408, 429, 500, 502, 503, 504])('an answer %i to one request: sent again, every matrix read right', async (status) => {
      handler = (request, response, n) => (n === 4 ? void response.writeHead(status).end('try again') : serve(v1, '"a"', request, response));
      await expect(readEvery()).resolves.toEqual(expected);
      expect(requests).toBe(plainRequests + 1);
    });

    it('a request sent again passes the same checks: the file replaced meanwhile (another ETag) is refused, not mixed', async () => {
      handler = (request, response, n) => (n === 4 ? void response.writeHead(503).end() : n < 4 ? serve(v1, '"a"', request, response) : serve(v2, '"b"', request, response));
      await expect(readEvery()).rejects.toThrow(/: the resource changed while it was read \(another size or ETag\)$/);
      expect(requests).toBe(5);
    });

    it('a body cut by the network, or a connection closed before the answer, once the server has answered: sent again, read right', async () => {
      for (const fail of [
        (request: IncomingMessage, response: ServerResponse): void => {
          const [first, last] = rangeOf(request, v1);
          response.writeHead(206, { 'Content-Length': last - first + 1, 'Content-Range': `bytes ${first}-${last}/${v1.byteLength}`, ETag: '"a"' });
          response.write(v1.subarray(first, first + 4));
          setTimeout(() => response.destroy(), 20);
        },
        (_request: IncomingMessage, response: ServerResponse): void => void response.socket?.destroy(),
      ]) {
        handler = (request, response, n) => (n === 4 ? fail(request, response) : serve(v1, '"a"', request, response));
        requests = 0;
        await expect(readEvery()).resolves.toEqual(expected);
        expect(requests).toBe(plainRequests + 1);
      }
    });

    it('not sent again: other answers (404, 501), and a failure that lasts is refused after retries + 1 attempts', async () => {
      for (const status of [404, 501]) {
        handler = (request, response, n) => (n === 4 ? void response.writeHead(status).end() : serve(v1, '"a"', request, response));
        requests = 0;
        await expect(readEvery()).rejects.toThrow(new RegExp(`was answered ${status} [A-Za-z ]+$`));
        expect(requests).toBe(4);
      }
      handler = (request, response, n) => (n >= 4 ? void response.writeHead(502).end() : serve(v1, '"a"', request, response));
      requests = 0;
      await expect(readEvery({ retries: 1 })).rejects.toThrow(/was answered 502 Bad Gateway \(after 2 attempts\)$/);
      expect(requests).toBe(5);
      requests = 0;
      await expect(readEvery({ retries: 0 })).rejects.toThrow(/was answered 502 Bad Gateway$/);
      expect(requests).toBe(4);
    });

    it('waits as the server asks (Retry-After in seconds), but not beyond 10 s', async () => {
      handler = (request, response, n) => (n === 4 ? void response.writeHead(503, { 'Retry-After': '1' }).end() : serve(v1, '"a"', request, response));
      let started = Date.now();
      await expect(readEvery()).resolves.toEqual(expected);
      expect(Date.now() - started).toBeGreaterThanOrEqual(990);
      handler = (request, response, n) => (n === 4 ? void response.writeHead(429, { 'Retry-After': '3600' }).end() : serve(v1, '"a"', request, response));
      requests = 0;
      started = Date.now();
      await expect(readEvery()).rejects.toThrow(/was answered 429 Too Many Requests$/);
      expect(requests).toBe(4);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it('an abort during a wait rejects at once with its reason', async () => {
      handler = (request, response, n) => (n >= 4 ? void response.writeHead(503, { 'Retry-After': '5' }).end() : serve(v1, '"a"', request, response));
      const controller = new AbortController();
      const reading = readEvery({ signal: controller.signal });
      for (const start = Date.now(); requests < 4 && Date.now() - start < 5000; ) await new Promise((resolve) => setTimeout(resolve, 10));
      const reason = new Error('user left the page');
      controller.abort(reason);
      const started = Date.now();
      await expect(withinMs(reading, 4000)).rejects.toThrow(/failed: user left the page$/);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(requests).toBe(4);
    });
  });
});

describe('httpRangeSource: retries with a fetch of its own', () => {
  /** A fetch whose first request (the length field) is answered; later ones with `later`, their times kept. */
  function fetchThen(later: () => Promise<Response>): { fetch: typeof fetch; times: number[] } {
    const times: number[] = [];
    const fetchThen = ((_input: unknown, init?: RequestInit) => {
      const [first, last] = (/^bytes=(\d+)-(\d+)$/.exec((init?.headers as Record<string, string>).Range ?? '') as RegExpExecArray).slice(1).map(Number) as [number, number];
      if (first === 0) return Promise.resolve(new Response(v1.slice(0, last + 1), { status: 206, headers: { 'Content-Range': `bytes 0-${last}/${v1.byteLength}` } }));
      times.push(Date.now());
      return later();
    }) as typeof fetch;
    return { fetch: fetchThen, times };
  }

  it('waits 250 ms, then twice as long each time', async () => {
    const { fetch: busy, times } = fetchThen(() => Promise.resolve(new Response('busy', { status: 503 })));
    const source = await httpRangeSource('http://example.test/m', { fetch: busy, retries: 3 });
    await expect(source.read(8, 10)).rejects.toThrow(/^http:\/\/example\.test\/m: the request for bytes 8-17 was answered 503 \(after 4 attempts\)$/);
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((time, i) => time - (times[i] as number));
    // Timers fire no earlier than asked (a loaded machine only makes them later).
    [250, 500, 1000].forEach((wait, i) => expect(gaps[i]).toBeGreaterThanOrEqual(wait - 5));
  });

  it('a network failure after the first answer is sent again; the first request failing is final (a wrong URL or host)', async () => {
    let failures = 1;
    const { fetch: flaky, times } = fetchThen(() => (failures-- > 0 ? Promise.reject(new TypeError('fetch failed')) : Promise.resolve(new Response(v1.slice(8, 18), { status: 206, headers: { 'Content-Range': `bytes 8-17/${v1.byteLength}` } }))));
    const signal = new AbortController().signal;
    const source = await httpRangeSource('http://example.test/m', { fetch: flaky, signal });
    expect(Array.from(await source.read(8, 10))).toEqual(Array.from(v1.slice(8, 18)));
    expect(times).toHaveLength(2);
    // The wait between watched the caller's signal, and let it go.
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    let calls = 0;
    const unreachable = ((() => {
      calls++;
      return Promise.reject(new TypeError('fetch failed'));
    }) as unknown) as typeof fetch;
    await expect(httpRangeSource('http://example.test/m', { fetch: unreachable })).rejects.toThrow(/: the request for bytes 0-7 failed: fetch failed$/);
    expect(calls).toBe(1);
  });

  /**
   * The waits (setTimeout's delays) a read of bytes 8-17 takes from a server always answering 503
   * with `retryAfter`, each timer run at once (no responseTimeoutMs: the only timers are the waits).
   */
  async function waitsAgainstBusy(retries: number, retryAfter?: string): Promise<{ waits: number[]; message: string }> {
    const headers: Record<string, string> = retryAfter === undefined ? {} : { 'Retry-After': retryAfter };
    const { fetch: busy } = fetchThen(() => Promise.resolve(new Response('busy', { status: 503, headers })));
    const source = await httpRangeSource('http://example.test/m', { fetch: busy, retries, responseTimeoutMs: Infinity });
    const waits: number[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((run: () => void, ms?: number) => {
      waits.push(ms ?? 0);
      return realSetTimeout(run, 0);
    }) as typeof setTimeout);
    try {
      const message = await source.read(8, 10).then(
        () => 'read',
        (error: unknown) => (error as Error).message,
      );
      return { waits, message };
    } finally {
      spy.mockRestore();
    }
  }

  it('the doubling stops at 10 s a wait: retries 10 sends 11 requests, not 7 (250 · 2^6 is past 10 s)', async () => {
    const { waits, message } = await waitsAgainstBusy(10);
    expect(waits).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
    expect(message).toMatch(/was answered 503 \(after 11 attempts\)$/);
  });

  it('Retry-After: seconds and a past HTTP date are waited as said; a value neither (garbage Date.parse reads as a past date) means the doubling', async () => {
    for (const [retryAfter, wait] of [['0', 0], [' 2 ', 2000], ['Thu, 01 Jan 1970 00:00:00 GMT', 0], ['-5', 250], ['soon 2', 250], ['1.5', 250], ['garbage', 250], ['Mon, 32 Foo 2025 10:00:00 GMT', 250]] as const) {
      const { waits, message } = await waitsAgainstBusy(1, retryAfter);
      expect(waits, retryAfter).toEqual([wait]);
      expect(message).toMatch(/was answered 503 \(after 2 attempts\)$/);
    }
  });

  it('not sent again: a request or a body that timed out, and a body too long to hold (a RangeError of ours, not the network)', async () => {
    const { fetch: silent, times } = fetchThen(() => new Promise<Response>(() => undefined));
    const timingOut = await httpRangeSource('http://example.test/m', {
      fetch: ((input: unknown, init?: RequestInit) =>
        (init?.headers as Record<string, string>).Range === 'bytes=0-7' ? silent(input as string, init) : new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error)))) as typeof fetch,
      responseTimeoutMs: 50,
    });
    await expect(timingOut.read(8, 10)).rejects.toThrow(/failed: no answer within 50 ms$/);
    expect(times).toHaveLength(0);
    // A body stalled past responseTimeoutMs, whose fetch errors it with a TypeError once aborted (as a
    // network cut would read): the timeout is what ended it, not sent again.
    let bodies = 0;
    const stalling = await httpRangeSource('http://example.test/m', {
      fetch: ((input: unknown, init?: RequestInit) => {
        if ((init?.headers as Record<string, string>).Range === 'bytes=0-7') return silent(input as string, init);
        bodies++;
        const body = new ReadableStream<Uint8Array>({ start: (stream) => init?.signal?.addEventListener('abort', () => stream.error(new TypeError('terminated'))) });
        return Promise.resolve(new Response(body, { status: 206, headers: { 'Content-Range': `bytes 8-17/${v1.byteLength}` } }));
      }) as typeof fetch,
      responseTimeoutMs: 50,
    });
    await expect(stalling.read(8, 10)).rejects.toThrow(/failed: no bytes of the body came within 50 ms$/);
    expect(bodies).toBe(1);
    let sent = 0;
    const huge = 2 ** 50;
    const tooLong = await httpRangeSource('http://example.test/m', {
      fetch: ((_input: unknown, init?: RequestInit) => {
        const [first, last] = (/^bytes=(\d+)-(\d+)$/.exec((init?.headers as Record<string, string>).Range ?? '') as RegExpExecArray).slice(1).map(Number) as [number, number];
        sent++;
        return Promise.resolve(new Response(first === 0 ? v1.slice(0, 8) : 'x', { status: 206, headers: { 'Content-Range': `bytes ${first}-${last}/${huge}` } }));
      }) as typeof fetch,
    });
    await expect(tooLong.read(8, 2 ** 40)).rejects.toThrow(/^http:\/\/example\.test\/m: reading bytes 8-\d+ failed: .*(length|allocation)/i);
    expect(sent).toBe(2);
  });

  it('responseTimeoutMs left out waits 30 000 ms for an answer, as HttpRangeSourceOptions says', async () => {
    const { fetch: silent } = fetchThen(() => new Promise<Response>(() => undefined));
    const source = await httpRangeSource('http://example.test/m', {
      fetch: ((input: unknown, init?: RequestInit) =>
        (init?.headers as Record<string, string>).Range === 'bytes=0-7' ? silent(input as string, init) : new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error)))) as typeof fetch,
    });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let outcome: unknown = null;
      const reading = source.read(8, 10).then(
        () => (outcome = 'resolved'),
        (error: unknown) => (outcome = error),
      );
      for (let turn = 0; turn < 100 && vi.getTimerCount() === 0; turn++) await Promise.resolve();
      await vi.advanceTimersByTimeAsync(29_999);
      expect(outcome).toBeNull();
      await vi.advanceTimersByTimeAsync(1);
      await reading;
      expect(String(outcome)).toMatch(/failed: no answer within 30000 ms$/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an answer that is sent again: its body cancelled, no listener left on the signal, no timer left after an abort during the wait', async () => {
    let cancelled = 0;
    const { fetch: busy } = fetchThen(() => Promise.resolve(new Response(new ReadableStream({ cancel: () => void cancelled++ }), { status: 503 })));
    const controller = new AbortController();
    const source = await httpRangeSource('http://example.test/m', { fetch: busy, retries: 0, signal: controller.signal, responseTimeoutMs: Infinity });
    await expect(source.read(8, 10)).rejects.toThrow(/was answered 503$/);
    expect(cancelled).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const waiting = await httpRangeSource('http://example.test/m', { fetch: busy, signal: controller.signal, responseTimeoutMs: Infinity });
      const reading = waiting.read(8, 10);
      for (let turn = 0; turn < 100 && vi.getTimerCount() === 0; turn++) await Promise.resolve();
      expect(vi.getTimerCount()).toBe(1);
      controller.abort(new Error('user left the page'));
      await expect(reading).rejects.toThrow(/failed: user left the page$/);
      // The wait's timer cleared: none keeps Node alive for the rest of its 250 ms.
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a signal aborted as the failed request ends (by its own fetch): no wait is begun', async () => {
    const controller = new AbortController();
    const { fetch: busy } = fetchThen(() => {
      controller.abort(new Error('stopped'));
      return Promise.resolve(new Response(null, { status: 503, headers: { 'Retry-After': '5' } }));
    });
    const source = await httpRangeSource('http://example.test/m', { fetch: busy, signal: controller.signal, responseTimeoutMs: Infinity });
    const started = Date.now();
    await expect(withinMs(source.read(8, 10), 4500)).rejects.toThrow(/failed: stopped$/);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('a 206 without a body for a non-empty range is refused as holding 0 bytes, not read as zeros', async () => {
    const { fetch: empty, times } = fetchThen(() => Promise.resolve(new Response(null, { status: 206, headers: { 'Content-Range': `bytes 8-17/${v1.byteLength}` } })));
    const source = await httpRangeSource('http://example.test/m', { fetch: empty, responseTimeoutMs: Infinity });
    await expect(source.read(8, 10)).rejects.toThrow(/^http:\/\/example\.test\/m: asked for 10 bytes at 8, the response held 0$/);
    expect(times).toHaveLength(1); // not sent again
  });

  it('refuses a Content-Range whose total is past 2^53 (no exact byte length), before any read', async () => {
    const huge = '99999999999999999999';
    const tooLarge = ((_input: unknown, init?: RequestInit) => {
      const last = Number((/^bytes=0-(\d+)$/.exec((init?.headers as Record<string, string>).Range ?? '') as RegExpExecArray)[1]);
      return Promise.resolve(new Response(v1.slice(0, last + 1), { status: 206, headers: { 'Content-Range': `bytes 0-${last}/${huge}` } }));
    }) as typeof fetch;
    await expect(httpRangeSource('http://example.test/m', { fetch: tooLarge })).rejects.toThrow(
      new RegExp(`: the response's Content-Range "bytes 0-7/${huge}" is not one range of a resource of known size \\(bytes FIRST-LAST/TOTAL\\)$`),
    );
  });

  it('refuses a retries option that is not an integer from 0 to 10', async () => {
    for (const retries of [-1, 1.5, 11, Number.NaN, '2']) {
      await expect(httpRangeSource('http://example.test/m', { fetch: fetchThen(() => Promise.reject(new Error('unused'))).fetch, retries: retries as number })).rejects.toThrow(
        /^httpRangeSource: retries must be an integer from 0 to 10, got /,
      );
    }
  });
});

describe('httpRangeSource: requests waiting for one of its 6 slots', () => {
  /**
   * A fetch that answers each request (from `v1`, or with `status`) only when `answer` is called, and
   * records what was sent; an abort of its signal rejects it with the signal's reason, as fetch does
   * (unless `heedsAbort` is false: an options.fetch may ignore it).
   */
  function heldFetch(heedsAbort = true): { fetch: typeof fetch; sent: number[]; answer(failing?: boolean, status?: number): void } {
    const held: { first: number; last: number; resolve: (response: Response) => void; reject: (error: Error) => void }[] = [];
    const sent: number[] = [];
    const fetchHeld = ((_input: unknown, init?: RequestInit) => {
      const signal = heedsAbort ? (init?.signal ?? undefined) : undefined;
      if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
      const [first, last] = (/^bytes=(\d+)-(\d+)$/.exec((init?.headers as Record<string, string>).Range ?? '') as RegExpExecArray).slice(1).map(Number) as [number, number];
      const end = Math.min(last, v1.byteLength - 1);
      if (first === 0) return Promise.resolve(new Response(v1.slice(0, end + 1), { status: 206, headers: { 'Content-Range': `bytes 0-${end}/${v1.byteLength}` } }));
      sent.push(first);
      return new Promise<Response>((resolve, reject) => {
        held.push({ first, last: end, resolve, reject });
        signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      });
    }) as typeof fetch;
    const answer = (failing = false, status = 206): void => {
      const request = held.shift() as (typeof held)[number];
      if (failing) return request.reject(new Error('connection reset'));
      const body = v1.slice(request.first, request.last + 1);
      request.resolve(new Response(body, { status, headers: { 'Content-Range': `bytes ${request.first}-${request.last}/${v1.byteLength}` } }));
    };
    return { fetch: fetchHeld, sent, answer };
  }
  const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

  it('are sent in the order they were made, each as a slot frees (a failed request frees its slot too)', async () => {
    const { fetch: fetchHeld, sent, answer } = heldFetch();
    // retries: 0: a failed request ends here, its slot freed at once (with retries it would be sent again).
    const source = await httpRangeSource('http://example.test/m', { fetch: fetchHeld, retries: 0 });
    const offsets = Array.from({ length: 14 }, (_, i) => 8 + 10 * i);
    const reads = Promise.allSettled(offsets.map((offset) => source.read(offset, 10)));
    await settle();
    expect(sent).toEqual(offsets.slice(0, 6));
    for (let done = 1; done <= 8; done++) {
      answer(done % 3 === 0);
      for (let i = 0; i < 5; i++) await settle();
      // One sent for each ended, the longest-waiting first (not the newest: it could wait forever behind later reads).
      expect(sent).toEqual(offsets.slice(0, 6 + done));
    }
    for (let left = 6; left > 0; left--) {
      answer();
      await settle();
    }
    const results = await reads;
    expect(results.map((result, i) => (result.status === 'fulfilled' ? Array.from(result.value).every((byte, j) => byte === v1[(offsets[i] as number) + j]) : (result.reason as Error).message.replace(/^.*: /, '')))).toEqual(
      offsets.map((_, i) => (i < 8 && (i + 1) % 3 === 0 ? 'connection reset' : true)),
    );
  });

  it('an abort rejects every one, in flight and waiting, with its reason at once; a signal aborted before the call, the source', async () => {
    const { fetch: fetchHeld, sent } = heldFetch();
    const controller = new AbortController();
    const source = await httpRangeSource('http://example.test/m', { fetch: fetchHeld, signal: controller.signal });
    const offsets = Array.from({ length: 14 }, (_, i) => 8 + 10 * i);
    let settled = false;
    const reads = Promise.allSettled(offsets.map((offset) => source.read(offset, 10))).finally(() => (settled = true));
    await settle();
    expect(sent).toEqual(offsets.slice(0, 6));
    const reason = new Error('user left the page');
    controller.abort(reason);
    // Event-loop turns, not time: none of the 6 in flight is answered, none of the 8 waiting sent.
    for (let i = 0; i < 5 && !settled; i++) await settle();
    expect(settled).toBe(true);
    expect((await reads).map((result) => (result.status === 'rejected' ? [(result.reason as Error).message.replace(/^.*: /, ''), (result.reason as Error).cause] : 'read'))).toEqual(
      offsets.map(() => ['user left the page', reason]),
    );
    expect(sent).toEqual(offsets.slice(0, 6));
    await expect(source.read(8, 10)).rejects.toThrow(/bytes 8-17 failed: user left the page$/);
    // A fetch that ignores its signal keeps its 6 slots: a read made after the abort is refused at once, not queued behind them.
    const later = new AbortController();
    const deaf = await httpRangeSource('http://example.test/m', { fetch: heldFetch(false).fetch, signal: later.signal });
    for (let i = 0; i < 6; i++) void deaf.read(8 + 10 * i, 10).catch(() => undefined);
    await settle();
    later.abort(reason);
    await expect(withinMs(deaf.read(100, 10), 5000)).rejects.toThrow(/bytes 100-109 failed: user left the page$/);
    // Aborted before httpRangeSource is called: the length field is not fetched either.
    const early = heldFetch();
    await expect(httpRangeSource('http://example.test/m', { fetch: early.fetch, signal: controller.signal })).rejects.toThrow(/: the request for bytes 0-7 failed: user left the page$/);
  });

  it("leave no listener on the caller's signal once they end (a long-lived signal shared by 12 sources: no MaxListenersExceededWarning)", async () => {
    const controller = new AbortController();
    for (let made = 0; made < 12; made++) {
      const { fetch: fetchHeld, answer } = heldFetch();
      // retries: 0: the failed ones end (held fetch answers each request once).
      const source = await httpRangeSource('http://example.test/m', { fetch: fetchHeld, signal: controller.signal, retries: 0 });
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      // 6 in flight and 2 waiting, ended every way: answered, failed, refused (404).
      const reads = Promise.allSettled(Array.from({ length: 8 }, (_, i) => source.read(8 + 10 * i, 10)));
      await settle();
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
      for (let left = 8; left > 0; left--) {
        answer(left % 3 === 0, left % 3 === 1 ? 404 : 206);
        for (let i = 0; i < 5; i++) await settle();
      }
      expect((await reads).map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled', 'rejected']);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    }
  });
});
