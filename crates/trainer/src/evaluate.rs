//! Evaluation: the model, the baselines and the gradient-boosted trees scored by one metric code
//! on the same examples of a split, and the fitting of what the baselines need (on the training
//! split only).

use anyhow::{Context, Result};
use candle_core::Device;
use forecaster::baselines::{BASELINES, ClearSkyScale, forecasts};
use forecaster::{PvForecaster, SavedModel, predict_batches};
use pv_data::{Batch, Dataset, ExampleKey, Split, build_batch, evenly_spaced, example_keys};

use crate::config::RunConfig;
use crate::gbt::Gbt;
use crate::metrics::{Metrics, Report};

/// The full run configuration a model was trained with (a [`SavedModel`] itself keeps only what
/// forecasting needs): evaluation also needs its batch size and the trees' settings.
pub fn run_config(saved: &SavedModel) -> Result<RunConfig> {
    let config: RunConfig = saved.checkpoint.toml("config")?;
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: the stored configuration", saved.path().display()))?;
    Ok(config)
}

/// Fits the baselines' clear-sky scale on (a sample of) the training split only.
pub fn fit_clear_sky_scale(dataset: &Dataset, config: &RunConfig) -> Result<ClearSkyScale> {
    let train_keys = example_keys(dataset, &config.examples, Split::Train)?;
    let sample = evenly_spaced(&train_keys, 20_000);
    Ok(ClearSkyScale::fit([&build_batch(
        dataset,
        &config.examples,
        &sample,
        Split::Train,
    )]))
}

/// Evaluates the model, the baselines and (when given) the gradient-boosted baseline on `keys`,
/// in batches.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &PvForecaster,
    dataset: &Dataset,
    config: &RunConfig,
    keys: &[ExampleKey],
    split: Split,
    scale: &ClearSkyScale,
    gbt: Option<&Gbt>,
    device: &Device,
) -> Result<Report> {
    let mut metrics = new_metrics(dataset, config);
    let to_score = Scored {
        models: vec![model],
        scale,
        gbt,
        device,
    };
    to_score.add(&mut metrics, dataset, config, keys, split)?;
    Ok(metrics.report(REFERENCE))
}

/// What an evaluation scores: the model (one network, or an ensemble's members, whose mean
/// quantiles are its forecast), and what the baselines fitted.
struct Scored<'a> {
    models: Vec<&'a PvForecaster>,
    scale: &'a ClearSkyScale,
    gbt: Option<&'a Gbt>,
    device: &'a Device,
}

impl Scored<'_> {
    /// Adds the model's and the baselines' forecasts for `keys` of `split` to `metrics`.
    fn add(
        &self,
        metrics: &mut Metrics,
        dataset: &Dataset,
        config: &RunConfig,
        keys: &[ExampleKey],
        split: Split,
    ) -> Result<()> {
        predict_batches(
            &self.models,
            dataset,
            &config.examples,
            keys,
            config.eval.batch_size,
            split.into(),
            self.device,
            |_, batch, quantiles| -> Result<()> {
                metrics.add_quantiles("model", batch, quantiles, &config.model.quantiles);
                add_baselines(metrics, batch, self.scale, self.gbt);
                Ok(())
            },
        )
    }
}

/// The forecaster skill is measured against.
pub(crate) const REFERENCE: &str = "smart_persistence";

/// Forecasters reported against each other besides against [`REFERENCE`]: the model against
/// the trees.
const HEAD_TO_HEAD: (&str, &str) = ("model", "gbt");

fn new_metrics(dataset: &Dataset, config: &RunConfig) -> Metrics {
    let (forecaster, rival) = HEAD_TO_HEAD;
    Metrics::new(config.examples.lead_times)
        .with_head_to_head(forecaster, rival)
        .with_longitudes(
            dataset
                .systems
                .iter()
                .map(|s| (s.meta.ss_id, s.meta.longitude_deg)),
        )
}

fn add_baselines(metrics: &mut Metrics, batch: &Batch, scale: &ClearSkyScale, gbt: Option<&Gbt>) {
    for (name, forecast) in BASELINES.iter().zip(forecasts(batch, scale)) {
        metrics.add_point(name, batch, &forecast);
    }
    if let Some(gbt) = gbt {
        metrics.add_point("gbt", batch, &gbt.forecast(batch, scale));
    }
}

/// The baselines alone (no model) on one split of `dataset`: the clear-sky scale and the
/// gradient-boosted trees fitted on its training split, as [`evaluate_saved`] does.
pub fn evaluate_baselines(dataset: &Dataset, config: &RunConfig, split: Split) -> Result<Report> {
    let (scale, gbt) = fit_baselines(dataset, config)?;
    score_baselines(dataset, config, split, &scale, gbt.as_ref())
}

/// Scores baselines already fitted ([`fit_baselines`]) on one split of `dataset`.
pub fn score_baselines(
    dataset: &Dataset,
    config: &RunConfig,
    split: Split,
    scale: &ClearSkyScale,
    gbt: Option<&Gbt>,
) -> Result<Report> {
    let keys = example_keys(dataset, &config.examples, split)?;
    let mut metrics = new_metrics(dataset, config);
    for chunk in keys.chunks(config.eval.batch_size.max(1)) {
        let batch = build_batch(dataset, &config.examples, chunk, split);
        add_baselines(&mut metrics, &batch, scale, gbt);
    }
    Ok(metrics.report(REFERENCE))
}

/// Everything the baselines fit on the training split of `dataset` (the trees' depth and rounds
/// on its validation split).
pub fn fit_baselines(
    dataset: &Dataset,
    config: &RunConfig,
) -> Result<(ClearSkyScale, Option<Gbt>)> {
    let scale = fit_clear_sky_scale(dataset, config)?;
    let gbt = if config.gbt.enabled {
        // The trees are a reference, not the product: data they cannot be fitted on (no observed
        // training target) still get the other rows, and the reason is said.
        match Gbt::fit(dataset, &config.examples, &config.gbt, &scale) {
            Ok(gbt) => Some(gbt),
            Err(e) => {
                eprintln!("warning: no gbt row: {e:#}");
                None
            }
        }
    } else {
        None
    };
    Ok((scale, gbt))
}

/// Evaluates a saved model and the baselines on one split of `dataset` (already adapted). The
/// baselines' clear-sky scale and the gradient-boosted baseline are fitted on the same data's
/// training split (the trees' rounds and depth chosen on its validation split).
pub fn evaluate_saved(
    saved: &SavedModel,
    dataset: &Dataset,
    split: Split,
    device: &Device,
) -> Result<Report> {
    evaluate_saved_on(saved, dataset, &[split], device)
}

/// [`evaluate_saved`] on several splits at once, pooled into one report (each example built
/// within its own split). For `Split::ALL` on a folder the model never trained on: every
/// observed day of its systems. The baselines are still fitted on the folder's training split,
/// so on that split their rows are in-sample and flattered; the model's are not.
pub fn evaluate_saved_on(
    saved: &SavedModel,
    dataset: &Dataset,
    splits: &[Split],
    device: &Device,
) -> Result<Report> {
    let config = run_config(saved)?;
    let (scale, gbt) = fit_baselines(dataset, &config)?;
    let mut metrics = new_metrics(dataset, &config);
    let to_score = Scored {
        models: saved.members(),
        scale: &scale,
        gbt: gbt.as_ref(),
        device,
    };
    for &split in splits {
        let keys = example_keys(dataset, &config.examples, split)?;
        to_score.add(&mut metrics, dataset, &config, &keys, split)?;
    }
    Ok(metrics.report(REFERENCE))
}
