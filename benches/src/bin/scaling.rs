//! Issue 14's cost measurements, for each encoder variant (untrained models: the cost does not
//! depend on the weights):
//!
//! - `leads`: one forecast for one system (one example) at 16, 48 and 192 lead times, forward
//!   only, median of 15 runs. The encoder runs once per example, so only the decoder should grow.
//! - `satellite`: one training step (forward and backward, batch 16, the model's loss) as the
//!   satellite tokens per history step grow from today's 16 to 4,096, and the process's peak
//!   resident memory after each size (sizes ascend, so each new peak is that size's). The
//!   bundled imagery has 1,350 pixels; for more, its pixel grid is tiled (shifted copies, each
//!   with the original's values).
//!
//! `cargo run --release -p power-perceiver-benches --bin scaling -- leads|satellite [VARIANTS]`
//! with VARIANTS a comma-separated subset of `hip,flat,recurrent,metnet,fanout,none` (`metnet`:
//! HiP run once per lead time, `model.encoder_runs = "per_lead"`; `fanout`: HiP with the
//! bottleneck split into one group per lead time, `model.fan_out`, [`forecaster::fan_out_to`]).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use forecaster::model::BatchTensors;
use forecaster::{EncoderKind, EncoderRuns, ModelConfig, PvForecaster, fan_out_to};
use power_perceiver_benches::bundled;
use pv_data::{Dataset, ExampleConfig, FeatureWidths, Split, UnixTime, build_batch, example_keys};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn model(variant: Variant, dataset: &Dataset, lead_times: usize) -> Result<PvForecaster> {
    let (encoder, encoder_runs, fan_out) = variant;
    let config = ModelConfig {
        encoder,
        encoder_runs,
        fan_out: if fan_out {
            fan_out_to(lead_times)
        } else {
            Vec::new()
        },
        ..ModelConfig::default()
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Ok(PvForecaster::new(
        &config,
        FeatureWidths::of(dataset),
        15,
        vb,
    )?)
}

/// UK system 8215's training examples from 2020-01-02 11:00 (satellite and NWP present).
fn uk_keys(
    dataset: &Dataset,
    examples: &ExampleConfig,
    n: usize,
) -> Result<Vec<pv_data::ExampleKey>> {
    let from = UnixTime::parse("2020-01-02T11:00:00Z").context("time")?;
    let keys: Vec<_> = example_keys(dataset, examples, Split::Train)?
        .into_iter()
        .filter(|k| dataset.systems[k.system].meta.ss_id == 8215 && k.t0 >= from)
        .take(n)
        .collect();
    if keys.len() < n {
        bail!("only {} UK examples", keys.len());
    }
    Ok(keys)
}

/// The bundled imagery with its pixel grid tiled `copies` times (shifted 0.5° east each time).
fn tiled(dataset: &Dataset, copies: usize) -> Dataset {
    let mut out = dataset.clone();
    if let Some(sat) = out.satellite.as_mut() {
        let (p, c) = (sat.pixels.len(), sat.channels.len());
        let mut pixels = Vec::with_capacity(p * copies);
        for copy in 0..copies {
            for px in &sat.pixels {
                let mut moved = *px;
                moved.longitude_deg += 0.5 * copy as f64;
                pixels.push(moved);
            }
        }
        let mut values = Vec::with_capacity(sat.values.len() * copies);
        for image in sat.values.chunks(p * c) {
            for _ in 0..copies {
                values.extend_from_slice(image);
            }
        }
        sat.pixels = pixels;
        sat.values = values;
    }
    out
}

/// An encoder, how often it runs, and whether its bottleneck fans out to the lead times.
type Variant = (EncoderKind, EncoderRuns, bool);

fn variants(arg: Option<&String>) -> Result<Vec<(&'static str, Variant)>> {
    let all = [
        ("hip", (EncoderKind::Hip, EncoderRuns::Once, false)),
        ("flat", (EncoderKind::Flat, EncoderRuns::Once, false)),
        (
            "recurrent",
            (EncoderKind::Recurrent, EncoderRuns::Once, false),
        ),
        ("metnet", (EncoderKind::Hip, EncoderRuns::PerLead, false)),
        ("fanout", (EncoderKind::Hip, EncoderRuns::Once, true)),
        ("none", (EncoderKind::QueriesOnly, EncoderRuns::Once, false)),
    ];
    match arg {
        None => Ok(all.to_vec()),
        Some(list) => list
            .split(',')
            .map(|name| {
                all.iter()
                    .find(|(n, _)| *n == name)
                    .copied()
                    .with_context(|| format!("unknown variant {name}"))
            })
            .collect(),
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dataset = bundled();
    dataset.fit_scalers(&ExampleConfig::default());
    match args.first().map(String::as_str) {
        Some("leads") => {
            println!("| variant | 16 leads | 48 leads | 192 leads | 192 / 16 |");
            println!("|---|---|---|---|---|");
            for (name, encoder) in variants(args.get(1))? {
                let mut row = Vec::new();
                for k in [16, 48, 192] {
                    let examples = ExampleConfig {
                        lead_times: k,
                        ..ExampleConfig::default()
                    };
                    let batch = build_batch(
                        &dataset,
                        &examples,
                        &uk_keys(&dataset, &examples, 1)?,
                        Split::Train,
                    );
                    let tensors = BatchTensors::new(&batch, &Device::Cpu)?;
                    let m = model(encoder, &dataset, k)?;
                    row.push(median_ms(15, || {
                        m.forward(&tensors).expect("forward");
                    }));
                }
                println!(
                    "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1}× |",
                    row[0],
                    row[1],
                    row[2],
                    row[2] / row[0]
                );
            }
        }
        Some("satellite") => {
            println!(
                "| variant | satellite tokens per step | tokens per example | train step (batch 16) | peak RSS |"
            );
            println!("|---|---|---|---|---|");
            let big = tiled(&dataset, 4); // 5,400 pixels
            for (name, encoder) in variants(args.get(1))? {
                for pixels in [16, 256, 1024, 4096] {
                    let examples = ExampleConfig {
                        satellite_pixels: pixels,
                        satellite_radius_km: 1e6,
                        ..ExampleConfig::default()
                    };
                    let data = if pixels > 1350 { &big } else { &dataset };
                    let batch = build_batch(
                        data,
                        &examples,
                        &uk_keys(data, &examples, 16)?,
                        Split::Train,
                    );
                    let per_step = batch.tokens[pv_data::features::Modality::Satellite]
                        .values
                        .shape[2];
                    let tokens: usize = batch
                        .tokens
                        .iter()
                        .map(|(_, t)| t.values.shape[2])
                        .sum::<usize>()
                        * examples.history_steps;
                    let tensors = BatchTensors::new(&batch, &Device::Cpu)?;
                    let m = model(encoder, data, examples.lead_times)?;
                    let ms = median_ms(5, || {
                        let loss = m.loss(&tensors).expect("loss");
                        loss.backward().expect("backward");
                    });
                    println!(
                        "| {name} | {per_step} | {tokens} | {ms:.0} ms | {} MiB |",
                        peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}"))
                    );
                }
            }
        }
        _ => bail!("usage: scaling leads|satellite [hip,flat,recurrent,metnet,none]"),
    }
    Ok(())
}
