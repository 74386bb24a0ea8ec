//! A whole dataset: every system's resampled PV series and the optional inputs, validated together.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Location, Result};
use crate::features::Modality;
use crate::generation::{BadValuePolicy, LoadReport, Selection, load_generation_selected};
use crate::inputs::{Nwp, Observations, Satellite, Scaler};
use crate::metadata::Metadata;
use crate::series::{PvSeries, resample};
use crate::time::UnixTime;

/// Where a dataset's files are. [`DataPaths::in_folder`] finds them by the conventional names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataPaths {
    /// Generation: one file or a folder of files.
    pub generation: PathBuf,
    /// System metadata (CSV or Parquet).
    pub metadata: PathBuf,
    /// Satellite imagery, if any.
    pub satellite: Option<PathBuf>,
    /// NWP forecasts, if any.
    pub nwp: Option<PathBuf>,
    /// Point observations, if any.
    pub observations: Option<PathBuf>,
}

fn first_existing(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.exists())
}

/// The generation files of the published uk_pv dataset, by the step they are sampled at, in the
/// order a folder is searched when no file is named: the finer of the two usual ones first. The
/// 2-minute file is read only when it is the only one.
pub const UK_PV_GENERATION: [(&str, i64); 3] = [("5min", 5), ("30min", 30), ("2min", 2)];

impl DataPaths {
    /// The conventional layout of a data folder:
    /// `generation.parquet` (or a `generation/` folder), `metadata.csv` (or `.parquet`), and
    /// optionally `satellite.parquet`, `nwp.parquet`, `observations.parquet` (`.arrow` also
    /// accepted). A folder as the uk_pv dataset publishes it, with `5min.parquet` and
    /// `30min.parquet` ([`UK_PV_GENERATION`]) in place of `generation.parquet`, loads too.
    pub fn in_folder(dir: &Path) -> Result<DataPaths> {
        DataPaths::in_folder_with(dir, None)
    }

    /// [`DataPaths::in_folder`], with the generation file named: `generation` names the file
    /// without its extension (`30min` for the uk_pv `30min.parquet`), or `None` for the search
    /// order of [`DataPaths::in_folder`].
    pub fn in_folder_with(dir: &Path, generation: Option<&str>) -> Result<DataPaths> {
        if !dir.is_dir() {
            return Err(DataError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
            ));
        }
        let missing = |what: &str| DataError::Empty {
            path: dir.to_owned(),
            what: format!("no {what} (expected {what}.parquet, {what}.arrow or a {what}/ folder)"),
        };
        let forms = |stem: &str| {
            [
                format!("{stem}.parquet"),
                format!("{stem}.arrow"),
                stem.to_owned(),
            ]
        };
        let find = |stem: &str| {
            forms(stem)
                .into_iter()
                .map(|n| dir.join(n))
                .find(|p| p.exists())
        };
        let generation = match generation {
            Some(stem) => find(stem).ok_or_else(|| DataError::Empty {
                path: dir.to_owned(),
                what: format!(
                    "no generation file {stem} (expected {stem}.parquet, {stem}.arrow or a \
                     {stem}/ folder)"
                ),
            })?,
            None => std::iter::once("generation")
                .chain(UK_PV_GENERATION.iter().map(|(stem, _)| *stem))
                .find_map(find)
                .ok_or_else(|| DataError::Empty {
                    path: dir.to_owned(),
                    what: "no generation (expected generation.parquet, generation.arrow, a \
                           generation/ folder, or the uk_pv 5min.parquet or 30min.parquet)"
                        .into(),
                })?,
        };
        let metadata = first_existing(dir, &["metadata.csv", "metadata.parquet", "metadata.arrow"])
            .ok_or_else(|| missing("metadata"))?;
        Ok(DataPaths {
            generation,
            metadata,
            satellite: first_existing(dir, &["satellite.parquet", "satellite.arrow"]),
            nwp: first_existing(dir, &["nwp.parquet", "nwp.arrow"]),
            observations: first_existing(dir, &["observations.parquet", "observations.arrow"]),
        })
    }

    /// The step, minutes, that the generation file's name states: 30 for the uk_pv
    /// `30min.parquet` ([`UK_PV_GENERATION`]); `None` for any other name.
    pub fn named_step_minutes(&self) -> Option<i64> {
        let stem = self.generation.file_stem()?.to_str()?;
        UK_PV_GENERATION
            .iter()
            .find(|(name, _)| *name == stem)
            .map(|&(_, minutes)| minutes)
    }
}

