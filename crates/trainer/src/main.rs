//! `power-perceiver`: train PV forecasters and inspect data from the command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand};
use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, example_keys};
use trainer::config::RunConfig;

#[derive(Parser)]
#[command(
    name = "power-perceiver",
    version,
    about = "Solar PV power forecasting with a HiP encoder and a MetNet decoder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model, then report test-split skill against baselines.
    Train {
        /// Run configuration (TOML); every key is optional, unknown keys are errors.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A data folder in the uk_pv layout (see docs/DATA.md).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Output folder; must not hold a previous run. Default: runs/<UTC time>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override train.steps.
        #[arg(long)]
        steps: Option<usize>,
        /// Print the full configuration (defaults included) as TOML and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Data tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Systems, ranges, missing fractions, optional inputs, examples per split.
    Inspect {
        /// The data folder.
        dir: PathBuf,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<RunConfig> {
    let Some(path) = path else {
        return Ok(RunConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: RunConfig =
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("in {}", path.display()))?;
    Ok(config)
}

fn load_data(dir: &std::path::Path, config: LoadConfig) -> Result<Dataset> {
    let paths =
        DataPaths::in_folder(dir).with_context(|| format!("finding data in {}", dir.display()))?;
    Dataset::load(&paths, config).with_context(|| format!("loading {}", dir.display()))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train {
            config,
            data,
            out,
            steps,
            print_config,
        } => {
            let mut config = load_config(config.as_ref())?;
            if let Some(steps) = steps {
                config.train.steps = steps;
            }
            if print_config {
                print!("{}", toml::to_string(&config)?);
                return Ok(());
            }
            let dataset = load_data(&data, config.data)?;
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(chrono_like_now()));
            eprintln!(
                "training on {} ({} systems), writing {}",
                data.display(),
                dataset.systems.len(),
                out.display()
            );
            let summary = trainer::run::train(&dataset, &config, &out, &Device::Cpu)?;
            println!(
                "{}",
                trainer::run::table(&summary.test, config.data.step_minutes)
            );
            println!(
                "{} steps in {:.0} s; outputs in {} (config.toml, metrics.jsonl, model.safetensors, test_metrics.json)",
                summary.steps,
                summary.seconds,
                summary.out_dir.display()
            );
        }
        Command::Data {
            command: DataCommand::Inspect { dir },
        } => {
            let dataset = load_data(&dir, LoadConfig::default())?;
            print!("{}", dataset.summary());
            let examples = ExampleConfig::default();
            for split in Split::ALL {
                let n = example_keys(&dataset, &examples, split).map(|k| k.len());
                match n {
                    Ok(n) => println!("{split}: {n} examples (default example config)"),
                    Err(e) => println!("{split}: {e}"),
                }
            }
        }
    }
    Ok(())
}

/// UTC time as `YYYYMMDD-HHMMSS`, for default run names.
fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = pv_data::UnixTime(secs).to_string(); // 2026-11-29T10:00:00Z
    t.replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_owned()
}
