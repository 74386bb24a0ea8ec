//! The forecaster: pv-data's token sets are embedded per modality (own linear layer, Fourier
//! features of their place and time offsets, a learned modality embedding), concatenated per
//! history step into HiP groups, encoded into a bottleneck, and decoded per (system, lead time).

use std::collections::HashMap;

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use hip_encoder::{
    FanOut, FanOutConfig, HipConfig, HipEncoder, LevelConfig, RecurrentConfig, RecurrentEncoder,
};
use metnet_decoder::{DecoderConfig, MetNetDecoder, pinball_loss, pinball_loss_sum, pinball_terms};
use perceiver_core::FourierFeatures;
use perceiver_core::bias::add_bias;
use perceiver_core::layers::{Activation, Linear, linear};
use pv_data::features::{FOURIER, Modality, Query};
use pv_data::{Batch, BatchTokens, FeatureWidths};

use crate::baselines::{MAX_CLEAR_SKY_INDEX, MIN_CLEAR_SKY};
use crate::config::{
    EncoderKind, EncoderRuns, LeadTimeConditioning, ModelConfig, PositionEncoding,
};

/// One modality's embedder. Names `embed.<modality>.{linear,type}`, and
/// `embed.<modality>.positions.frequency_offset` for learned positions.
struct Embedder {
    fourier_columns: Vec<usize>,
    fourier: FourierFeatures,
    /// Learned positions: the Fourier frequencies as a matrix `[dims·bands, dims]`, and the
    /// learned offset added to them (zero at initialisation).
    learned: Option<(Tensor, Tensor)>,
    linear: Linear,
    kind: Tensor,
}

impl Embedder {
    fn new(width: usize, names: &[&str], config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let fourier_columns = fourier_columns(names);
        let fourier = FourierFeatures {
            dims: fourier_columns.len(),
            bands: config.fourier_bands,
            max_freq: config.fourier_max_freq,
        };
        let input = width + fourier.output_dim();
        let learned = match config.positions {
            PositionEncoding::Fourier => None,
            PositionEncoding::Learned if fourier_columns.is_empty() => None,
            PositionEncoding::Learned => {
                let (dims, bands) = (fourier.dims, fourier.bands);
                let mut base = vec![0f32; dims * bands * dims];
                for (k, f) in fourier.frequencies().iter().enumerate() {
                    for d in 0..dims {
                        base[(d * bands + k) * dims + d] = (f * std::f64::consts::PI) as f32;
                    }
                }
                let base = Tensor::from_vec(base, (dims * bands, dims), vb.device())?
                    .to_dtype(vb.dtype())?;
                let offset = vb.pp("positions").get_with_hints(
                    (dims * bands, dims),
                    "frequency_offset",
                    Init::Const(0.0),
                )?;
                Some((base, offset))
            }
        };
        Ok(Embedder {
            learned,
            linear: linear(input, config.token_dim, vb.pp("linear"))?,
            kind: vb.get_with_hints(
                config.token_dim,
                "type",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            fourier_columns,
            fourier,
        })
    }

    fn forward(&self, values: &Tensor) -> Result<Tensor> {
        let x = if self.fourier_columns.is_empty() {
            values.clone()
        } else {
            let index = Tensor::new(
                self.fourier_columns
                    .iter()
                    .map(|&c| c as u32)
                    .collect::<Vec<_>>()
                    .as_slice(),
                values.device(),
            )?;
            let picked = values.index_select(&index, D::Minus1)?;
            let positions = match &self.learned {
                None => self.fourier.encode(&picked)?,
                Some((base, offset)) => {
                    let angles = picked.broadcast_matmul(&(base + offset)?.t()?)?;
                    Tensor::cat(&[&picked, &angles.sin()?, &angles.cos()?], D::Minus1)?
                }
            };
            Tensor::cat(&[values, &positions], D::Minus1)?
        };
        // The type vector is added to every token as a bias is (`add_bias`: a fast backward).
        add_bias(&self.linear.forward(&x)?, &self.kind)
    }
}

/// Positions of the features that are Fourier-encoded ([`FOURIER`]: `east`, `north`,
/// `hours_from_t0`).
pub fn fourier_columns(names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| FOURIER.contains(n))
        .map(|(i, _)| i)
        .collect()
}

