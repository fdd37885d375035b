import { defineConfig } from 'vite';

// Library build: `npm run build` bundles src/index.ts (shaders inlined from `?raw` imports) to dist/.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    // A library: readable output for users' debuggers and bundlers (which minify anyway).
    minify: false,
    lib: {
      // `index` for browsers and Node alike; `node` adds Dawn (npm `webgpu`) for Node.
      entry: { index: 'src/index.ts', node: 'src/node.ts' },
      formats: ['es'],
      fileName: (_format, name) => `${name}.js`,
    },
    rollupOptions: {
      // Dawn for Node is loaded lazily by the Node device helper only; a browser app never needs it.
      external: ['webgpu', /^node:/],
    },
  },
});
