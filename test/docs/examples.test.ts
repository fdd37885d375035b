import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { extract, sourceFiles, type Example } from './docExamples.js';

/*
 * Every `@example` of a doc comment in src/, and every ```ts block of README.md, type-checks against
 * the current API, under the repo's strict settings (tsconfig.json), in one TypeScript program.
 *
 * An example is the comment lines after `@example` up to the next `@tag` or the end of the comment.
 * It becomes a module: `import … from 'lattice-matmul[/gpu|/format|/node]'` is pointed at src/, `…`
 * becomes a comment, and a fragment that returns is wrapped in a function. Names it leaves free are
 * imported from the package's entry points (src/index.ts, src/node.ts), else from the example's own
 * file or another src file (examples of internals); what no file exports is the caller's variable,
 * declared with the type below where the name says it (`device`, a GPU buffer in src/gpu …) and as
 * `any` otherwise. A free name that is called must be exported somewhere, declared in the example's
 * file, or a callback listed below: a function the package lacks fails. The example of a declaration
 * the package exports (what the API reference shows) may call only what the package exports: a user
 * has nothing else. A failure names the example's file:line and TypeScript's message.
 */

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

/** The caller's variables, by name, in every example. */
const FREE: Record<string, string> = {
  device: 'GPUDevice',
  encoder: 'GPUCommandEncoder',
  scratch: 'lm.GpuScratch',
  engine: 'lm.GpuEngine',
  features: 'lm.GpuFeatures',
  context: 'lm.GpuContext',
  signal: 'AbortSignal',
  bytes: 'Uint8Array',
  section: 'Promise<{ destroy(): void }>',
  sigmaX: 'lm.Matrix',
  calibration: 'lm.Matrix',
  // the caller's callbacks
  record: '(encoder: GPUCommandEncoder) => void',
  produced: '() => Iterable<[string, lm.SafetensorsTensorInput]>',
  weight: '(name: string) => Promise<lm.Matrix>',
  names: 'readonly string[]',
};
/** Outside src/gpu these are the caller's matrices. */
const CPU_FREE: Record<string, string> = { a: 'lm.Matrix', b: 'lm.Matrix', w: 'lm.Matrix' };
/** In src/gpu these are the caller's GPU buffers. */
const GPU_BUFFERS = new Set([
  'y', 'xRotated', 'output', 'input', 'c', 'codes', 'scales', 'qOut', 'kOut', 'vOut', 'xBuffer', 'yBuffer', 'wBuffer', 'bBuffer', 'cBuffer',
  'rotated', 'exponents', 'scaleIndices', 'norms', 'prepared', 'status', 'xHalf', 'xFloat', 'y32', 'yHalf', 'big', 'bias', 'pairs', 'staging',
  'codeLayout', 'columnScales', 'rowScales', 'next',
]);
/** Names whose type depends on the file (relative to src/); `@src` is src/. */
const FILE_FREE: Record<string, Record<string, string>> = {
  '../README.md': { wBuffer: 'GPUBuffer', xBuffer: 'GPUBuffer', yBuffer: 'GPUBuffer' },
  'format/container.ts': { archive: 'lm.SafetensorsArchive', layout: "import('@src/format/container.js').ContainerLayout", q: 'lm.QuantizedMatrix' },
  'format/universalLayout.ts': { m: 'lm.UniversalLatticeMatrix' },
  'gpu/universalOperand.ts': { m: 'lm.UniversalLatticeMatrix', gpuMatrix: 'lm.GpuUniversalQuantizedMatrix', b: 'lm.Matrix', w: 'lm.Matrix' },
  'gpu/gpuQuantize.ts': { gpuMatrix: 'lm.GpuLatticeQuantizedMatrix', a: 'lm.Matrix', b: 'lm.Matrix', x: 'lm.Matrix' },
  'gpu/kernels/hadamard.ts': { a: 'lm.Matrix' },
  'gpu/kernels/nonFiniteTail.ts': { w: 'lm.GpuUniversalMatrix' },
  'gpu/kernels/inputsI8.ts': { q: 'lm.GpuDeterministicMatrix', k: 'lm.GpuDeterministicMatrix', v: 'lm.GpuDeterministicMatrix' },
  'gpu/kernels/universalGemv.ts': { q: 'lm.GpuUniversalMatrix', k: 'lm.GpuUniversalMatrix', v: 'lm.GpuUniversalMatrix', gpuW: 'lm.GpuUniversalMatrix', w: 'lm.Matrix' },
  'gpu/kernels/universalGemvI8.ts': { gpuW: 'lm.GpuUniversalMatrix', w: 'lm.Matrix' },
  'gpu/kernels/universalDequantize.ts': { gpuW: 'lm.GpuUniversalMatrix' },
  'gpu/kernels/latticeDequantize.ts': { gpuW: 'lm.GpuDeterministicMatrix' },
  'gpu/kernels/latticeGemv.ts': { gpuW: 'lm.GpuDeterministicMatrix' },
  'gpu/kernels/latticeGemvI8.ts': { gpuW: 'lm.GpuDeterministicMatrix', w: 'lm.Matrix' },
  'gpu/kernels/d3QuadGemvI8.ts': { q: 'lm.DeterministicLatticeMatrix', gpuW: 'lm.GpuDeterministicMatrix' },
  'gpu/kernels/e8ResidueGemvI8.ts': { q: 'lm.DeterministicLatticeMatrix', gpuW: 'lm.GpuDeterministicMatrix' },
  'gpu/kernels/e8PointGemvI8.ts': { q: 'lm.UniversalLatticeMatrix', gpuW: 'lm.GpuUniversalMatrix', w: 'lm.Matrix' },
  'gpu/kernels/weightOnlyGemv.ts': { q: 'lm.WeightOnlyQuantized', w: 'lm.Matrix' },
  'gpu/kernels/weightOnlyInputsI8.ts': { q: 'lm.WeightOnlyQuantized', m: 'lm.WeightOnlyGpuMatrix' },
  'gpu/quantizedLinear.ts': { layers: 'lm.QuantizedLinear[]', q: 'lm.QuantizedLinear', k: 'lm.QuantizedLinear', v: 'lm.QuantizedLinear', w: 'lm.LinearWeight' },
  'quantize/quadForm.ts': { q: 'lm.DeterministicLatticeMatrix' },
  'lattices/escapes.ts': { candidates: "import('@src/lattices/escapes.js').EscapeCandidates" },
  'product/expectedError.ts': { qa: 'lm.UniversalLatticeMatrix', qb: 'lm.UniversalLatticeMatrix' },
  'product/universalPairProduct.ts': { qa: 'lm.UniversalLatticeMatrix', qb: 'lm.UniversalLatticeMatrix' },
  'product/matvec.ts': { x: 'Float32Array', xs: 'Float32Array' },
  'scalar/absmax.ts': { x: 'Float32Array' },
  'scalar/nvfp4.ts': { x: 'Float32Array' },
  'rotation/randomizedHadamard.ts': { x: 'Float32Array' },
  'weightonly/quantized.ts': { q: 'lm.WeightOnlyQuantized', packed: "import('@src/weightonly/packedCodes.js').PackedWeightCodes", file: 'Blob' },
  'weightonly/packedCodes.ts': { q: 'lm.WeightOnlyQuantized', packed: "import('@src/weightonly/packedCodes.js').PackedWeightCodes" },
  'weightonly/limit.ts': { q: 'lm.WeightOnlyQuantized' },
  'weightonly/distortion.ts': { q: 'lm.WeightOnlyQuantized' },
};
const ENTRIES: Record<string, string> = {
  'lattice-matmul': 'index',
  'lattice-matmul/gpu': 'gpu',
  'lattice-matmul/format': 'format',
  'lattice-matmul/node': 'node',
};
/** "Cannot find name", its "did you mean" forms, and a shorthand property with no value in scope. */
const FREE_NAME_CODES = new Set([2304, 2552, 2580, 2582, 18004]);

