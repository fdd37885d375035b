import { check, describeValue, LatticeMatmulError } from '../errors.js';
import { checkOptionsObject } from '../quantize/strictOptions.js';
import { asBytes, parseSafetensorsHeaderJson, safetensorsHeaderLength, type SafetensorsHeader, type SafetensorsReadOptions } from './safetensors.js';

/*
 * Random access to the bytes of a file that need not be in memory: an ArrayBuffer, a Blob or File (a
 * page's <input type="file">, `fetch(url).then((r) => r.blob())` is whole, but Node's
 * `fs.openAsBlob` is not), or an HTTP resource read by byte ranges. The container reader
 * (`openQuantizedContainer`) reads a header and then one matrix's tensors at a time from one, so a
 * page can load a model layer by layer. Browser-safe.
 */

/**
 * Bytes read on demand: `read(offset, length)` resolves to exactly `length` new bytes from `offset`
 * (within `byteLength`), or rejects.
 *
 * @example
 * const source = await httpRangeSource('/models/llama.lmq.safetensors');
 * const container = await openQuantizedContainer(source);
 */
export interface ByteSource {
  /** Names the source in messages (a file name, a URL). */
  readonly name: string;
  /** The total size in bytes. */
  readonly byteLength: number;
  /** Resolves to exactly `length` new bytes from `offset` (within `byteLength`), or rejects. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Checks a read's range against the source (offset and length non-negative integers, within byteLength). */
function checkRange(source: ByteSource, offset: number, length: number): void {
  check(
    Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= source.byteLength,
    () => `${source.name}: cannot read ${describeValue(length)} bytes at ${describeValue(offset)} of ${source.byteLength}`,
  );
}

/** A source's name goes into every message about it: a string, or messages would throw TypeErrors (a symbol) or print "[object Object]". */
function checkSourceName(name: unknown, what: string): void {
  check(typeof name === 'string', () => `${what}: the name must be a string, got ${describeValue(name)}`);
}

/**
 * A source over bytes already in memory (a copy is made per read, so the result may be kept or
 * transferred).
 *
 * @example
 * const container = await openQuantizedContainer(bytesSource(await (await fetch(url)).arrayBuffer(), url));
 */
export function bytesSource(bytes: ArrayBuffer | Uint8Array, name = 'bytes in memory'): ByteSource {
  check(bytes instanceof ArrayBuffer || bytes instanceof Uint8Array, () => `bytesSource needs an ArrayBuffer or a Uint8Array, got ${describeValue(bytes)}`);
  checkSourceName(name, 'bytesSource');
  const view = asBytes(bytes, `bytesSource (${name})`);
  const source: ByteSource = {
    name,
    byteLength: view.byteLength,
    read: async (offset, length) => {
      checkRange(source, offset, length);
      return view.slice(offset, offset + length);
    },
  };
  return source;
}

/**
 * A source over a Blob or File: each read is `blob.slice(…).arrayBuffer()`, so only the bytes asked
 * for are loaded. In Node, prefer the file readers (openQuantizedContainerFile): Node 20's
 * `fs.openAsBlob` reports the size of a file past 4 GiB modulo 2^32 (5,000,024,840 bytes as
 * 705,057,544), which the reader then refuses as a truncated file.
 *
 * @example
 * input.onchange = async () => {
 *   const container = await openQuantizedContainer(blobSource(input.files[0]));
 * };
 */
export function blobSource(blob: Blob, name?: string): ByteSource {
  check(typeof Blob !== 'undefined' && blob instanceof Blob, () => `blobSource needs a Blob or File, got ${describeValue(blob)}`);
  if (name !== undefined) checkSourceName(name, 'blobSource');
  const fileName = (blob as Partial<File>).name;
  const source: ByteSource = {
    name: name ?? (typeof fileName === 'string' && fileName.length > 0 ? JSON.stringify(fileName) : `a blob of ${blob.size} bytes`),
    byteLength: blob.size,
    read: async (offset, length) => {
      checkRange(source, offset, length);
      let buffer: ArrayBuffer;
      try {
        buffer = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (error) {
        // A File read from disk fails (NotReadableError) once the file has changed or gone since it was picked.
        const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        throw new LatticeMatmulError(`${source.name}: reading ${length} bytes at ${offset} failed (${why}); did the file change or go since it was opened?`, {
          cause: error,
        });
      }
      const bytes = new Uint8Array(buffer);
      check(bytes.byteLength === length, () => `${source.name}: read ${bytes.byteLength} bytes at ${offset} where ${length} were asked for; did the file change?`);
      return bytes;
    },
  };
  return source;
}

/** Options of {@link httpRangeSource}. */
export interface HttpRangeSourceOptions {
  /** The fetch to use (default: the global one). */
  readonly fetch?: typeof fetch;
  /** Headers sent with every request (an Authorization header, for one). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts every request made through the source, now and later. */
  readonly signal?: AbortSignal;
  /**
   * How long a request may wait for the server's answer (its status and headers), and then for each
   * next piece of its body, in milliseconds: default 30 000; `Infinity` (or more than 2^31 − 1, the
   * longest a timer waits) waits forever. A slow body that keeps coming is read to its end.
   */
  readonly responseTimeoutMs?: number;
  /**
   * How many times a request that failed on the way is sent again (an integer 0…10; default 2): after
   * an answer 408, 429, 500, 502, 503 or 504, or a network failure before or during the body once the
   * server has answered the source (the first request's fetch failing is final: a wrong URL or host
   * says so at once). The waits are 250 ms, then 500, 1000, … (doubling, at most 10 s each: retries 10
   * wait about 56 s in all), or the server's Retry-After where it gives one (seconds or an HTTP date;
   * another value: the doubling); a Retry-After beyond 10 s is not waited for. Not sent again: any
   * other answer, a range or length not as asked, a changed resource, a request that timed out
   * (`responseTimeoutMs` already waited), an abort. 0: every failure is final.
   */
  readonly retries?: number;
}

const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
const DEFAULT_RETRIES = 2;
const MAX_RETRIES = 10;
/** The first wait before a request is sent again; each next one doubles. */
const FIRST_RETRY_WAIT_MS = 250;
/** The longest wait before a request is sent again: the doubling stops there, and a server whose Retry-After asks for longer is down for now (refused). */
const MAX_RETRY_WAIT_MS = 10_000;
/** Answers that say "try again": timeout, too many requests, and a server or gateway failing for now. */
const RETRIED_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/**
 * Errors of one request that another may not meet (`RETRIED_STATUSES`, a network failure), with the
 * wait the server asked for in ms (Retry-After), or undefined.
 */
const transientFailures = new WeakMap<Error, number | undefined>();

/** Retry-After in ms (delta-seconds, or an HTTP date), or undefined when absent or unreadable. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // A date only where it has an HTTP date's time of day (hh:mm:ss, in each of its three forms):
  // Date.parse reads garbage as dates too ('-5', 'soon 2': past ones), a wait of 0 instead of the doubling.
  if (!/\b\d\d:\d\d:\d\d\b/.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts (`watch`: the source's watchers of it). */
function pause(ms: number, signal: AbortSignal | undefined, watch: AbortWatch): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) return void reject(signal.reason);
    let unwatch = (): void => undefined;
    const timer = setTimeout(() => {
      unwatch();
      resolve();
    }, ms);
    unwatch = watch(() => {
      clearTimeout(timer);
      unwatch();
      reject(signal?.reason);
    });
  });
}

