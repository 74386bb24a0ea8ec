//! Checks of a dataset against physics and the split rule, for `data inspect` and the trainer:
//! how much observed daylight each system's train / validation / test block holds, and which
//! time shift best aligns its measured power with its clear-sky power (a label convention or
//! clock error shows up as a shift of tens of minutes).

use crate::example::ExampleConfig;
use crate::example::solar_of;
use crate::series::PvSeries;
use crate::split::{Split, block};
use crate::time::UnixTime;

/// Observed daylight steps of one system's block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BlockCoverage {
    /// Which block.
    pub split: Split,
    /// Grid steps in the block (0 when the block is empty).
    pub steps: usize,
    /// Steps with the sun up (apparent elevation above 0 at the interval midpoint).
    pub daylight_steps: usize,
    /// Daylight steps with an observed value.
    pub observed_daylight_steps: usize,
}

impl BlockCoverage {
    /// Whether the block holds (almost) no observed daylight, as when a long gap in the data
    /// swallows it: fewer than 24 observed daylight steps, or under 10 % of its daylight steps.
    pub fn is_starved(&self) -> bool {
        self.observed_daylight_steps < 24
            || (self.observed_daylight_steps as f64) < 0.1 * self.daylight_steps as f64
    }
}

/// Coverage of each block of `series` under `config`'s split.
pub fn block_coverage(series: &PvSeries, config: &ExampleConfig) -> Vec<BlockCoverage> {
    Split::ALL
        .into_iter()
        .map(|split| {
            let mut c = BlockCoverage {
                split,
                steps: 0,
                daylight_steps: 0,
                observed_daylight_steps: 0,
            };
            if let Some(b) = block(series, split, &config.split, config.example_steps()) {
                let mut t = b.first.0;
                while t <= b.last.0 {
                    c.steps += 1;
                    if sun_elevation_deg(series, UnixTime(t)) > 0.0 {
                        c.daylight_steps += 1;
                        c.observed_daylight_steps +=
                            series.normalised_at(UnixTime(t)).is_some() as usize;
                    }
                    t += series.step_s;
                }
            }
            c
        })
        .collect()
}

/// Apparent sun elevation at the midpoint of the interval ending at `t`.
fn sun_elevation_deg(series: &PvSeries, t: UnixTime) -> f64 {
    let m = &series.meta;
    let mid = UnixTime(t.0 - series.step_s / 2);
    crate::solar::sun_position(mid, m.latitude_deg, m.longitude_deg).apparent_elevation_deg
}

/// The time shift that best aligns measured power with clear-sky power on a training block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LabelOffset {
    /// Minutes to add to each interval's midpoint so that clear-sky power there correlates best
    /// with the measured value (positive: the values describe later times than their labels
    /// say, as when labels mark interval starts instead of ends).
    pub minutes: f64,
    /// Fit of power to clear-sky power at the best shift (see `daily_fit`: 1 is perfect).
    pub correlation: f64,
    /// The same without a shift.
    pub correlation_unshifted: f64,
}

impl LabelOffset {
    /// Shifts of 10 minutes or more are flagged (every sun feature would be that far off) when
    /// the fit is good enough to be evidence (at least 0.9: sparse or heavily clipped data, such
    /// as the UK fixtures' with dim values dropped, fit poorly at any shift).
    pub fn is_suspect(&self) -> bool {
        self.minutes.abs() >= 10.0 && self.correlation >= 0.9
    }
}

/// The clearest days of `series`' training block: local solar days with at least 80 % of their
/// daylight steps observed, ranked by observed energy over clear-sky energy (with the metadata's
/// panel geometry); the top 10 %, at least 5 and at most 60 days. Fits of timing and geometry
/// use these: on cloudy days power follows the clouds, not the sun's path, and drowns the signal.
fn clear_days(series: &PvSeries, config: &ExampleConfig) -> std::collections::BTreeSet<i64> {
    let Some(b) = block(series, Split::Train, &config.split, config.example_steps()) else {
        return Default::default();
    };
    // Per day: (daylight steps, observed, observed energy, clear-sky energy of observed steps).
    let mut days: std::collections::BTreeMap<i64, (usize, usize, f64, f64)> = Default::default();
    let mut t = b.first.0;
    while t <= b.last.0 {
        let state = solar_of(series, UnixTime(t - series.step_s / 2), &config.clear_sky);
        if state.sun.apparent_elevation_deg > 0.0 {
            let d = days.entry(local_day(series, t)).or_default();
            d.0 += 1;
            if let Some(p) = series.normalised_at(UnixTime(t)) {
                d.1 += 1;
                d.2 += p as f64;
                d.3 += state.clear_sky_poa / 1000.0;
            }
        }
        t += series.step_s;
    }
    let mut ranked: Vec<(f64, i64)> = days
        .into_iter()
        .filter(|(_, d)| d.0 > 0 && d.1 * 5 >= d.0 * 4 && d.3 > 0.0)
        .map(|(day, d)| (d.2 / d.3, day))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let keep = (ranked.len() / 10).clamp(5, 60).min(ranked.len());
    ranked[..keep].iter().map(|&(_, day)| day).collect()
}

