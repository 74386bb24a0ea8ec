//! Forecasts from a saved model: quantiles of power (kW) per system and lead time at any t0 the
//! data have history for, written as CSV or Parquet.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use candle_core::Device;
use pv_data::{Dataset, ExampleKey, Reach, UnixTime};

use crate::error::{Error, Result};
use crate::saved::{SavedModel, predict_batches};

/// Examples per prediction batch when the caller has no preference.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// One system's forecast at one lead time.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRow {
    /// The system.
    pub ss_id: i64,
    /// Forecast time (end of the last history interval).
    pub t0: UnixTime,
    /// Minutes from t0 to the end of the forecast interval.
    pub lead_minutes: i64,
    /// Quantiles of mean power over the interval, kW, in the model's quantile order.
    pub quantiles_kw: Vec<f32>,
    /// The observed mean power, kW, where the data have it (NaN otherwise).
    pub observed_kw: f32,
}

/// Forecasts every system of `dataset` (already adapted to the model) that has at least one
/// observed history value before `t0`. Returns the rows and the ss_ids skipped for lack of
/// history. `t0` must lie on the data's time grid. Holds every row in memory: for a fleet, write
/// as you go with [`forecast_fleet`].
pub fn forecast_at(
    saved: &SavedModel,
    dataset: &Dataset,
    t0: UnixTime,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<ForecastRow>, Vec<i64>)> {
    let mut rows = Vec::new();
    let fleet = forecast_fleet(saved, dataset, t0, batch_size, device, |batch| {
        rows.extend_from_slice(batch);
        Ok(())
    })?;
    Ok((rows, fleet.skipped))
}

/// What [`forecast_fleet`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetForecast {
    /// Systems forecast.
    pub systems: usize,
    /// Rows handed to the sink (systems × lead times).
    pub rows: usize,
    /// Systems without an observed value in the history window: not forecast.
    pub skipped: Vec<i64>,
}

/// Forecasts every system of `dataset` with history before `t0` (as [`forecast_at`]), handing
/// the rows to `sink` a batch group at a time, in system order, as they are predicted: memory
/// for rows does not grow with the number of systems beyond `batch_size` × the rayon pool's
/// threads × lead times (what [`predict_batches`] predicts at once).
pub fn forecast_fleet(
    saved: &SavedModel,
    dataset: &Dataset,
    t0: UnixTime,
    batch_size: usize,
    device: &Device,
    mut sink: impl FnMut(&[ForecastRow]) -> Result<()>,
) -> Result<FleetForecast> {
    let step = dataset.step_s();
    if t0.0.rem_euclid(step) != 0 {
        return Err(Error::OffGrid {
            t0,
            step_minutes: step / 60,
            nearest: UnixTime(t0.0 - t0.0.rem_euclid(step)),
        });
    }
    let h = saved.setup.examples.history_steps as i64;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (system, series) in dataset.systems.iter().enumerate() {
        if (0..h).any(|i| series.normalised_at(UnixTime(t0.0 - i * step)).is_some()) {
            keys.push(ExampleKey { system, t0 });
        } else {
            skipped.push(series.meta.ss_id);
        }
    }
    if keys.is_empty() {
        let (first, last) = data_range(dataset);
        return Err(Error::NoHistory {
            t0,
            history_steps: h as usize,
            first,
            last,
        });
    }
    let mut rows = 0;
    // No split at forecast time: every neighbour's history up to t0 may be context.
    stream_keys(
        saved,
        dataset,
        &keys,
        Reach::Record,
        batch_size,
        device,
        |batch| {
            rows += batch.len();
            sink(batch)
        },
    )?;
    Ok(FleetForecast {
        systems: keys.len(),
        rows,
        skipped,
    })
}

/// The latest t0 the data allow: the end of the last observed interval of any system (a
/// forecast made as soon as that value arrived). `None` when nothing is observed.
pub fn latest_t0(dataset: &Dataset) -> Option<UnixTime> {
    dataset
        .systems
        .iter()
        .filter_map(|s| {
            let last = s.power_kw.iter().rposition(|p| !p.is_nan())?;
            Some(s.time(last))
        })
        .max()
}

