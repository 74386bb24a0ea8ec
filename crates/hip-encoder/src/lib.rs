//! # hip-encoder
//!
//! A Hierarchical Perceiver encoder (Carreira et al. 2022). The input is grouped: tokens
//! `[B, G, N, C_in]` with a padding mask `[B, G, N]`. Each level has its own learned latents per
//! group; a group's latents cross-attend to that group's inputs (padding masked), then self-attend
//! within the group. The next level merges neighbouring groups (concatenating their latents) and
//! repeats; the last level has one group, whose latents are the bottleneck `[B, L, C]`.
//!
//! In power-perceiver, level 1 has one group per history step. Token order inside a group does
//! not matter and padding tokens do not change the output (both tested).
//!
//! "MetNet mode": with `lead_time_dim` set, every level's latents are FiLM-modulated by a
//! lead-time encoding before they attend, so the encoder can run once per lead time
//! ([`HipEncoder::forward_per_lead`] does it for `K` lead times, the tokens' keys and values
//! computed once). The same levels run the other way make [`FanOut`], HiP-style fan-out
//! decoding: the bottleneck split back into groups, one per forecast step.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use hip_encoder::{HipConfig, HipEncoder, LevelConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! let config = HipConfig::new(12, vec![
//!     LevelConfig { groups: 8, latents: 4, channels: 32, self_attention_layers: 1, heads: 2 },
//!     LevelConfig { groups: 2, latents: 8, channels: 32, self_attention_layers: 1, heads: 2 },
//!     LevelConfig { groups: 1, latents: 16, channels: 64, self_attention_layers: 2, heads: 4 },
//! ]);
//! let varmap = VarMap::new();
//! let encoder = HipEncoder::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let tokens = Tensor::zeros((3, 8, 5, 12), DType::F32, &Device::Cpu)?; // B=3, 8 history steps, 5 tokens
//! let mask = Tensor::ones((3, 8, 5), DType::F32, &Device::Cpu)?;
//! let bottleneck = encoder.forward(&tokens, &mask, None)?;
//! assert_eq!(bottleneck.dims(), &[3, 16, 64]);
//! # Ok(()) }
//! ```

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

pub mod fan_out;
pub mod recurrent;
pub use fan_out::{FanOut, FanOutConfig};
use perceiver_core::AttentionImpl;
use perceiver_core::bias::repeat;
use perceiver_core::layers::{Activation, AttentionBlock, BlockConfig, Film};
pub use recurrent::{RecurrentConfig, RecurrentEncoder};

/// One level of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelConfig {
    /// Groups at this level; must divide the previous level's groups (the first level's must
    /// equal the input's groups). The last level has 1.
    pub groups: usize,
    /// Learned latents per group.
    pub latents: usize,
    /// Latent channels.
    pub channels: usize,
    /// Self-attention layers after the cross-attention.
    pub self_attention_layers: usize,
    /// Attention heads.
    pub heads: usize,
}

/// The encoder's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HipConfig {
    /// Channels of the input tokens.
    pub input_dim: usize,
    /// Levels, first to last.
    pub levels: Vec<LevelConfig>,
    /// MLP widening in every block.
    pub widening: usize,
    /// MLP non-linearity.
    pub activation: Activation,
    /// Width of the lead-time encoding for "MetNet mode"; `None` for the standard encoder.
    pub lead_time_dim: Option<usize>,
}

impl HipConfig {
    /// A config with MLP widening 4, GELU, no lead-time conditioning.
    pub fn new(input_dim: usize, levels: Vec<LevelConfig>) -> Self {
        HipConfig {
            input_dim,
            levels,
            widening: 4,
            activation: Activation::Gelu,
            lead_time_dim: None,
        }
    }

    /// Checks that groups merge cleanly down to one.
    pub fn validate(&self) -> Result<()> {
        let Some(last) = self.levels.last() else {
            candle_core::bail!("hip: at least one level is needed");
        };
        if last.groups != 1 {
            candle_core::bail!(
                "hip: the last level must have one group, has {}",
                last.groups
            );
        }
        for pair in self.levels.windows(2) {
            if pair[1].groups == 0 || !pair[0].groups.is_multiple_of(pair[1].groups) {
                candle_core::bail!(
                    "hip: {} groups do not merge into {}",
                    pair[0].groups,
                    pair[1].groups
                );
            }
        }
        for l in &self.levels {
            if l.latents == 0 || l.heads == 0 || !l.channels.is_multiple_of(l.heads) {
                candle_core::bail!(
                    "hip: level {l:?} has no latents or channels that do not split into heads"
                );
            }
        }
        Ok(())
    }
}

