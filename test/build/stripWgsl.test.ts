import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stripWgsl } from '../../scripts/stripWgsl.js';
import { gpuUnavailableReason, testDevice } from '../gpu/gpuTestDevice.js';

/*
 * The library build ships the shaders without comments, blank lines and indentation
 * (scripts/stripWgsl.ts, used by vite.config.ts). Checked here:
 *   - every file in shaders/ keeps its tokens, in order: a tokenizer written for this test (not the
 *     build's code) reads the source, skipping its comments, and the stripped text; the two lists
 *     must be equal, so stripping can neither drop code nor join two tokens into one;
 *   - hand-written cases with hand-written results: nested block comments, `//` inside a block
 *     comment, `/*` inside a line comment, a comment between two tokens;
 *   - the build (vite.config.ts, as `npm run build` runs it, into a temporary folder) gives each
 *     shader module as dist/shaders/<name>.js holding the stripped text, with no comment left;
 *   - stripped shaders still compile and compute: QuantizedLinear from the built dist/gpu.js, on a
 *     WebGPU device, against the built package's CPU product (matvecAT).
 */

const root = resolve(import.meta.dirname, '../..');
const shadersDir = join(root, 'shaders');
const shaderFiles = readdirSync(shadersDir).filter((name) => name.endsWith('.wgsl')).sort();

// ---- An independent WGSL tokenizer (comments skipped, blankspace dropped) -------------------------

