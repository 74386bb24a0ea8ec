//! A model checkpoint round trip without the training stack: an (untrained) model written with
//! this crate's format and metadata reads back into the same predictions, forecasts every system
//! of the bundled data at a t0, and refuses what it cannot use with errors naming the cause.

mod common;

use common::{bundled, write_model, write_model_with};

use std::path::PathBuf;

use candle_core::Device;
use forecaster::{Error, ModelSetup, SavedModel, forecast_at, latest_t0, predict};
use pv_data::{DataPaths, Dataset, Split, UnixTime, build_batch, example_keys};

#[test]
fn a_written_model_reads_back_and_forecasts() {
    let dataset = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, setup) = write_model(&dataset, dir.path());

    // Read from the run folder: same setup, same predictions bit for bit.
    let saved = SavedModel::read(dir.path(), &Device::Cpu).expect("read");
    assert_eq!(saved.setup, setup);
    let keys = example_keys(&dataset, &setup.examples, Split::Test).expect("keys");
    let batch = build_batch(&dataset, &setup.examples, &keys[..16], Split::Test);
    assert_eq!(
        predict(&saved.model, &batch, &Device::Cpu).expect("saved"),
        predict(&model, &batch, &Device::Cpu).expect("original")
    );

    // Data loaded afresh are adapted to the model's scalers, then forecast at the latest t0.
    let mut fresh = Dataset::load(
        &DataPaths::in_folder(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data"))
            .expect("data"),
        saved.setup.data,
    )
    .expect("load");
    saved.adapt(&mut fresh).expect("adapt");
    let t0 = latest_t0(&fresh).expect("observed data");
    let (rows, skipped) = forecast_at(&saved, &fresh, t0, 32, &Device::Cpu).expect("forecast");
    let k = setup.examples.lead_times;
    assert!(!rows.is_empty());
    assert_eq!(rows.len() % k, 0);
    assert_eq!(rows.len() / k + skipped.len(), fresh.systems.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.t0, t0);
        assert_eq!(
            row.lead_minutes,
            (i % k + 1) as i64 * setup.data.step_minutes
        );
        assert_eq!(row.quantiles_kw.len(), setup.model.quantiles.len());
        assert!(row.quantiles_kw.iter().all(|q| q.is_finite()), "{row:?}");
        // After the last observation nothing is observed.
        assert!(row.observed_kw.is_nan());
    }
}

#[test]
fn what_cannot_be_used_is_refused_by_name() {
    let dataset = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    write_model(&dataset, dir.path());
    let saved = SavedModel::read(dir.path(), &Device::Cpu).expect("read");

    let t0 = latest_t0(&dataset).expect("observed data");
    let off_grid = forecast_at(&saved, &dataset, UnixTime(t0.0 + 60), 32, &Device::Cpu)
        .expect_err("off the grid");
    assert!(matches!(off_grid, Error::OffGrid { .. }), "{off_grid}");
    assert!(
        off_grid.to_string().contains("15-minute grid"),
        "{off_grid}"
    );

    let far = UnixTime(t0.0 + 400 * 86_400);
    let none = forecast_at(&saved, &dataset, far, 32, &Device::Cpu).expect_err("no history");
    assert!(matches!(none, Error::NoHistory { .. }), "{none}");

    // A data folder whose NWP has other variables than the model's.
    let mut other = dataset.clone();
    if let Some(nwp) = other.nwp.as_mut() {
        nwp.variables[0] = "t2m".into();
    }
    let err = saved.adapt(&mut other).expect_err("other variables");
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // Not a checkpoint at all.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").expect("write");
    let err = SavedModel::read(&junk, &Device::Cpu)
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("junk.safetensors"), "{err}");
}

