//! `cargo xtask bench`: the criterion suite with machine-readable results and comparison against a
//! committed baseline, and the deterministic instruction-count gate under callgrind.
//!
//! Wall time (recorded, never gated; machines are noisy):
//!
//! ```text
//! cargo xtask bench [--quick] [--threads 1,2] [--filter REGEX] [--save FILE]
//!                   [--compare FILE] [--threshold PCT]
//! ```
//!
//! Results go to `target/bench/results.json` (under `CARGO_TARGET_DIR` when set): per bench the median time per iteration, the spread
//! of the samples (half the inter-quartile range over the median), the sample count and the
//! throughput. `--compare` prints each bench's ratio to the baseline and calls it a change only
//! when it exceeds both the threshold and twice the two runs' combined spread; otherwise noise.
//!
//! Instructions (deterministic, gated in CI):
//!
//! ```text
//! cargo xtask bench instructions [--accept]
//! ```
//!
//! counts the instructions of one run of each workload of `bench-instructions` under callgrind
//! (one rayon thread; instrumentation switched on around the run by client requests, setup
//! uninstrumented) and fails when one grew by more than 5 % over `benches/baseline/instructions.json`; `--accept`
//! writes the new counts as the baseline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{Value, json};

/// Instruction growth that fails the gate.
const INSTRUCTION_TOLERANCE: f64 = 0.05;
const INSTRUCTION_BASELINE: &str = "benches/baseline/instructions.json";

