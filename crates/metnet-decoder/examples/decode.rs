//! Decodes 16 lead times for 3 systems from a random bottleneck and checks the quantiles are
//! ordered. `cargo run --release -p metnet-decoder --example decode`

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use metnet_decoder::{DecoderConfig, MetNetDecoder, pinball_loss};

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let config = DecoderConfig::new(13, 64, 64);
    let varmap = VarMap::new();
    let decoder = MetNetDecoder::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let (b, s, k) = (4, 3, 16);
    let queries = Tensor::randn(0f32, 1.0, (b, s, k, 13), &dev)?;
    let query_mask = Tensor::ones((b, s), DType::F32, &dev)?;
    let lead_hours = Tensor::arange(1u32, k as u32 + 1, &dev)?
        .to_dtype(DType::F32)?
        .affine(0.25, 0.0)?;
    let bottleneck = Tensor::randn(0f32, 1.0, (b, 16, 64), &dev)?;
    let quantiles = decoder.forward(&queries, &query_mask, &lead_hours, Some(&bottleneck))?;
    let targets = Tensor::rand(0f32, 1.0, (b, s, k), &dev)?;
    let mask = Tensor::ones((b, s, k), DType::F32, &dev)?;
    let loss = pinball_loss(&quantiles, &targets, &mask, &config.quantiles)?.to_scalar::<f32>()?;
    println!(
        "quantiles {:?}, pinball loss of an untrained decoder: {loss:.3}",
        quantiles.dims()
    );
    let q = quantiles.flatten_to(2)?.to_vec2::<f32>()?;
    assert!(
        q.iter().all(|row| row.windows(2).all(|w| w[0] <= w[1])),
        "quantiles must be ordered"
    );
    Ok(())
}
