//! A model read back from a checkpoint, and predictions from it.
//!
//! A model checkpoint ([`crate::checkpoint`]) carries, besides the weights, the metadata written
//! by [`model_metadata`]: `config` (the run configuration as TOML, of which [`ModelSetup`] reads
//! the `data`, `examples` and `model` tables), `feature_widths` and `scalers` (JSON). That is
//! everything needed to rebuild the model and feed it data on the scale it learnt.
//!
//! Several checkpoints read together ([`SavedModel::read_ensemble`]) forecast as an ensemble:
//! each quantile is the mean of the members' (quantile averaging, which keeps the quantiles in
//! order). Members must see data the same way (loading, examples, scalers, input widths) and
//! forecast the same quantiles; their architectures may differ. The usual members are runs of
//! one configuration with different seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use pv_data::{
    Batch, Dataset, ExampleConfig, ExampleKey, FeatureWidths, InputUse, Reach, Scalers, build_batch,
};
use rayon::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::config::ModelSetup;
use crate::error::{Error, Result};
use crate::model::{BatchTensors, PvForecaster};

/// The file a run folder keeps its best model in.
pub const MODEL_FILE: &str = "model.safetensors";

/// The metadata every model checkpoint carries: `config` (any serialisable configuration whose
/// TOML has the `data`, `examples` and `model` tables), `feature_widths` and `scalers`.
pub fn model_metadata(
    config: &impl serde::Serialize,
    widths: FeatureWidths,
    scalers: &Scalers,
) -> Result<BTreeMap<String, String>> {
    let unwritable = |message: String| Error::Config {
        path: PathBuf::from("(checkpoint metadata)"),
        message,
    };
    Ok(BTreeMap::from([
        (
            "config".to_owned(),
            toml::to_string(config).map_err(|e| unwritable(e.to_string()))?,
        ),
        (
            "feature_widths".to_owned(),
            serde_json::to_string(&widths).map_err(|e| unwritable(e.to_string()))?,
        ),
        (
            "scalers".to_owned(),
            serde_json::to_string(scalers).map_err(|e| unwritable(e.to_string()))?,
        ),
    ]))
}

/// A model read back from a checkpoint, with what it needs to see data as in training.
pub struct SavedModel {
    /// The model.
    pub model: PvForecaster,
    /// Its parameters.
    pub varmap: VarMap,
    /// How it was trained to see data, and its shape.
    pub setup: ModelSetup,
    /// Input widths it expects.
    pub widths: FeatureWidths,
    /// Input standardisation it was trained with.
    pub scalers: Scalers,
    /// The checkpoint's metadata (its tensors are in `varmap`), for readers of other entries.
    pub checkpoint: Checkpoint,
    /// The other members of an ensemble, by checkpoint file (empty for one model).
    pub others: Vec<(PathBuf, PvForecaster)>,
}

impl SavedModel {
    /// Reads a model from a checkpoint file, or from [`MODEL_FILE`] in a run folder.
    pub fn read(path: &Path, device: &Device) -> Result<SavedModel> {
        let path = if path.is_dir() {
            path.join(MODEL_FILE)
        } else {
            path.to_owned()
        };
        let mut checkpoint = Checkpoint::read(&path, device)?;
        let setup: ModelSetup = checkpoint.toml("config")?;
        setup.validate().map_err(|message| Error::Config {
            path: path.clone(),
            message,
        })?;
        let widths: FeatureWidths = checkpoint.json("feature_widths")?;
        let scalers: Scalers = checkpoint.json("scalers")?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        PvForecaster::new(&setup.model, widths, setup.data.step_minutes, vb)?;
        // Every parameter present with its shape, nothing else (the checkpoint's own errors).
        checkpoint.load_into(&varmap)?;
        checkpoint.tensors.clear();
        // A read model only forecasts: its parameters are constants, not variables.
        let model = PvForecaster::frozen(
            &setup.model,
            widths,
            setup.data.step_minutes,
            &varmap,
            device,
        )?;
        Ok(SavedModel {
            model,
            varmap,
            setup,
            widths,
            scalers,
            checkpoint,
            others: Vec::new(),
        })
    }

