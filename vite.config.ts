import { readFile } from 'node:fs/promises';
import { defineConfig, type Plugin } from 'vite';
import { stripWgsl } from './scripts/stripWgsl.js';

/** A WGSL file imported as text (`../../shaders/x.wgsl?raw`), as Vite resolves it: the path, then the query. */
const WGSL_RAW = /\.wgsl\?(?:[^?]*&)?raw(?:&|$)/;

/**
 * `?raw` for WGSL in the library build: the shader text as Vite's own `?raw` gives it (which this runs
 * before), less comments, blank lines and indentation (scripts/stripWgsl.ts). The shaders' comments
 * were over half of the WGSL an app's bundle shipped. Only here: vitest (vitest.config.ts), the bench
 * scripts (scripts/raw-loader.mjs) and the demo (demo/vite.config.ts) read the shaders as written.
 */
function strippedWgsl(): Plugin {
  return {
    name: 'lattice-matmul:stripped-wgsl',
    enforce: 'pre',
    apply: 'build',
    load: {
      filter: { id: WGSL_RAW },
      async handler(id) {
        const file = id.slice(0, id.indexOf('?'));
        this.addWatchFile(file);
        const text = stripWgsl(await readFile(file, 'utf8'));
        return { code: `export default ${JSON.stringify(text)};`, map: { mappings: '' }, moduleType: 'js' };
      },
    },
  };
}

// Library build: `npm run build` bundles the package's four entry points and the CLI's three modules to dist/ (shaders inlined from `?raw`
// imports, without their comments); `tsc -p tsconfig.build.json` then writes the .d.ts files next to them.
export default defineConfig({
  plugins: [strippedWgsl()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    // A library: readable output for users' debuggers and bundlers (which minify anyway). Unminified
    // output also keeps the /*#__PURE__*/ annotations that let a bundler drop unused kernels.
    minify: false,
    lib: {
      // 'lattice-matmul' (everything browser-safe), '/gpu' and '/format' (parts of it), '/node' (adds
      // Dawn through the npm `webgpu` package, and file access).
      // The CLI (package.json `bin`), its worker-thread module and its adapter probe (a child process) are entries too.
      entry: {
        index: 'src/index.ts',
        gpu: 'src/gpu.ts',
        format: 'src/format.ts',
        node: 'src/node.ts',
        'cli/main': 'src/cli/main.ts',
        'cli/quantizeWorker': 'src/cli/quantizeWorker.ts',
        'cli/adapterProbe': 'src/cli/adapterProbe.ts',
      },
      formats: ['es'],
    },
    rollupOptions: {
      // Dawn for Node is loaded lazily by the Node device helper only; a browser app never needs it.
      external: ['webgpu', /^node:/],
      output: {
        // One output module per source module (dist/gpu/engine.js next to tsc's dist/gpu/engine.d.ts;
        // each shader as dist/shaders/<name>.js), so that with package.json's `"sideEffects": false`
        // an app's bundler drops every module the app does not reach, whole, before it even looks
        // inside: importing `gamma` does not pull in the GPU code or its WGSL.
        preserveModules: true,
        preserveModulesRoot: 'src',
        entryFileNames: '[name].js',
      },
    },
  },
});