/// How to load a dataset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// Grid step, minutes.
    pub step_minutes: i64,
    /// What to do with bad values and systems without metadata.
    pub bad_values: BadValuePolicy,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            step_minutes: 15,
            bad_values: BadValuePolicy::Error,
        }
    }
}

/// One input's standardisation and the variables it applies to, in order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NamedScaler {
    /// Variable (or channel) names.
    pub variables: Vec<String>,
    /// Mean and standard deviation per variable.
    #[serde(flatten)]
    pub scaler: Scaler,
}

/// The standardisation of every optional input (`None` where the input is absent). A model
/// stores the scalers it was trained with and applies them to new data
/// ([`Dataset::use_scalers`]) instead of refitting on whatever folder it is given.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Scalers {
    /// Satellite channels.
    pub satellite: Option<NamedScaler>,
    /// NWP variables.
    pub nwp: Option<NamedScaler>,
    /// Observed variables.
    pub observations: Option<NamedScaler>,
}

/// Which inputs a dataset holds data for, and which it lacks but its model knows
/// ([`Dataset::inputs`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputUse {
    /// Inputs with data (PV first).
    pub present: Vec<Modality>,
    /// Inputs the model was trained with that the folder lacks: masked everywhere.
    pub absent: Vec<Modality>,
}

impl std::fmt::Display for InputUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |m: &[Modality]| m.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
        write!(f, "inputs used: {}", names(&self.present))?;
        if !self.absent.is_empty() {
            write!(f, "; absent from the data, masked: {}", names(&self.absent))?;
        }
        Ok(())
    }
}

/// A loaded, validated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it came from.
    pub paths: DataPaths,
    /// How it was loaded.
    pub config: LoadConfig,
    /// One resampled series per system with metadata, ordered by ss_id.
    pub systems: Vec<PvSeries>,
    /// Satellite imagery, if provided.
    pub satellite: Option<Satellite>,
    /// NWP forecasts, if provided.
    pub nwp: Option<Nwp>,
    /// Point observations, if provided.
    pub observations: Option<Observations>,
    /// What loading found (rows, nulls, masked values).
    pub report: LoadReport,
}

impl Dataset {
    /// Loads and validates the data folder `dir` in the conventional layout
    /// ([`DataPaths::in_folder`]).
    pub fn load_folder(dir: &Path, config: LoadConfig) -> Result<Dataset> {
        Dataset::load(&DataPaths::in_folder(dir)?, config)
    }

    /// Loads and validates every file named in `paths`.
    pub fn load(paths: &DataPaths, config: LoadConfig) -> Result<Dataset> {
        Dataset::load_selected(paths, config, &Selection::default())
    }

    /// [`Dataset::load`] of the selected systems and time window of the generation only
    /// ([`Selection`]: streamed, with Parquet row groups outside it never read). The other
    /// inputs are read whole.
    pub fn load_selected(
        paths: &DataPaths,
        config: LoadConfig,
        selection: &Selection,
    ) -> Result<Dataset> {
        if config.step_minutes <= 0 || 1440 % config.step_minutes != 0 {
            return Err(DataError::Config(format!(
                "step_minutes must be a positive divisor of a day, got {}",
                config.step_minutes
            )));
        }
        let metadata = Metadata::load(&paths.metadata)?;
        let generation = load_generation_selected(&paths.generation, config.bad_values, selection)?;
        let mut report = generation.report.clone();
        let mut kept = Vec::new();
        for (ss_id, raw) in &generation.systems {
            if metadata.systems.contains_key(ss_id) {
                kept.push(raw);
                continue;
            }
            match config.bad_values {
                BadValuePolicy::Error => {
                    let (file, row) = raw.origin[0];
                    return Err(DataError::UnknownSystem {
                        at: Location::cell(&generation.files[file as usize], "ss_id", row as usize),
                        ss_id: *ss_id,
                        metadata: metadata.path.clone(),
                    });
                }
                BadValuePolicy::MaskAndReport => report.systems_without_metadata.push(*ss_id),
            }
        }
        let step_s = config.step_minutes * 60;
        let resampled: Vec<(PvSeries, LoadReport)> = kept
            .par_iter()
            .map(|raw| {
                let mut local = LoadReport::default();
                let meta = &metadata.systems[&raw.ss_id];
                resample(
                    raw,
                    meta,
                    step_s,
                    config.bad_values,
                    &generation.files,
                    &mut local,
                )
                .map(|s| (s, local))
            })
            .collect::<Result<_>>()?;
        let mut systems = Vec::with_capacity(resampled.len());
        for (series, local) in resampled {
            for (kind, n) in local.masked {
                *report.masked.entry(kind).or_default() += n;
            }
            systems.push(series);
        }
        if systems.is_empty() {
            return Err(DataError::Empty {
                path: paths.generation.clone(),
                what: if selection.is_everything() {
                    "no system with metadata".into()
                } else {
                    format!("no system with metadata in the selection ({selection})")
                },
            });
        }
        let satellite = paths
            .satellite
            .as_deref()
            .map(Satellite::load)
            .transpose()?;
        let nwp = paths.nwp.as_deref().map(Nwp::load).transpose()?;
        let observations = paths
            .observations
            .as_deref()
            .map(Observations::load)
            .transpose()?;
        Ok(Dataset {
            paths: paths.clone(),
            config,
            systems,
            satellite,
            nwp,
            observations,
            report,
        })
    }

