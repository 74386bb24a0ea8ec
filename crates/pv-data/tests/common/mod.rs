//! Helpers shared by the integration tests: write small, real Parquet and CSV files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

/// Writes `batch` as a Parquet file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).expect("create parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// Microsecond timestamps from seconds, naive or with a zone.
pub fn times(seconds: &[i64], zone: Option<&str>) -> ArrayRef {
    let a =
        TimestampMicrosecondArray::from(seconds.iter().map(|s| s * 1_000_000).collect::<Vec<_>>());
    Arc::new(match zone {
        Some(z) => a.with_timezone(z),
        None => a,
    })
}

/// A generation table in the uk_pv layout.
pub fn generation(ss_ids: &[i64], seconds: &[i64], wh: &[Option<f64>]) -> RecordBatch {
    generation_zoned(ss_ids, seconds, wh, None)
}

/// A generation table whose timestamps carry `zone`.
pub fn generation_zoned(
    ss_ids: &[i64],
    seconds: &[i64],
    wh: &[Option<f64>],
    zone: Option<&str>,
) -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "ss_id",
            Arc::new(Int64Array::from(ss_ids.to_vec())) as ArrayRef,
        ),
        ("datetime_GMT", times(seconds, zone)),
        (
            "generation_Wh",
            Arc::new(Float64Array::from(wh.to_vec())) as ArrayRef,
        ),
    ])
    .expect("batch")
}

/// Any table from named columns.
pub fn table(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

/// An integer column.
pub fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// A float column.
pub fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// A string column.
pub fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Writes a metadata CSV for the given systems at one place (52 N, 0 E), 4 kWp, facing south.
pub fn write_metadata(dir: &Path, ss_ids: &[i64]) -> PathBuf {
    let mut text = String::from("ss_id,latitude_rounded,longitude_rounded,orientation,tilt,kWp\n");
    for id in ss_ids {
        text.push_str(&format!("{id},52.0,0.0,180,30,4.0\n"));
    }
    let path = dir.join("metadata.csv");
    std::fs::write(&path, text).expect("write metadata");
    path
}

/// Regularly spaced times: `n` interval ends from `start`, `step` seconds apart.
pub fn grid(start: i64, step: i64, n: usize) -> Vec<i64> {
    (0..n as i64).map(|i| start + i * step).collect()
}

/// 2020-06-01T00:00:00Z.
pub const JUNE_2020: i64 = 1_590_969_600;
