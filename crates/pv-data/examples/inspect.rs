//! Loads a data folder, prints its summary, and builds one batch per split.
//!
//! `cargo run --release -p pv-data --example inspect -- data`
//! `cargo run --release -p pv-data --example inspect -- data --markdown` prints the tables that
//! `docs/DATA.md` embeds (a test keeps the two identical).

use std::time::Instant;

use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("data", String::as_str);
    let started = Instant::now();
    let dataset = Dataset::load(&DataPaths::in_folder(dir.as_ref())?, LoadConfig::default())?;
    let load_s = started.elapsed().as_secs_f64();
    if args.iter().any(|a| a == "--markdown") {
        print!("{}", dataset.summary().to_markdown());
        return Ok(());
    }
    print!("{}", dataset.summary());
    println!("load time: {load_s:.3} s");
    let config = ExampleConfig::default();
    for split in Split::ALL {
        let keys = example_keys(&dataset, &config, split)?;
        let mut per_system = std::collections::BTreeMap::new();
        for k in &keys {
            *per_system
                .entry(dataset.systems[k.system].meta.ss_id)
                .or_insert(0usize) += 1;
        }
        println!("{split}: {} examples {per_system:?}", keys.len());
        let started = Instant::now();
        let batch = build_batch(&dataset, &config, &keys, split);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "  all {} built in {:.3} s ({:.0} examples/s): {} queries {:?}",
            batch.len(),
            seconds,
            batch.len() as f64 / seconds,
            batch
                .tokens
                .iter()
                .map(|(m, t)| format!("{} {:?}", m.name(), t.values.shape))
                .collect::<Vec<_>>()
                .join(" "),
            batch.queries.shape,
        );
    }
    Ok(())
}