/** The longest delay setTimeout takes (about 24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Reads the body of `response` into exactly `length` bytes, or returns the count it held instead (a
 * count above `length` is `length + 1`: the reading stops there, so a server that sends more than
 * asked, endlessly even, costs no more memory than the range). `stalled` is called before each wait
 * for the next piece and returns the function that ends that wait's timer.
 */
async function readBody(response: Response, length: number, stalled: () => () => void): Promise<Uint8Array | number> {
  const bytes = new Uint8Array(length);
  if (response.body === null) return length === 0 ? bytes : 0;
  const reader = response.body.getReader();
  let done = 0;
  for (;;) {
    const stop = stalled();
    let piece: ReadableStreamReadResult<Uint8Array>;
    try {
      piece = await reader.read();
    } finally {
      stop();
    }
    if (piece.done) return done === length ? bytes : done;
    if (done + piece.value.byteLength > length) {
      void reader.cancel().catch(() => undefined);
      return length + 1;
    }
    bytes.set(piece.value, done);
    done += piece.value.byteLength;
  }
}

/**
 * Requests one source has in flight at most: a browser opens 6 connections per host over HTTP/1.1
 * and queues the rest, and a queued request's time counted against responseTimeoutMs (its timer
 * starts at fetch()): `Promise.all` over a model's matrices on a slow link was refused as "no answer"
 * from a server that answered every request it got at once. Queued here, a request's timer starts
 * when it is sent. (Other requests to the same host, the page's own or another source's, still share
 * the browser's connections.)
 */
