//! Runs the fused attention op and the composed reference on the same random inputs, and prints
//! how far apart they are and how long each takes (forward and backward).
//!
//! `cargo run --release -p perceiver-core --example attention`

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use perceiver_core::{AttentionImpl, attention};

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let (b, h, nq, nk, d) = (8, 4, 64, 1024, 32);
    let q = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, nq, d), &dev)?)?;
    let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, nk, d), &dev)?)?;
    let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, nk, d), &dev)?)?;
    // The last 100 keys of every example are padding.
    let mask = Tensor::ones((b, nk - 100), candle_core::DType::F32, &dev)?;
    let mask = Tensor::cat(
        &[
            &mask,
            &Tensor::zeros((b, 100), candle_core::DType::F32, &dev)?,
        ],
        1,
    )?;
    let mut results = Vec::new();
    for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
        let started = Instant::now();
        let out = attention(
            q.as_tensor(),
            k.as_tensor(),
            v.as_tensor(),
            Some(&mask),
            how,
        )?;
        let grads = out.sqr()?.sum_all()?.backward()?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let dq = grads
            .get(q.as_tensor())
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("no dq".into()))?;
        println!("{how:?}: forward + backward in {ms:.1} ms");
        results.push((out, dq));
    }
    let diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    };
    println!(
        "max |fused − composed|: output {:.2e}, dq {:.2e}",
        diff(&results[0].0, &results[1].0)?,
        diff(&results[0].1, &results[1].1)?
    );
    Ok(())
}
