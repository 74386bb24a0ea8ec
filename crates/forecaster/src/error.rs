//! What can go wrong when a saved model is read, fed data or asked for a forecast. Every variant
//! names the file or the time it is about.

use std::path::PathBuf;

use pv_data::{DataError, FeatureWidths, UnixTime};

use crate::checkpoint::CheckpointError;

/// Why a saved model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The checkpoint file itself.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The configuration stored in the checkpoint is impossible.
    #[error("{path}: the stored configuration: {message}")]
    Config {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model cannot join an ensemble: it sees data, or forecasts, differently from the first.
    #[error("{path} cannot join an ensemble with {first}: {what} differ")]
    Ensemble {
        /// The model that does not fit.
        path: PathBuf,
        /// The ensemble's first model.
        first: PathBuf,
        /// What differs.
        what: &'static str,
    },
    /// The data cannot be made to look like the training data.
    #[error("data for the model {path}: {source}")]
    Data {
        /// The checkpoint.
        path: PathBuf,
        /// The cause.
        source: Box<DataError>,
    },
    /// The data's inputs differ from the training data's.
    #[error("data for the model {path}: input widths {found:?} differ from training's {trained:?}")]
    Widths {
        /// The checkpoint.
        path: PathBuf,
        /// What the data give.
        found: FeatureWidths,
        /// What the model was trained on.
        trained: FeatureWidths,
    },
    /// A forecast time off the data's time grid.
    #[error(
        "t0 {t0} is not on the {step_minutes}-minute grid of the data; use a time such as {nearest}"
    )]
    OffGrid {
        /// The time asked for.
        t0: UnixTime,
        /// The grid step.
        step_minutes: i64,
        /// The grid time at or before it.
        nearest: UnixTime,
    },
    /// No system has history before the forecast time.
    #[error(
        "no system has PV history in the {history_steps} steps before t0 {t0}; the data run from {first} to {last}"
    )]
    NoHistory {
        /// The time asked for.
        t0: UnixTime,
        /// History steps the model reads.
        history_steps: usize,
        /// The data's first time.
        first: UnixTime,
        /// The data's last time.
        last: UnixTime,
    },
    /// A forecast file could not be written.
    #[error("writing {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Building examples for the model failed.
    #[error("building examples: {0}")]
    Examples(Box<DataError>),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Error::Examples(Box::new(e))
    }
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;