    /// Grid step, seconds.
    pub fn step_s(&self) -> i64 {
        self.config.step_minutes * 60
    }

    /// The input standardisation fitted at load time, with the variable names it applies to.
    pub fn scalers(&self) -> Scalers {
        Scalers {
            satellite: self.satellite.as_ref().map(Input::named_scaler),
            nwp: self.nwp.as_ref().map(Input::named_scaler),
            observations: self.observations.as_ref().map(Input::named_scaler),
        }
    }

    /// Refits every input's standardisation on the systems' training blocks only: the rows whose
    /// time (image time; NWP valid time; observation time) lies inside the training block of
    /// some system (of that system itself, for point observations). The load-time fit uses the
    /// earliest 70 % of each input's own range, which need not match the systems' blocks: on the
    /// bundled data it reached into PVDAQ 50's validation and test period.
    pub fn fit_scalers(&mut self, examples: &crate::ExampleConfig) {
        let blocks: std::collections::BTreeMap<i64, crate::split::Block> = self
            .systems
            .iter()
            .filter_map(|s| {
                crate::split::block(
                    s,
                    crate::Split::Train,
                    &examples.split,
                    examples.example_steps(),
                )
                .map(|b| (s.meta.ss_id, b))
            })
            .collect();
        let in_any = |t: UnixTime| blocks.values().any(|b| b.first <= t && t <= b.last);
        if let Some(sat) = &mut self.satellite {
            let (pixels, nc) = (sat.pixels.len(), sat.channels.len());
            let rows = sat
                .times
                .iter()
                .enumerate()
                .filter(|&(_, &t)| in_any(t))
                .flat_map(|(image, _)| {
                    let values = &sat.values;
                    (0..pixels).map(move |p| {
                        let at = (image * pixels + p) * nc;
                        &values[at..at + nc]
                    })
                });
            sat.scaler = Scaler::from_rows(nc, rows.collect::<Vec<_>>());
        }
        if let Some(nwp) = &mut self.nwp {
            let nv = nwp.variables.len();
            let (steps, points) = (nwp.steps_s.len(), nwp.points.len());
            let mut rows = Vec::new();
            for (init, &t) in nwp.inits.iter().enumerate() {
                for (step, &lead) in nwp.steps_s.iter().enumerate() {
                    if !in_any(UnixTime(t.0 + lead)) {
                        continue;
                    }
                    for p in 0..points {
                        let at = ((init * steps + step) * points + p) * nv;
                        rows.push(&nwp.values[at..at + nv]);
                    }
                }
            }
            nwp.scaler = Scaler::from_rows(nv, rows);
        }
        if let Some(obs) = &mut self.observations {
            let nv = obs.variables.len();
            let mut rows = Vec::new();
            for (ss_id, (times, values)) in &obs.systems {
                let own = blocks.get(ss_id);
                for (r, &t) in times.iter().enumerate() {
                    let inside = match own {
                        Some(b) => b.first <= t && t <= b.last,
                        None => in_any(t),
                    };
                    if inside {
                        rows.push(&values[r * nv..(r + 1) * nv]);
                    }
                }
            }
            obs.scaler = Scaler::from_rows(nv, rows);
        }
    }

