//! Loading PV generation in the uk_pv layout: `ss_id`, `datetime_GMT` (end of interval, UTC) and
//! `generation_Wh` (energy in the interval), from one Parquet/Arrow file or a folder of them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{BadValueKind, DataError, Location, Result};
use crate::table::{KeepRange, Table, list_files};
use crate::time::UnixTime;

/// What to do with a bad value (NaN, ±inf, negative, sentinel, above capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadValuePolicy {
    /// Stop with an error naming the file, column and row (the default).
    #[default]
    Error,
    /// Treat the value as missing, and count it in the [`LoadReport`].
    MaskAndReport,
}

/// Column names accepted for each generation field (matched ignoring ASCII case).
pub const SS_ID_COLUMNS: &[&str] = &["ss_id"];
/// See [`SS_ID_COLUMNS`].
pub const TIME_COLUMNS: &[&str] = &["datetime_GMT", "datetime_utc", "timestamp"];
/// See [`SS_ID_COLUMNS`].
pub const ENERGY_COLUMNS: &[&str] = &["generation_Wh"];

/// Values at or below this are read as fill codes (−999, −9999, −1e6), not as negative energy.
pub const SENTINEL_BELOW: f64 = -999.0;
/// Values at or above this (1 GWh in one interval) are read as fill codes.
pub const SENTINEL_ABOVE: f64 = 1e9;

/// Counts of what loading found and did, so nothing is altered silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Data rows read.
    pub rows: usize,
    /// Rows whose energy was null (kept as missing).
    pub null_values: usize,
    /// Values masked under [`BadValuePolicy::MaskAndReport`], by reason.
    pub masked: BTreeMap<String, usize>,
    /// Systems dropped under [`BadValuePolicy::MaskAndReport`] because the metadata lacks them.
    pub systems_without_metadata: Vec<i64>,
}

impl LoadReport {
    pub(crate) fn count_masked(&mut self, kind: BadValueKind) {
        *self.masked.entry(kind.to_string()).or_default() += 1;
    }
}

/// One system's readings as stored: interval-end times and the energy of each interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries {
    /// The system.
    pub ss_id: i64,
    /// Interval-end times, strictly increasing.
    pub times: Vec<UnixTime>,
    /// Energy in Wh of the interval ending at the matching time; `None` is missing.
    pub energy_wh: Vec<Option<f64>>,
    /// Where each reading came from: (index into [`Generation::files`], row).
    pub(crate) origin: Vec<(u32, u32)>,
}

impl RawSeries {
    /// The location of reading `i`, for error messages.
    pub fn location_of(&self, files: &[PathBuf], i: usize) -> Location {
        let (file, row) = self.origin[i];
        Location::cell(&files[file as usize], ENERGY_COLUMNS[0], row as usize)
    }
}

/// Generation data of every system, validated.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// One series per system, by ss_id.
    pub systems: BTreeMap<i64, RawSeries>,
    /// What loading found.
    pub report: LoadReport,
}

/// Classifies an energy value; `None` means it is acceptable.
pub fn classify_energy(value: f64) -> Option<BadValueKind> {
    if !value.is_finite() {
        Some(BadValueKind::NonFinite)
    } else if value <= SENTINEL_BELOW || value >= SENTINEL_ABOVE {
        Some(BadValueKind::Sentinel)
    } else if value < 0.0 {
        Some(BadValueKind::Negative)
    } else {
        None
    }
}

/// Which part of the generation to load: some systems, a time window, or everything (the
/// default). Rows outside it are skipped as they stream past, and whole Parquet row groups
/// whose statistics put them outside it are not read at all, so a small part of a file far
/// larger than memory (the full uk_pv `5min.parquet`) loads in the memory of that part.
/// Skipped rows are not validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these systems (every system when `None`).
    pub systems: Option<std::collections::BTreeSet<i64>>,
    /// Only readings whose interval ends at or after this time.
    pub from: Option<UnixTime>,
    /// Only readings whose interval ends at or before this time.
    pub to: Option<UnixTime>,
}

impl Selection {
    /// Whether the reading of `ss_id` ending at `time` (seconds) is selected.
    pub fn keeps(&self, ss_id: i64, time: i64) -> bool {
        self.systems.as_ref().is_none_or(|s| s.contains(&ss_id))
            && self.from.is_none_or(|from| time >= from.0)
            && self.to.is_none_or(|to| time <= to.0)
    }