const MAX_REQUESTS_IN_FLIGHT = 6;

/** Registers a function to call when the caller's signal aborts; returns the function that unregisters it. */
type AbortWatch = (onAbort: () => void) => () => void;

/**
 * One listener on `signal` for a whole source, calling every function registered through the returned
 * `watch` that is still registered: a listener per request went past Node's 10 per signal
 * (MaxListenersExceededWarning on the app's console) once more than 10 requests of one source were in
 * flight or waiting. The listener is there only while something is registered: an app's long-lived
 * signal shared by its sources held one per source ever made (the warning again at the 11th).
 * An already aborted signal calls nothing: callers check `aborted` first.
 */
function abortWatchers(signal: AbortSignal | undefined): AbortWatch {
  if (signal === undefined) return () => () => undefined;
  const watchers = new Set<() => void>();
  const aborted = (): void => {
    for (const onAbort of [...watchers]) onAbort();
  };
  return (onAbort) => {
    if (watchers.size === 0) signal.addEventListener('abort', aborted, { once: true });
    watchers.add(onAbort);
    return () => {
      if (watchers.delete(onAbort) && watchers.size === 0) signal.removeEventListener('abort', aborted);
    };
  };
}

/**
 * A counter of `limit` slots: `acquire` resolves once one is free (in call order), or rejects with
 * `signal`'s reason once it aborts while waiting (`watch`: the source's watchers of that signal);
 * `release` frees one.
 */
function requestSlots(limit: number): { acquire(signal: AbortSignal | undefined, watch: AbortWatch): Promise<void>; release(): void } {
  let active = 0;
  const waiting: (() => void)[] = [];
  return {
    acquire: (signal, watch) => {
      if (active < limit) {
        active++;
        return Promise.resolve();
      }
      return new Promise<void>((resolve, reject) => {
        let unwatch = (): void => undefined;
        const onAbort = (): void => {
          const at = waiting.indexOf(granted);
          if (at >= 0) waiting.splice(at, 1);
          reject(signal?.reason);
        };
        const granted = (): void => {
          unwatch();
          resolve();
        };
        if (signal?.aborted === true) return void reject(signal.reason);
        waiting.push(granted);
        unwatch = watch(onAbort);
      });
    },
    release: () => {
      // The slot passes to the first waiting request, if any.
      const next = waiting.shift();
      if (next === undefined) active--;
      else next();
    },
  };
}

/**
 * The URL as the source's name and its messages show it: without its query and fragment (replaced by
 * "?…") and without credentials, which a signed URL (S3, GCS, a CDN token) or `user:password@`
 * carries and an app's error logs should not.
 */
