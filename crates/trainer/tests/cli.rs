//! The `power-perceiver` binary end to end: a tiny run, evaluation and forecasts on two folders,
//! and bad input of every kind giving a clear message, a non-zero exit and untouched outputs.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_power-perceiver"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .output()
        .expect("run power-perceiver")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `args`, expects failure, returns stderr.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} should have failed");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    err
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn train_evaluate_forecast_and_inspect_on_two_folders() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("tiny.toml");
    std::fs::write(
        &config,
        toml::to_string(&common::tiny_config()).expect("toml"),
    )
    .expect("write");
    let run_dir = tmp.path().join("run");
    let stdout = ok(&["train", "--config", path(&config), "--out", path(&run_dir)]);
    assert!(stdout.contains("smart_persistence"), "{stdout}");
    assert!(run_dir.join("forecast_fans.png").is_file());
    // Resuming the finished run succeeds and prints the same results table.
    let again = ok(&["train", "--resume", path(&run_dir)]);
    fn table(text: &str) -> Vec<&str> {
        text.lines().take_while(|l| !l.is_empty()).collect()
    }
    // Title, header, the model, gbt and three baseline rows, and the model against the trees.
    assert!(table(&stdout).len() == 8, "{stdout}");
    assert!(
        table(&stdout)[7].starts_with("model against gbt: skill "),
        "{stdout}"
    );
    assert_eq!(table(&again), table(&stdout));

    let other = tmp.path().join("other");
    common::other_folder(&other, 1001);
    let inspect = ok(&["data", "inspect", path(&other)]);
    assert!(
        inspect.contains("8215") && !inspect.contains("| 1001 |"),
        "{inspect}"
    );

    let evaluation = tmp.path().join("evaluation");
    let evaluate = [
        "evaluate",
        path(&run_dir),
        "--data",
        path(&other),
        "--out",
        path(&evaluation),
    ];
    let table = ok(&evaluate);
    assert!(
        table.contains("model") && table.contains("skill"),
        "{table}"
    );
    for file in [
        "metrics.json",
        "nmae_by_lead.png",
        "skill.png",
        "forecast_fans.png",
    ] {
        assert!(evaluation.join(file).is_file(), "{file}");
    }
    // A second evaluation into the same folder is refused.
    let err = fails(&evaluate);
    assert!(err.contains("already holds an evaluation"), "{err}");

    let csv = tmp.path().join("f.csv");
    let said = ok(&[
        "forecast",
        path(&run_dir.join("model.safetensors")),
        "--data",
        path(&other),
        "--t0",
        "2013-09-10 18:00",
        "--out",
        path(&csv),
    ]);
    assert!(said.contains("rows"), "{said}");
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("50,2013-09-10T18:00:00Z,2013-09-10T18:15:00Z,15,")),
        "{text}"
    );
    // An existing forecast is not replaced without --overwrite.
    let err = fails(&[
        "forecast",
        path(&run_dir),
        "--data",
        path(&other),
        "--t0",
        "2013-09-11 18:00",
        "--out",
        path(&csv),
    ]);
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&csv).expect("csv"), text);

    // A folder with PV only: forecast with the model's other inputs masked, as it says.
    let pv_only = tmp.path().join("pv-only");
    std::fs::create_dir_all(&pv_only).expect("mkdir");
    for file in ["generation.parquet", "metadata.csv"] {
        std::fs::copy(common::data_dir().join(file), pv_only.join(file)).expect("copy");
    }
    let said = ok(&[
        "forecast",
        path(&run_dir),
        "--data",
        path(&pv_only),
        "--t0",
        "latest",
        "--out",
        path(&tmp.path().join("pv.csv")),
    ]);
    assert!(
        said.contains(
            "inputs used: pv; absent from the data, masked: satellite, observations, nwp"
        ),
        "{said}"
    );
    // The latest t0: the end of the last observed interval (UK system 8229's, 2020-01-13).
    assert!(said.contains("at t0 2020-01-13T"), "{said}");
    // Fine-tuning the model on the PV-only folder writes a new run with the usual report.
    let tuned = tmp.path().join("tuned");
    let said = ok(&[
        "finetune",
        path(&run_dir),
        "--data",
        path(&pv_only),
        "--steps",
        "2",
        "--out",
        path(&tuned),
    ]);
    assert!(said.contains("smart_persistence"), "{said}");
    let tuned_config = std::fs::read_to_string(tuned.join("config.toml")).expect("config");
    assert!(tuned_config.contains("init_from"), "{tuned_config}");
    // The run and its fine-tuned copy see data alike: evaluated together, as an ensemble.
    let said = ok(&[
        "evaluate",
        path(&run_dir),
        path(&tuned),
        "--data",
        path(&other),
        "--out",
        path(&tmp.path().join("ensemble")),
    ]);
    assert!(
        said.contains("an ensemble of 2 models") && said.contains("skill"),
        "{said}"
    );
    // Its metrics.json names the members; a single model's names none.
    let members = |dir: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("metrics.json")).expect("metrics.json");
        let report: serde_json::Value = serde_json::from_str(&text).expect("json");
        report["ensemble"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let listed = members(&tmp.path().join("ensemble"));
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].contains("run") && listed[1].contains("tuned"),
        "{listed:?}"
    );
    assert!(members(&evaluation).is_empty());
    // A folder with an input the model was not trained with is refused by name.
    let pv_run = tmp.path().join("pv-run");
    ok(&[
        "train",
        "--config",
        path(&config),
        "--data",
        path(&pv_only),
        "--steps",
        "2",
        "--out",
        path(&pv_run),
    ]);
    let err = fails(&[
        "forecast",
        path(&pv_run),
        "--data",
        path(&other),
        "--t0",
        "2013-09-10 18:00",
        "--out",
        path(&tmp.path().join("refused.csv")),
    ]);
    assert!(
        err.contains("satellite: the model was trained without this input"),
        "{err}"
    );
    // A model trained on other inputs cannot join the first run's ensemble.
    let err = fails(&[
        "evaluate",
        path(&run_dir),
        path(&pv_run),
        "--out",
        path(&tmp.path().join("refused-ensemble")),
    ]);
    assert!(
        err.contains("cannot join an ensemble") && err.contains("pv-run"),
        "{err}"
    );
    assert!(!tmp.path().join("refused-ensemble").exists());
}

