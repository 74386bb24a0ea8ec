//! Attention forward and forward+backward, fused op vs composed reference, cross and self, on the
//! issue's shape (B=8, H=4, Nq=64, Nk=1024, D=32), the default model's shapes and a large shape.
//! Throughput is FLOP/s (criterion's "elements"): 4·Nq·Nk·D per head forward, 3.5× that for
//! forward+backward.
//!
//! The process is set up as the CLI's is (`trainer::configure_process`: candle's threads, glibc's
//! allocator). Threads are part of every id: `RAYON_NUM_THREADS=1 cargo bench -p power-perceiver-benches
//! --bench attention`. PyTorch's SDPA on the same shapes: `python3 benches/python/attention_sdpa.py
//! --threads 1`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use perceiver_core::AttentionImpl;
use power_perceiver_benches::{ATTENTION_SHAPES, AttentionFixture, threads};

fn bench(c: &mut Criterion) {
    let t = threads();
    for shape in ATTENTION_SHAPES {
        let fixture = AttentionFixture::new(shape);
        let flop = shape.forward_flop();
        let mut group = c.benchmark_group(format!("cpu_attention_{}", shape.name));
        if shape.name.starts_with("large") {
            group.sample_size(10);
        }
        for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
            let id = format!("{how:?}_threads{t}").to_lowercase();
            group.throughput(Throughput::Elements(flop));
            group.bench_function(BenchmarkId::new("fwd", &id), |b| {
                b.iter(|| black_box(fixture.forward(how)))
            });
            group.throughput(Throughput::Elements(flop * 7 / 2));
            group.bench_function(BenchmarkId::new("fwd_bwd", &id), |b| {
                b.iter(|| black_box(fixture.forward_backward(how)))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}

/// `criterion_main!` with the trainer's process set-up first (threads, allocator), so the op is
/// measured as `power-perceiver` runs it.
fn main() {
    // SAFETY: first statement of `main`: no other thread exists yet.
    unsafe { trainer::configure_process() };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
