//! A training run on disk: `runs/<name>/` with `config.toml`, `metrics.jsonl`, the best
//! checkpoint (`model.safetensors` + `checkpoint.json`, each written to a temporary file and
//! renamed, so a crash never leaves half a checkpoint), and `test_metrics.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};
use pv_data::{Batch, Dataset, ExampleKey, Split, build_batch, example_keys};

use crate::baselines::{BASELINES, ClearSkyScale, forecasts};
use crate::config::RunConfig;
use crate::metrics::{ForecasterMetrics, Metrics};
use crate::model::{BatchTensors, PvForecaster};
use crate::training::Trainer;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// `n` keys evenly spaced over `keys` (all of them when `n` is 0 or larger).
pub fn evenly_spaced(keys: &[ExampleKey], n: usize) -> Vec<ExampleKey> {
    if n == 0 || n >= keys.len() {
        return keys.to_vec();
    }
    (0..n).map(|i| keys[i * keys.len() / n]).collect()
}

/// Evaluates the model and the baselines on `keys`, in batches.
pub fn evaluate(
    model: &PvForecaster,
    dataset: &Dataset,
    config: &RunConfig,
    keys: &[ExampleKey],
    split: Split,
    scale: &ClearSkyScale,
    device: &Device,
) -> Result<std::collections::BTreeMap<String, ForecasterMetrics>> {
    let mut metrics = Metrics::new(config.examples.lead_times);
    for chunk in keys.chunks(config.eval.batch_size) {
        let batch = build_batch(dataset, &config.examples, chunk, split);
        add_batch(&mut metrics, model, &batch, config, scale, device)?;
    }
    Ok(metrics.report("smart_persistence"))
}

fn add_batch(
    metrics: &mut Metrics,
    model: &PvForecaster,
    batch: &Batch,
    config: &RunConfig,
    scale: &ClearSkyScale,
    device: &Device,
) -> Result<()> {
    let quantiles = model
        .forward(&BatchTensors::new(batch, device)?)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    metrics.add_quantiles("model", batch, &quantiles, &config.model.quantiles);
    for (name, forecast) in BASELINES.iter().zip(forecasts(batch, scale)) {
        metrics.add_point(name, batch, &forecast);
    }
    Ok(())
}

/// What a finished run reports.
pub struct RunSummary {
    /// Where the outputs are.
    pub out_dir: PathBuf,
    /// Test metrics by forecaster.
    pub test: std::collections::BTreeMap<String, ForecasterMetrics>,
    /// Steps taken.
    pub steps: usize,
    /// Wall time of training and evaluation, seconds.
    pub seconds: f64,
}

