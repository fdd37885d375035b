import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { extract, sourceFiles, type Example } from './docExamples.js';

/*
 * The values that `@example` blocks of src/ state in comments are the values the code gives.
 * (examples.test.ts type-checks every example; this runs the ones that need nothing from the caller.)
 *
 * An example runs when every name it uses is its own, an export of its file, or an export of the
 * package's entry points (src/index.ts, src/node.ts): one that needs the caller's data (`a`, `w`, `x`)
 * or a GPU `device` stops at its first ReferenceError and is left out, as are examples that touch
 * files. In one that runs, a statement followed on its line by a comment that opens with a value —
 *
 *   rotationLength(100);   // 128
 *   float16Bits(1 / 3);    // 0x3555
 *   gamma(3.015);          // ≈ 0.0304, the seed's bound …
 *   hadamardFactors(6144); // { m: 12, pow2: 512 }
 *   tableLayout('full', 49152); // { kind: 'full', tableWords: 11664, … }
 *   checkKnownKeys({ centre: true }, …); // throws: … did you mean 'center'?
 *
 * — is checked: the comment's longest prefix that is a JavaScript literal expression (after `·`, `×`
 * → `*`, `−` → `-`, `^` → `**`) must equal the statement's value (for a `const`, the variable's).
 * A number claim is met within half a unit of its last digit (one unit before a trailing `…`, which
 * marks digits left out; two after `≈`, which also covers a random nonce's spread, as in
 * `productNmse(…) // ≈ 0.009`); `…` in an object or array stands for entries not shown;
 * `Float32Array [1, 2]` and `Float64Array(8) [0.5, …]` name the array's type (and length); a
 * number claimed of an array is its length ("32 words"); an array claimed of a matrix is its data;
 * `x = …` claims a variable of the example after the statement; `throws: a … b` wants an error whose
 * message contains a and then b; a `console.log(p, q)` is checked against the comma-separated claims
 * of its arguments. A comment that opens with prose (`// a random bigint`), or with a value that an
 * operator continues (`// ≈ 0.009 · ‖A‖²`), is no claim.
 */

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

/** Examples that write files or reach the network are not run. */
const SIDE_EFFECTS = /\b(fetch|write\w*File|\w*FileWriter|quantizeModel|leftoverTemporaries|checkSafetensorsFileWritable|open\w*File|open\w*Model|httpRangeSource|requestGpuDevice|requestNodeGpuDevice|nodeGpu)\b/;

/** What a comment claims, or null when it opens with prose. */
type Claim =
  | { readonly kind: 'value'; readonly value: unknown; readonly tolerance: (expected: number) => number; readonly arrayType?: string; readonly arrayLength?: number }
  | { readonly kind: 'throws'; readonly pieces: readonly string[] };

