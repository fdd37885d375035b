import { defineConfig } from 'vite';

// Library build: `npm run build` bundles the four entry points to dist/ (shaders inlined from `?raw`
// imports); `tsc -p tsconfig.build.json` then writes the .d.ts files next to them.
export default defineConfig({
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
      // The CLI (package.json `bin`) and its worker-thread module are entries too.
      entry: {
        index: 'src/index.ts',
        gpu: 'src/gpu.ts',
        format: 'src/format.ts',
        node: 'src/node.ts',
        'cli/main': 'src/cli/main.ts',
        'cli/quantizeWorker': 'src/cli/quantizeWorker.ts',
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
