//! pv-data throughput: loading the bundled dataset (rows/s), and building examples (examples/s).
//!
//! `cargo bench -p power-perceiver-benches --bench pv_data`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use power_perceiver_benches::{bundled, data_dir, spread_keys, threads};
use pv_data::{DataPaths, Dataset, LoadConfig, Split, build_batch, example_keys};
use trainer::config::RunConfig;

fn load(c: &mut Criterion) {
    let paths = DataPaths::in_folder(&data_dir()).expect("bundled data");
    let rows = bundled().report.rows;
    let mut group = c.benchmark_group("cpu_pv_data_load");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(format!("bundled_all_inputs_threads{}", threads()), |b| {
        b.iter(|| black_box(Dataset::load(&paths, LoadConfig::default()).expect("load")))
    });
    group.finish();
}

fn examples(c: &mut Criterion) {
    let dataset = bundled();
    let config = RunConfig::default();
    let keys = example_keys(&dataset, &config.examples, Split::Train).expect("keys");
    let mixed = spread_keys(&dataset, &config, 256);
    let uk: Vec<_> = keys
        .iter()
        .copied()
        .filter(|k| dataset.systems[k.system].meta.ss_id == 8215)
        .take(256)
        .collect();
    let t = threads();
    let mut group = c.benchmark_group("cpu_pv_data_examples");
    group.throughput(Throughput::Elements(mixed.len() as u64));
    group.bench_function(format!("batch_256_mixed_threads{t}"), |b| {
        b.iter(|| {
            black_box(build_batch(
                &dataset,
                &config.examples,
                &mixed,
                Split::Train,
            ))
        })
    });
    group.throughput(Throughput::Elements(uk.len() as u64));
    group.bench_function(format!("batch_uk_all_modalities_threads{t}"), |b| {
        b.iter(|| black_box(build_batch(&dataset, &config.examples, &uk, Split::Train)))
    });
    group.sample_size(10);
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function(format!("index_train_split_threads{t}"), |b| {
        b.iter(|| black_box(example_keys(&dataset, &config.examples, Split::Train).expect("keys")))
    });
    group.finish();
}

criterion_group!(benches, load, examples);
criterion_main!(benches);
