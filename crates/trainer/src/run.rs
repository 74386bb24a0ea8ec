//! A training run on disk, and evaluation of a saved model.
//!
//! `runs/<name>/` holds:
//!
//! | file | what | written |
//! |---|---|---|
//! | `config.toml` | every configuration value, defaults included | at the start |
//! | `metrics.jsonl` | one JSON line per step and per validation | as training goes |
//! | `model.safetensors` | the best weights by validation nMAE, with the config, feature widths and input scalers in its metadata | when validation improves |
//! | `last.safetensors` | weights, optimiser moments and loop state, for `--resume` | at every validation and when stopped |
//! | `previous.safetensors` | the state before `last` | when `last` is replaced |
//! | `test_metrics.json`, `*.png` | the best model on the test split, plots | at the end |
//!
//! Checkpoints are checksummed and published by rename ([`crate::checkpoint`]), so a crash at
//! any moment leaves the previous state readable. A resumed run truncates `metrics.jsonl` to
//! what it held at the checkpoint and continues bit-identically.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pv_data::{
    Batch, Dataset, ExampleConfig, ExampleKey, FeatureWidths, Scalers, Split, build_batch,
    example_keys,
};
use rayon::prelude::*;

use crate::baselines::{BASELINES, ClearSkyScale, forecasts};
use crate::checkpoint::{Checkpoint, write_atomic};
use crate::config::RunConfig;
use crate::gbt::Gbt;
pub use crate::metrics::Report;
use crate::metrics::{ForecasterTable, Metrics};
use crate::model::{BatchTensors, PvForecaster};
use crate::training::{Trainer, TrainerState};

/// `n` keys evenly spaced over `keys` (all of them when `n` is 0 or larger).
pub fn evenly_spaced(keys: &[ExampleKey], n: usize) -> Vec<ExampleKey> {
    if n == 0 || n >= keys.len() {
        return keys.to_vec();
    }
    (0..n).map(|i| keys[i * keys.len() / n]).collect()
}

/// Fits the baselines' clear-sky scale on (a sample of) the training split only.
pub fn fit_clear_sky_scale(dataset: &Dataset, config: &RunConfig) -> Result<ClearSkyScale> {
    let train_keys = example_keys(dataset, &config.examples, Split::Train)?;
    let sample = evenly_spaced(&train_keys, 20_000);
    Ok(ClearSkyScale::fit([&build_batch(
        dataset,
        &config.examples,
        &sample,
        Split::Train,
    )]))
}

/// Evaluates the model, the baselines and (when given) the gradient-boosted baseline on `keys`,
/// in batches.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &PvForecaster,
    dataset: &Dataset,
    config: &RunConfig,
    keys: &[ExampleKey],
    split: Split,
    scale: &ClearSkyScale,
    gbt: Option<&Gbt>,
    device: &Device,
) -> Result<Report> {
    let mut metrics = new_metrics(dataset, config);
    predict_batches(
        model,
        dataset,
        &config.examples,
        keys,
        config.eval.batch_size,
        split,
        device,
        |_, batch, quantiles| {
            metrics.add_quantiles("model", batch, quantiles, &config.model.quantiles);
            add_baselines(&mut metrics, batch, scale, gbt);
            Ok(())
        },
    )?;
    Ok(metrics.report(REFERENCE))
}

/// The forecaster skill is measured against.
pub const REFERENCE: &str = "smart_persistence";

fn new_metrics(dataset: &Dataset, config: &RunConfig) -> Metrics {
    Metrics::new(config.examples.lead_times).with_longitudes(
        dataset
            .systems
            .iter()
            .map(|s| (s.meta.ss_id, s.meta.longitude_deg)),
    )
}

fn add_baselines(metrics: &mut Metrics, batch: &Batch, scale: &ClearSkyScale, gbt: Option<&Gbt>) {
    for (name, forecast) in BASELINES.iter().zip(forecasts(batch, scale)) {
        metrics.add_point(name, batch, &forecast);
    }
    if let Some(gbt) = gbt {
        metrics.add_point("gbt", batch, &gbt.forecast(batch, scale));
    }
}

