//! Build orchestration for power-perceiver (`cargo xtask <command>`); its one dependency is
//! serde_json, for bench results.
//!
//! - `ci`: formatting, clippy with warnings denied, the layering rule, the import-circle and docs
//!   checks, every test, the quick ablation study, the
//!   instruction-count gate (callgrind), and the CUDA
//!   kernels compiled to PTX by NVRTC (fetched from PyPI by `scripts/install-nvrtc.sh`).
//! - `ptx-check`: only the last.
//! - `layering`: only the layering rule.
//! - `cycles`: no import circle between the modules of a crate (`cycles.rs`).
//! - `docs`: every file path and code identifier the docs quote exists (`docs.rs`).
//! - `data [DIR]`: summarise a data folder (rows, ranges, missing fractions, examples per split).
//! - `bench [--quick] [--threads 1,2] [--filter RE] [--save F] [--compare F] [--threshold PCT]`:
//!   the criterion suite, results as JSON, ratios to a baseline (see `bench.rs`).
//! - `bench instructions [--accept]`: the callgrind instruction-count gate.
//! - `train [ARGS...]`: release build, then `power-perceiver train ARGS` (default config, `data/`).
//! - `ablate [--quick] [--seeds N] [--seeds-for VARIANT=N] [--steps N] [--no-trees]`: the ablation study (`ablate.rs`).

use std::process::{Command, ExitCode};

mod ablate;
mod bench;
mod cycles;
mod docs;

/// Crates that must never appear in another crate's dependency tree (docs/ARCHITECTURE.md,
/// "Layering").
const LAYERING: &[(&str, &[&str])] = &[
    (
        "pv-data",
        &[
            "candle-core",
            "candle-nn",
            "perceiver-core",
            "hip-encoder",
            "metnet-decoder",
            "forecaster",
            "trainer",
        ],
    ),
    (
        "perceiver-core",
        &[
            "pv-data",
            "hip-encoder",
            "metnet-decoder",
            "forecaster",
            "trainer",
            "arrow-array",
            "parquet",
        ],
    ),
    (
        "hip-encoder",
        &["metnet-decoder", "pv-data", "forecaster", "trainer"],
    ),
    (
        "metnet-decoder",
        &["hip-encoder", "pv-data", "forecaster", "trainer"],
    ),
    // The model is usable without the training stack.
    (
        "forecaster",
        &["trainer", "forust-ml", "plotters", "indicatif", "clap"],
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("layering") => layering(),
        Some("docs") => docs::check(),
        Some("cycles") => cycles::check(),
        Some("ptx-check") => ptx_check(),
        Some("data") => data(args.get(1).map_or("data", String::as_str)),
        Some("bench") => bench::run(&args[1..]),
        Some("train") => train(&args[1..]),
        Some("ablate") => ablate::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | layering | cycles | docs | ptx-check | data [DIR] | bench [--quick] [--compare F] | bench instructions [--accept] | train [ARGS...] | ablate [--quick] [--seeds N] [--seeds-for VARIANT=N] [--steps N] [--no-trees]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A cargo command for our own builds, with incremental compilation off whatever the caller's
/// environment says. The dev profile is not incremental (see the workspace Cargo.toml): an
/// incremental build generates different code, which moved the instruction gate's counts by up
/// to 3 %, so CI, a local `cargo xtask ci` and `--accept` must all build the same way.
fn cargo_command() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.env("CARGO_INCREMENTAL", "0");
    command
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = cargo_command()
        .args(args)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    layering()?;
    cycles::check()?;
    docs::check()?;
    cargo(&["test", "--workspace", "--all-targets"])?;
    cargo(&["test", "--workspace", "--doc"])?;
    // The ablation study's whole path (every variant trained, evaluated and tabulated), small.
    ablate::run(&["--quick".to_string()])?;
    bench::run(&["instructions".to_string()])?;
    ptx_check()
}

/// Compiles every CUDA kernel to PTX (sm_80, sm_90) with NVRTC fetched from PyPI, and lints and
/// builds the GPU check binary (which loads the driver at run time): no GPU or CUDA toolkit needed.
fn ptx_check() -> Result<(), String> {
    eprintln!("$ scripts/install-nvrtc.sh");
    let lib = stdout_of(
        Command::new("bash").arg("scripts/install-nvrtc.sh"),
        "scripts/install-nvrtc.sh",
    )?
    .trim()
    .to_owned();
    let lib = std::fs::canonicalize(&lib).map_err(|e| format!("{lib}: {e}"))?;
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", lib.display()),
        _ => lib.display().to_string(),
    };
    let args = [
        "clippy",
        "-p",
        "perceiver-core",
        "--features",
        "gpu-check",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ];
    cargo(&args)?;
    let args = [
        "test",
        "-p",
        "perceiver-core",
        "--features",
        "gpu-check",
        "--test",
        "cuda_ptx",
    ];
    eprintln!("$ LD_LIBRARY_PATH={path} cargo {}", args.join(" "));
    let status = cargo_command()
        .args(args)
        .env("LD_LIBRARY_PATH", path)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("the CUDA kernels do not compile to PTX (see above)".into())
    }
}

