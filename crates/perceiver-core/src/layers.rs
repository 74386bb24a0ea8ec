//! Layers with a backward everywhere: LayerNorm, MLP, FiLM, multi-head attention and the
//! pre-LayerNorm attention blocks. Parameter names follow PyTorch's `state_dict` (`weight`, `bias`,
//! module paths joined by `.`), so a checkpoint maps one-to-one onto the PyTorch reference.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::attention::{AttentionImpl, attention};
use crate::bias::{add_bias, repeat};
use crate::gelu::gelu;
use crate::layer_norm::layer_norm;

/// A linear layer over the last dimension, `y = x Wᵀ + b`, with candle-nn's parameters, names
/// (`weight [out, in]`, `bias [out]`) and initialisation. The input's leading dimensions are one
/// matrix product's rows, whatever its layout (candle-nn multiplies a non-contiguous 3-D input
/// batch by batch against a broadcast weight, whose backward then sums one weight gradient per
/// batch row), and the bias is added by [`add_bias`], whose backward sums rows in one pass where
/// `broadcast_add`'s takes candle's slow general reduction (see [`crate::bias`]).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer with these parameters: `weight [out, in]`, `bias [out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    /// The weight, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

/// A linear layer `in_dim → out_dim` with a bias, initialised as candle-nn's (and PyTorch's).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let layer = candle_nn::linear(in_dim, out_dim, vb)?;
    Ok(Linear::new(layer.weight().clone(), layer.bias().cloned()))
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some((&in_dim, leading)) = x.dims().split_last() else {
            candle_core::bail!("linear: a scalar input")
        };
        let rows = leading.iter().product::<usize>();
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => add_bias(&y, b)?,
            None => y,
        };
        let mut dims = leading.to_vec();
        dims.push(self.weight.dim(0)?);
        y.reshape(dims)
    }
}

/// LayerNorm over the last dimension: the fused op of [`crate::layer_norm`] (one pass forward,
/// one backward; candle-nn's own has no backward on contiguous inputs, see docs/decisions/0001).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `weight` (ones) and `bias` (zeros) of width `dim`.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// The MLP's non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// GELU (tanh approximation).
    #[default]
    Gelu,
    /// relu(x)², as used by HiP.
    SquaredRelu,
}

/// Two linear layers with a non-linearity: `dim → dim·widening → dim`. Names `fc1`, `fc2`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
}

impl Mlp {
    /// A new MLP.
    pub fn new(
        dim: usize,
        widening: usize,
        activation: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Mlp {
            fc1: linear(dim, dim * widening, vb.pp("fc1"))?,
            fc2: linear(dim * widening, dim, vb.pp("fc2"))?,
            activation,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = match self.activation {
            Activation::Gelu => gelu(&h)?,
            Activation::SquaredRelu => h.relu()?.sqr()?,
        };
        self.fc2.forward(&h)
    }
}

/// Feature-wise linear modulation: `(scale, bias) = Linear(act(Linear(c)))`, applied as
/// `x · (1 + scale) + bias`. The second layer starts at zero, so a new FiLM is the identity.
/// Names `hidden`, `out`.
#[derive(Debug, Clone)]
pub struct Film {
    hidden: Linear,
    out: Linear,
    dim: usize,
}

impl Film {
    /// FiLM for features of width `dim`, conditioned on `cond_dim` inputs.
    pub fn new(cond_dim: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let hidden = linear(cond_dim, dim, vb.pp("hidden"))?;
        let out_vb = vb.pp("out");
        let w = out_vb.get_with_hints((2 * dim, dim), "weight", Init::Const(0.0))?;
        let b = out_vb.get_with_hints(2 * dim, "bias", Init::Const(0.0))?;
        Ok(Film {
            hidden,
            out: Linear::new(w, Some(b)),
            dim,
        })
    }

    /// `(1 + scale, bias)` for conditions `cond [.., cond_dim]`, each `[.., dim]`.
    fn modulation(&self, cond: &Tensor) -> Result<(Tensor, Tensor)> {
        let sb = self.out.forward(&gelu(&self.hidden.forward(cond)?)?)?;
        let scale = (sb.narrow(D::Minus1, 0, self.dim)? + 1.0)?;
        Ok((scale, sb.narrow(D::Minus1, self.dim, self.dim)?))
    }

    /// Modulates `x [.., N, dim]` with `cond [.., cond_dim]` (one condition per leading index).
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (scale, bias) = self.modulation(cond)?;
        x.broadcast_mul(&scale.unsqueeze(D::Minus2)?)?
            .broadcast_add(&bias.unsqueeze(D::Minus2)?)
    }

    /// Modulates `x [R·K, N, dim]` with `cond [K, cond_dim]` repeating: row `r·K + k` takes
    /// condition `k`. The same as [`Film::forward`] with `cond` repeated `R` times, but the FiLM
    /// network runs on the `K` distinct conditions only (the decoder's lead times: 16 rows, not
    /// 16 per example).
    pub fn forward_repeating(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (rows, _, dim) = x.dims3()?;
        let k = cond.dim(0)?;
        if k == 0 || !rows.is_multiple_of(k) {
            candle_core::bail!("film: {rows} rows do not repeat {k} conditions");
        }
        let (scale, bias) = self.modulation(cond)?;
        // Repeated per example by `repeat`, whose backward sums the copies in one pass.
        let per_row = |t: Tensor| repeat(&t, rows / k)?.reshape((rows, 1, dim));
        x.broadcast_mul(&per_row(scale)?)?
            .broadcast_add(&per_row(bias)?)
    }
}

