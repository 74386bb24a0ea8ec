//! Encodes a batch of grouped tokens with the default-sized hierarchy and prints the shapes of
//! each stage. `cargo run --release -p hip-encoder --example encode`

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{HipConfig, HipEncoder, LevelConfig};

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let config = HipConfig::new(
        32,
        vec![
            LevelConfig {
                groups: 8,
                latents: 4,
                channels: 32,
                self_attention_layers: 1,
                heads: 2,
            },
            LevelConfig {
                groups: 2,
                latents: 8,
                channels: 32,
                self_attention_layers: 1,
                heads: 2,
            },
            LevelConfig {
                groups: 1,
                latents: 16,
                channels: 64,
                self_attention_layers: 1,
                heads: 4,
            },
        ],
    );
    let varmap = VarMap::new();
    let encoder = HipEncoder::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    // 16 examples, 8 history steps (one group each), up to 21 tokens per step, some padding.
    let tokens = Tensor::randn(0f32, 1.0, (16, 8, 21, 32), &dev)?;
    let mask = Tensor::ones((16, 8, 18), DType::F32, &dev)?;
    let mask = Tensor::cat(&[&mask, &Tensor::zeros((16, 8, 3), DType::F32, &dev)?], 2)?;
    let bottleneck = encoder.forward(&tokens, &mask, None)?;
    let parameters: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    println!(
        "tokens {:?} -> bottleneck {:?} ({parameters} parameters)",
        tokens.dims(),
        bottleneck.dims()
    );
    Ok(())
}