/// How well clear-sky power explains measured power on clear days, each day with its own scale
/// (on a clear day the clear-sky index should be flat; seasons, clipping and temperature change
/// only its level): the square root of Σ_days (Σ p·c)² / Σ c² over Σ p², 1 for a perfect match.
/// `points` are (day, power, clear sky), ordered by day.
fn daily_fit(points: impl Iterator<Item = (i64, f64, f64)>) -> f64 {
    let (mut explained, mut total) = (0.0, 0.0);
    let (mut day, mut pc, mut cc) = (None, 0.0, 0.0);
    for (d, p, c) in points {
        if day != Some(d) {
            if cc > 0.0 {
                explained += pc * pc / cc;
            }
            (day, pc, cc) = (Some(d), 0.0, 0.0);
        }
        pc += p * c;
        cc += c * c;
        total += p * p;
    }
    if cc > 0.0 {
        explained += pc * pc / cc;
    }
    if total > 0.0 {
        (explained / total).sqrt()
    } else {
        f64::NAN
    }
}

fn local_day(series: &PvSeries, t: i64) -> i64 {
    UnixTime(t).local_solar_day(series.meta.longitude_deg)
}

/// Shifts tried, minutes: −60 to +60 in steps of 2.5.
const SHIFTS: std::ops::RangeInclusive<i32> = -24..=24;
const SHIFT_STEP_MIN: f64 = 2.5;

/// Fits the label offset of `series` on its training block: the shift (−60 … +60 min, 2.5-min
/// steps) at which plane-of-array clear-sky irradiance at the shifted interval midpoint best
/// explains observed power, each day with its own scale, over the observed steps with the sun above −15°
/// of the block's clearest days (thinned evenly to at most 20,000, for speed). `None` without enough observed daylight.
pub fn label_offset(series: &PvSeries, config: &ExampleConfig) -> Option<LabelOffset> {
    let b = block(series, Split::Train, &config.split, config.example_steps())?;
    let clear = clear_days(series, config);
    let mut points: Vec<(f64, UnixTime)> = Vec::new();
    let mut t = b.first.0;
    while t <= b.last.0 {
        if let Some(p) = series.normalised_at(UnixTime(t)) {
            // Night far from any shift's reach adds nothing but agreement on zero.
            if clear.contains(&local_day(series, t))
                && sun_elevation_deg(series, UnixTime(t)) > -15.0
            {
                points.push((p as f64, UnixTime(t - series.step_s / 2)));
            }
        }
        t += series.step_s;
    }
    if points.len() < 50 {
        return None;
    }
    // At most ~20,000 points: plenty for a correlation, and fast on years of data.
    let stride = points.len().div_ceil(20_000);
    let points: Vec<(f64, UnixTime)> = points.into_iter().step_by(stride).collect();
    let correlation_at = |shift_min: f64| {
        let shift_s = (shift_min * 60.0) as i64;
        daily_fit(points.iter().map(|&(p, mid)| {
            let c = solar_of(series, UnixTime(mid.0 + shift_s), &config.clear_sky).clear_sky_poa;
            (local_day(series, mid.0), p, c / 1000.0)
        }))
    };
    let (minutes, correlation) = SHIFTS
        .map(|k| k as f64 * SHIFT_STEP_MIN)
        .map(|s| (s, correlation_at(s)))
        .fold((0.0, f64::NEG_INFINITY), |best, (s, r)| {
            if r > best.1 { (s, r) } else { best }
        });
    Some(LabelOffset {
        minutes,
        correlation,
        correlation_unshifted: correlation_at(0.0),
    })
}
