//! The dataset checks `data inspect` prints: block coverage and the label offset.

use pv_data::diagnostics::{block_coverage, label_offset};
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
    let n = 40 * 96;
    let power_kw = (0..n as i64)
        .map(|i| {
            let mid = START + i * STEP - STEP / 2 + shift_min * 60;
            let s = solar_state(
                UnixTime(mid),
                m.latitude_deg,
                m.longitude_deg,
                m.tilt_deg,
                m.orientation_deg,
                &ClearSkyConfig::default(),
            );
            (s.clear_sky_poa / 1000.0) as f32
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
