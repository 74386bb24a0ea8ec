//! # trainer
//!
//! The top crate: it assembles the model from the library crates and (in coming work) trains,
//! evaluates and forecasts, with the CLI, config files and logging. Today it holds
//! [`model::PvForecaster`]: pv-data batches → per-modality embedders → HiP encoder → MetNet decoder
//! → quantiles of power / kWp.

pub mod model;
