//! `cargo xtask ablate [--quick] [--seeds N] [--seeds-for VARIANT=N] [--steps N] [--no-trees]`:
//! the ablation study of issue 14 over the variants the model can be configured to (lead-time
//! conditioning, the history encoder, position features, the MetNet way, HiP fan-out decoding).
//! Every variant is trained with the same data, step budget and seeds by the
//! CLI (`power-perceiver train --config <variant> --seed <k>`), evaluated on the test split by the
//! run's own evaluation (model, trees and baselines on the same examples), and tabulated: per
//! variant and per system, daylight nMAE mean ± standard deviation over seeds, skill over smart
//! persistence, parameters, training milliseconds per step, and the wall time of a run.
//!
//! Milliseconds per step come from a timing run of each variant made right after its study runs
//! (`runs/ablation/timing/<variant>`: seed 0, [`TIMING_STEPS`] steps and no validation, then
//! stopped): the median of its steps' wall times in `timing.jsonl`, the first
//! [`TIMING_WARMUP`] left out. A study's own runs are long and may share the machine with other
//! work; the timing run is short, so it can be made on a quiet machine (delete the folder to
//! measure again).
//!
//! Beside the table, `img/ablation.svg` plots each variant's mean test nMAE ± one standard
//! deviation, pooled and for the two systems with the most test days.
//!
//! Runs go to `runs/ablation[-quick]/<variant>-seed<k>`; a finished run is reused and an
//! unfinished one resumed, so the study can be stopped and continued. The table is written to
//! `docs/ABLATION.md` (full study) or `runs/ablation-quick/ABLATION.md` (`--quick`: one seed,
//! 20 steps, no trees; a smoke test of the whole path, not a result).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// A variant: its name, what it changes, and its `[model]` keys.
const VARIANTS: [(&str, &str, &str); 8] = [
    (
        "design",
        "the current design: HiP encoder, FiLM in every decoder block, Fourier positions",
        "",
    ),
    (
        "lead-time-as-feature",
        "no FiLM: the lead time only as a query feature",
        "lead_time_conditioning = \"feature\"\n",
    ),
    (
        "no-encoder",
        "no history encoder: the decoder reads its queries alone",
        "encoder = \"none\"\n",
    ),
    (
        "learned-positions",
        "learned position features instead of fixed Fourier ones",
        "positions = \"learned\"\n",
    ),
    (
        "flat-perceiver",
        "a flat Perceiver: one group over every history step's tokens instead of one per step",
        "encoder = \"flat\"\n",
    ),
    (
        "perceiver-rnn",
        "a Perceiver as a recurrent network: one latent array reads the steps in turn",
        "encoder = \"recurrent\"\n",
    ),
    (
        "fan-out",
        "HiP fan-out decoding: the bottleneck split 1 → 4 → 16 groups, each lead time reading its own",
        // `forecaster::fan_out_to(16)` (xtask builds without the model's crates).
        "[[model.fan_out]]\ngroups = 4\nlatents = 8\nchannels = 32\nself_attention_layers = 1\nheads = 2\n\n\
         [[model.fan_out]]\ngroups = 16\nlatents = 4\nchannels = 32\nself_attention_layers = 1\nheads = 2\n",
    ),
    (
        "metnet-way",
        "the MetNet way: the encoder runs once per lead time, its latents conditioned on it",
        "encoder_runs = \"per_lead\"\n",
    ),
];

/// Steps of a variant's timing run (8 with `--quick`).
const TIMING_STEPS: usize = 60;

/// The first steps of a timing run, left out of its median (allocations, caches).
const TIMING_WARMUP: usize = 5;

/// The heading of the hand-written part of the study's document, kept when the table is redone.
const READING: &str = "\n## Reading";

