//! Fleet forecast benchmark: one t0, `N` synthetic systems (default 10,000; `synthetic_fleet`:
//! copies of the bundled UK systems' last four days spread over Great Britain, with the bundled
//! satellite and NWP), forecast by the default model and streamed to Parquet as `power-perceiver
//! forecast` does. Prints systems per second and the process's peak resident memory.
//!
//! `cargo run --release -p power-perceiver-benches --bin fleet -- [N] [BATCH]`

use std::time::Instant;

use candle_core::Device;
use forecaster::{ForecastFile, ModelSetup, forecast_fleet};
use power_perceiver_benches::{bundled, synthetic_fleet, threads, untrained_saved_model};
use pv_data::UnixTime;

/// Peak resident set size of this process so far, MiB (Linux; `None` elsewhere).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let setup = ModelSetup::default();
    let t0 = UnixTime::parse("2020-01-05T12:00:00Z").ok_or_else(|| anyhow::anyhow!("t0"))?;
    let started = Instant::now();
    let mut source = bundled();
    source.fit_scalers(&setup.examples);
    let fleet = synthetic_fleet(&source, n, t0, 4 * 96);
    drop(source);
    let build_s = started.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let saved = untrained_saved_model(&fleet, &setup, dir.path());
    let out = dir.path().join("fleet.parquet");
    let started = Instant::now();
    let mut file = ForecastFile::create(&out, &setup.model.quantiles)?;
    let done = forecast_fleet(&saved, &fleet, t0, batch, &Device::Cpu, |rows| {
        file.write(rows)
    })?;
    file.finish()?;
    let forecast_s = started.elapsed().as_secs_f64();
    println!(
        "{} systems ({} rows) at {t0} on {} threads, batch {batch}: forecast {:.1} s = {:.0} systems/s (fleet built in {:.1} s); Parquet {:.1} MiB; peak RSS {} MiB",
        done.systems,
        done.rows,
        threads(),
        forecast_s,
        done.systems as f64 / forecast_s,
        build_s,
        std::fs::metadata(&out)?.len() as f64 / (1 << 20) as f64,
        peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}")),
    );
    Ok(())
}
