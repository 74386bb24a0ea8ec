//! A training run on disk: start, the training loop with validation and early stopping, resume.
//!
//! `runs/<name>/` holds:
//!
//! | file | what | written |
//! |---|---|---|
//! | `config.toml` | every configuration value, defaults included | at the start |
//! | `metrics.jsonl` | one JSON line per step and per validation | as training goes |
//! | `timing.jsonl` | the wall seconds of each step and each validation (apart from `metrics.jsonl`, whose bytes a seed reproduces) | as training goes; a resumed run appends |
//! | `model.safetensors` | the best weights by validation nMAE, with the config, feature widths and input scalers in its metadata | when validation improves |
//! | `last.safetensors` | weights, optimiser moments and loop state, for `--resume` | at every validation and when stopped |
//! | `previous.safetensors` | the state before `last` | when `last` is replaced |
//! | `test_metrics.json`, `*.png` | the best model on the test split, plots | at the end |
//!
//! Checkpoints are checksummed and published by rename ([`forecaster::checkpoint`]), so a crash at
//! any moment leaves the previous state readable. A resumed run truncates `metrics.jsonl` to
//! what it held at the checkpoint and continues bit-identically.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use forecaster::SavedModel;
use forecaster::checkpoint::{Checkpoint, write_atomic};
use forecaster::saved::{MODEL_FILE as MODEL, model_metadata};
use pv_data::{Dataset, FeatureWidths, Scalers, Split, evenly_spaced, example_keys};

use crate::config::RunConfig;
use crate::evaluate::{evaluate, evaluate_saved, fit_clear_sky_scale};
use crate::metrics::Report;
use crate::progress::Bars;
use crate::report::draw_report_plots;
use crate::training::{Trainer, TrainerState};

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

const LAST: &str = "last.safetensors";
const PREVIOUS: &str = "previous.safetensors";

struct Session<'a> {
    dataset: &'a Dataset,
    config: &'a RunConfig,
    out_dir: &'a Path,
    device: &'a Device,
    trainer: Trainer,
    state: LoopState,
    log: std::fs::File,
    /// `timing.jsonl`, appended to.
    timing: std::fs::File,
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
        forecaster::checkpoint::write(&tmp, &self.trainer.tensors()?, meta)?;
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
        forecaster::checkpoint::write(&self.out_dir.join(MODEL), &self.trainer.weights()?, meta)?;
        Ok(())
    }

    fn log_line(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.log, "{value}").context("writing metrics.jsonl")
    }

    fn time_line(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.timing, "{value}").context("writing timing.jsonl")
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
            let clock = Instant::now();
            let s = self.trainer.step(self.dataset, &config.examples)?;
            self.time_line(
                serde_json::json!({"step": s.step, "seconds": clock.elapsed().as_secs_f64()}),
            )?;
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
            let clock = Instant::now();
            let report = evaluate(
                &self.trainer.frozen_model()?,
                self.dataset,
                config,
                &validation,
                Split::Validation,
                &scale,
                None,
                self.device,
            )?;
            self.time_line(serde_json::json!({"validation_at": steps, "seconds": clock.elapsed().as_secs_f64()}))?;
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

/// `dataset` as the run sees it: with its input scalers fitted on the systems' training blocks
/// under `config` ([`Dataset::fit_scalers`]), or, when fine-tuning (`train.init_from`), adapted
/// to the starting model's scalers and inputs ([`SavedModel::adapt`]). Borrowed as it is when
/// nothing changes.
fn with_training_scalers<'a>(dataset: &'a Dataset, config: &RunConfig) -> Result<Cow<'a, Dataset>> {
    let mut fitted = dataset.clone();
    match &config.train.init_from {
        Some(model) => {
            let saved = SavedModel::read(model, &Device::Cpu)
                .with_context(|| format!("train.init_from = {}", model.display()))?;
            saved.adapt(&mut fitted)?;
        }
        None => fitted.fit_scalers(&config.examples),
    }
    Ok(
        if fitted.scalers() == dataset.scalers()
            && FeatureWidths::of(&fitted) == FeatureWidths::of(dataset)
        {
            Cow::Borrowed(dataset)
        } else {
            Cow::Owned(fitted)
        },
    )
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
    let dataset = with_training_scalers(dataset, config)?;
    start(&dataset, config, out_dir, device, options, started)
}

/// A freshly initialised trainer for `config` on `dataset`.
fn new_trainer(dataset: &Dataset, config: &RunConfig, device: &Device) -> Result<Trainer> {
    Ok(Trainer::new(
        dataset,
        &config.examples,
        &config.model,
        config.train.clone(),
        device,
    )?)
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
    let trainer = new_trainer(dataset, config, device)?;
    if let Some(model) = &config.train.init_from {
        // Fine-tuning: the starting weights replace the seed's initialisation.
        let file = if model.is_dir() {
            model.join(MODEL)
        } else {
            model.clone()
        };
        Checkpoint::read(&file, device)?
            .load_into(&trainer.varmap)
            .with_context(|| {
                format!(
                    "train.init_from = {}: the model settings must be the checkpoint's",
                    model.display()
                )
            })?;
    }
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
        timing: open_timing(out_dir)?,
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
    let dataset = &*with_training_scalers(dataset, &config)?;
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
    let mut trainer = new_trainer(dataset, &config, device)?;
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
        timing: open_timing(run_dir)?,
        metadata,
    };
    finish(session, options, started)
}

/// `timing.jsonl` in `dir`, opened to append (created if absent).
fn open_timing(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join("timing.jsonl");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
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

#[cfg(test)]
mod tests {
    use super::*;

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
