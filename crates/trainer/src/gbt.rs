//! The gradient-boosted trees baseline: the learned reference a user would otherwise pick
//! (lagged power and clear-sky features into boosted trees, as most operational PV forecasters
//! do), trained on the training split and scored by the same metric code on the same examples
//! as the model.
//!
//! **Features** ([`GbtFeatures`]): one row per (example, target system, lead time), built from
//! the same batch the model sees, flattened:
//! - every decoder-query feature (site, lead time, sun position and clear-sky irradiance at the
//!   target time, the last observation, its age and clear sky, and NWP valid at the target time
//!   where the data have NWP);
//! - the target system's own power (NaN where missing: the trees learn a branch for it) and
//!   clear-sky power at each history step;
//! - the baselines' own quantities, which trees cannot compute from their inputs (they do not
//!   multiply): the fitted clear-sky power at the target time, k(t0) (NaN where undefined), the
//!   smart-persistence, clear-sky-ratio and climatological forecasts;
//! - day of year (sin, cos) of t0;
//! - the latest point observation at t0 (the first observation token: the anchor's own, or its
//!   nearest system's), and the satellite channels at the nearest pixel and averaged over the
//!   crop, at t0.
//!
//! **Learner**: `forust-ml`'s gradient booster (pure Rust, XGBoost's histogram algorithm),
//! squared loss. Rounds are early-stopped on the validation split's RMSE, and each tree depth in
//! [`GbtConfig::max_depths`] is tried, keeping the one with the lowest daylight nMAE on
//! validation: every choice is made on validation only, and the test split is never seen.

use anyhow::{Context, Result, anyhow};
use forust_ml::gradientbooster::ImportanceMethod;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use pv_data::features::{Modality, NwpAtTarget, PlaceTime, PvToken, PvTokenIndex, Query};
use pv_data::{Batch, Dataset, ExampleConfig, Split, build_batch, evenly_spaced, example_keys};

use forecaster::baselines::{ClearSkyScale, clear_sky_index_at_t0, forecasts};

/// How the gradient-boosted baseline is trained.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GbtConfig {
    /// Fit and report the baseline at all.
    pub enabled: bool,
    /// Training rows (example × target × lead time) at most; examples are taken evenly spaced
    /// over the training split.
    pub max_train_rows: usize,
    /// Validation rows at most, for early stopping and choosing the depth.
    pub max_validation_rows: usize,
    /// Tree depths tried; the best on validation is kept.
    pub max_depths: Vec<usize>,
    /// Boosting rounds at most.
    pub rounds: usize,
    /// Stop after this many rounds without a better validation RMSE.
    pub early_stopping_rounds: usize,
    /// Shrinkage of each tree.
    pub learning_rate: f32,
    /// Seed of the booster.
    pub seed: u64,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig {
            enabled: true,
            max_train_rows: 300_000,
            max_validation_rows: 100_000,
            max_depths: vec![6, 8],
            rounds: 1000,
            early_stopping_rounds: 20,
            learning_rate: 0.1,
            seed: 0,
        }
    }
}

/// Flattened rows, column-major (forust-ml's layout), with their targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GbtFeatures {
    /// Columns.
    pub columns: usize,
    /// Each column's name (empty without rows).
    pub names: Vec<String>,
    /// Rows: one per (example, target, lead time), real targets only.
    pub rows: usize,
    /// Column-major values (NaN = missing).
    pub values: Vec<f64>,
    /// Target power / kWp (NaN where not observed).
    pub targets: Vec<f64>,
    /// Sun elevation at the target, degrees.
    pub sun_elevation_deg: Vec<f64>,
    /// Where each row goes in a `[B, S, K]` forecast.
    pub index: Vec<usize>,
}

impl GbtFeatures {
    /// Every real (target, lead time) row of `batch`; `scale` is the baselines' fit on the
    /// training split.
    pub fn of(batch: &Batch, scale: &ClearSkyScale) -> GbtFeatures {
        let mut rows = Rows::default();
        rows.push(batch, scale, false);
        rows.into_features()
    }
}

/// Rows gathered row by row (as batches come), turned column-major once at the end.
#[derive(Default)]
struct Rows {
    columns: usize,
    /// Each column's name, recorded as the first row is built (so names and values cannot
    /// disagree in order).
    names: Vec<String>,
    values: Vec<f64>,
    targets: Vec<f64>,
    sun_elevation_deg: Vec<f64>,
    index: Vec<usize>,
}

