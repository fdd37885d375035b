import { adapterIdentity } from '../gpu/device.js';
import { nodeGpu } from '../gpu/nodeGpu.js';

/*
 * A child process of the CLI (`quantize --device auto`): asks Dawn for its adapter and prints what it
 * is, as one line of JSON on stdout ({ "info": { vendor, architecture, device, description } }, or
 * { "info": null } when there is none). The parent drops this process's stderr: on a machine whose only
 * Vulkan driver is a software one, Dawn prints warnings about that driver's limits as it opens the
 * adapter, and the CLI does not use such an adapter anyway (worker threads quantize faster).
 */

const gpu = await nodeGpu();
const adapter = await gpu.requestAdapter();
const info = adapter === null ? null : adapterIdentity(adapter.info);
process.stdout.write(`${JSON.stringify({ info })}\n`, () => process.exit(0));
