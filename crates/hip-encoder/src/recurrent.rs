//! A Perceiver used as a recurrent network (an ablation of the groups-per-timestep design,
//! issue 14's second question): one latent array reads the history one step at a time, each
//! step's cross-attention starting from the latents the previous step left, with the same
//! weights at every step. Input and output are those of [`crate::HipEncoder`]: tokens
//! `[B, H, N, C_in]` with a mask `[B, H, N]` in, latents `[B, L, C]` out.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use perceiver_core::layers::{Activation, AttentionBlock, BlockConfig};

/// The recurrent encoder's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentConfig {
    /// Channels of the input tokens.
    pub input_dim: usize,
    /// Latents.
    pub latents: usize,
    /// Latent channels.
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Self-attention layers after each step's cross-attention.
    pub self_attention_layers: usize,
    /// MLP widening.
    pub widening: usize,
    /// MLP non-linearity.
    pub activation: Activation,
}

/// The encoder. Parameter names: `latents`, `cross.*`, `self.{j}.*`.
pub struct RecurrentEncoder {
    config: RecurrentConfig,
    latents: Tensor,
    cross: AttentionBlock,
    self_blocks: Vec<AttentionBlock>,
}

impl RecurrentEncoder {
    /// Builds the encoder; latents start as N(0, 0.02²).
    pub fn new(config: RecurrentConfig, vb: VarBuilder) -> Result<Self> {
        if config.latents == 0 || config.heads == 0 || !config.channels.is_multiple_of(config.heads)
        {
            candle_core::bail!(
                "recurrent encoder: {config:?} has no latents or channels that do not split into heads"
            );
        }
        let block = BlockConfig {
            dim: config.channels,
            context_dim: config.input_dim,
            heads: config.heads,
            widening: config.widening,
            activation: config.activation,
        };
        Ok(RecurrentEncoder {
            config,
            latents: vb.get_with_hints(
                (config.latents, config.channels),
                "latents",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            cross: AttentionBlock::cross(block, vb.pp("cross"))?,
            self_blocks: (0..config.self_attention_layers)
                .map(|j| AttentionBlock::self_attention(block, vb.pp(format!("self.{j}"))))
                .collect::<Result<_>>()?,
        })
    }

    /// Encodes `tokens [B, H, N, C_in]` with `mask [B, H, N]` (1 = real token), step 0 first,
    /// into latents `[B, L, C]`.
    pub fn forward(&self, tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, h, _, c) = tokens.dims4()?;
        if c != self.config.input_dim {
            candle_core::bail!(
                "recurrent encoder: tokens have {c} channels, expected {}",
                self.config.input_dim
            );
        }
        if mask.dims() != &tokens.dims()[..3] {
            candle_core::bail!(
                "recurrent encoder: mask {:?} does not match tokens {:?}",
                mask.dims(),
                tokens.dims()
            );
        }
        let mask = mask.to_dtype(tokens.dtype())?;
        let (l, ch) = (self.config.latents, self.config.channels);
        let mut state = self
            .latents
            .unsqueeze(0)?
            .broadcast_as((b, l, ch))?
            .contiguous()?;
        for step in 0..h {
            let inputs = tokens.narrow(1, step, 1)?.squeeze(1)?;
            let step_mask = mask.narrow(1, step, 1)?.squeeze(1)?;
            state = self
                .cross
                .forward_cross(&state, &inputs, Some(&step_mask))?;
            for block in &self.self_blocks {
                state = block.forward_self(&state, None)?;
            }
        }
        debug_assert_eq!(state.dims(), &[b, l, ch]);
        Ok(state)
    }
}
