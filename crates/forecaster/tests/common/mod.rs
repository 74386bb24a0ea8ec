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
    let setup = ModelSetup::default();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let widths = FeatureWidths::of(dataset);
    let model =
        PvForecaster::new(&setup.model, widths, setup.data.step_minutes, vb).expect("model");
    fill_deterministically(&varmap);
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

/// Replaces every parameter with values fixed by its name (uniform in ±1/√fan-in for matrices,
/// ±0.1 for vectors), so a test's model, and any ratio it asserts, is the same on every run
/// (candle's own initialisation draws from an unseeded generator).
pub fn fill_deterministically(varmap: &VarMap) {
    for (name, var) in varmap.data().lock().expect("lock").iter() {
        let dims = var.dims().to_vec();
        let bound = match dims.as_slice() {
            [_, fan_in, ..] => 1.0 / (*fan_in as f64).sqrt(),
            _ => 0.1,
        };
        let mut state = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                ((2.0 * unit - 1.0) * bound) as f32
            })
            .collect();
        let values = candle_core::Tensor::from_vec(values, dims, &Device::Cpu).expect("values");
        var.set(&values).expect("set");
    }
}