fn data_range(dataset: &Dataset) -> (UnixTime, UnixTime) {
    let first = dataset.systems.iter().map(|s| s.start).min();
    let last = dataset.systems.iter().map(|s| s.end()).max();
    (first.unwrap_or(UnixTime(0)), last.unwrap_or(UnixTime(0)))
}

/// The anchor system's forecast rows for each key: one per lead time, in key order. Examples
/// read what `reach` allows: [`Reach::Record`] to forecast, a split to plot that split's
/// examples as its evaluation saw them.
pub fn forecast_keys(
    saved: &SavedModel,
    dataset: &Dataset,
    keys: &[ExampleKey],
    reach: Reach,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<ForecastRow>> {
    let mut rows = Vec::with_capacity(keys.len() * saved.setup.examples.lead_times);
    stream_keys(saved, dataset, keys, reach, batch_size, device, |batch| {
        rows.extend_from_slice(batch);
        Ok(())
    })?;
    Ok(rows)
}

/// [`forecast_keys`], handing each predicted batch's rows to `sink` instead of keeping them.
/// Quantiles are clipped at 0 kW: a PV system does not generate negative power (the model's
/// quantiles, unclipped, can dip below zero at night).
fn stream_keys(
    saved: &SavedModel,
    dataset: &Dataset,
    keys: &[ExampleKey],
    reach: Reach,
    batch_size: usize,
    device: &Device,
    mut sink: impl FnMut(&[ForecastRow]) -> Result<()>,
) -> Result<()> {
    let setup = &saved.setup;
    let (k, q) = (setup.examples.lead_times, setup.model.quantiles.len());
    let step = dataset.step_s();
    let mut rows = Vec::with_capacity(batch_size * k);
    predict_batches(
        &saved.members(),
        dataset,
        &setup.examples,
        keys,
        batch_size,
        reach,
        device,
        |chunk, batch, out| -> Result<()> {
            let s = batch.targets.shape[1];
            rows.clear();
            for (b, key) in chunk.iter().enumerate() {
                let series = &dataset.systems[key.system];
                let kwp = series.meta.capacity_kwp as f32;
                for lead in 0..k {
                    let at = ((b * s) * k + lead) * q;
                    let valid = UnixTime(key.t0.0 + (lead as i64 + 1) * step);
                    rows.push(ForecastRow {
                        ss_id: series.meta.ss_id,
                        t0: key.t0,
                        lead_minutes: (lead as i64 + 1) * step / 60,
                        quantiles_kw: out[at..at + q].iter().map(|p| p.max(0.0) * kwp).collect(),
                        observed_kw: series.normalised_at(valid).map_or(f32::NAN, |p| p * kwp),
                    });
                }
            }
            sink(&rows)
        },
    )
}

fn quantile_column(level: f64) -> String {
    format!("q{level}_kw")
}

/// Writes forecast rows to `path`: Parquet for `.parquet`, CSV otherwise. Columns: ss_id, t0,
/// valid_time (RFC 3339, UTC), lead_minutes, one `q<level>_kw` per quantile, observed_kw.
pub fn write_forecast(rows: &[ForecastRow], levels: &[f64], path: &Path) -> Result<()> {
    let mut file = ForecastFile::create(path, levels)?;
    file.write(rows)?;
    file.finish()
}

/// A forecast file written as rows arrive ([`forecast_fleet`]'s sink), then moved into place:
/// the rows go to `<path>.tmp` (Parquet: one row group per write; CSV: buffered lines) and
/// [`ForecastFile::finish`] renames it to `path`, so `path` is either absent, the previous file,
/// or complete. Dropped without `finish` (an error part-way), it removes the temporary file and
/// leaves `path` untouched.
pub struct ForecastFile {
    path: PathBuf,
    tmp: PathBuf,
    levels: Vec<f64>,
    /// `None` once finished.
    sink: Option<Sink>,
}

enum Sink {
    Parquet(Box<parquet::arrow::ArrowWriter<std::fs::File>>, Arc<Schema>),
    Csv(BufWriter<std::fs::File>),
}

impl ForecastFile {
    /// Starts a forecast file at `path` for quantile `levels`: Parquet for `.parquet`, CSV
    /// otherwise.
    pub fn create(path: &Path, levels: &[f64]) -> Result<ForecastFile> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        let tmp = path.with_file_name(name);
        let file = std::fs::File::create(&tmp).map_err(|e| unwritable(path, e))?;
        let is_parquet = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let sink = if is_parquet {
            let mut fields = vec![
                Field::new("ss_id", DataType::Int64, false),
                Field::new("t0", DataType::Utf8, false),
                Field::new("valid_time", DataType::Utf8, false),
                Field::new("lead_minutes", DataType::Int64, false),
            ];
            for &level in levels {
                fields.push(Field::new(quantile_column(level), DataType::Float32, false));
            }
            fields.push(Field::new("observed_kw", DataType::Float32, true));
            let schema = Arc::new(Schema::new(fields));
            let writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                .map_err(|e| unwritable(path, e))?;
            Sink::Parquet(Box::new(writer), schema)
        } else {
            let mut out = BufWriter::new(file);
            let mut header = String::from("ss_id,t0,valid_time,lead_minutes");
            for &level in levels {
                header.push(',');
                header.push_str(&quantile_column(level));
            }
            header.push_str(",observed_kw\n");
            out.write_all(header.as_bytes())
                .map_err(|e| unwritable(path, e))?;
            Sink::Csv(out)
        };
        Ok(ForecastFile {
            path: path.to_owned(),
            tmp,
            levels: levels.to_vec(),
            sink: Some(sink),
        })
    }

    /// Appends `rows`.
    pub fn write(&mut self, rows: &[ForecastRow]) -> Result<()> {
        let path = &self.path;
        let valid = |r: &ForecastRow| UnixTime(r.t0.0 + r.lead_minutes * 60).to_string();
        match &mut self.sink {
            None => Ok(()),
            Some(Sink::Parquet(writer, schema)) => {
                let mut columns: Vec<ArrayRef> = vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.ss_id))),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.t0.to_string()),
                    )),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(valid))),
                    Arc::new(Int64Array::from_iter_values(
                        rows.iter().map(|r| r.lead_minutes),
                    )),
                ];
                for i in 0..self.levels.len() {
                    columns.push(Arc::new(Float32Array::from_iter_values(
                        rows.iter().map(|r| r.quantiles_kw[i]),
                    )));
                }
                columns.push(Arc::new(Float32Array::from_iter(
                    rows.iter()
                        .map(|r| (!r.observed_kw.is_nan()).then_some(r.observed_kw)),
                )));
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| unwritable(path, e))?;
                writer.write(&batch).map_err(|e| unwritable(path, e))?;
                // One row group per write: the writer holds no more than one batch's rows.
                writer.flush().map_err(|e| unwritable(path, e))
            }
            Some(Sink::Csv(out)) => {
                let mut text = String::new();
                for r in rows {
                    text.push_str(&format!(
                        "{},{},{},{}",
                        r.ss_id,
                        r.t0,
                        valid(r),
                        r.lead_minutes
                    ));
                    for q in &r.quantiles_kw {
                        text.push_str(&format!(",{q:.4}"));
                    }
                    if r.observed_kw.is_nan() {
                        text.push_str(",\n");
                    } else {
                        text.push_str(&format!(",{:.4}\n", r.observed_kw));
                    }
                }
                out.write_all(text.as_bytes())
                    .map_err(|e| unwritable(path, e))
            }
        }
    }

    /// Completes the file and moves it into place.
    pub fn finish(mut self) -> Result<()> {
        let path = &self.path;
        let file = match self.sink.take() {
            None => return Ok(()),
            Some(Sink::Parquet(writer, _)) => {
                writer.into_inner().map_err(|e| unwritable(path, e))?
            }
            Some(Sink::Csv(out)) => out
                .into_inner()
                .map_err(|e| unwritable(path, e.into_error()))?,
        };
        file.sync_all().map_err(|e| unwritable(path, e))?;
        drop(file);
        std::fs::rename(&self.tmp, path).map_err(|e| unwritable(path, e))
    }
}

impl Drop for ForecastFile {
    fn drop(&mut self) {
        if self.sink.take().is_some() {
            // Unfinished: the partial file must not be mistaken for a forecast.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn unwritable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Write {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