/// The baselines alone (no model) on one split of `dataset`: the clear-sky scale and the
/// gradient-boosted trees fitted on its training split, as [`evaluate_saved`] does.
pub fn evaluate_baselines(dataset: &Dataset, config: &RunConfig, split: Split) -> Result<Report> {
    let (scale, gbt) = fit_baselines(dataset, config)?;
    let keys = example_keys(dataset, &config.examples, split)?;
    let mut metrics = new_metrics(dataset, config);
    for chunk in keys.chunks(config.eval.batch_size.max(1)) {
        let batch = build_batch(dataset, &config.examples, chunk, split);
        add_baselines(&mut metrics, &batch, &scale, gbt.as_ref());
    }
    Ok(metrics.report(REFERENCE))
}

/// Everything the baselines fit on the training split of `dataset` (the trees' depth and rounds
/// on its validation split).
pub fn fit_baselines(
    dataset: &Dataset,
    config: &RunConfig,
) -> Result<(ClearSkyScale, Option<Gbt>)> {
    let scale = fit_clear_sky_scale(dataset, config)?;
    let gbt = if config.gbt.enabled {
        // The trees are a reference, not the product: data they cannot be fitted on (no observed
        // training target) still get the other rows, and the reason is said.
        match Gbt::fit(dataset, &config.examples, &config.gbt, &scale) {
            Ok(gbt) => Some(gbt),
            Err(e) => {
                eprintln!("warning: no gbt row: {e:#}");
                None
            }
        }
    } else {
        None
    };
    Ok((scale, gbt))
}

/// Builds and predicts the batches of `keys` (`batch_size` each), as many at once as the rayon
/// pool has threads (the model's ops run on the calling thread; see [`crate::configure_process`]),
/// and hands each to `each` in key order, so results do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn predict_batches(
    model: &PvForecaster,
    dataset: &Dataset,
    examples: &ExampleConfig,
    keys: &[ExampleKey],
    batch_size: usize,
    split: Split,
    device: &Device,
    mut each: impl FnMut(&[ExampleKey], &Batch, &[f32]) -> Result<()>,
) -> Result<()> {
    let batch_size = batch_size.max(1);
    let group = batch_size * rayon::current_num_threads().max(1);
    for keys in keys.chunks(group) {
        let predicted = keys
            .par_chunks(batch_size)
            .map(|chunk| {
                let batch = build_batch(dataset, examples, chunk, split);
                let quantiles = predict(model, &batch, device)?;
                Ok((chunk, batch, quantiles))
            })
            .collect::<Result<Vec<_>>>()?;
        for (chunk, batch, quantiles) in &predicted {
            each(chunk, batch, quantiles)?;
        }
    }
    Ok(())
}

/// The model's quantiles for `batch`, `[B, S, K, Q]` flattened, as power / kWp.
pub fn predict(model: &PvForecaster, batch: &Batch, device: &Device) -> Result<Vec<f32>> {
    Ok(model
        .forward(&BatchTensors::new(batch, device)?)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// How a training session behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Stop (with a resumable checkpoint) after this many steps of this session.
    pub stop_after: Option<usize>,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
}

/// What a training session did.
pub struct RunSummary {
    /// Where the outputs are.
    pub out_dir: PathBuf,
    /// Test metrics by forecaster; `None` when the session stopped before the end.
    pub test: Option<Report>,
    /// Steps taken in all, across resumes.
    pub steps: usize,
    /// Wall time of this session, seconds.
    pub seconds: f64,
}

/// The loop's state beside weights and moments, saved in `last.safetensors`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct LoopState {
    trainer: TrainerState,
    /// Best validation nMAE so far (`None` before the first validation).
    best_nmae: Option<f64>,
    since_best: usize,
    running_loss: f64,
    /// Length of `metrics.jsonl` when the state was saved.
    log_bytes: u64,
    stopped_early: bool,
}

/// Metadata every checkpoint of a run carries: enough to rebuild the model and feed it data on
/// the scale it learnt.
fn model_metadata(
    config: &RunConfig,
    widths: FeatureWidths,
    scalers: &Scalers,
) -> Result<BTreeMap<String, String>> {
    Ok(BTreeMap::from([
        ("config".to_owned(), toml::to_string(config)?),
        ("feature_widths".to_owned(), serde_json::to_string(&widths)?),
        ("scalers".to_owned(), serde_json::to_string(scalers)?),
    ]))
}

const LAST: &str = "last.safetensors";
const PREVIOUS: &str = "previous.safetensors";
const MODEL: &str = "model.safetensors";

struct Session<'a> {
    dataset: &'a Dataset,
    config: &'a RunConfig,
    out_dir: &'a Path,
    device: &'a Device,
    trainer: Trainer,
    state: LoopState,
    log: std::fs::File,
    metadata: BTreeMap<String, String>,
}