struct Options {
    quick: bool,
    seeds: u64,
    /// Fewer (or more) seeds for a named variant (`--seeds-for metnet-way=2`: a variant whose
    /// runs cost too much for the study's count; the table's seeds column shows it).
    seeds_for: BTreeMap<String, u64>,
    steps: Option<usize>,
    /// Skip the gradient-boosted trees (the same for every variant; they cost time, not results).
    no_trees: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        seeds: 3,
        seeds_for: BTreeMap::new(),
        steps: None,
        no_trees: false,
    };
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).ok_or(format!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--quick" => o.quick = true,
            "--no-trees" => o.no_trees = true,
            "--seeds" => {
                o.seeds = value(i)?.parse().map_err(|_| "--seeds needs a number")?;
                i += 1;
            }
            "--seeds-for" => {
                let (name, n) = value(i)?
                    .split_once('=')
                    .ok_or("--seeds-for needs VARIANT=N")?;
                if !VARIANTS.iter().any(|(v, _, _)| *v == name) {
                    return Err(format!("--seeds-for: no variant {name}"));
                }
                let n = n.parse().map_err(|_| "--seeds-for needs VARIANT=N")?;
                o.seeds_for.insert(name.to_owned(), n);
                i += 1;
            }
            "--steps" => {
                o.steps = Some(value(i)?.parse().map_err(|_| "--steps needs a number")?);
                i += 1;
            }
            other => return Err(format!("ablate: unknown argument {other}")),
        }
        i += 1;
    }
    if o.quick {
        o.seeds = o.seeds.min(1);
        o.steps = Some(o.steps.unwrap_or(20));
        o.no_trees = true;
    }
    Ok(o)
}

/// Runs the study.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let root = PathBuf::from(runs_root(o.quick));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    // The quick study uses the test build's binary; the full one a release build.
    let profile: &[&str] = if o.quick { &[] } else { &["--release"] };
    let mut build = vec!["build", "-p", "trainer", "--bin", "power-perceiver"];
    build.extend(profile);
    crate::cargo(&build)?;
    let binary = PathBuf::from("target")
        .join(if o.quick { "debug" } else { "release" })
        .join("power-perceiver");
    let mut rows = Vec::new();
    for (name, what, keys) in VARIANTS {
        let config = root.join(format!("{name}.toml"));
        // The study compares model variants without modality dropout (its first runs were made
        // before dropout existed) and at batch 64 (the default before session 13), whatever the
        // defaults are.
        let mut text =
            format!("[model]\n{keys}\n[train]\nmodality_dropout = 0.0\nbatch_size = 64\n");
        if o.no_trees {
            text.push_str("\n[gbt]\nenabled = false\n");
        }
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut runs = Vec::new();
        for seed in 0..o.seeds_for.get(name).copied().unwrap_or(o.seeds) {
            let out = root.join(format!("{name}-seed{seed}"));
            let seconds = train(&binary, &config, seed, o.steps, &out)?;
            runs.push((out, seconds));
        }
        let mut row = Row::read(name, what, &runs)?;
        let timing_steps = if o.quick { 8 } else { TIMING_STEPS };
        row.step_ms = time_steps(
            &binary,
            &config,
            timing_steps,
            &root.join("timing").join(name),
        )?;
        rows.push(row);
        // The table so far, after every variant: a long study stopped part-way keeps its rows.
        write_doc(&o, &rows)?;
    }
    Ok(())
}

/// Where the study's runs go.
fn runs_root(quick: bool) -> &'static str {
    if quick {
        "runs/ablation-quick"
    } else {
        "runs/ablation"
    }
}

/// Writes the study's table for `rows`, keeping the hand-written reading of an earlier one.
fn write_doc(o: &Options, rows: &[Row]) -> Result<(), String> {
    let doc = if o.quick {
        Path::new(runs_root(true)).join("ABLATION.md")
    } else {
        PathBuf::from("docs/ABLATION.md")
    };
    let steps = o.steps.map_or("the default step budget".to_owned(), |s| {
        format!("{s} steps")
    });
    let command = format!(
        "cargo xtask ablate{}",
        if o.quick { " --quick" } else { "" }
    );
    // What people wrote about the numbers (from `## Reading` on) survives a rerun.
    let reading = std::fs::read_to_string(&doc)
        .ok()
        .and_then(|old| old.find(READING).map(|at| old[at..].to_owned()))
        .unwrap_or_default();
    let table = markdown(rows, &command, o.seeds, &steps);
    // The plot beside the document, linked from it.
    let image = doc.with_file_name(PLOT);
    if let Some(dir) = image.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&image, svg(rows)).map_err(|e| format!("{}: {e}", image.display()))?;
    let plot = format!(
        "\n![Test daylight nMAE per variant, mean and ± one standard deviation over seeds]({PLOT})\n"
    );
    std::fs::write(&doc, format!("{table}{plot}{reading}"))
        .map_err(|e| format!("{}: {e}", doc.display()))?;
    eprintln!("ablate: {} written", doc.display());
    Ok(())
}

