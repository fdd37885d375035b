import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/*
 * The `@example` blocks of src/'s doc comments, as examples.test.ts (type-checks them all) and
 * exampleOutputs.test.ts (runs the ones that need nothing from the caller) read them.
 */

export interface Example {
  readonly file: string;
  /** 1-based line of the `@example` tag; the body starts on the next line. */
  readonly line: number;
  readonly body: readonly string[];
  /** The declaration the comment documents (the class or interface, for a member), where the line after it says. */
  readonly documents?: string;
}

/** The name of the exported declaration that follows line `after` (0-based), or its class's or interface's for a member. */
function documentedName(lines: readonly string[], after: number): string | undefined {
  for (let i = after; i < lines.length; i++) {
    const line = lines[i] as string;
    if (/^\s*(\*|\/\/|@|$)/.test(line)) continue;
    const top = /^export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|class|const|let|interface|type|enum)\s+(\w+)/.exec(line);
    if (top) return top[1];
    if (!/^\s/.test(line)) return undefined; // not exported
    for (let j = i - 1; j >= 0; j--) {
      const cls = /^(export\s+)?(?:abstract\s+)?(?:class|interface)\s+(\w+)/.exec(lines[j] as string);
      if (cls) return cls[1] ? cls[2] : undefined;
      if (/^\S/.test(lines[j] as string) && !/^[}/*]/.test(lines[j] as string)) return undefined;
    }
    return undefined;
  }
  return undefined;
}

/** The .ts files under `dir` (not .d.ts), sorted. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

/** The `@example` blocks of one source file's doc comments. */
export function extract(file: string, text: string): Example[] {
  const lines = text.split('\n');
  const out: Example[] = [];
  let inDoc = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (!inDoc && /^\s*\/\*\*/.test(line)) inDoc = true;
    if (inDoc && /^\s*\*\s?@example\b/.test(line)) {
      const body: string[] = [];
      for (let j = i + 1; j < lines.length; j++) {
        const raw = lines[j] as string;
        const end = raw.indexOf('*/');
        const stripped = (end >= 0 ? raw.slice(0, end) : raw).replace(/^\s*\* ?/, '');
        if (/^@\w/.test(stripped)) break;
        if (end >= 0) {
          if (stripped.trim()) body.push(stripped);
          break;
        }
        body.push(stripped);
      }
      while (body.length > 0 && !(body[body.length - 1] as string).trim()) body.pop();
      let end = i;
      while (end < lines.length && !(lines[end] as string).includes('*/')) end++;
      const documents = documentedName(lines, end + 1);
      out.push({ file, line: i + 1, body, ...(documents === undefined ? {} : { documents }) });
    }
    if (inDoc && line.includes('*/')) inDoc = false;
  }
  return out;
}
