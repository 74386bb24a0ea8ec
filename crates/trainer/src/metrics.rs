//! Forecast metrics, accumulated over batches by one code path for the model and every baseline:
//! MAE in kW and nMAE (MAE / kWp) per lead time and overall, on daylight steps (sun elevation > 0)
//! and on all steps; skill against a reference forecaster; pinball loss and the coverage of the
//! outer quantile interval for quantile forecasts. Only observed targets of real systems count.

use std::collections::BTreeMap;

use pv_data::Batch;

#[derive(Debug, Clone, Default)]
struct Sums {
    abs_norm: f64,
    abs_kw: f64,
    count: usize,
}

impl Sums {
    fn add(&mut self, abs_norm: f64, kwp: f64) {
        self.abs_norm += abs_norm;
        self.abs_kw += abs_norm * kwp;
        self.count += 1;
    }

    fn nmae(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.abs_norm / self.count as f64
        }
    }

    fn mae_kw(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.abs_kw / self.count as f64
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Forecaster {
    daylight: Vec<Sums>,
    all: Vec<Sums>,
    pinball: f64,
    covered: usize,
    quantile_count: usize,
    levels: usize,
}

/// Metrics of one forecaster. Absent values (no observation) are NaN in memory and `null` in JSON,
/// and read back from `null` as NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForecasterMetrics {
    /// nMAE over daylight steps, all lead times.
    #[serde(deserialize_with = "null_as_nan::one")]
    pub nmae: f64,
    /// nMAE per lead time, daylight steps.
    #[serde(deserialize_with = "null_as_nan::many")]
    pub nmae_by_lead: Vec<f64>,
    /// MAE in kW over daylight steps.
    #[serde(deserialize_with = "null_as_nan::one")]
    pub mae_kw: f64,
    /// MAE in kW per lead time, daylight steps.
    #[serde(deserialize_with = "null_as_nan::many")]
    pub mae_kw_by_lead: Vec<f64>,
    /// nMAE over all steps (night included).
    #[serde(deserialize_with = "null_as_nan::one")]
    pub nmae_all_steps: f64,
    /// nMAE per lead time over all steps.
    #[serde(deserialize_with = "null_as_nan::many")]
    pub nmae_all_steps_by_lead: Vec<f64>,
    /// 1 − nMAE / nMAE(reference), daylight; `None` for the reference itself.
    pub skill: Option<f64>,
    /// Mean pinball loss over quantiles and all observed targets, night included (quantile
    /// forecasts only); the same quantity as the training loss.
    pub pinball: Option<f64>,
    /// Fraction of observed targets inside [lowest, highest] quantile (quantile forecasts only).
    pub coverage: Option<f64>,
    /// Observed daylight targets counted.
    pub daylight_targets: usize,
}

/// JSON writes a NaN as `null`; these read `null` back as NaN.
mod null_as_nan {
    use serde::{Deserialize, Deserializer};

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let values = Vec::<Option<f64>>::deserialize(d)?;
        Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

/// Accumulates metrics over batches.
#[derive(Debug, Clone)]
pub struct Metrics {
    lead_times: usize,
    forecasters: BTreeMap<String, Forecaster>,
}

impl Metrics {
    /// Metrics for forecasts of `lead_times` steps.
    pub fn new(lead_times: usize) -> Self {
        Metrics {
            lead_times,
            forecasters: BTreeMap::new(),
        }
    }

    fn entry(&mut self, name: &str) -> &mut Forecaster {
        let k = self.lead_times;
        self.forecasters
            .entry(name.to_owned())
            .or_insert_with(|| Forecaster {
                daylight: vec![Sums::default(); k],
                all: vec![Sums::default(); k],
                ..Forecaster::default()
            })
    }

    /// Adds point forecasts of power / kWp, laid out like `batch.targets` (`[B, S, K]`).
    pub fn add_point(&mut self, name: &str, batch: &Batch, forecast: &[f32]) {
        let k = self.lead_times;
        let f = self.entry(name);
        for (i, (&y, &m)) in batch
            .targets
            .data
            .iter()
            .zip(&batch.target_mask.data)
            .enumerate()
        {
            let system = i / k;
            if m == 0.0 || batch.query_mask.data[system] == 0.0 {
                continue;
            }
            let lead = i % k;
            let err = (forecast[i] - y).abs() as f64;
            let kwp = batch.capacity_kwp.data[system] as f64;
            f.all[lead].add(err, kwp);
            if batch.sun_elevation_deg.data[i] > 0.0 {
                f.daylight[lead].add(err, kwp);
            }
        }
    }

    /// Adds quantile forecasts `[B, S, K, Q]` for `levels`; the point forecast is the median
    /// (or the middle level when 0.5 is not among them).
    pub fn add_quantiles(&mut self, name: &str, batch: &Batch, quantiles: &[f32], levels: &[f64]) {
        let q = levels.len();
        let middle = levels
            .iter()
            .position(|&l| (l - 0.5).abs() < 1e-9)
            .unwrap_or(q / 2);
        let median: Vec<f32> = quantiles.chunks(q).map(|c| c[middle]).collect();
        self.add_point(name, batch, &median);
        let k = self.lead_times;
        let f = self.entry(name);
        f.levels = q;
        for (i, (&y, &m)) in batch
            .targets
            .data
            .iter()
            .zip(&batch.target_mask.data)
            .enumerate()
        {
            if m == 0.0 || batch.query_mask.data[i / k] == 0.0 {
                continue;
            }
            let row = &quantiles[i * q..(i + 1) * q];
            for (&p, &tau) in row.iter().zip(levels) {
                let d = (y - p) as f64;
                f.pinball += (tau * d).max((tau - 1.0) * d);
            }
            f.covered += (row[0] <= y && y <= row[q - 1]) as usize;
            f.quantile_count += 1;
        }
    }

    /// The report, with skill against `reference` (e.g. "smart_persistence").
    pub fn report(&self, reference: &str) -> BTreeMap<String, ForecasterMetrics> {
        let total = |s: &[Sums]| {
            let merged = s.iter().fold(Sums::default(), |a, b| Sums {
                abs_norm: a.abs_norm + b.abs_norm,
                abs_kw: a.abs_kw + b.abs_kw,
                count: a.count + b.count,
            });
            (merged.nmae(), merged.mae_kw(), merged.count)
        };
        let reference_nmae = self
            .forecasters
            .get(reference)
            .map(|f| total(&f.daylight).0);
        self.forecasters
            .iter()
            .map(|(name, f)| {
                let (nmae, mae_kw, daylight_targets) = total(&f.daylight);
                let quantile = f.quantile_count > 0;
                let metrics = ForecasterMetrics {
                    nmae,
                    nmae_by_lead: f.daylight.iter().map(Sums::nmae).collect(),
                    mae_kw,
                    mae_kw_by_lead: f.daylight.iter().map(Sums::mae_kw).collect(),
                    nmae_all_steps: total(&f.all).0,
                    nmae_all_steps_by_lead: f.all.iter().map(Sums::nmae).collect(),
                    skill: reference_nmae
                        .filter(|_| name != reference)
                        .map(|r| 1.0 - nmae / r),
                    pinball: quantile.then(|| f.pinball / (f.quantile_count * f.levels) as f64),
                    coverage: quantile.then(|| f.covered as f64 / f.quantile_count as f64),
                    daylight_targets,
                };
                (name.clone(), metrics)
            })
            .collect()
    }
}
