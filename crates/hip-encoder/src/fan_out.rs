//! HiP-style fan-out decoding (an ablation, issue 14's first question): the bottleneck is split
//! back into groups, level by level (by default 1 → 4 → one group per lead time), and each
//! forecast step's queries read only their own output group, instead of every lead time reading
//! the whole bottleneck.
//!
//! A fan-out level is an encoder level run the other way. Each group has its own learned latents;
//! they cross-attend to their parent group's latents (a level with `G` groups over `G_in` input
//! groups gives each input group `G / G_in` children), then self-attend within the group. HiP's
//! own decoder hands each child a slice of its parent's latents; here a child reads its parent
//! whole, so that any lead count that is a multiple of the previous level's groups works (48 or
//! 192 lead times from 16 bottleneck latents). Children of one parent differ by their learned
//! latents, which is also how an output group knows which forecast step it is.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use hip_encoder::{FanOut, FanOutConfig, LevelConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! let config = FanOutConfig::new(64, vec![
//!     LevelConfig { groups: 4, latents: 4, channels: 32, self_attention_layers: 1, heads: 2 },
//!     LevelConfig { groups: 16, latents: 4, channels: 32, self_attention_layers: 1, heads: 2 },
//! ]);
//! let varmap = VarMap::new();
//! let fan_out = FanOut::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let bottleneck = Tensor::zeros((3, 16, 64), DType::F32, &Device::Cpu)?; // B=3, 16 latents
//! let groups = fan_out.forward(&bottleneck)?;
//! assert_eq!(groups.dims(), &[3, 16, 4, 32]); // one group of 4 latents per lead time
//! # Ok(()) }
//! ```

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use perceiver_core::AttentionImpl;
use perceiver_core::layers::Activation;

use crate::{Level, LevelConfig};

/// The fan-out's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOutConfig {
    /// Channels of the bottleneck it reads.
    pub input_dim: usize,
    /// Levels, first (fewest groups) to last (one group per output).
    pub levels: Vec<LevelConfig>,
    /// MLP widening in every block.
    pub widening: usize,
    /// MLP non-linearity.
    pub activation: Activation,
}

impl FanOutConfig {
    /// A config with MLP widening 4 and GELU.
    pub fn new(input_dim: usize, levels: Vec<LevelConfig>) -> Self {
        FanOutConfig {
            input_dim,
            levels,
            widening: 4,
            activation: Activation::Gelu,
        }
    }

    /// Checks that groups split cleanly from the bottleneck's one group.
    pub fn validate(&self) -> Result<()> {
        if self.levels.is_empty() {
            candle_core::bail!("fan-out: at least one level is needed");
        }
        let mut groups = 1;
        for l in &self.levels {
            if l.groups == 0 || !l.groups.is_multiple_of(groups) {
                candle_core::bail!(
                    "fan-out: {groups} groups do not split into {}: each level's groups must be a multiple of the previous level's",
                    l.groups
                );
            }
            if l.latents == 0 || l.heads == 0 || !l.channels.is_multiple_of(l.heads) {
                candle_core::bail!(
                    "fan-out: level {l:?} has no latents or channels that do not split into heads"
                );
            }
            groups = l.groups;
        }
        Ok(())
    }

    /// Groups of the last level: the outputs.
    pub fn outputs(&self) -> usize {
        self.levels.last().map_or(1, |l| l.groups)
    }
}

/// The fan-out. Parameter names as the encoder's: `levels.{i}.latents`, `levels.{i}.cross.*`,
/// `levels.{i}.self.{j}.*`.
pub struct FanOut {
    levels: Vec<Level>,
}

impl FanOut {
    /// Builds the fan-out; latents start as N(0, 0.02²) like the encoder's.
    pub fn new(config: &FanOutConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let mut input_dim = config.input_dim;
        let mut levels = Vec::with_capacity(config.levels.len());
        for (i, &c) in config.levels.iter().enumerate() {
            levels.push(Level::new(
                c,
                input_dim,
                (config.widening, config.activation),
                None,
                vb.pp(format!("levels.{i}")),
            )?);
            input_dim = c.channels;
        }
        Ok(FanOut { levels })
    }

    /// Splits `bottleneck [B, L, C_in]` into the last level's groups: `[B, G, L_out, C]`, group
    /// `g` a function of the bottleneck through its ancestors only.
    pub fn forward(&self, bottleneck: &Tensor) -> Result<Tensor> {
        let (b, _, _) = bottleneck.dims3()?;
        let mut x = bottleneck.unsqueeze(1)?;
        for level in &self.levels {
            x = level.forward(&x, None, None, b)?;
        }
        Ok(x)
    }

    /// Switches every attention layer between the fused op and the composed reference.
    pub fn set_attention_impl(&mut self, how: AttentionImpl) {
        for level in &mut self.levels {
            level.set_attention_impl(how);
        }
    }
}
