//! The attention block against the PyTorch reference (`golden/make_golden.py`), in f64: outputs and
//! the gradients of every weight and input agree to 1e-5 relative, with both attention implementations.

use std::path::PathBuf;

use candle_core::DType;
use perceiver_core::AttentionImpl;
use perceiver_core::golden::Golden;
use perceiver_core::layers::{Activation, AttentionBlock, BlockConfig};

#[test]
fn attention_block_matches_pytorch() {
    let golden = Golden::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/attention_block.safetensors"),
    )
    .expect("golden");
    for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
        let (varmap, vb) = perceiver_core::golden::f64_vars();
        let config = BlockConfig {
            dim: 8,
            context_dim: 6,
            heads: 2,
            widening: 2,
            activation: Activation::Gelu,
        };
        let mut block = AttentionBlock::cross(config, vb).expect("block");
        block.set_attention_impl(how);
        assert_eq!(golden.load_weights(&varmap).expect("weights"), 18);
        let x = golden.input("x", DType::F64).expect("x");
        let context = golden.input("context", DType::F64).expect("context");
        let mask = golden.get("input.mask").expect("mask");
        let out = block
            .forward_cross(x.as_tensor(), context.as_tensor(), Some(mask))
            .expect("forward");
        golden
            .check_backward(&out, &varmap, &[("x", &x), ("context", &context)], 1e-5)
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
    }
}
