//! Optional inputs beside PV history: gridded satellite imagery, NWP forecasts and point
//! observations. Each is loaded into a compact, time-indexed form whose look-ups take the
//! forecast time `t0` and can only return what was known at `t0`.
//!
//! Missing values (null or NaN) are kept as NaN and reported to the model as a mask;
//! infinities are errors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{BadValueKind, DataError, Result};
use crate::features::NwpAge;
use crate::table::{Column, Table};
use crate::time::UnixTime;

/// Per-variable standardisation. At load time it is fitted on the earliest 70 % of an input's
/// time range; a training run refits it on the systems' training blocks only
/// ([`crate::Dataset::fit_scalers`]), so validation and test values never shape the inputs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    /// Mean per variable.
    pub mean: Vec<f32>,
    /// Standard deviation per variable (1 where a variable is constant or absent).
    pub std: Vec<f32>,
}

impl Scaler {
    /// Fitted on the rows (one value per variable each) whose time is in the earliest 70 % of
    /// `times`' range.
    fn fit(values: &[f32], times: &[UnixTime], width: usize) -> Scaler {
        let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) else {
            return Scaler::from_rows(width, std::iter::empty());
        };
        let cut = lo.0 + ((hi.0 - lo.0) as f64 * 0.7) as i64;
        Scaler::from_rows(
            width,
            times
                .iter()
                .enumerate()
                .filter(|(_, t)| t.0 <= cut)
                .map(|(row, _)| &values[row * width..(row + 1) * width]),
        )
    }

    /// Mean and standard deviation of each variable over `rows`, ignoring non-finite values.
    pub(crate) fn from_rows<'a>(width: usize, rows: impl IntoIterator<Item = &'a [f32]>) -> Scaler {
        let mut sum = vec![0.0f64; width];
        let mut sq = vec![0.0f64; width];
        let mut n = vec![0usize; width];
        for row in rows {
            for (v, &x) in row.iter().enumerate() {
                if x.is_finite() {
                    sum[v] += x as f64;
                    sq[v] += (x as f64) * (x as f64);
                    n[v] += 1;
                }
            }
        }
        let mean: Vec<f32> = (0..width)
            .map(|v| {
                if n[v] > 0 {
                    (sum[v] / n[v] as f64) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let std = (0..width)
            .map(|v| {
                if n[v] < 2 {
                    return 1.0;
                }
                let m = sum[v] / n[v] as f64;
                let s = (sq[v] / n[v] as f64 - m * m).max(0.0).sqrt() as f32;
                if s > 1e-6 { s } else { 1.0 }
            })
            .collect();
        Scaler { mean, std }
    }

    /// Standardises `x` for variable `v`; NaN stays NaN.
    pub fn apply(&self, v: usize, x: f32) -> f32 {
        (x - self.mean[v]) / self.std[v]
    }
}

fn check_finite(column: &Column<'_>, values: &[Option<f64>]) -> Result<Vec<f32>> {
    values
        .iter()
        .enumerate()
        .map(|(row, v)| match v {
            None => Ok(f32::NAN),
            Some(x) if x.is_nan() => Ok(f32::NAN),
            Some(x) if x.is_infinite() => Err(DataError::BadValue {
                at: column.cell(row),
                value: *x,
                kind: BadValueKind::NonFinite,
            }),
            Some(x) => Ok(*x as f32),
        })
        .collect()
}

fn required_times(column: &Column<'_>) -> Result<Vec<UnixTime>> {
    column
        .times()?
        .seconds
        .iter()
        .enumerate()
        .map(|(row, t)| {
            t.map(UnixTime).ok_or_else(|| DataError::NullValue {
                at: column.cell(row),
            })
        })
        .collect()
}

fn required_floats(column: &Column<'_>) -> Result<Vec<f64>> {
    column
        .floats()?
        .iter()
        .enumerate()
        .map(|(row, v)| match v {
            Some(x) if x.is_finite() => Ok(*x),
            Some(x) => Err(DataError::BadValue {
                at: column.cell(row),
                value: *x,
                kind: BadValueKind::NonFinite,
            }),
            None => Err(DataError::NullValue {
                at: column.cell(row),
            }),
        })
        .collect()
}

fn non_empty(path: &Path) -> Result<Table> {
    let table = Table::read(path)?;
    if table.num_rows() == 0 {
        return Err(DataError::Empty {
            path: path.to_owned(),
            what: "no rows".into(),
        });
    }
    Ok(table)
}

/// A key for a (latitude, longitude) pair that treats equal coordinates as equal.
fn point_key(lat: f64, lon: f64) -> (u64, u64) {
    ((lat as f32).to_bits() as u64, (lon as f32).to_bits() as u64)
}

/// A position, degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatLon {
    /// Degrees north.
    pub latitude_deg: f64,
    /// Degrees east.
    pub longitude_deg: f64,
}

impl LatLon {
    /// Local east/north offset of `self` from `origin`, km (equirectangular; fine within ~100 km).
    pub fn offset_km(&self, origin: LatLon) -> (f64, f64) {
        let east = (self.longitude_deg - origin.longitude_deg)
            * 111.320
            * origin.latitude_deg.to_radians().cos();
        let north = (self.latitude_deg - origin.latitude_deg) * 110.574;
        (east, north)
    }

    /// Distance to `other`, km.
    pub fn distance_km(&self, other: LatLon) -> f64 {
        let (e, n) = self.offset_km(other);
        e.hypot(n)
    }
}

/// Gridded satellite imagery: images at times, each with the same pixels and channels.
#[derive(Debug, Clone)]
pub struct Satellite {
    /// The file read.
    pub path: PathBuf,
    /// Channel names, in file order.
    pub channels: Vec<String>,
    /// Image times, increasing.
    pub times: Vec<UnixTime>,
    /// Pixel centres.
    pub pixels: Vec<LatLon>,
    /// Values, `[time][pixel][channel]`, NaN where missing.
    pub values: Vec<f32>,
    /// Per-channel standardisation.
    pub scaler: Scaler,
}

impl Satellite {
    /// Loads `time, latitude, longitude` and one numeric column per channel (all other numeric columns).
    pub fn load(path: &Path) -> Result<Satellite> {
        let table = non_empty(path)?;
        let time_col = table.require(&["time"])?;
        let lat_col = table.require(&["latitude", "lat"])?;
        let lon_col = table.require(&["longitude", "lon"])?;
        let times = required_times(&time_col)?;
        let lats = required_floats(&lat_col)?;
        let lons = required_floats(&lon_col)?;
        let channel_cols: Vec<Column<'_>> = table
            .columns()
            .filter(|c| {
                ![time_col.name(), lat_col.name(), lon_col.name()].contains(&c.name())
                    && c.is_numeric()
            })
            .collect();
        if channel_cols.is_empty() {
            return Err(DataError::MissingColumn {
                path: path.to_owned(),
                column: "<a numeric channel>".into(),
                found: table.column_names().join(", "),
            });
        }
        let channel_values = channel_cols
            .iter()
            .map(|c| check_finite(c, &c.floats()?))
            .collect::<Result<Vec<_>>>()?;

        let mut distinct_times: Vec<UnixTime> = times.clone();
        distinct_times.sort_unstable();
        distinct_times.dedup();
        let time_index: HashMap<UnixTime, usize> = distinct_times
            .iter()
            .enumerate()
            .map(|(i, &t)| (t, i))
            .collect();
        let mut pixel_index: HashMap<(u64, u64), usize> = HashMap::new();
        let mut pixels = Vec::new();
        for (&lat, &lon) in lats.iter().zip(&lons) {
            pixel_index.entry(point_key(lat, lon)).or_insert_with(|| {
                pixels.push(LatLon {
                    latitude_deg: lat,
                    longitude_deg: lon,
                });
                pixels.len() - 1
            });
        }
        let nc = channel_cols.len();
        let np = pixels.len();
        let mut values = vec![f32::NAN; distinct_times.len() * np * nc];
        let mut seen: Vec<u32> = vec![u32::MAX; distinct_times.len() * np];
        for row in 0..table.num_rows() {
            let ti = time_index[&times[row]];
            let pi = pixel_index[&point_key(lats[row], lons[row])];
            let slot = ti * np + pi;
            if seen[slot] != u32::MAX {
                return Err(DataError::DuplicateKey {
                    at: time_col.cell(row),
                    first: Box::new(time_col.cell(seen[slot] as usize)),
                    key: format!("time {} at ({}, {})", times[row], lats[row], lons[row]),
                });
            }
            seen[slot] = row as u32;
            for (c, column) in channel_values.iter().enumerate() {
                values[slot * nc + c] = column[row];
            }
        }
        // Standardise per channel on the early part of the record.
        let row_times: Vec<UnixTime> = distinct_times
            .iter()
            .flat_map(|&t| std::iter::repeat_n(t, np))
            .collect();
        let scaler = Scaler::fit(&values, &row_times, nc);
        Ok(Satellite {
            path: path.to_owned(),
            channels: channel_cols.iter().map(|c| c.name().to_owned()).collect(),
            times: distinct_times,
            pixels,
            values,
            scaler,
        })
    }

    /// The latest image taken at or before `t` and after `t - max_age_s`.
    pub fn image_at_or_before(&self, t: UnixTime, max_age_s: i64) -> Option<usize> {
        let i = self.times.partition_point(|&x| x <= t).checked_sub(1)?;
        (t.0 - self.times[i].0 < max_age_s).then_some(i)
    }

    /// The `n` pixels nearest `place` within `radius_km`, nearest first.
    pub fn nearest_pixels(&self, place: LatLon, n: usize, radius_km: f64) -> Vec<usize> {
        nearest(&self.pixels, place, n, radius_km)
    }

    /// Channel values of `pixel` in image `image`.
    pub fn pixel(&self, image: usize, pixel: usize) -> &[f32] {
        let nc = self.channels.len();
        let start = (image * self.pixels.len() + pixel) * nc;
        &self.values[start..start + nc]
    }
}

fn nearest(points: &[LatLon], place: LatLon, n: usize, radius_km: f64) -> Vec<usize> {
    let mut by_distance: Vec<(f64, usize)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.distance_km(place), i))
        .filter(|(d, _)| *d <= radius_km)
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    by_distance.into_iter().take(n).map(|(_, i)| i).collect()
}

