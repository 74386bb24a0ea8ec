//! # trainer
//!
//! The top crate: it assembles the model from the library crates and (in coming work) trains,
//! evaluates and forecasts, with the CLI, config files and logging. Today it holds
//! [`model::PvForecaster`] (pv-data batches → per-modality embedders → HiP encoder → MetNet decoder
//! → quantiles of power / kWp), [`baselines`] (persistence, smart persistence, clear-sky × recent
//! ratio on the same batches) and [`metrics`] (MAE, nMAE, skill, pinball, coverage; daylight and
//! all steps; per lead time).

pub mod baselines;
pub mod config;
pub mod metrics;
pub mod model;
pub mod run;
pub mod training;
