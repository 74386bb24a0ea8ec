//! System metadata in the uk_pv layout: `ss_id, latitude_rounded, longitude_rounded, orientation,
//! tilt, kWp` (CSV or Parquet; extra columns ignored; `kwp` and plain `latitude`/`longitude` accepted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{BadValueKind, DataError, Location, Result};
use crate::table::{Format, Table};

/// One PV system's fixed description.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SystemMetadata {
    /// The system's id.
    pub ss_id: i64,
    /// Latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east.
    pub longitude_deg: f64,
    /// Panel azimuth, degrees clockwise from north (180 = south).
    pub orientation_deg: f64,
    /// Panel tilt from horizontal, degrees.
    pub tilt_deg: f64,
    /// Peak capacity, kW.
    pub capacity_kwp: f64,
    /// How this system's generation labels relate to the interval each value covers (optional
    /// column `time_label`; default the uk_pv convention, the interval's end).
    pub time_label: TimeLabel,
    /// Site altitude above sea level, metres (optional column `altitude_m`); without it the
    /// clear-sky model uses `ClearSkyConfig::altitude_m`.
    pub altitude_m: Option<f64>,
}

/// How a generation value's time label relates to the interval it covers. Clear-sky and sun
/// features are computed at the middle of the covered interval, so a wrong convention shifts every
/// one of them (`pv_data::diagnostics::label_offset` measures the shift the data imply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeLabel {
    /// The label is the end of the interval (uk_pv's `datetime_GMT`).
    #[default]
    IntervalEnd,
    /// The label is the start of the interval.
    IntervalStart,
    /// The value is an instantaneous reading at the label; it stands for the interval of the
    /// source's spacing centred on the label.
    Instant,
}

impl TimeLabel {
    /// The spellings accepted in a metadata file (case-insensitive).
    pub const NAMES: &str = "interval_end, interval_start or instant";

    /// Parses a metadata cell.
    pub fn parse(text: &str) -> Option<TimeLabel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "interval_end" | "end" => Some(TimeLabel::IntervalEnd),
            "interval_start" | "start" => Some(TimeLabel::IntervalStart),
            "instant" | "instantaneous" => Some(TimeLabel::Instant),
            _ => None,
        }
    }

    /// Seconds from a label to the end of the interval its value covers, for readings `native_s`
    /// apart.
    pub fn to_interval_end_s(self, native_s: i64) -> i64 {
        match self {
            TimeLabel::IntervalEnd => 0,
            TimeLabel::IntervalStart => native_s,
            TimeLabel::Instant => native_s / 2,
        }
    }
}

/// All systems' metadata, keyed by ss_id.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The file read.
    pub path: PathBuf,
    /// Systems by id.
    pub systems: BTreeMap<i64, SystemMetadata>,
}

struct Field {
    names: &'static [&'static str],
    min: f64,
    max: f64,
    /// Whether the bounds exclude themselves (capacity must be > 0).
    exclusive_min: bool,
}

const FIELDS: [Field; 5] = [
    Field {
        names: &["latitude_rounded", "latitude", "lat"],
        min: -90.0,
        max: 90.0,
        exclusive_min: false,
    },
    Field {
        names: &["longitude_rounded", "longitude", "lon"],
        min: -180.0,
        max: 180.0,
        exclusive_min: false,
    },
    Field {
        names: &["orientation", "azimuth"],
        min: 0.0,
        max: 360.0,
        exclusive_min: false,
    },
    Field {
        names: &["tilt"],
        min: 0.0,
        max: 90.0,
        exclusive_min: false,
    },
    Field {
        names: &["kWp", "capacity_kwp"],
        min: 0.0,
        max: 1e7,
        exclusive_min: true,
    },
];

impl Metadata {
    /// Loads metadata from a CSV or Parquet/Arrow file and checks every value's range.
    pub fn load(path: &Path) -> Result<Metadata> {
        let rows = match Format::of(path) {
            Some(Format::Csv) => read_csv(path)?,
            Some(_) => read_table(path)?,
            None => {
                return Err(DataError::UnsupportedFormat {
                    path: path.to_owned(),
                    csv_allowed: true,
                });
            }
        };
        if rows.is_empty() {
            return Err(DataError::Empty {
                path: path.to_owned(),
                what: "no systems".into(),
            });
        }
        let mut systems = BTreeMap::new();
        let mut first_row = BTreeMap::new();
        for (row, (ss_id, values, extras)) in rows.into_iter().enumerate() {
            for (field, &(value, ref column)) in FIELDS.iter().zip(values.iter()) {
                let bad = if !value.is_finite() {
                    Some(BadValueKind::NonFinite)
                } else if value < field.min
                    || value > field.max
                    || (field.exclusive_min && value <= field.min)
                {
                    Some(BadValueKind::OutOfRange)
                } else {
                    None
                };
                if let Some(kind) = bad {
                    return Err(DataError::BadValue {
                        at: Location::cell(path, column.clone(), row),
                        value,
                        kind,
                    });
                }
            }
            if first_row.insert(ss_id, row).is_some() {
                return Err(DataError::DuplicateSystem {
                    at: Location::cell(path, "ss_id", row),
                    ss_id,
                });
            }
            let time_label = match &extras.time_label {
                None => TimeLabel::default(),
                Some((text, column)) => {
                    TimeLabel::parse(text).ok_or_else(|| DataError::WrongType {
                        at: Location::cell(path, column.clone(), row),
                        expected: TimeLabel::NAMES,
                        found: format!("`{text}`"),
                    })?
                }
            };
            let altitude_m = match &extras.altitude_m {
                None => None,
                Some((value, column)) => {
                    if !(-500.0..=9000.0).contains(value) {
                        return Err(DataError::BadValue {
                            at: Location::cell(path, column.clone(), row),
                            value: *value,
                            kind: if value.is_finite() {
                                BadValueKind::OutOfRange
                            } else {
                                BadValueKind::NonFinite
                            },
                        });
                    }
                    Some(*value)
                }
            };
            systems.insert(
                ss_id,
                SystemMetadata {
                    ss_id,
                    latitude_deg: values[0].0,
                    longitude_deg: values[1].0,
                    orientation_deg: values[2].0,
                    tilt_deg: values[3].0,
                    capacity_kwp: values[4].0,
                    time_label,
                    altitude_m,
                },
            );
        }
        Ok(Metadata {
            path: path.to_owned(),
            systems,
        })
    }
}

