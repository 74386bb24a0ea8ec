//! PNG plots (plotters, bitmap backend, a bundled font so no system font library is needed):
//! loss curves, nMAE by lead time for the model and the baselines, and forecast fans (quantile
//! bands) against what happened.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use forecaster::ForecastRow;
use pv_data::UnixTime;

use crate::metrics::Report;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid (a test draws every plot); if it were not, text would be
        // missing, not the plot.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans-subset.ttf"),
        );
    });
}

/// Draws into `path` through a temporary file renamed into place, so a failed draw never
/// leaves half a picture.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plot")
        .to_owned();
    let tmp = path.with_file_name(format!("{stem}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// A chart over `x` × `y` on `area`, with its caption and its mesh (axes, labels) drawn.
struct Axes<'s> {
    caption: String,
    caption_size: u32,
    margin: u32,
    /// Room for the x and y labels, pixels.
    label_areas: (u32, u32),
    x_desc: &'s str,
    y_desc: &'s str,
    /// Decimals of the x tick labels.
    x_decimals: usize,
    label_size: u32,
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

impl Axes<'_> {
    fn draw<'a, 'b>(
        &self,
        area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
        x: std::ops::Range<f64>,
        y: std::ops::Range<f64>,
    ) -> Result<Chart<'a, 'b>> {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.caption, (FONT, self.caption_size))
            .margin(self.margin)
            .x_label_area_size(self.label_areas.0)
            .y_label_area_size(self.label_areas.1)
            .build_cartesian_2d(x, y)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(&|x| format!("{x:.*}", self.x_decimals))
            .label_style((FONT, self.label_size))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        Ok(chart)
    }
}

/// Draws the chart's legend at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
    size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, size))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// Splits `points` at non-finite values into drawable runs.