/// NWP forecasts on points: `init_time, step, latitude, longitude, variable, value` (long format).
#[derive(Debug, Clone)]
pub struct Nwp {
    /// The file read.
    pub path: PathBuf,
    /// Variable names, sorted.
    pub variables: Vec<String>,
    /// Grid points.
    pub points: Vec<LatLon>,
    /// Initialisation times, increasing.
    pub inits: Vec<UnixTime>,
    /// Forecast steps, seconds, increasing.
    pub steps_s: Vec<i64>,
    /// Values `[init][step][point][variable]`, NaN where missing.
    pub values: Vec<f32>,
    /// Per-variable standardisation.
    pub scaler: Scaler,
}

/// What an NWP look-up found.
#[derive(Debug, Clone, PartialEq)]
pub struct NwpValue {
    /// Variable values (NaN where missing), interpolated linearly between steps; the last step's
    /// values where they are carried past it.
    pub values: Vec<f32>,
    /// The initialisation time used (always at or before the forecast time).
    pub init: UnixTime,
    /// The run's last step's valid time.
    pub run_end: UnixTime,
}

impl NwpValue {
    /// How old the values are at `valid`: since the run's init, and past its last step.
    pub fn age(&self, valid: UnixTime) -> NwpAge {
        NwpAge {
            hours_since_init: (valid.0 - self.init.0) as f32 / 3600.0,
            hours_past_run_end: (valid.0 - self.run_end.0).max(0) as f32 / 3600.0,
        }
    }
}