    /// Reads an ensemble: the first checkpoint as [`SavedModel::read`] does, and every other
    /// checkpoint as a further member, refused unless it sees data and forecasts as the first.
    pub fn read_ensemble(paths: &[PathBuf], device: &Device) -> Result<SavedModel> {
        let Some((first, rest)) = paths.split_first() else {
            return Err(Error::Config {
                path: PathBuf::new(),
                message: "an ensemble needs at least one model".into(),
            });
        };
        let mut saved = SavedModel::read(first, device)?;
        for path in rest {
            let other = SavedModel::read(path, device)?;
            saved.check_member(&other)?;
            saved.others.push((other.path().to_owned(), other.model));
        }
        Ok(saved)
    }

    /// Whether `other` may join this model's ensemble: the same loading, examples, quantiles,
    /// input widths and scalers.
    fn check_member(&self, other: &SavedModel) -> Result<()> {
        let (a, b) = (&self.setup, &other.setup);
        let what = if a.data != b.data {
            "the data settings"
        } else if a.examples != b.examples {
            "the example settings"
        } else if a.model.quantiles != b.model.quantiles {
            "the quantiles"
        } else if self.widths != other.widths {
            "the input widths"
        } else if self.scalers != other.scalers {
            "the input scalers (trained on other data?)"
        } else {
            return Ok(());
        };
        Err(Error::Ensemble {
            path: other.path().to_owned(),
            first: self.path().to_owned(),
            what,
        })
    }

    /// The networks whose mean quantiles are this model's forecast: itself, then any others.
    pub fn members(&self) -> Vec<&PvForecaster> {
        std::iter::once(&self.model)
            .chain(self.others.iter().map(|(_, m)| m))
            .collect()
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.checkpoint.path
    }

    /// Makes `dataset` look like the training data to this model: the same inputs and variables,
    /// standardised with the training scalers, and an input the folder lacks installed absent
    /// (every value masked; [`Dataset::use_scalers`]). Says which inputs the data hold. Loading
    /// must have used `self.setup.data`.
    pub fn adapt(&self, dataset: &mut Dataset) -> Result<InputUse> {
        dataset
            .use_scalers(&self.scalers)
            .map_err(|source| Error::Data {
                path: self.path().to_owned(),
                source: Box::new(source),
            })?;
        let found = FeatureWidths::of(dataset);
        if found != self.widths {
            return Err(Error::Widths {
                path: self.path().to_owned(),
                found,
                trained: self.widths,
            });
        }
        Ok(dataset.inputs())
    }
}

/// The model's quantiles for `batch`, `[B, S, K, Q]` flattened, as power / kWp.
pub fn predict(model: &PvForecaster, batch: &Batch, device: &Device) -> Result<Vec<f32>> {
    predict_mean(&[model], batch, device)
}

/// The mean of `models`' quantiles for `batch` (an ensemble's forecast; one model's own for one),
/// `[B, S, K, Q]` flattened, as power / kWp. The batch's tensors are built once.
pub fn predict_mean(models: &[&PvForecaster], batch: &Batch, device: &Device) -> Result<Vec<f32>> {
    let tensors = BatchTensors::new(batch, device)?;
    let mut sum: Option<candle_core::Tensor> = None;
    for model in models {
        let out = model.forward(&tensors)?;
        sum = Some(match sum {
            None => out,
            Some(s) => (s + out)?,
        });
    }
    let Some(sum) = sum else {
        return Err(Error::Config {
            path: PathBuf::new(),
            message: "a forecast needs at least one model".into(),
        });
    };
    Ok((sum / models.len() as f64)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Builds (reading what `reach` allows: a split to evaluate, the whole record to forecast) and
/// predicts the batches of `keys` (`batch_size` each) with the mean of `models` ([`predict_mean`]), as many at once as the rayon pool has threads (each batch's ops run on its worker thread), and hands each to `each` in key
/// order, so results do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn predict_batches<E: From<Error>>(
    models: &[&PvForecaster],
    dataset: &Dataset,
    examples: &ExampleConfig,
    keys: &[ExampleKey],
    batch_size: usize,
    reach: Reach,
    device: &Device,
    mut each: impl FnMut(&[ExampleKey], &Batch, &[f32]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let batch_size = batch_size.max(1);
    let group = batch_size * rayon::current_num_threads().max(1);
    for keys in keys.chunks(group) {
        let predicted = keys
            .par_chunks(batch_size)
            .map(|chunk| {
                let batch = build_batch(dataset, examples, chunk, reach);
                let quantiles = predict_mean(models, &batch, device)?;
                Ok((chunk, batch, quantiles))
            })
            .collect::<Result<Vec<_>>>()?;
        for (chunk, batch, quantiles) in &predicted {
            each(chunk, batch, quantiles)?;
        }
    }
    Ok(())
}