    /// Replaces the fitted standardisation with `scalers` (those a model was trained with), so a
    /// model sees new data on the scale it learnt.
    ///
    /// An input the model was trained with but the data lack is installed *absent*: the same
    /// variables and scaler, and no values, so every example has no token of it and no value of
    /// it in its queries (all masked) and the feature widths stay the model's. An input the data
    /// have must be one the model was trained with, with the same variables in the same order;
    /// anything else is [`DataError::IncompatibleInput`]. [`Dataset::inputs`] says afterwards which
    /// inputs hold data.
    pub fn use_scalers(&mut self, scalers: &Scalers) -> Result<()> {
        fn conform<I: Input>(
            input: &'static str,
            trained: &Option<NamedScaler>,
            have: &mut Option<I>,
        ) -> Result<()> {
            let variables = |v: &[String]| format!("variables [{}]", v.join(", "));
            let expected = match trained {
                Some(t) => format!("with {}", variables(&t.variables)),
                None => "without this input (remove it from the folder, or train with it)".into(),
            };
            match (trained, have.as_mut()) {
                (None, None) => Ok(()),
                (Some(t), None) => {
                    *have = Some(I::absent(t));
                    Ok(())
                }
                (Some(t), Some(h)) if t.variables == h.variables() => {
                    *h.scaler_mut() = t.scaler.clone();
                    Ok(())
                }
                (_, h) => Err(DataError::IncompatibleInput {
                    input,
                    expected,
                    found: h.map_or_else(String::new, |h| variables(h.variables())),
                }),
            }
        }
        conform("satellite", &scalers.satellite, &mut self.satellite)?;
        conform("nwp", &scalers.nwp, &mut self.nwp)?;
        conform(
            "observations",
            &scalers.observations,
            &mut self.observations,
        )
    }

    /// Which inputs hold data ([`InputUse::present`], PV always) and which are known but absent
    /// from the folder, so every value of them is masked ([`InputUse::absent`]; see
    /// [`Dataset::use_scalers`]).
    pub fn inputs(&self) -> InputUse {
        let mut inputs = InputUse {
            present: vec![Modality::Pv],
            absent: Vec::new(),
        };
        let optional = [
            (
                Modality::Satellite,
                self.satellite.is_some(),
                &self.paths.satellite,
            ),
            (
                Modality::Observations,
                self.observations.is_some(),
                &self.paths.observations,
            ),
            (Modality::Nwp, self.nwp.is_some(), &self.paths.nwp),
        ];
        for (modality, known, file) in optional {
            match (known, file) {
                (true, Some(_)) => inputs.present.push(modality),
                (true, None) => inputs.absent.push(modality),
                (false, _) => {}
            }
        }
        inputs
    }

    /// A summary for people: systems, ranges, missing fractions, what loading found.
    pub fn summary(&self) -> DataSummary {
        DataSummary {
            step_minutes: self.config.step_minutes,
            systems: self
                .systems
                .iter()
                .map(|s| SystemSummary {
                    ss_id: s.meta.ss_id,
                    first: s.start.to_string(),
                    last: s.end().to_string(),
                    days: (s.end().0 - s.start.0) as f64 / 86_400.0,
                    native_interval_minutes: s.native_interval_s / 60,
                    intervals: s.len(),
                    missing_fraction: 1.0 - s.observed_fraction(),
                    capacity_kwp: s.meta.capacity_kwp,
                    latitude_deg: s.meta.latitude_deg,
                    longitude_deg: s.meta.longitude_deg,
                    max_normalised_power: s
                        .power_kw
                        .iter()
                        .filter(|p| !p.is_nan())
                        .fold(0.0f32, |m, &p| m.max(p / s.meta.capacity_kwp as f32)),
                })
                .collect(),
            satellite: self.satellite.as_ref().map(Input::summary),
            nwp: self.nwp.as_ref().map(Input::summary),
            observations: self.observations.as_ref().map(Input::summary),
            report: self.report.clone(),
        }
    }
}

/// What the inputs beside PV have in common: named variables standardised by one scaler, and a
/// summary for people. [`Dataset`] handles its satellite, NWP and observations through it.
trait Input {
    /// The variables (channels), in value order.
    fn variables(&self) -> &[String];
    /// Their standardisation.
    fn scaler(&self) -> &Scaler;
    /// Their standardisation, to replace.
    fn scaler_mut(&mut self) -> &mut Scaler;
    /// Ranges, sizes and missing values.
    fn summary(&self) -> InputSummary;
    /// An input with these variables and standardisation and no values: what a data folder
    /// without the input stands for, to a model trained with it.
    fn absent(named: &NamedScaler) -> Self
    where
        Self: Sized;

