//! Examples and batches: what the model sees for one forecast time `t0`.
//!
//! An example is `(t0, target systems)`. Its inputs are tokens grouped by history step (one HiP
//! group per step, `H` groups), one token set per modality, and one decoder query per
//! (target system, lead time). Every feature is a plain `f32`; missing values are 0 with a
//! mask or an "observed" feature, never NaN.
//!
//! **No-leakage invariant.** For an example at `t0`, every observed input (PV, satellite, point
//! observations) comes from a time at or before `t0`, and every NWP value from a run available
//! by `t0`: initialised at or before `t0 − nwp_available_after_minutes`. Only deterministic quantities (solar geometry, clear-sky power, lead time)
//! describe the future. `tests/no_leakage.rs` checks this by rewriting everything after `t0`.

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::features::{Modality, NwpAtTarget, PerModality, PlaceTime, PvToken, Query};
use crate::inputs::{LatLon, NwpUse};
use crate::places::PlaceIndex;
use crate::series::PvSeries;
use crate::solar::{ClearSkyConfig, SolarState, solar_state};
use crate::split::{Block, Split, SplitConfig, block};
use crate::time::UnixTime;

/// How examples are built.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExampleConfig {
    /// History steps up to and including t0 (one HiP group each).
    pub history_steps: usize,
    /// Lead times after t0, one grid step apart.
    pub lead_times: usize,
    /// Target systems per example (the anchor plus its nearest neighbours in the same split).
    pub max_target_systems: usize,
    /// Radius for context and extra target systems, km.
    pub context_radius_km: f64,
    /// Context systems per example, nearest first.
    pub max_context_systems: usize,
    /// Satellite pixels per history step, nearest the anchor first.
    pub satellite_pixels: usize,
    /// Radius for satellite pixels, km.
    pub satellite_radius_km: f64,
    /// NWP grid points per history step, nearest the anchor first.
    pub nwp_points: usize,
    /// Radius for NWP points, km.
    pub nwp_radius_km: f64,
    /// Oldest point observation still used for a history step, minutes.
    pub observation_max_age_minutes: i64,
    /// Minutes after its init time an NWP run becomes usable: a run initialised at `init` enters
    /// an example at t0 only if `init + nwp_available_after_minutes <= t0`. Operational NWP is
    /// published well after its nominal init time (the hours of data assimilation and model run
    /// before the files exist); the default, 120 min, is a conservative figure for the Met Office
    /// UKV as distributed to forecasters. Set it to your provider's latency; 0 treats every run as
    /// available at its init time, which flatters any model that uses NWP.
    pub nwp_available_after_minutes: i64,
    /// How long after a run's last step its last values are still carried, minutes. A run covers
    /// only so far ahead (the bundled UKV runs reach 4 h after init, so with a 2 h publication
    /// delay no run covers more than 2 h past t0); beyond it, its last step's values are carried
    /// with the hours since that step as a feature, so the inputs, and the forecast, change
    /// smoothly where the run ends instead of dropping to "missing". Past this limit the values
    /// are missing. 0 never carries.
    pub nwp_carry_minutes: i64,
    /// Distance between consecutive t0 of one system, in grid steps.
    pub t0_stride_steps: usize,
    /// Keep only examples with the sun above the horizon at some lead time.
    pub daylight_only: bool,
    /// Clear-sky model settings.
    pub clear_sky: ClearSkyConfig,
    /// Train / validation / test blocks.
    pub split: SplitConfig,
}

impl Default for ExampleConfig {
    fn default() -> Self {
        ExampleConfig {
            history_steps: 8,
            lead_times: 16,
            max_target_systems: 1,
            context_radius_km: 50.0,
            max_context_systems: 8,
            satellite_pixels: 16,
            satellite_radius_km: 30.0,
            nwp_points: 4,
            nwp_radius_km: 150.0,
            observation_max_age_minutes: 60,
            nwp_available_after_minutes: 120,
            nwp_carry_minutes: 360,
            t0_stride_steps: 1,
            daylight_only: false,
            clear_sky: ClearSkyConfig::default(),
            split: SplitConfig::default(),
        }
    }
}

impl ExampleConfig {
    /// The latest NWP init time usable for an example at `t0`.
    pub fn nwp_available_by(&self, t0: UnixTime) -> UnixTime {
        UnixTime(t0.0 - self.nwp_available_after_minutes * 60)
    }

    /// Which NWP an example at `t0` may use: runs available by then, carried this far.
    pub fn nwp_use(&self, t0: UnixTime) -> NwpUse {
        NwpUse {
            available_by: self.nwp_available_by(t0),
            carry_s: self.nwp_carry_minutes * 60,
        }
    }

