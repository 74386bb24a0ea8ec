//! Loads a trained model and forecasts every system of a data folder, using only this crate and
//! pv-data (no training stack):
//!
//! ```text
//! cargo run --release -p forecaster --example forecast -- runs/<name> data [T0|latest] [OUT.parquet]
//! ```
//!
//! T0 defaults to (and `latest` asks for) the latest time the data allow: the last observed
//! interval of any system;
//! the median and outer quantiles are printed per system and lead time, and written to OUT
//! (CSV, or Parquet for `.parquet`) when given.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use forecaster::{SavedModel, forecast_at, latest_t0, write_forecast};
use pv_data::{DataPaths, Dataset, UnixTime};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data, rest @ ..] = args.as_slice() else {
        bail!("usage: forecast MODEL (checkpoint or run folder) DATA_DIR [T0] [OUT]");
    };
    let device = Device::Cpu;
    let saved = SavedModel::read(&PathBuf::from(model), &device)?;
    let paths = DataPaths::in_folder(data.as_ref())?;
    let mut dataset =
        Dataset::load(&paths, saved.setup.data).with_context(|| format!("loading {data}"))?;
    saved.adapt(&mut dataset)?;
    let t0 = match rest.first().map(String::as_str) {
        Some(text) if !text.is_empty() && text != "latest" => {
            UnixTime::parse(text).with_context(|| format!("T0 `{text}`"))?
        }
        _ => latest_t0(&dataset).context("the data hold no observed PV value")?,
    };
    let (rows, skipped) = forecast_at(&saved, &dataset, t0, 256, &device)?;
    let levels = &saved.setup.model.quantiles;
    println!(
        "forecast at {t0} from {} ({} systems, {} skipped without history)",
        saved.path().display(),
        rows.len() / saved.setup.examples.lead_times.max(1),
        skipped.len()
    );
    println!(
        "ss_id  lead_min  {}",
        levels
            .iter()
            .map(|l| format!("q{l}_kw"))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for row in &rows {
        let q: Vec<String> = row
            .quantiles_kw
            .iter()
            .map(|q| format!("{q:7.3}"))
            .collect();
        println!("{:5}  {:8}  {}", row.ss_id, row.lead_minutes, q.join("  "));
    }
    if let Some(out) = rest.get(1) {
        write_forecast(&rows, levels, out.as_ref())?;
        println!("written to {out}");
    }
    Ok(())
}