impl Session<'_> {
    fn save_state(&mut self) -> Result<()> {
        self.state.trainer = self.trainer.state();
        self.state.log_bytes = self.log.stream_position()?;
        let mut meta = self.metadata.clone();
        meta.insert("kind".into(), "training-state".into());
        meta.insert("state".into(), serde_json::to_string(&self.state)?);
        let last = self.out_dir.join(LAST);
        let tmp = self.out_dir.join("last.safetensors.new");
        crate::checkpoint::write(&tmp, &self.trainer.tensors()?, meta)?;
        // A crash between these renames leaves `previous` (and the new file) intact; resume
        // falls back to `previous` when `last` is absent.
        if last.exists() {
            std::fs::rename(&last, self.out_dir.join(PREVIOUS))
                .with_context(|| format!("rotating {}", last.display()))?;
        }
        std::fs::rename(&tmp, &last).with_context(|| format!("publishing {}", last.display()))?;
        Ok(())
    }

    fn save_model(&self, step: usize, nmae: f64) -> Result<()> {
        let mut meta = self.metadata.clone();
        meta.insert("kind".into(), "model".into());
        meta.insert("step".into(), step.to_string());
        meta.insert("validation_nmae".into(), nmae.to_string());
        crate::checkpoint::write(&self.out_dir.join(MODEL), &self.trainer.weights()?, meta)?;
        Ok(())
    }

    fn log_line(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.log, "{value}").context("writing metrics.jsonl")
    }

    /// Trains until the configured steps, early stopping, or `stop_after`; true when finished.
    fn run(&mut self, options: RunOptions) -> Result<bool> {
        let config = self.config;
        let validation = evenly_spaced(
            &example_keys(self.dataset, &config.examples, Split::Validation)?,
            config.eval.max_validation_examples,
        );
        let scale = fit_clear_sky_scale(self.dataset, config)?;
        let total = config.train.steps;
        let first = self.trainer.state().step;
        let bars = Bars::new(
            options.progress,
            total,
            first,
            config.train.batch_size,
            self.trainer.examples_per_epoch(),
        );
        if self.state.stopped_early || first >= total {
            return Ok(true);
        }
        for step in first..total {
            if options.stop_after.is_some_and(|n| step - first >= n) {
                self.save_state()?;
                bars.finish();
                return Ok(false);
            }
            let s = self.trainer.step(self.dataset, &config.examples)?;
            let steps = step + 1;
            self.state.running_loss = if step == 0 {
                s.loss
            } else {
                0.98 * self.state.running_loss + 0.02 * s.loss
            };
            self.log_line(serde_json::json!({"kind": "step", "step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "learning_rate": s.learning_rate}))?;
            bars.step(steps, self.trainer.epochs_done(), self.state.running_loss);
            if steps % config.eval.every_steps != 0 && steps != total {
                continue;
            }
            let report = evaluate(
                &self.trainer.model,
                self.dataset,
                config,
                &validation,
                Split::Validation,
                &scale,
                None,
                self.device,
            )?;
            let nmae = report.pooled["model"].nmae;
            self.log_line(serde_json::json!({"kind": "validation", "step": steps, "nmae": nmae, "smart_persistence_nmae": report.pooled["smart_persistence"].nmae}))?;
            if self.state.best_nmae.is_none_or(|b| nmae < b) {
                self.state.best_nmae = Some(nmae);
                self.state.since_best = 0;
                self.save_model(steps, nmae)?;
            } else {
                self.state.since_best += 1;
            }
            let best = self.state.best_nmae.unwrap_or(nmae);
            bars.println(format!(
                "step {steps}: validation daylight nMAE {nmae:.4} (best {best:.4})"
            ));
            if self.state.since_best >= config.eval.patience {
                bars.println(format!(
                    "early stop: {} validations without improvement",
                    self.state.since_best
                ));
                self.state.stopped_early = true;
            }
            self.save_state()?;
            if self.state.stopped_early {
                break;
            }
        }
        bars.finish();
        Ok(true)
    }
}

/// Progress bars: epochs and steps, with the ETA; hidden when not wanted or not a terminal.
struct Bars {
    epochs: ProgressBar,
    steps: ProgressBar,
    per_epoch: f64,
}

impl Bars {
    fn new(show: bool, total: usize, done: usize, batch: usize, examples: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let per_epoch = examples as f64 / batch as f64;
        let style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        // Epochs in hundredths, so a run shorter than one epoch still moves the bar.
        let epochs = multi.add(ProgressBar::new(
            ((total as f64 / per_epoch) * 100.0).ceil() as u64,
        ));
        epochs.set_style(style("epochs [{bar:30}] {msg}"));
        let steps = multi.add(ProgressBar::new(total as u64));
        steps.set_style(style(
            "steps  [{bar:30}] {pos}/{len}, {elapsed} elapsed, ETA {eta} {msg}",
        ));
        steps.set_position(done as u64);
        steps.reset_eta();
        let bars = Bars {
            epochs,
            steps,
            per_epoch,
        };
        bars.step(done, done as f64 / per_epoch, f64::NAN);
        bars
    }

    fn step(&self, steps: usize, epochs_done: f64, loss: f64) {
        self.steps.set_position(steps as u64);
        if loss.is_finite() {
            self.steps.set_message(format!("loss {loss:.4}"));
        }
        self.epochs.set_position((epochs_done * 100.0) as u64);
        let total = self.steps.length().unwrap_or(0) as f64 / self.per_epoch;
        self.epochs
            .set_message(format!("{epochs_done:.2}/{total:.2} epochs"));
    }

    /// Prints a line whether or not the bars are drawn (they are hidden without a terminal).
    fn println(&self, line: String) {
        self.steps.suspend(|| eprintln!("{line}"));
    }

    fn finish(&self) {
        self.steps.finish_and_clear();
        self.epochs.finish_and_clear();
    }
}

/// `dataset` with its input scalers fitted on the systems' training blocks under `config`
/// ([`Dataset::fit_scalers`]); borrowed as it is when they already are.
fn with_training_scalers<'a>(dataset: &'a Dataset, config: &RunConfig) -> Cow<'a, Dataset> {
    let mut fitted = dataset.clone();
    fitted.fit_scalers(&config.examples);
    if fitted.scalers() == dataset.scalers() {
        Cow::Borrowed(dataset)
    } else {
        Cow::Owned(fitted)
    }
}