    /// Interval ends an example spans: history and lead times.
    pub fn example_steps(&self) -> usize {
        self.history_steps + self.lead_times
    }

    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(DataError::Config(msg));
        if self.history_steps == 0 {
            return bad("history_steps must be at least 1".into());
        }
        if self.lead_times == 0 {
            return bad("lead_times must be at least 1".into());
        }
        if self.max_target_systems == 0 {
            return bad("max_target_systems must be at least 1".into());
        }
        if self.t0_stride_steps == 0 {
            return bad("t0_stride_steps must be at least 1".into());
        }
        for (name, v) in [
            ("context_radius_km", self.context_radius_km),
            ("satellite_radius_km", self.satellite_radius_km),
            ("nwp_radius_km", self.nwp_radius_km),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be a positive number, got {v}"));
            }
        }
        if self.observation_max_age_minutes <= 0 {
            return bad("observation_max_age_minutes must be positive".into());
        }
        if self.nwp_available_after_minutes < 0 {
            return bad("nwp_available_after_minutes must be 0 or more".into());
        }
        if self.nwp_carry_minutes < 0 {
            return bad("nwp_carry_minutes must be 0 or more".into());
        }
        self.split.validate()
    }
}

/// Identifies one example: the anchor system (index into [`Dataset::systems`]) and t0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ExampleKey {
    /// Index of the anchor target system in the dataset.
    pub system: usize,
    /// Forecast time: end of the last history interval.
    pub t0: UnixTime,
}

fn place(series: &PvSeries) -> LatLon {
    LatLon {
        latitude_deg: series.meta.latitude_deg,
        longitude_deg: series.meta.longitude_deg,
    }
}

/// The sun's direction as three features: `sun_up`, `sun_east`, `sun_north`.
#[derive(Debug, Clone, Copy)]
struct Sun {
    up: f32,
    east: f32,
    north: f32,
}

fn sun_features(s: &SolarState) -> Sun {
    let elevation = s.sun.apparent_elevation_deg.to_radians();
    let azimuth = s.sun.azimuth_deg.to_radians();
    Sun {
        up: elevation.sin() as f32,
        east: (elevation.cos() * azimuth.sin()) as f32,
        north: (elevation.cos() * azimuth.cos()) as f32,
    }
}

/// Sun and clear sky of a system at an instant: its own place and panel geometry, and its own
/// altitude where the metadata give one.
pub(crate) fn solar_of(series: &PvSeries, t: UnixTime, config: &ClearSkyConfig) -> SolarState {
    let m = &series.meta;
    let config = ClearSkyConfig {
        altitude_m: m.altitude_m.unwrap_or(config.altitude_m),
        ..*config
    };
    solar_state(
        t,
        m.latitude_deg,
        m.longitude_deg,
        m.tilt_deg,
        m.orientation_deg,
        &config,
    )
}

/// Midpoint of the interval ending at `t`.
fn midpoint(t: UnixTime, step_s: i64) -> UnixTime {
    UnixTime(t.0 - step_s / 2)
}

/// Lists every example of `split`, in (system, t0) order.
///
/// An example needs its whole window (history and lead times) inside the anchor's block, at least
/// one observed history value and at least one observed target of the anchor.
pub fn example_keys(
    dataset: &Dataset,
    config: &ExampleConfig,
    split: Split,
) -> Result<Vec<ExampleKey>> {
    config.validate()?;
    let step = dataset.step_s();
    let (h, k) = (config.history_steps as i64, config.lead_times as i64);
    let longest_block = dataset
        .systems
        .iter()
        .filter_map(|s| block(s, split, &config.split, config.example_steps()))
        .map(|b| ((b.last.0 - b.first.0) / step + 1) as usize)
        .max()
        .unwrap_or(0);
    if longest_block < config.example_steps() {
        return Err(DataError::WindowTooLong {
            what: format!("the longest {split} block of any system"),
            have: format!("{longest_block} steps of {} min", step / 60),
            need: format!(
                "{} steps ({} history + {} lead times)",
                config.example_steps(),
                h,
                k
            ),
        });
    }
    let per_system: Vec<Vec<ExampleKey>> = dataset
        .systems
        .par_iter()
        .enumerate()
        .map(|(system, series)| {
            let Some(b) = block(series, split, &config.split, config.example_steps()) else {
                return Vec::new();
            };
            let first_t0 = b.first.0 + (h - 1) * step;
            let last_t0 = b.last.0 - k * step;
            let mut keys = Vec::new();
            let mut t0 = first_t0;
            while t0 <= last_t0 {
                let t = UnixTime(t0);
                let history =
                    (0..h).any(|i| series.normalised_at(UnixTime(t0 - i * step)).is_some());
                let future =
                    (1..=k).any(|i| series.normalised_at(UnixTime(t0 + i * step)).is_some());
                let daylight = !config.daylight_only
                    || (1..=k).any(|i| {
                        let s = solar_of(
                            series,
                            midpoint(UnixTime(t0 + i * step), step),
                            &config.clear_sky,
                        );
                        s.sun.apparent_elevation_deg > 0.0
                    });
                if history && future && daylight {
                    keys.push(ExampleKey { system, t0: t });
                }
                t0 += config.t0_stride_steps as i64 * step;
            }
            keys
        })
        .collect();
    Ok(per_system.into_iter().flatten().collect())
}

