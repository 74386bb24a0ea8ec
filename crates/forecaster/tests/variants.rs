//! The model's ablation switches (issue 14): lead-time conditioning by FiLM or as a query feature
//! only, the HiP encoder or none, and Fourier or learned position features. Every combination builds from the configuration, names its
//! parameters by what it has, forecasts the same shape, and every parameter it has learns; the
//! encoder-less model reads no token at all.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use forecaster::model::BatchTensors;
use forecaster::{
    EncoderKind, EncoderRuns, LeadTimeConditioning, ModelConfig, ModelSetup, PositionEncoding,
    PvForecaster,
};
use pv_data::features::Modality;
use pv_data::{Batch, Dataset, FeatureWidths, Split, build_batch, example_keys};

fn bundled_batch() -> (Dataset, Batch) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let setup = ModelSetup::default();
    let dataset = Dataset::load_folder(&dir, setup.data).expect("load");
    let keys = example_keys(&dataset, &setup.examples, Split::Train).expect("keys");
    // UK examples carry every modality; take some of each system.
    let picked: Vec<_> = keys.iter().step_by(keys.len() / 24).copied().collect();
    let batch = build_batch(&dataset, &setup.examples, &picked, Split::Train);
    (dataset, batch)
}

fn build(
    dataset: &Dataset,
    lead: LeadTimeConditioning,
    encoder: EncoderKind,
) -> (VarMap, PvForecaster) {
    build_with(dataset, lead, encoder, PositionEncoding::Fourier)
}

fn build_with(
    dataset: &Dataset,
    lead: LeadTimeConditioning,
    encoder: EncoderKind,
    positions: PositionEncoding,
) -> (VarMap, PvForecaster) {
    let config = ModelConfig {
        lead_time_conditioning: lead,
        encoder,
        positions,
        ..ModelConfig::small(8)
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = PvForecaster::new(&config, FeatureWidths::of(dataset), 15, vb).expect("model");
    (varmap, model)
}

#[test]
fn every_variant_forecasts_and_learns() {
    let (dataset, batch) = bundled_batch();
    let tensors = BatchTensors::new(&batch, &Device::Cpu).expect("tensors");
    let (b, s, k) = (batch.len(), batch.targets.shape[1], batch.targets.shape[2]);
    let variants = [LeadTimeConditioning::Film, LeadTimeConditioning::Feature]
        .into_iter()
        .flat_map(|l| {
            [
                EncoderKind::Hip,
                EncoderKind::Flat,
                EncoderKind::Recurrent,
                EncoderKind::QueriesOnly,
            ]
            .map(|e| (l, e))
        })
        .flat_map(|(l, e)| {
            [PositionEncoding::Fourier, PositionEncoding::Learned].map(|p| (l, e, p))
        });
    for (lead, encoder, positions) in variants {
        let (varmap, model) = build_with(&dataset, lead, encoder, positions);
        let names: Vec<String> = varmap
            .data()
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect();
        let has = |part: &str| names.iter().any(|n| n.contains(part));
        assert_eq!(has("film"), lead == LeadTimeConditioning::Film, "{lead:?}");
        let reads_tokens = encoder != EncoderKind::QueriesOnly;
        assert_eq!(has("encoder."), reads_tokens, "{encoder:?}");
        assert_eq!(has("embed.pv"), reads_tokens, "{encoder:?}");
        // The flat encoder has one level.
        assert_eq!(
            has("encoder.levels.1"),
            encoder == EncoderKind::Hip,
            "{encoder:?}: {names:?}"
        );
        assert_eq!(
            has("positions.frequency_offset"),
            reads_tokens && positions == PositionEncoding::Learned,
            "{positions:?}"
        );
        let variant = format!("{lead:?} {encoder:?} {positions:?}");
        let out = model.forward(&tensors).expect("forward");
        assert_eq!(out.dims(), &[b, s, k, 3], "{variant}");
        let loss = model.loss(&tensors).expect("loss");
        assert!(loss.to_scalar::<f32>().expect("scalar").is_finite());
        let grads = loss.backward().expect("backward");
        for (name, var) in varmap.data().lock().expect("lock").iter() {
            let Some(g) = grads.get(var.as_tensor()) else {
                assert!(
                    unused_with_one_target(name, s),
                    "{variant} {name}: no gradient"
                );
                continue;
            };
            let v = g.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("v");
            assert!(v.iter().all(|x| x.is_finite()), "{variant} {name}");
            // PV tokens are in every example (the picked ones need not reach the UK inputs).
            if name == "embed.pv.positions.frequency_offset" {
                assert!(v.iter().any(|&x| x != 0.0), "{name}: the frequencies learn");
            }
        }
    }
}

/// Whether parameter `name` has no say with `s` target systems per example: with one, the
/// decoder's self-attention among them attends to a single key, whose softmax weight is 1
/// whatever the query and key projections (`MultiHeadAttention` then skips them).
fn unused_with_one_target(name: &str, s: usize) -> bool {
    s == 1
        && name.starts_with("decoder.blocks.")
        && (name.contains(".self_attention.attn.q.") || name.contains(".self_attention.attn.k."))
}

/// Every parameter has a finite gradient (but those [`unused_with_one_target`] with `s` target
/// systems), and those `must_learn` names a non-zero one.
fn assert_gradients<'a>(
    vars: impl Iterator<Item = (&'a String, &'a candle_core::Var)>,
    grads: &candle_core::backprop::GradStore,
    s: usize,
    must_learn: impl Fn(&str) -> bool,
) {
    for (name, var) in vars {
        let Some(g) = grads.get(var.as_tensor()) else {
            assert!(unused_with_one_target(name, s), "{name}: no gradient");
            continue;
        };
        let g = g
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("gradient");
        assert!(g.iter().all(|x| x.is_finite()), "{name}");
        if must_learn(name) {
            assert!(g.iter().any(|&x| x != 0.0), "{name}: no signal");
        }
    }
}

