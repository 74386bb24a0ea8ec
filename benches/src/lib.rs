//! Workloads shared by the criterion benches (`benches/benches/`, wall time) and the
//! instruction-count gate (`src/bin/bench-instructions.rs`, run under callgrind by
//! `cargo xtask bench instructions`), so both measure exactly the same code.
//!
//! Every fixture is deterministic: fixed seeds, the bundled `data/`, the default configuration.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use hip_encoder::{HipConfig, HipEncoder, LevelConfig};
use metnet_decoder::{DecoderConfig, MetNetDecoder};
use perceiver_core::layers::Activation;
use perceiver_core::{AttentionImpl, attention};
use pv_data::{
    Batch, DataPaths, Dataset, ExampleKey, FeatureWidths, LoadConfig, Split, build_batch,
    example_keys,
};
use trainer::config::RunConfig;
use trainer::training::{SplitMix64, Trainer, initialise};

/// The bundled data folder.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// The bundled dataset with the default load configuration.
pub fn bundled() -> Dataset {
    let paths = DataPaths::in_folder(&data_dir()).expect("bundled data/ folder");
    Dataset::load(&paths, LoadConfig::default()).expect("bundled data loads")
}

/// Threads rayon (and so candle's CPU kernels) uses: `RAYON_NUM_THREADS`, else every core.
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// An attention problem: `[B, H, N, D]` queries, keys and values, a key-padding mask.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Name in bench ids.
    pub name: &'static str,
    /// Batch (examples × groups).
    pub b: usize,
    /// Heads.
    pub h: usize,
    /// Queries.
    pub nq: usize,
    /// Keys.
    pub nk: usize,
    /// Head width.
    pub d: usize,
    /// Padded keys at the end of every batch row.
    pub padded: usize,
}

impl AttentionShape {
    /// Forward FLOP: 4·Nq·Nk·D per head (QKᵀ and PV); backward is 2.5× that.
    pub fn forward_flop(&self) -> u64 {
        (4 * self.b * self.h * self.nq * self.nk * self.d) as u64
    }
}

/// The attention shapes benched: the shape, the default model's (batch 64) and a large one.
pub const ATTENTION_SHAPES: &[AttentionShape] = &[
    AttentionShape {
        name: "b8_h4_q64_k1024_d32",
        b: 8,
        h: 4,
        nq: 64,
        nk: 1024,
        d: 32,
        padded: 0,
    },
    // HiP level 1, cross: 64 examples × 8 groups, 4 latents over ~24 tokens (3 padded).
    AttentionShape {
        name: "hip_cross_b512_h2_q4_k24_d16",
        b: 512,
        h: 2,
        nq: 4,
        nk: 24,
        d: 16,
        padded: 3,
    },
    // HiP level 1, self: the 4 latents of each of the 512 groups.
    AttentionShape {
        name: "hip_l1_self_b512_h2_q4_k4_d16",
        b: 512,
        h: 2,
        nq: 4,
        nk: 4,
        d: 16,
        padded: 0,
    },
    // HiP level 2, cross: 64 examples × 2 groups, 8 latents over 4 groups' 4 latents each.
    AttentionShape {
        name: "hip_l2_cross_b128_h2_q8_k16_d16",
        b: 128,
        h: 2,
        nq: 8,
        nk: 16,
        d: 16,
        padded: 0,
    },
    // HiP level 2, self.
    AttentionShape {
        name: "hip_l2_self_b128_h2_q8_k8_d16",
        b: 128,
        h: 2,
        nq: 8,
        nk: 8,
        d: 16,
        padded: 0,
    },
    // HiP level 3, cross and self: 64 examples, 16 latents, 4 heads of 16; also the decoder's
    // cross-attention (an example's 16 lead times' queries over its 16-latent bottleneck).
    AttentionShape {
        name: "hip_self_b64_h4_q16_k16_d16",
        b: 64,
        h: 4,
        nq: 16,
        nk: 16,
        d: 16,
        padded: 0,
    },
    // The decoder's cross-attention until session 7 (one query per example and lead time), kept
    // for comparison with the figures recorded then. The decoder's self-attention (one target
    // system: one key) no longer runs an attention op.
    AttentionShape {
        name: "decoder_cross_b1024_h4_q1_k16_d16",
        b: 1024,
        h: 4,
        nq: 1,
        nk: 16,
        d: 16,
        padded: 0,
    },
    AttentionShape {
        name: "large_b1_h8_q1024_k1024_d64",
        b: 1,
        h: 8,
        nq: 1024,
        nk: 1024,
        d: 64,
        padded: 0,
    },
];