const TYPED = /^(Float32Array|Float64Array|Int32Array|Uint32Array|Uint16Array|Uint8Array|Int8Array)(?:\((\d+)\))?(?:\s+|$)/;
/** What may follow a claimed value: nothing, or words, a colon, a comma, a bracketed remark, `=` and an explanation, a dash. */
const AFTER_VALUE = /^(\s*$|\s*[:,;(—–]|\s+=\s|\s+[^\s*/+\-<>=^%&|?.])/;

const PARTIAL = Symbol('more entries');

function evaluateLiteral(text: string): { ok: true; value: unknown } | { ok: false } {
  if (!/^[\w\s.,:'"[\]{}()*/+\-…<>!=&|?]*$/.test(text.replaceAll(/'[^']*'|"[^"]*"/g, "''"))) return { ok: false };
  const marked = text.replaceAll(/,\s*…\s*(?=[\]}])/g, ', __more: 1').replaceAll(/…\s*,/g, '__more,');
  try {
    const value: unknown = new Function('__more', `'use strict'; return (${marked.replaceAll('__more: 1', '[__more]: 1')});`)(PARTIAL);
    return value === undefined || typeof value === 'function' ? { ok: false } : { ok: true, value };
  } catch {
    return { ok: false };
  }
}

function decimalsOf(text: string): number {
  const m = /^-?\d+\.(\d+)/.exec(text.trim());
  return m ? (m[1] as string).length : 0;
}

function parseClaim(comment: string): Claim | null {
  let text = comment.trim().replaceAll('−', '-').replaceAll('·', ' * ').replaceAll('×', ' * ').replaceAll(/(\d|\))\^(-?\d)/g, '$1 ** $2');
  if (/^throws\b/.test(text)) {
    const rest = text.replace(/^throws\b:?\s*/, '');
    return { kind: 'throws', pieces: rest.split('…').map((p) => p.trim()).filter((p) => p.length > 0) };
  }
  let approx = false;
  if (text.startsWith('≈')) {
    approx = true;
    text = text.slice(1).trim();
  }
  let arrayType: string | undefined;
  let arrayLength: number | undefined;
  const typed = TYPED.exec(text);
  if (typed) {
    arrayType = typed[1];
    arrayLength = typed[2] === undefined ? undefined : Number(typed[2]);
    text = text.slice(typed[0].length);
    if (!text.startsWith('[')) {
      if (arrayLength === undefined) return null;
      return { kind: 'value', value: undefined, tolerance: () => 0, arrayType, arrayLength };
    }
  }
  // The longest prefix that is a value, cut before a space, colon, comma or bracket.
  for (let end = text.length; end > 0; end--) {
    if (end < text.length && !/[\s:,(—–]/.test(text[end] as string)) continue;
    const prefix = text.slice(0, end).trim();
    if (prefix.length === 0) continue;
    const truncated = /^-?\d+\.\d+…$/.test(prefix);
    const result = evaluateLiteral(truncated ? prefix.slice(0, -1) : prefix);
    if (!result.ok) continue;
    if (!AFTER_VALUE.test(text.slice(end))) return null;
    const places = decimalsOf(prefix);
    const isWhole = /^-?\d+$/.test(prefix) || !/^-?[\d.]+…?$/.test(prefix);
    const tolerance = (expected: number): number =>
      isWhole && !approx ? 1e-9 * Math.max(1, Math.abs(expected)) : (approx ? 2 : truncated ? 1 : 0.5) * 10 ** -places + 1e-12 * Math.abs(expected);
    return { kind: 'value', value: result.value, tolerance, ...(arrayType === undefined ? {} : { arrayType }), ...(arrayLength === undefined ? {} : { arrayLength }) };
  }
  return null;
}

/** Whether `actual` meets `expected` (a claim's value): numbers within tolerance, `…` entries free. */
function matches(actual: unknown, expected: unknown, tolerance: (expected: number) => number): boolean {
  if (typeof expected === 'number' && typeof actual === 'number') return Math.abs(actual - expected) <= tolerance(expected) || actual === expected;
  if (typeof expected === 'number' && typeof actual === 'bigint') return Number(actual) === expected;
  if (Array.isArray(expected)) {
    const list = ArrayBuffer.isView(actual) ? Array.from(actual as unknown as ArrayLike<unknown>) : Array.isArray(actual) ? actual : null;
    if (list === null) return false;
    const gap = expected.indexOf(PARTIAL);
    if (gap < 0) return list.length === expected.length && expected.every((e, i) => matches(list[i], e, tolerance));
    const head = expected.slice(0, gap);
    const tail = expected.slice(gap + 1);
    return (
      list.length >= head.length + tail.length &&
      head.every((e, i) => matches(list[i], e, tolerance)) &&
      tail.every((e, i) => matches(list[list.length - tail.length + i], e, tolerance))
    );
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null) return false;
    const partial = Object.getOwnPropertySymbols(expected).includes(PARTIAL);
    const want = Object.entries(expected);
    const have = Object.entries(actual).filter(([, v]) => v !== undefined);
    if (!partial && have.length !== want.length) return false;
    return want.every(([k, v]) => k in actual && matches((actual as Record<string, unknown>)[k], v, tolerance));
  }
  return isDeepStrictEqual(actual, expected);
}

