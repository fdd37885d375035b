"""CUDA's floor per kernel on the same GPU, beside the WebGPU dispatch chain rows (bench/README.md).

The dispatch chain rows time what one more WebGPU dispatch costs through Dawn and Vulkan. This script
times the same kind of chain with the machine's PyTorch: 200 tiny kernels in one stream (each waits
for the previous one, as dependent dispatches do), launched one by one and replayed from a CUDA graph,
for one block of work (256 floats) and for 1024 blocks (65536 floats). Device only; no CPU fallback.

Usage: python3 bench/gpu/cuda_launch.py OUT.json
"""
import json
import statistics
import sys

import torch


def per_kernel_us(run, kernels, samples=7, warm_s=0.5):
    """Median GPU µs per kernel of `run` (which launches `kernels` kernels), by CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # Keep the clocks up first (the H200 idles down to 345 MHz within a second).
    warm_start = torch.cuda.Event(enable_timing=True)
    warm_start.record()
    while True:
        run()
        end.record()
        end.synchronize()
        if warm_start.elapsed_time(end) > warm_s * 1000:
            break
    times = []
    for _ in range(samples):
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / kernels)
    return statistics.median(times), times


def main():
    out = sys.argv[1]
    chain = 200
    rows = []
    for floats in (256, 65536):
        x = torch.zeros(floats, device='cuda', dtype=torch.float32)

        def launched():
            for _ in range(chain):
                x.add_(1.0)

        us, samples = per_kernel_us(launched, chain)
        rows.append({'name': f'{chain} dependent kernels (x += 1 on {floats} floats), launched one by one', 'usPerKernel': us, 'samplesUs': samples})

        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            launched()  # warm the allocator outside the capture
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            launched()
        us, samples = per_kernel_us(graph.replay, chain)
        rows.append({'name': f'{chain} dependent kernels (x += 1 on {floats} floats), one CUDA graph', 'usPerKernel': us, 'samplesUs': samples})
    result = {'device': torch.cuda.get_device_name(0), 'torch': torch.__version__, 'rows': rows}
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    for r in rows:
        print(f"{r['usPerKernel']:8.2f} µs  {r['name']}")


if __name__ == '__main__':
    main()