/// Each modality's name, width and feature names, in embedding order (pv-data's layout:
/// [`Modality::feature_names`]).
pub fn modality_names(widths: &FeatureWidths) -> [(&'static str, usize, Vec<&'static str>); 4] {
    Modality::ALL.map(|m| {
        let width = widths.of_modality(m);
        (m.name(), width, m.feature_names(width))
    })
}

/// The history encoder of each `model.encoder` that reads tokens.
enum Encoder {
    /// `hip`, and `flat` (one group over every step's tokens: `flat` is true).
    Hip { encoder: HipEncoder, flat: bool },
    /// `recurrent`.
    Recurrent(Box<RecurrentEncoder>),
}

/// The whole model. Parameter names: `embed.*`, `encoder.*`, `fan_out.*` (with a fan-out),
/// `decoder.*`.
pub struct PvForecaster {
    embedders: Vec<(usize, Embedder)>,
    /// The history encoder; `None` for `encoder = "none"`.
    encoder: Option<Encoder>,
    /// `encoder_runs = "per_lead"`: the lead-time encoding the encoder is conditioned on.
    per_lead: Option<FourierFeatures>,
    /// `fan_out` levels: the bottleneck split into one group per lead time.
    fan_out: Option<FanOut>,
    decoder: MetNetDecoder,
    quantiles: Vec<f64>,
    step_hours: f64,
    /// `model.loss_lead_decay_per_hour`.
    loss_lead_decay: f64,
    /// The learned climatological clear-sky index of the prior (`prior.climatological_index`),
    /// when the model predicts a correction to it.
    prior_index: Option<Tensor>,
}

/// A batch as tensors on one device.
pub struct BatchTensors {
    /// Token values and masks per modality (pv, satellite, observations, nwp).
    pub tokens: Vec<(Tensor, Tensor)>,
    /// Queries `[B, S, K, F]`.
    pub queries: Tensor,
    /// `[B, S]`.
    pub query_mask: Tensor,
    /// `[B, S, K]`.
    pub targets: Tensor,
    /// `[B, S, K]`.
    pub target_mask: Tensor,
}

fn tensor(a: &pv_data::Array, device: &Device) -> Result<Tensor> {
    Tensor::from_slice(&a.data, a.shape.as_slice(), device)
}

impl BatchTensors {
    /// Copies a batch to `device`.
    pub fn new(batch: &Batch, device: &Device) -> Result<Self> {
        let pair = |t: &BatchTokens| -> Result<(Tensor, Tensor)> {
            Ok((tensor(&t.values, device)?, tensor(&t.mask, device)?))
        };
        Ok(BatchTensors {
            tokens: batch.tokens.0.iter().map(pair).collect::<Result<_>>()?,
            queries: tensor(&batch.queries, device)?,
            query_mask: tensor(&batch.query_mask, device)?,
            targets: tensor(&batch.targets, device)?,
            target_mask: tensor(&batch.target_mask, device)?,
        })
    }
}

impl PvForecaster {
    /// The network built by [`PvForecaster::new`] with the same arguments, reading the current
    /// values of `varmap`'s parameters as constants: a forward through it records no graph for
    /// backpropagation, so no intermediate stays alive until the output is dropped. A forecast
    /// of 256 examples takes about a quarter less time than through the variables themselves
    /// (docs/PERFORMANCE.md). The values are shared, not copied: build it when it is needed,
    /// since an optimiser step that updates `varmap` in place changes them.
    pub fn frozen(
        config: &ModelConfig,
        widths: FeatureWidths,
        step_minutes: i64,
        varmap: &VarMap,
        device: &Device,
    ) -> Result<Self> {
        let tensors: HashMap<String, Tensor> = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter map lock poisoned".into()))?
            .iter()
            .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        PvForecaster::new(config, widths, step_minutes, vb)
    }

