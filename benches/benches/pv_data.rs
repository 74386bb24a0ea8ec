//! pv-data throughput: loading the bundled dataset, and building examples (examples/s).
//!
//! `cargo bench -p power-perceiver-benches --bench pv_data`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pv_data::{DataPaths, Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn load(c: &mut Criterion) {
    let paths = DataPaths::in_folder(&data_dir()).expect("bundled data");
    let mut group = c.benchmark_group("cpu_pv_data_load");
    group.sample_size(10);
    group.throughput(Throughput::Elements(104_286));
    group.bench_function("bundled_all_inputs", |b| {
        b.iter(|| black_box(Dataset::load(&paths, LoadConfig::default()).expect("load")))
    });
    group.finish();
}

fn examples(c: &mut Criterion) {
    let dataset = Dataset::load(
        &DataPaths::in_folder(&data_dir()).expect("bundled data"),
        LoadConfig::default(),
    )
    .expect("load");
    let config = ExampleConfig::default();
    let keys = example_keys(&dataset, &config, Split::Train).expect("keys");
    // A spread of keys across every system, so UK examples (satellite, NWP) are included.
    let batch_keys: Vec<_> = keys
        .iter()
        .copied()
        .step_by(keys.len() / 256)
        .take(256)
        .collect();
    let uk: Vec<_> = keys
        .iter()
        .copied()
        .filter(|k| dataset.systems[k.system].meta.ss_id == 8215)
        .take(256)
        .collect();
    let mut group = c.benchmark_group("cpu_pv_data_examples");
    group.throughput(Throughput::Elements(256));
    group.bench_function("batch_256_mixed", |b| {
        b.iter(|| black_box(build_batch(&dataset, &config, &batch_keys, Split::Train)))
    });
    group.throughput(Throughput::Elements(uk.len() as u64));
    group.bench_function("batch_uk_all_modalities", |b| {
        b.iter(|| black_box(build_batch(&dataset, &config, &uk, Split::Train)))
    });
    group.sample_size(10);
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("index_train_split", |b| {
        b.iter(|| black_box(example_keys(&dataset, &config, Split::Train).expect("keys")))
    });
    group.finish();
}

criterion_group!(benches, load, examples);
criterion_main!(benches);
