//! # trainer
//!
//! Training, evaluation and the `power-perceiver` CLI around the model of the `forecaster`
//! crate. In the order a run goes:
//!
//! - [`config`]: the run configuration (the forecaster's [`forecaster::ModelSetup`] plus
//!   optimisation, validation and the trees' settings), one TOML file.
//! - [`training`] and [`optim`]: the reproducible training step (seeded initialisation and
//!   shuffling, AdamW whose state is saved, warm-up + cosine, clipping).
//! - [`run`]: a run folder (config, metrics log, checkpoints, test metrics, plots), the loop
//!   with validation and early stopping, and resume.
//! - [`gbt`]: the gradient-boosted trees baseline on the same examples' flattened features.
//! - [`evaluate`]: the model and every baseline on one split, fitted on the training split;
//!   [`metrics`]: MAE, nMAE, skill with day-block bootstrap intervals, pinball, coverage,
//!   pooled and per system.
//! - [`report`]: the printed tables and the plots of a report; `plots`: PNG drawing.
//!
//! What it is deliberately not: the model (the `forecaster` crate: a user who only forecasts
//! depends on that alone), data loading (`pv-data`) or the attention kernels (`perceiver-core`).

pub mod config;
pub mod evaluate;
pub mod gbt;
pub mod metrics;
pub mod optim;
pub(crate) mod plots;
mod progress;
pub mod report;
pub mod run;
pub mod training;

/// Sets up the process as the trainer runs it: candle's CPU parallelism and the allocator.
/// Call it first in `main` of a binary (the CLI, benches) so every measurement sees the same
/// process.
///
/// **Threads.** The trainer parallelises over batch shards (training) and over batches
/// (evaluation), each on a rayon worker. candle 0.11 runs every element-wise op of 64Ki elements
/// or more on one global barrier pool behind one lock, so two shards' ops queue for it and spin
/// in it: two shards on two threads took as long as one thread (264 vs 224 ms a step). With
/// `CANDLE_NUM_THREADS=1` those ops run on the calling thread and the shards run side by side
/// (135–143 ms). Matrix products and our attention kernels still use the rayon pool. A
/// `CANDLE_NUM_THREADS` the user set is kept.
///
/// **Allocator** (glibc only). By default glibc hands multi-MiB blocks back to the kernel when
/// they are freed, so the next tensor of that size page-faults through fresh zeroed pages: at
/// the attention bench's large shape (8 × 4 heads of 64 × 1024) that was a third of a forward +
/// backward. Blocks up to 32 MiB now come from the heap and freed memory stays in the process
/// until 1 GiB is free at its top, so they are reused (57 → 39 ms there; the default model's
/// training step, whose tensors are small, is unchanged). Peak memory is unchanged; resident
/// memory stays near the peak instead of falling back. A `GLIBC_TUNABLES` the user set is kept.
///
/// # Safety
///
/// Sets an environment variable: call it at the start of `main`, before any other thread exists
/// (the same contract as [`std::env::set_var`]).
pub unsafe fn configure_process() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees no other thread is running.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: `mallopt` only changes malloc's tuning; it is called before other threads
        // allocate. A refused value (return 0) leaves glibc's default, which is only slower.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
