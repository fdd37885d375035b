import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Application, ConsoleLogger, LogLevel, TypeDocReader, TSConfigReader, type TypeDocOptions } from 'typedoc';
import { describe, expect, it } from 'vitest';

/*
 * The API reference (`npm run docs`, typedoc.json) builds without a warning: every `{@link}` in the
 * public doc comments resolves, no public signature names a type the entry points do not export, and
 * every exported declaration has a comment. TypeDoc runs on the repository's typedoc.json with
 * `emit: 'none'`, so nothing is written (docs/api/ is left as it is). A failure lists TypeDoc's
 * messages, each naming the declaration (and, for most, its file).
 *
 * A second case runs the same validation settings on a two-line project in a temporary folder with a
 * broken link, so a TypeDoc upgrade that stopped checking links would fail here rather than let the
 * first case pass on nothing.
 */

const root = resolve(import.meta.dirname, '../..');

/** Keeps TypeDoc's warnings and errors (without colours) instead of printing them. */
class CollectingLogger extends ConsoleLogger {
  readonly messages: string[] = [];

  override log(message: string, level: Exclude<LogLevel, LogLevel.None>): void {
    // eslint-disable-next-line no-control-regex
    if (level >= LogLevel.Warn) this.messages.push(message.replace(/\u001b\[[0-9;]*m/g, ''));
  }
}

/** TypeDoc's warnings and errors for the options (read from `options.options`, a typedoc.json). */
async function typedocMessages(options: TypeDocOptions): Promise<{ readonly messages: readonly string[]; readonly app: Application }> {
  const logger = new CollectingLogger();
  const app = await Application.bootstrapWithPlugins({ ...options, emit: 'none' }, [new TypeDocReader(), new TSConfigReader()]);
  // Bootstrap reports option errors to the console logger it starts with.
  expect(app.logger.hasErrors(), 'typedoc.json has option errors (printed above)').toBe(false);
  app.logger = logger;
  const project = await app.convert();
  if (project !== undefined) app.validate(project);
  else logger.messages.push('[Error] TypeDoc converted nothing');
  return { messages: logger.messages, app };
}

describe('API reference (TypeDoc)', () => {
  it('builds from typedoc.json with no warning: links resolve, public types are exported and documented', async () => {
    const { messages, app } = await typedocMessages({ options: join(root, 'typedoc.json') });
    // The checks this test exists for stay on in typedoc.json (`npm run docs` fails on the same warnings).
    const validation = app.options.getValue('validation');
    expect({ invalidLink: validation.invalidLink, notExported: validation.notExported, notDocumented: validation.notDocumented }).toEqual({
      invalidLink: true,
      notExported: true,
      notDocumented: true,
    });
    expect(app.options.getValue('treatWarningsAsErrors')).toBe(true);
    expect(messages).toEqual([]);
  });

  it('fails on a broken {@link} under the same validation settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-matmul-typedoc-'));
    try {
      const { validation, requiredToBeDocumented } = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as TypeDocOptions;
      writeFileSync(join(dir, 'index.ts'), '/** See {@link notDeclaredAnywhere} and {@link answer}. */\nexport const answer = 42;\n');
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', types: [] }, files: ['index.ts'] }));
      writeFileSync(join(dir, 'typedoc.json'), JSON.stringify({ entryPoints: ['index.ts'], tsconfig: 'tsconfig.json', validation, requiredToBeDocumented, disableSources: true }));
      const { messages } = await typedocMessages({ options: join(dir, 'typedoc.json') });
      expect(messages.join('\n')).toContain('Failed to resolve link to "notDeclaredAnywhere"');
      expect(messages.join('\n')).not.toContain('"answer"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
