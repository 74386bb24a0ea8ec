//! HiP encoder invariants: token order within a group and padding tokens do not matter; groups
//! merge to one bottleneck; MetNet mode conditions on the lead time; gradients reach every parameter.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{HipConfig, HipEncoder, LevelConfig};

mod common;
use common::{max_abs_diff, randomise, tensor as seeded, with_input};

fn assert_finite(t: &Tensor) {
    let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("v");
    assert!(v.iter().all(|x| x.is_finite()), "non-finite values");
}

fn tensor(seed: u64, shape: &[usize]) -> Tensor {
    seeded(seed, shape, DType::F32)
}

fn config(lead_time_dim: Option<usize>) -> HipConfig {
    HipConfig {
        lead_time_dim,
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
                    groups: 2,
                    latents: 4,
                    channels: 8,
                    self_attention_layers: 1,
                    heads: 2,
                },
                LevelConfig {
                    groups: 1,
                    latents: 5,
                    channels: 12,
                    self_attention_layers: 1,
                    heads: 3,
                },
            ],
        )
    }
}

fn encoder(lead_time_dim: Option<usize>) -> (VarMap, HipEncoder) {
    encoder_in(DType::F32, lead_time_dim)
}

fn encoder_in(dtype: DType, lead_time_dim: Option<usize>) -> (VarMap, HipEncoder) {
    let varmap = VarMap::new();
    let enc = HipEncoder::new(
        &config(lead_time_dim),
        VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu),
    )
    .expect("encoder");
    (varmap, enc)
}

#[test]
fn the_bottleneck_has_the_last_levels_shape() {
    let (_, enc) = encoder(None);
    let out = enc
        .forward(
            &tensor(1, &[2, 4, 7, 6]),
            &Tensor::ones((2, 4, 7), DType::F32, &Device::Cpu).expect("m"),
            None,
        )
        .expect("fwd");
    assert_eq!(out.dims(), &[2, 5, 12]);
    assert_finite(&out);
}

#[test]
fn token_order_within_a_group_does_not_matter() {
    let (_, enc) = encoder(None);
    let tokens = tensor(2, &[2, 4, 7, 6]);
    let mask = Tensor::ones((2, 4, 7), DType::F32, &Device::Cpu).expect("mask");
    let out = enc.forward(&tokens, &mask, None).expect("fwd");
    let perm = Tensor::new(&[3u32, 0, 6, 1, 5, 2, 4], &Device::Cpu).expect("perm");
    let permuted = tokens.index_select(&perm, 2).expect("permute");
    let out_p = enc.forward(&permuted, &mask, None).expect("fwd");
    // Equal up to f32 rounding: the order of the softmax sums changes with the token order.
    let scale = out
        .abs()
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("scale");
    let diff = max_abs_diff(&out, &out_p);
    assert!(
        diff < 1e-5 * (1.0 + f64::from(scale)) * 10.0,
        "difference {diff} at output scale {scale}"
    );
    // Moving a token to another group does change the output (the test can fail).
    let part = |r: std::ops::Range<usize>| tokens.i((.., r)).expect("slice");
    let swapped = Tensor::cat(&[part(1..2), part(0..1), part(2..4)], 1).expect("swap");
    assert!(max_abs_diff(&out, &enc.forward(&swapped, &mask, None).expect("fwd")) > 1e-4);
}

#[test]
fn padding_tokens_do_not_change_the_output() {
    let (_, enc) = encoder(None);
    let tokens = tensor(3, &[2, 4, 5, 6]);
    let mask = Tensor::ones((2, 4, 5), DType::F32, &Device::Cpu).expect("mask");
    let out = enc.forward(&tokens, &mask, None).expect("fwd");
    // Append 3 padding tokens of large random values to every group.
    let padded = Tensor::cat(
        &[&tokens, &(tensor(4, &[2, 4, 3, 6]) * 100.0).expect("pad")],
        2,
    )
    .expect("cat");
    let padded_mask = Tensor::cat(
        &[
            &mask,
            &Tensor::zeros((2, 4, 3), DType::F32, &Device::Cpu).expect("z"),
        ],
        2,
    )
    .expect("cat");
    let out_p = enc.forward(&padded, &padded_mask, None).expect("fwd");
    assert!(max_abs_diff(&out, &out_p) < 1e-5);
    // The same tokens unmasked do change it.
    let unmasked = Tensor::ones((2, 4, 8), DType::F32, &Device::Cpu).expect("m");
    assert!(max_abs_diff(&out, &enc.forward(&padded, &unmasked, None).expect("fwd")) > 1e-3);
}

#[test]
fn a_group_with_only_padding_is_finite() {
    let (_, enc) = encoder(None);
    let mut mask = vec![1f32; 2 * 4 * 5];
    mask[5..10].fill(0.0); // batch 0, group 1: nothing observed
    let mask = Tensor::from_vec(mask, (2, 4, 5), &Device::Cpu).expect("mask");
    let out = enc
        .forward(&tensor(5, &[2, 4, 5, 6]), &mask, None)
        .expect("fwd");
    assert_finite(&out);
}