fn runs(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (x, y) in points {
        if y.is_finite() {
            if let Some(run) = out.last_mut() {
                run.push((x, y));
            }
        } else if out.last().is_some_and(|r| !r.is_empty()) {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Training loss (each step and its moving average) and validation nMAE, from `metrics.jsonl`.
pub fn loss_curves(metrics: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    let mut loss = Vec::new();
    let mut validation = Vec::new();
    let mut baseline = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", metrics.display(), i + 1))?;
        let step = v["step"].as_f64().unwrap_or(f64::NAN);
        match v["kind"].as_str() {
            Some("step") => loss.push((step + 1.0, v["loss"].as_f64().unwrap_or(f64::NAN))),
            Some("validation") => {
                validation.push((step, v["nmae"].as_f64().unwrap_or(f64::NAN)));
                baseline.push((
                    step,
                    v["smart_persistence_nmae"].as_f64().unwrap_or(f64::NAN),
                ));
            }
            _ => {}
        }
    }
    let mut smooth = Vec::with_capacity(loss.len());
    let mut ema = f64::NAN;
    for &(x, y) in &loss {
        ema = if ema.is_nan() {
            y
        } else {
            0.95 * ema + 0.05 * y
        };
        smooth.push((x, ema));
    }
    let steps = loss.last().map_or(1.0, |p| p.0).max(1.0);
    draw_png(out, (900, 700), |root| {
        let (top, bottom) = root.split_vertically(380);
        let (lo, hi) = range(loss.iter().map(|p| p.1));
        let steps_axes = |caption: &str| Axes {
            caption: caption.to_owned(),
            caption_size: 20,
            margin: 10,
            label_areas: (35, 60),
            x_desc: "step",
            y_desc: "",
            x_decimals: 0,
            label_size: 13,
        };
        let mut chart =
            steps_axes("training loss (pinball)").draw(&top, 0.0..steps, lo.min(0.0)..hi * 1.05)?;
        chart
            .draw_series(LineSeries::new(loss.iter().copied(), COLOURS[0].mix(0.3)))
            .map_err(|e| anyhow!("{e}"))?
            .label("each step")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], COLOURS[0].mix(0.3)));
        chart
            .draw_series(LineSeries::new(smooth, COLOURS[0].stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label("moving average")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], COLOURS[0].stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::MiddleRight, 13)?;

        let (lo, hi) = range(validation.iter().chain(&baseline).map(|p| p.1));
        let mut chart = steps_axes("validation daylight nMAE").draw(
            &bottom,
            0.0..steps,
            (lo * 0.9)..(hi * 1.1),
        )?;
        for (series, name, colour) in [
            (&validation, "model", COLOURS[0]),
            (&baseline, "smart persistence", COLOURS[3]),
        ] {
            chart
                .draw_series(LineSeries::new(
                    series.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(series.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| anyhow!("{e}"))?;
        }
        legend(&mut chart, SeriesLabelPosition::MiddleRight, 13)?;
        Ok(())
    })
}

/// Daylight nMAE per lead time, model and baselines.
pub fn nmae_by_lead(report: &Report, step_minutes: i64, out: &Path) -> Result<()> {
    let order = [
        "model",
        "gbt",
        "persistence",
        "smart_persistence",
        "clear_sky_ratio",
    ];
    let k = report.get("model").map_or(0, |m| m.nmae_by_lead.len());
    let hours = |i: usize| (i as f64 + 1.0) * step_minutes as f64 / 60.0;
    let (_, hi) = range(
        report
            .pooled
            .values()
            .flat_map(|m| m.nmae_by_lead.iter().copied()),
    );
    draw_png(out, (900, 520), |root| {
        let axes = Axes {
            caption: "test daylight nMAE by lead time".into(),
            caption_size: 20,
            margin: 12,
            label_areas: (40, 60),
            x_desc: "lead time (hours)",
            y_desc: "nMAE (MAE / kWp)",
            x_decimals: 1,
            label_size: 13,
        };
        let mut chart = axes.draw(root, 0.0..hours(k.max(1) - 1) + 0.1, 0.0..hi * 1.1)?;
        for (name, colour) in order.iter().zip(COLOURS) {
            let Some(m) = report.get(name) else { continue };
            let label = format!("{} ({:.3})", name.replace('_', " "), m.nmae);
            let width = if *name == "model" { 3 } else { 2 };
            chart
                .draw_series(LineSeries::new(
                    m.nmae_by_lead
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (hours(i), v)),
                    colour.stroke_width(width),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(width))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 14)?;
        Ok(())
    })
}

/// One line of the skill plot: a comparison within a group of systems.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SkillRow {
    /// "all systems" or "ss_id N (D days)".
    pub group: String,
    /// What is compared: "model vs smart persistence", "gbt vs smart persistence" or "model vs gbt".
    pub what: String,
    /// The skill, and its 95 % interval where there is one.
    pub skill: f64,
    pub interval: Option<[f64; 2]>,
}

/// The skill plot's lines: pooled, then each system; in each, the model's and the trees' skill
/// against the report's reference, then the model's against the trees. Comparisons a report
/// lacks (no trees, no pairs) are left out.
pub(crate) fn skill_rows(report: &Report) -> Vec<SkillRow> {
    let reference = report.reference.replace('_', " ");
    let groups = std::iter::once(("all systems".to_owned(), &report.pooled)).chain(
        report.systems.iter().map(|(id, table)| {
            let days = table.values().map(|m| m.days).max().unwrap_or(0);
            (format!("ss_id {id} ({days} days)"), table)
        }),
    );
    let mut rows = Vec::new();
    for (group, table) in groups {
        let mut push = |what: String, skill: Option<f64>, interval: Option<[f64; 2]>| {
            if let Some(skill) = skill.filter(|s| s.is_finite()) {
                rows.push(SkillRow {
                    group: group.clone(),
                    what,
                    skill,
                    interval,
                });
            }
        };
        for name in ["model", "gbt"] {
            if let Some(m) = table.get(name).filter(|m| m.daylight_targets > 0) {
                push(format!("{name} vs {reference}"), m.skill, m.skill_interval);
            }
        }
        if let Some(m) = table.get("model").filter(|m| m.daylight_targets > 0) {
            for (rival, s) in &m.skill_against {
                push(format!("model vs {rival}"), Some(s.skill), s.interval);
            }
        }
    }
    rows
}

