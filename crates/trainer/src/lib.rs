//! # trainer
//!
//! The top crate: it assembles the model from the library crates, trains, evaluates and
//! forecasts, and is the `power-perceiver` CLI.
//!
//! - [`model::PvForecaster`]: pv-data batches → per-modality embedders → HiP encoder → MetNet
//!   decoder → quantiles of power / kWp.
//! - [`training`] and [`optim`]: the reproducible training step (seeded initialisation and
//!   shuffling, AdamW whose state is saved, warm-up + cosine, clipping).
//! - [`run`]: a run folder (config, metrics log, checkpoints, test metrics, plots), resume, and
//!   evaluation of a saved model; [`checkpoint`]: the checksummed, self-describing file format.
//! - [`baselines`] (persistence, smart persistence, clear-sky × recent ratio) and [`metrics`]
//!   (MAE, nMAE, skill, pinball, coverage; daylight and all steps; per lead time), computed on
//!   the same examples for every forecaster.
//! - [`forecast`]: quantiles per system and lead time from a saved model at any t0;
//!   [`plots`]: PNG figures.

pub mod baselines;
pub mod checkpoint;
pub mod config;
pub mod forecast;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plots;
pub mod run;
pub mod training;
