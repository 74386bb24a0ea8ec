//! The default model on the bundled data: the HiP encoder alone (forward+backward), the MetNet
//! decoder over all 16 lead times (forward+backward), one full training step (batch building,
//! forward, pinball loss, backward, clipping, AdamW), and a forecast of one evaluation batch of
//! 256 (batch building and forward: what each validation and `forecast` repeat). Throughput is
//! examples/s.
//!
//! `cargo bench -p power-perceiver-benches --bench model`; PyTorch's equivalent training step:
//! `python3 benches/python/train_step_torch.py`.

use std::hint::black_box;

use candle_core::Device;
use criterion::{Criterion, Throughput, criterion_group};
use forecaster::predict_mean;
use power_perceiver_benches::{
    DecoderFixture, EncoderFixture, TrainStepFixture, default_batch, spread_keys, threads,
};
use pv_data::{FeatureWidths, Split, build_batch};

fn bench(c: &mut Criterion) {
    let t = threads();
    let mut step = TrainStepFixture::new();
    let batch = default_batch(&step.dataset, &step.config);
    let encoder = EncoderFixture::new(&step.config, &batch);
    let decoder = DecoderFixture::new(
        &step.config,
        &batch,
        FeatureWidths::of(&step.dataset),
        step.dataset.config.step_minutes,
    );
    let mut group = c.benchmark_group("cpu_model");
    group.sample_size(10);
    group.throughput(Throughput::Elements(encoder.batch_size as u64));
    group.bench_function(format!("hip_encoder_fwd_bwd_b64_threads{t}"), |b| {
        b.iter(|| black_box(encoder.forward_backward()))
    });
    group.throughput(Throughput::Elements(decoder.batch_size as u64));
    group.bench_function(format!("decoder_all_leads_fwd_bwd_b64_threads{t}"), |b| {
        b.iter(|| black_box(decoder.forward_backward()))
    });
    group.throughput(Throughput::Elements(step.batch_size() as u64));
    group.bench_function(format!("train_step_b64_threads{t}"), |b| {
        b.iter(|| black_box(step.step()))
    });
    let eval = step.config.eval.batch_size;
    let keys = spread_keys(&step.dataset, &step.config, eval);
    // The model as validation and `forecast` run it: weights as constants, no graph recorded.
    let frozen = step.trainer.frozen_model().expect("frozen model");
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function(format!("forecast_b{eval}_threads{t}"), |b| {
        b.iter(|| {
            let batch = build_batch(&step.dataset, &step.config.examples, &keys, Split::Train);
            black_box(predict_mean(&[&frozen], &batch, &Device::Cpu).expect("forecast"))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

/// `criterion_main!` with the trainer's process set-up first (threads, allocator), so the step is measured as
/// `power-perceiver train` runs it.
fn main() {
    // SAFETY: first statement of `main`: no other thread exists yet.
    unsafe { trainer::configure_process() };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
