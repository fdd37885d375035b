// Build-time helper of vite.config.ts (the library build only): the shader text that goes into dist/
// without comments, blank lines, indentation and runs of blanks. The shaders' explanatory headers
// were over half of the WGSL an app's bundle carried. Not part of the package (scripts/ is not published, nor under
// src/, which tsconfig.build.json turns into dist/*.d.ts); test/build/stripWgsl.test.ts checks it.
//
// WGSL has no string or character literals, so outside a block comment `//` always starts a line
// comment, which runs to the next line break. Block comments `/* … */` nest, and a `//` inside one
// is plain comment text. Each comment becomes one space, so the tokens either side stay apart.

/** WGSL's line breaks (a line comment ends at the first one): LF, VT, FF, CR (or CR LF), NEL, LS, PS. */
const LINE_BREAK = /\r\n|[\n\v\f\r\u0085\u2028\u2029]/;
const NEXT_LINE_BREAK = new RegExp(LINE_BREAK.source, 'g');
/** WGSL's blankspace: the line breaks, space, tab and the left-to-right and right-to-left marks. */
const BLANK = '[\\t\\n\\v\\f\\r \\u0085\\u200e\\u200f\\u2028\\u2029]';
const LEADING_BLANK = new RegExp(`^${BLANK}+`);
const TRAILING_BLANK = new RegExp(`${BLANK}+$`);
/** Blankspace that is not a line break. */
const BLANKS_IN_LINE = /[\t \u200e\u200f]+/g;

/** `source` with every comment replaced by one space. Throws on a block comment that is not closed. */
export function replaceWgslComments(source: string): string {
  let out = '';
  let copied = 0; // source[copied, i) is code not yet appended to out
  let i = 0;
  while (i < source.length) {
    if (source[i] !== '/') {
      i++;
      continue;
    }
    const next = source[i + 1];
    if (next === '/') {
      out += `${source.slice(copied, i)} `;
      NEXT_LINE_BREAK.lastIndex = i;
      i = NEXT_LINE_BREAK.exec(source)?.index ?? source.length; // the line break itself stays
      copied = i;
    } else if (next === '*') {
      out += `${source.slice(copied, i)} `;
      const start = i;
      let depth = 1;
      i += 2;
      while (depth > 0) {
        if (i >= source.length) {
          const line = source.slice(0, start).split(LINE_BREAK).length;
          throw new Error(`WGSL: the block comment opened on line ${line} is not closed`);
        }
        if (source[i] === '/' && source[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (source[i] === '*' && source[i + 1] === '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
      copied = i;
    } else {
      i++;
    }
  }
  return out + source.slice(copied);
}

/**
 * `source` without comments, blank lines, indentation or trailing blanks, and with each run of blanks
 * inside a line made one space; one line per remaining code line (so that a compiler message's line
 * still shows the code). The tokens and their order are unchanged, and so is whether the text begins
 * or ends with blankspace (a comment counts as blankspace): text concatenated to either side of it
 * joins as it did before.
 */
export function stripWgsl(source: string): string {
  const code = replaceWgslComments(source);
  const lines = code
    .split(LINE_BREAK)
    .map((line) => line.replace(BLANKS_IN_LINE, ' ').replace(/^ | $/g, ''))
    .filter((line) => line !== '');
  if (lines.length === 0) return code === '' ? '' : '\n';
  const before = LEADING_BLANK.test(code) ? '\n' : '';
  const after = TRAILING_BLANK.test(code) ? '\n' : '';
  return `${before}${lines.join('\n')}${after}`;
}
