//! `power-perceiver`: train PV forecasters, evaluate and forecast with them, inspect data.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::{Parser, Subcommand, ValueEnum};
use forecaster::SavedModel;
use pv_data::{
    DataPaths, Dataset, ExampleConfig, LoadConfig, Selection, Split, UnixTime, example_keys,
};
use trainer::config::RunConfig;
use trainer::run::{RunOptions, RunSummary};

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

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Validation,
    Test,
    /// Every split: for systems the model never trained on.
    All,
}

impl SplitArg {
    fn splits(self) -> Vec<Split> {
        match self {
            SplitArg::Train => vec![Split::Train],
            SplitArg::Validation => vec![Split::Validation],
            SplitArg::Test => vec![Split::Test],
            SplitArg::All => Split::ALL.to_vec(),
        }
    }

    fn name(self) -> String {
        match self {
            SplitArg::All => "all".into(),
            one => one.splits()[0].to_string(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train a model, then report test-split skill against baselines, with plots.
    Train {
        /// Run configuration (TOML); every key is optional, unknown keys are errors.
        #[arg(long, conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// A data folder in the uk_pv layout (see docs/DATA.md).
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Output folder; must not hold a run. Default: runs/<UTC time>.
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Override train.steps.
        #[arg(long, conflicts_with = "resume")]
        steps: Option<usize>,
        /// Override train.seed (initialisation and shuffling).
        #[arg(long, conflicts_with = "resume")]
        seed: Option<u64>,
        /// Continue the run in this folder from its last checkpoint (same --data).
        #[arg(long, value_name = "RUN")]
        resume: Option<PathBuf>,
        /// Stop after this many steps of this session, leaving a checkpoint to resume from.
        #[arg(long, value_name = "STEPS")]
        stop_after: Option<usize>,
        /// Where to compute.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
        /// Print the full configuration (defaults included) as TOML and exit.
        #[arg(long, conflicts_with = "resume")]
        print_config: bool,
    },
    /// Continue training a saved model on another data folder: a new run that starts from the
    /// model's weights, sees the data through its input scalers, and keeps its variant and
    /// settings (`train.init_from`).
    Finetune {
        /// A run folder or a model checkpoint (.safetensors).
        model: PathBuf,
        /// A data folder in the uk_pv layout.
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Output folder; must not hold a run. Default: runs/<UTC time>-finetune.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Steps of fine-tuning (default: the run's own train.steps).
        #[arg(long)]
        steps: Option<usize>,
        /// Override train.seed (shuffling and dropout draws).
        #[arg(long)]
        seed: Option<u64>,
        /// Where to compute.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Evaluate a saved model and the baselines on a data folder: table, metrics.json, plots.
    Evaluate {
        /// A run folder or a model checkpoint (.safetensors); several: an ensemble, whose
        /// forecast is the mean of their quantiles (runs of one configuration with other seeds).
        #[arg(required = true)]
        model: Vec<PathBuf>,
        /// A data folder in the uk_pv layout.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Which split of that folder.
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
        /// Output folder (must not hold an evaluation). Default: <run>/evaluation-<data>-<split>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to compute.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Forecast every system of a data folder at t0: quantiles (kW) per system and lead time.
    Forecast {
        /// A run folder or a model checkpoint (.safetensors); several: an ensemble, whose
        /// forecast is the mean of their quantiles.
        #[arg(required = true)]
        model: Vec<PathBuf>,
        /// A data folder in the uk_pv layout, with history up to t0.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Forecast time, on the data's grid: `2021-06-01T10:00:00Z` or `2021-06-01 10:00` (UTC),
        /// or `latest`: the end of the last observed interval of any system.
        #[arg(long)]
        t0: String,
        /// Output file: `.parquet` for Parquet, anything else for CSV. Default: forecast-<t0>.csv.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long)]
        overwrite: bool,
        /// Where to compute.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Summarise finished runs of one configuration with different seeds: per system and pooled,
    /// each forecaster's test nMAE and skill as mean ± standard deviation over the runs.
    Skill {
        /// Finished run folders (test_metrics.json), evaluation folders (metrics.json), or
        /// either file.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
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
        #[command(flatten)]
        source: Source,
    },
}

fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda if cfg!(feature = "cuda") => {
            Device::new_cuda(0).context("opening CUDA device 0")
        }
        DeviceArg::Cuda => bail!(
            "this binary was built without CUDA; rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit"
        ),
    }
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

/// Which file of a data folder, and which part of it, to load.
#[derive(clap::Args)]
struct Source {
    /// The generation file of the data folder, without its extension: `30min` for the uk_pv
    /// `30min.parquet`. Default: `generation`, else the finer of uk_pv's `5min` and `30min`.
    #[arg(long, value_name = "NAME")]
    generation: Option<String>,
    /// Only these systems: ss_ids separated by commas, or `@FILE` with one per line. Parquet
    /// row groups without them are not read.
    #[arg(long, value_name = "IDS")]
    systems: Option<String>,
    /// Only generation from this time on (UTC, `2021-06-01` or `2021-06-01 10:00`).
    #[arg(long)]
    from: Option<String>,
    /// Only generation up to this time (UTC).
    #[arg(long)]
    to: Option<String>,
}

impl Source {
    fn selection(&self) -> Result<Selection> {
        let time = |flag: &str, text: &Option<String>| -> Result<Option<UnixTime>> {
            text.as_deref()
                .map(|t| {
                    UnixTime::parse(t)
                        .or_else(|| UnixTime::parse(&format!("{t} 00:00")))
                        .with_context(|| {
                            format!(
                                "{flag} `{t}` is not a time like 2021-06-01 or 2021-06-01 10:00"
                            )
                        })
                })
                .transpose()
        };
        let systems = match self.systems.as_deref() {
            None => None,
            Some(list) => {
                let text = match list.strip_prefix('@') {
                    Some(file) => std::fs::read_to_string(file)
                        .with_context(|| format!("reading --systems {list}"))?,
                    None => list.to_owned(),
                };
                Some(
                    text.split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse::<i64>()
                                .with_context(|| format!("--systems: `{s}` is not an ss_id"))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        };
        Ok(Selection {
            systems,
            from: time("--from", &self.from)?,
            to: time("--to", &self.to)?,
        })
    }
}

fn find_data(dir: &Path, source: &Source) -> Result<DataPaths> {
    DataPaths::in_folder_with(dir, source.generation.as_deref())
        .with_context(|| format!("finding data in {}", dir.display()))
}

fn load_data(dir: &Path, source: &Source, config: LoadConfig) -> Result<Dataset> {
    load_found(dir, &find_data(dir, source)?, source, config)
}

/// Loads the files `find_data` found in `dir`, with `source`'s selection.
fn load_found(
    dir: &Path,
    paths: &DataPaths,
    source: &Source,
    config: LoadConfig,
) -> Result<Dataset> {
    Dataset::load_selected(paths, config, &source.selection()?)
        .with_context(|| format!("loading {}", dir.display()))
}

fn print_summary(summary: &RunSummary, step_minutes: i64) {
    match &summary.test {
        Some(test) => {
            println!("{}", trainer::report::table(test, step_minutes));
            println!(
                "{} steps; this session {:.0} s; outputs in {} (config.toml, metrics.jsonl, model.safetensors, test_metrics.json, loss.png, nmae_by_lead.png, skill.png, forecast_fans.png)",
                summary.steps,
                summary.seconds,
                summary.out_dir.display()
            );
        }
        None => println!(
            "stopped after step {} ({:.0} s); continue with `power-perceiver train --resume {}`",
            summary.steps,
            summary.seconds,
            summary.out_dir.display()
        ),
    }
}

fn main() -> Result<()> {
    // SAFETY: first statement of `main`: no other thread exists yet.
    unsafe { trainer::configure_process() };
    let progress = std::io::stderr().is_terminal();
    match Cli::parse().command {
        Command::Train {
            config,
            data,
            source,
            out,
            steps,
            seed,
            resume,
            stop_after,
            device: device_arg,
            print_config,
        } => {
            let options = RunOptions {
                stop_after,
                progress,
            };
            if let Some(run) = resume {
                let stored = trainer::run::StoredRun::open(&run)?;
                let config = stored.config.clone();
                if let Some(summary) = stored.finished() {
                    eprintln!(
                        "{} already finished; nothing to resume. Its test results:",
                        run.display()
                    );
                    print_summary(&summary, config.data.step_minutes);
                    return Ok(());
                }
                let device = device(device_arg)?;
                let dataset = load_data(&data, &source, config.data)?;
                eprintln!("resuming {} on {}", run.display(), data.display());
                let summary = trainer::run::resume_stored(&dataset, stored, &device, options)?;
                print_summary(&summary, config.data.step_minutes);
                return Ok(());
            }
            let mut config = load_config(config.as_ref())?;
            if let Some(steps) = steps {
                config.train.steps = steps;
            }
            if let Some(seed) = seed {
                config.train.seed = seed;
            }
            if print_config {
                print!("{}", toml::to_string(&config)?);
                return Ok(());
            }
            let paths = find_data(&data, &source)?;
            if let Some(minutes) = paths.named_step_minutes()
                && minutes > config.data.step_minutes
            {
                eprintln!(
                    "{} holds {minutes}-minute values: the grid step is {minutes} minutes (data.step_minutes was {})",
                    paths.generation.display(),
                    config.data.step_minutes
                );
                config.data.step_minutes = minutes;
            }
            let device = device(device_arg)?;
            let dataset = load_found(&data, &paths, &source, config.data)?;
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(utc_now_name()));
            warn_starved_blocks(&dataset, &config.examples);
            eprintln!(
                "training on {} ({} systems), writing {}",
                data.display(),
                dataset.systems.len(),
                out.display()
            );
            let summary = trainer::run::train(&dataset, &config, &out, &device, options)?;
            print_summary(&summary, config.data.step_minutes);
        }
        Command::Finetune {
            model,
            data,
            source,
            out,
            steps,
            seed,
            device: device_arg,
        } => {
            let device = device(device_arg)?;
            let saved = SavedModel::read(&model, &device)?;
            let mut config = trainer::evaluate::run_config(&saved)?;
            config.train.init_from = Some(saved.path().to_owned());
            if let Some(steps) = steps {
                config.train.steps = steps;
            }
            if let Some(seed) = seed {
                config.train.seed = seed;
            }
            let dataset = load_data(&data, &source, config.data)?;
            let out = out.unwrap_or_else(|| {
                PathBuf::from("runs").join(format!("{}-finetune", utc_now_name()))
            });
            eprintln!(
                "fine-tuning {} on {} ({} systems), writing {}",
                saved.path().display(),
                data.display(),
                dataset.systems.len(),
                out.display()
            );
            let summary = trainer::run::train(
                &dataset,
                &config,
                &out,
                &device,
                RunOptions {
                    stop_after: None,
                    progress,
                },
            )?;
            print_summary(&summary, config.data.step_minutes);
        }
        Command::Evaluate {
            model,
            data,
            source,
            split,
            out,
            device: device_arg,
        } => {
            let device = device(device_arg)?;
            let saved = SavedModel::read_ensemble(&model, &device)?;
            let (splits, split_name) = (split.splits(), split.name());
            let out = out.unwrap_or_else(|| {
                let first = &model[0];
                let base = if first.is_dir() {
                    first.clone()
                } else {
                    first.parent().map(Path::to_owned).unwrap_or_default()
                };
                let name = data
                    .file_name()
                    .map_or("data".into(), |n| n.to_string_lossy().into_owned());
                let ensemble = match model.len() {
                    1 => String::new(),
                    n => format!("ensemble{n}-"),
                };
                base.join(format!("evaluation-{ensemble}{name}-{split_name}"))
            });
            if out.join("metrics.json").exists() {
                bail!(
                    "{} already holds an evaluation; choose another --out (nothing was overwritten)",
                    out.display()
                );
            }
            if model.len() > 1 {
                println!(
                    "an ensemble of {} models: the `model` rows are the mean of their quantiles",
                    model.len()
                );
            }
            let mut dataset = load_data(&data, &source, saved.setup.data)?;
            let inputs = saved.adapt(&mut dataset)?;
            println!("{inputs}");
            let mut report =
                trainer::evaluate::evaluate_saved_on(&saved, &dataset, &splits, &device)?;
            report.inputs = Some(inputs);
            if !saved.others.is_empty() {
                report.ensemble = std::iter::once(saved.path().to_owned())
                    .chain(saved.others.iter().map(|(path, _)| path.clone()))
                    .collect();
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            // Fans from the last split asked for (the test split for `all`).
            let fan_split = splits.last().copied().unwrap_or(Split::Test);
            trainer::report::draw_report_plots(
                &saved, &dataset, &report, fan_split, &out, &device,
            )?;
            forecaster::checkpoint::write_atomic(
                &out.join("metrics.json"),
                serde_json::to_string_pretty(&report)?.as_bytes(),
            )?;
            println!(
                "{}",
                trainer::report::table(&report, saved.setup.data.step_minutes)
            );
            println!(
                "{split_name} split of {}; outputs in {} (metrics.json, nmae_by_lead.png, skill.png, forecast_fans.png)",
                data.display(),
                out.display()
            );
        }
        Command::Forecast {
            model,
            data,
            source,
            t0,
            out,
            overwrite,
            device: device_arg,
        } => {
            let requested = match t0.as_str() {
                "latest" => None,
                text => Some(UnixTime::parse(text).with_context(|| {
                    format!(
                        "--t0 `{text}` is not a time like 2021-06-01T10:00:00Z or 2021-06-01 10:00, nor `latest`"
                    )
                })?),
            };
            let unwritten = |out: &Path| -> Result<()> {
                if out.exists() && !overwrite {
                    bail!(
                        "{} exists; pass --overwrite to replace it or choose another --out",
                        out.display()
                    );
                }
                Ok(())
            };
            if let Some(out) = &out {
                unwritten(out)?;
            }
            let device = device(device_arg)?;
            let saved = SavedModel::read_ensemble(&model, &device)?;
            let mut dataset = load_data(&data, &source, saved.setup.data)?;
            println!("{}", saved.adapt(&mut dataset)?);
            let t0 = match requested {
                Some(t0) => t0,
                None => forecaster::latest_t0(&dataset).with_context(|| {
                    format!("{}: no observed PV value, so no latest t0", data.display())
                })?,
            };
            let out = match out {
                Some(out) => out,
                None => {
                    let out =
                        PathBuf::from(format!("forecast-{}.csv", t0.to_string().replace(':', "")));
                    unwritten(&out)?;
                    out
                }
            };
            let batch_size = trainer::evaluate::run_config(&saved)?.eval.batch_size;
            let mut file = forecaster::ForecastFile::create(&out, &saved.setup.model.quantiles)?;
            let fleet =
                forecaster::forecast_fleet(&saved, &dataset, t0, batch_size, &device, |rows| {
                    file.write(rows)
                })?;
            file.finish()?;
            if !fleet.skipped.is_empty() {
                let shown: Vec<String> =
                    fleet.skipped.iter().take(20).map(i64::to_string).collect();
                let more = fleet.skipped.len().saturating_sub(shown.len());
                eprintln!(
                    "no PV history before {t0} for {} systems (ss_id {}{}): not forecast",
                    fleet.skipped.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                );
            }
            println!(
                "{} rows ({} systems × {} lead times) at t0 {t0} in {}",
                fleet.rows,
                fleet.systems,
                saved.setup.examples.lead_times,
                out.display()
            );
        }
        Command::Skill { runs } => {
            let reports = runs
                .iter()
                .map(|run| {
                    // A run folder, an evaluation folder, or either's JSON file.
                    let path = if run.is_file() {
                        run.clone()
                    } else if run.join("test_metrics.json").exists() {
                        run.join("test_metrics.json")
                    } else if run.join("metrics.json").exists() {
                        run.join("metrics.json")
                    } else {
                        run.join("test_metrics.json")
                    };
                    let text = std::fs::read_to_string(&path).with_context(|| {
                        format!("reading {} (is the run finished?)", path.display())
                    })?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{}: not a test report", path.display()))
                })
                .collect::<Result<Vec<trainer::metrics::Report>>>()?;
            print!("{}", trainer::report::seed_table(&reports));
        }
        Command::Data {
            command: DataCommand::Inspect { dir, source },
        } => {
            let paths = find_data(&dir, &source)?;
            let config = LoadConfig {
                step_minutes: paths
                    .named_step_minutes()
                    .map_or(LoadConfig::default().step_minutes, |m| {
                        m.max(LoadConfig::default().step_minutes)
                    }),
                ..LoadConfig::default()
            };
            let dataset = load_found(&dir, &paths, &source, config)?;
            print!("{}", dataset.summary());
            let examples = ExampleConfig::default();
            print!("{}", diagnostics_table(&dataset, &examples));
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

/// Says which systems' blocks hold too little observed daylight to be scored (their rows in the
/// tables will be empty or rest on a handful of pairs).
fn warn_starved_blocks(dataset: &Dataset, examples: &ExampleConfig) {
    for series in &dataset.systems {
        for c in pv_data::diagnostics::block_coverage(series, examples) {
            if c.is_starved() {
                eprintln!("warning: ss_id {}: {}", series.meta.ss_id, starved(&c));
            }
        }
    }
}

/// What a block with too little observed daylight means for its scores.
fn starved(c: &pv_data::diagnostics::BlockCoverage) -> String {
    format!(
        "the {} block holds {} observed daylight steps of {}: its scores are not meaningful (a long gap in the data?); examples.split.by = \"observed\" cuts the blocks by observed steps instead of by calendar",
        c.split, c.observed_daylight_steps, c.daylight_steps
    )
}

/// Per system: observed daylight in each block of the split, the label offset fitted on the
/// training block, and tilt, azimuth and offset fitted together there, with flags for what needs
/// a look. The systems are diagnosed in parallel (the fits take about a quarter of a second of
/// one core for a system with years of 15-min data) and listed in order.
fn diagnostics_table(dataset: &Dataset, examples: &ExampleConfig) -> String {
    use rayon::prelude::*;
    let rows: Vec<String> = dataset
        .systems
        .par_iter()
        .map(|series| diagnostics_rows(series, examples))
        .collect();
    let mut out = String::from(
        "   ss_id   observed daylight steps (train / validation / test)   label offset   r (0 min -> best)   tilt, azimuth, shift fitted together (metadata)\n",
    );
    out.extend(rows);
    out
}

/// [`diagnostics_table`]'s line for one system, and its flags.
fn diagnostics_rows(series: &pv_data::PvSeries, examples: &ExampleConfig) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let coverage = pv_data::diagnostics::block_coverage(series, examples);
    let blocks: Vec<String> = coverage
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c.observed_daylight_steps,
                if c.is_starved() { "!" } else { "" }
            )
        })
        .collect();
    let offset = pv_data::diagnostics::label_offset(series, examples);
    let (shift, r) = match offset {
        Some(o) => (
            format!(
                "{:+.1} min{}",
                o.minutes,
                if o.is_suspect() { " !" } else { "" }
            ),
            format!("{:.3} -> {:.3}", o.correlation_unshifted, o.correlation),
        ),
        None => ("-".into(), "-".into()),
    };
    let m = &series.meta;
    let geometry = pv_data::diagnostics::geometry_fit(series, examples);
    let fitted = geometry.map_or("-".into(), |g| {
        format!(
            "{:.0}°, {:.0}°, {:+.1} min: fit {:.4}, {:.0} % of resamples agree{} ({:.0}°, {:.0}°, 0 min: {:.4})",
            g.tilt_deg,
            g.orientation_deg,
            g.minutes,
            g.fit,
            100.0 * g.stability,
            if g.at_edge { ", at the search's edge" } else { "" },
            m.tilt_deg,
            m.orientation_deg,
            g.fit_at_metadata
        )
    });
    let _ = writeln!(
        out,
        "{:>8}   {:>52}   {:>12}   {:<17}   {}",
        m.ss_id,
        blocks.join(" / "),
        shift,
        r,
        fitted
    );
    for c in coverage.iter().filter(|c| c.is_starved()) {
        let _ = writeln!(out, "         ! {}", starved(c));
    }
    if let Some(g) = geometry.filter(|g| g.disagrees_with(m.tilt_deg, m.orientation_deg)) {
        let _ = writeln!(
            out,
            "         ! clear days fit a panel of {:.0}° facing {:.0}° (fit {:.4}, {:.0} % of resamples agree) better than the metadata's {:.0}° facing {:.0}° (fit {:.4}): check tilt_deg and orientation_deg",
            g.tilt_deg,
            g.orientation_deg,
            g.fit,
            100.0 * g.stability,
            m.tilt_deg,
            m.orientation_deg,
            g.fit_at_metadata
        );
    }
    if let Some(o) = offset.filter(|o| o.is_suspect()) {
        let _ = writeln!(
            out,
            "         ! power lines up best with clear sky {:+.1} min from the labels' interval midpoints: check the time convention (interval end, start or instant) and the time zone",
            o.minutes
        );
    }
    out
}

/// UTC time as `YYYYMMDD-HHMMSS`, for default run names.
fn utc_now_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = UnixTime(secs).to_string(); // 2026-11-29T10:00:00Z
    t.replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_owned()
}
