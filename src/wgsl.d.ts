// WGSL sources are imported as text (`import source from '../../shaders/x.wgsl?raw'`): Vite and vitest
// understand `?raw`; plain Node scripts get it from scripts/raw-loader.mjs.
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}