    /// Builds the model for data with `widths`, `history_steps` and a grid step of `step_minutes`.
    pub fn new(
        config: &ModelConfig,
        widths: FeatureWidths,
        step_minutes: i64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let with_encoder = config.encoder != EncoderKind::QueriesOnly;
        let per_lead = config.encoder_runs == EncoderRuns::PerLead;
        let mut embedders = Vec::new();
        for (i, (name, width, names)) in modality_names(&widths).into_iter().enumerate() {
            if width > 0 && with_encoder {
                embedders.push((
                    i,
                    Embedder::new(width, &names, config, vb.pp(format!("embed.{name}")))?,
                ));
            }
        }
        let levels: Vec<LevelConfig> = match config.encoder {
            EncoderKind::Flat => {
                // One group over every token, with the bottleneck level's latents and the
                // hierarchy's self-attention layers.
                let last = config.levels.last().copied().map(LevelConfig::from);
                last.map(|l| LevelConfig {
                    groups: 1,
                    self_attention_layers: config
                        .levels
                        .iter()
                        .map(|l| l.self_attention_layers)
                        .sum(),
                    ..l
                })
                .into_iter()
                .collect()
            }
            _ => config
                .levels
                .iter()
                .copied()
                .map(LevelConfig::from)
                .collect(),
        };
        let bottleneck_dim = config
            .levels
            .last()
            .map_or(config.token_dim, |l| l.channels);
        let fan_out = (!config.fan_out.is_empty())
            .then(|| {
                let levels = config
                    .fan_out
                    .iter()
                    .copied()
                    .map(LevelConfig::from)
                    .collect();
                let shape = FanOutConfig {
                    widening: config.widening,
                    ..FanOutConfig::new(bottleneck_dim, levels)
                };
                FanOut::new(&shape, vb.pp("fan_out"))
            })
            .transpose()?;
        // The decoder reads the bottleneck, or with a fan-out its lead time's group.
        let context_dim = config.fan_out.last().map_or(bottleneck_dim, |l| l.channels);
        let decoder = DecoderConfig {
            blocks: config.decoder_blocks,
            heads: config.decoder_heads,
            widening: config.widening,
            quantiles: config.quantiles.clone(),
            film: config.lead_time_conditioning == LeadTimeConditioning::Film,
            cross_attention: with_encoder,
            ..DecoderConfig::new(widths.query, config.decoder_channels, context_dim)
        };
        let hip = HipConfig {
            input_dim: config.token_dim,
            levels,
            widening: config.widening,
            activation: Activation::Gelu,
            // The MetNet way: every level's latents conditioned on the lead time, encoded as the
            // decoder encodes it.
            lead_time_dim: per_lead.then(|| decoder.lead_time_encoding.output_dim()),
        };
        let prior_index = config
            .smart_persistence_prior
            .then(|| {
                vb.pp("prior")
                    .get_with_hints(1, "climatological_index", Init::Const(0.6))
            })
            .transpose()?;
        Ok(PvForecaster {
            embedders,
            encoder: match config.encoder {
                EncoderKind::QueriesOnly => None,
                EncoderKind::Hip | EncoderKind::Flat => Some(Encoder::Hip {
                    encoder: HipEncoder::new(&hip, vb.pp("encoder"))?,
                    flat: config.encoder == EncoderKind::Flat,
                }),
                EncoderKind::Recurrent => {
                    let last =
                        config.levels.last().copied().ok_or_else(|| {
                            candle_core::Error::Msg("model.levels is empty".into())
                        })?;
                    Some(Encoder::Recurrent(Box::new(RecurrentEncoder::new(
                        RecurrentConfig {
                            input_dim: config.token_dim,
                            latents: last.latents,
                            channels: last.channels,
                            heads: last.heads,
                            self_attention_layers: last.self_attention_layers,
                            widening: config.widening,
                            activation: Activation::Gelu,
                        },
                        vb.pp("encoder"),
                    )?)))
                }
            },
            decoder: MetNetDecoder::new(&decoder, vb.pp("decoder"))?,
            quantiles: config.quantiles.clone(),
            step_hours: step_minutes as f64 / 60.0,
            loss_lead_decay: config.loss_lead_decay_per_hour,
            per_lead: per_lead.then_some(decoder.lead_time_encoding),
            fan_out,
            prior_index,
        })
    }