/// Inputs of one attention problem, fixed by a seed.
pub struct AttentionFixture {
    q: Var,
    k: Var,
    v: Var,
    mask: Tensor,
    weights: Tensor,
}

impl AttentionFixture {
    /// Random inputs for `shape`.
    pub fn new(shape: &AttentionShape) -> Self {
        let AttentionShape {
            b,
            h,
            nq,
            nk,
            d,
            padded,
            ..
        } = *shape;
        let mut rng = SplitMix64::new(0xA77E_2026);
        let mut random = |dims: &[usize]| {
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            Tensor::from_vec(values, dims, &Device::Cpu).expect("tensor")
        };
        let var = |t: Tensor| Var::from_tensor(&t).expect("var");
        let q = var(random(&[b, h, nq, d]));
        let k = var(random(&[b, h, nk, d]));
        let v = var(random(&[b, h, nk, d]));
        let weights = random(&[b, h, nq, d]);
        let mut mask = vec![1f32; b * nk];
        for row in mask.chunks_mut(nk) {
            row[nk - padded..].fill(0.0);
        }
        let mask = Tensor::from_vec(mask, (b, nk), &Device::Cpu).expect("mask");
        AttentionFixture {
            q,
            k,
            v,
            mask,
            weights,
        }
    }

    /// The attention output.
    pub fn forward(&self, how: AttentionImpl) -> Tensor {
        attention(
            self.q.as_tensor(),
            self.k.as_tensor(),
            self.v.as_tensor(),
            Some(&self.mask),
            how,
        )
        .expect("attention forward")
    }

    /// Forward, a weighted sum as the loss, and backward to q, k and v.
    pub fn forward_backward(&self, how: AttentionImpl) -> candle_core::backprop::GradStore {
        let loss = (self.forward(how) * &self.weights)
            .and_then(|x| x.sum_all())
            .expect("loss");
        loss.backward().expect("attention backward")
    }
}

/// One default-config training step on the bundled data: [`Trainer::step`] builds the next batch
/// (64 examples by default), runs forward, pinball loss, backward, clipping and AdamW.
pub struct TrainStepFixture {
    /// The data.
    pub dataset: Dataset,
    /// The default configuration.
    pub config: RunConfig,
    /// Model, optimiser and example order.
    pub trainer: Trainer,
}

/// Examples per step of the benchmarked training step: 64, the default until session 13 and the
/// batch of every PyTorch comparison in docs/PERFORMANCE.md (the default run trains with 256).
pub const BENCH_BATCH: usize = 64;

impl TrainStepFixture {
    /// Loads `data/` and builds the default model (seed 42) with [`BENCH_BATCH`] examples per step.
    pub fn new() -> Self {
        Self::with_batch_size(BENCH_BATCH)
    }

    /// The default model with `batch_size` examples per step.
    pub fn with_batch_size(batch_size: usize) -> Self {
        let dataset = bundled();
        let mut config = RunConfig::default();
        config.train.batch_size = batch_size;
        let trainer = Trainer::new(
            &dataset,
            &config.examples,
            &config.model,
            config.train.clone(),
            &Device::Cpu,
        )
        .expect("default model");
        TrainStepFixture {
            dataset,
            config,
            trainer,
        }
    }

    /// Examples per step.
    pub fn batch_size(&self) -> usize {
        self.config.train.batch_size
    }

    /// One optimiser step; returns the loss.
    pub fn step(&mut self) -> f64 {
        self.trainer
            .step(&self.dataset, &self.config.examples)
            .expect("training step")
            .loss
    }
}

