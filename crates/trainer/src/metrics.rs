//! Forecast metrics, accumulated over batches by one code path for the model and every baseline:
//! MAE in kW and nMAE (MAE / kWp) per lead time and overall, on daylight steps (sun elevation > 0)
//! and on all steps; skill against a reference forecaster; pinball loss and the coverage of the
//! outer quantile interval for quantile forecasts. Only observed targets of real systems count.
//!
//! Everything is reported per system and pooled over systems ([`Report`]). Skill carries a 95 %
//! interval from a day-block bootstrap ([`day_block_skill_interval`]): errors within a day are
//! strongly correlated (one cloudy morning spoils every lead time of a dozen examples), so days,
//! not pairs, are the unit that is resampled.

use std::collections::BTreeMap;

use pv_data::Batch;

use crate::training::SplitMix64;

#[derive(Debug, Clone, Default)]
struct Sums {
    abs_norm: f64,
    abs_kw: f64,
    count: usize,
}

impl Sums {
    fn merge(&mut self, other: &Sums) {
        self.abs_norm += other.abs_norm;
        self.abs_kw += other.abs_kw;
        self.count += other.count;
    }

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

/// Daylight sums of one day (local solar day of the example's t0), for the day-block bootstrap.
type DaySums = BTreeMap<i64, (f64, usize)>;

#[derive(Debug, Clone, Default)]
struct Forecaster {
    daylight: Vec<Sums>,
    all: Vec<Sums>,
    pinball: f64,
    covered: usize,
    quantile_count: usize,
    levels: usize,
    days: DaySums,
}

impl Forecaster {
    fn new(lead_times: usize) -> Forecaster {
        Forecaster {
            daylight: vec![Sums::default(); lead_times],
            all: vec![Sums::default(); lead_times],
            ..Forecaster::default()
        }
    }

    fn merge(&mut self, other: &Forecaster) {
        for (a, b) in self.daylight.iter_mut().zip(&other.daylight) {
            a.merge(b);
        }
        for (a, b) in self.all.iter_mut().zip(&other.all) {
            a.merge(b);
        }
        self.pinball += other.pinball;
        self.covered += other.covered;
        self.quantile_count += other.quantile_count;
        self.levels = self.levels.max(other.levels);
        for (&day, &(abs, n)) in &other.days {
            let d = self.days.entry(day).or_default();
            d.0 += abs;
            d.1 += n;
        }
    }
}

/// Metrics of one forecaster. Absent values (no observation) are NaN in memory and `null` in JSON,
/// and read back from `null` as NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForecasterMetrics {
    /// nMAE over daylight steps, all lead times (every daylight pair weighs the same).
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
    /// 95 % interval of `skill` from a day-block bootstrap (whole days of examples resampled
    /// with replacement); `None` for the reference, or with fewer than two days.
    pub skill_interval: Option<[f64; 2]>,
    /// Skill against other forecasters than the reference, by name, with the same day-block
    /// interval: the pairs asked for with [`Metrics::with_head_to_head`] (the model against the
    /// trees: does it beat them beyond what the test days' luck could give?).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skill_against: BTreeMap<String, Skill>,
    /// Mean pinball loss over quantiles and all observed targets, night included (quantile
    /// forecasts only); the same quantity as the training loss.
    pub pinball: Option<f64>,
    /// Fraction of observed targets inside [lowest, highest] quantile (quantile forecasts only).
    pub coverage: Option<f64>,
    /// Observed daylight (forecast, target) pairs counted.
    pub daylight_targets: usize,
    /// Days (local solar days of t0) with at least one daylight pair.
    pub days: usize,
}

/// Skill against one forecaster: 1 − nMAE / nMAE(rival), daylight, and its 95 % day-block
/// bootstrap interval (`None` with fewer than two days).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skill {
    /// The point value.
    #[serde(deserialize_with = "null_as_nan::one")]
    pub skill: f64,
    /// Its interval.
    pub interval: Option<[f64; 2]>,
}

#[cfg(test)]
impl ForecasterMetrics {
    /// Metrics for tests of what reads them: `nmae` everywhere, `skill` with an interval ± 0.1,
    /// 10 pairs on `days` days.
    pub(crate) fn example(nmae: f64, skill: Option<f64>, days: usize) -> ForecasterMetrics {
        ForecasterMetrics {
            nmae,
            nmae_by_lead: vec![nmae],
            mae_kw: nmae,
            mae_kw_by_lead: vec![nmae],
            nmae_all_steps: nmae,
            nmae_all_steps_by_lead: vec![nmae],
            skill,
            skill_interval: skill.map(|s| [s - 0.1, s + 0.1]),
            skill_against: Default::default(),
            pinball: None,
            coverage: None,
            daylight_targets: 10,
            days,
        }
    }
}

/// Metrics by forecaster name.
pub type ForecasterTable = BTreeMap<String, ForecasterMetrics>;

