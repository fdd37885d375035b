import { resolve } from 'node:path';
import ts from 'typescript';

/**
 * The TypeScript compiler's messages for one file under the project's tsconfig ("line N: message"),
 * an unused `@ts-expect-error` included: the type tests assert it is empty, so that `vitest run` alone
 * fails when a misuse they mark compiles again.
 */
export function typeCheckMessages(file: string): string[] {
  const root = resolve(import.meta.dirname, '../..');
  const config = ts.readConfigFile(resolve(root, 'tsconfig.json'), (path) => ts.sys.readFile(path));
  const options = { ...ts.parseJsonConfigFileContent(config.config, ts.sys, root).options, noEmit: true };
  const program = ts.createProgram({ rootNames: [file], options });
  const source = program.getSourceFile(file);
  if (source === undefined) return [`${file}: not found by the compiler`];
  return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)].map((d) => {
    const line = d.start === undefined ? '?' : String(source.getLineAndCharacterOfPosition(d.start).line + 1);
    return `line ${line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}