/// Runs `command` and returns its standard output; `Err` naming `what` when it cannot run or fails.
fn stdout_of(command: &mut Command, what: &str) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn workspace_packages() -> Result<Vec<String>, String> {
    let text = stdout_of(
        Command::new(env!("CARGO")).args(["metadata", "--no-deps", "--format-version", "1"]),
        "cargo metadata",
    )?;
    // Package names appear as `"name":"<crate>"` right after each package's opening brace.
    Ok(text
        .split("{\"name\":\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect())
}

fn layering() -> Result<(), String> {
    let packages = workspace_packages()?;
    for (krate, forbidden) in LAYERING {
        if !packages.iter().any(|p| p == krate) {
            continue;
        }
        let tree = stdout_of(
            Command::new(env!("CARGO")).args([
                "tree",
                "-p",
                krate,
                "-e",
                "normal,build",
                "--prefix",
                "none",
                "--format",
                "{p}",
            ]),
            &format!("cargo tree -p {krate}"),
        )?;
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if forbidden.contains(&name) {
                return Err(format!("layering violated: {krate} depends on {name}"));
            }
        }
        eprintln!("layering: {krate} is clear of {}", forbidden.join(", "));
    }
    Ok(())
}

fn data(dir: &str) -> Result<(), String> {
    cargo(&[
        "run",
        "--release",
        "-p",
        "pv-data",
        "--example",
        "inspect",
        "--",
        dir,
    ])
}

/// `cargo xtask train [--seeds N] [ARGS]`: trains the default model (with the CLI's `train`
/// ARGS); with `--seeds N`, N runs with seeds 0..N into `runs/seeds-<k>` (or `<--out>-seed<k>`),
/// then their mean ± sd per system (`power-perceiver skill`), and the N runs as one ensemble on
/// the test split (`power-perceiver evaluate RUN...`, into `runs/seeds-ensemble`).
fn train(args: &[String]) -> Result<(), String> {
    let cli = [
        "run",
        "--release",
        "-p",
        "trainer",
        "--bin",
        "power-perceiver",
        "--",
    ];
    let Some(at) = args.iter().position(|a| a == "--seeds") else {
        let mut all = cli.to_vec();
        all.push("train");
        all.extend(args.iter().map(String::as_str));
        return cargo(&all);
    };
    let seeds: u64 = args
        .get(at + 1)
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .ok_or("--seeds needs a positive number")?;
    let mut rest: Vec<String> = args[..at].iter().chain(&args[at + 2..]).cloned().collect();
    let base = match rest.iter().position(|a| a == "--out") {
        Some(i) if i + 1 < rest.len() => {
            let out = rest.remove(i + 1);
            rest.remove(i);
            out
        }
        _ => "runs/seeds".to_owned(),
    };
    let mut runs = Vec::new();
    for seed in 0..seeds {
        let out = format!("{base}-seed{seed}");
        let seed = seed.to_string();
        let mut all = cli.to_vec();
        all.extend(["train", "--seed", &seed, "--out", &out]);
        all.extend(rest.iter().map(String::as_str));
        cargo(&all)?;
        runs.push(out);
    }
    let mut all = cli.to_vec();
    all.push("skill");
    all.extend(runs.iter().map(String::as_str));
    cargo(&all)?;
    if runs.len() < 2 {
        return Ok(());
    }
    // The runs as one ensemble (the mean of their quantiles) on the test split.
    let ensemble = format!("{base}-ensemble");
    let mut all = cli.to_vec();
    all.push("evaluate");
    all.extend(runs.iter().map(String::as_str));
    all.extend(["--out", &ensemble]);
    // The data the runs trained on, and the device, as named to `train`.
    let passed = data_args(&rest);
    all.extend(passed.iter().map(String::as_str));
    cargo(&all)
}

/// The arguments of `train` that `evaluate` takes too: the data folder, what of it to read, and
/// the device (`--flag value` or `--flag=value`).
fn data_args(args: &[String]) -> Vec<String> {
    const SHARED: [&str; 6] = [
        "--data",
        "--generation",
        "--systems",
        "--from",
        "--to",
        "--device",
    ];
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let name = arg.split('=').next().unwrap_or(arg);
        if !SHARED.contains(&name) {
            continue;
        }
        out.push(arg.clone());
        if !arg.contains('=')
            && let Some(value) = args.get(i + 1)
        {
            out.push(value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ensemble_evaluation_gets_the_runs_data_and_device() {
        let args: Vec<String> = [
            "--data",
            "pv_only",
            "--steps",
            "800",
            "--systems=50,1001",
            "--device",
            "cuda",
            "--seed-ignored",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            data_args(&args),
            ["--data", "pv_only", "--systems=50,1001", "--device", "cuda"]
        );
        assert!(data_args(&["--steps".to_owned(), "9".to_owned()]).is_empty());
    }
}
