//! The training core is reproducible from a seed, learns, and schedules its learning rate.

use std::path::PathBuf;

use candle_core::Device;
use forecaster::ModelConfig;
use pv_data::features::{Modality, PvToken};
use pv_data::{Dataset, ExampleConfig, LoadConfig};
use trainer::training::{SplitMix64, StepLog, TrainConfig, Trainer, drop_inputs, learning_rate_at};

fn dataset() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    Dataset::load_folder(&dir, LoadConfig::default()).expect("load")
}

fn tiny() -> ModelConfig {
    let mut m = ModelConfig::small(8);
    for level in &mut m.levels {
        level.channels = 16;
        level.latents = level.latents.min(4);
        level.heads = 2;
    }
    ModelConfig {
        token_dim: 16,
        decoder_channels: 16,
        decoder_blocks: 1,
        decoder_heads: 2,
        ..m
    }
}

fn run(seed: u64, steps: usize) -> (Vec<f64>, Vec<(String, Vec<f32>)>) {
    let (logs, params) = run_sharded(seed, steps, 2);
    (logs.iter().map(|l| l.loss).collect(), params)
}

type Params = Vec<(String, Vec<f32>)>;

fn run_sharded(seed: u64, steps: usize, shards: usize) -> (Vec<StepLog>, Params) {
    run_with(seed, steps, shards, 0.0)
}

fn run_with(seed: u64, steps: usize, shards: usize, dropout: f64) -> (Vec<StepLog>, Params) {
    let data = dataset();
    // Every 97th training example is plenty for a few steps and keeps the test fast.
    let examples = ExampleConfig {
        t0_stride_steps: 97,
        ..ExampleConfig::default()
    };
    let config = TrainConfig {
        seed,
        batch_size: 16,
        steps,
        learning_rate: 3e-3,
        warmup_steps: 2,
        shards,
        modality_dropout: dropout,
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::new(&data, &examples, &tiny(), config, &Device::Cpu).expect("trainer");
    let logs = (0..steps)
        .map(|_| trainer.step(&data, &examples).expect("step"))
        .collect();
    (logs, trainer.parameters().expect("parameters"))
}

#[test]
fn the_same_seed_gives_bit_identical_weights_and_another_seed_does_not() {
    let (loss_a, params_a) = run(7, 6);
    let (loss_b, params_b) = run(7, 6);
    assert_eq!(loss_a, loss_b);
    assert_eq!(params_a, params_b, "same seed, same machine: bit-identical");
    let (loss_c, params_c) = run(8, 6);
    assert_ne!(loss_a, loss_c);
    assert_ne!(params_a, params_c);
}

/// Modality dropout is drawn from the seed and the step: the same seed repeats it, and it
/// changes what the model sees.
#[test]
fn modality_dropout_is_seeded_and_changes_the_batches() {
    let loss = |dropout| -> Vec<f64> {
        let (logs, _) = run_with(7, 3, 2, dropout);
        logs.iter().map(|l| l.loss).collect()
    };
    assert_eq!(loss(0.5), loss(0.5));
    assert_ne!(loss(0.5), loss(0.0));
}

/// `drop_inputs` drops nothing at 0 and every optional input of every example at 1.
#[test]
fn drop_inputs_at_zero_and_one() {
    let data = dataset();
    let examples = ExampleConfig::default();
    let keys = pv_data::example_keys(&data, &examples, pv_data::Split::Train).expect("keys");
    // UK examples with satellite and NWP, and PVDAQ 50 examples with observations.
    let noon = pv_data::UnixTime::parse("2020-01-02T11:00:00Z").expect("time");
    let ss_id = |k: &pv_data::ExampleKey| data.systems[k.system].meta.ss_id;
    let uk = keys
        .iter()
        .filter(|k| ss_id(k) == 8215 && k.t0 >= noon)
        .take(4);
    let us = keys.iter().filter(|k| ss_id(k) == 50).step_by(1000).take(4);
    let keys: Vec<_> = uk.chain(us).copied().collect();
    let batch = pv_data::build_batch(&data, &examples, &keys, pv_data::Split::Train);
    let mut rng = SplitMix64::new(1);
    let mut none = batch.clone();
    drop_inputs(&mut none, 0.0, &mut rng);
    assert_eq!(none, batch);
    let mut all = batch.clone();
    drop_inputs(&mut all, 1.0, &mut rng);
    for m in [Modality::Satellite, Modality::Observations, Modality::Nwp] {
        assert!(batch.tokens[m].mask.data.contains(&1.0), "{m:?}");
        assert!(all.tokens[m].mask.data.iter().all(|&x| x == 0.0), "{m:?}");
    }
    let pv = &all.tokens[Modality::Pv];
    let f = pv.values.shape[3];
    for (row, &mask) in pv.values.data.chunks(f).zip(&pv.mask.data) {
        assert_eq!(
            mask,
            row[PvToken::INDEX.is_target],
            "only target systems stay"
        );
    }
    let targets = |t: &pv_data::BatchTokens| {
        t.values
            .data
            .chunks(f)
            .zip(&t.mask.data)
            .filter(|(row, mask)| row[PvToken::INDEX.is_target] == 1.0 && **mask == 1.0)
            .count()
    };
    assert_eq!(targets(pv), targets(&batch.tokens[Modality::Pv]));
    assert!(targets(pv) > 0);
}

/// A batch split into shards gives the whole batch's loss and gradient (here: its norm), up to
/// float rounding, whatever the split.
#[test]
fn sharded_steps_match_one_pass_over_the_batch() {
    let (one, _) = run_sharded(5, 1, 1);
    for shards in [2, 3, 16] {
        let (split, _) = run_sharded(5, 1, shards);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * a.abs().max(b.abs());
        assert!(
            close(one[0].loss, split[0].loss),
            "{shards} shards: loss {} vs {}",
            split[0].loss,
            one[0].loss
        );
        assert!(
            close(one[0].grad_norm, split[0].grad_norm),
            "{shards} shards: gradient norm {} vs {}",
            split[0].grad_norm,
            one[0].grad_norm
        );
    }
}

/// The shards' sums are taken in shard order, so the weights do not depend on how many threads
/// ran them.
#[test]
fn sharded_training_is_bit_identical_on_one_and_two_threads() {
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| run_sharded(11, 3, 2))
    };
    let (logs_1, params_1) = on(1);
    let (logs_2, params_2) = on(2);
    assert_eq!(
        logs_1.iter().map(|l| l.loss).collect::<Vec<_>>(),
        logs_2.iter().map(|l| l.loss).collect::<Vec<_>>()
    );
    assert_eq!(params_1, params_2);
}

