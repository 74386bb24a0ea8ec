//! Properties of the time split, for any series length, fractions and example length.

use proptest::prelude::*;
use pv_data::split::{Split, SplitConfig, block, split_of};
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
    ) {
        let validation = (1.0 - train) * val_share * 0.99;
        let config = SplitConfig { train_fraction: train, validation_fraction: validation, gap_steps: None };
        prop_assume!(config.validate().is_ok());
        let s = series(n);
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
