// TypeScript 5 and earlier (package.json's `types@<6` condition, `typesVersions` "<6" for Node10
// resolution): their DOM library has no WebGPU, so the declarations bring @webgpu/types. TypeScript 6
// and later have WebGPU in "DOM" and read ../../dist/node.d.ts directly (@webgpu/types would collide).
/// <reference types="@webgpu/types" />
export * from '../../dist/node.js';