/// `n` keys evenly spaced over `keys` (all of them when `n` is 0 or larger).
pub fn evenly_spaced(keys: &[ExampleKey], n: usize) -> Vec<ExampleKey> {
    if n == 0 || n >= keys.len() {
        return keys.to_vec();
    }
    (0..n).map(|i| keys[i * keys.len() / n]).collect()
}

/// A set of tokens laid out `[history step][token][feature]`, with a mask `[history step][token]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenSet {
    /// Tokens per history step.
    pub tokens: usize,
    /// Features per token.
    pub features: usize,
    /// Values.
    pub values: Vec<f32>,
    /// 1 for a real token, 0 for padding or an absent observation.
    pub mask: Vec<f32>,
}

impl TokenSet {
    fn new(steps: usize, tokens: usize, features: usize) -> TokenSet {
        TokenSet {
            tokens,
            features,
            values: vec![0.0; steps * tokens * features],
            mask: vec![0.0; steps * tokens],
        }
    }

    fn set(&mut self, step: usize, token: usize, values: &[f32]) {
        debug_assert_eq!(values.len(), self.features);
        let at = (step * self.tokens + token) * self.features;
        self.values[at..at + self.features].copy_from_slice(values);
        self.mask[step * self.tokens + token] = 1.0;
    }
}

/// One example, before batching.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Which example.
    pub key: ExampleKey,
    /// Target systems' ss_ids (the anchor first).
    pub target_ss_ids: Vec<i64>,
    /// Context systems' ss_ids.
    pub context_ss_ids: Vec<i64>,
    /// Tokens per modality: PV (targets first, then context systems), satellite pixels,
    /// point observations, NWP points.
    pub tokens: PerModality<TokenSet>,
    /// Queries `[target][lead][feature]`.
    pub queries: Vec<f32>,
    /// Targets `[target][lead]`: power / kWp (0 where missing).
    pub targets: Vec<f32>,
    /// 1 where the target was observed.
    pub target_mask: Vec<f32>,
    /// Apparent sun elevation at each target interval's midpoint, degrees.
    pub sun_elevation_deg: Vec<f32>,
    /// Capacity of each target, kWp.
    pub capacity_kwp: Vec<f32>,
}

/// Feature widths of every token kind and of the queries, fixed by the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureWidths {
    /// PV token features.
    pub pv: usize,
    /// Satellite token features (channels + place/time).
    pub satellite: usize,
    /// Observation token features (variables + place/time).
    pub observations: usize,
    /// NWP token features (variables + place/time + hours since init).
    pub nwp: usize,
    /// Query features.
    pub query: usize,
}

impl FeatureWidths {
    /// The width of `modality`'s tokens.
    pub fn of_modality(&self, modality: Modality) -> usize {
        match modality {
            Modality::Pv => self.pv,
            Modality::Satellite => self.satellite,
            Modality::Observations => self.observations,
            Modality::Nwp => self.nwp,
        }
    }

    /// The widths for `dataset`.
    pub fn of(dataset: &Dataset) -> FeatureWidths {
        let width = |m: Modality, values: Option<usize>| values.map_or(0, |v| v + m.tail().len());
        let nwp_vars = dataset.nwp.as_ref().map(|n| n.variables.len());
        FeatureWidths {
            pv: PvToken::WIDTH,
            satellite: width(
                Modality::Satellite,
                dataset.satellite.as_ref().map(|s| s.channels.len()),
            ),
            observations: width(
                Modality::Observations,
                dataset.observations.as_ref().map(|o| o.variables.len()),
            ),
            nwp: width(Modality::Nwp, nwp_vars.filter(|&v| v > 0)),
            // With NWP, each query also carries the variables at its target time and where
            // they come from.
            query: Query::WIDTH
                + nwp_vars
                    .filter(|&v| v > 0)
                    .map_or(0, |v| v + NwpAtTarget::WIDTH),
        }
    }
}

