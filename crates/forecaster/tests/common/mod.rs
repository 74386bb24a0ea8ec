//! What the forecaster's integration tests share: the bundled data with training-block scalers,
//! and an untrained model written in this crate's checkpoint format.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use forecaster::checkpoint::write;
use forecaster::saved::model_metadata;
use forecaster::{ModelSetup, PvForecaster};
use pv_data::{Dataset, FeatureWidths};

/// The bundled `data/` folder, loaded with the default setup, scalers fitted on training blocks.
pub fn bundled() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let setup = ModelSetup::default();
    let mut dataset = Dataset::load_folder(&dir, setup.data).expect("load");
    dataset.fit_scalers(&setup.examples);
    dataset
}

/// Writes a freshly initialised default model for `dataset` to `dir/model.safetensors`; returns
/// it with its setup.
pub fn write_model(dataset: &Dataset, dir: &Path) -> (PvForecaster, ModelSetup) {
    write_model_with(dataset, dir, ModelSetup::default())
}

/// [`write_model`] for any `setup` (a model variant).
pub fn write_model_with(
    dataset: &Dataset,
    dir: &Path,
    setup: ModelSetup,
) -> (PvForecaster, ModelSetup) {
    write_model_seeded(dataset, dir, setup, 7)
}

/// [`write_model_with`], its parameters initialised from `seed`.
pub fn write_model_seeded(
    dataset: &Dataset,
    dir: &Path,
    setup: ModelSetup,
    seed: u64,
) -> (PvForecaster, ModelSetup) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let widths = FeatureWidths::of(dataset);
    let model =
        PvForecaster::new(&setup.model, widths, setup.data.step_minutes, vb).expect("model");
    // Seeded by name: the same model, and any ratio a test asserts, on every run (candle's own
    // initialisation draws from an unseeded generator).
    forecaster::init::initialise(&varmap, seed).expect("initialise");
    let mut tensors: Vec<_> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = model_metadata(&setup, widths, &dataset.scalers()).expect("metadata");
    write(&dir.join("model.safetensors"), &tensors, metadata).expect("write");
    (model, setup)
}
