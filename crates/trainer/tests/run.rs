//! End-to-end runs on a slice of the bundled data: the files appear and are complete, a second
//! run into the same folder is refused, an interrupted and resumed run ends bit-identical to an
//! uninterrupted one, corrupted checkpoints are refused, and a saved model evaluates and
//! forecasts on the bundled folder and on another folder in a different layout.

mod common;

use std::path::Path;

use candle_core::Device;
use forecaster::SavedModel;
use pv_data::{Split, UnixTime};
use trainer::config::RunConfig;
use trainer::run::RunOptions;

fn train(config: &RunConfig, run: &Path, stop_after: Option<usize>) -> trainer::run::RunSummary {
    train_on(&common::dataset(), config, run, stop_after)
}

fn train_on(
    data: &pv_data::Dataset,
    config: &RunConfig,
    run: &Path,
    stop_after: Option<usize>,
) -> trainer::run::RunSummary {
    trainer::run::train(
        data,
        config,
        run,
        &Device::Cpu,
        RunOptions {
            stop_after,
            progress: false,
        },
    )
    .expect("train")
}

/// The message of a resume of `run` that must be refused.
fn resume_refused(run: &Path) -> String {
    let err = trainer::run::resume(&common::dataset(), run, &Device::Cpu, RunOptions::default())
        .err()
        .expect("refused");
    format!("{err:#}")
}

fn resume(run: &Path, stop_after: Option<usize>) -> trainer::run::RunSummary {
    resume_on(&common::dataset(), run, stop_after)
}

fn resume_on(
    data: &pv_data::Dataset,
    run: &Path,
    stop_after: Option<usize>,
) -> trainer::run::RunSummary {
    trainer::run::resume(
        data,
        run,
        &Device::Cpu,
        RunOptions {
            stop_after,
            progress: false,
        },
    )
    .expect("resume")
}

