//! Attention forward and forward+backward, fused op vs composed reference, on the shape the issue
//! fixes (B=8, H=4, Nq=64, Nk=1024, D=32) and on the default model's shapes.
//!
//! Threads: run with `RAYON_NUM_THREADS=1` and `=2`; the count is part of each bench's name.
//! `RAYON_NUM_THREADS=1 cargo bench -p power-perceiver-benches --bench attention`
//! PyTorch's SDPA on the same shapes: `python3 benches/python/attention_sdpa.py --threads 1`.

use std::hint::black_box;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use perceiver_core::{AttentionImpl, attention};

/// (name, B, H, Nq, Nk, D, padded keys per batch row)
const SHAPES: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("b8_h4_q64_k1024_d32", 8, 4, 64, 1024, 32, 0),
    // HiP level 1 of the default model at batch 64: 64 x 8 groups, 4 latents over ~24 tokens.
    ("hip_cross_b512_h2_q4_k24_d16", 512, 2, 4, 24, 16, 3),
    // Decoder cross-attention at batch 64: 64 x 16 lead times, 1 query over 16 latents.
    ("decoder_cross_b1024_h4_q1_k16_d16", 1024, 4, 1, 16, 16, 0),
];

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rayon_threads)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn inputs(
    b: usize,
    h: usize,
    nq: usize,
    nk: usize,
    d: usize,
    padded: usize,
) -> (Var, Var, Var, Tensor, Tensor) {
    let dev = Device::Cpu;
    let r = |shape: &[usize]| {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev).expect("randn")).expect("var")
    };
    let mut mask = vec![1f32; b * nk];
    for row in mask.chunks_mut(nk) {
        row[nk - padded..].fill(0.0);
    }
    let mask = Tensor::from_vec(mask, (b, nk), &dev).expect("mask");
    let grad = Tensor::randn(0f32, 1.0, (b, h, nq, d), &dev).expect("grad");
    (
        r(&[b, h, nq, d]),
        r(&[b, h, nk, d]),
        r(&[b, h, nk, d]),
        mask,
        grad,
    )
}

fn bench(c: &mut Criterion) {
    let t = threads();
    for &(name, b, h, nq, nk, d, padded) in SHAPES {
        let (q, k, v, mask, weights) = inputs(b, h, nq, nk, d, padded);
        // 4·Nq·Nk·D FLOP per head forward (QKᵀ and PV), backward 2.5x that.
        let flop = 4 * b * h * nq * nk * d;
        let mut group = c.benchmark_group(format!("cpu_attention_{name}"));
        for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
            let id = format!("{how:?}_threads{t}").to_lowercase();
            group.throughput(Throughput::Elements(flop as u64));
            group.bench_function(BenchmarkId::new("fwd", &id), |bench| {
                bench.iter(|| {
                    black_box(
                        attention(
                            q.as_tensor(),
                            k.as_tensor(),
                            v.as_tensor(),
                            Some(&mask),
                            how,
                        )
                        .expect("fwd"),
                    )
                })
            });
            group.throughput(Throughput::Elements((flop as f64 * 3.5) as u64));
            group.bench_function(BenchmarkId::new("fwd_bwd", &id), |bench| {
                bench.iter(|| {
                    let out = attention(
                        q.as_tensor(),
                        k.as_tensor(),
                        v.as_tensor(),
                        Some(&mask),
                        how,
                    )
                    .expect("fwd");
                    let loss = (out * &weights).and_then(|x| x.sum_all()).expect("loss");
                    black_box(loss.backward().expect("bwd"))
                })
            });
        }
        group.finish();
    }
    let _ = DType::F32;
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