/** null when the claim holds, 'prose' when a number was said of an object ("512 elements, passes …"), else what differs. */
function check(actual: unknown, claim: Claim, where: string): string | null | 'prose' {
  if (claim.kind === 'throws') return `${where}: returned ${String(actual)}, the comment says it throws`;
  const show = (v: unknown): string =>
    typeof v === 'bigint'
      ? `${v}n`
      : (JSON.stringify(ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v, (_, e: unknown) => (e === PARTIAL ? '…' : e)) ?? String(v));
  if (claim.arrayType !== undefined) {
    const name = (actual as object | null)?.constructor?.name;
    if (name !== claim.arrayType) return `${where}: a ${name}, the comment says ${claim.arrayType}`;
    if (claim.arrayLength !== undefined && (actual as ArrayLike<unknown>).length !== claim.arrayLength) {
      return `${where}: ${(actual as ArrayLike<unknown>).length} entries, the comment says ${claim.arrayLength}`;
    }
    if (claim.value === undefined) return null;
  }
  let value = actual;
  const arrayLike = Array.isArray(actual) || ArrayBuffer.isView(actual);
  if (typeof claim.value === 'number' && arrayLike) value = (actual as ArrayLike<unknown>).length; // "32 words"
  else if (typeof claim.value === 'number' && typeof actual === 'object' && actual !== null && typeof actual !== 'bigint') return 'prose';
  if (Array.isArray(claim.value) && !arrayLike && typeof actual === 'object' && actual !== null && 'data' in actual) value = (actual as { data: unknown }).data; // a matrix's entries
  return matches(value, claim.value, claim.tolerance) ? null : `${where}: ${show(value)}, the comment says ${show(claim.value)}`;
}

interface Checked {
  readonly failures: string[];
  readonly checked: string[];
  readonly skipped: string[];
}

/** The example as code to run: claim comments turned into checks. */
function instrument(example: Example, where: (line: number) => string): { code: string; claims: number } {
  const text = example.body.map((l) => l.replace(/^import\b.*$/, '').replace(/^export\s+/, '')).join('\n');
  const file = ts.createSourceFile('example.ts', text, ts.ScriptTarget.ES2022, true);
  const declared = new Set<string>();
  const edits: { start: number; end: number; text: string }[] = [];
  let claims = 0;
  const lineOf = (pos: number): number => file.getLineAndCharacterOfPosition(pos).line;
  const lines = text.split('\n');
  /** The comment after a statement on its line, with the comment-only lines that continue it below. */
  const commentAfter = (statement: ts.Statement): string | null => {
    const ranges = ts.getTrailingCommentRanges(text, statement.end);
    const first = ranges?.find((r) => r.kind === ts.SyntaxKind.SingleLineCommentTrivia && lineOf(r.pos) === lineOf(statement.end));
    if (first === undefined) return null;
    const column = file.getLineAndCharacterOfPosition(first.pos).character;
    const parts = [text.slice(first.pos + 2, first.end)];
    for (let l = lineOf(first.pos) + 1; l < lines.length; l++) {
      const next = lines[l] as string;
      if (!/^\s*\/\//.test(next) || next.indexOf('//') !== column) break;
      parts.push(next.slice(column + 2));
    }
    return parts.join(' ');
  };
  for (const statement of file.statements) {
    if (ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) declared.add(d.name.text);
    }
    const comment = commentAfter(statement);
    if (comment === null) continue;
    const assigned = /^\s*([A-Za-z_]\w*) = (.*)$/.exec(comment);
    const claimText = assigned && declared.has(assigned[1] as string) ? (assigned[2] as string) : comment;
    const claim = parseClaim(claimText);
    if (claim === null) continue;
    const at = JSON.stringify(where(lineOf(statement.getStart())));
    const claimJson = JSON.stringify(claimText);
    if (assigned && declared.has(assigned[1] as string)) {
      edits.push({ start: statement.end, end: statement.end, text: ` __check(() => ${assigned[1]}, ${claimJson}, ${at});` });
    } else if (ts.isExpressionStatement(statement)) {
      const e = statement.expression;
      const isLog = ts.isCallExpression(e) && e.expression.getText(file) === 'console.log';
      const thunk = isLog ? `() => [${(e as ts.CallExpression).arguments.map((a) => a.getText(file)).join(', ')}]` : `() => (${e.getText(file)})`;
      edits.push({ start: statement.getStart(), end: statement.end, text: `__check(${thunk}, ${claimJson}, ${at}, ${isLog});` });
    } else if (ts.isVariableStatement(statement) && statement.declarationList.declarations.length === 1) {
      const name = statement.declarationList.declarations[0]?.name;
      if (name === undefined || !ts.isIdentifier(name)) continue;
      edits.push({ start: statement.end, end: statement.end, text: ` __check(() => ${name.text}, ${claimJson}, ${at});` });
    } else continue;
    claims++;
  }
  let out = text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  const js = ts.transpileModule(out, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText;
  return { code: js.replace(/^export \{\};\s*$/m, ''), claims };
}

/** Splits a console.log comment into its arguments' claims (commas outside brackets). */
function splitClaims(comment: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < comment.length; i++) {
    const c = comment[i] as string;
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (c === ',' && depth === 0) {
      out.push(comment.slice(start, i));
      start = i + 1;
    }
  }
  out.push(comment.slice(start));
  return out.map((s) => s.trim());
}