/// The study's plot, relative to its document.
const PLOT: &str = "img/ablation.svg";

/// The columns the plot shows: pooled, and the two systems with the most test days.
const PLOTTED: [&str; 3] = ["all systems", "ss_id 50", "ss_id 1001"];

/// A dot-and-whisker plot as SVG (no font or plotting library needed): one panel per column of
/// [`PLOTTED`], one row per variant, the mean test nMAE as a dot and ± one standard deviation over
/// seeds as a line; each panel scaled to its own values.
fn svg(rows: &[Row]) -> String {
    let (label_w, panel_w, gap, row_h, top) = (170.0, 230.0, 20.0, 24.0, 46.0);
    let width = label_w + PLOTTED.len() as f64 * (panel_w + gap);
    let height = top + rows.len() as f64 * row_h + 30.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + (i as f64 + 0.5) * row_h;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            label_w - 8.0,
            y + 4.0,
            r.name
        ));
    }
    for (p, column) in PLOTTED.iter().enumerate() {
        let x0 = label_w + p as f64 * (panel_w + gap);
        let stats: Vec<Option<(f64, f64)>> = rows
            .iter()
            .map(|r| r.nmae.get(*column).and_then(|v| mean_and_sd(v)))
            .collect();
        let (lo, hi) = stats
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (m, sd)| {
                (lo.min(m - sd), hi.max(m + sd))
            });
        if !lo.is_finite() {
            continue;
        }
        let pad = ((hi - lo) * 0.08).max(1e-4);
        let (lo, hi) = (lo - pad, hi + pad);
        let x = |v: f64| x0 + (v - lo) / (hi - lo) * panel_w;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">{column}</text>\n\
             <rect x=\"{x0}\" y=\"{}\" width=\"{panel_w}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n",
            x0 + panel_w / 2.0,
            top - 14.0,
            rows.len() as f64 * row_h + 14.0,
        ));
        for t in 0..3 {
            let v = lo + (hi - lo) * (0.1 + 0.4 * t as f64);
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{v:.4}</text>\n",
                x(v),
                top + rows.len() as f64 * row_h + 16.0
            ));
        }
        for (i, stat) in stats.iter().enumerate() {
            let Some((m, sd)) = stat else { continue };
            let y = top + (i as f64 + 0.5) * row_h;
            out.push_str(&format!(
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n\
                 <circle cx=\"{:.1}\" cy=\"{y}\" r=\"4\" fill=\"#1f77b4\"/>\n",
                x(m - sd),
                x(m + sd),
                x(*m)
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The mean and sample standard deviation (0 for one value), or `None` for none.
fn mean_and_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// Trains (or resumes, or reuses) one run; the wall seconds of this call.
fn train(
    binary: &Path,
    config: &Path,
    seed: u64,
    steps: Option<usize>,
    out: &Path,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut command = Command::new(binary);
    // The wall time of the session that finished the run, kept beside it for reuse.
    let timing = out.join("ablate_wall_seconds.txt");
    if out.join("test_metrics.json").exists() {
        eprintln!("ablate: {} finished already; reused", out.display());
        return Ok(std::fs::read_to_string(&timing)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(f64::NAN));
    } else if out.exists() {
        command.args(["train", "--resume"]).arg(out);
    } else {
        command
            .args(["train", "--config"])
            .arg(config)
            .args(["--seed", &seed.to_string(), "--out"])
            .arg(out);
        if let Some(steps) = steps {
            command.args(["--steps", &steps.to_string()]);
        }
    }
    run_cli(command, binary, "training", out)?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::write(&timing, format!("{seconds}\n"))
        .map_err(|e| format!("{}: {e}", timing.display()))?;
    Ok(seconds)
}

/// Echoes and runs `command` (the CLI `binary`), which writes `what` into `out`.
fn run_cli(mut command: Command, binary: &Path, what: &str, out: &Path) -> Result<(), String> {
    eprintln!("$ {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} {} failed ({status})", out.display()))
    }
}

/// The median training step of `config` in milliseconds, from a run of `steps` steps in `out`
/// (reused when it holds them).
fn time_steps(
    binary: &Path,
    config: &Path,
    steps: usize,
    out: &Path,
) -> Result<Option<f64>, String> {
    let log = out.join("timing.jsonl");
    if std::fs::read_to_string(&log).map_or(0, |t| step_seconds(&t).len()) < steps {
        if out.exists() {
            std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        let mut command = Command::new(binary);
        command
            .args(["train", "--config"])
            .arg(config)
            .args(["--seed", "0", "--out"])
            .arg(out)
            .args(["--stop-after", &steps.to_string()]);
        run_cli(command, binary, "timing run", out)?;
    }
    let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let seconds = step_seconds(&text);
    // Past the warm-up, unless that leaves nothing.
    let kept = seconds
        .get(TIMING_WARMUP..)
        .filter(|k| !k.is_empty())
        .unwrap_or(&seconds);
    Ok(median(kept).map(|s| s * 1000.0))
}

/// The steps' wall seconds in a `timing.jsonl`, in order (validation lines left out).
fn step_seconds(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("step").is_some())
        .filter_map(|v| v["seconds"].as_f64())
        .collect()
}

/// The median, or `None` for no values.
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One variant's results over its seeds.
struct Row {
    name: String,
    what: String,
    parameters: usize,
    /// Runs (seeds) read.
    seeds: usize,
    /// Daylight nMAE per seed: all systems pooled (key 0 is not a system), then per ss_id.
    nmae: BTreeMap<String, Vec<f64>>,
    skill: Vec<f64>,
    seconds: Vec<f64>,
    /// Median training milliseconds per step, from the variant's timing run.
    step_ms: Option<f64>,
}

impl Row {
    fn read(name: &str, what: &str, runs: &[(PathBuf, f64)]) -> Result<Row, String> {
        let mut row = Row {
            name: name.to_owned(),
            what: what.to_owned(),
            parameters: 0,
            seeds: runs.len(),
            nmae: BTreeMap::new(),
            skill: Vec::new(),
            seconds: Vec::new(),
            step_ms: None,
        };
        for (dir, seconds) in runs {
            let path = dir.join("test_metrics.json");
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let report: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let model = |table: &Value| table["model"].clone();
            let pooled = model(&report["pooled"]);
            row.nmae
                .entry("all systems".to_owned())
                .or_default()
                .extend(pooled["nmae"].as_f64());
            row.skill.extend(pooled["skill"].as_f64());
            if let Some(systems) = report["systems"].as_object() {
                for (ss_id, table) in systems {
                    row.nmae
                        .entry(format!("ss_id {ss_id}"))
                        .or_default()
                        .extend(model(table)["nmae"].as_f64());
                }
            }
            if seconds.is_finite() {
                row.seconds.push(*seconds);
            }
            row.parameters = parameters(&dir.join("model.safetensors"))?;
        }
        Ok(row)
    }
}

/// Parameters in a checkpoint: the element counts of every tensor in its safetensors header.
fn parameters(path: &Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("{}: too short for a safetensors header", path.display()))?
        as usize;
    let header: Value = bytes
        .get(8..8 + n)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| format!("{}: unreadable safetensors header", path.display()))?;
    Ok(header
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| {
            t["shape"].as_array().map_or(0, |s| {
                s.iter().filter_map(Value::as_u64).product::<u64>() as usize
            })
        })
        .sum())
}

