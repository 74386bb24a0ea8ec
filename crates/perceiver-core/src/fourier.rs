//! Fourier position features (Perceiver IO): for each input dimension `x`,
//! `[x, sin(π f_k x), cos(π f_k x)]` with `f_k` spaced linearly from 1 to `max_freq / 2`.

use candle_core::{D, DType, Result, Tensor};

/// A Fourier encoding of `dims` input dimensions with `bands` frequencies each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FourierFeatures {
    /// Input dimensions encoded.
    pub dims: usize,
    /// Frequencies per dimension.
    pub bands: usize,
    /// Highest frequency is `max_freq / 2` (the Nyquist frequency of `max_freq` samples over [−1, 1]).
    pub max_freq: f64,
}

impl FourierFeatures {
    /// Output width: `dims · (2 · bands + 1)`.
    pub fn output_dim(&self) -> usize {
        self.dims * (2 * self.bands + 1)
    }

    /// The frequencies `f_k`.
    pub fn frequencies(&self) -> Vec<f64> {
        let hi = self.max_freq / 2.0;
        match self.bands {
            0 => Vec::new(),
            1 => vec![1.0],
            n => (0..n)
                .map(|k| 1.0 + (hi - 1.0) * k as f64 / (n - 1) as f64)
                .collect(),
        }
    }

    /// Encodes `x [..., dims]` into `[..., dims · (2·bands + 1)]`, laid out per input dimension as
    /// `[x, sin(π f_1 x) .. sin(π f_K x), cos(π f_1 x) .. cos(π f_K x)]`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        if x.dim(D::Minus1)? != self.dims {
            candle_core::bail!(
                "fourier: expected last dim {}, got {:?}",
                self.dims,
                x.dims()
            );
        }
        let freqs: Vec<f64> = self
            .frequencies()
            .iter()
            .map(|f| f * std::f64::consts::PI)
            .collect();
        let freqs = Tensor::new(freqs.as_slice(), x.device())?.to_dtype(x.dtype())?;
        let mut parts = Vec::with_capacity(self.dims);
        for i in 0..self.dims {
            let xi = x.narrow(D::Minus1, i, 1)?;
            if self.bands == 0 {
                parts.push(xi);
                continue;
            }
            let angles = xi.broadcast_mul(&freqs)?;
            parts.push(Tensor::cat(
                &[&xi, &angles.sin()?, &angles.cos()?],
                D::Minus1,
            )?);
        }
        Tensor::cat(&parts, D::Minus1)
    }
}

/// Convenience: the dtype every model parameter uses unless a test asks for f64.
pub const DEFAULT_DTYPE: DType = DType::F32;
