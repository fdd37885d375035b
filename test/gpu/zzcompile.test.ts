import { it } from 'vitest';
import { readFileSync } from 'node:fs';
import { testDevice } from './gpuTestDevice.js';
it('compile times', async () => {
  const { device } = await testDevice();
  const body = readFileSync(process.env.WO_SHADER ?? 'shaders/weightonly_gemv.wgsl', 'utf8');
  const buf = (n: number, usage: number) => device.createBuffer({ size: n, usage });
  const params = buf(64, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(params, 0, new Uint32Array([1, 4, 1, 1, 1, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0, 0]));
  const s = () => buf(256, GPUBufferUsage.STORAGE);
  for (const bits of [8, 16, 32]) for (const vb of [1, 4]) {
    const t0 = performance.now();
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: `const CODE_BITS: u32 = ${bits}u;\nconst VECTOR_BLOCK: u32 = ${vb}u;\n${body}` });
    const bgl = device.createBindGroupLayout({ entries: [0, 1, 2, 3, 4, 5].map((i) => ({ binding: i, visibility: GPUShaderStage.COMPUTE, buffer: { type: i === 0 ? 'uniform' : i === 5 ? 'storage' : 'read-only-storage' } as const })) });
    const pipeline = await device.createComputePipelineAsync({ layout: device.createPipelineLayout({ bindGroupLayouts: [bgl] }), compute: { module, entryPoint: 'main' } });
    const t1 = performance.now();
    const bg = device.createBindGroup({ layout: bgl, entries: [params, s(), s(), s(), s(), s()].map((b, i) => ({ binding: i, resource: { buffer: b } })) });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass(); pass.setPipeline(pipeline); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1); pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const err = await device.popErrorScope();
    console.log(`int${bits} vb${vb}: create ${(t1 - t0).toFixed(0)} ms, first dispatch ${(performance.now() - t1).toFixed(0)} ms ${err ? err.message : ''}`);
  }
  device.destroy();
}, 300000);