/// Which runs an example may read: those available by a time, and how far past its last step a
/// run's values are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NwpUse {
    /// The latest usable init time.
    pub available_by: UnixTime,
    /// Seconds past a run's last step that its last values are still carried.
    pub carry_s: i64,
}

impl Nwp {
    /// Loads a long-format NWP file. The step is `step_minutes` (integer) or `step` (duration).
    pub fn load(path: &Path) -> Result<Nwp> {
        let table = non_empty(path)?;
        let init_col = table.require(&["init_time"])?;
        let inits = required_times(&init_col)?;
        let (step_col, steps) = match table.find(&["step_minutes"]) {
            Some(c) => {
                let minutes = c.integers()?;
                let steps = minutes
                    .iter()
                    .enumerate()
                    .map(|(row, m)| {
                        m.map(|m| m * 60)
                            .ok_or_else(|| DataError::NullValue { at: c.cell(row) })
                    })
                    .collect::<Result<Vec<_>>>()?;
                (c, steps)
            }
            None => {
                let c = table.require(&["step"])?;
                let steps = c
                    .durations_seconds()?
                    .iter()
                    .enumerate()
                    .map(|(row, s)| s.ok_or_else(|| DataError::NullValue { at: c.cell(row) }))
                    .collect::<Result<Vec<_>>>()?;
                (c, steps)
            }
        };
        if let Some(row) = steps.iter().position(|&s| s < 0) {
            return Err(DataError::BadValue {
                at: step_col.cell(row),
                value: steps[row] as f64,
                kind: BadValueKind::Negative,
            });
        }
        let lat_col = table.require(&["latitude", "lat"])?;
        let lon_col = table.require(&["longitude", "lon"])?;
        let lats = required_floats(&lat_col)?;
        let lons = required_floats(&lon_col)?;
        let var_col = table.require(&["variable"])?;
        let names = var_col.strings()?;
        let value_col = table.require(&["value"])?;
        let values_in = check_finite(&value_col, &value_col.floats()?)?;

        let mut variables: Vec<String> = names.iter().flatten().cloned().collect();
        variables.sort();
        variables.dedup();
        let var_index: HashMap<&str, usize> = variables
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_str(), i))
            .collect();
        let mut init_times = inits.clone();
        init_times.sort_unstable();
        init_times.dedup();
        let mut steps_s = steps.clone();
        steps_s.sort_unstable();
        steps_s.dedup();
        let mut point_index: HashMap<(u64, u64), usize> = HashMap::new();
        let mut points = Vec::new();
        for (&lat, &lon) in lats.iter().zip(&lons) {
            point_index.entry(point_key(lat, lon)).or_insert_with(|| {
                points.push(LatLon {
                    latitude_deg: lat,
                    longitude_deg: lon,
                });
                points.len() - 1
            });
        }
        let (ni, ns, np, nv) = (
            init_times.len(),
            steps_s.len(),
            points.len(),
            variables.len(),
        );
        let mut values = vec![f32::NAN; ni * ns * np * nv];
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        for row in 0..table.num_rows() {
            let name = names[row].as_deref().ok_or_else(|| DataError::NullValue {
                at: var_col.cell(row),
            })?;
            let i = init_times.binary_search(&inits[row]).unwrap_or_default();
            let s = steps_s.binary_search(&steps[row]).unwrap_or_default();
            let p = point_index[&point_key(lats[row], lons[row])];
            let slot = ((i * ns + s) * np + p) * nv + var_index[name];
            if let Some(first) = seen.insert(slot, row) {
                return Err(DataError::DuplicateKey {
                    at: value_col.cell(row),
                    first: Box::new(value_col.cell(first)),
                    key: format!(
                        "{name} init {} step {} s at ({}, {})",
                        inits[row], steps[row], lats[row], lons[row]
                    ),
                });
            }
            values[slot] = values_in[row];
        }
        // Fit the scaler over (init, step, point) rows, timed by init.
        let row_times: Vec<UnixTime> = init_times
            .iter()
            .flat_map(|&t| std::iter::repeat_n(t, ns * np))
            .collect();
        let scaler = Scaler::fit(&values, &row_times, nv);
        Ok(Nwp {
            path: path.to_owned(),
            variables,
            points,
            inits: init_times,
            steps_s,
            values,
            scaler,
        })
    }

    fn at(&self, init: usize, step: usize, point: usize) -> &[f32] {
        let nv = self.variables.len();
        let start = ((init * self.steps_s.len() + step) * self.points.len() + point) * nv;
        &self.values[start..start + nv]
    }

    /// The forecast for `valid` at `point` from the latest run initialised at or before
    /// `use_.available_by` that reaches `valid`, interpolated between its steps; past that run's
    /// last step (older runs end earlier still), its last values, carried for at most
    /// `use_.carry_s`. `None` if no run qualifies. No run initialised later is ever used.
    pub fn forecast(&self, use_: NwpUse, valid: UnixTime, point: usize) -> Option<NwpValue> {
        let latest = self.inits.partition_point(|&x| x <= use_.available_by);
        let (&first_step, &last_step) = (self.steps_s.first()?, self.steps_s.last()?);
        // The latest run that has started by `valid`: an older run reaches no further.
        let init = (0..latest)
            .rev()
            .find(|&i| valid.0 - self.inits[i].0 >= first_step)?;
        let lead = valid.0 - self.inits[init].0;
        if lead > last_step + use_.carry_s {
            return None;
        }
        let s = self.steps_s.partition_point(|&x| x <= lead) - 1;
        let values = if self.steps_s[s] == lead || s + 1 == self.steps_s.len() {
            self.at(init, s, point).to_vec()
        } else {
            let w =
                (lead - self.steps_s[s]) as f32 / (self.steps_s[s + 1] - self.steps_s[s]) as f32;
            let (a, b) = (self.at(init, s, point), self.at(init, s + 1, point));
            a.iter().zip(b).map(|(x, y)| x + w * (y - x)).collect()
        };
        Some(NwpValue {
            values,
            init: self.inits[init],
            run_end: UnixTime(self.inits[init].0 + last_step),
        })
    }

    /// The `n` grid points nearest `place` within `radius_km`, nearest first.
    pub fn nearest_points(&self, place: LatLon, n: usize, radius_km: f64) -> Vec<usize> {
        nearest(&self.points, place, n, radius_km)
    }
}

