//! # forecaster
//!
//! The model and everything needed to use a trained one, without the training loop: depend on
//! this crate to load a checkpoint and forecast (see `examples/forecast.rs`).
//!
//! In data order:
//!
//! - [`config`]: the model's shape ([`ModelConfig`]) and what a saved model needs to see data as
//!   in training ([`ModelSetup`]: loading, examples, shape).
//! - [`model::PvForecaster`]: pv-data batches → per-modality embedders → HiP encoder → MetNet
//!   decoder → quantiles of power / kWp, with the pinball loss.
//! - [`baselines`]: persistence, smart persistence (clear-sky index, with the dawn rule) and the
//!   clear-sky × recent ratio, computed from the same batches the model sees.
//! - [`init`]: seeded initialisation of every parameter by name ([`init::initialise`]).
//! - [`checkpoint`]: the checksummed, self-describing file format, written atomically.
//! - [`saved`]: [`SavedModel`] (read, adapt data to it) and batched prediction.
//! - [`forecast`]: quantiles in kW per system and lead time at a t0, written as CSV or Parquet.
//!
//! What it is deliberately not: no optimiser, no run folders, no evaluation tables or plots, no
//! CLI (those are the `trainer` crate's), and nothing tied to a system's identity: a system is
//! described to the model by its metadata and history only.

pub mod baselines;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod forecast;
pub mod init;
pub mod model;
pub mod saved;

pub use config::{
    EncoderKind, EncoderRuns, LeadTimeConditioning, LevelSpec, ModelConfig, ModelSetup,
    PositionEncoding, fan_out_to,
};
pub use error::{Error, Result};
pub use forecast::{
    FleetForecast, ForecastFile, ForecastRow, forecast_at, forecast_fleet, latest_t0,
    write_forecast,
};
pub use model::PvForecaster;
pub use saved::{SavedModel, predict, predict_batches, predict_mean};