/// Scaled values with NaN as 0, and the fraction that were present.
fn scaled(values: &[f32], scale: impl Fn(usize, f32) -> f32, out: &mut Vec<f32>) -> f32 {
    let mut present = 0;
    for (v, &x) in values.iter().enumerate() {
        if x.is_nan() {
            out.push(0.0);
        } else {
            present += 1;
            out.push(scale(v, x));
        }
    }
    if values.is_empty() {
        0.0
    } else {
        present as f32 / values.len() as f32
    }
}

/// What part of each system's record an example may read: the other target systems' windows
/// and the context systems' history must lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every system's block of one split: for training and evaluation, so that no example reads
    /// another block's values, even as a neighbour's history.
    Split(Split),
    /// Every system's whole record: for forecasting, where there is no split, and where a
    /// neighbour's recent history is usable whichever block it would fall in. Nothing after t0
    /// is an input either way (the window's history ends at t0).
    Record,
}

impl From<Split> for Reach {
    fn from(split: Split) -> Reach {
        Reach::Split(split)
    }
}

/// Builds one example. `key` must come from [`example_keys`] for the same dataset and config.
///
/// In data order: choose the target and context systems, then each modality's tokens over the
/// history window, then one query and target per (target system, lead time).
pub fn build_example(
    dataset: &Dataset,
    config: &ExampleConfig,
    key: ExampleKey,
    reach: impl Into<Reach>,
) -> Example {
    build_example_in(
        dataset,
        config,
        key,
        &reach_blocks(dataset, config, reach.into()),
        &place_index(dataset, config),
    )
}

/// The systems' places, binned for finding each example's neighbours.
fn place_index(dataset: &Dataset, config: &ExampleConfig) -> PlaceIndex {
    PlaceIndex::new(
        dataset.systems.iter().map(place).collect(),
        config.context_radius_km,
    )
}

/// Every system's part of its record that `reach` allows (by index in `dataset.systems`).
fn reach_blocks(dataset: &Dataset, config: &ExampleConfig, reach: Reach) -> Vec<Option<Block>> {
    dataset
        .systems
        .iter()
        .map(|s| match reach {
            Reach::Split(split) => block(s, split, &config.split, config.example_steps()),
            Reach::Record => (!s.is_empty()).then(|| Block {
                first: s.start,
                last: s.end(),
            }),
        })
        .collect()
}

/// [`build_example`] with the split's blocks and the systems' places computed once for a whole
/// batch (cutting by observed steps reads each system's record; binning reads every place).
fn build_example_in(
    dataset: &Dataset,
    config: &ExampleConfig,
    key: ExampleKey,
    blocks: &[Option<Block>],
    places: &PlaceIndex,
) -> Example {
    let w = Window::new(dataset, config, key);
    let (targets, contexts) = choose_systems(&w, key.system, blocks, places);
    let pv_systems: Vec<usize> = targets.iter().chain(&contexts).copied().collect();
    let tokens = PerModality([
        pv_tokens(&w, &pv_systems, targets.len()),
        satellite_tokens(&w),
        observation_tokens(&w, &pv_systems),
        nwp_tokens(&w),
    ]);
    let q = queries_and_targets(&w, &targets);
    let ss_ids = |systems: &[usize]| -> Vec<i64> {
        systems
            .iter()
            .map(|&i| dataset.systems[i].meta.ss_id)
            .collect()
    };
    Example {
        key,
        target_ss_ids: ss_ids(&targets),
        context_ss_ids: ss_ids(&contexts),
        tokens,
        queries: q.queries,
        targets: q.targets,
        target_mask: q.target_mask,
        sun_elevation_deg: q.sun_elevation_deg,
        capacity_kwp: targets
            .iter()
            .map(|&i| dataset.systems[i].meta.capacity_kwp as f32)
            .collect(),
    }
}

/// What every step of one example is built from: the data, the anchor system and the times.
struct Window<'a> {
    dataset: &'a Dataset,
    config: &'a ExampleConfig,
    t0: UnixTime,
    step: i64,
    anchor: &'a PvSeries,
    origin: LatLon,
    widths: FeatureWidths,
}

impl<'a> Window<'a> {
    fn new(dataset: &'a Dataset, config: &'a ExampleConfig, key: ExampleKey) -> Self {
        let anchor = &dataset.systems[key.system];
        Window {
            dataset,
            config,
            t0: key.t0,
            step: dataset.step_s(),
            anchor,
            origin: place(anchor),
            widths: FeatureWidths::of(dataset),
        }
    }

