//! Baselines, computed from the same batches the model sees (so on exactly the same examples):
//!
//! - **persistence**: the last observed power at or before t0, for every lead time;
//! - **smart persistence** (clear-sky index persistence, as the literature defines it): the
//!   clear-sky index at t0, k(t0) = power / clear-sky power of the array, times the clear-sky
//!   power at each lead time;
//! - **clear-sky × recent ratio**: the mean clear-sky index over the history window times the
//!   clear-sky power at each lead time.
//!
//! Clear-sky power is the plane-of-array clear-sky irradiance from pv-data (`clear_sky` features,
//! kW/kWp at 1000 W/m²) times a per-system scale fitted on the training block
//! ([`ClearSkyScale::fit`]): the ratio the system actually reaches on clear days. The index is
//! clipped to `[0, MAX_CLEAR_SKY_INDEX]`.
//!
//! **The dawn rule.** k(t0) is defined only where the clear-sky power at the last observation is
//! at least [`MIN_CLEAR_SKY`] (0.3 kW/kWp, chosen on validation): near sunrise and sunset it is a
//! ratio of two small numbers, and before sunrise there is nothing to persist. There (and where
//! the history holds no observation at all) both index baselines use the system's **climatological clear-sky index**, fitted on its
//! training block ([`ClearSkyScale::climatological_index`]). Persisting a dawn value of ≈ 0 for
//! four hours of morning ramp, as plain persistence does, is not smart persistence.

use std::collections::BTreeMap;

use pv_data::Batch;
use pv_data::features::{Modality, PvToken, PvTokenIndex, Query};

/// Below this clear-sky power (kW/kWp) at the last observation, k(t0) is undefined and the
/// climatological index is used instead. Chosen on the validation split (smart persistence,
/// daylight nMAE, all systems pooled): 0.05 → 0.1152, 0.2 → PVDAQ 50 0.1083, 0.3 → 0.1106
/// (PVDAQ 50 0.1071, SERF East 0.1513), 0.4 → 0.1102 (SERF East worse, 0.1528). At low sun the
/// index is a ratio of small numbers, and morning shade or snow make it a poor guide for the
/// hours ahead.
pub const MIN_CLEAR_SKY: f32 = 0.3;
/// The scale is fitted on steps with at least this clear-sky irradiance (kW/kWp at 1000 W/m²):
/// with the sun high, where the clear-sky model is most trustworthy.
pub const FIT_MIN_CLEAR_SKY: f32 = 0.3;
/// The clear-sky index is clipped to this.
pub const MAX_CLEAR_SKY_INDEX: f32 = 1.5;

/// The baselines, by name, in report order.
pub const BASELINES: [&str; 3] = ["persistence", "smart_persistence", "clear_sky_ratio"];

/// Climatological clear-sky index of a system without a fitted one.
pub const DEFAULT_CLIMATOLOGICAL_INDEX: f32 = 0.6;

/// What the baselines fit per system on the training block: the scale from clear-sky irradiance
/// (kW/kWp per 1000 W/m²) to clear-sky power, and the climatological clear-sky index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClearSkyScale {
    /// Scale by ss_id; systems without one use 1.
    pub by_system: BTreeMap<i64, f32>,
    /// Climatological clear-sky index by ss_id: observed energy / clear-sky energy over the
    /// training block's steps with clear-sky power of at least [`MIN_CLEAR_SKY`] (after the
    /// scale). Systems without one use [`DEFAULT_CLIMATOLOGICAL_INDEX`].
    pub climatological_index: BTreeMap<i64, f32>,
}