/// Trains on `dataset` with `config`, writing everything into `out_dir` (which must not hold a
/// run), then evaluates the best checkpoint on the test split and draws the plots.
pub fn train(
    dataset: &Dataset,
    config: &RunConfig,
    out_dir: &Path,
    device: &Device,
    options: RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    for file in ["config.toml", LAST, PREVIOUS, MODEL] {
        if out_dir.join(file).exists() {
            bail!(
                "{} already holds a run ({file} exists); resume it with `train --resume {}` or choose another --out (nothing was overwritten)",
                out_dir.display(),
                out_dir.display()
            );
        }
    }
    let dataset = with_training_scalers(dataset, config);
    start(&dataset, config, out_dir, device, options, started)
}

/// Starts a run in `out_dir` from step 0 (the folder is checked by the caller).
fn start(
    dataset: &Dataset,
    config: &RunConfig,
    out_dir: &Path,
    device: &Device,
    options: RunOptions,
    started: Instant,
) -> Result<RunSummary> {
    let trainer = Trainer::new(
        dataset,
        &config.examples,
        &config.model,
        config.train.clone(),
        device,
    )?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    write_atomic(
        &out_dir.join("config.toml"),
        toml::to_string(config)?.as_bytes(),
    )?;
    let log =
        std::fs::File::create(out_dir.join("metrics.jsonl")).context("creating metrics.jsonl")?;
    let session = Session {
        dataset,
        config,
        out_dir,
        device,
        trainer,
        state: LoopState {
            trainer: TrainerState {
                step: 0,
                epoch: 0,
                cursor: 0,
                examples: 0,
                updates: 0,
            },
            best_nmae: None,
            since_best: 0,
            running_loss: 0.0,
            log_bytes: 0,
            stopped_early: false,
        },
        log,
        metadata: model_metadata(config, FeatureWidths::of(dataset), &dataset.scalers())?,
    };
    finish(session, options, started)
}

