//! What a finished evaluation shows: the printed tables (pooled and per system, and over seeds)
//! and the plots of a report.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use forecaster::SavedModel;
use forecaster::forecast::{DEFAULT_BATCH_SIZE, forecast_keys};
use pv_data::{Dataset, ExampleKey, Split, UnixTime, example_keys};

use crate::metrics::{ForecasterMetrics, ForecasterTable, Report};
use crate::plots::Fan;

/// The plots of an evaluation: nMAE by lead time, and forecast fans on examples of `split`.
pub fn draw_report_plots(
    saved: &SavedModel,
    dataset: &Dataset,
    report: &Report,
    split: Split,
    out_dir: &Path,
    device: &Device,
) -> Result<()> {
    crate::plots::nmae_by_lead(
        report,
        saved.setup.data.step_minutes,
        &out_dir.join("nmae_by_lead.png"),
    )?;
    crate::plots::skill_intervals(report, &out_dir.join("skill.png"))?;
    let fans = fan_examples(saved, dataset, split, device)?;
    crate::plots::forecast_fans(&fans, &out_dir.join("forecast_fans.png"))?;
    Ok(())
}

/// Forecasters in table order.
const TABLE_ORDER: [&str; 5] = [
    "model",
    "gbt",
    "persistence",
    "smart_persistence",
    "clear_sky_ratio",
];

/// The test tables: daylight nMAE overall and per lead time (the first and every fourth), skill
/// against the reference with its 95 % day-block bootstrap interval; pooled, then per system.
pub fn table(test: &Report, step_minutes: i64) -> String {
    let mut out = forecaster_table("all systems", &test.pooled, step_minutes);
    for (ss_id, group) in &test.systems {
        out.push('\n');
        out.push_str(&forecaster_table(
            &format!("ss_id {ss_id}"),
            group,
            step_minutes,
        ));
    }
    out
}