impl ClearSkyScale {
    /// Fits each system's scale as the 95th percentile of power / clear-sky over history steps
    /// with clear-sky above [`FIT_MIN_CLEAR_SKY`], then its climatological index, in `batches`
    /// (which must come from the training split only).
    pub fn fit<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> ClearSkyScale {
        // (power, clear-sky irradiance) of every observed anchor step with the sun up.
        let mut steps: BTreeMap<i64, Vec<(f32, f32)>> = BTreeMap::new();
        let PvTokenIndex {
            power,
            observed,
            clear_sky: clear,
            ..
        } = PvToken::INDEX;
        for batch in batches {
            let [b, h, n, f] = batch.tokens[Modality::Pv].values.shape[..] else {
                continue;
            };
            for bi in 0..b {
                // Token 0 of every history step is the anchor target.
                let ss_id = batch.target_ss_ids[bi][0];
                for hi in 0..h {
                    let at = ((bi * h + hi) * n) * f;
                    let token = &batch.tokens[Modality::Pv].values.data[at..at + f];
                    if token[observed] == 1.0 && token[clear] > 0.0 {
                        steps
                            .entry(ss_id)
                            .or_default()
                            .push((token[power], token[clear]));
                    }
                }
            }
        }
        let mut fitted = ClearSkyScale::default();
        for (ss_id, steps) in steps {
            let mut ratios: Vec<f32> = steps
                .iter()
                .filter(|&&(_, c)| c > FIT_MIN_CLEAR_SKY)
                .map(|&(p, c)| p / c)
                .collect();
            if ratios.len() >= 20 {
                ratios.sort_by(f32::total_cmp);
                let scale = ratios[(ratios.len() - 1) * 95 / 100].max(0.05);
                fitted.by_system.insert(ss_id, scale);
            }
            let scale = fitted.of(ss_id);
            let (energy, clear_energy) = steps
                .iter()
                .filter(|&&(_, c)| c * scale >= MIN_CLEAR_SKY)
                .fold((0.0f64, 0.0f64), |(e, ce), &(p, c)| {
                    (e + p as f64, ce + (c * scale) as f64)
                });
            if clear_energy > 0.0 {
                let index = (energy / clear_energy) as f32;
                fitted
                    .climatological_index
                    .insert(ss_id, index.clamp(0.0, MAX_CLEAR_SKY_INDEX));
            }
        }
        fitted
    }

    /// The clear-sky scale of `ss_id`.
    pub fn of(&self, ss_id: i64) -> f32 {
        self.by_system.get(&ss_id).copied().unwrap_or(1.0)
    }

    /// The climatological clear-sky index of `ss_id`.
    pub fn climatology_of(&self, ss_id: i64) -> f32 {
        self.climatological_index
            .get(&ss_id)
            .copied()
            .unwrap_or(DEFAULT_CLIMATOLOGICAL_INDEX)
    }
}

/// k(t0) of one decoder query for a system with clear-sky scale `scale`: the last observed power
/// over its clear-sky power, clipped to `[0, MAX_CLEAR_SKY_INDEX]`; `None` where the dawn rule
/// says it is undefined (no observation, or clear-sky power under [`MIN_CLEAR_SKY`]).
pub fn clear_sky_index_at_t0(query: &[f32], scale: f32) -> Option<f32> {
    let last_clear = query[Query::INDEX.last_clear_sky] * scale;
    (query[Query::INDEX.last_observed] == 1.0 && last_clear >= MIN_CLEAR_SKY)
        .then(|| (query[Query::INDEX.last_power] / last_clear).clamp(0.0, MAX_CLEAR_SKY_INDEX))
}

/// Baseline forecasts of power / kWp, `[B, S, K]` each, in the order of [`BASELINES`].
pub fn forecasts(batch: &Batch, scale: &ClearSkyScale) -> [Vec<f32>; 3] {
    let [b, s, k, fq] = batch.queries.shape[..] else {
        return Default::default();
    };
    let [_, h, n, fp] = batch.tokens[Modality::Pv].values.shape[..] else {
        return Default::default();
    };
    let PvTokenIndex {
        power,
        observed,
        clear_sky: clear,
        ..
    } = PvToken::INDEX;
    let mut out: [Vec<f32>; 3] = [
        vec![0.0; b * s * k],
        vec![0.0; b * s * k],
        vec![0.0; b * s * k],
    ];
    for bi in 0..b {
        for si in 0..s {
            let ss_id = batch.target_ss_ids[bi][si];
            let c = scale.of(ss_id);
            let q0 = ((bi * s + si) * k) * fq;
            let query = &batch.queries.data[q0..q0 + fq];
            let last_power = query[Query::INDEX.last_power];
            let last_index = clear_sky_index_at_t0(query, c);
            let climatology = scale.climatology_of(ss_id);
            // Mean clear-sky index of this target's own PV tokens (token si) over the history.
            let (mut sum, mut count) = (0.0f32, 0usize);
            for hi in 0..h {
                let at = ((bi * h + hi) * n + si) * fp;
                let token = &batch.tokens[Modality::Pv].values.data[at..at + fp];
                let cs = token[clear] * c;
                if token[observed] == 1.0 && cs >= MIN_CLEAR_SKY {
                    sum += (token[power] / cs).clamp(0.0, MAX_CLEAR_SKY_INDEX);
                    count += 1;
                }
            }
            let mean_index = (count > 0).then(|| sum / count as f32);
            for ki in 0..k {
                let i = (bi * s + si) * k + ki;
                let clear_then = batch.queries.data[q0 + ki * fq + Query::INDEX.clear_sky] * c;
                out[0][i] = last_power;
                out[1][i] = last_index.unwrap_or(climatology) * clear_then;
                out[2][i] = mean_index.or(last_index).unwrap_or(climatology) * clear_then;
            }
        }
    }
    out
}
