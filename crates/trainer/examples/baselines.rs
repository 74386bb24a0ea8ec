//! Baseline skill on the bundled data: fits the clear-sky scale on the training split, then prints
//! daylight test nMAE per system for persistence, smart persistence and the clear-sky ratio.
//!
//! `cargo run --release -p trainer --example baselines`

use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};
use trainer::baselines::{BASELINES, ClearSkyScale, forecasts};
use trainer::metrics::Metrics;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_owned());
    let dataset = Dataset::load(&DataPaths::in_folder(dir.as_ref())?, LoadConfig::default())?;
    let config = ExampleConfig::default();
    let train = build_batch(
        &dataset,
        &config,
        &example_keys(&dataset, &config, Split::Train)?,
        Split::Train,
    );
    let scale = ClearSkyScale::fit([&train]);
    println!("clear-sky scale (fitted on train): {:?}", scale.by_system);
    let test_keys = example_keys(&dataset, &config, Split::Test)?;
    for (system, series) in dataset.systems.iter().enumerate() {
        let keys: Vec<_> = test_keys
            .iter()
            .copied()
            .filter(|k| k.system == system)
            .collect();
        if keys.is_empty() {
            continue;
        }
        let batch = build_batch(&dataset, &config, &keys, Split::Test);
        let mut metrics = Metrics::new(config.lead_times);
        for (name, forecast) in BASELINES.iter().zip(forecasts(&batch, &scale)) {
            metrics.add_point(name, &batch, &forecast);
        }
        let report = metrics.report("smart_persistence");
        let line: Vec<String> = BASELINES
            .iter()
            .map(|n| format!("{n} {:.3}", report[*n].nmae))
            .collect();
        println!(
            "ss_id {:>5}: {} test examples, daylight nMAE: {}",
            series.meta.ss_id,
            keys.len(),
            line.join(", ")
        );
    }
    Ok(())
}
