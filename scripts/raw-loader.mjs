// Node module hook: makes `import text from './file.wgsl?raw'` work outside Vite (bench scripts run
// with `node --import tsx --import ./scripts/raw-loader.mjs`). Vite and vitest handle `?raw` themselves.
import { register } from 'node:module';

register('./raw-loader-hooks.mjs', import.meta.url);