struct Options {
    quick: bool,
    threads: Vec<usize>,
    filter: Option<String>,
    save: Option<PathBuf>,
    compare: Option<PathBuf>,
    threshold: f64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        threads: Vec::new(),
        filter: None,
        save: None,
        compare: None,
        threshold: 0.05,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--threads" => {
                o.threads = value()?
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse()
                            .map_err(|_| format!("--threads: bad count {t:?}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--filter" => o.filter = Some(value()?),
            "--save" => o.save = Some(value()?.into()),
            "--compare" => o.compare = Some(value()?.into()),
            "--threshold" => {
                let v = value()?;
                let pct: f64 = v
                    .parse()
                    .map_err(|_| format!("--threshold: bad percentage {v:?}"))?;
                o.threshold = pct / 100.0;
            }
            other => return Err(format!("bench: unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

/// Runs `cargo xtask bench ...`.
pub fn run(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("instructions") {
        return instructions(args[1..].iter().any(|a| a == "--accept"));
    }
    let o = parse(args)?;
    let started = SystemTime::now();
    let threads = if o.threads.is_empty() {
        vec![0]
    } else {
        o.threads.clone()
    };
    for &t in &threads {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["bench", "-p", "power-perceiver-benches", "--benches", "--"]);
        if o.quick {
            cmd.args(["--warm-up-time", "0.5", "--measurement-time", "1.5"]);
        }
        if let Some(f) = &o.filter {
            cmd.arg(f);
        }
        if t > 0 {
            cmd.env("RAYON_NUM_THREADS", t.to_string());
        }
        eprintln!(
            "$ {}cargo bench -p power-perceiver-benches ...",
            if t > 0 {
                format!("RAYON_NUM_THREADS={t} ")
            } else {
                String::new()
            }
        );
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run cargo bench: {e}"))?;
        if !status.success() {
            return Err(format!("cargo bench failed ({status})"));
        }
    }
    let target = target_dir();
    let results = collect(&target.join("criterion"), started)?;
    if results.is_empty() {
        return Err("no criterion results were written (filter matched nothing?)".into());
    }
    let doc = json!({
        "format": "power-perceiver-bench/1",
        "quick": o.quick,
        "commit": git_commit(),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "benches": results,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    let results_path = target.join("bench/results.json");
    write(&results_path, &text)?;
    eprintln!(
        "results: {} ({} benches)",
        results_path.display(),
        results.len()
    );
    if let Some(path) = &o.save {
        write(path, &text)?;
        eprintln!("saved as {}", path.display());
    }
    print_table(&results);
    if let Some(path) = &o.compare {
        compare(path, &results, o.threshold)?;
    }
    Ok(())
}

fn write(path: impl AsRef<Path>, text: &str) -> Result<(), String> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Every `new/` result under `root` written since `since`, one JSON object per bench.
fn collect(root: &Path, since: SystemTime) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    let sample = path.join("sample.json");
                    let fresh = std::fs::metadata(&sample)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= since);
                    if fresh {
                        found.push(summarise(&path)?);
                    }
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(found)
}

/// Median and spread of one criterion result, from its raw samples.
fn summarise(new: &Path) -> Result<Value, String> {
    let bench = read_json(&new.join("benchmark.json"))?;
    let sample = read_json(&new.join("sample.json"))?;
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let iters = numbers(&sample["iters"]);
    let times = numbers(&sample["times"]);
    let mut per_iter: Vec<f64> = times.iter().zip(&iters).map(|(t, n)| t / n).collect();
    if per_iter.is_empty() {
        return Err(format!("{}: no samples", new.display()));
    }
    per_iter.sort_by(f64::total_cmp);
    let q = |p: f64| per_iter[((per_iter.len() - 1) as f64 * p).round() as usize];
    let median = q(0.5);
    let spread = (q(0.75) - q(0.25)) / 2.0 / median;
    let (per_iteration, unit) = match bench["throughput"].as_object() {
        Some(t) if t.contains_key("Elements") => (t["Elements"].as_f64(), "elements"),
        Some(t) if t.contains_key("Bytes") => (t["Bytes"].as_f64(), "bytes"),
        _ => (None, ""),
    };
    let mut out = json!({
        "id": bench["full_id"],
        "median_ns": median,
        "spread": spread,
        "samples": per_iter.len(),
    });
    if let Some(n) = per_iteration {
        out["throughput"] =
            json!({ "unit": unit, "per_iteration": n, "per_second": n / (median * 1e-9) });
    }
    Ok(out)
}

/// `x` in the first of `units` (factor, decimals, suffix; largest first) it reaches, else the last.
fn scaled(x: f64, units: &[(f64, usize, &str)]) -> String {
    let (factor, decimals, suffix) = units
        .iter()
        .copied()
        .find(|&(factor, _, _)| x >= factor)
        .or(units.last().copied())
        .unwrap_or((1.0, 1, ""));
    format!("{:.*} {suffix}", decimals, x / factor)
}

fn human_time(ns: f64) -> String {
    scaled(
        ns,
        &[
            (1e9, 3, "s"),
            (1e6, 3, "ms"),
            (1e3, 2, "µs"),
            (1.0, 0, "ns"),
        ],
    )
}

fn human_rate(r: f64) -> String {
    scaled(
        r,
        &[(1e9, 2, "G"), (1e6, 2, "M"), (1e3, 2, "k"), (1.0, 1, "")],
    )
}

fn print_table(results: &[Value]) {
    println!(
        "\n{:<72} {:>12} {:>8} {:>16}",
        "bench", "median", "spread", "throughput"
    );
    for r in results {
        let rate = r["throughput"]["per_second"]
            .as_f64()
            .map_or(String::new(), |p| {
                let unit = if r["throughput"]["unit"] == "bytes" {
                    "B/s"
                } else {
                    "/s"
                };
                format!("{}{unit}", human_rate(p))
            });
        println!(
            "{:<72} {:>12} {:>7.1}% {:>16}",
            r["id"].as_str().unwrap_or("?"),
            human_time(r["median_ns"].as_f64().unwrap_or(f64::NAN)),
            100.0 * r["spread"].as_f64().unwrap_or(f64::NAN),
            rate
        );
    }
}

/// Prints each bench's ratio to `baseline` (new time / baseline time): a change only when it
/// exceeds `threshold` and twice the combined spread of the two runs.
fn compare(baseline: &Path, results: &[Value], threshold: f64) -> Result<(), String> {
    let base = read_json(baseline)?;
    let base: BTreeMap<&str, &Value> = base["benches"]
        .as_array()
        .ok_or(format!("{}: no \"benches\" list", baseline.display()))?
        .iter()
        .filter_map(|b| Some((b["id"].as_str()?, b)))
        .collect();
    println!(
        "\nagainst {} (ratio = new time / baseline time; threshold {:.0} %)",
        baseline.display(),
        threshold * 100.0
    );
    println!(
        "{:<72} {:>12} {:>12} {:>7} {:>8}  verdict",
        "bench", "baseline", "new", "ratio", "noise"
    );
    let (mut slower, mut faster, mut missing) = (0, 0, 0);
    for r in results {
        let id = r["id"].as_str().unwrap_or("?");
        let Some(b) = base.get(id) else {
            println!("{id:<72} {:>12} (not in the baseline)", "-");
            continue;
        };
        let (new, old) = (
            r["median_ns"].as_f64().unwrap_or(f64::NAN),
            b["median_ns"].as_f64().unwrap_or(f64::NAN),
        );
        let ratio = new / old;
        let noise =
            2.0 * (r["spread"].as_f64().unwrap_or(0.0) + b["spread"].as_f64().unwrap_or(0.0));
        let band = threshold.max(noise);
        let verdict = if ratio > 1.0 + band {
            slower += 1;
            "SLOWER"
        } else if ratio < 1.0 / (1.0 + band) {
            faster += 1;
            "faster"
        } else {
            "noise"
        };
        println!(
            "{id:<72} {:>12} {:>12} {ratio:>7.3} {:>7.1}%  {verdict}",
            human_time(old),
            human_time(new),
            100.0 * noise
        );
    }
    for id in base.keys() {
        if !results.iter().any(|r| r["id"].as_str() == Some(id)) {
            missing += 1;
        }
    }
    println!("{slower} slower, {faster} faster, {missing} baseline benches not run");
    Ok(())
}

/// The instruction-count gate.
fn instructions(accept: bool) -> Result<(), String> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        return Err(
            "valgrind is not installed (apt-get install valgrind; .ci/run installs it)".into(),
        );
    }
    // The dev profile (opt-level 2 here) with the workspace's test feature set: `--tests` brings
    // in the dev-dependencies, so features unify exactly as in `cargo test --workspace` and CI
    // reuses the test build's dependencies. (`-p power-perceiver-benches` alone resolved other
    // features and rebuilt candle: 5–7 minutes of CI.)
    crate::cargo(&["build", "--workspace", "--bins", "--tests"])?;
    let target = target_dir();
    let binary = target.join("debug/bench-instructions");
    let binary = binary.as_path();
    let list = Command::new(binary)
        .arg("--list")
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let workloads: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let bench_dir = target.join("bench");
    std::fs::create_dir_all(&bench_dir).map_err(|e| format!("{}: {e}", bench_dir.display()))?;
    let mut counts = BTreeMap::new();
    for w in &workloads {
        let out_file = bench_dir
            .join(format!("callgrind.{w}.out"))
            .display()
            .to_string();
        let output = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--instr-atstart=no",
                &format!("--callgrind-out-file={out_file}"),
            ])
            .arg(binary)
            .arg(w)
            .env("RAYON_NUM_THREADS", "1")
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "callgrind run of {w} failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = std::fs::read_to_string(&out_file).map_err(|e| format!("{out_file}: {e}"))?;
        let total = text
            .lines()
            // `totals:`: `summary:` stays 0 when instrumentation starts late.
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or(format!("{out_file}: no instruction total"))?;
        if total == 0 {
            return Err(format!(
                "{w}: no instruction was counted (client requests not reached?)"
            ));
        }
        eprintln!("{w}: {total} instructions");
        counts.insert(w.clone(), total);
    }
    let path = Path::new(INSTRUCTION_BASELINE);
    if accept {
        let doc = json!({
            "format": "power-perceiver-instructions/1",
            "note": "callgrind instruction counts of one run of `bench-instructions <workload>` (instrumented between client requests; dev profile, RAYON_NUM_THREADS=1); `cargo xtask bench instructions --accept` rewrites this file",
            "instructions": counts,
        });
        write(
            path,
            &(serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n"),
        )?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    let base = read_json(path)?;
    let mut failures = Vec::new();
    println!(
        "\n{:<48} {:>16} {:>16} {:>8}",
        "workload", "baseline", "now", "change"
    );
    for (w, &now) in &counts {
        let Some(old) = base["instructions"][w].as_u64() else {
            failures.push(format!(
                "{w} has no baseline (run `cargo xtask bench instructions --accept`)"
            ));
            continue;
        };
        let change = now as f64 / old as f64 - 1.0;
        println!("{w:<48} {old:>16} {now:>16} {:>+7.2}%", 100.0 * change);
        if change > INSTRUCTION_TOLERANCE {
            failures.push(format!(
                "{w}: {:+.2} % instructions ({old} → {now})",
                100.0 * change
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "instruction gate: more than {:.0} % growth:\n  {}\nIf the growth is intended, accept it: `cargo xtask bench instructions --accept` and commit {}",
            INSTRUCTION_TOLERANCE * 100.0,
            failures.join("\n  "),
            INSTRUCTION_BASELINE
        ))
    }
}