/// Trains on `dataset` with `config`, writing everything into `out_dir` (which must not hold a
/// previous run), and evaluates the best checkpoint on the test split.
pub fn train(
    dataset: &Dataset,
    config: &RunConfig,
    out_dir: &Path,
    device: &Device,
) -> Result<RunSummary> {
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    if out_dir.join("checkpoint.json").exists() {
        bail!(
            "{} already holds a run; choose another --out (nothing was overwritten)",
            out_dir.display()
        );
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    write_atomic(
        &out_dir.join("config.toml"),
        toml::to_string(config)?.as_bytes(),
    )?;
    let started = Instant::now();

    // The clear-sky scale of the baselines is fitted on (a sample of) the training split only.
    let train_keys = example_keys(dataset, &config.examples, Split::Train)?;
    let sample = evenly_spaced(&train_keys, 20_000);
    let scale = ClearSkyScale::fit([&build_batch(
        dataset,
        &config.examples,
        &sample,
        Split::Train,
    )]);
    let validation = evenly_spaced(
        &example_keys(dataset, &config.examples, Split::Validation)?,
        config.eval.max_validation_examples,
    );

    let mut trainer = Trainer::new(
        dataset,
        &config.examples,
        &config.model,
        config.train.clone(),
        device,
    )?;
    let mut log =
        std::fs::File::create(out_dir.join("metrics.jsonl")).context("creating metrics.jsonl")?;
    let bar = ProgressBar::new(config.train.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} train [{bar:30}] {pos}/{len} steps, {elapsed} elapsed, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut best, mut since_best, mut steps) = (f64::INFINITY, 0usize, 0usize);
    let mut running = 0.0;
    for step in 0..config.train.steps {
        let s = trainer.step(dataset, &config.examples)?;
        steps = step + 1;
        running = if step == 0 {
            s.loss
        } else {
            0.98 * running + 0.02 * s.loss
        };
        writeln!(
            log,
            "{}",
            serde_json::json!({"kind": "step", "step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "learning_rate": s.learning_rate})
        )?;
        bar.set_message(format!("loss {running:.4}"));
        bar.inc(1);
        if steps % config.eval.every_steps == 0 || steps == config.train.steps {
            let report = evaluate(
                &trainer.model,
                dataset,
                config,
                &validation,
                Split::Validation,
                &scale,
                device,
            )?;
            let nmae = report["model"].nmae;
            writeln!(
                log,
                "{}",
                serde_json::json!({"kind": "validation", "step": steps, "nmae": nmae, "smart_persistence_nmae": report["smart_persistence"].nmae})
            )?;
            if nmae < best {
                best = nmae;
                since_best = 0;
                save_checkpoint(&trainer, out_dir, steps, nmae)?;
            } else {
                since_best += 1;
            }
            // `suspend` prints whether or not the bar is drawn (it is hidden when stderr is not a terminal).
            bar.suspend(|| {
                eprintln!("step {steps}: validation daylight nMAE {nmae:.4} (best {best:.4})")
            });
            if since_best >= config.eval.patience {
                bar.suspend(|| {
                    eprintln!("early stop: {since_best} validations without improvement")
                });
                break;
            }
        }
    }
    bar.finish_and_clear();

    // The test split is used once, by the best checkpoint.
    trainer
        .varmap
        .load(out_dir.join("model.safetensors"))
        .context("reloading the best checkpoint")?;
    let test_keys = example_keys(dataset, &config.examples, Split::Test)?;
    let test = evaluate(
        &trainer.model,
        dataset,
        config,
        &test_keys,
        Split::Test,
        &scale,
        device,
    )?;
    write_atomic(
        &out_dir.join("test_metrics.json"),
        serde_json::to_string_pretty(&test)?.as_bytes(),
    )?;
    Ok(RunSummary {
        out_dir: out_dir.to_owned(),
        test,
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn save_checkpoint(
    trainer: &Trainer,
    out_dir: &Path,
    step: usize,
    validation_nmae: f64,
) -> Result<()> {
    let tmp = out_dir.join("model.safetensors.tmp");
    trainer
        .varmap
        .save(&tmp)
        .context("writing the checkpoint")?;
    std::fs::rename(&tmp, out_dir.join("model.safetensors")).context("renaming the checkpoint")?;
    let meta = serde_json::json!({"step": step, "validation_nmae": validation_nmae});
    write_atomic(
        &out_dir.join("checkpoint.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )
}

/// The test table: nMAE per lead time (every fourth) and overall, model vs baselines.
pub fn table(
    test: &std::collections::BTreeMap<String, ForecasterMetrics>,
    step_minutes: i64,
) -> String {
    let order = [
        "model",
        "persistence",
        "smart_persistence",
        "clear_sky_ratio",
    ];
    let k = test.get("model").map_or(0, |m| m.nmae_by_lead.len());
    let leads: Vec<usize> = (0..k).filter(|i| i % 4 == 3 || *i == 0).collect();
    let mut out = format!("{:<18} {:>8} {:>8}", "daylight nMAE", "overall", "skill");
    for &i in &leads {
        out.push_str(&format!(
            " {:>7}",
            format!("+{}m", (i as i64 + 1) * step_minutes)
        ));
    }
    out.push('\n');
    for name in order {
        let Some(m) = test.get(name) else { continue };
        out.push_str(&format!(
            "{:<18} {:>8.4} {:>8}",
            name,
            m.nmae,
            m.skill
                .map_or("-".to_owned(), |s| format!("{:+.1}%", 100.0 * s))
        ));
        for &i in &leads {
            out.push_str(&format!(" {:>7.4}", m.nmae_by_lead[i]));
        }
        out.push('\n');
    }
    out
}