/// The model's quantiles for `batch`, flattened.
fn forecast(model: &PvForecaster, batch: &Batch) -> Vec<f32> {
    model
        .forward(&BatchTensors::new(batch, &Device::Cpu).expect("tensors"))
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("forward")
}

#[test]
fn the_encoder_less_model_reads_no_token() {
    let (dataset, mut batch) = bundled_batch();
    let (_, model) = build(
        &dataset,
        LeadTimeConditioning::Film,
        EncoderKind::QueriesOnly,
    );
    let before = forecast(&model, &batch);
    for m in Modality::ALL {
        for v in &mut batch.tokens[m].values.data {
            *v += 3.0;
        }
    }
    let after = forecast(&model, &batch);
    assert_eq!(before, after);
    // The HiP model does read them.
    let (_, hip) = build(&dataset, LeadTimeConditioning::Film, EncoderKind::Hip);
    let (_, fresh) = bundled_batch();
    let a = forecast(&hip, &fresh);
    let b = forecast(&hip, &batch);
    assert_ne!(a, b);
}

#[test]
fn variants_are_configuration_values_with_clear_errors() {
    let setup: ModelSetup =
        toml::from_str("[model]\nencoder = \"none\"\nlead_time_conditioning = \"feature\"\n")
            .expect("parse");
    assert_eq!(setup.model.encoder, EncoderKind::QueriesOnly);
    assert_eq!(
        setup.model.lead_time_conditioning,
        LeadTimeConditioning::Feature
    );
    // Absent keys mean the design (old checkpoints read as before).
    let default: ModelSetup = toml::from_str("[model]\ntoken_dim = 32\n").expect("parse");
    assert_eq!(default.model.encoder, EncoderKind::Hip);
    assert_eq!(
        default.model.lead_time_conditioning,
        LeadTimeConditioning::Film
    );
    // A combination that makes no sense is refused by name.
    let nonsense: ModelSetup =
        toml::from_str("[model]\nencoder = \"none\"\npositions = \"learned\"\n").expect("parse");
    let message = nonsense.validate().expect_err("refused");
    assert!(
        message.contains("positions") && message.contains("encoder"),
        "{message}"
    );
    let flat: ModelSetup = toml::from_str("[model]\nencoder = \"flat\"\n").expect("parse");
    assert_eq!(flat.model.encoder, EncoderKind::Flat);
    let err = toml::from_str::<ModelSetup>("[model]\nencoder = \"lstm\"\n").expect_err("refused");
    let message = err.to_string();
    assert!(
        ["hip", "flat", "recurrent", "none"]
            .iter()
            .all(|v| message.contains(v)),
        "{message}"
    );
}