#[test]
fn a_tiny_run_writes_its_outputs_and_refuses_to_overwrite() {
    let config = common::tiny_config();
    let out = tempfile::tempdir().expect("tempdir");
    let run = out.path().join("run");
    let summary = train(&config, &run, None);
    assert_eq!(summary.steps, 6);
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "last.safetensors",
        "previous.safetensors",
        "test_metrics.json",
        "loss.png",
        "nmae_by_lead.png",
        "skill.png",
        "forecast_fans.png",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    for png in [
        "loss.png",
        "nmae_by_lead.png",
        "skill.png",
        "forecast_fans.png",
    ] {
        let bytes = std::fs::read(run.join(png)).expect("png");
        assert_eq!(&bytes[1..4], b"PNG", "{png} is not a PNG");
        assert!(bytes.len() > 5_000, "{png} is suspiciously small");
    }
    // The config written is the config used, every value included.
    let written: RunConfig =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).expect("read"))
            .expect("parse");
    assert_eq!(written, config);
    // 6 step lines and 2 validation lines.
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).expect("log");
    let count = |kind: &str| log.lines().filter(|l| l.contains(kind)).count();
    assert_eq!(count("\"kind\":\"step\""), 6);
    assert_eq!(count("\"kind\":\"validation\""), 2);
    // Each step's and validation's wall time, in a file of its own.
    let timing = timing_lines(&run);
    let seconds = |key: &str| -> Vec<(u64, f64)> {
        timing
            .iter()
            .filter_map(|l| Some((l[key].as_u64()?, l["seconds"].as_f64()?)))
            .collect()
    };
    let steps = seconds("step");
    assert_eq!(
        steps.iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    let validations = seconds("validation_at");
    assert_eq!(validations.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 6]);
    assert!(
        steps
            .iter()
            .chain(&validations)
            .all(|s| s.1 > 0.0 && s.1 < 600.0),
        "{timing:?}"
    );
    let test: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("test_metrics.json")).expect("read"),
    )
    .expect("json");
    for name in [
        "model",
        "gbt",
        "persistence",
        "smart_persistence",
        "clear_sky_ratio",
    ] {
        // Pooled, and per system with the same fields.
        for table in [&test["pooled"], &test["systems"]["50"]] {
            assert!(table[name]["nmae"].is_number(), "{name}");
            assert!(table[name]["days"].as_u64() > Some(0), "{name}");
            assert_eq!(
                table[name]["nmae_by_lead"].as_array().map(Vec::len),
                Some(16)
            );
        }
        if name != "smart_persistence" {
            let interval = &test["pooled"][name]["skill_interval"];
            assert_eq!(interval.as_array().map(Vec::len), Some(2), "{name}");
        }
    }
    assert!(
        test["pooled"]["model"]["pinball"].is_number()
            && test["pooled"]["model"]["coverage"].is_number()
    );
    // No leftover temporary files from the atomic writes.
    for entry in std::fs::read_dir(&run).expect("ls") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(
            !name.contains(".tmp") && !name.ends_with(".new"),
            "{name} left behind"
        );
    }
    // The model file carries what it needs to be used alone.
    let saved = SavedModel::read(&run, &Device::Cpu).expect("saved model");
    assert_eq!(saved.setup, config.setup());
    assert_eq!(
        trainer::evaluate::run_config(&saved).expect("run config"),
        config
    );

    let before = std::fs::read(run.join("model.safetensors")).expect("read");
    let err = trainer::run::train(
        &common::dataset(),
        &config,
        &run,
        &Device::Cpu,
        RunOptions::default(),
    )
    .err()
    .expect("second run refused");
    assert!(err.to_string().contains("already holds a run"), "{err}");
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).expect("read"),
        before
    );
    // Resuming a finished run (as a supervisor does after a kill during exit) is a no-op that
    // returns the stored results, NaN-valued metrics included.
    let files = |dir: &Path| {
        let mut all: Vec<_> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| {
                let path = e.expect("entry").path();
                (path.clone(), std::fs::read(&path).expect("read"))
            })
            .collect();
        all.sort();
        all
    };
    let before = files(&run);
    let again = trainer::run::resume(
        &common::dataset(),
        &run,
        &Device::Cpu,
        RunOptions::default(),
    )
    .expect("a finished run resumes as a no-op");
    assert_eq!(again.steps, summary.steps);
    assert_eq!(
        serde_json::to_string(&again.test).expect("json"),
        serde_json::to_string(&summary.test).expect("json")
    );
    assert!(
        files(&run) == before,
        "resuming a finished run changed its files"
    );
}

#[test]
fn an_interrupted_run_resumes_bit_identically() {
    let mut config = common::tiny_config();
    config.train.steps = 7;
    // So that the checkpoints carry a weight average, and the saved model is it.
    config.train.weight_average = 0.5;
    let out = tempfile::tempdir().expect("tempdir");
    let straight = out.path().join("straight");
    train(&config, &straight, None);

    // Stop between validations (step 2), then across a validation (step 5), then finish.
    let pieces = out.path().join("pieces");
    let first = train(&config, &pieces, Some(2));
    assert!(first.test.is_none());
    assert_eq!(first.steps, 2);
    // A killed process may have logged steps after its last checkpoint: they are dropped.
    let log = pieces.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).expect("log");
    text.push_str("{\"kind\":\"step\",\"step\":2,\"loss\":123.0}\n");
    std::fs::write(&log, text).expect("append");
    let second = resume(&pieces, Some(3));
    assert_eq!(second.steps, 5);
    let third = resume(&pieces, None);
    assert_eq!(third.steps, 7);

    common::assert_same_run(&straight, &pieces, "after resuming in pieces");
    // The three sessions appended their steps' times: each step once.
    let steps: Vec<u64> = timing_lines(&pieces)
        .iter()
        .filter_map(|l| l["step"].as_u64())
        .collect();
    assert_eq!(steps, (0..7).collect::<Vec<_>>());
}

