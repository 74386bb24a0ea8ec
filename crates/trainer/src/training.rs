//! The training loop's core, reproducible from a seed: deterministic parameter initialisation,
//! seeded shuffling, AdamW with linear warm-up and cosine decay, global gradient-norm clipping,
//! and a NaN/inf loss stopping with the step that produced it. The whole state (weights,
//! optimiser moments, step, data position) can be taken out and put back, so a resumed run is
//! bit-identical to one that never stopped ([`crate::run`] writes and reads it).

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use pv_data::features::Modality;
use pv_data::{
    Batch, Dataset, ExampleConfig, ExampleKey, FeatureWidths, Split, build_batch, example_keys,
};
use rayon::prelude::*;

use crate::optim::{AdamW, AdamWParams, WeightAverage};
use forecaster::init::name_seed;
pub use forecaster::init::{SplitMix64, initialise};
use forecaster::model::BatchTensors;
use forecaster::{ModelConfig, PvForecaster};

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seed for initialisation and shuffling: same seed, same machine → bit-identical weights.
    pub seed: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Optimiser steps. Default 2,000 (about 7 passes over the training examples at batch
    /// 256), chosen on the validation split over 1,600: 0.0879 against 0.0890, better for each
    /// of three seeds (docs/SKILL.md).
    pub steps: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Largest global gradient norm; larger gradients are scaled down.
    pub grad_clip: f64,
    /// Shards per batch: each step splits its batch into this many contiguous parts and runs
    /// forward and backward on them in parallel (data parallelism over the cores), summing the
    /// gradients in a fixed order. The loss and gradient are the whole batch's (each shard's loss
    /// sum is divided by the whole batch's term count), up to float rounding. Part of the run's
    /// numbers: the same seed and shards give the same weights on any number of threads.
    pub shards: usize,
    /// Probability that an example is trained without one of its optional inputs: each of
    /// satellite, observations, NWP and the context systems' PV is dropped independently, per
    /// example and step ([`pv_data::Batch::drop_input`]), so the model learns to forecast from
    /// whatever a folder holds. Drawn from the seed and the step: resumes reproduce it. Default
    /// 0.25, chosen on the validation split: it costs 0.9 % with every input (0.0918 vs 0.0910)
    /// and saves 35 % on a PV-only folder (0.0983 vs 0.1525), where the model without it is lost
    /// (docs/SKILL.md).
    pub modality_dropout: f64,
    /// Decay of an exponential moving average of the weights ([`WeightAverage`]), 0 for none.
    /// When set, validation, the saved model and everything read from it use the averaged
    /// weights; the optimiser goes on updating the raw ones. Default off: at 0.995 its
    /// validation curve is smooth where the raw weights' jumps, but the best figure is the same
    /// (0.0881 against 0.0879 over three seeds; the cosine decay already averages the end of the
    /// run). It suits schedules whose early stopping the raw curve's noise would trip
    /// (docs/SKILL.md).
    pub weight_average: f64,
    /// Fine-tuning: start from this model checkpoint's weights (a run folder's
    /// `model.safetensors`) instead of the seed's initialisation, and see the data through its
    /// input scalers instead of refitting them (`power-perceiver finetune`). The model and
    /// example settings must be the checkpoint's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            batch_size: 256,
            steps: 2000,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            warmup_steps: 50,
            grad_clip: 1.0,
            shards: 2,
            modality_dropout: 0.25,
            weight_average: 0.0,
            init_from: None,
        }
    }
}

/// The shards' gradients added up, parameter by parameter, in shard order.
fn sum_gradients(
    mut stores: impl Iterator<Item = GradStore>,
    vars: &[Var],
) -> candle_core::Result<GradStore> {
    let Some(mut total) = stores.next() else {
        candle_core::bail!("a step with no shards");
    };
    for store in stores {
        for var in vars {
            if let Some(g) = store.get(var.as_tensor()) {
                let sum = match total.get(var.as_tensor()) {
                    Some(t) => (t + g)?,
                    None => g.clone(),
                };
                total.insert(var.as_tensor(), sum);
            }
        }
    }
    Ok(total)
}

