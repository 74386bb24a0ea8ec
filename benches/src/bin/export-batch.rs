//! Writes the default training batch (64 examples from the bundled data, as in the `model`
//! bench) and the default model's description, for `benches/python/train_step_torch.py`, which
//! times an architecture-equivalent PyTorch training step on exactly these tensors:
//!
//! `cargo run --release -p power-perceiver-benches --bin export-batch -- target/bench/batch`
//! writes `batch.safetensors` and `batch.json`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use forecaster::model::{fourier_columns, modality_names};
use power_perceiver_benches::{TrainStepFixture, default_batch};
use pv_data::{Array, FeatureWidths};

fn main() -> Result<()> {
    let stem = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/bench/batch".into()),
    );
    let fixture = TrainStepFixture::new();
    let batch = default_batch(&fixture.dataset, &fixture.config);
    let widths = FeatureWidths::of(&fixture.dataset);
    let t = |a: &Array| Tensor::from_slice(&a.data, a.shape.as_slice(), &Device::Cpu);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut modalities = Vec::new();
    let tokens = &batch.tokens.0;
    for ((name, width, names), tok) in modality_names(&widths).into_iter().zip(tokens) {
        if width == 0 {
            continue;
        }
        tensors.insert(format!("{name}.values"), t(&tok.values)?);
        tensors.insert(format!("{name}.mask"), t(&tok.mask)?);
        let fourier = fourier_columns(&names);
        modalities
            .push(serde_json::json!({ "name": name, "width": width, "fourier_columns": fourier }));
    }
    for (name, a) in [
        ("queries", &batch.queries),
        ("query_mask", &batch.query_mask),
        ("targets", &batch.targets),
        ("target_mask", &batch.target_mask),
    ] {
        tensors.insert(name.into(), t(a)?);
    }
    let parameters: usize = fixture
        .trainer
        .parameters()?
        .iter()
        .map(|(_, v)| v.len())
        .sum();
    let meta = serde_json::json!({
        "model": fixture.config.model,
        "train": fixture.config.train,
        "step_minutes": fixture.dataset.config.step_minutes,
        "query_width": widths.query,
        "modalities": modalities,
        "parameters": parameters,
    });
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let st = stem.with_extension("safetensors");
    candle_core::safetensors::save(&tensors, &st)
        .with_context(|| format!("writing {}", st.display()))?;
    let js = stem.with_extension("json");
    std::fs::write(&js, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("writing {}", js.display()))?;
    eprintln!(
        "wrote {} and {} ({parameters} parameters)",
        st.display(),
        js.display()
    );
    Ok(())
}