/// `timing.jsonl` of a run, parsed.
fn timing_lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("timing.jsonl"))
        .expect("timing.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn corrupted_and_truncated_checkpoints_are_refused() {
    let config = common::tiny_config();
    let out = tempfile::tempdir().expect("tempdir");
    let run = out.path().join("run");
    train(&config, &run, Some(4)); // checkpoints at step 3 (validation) and 4 (stop)
    let last = run.join("last.safetensors");
    let good = std::fs::read(&last).expect("read");

    // One flipped bit in the tensor data.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 0x01;
    std::fs::write(&last, &bad).expect("write");
    let msg = resume_refused(&run);
    assert!(
        msg.contains("checksum mismatch") && msg.contains("last.safetensors"),
        "{msg}"
    );
    assert!(msg.contains("previous.safetensors"), "{msg}");
    // The previous state is untouched and loads.
    forecaster::checkpoint::Checkpoint::read(&run.join("previous.safetensors"), &Device::Cpu)
        .expect("previous intact");

    // Truncated.
    std::fs::write(&last, &good[..good.len() / 2]).expect("write");
    let msg = resume_refused(&run);
    assert!(msg.contains("not a readable checkpoint"), "{msg}");

    // A model checkpoint of another configuration.
    std::fs::write(&last, &good).expect("restore");
    let other = tempfile::tempdir().expect("tempdir");
    let mut wider = config.clone();
    wider.model.decoder_channels = 24;
    let other_run = other.path().join("run");
    train(&wider, &other_run, Some(3));
    let checkpoint = forecaster::checkpoint::Checkpoint::read(
        &other_run.join("model.safetensors"),
        &Device::Cpu,
    )
    .expect("read");
    let mine = SavedModel::read(&run, &Device::Cpu).expect("mine");
    let err = checkpoint.load_into(&mine.varmap).expect_err("refused");
    assert!(err.to_string().contains("has shape"), "{err}");
}