/// A feature row built value by value; while `names` is `Some`, each value's column name is
/// recorded with it.
#[derive(Default)]
struct Row {
    values: Vec<f64>,
    names: Option<Vec<String>>,
}

impl Row {
    fn put(&mut self, value: f64, name: impl FnOnce() -> String) {
        self.values.push(value);
        if let Some(names) = &mut self.names {
            names.push(name());
        }
    }

    /// Starts a new row; names are recorded when `naming`.
    fn start(&mut self, naming: bool) {
        self.values.clear();
        self.names = naming.then(Vec::new);
    }

    fn extend(&mut self, other: &Row) {
        self.values.extend_from_slice(&other.values);
        if let (Some(names), Some(theirs)) = (&mut self.names, &other.names) {
            names.extend(theirs.iter().cloned());
        }
    }
}

impl Rows {
    /// Appends the rows of `batch`; only those with an observed target when `observed_only`.
    fn push(&mut self, batch: &Batch, scale: &ClearSkyScale, observed_only: bool) {
        let [b, s, k, fq] = batch.queries.shape[..] else {
            return;
        };
        let [_, h, n, fp] = batch.tokens[Modality::Pv].values.shape[..] else {
            return;
        };
        let PvTokenIndex {
            power,
            observed,
            clear_sky: clear,
            ..
        } = PvToken::INDEX;
        let place_time = PlaceTime::WIDTH;
        let own_values = |tokens: &pv_data::BatchTokens| {
            let f = tokens.values.shape.get(3).copied().unwrap_or(0);
            (
                f.saturating_sub(place_time),
                tokens.values.shape.get(2).copied().unwrap_or(0),
                f,
            )
        };
        let (obs_vars, obs_tokens, fo) = own_values(&batch.tokens[Modality::Observations]);
        let (channels, pixels, fs) = own_values(&batch.tokens[Modality::Satellite]);
        let baselines = forecasts(batch, scale);
        let query_name = |c: usize| match Query::NAMES.get(c) {
            Some(name) => (*name).to_owned(),
            // After the fixed query features: NWP variables at the target time, then where
            // they come from.
            None if c + NwpAtTarget::WIDTH >= fq => {
                format!("nwp_{}", NwpAtTarget::NAMES[c + NwpAtTarget::WIDTH - fq])
            }
            None => format!("nwp_variable_{}_at_target", c - Query::WIDTH),
        };
        let mut row = Row::default();
        let mut context = Row::default();
        for bi in 0..b {
            let day = batch.keys[bi].t0.day_of_year() as f64 * std::f64::consts::TAU / 365.25;
            // Latest observation and satellite at t0 (the last history step).
            let last = h - 1;
            context.start(self.names.is_empty());
            let obs_real = obs_tokens > 0
                && batch.tokens[Modality::Observations].mask.data[(bi * h + last) * obs_tokens]
                    != 0.0;
            for v in 0..obs_vars {
                let at = ((bi * h + last) * obs_tokens) * fo + v;
                let value = if obs_real {
                    batch.tokens[Modality::Observations].values.data[at] as f64
                } else {
                    f64::NAN
                };
                context.put(value, || format!("observation_{v}_at_t0"));
            }
            for c in 0..channels {
                let (mut sum, mut count, mut nearest) = (0.0, 0usize, f64::NAN);
                for p in 0..pixels {
                    if batch.tokens[Modality::Satellite].mask.data[(bi * h + last) * pixels + p]
                        == 0.0
                    {
                        continue;
                    }
                    let v = batch.tokens[Modality::Satellite].values.data
                        [((bi * h + last) * pixels + p) * fs + c]
                        as f64;
                    if p == 0 {
                        nearest = v;
                    }
                    sum += v;
                    count += 1;
                }
                context.put(nearest, || format!("satellite_{c}_nearest_at_t0"));
                let mean = if count > 0 {
                    sum / count as f64
                } else {
                    f64::NAN
                };
                context.put(mean, || format!("satellite_{c}_mean_at_t0"));
            }
            for si in 0..s {
                if batch.query_mask.data[bi * s + si] == 0.0 {
                    continue;
                }
                let ss_id = batch.target_ss_ids[bi][si];
                let c = scale.of(ss_id);
                for ki in 0..k {
                    let i = (bi * s + si) * k + ki;
                    let target_observed = batch.target_mask.data[i] != 0.0;
                    if observed_only && !target_observed {
                        continue;
                    }
                    let q = &batch.queries.data[i * fq..(i + 1) * fq];
                    row.start(self.names.is_empty());
                    for (column, &x) in q.iter().enumerate() {
                        row.put(x as f64, || query_name(column));
                    }
                    for hi in 0..h {
                        let at = ((bi * h + hi) * n + si) * fp;
                        let token = &batch.tokens[Modality::Pv].values.data[at..at + fp];
                        let p = if token[observed] == 1.0 {
                            token[power] as f64
                        } else {
                            f64::NAN
                        };
                        let ago = h - 1 - hi;
                        row.put(p, || format!("power_{ago}_steps_before_t0"));
                        row.put((token[clear] * c) as f64, || {
                            format!("clear_sky_power_{ago}_steps_before_t0")
                        });
                    }
                    let k_t0 = clear_sky_index_at_t0(q, c).map_or(f64::NAN, f64::from);
                    let clear_then = (q[Query::INDEX.clear_sky] * c) as f64;
                    row.put(c as f64, || "clear_sky_scale".into());
                    row.put(clear_then, || "clear_sky_power_at_target".into());
                    row.put(k_t0, || "clear_sky_index_at_t0".into());
                    row.put(baselines[1][i] as f64, || "smart_persistence".into());
                    row.put(baselines[2][i] as f64, || "clear_sky_ratio".into());
                    row.put(scale.climatology_of(ss_id) as f64 * clear_then, || {
                        "climatological_forecast".into()
                    });
                    row.put(day.sin(), || "sin_day_of_year".into());
                    row.put(day.cos(), || "cos_day_of_year".into());
                    row.extend(&context);
                    if let Some(names) = row.names.take() {
                        self.names = names;
                    }
                    self.columns = row.values.len();
                    self.values.extend_from_slice(&row.values);
                    self.targets.push(if target_observed {
                        batch.targets.data[i] as f64
                    } else {
                        f64::NAN
                    });
                    self.sun_elevation_deg
                        .push(batch.sun_elevation_deg.data[i] as f64);
                    self.index.push(i);
                }
            }
        }
    }