/** WGSL blankspace (line breaks included). */
const BLANKSPACE = /[\t\n\v\f\r \u0085\u200e\u200f\u2028\u2029]+/y;
/** Ends a line comment. */
const LINE_END = /[\n\v\f\r\u0085\u2028\u2029]/g;
/** Tokens, longest first where one is a prefix of another: identifiers, numbers with suffixes, operators. */
const TOKEN_PATTERNS: readonly RegExp[] = [
  /[A-Za-z_][A-Za-z0-9_]*/y,
  // Hexadecimal (integer or float with a binary exponent), then decimal; each with its suffix.
  /0[xX](?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?[fhiu]?/y,
  /(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fhiu]?/y,
  /<<=|>>=|->|&&|\|\||==|!=|<=|>=|<<|>>|\+\+|--|[-+*/%&|^]=|[(){}[\]<>,;:.=+\-*/%&|^!~@?]/y,
];

/** The tokens of WGSL `text`; throws on a character no token starts with, or an unclosed block comment. */
function wgslTokens(text: string): string[] {
  const tokens: string[] = [];
  let at = 0;
  const matchAt = (pattern: RegExp): string | undefined => {
    pattern.lastIndex = at;
    return pattern.exec(text)?.[0];
  };
  while (at < text.length) {
    const blank = matchAt(BLANKSPACE);
    if (blank !== undefined) {
      at += blank.length;
    } else if (text.startsWith('//', at)) {
      LINE_END.lastIndex = at;
      const end = LINE_END.exec(text);
      at = end === null ? text.length : end.index;
    } else if (text.startsWith('/*', at)) {
      // Nested: find the next opener or closer after each one.
      let depth = 0;
      do {
        const open = text.indexOf('/*', at);
        const close = text.indexOf('*/', at);
        if (close < 0) throw new Error(`unclosed block comment before offset ${at}`);
        if (open >= 0 && open < close) {
          depth++;
          at = open + 2;
        } else {
          depth--;
          at = close + 2;
        }
      } while (depth > 0);
    } else {
      const token = TOKEN_PATTERNS.map(matchAt).find((t) => t !== undefined);
      if (token === undefined) throw new Error(`no WGSL token starts at offset ${at}: ${JSON.stringify(text.slice(at, at + 20))}`);
      tokens.push(token);
      at += token.length;
    }
  }
  return tokens;
}

describe('the test’s own WGSL tokenizer', () => {
  it('splits identifiers, attributes, numbers with suffixes and operators (longest match), and skips comments', () => {
    expect(wgslTokens('@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {}')).toEqual(
      ['@', 'compute', '@', 'workgroup_size', '(', '64', ')', 'fn', 'main', '(', '@', 'builtin', '(', 'global_invocation_id', ')', 'id', ':', 'vec3', '<', 'u32', '>', ')', '{', '}'],
    );
    expect(wgslTokens('let a = 0x7fc00000u + 1.0e30 * 0x1p-3f - .5h + 23i; x >>= 2u; y->z; p&&q||r != s')).toEqual(
      ['let', 'a', '=', '0x7fc00000u', '+', '1.0e30', '*', '0x1p-3f', '-', '.5h', '+', '23i', ';', 'x', '>>=', '2u', ';', 'y', '->', 'z', ';', 'p', '&&', 'q', '||', 'r', '!=', 's'],
    );
    expect(wgslTokens('array<vec4<u32>>')).toEqual(['array', '<', 'vec4', '<', 'u32', '>>']);
    expect(wgslTokens('array<vec4<u32> >')).toEqual(['array', '<', 'vec4', '<', 'u32', '>', '>']);
    expect(wgslTokens('a /* x /* y */ // z */ b // c /* d\ne')).toEqual(['a', 'b', 'e']);
    expect(() => wgslTokens('a /* /* */')).toThrow(/unclosed/);
    expect(() => wgslTokens('a "b"')).toThrow(/no WGSL token/);
  });
});

// ---- Stripping ------------------------------------------------------------------------------------

describe('stripWgsl', () => {
  it.each([
    ['nested block comments', 'a /* x /* y */ z */ b', 'a b'],
    ['`//` inside a block comment ends nothing', 'a /* // not a line comment */ b\nc', 'a b\nc'],
    ['`/*` inside a line comment opens nothing', 'a // /* not opened\nb', 'a\nb'],
    ['`/*/` does not close the comment it opens', '/*/ x */ y', '\ny'],
    ['`**/` closes', 'a /* b **/ c', 'a c'],
    ['a comment between two tokens keeps them apart', 'let/**/x = a>/* */>b;', 'let x = a> >b;'],
    ['division is not a comment', 'a / b /= c', 'a / b /= c'],
    ['a nested comment over lines, `//` and `*/` inside', 'fn f() {\n  /* outer\n  /* inner // */\n  still comment */ return 1;\n}\n', 'fn f() {\nreturn 1;\n}\n'],
    ['blank lines, indentation, trailing and inner blanks, CR LF', '\n\n  a  =\tb;\r\n\r\n\tc;  \n', '\na = b;\nc;\n'],
    ['a leading comment keeps a separator in front', '// header\n/* more */fn', '\nfn'],
    ['a trailing line comment keeps a separator behind', 'x; // c', 'x;\n'],
    ['no blankspace at either end stays so', 'a;\n\nb;', 'a;\nb;'],
    ['only comments', '// x\n/* y */\n', '\n'],
    ['empty', '', ''],
  ])('%s', (_, source, expected) => {
    expect(stripWgsl(source)).toBe(expected);
    expect(wgslTokens(stripWgsl(source))).toEqual(wgslTokens(source));
  });

  it('refuses an unclosed block comment, naming its line', () => {
    expect(() => stripWgsl('a;\nb /* /* */\nc;')).toThrow(/line 2 is not closed/);
  });

  it.each(shaderFiles)('shaders/%s: same tokens, no comments, blank lines or indentation', (name) => {
    const source = readFileSync(join(shadersDir, name), 'utf8');
    const stripped = stripWgsl(source);
    const tokens = wgslTokens(source);
    expect(tokens.length).toBeGreaterThan(0);
    expect(wgslTokens(stripped)).toEqual(tokens);
    expect(stripped).not.toMatch(/\/\/|\/\*|\*\//);
    expect(stripped.split('\n').slice(1, -1).filter((line) => line === '' || /^\s|\s$/.test(line))).toEqual([]);
    // Text put before or after a shader joins it as it did: blankspace or a comment at an end stays a line break.
    expect(/^\s/.test(stripped)).toBe(/^(\s|\/\/|\/\*)/.test(source));
    expect(/\s$/.test(stripped)).toBe(/\s$/.test(source));
    expect(stripWgsl(stripped)).toBe(stripped);
    expect(stripped.length).toBeLessThan(source.length);
  });
});

// ---- The library build ----------------------------------------------------------------------------

const noGpu = await gpuUnavailableReason();
let work: string;
let dist: string;

describe('the library build (vite.config.ts)', () => {
  beforeAll(async () => {
    // As `npm run build`'s `vite build`, into a folder of its own: the repository's dist/ is left alone.
    work = mkdtempSync(join(tmpdir(), 'lattice-matmul-stripped-wgsl-'));
    dist = join(work, 'dist');
    await build({ root, configFile: join(root, 'vite.config.ts'), logLevel: 'silent', build: { outDir: dist, emptyOutDir: true, sourcemap: false } });
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ships each shader module with the stripped text: no WGSL comment, blank line or indentation', async () => {
    const modules = readdirSync(join(dist, 'shaders')).filter((name) => name.endsWith('.js'));
    expect(modules.length).toBeGreaterThan(40);
    for (const module of modules) {
      const name = basename(module, '.js');
      expect(shaderFiles, module).toContain(`${name}.wgsl`);
      const text = ((await import(pathToFileURL(join(dist, 'shaders', module)).href)) as { default: string }).default;
      expect(text, module).toBe(stripWgsl(readFileSync(join(shadersDir, `${name}.wgsl`), 'utf8')));
      expect(text, module).not.toMatch(/\/\/|\/\*/);
      // The module's own text: the string literal and, at most, the bundler's one-line `// shaders/<name>.wgsl?raw` banner.
      const js = readFileSync(join(dist, 'shaders', module), 'utf8');
      expect(js.split('\n').filter((line) => line.includes('//') && line !== `// shaders/${name}.wgsl?raw`), module).toEqual([]);
    }
  });

  it.skipIf(noGpu !== undefined)('compiles and runs the stripped kernels: QuantizedLinear from dist/gpu.js = the CPU product, f32 and f16, exact and int8 inputs', async () => {
    type Lib = typeof import('../../src/index.js');
    const lib = (await import(pathToFileURL(join(dist, 'index.js')).href)) as Lib;
    const gpu = (await import(pathToFileURL(join(dist, 'gpu.js')).href)) as typeof import('../../src/gpu.js');
    const context = await testDevice();
    const { device } = context;
    try {
      const n = 300;
      const out = 24;
      const w = lib.gaussianMatrix(n, out, 1);
      const checked: string[] = [];
      for (const scheme of ['e8-q16', 'd3-q6', 'd3-q6-deterministic'] as const) {
        const q = lib.quantize(w, { scheme, seed: 4, ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }) });
        const uploaded = gpu.uploadLatticeMatrix(device, q);
        const int8 = scheme.endsWith('deterministic') ? [null] : [null, gpu.dotPathFor(context.features)];
        for (const int8Inputs of int8) {
          // f32 activations throughout; the f16 path (conversion kernels) once per scheme.
          for (const activations of int8Inputs === null ? (['f32', 'f16'] as const) : (['f32'] as const)) {
            const layer = gpu.QuantizedLinear.create(device, uploaded, { activations, maxTokens: 4, int8Inputs });
            const tokens = 3;
            const x = lib.gaussianMatrix(n, tokens, 2);
            const f16 = activations === 'f16';
            const xBits = f16 ? Uint16Array.from(x.data, (v) => lib.float16Bits(v)) : null;
            const xValues = xBits === null ? x : lib.toFloat32Matrix({ rows: n, cols: tokens, data: xBits });
            const xBuffer = device.createBuffer({ size: (f16 ? 2 : 4) * n * tokens, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
            device.queue.writeBuffer(xBuffer, 0, xBits ?? Float32Array.from(x.data));
            const yBytes = (f16 ? 2 : 4) * out * tokens;
            const yBuffer = device.createBuffer({ size: yBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
            try {
              const encoder = device.createCommandEncoder({ label: 'stripped shaders' });
              layer.record(encoder, xBuffer, yBuffer, { tokens });
              device.queue.submit([encoder.finish()]);
              const raw = await gpu.readBufferExclusive(device, yBuffer, yBytes);
              const y = f16 ? lib.toFloat32Matrix({ rows: out, cols: tokens, data: new Uint16Array(raw) }).data : new Float32Array(raw);
              const reference = lib.matvecAT(q, xValues).data;
              // The GEMVs' own bounds are tested in test/gpu; here: the same numbers up to float (and
              // f16 output, and int8 input) rounding, which a miscompiled or broken kernel is not.
              const scale = Math.sqrt(n) * 4;
              const tolerance = int8Inputs === null ? (f16 ? 2e-3 : 1e-4) * scale : 0.02 * scale;
              let worst = 0;
              for (let i = 0; i < reference.length; i++) worst = Math.max(worst, Math.abs((y[i] as number) - (reference[i] as number)));
              expect(worst, `${scheme}, ${activations}, int8Inputs ${int8Inputs}`).toBeLessThanOrEqual(tolerance);
              checked.push(`${scheme} ${activations}${int8Inputs === null ? '' : ` int8 (${int8Inputs})`}: max |Δ| ${worst.toExponential(2)}`);
            } finally {
              xBuffer.destroy();
              yBuffer.destroy();
              layer.destroy();
            }
          }
        }
        uploaded.destroy();
      }
      console.log(`QuantizedLinear from the built package (stripped WGSL) vs matvecAT:\n  ${checked.join('\n  ')}`);
    } finally {
      device.destroy();
    }
  });
});