/// Point observations per system: `ss_id, time` and one numeric column per variable.
#[derive(Debug, Clone)]
pub struct Observations {
    /// The file read.
    pub path: PathBuf,
    /// Variable names, in file order.
    pub variables: Vec<String>,
    /// Per system: times (increasing) and values `[row][variable]`.
    pub systems: BTreeMap<i64, (Vec<UnixTime>, Vec<f32>)>,
    /// Per-variable standardisation.
    pub scaler: Scaler,
}

impl Observations {
    /// Loads point observations. Each system's times must be strictly increasing.
    pub fn load(path: &Path) -> Result<Observations> {
        let table = non_empty(path)?;
        let ss_col = table.require(&["ss_id"])?;
        let time_col = table.require(&["time", "datetime_GMT"])?;
        let ss_ids = ss_col.integers()?;
        let times = required_times(&time_col)?;
        let var_cols: Vec<Column<'_>> = table
            .columns()
            .filter(|c| c.name() != ss_col.name() && c.name() != time_col.name() && c.is_numeric())
            .collect();
        if var_cols.is_empty() {
            return Err(DataError::MissingColumn {
                path: path.to_owned(),
                column: "<a numeric variable>".into(),
                found: table.column_names().join(", "),
            });
        }
        let columns = var_cols
            .iter()
            .map(|c| check_finite(c, &c.floats()?))
            .collect::<Result<Vec<_>>>()?;
        let nv = var_cols.len();
        let mut systems: BTreeMap<i64, (Vec<UnixTime>, Vec<f32>)> = BTreeMap::new();
        let mut last_row: HashMap<i64, usize> = HashMap::new();
        let mut all_times = Vec::with_capacity(table.num_rows());
        let mut all_values = Vec::with_capacity(table.num_rows() * nv);
        for row in 0..table.num_rows() {
            let ss_id = ss_ids[row].ok_or_else(|| DataError::NullValue {
                at: ss_col.cell(row),
            })?;
            let entry = systems.entry(ss_id).or_default();
            if let (Some(&previous), Some(&prev_row)) = (entry.0.last(), last_row.get(&ss_id)) {
                if times[row] == previous {
                    return Err(DataError::DuplicateTimestamp {
                        at: time_col.cell(row),
                        first: Box::new(time_col.cell(prev_row)),
                        ss_id,
                        time: times[row],
                    });
                }
                if times[row] < previous {
                    return Err(DataError::UnsortedTimestamp {
                        at: time_col.cell(row),
                        ss_id,
                        time: times[row],
                        previous,
                    });
                }
            }
            last_row.insert(ss_id, row);
            entry.0.push(times[row]);
            for column in &columns {
                entry.1.push(column[row]);
                all_values.push(column[row]);
            }
            all_times.push(times[row]);
        }
        let scaler = Scaler::fit(&all_values, &all_times, nv);
        Ok(Observations {
            path: path.to_owned(),
            variables: var_cols.iter().map(|c| c.name().to_owned()).collect(),
            systems,
            scaler,
        })
    }

