//! The run configuration: one TOML file with every value, defaults included
//! (`power-perceiver train --print-config` writes it). Unknown keys are errors.

use forecaster::{ModelConfig, ModelSetup};
use pv_data::{ExampleConfig, LoadConfig};

use crate::gbt::GbtConfig;
use crate::training::TrainConfig;

/// How often to validate, and when to stop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Validate every this many steps.
    pub every_steps: usize,
    /// Stop after this many validations without a better validation nMAE. A schedule longer
    /// than the default may need more: at 3,200 steps of 256, one seed's validation did not
    /// improve for five validations halfway through, while the learning rate was still high,
    /// and then improved to its best (docs/SKILL.md).
    pub patience: usize,
    /// Validation examples used (evenly spaced over the split; 0 = all).
    pub max_validation_examples: usize,
    /// Examples per evaluation batch.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            every_steps: 100,
            patience: 5,
            max_validation_examples: 3000,
            batch_size: 256,
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Loading.
    pub data: LoadConfig,
    /// Examples and splits.
    pub examples: ExampleConfig,
    /// Model shape.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Validation and early stopping.
    pub eval: EvalConfig,
    /// The gradient-boosted trees baseline.
    pub gbt: GbtConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        let examples = ExampleConfig::default();
        RunConfig {
            data: LoadConfig::default(),
            model: ModelConfig::small(examples.history_steps),
            examples,
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
            gbt: GbtConfig::default(),
        }
    }
}

impl RunConfig {
    /// The part a saved model keeps: loading, examples and the model's shape.
    pub fn setup(&self) -> ModelSetup {
        ModelSetup {
            data: self.data,
            examples: self.examples,
            model: self.model.clone(),
        }
    }

    /// Checks values no type can: impossible lengths and sizes.
    pub fn validate(&self) -> Result<(), String> {
        self.setup().validate()?;
        if self.train.batch_size == 0 || self.train.steps == 0 {
            return Err("train.batch_size and train.steps must be at least 1".into());
        }
        if self.train.shards == 0 || self.train.shards > self.train.batch_size {
            return Err(format!(
                "train.shards must be between 1 and train.batch_size ({}), got {}",
                self.train.batch_size, self.train.shards
            ));
        }
        if !(self.train.learning_rate > 0.0 && self.train.learning_rate.is_finite()) {
            return Err(format!(
                "train.learning_rate must be positive, got {}",
                self.train.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.train.modality_dropout) {
            return Err(format!(
                "train.modality_dropout is a probability, between 0 and 1; got {}",
                self.train.modality_dropout
            ));
        }
        if !(0.0..1.0).contains(&self.train.weight_average) {
            return Err(format!(
                "train.weight_average is a decay, at least 0 (no average) and below 1; got {}",
                self.train.weight_average
            ));
        }
        if self.eval.every_steps == 0 || self.eval.batch_size == 0 {
            return Err("eval.every_steps and eval.batch_size must be at least 1".into());
        }
        Ok(())
    }
}
