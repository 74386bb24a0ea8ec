"""PyTorch's scaled_dot_product_attention on a CUDA GPU, on the shapes `gpu_check` times, in f32
and bf16, plus the bf16 matmul ceiling. A measuring tool only (PyTorch is never a dependency of
the workspace); scripts/gpu-check.sh runs it and prints our kernels' ratio to it.

    python3 benches/python/attention_sdpa_gpu.py > sdpa.jsonl

One JSON object per line: {"kind": "sdpa", "shape", "dtype", "pass": "forward"|"forward+backward",
"ms"} and {"kind": "matmul", "dtype": "bf16", "tflops"}. Times are medians of 50 after 10
warm-up runs, with CUDA events, and the same key-padding mask layout (none) as the timings.
"""
import json

import torch
import torch.nn.functional as F

# Keep in step with TIMINGS in crates/perceiver-core/examples/gpu_check.rs.
SHAPES = [
    ("model-hip-l1-cross", 512, 2, 4, 24, 16),
    ("model-dec-cross", 1024, 4, 1, 16, 16),
    ("bench", 8, 4, 64, 1024, 32),
    ("large-d64", 1, 16, 4096, 4096, 64),
    ("large-d128", 1, 16, 4096, 4096, 128),
]


def median_ms(fn, warmup=10, runs=50):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def main():
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name, b, h, nq, nk, d in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator(device=dev).manual_seed(0)
            q = torch.randn(b, h, nq, d, device=dev, dtype=dtype, generator=g, requires_grad=True)
            k = torch.randn(b, h, nk, d, device=dev, dtype=dtype, generator=g, requires_grad=True)
            v = torch.randn(b, h, nk, d, device=dev, dtype=dtype, generator=g, requires_grad=True)
            d_out = torch.randn(b, h, nq, d, device=dev, dtype=dtype, generator=g)

            def forward():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v)

            def both():
                out = F.scaled_dot_product_attention(q, k, v)
                out.backward(d_out)

            for label, fn in (("forward", forward), ("forward+backward", both)):
                ms = median_ms(fn)
                print(json.dumps({"kind": "sdpa", "shape": name, "dtype": str(dtype).split(".")[-1],
                                  "pass": label, "ms": ms}), flush=True)
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    bm = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ bm)
    print(json.dumps({"kind": "matmul", "dtype": "bf16", "n": n, "ms": ms,
                      "tflops": 2 * n ** 3 / (ms * 1e-3) / 1e12}), flush=True)


if __name__ == "__main__":
    main()