    /// End of history interval `i` (0 = oldest; `history_steps − 1` ends at t0).
    fn history_time(&self, i: usize) -> UnixTime {
        let h = self.config.history_steps;
        UnixTime(self.t0.0 - (h - 1 - i) as i64 * self.step)
    }

    /// End of the interval of lead time `lead` (0 = the first after t0).
    fn lead_time(&self, lead: usize) -> UnixTime {
        UnixTime(self.t0.0 + (lead as i64 + 1) * self.step)
    }

    fn hours_from_t0(&self, t: UnixTime) -> f32 {
        (t.0 - self.t0.0) as f32 / 3600.0
    }

    /// Offset of `at` from the anchor, in context radii.
    fn offset(&self, at: LatLon) -> (f32, f32) {
        let (east, north) = at.offset_km(self.origin);
        let radius = self.config.context_radius_km;
        ((east / radius) as f32, (north / radius) as f32)
    }

    fn solar(&self, series: &PvSeries, t: UnixTime) -> SolarState {
        solar_of(series, t, &self.config.clear_sky)
    }

    /// A token's place and time, after its own values.
    fn place_time(
        &self,
        observed_fraction: f32,
        at: LatLon,
        time: UnixTime,
        sun: Sun,
    ) -> PlaceTime {
        let (east, north) = self.offset(at);
        PlaceTime {
            observed_fraction,
            east,
            north,
            hours_from_t0: self.hours_from_t0(time),
            sun_up: sun.up,
            sun_east: sun.east,
            sun_north: sun.north,
        }
    }
}

/// The target systems (the anchor first) and the context systems of an example: neighbours within
/// the context radius, nearest first. An extra target needs the whole window inside its own
/// block of this split; a context system only its history (it is never scored), but that too from
/// the same split, so a training example never reads another system's validation or test values.
fn choose_systems(
    w: &Window<'_>,
    anchor: usize,
    blocks: &[Option<Block>],
    places: &PlaceIndex,
) -> (Vec<usize>, Vec<usize>) {
    let (config, h) = (w.config, w.config.history_steps);
    let mut neighbours = places.within(w.origin);
    neighbours.retain(|&(_, i)| i != anchor);
    neighbours.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let window_first = w.history_time(0);
    let window_last = w.lead_time(config.lead_times - 1);
    let mut targets = vec![anchor];
    let mut contexts = Vec::new();
    for &(_, i) in &neighbours {
        let s = &w.dataset.systems[i];
        let own_block = blocks[i];
        let in_split = own_block.is_some_and(|b| b.first <= window_first && window_last <= b.last);
        let history_in_split = own_block.is_some_and(|b| b.first <= window_first && w.t0 <= b.last);
        let has_history = (0..h).any(|j| s.normalised_at(w.history_time(j)).is_some());
        if targets.len() < config.max_target_systems && in_split && has_history {
            targets.push(i);
        } else if contexts.len() < config.max_context_systems && history_in_split && has_history {
            contexts.push(i);
        }
    }
    (targets, contexts)
}

/// PV tokens: every target and context system at every history step.
fn pv_tokens(w: &Window<'_>, systems: &[usize], targets: usize) -> TokenSet {
    let h = w.config.history_steps;
    let mut pv = TokenSet::new(h, systems.len(), PvToken::WIDTH);
    for (token, &i) in systems.iter().enumerate() {
        let s = &w.dataset.systems[i];
        let (east, north) = w.offset(place(s));
        let m = &s.meta;
        let orientation = m.orientation_deg.to_radians();
        for step_i in 0..h {
            let t = w.history_time(step_i);
            let solar = w.solar(s, midpoint(t, w.step));
            let power = s.normalised_at(t);
            let sun = sun_features(&solar);
            let row = PvToken {
                power: power.unwrap_or(0.0),
                observed: power.is_some() as u8 as f32,
                is_target: (token < targets) as u8 as f32,
                east,
                north,
                sin_orientation: orientation.sin() as f32,
                cos_orientation: orientation.cos() as f32,
                tilt: (m.tilt_deg / 90.0) as f32,
                log_kwp: m.capacity_kwp.ln() as f32,
                hours_from_t0: w.hours_from_t0(t),
                sun_up: sun.up,
                sun_east: sun.east,
                sun_north: sun.north,
                clear_sky: (solar.clear_sky_poa / 1000.0) as f32,
            };
            pv.set(step_i, token, &row.to_array());
        }
    }
    pv
}

