//! Properties of the time split, for any series length, fractions and example length.

use proptest::prelude::*;
use pv_data::split::{Split, SplitBy, SplitConfig, block, split_of};
use pv_data::{PvSeries, SystemMetadata, UnixTime};

fn series(n: usize) -> PvSeries {
    PvSeries {
        meta: SystemMetadata {
            ss_id: 1,
            latitude_deg: 0.0,
            longitude_deg: 0.0,
            orientation_deg: 180.0,
            tilt_deg: 0.0,
            capacity_kwp: 1.0,
            time_label: Default::default(),
            altitude_m: None,
        },
        start: UnixTime(1_000_000 * 900),
        step_s: 900,
        native_interval_s: 900,
        power_kw: vec![0.5; n],
    }
}

proptest! {
    #[test]
    fn blocks_are_ordered_disjoint_and_separated_by_the_gap(
        n in 1usize..5000, train in 0.05f64..0.9, val_share in 0.0f64..1.0, example_steps in 1usize..64,
        observed_cut in any::<bool>(), gap in (0usize..5000, 0usize..5000),
    ) {
        let validation = (1.0 - train) * val_share * 0.99;
        let by = if observed_cut { SplitBy::Observed } else { SplitBy::Calendar };
        let config = SplitConfig { train_fraction: train, validation_fraction: validation, gap_steps: None, by };
        prop_assume!(config.validate().is_ok());
        let mut s = series(n);
        // A long gap anywhere in the record.
        let (a, b) = (gap.0.min(gap.1).min(n), gap.0.max(gap.1).min(n));
        for p in &mut s.power_kw[a..b] {
            *p = f32::NAN;
        }
        let blocks: Vec<_> = Split::ALL.iter().filter_map(|&sp| block(&s, sp, &config, example_steps)).collect();
        for pair in blocks.windows(2) {
            // Later blocks start at least one example length after the earlier ones end.
            prop_assert!(pair[1].first.0 - pair[0].last.0 > example_steps as i64 * 900);
        }
        for b in &blocks {
            prop_assert!(b.first <= b.last && s.start <= b.first && b.last <= s.end());
        }
        // Every grid time belongs to at most one block, and split_of agrees with block.
        for i in (0..n).step_by(1 + n / 97) {
            let t = s.time(i);
            let owners = Split::ALL.iter().filter(|&&sp| block(&s, sp, &config, example_steps).is_some_and(|b| b.first <= t && t <= b.last)).count();
            prop_assert!(owners <= 1);
            prop_assert_eq!(owners == 1, split_of(&s, t, &config, example_steps).is_some());
        }
    }
}

proptest! {
    /// Cut by observed steps, each block holds its fraction of the observed steps wherever a gap
    /// falls (up to the steps the gaps between blocks take and the rounding).
    #[test]
    fn cut_by_observed_steps_each_block_holds_its_share(
        n in 500usize..5000, gap in (0.0f64..1.0, 0.0f64..0.6),
    ) {
        let mut s = series(n);
        let start = (gap.0 * n as f64) as usize;
        let end = (start + (gap.1 * n as f64) as usize).min(n);
        for p in &mut s.power_kw[start..end] {
            *p = f32::NAN;
        }
        let observed = s.power_kw.iter().filter(|p| !p.is_nan()).count();
        prop_assume!(observed >= 300);
        let config = SplitConfig { by: SplitBy::Observed, ..SplitConfig::default() };
        let example_steps = 4;
        let share = |split: Split| {
            block(&s, split, &config, example_steps).map_or(0, |b| {
                let (i, j) = (((b.first.0 - s.start.0) / 900) as usize, ((b.last.0 - s.start.0) / 900) as usize);
                s.power_kw[i..=j].iter().filter(|p| !p.is_nan()).count()
            }) as f64 / observed as f64
        };
        // Each gap between blocks takes at most 4 observed steps: 1 % of 300 or more.
        let slack = 2.0 * example_steps as f64 / observed as f64 + 0.01;
        prop_assert!((share(Split::Train) - 0.70).abs() <= slack, "train {}", share(Split::Train));
        prop_assert!((share(Split::Validation) - 0.15).abs() <= slack, "validation {}", share(Split::Validation));
        prop_assert!((share(Split::Test) - 0.15).abs() <= slack, "test {}", share(Split::Test));
    }
}

/// A record whose last third is a gap, cut by calendar, leaves the test block empty of data; cut by
/// observed steps, the test block holds the last 15 % of what was observed.
#[test]
fn a_gap_empties_a_calendar_block_but_not_an_observed_one() {
    let n = 3000;
    let mut s = series(n);
    for p in &mut s.power_kw[2000..] {
        *p = f32::NAN;
    }
    let observed_in = |config: &SplitConfig| {
        let b = block(&s, Split::Test, config, 8).expect("a test block");
        let (i, j) = (
            ((b.first.0 - s.start.0) / 900) as usize,
            ((b.last.0 - s.start.0) / 900) as usize,
        );
        s.power_kw[i..=j].iter().filter(|p| !p.is_nan()).count()
    };
    assert_eq!(observed_in(&SplitConfig::default()), 0);
    let by_observed = SplitConfig {
        by: SplitBy::Observed,
        ..SplitConfig::default()
    };
    // The last 15 % of 2,000 observed steps, less the gap of 8 steps before the block.
    assert_eq!(observed_in(&by_observed), 300 - 8);
    let b = block(&s, Split::Test, &by_observed, 8).expect("block");
    assert_eq!(b.first, s.time(1700 + 8));
    // The train block ends before the 1,400th observed step.
    let t = block(&s, Split::Train, &by_observed, 8).expect("train");
    assert_eq!(t.last, s.time(1399));
}