impl Default for TrainStepFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// `n` training-split example keys spread over every system (so satellite and NWP examples are in).
pub fn spread_keys(dataset: &Dataset, config: &RunConfig, n: usize) -> Vec<ExampleKey> {
    let keys = example_keys(dataset, &config.examples, Split::Train).expect("example keys");
    let stride = (keys.len() / n).max(1);
    keys.into_iter().step_by(stride).take(n).collect()
}

/// A default batch of 64 training examples from the bundled data.
pub fn default_batch(dataset: &Dataset, config: &RunConfig) -> Batch {
    let keys = spread_keys(dataset, config, config.train.batch_size);
    build_batch(dataset, &config.examples, &keys, Split::Train)
}

/// The default model's HiP encoder alone on tokens shaped like a default batch's (random values,
/// the real batch's padding mask), forward and backward.
pub struct EncoderFixture {
    encoder: HipEncoder,
    tokens: Var,
    mask: Tensor,
    /// Examples in the batch.
    pub batch_size: usize,
}

/// The default model's MetNet decoder alone over every lead time, on a random bottleneck and the
/// real batch's queries, forward and backward.
pub struct DecoderFixture {
    decoder: MetNetDecoder,
    queries: Tensor,
    query_mask: Tensor,
    lead_hours: Tensor,
    bottleneck: Var,
    /// Examples in the batch.
    pub batch_size: usize,
}

fn array(a: &pv_data::Array) -> Tensor {
    Tensor::from_slice(&a.data, a.shape.as_slice(), &Device::Cpu).expect("tensor")
}

fn params(varmap: &VarMap) {
    initialise(varmap, 7).expect("initialise");
}

impl EncoderFixture {
    /// The encoder of `config` on the token layout of `batch`.
    pub fn new(config: &RunConfig, batch: &Batch) -> Self {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let m = &config.model;
        let hip = HipConfig {
            input_dim: m.token_dim,
            levels: m.levels.iter().copied().map(LevelConfig::from).collect(),
            widening: m.widening,
            activation: Activation::Gelu,
            lead_time_dim: None,
        };
        let encoder = HipEncoder::new(&hip, vb).expect("encoder");
        params(&varmap);
        let masks: Vec<Tensor> = batch
            .tokens
            .0
            .iter()
            .filter(|t| t.mask.shape.get(2).is_some_and(|&n| n > 0))
            .map(|t| array(&t.mask))
            .collect();
        let mask = Tensor::cat(&masks, 2).expect("mask");
        let (b, g, n) = mask.dims3().expect("mask dims");
        let mut rng = SplitMix64::new(11);
        let values: Vec<f32> = (0..b * g * n * m.token_dim)
            .map(|_| rng.normal() as f32)
            .collect();
        let tokens =
            Tensor::from_vec(values, (b, g, n, m.token_dim), &Device::Cpu).expect("tokens");
        EncoderFixture {
            encoder,
            tokens: Var::from_tensor(&tokens).expect("var"),
            mask,
            batch_size: b,
        }
    }

    /// Tokens per history step (all modalities, padded).
    pub fn tokens_per_step(&self) -> usize {
        self.mask.dim(2).expect("dims")
    }

    /// Forward to the bottleneck, sum, backward.
    pub fn forward_backward(&self) -> candle_core::backprop::GradStore {
        let out = self
            .encoder
            .forward(self.tokens.as_tensor(), &self.mask, None)
            .expect("encode");
        out.sum_all().and_then(|s| s.backward()).expect("backward")
    }
}