export function urlForMessages(url: string | URL): string {
  // Tabs and newlines dropped, as URL parsers do anywhere in a URL ("ht\ttp://user:pw@…" is http).
  const text = String(url).replace(/[\t\n\r]/g, '');
  const cut = text.search(/[?#]/);
  const path = cut < 0 ? text : `${text.slice(0, cut)}${text[cut] === '?' ? '?…' : ''}`;
  // Credentials wherever a URL parser finds them: after a scheme-relative "//" too, after leading
  // spaces or controls (which parsers skip), and after "http:" with any number of slashes or
  // backslashes ("http:\\user:pw@host", "http:user:pw@host": the same URL to a parser).
  return path.replace(/^([\0-\x20]*(?:[a-z][a-z0-9+.-]*:[\\/]*|[\\/]{2}))[^/\\?#]*@/i, '$1');
}

/** `bytes FIRST-LAST/TOTAL` of a Content-Range header, or null. */
function contentRange(value: string | null): { first: number; last: number; total: number } | null {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value?.trim() ?? '');
  if (match === null) return null;
  const [first, last, total] = [match[1], match[2], match[3]].map(Number) as [number, number, number];
  return Number.isSafeInteger(total) ? { first, last, total } : null;
}

/** The first bytes a source reads: the safetensors length field. */
const FIRST_BYTES = 8;

/**
 * A source over an HTTP(S) resource read by byte ranges (`Range: bytes=a-b`, answered with 206
 * Partial Content), so a page reads a container's header and then one matrix at a time instead of
 * the whole file. Resolves once a first request (the 8-byte length field, kept) has given the size.
 * Requests bypass the browser's HTTP cache (`cache: 'no-store'`): a file the page fetched whole, and
 * that the server compressed, would otherwise be answered from the cache with compressed ranges.
 * Refuses, by name: a server that ignores ranges (it would send the whole file each time; an HTML page
 * sent for a missing file is named as such), a compressed response (its ranges are of the compressed
 * bytes), a cross-origin response that hides Content-Range (the server must send
 * `Access-Control-Expose-Headers: Content-Range`), a resource that changes while it is read (another
 * ETag or size), another range than asked or a body of another length, an error status, and a server
 * that does not answer within `responseTimeoutMs` or whose body stops coming for that long; with the
 * global fetch, a URL with credentials (`user:password@`, which it refuses). At most 6
 * requests of one source are in flight (a browser's connections per host); later ones wait for one
 * to end before they are sent, their timer not yet running. A request that failed on the way (an
 * answer 408, 429, 500, 502, 503 or 504; a network failure once the server has answered the source)
 * is sent again up to `retries` times.
 *
 * @example
 * const source = await httpRangeSource('https://example.com/model.lmq.safetensors');
 * const container = await openQuantizedContainer(source);
 * const q = await container.read('model.layers.0.self_attn.q_proj.weight');
 */
export async function httpRangeSource(url: string | URL, options: HttpRangeSourceOptions = {}): Promise<ByteSource> {
  check(typeof url === 'string' || url instanceof URL, () => `httpRangeSource needs a URL, got ${describeValue(url)}`);
  // Its keys too: a misspelt { retry: 0 } or { timeoutMs: 1000 } was ignored, the default used silently.
  checkOptionsObject(options, ['fetch', 'headers', 'signal', 'responseTimeoutMs', 'retries'], 'httpRangeSource options');
  const fetchRange = options.fetch ?? globalThis.fetch;
  check(typeof fetchRange === 'function', 'httpRangeSource needs fetch (pass options.fetch where there is no global one)');
  const timeoutMs = options.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS;
  // A number: '500' passed the old `> 0` check and then set no timer at all (Number.isFinite('500') is false).
  check(
    typeof timeoutMs === 'number' && timeoutMs > 0,
    () => `httpRangeSource: responseTimeoutMs must be a positive number of milliseconds (Infinity for none), got ${describeValue(timeoutMs)}`,
  );
  // setTimeout fires at once for a delay past 2^31 − 1 ms: 1e10 refused every request as unanswered.
  const timed = timeoutMs <= MAX_TIMER_MS;
  const retries = options.retries ?? DEFAULT_RETRIES;
  check(
    Number.isInteger(retries) && retries >= 0 && retries <= MAX_RETRIES,
    () => `httpRangeSource: retries must be an integer from 0 to ${MAX_RETRIES}, got ${describeValue(retries)}`,
  );
  const name = urlForMessages(url);
  // Refused here, not by the global fetch (which refuses it always): its refusal quotes the URL whole,
  // credentials and query included, in its message and in the cause an app's logs print
  // ("Request cannot be constructed from a URL that includes credentials: https://user:secret@…").
  // An options.fetch may take them (and send them as a header).
  // As an absolute URL first: "http:user:secret@host/" is one to fetch, a path under an http: base.
  // One that parses neither way is not refused here (fetch names its problem, its text shown as `name`: see `told`).
  const parse = (base?: string): URL | null => {
    try {
      return new URL(String(url), base);
    } catch {
      return null;
    }
  };
  const parsed = parse() ?? parse('http://base.invalid/');
  check(
    options.fetch !== undefined || parsed === null || (parsed.username === '' && parsed.password === ''),
    () => `httpRangeSource: ${name}: a URL with credentials (user:password@) cannot be fetched: send them in options.headers (Authorization)`,
  );
  /** The message of `reason`, where the URL it may quote whole (fetch's "Failed to parse URL from …") is shown as `name`. */
  const told = (reason: unknown): string => {
    const message = reason instanceof Error ? reason.message : String(reason);
    return String(url) === '' ? message : message.split(String(url)).join(name);
  };
  /**
   * `error` as our error's cause, or where its message quotes the URL whole, an Error of that message
   * as `told` gives it: the cause is printed in an app's logs too, and so is the cause's own (Node's
   * "Invalid URL" has the URL as its `input`).
   */
  const causeOf = (error: unknown): unknown => (error instanceof Error && told(error) !== error.message ? new Error(told(error)) : error);
  let etag: string | null = null;
  let total = -1;
  const slots = requestSlots(MAX_REQUESTS_IN_FLIGHT);
  const watch = abortWatchers(options.signal);
  /** Bytes first…last (last clamped to the end of the resource when `clamped`), when a slot is free. */
  const get = async (first: number, last: number, clamped = false): Promise<Uint8Array> => {
    try {
      await slots.acquire(options.signal, watch);
    } catch (reason) {
      throw new LatticeMatmulError(`${name}: the request for bytes ${first}-${last} failed: ${told(reason)}`, { cause: reason });
    }
    try {
      // The slot is kept while waiting to send again: the source's other requests stay queued behind
      // a server that said it is busy.
      for (let attempt = 0; ; attempt++) {
        try {
          return await request(first, last, clamped);
        } catch (error) {
          const asked = error instanceof Error && transientFailures.has(error) ? { wait: transientFailures.get(error) } : null;
          // The doubling stops at MAX_RETRY_WAIT_MS (uncapped, its 7th wait would pass it and be taken for a
          // server asking for longer); only a Retry-After beyond it is refused (below).
          const wait = asked === null || attempt >= retries ? null : (asked.wait ?? Math.min(FIRST_RETRY_WAIT_MS * 2 ** attempt, MAX_RETRY_WAIT_MS));
          if (wait === null || wait > MAX_RETRY_WAIT_MS) {
            // "(after n attempts)" only on a failure that was to be tried again: a later attempt's other
            // refusal (a changed resource) is told as it is.
            if (asked === null || attempt === 0 || !(error instanceof LatticeMatmulError)) throw error;
            throw new LatticeMatmulError(`${error.message} (after ${attempt + 1} attempts)`, { cause: error.cause });
          }
          try {
            await pause(wait, options.signal, watch);
          } catch (reason) {
            throw new LatticeMatmulError(`${name}: the request for bytes ${first}-${last} failed: ${told(reason)}`, { cause: reason });
          }
        }
      }
    } finally {
      slots.release();
    }
  };
  /** A LatticeMatmulError that another request may not meet (`retries`), with the server's Retry-After in ms. */
  const transient = (error: LatticeMatmulError, wait?: number): LatticeMatmulError => {
    transientFailures.set(error, wait);
    return error;
  };
  /** Bytes first…last (last clamped to the end of the resource when `clamped`). */
  const request = async (first: number, last: number, clamped: boolean): Promise<Uint8Array> => {
    // Aborted by the caller's signal, or when no answer came in time (this timer: the status and
    // headers; then `stalled`'s, each next piece of the body).
    const controller = new AbortController();
    const stop = (): void => controller.abort(options.signal?.reason);
    if (options.signal?.aborted === true) stop();
    const unwatch = watch(stop);
    const timer = timed ? setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs) : undefined;
    let response: Response;
    try {
      response = await fetchRange(url, { headers: { ...options.headers, Range: `bytes=${first}-${last}` }, cache: 'no-store', signal: controller.signal });
    } catch (error) {
      unwatch();
      // Aborted by the caller or by the timer: final. Else fetch failed: once the server has answered
      // this source, the network (another try may pass); before, as likely the URL or the host (an
      // invalid or relative URL, a name that does not resolve), said at once.
      const aborted = controller.signal.aborted;
      const reason: unknown = aborted ? controller.signal.reason : error;
      const failure = new LatticeMatmulError(`${name}: the request for bytes ${first}-${last} failed: ${told(reason)}`, { cause: causeOf(error) });
      throw aborted || total < 0 ? failure : transient(failure);
    } finally {
      clearTimeout(timer);
    }
    /** Ends the request with `why`; one the server said to try again (`retried`) may be sent again, after its Retry-After. */
    function refuse(why: string, retried = false): never {
      unwatch();
      void response.body?.cancel().catch(() => undefined);
      const error = new LatticeMatmulError(`${name}: ${why}`);
      throw retried ? transient(error, retryAfterMs(response.headers.get('retry-after'))) : error;
    }
    if (response.status === 200) {
      const html = /^\s*text\/html/i.test(response.headers.get('content-type') ?? '');
      refuse(
        html
          ? 'the server sent an HTML page (200) for a byte range: is the URL right? (a single-page app\'s server answers a missing file with its index.html)'
          : 'the server sent the whole resource (200) for a byte range: it does not serve ranges; fetch the file whole and use readQuantizedContainer',
      );
    }
    if (response.status !== 206) refuse(`the request for bytes ${first}-${last} was answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`, RETRIED_STATUSES.has(response.status));
    const encoding = response.headers.get('content-encoding');
    if (encoding !== null && encoding.trim().toLowerCase() !== 'identity') refuse(`the response is compressed (Content-Encoding: ${encoding}); its byte ranges are not the file's`);
    const rangeHeader = response.headers.get('content-range');
    const range = contentRange(rangeHeader);
    if (rangeHeader === null) refuse('the response has no readable Content-Range header (a server on another origin must send Access-Control-Expose-Headers: Content-Range)');
    // One there but not "bytes FIRST-LAST/TOTAL": an unknown total ("/*"), or several ranges.
    if (range === null) refuse(`the response's Content-Range ${JSON.stringify(rangeHeader.slice(0, 100))} is not one range of a resource of known size (bytes FIRST-LAST/TOTAL)`);
    const tag = response.headers.get('etag');
    if (total >= 0 && (range.total !== total || (etag !== null && tag !== null && tag !== etag))) refuse('the resource changed while it was read (another size or ETag)');
    const expectedLast = clamped ? Math.min(last, range.total - 1) : last;
    if (range.first !== first || range.last !== expectedLast) refuse(`asked for bytes ${first}-${expectedLast}, the server sent ${range.first}-${range.last}`);
    etag ??= tag;
    if (total < 0) total = range.total;
    const length = expectedLast - first + 1;
    // Read piece by piece, not with arrayBuffer(): a body that stops coming (a stalled connection)
    // made the read wait forever, and one longer than asked was held whole before it was refused.
    const stalled = (): (() => void) => {
      if (!timed) return () => undefined;
      const bodyTimer = setTimeout(() => controller.abort(new Error(`no bytes of the body came within ${timeoutMs} ms`)), timeoutMs);
      return () => clearTimeout(bodyTimer);
    };
    let bytes: Uint8Array | number;
    try {
      bytes = await readBody(response, length, stalled);
    } catch (error) {
      const aborted = controller.signal.aborted;
      const reason: unknown = aborted ? controller.signal.reason : error;
      controller.abort(error); // ends the body (and its connection) where the failure was ours: an allocation
      const failure = new LatticeMatmulError(`${name}: reading bytes ${first}-${expectedLast} failed: ${told(reason)}`, { cause: causeOf(error) });
      // A body cut by the network (not by the caller, the timer or a failure of ours) may come whole next time.
      throw !aborted && error instanceof TypeError ? transient(failure) : failure;
    } finally {
      unwatch();
    }
    if (typeof bytes === 'number') {
      const held = bytes > length ? `more than ${length}` : String(bytes);
      throw new LatticeMatmulError(`${name}: asked for ${length} bytes at ${first}, the response held ${held}`);
    }
    return bytes;
  };
  // The length field, which the reader asks for first (a shorter resource comes back whole). Not a
  // one-byte probe: some servers read "bytes=0-0" as the whole file (Vite's).
  const head = await get(0, FIRST_BYTES - 1, true);
  const source: ByteSource = {
    name,
    byteLength: total,
    read: async (offset, length) => {
      checkRange(source, offset, length);
      if (length === 0) return new Uint8Array(0);
      if (offset + length <= head.byteLength) return head.slice(offset, offset + length);
      return get(offset, offset + length - 1);
    },
  };
  return source;
}

/** Runs `body`, prefixing the message of a LatticeMatmulError it throws with `what`. */
export function withContext<T>(what: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    if (error instanceof LatticeMatmulError) throw new LatticeMatmulError(`${what}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * Reads and validates the header of the safetensors file in `source` (its first 8 + N bytes only),
 * exactly as `readSafetensors` does; `what` names the file in messages.
 */
export async function readSafetensorsHeader(source: ByteSource, what: string, options?: SafetensorsReadOptions): Promise<SafetensorsHeader> {
  const fileByteLength = source.byteLength;
  // A source shorter than 8 bytes is refused by safetensorsHeaderLength, with the same message as in memory.
  const first8 = fileByteLength >= 8 ? await source.read(0, 8) : new Uint8Array(8);
  const headerByteLength = withContext(what, () => safetensorsHeaderLength(first8, fileByteLength, options));
  // Bounded by the header limit and by the source's size: the header is part of what is there.
  const headerBytes = await source.read(8, headerByteLength);
  const dataStart = 8 + headerByteLength;
  const dataByteLength = fileByteLength - dataStart;
  const parsed = withContext(what, () => parseSafetensorsHeaderJson(headerBytes, dataByteLength));
  return { headerByteLength, dataStart, dataByteLength, ...parsed };
}

/** Checks that `source` is a ByteSource (a name, a byteLength, a read function). */
export function checkByteSource(source: unknown, what: string): asserts source is ByteSource {
  const candidate = source as Partial<ByteSource> | null;
  check(
    typeof candidate === 'object' && candidate !== null && typeof candidate.name === 'string' && Number.isSafeInteger(candidate.byteLength) && (candidate.byteLength as number) >= 0 && typeof candidate.read === 'function',
    () => `${what} needs a ByteSource ({ name, byteLength, read(offset, length) }: bytesSource, blobSource, httpRangeSource), got ${describeValue(source)}`,
  );
}