    /// The scaler with the variable names it applies to.
    fn named_scaler(&self) -> NamedScaler {
        NamedScaler {
            variables: self.variables().to_vec(),
            scaler: self.scaler().clone(),
        }
    }
}

impl Input for Satellite {
    fn absent(named: &NamedScaler) -> Self {
        Satellite {
            path: PathBuf::new(),
            channels: named.variables.clone(),
            times: Vec::new(),
            pixels: Vec::new(),
            values: Vec::new(),
            scaler: named.scaler.clone(),
        }
    }
    fn variables(&self) -> &[String] {
        &self.channels
    }
    fn scaler(&self) -> &Scaler {
        &self.scaler
    }
    fn scaler_mut(&mut self) -> &mut Scaler {
        &mut self.scaler
    }
    fn summary(&self) -> InputSummary {
        gridded_summary(&self.channels, &self.times, self.pixels.len(), &self.values)
    }
}

impl Input for Nwp {
    fn absent(named: &NamedScaler) -> Self {
        Nwp {
            path: PathBuf::new(),
            variables: named.variables.clone(),
            points: Vec::new(),
            inits: Vec::new(),
            steps_s: Vec::new(),
            values: Vec::new(),
            scaler: named.scaler.clone(),
        }
    }
    fn variables(&self) -> &[String] {
        &self.variables
    }
    fn scaler(&self) -> &Scaler {
        &self.scaler
    }
    fn scaler_mut(&mut self) -> &mut Scaler {
        &mut self.scaler
    }
    fn summary(&self) -> InputSummary {
        gridded_summary(
            &self.variables,
            &self.inits,
            self.points.len(),
            &self.values,
        )
    }
}