    fn into_features(self) -> GbtFeatures {
        let rows = self.targets.len();
        let mut values = vec![0.0; self.values.len()];
        for (r, row) in self.values.chunks_exact(self.columns.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                values[c * rows + r] = v;
            }
        }
        GbtFeatures {
            columns: self.columns,
            names: self.names,
            rows,
            values,
            targets: self.targets,
            sun_elevation_deg: self.sun_elevation_deg,
            index: self.index,
        }
    }
}

/// A fitted gradient-boosted baseline.
pub struct Gbt {
    booster: GradientBooster,
    /// The depth chosen on validation.
    pub max_depth: usize,
    /// Rounds kept by early stopping, for the chosen depth.
    pub rounds: usize,
    /// Daylight validation nMAE of every depth tried, in [`GbtConfig::max_depths`] order.
    pub validation_nmae: Vec<f64>,
    /// Training rows used.
    pub train_rows: usize,
    /// The training rows' column names ([`GbtFeatures::names`]).
    pub names: Vec<String>,
}

/// The rows of up to `max_rows` rows' worth of examples of `split`, evenly spaced.
fn rows_of(
    dataset: &Dataset,
    examples: &ExampleConfig,
    split: Split,
    max_rows: usize,
    scale: &ClearSkyScale,
) -> Result<GbtFeatures> {
    let keys = example_keys(dataset, examples, split)?;
    let per_example = examples.lead_times * examples.max_target_systems;
    let keys = evenly_spaced(&keys, (max_rows / per_example.max(1)).max(1));
    let mut rows = Rows::default();
    for chunk in keys.chunks(2048) {
        rows.push(&build_batch(dataset, examples, chunk, split), scale, true);
    }
    Ok(rows.into_features())
}