async function runExamples(): Promise<Checked> {
  const files = sourceFiles(src);
  const entries = await Promise.all(['index', 'node'].map((n) => import(join(src, `${n}.ts`)) as Promise<Record<string, unknown>>));
  const result: Checked = { failures: [], checked: [], skipped: [] };
  for (const file of files) {
    const examples = extract(file, readFileSync(file, 'utf8')).filter((e) => e.body.some((l) => /\/\/\s*\S/.test(l)) && !SIDE_EFFECTS.test(e.body.join('\n')));
    if (examples.length === 0) continue;
    const own = (await import(file)) as Record<string, unknown>;
    const scope: Record<string, unknown> = Object.assign({}, ...entries, own);
    for (const example of examples) {
      const name = `${relative(root, file)}:${example.line}`;
      const where = (line: number): string => `${relative(root, file)}:${example.line + 1 + line}`;
      const { code, claims } = instrument(example, where);
      if (claims === 0) continue;
      const checks: string[] = [];
      const failures: string[] = [];
      const checkClaim = (thunk: () => unknown, comment: string, at: string, isLog = false): void => {
        if (isLog) {
          const values = thunk() as unknown[];
          splitClaims(comment).forEach((piece, i) => {
            const claim = parseClaim(piece);
            if (claim === null || i >= values.length) return;
            const failure = check(values[i], claim, `${at} (argument ${i + 1})`);
            if (failure !== 'prose') checks.push(at);
            if (failure !== null && failure !== 'prose') failures.push(failure);
          });
          return;
        }
        const claim = parseClaim(comment) as Claim;
        let value: unknown;
        try {
          value = thunk();
        } catch (error) {
          if (error instanceof ReferenceError) throw error;
          const message = error instanceof Error ? error.message : String(error);
          checks.push(at);
          if (claim.kind === 'throws') {
            let from = 0;
            for (const piece of claim.pieces) {
              const at2 = message.indexOf(piece, from);
              if (at2 < 0) {
                failures.push(`${at}: threw "${message}", which lacks "${piece}"`);
                return;
              }
              from = at2 + piece.length;
            }
            return;
          }
          // A claimed message ("dotPath must be …") is met by the error's message.
          if (typeof claim.value === 'string' && message === claim.value) return;
          failures.push(`${at}: threw "${message}", the comment says ${JSON.stringify(claim.value)}`);
          return;
        }
        const failure = check(value, claim, at);
        if (failure !== 'prose') checks.push(at);
        if (failure !== null && failure !== 'prose') failures.push(failure);
      };
      const names = Object.keys(scope).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k));
      try {
        const run = new Function(...names, '__check', `return (async () => {\n${code}\n})();`) as (...args: unknown[]) => Promise<void>;
        await run(...names.map((n) => scope[n]), checkClaim);
      } catch (error) {
        if (error instanceof ReferenceError) {
          result.skipped.push(`${name} (${error.message})`);
          continue;
        }
        result.failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      result.checked.push(...checks);
      result.failures.push(...failures);
    }
  }
  return result;
}

