//! HiP-style fan-out decoding: the bottleneck splits into one output group per forecast step;
//! each output group depends on the bottleneck through its own ancestors only, configurations
//! that do not split are refused, and its gradients match finite differences.

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{FanOut, FanOutConfig, LevelConfig};

mod common;
use common::{check_gradients, max_abs_diff, randomise, tensor};

fn level(groups: usize, latents: usize) -> LevelConfig {
    LevelConfig {
        groups,
        latents,
        channels: 8,
        self_attention_layers: 1,
        heads: 2,
    }
}

/// 1 → 2 → 6 groups over a bottleneck of 5 latents of 6 channels.
fn fan_out(dtype: DType) -> (VarMap, FanOut) {
    let config = FanOutConfig {
        widening: 2,
        ..FanOutConfig::new(6, vec![level(2, 3), level(6, 2)])
    };
    let varmap = VarMap::new();
    let f = FanOut::new(
        &config,
        VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu),
    )
    .expect("fan-out");
    randomise(&varmap, dtype);
    (varmap, f)
}

#[test]
fn one_output_group_per_last_level_group() {
    let (_, f) = fan_out(DType::F32);
    let out = f
        .forward(&tensor(1, &[3, 5, 6], DType::F32))
        .expect("forward");
    assert_eq!(out.dims(), &[3, 6, 2, 8]);
    let v = out
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("v");
    assert!(v.iter().all(|x| x.is_finite()));
    // Each output group has its own learned latents: groups differ for the same bottleneck.
    let g0 = out.i((.., 3)).expect("group 3");
    let g1 = out.i((.., 4)).expect("group 4");
    assert!(max_abs_diff(&g0, &g1) > 1e-3);
}

/// The first level's group 0 is the parent of output groups 0–2 and group 1 of groups 3–5:
/// changing group 0's learned latents moves its children and leaves the others exactly as they
/// were.
#[test]
fn an_output_group_depends_on_its_ancestors_only() {
    let (varmap, f) = fan_out(DType::F32);
    let bottleneck = tensor(2, &[2, 5, 6], DType::F32);
    let before = f.forward(&bottleneck).expect("forward");
    let latents = varmap.data().lock().expect("lock")["levels.0.latents"].clone();
    let moved = latents
        .as_tensor()
        .i(0)
        // Not a constant shift: the next level normalises what it reads.
        .and_then(|g| g + tensor(5, &[3, 8], DType::F32))
        .and_then(|g0| Tensor::cat(&[&g0.unsqueeze(0)?, &latents.as_tensor().i(1..2)?], 0))
        .expect("moved");
    latents.set(&moved).expect("set");
    let after = f.forward(&bottleneck).expect("forward");
    for g in 0..6 {
        let d = max_abs_diff(
            &before.i((.., g)).expect("before"),
            &after.i((.., g)).expect("after"),
        );
        if g < 3 {
            assert!(d > 1e-3, "group {g} is a child of group 0: {d}");
        } else {
            assert_eq!(d, 0.0, "group {g} is not a child of group 0");
        }
    }
}

#[test]
fn configs_that_do_not_split_are_refused() {
    let build = |levels: Vec<LevelConfig>| {
        let varmap = VarMap::new();
        FanOut::new(
            &FanOutConfig::new(6, levels),
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        )
        .err()
        .map(|e| e.to_string())
    };
    let message = build(vec![level(4, 2), level(6, 2)]).expect("4 does not split into 6");
    assert!(
        message.contains("4 groups do not split into 6"),
        "{message}"
    );
    assert!(build(vec![]).is_some());
    assert!(build(vec![level(0, 2)]).is_some());
    assert!(build(vec![level(2, 0)]).is_some());
    assert!(build(vec![level(4, 2), level(16, 2)]).is_none());
    // One level straight to the outputs is a fan-out too.
    assert!(build(vec![level(48, 2)]).is_none());
}

/// Autograd against central finite differences in f64, for the bottleneck and every parameter.
#[test]
fn gradients_match_finite_differences() {
    let (varmap, f) = fan_out(DType::F64);
    let bottleneck = Var::from_tensor(&tensor(3, &[1, 5, 6], DType::F64)).expect("var");
    let weights = tensor(4, &[1, 6, 2, 8], DType::F64);
    check_gradients(&varmap, &bottleneck, || {
        (f.forward(bottleneck.as_tensor()).expect("forward") * &weights)
            .and_then(|t| t.sum_all())
            .expect("loss")
    });
}
