//! # metnet-decoder
//!
//! A MetNet-style decoder: one query per (target system, lead time τ). Lead times are a batch
//! axis, so the encoder's bottleneck is computed once and shared by every lead time. Each block is
//! `FiLM(τ) → cross-attend to the whole bottleneck → FiLM(τ) → self-attend among the queries of
//! the same lead time` (for the ablation study, `DecoderConfig::film` and
//! `DecoderConfig::cross_attention` switch off the FiLM layers and the cross-attention); the head predicts quantiles that are monotone by construction
//! (`q₀ = h₀`, `qᵢ = qᵢ₋₁ + softplus(hᵢ)`). [`pinball_loss`] is the training loss, masked where the
//! target is missing.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use metnet_decoder::{DecoderConfig, MetNetDecoder};
//!
//! # fn main() -> candle_core::Result<()> {
//! let config = DecoderConfig::new(13, 32, 64);
//! let varmap = VarMap::new();
//! let decoder = MetNetDecoder::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let (b, s, k) = (2, 3, 16);
//! let queries = Tensor::zeros((b, s, k, 13), DType::F32, &Device::Cpu)?;
//! let query_mask = Tensor::ones((b, s), DType::F32, &Device::Cpu)?;
//! let lead_hours = Tensor::arange(1u32, 17, &Device::Cpu)?.to_dtype(DType::F32)?.affine(0.25, 0.0)?;
//! let bottleneck = Tensor::zeros((b, 24, 64), DType::F32, &Device::Cpu)?;
//! let quantiles = decoder.forward(&queries, &query_mask, &lead_hours, Some(&bottleneck))?;
//! assert_eq!(quantiles.dims(), &[b, s, k, 3]);
//! # Ok(()) }
//! ```

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use perceiver_core::layers::{
    Activation, AttentionBlock, BlockConfig, Film, LayerNorm, Linear, linear,
};
use perceiver_core::{AttentionImpl, FourierFeatures};

/// The decoder's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Features per query (from the data).
    pub query_dim: usize,
    /// Decoder channels.
    pub channels: usize,
    /// Channels of the encoder's bottleneck.
    pub context_dim: usize,
    /// Decoder blocks.
    pub blocks: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP widening.
    pub widening: usize,
    /// MLP non-linearity.
    pub activation: Activation,
    /// Encoding of the lead time (hours) that drives FiLM.
    pub lead_time_encoding: FourierFeatures,
    /// Quantile levels, increasing.
    pub quantiles: Vec<f64>,
    /// Condition every block on the lead time (FiLM scale and bias before each attention, as
    /// MetNet-2 does). Off, the lead time reaches the decoder only as a feature of its queries.
    pub film: bool,
    /// Cross-attend to an encoder's bottleneck in every block. Off, the decoder reads only its
    /// queries (no history encoder: the ablation of what the encoder adds).
    pub cross_attention: bool,
}

impl DecoderConfig {
    /// Defaults: 2 blocks, 4 heads, widening 4, GELU, 16 Fourier bands over ±8 h, quantiles 0.1/0.5/0.9.
    pub fn new(query_dim: usize, channels: usize, context_dim: usize) -> Self {
        DecoderConfig {
            query_dim,
            channels,
            context_dim,
            blocks: 2,
            heads: 4,
            widening: 4,
            activation: Activation::Gelu,
            lead_time_encoding: FourierFeatures {
                dims: 1,
                bands: 16,
                max_freq: 32.0,
            },
            quantiles: vec![0.1, 0.5, 0.9],
            film: true,
            cross_attention: true,
        }
    }

    /// Checks quantiles and widths.
    pub fn validate(&self) -> Result<()> {
        if self.quantiles.is_empty()
            || self.quantiles.windows(2).any(|w| w[0] >= w[1])
            || self.quantiles.iter().any(|&q| !(q > 0.0 && q < 1.0))
        {
            candle_core::bail!(
                "decoder: quantiles must be increasing and inside (0, 1), got {:?}",
                self.quantiles
            );
        }
        if self.heads == 0 || !self.channels.is_multiple_of(self.heads) {
            candle_core::bail!(
                "decoder: {} channels do not split into {} heads",
                self.channels,
                self.heads
            );
        }
        Ok(())
    }
}