    /// Whether everything is selected.
    pub fn is_everything(&self) -> bool {
        *self == Selection::default()
    }

    /// The column ranges a Parquet row group must meet to hold a selected row.
    fn ranges(&self) -> Vec<KeepRange<'_>> {
        let mut ranges = Vec::new();
        if let Some(systems) = &self.systems {
            let (min, max) = match (systems.first(), systems.last()) {
                (Some(&a), Some(&b)) => (a, b),
                // Nothing selected: no row group can hold a selected row.
                _ => (1, 0),
            };
            ranges.push(KeepRange {
                names: SS_ID_COLUMNS,
                min,
                max,
                only: Some(systems),
            });
        }
        if self.from.is_some() || self.to.is_some() {
            ranges.push(KeepRange {
                names: TIME_COLUMNS,
                min: self.from.map_or(i64::MIN, |t| t.0),
                max: self.to.map_or(i64::MAX, |t| t.0),
                only: None,
            });
        }
        ranges
    }
}

/// Loads generation from a file or a folder (searched recursively, hive partitions allowed).
pub fn load_generation(path: &Path, policy: BadValuePolicy) -> Result<Generation> {
    load_generation_selected(path, policy, &Selection::default())
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.systems {
            None => write!(f, "every system")?,
            Some(s) => write!(f, "{} systems", s.len())?,
        }
        match (self.from, self.to) {
            (None, None) => Ok(()),
            (from, to) => write!(
                f,
                ", {} to {}",
                from.map_or("the start".into(), |t| t.to_string()),
                to.map_or("the end".into(), |t| t.to_string())
            ),
        }
    }
}

/// [`load_generation`] of the `selection` only.
pub fn load_generation_selected(
    path: &Path,
    policy: BadValuePolicy,
    selection: &Selection,
) -> Result<Generation> {
    let files = list_files(path, false)?;
    let mut report = LoadReport {
        files: files.len(),
        ..LoadReport::default()
    };
    let mut systems: BTreeMap<i64, RawSeries> = BTreeMap::new();
    let mut zone: Option<(Option<String>, PathBuf)> = None;

    for (file_index, file) in files.iter().enumerate() {
        // Last (time, file row) per system within this file, to catch unsorted and duplicate rows.
        let mut last: HashMap<i64, (i64, usize)> = HashMap::new();
        // One record batch at a time: a file far larger than memory's share for it streams.
        let rows = Table::for_each_batch(file, &selection.ranges(), |table| {
            read_batch(
                table,
                file_index,
                policy,
                selection,
                &mut zone,
                &mut last,
                &mut systems,
                &mut report,
            )
        })?;
        if rows == 0 && selection.is_everything() {
            return Err(DataError::Empty {
                path: file.clone(),
                what: "no rows".into(),
            });
        }
        report.rows += rows;
    }

    // Files may each hold part of a system (hive partitions): order the parts and make sure no
    // timestamp appears twice across files.
    if files.len() > 1 {
        for series in systems.values_mut() {
            merge_sorted(series, &files)?;
        }
    }
    Ok(Generation {
        files,
        systems,
        report,
    })
}

