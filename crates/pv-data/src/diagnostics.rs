//! Checks of a dataset against physics and the split rule, for `data inspect` and the trainer:
//! how much observed daylight each system's train / validation / test block holds, and which
//! time shift best aligns its measured power with its clear-sky power (a label convention or
//! clock error shows up as a shift of tens of minutes).

use crate::example::ExampleConfig;
use crate::series::PvSeries;
use crate::solar::solar_state;
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
    /// Correlation of power with clear-sky power at the best shift.
    pub correlation: f64,
    /// Correlation without a shift.
    pub correlation_unshifted: f64,
}

impl LabelOffset {
    /// Shifts of 10 minutes or more are flagged (every sun feature would be that far off) when
    /// the fit is good enough to be evidence (correlation at least 0.6: sparse or heavily
    /// clipped data, such as the UK fixtures' with dim values dropped, fit poorly at any shift).
    pub fn is_suspect(&self) -> bool {
        self.minutes.abs() >= 10.0 && self.correlation >= 0.6
    }
}

/// Shifts tried, minutes: −60 to +60 in steps of 2.5.
const SHIFTS: std::ops::RangeInclusive<i32> = -24..=24;
const SHIFT_STEP_MIN: f64 = 2.5;

/// Fits the label offset of `series` on its training block: the shift (−60 … +60 min, 2.5-min
/// steps) maximising the correlation between observed power and plane-of-array clear-sky
/// irradiance at the shifted interval midpoint, over observed steps with the sun above −15°
/// (thinned evenly to at most 20,000, for speed). Clouds lower the correlation at every shift alike, so the
/// best shift is still the one that lines up dawn, noon and dusk. `None` without enough observed daylight.
pub fn label_offset(series: &PvSeries, config: &ExampleConfig) -> Option<LabelOffset> {
    let b = block(series, Split::Train, &config.split, config.example_steps())?;
    let m = &series.meta;
    let mut points: Vec<(f64, UnixTime)> = Vec::new();
    let mut t = b.first.0;
    while t <= b.last.0 {
        if let Some(p) = series.normalised_at(UnixTime(t)) {
            // Night far from any shift's reach adds nothing but agreement on zero.
            if sun_elevation_deg(series, UnixTime(t)) > -15.0 {
                points.push((p as f64, UnixTime(t - series.step_s / 2)));
            }
        }
        t += series.step_s;
    }
    if points.len() < 100 {
        return None;
    }
    // At most ~20,000 points: plenty for a correlation, and fast on years of data.
    let stride = points.len().div_ceil(20_000);
    let points: Vec<(f64, UnixTime)> = points.into_iter().step_by(stride).collect();
    let correlation_at = |shift_min: f64| {
        let shift_s = (shift_min * 60.0) as i64;
        let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(p, mid) in &points {
            let c = solar_state(
                UnixTime(mid.0 + shift_s),
                m.latitude_deg,
                m.longitude_deg,
                m.tilt_deg,
                m.orientation_deg,
                &config.clear_sky,
            )
            .clear_sky_poa;
            sx += p;
            sy += c;
            sxx += p * p;
            syy += c * c;
            sxy += p * c;
        }
        let n = points.len() as f64;
        let cov = sxy / n - sx / n * sy / n;
        let var = (sxx / n - (sx / n).powi(2)) * (syy / n - (sy / n).powi(2));
        if var > 0.0 {
            cov / var.sqrt()
        } else {
            f64::NAN
        }
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