/// An evaluation: every forecaster pooled over all systems, and per system.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The forecaster skill is measured against.
    pub reference: String,
    /// Every system's pairs together.
    pub pooled: ForecasterTable,
    /// Per system, by ss_id.
    pub systems: BTreeMap<i64, ForecasterTable>,
    /// Which inputs the evaluated data held (written by `evaluate`, where a folder may lack
    /// some of the model's inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<pv_data::InputUse>,
    /// The checkpoints whose mean quantiles are the `model` rows, when `evaluate` was given an
    /// ensemble (absent for one model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<std::path::PathBuf>,
}

impl Report {
    /// Pooled metrics of one forecaster.
    pub fn get(&self, name: &str) -> Option<&ForecasterMetrics> {
        self.pooled.get(name)
    }
}

/// How skill intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// Resamples.
    pub draws: usize,
    /// Seed of the resampling (the same seed gives the same interval).
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            draws: 2000,
            seed: 0x5eed,
        }
    }
}

/// 95 % interval of the skill 1 − MAE / MAE(reference) by a day-block bootstrap: the days both
/// forecasters share are drawn with replacement, as many as there are, and the skill of each
/// resample is computed from its pooled absolute errors. `None` with fewer than two shared days.
pub fn day_block_skill_interval(
    forecaster: &BTreeMap<i64, (f64, usize)>,
    reference: &BTreeMap<i64, (f64, usize)>,
    bootstrap: Bootstrap,
) -> Option<[f64; 2]> {
    let days: Vec<((f64, usize), (f64, usize))> = forecaster
        .iter()
        .filter_map(|(day, &f)| reference.get(day).map(|&r| (f, r)))
        .collect();
    if days.len() < 2 || bootstrap.draws == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(bootstrap.seed);
    let mut skills = Vec::with_capacity(bootstrap.draws);
    for _ in 0..bootstrap.draws {
        let (mut fa, mut fn_, mut ra, mut rn) = (0.0, 0usize, 0.0, 0usize);
        for _ in 0..days.len() {
            let ((a, n), (b, m)) = days[rng.below(days.len())];
            fa += a;
            fn_ += n;
            ra += b;
            rn += m;
        }
        if fn_ > 0 && rn > 0 && ra > 0.0 {
            skills.push(1.0 - (fa / fn_ as f64) / (ra / rn as f64));
        }
    }
    if skills.is_empty() {
        return None;
    }
    skills.sort_by(f64::total_cmp);
    let at = |q: f64| skills[((skills.len() - 1) as f64 * q).round() as usize];
    Some([at(0.025), at(0.975)])
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

/// Accumulates metrics over batches, per forecaster and per system.
#[derive(Debug, Clone)]
pub struct Metrics {
    lead_times: usize,
    /// Longitude of each system, degrees east, to find the local solar day of an example.
    longitude_deg: BTreeMap<i64, f64>,
    bootstrap: Bootstrap,
    /// (forecaster, rival) pairs whose skill is reported besides the reference's.
    head_to_head: Vec<(String, String)>,
    /// By forecaster, then by ss_id.
    forecasters: BTreeMap<String, BTreeMap<i64, Forecaster>>,
}

impl Metrics {
    /// Metrics for forecasts of `lead_times` steps. Days for the bootstrap are UTC days until
    /// [`Metrics::with_longitudes`] gives the systems' places.
    pub fn new(lead_times: usize) -> Self {
        Metrics {
            lead_times,
            longitude_deg: BTreeMap::new(),
            bootstrap: Bootstrap::default(),
            head_to_head: Vec::new(),
            forecasters: BTreeMap::new(),
        }
    }

    /// Days are local solar days: t0 shifted by each system's longitude (4 min per degree), so a
    /// day's daylight is never cut in two, as UTC midnight would cut it in the Americas.
    pub fn with_longitudes(mut self, longitude_deg: impl IntoIterator<Item = (i64, f64)>) -> Self {
        self.longitude_deg = longitude_deg.into_iter().collect();
        self
    }

    /// Sets how skill intervals are drawn.
    pub fn with_bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Reports `forecaster`'s skill against `rival` too, where both forecast
    /// ([`ForecasterMetrics::skill_against`]).
    pub fn with_head_to_head(mut self, forecaster: &str, rival: &str) -> Self {
        self.head_to_head
            .push((forecaster.to_owned(), rival.to_owned()));
        self
    }

    fn day_of(&self, ss_id: i64, t0: pv_data::UnixTime) -> i64 {
        t0.local_solar_day(self.longitude_deg.get(&ss_id).copied().unwrap_or(0.0))
    }

    fn entry(&mut self, name: &str, ss_id: i64) -> &mut Forecaster {
        let k = self.lead_times;
        self.forecasters
            .entry(name.to_owned())
            .or_default()
            .entry(ss_id)
            .or_insert_with(|| Forecaster::new(k))
    }

    /// The observed targets of real systems: (flat index, ss_id, local day).
    fn pairs(&self, batch: &Batch) -> Vec<(usize, i64, i64)> {
        let k = self.lead_times;
        let s = batch.query_mask.shape.get(1).copied().unwrap_or(0);
        (0..batch.target_mask.data.len())
            .filter(|&i| batch.target_mask.data[i] != 0.0 && batch.query_mask.data[i / k] != 0.0)
            .map(|i| {
                let (bi, si) = (i / k / s, i / k % s);
                let ss_id = batch.target_ss_ids[bi][si];
                (i, ss_id, self.day_of(ss_id, batch.keys[bi].t0))
            })
            .collect()
    }

    /// Adds point forecasts of power / kWp, laid out like `batch.targets` (`[B, S, K]`).
    pub fn add_point(&mut self, name: &str, batch: &Batch, forecast: &[f32]) {
        let k = self.lead_times;
        for (i, ss_id, day) in self.pairs(batch) {
            let f = self.entry(name, ss_id);
            let lead = i % k;
            let err = (forecast[i] - batch.targets.data[i]).abs() as f64;
            let kwp = batch.capacity_kwp.data[i / k] as f64;
            f.all[lead].add(err, kwp);
            if batch.sun_elevation_deg.data[i] > 0.0 {
                f.daylight[lead].add(err, kwp);
                let d = f.days.entry(day).or_default();
                d.0 += err;
                d.1 += 1;
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
        for (i, ss_id, _) in self.pairs(batch) {
            let y = batch.targets.data[i];
            let f = self.entry(name, ss_id);
            f.levels = q;
            let row = &quantiles[i * q..(i + 1) * q];
            for (&p, &tau) in row.iter().zip(levels) {
                let d = (y - p) as f64;
                f.pinball += (tau * d).max((tau - 1.0) * d);
            }
            f.covered += (row[0] <= y && y <= row[q - 1]) as usize;
            f.quantile_count += 1;
        }
    }

    /// The report, pooled and per system, with skill against `reference` (e.g.
    /// "smart_persistence") and its day-block bootstrap interval.
    pub fn report(&self, reference: &str) -> Report {
        let mut systems: BTreeMap<i64, BTreeMap<&str, &Forecaster>> = BTreeMap::new();
        let mut pooled: BTreeMap<&str, Forecaster> = BTreeMap::new();
        for (name, by_system) in &self.forecasters {
            for (&ss_id, f) in by_system {
                systems.entry(ss_id).or_default().insert(name, f);
                pooled
                    .entry(name)
                    .or_insert_with(|| Forecaster::new(self.lead_times))
                    .merge(f);
            }
        }
        let pooled_refs: BTreeMap<&str, &Forecaster> =
            pooled.iter().map(|(n, f)| (*n, f)).collect();
        Report {
            reference: reference.to_owned(),
            pooled: self.table(&pooled_refs, reference),
            systems: systems
                .iter()
                .map(|(&ss_id, group)| (ss_id, self.table(group, reference)))
                .collect(),
            inputs: None,
            ensemble: Vec::new(),
        }
    }

    fn table(&self, group: &BTreeMap<&str, &Forecaster>, reference: &str) -> ForecasterTable {
        let total = |s: &[Sums]| {
            let mut merged = Sums::default();
            s.iter().for_each(|x| merged.merge(x));
            (merged.nmae(), merged.mae_kw(), merged.count)
        };
        let reference = group.get(reference).map(|f| (reference, *f));
        let skill = |f: &Forecaster, nmae: f64, rival: &Forecaster| Skill {
            skill: 1.0 - nmae / total(&rival.daylight).0,
            interval: day_block_skill_interval(&f.days, &rival.days, self.bootstrap),
        };
        group
            .iter()
            .map(|(&name, f)| {
                let (nmae, mae_kw, daylight_targets) = total(&f.daylight);
                let quantile = f.quantile_count > 0;
                let vs_reference = reference
                    .filter(|(r, _)| *r != name)
                    .map(|(_, r)| skill(f, nmae, r));
                let skill_against = self
                    .head_to_head
                    .iter()
                    .filter(|(of, rival)| of == name && rival != name)
                    .filter_map(|(_, rival)| {
                        let r = group.get(rival.as_str())?;
                        Some((rival.clone(), skill(f, nmae, r)))
                    })
                    .collect();
                let metrics = ForecasterMetrics {
                    nmae,
                    nmae_by_lead: f.daylight.iter().map(Sums::nmae).collect(),
                    mae_kw,
                    mae_kw_by_lead: f.daylight.iter().map(Sums::mae_kw).collect(),
                    nmae_all_steps: total(&f.all).0,
                    nmae_all_steps_by_lead: f.all.iter().map(Sums::nmae).collect(),
                    skill: vs_reference.map(|s| s.skill),
                    skill_interval: vs_reference.and_then(|s| s.interval),
                    skill_against,
                    pinball: quantile.then(|| f.pinball / (f.quantile_count * f.levels) as f64),
                    coverage: quantile.then(|| f.covered as f64 / f.quantile_count as f64),
                    daylight_targets,
                    days: f.days.len(),
                };
                (name.to_owned(), metrics)
            })
            .collect()
    }
}