#[test]
fn a_saved_model_evaluates_and_forecasts_on_two_folders() {
    let config = common::tiny_config();
    let out = tempfile::tempdir().expect("tempdir");
    let run = out.path().join("run");
    train(&config, &run, None);
    let saved = SavedModel::read(&run, &Device::Cpu).expect("saved");

    // On the training folder, evaluation reproduces the run's own test metrics.
    let mut data = common::dataset();
    saved.adapt(&mut data).expect("adapt");
    let report = trainer::evaluate::evaluate_saved(&saved, &data, Split::Test, &Device::Cpu)
        .expect("evaluate");
    // (Compared as text: serde_json's default float parsing may be off by one ulp.)
    assert_eq!(
        serde_json::to_string_pretty(&report).expect("json"),
        std::fs::read_to_string(run.join("test_metrics.json")).expect("read")
    );

    // Another folder: hive-partitioned generation without one system, Parquet metadata.
    let other = out.path().join("other");
    common::other_folder(&other, 1001);
    let mut other_data = common::load(&other);
    assert_eq!(other_data.systems.len(), data.systems.len() - 1);
    // The Parquet metadata carry the optional columns through: PVDAQ 50 is labelled by interval starts.
    let fifty = other_data
        .systems
        .iter()
        .find(|s| s.meta.ss_id == 50)
        .expect("system 50");
    assert_eq!(fifty.meta.time_label, pv_data::TimeLabel::IntervalStart);
    assert_eq!(fifty.meta.altitude_m, Some(1800.0));
    saved.adapt(&mut other_data).expect("adapt");
    let report = trainer::evaluate::evaluate_saved(&saved, &other_data, Split::Test, &Device::Cpu)
        .expect("evaluate other");
    assert!(report.pooled["model"].nmae.is_finite());

    // A forecast at a midday t0 of system 50: every system with history gets every lead time.
    let t0 = UnixTime::parse("2013-09-10T18:00:00Z").expect("t0");
    let (rows, skipped) =
        forecaster::forecast_at(&saved, &other_data, t0, 64, &Device::Cpu).expect("forecast");
    let k = config.examples.lead_times;
    assert_eq!(rows.len() % k, 0);
    assert_eq!(rows.len() / k + skipped.len(), other_data.systems.len());
    for row in &rows {
        assert!(row.quantiles_kw.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert!(row.quantiles_kw.iter().all(|q| q.is_finite()));
    }
    let csv = out.path().join("forecast.csv");
    forecaster::write_forecast(&rows, &config.model.quantiles, &csv).expect("csv");
    let text = std::fs::read_to_string(&csv).expect("read");
    assert!(
        text.starts_with("ss_id,t0,valid_time,lead_minutes,q0.1_kw,q0.5_kw,q0.9_kw,observed_kw\n")
    );
    assert_eq!(text.lines().count(), rows.len() + 1);
    let parquet = out.path().join("forecast.parquet");
    forecaster::write_forecast(&rows, &config.model.quantiles, &parquet).expect("parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&parquet).expect("open"),
    )
    .expect("parquet");
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        rows.len()
    );

    // t0 off the grid is refused with a suggestion.
    let err = forecaster::forecast_at(&saved, &other_data, UnixTime(t0.0 + 60), 64, &Device::Cpu)
        .expect_err("refused");
    assert!(
        err.to_string().contains("not on the 15-minute grid"),
        "{err}"
    );

    // Every split at once (`evaluate --split all`): the three splits' targets pooled, and the
    // pooled nMAE their target-weighted mean.
    let all = trainer::evaluate::evaluate_saved_on(&saved, &other_data, &Split::ALL, &Device::Cpu)
        .expect("all splits");
    let (mut targets, mut weighted) = (0, 0.0);
    for split in Split::ALL {
        let one = trainer::evaluate::evaluate_saved(&saved, &other_data, split, &Device::Cpu)
            .expect("one split");
        targets += one.pooled["model"].daylight_targets;
        weighted += one.pooled["model"].nmae * one.pooled["model"].daylight_targets as f64;
    }
    assert_eq!(all.pooled["model"].daylight_targets, targets);
    assert!((all.pooled["model"].nmae - weighted / targets as f64).abs() < 1e-9);

    // A PV-only folder (generation and metadata only): the model trained with every input
    // evaluates and forecasts it with the others masked, and says so.
    let pv_only = out.path().join("pv-only");
    std::fs::create_dir_all(&pv_only).expect("mkdir");
    for file in ["generation.parquet", "metadata.csv"] {
        std::fs::copy(common::data_dir().join(file), pv_only.join(file)).expect("copy");
    }
    let mut pv_data = common::load(&pv_only);
    let used = saved.adapt(&mut pv_data).expect("adapt a PV-only folder");
    assert_eq!(used.present, vec![pv_data::features::Modality::Pv]);
    assert_eq!(used.absent.len(), 3);
    let report = trainer::evaluate::evaluate_saved(&saved, &pv_data, Split::Test, &Device::Cpu)
        .expect("evaluate PV only");
    for name in ["model", "smart_persistence", "gbt"] {
        assert!(report.pooled[name].nmae.is_finite(), "{name}");
    }
    let (rows, _) =
        forecaster::forecast_at(&saved, &pv_data, t0, 64, &Device::Cpu).expect("forecast");
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r.quantiles_kw.iter().all(|q| q.is_finite()))
    );
}