/// The training-state checkpoint of the run in `run_dir`: `last.safetensors`, or
/// `previous.safetensors` when a crash came between replacing the two; `None` for a run stopped
/// before its first checkpoint (only `config.toml` and the log exist).
fn read_state(run_dir: &Path) -> Result<Option<Checkpoint>> {
    let last = run_dir.join(LAST);
    let path = if last.exists() {
        last
    } else if run_dir.join(PREVIOUS).exists() {
        run_dir.join(PREVIOUS)
    } else if run_dir.join("config.toml").is_file() {
        return Ok(None);
    } else {
        bail!(
            "{} holds no training state ({LAST}) and no config.toml; is it a run folder?",
            run_dir.display()
        );
    };
    let checkpoint = Checkpoint::read(&path, &Device::Cpu).map_err(|e| {
        let previous = run_dir.join(PREVIOUS);
        let hint = if path != previous && previous.exists() {
            format!(
                "; the state before it is intact in {}: move it to {LAST} to resume from there",
                previous.display()
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    Ok(Some(checkpoint))
}

/// A run folder as found on disk, read once: its configuration, its training state and, when it
/// finished, its test report. [`resume_stored`] continues from it.
pub struct StoredRun {
    dir: PathBuf,
    /// The run's configuration: from its training state, or from its `config.toml` when it
    /// stopped before the first checkpoint.
    pub config: RunConfig,
    /// The training state (`last`, else `previous`) and its loop state; `None` before the first
    /// checkpoint.
    state: Option<(Checkpoint, LoopState)>,
    /// The test report, present once the run finished (`test_metrics.json` is written last).
    test: Option<Report>,
}

impl StoredRun {
    /// Reads the run in `run_dir`.
    pub fn open(run_dir: &Path) -> Result<Self> {
        let state = match read_state(run_dir)? {
            Some(checkpoint) => {
                let loop_state: LoopState = checkpoint.json("state")?;
                Some((checkpoint, loop_state))
            }
            None => None,
        };
        let config = match &state {
            Some((checkpoint, _)) => checkpoint.toml("config")?,
            None => config_file(run_dir)?,
        };
        let path = run_dir.join("test_metrics.json");
        let test = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| format!("in {}", path.display()))?)
        } else {
            None
        };
        Ok(Self {
            dir: run_dir.to_owned(),
            config,
            state,
            test,
        })
    }

    /// The run's summary, read from its files, if it finished; `None` when it has steps left.
    pub fn finished(&self) -> Option<RunSummary> {
        let test = self.test.clone()?;
        Some(RunSummary {
            out_dir: self.dir.clone(),
            test: Some(test),
            steps: self.state.as_ref().map_or(0, |(_, s)| s.trainer.step),
            seconds: 0.0,
        })
    }
}

fn config_file(run_dir: &Path) -> Result<RunConfig> {
    let path = run_dir.join("config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in {}", path.display()))
}

/// Continues the run in `run_dir` from its last checkpoint on `dataset` (the same data it started
/// on), to the same end as if it had never stopped: [`StoredRun::open`], then [`resume_stored`].
pub fn resume(
    dataset: &Dataset,
    run_dir: &Path,
    device: &Device,
    options: RunOptions,
) -> Result<RunSummary> {
    resume_stored(dataset, StoredRun::open(run_dir)?, device, options)
}

/// Continues `run` on `dataset`. A run stopped before its first checkpoint starts again from
/// step 0. Resuming a finished run changes nothing and returns its stored summary, so a
/// supervisor may resume after a kill at any moment, even one during exit.
pub fn resume_stored(
    dataset: &Dataset,
    run: StoredRun,
    device: &Device,
    options: RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    if let Some(summary) = run.finished() {
        return Ok(summary);
    }
    let run_dir = run.dir.as_path();
    let config = run.config;
    let dataset = &*with_training_scalers(dataset, &config);
    let Some((checkpoint, state)) = run.state else {
        // Stopped before the first checkpoint: nothing was learnt yet, so start again.
        return start(dataset, &config, run_dir, device, options, started);
    };
    let scalers: Scalers = checkpoint.json("scalers")?;
    if scalers != dataset.scalers()
        || checkpoint.json::<FeatureWidths>("feature_widths")? != FeatureWidths::of(dataset)
    {
        bail!(
            "cannot resume {}: these data differ from the data the run started on (other inputs or values); resume with the same --data folder",
            run_dir.display()
        );
    }
    let mut trainer = Trainer::new(
        dataset,
        &config.examples,
        &config.model,
        config.train.clone(),
        device,
    )?;
    let on_device;
    let tensors = if device.same_device(&Device::Cpu) {
        &checkpoint.tensors
    } else {
        on_device = checkpoint
            .tensors
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_device(device)?)))
            .collect::<candle_core::Result<_>>()?;
        &on_device
    };
    checkpoint.load_into(&trainer.varmap)?;
    trainer.restore(state.trainer, tensors)?;
    let log_path = run_dir.join("metrics.jsonl");
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    if log.metadata()?.len() < state.log_bytes {
        bail!(
            "{} is shorter than when the checkpoint was written ({} bytes); it was edited or truncated",
            log_path.display(),
            state.log_bytes
        );
    }
    log.set_len(state.log_bytes)?;
    let mut log = log;
    log.seek(std::io::SeekFrom::End(0))?;
    let metadata = model_metadata(&config, FeatureWidths::of(dataset), &scalers)?;
    let session = Session {
        dataset,
        config: &config,
        out_dir: run_dir,
        device,
        trainer,
        state,
        log,
        metadata,
    };
    finish(session, options, started)
}

