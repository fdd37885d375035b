import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo page: `vite --config demo/vite.config.ts` serves it, `vite build --config demo/vite.config.ts`
// writes static files to demo-dist/. The page imports the library from ../src (WGSL via `?raw`, which
// Vite inlines as strings), so the dev server must be allowed to read the whole repository.
const demoDir = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: demoDir,
  // Relative asset URLs: the built page works from any folder (a file server, GitHub Pages, a sub-path).
  base: './',
  // Only 127.0.0.1 by default: a secure origin for WebGPU without exposing the dev server to the network.
  server: { host: '127.0.0.1', fs: { allow: [repoRoot] } },
  preview: { host: '127.0.0.1' },
  // The run worker imports the library as ES modules; the default (iife) cannot code-split them.
  worker: { format: 'es' },
  build: {
    outDir: fileURLToPath(new URL('../demo-dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
  },
});
