//! The Perceiver-as-RNN encoder: the latents' shape, padding and token order within a step do
//! not matter, the order of the steps does, and its gradients match finite differences.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{RecurrentConfig, RecurrentEncoder};
use perceiver_core::layers::Activation;

mod common;
use common::{check_gradients, max_abs_diff, randomise, tensor};

const CONFIG: RecurrentConfig = RecurrentConfig {
    input_dim: 6,
    latents: 3,
    channels: 8,
    heads: 2,
    self_attention_layers: 1,
    widening: 2,
    activation: Activation::Gelu,
};

fn encoder(dtype: DType) -> (VarMap, RecurrentEncoder) {
    let varmap = VarMap::new();
    let enc = RecurrentEncoder::new(
        CONFIG,
        VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu),
    )
    .expect("encoder");
    randomise(&varmap, dtype);
    (varmap, enc)
}

#[test]
fn steps_are_read_in_order_and_padding_does_not_count() {
    let (_, enc) = encoder(DType::F32);
    let (b, h, n) = (2, 4, 5);
    let tokens = tensor(1, &[b, h, n, 6], DType::F32);
    let mask = Tensor::ones((b, h, n), DType::F32, &Device::Cpu).expect("mask");
    let out = enc.forward(&tokens, &mask).expect("forward");
    assert_eq!(out.dims(), &[b, 3, 8]);

    // Two padding tokens with arbitrary values: the same latents.
    let padded = Tensor::cat(&[&tokens, &tensor(2, &[b, h, 2, 6], DType::F32)], 2).expect("cat");
    let padded_mask = Tensor::cat(
        &[
            &mask,
            &Tensor::zeros((b, h, 2), DType::F32, &Device::Cpu).expect("z"),
        ],
        2,
    )
    .expect("cat");
    assert!(max_abs_diff(&out, &enc.forward(&padded, &padded_mask).expect("padded")) < 1e-5);

    // Tokens reversed within every step: the same latents.
    let index = Tensor::new(&[4u32, 3, 2, 1, 0], &Device::Cpu).expect("index");
    let within = tokens.index_select(&index, 2).expect("reverse");
    assert!(max_abs_diff(&out, &enc.forward(&within, &mask).expect("within")) < 1e-5);

    // The steps reversed: different latents (a recurrence, not a set).
    let steps = Tensor::new(&[3u32, 2, 1, 0], &Device::Cpu).expect("index");
    let reversed = tokens.index_select(&steps, 1).expect("reverse steps");
    assert!(max_abs_diff(&out, &enc.forward(&reversed, &mask).expect("steps")) > 1e-3);
}

/// Autograd against central finite differences in f64, for the input and every parameter.
#[test]
fn gradients_match_finite_differences() {
    let (varmap, enc) = encoder(DType::F64);
    let (b, h, n) = (1, 3, 4);
    let tokens = Var::from_tensor(&tensor(3, &[b, h, n, 6], DType::F64)).expect("var");
    let mut mask = vec![1.0f64; b * h * n];
    mask[n - 1] = 0.0; // one padding token in the first step
    let mask = Tensor::from_vec(mask, (b, h, n), &Device::Cpu).expect("mask");
    let weights = tensor(4, &[b, 3, 8], DType::F64);
    check_gradients(&varmap, &tokens, || {
        (enc.forward(tokens.as_tensor(), &mask).expect("forward") * &weights)
            .and_then(|t| t.sum_all())
            .expect("loss")
    });
}