describe('doc comment examples: stated values', () => {
  it('every value an @example states in a comment is what its code gives', async () => {
    const { failures, checked, skipped } = await runExamples();
    console.log(`example values checked: ${checked.length}; examples that need the caller's data or a GPU, not run: ${skipped.length}`);
    expect(failures, failures.join('\n')).toEqual([]);
    expect(checked.length).toBeGreaterThan(100);
  }, 60_000);

  it('reads the comment forms it documents', () => {
    const value = (c: string): unknown => {
      const claim = parseClaim(c);
      return claim?.kind === 'value' ? claim.value : claim;
    };
    expect(value('128')).toBe(128);
    expect(value('0x3555')).toBe(0x3555);
    expect(value("'leaders' (the default on every device)")).toBe('leaders');
    expect(value('768 = 12·64')).toBe(768);
    expect(value('32 · 128 · 4096 + 12 · 4096 + 8')).toBe(32 * 128 * 4096 + 12 * 4096 + 8);
    expect(value('2^−4 (all components active)')).toBe(2 ** -4);
    expect(value('a random bigint')).toBeNull();
    expect(value('≈ 0.009 · ‖A‖²‖B‖²/n')).toBeNull(); // a formula, not a value
    expect(value('0..9')).toBeNull();
    expect(value('N(0, 1)')).toBeNull();
    expect(parseClaim('throws: … did you mean \'center\'?')).toEqual({ kind: 'throws', pieces: ["did you mean 'center'?"] });
    const gamma = parseClaim('≈ 0.0304, the seed\'s bound') as Claim & { kind: 'value' };
    expect(matches(0.03037, gamma.value, gamma.tolerance)).toBe(true);
    expect(matches(0.0316, gamma.value, gamma.tolerance)).toBe(false);
    const exact = parseClaim('0.2546') as Claim & { kind: 'value' };
    expect(matches(0.25461, exact.value, exact.tolerance)).toBe(true);
    expect(matches(0.2547, exact.value, exact.tolerance)).toBe(false);
    const whole = parseClaim('32767') as Claim & { kind: 'value' };
    expect(matches(32768, whole.value, whole.tolerance)).toBe(false);
    const object = parseClaim("{ kind: 'full', tableWords: 11664, … }") as Claim & { kind: 'value' };
    expect(matches({ kind: 'full', id: 0, tableWords: 11664 }, object.value, object.tolerance)).toBe(true);
    expect(matches({ kind: 'full', id: 0, tableWords: 11665 }, object.value, object.tolerance)).toBe(false);
    const closed = parseClaim('{ m: 12, pow2: 512 }') as Claim & { kind: 'value' };
    expect(matches({ m: 12, pow2: 512, extra: 1 }, closed.value, closed.tolerance)).toBe(false);
    const typed = parseClaim('Float64Array(8) [0.5, 0.5, …, 0.5]') as Claim & { kind: 'value' };
    expect(check(new Float64Array(8).fill(0.5), typed, 'here')).toBeNull();
    expect(check(new Float32Array(8).fill(0.5), typed, 'here')).toMatch(/Float32Array/);
    expect(check(new Float64Array(8).fill(0.25), typed, 'here')).toMatch(/comment says/);
  });
});