struct Block {
    film_cross: Option<Film>,
    cross: Option<AttentionBlock>,
    film_self: Option<Film>,
    self_attention: AttentionBlock,
}

/// `film(x, cond)` with the `K` lead times' conditions repeating over `x`'s `B·K` rows, or `x`
/// without FiLM.
fn apply_film(film: &Option<Film>, x: Tensor, cond: &Tensor) -> Result<Tensor> {
    match film {
        Some(film) => film.forward_repeating(&x, cond),
        None => Ok(x),
    }
}

/// The decoder. Parameter names: `embed.*`, `blocks.{i}.{film_cross,cross,film_self,self_attention}.*`,
/// `norm_out.*`, `head.*` (without `film_*` when FiLM is off, without `cross` and `film_cross`
/// without cross-attention).
pub struct MetNetDecoder {
    embed: Linear,
    lead_time_encoding: FourierFeatures,
    blocks: Vec<Block>,
    norm_out: LayerNorm,
    head: Linear,
    quantiles: usize,
}

impl MetNetDecoder {
    /// Builds the decoder.
    pub fn new(config: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let c = config.channels;
        let cond = config.lead_time_encoding.output_dim();
        let block = BlockConfig {
            dim: c,
            context_dim: config.context_dim,
            heads: config.heads,
            widening: config.widening,
            activation: config.activation,
        };
        let blocks = (0..config.blocks)
            .map(|i| {
                let vb = vb.pp(format!("blocks.{i}"));
                let film = |name: &str| {
                    config
                        .film
                        .then(|| Film::new(cond, c, vb.pp(name)))
                        .transpose()
                };
                let cross = config.cross_attention;
                Ok(Block {
                    film_cross: if cross { film("film_cross")? } else { None },
                    cross: cross
                        .then(|| AttentionBlock::cross(block, vb.pp("cross")))
                        .transpose()?,
                    film_self: film("film_self")?,
                    self_attention: AttentionBlock::self_attention(block, vb.pp("self_attention"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(MetNetDecoder {
            embed: linear(config.query_dim, c, vb.pp("embed"))?,
            lead_time_encoding: config.lead_time_encoding,
            blocks,
            norm_out: LayerNorm::new(c, vb.pp("norm_out"))?,
            head: linear(c, config.quantiles.len(), vb.pp("head"))?,
            quantiles: config.quantiles.len(),
        })
    }

    /// Decodes `queries [B, S, K, F]` (S target systems, K lead times) against
    /// `bottleneck [B, L, C_ctx]`, with `query_mask [B, S]` (1 = real system) and
    /// `lead_hours [K]`. Returns quantiles `[B, S, K, Q]`, increasing along Q. A decoder without
    /// cross-attention takes no bottleneck (`None`); one with it needs one: `[B, L, C]`, shared
    /// by every lead time, or `[B·K, L, C]`, one per (example, lead time), example-major (the
    /// MetNet way: an encoder run per lead time).
    pub fn forward(
        &self,
        queries: &Tensor,
        query_mask: &Tensor,
        lead_hours: &Tensor,
        bottleneck: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, s, k, _) = queries.dims4()?;
        let has_cross = self.blocks.first().is_some_and(|b| b.cross.is_some());
        match bottleneck {
            Some(bottleneck) => {
                let (bb, _, _) = bottleneck.dims3()?;
                if bb != b && bb != b * k {
                    candle_core::bail!(
                        "decoder: bottleneck has {bb} rows; the queries need {b} (one per example) or {} (one per example and lead time)",
                        b * k
                    );
                }
            }
            None if has_cross => {
                candle_core::bail!("decoder: this decoder cross-attends and needs a bottleneck")
            }
            None => {}
        }
        // Lead times become a batch axis: [B, S, K, C] → [B·K, S, C].
        let x = self.embed.forward(queries)?.transpose(1, 2)?.contiguous()?;
        let c = x.dim(D::Minus1)?;
        let mut x = x.reshape((b * k, s, c))?;
        let mask = query_mask
            .to_dtype(x.dtype())?
            .unsqueeze(1)?
            .broadcast_as((b, k, s))?
            .reshape((b * k, s))?;
        // One condition per lead time: FiLM runs on K rows and repeats over the examples.
        let cond = self
            .lead_time_encoding
            .encode(&lead_hours.to_dtype(x.dtype())?.reshape((k, 1))?)?;
        for block in &self.blocks {
            if let (Some(cross), Some(bottleneck)) = (&block.cross, bottleneck) {
                x = apply_film(&block.film_cross, x, &cond)?;
                x = if bottleneck.dim(0)? == b * k && k > 1 {
                    // One bottleneck per (example, lead time): each lead's queries read their own.
                    cross.forward_cross(&x, bottleneck, None)?
                } else {
                    // Every lead time of an example attends to the same bottleneck, and attention
                    // rows are independent, so the K·S queries of an example attend together: the
                    // bottleneck is normalised and projected to keys and values once per example,
                    // not once per lead time (the same numbers as attending per lead time; 16x
                    // less key/value work by default).
                    cross
                        .forward_cross(&x.reshape((b, k * s, c))?, bottleneck, None)?
                        .reshape((b * k, s, c))?
                };
            }
            x = apply_film(&block.film_self, x, &cond)?;
            x = block.self_attention.forward_self(&x, Some(&mask))?;
        }
        let raw = self.head.forward(&self.norm_out.forward(&x)?)?;
        let quantiles = monotone(&raw, self.quantiles)?;
        quantiles
            .reshape((b, k, s, self.quantiles))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Switches every attention layer between the fused op and the composed reference.
    pub fn set_attention_impl(&mut self, how: AttentionImpl) {
        for block in &mut self.blocks {
            if let Some(cross) = &mut block.cross {
                cross.set_attention_impl(how);
            }
            block.self_attention.set_attention_impl(how);
        }
    }
}

/// `log(1 + eˣ)`, computed stably as `relu(x) + log(1 + e^{−|x|})`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Turns raw head outputs `[.., Q]` into increasing quantiles: a base plus cumulative softplus steps.
pub fn monotone(raw: &Tensor, q: usize) -> Result<Tensor> {
    let base = raw.narrow(D::Minus1, 0, 1)?;
    if q == 1 {
        return Ok(base);
    }
    let steps = softplus(&raw.narrow(D::Minus1, 1, q - 1)?)?;
    let mut parts = vec![base.clone()];
    let mut running = base;
    for i in 0..q - 1 {
        running = (running + steps.narrow(D::Minus1, i, 1)?)?;
        parts.push(running.clone());
    }
    Tensor::cat(&parts, D::Minus1)
}

/// Mean pinball (quantile) loss over observed targets and all quantile levels.
///
/// `predictions [.., Q]`, `targets [..]`, `mask [..]` (1 = observed). With no observed target the
/// loss is 0 (not NaN).
pub fn pinball_loss(
    predictions: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    quantiles: &[f64],
) -> Result<Tensor> {
    let sum = pinball_loss_sum(predictions, targets, mask, quantiles)?;
    let count = pinball_terms(mask, quantiles.len())?;
    sum / count.max(1.0)
}

/// The sum of the pinball terms [`pinball_loss`] averages: the part of a batch split into shards
/// (the shards' sums divided by the whole batch's [`pinball_terms`] add up to the batch's loss).
pub fn pinball_loss_sum(
    predictions: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
    quantiles: &[f64],
) -> Result<Tensor> {
    let q = Tensor::new(quantiles, predictions.device())?.to_dtype(predictions.dtype())?;
    let diff = targets.unsqueeze(D::Minus1)?.broadcast_sub(predictions)?; // y − ŷ
    // max(τ·d, (τ−1)·d) = τ·d − min(d, 0) = τ·d + relu(−d)
    let loss = diff.broadcast_mul(&q)?.add(&diff.neg()?.relu()?)?;
    let mask = mask.to_dtype(predictions.dtype())?;
    loss.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum_all()
}

/// How many pinball terms a mask selects: observed targets × quantile levels.
pub fn pinball_terms(mask: &Tensor, quantiles: usize) -> Result<f64> {
    let observed = mask.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    Ok(observed * quantiles as f64)
}
