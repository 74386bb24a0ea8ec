//! Typed errors. Every error that comes from a user's input names the file and, where it applies,
//! the column and the (0-based, data-row) row, so a user can open the file and find the problem.

use std::path::PathBuf;

use crate::time::UnixTime;

/// Where in an input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// The column, as spelled in the file, when one applies.
    pub column: Option<String>,
    /// The data row (0-based, header excluded), when one applies.
    pub row: Option<usize>,
}

impl Location {
    /// A whole file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            column: None,
            row: None,
        }
    }

    /// One column of a file.
    pub fn column(path: impl Into<PathBuf>, column: impl Into<String>) -> Self {
        Location {
            path: path.into(),
            column: Some(column.into()),
            row: None,
        }
    }

    /// One cell of a file.
    pub fn cell(path: impl Into<PathBuf>, column: impl Into<String>, row: usize) -> Self {
        Location {
            path: path.into(),
            column: Some(column.into()),
            row: Some(row),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(column) = &self.column {
            write!(f, ", column `{column}`")?;
        }
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        Ok(())
    }
}

/// Why a value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadValueKind {
    /// NaN or ±infinity.
    NonFinite,
    /// A negative energy or power.
    Negative,
    /// A value that looks like a fill or sentinel code (e.g. −1e6, −9999).
    Sentinel,
    /// More energy than the system's capacity could produce in the interval (with a 2× margin).
    AboveCapacity,
    /// Outside the physically meaningful range of the column (e.g. latitude 95).
    OutOfRange,
}

impl std::fmt::Display for BadValueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadValueKind::NonFinite => "not a finite number",
            BadValueKind::Negative => "negative",
            BadValueKind::Sentinel => "a sentinel/fill value",
            BadValueKind::AboveCapacity => {
                "more than twice what the system's kWp can produce in the interval"
            }
            BadValueKind::OutOfRange => "out of the valid range",
        })
    }
}

/// Everything that can go wrong while loading data or building examples.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet file is corrupt, truncated or not Parquet at all.
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet {
        /// The path.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// The Arrow IPC file is corrupt or not Arrow IPC.
    #[error("{path}: not a readable Arrow IPC file: {message}")]
    ArrowIpc {
        /// The path.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A CSV file could not be parsed.
    #[error("{at}: malformed CSV: {message}")]
    Csv {
        /// Where.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// The file's extension is not one we read.
    #[error("{path}: unsupported file type (expected .parquet, .arrow/.ipc/.feather{csv})", csv = if *.csv_allowed { " or .csv" } else { "" })]
    UnsupportedFormat {
        /// The path.
        path: PathBuf,
        /// Whether CSV would have been accepted here.
        csv_allowed: bool,
    },
    /// A required column is absent.
    #[error("{path}: missing column `{column}` (columns found: {found})")]
    MissingColumn {
        /// The path.
        path: PathBuf,
        /// The column we looked for.
        column: String,
        /// The columns present, comma-separated.
        found: String,
    },
    /// A column has a type we cannot interpret.
    #[error("{at}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        at: Location,
        /// What we accept.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// A value is invalid (NaN, negative, sentinel, …).
    #[error("{at}: value {} is {kind}", readable(*value))]
    BadValue {
        /// Where.
        at: Location,
        /// The value as read.
        value: f64,
        /// Why it is rejected.
        kind: BadValueKind,
    },
    /// A required value is null.
    #[error("{at}: value is missing (null) where one is required")]
    NullValue {
        /// Where.
        at: Location,
    },
    /// A system has two rows for one timestamp.
    #[error("{at}: duplicate timestamp {time} for ss_id {ss_id} (first seen at {first})")]
    DuplicateTimestamp {
        /// The second occurrence.
        at: Location,
        /// The first occurrence.
        first: Box<Location>,
        /// The system.
        ss_id: i64,
        /// The timestamp.
        time: UnixTime,
    },
    /// Two rows of a gridded or keyed input (satellite, NWP, observations) share one key.
    #[error("{at}: duplicate row for {key} (first seen at {first})")]
    DuplicateKey {
        /// The second occurrence.
        at: Location,
        /// The first occurrence.
        first: Box<Location>,
        /// The key, described.
        key: String,
    },
    /// A system's timestamps go backwards within a file.
    #[error("{at}: timestamps for ss_id {ss_id} are not sorted: {time} comes after {previous}")]
    UnsortedTimestamp {
        /// Where the out-of-order row is.
        at: Location,
        /// The system.
        ss_id: i64,
        /// The out-of-order timestamp.
        time: UnixTime,
        /// The timestamp before it.
        previous: UnixTime,
    },
    /// Files of one input disagree on time zones (some naive, some zoned, or different zones).
    #[error(
        "{path}: time zone `{found}` differs from `{expected}` in {first_path}; convert all files to one convention"
    )]
    MixedTimeZones {
        /// The disagreeing file.
        path: PathBuf,
        /// Its time zone (or "none").
        found: String,
        /// The first file's time zone.
        expected: String,
        /// The first file.
        first_path: PathBuf,
    },
    /// A generation row names a system the metadata does not have.
    #[error("{at}: ss_id {ss_id} has no row in the metadata {metadata}")]
    UnknownSystem {
        /// Where the first such row is.
        at: Location,
        /// The system.
        ss_id: i64,
        /// The metadata file.
        metadata: PathBuf,
    },
    /// The metadata has two rows for one system.
    #[error("{at}: ss_id {ss_id} appears twice in the metadata")]
    DuplicateSystem {
        /// The second row.
        at: Location,
        /// The system.
        ss_id: i64,
    },
    /// There is nothing to read.
    #[error("{path}: empty input: {what}")]
    Empty {
        /// The file or folder.
        path: PathBuf,
        /// What was empty.
        what: String,
    },
    /// A system's data interval does not fit the requested step.
    #[error(
        "ss_id {ss_id}: data interval of {interval_minutes} min {problem} the step of {step_minutes} min"
    )]
    IntervalMismatch {
        /// The system.
        ss_id: i64,
        /// Its native interval.
        interval_minutes: i64,
        /// The requested step.
        step_minutes: i64,
        /// "is coarser than" or "does not divide".
        problem: &'static str,
    },
    /// Inputs differ from those a model was trained on: other variables, or an input the model
    /// was trained without.
    #[error("{input}: the model was trained {expected}, but the data have {found}")]
    IncompatibleInput {
        /// Which input.
        input: &'static str,
        /// What training saw.
        expected: String,
        /// What the data have.
        found: String,
    },
    /// A configuration value is impossible.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data are too short for one example in a split.
    #[error("{what}: {have} of data, but one example needs {need}")]
    WindowTooLong {
        /// What is too short.
        what: String,
        /// How much data there is.
        have: String,
        /// How much an example spans.
        need: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A value as a person reads it: plain up to a billion, scientific beyond (`{}` would print a
/// corrupt file's −6.7e270 as 271 digits).
fn readable(value: f64) -> String {
    if value.is_finite() && value.abs() >= 1e9 {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_values_print_in_scientific_notation() {
        assert_eq!(super::readable(-1e6), "-1000000");
        assert_eq!(super::readable(-6.708e270), "-6.708e270");
        assert_eq!(super::readable(f64::NAN), "NaN");
        assert_eq!(super::readable(f64::NEG_INFINITY), "-inf");
    }
}