/// Tokens of an input with values of its own: `tokens` per history step, each row written by
/// `fill(step, token, row)` (its values, standardised, then its fixed features), which returns
/// false where the token has nothing at that step (it stays masked).
fn input_tokens(
    h: usize,
    tokens: usize,
    width: usize,
    mut fill: impl FnMut(usize, usize, &mut Vec<f32>) -> bool,
) -> TokenSet {
    let mut set = TokenSet::new(h, tokens, width);
    let mut row = Vec::with_capacity(width);
    for step_i in 0..h {
        for token in 0..tokens {
            row.clear();
            if fill(step_i, token, &mut row) {
                set.set(step_i, token, &row);
            }
        }
    }
    set
}

/// Satellite: the pixels nearest the anchor, from the latest image in each history interval.
fn satellite_tokens(w: &Window<'_>) -> TokenSet {
    let (h, config) = (w.config.history_steps, w.config);
    let Some(sat) = &w.dataset.satellite else {
        return TokenSet::new(h, 0, 0);
    };
    let pixels = sat.nearest_pixels(
        w.origin,
        config.satellite_pixels,
        config.satellite_radius_km,
    );
    input_tokens(h, pixels.len(), w.widths.satellite, |step_i, token, row| {
        let Some(image) = sat.image_at_or_before(w.history_time(step_i), w.step) else {
            return false;
        };
        let p = pixels[token];
        let fraction = scaled(sat.pixel(image, p), |v, x| sat.scaler.apply(v, x), row);
        let time = sat.times[image];
        let sun = sun_features(&w.solar(w.anchor, time));
        row.extend(w.place_time(fraction, sat.pixels[p], time, sun).to_array());
        fraction > 0.0
    })
}

/// Point observations of the example's PV systems, the latest in each history interval.
fn observation_tokens(w: &Window<'_>, systems: &[usize]) -> TokenSet {
    let h = w.config.history_steps;
    let Some(obs) = &w.dataset.observations else {
        return TokenSet::new(h, 0, 0);
    };
    let with_obs: Vec<&PvSeries> = systems
        .iter()
        .map(|&i| &w.dataset.systems[i])
        .filter(|s| obs.systems.contains_key(&s.meta.ss_id))
        .collect();
    let max_age = w.config.observation_max_age_minutes * 60;
    input_tokens(
        h,
        with_obs.len(),
        w.widths.observations,
        |step_i, token, row| {
            let s = with_obs[token];
            let t = w.history_time(step_i);
            let Some((time, values)) = obs.latest(s.meta.ss_id, t, max_age) else {
                return false;
            };
            let fraction = scaled(values, |v, x| obs.scaler.apply(v, x), row);
            let sun = sun_features(&w.solar(s, time));
            row.extend(w.place_time(fraction, place(s), time, sun).to_array());
            fraction > 0.0
        },
    )
}

/// NWP at the points nearest the anchor, valid at each history time, from runs available by t0.
fn nwp_tokens(w: &Window<'_>) -> TokenSet {
    let (h, config) = (w.config.history_steps, w.config);
    let Some(nwp) = &w.dataset.nwp else {
        return TokenSet::new(h, 0, 0);
    };
    let points = nwp.nearest_points(w.origin, config.nwp_points, config.nwp_radius_km);
    let use_ = config.nwp_use(w.t0);
    input_tokens(h, points.len(), w.widths.nwp, |step_i, token, row| {
        let t = w.history_time(step_i);
        let p = points[token];
        let Some(forecast) = nwp.forecast(use_, t, p) else {
            return false;
        };
        let fraction = scaled(&forecast.values, |v, x| nwp.scaler.apply(v, x), row);
        let sun = sun_features(&w.solar(w.anchor, t));
        row.extend(w.place_time(fraction, nwp.points[p], t, sun).to_array());
        row.extend(forecast.age(t).to_array());
        fraction > 0.0
    })
}

/// An example's queries and targets, `[target][lead]` (queries with their features innermost).
struct QueriesAndTargets {
    queries: Vec<f32>,
    targets: Vec<f32>,
    target_mask: Vec<f32>,
    sun_elevation_deg: Vec<f32>,
}

