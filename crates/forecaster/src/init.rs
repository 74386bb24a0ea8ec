//! Seeded initialisation of a model's parameters, by name, and the small generator behind it:
//! what makes training reproducible from a seed (the trainer initialises every run with it) and
//! tests independent of candle's own, unseeded, initialisation.

use candle_core::Tensor;
use candle_nn::VarMap;

/// SplitMix64: a small, well-mixed generator, enough for shuffling and initialisation.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.next_f64().max(1e-300);
        let v = self.next_f64();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Uniform in `0..n` (multiply-shift on the high 32 bits; unbiased enough for n far below
    /// 2^32).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Shuffles in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A seed for the stream named `name` of a run seeded `seed`.
pub fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name, mixed with the seed: each parameter's values depend only on its name.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Re-initialises every parameter from `seed`, by name, independent of creation order:
/// LayerNorm weights 1 and biases 0; FiLM output layers 0 (identity); latents and modality vectors
/// N(0, 0.02²); the smart-persistence prior's climatological index 0.6; other weights and biases
/// U(±1/√fan_in), as PyTorch's `nn.Linear`.
pub fn initialise(varmap: &VarMap, seed: u64) -> candle_core::Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("varmap lock poisoned".into()))?;
    let fan_in = |name: &str| -> usize {
        let weight = format!("{}weight", name.strip_suffix("bias").unwrap_or(name));
        vars.get(&weight)
            .and_then(|w| w.dims().get(1).copied())
            .unwrap_or(1)
    };
    for (name, var) in vars.iter() {
        let n = var.elem_count();
        let mut rng = SplitMix64::new(name_seed(seed, name));
        let is_norm = name.split('.').any(|part| part.starts_with("norm"));
        let values: Vec<f32> = if name == "prior.climatological_index" {
            // A typical clear-sky index: the prior starts as a plausible forecast.
            vec![0.6; n]
        } else if is_norm && name.ends_with("weight") {
            vec![1.0; n]
        } else if is_norm
            || (name.contains("film") && name.contains(".out."))
            || name.ends_with("frequency_offset")
        {
            // Norms' biases, FiLM's output layer (identity at start) and the learned positions'
            // offset from the Fourier frequencies start at zero.
            vec![0.0; n]
        } else if name.ends_with("latents") || name.ends_with(".type") {
            (0..n).map(|_| (0.02 * rng.normal()) as f32).collect()
        } else {
            let fan = if name.ends_with("bias") {
                fan_in(name)
            } else {
                var.dims().get(1).copied().unwrap_or(1)
            };
            let bound = 1.0 / (fan.max(1) as f64).sqrt();
            (0..n)
                .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
                .collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