impl DecoderFixture {
    /// The decoder of `config` with the queries of `batch`.
    pub fn new(
        config: &RunConfig,
        batch: &Batch,
        widths: FeatureWidths,
        step_minutes: i64,
    ) -> Self {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let m = &config.model;
        let last = m.levels.last().expect("levels");
        let decoder_config = DecoderConfig {
            blocks: m.decoder_blocks,
            heads: m.decoder_heads,
            widening: m.widening,
            quantiles: m.quantiles.clone(),
            ..DecoderConfig::new(widths.query, m.decoder_channels, last.channels)
        };
        let decoder = MetNetDecoder::new(&decoder_config, vb).expect("decoder");
        params(&varmap);
        let queries = array(&batch.queries);
        let (b, _, k, _) = queries.dims4().expect("queries");
        let lead: Vec<f32> = (1..=k)
            .map(|i| (i as i64 * step_minutes) as f32 / 60.0)
            .collect();
        let mut rng = SplitMix64::new(13);
        let values: Vec<f32> = (0..b * last.latents * last.channels)
            .map(|_| rng.normal() as f32)
            .collect();
        let bottleneck = Tensor::from_vec(values, (b, last.latents, last.channels), &Device::Cpu)
            .expect("bottleneck");
        DecoderFixture {
            decoder,
            queries,
            query_mask: array(&batch.query_mask),
            lead_hours: Tensor::from_vec(lead, k, &Device::Cpu).expect("lead"),
            bottleneck: Var::from_tensor(&bottleneck).expect("var"),
            batch_size: b,
        }
    }

    /// Quantiles for every lead time, sum, backward.
    pub fn forward_backward(&self) -> candle_core::backprop::GradStore {
        let out = self
            .decoder
            .forward(
                &self.queries,
                &self.query_mask,
                &self.lead_hours,
                Some(self.bottleneck.as_tensor()),
            )
            .expect("decode");
        out.sum_all().and_then(|s| s.backward()).expect("backward")
    }
}

/// A synthetic fleet of `n` systems for forecasts at `t0`: each system a copy of one of the
/// `source` systems that have history at `t0` (in turn), keeping only its `history_steps`
/// intervals up to `t0`, placed on a jittered grid over Great Britain (49.9–55.9 N,
/// 5.5 W–1.5 E), ss_ids 1..=n, with the source's satellite, NWP and observations. For the
/// fleet-forecast benchmark (`fleet` binary) and the streaming test.
pub fn synthetic_fleet(
    source: &Dataset,
    n: usize,
    t0: pv_data::UnixTime,
    history_steps: usize,
) -> Dataset {
    let step = source.step_s();
    let first = pv_data::UnixTime(t0.0 - (history_steps as i64 - 1) * step);
    let templates: Vec<pv_data::PvSeries> = source
        .systems
        .iter()
        .filter_map(|s| {
            let (a, b) = (s.index_of(first)?, s.index_of(t0)?);
            let mut cut = s.clone();
            cut.start = first;
            cut.power_kw = s.power_kw[a..=b].to_vec();
            cut.power_kw.iter().any(|p| !p.is_nan()).then_some(cut)
        })
        .collect();
    assert!(
        !templates.is_empty(),
        "no source system has history at {t0}"
    );
    let side = (n as f64).sqrt().ceil() as usize;
    let mut rng = SplitMix64::new(0xf1ee7);
    let systems = (0..n)
        .map(|i| {
            let mut s = templates[i % templates.len()].clone();
            let (row, col) = ((i / side) as f64, (i % side) as f64);
            s.meta.ss_id = i as i64 + 1;
            s.meta.latitude_deg = 49.9 + 6.0 * (row + rng.next_f64()) / side as f64;
            s.meta.longitude_deg = -5.5 + 7.0 * (col + rng.next_f64()) / side as f64;
            s
        })
        .collect();
    Dataset {
        systems,
        ..source.clone()
    }
}

/// A freshly initialised model of `setup` for `dataset`, written to `dir/model.safetensors`
/// and read back as a [`forecaster::SavedModel`] (what `forecast` runs; its weights do not
/// change the cost).
pub fn untrained_saved_model(
    dataset: &Dataset,
    setup: &forecaster::ModelSetup,
    dir: &std::path::Path,
) -> forecaster::SavedModel {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let widths = FeatureWidths::of(dataset);
    forecaster::PvForecaster::new(&setup.model, widths, setup.data.step_minutes, vb)
        .expect("model");
    initialise(&varmap, 0).expect("initialise");
    let mut tensors: Vec<(String, Tensor)> = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata =
        forecaster::saved::model_metadata(setup, widths, &dataset.scalers()).expect("metadata");
    forecaster::checkpoint::write(&dir.join("model.safetensors"), &tensors, metadata)
        .expect("write");
    forecaster::SavedModel::read(dir, &Device::Cpu).expect("read back")
}
