//! A one-block decoder against the PyTorch reference
//! (`crates/perceiver-core/tests/golden/make_golden.py`), in f64, FiLM weights non-zero.

use std::path::PathBuf;

use candle_core::DType;
use metnet_decoder::{DecoderConfig, MetNetDecoder};
use perceiver_core::golden::Golden;
use perceiver_core::{AttentionImpl, FourierFeatures};

#[test]
fn decoder_matches_pytorch() {
    let golden = Golden::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/decoder.safetensors"),
    )
    .expect("golden");
    let config = DecoderConfig {
        blocks: 1,
        heads: 2,
        widening: 2,
        lead_time_encoding: FourierFeatures {
            dims: 1,
            bands: 4,
            max_freq: 8.0,
        },
        ..DecoderConfig::new(5, 8, 6)
    };
    for how in [AttentionImpl::Fused, AttentionImpl::Composed] {
        let (varmap, vb) = perceiver_core::golden::f64_vars();
        let mut decoder = MetNetDecoder::new(&config, vb).expect("decoder");
        decoder.set_attention_impl(how);
        golden.load_weights(&varmap).expect("weights");
        let queries = golden.input("queries", DType::F64).expect("queries");
        let bottleneck = golden.input("bottleneck", DType::F64).expect("bottleneck");
        let lead = golden.get("input.lead_hours").expect("lead");
        let mask = golden.get("input.query_mask").expect("mask");
        let out = decoder
            .forward(
                queries.as_tensor(),
                mask,
                lead,
                Some(bottleneck.as_tensor()),
            )
            .expect("forward");
        golden
            .check_backward(
                &out,
                &varmap,
                &[("queries", &queries), ("bottleneck", &bottleneck)],
                1e-5,
            )
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
    }
}
