//! The dataset checks `data inspect` prints: block coverage and the label offset.

use pv_data::diagnostics::{MAX_TILT_DEG, block_coverage, geometry_fit, label_offset};
use pv_data::solar::{ClearSkyConfig, solar_state};
use pv_data::{ExampleConfig, PvSeries, Split, SystemMetadata, UnixTime};

const STEP: i64 = 900;
/// 2020-06-01T00:00:00Z.
const START: i64 = 1_590_969_600;

fn meta() -> SystemMetadata {
    SystemMetadata {
        ss_id: 1,
        latitude_deg: 39.74,
        longitude_deg: -105.18,
        orientation_deg: 180.0,
        tilt_deg: 30.0,
        capacity_kwp: 1.0,
        time_label: Default::default(),
        altitude_m: None,
    }
}

/// Forty days whose value at each label is the clear-sky power `shift_min` after the interval's
/// midpoint (so labels read as interval ends are `shift_min` early).
fn series(shift_min: i64) -> PvSeries {
    let m = meta();
    panel_series(shift_min, m.tilt_deg, m.orientation_deg, f32::INFINITY)
}

/// [`series`] for a panel of `tilt_deg` facing `orientation_deg` (the metadata still say
/// [`meta`]'s), its power clipped at `limit_kw`.
fn panel_series(shift_min: i64, tilt_deg: f64, orientation_deg: f64, limit_kw: f32) -> PvSeries {
    let m = meta();
    let n = 40 * 96;
    let power_kw = (0..n as i64)
        .map(|i| {
            let mid = START + i * STEP - STEP / 2 + shift_min * 60;
            let s = solar_state(
                UnixTime(mid),
                m.latitude_deg,
                m.longitude_deg,
                tilt_deg,
                orientation_deg,
                &ClearSkyConfig::default(),
            );
            ((s.clear_sky_poa / 1000.0) as f32).min(limit_kw)
        })
        .collect();
    PvSeries {
        meta: m,
        start: UnixTime(START),
        step_s: STEP,
        native_interval_s: STEP,
        power_kw,
    }
}

#[test]
fn the_label_offset_recovers_a_known_shift() {
    let config = ExampleConfig::default();
    for shift in [0, 15, -10] {
        let o = label_offset(&series(shift), &config).expect("offset");
        assert!(
            (o.minutes - shift as f64).abs() <= 2.5,
            "shift {shift}: found {o:?}"
        );
        assert!(o.correlation > 0.99, "{o:?}");
        assert_eq!(o.is_suspect(), shift.abs() >= 10, "{o:?}");
    }
}

/// A panel whose metadata say 30° facing south, truly 15° facing south-west (220°), with labels
/// 15 min early: the joint fit finds all three, clipped at 80 % of the peak or not, and says the
/// metadata are off; on a series that matches its metadata it finds them and says nothing.
#[test]
fn geometry_and_offset_are_fitted_together() {
    let config = ExampleConfig::default();
    for limit in [f32::INFINITY, 0.8] {
        let fit = geometry_fit(&panel_series(15, 15.0, 220.0, limit), &config).expect("fit");
        assert_eq!(
            (fit.tilt_deg, fit.orientation_deg, fit.minutes),
            (15.0, 220.0, 15.0),
            "clipped at {limit}: {fit:?}"
        );
        assert!(fit.fit > 0.999 && fit.fit > fit.fit_at_metadata, "{fit:?}");
        // Noise-free clear days: every resample lands on the same values.
        assert_eq!(fit.stability, 1.0, "{fit:?}");
        assert!(
            fit.is_identified() && fit.disagrees_with(30.0, 180.0),
            "{fit:?}"
        );
    }
    let fit = geometry_fit(&series(0), &config).expect("fit");
    assert_eq!(
        (fit.tilt_deg, fit.orientation_deg, fit.minutes),
        (30.0, 180.0, 0.0)
    );
    assert!(!fit.disagrees_with(30.0, 180.0), "{fit:?}");
    // A fit at the steepest tilt searched is not evidence.
    let steep = geometry_fit(&panel_series(0, 85.0, 180.0, f32::INFINITY), &config).expect("fit");
    assert_eq!(steep.tilt_deg, MAX_TILT_DEG, "{steep:?}");
    assert!(steep.at_edge && !steep.is_identified(), "{steep:?}");
    // Each day tilted its own way (shade in the morning one day, in the afternoon the next:
    // power scaled by 1 + a·(hours from noon)/6, a drawn per day in [−0.4, 0.4]). The flat
    // landscape lets the resamples wander, and a fit that is no longer firm is not evidence.
    let mut cloudy = panel_series(15, 15.0, 220.0, f32::INFINITY);
    let mut x = 1u64;
    let mut slope = 0.0f32;
    for (i, v) in cloudy.power_kw.iter_mut().enumerate() {
        if i % 96 == 0 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            slope = 0.8 * ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.4;
        }
        // Solar noon near 19:00 UTC at −105°.
        let hours = (i % 96) as f32 / 4.0 - 19.0;
        *v *= (1.0 + slope * hours / 6.0).max(0.0);
    }
    let loose = geometry_fit(&cloudy, &config).expect("fit");
    assert!(loose.stability < 0.8 && !loose.is_identified(), "{loose:?}");
    assert!(!steep.disagrees_with(30.0, 180.0), "{steep:?}");
}

#[test]
fn a_test_block_inside_a_gap_is_reported_as_starved() {
    let config = ExampleConfig::default();
    let mut s = series(0);
    let ok = block_coverage(&s, &config);
    assert!(ok.iter().all(|c| !c.is_starved()), "{ok:?}");
    // Lose the last 20 % of the record: the whole test block (the last 15 %, after its gap).
    let n = s.power_kw.len();
    for v in &mut s.power_kw[n * 8 / 10..] {
        *v = f32::NAN;
    }
    let gap = block_coverage(&s, &config);
    let test = gap.iter().find(|c| c.split == Split::Test).expect("test");
    assert_eq!(test.observed_daylight_steps, 0);
    assert!(test.daylight_steps > 100 && test.is_starved(), "{test:?}");
    let train = gap.iter().find(|c| c.split == Split::Train).expect("train");
    assert!(!train.is_starved());
    // Cut by observed steps, every block holds data again.
    let by_observed = ExampleConfig {
        split: pv_data::SplitConfig {
            by: pv_data::SplitBy::Observed,
            ..pv_data::SplitConfig::default()
        },
        ..ExampleConfig::default()
    };
    let cut = block_coverage(&s, &by_observed);
    assert!(cut.iter().all(|c| !c.is_starved()), "{cut:?}");
}