/// Fine-tuning starts from the saved model's weights (a learning rate of 1e-12 leaves them where
/// they were, far from a fresh initialisation), sees a new folder through the model's scalers
/// (here a PV-only folder: the other inputs absent), and resumes bit-identically.
#[test]
fn fine_tuning_starts_from_the_model_and_resumes() {
    let config = common::tiny_config();
    let out = tempfile::tempdir().expect("tempdir");
    let base = out.path().join("base");
    train(&config, &base, None);
    let pv_only = out.path().join("pv-only");
    std::fs::create_dir_all(&pv_only).expect("mkdir");
    for file in ["generation.parquet", "metadata.csv"] {
        std::fs::copy(common::data_dir().join(file), pv_only.join(file)).expect("copy");
    }
    let data = common::load(&pv_only);
    let tune = |learning_rate: f64, steps: usize| {
        let mut tuned = config.clone();
        tuned.train.init_from = Some(base.join("model.safetensors"));
        tuned.train.learning_rate = learning_rate;
        tuned.train.steps = steps;
        tuned
    };
    let run_with = |config: &RunConfig, run: &Path, stop_after: Option<usize>| {
        train_on(&data, config, run, stop_after)
    };

    let still = out.path().join("still");
    run_with(&tune(1e-12, 1), &still, None);
    let before = common::checkpoint_bits(&base.join("model.safetensors"));
    let after = common::checkpoint_bits(&still.join("last.safetensors"));
    let weights = |bits: &[(String, Vec<u32>)], name: &str| -> Vec<f32> {
        bits.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.iter().map(|b| f32::from_bits(*b)).collect())
            .unwrap_or_else(|| panic!("{name}"))
    };
    let name = "decoder.head.weight";
    let (a, b) = (weights(&before, name), weights(&after, name));
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    let mut fresh = config.clone();
    fresh.train.steps = 1;
    fresh.train.seed = 7;
    fresh.train.learning_rate = 1e-12;
    let fresh_run = out.path().join("fresh");
    run_with(&fresh, &fresh_run, None);
    let c = weights(
        &common::checkpoint_bits(&fresh_run.join("last.safetensors")),
        name,
    );
    assert!(a.iter().zip(&c).any(|(x, y)| (x - y).abs() > 1e-3));
    // The PV-only folder was seen through the base model's scalers, with its inputs absent.
    let stored: SavedModel = SavedModel::read(&still, &Device::Cpu).expect("fine-tuned model");
    let base_model = SavedModel::read(&base, &Device::Cpu).expect("base");
    assert_eq!(stored.scalers, base_model.scalers);
    assert_eq!(stored.widths, base_model.widths);

    // Interrupted and resumed: the same as uninterrupted.
    let tuned = tune(1e-3, 6);
    let whole = out.path().join("whole");
    run_with(&tuned, &whole, None);
    let parts = out.path().join("parts");
    run_with(&tuned, &parts, Some(4));
    resume_on(&data, &parts, None);
    common::assert_same_run(&whole, &parts, "after resuming a fine-tuning run");
}

/// A system the model never trained on is forecast from its metadata and history alone: a model
/// trained without SERF East forecasts it at a t0 of its own data.
#[test]
fn a_system_absent_from_training_is_forecast() {
    let config = common::tiny_config();
    let out = tempfile::tempdir().expect("tempdir");
    let without = out.path().join("without-1001");
    common::other_folder(&without, 1001);
    let run = out.path().join("run");
    let data = common::load(&without);
    assert!(data.systems.iter().all(|s| s.meta.ss_id != 1001));
    train_on(&data, &config, &run, None);
    let saved = SavedModel::read(&run, &Device::Cpu).expect("saved");
    let mut everything = common::dataset();
    saved.adapt(&mut everything).expect("adapt");
    let t0 = UnixTime::parse("2016-10-03T17:00:00Z").expect("t0");
    let (rows, _) =
        forecaster::forecast_at(&saved, &everything, t0, 64, &Device::Cpu).expect("forecast");
    let serf: Vec<_> = rows.iter().filter(|r| r.ss_id == 1001).collect();
    assert_eq!(serf.len(), config.examples.lead_times);
    for row in serf {
        assert!(row.quantiles_kw.iter().all(|q| q.is_finite() && *q >= 0.0));
        // A sunny October afternoon: observed power to compare with.
        assert!(row.observed_kw.is_finite());
    }
}