/// One query and target per (target system, lead time): the system's geometry, the lead time,
/// the sun and clear sky at the target time, the last observation before t0, and (with NWP) the
/// forecast at the target time from a run available by t0.
fn queries_and_targets(w: &Window<'_>, targets: &[usize]) -> QueriesAndTargets {
    let (h, k, config) = (w.config.history_steps, w.config.lead_times, w.config);
    let n = targets.len() * k;
    let mut out = QueriesAndTargets {
        queries: Vec::with_capacity(n * w.widths.query),
        targets: vec![0.0; n],
        target_mask: vec![0.0; n],
        sun_elevation_deg: vec![0.0; n],
    };
    let nwp_use = config.nwp_use(w.t0);
    let mut row = Vec::new();
    for (ti, &i) in targets.iter().enumerate() {
        let s = &w.dataset.systems[i];
        let m = &s.meta;
        let orientation = m.orientation_deg.to_radians();
        // The last observed value at or before t0, within the history window.
        let last = (0..h)
            .rev()
            .map(|j| w.history_time(j))
            .find_map(|t| s.normalised_at(t).map(|p| (t, p)));
        let (last_power, last_observed, last_age_hours, last_clear_sky) = match last {
            Some((t, p)) => {
                let clear = w.solar(s, midpoint(t, w.step)).clear_sky_poa / 1000.0;
                (p, 1.0, (w.t0.0 - t.0) as f32 / 3600.0, clear as f32)
            }
            None => (0.0, 0.0, 0.0, 0.0),
        };
        let nwp_point = w.dataset.nwp.as_ref().and_then(|n| {
            n.nearest_points(place(s), 1, config.nwp_radius_km)
                .first()
                .copied()
        });
        for lead in 0..k {
            let t = w.lead_time(lead);
            let solar = w.solar(s, midpoint(t, w.step));
            let sun = sun_features(&solar);
            let query = Query {
                sin_orientation: orientation.sin() as f32,
                cos_orientation: orientation.cos() as f32,
                tilt: (m.tilt_deg / 90.0) as f32,
                log_kwp: m.capacity_kwp.ln() as f32,
                lead_hours: w.hours_from_t0(t),
                sun_up: sun.up,
                sun_east: sun.east,
                sun_north: sun.north,
                clear_sky: (solar.clear_sky_poa / 1000.0) as f32,
                last_power,
                last_observed,
                last_age_hours,
                last_clear_sky,
            };
            out.queries.extend(query.to_array());
            if let Some(n) = &w.dataset.nwp {
                match nwp_point.and_then(|p| n.forecast(nwp_use, t, p)) {
                    Some(f) => {
                        row.clear();
                        let observed_fraction =
                            scaled(&f.values, |v, x| n.scaler.apply(v, x), &mut row);
                        out.queries.extend(&row);
                        let age = f.age(t);
                        let tail = NwpAtTarget {
                            observed_fraction,
                            hours_since_init: age.hours_since_init,
                            hours_past_run_end: age.hours_past_run_end,
                        };
                        out.queries.extend(tail.to_array());
                    }
                    None => out.queries.extend(std::iter::repeat_n(
                        0.0,
                        n.variables.len() + NwpAtTarget::WIDTH,
                    )),
                }
            }
            let at = ti * k + lead;
            if let Some(p) = s.normalised_at(t) {
                out.targets[at] = p;
                out.target_mask[at] = 1.0;
            }
            out.sun_elevation_deg[at] = solar.sun.apparent_elevation_deg as f32;
        }
    }
    out
}

/// A dense `f32` array with a shape, row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Tokens of one modality for a batch: `[batch, history step, token, feature]` and a mask
/// `[batch, history step, token]` (1 = real).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchTokens {
    /// Token values.
    pub values: Array,
    /// Token mask.
    pub mask: Array,
}

/// Examples padded to common sizes, ready for a tensor library.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Which examples, in order.
    pub keys: Vec<ExampleKey>,
    /// Target ss_ids `[batch][target]` (0 for padding).
    pub target_ss_ids: Vec<Vec<i64>>,
    /// Tokens per modality (zero tokens for a modality the dataset lacks).
    pub tokens: PerModality<BatchTokens>,
    /// Queries `[batch, target, lead, feature]`.
    pub queries: Array,
    /// 1 for a real target, 0 for padding: `[batch, target]`.
    pub query_mask: Array,
    /// Targets `[batch, target, lead]`, power / kWp.
    pub targets: Array,
    /// 1 where observed: `[batch, target, lead]`.
    pub target_mask: Array,
    /// Apparent sun elevation at each target interval, degrees: `[batch, target, lead]`.
    pub sun_elevation_deg: Array,
    /// Capacity, kWp: `[batch, target]` (0 for padding).
    pub capacity_kwp: Array,
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Removes `modality` from example `example`, as if its data had none of it: its tokens are
    /// masked and zeroed and, for NWP, so are the NWP values and their observed fraction in its
    /// queries (what a forecast sees when the folder lacks the input, or no run covers the
    /// target time). For [`Modality::Pv`], the context systems' tokens go and the target
    /// systems' own history stays: no input is optional but that one.
    pub fn drop_input(&mut self, example: usize, modality: Modality) {
        let tokens = &mut self.tokens[modality];
        let [_, h, n, f] = tokens.values.shape[..] else {
            return;
        };
        for token in 0..h * n {
            let at = example * h * n + token;
            let row = &mut tokens.values.data[at * f..(at + 1) * f];
            if modality == Modality::Pv && row[PvToken::INDEX.is_target] == 1.0 {
                continue;
            }
            row.fill(0.0);
            tokens.mask.data[at] = 0.0;
        }
        if modality == Modality::Nwp {
            let [_, s, k, fq] = self.queries.shape[..] else {
                return;
            };
            for row in
                self.queries.data[example * s * k * fq..(example + 1) * s * k * fq].chunks_mut(fq)
            {
                row[Query::WIDTH..].fill(0.0);
            }
        }
    }
}

