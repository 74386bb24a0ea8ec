//! # pv-data
//!
//! Loading, validation and example building for PV power forecasting, with no tensor library:
//! the model crates receive plain `f32` arrays with shapes and masks.
//!
//! The pipeline, in the order data flows:
//!
//! 1. [`generation`]: PV generation in the Open Climate Fix `uk_pv` layout (`ss_id`,
//!    `datetime_GMT` = end of interval in UTC, `generation_Wh`), from a Parquet/Arrow file or a
//!    (hive-partitioned) folder; [`metadata`]: `ss_id, latitude_rounded, longitude_rounded,
//!    orientation, tilt, kWp` from CSV or Parquet. Bad input is a typed [`DataError`] naming the
//!    file, column and row; an explicit [`BadValuePolicy`] can mask bad values and report counts.
//! 2. [`series`]: resampling by energy onto one grid (default 15 min), as mean kW, with missing
//!    intervals kept missing.
//! 3. [`inputs`]: optional satellite imagery, NWP forecasts and point observations.
//! 4. [`solar`]: sun position, clear-sky irradiance and plane-of-array clear-sky power.
//! 5. [`split`]: per-system contiguous train / validation / test blocks with a gap.
//! 6. [`example`]: examples `(t0, targets)`, tokens grouped by history step (one HiP group each),
//!    decoder queries per (target, lead time), and padded [`Batch`]es built in parallel.
//!
//! ```no_run
//! use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};
//! # fn main() -> Result<(), pv_data::DataError> {
//! let dataset = Dataset::load(&DataPaths::in_folder("data".as_ref())?, LoadConfig::default())?;
//! let config = ExampleConfig::default();
//! let keys = example_keys(&dataset, &config, Split::Train)?;
//! let batch = build_batch(&dataset, &config, &keys[..32], Split::Train);
//! assert_eq!(batch.tokens[pv_data::features::Modality::Pv].values.shape[1], config.history_steps);
//! # Ok(()) }
//! ```

pub mod dataset;
pub mod diagnostics;
pub mod error;
pub mod example;
pub mod features;
pub mod generation;
pub mod inputs;
pub mod metadata;
mod places;
pub mod series;
pub mod solar;
pub mod split;
mod table;
pub mod time;

pub use dataset::{
    DataPaths, DataSummary, Dataset, InputUse, LoadConfig, NamedScaler, Scalers, UK_PV_GENERATION,
};
pub use error::{BadValueKind, DataError, Location, Result};
pub use example::{
    Array, Batch, BatchTokens, Example, ExampleConfig, ExampleKey, FeatureWidths, Reach,
    build_batch, build_example, collate, evenly_spaced, example_keys,
};
pub use generation::{
    BadValuePolicy, Generation, LoadReport, Selection, load_generation, load_generation_selected,
};
pub use metadata::{Metadata, SystemMetadata, TimeLabel};
pub use series::PvSeries;
pub use split::{Split, SplitBy, SplitConfig};
pub use time::UnixTime;