fn finish(mut session: Session<'_>, options: RunOptions, started: Instant) -> Result<RunSummary> {
    let finished = session.run(options)?;
    let steps = session.trainer.state().step;
    let out_dir = session.out_dir.to_owned();
    if !finished {
        return Ok(RunSummary {
            out_dir,
            test: None,
            steps,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // The test split is used once, by the best checkpoint.
    let saved = SavedModel::read(&out_dir.join(MODEL), session.device)?;
    let test = evaluate_saved(&saved, session.dataset, Split::Test, session.device)?;
    crate::plots::loss_curves(&out_dir.join("metrics.jsonl"), &out_dir.join("loss.png"))?;
    draw_report_plots(
        &saved,
        session.dataset,
        &test,
        Split::Test,
        &out_dir,
        session.device,
    )?;
    // Last: its presence marks the run finished.
    write_atomic(
        &out_dir.join("test_metrics.json"),
        serde_json::to_string_pretty(&test)?.as_bytes(),
    )?;
    Ok(RunSummary {
        out_dir,
        test: Some(test),
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A model read back from a checkpoint, with what it needs to see data as in training.
pub struct SavedModel {
    /// The model.
    pub model: PvForecaster,
    /// Its parameters.
    pub varmap: VarMap,
    /// The configuration it was trained with.
    pub config: RunConfig,
    /// Input widths it expects.
    pub widths: FeatureWidths,
    /// Input standardisation it was trained with.
    pub scalers: Scalers,
    /// The file.
    pub path: PathBuf,
}

impl SavedModel {
    /// Reads a model from a checkpoint file, or from `model.safetensors` in a run folder.
    pub fn read(path: &Path, device: &Device) -> Result<SavedModel> {
        let path = if path.is_dir() {
            path.join(MODEL)
        } else {
            path.to_owned()
        };
        let checkpoint = Checkpoint::read(&path, device)?;
        let config: RunConfig = checkpoint.toml("config")?;
        config
            .validate()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: the stored configuration", path.display()))?;
        let widths: FeatureWidths = checkpoint.json("feature_widths")?;
        let scalers: Scalers = checkpoint.json("scalers")?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = PvForecaster::new(&config.model, widths, config.data.step_minutes, vb)?;
        checkpoint.load_into(&varmap)?;
        Ok(SavedModel {
            model,
            varmap,
            config,
            widths,
            scalers,
            path,
        })
    }

    /// Makes `dataset` look like the training data to this model: the same inputs and variables,
    /// standardised with the training scalers. Loading must have used `self.config.data`.
    pub fn adapt(&self, dataset: &mut Dataset) -> Result<()> {
        dataset
            .use_scalers(&self.scalers)
            .with_context(|| format!("data for the model {}", self.path.display()))?;
        let widths = FeatureWidths::of(dataset);
        if widths != self.widths {
            bail!(
                "data for the model {}: input widths {widths:?} differ from training's {:?}",
                self.path.display(),
                self.widths
            );
        }
        Ok(())
    }
}

/// Evaluates a saved model and the baselines on one split of `dataset` (already adapted). The
/// baselines' clear-sky scale and the gradient-boosted baseline are fitted on the same data's
/// training split (the trees' rounds and depth chosen on its validation split).
pub fn evaluate_saved(
    saved: &SavedModel,
    dataset: &Dataset,
    split: Split,
    device: &Device,
) -> Result<Report> {
    let config = &saved.config;
    let (scale, gbt) = fit_baselines(dataset, config)?;
    let keys = example_keys(dataset, &config.examples, split)?;
    evaluate(
        &saved.model,
        dataset,
        config,
        &keys,
        split,
        &scale,
        gbt.as_ref(),
        device,
    )
}

/// The plots of an evaluation: nMAE by lead time, and forecast fans on examples of `split`.
pub fn draw_report_plots(
    saved: &SavedModel,
    dataset: &Dataset,
    report: &Report,
    split: Split,
    out_dir: &Path,
    device: &Device,
) -> Result<()> {
    crate::plots::nmae_by_lead(
        report,
        saved.config.data.step_minutes,
        &out_dir.join("nmae_by_lead.png"),
    )?;
    let fans = crate::forecast::fan_examples(saved, dataset, split, device)?;
    crate::plots::forecast_fans(&fans, &out_dir.join("forecast_fans.png"))?;
    Ok(())
}

/// Forecasters in table order.
const TABLE_ORDER: [&str; 5] = [
    "model",
    "gbt",
    "persistence",
    "smart_persistence",
    "clear_sky_ratio",
];

/// The test tables: daylight nMAE overall and per lead time (the first and every fourth), skill
/// against the reference with its 95 % day-block bootstrap interval; pooled, then per system.
pub fn table(test: &Report, step_minutes: i64) -> String {
    let mut out = forecaster_table("all systems", &test.pooled, step_minutes);
    for (ss_id, group) in &test.systems {
        out.push('\n');
        out.push_str(&forecaster_table(
            &format!("ss_id {ss_id}"),
            group,
            step_minutes,
        ));
    }
    out
}

fn forecaster_table(title: &str, group: &ForecasterTable, step_minutes: i64) -> String {
    let k = group
        .values()
        .map(|m| m.nmae_by_lead.len())
        .max()
        .unwrap_or(0);
    let leads: Vec<usize> = (0..k).filter(|i| i % 4 == 3 || *i == 0).collect();
    let (pairs, days) = group
        .values()
        .map(|m| (m.daylight_targets, m.days))
        .max()
        .unwrap_or_default();
    let mut out = format!("{title}: {pairs} daylight pairs on {days} days\n");
    out.push_str(&format!(
        "{:<18} {:>8} {:>8} {:>17}",
        "daylight nMAE", "overall", "skill", "95% interval"
    ));
    for &i in &leads {
        out.push_str(&format!(
            " {:>7}",
            format!("+{}m", (i as i64 + 1) * step_minutes)
        ));
    }
    out.push('\n');
    let percent = |x: f64| format!("{:+.1}%", 100.0 * x);
    for name in TABLE_ORDER {
        let Some(m) = group.get(name) else { continue };
        if m.daylight_targets == 0 {
            out.push_str(&format!("{name:<18} no daylight pairs\n"));
            continue;
        }
        out.push_str(&format!(
            "{:<18} {:>8.4} {:>8} {:>17}",
            name,
            m.nmae,
            m.skill.map_or("-".to_owned(), percent),
            m.skill_interval.map_or("-".to_owned(), |[lo, hi]| format!(
                "[{}, {}]",
                percent(lo),
                percent(hi)
            )),
        ));
        for &i in &leads {
            out.push_str(&format!(" {:>7.4}", m.nmae_by_lead[i]));
        }
        out.push('\n');
    }
    out
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Reports of runs that differ only in their seed, as one table per system and pooled: daylight
/// nMAE and skill, mean ± standard deviation over the runs, and the skill interval's bounds
/// averaged over the runs. Systems or forecasters missing from any run are left out.
pub fn seed_table(reports: &[Report]) -> String {
    use std::fmt::Write;
    let Some(first) = reports.first() else {
        return String::new();
    };
    let mut out = format!(
        "{} runs; daylight test nMAE and skill against {}: mean ± sd over the runs\n",
        reports.len(),
        first.reference
    );
    let groups = std::iter::once(("all systems".to_owned(), None)).chain(
        first
            .systems
            .keys()
            .map(|id| (format!("ss_id {id}"), Some(*id))),
    );
    for (title, ss_id) in groups {
        let table_of = |r: &'_ Report| -> Option<ForecasterTable> {
            match ss_id {
                None => Some(r.pooled.clone()),
                Some(id) => r.systems.get(&id).cloned(),
            }
        };
        let Some(tables) = reports.iter().map(table_of).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let pairs = tables[0]
            .values()
            .map(|m| m.daylight_targets)
            .max()
            .unwrap_or(0);
        let days = tables[0].values().map(|m| m.days).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{title}: {pairs} daylight pairs on {days} days\n{:<18} {:>17} {:>17} {:>19}",
            "forecaster", "nMAE", "skill", "mean 95% interval"
        );
        for name in TABLE_ORDER {
            let Some(ms) = tables
                .iter()
                .map(|t| t.get(name))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let (nmae, nmae_sd) = mean_sd(&ms.iter().map(|m| m.nmae).collect::<Vec<_>>());
            let skill = ms.iter().map(|m| m.skill).collect::<Option<Vec<_>>>();
            let interval = ms
                .iter()
                .map(|m| m.skill_interval)
                .collect::<Option<Vec<_>>>();
            let skill = skill.map_or("-".to_owned(), |s| {
                let (m, sd) = mean_sd(&s);
                format!("{:+.1} ± {:.1}%", 100.0 * m, 100.0 * sd)
            });
            let interval = interval.map_or("-".to_owned(), |i| {
                let lo = mean_sd(&i.iter().map(|x| x[0]).collect::<Vec<_>>()).0;
                let hi = mean_sd(&i.iter().map(|x| x[1]).collect::<Vec<_>>()).0;
                format!("[{:+.1}%, {:+.1}%]", 100.0 * lo, 100.0 * hi)
            });
            let _ = writeln!(
                out,
                "{name:<18} {:>17} {skill:>17} {interval:>19}",
                format!("{nmae:.4} ± {nmae_sd:.4}")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(nmae: f64, skill: Option<f64>) -> crate::metrics::ForecasterMetrics {
        crate::metrics::ForecasterMetrics {
            nmae,
            nmae_by_lead: vec![nmae],
            mae_kw: nmae,
            mae_kw_by_lead: vec![nmae],
            nmae_all_steps: nmae,
            nmae_all_steps_by_lead: vec![nmae],
            skill,
            skill_interval: skill.map(|s| [s - 0.1, s + 0.1]),
            pinball: None,
            coverage: None,
            daylight_targets: 10,
            days: 2,
        }
    }

    /// Two seeds: nMAE 0.10 and 0.20 give 0.1500 ± 0.0707 (sample sd); skills 10 % and 30 %.
    #[test]
    fn the_seed_table_gives_mean_and_sample_sd() {
        let report = |model: f64, skill: f64| {
            let table: ForecasterTable = [
                ("model".to_owned(), metrics(model, Some(skill))),
                ("smart_persistence".to_owned(), metrics(0.3, None)),
            ]
            .into_iter()
            .collect();
            Report {
                reference: "smart_persistence".into(),
                pooled: table.clone(),
                systems: [(50, table)].into_iter().collect(),
            }
        };
        let text = seed_table(&[report(0.10, 0.10), report(0.20, 0.30)]);
        assert!(text.starts_with("2 runs"), "{text}");
        assert!(
            text.contains("ss_id 50: 10 daylight pairs on 2 days"),
            "{text}"
        );
        let model = text.lines().find(|l| l.starts_with("model")).expect("row");
        assert!(model.contains("0.1500 ± 0.0707"), "{model}");
        assert!(model.contains("+20.0 ± 14.1%"), "{model}");
        assert!(model.contains("[+10.0%, +30.0%]"), "{model}");
        let reference = text.lines().find(|l| l.starts_with("smart")).expect("row");
        assert!(
            reference.contains("0.3000 ± 0.0000") && reference.contains(" - "),
            "{reference}"
        );
    }

    /// Resume compares `best_nmae` and the scalers read back from JSON with fresh values, so
    /// JSON must give back every f64 bit for bit (serde_json's `float_roundtrip`; without it
    /// these values come back one unit in the last place off).
    #[test]
    fn loop_state_survives_json_bit_for_bit() {
        for value in [0.18915252483709474, 0.09604570722197733, 0.1 + 0.2, 1e-300] {
            let state = LoopState {
                trainer: TrainerState {
                    step: 3,
                    epoch: 0,
                    cursor: 5,
                    examples: 7,
                    updates: 3,
                },
                best_nmae: Some(value),
                since_best: 1,
                running_loss: value * 3.0,
                log_bytes: 10,
                stopped_early: false,
            };
            let back: LoopState =
                serde_json::from_str(&serde_json::to_string(&state).expect("json")).expect("parse");
            assert_eq!(back.best_nmae.map(f64::to_bits), Some(value.to_bits()));
            assert_eq!(back.running_loss.to_bits(), (value * 3.0).to_bits());
        }
    }
}
