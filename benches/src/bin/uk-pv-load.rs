//! Loading part of a uk_pv-sized generation file: `write` makes a synthetic `30min.parquet` of
//! the published file's layout (ss_id, datetime_GMT, generation_Wh; sorted by system then time;
//! the parquet crate's default row groups), `select` loads 100 systems over 30 days of it, `all`
//! loads every row. Each prints its wall time and the process's peak resident memory, so run
//! each mode as its own process:
//!
//! ```sh
//! cargo build --release -p power-perceiver-benches --bin uk-pv-load
//! target/release/uk-pv-load write /tmp/uk_pv 20000 730   # folder, systems, days
//! target/release/uk-pv-load select /tmp/uk_pv
//! target/release/uk-pv-load all /tmp/uk_pv
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use pv_data::{DataPaths, Dataset, LoadConfig, Selection, UnixTime};

/// 2019-01-01T00:00:00Z.
const START: i64 = 1_546_300_800;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// One system's half-hourly energy over `days`: a clear-sky-like day curve scaled by capacity,
/// dimmed on a pseudo-random share of days, null at night as the published file's gaps are not.
fn system_rows(id: i64, days: usize) -> (Vec<i64>, Vec<Option<f64>>) {
    let kwp = 2.0 + (id % 7) as f64 * 0.5;
    let mut times = Vec::with_capacity(days * 48);
    let mut wh = Vec::with_capacity(days * 48);
    for d in 0..days {
        let cloud = if (id * 31 + d as i64 * 17) % 5 == 0 {
            0.4
        } else {
            1.0
        };
        let season = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * (d as f64 - 80.0) / 365.0).sin();
        for h in 0..48 {
            times.push(START + (d as i64 * 48 + h + 1) * 1800);
            let x = (h as f64 + 0.5 - 24.0) / (12.0 * season);
            let power = (kwp * cloud * (1.0 - x * x)).max(0.0);
            wh.push(Some(power * 500.0));
        }
    }
    (times, wh)
}

fn write(dir: &Path, systems: i64, days: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut metadata = String::from(
        "ss_id,latitude_rounded,longitude_rounded,llsoacd,orientation,tilt,kwp,operational_at\n",
    );
    let file = std::fs::File::create(dir.join("30min.parquet"))?;
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("ss_id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new(
            "datetime_GMT",
            arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None),
            false,
        ),
        arrow_schema::Field::new("generation_Wh", arrow_schema::DataType::Float64, true),
    ]));
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut rows = 0usize;
    for id in 1..=systems {
        let (times, wh) = system_rows(id, days);
        rows += times.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![id; times.len()])),
            Arc::new(TimestampMicrosecondArray::from(
                times.iter().map(|t| t * 1_000_000).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(wh)),
        ];
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        metadata.push_str(&format!(
            "{id},{:.2},{:.2},E0{id:07},180.0,35.0,{:.1},2018-01-01\n",
            50.0 + (id % 600) as f64 / 100.0,
            -5.0 + (id % 700) as f64 / 100.0,
            2.0 + (id % 7) as f64 * 0.5
        ));
    }
    writer.close()?;
    std::fs::write(dir.join("metadata.csv"), metadata)?;
    println!(
        "wrote {rows} rows ({systems} systems × {days} days) to {}: {:.0} MiB",
        dir.join("30min.parquet").display(),
        std::fs::metadata(dir.join("30min.parquet"))?.len() as f64 / (1 << 20) as f64
    );
    Ok(())
}

fn load(dir: &Path, selection: &Selection) -> Result<()> {
    let started = Instant::now();
    let paths = DataPaths::in_folder(dir)?;
    let config = LoadConfig {
        step_minutes: 30,
        ..LoadConfig::default()
    };
    let dataset = Dataset::load_selected(&paths, config, selection)?;
    let values: usize = dataset.systems.iter().map(|s| s.len()).sum();
    println!(
        "{selection}: {} systems, {values} half-hours, {} rows read, in {:.1} s; peak RSS {} MiB",
        dataset.systems.len(),
        dataset.report.rows,
        started.elapsed().as_secs_f64(),
        peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}"))
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(
        args.get(1)
            .context("usage: uk-pv-load write|select|all DIR [SYSTEMS DAYS]")?,
    );
    match args[0].as_str() {
        "write" => {
            let systems = args.get(2).map_or(Ok(20_000), |a| a.parse())?;
            let days = args.get(3).map_or(Ok(730), |a| a.parse())?;
            write(dir, systems, days)
        }
        "select" => {
            // 100 systems spread over the ids, 30 days in the second half of the first year.
            let selection = Selection {
                systems: Some((1..=100).map(|i| i * 97).collect::<BTreeSet<i64>>()),
                from: Some(UnixTime(START + 200 * 86_400)),
                to: Some(UnixTime(START + 230 * 86_400)),
            };
            load(dir, &selection)
        }
        "all" => load(dir, &Selection::default()),
        other => bail!("unknown mode {other}: write, select or all"),
    }
}