/// Learning rate at `step` (0-based): linear warm-up, then cosine decay to 10 % of the peak.
pub fn learning_rate_at(step: usize, config: &TrainConfig) -> f64 {
    let peak = config.learning_rate;
    if step < config.warmup_steps {
        return peak * (step + 1) as f64 / config.warmup_steps as f64;
    }
    let span = config.steps.saturating_sub(config.warmup_steps).max(1) as f64;
    let progress = ((step - config.warmup_steps) as f64 / span).min(1.0);
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

/// A parameter map's tensors by name, in name order.
fn named_tensors(varmap: &VarMap) -> candle_core::Result<Vec<(String, Tensor)>> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
    let mut out: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Drops each optional input of each example of `batch` with probability `p`
/// ([`TrainConfig::modality_dropout`]).
pub fn drop_inputs(batch: &mut Batch, p: f64, rng: &mut SplitMix64) {
    for example in 0..batch.len() {
        for modality in Modality::ALL {
            if rng.next_f64() < p {
                batch.drop_input(example, modality);
            }
        }
    }
}

/// Scales all gradients down so their global L2 norm is at most `max_norm`; returns the norm before.
pub(crate) fn clip_gradients(
    grads: &mut GradStore,
    vars: &[Var],
    max_norm: f64,
) -> candle_core::Result<f64> {
    let mut total = 0.0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm && norm.is_finite() {
        let factor = max_norm / norm;
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepLog {
    /// Step, 0-based.
    pub step: usize,
    /// Training pinball loss of the step's batch.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub learning_rate: f64,
}

/// Errors of training itself (data errors come from pv-data, tensor errors from candle).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error(
        "the training loss became {loss} at step {step}; lower the learning rate or check the data"
    )]
    NonFiniteLoss {
        /// The step.
        step: usize,
        /// The loss.
        loss: f64,
    },
    /// There is nothing to train on.
    #[error("the training split has no example")]
    NoExamples,
    /// A data error.
    #[error(transparent)]
    Data(#[from] pv_data::DataError),
    /// A tensor error.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// A saved state does not fit this data (another data folder or example configuration).
    #[error("cannot resume: {0}")]
    Resume(String),
}

/// Where training stands, besides weights and optimiser moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Steps taken.
    pub step: usize,
    /// Passes over the training examples started (0-based).
    pub epoch: u64,
    /// Position in this epoch's shuffled examples.
    pub cursor: usize,
    /// Training examples (a resumed run must see the same ones).
    pub examples: usize,
    /// Optimiser updates taken.
    pub updates: u64,
}

/// A model with its parameters and optimiser, trained step by step.
pub struct Trainer {
    /// The model.
    pub model: PvForecaster,
    /// Its parameters, by name.
    pub varmap: VarMap,
    optimiser: AdamW,
    /// The weights' moving average, when [`TrainConfig::weight_average`] is set.
    average: Option<WeightAverage>,
    /// Parameters in name order: sums over them (the gradient norm) are reproducible.
    vars: Vec<Var>,
    config: TrainConfig,
    keys: Vec<ExampleKey>,
    cursor: usize,
    epoch: u64,
    step: usize,
    device: Device,
    /// What built `model`, for [`Trainer::frozen_model`].
    built_with: (ModelConfig, FeatureWidths, i64),
}

impl Trainer {
    /// Builds and initialises a model for `dataset` from `config.seed`.
    pub fn new(
        dataset: &Dataset,
        examples: &ExampleConfig,
        model: &ModelConfig,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let built_with = (
            model.clone(),
            FeatureWidths::of(dataset),
            dataset.config.step_minutes,
        );
        let model = PvForecaster::new(model, built_with.1, built_with.2, vb)?;
        initialise(&varmap, config.seed)?;
        let params = AdamWParams {
            weight_decay: config.weight_decay,
            ..AdamWParams::default()
        };
        let named: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let mut vars: Vec<Var> = Vec::with_capacity(named.len());
        let mut sorted = named.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        vars.extend(sorted.into_iter().map(|(_, v)| v));
        let average = if config.weight_average > 0.0 {
            Some(WeightAverage::new(named.clone(), config.weight_average)?)
        } else {
            None
        };
        let optimiser = AdamW::new(named, params)?;
        let keys = example_keys(dataset, examples, Split::Train)?;
        if keys.is_empty() {
            return Err(TrainError::NoExamples);
        }
        let mut trainer = Trainer {
            model,
            varmap,
            optimiser,
            average,
            vars,
            config,
            keys,
            cursor: 0,
            epoch: 0,
            step: 0,
            device: device.clone(),
            built_with,
        };
        trainer.reshuffle();
        Ok(trainer)
    }

    fn reshuffle(&mut self) {
        self.keys.sort();
        SplitMix64::new(self.config.seed ^ self.epoch.wrapping_mul(0x9E37_79B9))
            .shuffle(&mut self.keys);
        self.cursor = 0;
    }