#[test]
fn training_lowers_the_loss() {
    let (losses, _) = run(3, 40);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.8 * first, "loss {first:.4} -> {last:.4}");
}

#[test]
fn the_schedule_warms_up_then_decays_to_a_tenth() {
    let c = TrainConfig {
        learning_rate: 1.0,
        warmup_steps: 10,
        steps: 110,
        ..TrainConfig::default()
    };
    assert!((learning_rate_at(0, &c) - 0.1).abs() < 1e-12);
    assert!((learning_rate_at(9, &c) - 1.0).abs() < 1e-12);
    assert!((learning_rate_at(60, &c) - 0.55).abs() < 1e-12);
    assert!((learning_rate_at(110, &c) - 0.1).abs() < 1e-12);
    assert!((learning_rate_at(500, &c) - 0.1).abs() < 1e-12);
}

#[test]
fn shuffling_is_a_seeded_permutation() {
    let mut a: Vec<u32> = (0..100).collect();
    let mut b = a.clone();
    SplitMix64::new(5).shuffle(&mut a);
    SplitMix64::new(5).shuffle(&mut b);
    assert_eq!(a, b);
    assert_ne!(a, (0..100).collect::<Vec<_>>());
    a.sort();
    assert_eq!(a, (0..100).collect::<Vec<_>>());
}

#[test]
fn the_weight_average_follows_the_parameters_as_its_formula_says() {
    let data = dataset();
    let examples = ExampleConfig {
        t0_stride_steps: 97,
        ..ExampleConfig::default()
    };
    let decay = 0.3;
    let config = TrainConfig {
        seed: 5,
        batch_size: 8,
        steps: 4,
        learning_rate: 3e-3,
        warmup_steps: 1,
        weight_average: decay,
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::new(&data, &examples, &tiny(), config, &Device::Cpu).expect("trainer");
    // Replayed here in f64 from the parameters after each update: d = min(decay, (t-1)/(t+9)).
    let mut average: Vec<Vec<f64>> = Vec::new();
    for t in 1..=4u64 {
        trainer.step(&data, &examples).expect("step");
        let params = trainer.parameters().expect("parameters");
        let d = decay.min((t as f64 - 1.0) / (t as f64 + 9.0));
        if t == 1 {
            assert_eq!(d, 0.0);
        }
        average = params
            .iter()
            .enumerate()
            .map(|(i, (_, p))| {
                p.iter()
                    .enumerate()
                    .map(|(j, &x)| match average.get(i) {
                        Some(a) => d * a[j] + (1.0 - d) * f64::from(x),
                        None => f64::from(x),
                    })
                    .collect()
            })
            .collect();
    }
    let params = trainer.parameters().expect("parameters");
    let weights = trainer.weights().expect("weights");
    assert_eq!(weights.len(), params.len());
    let mut differs = false;
    for ((name, w), ((pname, p), a)) in weights.iter().zip(params.iter().zip(&average)) {
        assert_eq!(name, pname);
        let w = w
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("f32");
        for ((&w, &p), &a) in w.iter().zip(p).zip(a) {
            assert!(
                (f64::from(w) - a).abs() <= 1e-6 * (1.0 + a.abs()),
                "{name}: {w} vs {a}"
            );
            differs |= w != p;
        }
    }
    assert!(
        differs,
        "the saved weights are the raw parameters, not their average"
    );
}