/// Multi-head attention with input and output projections (`q`, `k`, `v`, `o`).
#[derive(Debug, Clone)]
pub struct MultiHeadAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    head_dim: usize,
    /// Which attention implementation runs.
    pub how: AttentionImpl,
}

impl MultiHeadAttention {
    /// Queries of width `q_dim` attend to keys/values of width `kv_dim` with `heads` heads of
    /// `q_dim / heads` channels; the output has width `q_dim`.
    pub fn new(q_dim: usize, kv_dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        if heads == 0 || !q_dim.is_multiple_of(heads) {
            candle_core::bail!("attention: {q_dim} channels do not split into {heads} heads");
        }
        Ok(MultiHeadAttention {
            q: linear(q_dim, q_dim, vb.pp("q"))?,
            k: linear(kv_dim, q_dim, vb.pp("k"))?,
            v: linear(kv_dim, q_dim, vb.pp("v"))?,
            o: linear(q_dim, q_dim, vb.pp("o"))?,
            heads,
            head_dim: q_dim / heads,
            how: AttentionImpl::Fused,
        })
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        x.reshape((b, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `x [B, Nq, q_dim]` attends to `context [B, Nk, kv_dim]`, with `key_mask [B, Nk]` (1 = attend).
    pub fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, nq, c) = x.dims3()?;
        if context.dim(1)? == 1 && nq == 1 {
            // A softmax over one key is 1: the output is that key's value, whatever the query
            // (zero where the key is masked, as the attention ops do). The decoder's
            // self-attention among one target system's queries is this case: no query or key
            // projection, no attention op (and their weights get no gradient, which they get as
            // exact zeros from the full computation).
            let v = self.v.forward(context)?;
            let v = match key_mask {
                // Non-zero attends, as for the attention ops.
                Some(m) => {
                    v.broadcast_mul(&m.ne(0.0)?.to_dtype(v.dtype())?.unsqueeze(D::Minus1)?)?
                }
                None => v,
            };
            return self.o.forward(&v);
        }
        let q = self.split_heads(&self.q.forward(x)?)?;
        let k = self.split_heads(&self.k.forward(context)?)?;
        let v = self.split_heads(&self.v.forward(context)?)?;
        let out = attention(&q, &k, &v, key_mask, self.how)?;
        self.o.forward(&out.transpose(1, 2)?.reshape((b, nq, c))?)
    }
}

/// Sizes of one attention block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// Width of the stream being updated (queries).
    pub dim: usize,
    /// Width of what it attends to (equal to `dim` for self-attention).
    pub context_dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width = `dim · widening`.
    pub widening: usize,
    /// MLP non-linearity.
    pub activation: Activation,
}

/// A pre-LayerNorm attention block: `x = x + Attn(LN x, LN ctx); x = x + MLP(LN x)`.
/// Names `norm_q`, `norm_kv` (cross only), `attn`, `norm_mlp`, `mlp`.
#[derive(Debug, Clone)]
pub struct AttentionBlock {
    norm_q: LayerNorm,
    norm_kv: Option<LayerNorm>,
    /// The attention layer (public so the implementation can be switched).
    pub attn: MultiHeadAttention,
    norm_mlp: LayerNorm,
    mlp: Mlp,
}

impl AttentionBlock {
    /// A cross-attention block (queries attend to a separate context).
    pub fn cross(config: BlockConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(config, true, vb)
    }

    /// A self-attention block.
    pub fn self_attention(config: BlockConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(
            BlockConfig {
                context_dim: config.dim,
                ..config
            },
            false,
            vb,
        )
    }

    fn build(c: BlockConfig, cross: bool, vb: VarBuilder) -> Result<Self> {
        Ok(AttentionBlock {
            norm_q: LayerNorm::new(c.dim, vb.pp("norm_q"))?,
            norm_kv: if cross {
                Some(LayerNorm::new(c.context_dim, vb.pp("norm_kv"))?)
            } else {
                None
            },
            attn: MultiHeadAttention::new(c.dim, c.context_dim, c.heads, vb.pp("attn"))?,
            norm_mlp: LayerNorm::new(c.dim, vb.pp("norm_mlp"))?,
            mlp: Mlp::new(c.dim, c.widening, c.activation, vb.pp("mlp"))?,
        })
    }

    /// Cross-attention: `x [B, Nq, dim]` attends to `context [B, Nk, context_dim]`.
    pub fn forward_cross(
        &self,
        x: &Tensor,
        context: &Tensor,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = self.norm_q.forward(x)?;
        let kv = match &self.norm_kv {
            Some(norm) => norm.forward(context)?,
            None => candle_core::bail!("forward_cross on a self-attention block"),
        };
        let x = (x + self.attn.forward(&q, &kv, key_mask)?)?;
        &x + self.mlp.forward(&self.norm_mlp.forward(&x)?)?
    }

    /// Self-attention among the rows of `x [B, N, dim]`, with `mask [B, N]` for padding rows.
    pub fn forward_self(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.norm_q.forward(x)?;
        let x = (x + self.attn.forward(&h, &h, mask)?)?;
        &x + self.mlp.forward(&self.norm_mlp.forward(&x)?)?
    }

    /// Switches the attention implementation (fused or composed).
    pub fn set_attention_impl(&mut self, how: AttentionImpl) {
        self.attn.how = how;
    }
}
