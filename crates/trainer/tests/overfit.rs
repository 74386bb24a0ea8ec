//! The full model (embedders → HiP encoder → MetNet decoder) can drive the pinball loss of one
//! small real batch near zero, and every trainable parameter receives a finite, non-zero gradient.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use forecaster::model::BatchTensors;
use forecaster::{ModelConfig, PvForecaster};
use pv_data::{
    Dataset, ExampleConfig, FeatureWidths, LoadConfig, Split, build_batch, example_keys,
};

fn small_batch() -> (pv_data::Batch, FeatureWidths) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let dataset = Dataset::load_folder(&dir, LoadConfig::default()).expect("load");
    // Two target systems per example where they exist (the two UK systems are 170 km apart), so
    // the decoder's self-attention among systems has something to attend to: with one target its
    // softmax is constant and its query/key weights get no gradient, correctly.
    let config = ExampleConfig {
        max_target_systems: 2,
        context_radius_km: 200.0,
        ..ExampleConfig::default()
    };
    let keys = example_keys(&dataset, &config, Split::Train).expect("keys");
    // Four UK examples (PV, satellite, NWP) and four from system 50 (PV, observations), at midday.
    let ds = &dataset;
    let pick = |id: i64| {
        keys.iter()
            .copied()
            .filter(move |k| ds.systems[k.system].meta.ss_id == id && k.t0.0 % 86_400 == 12 * 3600)
    };
    let chosen: Vec<_> = pick(8215).take(4).chain(pick(50).take(4)).collect();
    assert_eq!(chosen.len(), 8);
    (
        build_batch(&dataset, &config, &chosen, Split::Train),
        FeatureWidths::of(&dataset),
    )
}

#[test]
fn the_model_overfits_one_batch_and_every_parameter_learns() {
    overfit(&ModelConfig::small(8));
}

/// The same with the model predicting a correction to smart persistence: the prior's learned
/// climatological index must learn too (the batch's system-50 examples are before dawn, where
/// k(t0) is undefined).
#[test]
fn the_model_with_a_smart_persistence_prior_overfits_and_every_parameter_learns() {
    overfit(&ModelConfig {
        smart_persistence_prior: true,
        ..ModelConfig::small(8)
    });
}

fn overfit(config: &ModelConfig) {
    let (batch, widths) = small_batch();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = PvForecaster::new(
        config,
        widths,
        15,
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
    )
    .expect("model");
    // A seeded initialisation makes the test deterministic.
    trainer::training::initialise(&varmap, 11).expect("initialise");
    let tensors = BatchTensors::new(&batch, &device).expect("tensors");
    let out = model.forward(&tensors).expect("forward");
    assert_eq!(out.dims(), &[8, 2, 16, 3]);

    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 3e-3,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
    .expect("adamw");
    let initial = model
        .loss(&tensors)
        .and_then(|l| l.to_scalar::<f32>())
        .expect("loss");
    let mut last = initial;
    for step in 0..300 {
        let loss = model.loss(&tensors).expect("loss");
        last = loss.to_scalar::<f32>().expect("scalar");
        assert!(last.is_finite(), "step {step}: loss {last}");
        if step == 1 {
            // After one update FiLM's output layers are no longer zero, so every parameter must now
            // receive a gradient (LayerNorm and softmax have a backward; see decision 0001).
            let grads = loss.backward().expect("backward");
            perceiver_core::golden::assert_every_parameter_learns(&varmap, &grads);
            opt.step(&grads).expect("step");
        } else {
            opt.backward_step(&loss).expect("step");
        }
    }
    eprintln!("pinball loss {initial:.4} -> {last:.5}");
    // Near zero: the pinball loss of an untrained model on this data is 0.1-0.5.
    assert!(
        last < 0.02 && last < 0.25 * initial,
        "loss went from {initial} to only {last}"
    );
}
