//! A tiny end-to-end run on a slice of the bundled data: the files appear, the metrics are
//! complete, and a second run into the same folder is refused without touching the first.

use std::path::PathBuf;

use candle_core::Device;
use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig};
use trainer::config::{EvalConfig, RunConfig};
use trainer::model::ModelConfig;
use trainer::training::TrainConfig;

#[test]
fn a_tiny_run_writes_its_outputs_and_refuses_to_overwrite() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let dataset = Dataset::load(
        &DataPaths::in_folder(&dir).expect("data"),
        LoadConfig::default(),
    )
    .expect("load");
    let mut model = ModelConfig::small(8);
    for level in &mut model.levels {
        level.channels = 16;
        level.heads = 2;
    }
    let config = RunConfig {
        // Every 211th example keeps evaluation quick.
        examples: ExampleConfig {
            t0_stride_steps: 211,
            ..ExampleConfig::default()
        },
        model: ModelConfig {
            token_dim: 16,
            decoder_channels: 16,
            decoder_blocks: 1,
            decoder_heads: 2,
            ..model
        },
        train: TrainConfig {
            steps: 6,
            batch_size: 8,
            warmup_steps: 2,
            ..TrainConfig::default()
        },
        eval: EvalConfig {
            every_steps: 3,
            patience: 5,
            max_validation_examples: 64,
            batch_size: 64,
        },
        ..RunConfig::default()
    };
    let out = tempfile::tempdir().expect("tempdir");
    let run = out.path().join("run");
    let summary = trainer::run::train(&dataset, &config, &run, &Device::Cpu).expect("train");
    assert_eq!(summary.steps, 6);
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "checkpoint.json",
        "test_metrics.json",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // The config written is the config used, every value included.
    let written: RunConfig =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).expect("read"))
            .expect("parse");
    assert_eq!(written, config);
    // 6 step lines and 2 validation lines.
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).expect("log");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .count(),
        6
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"kind\":\"validation\""))
            .count(),
        2
    );
    let test: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("test_metrics.json")).expect("read"),
    )
    .expect("json");
    for name in [
        "model",
        "persistence",
        "smart_persistence",
        "clear_sky_ratio",
    ] {
        assert!(test[name]["nmae"].is_number(), "{name}");
        assert_eq!(
            test[name]["nmae_by_lead"].as_array().map(Vec::len),
            Some(16)
        );
    }
    assert!(test["model"]["pinball"].is_number() && test["model"]["coverage"].is_number());
    // No leftover temporary files from the atomic writes.
    assert!(std::fs::read_dir(&run).expect("ls").all(|e| {
        !e.expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")
    }));

    let before = std::fs::read(run.join("model.safetensors")).expect("read");
    let err = trainer::run::train(&dataset, &config, &run, &Device::Cpu)
        .err()
        .expect("second run refused");
    assert!(err.to_string().contains("already holds a run"), "{err}");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).expect("read"),
        before
    );
}
