//! Forecasts from a saved model: quantiles of power (kW) per system and lead time at any t0 the
//! data have history for, written as CSV or Parquet; and the example forecasts the fan plots draw.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use candle_core::Device;
use pv_data::{Dataset, ExampleKey, Split, UnixTime, example_keys};

use crate::run::{SavedModel, predict_batches};

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
    device: &Device,
) -> Result<(Vec<ForecastRow>, Vec<i64>)> {
    let step = dataset.step_s();
    if t0.0.rem_euclid(step) != 0 {
        bail!(
            "t0 {t0} is not on the {}-minute grid of the data; use a time such as {}",
            step / 60,
            UnixTime(t0.0 - t0.0.rem_euclid(step))
        );
    }
    let h = saved.config.examples.history_steps as i64;
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
        bail!(
            "no system has PV history in the {h} steps before t0 {t0}; the data run from {first} to {last}"
        );
    }
    Ok((rows_for(saved, dataset, &keys, device)?, skipped))
}

fn data_range(dataset: &Dataset) -> (UnixTime, UnixTime) {
    let first = dataset.systems.iter().map(|s| s.start).min();
    let last = dataset.systems.iter().map(|s| s.end()).max();
    (first.unwrap_or(UnixTime(0)), last.unwrap_or(UnixTime(0)))
}

/// The anchor system's forecast rows for each key.
fn rows_for(
    saved: &SavedModel,
    dataset: &Dataset,
    keys: &[ExampleKey],
    device: &Device,
) -> Result<Vec<ForecastRow>> {
    let config = &saved.config;
    let (k, q) = (config.examples.lead_times, config.model.quantiles.len());
    let step = dataset.step_s();
    let mut rows = Vec::with_capacity(keys.len() * k);
    // The split only decides which neighbours may be extra targets; the anchor is target 0.
    predict_batches(
        &saved.model,
        dataset,
        &config.examples,
        keys,
        config.eval.batch_size,
        Split::Test,
        device,
        |chunk, batch, out| {
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
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let mut buffer = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
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
    crate::checkpoint::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// One forecast with its history and outcome, for a fan plot.
#[derive(Debug, Clone)]
pub struct Fan {
    /// The system.
    pub ss_id: i64,
    /// Forecast time.
    pub t0: UnixTime,
    /// Grid step, minutes.
    pub step_minutes: i64,
    /// Observed power over the history steps, kW (NaN where missing), oldest first.
    pub history_kw: Vec<f32>,
    /// The forecast rows, one per lead time.
    pub rows: Vec<ForecastRow>,
    /// Quantile levels.
    pub levels: Vec<f64>,
}

/// Forecasts on `split` for the fan plots: up to four systems, two days each, with t0 near 10:00
/// local solar time (a forecast that spans the middle of the day).
pub fn fan_examples(
    saved: &SavedModel,
    dataset: &Dataset,
    split: Split,
    device: &Device,
) -> Result<Vec<Fan>> {
    let keys = example_keys(dataset, &saved.config.examples, split)?;
    let step = dataset.step_s();
    let mut chosen = Vec::new();
    for system in 0..dataset.systems.len().min(4) {
        let lon = dataset.systems[system].meta.longitude_deg;
        let morning: Vec<ExampleKey> = keys
            .iter()
            .filter(|k| k.system == system)
            .filter(|k| {
                let solar_hour = (k.t0.0 as f64 / 3600.0 + lon / 15.0).rem_euclid(24.0);
                (9.75..10.25).contains(&solar_hour)
            })
            .copied()
            .collect();
        let n = morning.len();
        if n > 0 {
            chosen.push(morning[n / 3]);
            if n > 1 {
                chosen.push(morning[2 * n / 3]);
            }
        }
    }
    let rows = rows_for(saved, dataset, &chosen, device)?;
    let k = saved.config.examples.lead_times;
    let h = saved.config.examples.history_steps as i64;
    Ok(chosen
        .iter()
        .zip(rows.chunks(k))
        .map(|(key, rows)| {
            let series = &dataset.systems[key.system];
            let kwp = series.meta.capacity_kwp as f32;
            Fan {
                ss_id: series.meta.ss_id,
                t0: key.t0,
                step_minutes: step / 60,
                history_kw: (0..h)
                    .map(|i| {
                        series
                            .normalised_at(UnixTime(key.t0.0 - (h - 1 - i) * step))
                            .map_or(f32::NAN, |p| p * kwp)
                    })
                    .collect(),
                rows: rows.to_vec(),
                levels: saved.config.model.quantiles.clone(),
            }
        })
        .collect())
}
