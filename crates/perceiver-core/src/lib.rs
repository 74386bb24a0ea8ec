//! # perceiver-core
//!
//! Perceiver building blocks on candle, every one with a backward pass:
//!
//! - [`attention`]: scaled dot-product attention with key-padding masks as one custom op with a
//!   fused CPU kernel (forward and backward, online softmax, only per-row statistics kept), and the
//!   composed-op reference it is tested against. The CUDA kernels slot into the same op.
//! - [`cpu`] and [`cuda`]: the op's kernels, one module per device (the candle layout).
//! - [`fourier`]: Fourier position features.
//! - [`gelu`] and [`layer_norm`]: GELU and LayerNorm as fused ops (one pass forward, one
//!   backward), checked against the composed candle ops and finite differences.
//! - [`bias`]: adding a bias to every row, with a backward that sums rows in one pass.
//! - [`layers`]: linear layers, LayerNorm, MLP (GELU or squared ReLU), FiLM (identity at initialisation),
//!   multi-head attention, pre-LayerNorm cross- and self-attention blocks.
//!
//! Inputs are plain tensors with shapes and masks; this crate knows nothing of PV data.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use perceiver_core::layers::{Activation, AttentionBlock, BlockConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let config = BlockConfig { dim: 16, context_dim: 8, heads: 2, widening: 2, activation: Activation::Gelu };
//! let block = AttentionBlock::cross(config, vb.pp("block"))?;
//! let latents = Tensor::zeros((3, 4, 16), DType::F32, &Device::Cpu)?;
//! let tokens = Tensor::ones((3, 10, 8), DType::F32, &Device::Cpu)?;
//! let mask = Tensor::ones((3, 10), DType::F32, &Device::Cpu)?;
//! let out = block.forward_cross(&latents, &tokens, Some(&mask))?;
//! assert_eq!(out.dims(), &[3, 4, 16]);
//! # Ok(()) }
//! ```

pub mod attention;
pub mod bias;

pub mod cpu;
pub mod cuda;
pub mod fourier;
pub mod gelu;
/// Test support: comparing against golden values written by the PyTorch reference (the
/// `test-support` feature, which only dev-dependencies enable).
#[cfg(feature = "test-support")]
pub mod golden;
pub mod layer_norm;
pub mod layers;
mod parallel;

pub use attention::{AttentionImpl, attention, composed_attention, fused_attention};
pub use cpu::KernelFloat;
pub use fourier::FourierFeatures;
