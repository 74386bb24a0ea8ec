//! Input scalers come from the systems' training blocks only: values after the training block
//! (here an observation file that runs on well past the generation data, as the bundled PSM3
//! files do) must not shape them.

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array};
use common::*;
use pv_data::{Dataset, ExampleConfig, LoadConfig};

#[test]
fn fit_scalers_uses_the_training_blocks_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let step = 900;
    // Ten days of generation; the training block is the first 70 % of its 960 steps: 672 steps.
    let n = 960;
    let t = grid(JUNE_2020, step, n);
    let wh: Vec<Option<f64>> = (0..n).map(|i| Some((i % 7) as f64)).collect();
    write_parquet(
        &d.join("generation.parquet"),
        &generation(&vec![5; n], &t, &wh),
    );
    write_metadata(d, &[5]);
    // Observations every step for twenty days: 100 and 200 alternating inside the training
    // block, 1000 and 3000 after it.
    let obs_t = grid(JUNE_2020, step, 2 * n);
    let ghi: Vec<f64> = (0..2 * n)
        .map(|i| match (i < 672, i % 2 == 0) {
            (true, true) => 100.0,
            (true, false) => 200.0,
            (false, true) => 1000.0,
            (false, false) => 3000.0,
        })
        .collect();
    write_parquet(
        &d.join("observations.parquet"),
        &table(vec![
            (
                "ss_id",
                Arc::new(Int64Array::from(vec![5i64; 2 * n])) as ArrayRef,
            ),
            ("time", times(&obs_t, Some("UTC"))),
            ("ghi", Arc::new(Float64Array::from(ghi))),
        ]),
    );
    let mut dataset = Dataset::load_folder(d, LoadConfig::default()).expect("load");
    // At load time the scaler saw the first 70 % of the observations' own twenty days, which
    // reaches far past the training block.
    let loaded = dataset.scalers().observations.expect("observations").scaler;
    assert!(loaded.mean[0] > 200.0, "{loaded:?}");

    dataset.fit_scalers(&ExampleConfig::default());
    let fitted = dataset.scalers().observations.expect("observations").scaler;
    // Interval ends of the training block: grid steps 0..672, i.e. the first 672 observations
    // (336 of 100 and 336 of 200): mean 150, standard deviation 50.
    assert_eq!(fitted.mean, vec![150.0]);
    assert_eq!(fitted.std, vec![50.0]);
}