    /// Quantiles of power / kWp, `[B, S, K, Q]`.
    pub fn forward(&self, batch: &BatchTensors) -> Result<Tensor> {
        let k = batch.queries.dim(2)?;
        let lead_hours: Vec<f32> = (1..=k)
            .map(|i| (i as f64 * self.step_hours) as f32)
            .collect();
        let lead_hours = Tensor::from_vec(lead_hours, k, batch.queries.device())?;
        let bottleneck = match &self.encoder {
            Some(encoder) => Some(self.encode(encoder, batch, &lead_hours)?),
            None => None,
        };
        // Fan-out: the bottleneck [B, L, C] split into one group per lead time, [B·K, L', C']
        // example-major, each lead's queries reading their own (as the MetNet way's are).
        let bottleneck = match (&self.fan_out, bottleneck) {
            (Some(fan_out), Some(bottleneck)) => {
                let groups = fan_out.forward(&bottleneck)?;
                let (b, g, l, c) = groups.dims4()?;
                if g != k {
                    candle_core::bail!(
                        "the fan-out ends in {g} groups, one per lead time it was built for, but the queries have {k} lead times"
                    );
                }
                Some(groups.reshape((b * g, l, c))?)
            }
            (_, bottleneck) => bottleneck,
        };
        let out = self.decoder.forward(
            &batch.queries,
            &batch.query_mask,
            &lead_hours,
            bottleneck.as_ref(),
        )?;
        match &self.prior_index {
            Some(index) => out.broadcast_add(
                &smart_persistence_prior(&batch.queries, index)?.unsqueeze(D::Minus1)?,
            ),
            None => Ok(out),
        }
    }

    /// Every modality's tokens embedded, concatenated per history step, and encoded into the
    /// bottleneck.
    fn encode(
        &self,
        encoder: &Encoder,
        batch: &BatchTensors,
        lead_hours: &Tensor,
    ) -> Result<Tensor> {
        let mut tokens = Vec::new();
        let mut masks = Vec::new();
        for (i, embedder) in &self.embedders {
            let (values, mask) = &batch.tokens[*i];
            if values.dim(2)? == 0 {
                continue; // no token of this modality in this batch
            }
            tokens.push(embedder.forward(values)?);
            masks.push(mask.clone());
        }
        let tokens = Tensor::cat(&tokens, 2)?;
        let mask = Tensor::cat(&masks, 2)?;
        // The flat encoder reads every step's tokens as one group.
        let (tokens, mask) = match encoder {
            Encoder::Hip { flat: true, .. } => {
                let (b, h, n, c) = tokens.dims4()?;
                (
                    tokens.reshape((b, 1, h * n, c))?,
                    mask.reshape((b, 1, h * n))?,
                )
            }
            _ => (tokens, mask),
        };
        match (encoder, &self.per_lead) {
            // The MetNet way: every example encoded once per lead time, conditioned on the
            // lead time's encoding, into [B·K, L, C] example-major.
            (Encoder::Hip { encoder, .. }, Some(encoding)) => {
                let k = lead_hours.dim(0)?;
                let lead =
                    encoding.encode(&lead_hours.to_dtype(tokens.dtype())?.reshape((k, 1))?)?;
                encoder.forward_per_lead(&tokens, &mask, &lead)
            }
            (Encoder::Hip { encoder, .. }, None) => encoder.forward(&tokens, &mask, None),
            (Encoder::Recurrent(encoder), _) => encoder.forward(&tokens, &mask),
        }
    }

    /// Masked pinball loss of a forward pass.
    pub fn loss(&self, batch: &BatchTensors) -> Result<Tensor> {
        pinball_loss(
            &self.forward(batch)?,
            &batch.targets,
            &self.loss_mask(batch)?,
            &self.quantiles,
        )
    }

    /// The sum of the masked pinball terms of a forward pass (for a shard of a batch).
    pub fn loss_sum(&self, batch: &BatchTensors) -> Result<Tensor> {
        pinball_loss_sum(
            &self.forward(batch)?,
            &batch.targets,
            &self.loss_mask(batch)?,
            &self.quantiles,
        )
    }

    /// How many pinball terms [`Self::loss`] averages over for `batch`.
    pub fn loss_terms(&self, batch: &BatchTensors) -> Result<f64> {
        pinball_terms(&self.loss_mask(batch)?, self.quantiles.len())
    }
}

/// Clear-sky-index persistence from the query features `[B, S, K, F]`: k(t0) × clear sky at each
/// target time, `[B, S, K]`; `climatological_index` (`[1]`) where k(t0) is undefined. The dawn
/// threshold and the clip are the smart-persistence baseline's, on unscaled clear sky (the
/// baseline's per-system scale cancels in the ratio; the model learns its own).
fn smart_persistence_prior(queries: &Tensor, climatological_index: &Tensor) -> Result<Tensor> {
    let column = |i: usize| queries.narrow(D::Minus1, i, 1)?.squeeze(D::Minus1);
    let last_power = column(Query::INDEX.last_power)?;
    let last_clear = column(Query::INDEX.last_clear_sky)?;
    let observed = column(Query::INDEX.last_observed)?;
    let clear = column(Query::INDEX.clear_sky)?;
    let defined = last_clear
        .ge(MIN_CLEAR_SKY as f64)?
        .to_dtype(queries.dtype())?
        .mul(&observed)?;
    let index = last_power
        .div(&last_clear.maximum(MIN_CLEAR_SKY as f64)?)?
        .clamp(0.0, MAX_CLEAR_SKY_INDEX as f64)?;
    let undefined = defined.affine(-1.0, 1.0)?;
    let k = defined
        .mul(&index)?
        .add(&undefined.broadcast_mul(climatological_index)?)?;
    k.mul(&clear)
}