/// The flat encoder reads one set of tokens: moving whole history steps' tokens between steps
/// changes nothing, while HiP, which groups tokens by step, and the recurrent encoder, which
/// reads them in order, see the difference.
#[test]
fn the_flat_encoder_sees_one_set_and_hip_sees_steps() {
    let (dataset, batch) = bundled_batch();
    let mut swapped = batch.clone();
    for m in Modality::ALL {
        let tokens = &mut swapped.tokens[m];
        let [b, h, n, f] = tokens.values.shape[..] else {
            panic!("[B, H, N, F]")
        };
        assert!(h >= 2);
        for example in 0..b {
            for token in 0..n {
                let at = |step: usize| (example * h + step) * n + token;
                tokens.mask.data.swap(at(0), at(1));
                for c in 0..f {
                    tokens.values.data.swap(at(0) * f + c, at(1) * f + c);
                }
            }
        }
    }
    let differs = |encoder| {
        let (_, model) = build(&dataset, LeadTimeConditioning::Film, encoder);
        let (a, b) = (forecast(&model, &batch), forecast(&model, &swapped));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(differs(EncoderKind::Flat) < 1e-5);
    assert!(differs(EncoderKind::Hip) > 1e-4);
    // The recurrent encoder reads the steps in order.
    assert!(differs(EncoderKind::Recurrent) > 1e-4);
}

/// The MetNet way (`encoder_runs = "per_lead"`): the encoder runs once per lead time with its
/// latents FiLM-conditioned on it. At initialisation the FiLM layers are the identity, so every
/// lead's bottleneck is the shared one and the forecast equals the encoder-once model's with the
/// same weights; once the FiLM layers are not the identity, the forecasts differ.
#[test]
fn the_metnet_way_runs_the_encoder_per_lead_time() {
    let (dataset, batch) = bundled_batch();
    let build = |runs: EncoderRuns| {
        let config = ModelConfig {
            encoder_runs: runs,
            ..ModelConfig::small(8)
        };
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = PvForecaster::new(&config, FeatureWidths::of(&dataset), 15, vb).expect("model");
        (varmap, model)
    };
    let (once_vars, once) = build(EncoderRuns::Once);
    let (per_vars, per_lead) = build(EncoderRuns::PerLead);
    let per = per_vars.data().lock().expect("lock").clone();
    let film: Vec<&String> = per
        .keys()
        .filter(|n| n.contains("encoder.levels.0.film"))
        .collect();
    assert!(
        !film.is_empty(),
        "the encoder's levels are FiLM-conditioned"
    );
    // The same weights wherever the two models share a parameter.
    for (name, var) in once_vars.data().lock().expect("lock").iter() {
        per[name].set(var.as_tensor()).expect("copy");
    }
    let (a, b) = (forecast(&once, &batch), forecast(&per_lead, &batch));
    let max_diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    };
    assert!(
        max_diff(&a, &b) < 1e-4,
        "identity FiLM: {}",
        max_diff(&a, &b)
    );
    for (name, var) in per.iter().filter(|(n, _)| n.contains(".film.")) {
        let shape = var.dims().to_vec();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.05)
            .collect();
        var.set(&candle_core::Tensor::from_vec(values, shape, &Device::Cpu).expect("t"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let c = forecast(&per_lead, &batch);
    assert!(max_diff(&a, &c) > 1e-3);
    // Every parameter learns, the lead-time FiLM of the encoder included.
    let tensors = BatchTensors::new(&batch, &Device::Cpu).expect("tensors");
    let grads = per_lead
        .loss(&tensors)
        .and_then(|l| l.backward())
        .expect("backward");
    let s = batch.targets.shape[1];
    assert_gradients(per.iter(), &grads, s, |name| {
        name.contains("encoder.levels.0.film")
    });
    // Only with an encoder that has latents to condition.
    let nonsense: ModelSetup =
        toml::from_str("[model]\nencoder = \"recurrent\"\nencoder_runs = \"per_lead\"\n")
            .expect("parse");
    let message = nonsense.validate().expect_err("refused");
    assert!(message.contains("encoder_runs"), "{message}");
}

/// The `[[model.fan_out]]` levels of the ablation (`fan_out_to(16)`): 1 → 4 → 16 groups, one
/// per lead time.
const FAN_OUT: &str = "[[model.fan_out]]\ngroups = 4\nlatents = 8\nchannels = 32\nself_attention_layers = 1\nheads = 2\n\n[[model.fan_out]]\ngroups = 16\nlatents = 4\nchannels = 32\nself_attention_layers = 1\nheads = 2\n";

/// HiP-style fan-out decoding (`model.fan_out`): the bottleneck splits into one group per lead
/// time, and each lead's queries read only their own group: changing one output group's learned
/// latents moves that lead's forecasts and no other's. Every parameter learns.
#[test]
fn fan_out_gives_each_lead_time_its_own_group() {
    let (dataset, batch) = bundled_batch();
    let setup: ModelSetup = toml::from_str(FAN_OUT).expect("parse");
    setup.validate().expect("a valid fan-out");
    assert_eq!(setup.model.fan_out, forecaster::fan_out_to(16));
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model =
        PvForecaster::new(&setup.model, FeatureWidths::of(&dataset), 15, vb).expect("model");
    forecaster::init::initialise(&varmap, 3).expect("init");
    let (b, s, k) = (batch.len(), batch.targets.shape[1], batch.targets.shape[2]);
    assert_eq!(k, 16);
    let before = forecast(&model, &batch);
    assert_eq!(before.len(), b * s * k * 3);
    let latents = varmap.data().lock().expect("lock")["fan_out.levels.1.latents"].clone();
    let (groups, l, c) = latents.as_tensor().dims3().expect("[G, L, C]");
    assert_eq!(groups, 16);
    let lead = 5;
    let mut values = latents
        .as_tensor()
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("values");
    for (i, v) in values[lead * l * c..(lead + 1) * l * c]
        .iter_mut()
        .enumerate()
    {
        *v += ((i * 7 % 5) as f32 - 2.0) * 0.5;
    }
    latents
        .set(&candle_core::Tensor::from_vec(values, (groups, l, c), &Device::Cpu).expect("t"))
        .expect("set");
    let after = forecast(&model, &batch);
    // [B, S, K, Q] flattened: the lead is the third axis.
    let mut moved = vec![0.0f32; k];
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        let at = i / 3 % k;
        moved[at] = moved[at].max((x - y).abs());
    }
    for (at, m) in moved.iter().enumerate() {
        if at == lead {
            assert!(*m > 1e-4, "lead {at} reads the changed group: {moved:?}");
        } else {
            assert_eq!(*m, 0.0, "lead {at} reads its own group only: {moved:?}");
        }
    }
    let tensors = BatchTensors::new(&batch, &Device::Cpu).expect("tensors");
    let grads = model
        .loss(&tensors)
        .and_then(|l| l.backward())
        .expect("backward");
    assert_gradients(
        varmap.data().lock().expect("lock").iter(),
        &grads,
        s,
        |name| name.starts_with("fan_out.") || name.starts_with("encoder."),
    );
}

#[test]
fn fan_out_combinations_that_make_no_sense_are_refused() {
    let refused = |toml_text: &str| {
        toml::from_str::<ModelSetup>(toml_text)
            .expect("parse")
            .validate()
            .expect_err("refused")
    };
    let message = refused(&format!("[model]\nencoder = \"none\"\n\n{FAN_OUT}"));
    assert!(
        message.contains("fan_out") && message.contains("encoder"),
        "{message}"
    );
    let message = refused(&format!(
        "[model]\nencoder_runs = \"per_lead\"\n\n{FAN_OUT}"
    ));
    assert!(
        message.contains("fan_out") && message.contains("per_lead"),
        "{message}"
    );
    let message = refused(&format!("[examples]\nlead_times = 8\n\n{FAN_OUT}"));
    assert!(
        message.contains("16 groups") && message.contains("lead_times is 8"),
        "{message}"
    );
    let message = refused(&FAN_OUT.replace("groups = 4\n", "groups = 3\n"));
    assert!(
        message.contains("3 groups do not split into 16"),
        "{message}"
    );
    // The other encoders have a bottleneck to split.
    for encoder in ["flat", "recurrent"] {
        toml::from_str::<ModelSetup>(&format!("[model]\nencoder = \"{encoder}\"\n\n{FAN_OUT}"))
            .expect("parse")
            .validate()
            .unwrap_or_else(|e| panic!("{encoder}: {e}"));
    }
}