    /// The latest observation of `ss_id` at or before `t` and newer than `max_age_s`: its time and values.
    pub fn latest(&self, ss_id: i64, t: UnixTime, max_age_s: i64) -> Option<(UnixTime, &[f32])> {
        let (times, values) = self.systems.get(&ss_id)?;
        let i = times.partition_point(|&x| x <= t).checked_sub(1)?;
        if t.0 - times[i].0 >= max_age_s {
            return None;
        }
        let nv = self.variables.len();
        Some((times[i], &values[i * nv..(i + 1) * nv]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    /// Runs every 3 h with steps 0, 1, …, 4 h at one point; the value is init hour × 100 + step
    /// hour, so a look-up says which run and step it came from.
    fn nwp() -> Nwp {
        let inits: Vec<UnixTime> = (0..4).map(|i| UnixTime(i * 3 * HOUR)).collect();
        let steps_s: Vec<i64> = (0..=4).map(|s| s * HOUR).collect();
        let values = inits
            .iter()
            .flat_map(|init| {
                steps_s
                    .iter()
                    .map(move |s| (init.0 / HOUR * 100 + s / HOUR) as f32)
            })
            .collect::<Vec<f32>>();
        let times: Vec<UnixTime> = inits.iter().flat_map(|&t| [t; 5]).collect();
        Nwp {
            path: PathBuf::from("nwp.parquet"),
            variables: vec!["dswrf".into()],
            points: vec![LatLon {
                latitude_deg: 0.0,
                longitude_deg: 0.0,
            }],
            scaler: Scaler::fit(&values, &times, 1),
            inits,
            steps_s,
            values,
        }
    }

    fn look_up(available_by_h: i64, valid_h: f64, carry_h: i64) -> Option<(f32, NwpAge)> {
        let valid = UnixTime((valid_h * HOUR as f64) as i64);
        let use_ = NwpUse {
            available_by: UnixTime(available_by_h * HOUR),
            carry_s: carry_h * HOUR,
        };
        nwp()
            .forecast(use_, valid, 0)
            .map(|f| (f.values[0], f.age(valid)))
    }

    #[test]
    fn the_latest_available_run_is_read_and_interpolated_between_steps() {
        // Runs at 0 h and 3 h are available by 4 h; the 3 h run covers 4.5 h (step 1.5 h).
        let (value, age) = look_up(4, 4.5, 0).expect("covered");
        assert_eq!(value, 301.5);
        assert_eq!((age.hours_since_init, age.hours_past_run_end), (1.5, 0.0));
        // Before the 3 h run starts, the 0 h run answers.
        assert_eq!(look_up(4, 2.0, 0).map(|(v, _)| v), Some(2.0));
        // The 6 h run is not available by 4 h, even for a time it would cover.
        assert_eq!(look_up(4, 6.5, 6).map(|(v, _)| v), Some(303.5));
    }

    #[test]
    fn past_its_last_step_a_run_is_carried_for_the_carry_time_then_missing() {
        // The 3 h run ends at 7 h: at 8.5 h its last values are carried, 1.5 h past its end.
        let (value, age) = look_up(4, 8.5, 2).expect("carried");
        assert_eq!(value, 304.0);
        assert_eq!((age.hours_since_init, age.hours_past_run_end), (5.5, 1.5));
        assert!(look_up(4, 9.0, 2).is_some(), "the carry time is inclusive");
        assert!(look_up(4, 9.25, 2).is_none(), "past the carry time");
        assert!(look_up(4, 7.25, 0).is_none(), "no carry");
        assert!(look_up(4, 7.0, 0).is_some(), "the last step itself");
    }

    #[test]
    fn carried_values_continue_the_covered_ones_without_a_jump() {
        // Across the run's end, the value is continuous and only the carried hours grow.
        let series: Vec<(f32, NwpAge)> = (24..=32)
            .map(|q| look_up(4, q as f64 / 4.0, 6).expect("covered or carried"))
            .collect();
        for pair in series.windows(2) {
            let ((a, age_a), (b, age_b)) = (pair[0], pair[1]);
            assert!((b - a).abs() <= 0.25 + 1e-4, "{series:?}");
            assert!(age_b.hours_past_run_end - age_a.hours_past_run_end <= 0.25);
        }
        assert_eq!(series.last().map(|(_, a)| a.hours_past_run_end), Some(1.0));
    }
}
