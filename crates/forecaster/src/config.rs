//! What a forecaster is: the model's shape ([`ModelConfig`]) and, with how data are loaded and
//! cut into examples, everything a saved model needs to see data as it was trained on
//! ([`ModelSetup`]). The trainer's run configuration adds optimisation and evaluation to these.

use hip_encoder::{FanOutConfig, LevelConfig};
use pv_data::{ExampleConfig, LoadConfig};

/// One HiP level, as written in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    /// Groups (the first level: one per history step; the last: 1).
    pub groups: usize,
    /// Latents per group.
    pub latents: usize,
    /// Channels.
    pub channels: usize,
    /// Self-attention layers after the cross-attention.
    pub self_attention_layers: usize,
    /// Attention heads.
    pub heads: usize,
}

impl From<LevelSpec> for LevelConfig {
    fn from(l: LevelSpec) -> Self {
        LevelConfig {
            groups: l.groups,
            latents: l.latents,
            channels: l.channels,
            self_attention_layers: l.self_attention_layers,
            heads: l.heads,
        }
    }
}

/// The model's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Width every token is embedded to.
    pub token_dim: usize,
    /// Fourier bands for token offsets (east, north, hours from t0).
    pub fourier_bands: usize,
    /// Fourier maximum frequency.
    pub fourier_max_freq: f64,
    /// HiP levels (the first must have one group per history step).
    pub levels: Vec<LevelSpec>,
    /// Decoder channels.
    pub decoder_channels: usize,
    /// Decoder blocks.
    pub decoder_blocks: usize,
    /// Decoder heads.
    pub decoder_heads: usize,
    /// MLP widening everywhere.
    pub widening: usize,
    /// Quantile levels predicted.
    pub quantiles: Vec<f64>,
    /// Predict a correction to clear-sky-index persistence instead of power from scratch: every
    /// quantile is k(t0) × clear-sky irradiance at the target time (from the query's features;
    /// k clipped to [0, 1.5], and a learned climatological index where the clear sky at the last
    /// observation is under 0.3 kW/kWp or there is none) plus the decoder's output.
    pub smart_persistence_prior: bool,
    /// Weights the training loss by lead time: lead τ's terms count `exp(−decay · τ / h)`,
    /// normalised to a mean of 1 over the lead times. 0 (the default) weighs every lead alike, as
    /// the reported nMAE (a mean over leads) does; positive favours the first leads, negative
    /// the last. Evaluation is not weighted.
    pub loss_lead_decay_per_hour: f64,
    /// How the decoder learns the lead time: FiLM in every block (`film`, MetNet-2's way) or only
    /// as a feature of its queries (`feature`). An ablation switch; `film` is the design.
    pub lead_time_conditioning: LeadTimeConditioning,
    /// What the decoder reads besides its queries: the HiP history encoder's bottleneck (`hip`)
    /// or nothing (`none`: each query's own features only, the ablation of what the encoder adds).
    pub encoder: EncoderKind,
    /// How token positions (east, north, hours from t0) are encoded: the hand-crafted Fourier
    /// features (`fourier`), or learned ones (`learned`: frequencies that start at the
    /// hand-crafted ones and are trained, free to mix the three offsets).
    pub positions: PositionEncoding,
    /// How often the encoder runs: once per example, its bottleneck read by every lead time
    /// (`once`, the design), or once per (example, lead time) with every encoder level's
    /// latents FiLM-conditioned on the lead time and each lead's queries reading their own
    /// bottleneck (`per_lead`: the MetNet way, an ablation of issue 14's first question; it
    /// costs the encoder's work times the lead times). Needs `encoder = "hip"` or `"flat"`.
    pub encoder_runs: EncoderRuns,
    /// HiP-style fan-out decoding (an ablation, issue 14's first question): levels that split
    /// the encoder's bottleneck back into groups, each group's learned latents reading their
    /// parent group's latents (each level's groups a multiple of the previous level's, the
    /// bottleneck being one group), the last level with one group per lead time
    /// (`examples.lead_times`); each lead's queries then read only their own group instead of
    /// the whole bottleneck. Empty (the default): every lead time reads the whole bottleneck.
    pub fan_out: Vec<LevelSpec>,
}

/// How often the encoder runs ([`ModelConfig::encoder_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderRuns {
    /// Once per example (the design).
    #[default]
    Once,
    /// Once per example and lead time, conditioned on the lead time (the MetNet way).
    PerLead,
}

/// How token positions are encoded before each modality's embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionEncoding {
    /// `[x, sin(π f x), cos(π f x)]` per offset at fixed frequencies `f`.
    #[default]
    Fourier,
    /// `[x, sin(W x), cos(W x)]` with `W` learned (initialised at the Fourier frequencies).
    Learned,
}

/// How the decoder learns the lead time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadTimeConditioning {
    /// FiLM scale and bias from the lead time before every attention of every decoder block.
    #[default]
    Film,
    /// Only the query's `lead_hours` feature.
    Feature,
}

/// The history encoder the decoder cross-attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// The Hierarchical Perceiver: one group per history step, merged to a bottleneck.
    #[default]
    Hip,
    /// A flat Perceiver (an ablation, issue 14's second question): every history step's tokens
    /// in one group, read by the last level's latents in one cross-attention, then as many
    /// self-attention layers as all `levels` have together.
    Flat,
    /// A Perceiver used as a recurrent network (an ablation, issue 14's second question): the
    /// last level's latents read the history one step at a time, each step starting from the
    /// latents the previous one left, with the last level's self-attention layers after each.
    Recurrent,
    /// No encoder: no token is read, the decoder sees its queries alone.
    #[serde(rename = "none")]
    QueriesOnly,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::small(8)
    }
}

