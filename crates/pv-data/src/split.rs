//! Time splits. Each system's own time range is cut into contiguous train / validation / test
//! blocks (70 / 15 / 15 % by default), with a gap of one example length between blocks, so no
//! example of one block shares a single interval with an example of another.
//!
//! Where the cuts fall ([`SplitBy`]): at those fractions of the calendar range (the default), or
//! of the system's *observed* steps, for a system with a long gap: cut by calendar, a block that
//! falls inside the gap holds (almost) no data, and its row of the evaluation is empty (`data
//! inspect` and `train` report such blocks). Cut by observed steps, each block holds its share
//! of the data wherever the gap is; the cuts then depend on where the record has values (not on
//! the values), over the whole record.

use crate::error::{DataError, Result};
use crate::series::PvSeries;
use crate::time::UnixTime;

/// Which block of the data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// For fitting.
    Train,
    /// For model choice and early stopping.
    Validation,
    /// For the final, reported scores only.
    Test,
}

impl Split {
    /// All splits, in time order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        })
    }
}

/// How to cut each system's range.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Fraction of the range for training.
    pub train_fraction: f64,
    /// Fraction for validation; the test block gets the rest.
    pub validation_fraction: f64,
    /// Gap between blocks, in grid steps; `None` means one example length (history + lead times).
    pub gap_steps: Option<usize>,
    /// What the fractions are of: the calendar range (`calendar`) or the observed steps
    /// (`observed`).
    pub by: SplitBy,
}

/// What the split fractions are fractions of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitBy {
    /// The system's calendar range, first to last grid interval.
    #[default]
    Calendar,
    /// The system's observed grid intervals: a block holds its fraction of the data even where
    /// the record has a long gap.
    Observed,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            train_fraction: 0.70,
            validation_fraction: 0.15,
            gap_steps: None,
            by: SplitBy::Calendar,
        }
    }
}

impl SplitConfig {
    /// Checks the fractions.
    pub fn validate(&self) -> Result<()> {
        let (a, b) = (self.train_fraction, self.validation_fraction);
        if !(a > 0.0 && b >= 0.0 && a + b < 1.0) {
            return Err(DataError::Config(format!(
                "split fractions must satisfy 0 < train, 0 <= validation, train + validation < 1 (got {a}, {b})"
            )));
        }
        Ok(())
    }
}

/// The closed range of interval ends `[first, last]` a block may use, for one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// First interval end in the block.
    pub first: UnixTime,
    /// Last interval end in the block.
    pub last: UnixTime,
}

/// The block of `split` for `series`, given the example length in steps (history + lead times).
/// `None` when the block is empty.
pub fn block(
    series: &PvSeries,
    split: Split,
    config: &SplitConfig,
    example_steps: usize,
) -> Option<Block> {
    let step = series.step_s;
    let n = series.len() as i64;
    if n == 0 {
        return None;
    }
    let gap = config.gap_steps.unwrap_or(example_steps) as i64;
    // Cut points as grid indices: [0, c1) train, [c1 + gap, c2) validation, [c2 + gap, n) test.
    let (c1, c2) = cuts(series, config);
    let (lo, hi) = match split {
        Split::Train => (0, c1),
        Split::Validation => (c1 + gap, c2),
        Split::Test => (c2 + gap, n),
    };
    (lo < hi).then(|| Block {
        first: UnixTime(series.start.0 + lo * step),
        last: UnixTime(series.start.0 + (hi - 1) * step),
    })
}

/// The two cut points of `series` as grid indices: the first index of the validation part (before
/// the gap) and of the test part.
fn cuts(series: &PvSeries, config: &SplitConfig) -> (i64, i64) {
    let (a, b) = (config.train_fraction, config.validation_fraction);
    let n = series.len();
    let observed = series.power_kw.iter().filter(|p| !p.is_nan()).count();
    if config.by == SplitBy::Calendar || observed == 0 {
        let at = |f: f64| (n as f64 * f).floor() as i64;
        return (at(a), at(a + b));
    }
    // The index after which ⌊m·f⌋ of the m observed steps lie before it: the position of the
    // observed step numbered ⌊m·f⌋ (from 0), or the end.
    let targets = [
        (observed as f64 * a).floor() as usize,
        (observed as f64 * (a + b)).floor() as usize,
    ];
    let mut found = [n; 2];
    let mut seen = 0;
    for (i, p) in series.power_kw.iter().enumerate() {
        if p.is_nan() {
            continue;
        }
        for (slot, &target) in found.iter_mut().zip(&targets) {
            if seen == target && *slot == n {
                *slot = i;
            }
        }
        seen += 1;
    }
    (found[0] as i64, found[1] as i64)
}

/// Which block of `series` holds the interval ending at `t`, if any (times in gaps belong to none).
pub fn split_of(
    series: &PvSeries,
    t: UnixTime,
    config: &SplitConfig,
    example_steps: usize,
) -> Option<Split> {
    Split::ALL.into_iter().find(|&s| {
        block(series, s, config, example_steps).is_some_and(|b| b.first <= t && t <= b.last)
    })
}
