//! AdamW whose state can be saved and restored, so a resumed run continues exactly where it
//! stopped. candle-nn's `AdamW` keeps its moments private; this one performs the same
//! arithmetic in the same order (so results match it bit for bit) and exposes its moments by
//! parameter name.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;

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
                set_from(tensors, &key, target, "optimiser state", "")?;
            }
        }
        self.t = updates;
        Ok(())
    }
}

/// An exponential moving average of the parameters (Polyak averaging), updated after each
/// optimiser step: `average ← d·average + (1 − d)·θ` with `d = min(decay, (t − 1)/(t + 9))` at
/// update `t` (1-based). The ramp makes the first update copy θ (d = 0), so the average never
/// holds the initialisation, and lets the early average follow the fast-moving weights before
/// `decay` takes over (d reaches 0.99 at t = 991). The averaged weights live in their own
/// [`VarMap`], the shape of the model's, so a model can be built over them.
pub struct WeightAverage {
    decay: f64,
    /// `(name, parameter, average)` in name order.
    slots: Vec<(String, Var, Var)>,
    averages: VarMap,
}

impl WeightAverage {
    /// An average of `vars` with the given decay (in `[0, 1)`), starting at their current values.
    pub fn new(vars: impl IntoIterator<Item = (String, Var)>, decay: f64) -> Result<Self> {
        let averages = VarMap::new();
        let mut slots = Vec::new();
        {
            let mut map = averages
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
            for (name, var) in vars {
                let average = Var::from_tensor(&var.as_tensor().copy()?)?;
                map.insert(name.clone(), average.clone());
                slots.push((name, var, average));
            }
        }
        slots.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(WeightAverage {
            decay,
            slots,
            averages,
        })
    }

    /// The weight the average keeps at update `t` (1-based).
    pub fn decay_at(&self, t: u64) -> f64 {
        let t = t.max(1) as f64;
        self.decay.min((t - 1.0) / (t + 9.0))
    }

    /// Folds the parameters' current values in, after update `t` (1-based).
    pub fn update(&self, t: u64) -> Result<()> {
        let d = self.decay_at(t);
        for (_, var, average) in &self.slots {
            let next = ((average.as_tensor() * d)? + (var.as_tensor() * (1.0 - d))?)?;
            average.set(&next)?;
        }
        Ok(())
    }

    /// The averaged weights, by parameter name.
    pub fn varmap(&self) -> &VarMap {
        &self.averages
    }

    /// The averages as named tensors (`optimizer.average.<param>`), for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .map(|(name, _, average)| {
                (
                    format!("optimizer.average.{name}"),
                    average.as_tensor().clone(),
                )
            })
            .collect()
    }

    /// Restores averages written by [`WeightAverage::state`]; every parameter's must be present
    /// with its shape.
    pub fn restore(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, _, average) in &self.slots {
            set_from(
                tensors,
                &format!("optimizer.average.{name}"),
                average,
                "weight average",
                " (was the run started without train.weight_average?)",
            )?;
        }
        Ok(())
    }
}

/// Sets `target` to the checkpoint tensor `key`, refusing a missing one (`what`, `key` and
/// `hint` named) or one of another shape.
fn set_from(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    target: &Var,
    what: &str,
    hint: &str,
) -> Result<()> {
    let t = tensors
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} `{key}` is missing{hint}")))?;
    if t.shape() != target.shape() {
        return Err(candle_core::Error::Msg(format!(
            "{what} `{key}` has shape {:?}, the parameter has {:?}",
            t.dims(),
            target.dims()
        )));
    }
    target.set(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32]) -> Var {
        Var::new(values, &Device::Cpu).expect("var")
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1::<f32>().expect("values")
    }

    #[test]
    fn the_average_copies_the_first_update_then_decays() {
        let theta = var(&[1.0, 2.0]);
        let average = WeightAverage::new([("w".to_owned(), theta.clone())], 0.5).expect("new");
        assert_eq!(average.decay_at(1), 0.0);
        assert_eq!(average.decay_at(2), 1.0 / 11.0);
        assert_eq!(average.decay_at(11), 0.5);
        assert_eq!(average.decay_at(1_000), 0.5);
        theta.set(&var(&[3.0, 5.0])).expect("set");
        average.update(1).expect("update");
        let avg = &average.slots[0].2;
        assert_eq!(values(avg), [3.0, 5.0]);
        theta.set(&var(&[14.0, -6.0])).expect("set");
        average.update(2).expect("update");
        // 1/11 of the old average, 10/11 of the parameter.
        let want = [(3.0 + 140.0) / 11.0, (5.0 - 60.0) / 11.0];
        for (got, want) in values(avg).iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        // The parameter itself is untouched.
        assert_eq!(values(&theta), [14.0, -6.0]);
    }

    #[test]
    fn the_average_round_trips_through_its_state_and_refuses_a_missing_one() {
        let theta = var(&[1.0, 2.0, 3.0]);
        let average = WeightAverage::new([("w".to_owned(), theta.clone())], 0.9).expect("new");
        theta.set(&var(&[4.0, 5.0, 6.0])).expect("set");
        average.update(1).expect("update");
        let state: HashMap<String, Tensor> = average.state().into_iter().collect();
        assert!(state.contains_key("optimizer.average.w"));

        let other =
            WeightAverage::new([("w".to_owned(), var(&[0.0, 0.0, 0.0]))], 0.9).expect("new");
        other.restore(&state).expect("restore");
        assert_eq!(values(&other.slots[0].2), [4.0, 5.0, 6.0]);

        let err = other.restore(&HashMap::new()).expect_err("missing");
        assert!(err.to_string().contains("optimizer.average.w"), "{err}");
        let wrong: HashMap<String, Tensor> = [(
            "optimizer.average.w".to_owned(),
            var(&[1.0]).as_tensor().clone(),
        )]
        .into_iter()
        .collect();
        let err = other.restore(&wrong).expect_err("shape");
        assert!(err.to_string().contains("shape"), "{err}");
    }
}
