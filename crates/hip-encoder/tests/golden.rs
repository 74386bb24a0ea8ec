//! A two-level HiP encoder against the PyTorch reference
//! (`crates/perceiver-core/tests/golden/make_golden.py`), in f64, with padding and an empty group.

use std::path::PathBuf;

use candle_core::DType;
use hip_encoder::{HipConfig, HipEncoder, LevelConfig};
use perceiver_core::AttentionImpl;
use perceiver_core::golden::Golden;

#[test]
fn hip_encoder_matches_pytorch() {
    let golden = Golden::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hip.safetensors"),
    )
    .expect("golden");
    let config = HipConfig {
        widening: 2,
        ..HipConfig::new(
            6,
            vec![
                LevelConfig {
                    groups: 4,
                    latents: 3,
                    channels: 8,
                    self_attention_layers: 1,
                    heads: 2,
                },
                LevelConfig {
                    groups: 1,
                    latents: 4,
                    channels: 8,
                    self_attention_layers: 1,
                    heads: 2,
                },
            ],
        )
    };
    for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
        let (varmap, vb) = perceiver_core::golden::f64_vars();
        let mut encoder = HipEncoder::new(&config, vb).expect("encoder");
        encoder.set_attention_impl(how);
        golden.load_weights(&varmap).expect("weights");
        let tokens = golden.input("tokens", DType::F64).expect("tokens");
        let mask = golden.get("input.mask").expect("mask");
        let out = encoder
            .forward(tokens.as_tensor(), mask, None)
            .expect("forward");
        golden
            .check_backward(&out, &varmap, &[("tokens", &tokens)], 1e-5)
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
    }
}
