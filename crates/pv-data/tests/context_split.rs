//! Context systems come from the same split as the example: a training example never reads
//! another system's validation or test values, even as history.

mod common;

use common::*;
use pv_data::{Dataset, ExampleConfig, LoadConfig, Split, build_example, example_keys};

const DAY: i64 = 86_400;
const STEP: i64 = 900;

#[test]
fn a_context_system_outside_its_training_block_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // System 1 runs from day 10 to day 20 (its training block: days 10–17); system 2, at the same
    // place, from day 0 to day 20 (training: days 0–14, validation about 14–17, test 17–20).
    let (mut ss, mut t, mut wh) = (Vec::new(), Vec::new(), Vec::new());
    for (id, first_day) in [(1i64, 10i64), (2, 0)] {
        let n = ((20 - first_day) * DAY / STEP) as usize;
        for s in grid(JUNE_2020 + first_day * DAY + STEP, STEP, n) {
            ss.push(id);
            t.push(s);
            wh.push(Some(100.0));
        }
    }
    write_parquet(&d.join("generation.parquet"), &generation(&ss, &t, &wh));
    write_metadata(d, &[1, 2]);
    let dataset = Dataset::load_folder(d, LoadConfig::default()).expect("load");
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