/// `mean ± sd` (sample standard deviation) to `decimals`, or the value alone for one seed.
fn mean_sd(values: &[f64], decimals: usize) -> String {
    match mean_and_sd(values) {
        None => "–".to_owned(),
        Some((mean, _)) if values.len() == 1 => format!("{mean:.decimals$}"),
        Some((mean, sd)) => format!("{mean:.decimals$} ± {sd:.decimals$}"),
    }
}

fn markdown(rows: &[Row], command: &str, seeds: u64, steps: &str) -> String {
    let mut columns: Vec<String> = rows.iter().flat_map(|r| r.nmae.keys().cloned()).collect();
    columns.sort_by_key(|c| (c != "all systems", c.clone()));
    columns.dedup();
    let mut out = format!(
        "# Ablation study\n\nMeasured by `{command}`: every variant trained on the bundled data \
         with {steps} and {seeds} seed(s) (0 to {last}), and evaluated on the test split by the run's own \
         evaluation. Test daylight nMAE of the model, mean ± sample standard deviation over \
         seeds (a variant with fewer says so in the seeds column); skill is over smart persistence, \
         pooled. Milliseconds per step are the median training step (batch, forward, backward, \
         update) of a {TIMING_STEPS}-step timing run of the variant, made alone on the machine. Wall \
         time is the session that finished a run (training, test evaluation and plots; a resumed \
         run counts its last session only).\n\n| variant | what changes | parameters | seeds | {} | skill | ms/step | wall s |\n\
         |---|---|---:|---:|{}---:|---:|---:|\n",
        columns.join(" | "),
        "---:|".repeat(columns.len()),
        last = seeds.saturating_sub(1),
    );
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| r.nmae.get(c).map_or("–".to_owned(), |v| mean_sd(v, 4)))
            .collect();
        let skill: Vec<f64> = r.skill.iter().map(|s| s * 100.0).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} % | {} | {} |\n",
            r.name,
            r.what,
            r.parameters,
            r.seeds,
            cells.join(" | "),
            mean_sd(&skill, 1),
            r.step_ms.map_or("–".to_owned(), |ms| format!("{ms:.0}")),
            mean_sd(&r.seconds, 0)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_are_read_from_step_lines_and_their_median_taken() {
        let text = "{\"step\":0,\"seconds\":0.5}\n{\"validation_at\":1,\"seconds\":9.0}\n\
                    {\"step\":1,\"seconds\":0.25}\nnot json\n{\"step\":2,\"seconds\":0.125}\n";
        assert_eq!(step_seconds(text), [0.5, 0.25, 0.125]);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean_sd(&[1.0, 2.0, 3.0], 4), "2.0000 ± 1.0000");
        assert_eq!(mean_sd(&[0.5], 1), "0.5");
        assert_eq!(mean_sd(&[], 2), "–");
    }

    #[test]
    fn the_plot_has_a_dot_and_a_whisker_per_variant_and_column() {
        let row = |name: &str, nmae: &[f64]| Row {
            name: name.to_owned(),
            what: String::new(),
            parameters: 0,
            seeds: nmae.len(),
            nmae: PLOTTED
                .iter()
                .map(|c| (c.to_string(), nmae.to_vec()))
                .collect(),
            skill: Vec::new(),
            seconds: Vec::new(),
            step_ms: None,
        };
        let rows = [row("design", &[0.10, 0.11, 0.12]), row("other", &[0.13])];
        let svg = svg(&rows);
        assert_eq!(svg.matches("<circle").count(), 2 * PLOTTED.len());
        assert_eq!(svg.matches("<line").count(), 2 * PLOTTED.len());
        assert!(svg.contains(">design</text>") && svg.contains(">ss_id 50</text>"));
        // The design's dot lies left of the other variant's (lower nMAE), in every panel.
        let dots: Vec<f64> = svg
            .match_indices("<circle cx=\"")
            .map(|(at, m)| {
                let rest = &svg[at + m.len()..];
                rest[..rest.find('"').expect("quote")].parse().expect("x")
            })
            .collect();
        for pair in dots.chunks(2) {
            assert!(pair[0] < pair[1], "{dots:?}");
        }
        assert_eq!(mean_and_sd(&[0.10, 0.11, 0.12]).map(|(m, _)| m), Some(0.11));
        assert_eq!(mean_and_sd(&[]), None);
    }

    #[test]
    fn quick_means_one_seed_and_few_steps() {
        let o = options(&["--quick".to_owned()]).expect("options");
        assert_eq!(
            (o.quick, o.seeds, o.steps, o.no_trees),
            (true, 1, Some(20), true)
        );
        let o = options(&["--steps", "800", "--no-trees"].map(String::from)).expect("options");
        assert_eq!(
            (o.quick, o.seeds, o.steps, o.no_trees),
            (false, 3, Some(800), true)
        );
        assert!(options(&["--bogus".to_owned()]).is_err());
        let o = options(&["--seeds-for", "metnet-way=2"].map(String::from)).expect("options");
        assert_eq!(o.seeds_for.get("metnet-way"), Some(&2));
        assert!(options(&["--seeds-for", "nonesuch=2"].map(String::from)).is_err());
        assert!(options(&["--seeds-for", "metnet-way"].map(String::from)).is_err());
    }
}