fn forecaster_table(title: &str, group: &ForecasterTable, step_minutes: i64) -> String {
    let k = group
        .values()
        .map(|m| m.nmae_by_lead.len())
        .max()
        .unwrap_or(0);
    let leads: Vec<usize> = (0..k).filter(|i| i % 4 == 3 || *i == 0).collect();
    let (pairs, days) = group
        .values()
        .map(|m| (m.daylight_targets, m.days))
        .max()
        .unwrap_or_default();
    let mut out = format!("{title}: {pairs} daylight pairs on {days} days\n");
    out.push_str(&format!(
        "{:<18} {:>8} {:>8} {:>17}",
        "daylight nMAE", "overall", "skill", "95% interval"
    ));
    for &i in &leads {
        out.push_str(&format!(
            " {:>7}",
            format!("+{}m", (i as i64 + 1) * step_minutes)
        ));
    }
    out.push('\n');
    let percent = |x: f64| format!("{:+.1}%", 100.0 * x);
    let interval = |i: Option<[f64; 2]>| {
        i.map_or("-".to_owned(), |[lo, hi]| {
            format!("[{}, {}]", percent(lo), percent(hi))
        })
    };
    for name in TABLE_ORDER {
        let Some(m) = group.get(name) else { continue };
        if m.daylight_targets == 0 {
            out.push_str(&format!("{name:<18} no daylight pairs\n"));
            continue;
        }
        out.push_str(&format!(
            "{:<18} {:>8.4} {:>8} {:>17}",
            name,
            m.nmae,
            m.skill.map_or("-".to_owned(), percent),
            interval(m.skill_interval),
        ));
        for &i in &leads {
            out.push_str(&format!(" {:>7.4}", m.nmae_by_lead[i]));
        }
        out.push('\n');
    }
    for name in TABLE_ORDER {
        let Some(m) = group.get(name).filter(|m| m.daylight_targets > 0) else {
            continue;
        };
        for (rival, s) in &m.skill_against {
            out.push_str(&format!(
                "{name} against {rival}: skill {}, 95% interval {}\n",
                percent(s.skill),
                interval(s.interval),
            ));
        }
    }
    out
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Reports of runs that differ only in their seed, as one table per system and pooled: daylight
/// nMAE and skill, mean ± standard deviation over the runs, and the skill interval's bounds
/// averaged over the runs. Systems or forecasters missing from any run are left out.
pub fn seed_table(reports: &[Report]) -> String {
    use std::fmt::Write;
    let Some(first) = reports.first() else {
        return String::new();
    };
    let mut out = format!(
        "{} runs; daylight test nMAE and skill against {}: mean ± sd over the runs\n",
        reports.len(),
        first.reference
    );
    let groups = std::iter::once(("all systems".to_owned(), None)).chain(
        first
            .systems
            .keys()
            .map(|id| (format!("ss_id {id}"), Some(*id))),
    );
    for (title, ss_id) in groups {
        let table_of = |r: &'_ Report| -> Option<ForecasterTable> {
            match ss_id {
                None => Some(r.pooled.clone()),
                Some(id) => r.systems.get(&id).cloned(),
            }
        };
        let Some(tables) = reports.iter().map(table_of).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let pairs = tables[0]
            .values()
            .map(|m| m.daylight_targets)
            .max()
            .unwrap_or(0);
        let days = tables[0].values().map(|m| m.days).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{title}: {pairs} daylight pairs on {days} days\n{:<18} {:>17} {:>17} {:>19}",
            "forecaster", "nMAE", "skill", "mean 95% interval"
        );
        // Each forecaster that every run has, with its metrics in each run.
        let rows: Vec<(&str, Vec<&ForecasterMetrics>)> = TABLE_ORDER
            .into_iter()
            .filter_map(|name| {
                let ms = tables.iter().map(|t| t.get(name)).collect::<Option<_>>()?;
                Some((name, ms))
            })
            .collect();
        for (name, ms) in &rows {
            let (nmae, nmae_sd) = mean_sd(&ms.iter().map(|m| m.nmae).collect::<Vec<_>>());
            let (skill, interval) = over_runs(
                ms.iter().map(|m| m.skill),
                ms.iter().map(|m| m.skill_interval),
            );
            let _ = writeln!(
                out,
                "{name:<18} {:>17} {skill:>17} {interval:>19}",
                format!("{nmae:.4} ± {nmae_sd:.4}")
            );
        }
        for (name, ms) in &rows {
            for rival in ms[0].skill_against.keys() {
                let Some(s) = ms
                    .iter()
                    .map(|m| m.skill_against.get(rival))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                let (skill, interval) = over_runs(
                    s.iter().map(|s| Some(s.skill)),
                    s.iter().map(|s| s.interval),
                );
                let _ = writeln!(
                    out,
                    "{name} against {rival}: skill {skill}, mean 95% interval {interval}"
                );
            }
        }
    }
    out
}

/// A skill over runs as "mean ± sd %", and its intervals' bounds averaged; "-" where a run has
/// none.
fn over_runs(
    skills: impl Iterator<Item = Option<f64>>,
    intervals: impl Iterator<Item = Option<[f64; 2]>>,
) -> (String, String) {
    let skill = skills
        .collect::<Option<Vec<_>>>()
        .map_or("-".to_owned(), |s| {
            let (m, sd) = mean_sd(&s);
            format!("{:+.1} ± {:.1}%", 100.0 * m, 100.0 * sd)
        });
    let interval = intervals
        .collect::<Option<Vec<_>>>()
        .map_or("-".to_owned(), |i| {
            let lo = mean_sd(&i.iter().map(|x| x[0]).collect::<Vec<_>>()).0;
            let hi = mean_sd(&i.iter().map(|x| x[1]).collect::<Vec<_>>()).0;
            format!("[{:+.1}%, {:+.1}%]", 100.0 * lo, 100.0 * hi)
        });
    (skill, interval)
}