#[test]
fn metnet_mode_conditions_on_the_lead_time() {
    let (varmap, enc) = encoder(Some(4));
    let tokens = tensor(6, &[2, 4, 5, 6]);
    let mask = Tensor::ones((2, 4, 5), DType::F32, &Device::Cpu).expect("mask");
    assert!(
        enc.forward(&tokens, &mask, None).is_err(),
        "MetNet mode needs a lead time"
    );
    // FiLM starts as the identity, so perturb its output layers to make the conditioning visible.
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        if name.contains("film.out") {
            var.set(&(tensor(7, var.dims()) * 0.5).expect("w"))
                .expect("set");
        }
    }
    let a = enc
        .forward(&tokens, &mask, Some(&tensor(8, &[2, 4])))
        .expect("fwd");
    let b = enc
        .forward(&tokens, &mask, Some(&tensor(9, &[2, 4])))
        .expect("fwd");
    assert!(max_abs_diff(&a, &b) > 1e-4);
}

#[test]
fn every_parameter_receives_a_gradient() {
    let (varmap, enc) = encoder(None);
    let mask = Tensor::ones((2, 4, 5), DType::F32, &Device::Cpu).expect("mask");
    let out = enc
        .forward(&tensor(10, &[2, 4, 5, 6]), &mask, None)
        .expect("fwd");
    let loss = (out * tensor(11, &[2, 5, 12]))
        .and_then(|t| t.sum_all())
        .expect("loss");
    let grads = loss.backward().expect("backward");
    perceiver_core::golden::assert_every_parameter_learns(&varmap, &grads);
}

#[test]
fn configs_that_do_not_merge_to_one_group_are_refused() {
    let bad = HipConfig::new(
        6,
        vec![LevelConfig {
            groups: 4,
            latents: 3,
            channels: 8,
            self_attention_layers: 0,
            heads: 2,
        }],
    );
    assert!(bad.validate().is_err());
    let bad = HipConfig::new(
        6,
        vec![
            LevelConfig {
                groups: 4,
                latents: 3,
                channels: 8,
                self_attention_layers: 0,
                heads: 2,
            },
            LevelConfig {
                groups: 3,
                latents: 3,
                channels: 8,
                self_attention_layers: 0,
                heads: 2,
            },
            LevelConfig {
                groups: 1,
                latents: 3,
                channels: 8,
                self_attention_layers: 0,
                heads: 2,
            },
        ],
    );
    assert!(bad.validate().is_err());
}

/// MetNet mode once per lead time: `forward_per_lead` (the first level's latents of every lead
/// attend to the tokens together) gives what `forward` gives on the tokens repeated per lead
/// time, example-major, and so do the gradients of the tokens and of every parameter. In f64 with
/// seeded parameters, so that the two orders of summation agree to rounding and the comparison
/// does not depend on the (unseeded) initialisation.
#[test]
fn forward_per_lead_equals_the_encoder_run_per_lead_time() {
    let f64_tensor = |seed, shape: &[usize]| seeded(seed, shape, DType::F64);
    let (varmap, enc) = encoder_in(DType::F64, Some(4));
    randomise(&varmap, DType::F64);
    let (b, g, n, k) = (2, 4, 5, 3);
    let tokens = candle_core::Var::from_tensor(&f64_tensor(12, &[b, g, n, 6])).expect("var");
    let mut mask = vec![1f64; b * g * n];
    mask[3] = 0.0;
    mask[n * g + 7] = 0.0;
    let mask = Tensor::from_vec(mask, (b, g, n), &Device::Cpu).expect("mask");
    let lead = f64_tensor(13, &[k, 4]);
    let shared = enc
        .forward_per_lead(tokens.as_tensor(), &mask, &lead)
        .expect("per lead");
    let repeat = |t: &Tensor| {
        let mut dims = t.dims().to_vec();
        let rest = dims.split_off(1);
        let mut wide = vec![b, k];
        wide.extend(&rest);
        let mut flat = vec![b * k];
        flat.extend(&rest);
        t.unsqueeze(1)
            .and_then(|t| t.broadcast_as(wide))
            .and_then(|t| t.reshape(flat))
            .expect("repeat")
    };
    let rows = lead
        .unsqueeze(0)
        .and_then(|l| l.broadcast_as((b, k, 4)))
        .and_then(|l| l.reshape((b * k, 4)))
        .expect("rows");
    let separate = enc
        .forward(&repeat(tokens.as_tensor()), &repeat(&mask), Some(&rows))
        .expect("repeated");
    assert_eq!(shared.dims(), &[b * k, 5, 12]);
    assert!(max_abs_diff(&shared, &separate) < 1e-10);
    let weights = f64_tensor(14, &[b * k, 5, 12]);
    let gradients = |out: &Tensor| {
        (out * &weights)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .expect("backward")
    };
    let (g1, g2) = (gradients(&shared), gradients(&separate));
    for (name, var) in with_input(&varmap, &tokens) {
        let (a, c) = (g1.get(var.as_tensor()), g2.get(var.as_tensor()));
        let (Some(a), Some(c)) = (a, c) else {
            panic!("{name}: a gradient in one and not the other");
        };
        let scale = c
            .abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f64>())
            .expect("scale");
        assert!(
            max_abs_diff(a, c) <= 1e-10 * (1.0 + scale),
            "{name}: {}",
            max_abs_diff(a, c)
        );
    }
    let (_, plain) = encoder_in(DType::F64, None);
    assert!(
        plain
            .forward_per_lead(tokens.as_tensor(), &mask, &lead)
            .is_err(),
        "needs lead-time FiLM"
    );
}
