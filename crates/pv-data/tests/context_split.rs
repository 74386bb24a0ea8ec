//! Context systems come from the same split as the example: a training example never reads
//! another system's validation or test values, even as history. A forecast has no split: it
//! reads every neighbour's history up to t0, and nothing after.

mod common;

use common::*;
use pv_data::{
    Dataset, ExampleConfig, ExampleKey, LoadConfig, Reach, Split, build_example, example_keys,
};

const DAY: i64 = 86_400;
const STEP: i64 = 900;

/// System 1 from day `first_day_1` to day 20, system 2 at the same place from day 0 to day 20,
/// both producing `wh` Wh per interval.
fn two_systems(dir: &std::path::Path, first_day_1: i64) -> Dataset {
    let (mut ss, mut t, mut wh) = (Vec::new(), Vec::new(), Vec::new());
    for (id, first_day) in [(1i64, first_day_1), (2, 0)] {
        let n = ((20 - first_day) * DAY / STEP) as usize;
        for s in grid(JUNE_2020 + first_day * DAY + STEP, STEP, n) {
            ss.push(id);
            t.push(s);
            wh.push(Some(100.0));
        }
    }
    write_parquet(&dir.join("generation.parquet"), &generation(&ss, &t, &wh));
    write_metadata(dir, &[1, 2]);
    Dataset::load_folder(dir, LoadConfig::default()).expect("load")
}

#[test]
fn a_context_system_outside_its_training_block_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    // System 1 runs from day 10 to day 20 (its training block: days 10–17); system 2, at the same
    // place, from day 0 to day 20 (training: days 0–14, validation about 14–17, test 17–20).
    let dataset = two_systems(dir.path(), 10);
    let config = ExampleConfig::default();
    let keys = example_keys(&dataset, &config, Split::Train).expect("keys");
    let context_at = |day: i64| {
        let key = keys
            .iter()
            .copied()
            .find(|k| {
                dataset.systems[k.system].meta.ss_id == 1
                    && k.t0.0 == JUNE_2020 + day * DAY + 12 * 3600
            })
            .expect("a training example of system 1 that day");
        build_example(&dataset, &config, key, Split::Train).context_ss_ids
    };
    // Day 12: system 2's history is in its own training block: it is context.
    assert_eq!(context_at(12), vec![2]);
    // Day 16: system 2's values are validation values: not context.
    assert_eq!(context_at(16), Vec::<i64>::new());
}

/// A forecast at any t0 reads every neighbour with history there, whichever block of a split it
/// would fall in (the test split's blocks, which forecasting once used, held system 2 back before
/// day 17), and no value after t0: changing every later value changes no input.
#[test]
fn a_forecast_reads_every_neighbours_history_and_nothing_after_t0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dataset = two_systems(dir.path(), 0);
    let config = ExampleConfig::default();
    let one = dataset
        .systems
        .iter()
        .position(|s| s.meta.ss_id == 1)
        .expect("system 1");
    for day in [5, 12, 18] {
        let key = ExampleKey {
            system: one,
            t0: pv_data::UnixTime(JUNE_2020 + day * DAY + 12 * 3600),
        };
        let forecast = build_example(&dataset, &config, key, Reach::Record);
        assert_eq!(forecast.context_ss_ids, vec![2], "day {day}");
        let test_split = build_example(&dataset, &config, key, Split::Test);
        let expected: Vec<i64> = if day >= 18 { vec![2] } else { vec![] };
        assert_eq!(test_split.context_ss_ids, expected, "day {day}");
    }
    let key = ExampleKey {
        system: one,
        t0: pv_data::UnixTime(JUNE_2020 + 12 * DAY + 12 * 3600),
    };
    let before = build_example(&dataset, &config, key, Reach::Record);
    for series in &mut dataset.systems {
        let from = series.index_of(key.t0).expect("on the grid") + 1;
        for v in &mut series.power_kw[from..] {
            *v = 0.01;
        }
    }
    let after = build_example(&dataset, &config, key, Reach::Record);
    assert_eq!(after.context_ss_ids, before.context_ss_ids);
    assert_eq!(
        after.tokens, before.tokens,
        "an input changed with values after t0"
    );
    assert_eq!(after.queries, before.queries);
    assert_ne!(
        after.targets, before.targets,
        "the targets are the later values"
    );
}
