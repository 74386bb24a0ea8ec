//! A fleet forecast streams: the sink receives the rows a batch at a time, in system order, as
//! they are predicted, never the whole fleet at once; the Parquet file grows a row group per
//! batch and holds every system's every lead time.

use candle_core::Device;
use forecaster::{ForecastFile, ModelSetup, forecast_fleet};
use power_perceiver_benches::{bundled, synthetic_fleet, untrained_saved_model};
use pv_data::UnixTime;

#[test]
fn a_fleet_forecast_streams_batch_by_batch() {
    let setup = ModelSetup::default();
    let t0 = UnixTime::parse("2020-01-05T12:00:00Z").expect("t0");
    let mut source = bundled();
    source.fit_scalers(&setup.examples);
    let n = 300;
    let fleet = synthetic_fleet(&source, n, t0, 4 * 96);
    assert_eq!(fleet.systems.len(), n);
    // As in a real fleet, an example sees its neighbours as context systems.
    let key = pv_data::ExampleKey { system: n / 2, t0 };
    let example = pv_data::build_example(&fleet, &setup.examples, key, pv_data::Split::Test);
    assert!(!example.context_ss_ids.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = untrained_saved_model(&fleet, &setup, dir.path());
    let (batch, k) = (16, setup.examples.lead_times);

    let mut calls = Vec::new();
    let mut next_ss_id = 1;
    let done = forecast_fleet(&saved, &fleet, t0, batch, &Device::Cpu, |rows| {
        calls.push(rows.len());
        for row in rows {
            assert_eq!(row.t0, t0);
            assert!(row.quantiles_kw.iter().all(|q| q.is_finite() && *q >= 0.0));
        }
        // Systems in order, each with its k lead times.
        for system in rows.chunks(k) {
            assert!(system.iter().all(|r| r.ss_id == next_ss_id));
            next_ss_id += 1;
        }
        Ok(())
    })
    .expect("fleet");
    assert_eq!((done.systems, done.rows), (n, n * k));
    assert!(done.skipped.is_empty());
    assert_eq!(calls.len(), n.div_ceil(batch));
    assert!(calls.iter().all(|&rows| rows <= batch * k), "{calls:?}");

    // Streamed to Parquet: one row group per batch, every row there.
    let out = dir.path().join("fleet.parquet");
    let mut file = ForecastFile::create(&out, &setup.model.quantiles).expect("create");
    forecast_fleet(&saved, &fleet, t0, batch, &Device::Cpu, |rows| {
        file.write(rows)
    })
    .expect("fleet to file");
    assert!(!out.exists(), "nothing at the path before finish");
    file.finish().expect("finish");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&out).expect("open"),
    )
    .expect("parquet");
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows() as usize, n * k);
    assert_eq!(meta.num_row_groups(), n.div_ceil(batch));
}

#[test]
fn an_unfinished_forecast_file_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.csv");
    std::fs::write(&out, "previous").expect("write");
    let file = ForecastFile::create(&out, &[0.5]).expect("create");
    drop(file);
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "previous");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
}