/// Every model variant of the ablation study (issue 14) is a configuration value: its checkpoint
/// records it, reads back into the same predictions, and forecasts.
#[test]
fn every_variant_round_trips_through_its_checkpoint_and_forecasts() {
    let dataset = bundled();
    let fan_out = forecaster::fan_out_to(16)
        .iter()
        .map(|l| {
            format!(
                "[[model.fan_out]]\ngroups = {}\nlatents = {}\nchannels = {}\nself_attention_layers = {}\nheads = {}\n",
                l.groups, l.latents, l.channels, l.self_attention_layers, l.heads
            )
        })
        .collect::<String>();
    let variants = [
        "[model]\nlead_time_conditioning = \"feature\"\n".to_owned(),
        "[model]\nencoder = \"none\"\n".to_owned(),
        "[model]\npositions = \"learned\"\n".to_owned(),
        "[model]\nencoder = \"flat\"\n".to_owned(),
        "[model]\nencoder = \"recurrent\"\n".to_owned(),
        "[model]\nencoder_runs = \"per_lead\"\n".to_owned(),
        fan_out,
    ];
    for text in variants {
        let setup: ModelSetup = toml::from_str(&text).expect("parse");
        setup.validate().unwrap_or_else(|e| panic!("{text}: {e}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let (model, setup) = write_model_with(&dataset, dir.path(), setup);
        let saved = SavedModel::read(dir.path(), &Device::Cpu).expect("read");
        assert_eq!(saved.setup, setup, "{text}");
        let keys = example_keys(&dataset, &setup.examples, Split::Test).expect("keys");
        let batch = build_batch(&dataset, &setup.examples, &keys[..4], Split::Test);
        assert_eq!(
            predict(&saved.model, &batch, &Device::Cpu).expect("saved"),
            predict(&model, &batch, &Device::Cpu).expect("original"),
            "{text}"
        );
        let t0 = latest_t0(&dataset).expect("observed data");
        let (rows, _) = forecast_at(&saved, &dataset, t0, 32, &Device::Cpu).expect("forecast");
        assert!(!rows.is_empty(), "{text}");
        assert!(
            rows.iter()
                .all(|r| r.quantiles_kw.iter().all(|q| q.is_finite())),
            "{text}"
        );
    }
}

/// A frozen model ([`PvForecaster::frozen`], what a read model and validation forecast with)
/// gives the variables' forecast bit for bit, but its forward records no graph: backward from
/// its output reaches no parameter, while from the variables' it reaches every one.
#[test]
fn a_frozen_model_forecasts_the_same_without_recording_a_graph() {
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};
    use forecaster::PvForecaster;
    use forecaster::model::BatchTensors;
    use pv_data::FeatureWidths;

    let dataset = bundled();
    let setup = ModelSetup::default();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let widths = FeatureWidths::of(&dataset);
    let step = setup.data.step_minutes;
    let model = PvForecaster::new(&setup.model, widths, step, vb).expect("model");
    forecaster::init::initialise(&varmap, 3).expect("initialise");
    let frozen =
        PvForecaster::frozen(&setup.model, widths, step, &varmap, &Device::Cpu).expect("frozen");
    let keys = example_keys(&dataset, &setup.examples, Split::Train).expect("keys");
    let batch = build_batch(&dataset, &setup.examples, &keys[..8], Split::Train);
    let tensors = BatchTensors::new(&batch, &Device::Cpu).expect("tensors");
    let values = |t: &candle_core::Tensor| {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values")
    };
    let tracked = model.forward(&tensors).expect("forward");
    let constant = frozen.forward(&tensors).expect("frozen forward");
    assert_eq!(values(&tracked), values(&constant));

    let vars: Vec<_> = varmap.all_vars();
    let reached = |out: &candle_core::Tensor| {
        let grads = out.sum_all().and_then(|s| s.backward()).expect("backward");
        vars.iter()
            .filter(|v| grads.get(v.as_tensor()).is_some())
            .count()
    };
    assert_eq!(reached(&constant), 0);
    assert!(
        reached(&tracked) > vars.len() / 2,
        "the variables' forward reaches them"
    );
}