struct Level {
    config: LevelConfig,
    latents: Tensor,
    film: Option<Film>,
    cross: AttentionBlock,
    self_blocks: Vec<AttentionBlock>,
}

/// The encoder. Parameter names: `levels.{i}.latents`, `levels.{i}.film.*`, `levels.{i}.cross.*`,
/// `levels.{i}.self.{j}.*`.
pub struct HipEncoder {
    levels: Vec<Level>,
    input_dim: usize,
}

impl HipEncoder {
    /// Builds the encoder; latents start as N(0, 0.02²) like HiP's.
    pub fn new(config: &HipConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let mut levels = Vec::with_capacity(config.levels.len());
        let mut input_dim = config.input_dim;
        for (i, &c) in config.levels.iter().enumerate() {
            levels.push(Level::new(
                c,
                input_dim,
                (config.widening, config.activation),
                config.lead_time_dim,
                vb.pp(format!("levels.{i}")),
            )?);
            input_dim = c.channels;
        }
        Ok(HipEncoder {
            levels,
            input_dim: config.input_dim,
        })
    }

    /// Encodes `tokens [B, G, N, C_in]` with `mask [B, G, N]` (1 = real token) into the bottleneck
    /// `[B, L, C]`. `lead_time [B, E]` is required in MetNet mode and ignored otherwise.
    pub fn forward(
        &self,
        tokens: &Tensor,
        mask: &Tensor,
        lead_time: Option<&Tensor>,
    ) -> Result<Tensor> {
        let b = tokens.dim(0)?;
        self.check_input(tokens, mask)?;
        let mut x = tokens.clone();
        let mut mask = Some(mask.to_dtype(tokens.dtype())?);
        for level in &self.levels {
            x = level.forward(&x, mask.as_ref(), lead_time, b)?;
            mask = None; // latents are never padding
        }
        // [B, 1, L, C] → [B, L, C]
        x.squeeze(1)
    }

    /// MetNet mode, once per lead time: encodes `tokens [B, G, N, C_in]` (`mask [B, G, N]`) for
    /// each of the `K` lead-time encodings `lead_time [K, E]`, into `[B·K, L, C]` example-major
    /// (row `b·K + k`). The same numbers as [`Self::forward`] on the tokens repeated `K` times,
    /// but the first level's `K` lead-conditioned latent sets of a group attend to its tokens
    /// together: the tokens are normalised and projected to keys and values once per example,
    /// not once per lead time (only the latents depend on the lead).
    pub fn forward_per_lead(
        &self,
        tokens: &Tensor,
        mask: &Tensor,
        lead_time: &Tensor,
    ) -> Result<Tensor> {
        let (b, g, n, c) = tokens.dims4()?;
        self.check_input(tokens, mask)?;
        let (k, e) = lead_time.dims2()?;
        let first = &self.levels[0];
        let Some(film) = &first.film else {
            candle_core::bail!("hip: forward_per_lead needs an encoder built with lead_time_dim");
        };
        let LevelConfig {
            latents: l,
            channels: lc,
            ..
        } = first.config;
        // [G, L, C] → K lead-conditioned copies [K, G·L, C] → [G, K·L, C] → every example's.
        let latents = film.forward(
            &first
                .latents
                .reshape((1, g * l, lc))?
                .broadcast_as((k, g * l, lc))?,
            lead_time,
        )?;
        let latents = latents
            .reshape((k, g, l, lc))?
            .transpose(0, 1)?
            .reshape((g, k * l, lc))?;
        let latents = repeat(&latents, b)?.reshape((b * g, k * l, lc))?;
        let mask = mask.to_dtype(tokens.dtype())?.reshape((b * g, n))?;
        let inputs = tokens.reshape((b * g, n, c))?;
        // [B·G, K·L, C] → [B, K, G, L, C]: lead-major groups, each lead's latents on their own.
        let mut h = first.cross.forward_cross(&latents, &inputs, Some(&mask))?;
        h = h
            .reshape((b, g, k, l, lc))?
            .transpose(1, 2)?
            .reshape((b * k * g, l, lc))?;
        for block in &first.self_blocks {
            h = block.forward_self(&h, None)?;
        }
        let mut x = h.reshape((b * k, g, l, lc))?;
        let rows = lead_time
            .unsqueeze(0)?
            .broadcast_as((b, k, e))?
            .reshape((b * k, e))?;
        for level in &self.levels[1..] {
            x = level.forward(&x, None, Some(&rows), b * k)?;
        }
        x.squeeze(1)
    }

