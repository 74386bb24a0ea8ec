//! Comparing a model against golden values written by the PyTorch reference
//! (`tests/golden/make_golden.py`): weights are loaded by name into a `VarMap`, and outputs and
//! gradients are compared with a relative tolerance. Used by the golden tests of this crate,
//! hip-encoder and metnet-decoder.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

/// The tensors of one golden file.
pub struct Golden {
    tensors: HashMap<String, Tensor>,
}

impl Golden {
    /// Loads a safetensors file onto the CPU.
    pub fn load(path: &Path) -> Result<Golden> {
        Ok(Golden {
            tensors: candle_core::safetensors::load(path, &Device::Cpu)?,
        })
    }

    /// One tensor by name.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("golden file has no `{name}`")))
    }

    /// An input as a `Var` (so its gradient can be checked), converted to `dtype`.
    pub fn input(&self, name: &str, dtype: DType) -> Result<Var> {
        Var::from_tensor(&self.get(&format!("input.{name}"))?.to_dtype(dtype)?)
    }

    /// Copies every weight the model declared in `varmap` from the file, by name. Every model
    /// parameter must be in the file, and every weight in the file must be a model parameter.
    pub fn load_weights(&self, varmap: &VarMap) -> Result<usize> {
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
        for (name, var) in vars.iter() {
            var.set(&self.get(name)?.to_dtype(var.dtype())?)?;
        }
        let weights = self
            .tensors
            .keys()
            .filter(|k| !k.starts_with("grad.") && !k.starts_with("input."))
            .count();
        let expected = weights - 2; // `output` and `loss_weights`
        if expected != vars.len() {
            candle_core::bail!(
                "golden file has {expected} weights, the model {}",
                vars.len()
            );
        }
        Ok(vars.len())
    }

    /// `sum(output · loss_weights)`, the scalar whose gradients the file holds.
    pub fn loss(&self, output: &Tensor) -> Result<Tensor> {
        (output * self.get("loss_weights")?.to_dtype(output.dtype())?)?.sum_all()
    }

    /// Checks `output` and the gradients of every model weight and of `inputs`.
    pub fn check(
        &self,
        output: &Tensor,
        grads: &GradStore,
        varmap: &VarMap,
        inputs: &[(&str, &Var)],
        rtol: f64,
    ) -> Result<()> {
        close("output", output, self.get("output")?, rtol)?;
        let vars = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
        let weights = vars.iter().map(|(name, var)| (format!("grad.{name}"), var));
        let inputs = inputs
            .iter()
            .map(|(name, var)| (format!("grad.input.{name}"), *var));
        for (key, var) in weights.chain(inputs) {
            let got = grads
                .get(var.as_tensor())
                .ok_or_else(|| candle_core::Error::Msg(format!("no gradient for {key}")))?;
            close(&key, got, self.get(&key)?, rtol)?;
        }
        Ok(())
    }

    /// Back-propagates [`Golden::loss`] of `output`, then [`Golden::check`]s.
    pub fn check_backward(
        &self,
        output: &Tensor,
        varmap: &VarMap,
        inputs: &[(&str, &Var)],
        rtol: f64,
    ) -> Result<()> {
        let grads = self.loss(output)?.backward()?;
        self.check(output, &grads, varmap, inputs, rtol)
    }
}

/// Asserts that every parameter of `varmap` has a gradient in `grads` that is finite and not all
/// zero (a parameter cut off from the loss, or a layer without a backward, fails by name).
pub fn assert_every_parameter_learns(varmap: &VarMap, grads: &GradStore) {
    let vars = varmap.data().lock().expect("varmap lock");
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        let v = g
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("gradient values");
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name}: non-finite gradient"
        );
        assert!(v.iter().any(|&x| x != 0.0), "{name}: zero gradient");
    }
}

/// A fresh parameter map and an f64 CPU builder over it, as every golden test builds its model.
pub fn f64_vars() -> (VarMap, candle_nn::VarBuilder<'static>) {
    let varmap = VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    (varmap, vb)
}

/// Fails unless `|got − want| ≤ rtol · (|want| + scale)` elementwise, where `scale` is the largest
/// `|want|` (so entries near zero are compared at the tensor's own magnitude), with an absolute
/// floor of 1e-10 for tensors that are zero in exact arithmetic (e.g. a key bias's gradient).
pub fn close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) -> Result<()> {
    if got.dims() != want.dims() {
        candle_core::bail!("{what}: shape {:?}, expected {:?}", got.dims(), want.dims());
    }
    let g = got.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let w = want.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let scale = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if !a.is_finite() || (a - b).abs() > rtol * (b.abs() + scale) + 1e-10 {
            candle_core::bail!("{what}[{i}]: got {a}, expected {b} (rtol {rtol})");
        }
    }
    Ok(())
}
