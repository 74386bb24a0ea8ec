//! AdamW whose state can be saved and restored, so a resumed run continues exactly where it
//! stopped. candle-nn's `AdamW` keeps its moments private; this one performs the same
//! arithmetic in the same order (so results match it bit for bit) and exposes its moments by
//! parameter name.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// AdamW hyper-parameters (the learning rate changes every step and is passed to `step`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

/// AdamW over named parameters, in name order.
pub struct AdamW {
    slots: Vec<Slot>,
    params: AdamWParams,
    /// Updates taken so far (Adam's `t`).
    t: u64,
}

impl AdamW {
    /// An optimiser with zero moments for `vars`.
    pub fn new(vars: impl IntoIterator<Item = (String, Var)>, params: AdamWParams) -> Result<Self> {
        let mut slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(AdamW {
            slots,
            params,
            t: 0,
        })
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.t
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone (as
    /// candle-nn's AdamW does), weight decay included.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        let AdamWParams {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let scale_m = 1.0 / (1.0 - beta1.powi(self.t as i32));
        let scale_v = 1.0 / (1.0 - beta2.powi(self.t as i32));
        for slot in &self.slots {
            let theta = slot.var.as_tensor();
            let Some(g) = grads.get(theta) else { continue };
            let m = ((slot.m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((slot.v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&m * scale_m)?;
            let v_hat = (&v * scale_v)?;
            let decayed = (theta * (1.0 - lr * weight_decay))?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            slot.var.set(&(decayed - (adjusted * lr)?)?)?;
            slot.m.set(&m)?;
            slot.v.set(&v)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`optimizer.m.<param>`, `optimizer.v.<param>`), for a
    /// checkpoint; `updates()` goes beside them.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("optimizer.m.{}", s.name), s.m.as_tensor().clone()),
                    (format!("optimizer.v.{}", s.name), s.v.as_tensor().clone()),
                ]
            })
            .collect()
    }

    /// Restores moments written by [`AdamW::state`] and the update count. Every parameter's
    /// moments must be present with its shape.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        for slot in &self.slots {
            for (kind, target) in [("m", &slot.m), ("v", &slot.v)] {
                let key = format!("optimizer.{kind}.{}", slot.name);
                let t = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimiser state `{key}` is missing"))
                })?;
                if t.shape() != target.shape() {
                    return Err(candle_core::Error::Msg(format!(
                        "optimiser state `{key}` has shape {:?}, the parameter has {:?}",
                        t.dims(),
                        target.dims()
                    )));
                }
                target.set(t)?;
            }
        }
        self.t = updates;
        Ok(())
    }
}
