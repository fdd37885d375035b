import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * Every `](file#anchor)` and `](#anchor)` link of the Markdown a user reads (README.md, docs/, bench/README.md,
 * CONTRIBUTING.md) names a heading of its target, by the slug GitHub (and npm's page) gives it.
 * test/package/builtPackage.test.ts checks that the linked files ship; a renamed heading left the
 * anchor dangling without failing anything, and a browser then opens the file at its top.
 */

const root = resolve(import.meta.dirname, '../..');
const DOCUMENTS = ['README.md', 'CONTRIBUTING.md', 'bench/README.md', 'docs/ARCHITECTURE.md', 'docs/FORMAT.md', 'docs/PERFORMANCE.md', 'docs/RELIABILITY.md'];

/**
 * GitHub's heading slug (github-slugger): lower case, every character but letters, marks, digits,
 * connector punctuation, spaces and hyphens dropped, each space a hyphen; a repeated slug gets -1, -2, ….
 */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading === null) continue;
    const text = (heading[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replaceAll(' ', '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    slugs.add(count === 0 ? base : `${base}-${count}`);
  }
  return slugs;
}

/** Links with an anchor: `[text](target#anchor)`, target relative to the document or empty (itself). */
function anchoredLinks(markdown: string): { target: string; anchor: string }[] {
  const links: { target: string; anchor: string }[] = [];
  for (const match of markdown.matchAll(/\]\(([^)\s#]*)#([^)\s]+)\)/g)) {
    const target = match[1] as string;
    if (/^[a-z]+:/i.test(target)) continue;
    links.push({ target, anchor: match[2] as string });
  }
  return links;
}

describe('anchors of the shipped Markdown', () => {
  it('the slug rule: punctuation dropped, spaces kept as hyphens, code spans and links by their text', () => {
    const slugs = headingSlugs(
      '# Layers for models: `QuantizedLinear`\n## The rotation\'s passes: m = 12 against m = 1\n### 2. `__metadata__`\n```\n# not a heading\n```\n## Speed\n## Speed\n',
    );
    expect([...slugs]).toEqual(['layers-for-models-quantizedlinear', 'the-rotations-passes-m--12-against-m--1', '2-__metadata__', 'speed', 'speed-1']);
  });

  it('every link to a heading names one', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const document of DOCUMENTS) {
      const file = join(root, document);
      for (const { target, anchor } of anchoredLinks(readFileSync(file, 'utf8'))) {
        const linked = target === '' ? file : resolve(dirname(file), target);
        const name = `${document} → ${target}#${anchor}`;
        if (!existsSync(linked)) {
          broken.push(`${name}: no file ${relative(root, linked)}`);
          continue;
        }
        checked++;
        if (!headingSlugs(readFileSync(linked, 'utf8')).has(decodeURIComponent(anchor))) broken.push(`${name}: no such heading`);
      }
    }
    expect(broken).toEqual([]);
    // README alone links six headings (#speed, docs/RELIABILITY.md#extreme-values, …).
    expect(checked).toBeGreaterThanOrEqual(30);
  });
});
