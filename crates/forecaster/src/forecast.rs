//! Forecasts from a saved model: quantiles of power (kW) per system and lead time at any t0 the
//! data have history for, written as CSV or Parquet.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use candle_core::Device;
use pv_data::{Dataset, ExampleKey, Split, UnixTime};

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
/// history. `t0` must lie on the data's time grid.
pub fn forecast_at(
    saved: &SavedModel,
    dataset: &Dataset,
    t0: UnixTime,
    batch_size: usize,
    device: &Device,
) -> Result<(Vec<ForecastRow>, Vec<i64>)> {
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
    Ok((
        forecast_keys(saved, dataset, &keys, batch_size, device)?,
        skipped,
    ))
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

/// The anchor system's forecast rows for each key: one per lead time, in key order.
pub fn forecast_keys(
    saved: &SavedModel,
    dataset: &Dataset,
    keys: &[ExampleKey],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<ForecastRow>> {
    let setup = &saved.setup;
    let (k, q) = (setup.examples.lead_times, setup.model.quantiles.len());
    let step = dataset.step_s();
    let mut rows = Vec::with_capacity(keys.len() * k);
    // The split only decides which neighbours may be extra targets; the anchor is target 0.
    predict_batches(
        &saved.model,
        dataset,
        &setup.examples,
        keys,
        batch_size,
        Split::Test,
        device,
        |chunk, batch, out| -> Result<()> {
            let s = batch.targets.shape[1];
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
                        quantiles_kw: out[at..at + q].iter().map(|p| p * kwp).collect(),
                        observed_kw: series.normalised_at(valid).map_or(f32::NAN, |p| p * kwp),
                    });
                }
            }
            Ok(())
        },
    )?;
    Ok(rows)
}

fn quantile_column(level: f64) -> String {
    format!("q{level}_kw")
}

/// Writes forecast rows to `path`: Parquet for `.parquet`, CSV otherwise. Columns: ss_id, t0,
/// valid_time (RFC 3339, UTC), lead_minutes, one `q<level>_kw` per quantile, observed_kw.
pub fn write_forecast(rows: &[ForecastRow], levels: &[f64], path: &Path) -> Result<()> {
    let valid = |r: &ForecastRow| UnixTime(r.t0.0 + r.lead_minutes * 60).to_string();
    let is_parquet = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let bytes = if is_parquet {
        let mut fields = vec![
            Field::new("ss_id", DataType::Int64, false),
            Field::new("t0", DataType::Utf8, false),
            Field::new("valid_time", DataType::Utf8, false),
            Field::new("lead_minutes", DataType::Int64, false),
        ];
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
        for (i, &level) in levels.iter().enumerate() {
            fields.push(Field::new(quantile_column(level), DataType::Float32, false));
            columns.push(Arc::new(Float32Array::from_iter_values(
                rows.iter().map(|r| r.quantiles_kw[i]),
            )));
        }
        fields.push(Field::new("observed_kw", DataType::Float32, true));
        columns.push(Arc::new(Float32Array::from_iter(
            rows.iter()
                .map(|r| (!r.observed_kw.is_nan()).then_some(r.observed_kw)),
        )));
        let unwritable = |message: String| Error::Write {
            path: path.to_owned(),
            message,
        };
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| unwritable(e.to_string()))?;
        let mut buffer = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, batch.schema(), None)
            .map_err(|e| unwritable(e.to_string()))?;
        writer
            .write(&batch)
            .and_then(|()| writer.close().map(drop))
            .map_err(|e| unwritable(e.to_string()))?;
        buffer
    } else {
        let mut out = String::from("ss_id,t0,valid_time,lead_minutes");
        for &level in levels {
            out.push(',');
            out.push_str(&quantile_column(level));
        }
        out.push_str(",observed_kw\n");
        for r in rows {
            out.push_str(&format!(
                "{},{},{},{}",
                r.ss_id,
                r.t0,
                valid(r),
                r.lead_minutes
            ));
            for q in &r.quantiles_kw {
                out.push_str(&format!(",{q:.4}"));
            }
            if r.observed_kw.is_nan() {
                out.push_str(",\n");
            } else {
                out.push_str(&format!(",{:.4}\n", r.observed_kw));
            }
        }
        out.into_bytes()
    };
    crate::checkpoint::write_atomic(path, &bytes).map_err(|e| Error::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