/** The ```ts blocks of README.md (what a user reads first), as examples of the README itself. */
function readmeExamples(file: string): Example[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if ((lines[i] as string).trim() !== '```ts') continue;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && (lines[j] as string).trim() !== '```'; j++) body.push(lines[j] as string);
    out.push({ file, line: i + 1, body });
    i = j;
  }
  return out;
}

function snippetLines(example: Example): string[] {
  return example.body.map((line) =>
    line
      .replaceAll('…', '/*…*/')
      .replace(/from '(lattice-matmul(?:\/\w+)?)'/g, (whole, specifier: string) => {
        const entry = ENTRIES[specifier];
        return entry === undefined ? whole : `from '${join(src, entry)}.js'`;
      }),
  );
}

function createProgram(files: readonly string[], options: ts.CompilerOptions, texts: ReadonlyMap<string, string>, old?: ts.Program): ts.Program {
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (name, language, ...rest) => {
    const text = texts.get(name);
    return text === undefined ? getSourceFile(name, language, ...rest) : ts.createSourceFile(name, text, language);
  };
  host.fileExists = (name) => texts.has(name) || fileExists(name);
  host.readFile = (name) => texts.get(name) ?? readFile(name);
  return ts.createProgram({ rootNames: [...files, ...texts.keys()], options, host, ...(old === undefined ? {} : { oldProgram: old }) });
}