fn collate_tokens(
    examples: &[Example],
    h: usize,
    pick: impl Fn(&Example) -> &TokenSet,
    features: usize,
) -> BatchTokens {
    let b = examples.len();
    let n = examples.iter().map(|e| pick(e).tokens).max().unwrap_or(0);
    let mut values = vec![0.0; b * h * n * features];
    let mut mask = vec![0.0; b * h * n];
    for (bi, e) in examples.iter().enumerate() {
        let set = pick(e);
        for step in 0..h {
            for token in 0..set.tokens {
                let src = (step * set.tokens + token) * features;
                let dst = ((bi * h + step) * n + token) * features;
                values[dst..dst + features].copy_from_slice(&set.values[src..src + features]);
                mask[(bi * h + step) * n + token] = set.mask[step * set.tokens + token];
            }
        }
    }
    BatchTokens {
        values: Array {
            shape: vec![b, h, n, features],
            data: values,
        },
        mask: Array {
            shape: vec![b, h, n],
            data: mask,
        },
    }
}

/// Pads examples to the largest token and target counts among them.
pub fn collate(examples: &[Example], widths: FeatureWidths, config: &ExampleConfig) -> Batch {
    let (b, h, k) = (examples.len(), config.history_steps, config.lead_times);
    let s = examples
        .iter()
        .map(|e| e.target_ss_ids.len())
        .max()
        .unwrap_or(0);
    let fq = widths.query;
    let mut queries = vec![0.0; b * s * k * fq];
    let mut query_mask = vec![0.0; b * s];
    let mut targets = vec![0.0; b * s * k];
    let mut target_mask = vec![0.0; b * s * k];
    let mut sun = vec![0.0; b * s * k];
    let mut capacity = vec![0.0; b * s];
    let mut target_ss_ids = Vec::with_capacity(b);
    for (bi, e) in examples.iter().enumerate() {
        let n = e.target_ss_ids.len();
        let base = bi * s * k;
        queries[base * fq..(base + n * k) * fq].copy_from_slice(&e.queries);
        targets[base..base + n * k].copy_from_slice(&e.targets);
        target_mask[base..base + n * k].copy_from_slice(&e.target_mask);
        sun[base..base + n * k].copy_from_slice(&e.sun_elevation_deg);
        query_mask[bi * s..bi * s + n].fill(1.0);
        capacity[bi * s..bi * s + n].copy_from_slice(&e.capacity_kwp);
        let mut ids = e.target_ss_ids.clone();
        ids.resize(s, 0);
        target_ss_ids.push(ids);
    }
    Batch {
        keys: examples.iter().map(|e| e.key).collect(),
        target_ss_ids,
        tokens: PerModality::from_fn(|m| {
            collate_tokens(examples, h, |e| &e.tokens[m], widths.of_modality(m))
        }),
        queries: Array {
            shape: vec![b, s, k, fq],
            data: queries,
        },
        query_mask: Array {
            shape: vec![b, s],
            data: query_mask,
        },
        targets: Array {
            shape: vec![b, s, k],
            data: targets,
        },
        target_mask: Array {
            shape: vec![b, s, k],
            data: target_mask,
        },
        sun_elevation_deg: Array {
            shape: vec![b, s, k],
            data: sun,
        },
        capacity_kwp: Array {
            shape: vec![b, s],
            data: capacity,
        },
    }
}

/// Builds the examples for `keys` in parallel (rayon) and collates them into one batch, each
/// reading what `reach` allows (a [`Split`] for training and evaluation, [`Reach::Record`] for
/// forecasting).
pub fn build_batch(
    dataset: &Dataset,
    config: &ExampleConfig,
    keys: &[ExampleKey],
    reach: impl Into<Reach>,
) -> Batch {
    let blocks = reach_blocks(dataset, config, reach.into());
    let places = place_index(dataset, config);
    let examples: Vec<Example> = keys
        .par_iter()
        .map(|&key| build_example_in(dataset, config, key, &blocks, &places))
        .collect();
    collate(&examples, FeatureWidths::of(dataset), config)
}