/// Adds one record batch of a generation file to `systems`: checks ids and times (present,
/// sorted, unique per system within the file), the time zone (one for all files) and every
/// energy value under `policy`.
#[allow(clippy::too_many_arguments)]
fn read_batch(
    table: &Table,
    file_index: usize,
    policy: BadValuePolicy,
    selection: &Selection,
    zone: &mut Option<(Option<String>, PathBuf)>,
    last: &mut HashMap<i64, (i64, usize)>,
    systems: &mut BTreeMap<i64, RawSeries>,
    report: &mut LoadReport,
) -> Result<()> {
    let ss_col = table.require(SS_ID_COLUMNS)?;
    let time_col = table.require(TIME_COLUMNS)?;
    let energy_col = table.require(ENERGY_COLUMNS)?;
    let ss_ids = ss_col.integers()?;
    let times = time_col.times()?;
    let energies = energy_col.floats()?;

    let this_zone = times.zone.as_deref().map(normalise_zone);
    match zone {
        None => *zone = Some((this_zone, table.path.clone())),
        Some((first, first_path)) if *first != this_zone => {
            return Err(DataError::MixedTimeZones {
                path: table.path.clone(),
                found: this_zone.unwrap_or_else(|| "none (naive)".into()),
                expected: first.clone().unwrap_or_else(|| "none (naive)".into()),
                first_path: first_path.clone(),
            });
        }
        Some(_) => {}
    }

    for row in 0..table.num_rows() {
        let file_row = table.file_row(row);
        let ss_id = ss_ids[row].ok_or_else(|| DataError::NullValue {
            at: ss_col.cell(row),
        })?;
        let time = times.seconds[row].ok_or_else(|| DataError::NullValue {
            at: time_col.cell(row),
        })?;
        if !selection.keeps(ss_id, time) {
            continue;
        }
        if let Some(&(previous, previous_row)) = last.get(&ss_id) {
            if time == previous {
                return Err(DataError::DuplicateTimestamp {
                    at: time_col.cell(row),
                    first: Box::new(Location::cell(&table.path, time_col.name(), previous_row)),
                    ss_id,
                    time: UnixTime(time),
                });
            }
            if time < previous {
                return Err(DataError::UnsortedTimestamp {
                    at: time_col.cell(row),
                    ss_id,
                    time: UnixTime(time),
                    previous: UnixTime(previous),
                });
            }
        }
        last.insert(ss_id, (time, file_row));

        let energy = match energies[row] {
            None => {
                report.null_values += 1;
                None
            }
            Some(value) => match classify_energy(value) {
                None => Some(value),
                Some(kind) => match policy {
                    BadValuePolicy::Error => {
                        return Err(DataError::BadValue {
                            at: energy_col.cell(row),
                            value,
                            kind,
                        });
                    }
                    BadValuePolicy::MaskAndReport => {
                        report.count_masked(kind);
                        None
                    }
                },
            },
        };
        let series = systems.entry(ss_id).or_insert_with(|| RawSeries {
            ss_id,
            times: Vec::new(),
            energy_wh: Vec::new(),
            origin: Vec::new(),
        });
        series.times.push(UnixTime(time));
        series.energy_wh.push(energy);
        series.origin.push((file_index as u32, file_row as u32));
    }
    Ok(())
}

/// Sorts a series gathered from several files and rejects timestamps that appear twice.
fn merge_sorted(series: &mut RawSeries, files: &[PathBuf]) -> Result<()> {
    if series.times.windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    let mut order: Vec<usize> = (0..series.times.len()).collect();
    order.sort_by_key(|&i| (series.times[i], series.origin[i]));
    for pair in order.windows(2) {
        if series.times[pair[0]] == series.times[pair[1]] {
            let cell = |i: usize| {
                let (file, row) = series.origin[i];
                Location::cell(&files[file as usize], TIME_COLUMNS[0], row as usize)
            };
            return Err(DataError::DuplicateTimestamp {
                at: cell(pair[1]),
                first: Box::new(cell(pair[0])),
                ss_id: series.ss_id,
                time: series.times[pair[0]],
            });
        }
    }
    series.times = order.iter().map(|&i| series.times[i]).collect();
    series.energy_wh = order.iter().map(|&i| series.energy_wh[i]).collect();
    series.origin = order.iter().map(|&i| series.origin[i]).collect();
    Ok(())
}

/// Spellings of UTC are one zone; anything else is kept as written.
fn normalise_zone(zone: &str) -> String {
    match zone {
        "UTC" | "utc" | "Etc/UTC" | "Z" | "+00:00" | "GMT" | "Etc/GMT" | "+0000" => {
            "UTC".to_owned()
        }
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_separates_sentinels_from_negatives() {
        assert_eq!(classify_energy(12.5), None);
        assert_eq!(classify_energy(0.0), None);
        assert_eq!(classify_energy(-0.5), Some(BadValueKind::Negative));
        assert_eq!(classify_energy(-1e6), Some(BadValueKind::Sentinel));
        assert_eq!(classify_energy(-9999.0), Some(BadValueKind::Sentinel));
        assert_eq!(classify_energy(f64::NAN), Some(BadValueKind::NonFinite));
        assert_eq!(
            classify_energy(f64::NEG_INFINITY),
            Some(BadValueKind::NonFinite)
        );
    }

    #[test]
    fn utc_spellings_are_one_zone() {
        assert_eq!(normalise_zone("Etc/UTC"), normalise_zone("+00:00"));
        assert_ne!(normalise_zone("Europe/London"), normalise_zone("UTC"));
    }
}