/// Forecasts on `split` for the fan plots: up to four systems, two days each, with t0 near 10:00
/// local solar time (a forecast that spans the middle of the day).
pub(crate) fn fan_examples(
    saved: &SavedModel,
    dataset: &Dataset,
    split: Split,
    device: &Device,
) -> Result<Vec<Fan>> {
    let keys = example_keys(dataset, &saved.setup.examples, split)?;
    let step = dataset.step_s();
    let mut chosen = Vec::new();
    for system in 0..dataset.systems.len().min(4) {
        let lon = dataset.systems[system].meta.longitude_deg;
        let morning: Vec<ExampleKey> = keys
            .iter()
            .filter(|k| k.system == system)
            .filter(|k| {
                let solar_hour = (k.t0.0 as f64 / 3600.0 + lon / 15.0).rem_euclid(24.0);
                (9.75..10.25).contains(&solar_hour)
            })
            .copied()
            .collect();
        let n = morning.len();
        if n > 0 {
            chosen.push(morning[n / 3]);
            if n > 1 {
                chosen.push(morning[2 * n / 3]);
            }
        }
    }
    let rows = forecast_keys(
        saved,
        dataset,
        &chosen,
        split.into(),
        DEFAULT_BATCH_SIZE,
        device,
    )?;
    let k = saved.setup.examples.lead_times;
    let h = saved.setup.examples.history_steps as i64;
    Ok(chosen
        .iter()
        .zip(rows.chunks(k))
        .map(|(key, rows)| {
            let series = &dataset.systems[key.system];
            let kwp = series.meta.capacity_kwp as f32;
            Fan {
                ss_id: series.meta.ss_id,
                t0: key.t0,
                step_minutes: step / 60,
                history_kw: (0..h)
                    .map(|i| {
                        series
                            .normalised_at(UnixTime(key.t0.0 - (h - 1 - i) * step))
                            .map_or(f32::NAN, |p| p * kwp)
                    })
                    .collect(),
                rows: rows.to_vec(),
                levels: saved.setup.model.quantiles.clone(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(nmae: f64, skill: Option<f64>) -> ForecasterMetrics {
        ForecasterMetrics::example(nmae, skill, 2)
    }

    /// Two seeds: nMAE 0.10 and 0.20 give 0.1500 ± 0.0707 (sample sd); skills 10 % and 30 %.
    #[test]
    fn the_seed_table_gives_mean_and_sample_sd() {
        let report = |model: f64, skill: f64| {
            let mut m = metrics(model, Some(skill));
            // Against the trees: half the skill against the reference.
            m.skill_against.insert(
                "gbt".into(),
                crate::metrics::Skill {
                    skill: skill / 2.0,
                    interval: Some([skill / 2.0 - 0.05, skill / 2.0 + 0.05]),
                },
            );
            let table: ForecasterTable = [
                ("model".to_owned(), m),
                ("smart_persistence".to_owned(), metrics(0.3, None)),
            ]
            .into_iter()
            .collect();
            Report {
                reference: "smart_persistence".into(),
                pooled: table.clone(),
                systems: [(50, table)].into_iter().collect(),
                inputs: None,
                ensemble: Vec::new(),
            }
        };
        let text = seed_table(&[report(0.10, 0.10), report(0.20, 0.30)]);
        assert!(text.starts_with("2 runs"), "{text}");
        assert!(
            text.contains("ss_id 50: 10 daylight pairs on 2 days"),
            "{text}"
        );
        let model = text.lines().find(|l| l.starts_with("model")).expect("row");
        assert!(model.contains("0.1500 ± 0.0707"), "{model}");
        assert!(model.contains("+20.0 ± 14.1%"), "{model}");
        assert!(model.contains("[+10.0%, +30.0%]"), "{model}");
        let reference = text.lines().find(|l| l.starts_with("smart")).expect("row");
        assert!(
            reference.contains("0.3000 ± 0.0000") && reference.contains(" - "),
            "{reference}"
        );
        // Skills 5 % and 15 % against the trees; intervals [0, 10] and [10, 20] average to [5, 15].
        let trees: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("model against gbt"))
            .collect();
        assert_eq!(trees.len(), 2, "pooled and ss_id 50: {text}");
        assert_eq!(
            trees[0],
            "model against gbt: skill +10.0 ± 7.1%, mean 95% interval [+5.0%, +15.0%]"
        );

        // One run's table says the same of that run.
        let one = table(&report(0.10, 0.10), 15);
        let line = one
            .lines()
            .find(|l| l.starts_with("model against gbt"))
            .expect("line");
        assert_eq!(
            line,
            "model against gbt: skill +5.0%, 95% interval [+0.0%, +10.0%]"
        );
    }
}
