//! Shared by the trainer's integration tests: the bundled data, a tiny run configuration, and a
//! second data folder in another layout.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch};
use forecaster::ModelConfig;
use pv_data::{Dataset, ExampleConfig, LoadConfig};
use trainer::config::{EvalConfig, RunConfig};
use trainer::training::TrainConfig;

/// Every tensor of a checkpoint as raw f32 bits, sorted by name: equal means bit-identical.
pub fn checkpoint_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let checkpoint = forecaster::checkpoint::Checkpoint::read(path, &candle_core::Device::Cpu)
        .expect("read checkpoint");
    let mut out: Vec<(String, Vec<u32>)> = checkpoint
        .tensors
        .iter()
        .map(|(n, t)| {
            let values = t
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("f32");
            (n.clone(), values.iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

/// Asserts that two run folders ended the same: both checkpoints bit for bit, the metrics log and
/// the test report byte for byte. `context` is added to the failure message.
pub fn assert_same_run(a: &Path, b: &Path, context: &str) {
    for file in ["model.safetensors", "last.safetensors"] {
        assert_eq!(
            checkpoint_bits(&a.join(file)),
            checkpoint_bits(&b.join(file)),
            "{file} differs {context}"
        );
    }
    for file in ["metrics.jsonl", "test_metrics.json"] {
        assert_eq!(
            std::fs::read_to_string(a.join(file)).expect("read"),
            std::fs::read_to_string(b.join(file)).expect("read"),
            "{file} differs {context}"
        );
    }
}

/// The bundled data folder.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// The bundled data, loaded.
pub fn dataset() -> Dataset {
    load(&data_dir())
}

/// A data folder, loaded with the default configuration.
pub fn load(dir: &Path) -> Dataset {
    Dataset::load_folder(dir, LoadConfig::default()).expect("load")
}

/// A model and run small enough for a test: 6 steps of 8 examples, validation every 3 steps on
/// 64 examples, every 211th t0 only.
pub fn tiny_config() -> RunConfig {
    let mut model = ModelConfig::small(8);
    for level in &mut model.levels {
        level.channels = 16;
        level.heads = 2;
    }
    RunConfig {
        examples: ExampleConfig {
            t0_stride_steps: 211,
            ..ExampleConfig::default()
        },
        model: ModelConfig {
            token_dim: 16,
            decoder_channels: 16,
            decoder_blocks: 1,
            decoder_heads: 2,
            ..model
        },
        train: TrainConfig {
            steps: 6,
            batch_size: 8,
            warmup_steps: 2,
            // So that the resume tests cover the dropout draws too.
            modality_dropout: 0.25,
            ..TrainConfig::default()
        },
        eval: EvalConfig {
            every_steps: 3,
            patience: 5,
            max_validation_examples: 64,
            batch_size: 64,
        },
        ..RunConfig::default()
    }
}

/// Writes a second uk_pv folder into `dir` from the bundled data, laid out differently: the
/// generation as hive partitions (`generation/ss_id=<id>/part-0.parquet`) of all systems but
/// `drop_ss_id`, the metadata as Parquet, the other inputs copied.
pub fn other_folder(dir: &Path, drop_ss_id: i64) {
    let source = data_dir();
    let file = std::fs::File::open(source.join("generation.parquet")).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    let schema = batches[0].schema();
    let all = arrow_select::concat::concat_batches(&schema, &batches).expect("concat");
    let ids = all
        .column_by_name("ss_id")
        .expect("ss_id")
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64 ss_id")
        .clone();
    let mut distinct: Vec<i64> = ids.values().to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    for id in distinct.into_iter().filter(|&i| i != drop_ss_id) {
        let mask = arrow_array::BooleanArray::from_iter(ids.iter().map(|v| Some(v == Some(id))));
        let part = arrow_select::filter::filter_record_batch(&all, &mask).expect("filter");
        let folder = dir.join(format!("generation/ss_id={id}"));
        std::fs::create_dir_all(&folder).expect("mkdir");
        write_parquet(&folder.join("part-0.parquet"), &part);
    }
    // Metadata as Parquet, without the dropped system.
    let text = std::fs::read_to_string(source.join("metadata.csv")).expect("metadata");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("row").iter().map(String::from).collect())
        .filter(|r: &Vec<String>| r[0] != drop_ss_id.to_string())
        .collect();
    let mut fields = Vec::new();
    let mut columns: Vec<Arc<dyn Array>> = Vec::new();
    for (c, name) in header.iter().enumerate() {
        if c == 0 {
            fields.push(arrow_schema::Field::new(
                name,
                arrow_schema::DataType::Int64,
                false,
            ));
            columns.push(Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r[c].parse::<i64>().expect("id")),
            )));
        } else if name == "time_label" {
            // Optional text column: empty cells become nulls.
            fields.push(arrow_schema::Field::new(
                name,
                arrow_schema::DataType::Utf8,
                true,
            ));
            columns.push(Arc::new(arrow_array::StringArray::from_iter(
                rows.iter()
                    .map(|r| (!r[c].is_empty()).then(|| r[c].clone())),
            )));
        } else {
            fields.push(arrow_schema::Field::new(
                name,
                arrow_schema::DataType::Float64,
                true,
            ));
            columns.push(Arc::new(arrow_array::Float64Array::from_iter(
                rows.iter()
                    .map(|r| (!r[c].is_empty()).then(|| r[c].parse::<f64>().expect("number"))),
            )));
        }
    }
    let meta =
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).expect("batch");
    write_parquet(&dir.join("metadata.parquet"), &meta);
    for input in ["satellite.parquet", "nwp.parquet", "observations.parquet"] {
        std::fs::copy(source.join(input), dir.join(input)).expect("copy");
    }
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}