    /// Checks tokens and mask against the first level.
    fn check_input(&self, tokens: &Tensor, mask: &Tensor) -> Result<()> {
        let (_, g, _, c) = tokens.dims4()?;
        if c != self.input_dim {
            candle_core::bail!("hip: tokens have {c} channels, expected {}", self.input_dim);
        }
        if self.levels[0].config.groups != g {
            candle_core::bail!(
                "hip: input has {g} groups, the first level expects {}",
                self.levels[0].config.groups
            );
        }
        if mask.dims() != &tokens.dims()[..3] {
            candle_core::bail!(
                "hip: mask {:?} does not match tokens {:?}",
                mask.dims(),
                tokens.dims()
            );
        }
        Ok(())
    }

    /// Switches every attention layer between the fused op and the composed reference.
    pub fn set_attention_impl(&mut self, how: AttentionImpl) {
        for level in &mut self.levels {
            level.set_attention_impl(how);
        }
    }
}

impl Level {
    fn set_attention_impl(&mut self, how: AttentionImpl) {
        self.cross.set_attention_impl(how);
        for block in &mut self.self_blocks {
            block.set_attention_impl(how);
        }
    }

    /// A level reading `input_dim` channels, its blocks' MLPs shaped by `widening` and
    /// `activation`, its latents FiLM-conditioned on a lead-time encoding of `lead_time_dim`.
    fn new(
        c: LevelConfig,
        input_dim: usize,
        (widening, activation): (usize, Activation),
        lead_time_dim: Option<usize>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let block = BlockConfig {
            dim: c.channels,
            context_dim: input_dim,
            heads: c.heads,
            widening,
            activation,
        };
        Ok(Level {
            config: c,
            latents: vb.get_with_hints(
                (c.groups, c.latents, c.channels),
                "latents",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            film: lead_time_dim
                .map(|e| Film::new(e, c.channels, vb.pp("film")))
                .transpose()?,
            cross: AttentionBlock::cross(block, vb.pp("cross"))?,
            self_blocks: (0..c.self_attention_layers)
                .map(|j| AttentionBlock::self_attention(block, vb.pp(format!("self.{j}"))))
                .collect::<Result<_>>()?,
        })
    }

    /// `x [B, G_in, N, C_in]` → `[B, G, L, C]`. With fewer groups than its input (`G` divides
    /// `G_in`: the encoder) a group reads its `G_in / G` neighbouring input groups merged; with
    /// more (`G_in` divides `G`: the fan-out) each of an input group's `G / G_in` children reads
    /// that group whole.
    fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        lead_time: Option<&Tensor>,
        b: usize,
    ) -> Result<Tensor> {
        let (_, g_in, n, c_in) = x.dims4()?;
        let LevelConfig {
            groups: g,
            latents: l,
            channels: c,
            ..
        } = self.config;
        let (inputs, mask) = if g <= g_in {
            let merged = g_in / g * n;
            (
                x.reshape((b * g, merged, c_in))?,
                mask.map(|m| m.reshape((b * g, merged))).transpose()?,
            )
        } else {
            let children = g / g_in;
            let inputs = x
                .unsqueeze(2)?
                .broadcast_as((b, g_in, children, n, c_in))?
                .reshape((b * g, n, c_in))?;
            let mask = mask
                .map(|m| {
                    m.unsqueeze(2)?
                        .broadcast_as((b, g_in, children, n))?
                        .reshape((b * g, n))
                })
                .transpose()?;
            (inputs, mask)
        };
        let mut latents = repeat(&self.latents, b)?.reshape((b * g, l, c))?;
        if let Some(film) = &self.film {
            let Some(lead) = lead_time else {
                candle_core::bail!("hip: MetNet mode needs a lead-time encoding");
            };
            let e = lead.dim(1)?;
            let cond = lead
                .unsqueeze(1)?
                .broadcast_as((b, g, e))?
                .reshape((b * g, e))?;
            latents = film.forward(&latents, &cond)?;
        }
        let mut h = self.cross.forward_cross(&latents, &inputs, mask.as_ref())?;
        for block in &self.self_blocks {
            h = block.forward_self(&h, None)?;
        }
        h.reshape((b, g, l, c))
    }
}
