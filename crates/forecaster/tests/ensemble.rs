//! Several checkpoints read as an ensemble: the forecast is the mean of the members' quantiles,
//! one checkpoint twice is that checkpoint, members may differ in architecture but not in how
//! they see data or which quantiles they give, and an ensemble forecasts like one model.

mod common;

use common::{bundled, write_model_seeded};

use std::path::{Path, PathBuf};

use candle_core::Device;
use forecaster::config::EncoderKind;
use forecaster::{Error, ModelSetup, SavedModel, forecast_at, latest_t0, predict, predict_mean};
use pv_data::{Batch, Dataset, Split, build_batch, example_keys};

fn test_batch(dataset: &Dataset) -> Batch {
    let examples = ModelSetup::default().examples;
    let keys = example_keys(dataset, &examples, Split::Test).expect("keys");
    build_batch(dataset, &examples, &keys[..24], Split::Test)
}

fn write(dataset: &Dataset, dir: &Path, name: &str, setup: ModelSetup, seed: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("mkdir");
    write_model_seeded(dataset, &path, setup, seed);
    path
}

#[test]
fn an_ensemble_forecasts_the_mean_of_its_members_quantiles() {
    let dataset = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(&dataset, dir.path(), "a", ModelSetup::default(), 1);
    let b = write(&dataset, dir.path(), "b", ModelSetup::default(), 2);
    // Another architecture, the same data and quantiles: a member too.
    let mut flat = ModelSetup::default();
    flat.model.encoder = EncoderKind::Flat;
    let c = write(&dataset, dir.path(), "c", flat, 3);
    let batch = test_batch(&dataset);
    let one = |p: &Path| {
        let saved = SavedModel::read(p, &Device::Cpu).expect("read");
        predict(&saved.model, &batch, &Device::Cpu).expect("predict")
    };
    let (pa, pb, pc) = (one(&a), one(&b), one(&c));
    assert!(
        pa.iter().zip(&pb).any(|(x, y)| (x - y).abs() > 1e-3),
        "the members differ"
    );

    let ensemble = SavedModel::read_ensemble(&[a.clone(), b, c], &Device::Cpu).expect("ensemble");
    assert_eq!(ensemble.members().len(), 3);
    let mean = predict_mean(&ensemble.members(), &batch, &Device::Cpu).expect("mean");
    assert_eq!(mean.len(), pa.len());
    for (i, m) in mean.iter().enumerate() {
        let want = (pa[i] + pb[i] + pc[i]) / 3.0;
        assert!(
            (m - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "{i}: {m} vs {want}"
        );
    }
    // Means of ordered quantiles stay ordered.
    let q = ensemble.setup.model.quantiles.len();
    for row in mean.chunks(q) {
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
    }

    // One checkpoint twice is that checkpoint.
    let twice = SavedModel::read_ensemble(&[a.clone(), a], &Device::Cpu).expect("twice");
    assert_eq!(
        predict_mean(&twice.members(), &batch, &Device::Cpu).expect("twice"),
        pa
    );
}

#[test]
fn an_ensemble_forecasts_every_system_like_one_model() {
    let dataset = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(&dataset, dir.path(), "a", ModelSetup::default(), 1);
    let b = write(&dataset, dir.path(), "b", ModelSetup::default(), 2);
    let single = SavedModel::read(&a, &Device::Cpu).expect("read");
    let ensemble = SavedModel::read_ensemble(&[a, b], &Device::Cpu).expect("ensemble");
    let t0 = latest_t0(&dataset).expect("observed data");
    let (one, skipped_one) = forecast_at(&single, &dataset, t0, 32, &Device::Cpu).expect("one");
    let (both, skipped) = forecast_at(&ensemble, &dataset, t0, 32, &Device::Cpu).expect("both");
    assert_eq!(skipped, skipped_one);
    assert_eq!(both.len(), one.len());
    assert!(!both.is_empty());
    for (x, y) in both.iter().zip(&one) {
        assert_eq!(
            (x.ss_id, x.t0, x.lead_minutes),
            (y.ss_id, y.t0, y.lead_minutes)
        );
        assert!(x.quantiles_kw.iter().all(|q| q.is_finite() && *q >= 0.0));
    }
    assert!(
        both.iter()
            .zip(&one)
            .any(|(x, y)| x.quantiles_kw != y.quantiles_kw),
        "the second member changes the forecast"
    );
}

#[test]
fn members_that_see_data_or_forecast_differently_are_refused_by_name() {
    let dataset = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(&dataset, dir.path(), "a", ModelSetup::default(), 1);
    let mut quantiles = ModelSetup::default();
    quantiles.model.quantiles = vec![0.05, 0.5, 0.95];
    let mut leads = ModelSetup::default();
    leads.examples.lead_times = 8;
    leads.model = forecaster::ModelConfig::small(leads.examples.history_steps);
    for (name, setup, what) in [
        ("quantiles", quantiles, "the quantiles"),
        ("leads", leads, "the example settings"),
    ] {
        let other = write(&dataset, dir.path(), name, setup, 2);
        let err = SavedModel::read_ensemble(&[a.clone(), other.clone()], &Device::Cpu)
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Ensemble { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(what) && message.contains(&*other.to_string_lossy()),
            "{message}"
        );
    }
    let none = SavedModel::read_ensemble(&[], &Device::Cpu)
        .err()
        .expect("refused");
    assert!(none.to_string().contains("at least one model"), "{none}");
}