impl PvForecaster {
    /// Targets that count, and how much: observed, of a real (not padding) query, weighted by
    /// lead time (`model.loss_lead_decay_per_hour`; all 1 by default). `[B, S, K]`.
    fn loss_mask(&self, batch: &BatchTensors) -> Result<Tensor> {
        let mask = batch
            .target_mask
            .broadcast_mul(&batch.query_mask.unsqueeze(D::Minus1)?)?;
        if self.loss_lead_decay == 0.0 {
            return Ok(mask);
        }
        let k = mask.dim(D::Minus1)?;
        let weights = lead_weights(k, self.step_hours, self.loss_lead_decay);
        mask.broadcast_mul(&Tensor::from_vec(weights, k, mask.device())?.to_dtype(mask.dtype())?)
    }
}

/// `exp(−decay · τ)` for the lead times τ = step, 2·step, … (hours), scaled to a mean of 1.
fn lead_weights(k: usize, step_hours: f64, decay: f64) -> Vec<f32> {
    let raw: Vec<f64> = (1..=k)
        .map(|i| (-decay * i as f64 * step_hours).exp())
        .collect();
    let mean = raw.iter().sum::<f64>() / k.max(1) as f64;
    raw.iter().map(|w| (w / mean) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_weights_decay_by_lead_time_and_average_one() {
        let w = lead_weights(4, 0.25, 2.0);
        let mean = w.iter().sum::<f32>() / 4.0;
        assert!((mean - 1.0).abs() < 1e-6, "{w:?}");
        // Each 15-minute step multiplies the weight by exp(−2 · 0.25).
        for pair in w.windows(2) {
            assert!((pair[1] / pair[0] - (-0.5f32).exp()).abs() < 1e-6, "{w:?}");
        }
        assert_eq!(lead_weights(3, 0.25, 0.0), vec![1.0; 3]);
        let rising = lead_weights(3, 1.0, -1.0);
        assert!(rising[0] < rising[1] && rising[1] < rising[2]);
    }

    /// Three queries by hand: k(t0) defined (0.3 / 0.6 = 0.5, times clear sky 0.8), undefined
    /// because the last observation's clear sky is under the threshold (0.2), and undefined
    /// because there is no observation; the last two use the climatological index 0.7.
    #[test]
    fn the_prior_is_clear_sky_index_persistence_with_a_climatological_fallback() {
        let f = Query::WIDTH;
        let mut q = vec![0.0f32; 4 * f];
        let mut set = |row: usize, power: f32, observed: f32, last_clear: f32, clear: f32| {
            q[row * f + Query::INDEX.last_power] = power;
            q[row * f + Query::INDEX.last_observed] = observed;
            q[row * f + Query::INDEX.last_clear_sky] = last_clear;
            q[row * f + Query::INDEX.clear_sky] = clear;
        };
        set(0, 0.3, 1.0, 0.6, 0.8);
        set(1, 0.01, 1.0, 0.2, 0.5);
        set(2, 0.0, 0.0, 0.0, 0.5);
        // An index of 3 is clipped to 1.5.
        set(3, 0.9, 1.0, 0.3, 1.0);
        let queries = Tensor::from_vec(q, (1, 1, 4, f), &Device::Cpu).expect("queries");
        let index = Tensor::new(&[0.7f32], &Device::Cpu).expect("index");
        let prior = smart_persistence_prior(&queries, &index)
            .and_then(|p| p.flatten_all())
            .and_then(|p| p.to_vec1::<f32>())
            .expect("prior");
        let expected = [0.5 * 0.8, 0.7 * 0.5, 0.7 * 0.5, 1.5 * 1.0];
        for (p, e) in prior.iter().zip(expected) {
            assert!((p - e).abs() < 1e-6, "{prior:?} vs {expected:?}");
        }
    }
}