impl ModelConfig {
    /// A small default for `history_steps` groups: 3 levels merging 8 → 2 → 1.
    pub fn small(history_steps: usize) -> Self {
        let mid = if history_steps.is_multiple_of(4) {
            history_steps / 4
        } else {
            1
        };
        ModelConfig {
            token_dim: 32,
            fourier_bands: 4,
            fourier_max_freq: 8.0,
            levels: vec![
                LevelSpec {
                    groups: history_steps,
                    latents: 4,
                    channels: 32,
                    self_attention_layers: 1,
                    heads: 2,
                },
                LevelSpec {
                    groups: mid,
                    latents: 8,
                    channels: 32,
                    self_attention_layers: 1,
                    heads: 2,
                },
                LevelSpec {
                    groups: 1,
                    latents: 16,
                    channels: 64,
                    self_attention_layers: 1,
                    heads: 4,
                },
            ],
            decoder_channels: 64,
            decoder_blocks: 2,
            decoder_heads: 4,
            widening: 2,
            quantiles: vec![0.1, 0.5, 0.9],
            smart_persistence_prior: false,
            loss_lead_decay_per_hour: 0.0,
            lead_time_conditioning: LeadTimeConditioning::Film,
            encoder: EncoderKind::Hip,
            positions: PositionEncoding::Fourier,
            encoder_runs: EncoderRuns::Once,
            fan_out: Vec::new(),
        }
    }
}

/// The fan-out that the ablation study measures (`model.fan_out`): the bottleneck split into 4
/// groups of 8 latents, then into one group of 4 latents per lead time, 32 channels, 2 heads and
/// one self-attention layer each: the encoder's levels mirrored. `lead_times` must be a multiple
/// of 4 (validation says so otherwise).
pub fn fan_out_to(lead_times: usize) -> Vec<LevelSpec> {
    let level = |groups, latents| LevelSpec {
        groups,
        latents,
        channels: 32,
        self_attention_layers: 1,
        heads: 2,
    };
    vec![level(4, 8), level(lead_times, 4)]
}

/// What a saved model needs besides its weights: how its data were loaded, how examples were cut,
/// and its shape. These are the `data`, `examples` and `model` tables of a run's `config.toml`
/// (stored in every checkpoint); other tables (the trainer's) are ignored here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSetup {
    /// Loading.
    #[serde(default)]
    pub data: LoadConfig,
    /// Examples and splits.
    #[serde(default)]
    pub examples: ExampleConfig,
    /// Model shape.
    #[serde(default)]
    pub model: ModelConfig,
}

impl Default for ModelSetup {
    fn default() -> Self {
        let examples = ExampleConfig::default();
        ModelSetup {
            data: LoadConfig::default(),
            model: ModelConfig::small(examples.history_steps),
            examples,
        }
    }
}

impl ModelSetup {
    /// Checks what no type can: impossible lengths, and a first HiP level that is not one group
    /// per history step.
    pub fn validate(&self) -> Result<(), String> {
        self.examples.validate().map_err(|e| e.to_string())?;
        if self.model.encoder == EncoderKind::QueriesOnly
            && self.model.positions == PositionEncoding::Learned
        {
            return Err(
                "model.positions = \"learned\" needs tokens to place, but model.encoder = \"none\" reads none; use positions = \"fourier\" (the default) with encoder = \"none\"".into(),
            );
        }
        if self.model.encoder_runs == EncoderRuns::PerLead
            && !matches!(self.model.encoder, EncoderKind::Hip | EncoderKind::Flat)
        {
            return Err(format!(
                "model.encoder_runs = \"per_lead\" conditions the HiP or flat encoder's latents on the lead time, but model.encoder = {:?} has none; use encoder = \"hip\" or \"flat\"",
                self.model.encoder
            ));
        }
        if !self.model.fan_out.is_empty() {
            self.validate_fan_out()?;
        }
        if !self.model.loss_lead_decay_per_hour.is_finite() {
            return Err("model.loss_lead_decay_per_hour must be a finite number".into());
        }
        let first = self.model.levels.first().ok_or("model.levels is empty")?;
        if first.groups != self.examples.history_steps {
            return Err(format!(
                "model.levels[0].groups is {} but examples.history_steps is {}: level 1 has one group per history step",
                first.groups, self.examples.history_steps
            ));
        }
        Ok(())
    }

    /// `model.fan_out` needs a bottleneck to split, read once for every lead time, and one output
    /// group per lead time.
    fn validate_fan_out(&self) -> Result<(), String> {
        let model = &self.model;
        if model.encoder == EncoderKind::QueriesOnly {
            return Err("model.fan_out splits the encoder's bottleneck, but model.encoder = \"none\" has none; use encoder = \"hip\", \"flat\" or \"recurrent\", or fan_out = []".into());
        }
        if model.encoder_runs == EncoderRuns::PerLead {
            return Err("model.fan_out gives each lead time its own group of one shared bottleneck, but model.encoder_runs = \"per_lead\" already gives each its own bottleneck; use one of the two".into());
        }
        let levels: Vec<LevelConfig> = model.fan_out.iter().copied().map(Into::into).collect();
        let input_dim = model.levels.last().map_or(model.token_dim, |l| l.channels);
        FanOutConfig::new(input_dim, levels)
            .validate()
            .map_err(|e| {
                let e = e.to_string();
                format!("model.fan_out: {}", e.trim_start_matches("fan-out: "))
            })?;
        let outputs = model.fan_out.last().map_or(0, |l| l.groups);
        if outputs != self.examples.lead_times {
            return Err(format!(
                "model.fan_out's last level has {outputs} groups but examples.lead_times is {}: the fan-out ends in one group per lead time",
                self.examples.lead_times
            ));
        }
        Ok(())
    }
}
