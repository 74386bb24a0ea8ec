"""PyTorch's scaled_dot_product_attention on the shapes of benches/benches/attention.rs.

A measuring tool only (PyTorch is never a dependency of the workspace):

    python3 -m pip install -r benches/python/requirements.txt
    python3 benches/python/attention_sdpa.py --threads 1
    python3 benches/python/attention_sdpa.py --threads 2

Prints the median time of forward and of forward+backward for each shape, in the same units as
criterion, with the same key-padding mask.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# Every shape of ATTENTION_SHAPES in benches/src/lib.rs (a test there checks the two agree).
SHAPES = [
    ("b8_h4_q64_k1024_d32", 8, 4, 64, 1024, 32, 0),
    ("hip_cross_b512_h2_q4_k24_d16", 512, 2, 4, 24, 16, 3),
    ("hip_l1_self_b512_h2_q4_k4_d16", 512, 2, 4, 4, 16, 0),
    ("hip_l2_cross_b128_h2_q8_k16_d16", 128, 2, 8, 16, 16, 0),
    ("hip_l2_self_b128_h2_q8_k8_d16", 128, 2, 8, 8, 16, 0),
    ("hip_self_b64_h4_q16_k16_d16", 64, 4, 16, 16, 16, 0),
    ("decoder_cross_b1024_h4_q1_k16_d16", 1024, 4, 1, 16, 16, 0),
    ("large_b1_h8_q1024_k1024_d64", 1, 8, 1024, 1024, 64, 0),
]


def median_time(fn, min_seconds=2.0, warmup=3):
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times) < 10:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), (statistics.quantiles(times, n=10)[0], statistics.quantiles(times, n=10)[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, b, h, nq, nk, d, padded in SHAPES:
        q = torch.randn(b, h, nq, d, requires_grad=True)
        k = torch.randn(b, h, nk, d, requires_grad=True)
        v = torch.randn(b, h, nk, d, requires_grad=True)
        keep = torch.ones(b, nk, dtype=torch.bool)
        if padded:
            keep[:, nk - padded :] = False
        mask = keep[:, None, None, :]
        w = torch.randn(b, h, nq, d)

        def fwd():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        def fwd_bwd():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            (out * w).sum().backward()

        for label, fn in [("fwd", fwd), ("fwd_bwd", fwd_bwd)]:
            med, (lo, hi) = median_time(fn)
            print(f"cpu_attention_{name}/{label}/torch_sdpa_threads{args.threads}: median {med * 1e3:.3f} ms (p10 {lo * 1e3:.3f}, p90 {hi * 1e3:.3f})")


if __name__ == "__main__":
    main()