impl Input for Observations {
    fn absent(named: &NamedScaler) -> Self {
        Observations {
            path: PathBuf::new(),
            variables: named.variables.clone(),
            systems: Default::default(),
            scaler: named.scaler.clone(),
        }
    }
    fn variables(&self) -> &[String] {
        &self.variables
    }
    fn scaler(&self) -> &Scaler {
        &self.scaler
    }
    fn scaler_mut(&mut self) -> &mut Scaler {
        &mut self.scaler
    }
    fn summary(&self) -> InputSummary {
        InputSummary {
            variables: self.variables.clone(),
            first: self
                .systems
                .values()
                .filter_map(|(t, _)| t.first())
                .min()
                .map(UnixTime::to_string)
                .unwrap_or_default(),
            last: self
                .systems
                .values()
                .filter_map(|(t, _)| t.last())
                .max()
                .map(UnixTime::to_string)
                .unwrap_or_default(),
            times: self.systems.values().map(|(t, _)| t.len()).sum(),
            places: self.systems.len(),
            missing_fraction: missing_fraction(
                &self
                    .systems
                    .values()
                    .flat_map(|(_, v)| v.iter().copied())
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// The summary of an input whose values sit on one increasing list of times and a fixed set of
/// places (satellite images, NWP runs).
fn gridded_summary(
    variables: &[String],
    times: &[UnixTime],
    places: usize,
    values: &[f32],
) -> InputSummary {
    InputSummary {
        variables: variables.to_vec(),
        first: times.first().map(UnixTime::to_string).unwrap_or_default(),
        last: times.last().map(UnixTime::to_string).unwrap_or_default(),
        times: times.len(),
        places,
        missing_fraction: missing_fraction(values),
    }
}

fn missing_fraction(values: &[f32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|v| v.is_nan()).count() as f64 / values.len() as f64
}

/// One system, summarised.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SystemSummary {
    /// The system.
    pub ss_id: i64,
    /// End of its first grid interval (UTC).
    pub first: String,
    /// End of its last grid interval (UTC).
    pub last: String,
    /// Days spanned.
    pub days: f64,
    /// Interval of the source readings, minutes.
    pub native_interval_minutes: i64,
    /// Grid intervals.
    pub intervals: usize,
    /// Fraction of grid intervals not observed.
    pub missing_fraction: f64,
    /// Capacity, kWp.
    pub capacity_kwp: f64,
    /// Latitude, degrees.
    pub latitude_deg: f64,
    /// Longitude, degrees.
    pub longitude_deg: f64,
    /// Highest observed power / kWp.
    pub max_normalised_power: f32,
}

/// An optional input, summarised.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputSummary {
    /// Channels or variables.
    pub variables: Vec<String>,
    /// First time (image time, init time or observation time).
    pub first: String,
    /// Last time.
    pub last: String,
    /// Number of times (images, inits, or observation rows).
    pub times: usize,
    /// Pixels, grid points or systems.
    pub places: usize,
    /// Fraction of values missing.
    pub missing_fraction: f64,
}

/// A dataset, summarised.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataSummary {
    /// Grid step, minutes.
    pub step_minutes: i64,
    /// Per system.
    pub systems: Vec<SystemSummary>,
    /// Satellite, if any.
    pub satellite: Option<InputSummary>,
    /// NWP, if any.
    pub nwp: Option<InputSummary>,
    /// Point observations, if any.
    pub observations: Option<InputSummary>,
    /// What loading found.
    pub report: LoadReport,
}

impl DataSummary {
    /// The summary as Markdown tables (what `docs/DATA.md` embeds).
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "Grid step: {} min.\n", self.step_minutes);
        let _ = writeln!(
            out,
            "| ss_id | first interval end (UTC) | last (UTC) | days | source interval | grid steps | missing | kWp | lat | lon | max power/kWp |"
        );
        let _ = writeln!(
            out,
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.systems {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} min | {} | {:.1} % | {:.3} | {:.4} | {:.4} | {:.3} |",
                s.ss_id,
                s.first,
                s.last,
                s.days,
                s.native_interval_minutes,
                s.intervals,
                100.0 * s.missing_fraction,
                s.capacity_kwp,
                s.latitude_deg,
                s.longitude_deg,
                s.max_normalised_power
            );
        }
        let _ = writeln!(
            out,
            "\n| input | variables | first | last | times | places | missing |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|---:|---:|");
        for (name, input) in [
            ("satellite", &self.satellite),
            ("nwp", &self.nwp),
            ("observations", &self.observations),
        ] {
            match input {
                Some(i) => {
                    let _ = writeln!(
                        out,
                        "| {name} | {} | {} | {} | {} | {} | {:.1} % |",
                        i.variables.join(", "),
                        i.first,
                        i.last,
                        i.times,
                        i.places,
                        100.0 * i.missing_fraction
                    );
                }
                None => {
                    let _ = writeln!(out, "| {name} | none | | | | | |");
                }
            }
        }
        let _ = writeln!(
            out,
            "\nGeneration rows read: {} from {} file(s); null values kept as missing: {}; values masked: {}.",
            self.report.rows,
            self.report.files,
            self.report.null_values,
            self.report.masked.values().sum::<usize>()
        );
        out
    }
}

impl std::fmt::Display for DataSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "grid step: {} min", self.step_minutes)?;
        writeln!(
            f,
            "{:>8} {:>21} {:>21} {:>7} {:>6} {:>8} {:>8} {:>7} {:>8}",
            "ss_id",
            "first (UTC)",
            "last (UTC)",
            "days",
            "src",
            "steps",
            "missing",
            "kWp",
            "max p/kWp"
        )?;
        for s in &self.systems {
            writeln!(
                f,
                "{:>8} {:>21} {:>21} {:>7.1} {:>4}min {:>8} {:>7.1}% {:>7.3} {:>8.3}",
                s.ss_id,
                s.first,
                s.last,
                s.days,
                s.native_interval_minutes,
                s.intervals,
                100.0 * s.missing_fraction,
                s.capacity_kwp,
                s.max_normalised_power
            )?;
        }
        for (name, input) in [
            ("satellite", &self.satellite),
            ("nwp", &self.nwp),
            ("observations", &self.observations),
        ] {
            match input {
                Some(i) => writeln!(
                    f,
                    "{name}: {} ({}), {} .. {}, {} times x {} places, {:.1}% missing",
                    i.variables.len(),
                    i.variables.join(", "),
                    i.first,
                    i.last,
                    i.times,
                    i.places,
                    100.0 * i.missing_fraction
                )?,
                None => writeln!(f, "{name}: none")?,
            }
        }
        writeln!(
            f,
            "loaded {} rows from {} file(s); {} null values kept as missing; masked: {:?}; systems without metadata: {:?}",
            self.report.rows,
            self.report.files,
            self.report.null_values,
            self.report.masked,
            self.report.systems_without_metadata
        )
    }
}
