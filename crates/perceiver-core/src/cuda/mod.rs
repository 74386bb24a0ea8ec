//! The CUDA side of the fused attention op: the kernels' source and entry points ([`source`],
//! always compiled, so CI can compile the kernels to PTX without a GPU) and, under the `cuda`
//! feature, the launchers the op calls (`op`: NVRTC compilation per compute capability, launch
//! configuration, forward and backward).

pub mod source;

#[cfg(feature = "cuda")]
mod op;
#[cfg(feature = "cuda")]
pub use op::set_tensor_cores;
#[cfg(feature = "cuda")]
pub(crate) use op::{backward, forward};