/// Optional columns of one row: the cell (empty cells are absent) and its column's name.
#[derive(Default)]
struct Extras {
    time_label: Option<(String, String)>,
    altitude_m: Option<(f64, String)>,
}

type Row = (i64, Vec<(f64, String)>, Extras);

const TIME_LABEL: &[&str] = &["time_label"];
const ALTITUDE: &[&str] = &["altitude_m", "altitude"];

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let csv_error = |at: Location, e: &dyn std::fmt::Display| DataError::Csv {
        at,
        message: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| csv_error(Location::file(path), &e))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_error(Location::file(path), &e))?
        .clone();
    let find = |names: &[&str]| -> Result<(usize, String)> {
        headers
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
            .map(|i| (i, headers[i].to_owned()))
            .ok_or_else(|| DataError::MissingColumn {
                path: path.to_owned(),
                column: names[0].to_owned(),
                found: headers.iter().collect::<Vec<_>>().join(", "),
            })
    };
    let (ss_index, ss_name) = find(&["ss_id"])?;
    let columns = FIELDS
        .iter()
        .map(|f| find(f.names))
        .collect::<Result<Vec<_>>>()?;
    let label_column = find(TIME_LABEL).ok();
    let altitude_column = find(ALTITUDE).ok();
    let mut rows = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(Location::file(path), &e))?;
        let cell = |index: usize, name: &str| -> Result<&str> {
            match record.get(index) {
                Some(text) if !text.is_empty() => Ok(text),
                _ => Err(DataError::NullValue {
                    at: Location::cell(path, name, row),
                }),
            }
        };
        let text = cell(ss_index, &ss_name)?;
        let ss_id = text.parse::<i64>().map_err(|_| DataError::WrongType {
            at: Location::cell(path, ss_name.clone(), row),
            expected: "an integer ss_id",
            found: format!("`{text}`"),
        })?;
        let mut values = Vec::with_capacity(FIELDS.len());
        for (index, name) in &columns {
            let text = cell(*index, name)?;
            let value = text.parse::<f64>().map_err(|_| DataError::WrongType {
                at: Location::cell(path, name.clone(), row),
                expected: "a number",
                found: format!("`{text}`"),
            })?;
            values.push((value, name.clone()));
        }
        let mut extras = Extras::default();
        if let Some((index, name)) = &label_column {
            extras.time_label = record
                .get(*index)
                .filter(|t| !t.is_empty())
                .map(|t| (t.to_owned(), name.clone()));
        }
        if let Some((index, name)) = &altitude_column
            && let Some(text) = record.get(*index).filter(|t| !t.is_empty())
        {
            let value = text.parse::<f64>().map_err(|_| DataError::WrongType {
                at: Location::cell(path, name.clone(), row),
                expected: "a number",
                found: format!("`{text}`"),
            })?;
            extras.altitude_m = Some((value, name.clone()));
        }
        rows.push((ss_id, values, extras));
    }
    Ok(rows)
}

fn read_table(path: &Path) -> Result<Vec<Row>> {
    let table = Table::read(path)?;
    let ss = table.require(&["ss_id"])?;
    let ss_ids = ss.integers()?;
    let mut columns = Vec::new();
    for field in &FIELDS {
        let column = table.require(field.names)?;
        columns.push((column.floats()?, column));
    }
    let labels = match table.find(TIME_LABEL) {
        Some(c) => Some((c.strings()?, c.name().to_owned())),
        None => None,
    };
    let altitudes = match table.find(ALTITUDE) {
        Some(c) => Some((c.floats()?, c.name().to_owned())),
        None => None,
    };
    (0..table.num_rows())
        .map(|row| {
            let ss_id = ss_ids[row].ok_or_else(|| DataError::NullValue { at: ss.cell(row) })?;
            let values = columns
                .iter()
                .map(|(values, column)| {
                    values[row]
                        .map(|v| (v, column.name().to_owned()))
                        .ok_or_else(|| DataError::NullValue {
                            at: column.cell(row),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let extras = Extras {
                time_label: labels
                    .as_ref()
                    .and_then(|(v, name)| v[row].clone().map(|t| (t, name.clone()))),
                altitude_m: altitudes
                    .as_ref()
                    .and_then(|(v, name)| v[row].map(|a| (a, name.clone()))),
            };
            Ok((ss_id, values, extras))
        })
        .collect()
}