function checkExamples(): { count: number; tags: number; readme: number; failures: string[] } {
  const files = sourceFiles(src);
  const texts = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
  const fromSources = files.flatMap((f) => extract(f, texts.get(f) as string));
  const tags = [...texts.values()].reduce((n, t) => n + (t.match(/^\s*\*\s?@example\b/gm)?.length ?? 0), 0);
  const readme = readmeExamples(join(root, 'README.md'));
  const examples = [...fromSources, ...readme];
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), (path) => ts.sys.readFile(path));
  // Free names are imported without `type`, whatever they are: verbatimModuleSyntax would ask for it.
  const options: ts.CompilerOptions = { ...ts.parseJsonConfigFileContent(config.config, ts.sys, root).options, noEmit: true, verbatimModuleSyntax: false };
  const snippetName = (i: number): string => join(root, '__examples__', `example${i}.ts`);

  // Pass 1: the examples as written, to learn which names they leave free.
  const asWritten = new Map(examples.map((e, i) => [snippetName(i), `${snippetLines(e).join('\n')}\nexport {};\n`]));
  const first = createProgram(files, options, asWritten);
  const checker = first.getTypeChecker();
  const exportsOf = new Map<string, Set<string>>();
  for (const f of files) {
    const symbol = checker.getSymbolAtLocation(first.getSourceFile(f) as ts.SourceFile);
    exportsOf.set(f, new Set(symbol === undefined ? [] : checker.getExportsOfModule(symbol).map((s) => s.name)));
  }
  const freeNames = new Map<string, Set<string>>();
  const calledNames = new Map<string, Set<string>>();
  const staticCalledNames = new Map<string, Set<string>>();
  const returns = new Set<string>();
  for (const name of asWritten.keys()) {
    const free = new Set<string>();
    const called = new Set<string>();
    const staticCalls = new Set<string>();
    freeNames.set(name, free);
    calledNames.set(name, called);
    staticCalledNames.set(name, staticCalls);
    const sourceFile = first.getSourceFile(name) as ts.SourceFile;
    for (const d of first.getSemanticDiagnostics(sourceFile)) {
      if (d.code === 1108) returns.add(name); // a 'return' outside a function: a function body's fragment
      if (!FREE_NAME_CODES.has(d.code)) continue;
      const m = /(?:name|property) '([^']+)'/.exec(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      if (m) free.add(m[1] as string);
    }
    // What the DOM declares as a plain value (status, name, length …) is the example's own variable.
    const visit = (node: ts.Node): void => {
      if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && ts.isIdentifier(node.expression)) called.add(node.expression.text);
      // `Class.create(…)`: a class used as much as a called function (for the rule on public examples).
      if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && ts.isIdentifier(node.expression.expression)) {
        staticCalls.add(node.expression.expression.text);
      }
      if (ts.isIdentifier(node) && !(ts.isPropertyAccessExpression(node.parent) && node.parent.name === node) && !(ts.isPropertyAssignment(node.parent) && node.parent.name === node)) {
        const symbol = ts.isShorthandPropertyAssignment(node.parent) ? checker.getShorthandAssignmentValueSymbol(node.parent) : checker.getSymbolAtLocation(node);
        const declaration = symbol?.valueDeclaration;
        const primitive = ts.TypeFlags.StringLike | ts.TypeFlags.NumberLike | ts.TypeFlags.BooleanLike | ts.TypeFlags.Void | ts.TypeFlags.Null;
        if (
          symbol !== undefined &&
          declaration !== undefined &&
          ts.isVariableDeclaration(declaration) &&
          /lib\.dom\.d\.ts$/.test(declaration.getSourceFile().fileName) &&
          (checker.getTypeOfSymbol(symbol).flags & primitive) !== 0
        ) {
          free.add(node.text);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sourceFile);
  }

  // Pass 2: each free name imported from where it is exported, or declared as the caller's variable.
  const entries = ['index', 'node'].map((n) => join(src, `${n}.ts`));
  const declaredIn = (file: string): Set<string> => {
    const names = new Set<string>();
    for (const statement of first.getSourceFile(file)?.statements ?? []) {
      if ((ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) && statement.name) names.add(statement.name.text);
      if (ts.isVariableStatement(statement)) for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) names.add(d.name.text);
    }
    return names;
  };
  const failures: string[] = [];
  const publicNames = new Set(entries.flatMap((f) => [...(exportsOf.get(f) ?? [])]));
  const completed = new Map<string, string>();
  const headerLines = new Map<string, number>();
  examples.forEach((e, i) => {
    const name = snippetName(i);
    const inFile = relative(src, e.file).replaceAll('\\', '/');
    const inGpu = inFile.startsWith('gpu/');
    const imports = new Map<string, string[]>();
    const declarations: string[] = [];
    for (const free of [...(freeNames.get(name) ?? [])].sort()) {
      const from = [...entries, e.file, ...files].find((f) => exportsOf.get(f)?.has(free));
      const type = FILE_FREE[inFile]?.[free] ?? (inGpu ? undefined : CPU_FREE[free]) ?? (inGpu && GPU_BUFFERS.has(free) ? 'GPUBuffer' : undefined) ?? FREE[free] ?? 'any';
      if (from !== undefined && !entries.includes(from) && e.documents !== undefined && publicNames.has(e.documents) && (calledNames.get(name)?.has(free) || staticCalledNames.get(name)?.has(free))) {
        failures.push(`${relative(root, e.file)}:${e.line} documents ${e.documents}, which the package exports, but calls ${free}, which it does not`);
      }
      if (from !== undefined) imports.set(from, [...(imports.get(from) ?? []), free]);
      else if (type === 'any' && calledNames.get(name)?.has(free) && !declaredIn(e.file).has(free)) {
        failures.push(`${relative(root, e.file)}:${e.line} calls ${free}, which no src file exports or declares`);
      } else declarations.push(`declare let ${free}: ${type.replaceAll('@src', src)};`);
    }
    const body = snippetLines(e);
    const header = [
      `import type * as lm from '${join(src, 'index.js')}';`,
      ...[...imports].map(([from, names]) => `import { ${names.join(', ')} } from '${from.replace(/\.ts$/, '.js')}';`),
      ...declarations,
    ];
    let text: string;
    if (returns.has(name)) {
      header.push(...body.filter((l) => l.startsWith('import ')), 'export async function example() {');
      text = `${header.join('\n')}\n${body.map((l) => (l.startsWith('import ') ? '' : l)).join('\n')}\n}\n`;
    } else {
      text = `${header.join('\n')}\n${body.join('\n')}\nexport {};\n`;
    }
    headerLines.set(name, header.length);
    completed.set(name, text);
  });
  const second = createProgram(files, options, completed, first);
  examples.forEach((e, i) => {
    const name = snippetName(i);
    const sourceFile = second.getSourceFile(name) as ts.SourceFile;
    for (const d of [...second.getSyntacticDiagnostics(sourceFile), ...second.getSemanticDiagnostics(sourceFile)]) {
      const { line } = sourceFile.getLineAndCharacterOfPosition(d.start ?? 0);
      const at = e.line + 1 + line - (headerLines.get(name) as number);
      failures.push(`${relative(root, e.file)}:${at} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
    }
  });
  return { count: fromSources.length, tags, readme: readme.length, failures };
}

describe('doc comment examples', () => {
  it("every @example in src/, and every ts block of README.md, type-checks against the current API", () => {
    const { count, tags, readme, failures } = checkExamples();
    expect(count).toBe(tags);
    expect(count).toBeGreaterThan(0);
    expect(readme).toBeGreaterThanOrEqual(3);
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('reads each example’s body and the declaration it documents (the rule on public examples reads it): a member’s is its class’s', () => {
    const text = [
      '/**', ' * @example', ' * f(1); // 2', ' */', 'export function f(x: number): number {', '  return x + 1;', '}',
      '/**', ' * @example', ' * new C().m();', ' */', 'export class C {', '  /**', '   * @example', '   * new C().m();', '   */', '  m(): void {}', '}',
      '/**', ' * @example', ' * g();', ' */', 'function g(): void {}',
      'class D {', '  /**', '   * @example', '   * new D().m();', '   */', '  m(): void {}', '}',
      '/**', ' * @example', ' * h(); // 3 */', 'export const h = (): number => 3;',
    ].join('\n');
    const examples = extract('x.ts', text);
    expect(examples.map((e) => [e.line, e.documents])).toEqual([[2, 'f'], [9, 'C'], [14, 'C'], [20, undefined], [26, undefined], [32, 'h']]);
    // The body: the lines after the tag, the last one also when the comment closes on it.
    expect(examples.map((e) => e.body.map((l) => l.trim()))).toEqual([['f(1); // 2'], ['new C().m();'], ['new C().m();'], ['g();'], ['new D().m();'], ['h(); // 3']]);
  });
});