/// Skill with its 95 % day-block interval, per system and pooled: the model and the trees
/// against the reference, and the model against the trees (a point and a whisker a line; right
/// of the zero line is better than what it is compared with).
pub fn skill_intervals(report: &Report, out: &Path) -> Result<()> {
    let rows = skill_rows(report);
    let n = rows.len().max(1);
    let percent = |x: f64| 100.0 * x;
    let (lo, hi) = range(rows.iter().flat_map(|r| {
        let [a, b] = r.interval.unwrap_or([r.skill, r.skill]);
        [percent(a), percent(b), percent(r.skill), 0.0]
    }));
    let pad = 0.05 * (hi - lo);
    let label_width = 330;
    draw_png(out, (900, 90 + 22 * n as u32), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("test daylight skill, 95 % day-block interval", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d((lo - pad)..(hi + pad), -0.5..(n as f64 - 0.5))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("skill (%): 1 - nMAE / nMAE(what it is compared with)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let zero = [(0.0, -0.5), (0.0, n as f64 - 0.5)];
        chart
            .draw_series(std::iter::once(PathElement::new(
                zero,
                BLACK.stroke_width(1),
            )))
            .map_err(|e| anyhow!("{e}"))?;
        let colour = |what: &str| match what {
            w if w.starts_with("model vs gbt") => COLOURS[2],
            w if w.starts_with("gbt") => COLOURS[1],
            _ => COLOURS[0],
        };
        for (i, row) in rows.iter().enumerate() {
            // The first line at the top.
            let y = (n - 1 - i) as f64;
            let c = colour(&row.what);
            if let Some([a, b]) = row.interval {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        [(percent(a), y), (percent(b), y)],
                        c.stroke_width(2),
                    )))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            chart
                .draw_series(std::iter::once(Circle::new(
                    (percent(row.skill), y),
                    4,
                    c.filled(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
            let (_, py) = chart.backend_coord(&(lo, y));
            let first_of_group = i == 0 || rows[i - 1].group != row.group;
            let (text, x) = if first_of_group {
                (format!("{}: {}", row.group, row.what), 16)
            } else {
                (row.what.clone(), 40)
            };
            if first_of_group && i > 0 {
                let between = [(lo - pad, y + 0.5), (hi + pad, y + 0.5)];
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        between,
                        BLACK.mix(0.25).stroke_width(1),
                    )))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            root.draw(&Text::new(
                text,
                (x, py - 7),
                (FONT, 13).into_font().color(&c),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    })
}

/// One forecast with its history and outcome, for a fan plot.
#[derive(Debug, Clone)]
pub struct Fan {
    /// The system.
    pub ss_id: i64,
    /// Forecast time.
    pub t0: UnixTime,
    /// Grid step, minutes.
    pub step_minutes: i64,
    /// Observed power over the history steps, kW (NaN where missing), oldest first.
    pub history_kw: Vec<f32>,
    /// The forecast rows, one per lead time.
    pub rows: Vec<ForecastRow>,
    /// Quantile levels.
    pub levels: Vec<f64>,
}

/// A grid of forecast fans: observed history and outcome (black), the median (blue) and the
/// outer quantiles as a band, for several systems and days.
pub fn forecast_fans(fans: &[Fan], out: &Path) -> Result<()> {
    let cols = 2usize;
    let rows = fans.len().div_ceil(cols).max(1);
    draw_png(out, (1000, 300 * rows as u32), |root| {
        let panels = root.split_evenly((rows, cols));
        for (fan, panel) in fans.iter().zip(&panels) {
            let step_h = fan.step_minutes as f64 / 60.0;
            let h = fan.history_kw.len();
            let history: Vec<(f64, f64)> = fan
                .history_kw
                .iter()
                .enumerate()
                .map(|(i, &p)| (-((h - 1 - i) as f64) * step_h, p as f64))
                .collect();
            let lead = |r: &ForecastRow| r.lead_minutes as f64 / 60.0;
            let observed: Vec<(f64, f64)> = fan
                .rows
                .iter()
                .map(|r| (lead(r), r.observed_kw as f64))
                .collect();
            let q = fan.levels.len();
            let middle = fan
                .levels
                .iter()
                .position(|&l| (l - 0.5).abs() < 1e-9)
                .unwrap_or(q / 2);
            let (_, hi) = range(
                history.iter().chain(&observed).map(|p| p.1).chain(
                    fan.rows
                        .iter()
                        .flat_map(|r| r.quantiles_kw.iter().map(|&v| v as f64)),
                ),
            );
            let x_max = fan.rows.last().map_or(1.0, lead);
            let axes = Axes {
                caption: format!("ss_id {}, t0 {}", fan.ss_id, fan.t0),
                caption_size: 15,
                margin: 8,
                label_areas: (30, 45),
                x_desc: "hours from t0",
                y_desc: "kW",
                x_decimals: 1,
                label_size: 12,
            };
            let x_min = -((h - 1) as f64) * step_h;
            let mut chart = axes.draw(panel, x_min..x_max, 0.0..hi * 1.08)?;
            let mut band: Vec<(f64, f64)> = fan
                .rows
                .iter()
                .map(|r| (lead(r), r.quantiles_kw[q - 1] as f64))
                .collect();
            band.extend(
                fan.rows
                    .iter()
                    .rev()
                    .map(|r| (lead(r), r.quantiles_kw[0] as f64)),
            );
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    COLOURS[0].mix(0.25).filled(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
            chart
                .draw_series(LineSeries::new(
                    fan.rows
                        .iter()
                        .map(|r| (lead(r), r.quantiles_kw[middle] as f64)),
                    COLOURS[0].stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?;
            for run in runs(history.iter().copied().chain(observed.iter().copied())) {
                chart
                    .draw_series(LineSeries::new(run, BLACK.stroke_width(2)))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(0.0, 0.0), (0.0, hi * 1.08)],
                    BLACK.mix(0.4),
                )))
                .map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{SkillRow, runs, skill_rows};
    use crate::metrics::{ForecasterMetrics, Report, Skill};

    fn metrics(skill: Option<f64>, days: usize) -> ForecasterMetrics {
        ForecasterMetrics::example(0.1, skill, days)
    }

    /// Pooled first, then each system; the model and the trees against the reference, then the
    /// model against the trees; a system without trees has only the model's line.
    #[test]
    fn the_skill_plot_has_a_line_per_comparison_in_report_order() {
        let mut model = metrics(Some(0.2), 5);
        model.skill_against.insert(
            "gbt".into(),
            Skill {
                skill: 0.05,
                interval: None,
            },
        );
        let full = [
            ("model".to_owned(), model),
            ("gbt".to_owned(), metrics(Some(0.15), 5)),
            ("smart_persistence".to_owned(), metrics(None, 5)),
        ]
        .into_iter()
        .collect();
        let no_trees = [
            ("model".to_owned(), metrics(Some(-0.1), 2)),
            ("smart_persistence".to_owned(), metrics(None, 2)),
        ]
        .into_iter()
        .collect();
        let report = Report {
            reference: "smart_persistence".into(),
            pooled: full,
            systems: [(7, no_trees)].into_iter().collect(),
            inputs: None,
            ensemble: Vec::new(),
        };
        let rows = skill_rows(&report);
        let line = |group: &str, what: &str, skill: f64, interval: Option<[f64; 2]>| SkillRow {
            group: group.into(),
            what: what.into(),
            skill,
            interval,
        };
        assert_eq!(
            rows,
            vec![
                line(
                    "all systems",
                    "model vs smart persistence",
                    0.2,
                    Some([0.2 - 0.1, 0.2 + 0.1])
                ),
                line(
                    "all systems",
                    "gbt vs smart persistence",
                    0.15,
                    Some([0.15 - 0.1, 0.15 + 0.1])
                ),
                line("all systems", "model vs gbt", 0.05, None),
                line(
                    "ss_id 7 (2 days)",
                    "model vs smart persistence",
                    -0.1,
                    Some([-0.1 - 0.1, -0.1 + 0.1])
                ),
            ]
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("skill.png");
        super::skill_intervals(&report, &out).expect("draw");
        let bytes = std::fs::read(&out).expect("png");
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn runs_split_at_missing_values() {
        let r = runs([
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 3.0),
            (4.0, f64::NAN),
        ]);
        assert_eq!(r, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }
}