/// Mean absolute error over daylight rows.
fn daylight_mae(rows: &GbtFeatures, predicted: &[f64]) -> f64 {
    let (sum, n) = (0..rows.rows)
        .filter(|&r| rows.sun_elevation_deg[r] > 0.0)
        .fold((0.0, 0usize), |(s, n), r| {
            (s + (predicted[r].max(0.0) - rows.targets[r]).abs(), n + 1)
        });
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

impl Gbt {
    /// Fits on the training split of `dataset`; early stopping and the depth use its validation
    /// split (without one, the full `rounds` and the first depth).
    pub fn fit(
        dataset: &Dataset,
        examples: &ExampleConfig,
        config: &GbtConfig,
        scale: &ClearSkyScale,
    ) -> Result<Gbt> {
        let train = rows_of(
            dataset,
            examples,
            Split::Train,
            config.max_train_rows,
            scale,
        )
        .context("gradient-boosted baseline: training rows")?;
        if train.rows == 0 {
            return Err(anyhow!(
                "gradient-boosted baseline: no observed training targets"
            ));
        }
        let validation = rows_of(
            dataset,
            examples,
            Split::Validation,
            config.max_validation_rows,
            scale,
        )
        .ok()
        .filter(|v| v.rows > 0);
        let matrix = Matrix::new(&train.values, train.rows, train.columns);
        let weights = vec![1.0; train.rows];
        let validation_weights = vec![1.0; validation.as_ref().map_or(0, |v| v.rows)];
        let mut best: Option<(f64, usize, GradientBooster)> = None;
        let mut validation_nmae = Vec::new();
        for &depth in &config.max_depths {
            let mut booster = GradientBooster::default()
                .set_objective_type(ObjectiveType::SquaredLoss)
                .set_iterations(config.rounds)
                .set_learning_rate(config.learning_rate)
                .set_max_depth(depth)
                .set_seed(config.seed)
                .set_initialize_base_score(true)
                .set_evaluation_metric(Some(Metric::RootMeanSquaredError))
                .set_early_stopping_rounds(
                    validation.as_ref().map(|_| config.early_stopping_rounds),
                );
            let evaluation = validation.as_ref().map(|v| {
                vec![(
                    Matrix::new(&v.values, v.rows, v.columns),
                    v.targets.as_slice(),
                    validation_weights.as_slice(),
                )]
            });
            booster
                .fit(&matrix, &train.targets, &weights, evaluation)
                .map_err(|e| anyhow!("gradient-boosted baseline (depth {depth}): {e}"))?;
            let score = validation.as_ref().map_or(f64::NAN, |v| {
                daylight_mae(
                    v,
                    &booster.predict(&Matrix::new(&v.values, v.rows, v.columns), true),
                )
            });
            validation_nmae.push(score);
            if best.as_ref().is_none_or(|(s, _, _)| score < *s) {
                best = Some((score, depth, booster));
            }
        }
        let (_, max_depth, booster) =
            best.ok_or_else(|| anyhow!("gradient-boosted baseline: gbt.max_depths is empty"))?;
        Ok(Gbt {
            rounds: booster.prediction_iteration.unwrap_or(booster.trees.len()),
            booster,
            max_depth,
            validation_nmae,
            train_rows: train.rows,
            names: train.names,
        })
    }

    /// What the trees lean on: each column's share of the total split gain over every tree
    /// (forust-ml's `TotalGain`), largest first, columns never split on left out. The shares of
    /// the columns listed sum to 1.
    pub fn importance(&self) -> Vec<(String, f64)> {
        let gains = self
            .booster
            .calculate_feature_importance(ImportanceMethod::TotalGain, false);
        let total: f64 = gains.values().map(|&g| f64::from(g)).sum();
        let mut shares: Vec<(String, f64)> = gains
            .into_iter()
            .map(|(column, gain)| {
                let name = self
                    .names
                    .get(column)
                    .cloned()
                    .unwrap_or_else(|| format!("column_{column}"));
                (name, f64::from(gain) / total.max(f64::MIN_POSITIVE))
            })
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        shares
    }

    /// Forecasts of power / kWp for `batch`, laid out like `batch.targets` (`[B, S, K]`; padding
    /// stays 0), never below 0.
    pub fn forecast(&self, batch: &Batch, scale: &ClearSkyScale) -> Vec<f32> {
        let rows = GbtFeatures::of(batch, scale);
        let mut out = vec![0.0; batch.targets.data.len()];
        if rows.rows == 0 {
            return out;
        }
        let predicted = self
            .booster
            .predict(&Matrix::new(&rows.values, rows.rows, rows.columns), true);
        for (&i, &p) in rows.index.iter().zip(&predicted) {
            out[i] = p.max(0.0) as f32;
        }
        out
    }
}