    fn next_keys(&mut self) -> Vec<ExampleKey> {
        let mut batch = Vec::with_capacity(self.config.batch_size);
        while batch.len() < self.config.batch_size {
            if self.cursor == self.keys.len() {
                self.epoch += 1;
                self.reshuffle();
            }
            let take = (self.config.batch_size - batch.len()).min(self.keys.len() - self.cursor);
            batch.extend_from_slice(&self.keys[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        batch
    }

    /// One optimiser step on the next training batch.
    pub fn step(
        &mut self,
        dataset: &Dataset,
        examples: &ExampleConfig,
    ) -> Result<StepLog, TrainError> {
        let keys = self.next_keys();
        let shard_len = keys.len().div_ceil(self.config.shards.max(1));
        let mut dropout = SplitMix64::new(name_seed(self.config.seed, "modality_dropout"))
            .next_u64()
            ^ (self.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shards = keys
            .chunks(shard_len)
            .map(|keys| {
                let mut batch = build_batch(dataset, examples, keys, Split::Train);
                if self.config.modality_dropout > 0.0 {
                    let mut rng = SplitMix64::new(dropout);
                    dropout = rng.next_u64();
                    drop_inputs(&mut batch, self.config.modality_dropout, &mut rng);
                }
                BatchTensors::new(&batch, &self.device)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut terms = 0.0;
        for shard in &shards {
            terms += self.model.loss_terms(shard)?;
        }
        let terms = terms.max(1.0);
        // Shards run in parallel on the rayon pool (their matrix products and attention kernels
        // share it; candle's element-wise ops: see `crate::configure_process`); `collect` keeps
        // shard order, so the sums below do not depend on the scheduling.
        let model = &self.model;
        let pass = |shard: &BatchTensors| -> candle_core::Result<(f64, GradStore)> {
            let loss = (model.loss_sum(shard)? / terms)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            Ok((value, loss.backward()?))
        };
        let passes = shards
            .par_iter()
            .map(pass)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let value: f64 = passes.iter().map(|(v, _)| v).sum();
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: self.step,
                loss: value,
            });
        }
        let mut grads = sum_gradients(passes.into_iter().map(|(_, g)| g), &self.vars)?;
        let grad_norm = clip_gradients(&mut grads, &self.vars, self.config.grad_clip)?;
        let learning_rate = learning_rate_at(self.step, &self.config);
        self.optimiser.step(&grads, learning_rate)?;
        if let Some(average) = &self.average {
            average.update(self.optimiser.updates())?;
        }
        let log = StepLog {
            step: self.step,
            loss: value,
            grad_norm,
            learning_rate,
        };
        self.step += 1;
        Ok(log)
    }

    /// The model with its current weights as constants ([`PvForecaster::frozen`]), the
    /// averaged ones when there is an average: what validation forecasts with, a quarter faster
    /// than through the variables. Build it anew after each step.
    pub fn frozen_model(&self) -> candle_core::Result<PvForecaster> {
        let (config, widths, step_minutes) = &self.built_with;
        PvForecaster::frozen(
            config,
            *widths,
            *step_minutes,
            self.model_weights(),
            &self.device,
        )
    }

    /// The weights that make the model: the average when there is one, else the parameters.
    fn model_weights(&self) -> &VarMap {
        self.average
            .as_ref()
            .map_or(&self.varmap, WeightAverage::varmap)
    }

    /// Passes over the training examples completed, as a fraction (for progress displays).
    pub(crate) fn epochs_done(&self) -> f64 {
        self.epoch as f64 + self.cursor as f64 / self.keys.len() as f64
    }

    /// Training examples per epoch.
    pub(crate) fn examples_per_epoch(&self) -> usize {
        self.keys.len()
    }

    /// Where training stands.
    pub fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            epoch: self.epoch,
            cursor: self.cursor,
            examples: self.keys.len(),
            updates: self.optimiser.updates(),
        }
    }

    /// Parameters, optimiser moments and the weight average, by name, for a checkpoint.
    pub fn tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out = named_tensors(&self.varmap)?;
        out.extend(self.optimiser.state());
        if let Some(average) = &self.average {
            out.extend(average.state());
        }
        Ok(out)
    }

    /// The model's weights by name (the averaged ones when there is an average): what a saved
    /// model holds.
    pub fn weights(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        named_tensors(self.model_weights())
    }

    /// Puts back a state taken by [`Trainer::state`] and [`Trainer::tensors`] (weights already
    /// loaded into `varmap` by the caller; `tensors` supplies the optimiser moments).
    pub fn restore(
        &mut self,
        state: TrainerState,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), TrainError> {
        if state.examples != self.keys.len() || state.cursor > self.keys.len() {
            return Err(TrainError::Resume(format!(
                "the run was trained on {} training examples, these data give {}; resume with the same data folder and configuration",
                state.examples,
                self.keys.len()
            )));
        }
        self.optimiser
            .restore(tensors, state.updates)
            .map_err(|e| TrainError::Resume(e.to_string()))?;
        if let Some(average) = &self.average {
            average
                .restore(tensors)
                .map_err(|e| TrainError::Resume(e.to_string()))?;
        }
        self.epoch = state.epoch;
        self.reshuffle();
        self.cursor = state.cursor;
        self.step = state.step;
        Ok(())
    }

    /// Every parameter's values, by name, in name order (for comparisons and checkpoints).
    pub fn parameters(&self) -> candle_core::Result<Vec<(String, Vec<f32>)>> {
        let vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
        let mut out: Vec<(String, Vec<f32>)> = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.flatten_all()?.to_vec1::<f32>()?)))
            .collect::<candle_core::Result<_>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
