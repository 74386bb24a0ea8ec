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

/// Sets how candle's own CPU parallelism is used, for a process that parallelises as the trainer
/// does: over batch shards (training) and over batches (evaluation), each on a rayon worker.
///
/// candle 0.11 runs every element-wise op of 64Ki elements or more on one global barrier pool
/// behind one lock, so two shards' ops queue for it and spin in it: two shards on two threads
/// took as long as one thread (264 vs 224 ms a step). With `CANDLE_NUM_THREADS=1` those ops run
/// on the calling thread and the shards run side by side (135–143 ms). Matrix products and our
/// attention kernels still use the rayon pool. A `CANDLE_NUM_THREADS` the user set is kept.
///
/// # Safety
///
/// Sets an environment variable: call it at the start of `main`, before any other thread exists
/// (the same contract as [`std::env::set_var`]).
pub unsafe fn configure_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees no other thread is running.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}
