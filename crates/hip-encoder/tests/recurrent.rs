//! The Perceiver-as-RNN encoder: the latents' shape, padding and token order within a step do
//! not matter, the order of the steps does, and its gradients match finite differences.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{RecurrentConfig, RecurrentEncoder};
use perceiver_core::layers::Activation;

fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn tensor(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(values(seed, shape.iter().product()), shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("tensor")
}

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
    // Larger weights than the initialisation's, so that every path carries signal.
    for (i, (_, var)) in varmap.data().lock().expect("lock").iter().enumerate() {
        let shape = var.dims().to_vec();
        var.set(&(tensor(100 + i as u64, &shape, dtype) * 0.5).expect("scale"))
            .expect("set");
    }
    (varmap, enc)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("diff")
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
    let loss = |enc: &RecurrentEncoder, tokens: &Tensor| -> f64 {
        (enc.forward(tokens, &mask).expect("forward") * &weights)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("loss")
    };
    let out = (enc.forward(tokens.as_tensor(), &mask).expect("forward") * &weights)
        .and_then(|t| t.sum_all())
        .expect("loss");
    let grads = out.backward().expect("backward");
    let eps = 1e-6;
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    vars.push(("tokens".into(), tokens.clone()));
    for (name, var) in &vars {
        let analytic = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"))
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("grad");
        let base = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("v");
        // A few entries of each tensor, spread over it.
        for i in (0..base.len()).step_by(base.len().div_ceil(5)) {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).expect("t"))
                    .expect("set");
                let value = loss(&enc, tokens.as_tensor());
                var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).expect("t"))
                    .expect("reset");
                value
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let tolerance = 1e-6 + 1e-5 * numeric.abs().max(analytic[i].abs());
            assert!(
                (numeric - analytic[i]).abs() <= tolerance,
                "{name}[{i}]: autograd {} vs finite difference {numeric}",
                analytic[i]
            );
        }
    }
}