/// A folder named as the uk_pv dataset publishes it: `5min.parquet` beside `metadata.csv`.
#[test]
fn a_uk_pv_folder_as_published_is_inspected_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("uk_pv");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        common::data_dir().join("generation.parquet"),
        dir.join("5min.parquet"),
    )
    .expect("copy");
    std::fs::copy(
        common::data_dir().join("metadata.csv"),
        dir.join("metadata.csv"),
    )
    .expect("copy");
    let summary = ok(&["data", "inspect", path(&dir)]);
    assert!(summary.contains("8215"), "{summary}");
    let err = fails(&["data", "inspect", path(&dir), "--generation", "30min"]);
    assert!(err.contains("30min.parquet"), "{err}");
    // A selection of systems and a time window.
    let part = ok(&[
        "data",
        "inspect",
        path(&dir),
        "--systems",
        "8215,50",
        "--from",
        "2020-01-02",
        "--to",
        "2020-01-05 12:00",
    ]);
    assert!(part.contains("8215") && !part.contains("8229"), "{part}");
    assert!(part.contains("2020-01-05T12:00:00Z"), "{part}");
    assert!(!part.contains("2020-01-01T"), "{part}");
    let err = fails(&["data", "inspect", path(&dir), "--systems", "8215,x"]);
    assert!(err.contains("`x` is not an ss_id"), "{err}");
}

#[test]
fn bad_input_gives_clear_errors_and_touches_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();

    let err = fails(&["data", "inspect", path(&t.join("nowhere"))]);
    assert!(
        err.contains("nowhere") && err.contains("no such folder"),
        "{err}"
    );

    let empty = t.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = fails(&["data", "inspect", path(&empty)]);
    assert!(err.contains("no generation"), "{err}");

    // Configuration files the CLI refuses, each with what its message must name.
    let bad_configs = [
        (
            "unknown.toml",
            "[train]\nstpes = 10\n",
            vec!["unknown.toml", "stpes"],
        ),
        (
            "negative.toml",
            "[examples]\nhistory_steps = -4\n",
            vec!["negative.toml", "history_steps"],
        ),
        (
            "mismatch.toml",
            "[examples]\nhistory_steps = 6\n",
            vec!["one group per history step"],
        ),
        (
            "shards.toml",
            "[train]\nbatch_size = 8\nshards = 9\n",
            vec!["train.shards must be between 1 and train.batch_size (8), got 9"],
        ),
        (
            "dropout.toml",
            "[train]\nmodality_dropout = 1.5\n",
            vec!["train.modality_dropout is a probability, between 0 and 1; got 1.5"],
        ),
        (
            "average.toml",
            "[train]\nweight_average = 1.0\n",
            vec!["train.weight_average is a decay, at least 0 (no average) and below 1; got 1"],
        ),
    ];
    for (name, text, expected) in bad_configs {
        let file = t.join(name);
        std::fs::write(&file, text).expect("write");
        let err = fails(&["train", "--config", path(&file), "--print-config"]);
        for e in expected {
            assert!(err.contains(e), "{name}: {err}");
        }
    }

    // More lead times than any split block holds.
    let long = t.join("long.toml");
    std::fs::write(&long, "[examples]\nlead_times = 100000\n").expect("write");
    let out = t.join("long-run");
    let err = fails(&["train", "--config", path(&long), "--out", path(&out)]);
    assert!(err.contains("one example needs"), "{err}");
    assert!(!out.join("model.safetensors").exists());

    if !cfg!(feature = "cuda") {
        let err = fails(&[
            "train",
            "--device",
            "cuda",
            "--steps",
            "1",
            "--out",
            path(&t.join("c")),
        ]);
        assert!(err.contains("without CUDA"), "{err}");
    }

    // Checkpoints: not one, truncated, of another kind.
    let fake = t.join("fake.safetensors");
    std::fs::write(&fake, b"not a checkpoint at all").expect("write");
    let err = fails(&["evaluate", path(&fake), "--out", path(&t.join("e1"))]);
    assert!(
        err.contains("fake.safetensors") && err.contains("not a readable checkpoint"),
        "{err}"
    );
    assert!(!t.join("e1").exists());

    let err = fails(&[
        "forecast",
        path(&t.join("missing")),
        "--t0",
        "2013-09-10 18:00",
    ]);
    assert!(err.contains("missing"), "{err}");
    let err = fails(&["forecast", path(&fake), "--t0", "yesterday"]);
    assert!(
        err.contains("yesterday") && err.contains("not a time"),
        "{err}"
    );

    let err = fails(&["train", "--resume", path(&empty)]);
    assert!(err.contains("no training state"), "{err}");
}
