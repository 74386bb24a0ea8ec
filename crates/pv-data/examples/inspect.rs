//! Loads a data folder, prints its summary, and builds one batch per split.
//!
//! `cargo run --release -p pv-data --example inspect -- data`

use std::time::Instant;

use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_owned());
    let started = Instant::now();
    let dataset = Dataset::load(&DataPaths::in_folder(dir.as_ref())?, LoadConfig::default())?;
    let load_s = started.elapsed().as_secs_f64();
    print!("{}", dataset.summary());
    println!("load time: {load_s:.3} s");
    let config = ExampleConfig::default();
    for split in Split::ALL {
        let keys = example_keys(&dataset, &config, split)?;
        let mut per_system = std::collections::BTreeMap::new();
        for k in &keys {
            *per_system.entry(dataset.systems[k.system].meta.ss_id).or_insert(0usize) += 1;
        }
        println!("{split}: {} examples {per_system:?}", keys.len());
        if let Some(chunk) = keys.chunks(64).next() {
            let started = Instant::now();
            let batch = build_batch(&dataset, &config, chunk, split);
            println!(
                "  batch of {}: pv {:?} satellite {:?} observations {:?} nwp {:?} queries {:?} in {:.1} ms",
                batch.len(),
                batch.pv.values.shape,
                batch.satellite.values.shape,
                batch.observations.values.shape,
                batch.nwp.values.shape,
                batch.queries.shape,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
