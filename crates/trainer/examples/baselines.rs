//! The baselines alone on the bundled data (or a folder given as the first argument), per
//! system and pooled: persistence, smart persistence, the clear-sky ratio and the
//! gradient-boosted trees, each fitted on the training split, scored on the validation split
//! (the split every modelling choice is made on). Then what the trees lean on: each feature's
//! share of their total split gain, the 25 largest.
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
    let (scale, gbt) = trainer::evaluate::fit_baselines(&dataset, &config)?;
    let report = trainer::evaluate::score_baselines(
        &dataset,
        &config,
        Split::Validation,
        &scale,
        gbt.as_ref(),
    )?;
    println!("validation split of {dir}");
    println!(
        "{}",
        trainer::report::table(&report, config.data.step_minutes)
    );
    if let Some(gbt) = gbt {
        println!(
            "gbt: depth {}, {} rounds, {} training rows; share of total split gain:",
            gbt.max_depth, gbt.rounds, gbt.train_rows
        );
        for (name, share) in gbt.importance().iter().take(25) {
            println!("  {:>6.2} %  {name}", share * 100.0);
        }
    }
    Ok(())
}
