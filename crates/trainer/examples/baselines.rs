//! The baselines alone on the bundled data (or a folder given as the first argument), per
//! system and pooled: persistence, smart persistence, the clear-sky ratio and the
//! gradient-boosted trees, each fitted on the training split, scored on the validation split
//! (the split every modelling choice is made on).
//!
//! `cargo run --release -p trainer --example baselines [DIR]`

use pv_data::{DataPaths, Dataset, Split};
use trainer::config::RunConfig;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "data".to_owned());
    let config = RunConfig::default();
    let mut dataset = Dataset::load(&DataPaths::in_folder(dir.as_ref())?, config.data)?;
    // Input scalers from the training blocks, as a training run fits them.
    dataset.fit_scalers(&config.examples);
    let report = trainer::evaluate::evaluate_baselines(&dataset, &config, Split::Validation)?;
    println!("validation split of {dir}");
    println!(
        "{}",
        trainer::report::table(&report, config.data.step_minutes)
    );
    Ok(())
}
