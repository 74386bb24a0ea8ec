//! A folder laid out as the published uk_pv dataset (`metadata.csv` with its own columns beside
//! `5min.parquet` and `30min.parquet`) loads unchanged: the finer file by default, the other by
//! name, and both give the same half-hourly energy.

mod common;

use common::*;
use pv_data::{DataError, DataPaths, Dataset, LoadConfig, UK_PV_GENERATION};

/// Two systems, three days: 5-minute energy `wh(i)` and the 30-minute sums of it.
fn write_uk_pv(dir: &std::path::Path) {
    let n5 = 3 * 288;
    let wh = |i: usize| {
        ((i % 288) as f64 / 12.0 - 12.0)
            .abs()
            .mul_add(-10.0, 120.0)
            .max(0.0)
    };
    let mut ids = Vec::new();
    let mut t = Vec::new();
    let mut values = Vec::new();
    let (mut ids30, mut t30, mut values30) = (Vec::new(), Vec::new(), Vec::new());
    for ss_id in [11, 12] {
        for i in 0..n5 {
            ids.push(ss_id);
            t.push(JUNE_2020 + (i as i64 + 1) * 300);
            values.push(Some(wh(i) * ss_id as f64 / 10.0));
        }
        for j in 0..n5 / 6 {
            ids30.push(ss_id);
            t30.push(JUNE_2020 + (j as i64 + 1) * 1800);
            let sum: f64 = (6 * j..6 * j + 6).map(wh).sum();
            values30.push(Some(sum * ss_id as f64 / 10.0));
        }
    }
    write_parquet(&dir.join("5min.parquet"), &generation(&ids, &t, &values));
    write_parquet(
        &dir.join("30min.parquet"),
        &generation(&ids30, &t30, &values30),
    );
    // The published metadata: lower-case `kwp`, and columns this project does not use.
    std::fs::write(
        dir.join("metadata.csv"),
        "ss_id,latitude_rounded,longitude_rounded,llsoacd,orientation,tilt,kwp,operational_at\n\
         11,53.38,-1.47,E01000001,180.0,35.0,3.5,2016-02-01\n\
         12,53.40,-1.50,E01000002,135.0,30.0,2.9,2017-05-12\n\
         13,51.50,-0.12,E01000003,180.0,30.0,4.0,2018-01-01\n",
    )
    .expect("metadata");
}

#[test]
fn the_published_uk_pv_folder_loads_with_either_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_uk_pv(dir.path());

    let default = DataPaths::in_folder(dir.path()).expect("found");
    assert!(default.generation.ends_with("5min.parquet"));
    assert_eq!(default.named_step_minutes(), Some(5));
    let thirty = DataPaths::in_folder_with(dir.path(), Some("30min")).expect("found");
    assert!(thirty.generation.ends_with("30min.parquet"));
    assert_eq!(thirty.named_step_minutes(), Some(30));
    assert_eq!(UK_PV_GENERATION[0].0, "5min");

    // The 5-minute file resampled to the default 15 minutes and to 30; the 30-minute file only
    // at 30 (or coarser): asking it for 15 is a typed error naming the system and both steps.
    let fine = Dataset::load(&default, LoadConfig::default()).expect("5min at 15");
    assert_eq!(fine.systems.len(), 2, "system 13 has metadata but no data");
    let at_30 = LoadConfig {
        step_minutes: 30,
        ..LoadConfig::default()
    };
    let fine30 = Dataset::load(&default, at_30).expect("5min at 30");
    let coarse = Dataset::load(&thirty, at_30).expect("30min at 30");
    for (a, b) in fine30.systems.iter().zip(&coarse.systems) {
        assert_eq!(a.meta.ss_id, b.meta.ss_id);
        assert_eq!(a.start, b.start);
        assert_eq!(a.power_kw.len(), b.power_kw.len());
        for (x, y) in a.power_kw.iter().zip(&b.power_kw) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    assert!((fine.systems[0].meta.capacity_kwp - 3.5).abs() < 1e-12);
    let err = Dataset::load(&thirty, LoadConfig::default()).expect_err("30 min at 15");
    assert!(matches!(err, DataError::IntervalMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("30") && message.contains("15"),
        "{message}"
    );

    // A file that is not there is named in the error, as is what a folder without any lacks.
    let err = DataPaths::in_folder_with(dir.path(), Some("2min")).expect_err("no 2min");
    assert!(err.to_string().contains("2min.parquet"), "{err}");
    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        dir.path().join("metadata.csv"),
        empty.path().join("metadata.csv"),
    )
    .expect("copy");
    let err = DataPaths::in_folder(empty.path()).expect_err("no generation");
    assert!(err.to_string().contains("5min.parquet"), "{err}");
}
