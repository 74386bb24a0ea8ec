//! Every kind of bad input, written as a real file, must give a typed error naming the file and,
//! where it applies, the column and the row.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array};
use common::*;
use pv_data::{
    BadValueKind, BadValuePolicy, DataError, DataPaths, Dataset, ExampleConfig, LoadConfig,
    Metadata, Split, TimeLabel, example_keys, load_generation,
};

fn write_gen(dir: &Path, ss: &[i64], t: &[i64], wh: &[Option<f64>]) -> PathBuf {
    let path = dir.join("generation.parquet");
    write_parquet(&path, &generation(ss, t, wh));
    path
}

/// A temporary folder holding `g.parquet` with `columns`.
fn temp_parquet(columns: Vec<(&str, ArrayRef)>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.parquet");
    write_parquet(&path, &table(columns));
    (dir, path)
}

fn load_err(path: &Path) -> DataError {
    load_generation(path, BadValuePolicy::Error).expect_err("bad input must be an error")
}

/// Asserts the error names the file, and the column and row when given.
fn assert_names(err: &DataError, path: &Path, column: Option<&str>, row: Option<usize>) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    if let Some(c) = column {
        assert!(text.contains(&format!("column `{c}`")), "{text}");
    }
    if let Some(r) = row {
        assert!(text.contains(&format!("row {r}")), "{text}");
    }
}

fn bad_value(energy: f64, kind: BadValueKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 4);
    let path = write_gen(
        dir.path(),
        &[1; 4],
        &t,
        &[Some(1.0), Some(2.0), Some(energy), Some(3.0)],
    );
    let err = load_err(&path);
    assert!(
        matches!(&err, DataError::BadValue { kind: k, .. } if *k == kind),
        "{err:?}"
    );
    assert_names(&err, &path, Some("generation_Wh"), Some(2));
}

#[test]
fn nan_energy_is_refused_with_its_row() {
    bad_value(f64::NAN, BadValueKind::NonFinite);
}

#[test]
fn infinite_energy_is_refused() {
    bad_value(f64::INFINITY, BadValueKind::NonFinite);
}

#[test]
fn negative_energy_is_refused() {
    bad_value(-3.5, BadValueKind::Negative);
}

#[test]
fn sentinel_values_are_refused_as_sentinels() {
    bad_value(-1e6, BadValueKind::Sentinel);
    bad_value(-9999.0, BadValueKind::Sentinel);
}

#[test]
fn mask_policy_masks_and_counts_instead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 5);
    let path = write_gen(
        dir.path(),
        &[1; 5],
        &t,
        &[Some(1.0), Some(f64::NAN), Some(-1e6), Some(-2.0), None],
    );
    let generation = load_generation(&path, BadValuePolicy::MaskAndReport).expect("masked load");
    let series = &generation.systems[&1];
    assert_eq!(series.energy_wh, vec![Some(1.0), None, None, None, None]);
    assert_eq!(generation.report.masked.values().sum::<usize>(), 3);
    assert_eq!(generation.report.null_values, 1);
}

#[test]
fn truncated_parquet_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 100);
    let path = write_gen(dir.path(), &[1; 100], &t, &vec![Some(1.0); 100]);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load_err(&path);
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    assert_names(&err, &path, None, None);
}

#[test]
fn corrupt_parquet_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 100);
    let path = write_gen(dir.path(), &[1; 100], &t, &vec![Some(1.0); 100]);
    let mut bytes = std::fs::read(&path).expect("read");
    // Overwrite the data pages (after the 4-byte magic) with garbage, keeping the footer.
    let n = bytes.len();
    for b in &mut bytes[4..n / 2] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("corrupt");
    let err = load_err(&path);
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");

    let garbage = dir.path().join("not_parquet.parquet");
    std::fs::write(
        &garbage,
        b"ss_id,datetime_GMT,generation_Wh\n1,2020-01-01,3\n",
    )
    .expect("write");
    let err = load_err(&garbage);
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    assert_names(&err, &garbage, None, None);
}

#[test]
fn zero_byte_file_and_empty_table_and_empty_folder_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zero = dir.path().join("zero.parquet");
    std::fs::write(&zero, b"").expect("write");
    assert!(matches!(load_err(&zero), DataError::Parquet { .. }));

    let empty = write_gen(dir.path(), &[], &[], &[]);
    let err = load_err(&empty);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
    assert_names(&err, &empty, None, None);

    let folder = dir.path().join("nothing_here");
    std::fs::create_dir(&folder).expect("mkdir");
    assert!(matches!(load_err(&folder), DataError::Empty { .. }));
}

#[test]
fn missing_column_names_the_column_and_what_was_found() {
    let (_dir, path) = temp_parquet(vec![
        ("ss_id", ints(&[1])),
        ("datetime_GMT", times(&[JUNE_2020], None)),
    ]);
    let err = load_err(&path);
    assert!(
        matches!(&err, DataError::MissingColumn { column, .. } if column == "generation_Wh"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ss_id, datetime_GMT"), "{err}");
}

#[test]
fn wrong_column_types_are_refused() {
    let (_dir, path) = temp_parquet(vec![
        ("ss_id", ints(&[1])),
        ("datetime_GMT", times(&[JUNE_2020], None)),
        ("generation_Wh", strings(&["12.5"])),
    ]);
    let err = load_err(&path);
    assert!(matches!(err, DataError::WrongType { .. }), "{err:?}");
    assert_names(&err, &path, Some("generation_Wh"), None);

    // Timestamps stored as strings, and ss_id stored as float.
    write_parquet(
        &path,
        &table(vec![
            ("ss_id", ints(&[1])),
            ("datetime_GMT", strings(&["2020-06-01 00:00"])),
            ("generation_Wh", floats(&[1.0])),
        ]),
    );
    assert_names(&load_err(&path), &path, Some("datetime_GMT"), None);
    write_parquet(
        &path,
        &table(vec![
            ("ss_id", floats(&[1.0])),
            ("datetime_GMT", times(&[JUNE_2020], None)),
            ("generation_Wh", floats(&[1.0])),
        ]),
    );
    assert_names(&load_err(&path), &path, Some("ss_id"), None);
}

#[test]
fn column_names_match_ignoring_case() {
    let (_dir, path) = temp_parquet(vec![
        ("SS_ID", ints(&[1, 1])),
        ("datetime_gmt", times(&[JUNE_2020, JUNE_2020 + 900], None)),
        ("generation_wh", floats(&[1.0, 2.0])),
    ]);
    let generation =
        load_generation(&path, BadValuePolicy::Error).expect("case-insensitive columns");
    assert_eq!(generation.systems[&1].energy_wh, vec![Some(1.0), Some(2.0)]);
}

#[test]
fn duplicate_timestamps_name_both_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = [JUNE_2020, JUNE_2020 + 900, JUNE_2020 + 900];
    let path = write_gen(dir.path(), &[7, 7, 7], &t, &[Some(1.0); 3]);
    let err = load_err(&path);
    assert!(
        matches!(err, DataError::DuplicateTimestamp { ss_id: 7, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("datetime_GMT"), Some(2));
    assert!(err.to_string().contains("row 1"), "{err}");
}

/// Files are read one record batch (64 Ki rows) at a time: rows in later batches are still
/// named by their row in the file, and checks span batch boundaries.
#[test]
fn rows_beyond_the_first_record_batch_keep_their_file_row_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 150_000;
    let t = grid(JUNE_2020, 300, n);
    let mut wh = vec![Some(1.0); n];
    wh[140_001] = Some(f64::NAN);
    let path = write_gen(dir.path(), &vec![3; n], &t, &wh);
    let err = load_err(&path);
    assert!(matches!(err, DataError::BadValue { .. }), "{err:?}");
    assert_names(&err, &path, Some("generation_Wh"), Some(140_001));

    // A duplicate whose first copy is the last row of batch 1 and whose second is the first of
    // batch 2.
    let mut t = grid(JUNE_2020, 300, n);
    t[65_536] = t[65_535];
    let path = write_gen(dir.path(), &vec![3; n], &t, &vec![Some(1.0); n]);
    let err = load_err(&path);
    assert!(
        matches!(err, DataError::DuplicateTimestamp { ss_id: 3, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("datetime_GMT"), Some(65_536));
    assert!(err.to_string().contains("row 65535"), "{err}");

    // And a clean file of several batches loads every row.
    let path = write_gen(
        dir.path(),
        &vec![3; n],
        &grid(JUNE_2020, 300, n),
        &vec![Some(1.0); n],
    );
    let generation = load_generation(&path, BadValuePolicy::Error).expect("loads");
    assert_eq!(generation.report.rows, n);
    assert_eq!(generation.systems[&3].times.len(), n);
}

#[test]
fn unsorted_timestamps_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two systems interleaved is fine; going back in time within one system is not.
    let path = write_gen(
        dir.path(),
        &[1, 2, 1, 2, 1],
        &[
            JUNE_2020,
            JUNE_2020,
            JUNE_2020 + 1800,
            JUNE_2020 + 900,
            JUNE_2020 + 900,
        ],
        &[Some(1.0); 5],
    );
    let err = load_err(&path);
    assert!(
        matches!(err, DataError::UnsortedTimestamp { ss_id: 1, .. }),
        "{err:?}"
    );
    assert_names(&err, &path, Some("datetime_GMT"), Some(4));
}

#[test]
fn null_ids_and_times_are_refused() {
    let (_dir, path) = temp_parquet(vec![
        (
            "ss_id",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        ("datetime_GMT", times(&[JUNE_2020, JUNE_2020 + 900], None)),
        ("generation_Wh", floats(&[1.0, 2.0])),
    ]);
    let err = load_err(&path);
    assert!(matches!(err, DataError::NullValue { .. }), "{err:?}");
    assert_names(&err, &path, Some("ss_id"), Some(1));
}

#[test]
fn mixed_time_zones_across_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("generation");
    std::fs::create_dir_all(folder.join("month=1")).expect("mkdir");
    std::fs::create_dir_all(folder.join("month=2")).expect("mkdir");
    write_parquet(
        &folder.join("month=1/part.parquet"),
        &generation(&[1], &[JUNE_2020], &[Some(1.0)]),
    );
    write_parquet(
        &folder.join("month=2/part.parquet"),
        &generation_zoned(
            &[1],
            &[JUNE_2020 + 900],
            &[Some(1.0)],
            Some("Europe/London"),
        ),
    );
    let err = load_err(&folder);
    assert!(matches!(err, DataError::MixedTimeZones { .. }), "{err:?}");
    assert!(err.to_string().contains("Europe/London"), "{err}");

    // UTC spelled two ways is one zone.
    write_parquet(
        &folder.join("month=1/part.parquet"),
        &generation_zoned(&[1], &[JUNE_2020], &[Some(1.0)], Some("UTC")),
    );
    write_parquet(
        &folder.join("month=2/part.parquet"),
        &generation_zoned(&[1], &[JUNE_2020 + 900], &[Some(1.0)], Some("+00:00")),
    );
    assert!(load_generation(&folder, BadValuePolicy::Error).is_ok());
}

#[test]
fn hive_partitions_merge_in_time_order_and_reject_overlaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("generation");
    // month=10 sorts before month=2 as text: the merge must still give time order.
    std::fs::create_dir_all(folder.join("month=10")).expect("mkdir");
    std::fs::create_dir_all(folder.join("month=2")).expect("mkdir");
    write_parquet(
        &folder.join("month=10/a.parquet"),
        &generation(
            &[1, 1],
            &[JUNE_2020 + 1800, JUNE_2020 + 2700],
            &[Some(3.0), Some(4.0)],
        ),
    );
    write_parquet(
        &folder.join("month=2/a.parquet"),
        &generation(
            &[1, 1],
            &[JUNE_2020, JUNE_2020 + 900],
            &[Some(1.0), Some(2.0)],
        ),
    );
    std::fs::write(folder.join("_SUCCESS"), b"").expect("marker");
    let loaded = load_generation(&folder, BadValuePolicy::Error).expect("hive folder");
    assert_eq!(
        loaded.systems[&1].energy_wh,
        vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]
    );

    write_parquet(
        &folder.join("month=2/b.parquet"),
        &generation(&[1], &[JUNE_2020 + 1800], &[Some(9.0)]),
    );
    let err = load_err(&folder);
    assert!(
        matches!(err, DataError::DuplicateTimestamp { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("month=2"), "{err}");
}

#[test]
fn system_without_metadata_is_refused_or_dropped_by_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 4);
    write_gen(
        dir.path(),
        &[1, 1, 2, 2],
        &[t[0], t[1], t[0], t[1]],
        &[Some(1.0); 4],
    );
    write_metadata(dir.path(), &[1]);
    let paths = DataPaths::in_folder(dir.path()).expect("paths");
    let err = Dataset::load(&paths, LoadConfig::default()).expect_err("unknown system");
    assert!(
        matches!(err, DataError::UnknownSystem { ss_id: 2, .. }),
        "{err:?}"
    );
    assert_names(&err, &paths.generation, Some("ss_id"), Some(2));

    let config = LoadConfig {
        bad_values: BadValuePolicy::MaskAndReport,
        ..LoadConfig::default()
    };
    let dataset = Dataset::load(&paths, config).expect("dropped by policy");
    assert_eq!(dataset.systems.len(), 1);
    assert_eq!(dataset.report.systems_without_metadata, vec![2]);
}

#[test]
fn window_longer_than_the_data_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 40);
    write_gen(dir.path(), &[1; 40], &t, &vec![Some(10.0); 40]);
    write_metadata(dir.path(), &[1]);
    let dataset = Dataset::load_folder(dir.path(), LoadConfig::default()).expect("load");
    // 40 steps: the train block is 28 steps, shorter than 8 + 24.
    let config = ExampleConfig {
        lead_times: 24,
        ..ExampleConfig::default()
    };
    let err = example_keys(&dataset, &config, Split::Train).expect_err("too long");
    assert!(matches!(err, DataError::WindowTooLong { .. }), "{err:?}");
    assert!(err.to_string().contains("32 steps"), "{err}");
}

#[test]
fn impossible_configuration_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 400);
    write_gen(dir.path(), &[1; 400], &t, &vec![Some(10.0); 400]);
    write_metadata(dir.path(), &[1]);
    let paths = DataPaths::in_folder(dir.path()).expect("paths");
    let err = Dataset::load(
        &paths,
        LoadConfig {
            step_minutes: 7,
            ..LoadConfig::default()
        },
    )
    .expect_err("7 min");
    assert!(matches!(err, DataError::Config(_)), "{err:?}");
    let err = Dataset::load(
        &paths,
        LoadConfig {
            step_minutes: 5,
            ..LoadConfig::default()
        },
    )
    .expect_err("finer");
    assert!(
        matches!(
            err,
            DataError::IntervalMismatch {
                problem: "is coarser than",
                ..
            }
        ),
        "{err:?}"
    );
    let dataset = Dataset::load(&paths, LoadConfig::default()).expect("load");
    for config in [
        ExampleConfig {
            history_steps: 0,
            ..ExampleConfig::default()
        },
        ExampleConfig {
            lead_times: 0,
            ..ExampleConfig::default()
        },
        ExampleConfig {
            context_radius_km: -1.0,
            ..ExampleConfig::default()
        },
        ExampleConfig {
            split: pv_data::SplitConfig {
                train_fraction: 0.9,
                validation_fraction: 0.2,
                ..pv_data::SplitConfig::default()
            },
            ..ExampleConfig::default()
        },
    ] {
        let err = example_keys(&dataset, &config, Split::Train).expect_err("bad config");
        assert!(matches!(err, DataError::Config(_)), "{err:?}");
    }
}

#[test]
fn energy_above_capacity_is_refused_with_its_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = grid(JUNE_2020, 900, 4);
    // 4 kWp in 15 min can make at most 1 kWh; with the 2x margin 2 kWh. 5 kWh is impossible.
    let gen_path = write_gen(
        dir.path(),
        &[1; 4],
        &t,
        &[Some(100.0), Some(5000.0), Some(100.0), Some(100.0)],
    );
    write_metadata(dir.path(), &[1]);
    let err = Dataset::load_folder(dir.path(), LoadConfig::default()).expect_err("above");
    assert!(
        matches!(
            err,
            DataError::BadValue {
                kind: BadValueKind::AboveCapacity,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &gen_path, Some("generation_Wh"), Some(1));
}

fn metadata_err(text: &str) -> DataError {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.csv");
    std::fs::write(&path, text).expect("write");
    Metadata::load(&path).expect_err("bad metadata")
}

#[test]
fn bad_metadata_is_refused_with_column_and_row() {
    let header = "ss_id,latitude_rounded,longitude_rounded,orientation,tilt,kWp\n";
    let err = metadata_err(&format!("{header}1,52,0,180,30,4\n2,95,0,180,30,4\n"));
    assert!(
        matches!(
            err,
            DataError::BadValue {
                kind: BadValueKind::OutOfRange,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("column `latitude_rounded`, row 1"),
        "{err}"
    );

    let err = metadata_err(&format!("{header}1,52,0,180,30,0\n"));
    assert!(err.to_string().contains("column `kWp`, row 0"), "{err}");

    let err = metadata_err(&format!("{header}1,52,0,south,30,4\n"));
    assert!(matches!(err, DataError::WrongType { .. }), "{err:?}");

    let err = metadata_err(&format!("{header}1,52,0,180,30,4\n1,53,0,180,30,4\n"));
    assert!(
        matches!(err, DataError::DuplicateSystem { ss_id: 1, .. }),
        "{err:?}"
    );

    let err =
        metadata_err("ss_id,latitude_rounded,longitude_rounded,orientation,tilt\n1,52,0,180,30\n");
    assert!(
        matches!(&err, DataError::MissingColumn { column, .. } if column == "kWp"),
        "{err:?}"
    );

    let err = metadata_err(&format!("{header}1,52,0,,30,4\n"));
    assert!(matches!(err, DataError::NullValue { .. }), "{err:?}");

    let err = metadata_err(header);
    assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
}

#[test]
fn metadata_accepts_lowercase_kwp_and_extra_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.csv");
    std::fs::write(&path, "ss_id,llsoacd,latitude_rounded,longitude_rounded,orientation,tilt,kwp,operational_at\n5,E01,51.5,-0.1,170,35,3.2,2015\n")
        .expect("write");
    let m = Metadata::load(&path).expect("load");
    assert_eq!(m.systems[&5].capacity_kwp, 3.2);
    assert_eq!(m.systems[&5].orientation_deg, 170.0);
}

#[test]
fn metadata_time_labels_and_altitudes_are_optional_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.csv");
    std::fs::write(
        &path,
        "ss_id,latitude_rounded,longitude_rounded,orientation,tilt,kWp,time_label,altitude_m\n\
         1,52,0,180,30,4,interval_start,1730\n2,52,0,180,30,4,,\n3,52,0,180,30,4,Instant,12\n",
    )
    .expect("write");
    let m = Metadata::load(&path).expect("load");
    assert_eq!(m.systems[&1].time_label, TimeLabel::IntervalStart);
    assert_eq!(m.systems[&1].altitude_m, Some(1730.0));
    assert_eq!(
        m.systems[&2].time_label,
        TimeLabel::IntervalEnd,
        "empty: uk_pv's default"
    );
    assert_eq!(m.systems[&2].altitude_m, None);
    assert_eq!(m.systems[&3].time_label, TimeLabel::Instant);

    let header =
        "ss_id,latitude_rounded,longitude_rounded,orientation,tilt,kWp,time_label,altitude_m\n";
    let err = metadata_err(&format!(
        "{header}1,52,0,180,30,4,end,0\n2,52,0,180,30,4,midpoint,0\n"
    ));
    assert!(matches!(err, DataError::WrongType { .. }), "{err:?}");
    assert!(
        err.to_string().contains("column `time_label`, row 1")
            && err
                .to_string()
                .contains("interval_end, interval_start or instant"),
        "{err}"
    );
    let err = metadata_err(&format!("{header}1,52,0,180,30,4,end,12000\n"));
    assert!(
        err.to_string().contains("column `altitude_m`, row 0"),
        "{err}"
    );
}

/// A file from `tests/fuzz-regressions/`: inputs the fuzzers (`fuzz/`) broke the parquet crate with.
fn fuzz_regression(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(name)
}

/// The errors of loading `path` as generation data (both bad-value policies) and as metadata;
/// each must be an error naming the file, never a panic.
fn errors_of(path: &Path) -> [DataError; 3] {
    let [a, b] = [BadValuePolicy::Error, BadValuePolicy::MaskAndReport]
        .map(|policy| load_generation(path, policy).expect_err("corrupt file must be an error"));
    let c = Metadata::load(path).expect_err("corrupt file must be an error");
    for err in [&a, &b, &c] {
        assert_names(err, path, None, None);
    }
    [a, b, c]
}

/// Target `generation`: a dictionary-encoded page without a dictionary page, on which the parquet
/// crate panics ("Decoder for dict should have been set").
#[test]
fn parquet_decoder_panics_become_errors_naming_the_file() {
    let [a, b, _] = errors_of(&fuzz_regression("dictionary-page-missing.parquet"));
    for err in [a, b] {
        assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    }
}

/// Target `metadata`: a footer with a negative column offset, on which the parquet crate panics
/// while opening the file.
#[test]
fn parquet_footer_panics_become_errors_naming_the_file() {
    let [.., err] = errors_of(&fuzz_regression("negative-column-offset.parquet"));
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
}

/// Target `generation`: a footer whose row group 4 declares −20 rows. The parquet crate sums the
/// counts unchecked (a panic in a debug build, a silently wrapped row limit in a release one);
/// pv-data checks them first and names the row group.
#[test]
fn a_negative_row_group_count_is_an_error_in_every_build() {
    let [a, b, _] = errors_of(&fuzz_regression("negative-row-count.parquet"));
    for err in [a, b] {
        assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
        assert!(
            err.to_string().contains("row group 4 declares -20 rows"),
            "{err}"
        );
    }
}

/// Target `metadata`: a column chunk whose byte range starts at a negative offset, on which the
/// parquet crate asserts while reading pages. The footer check names the row group and column
/// before any page is read.
#[test]
fn a_column_chunk_outside_the_file_is_an_error_naming_it() {
    let [.., err] = errors_of(&fuzz_regression("negative-column-chunk-range.parquet"));
    assert!(matches!(err, DataError::Parquet { .. }), "{err:?}");
    assert!(err.to_string().contains("are not inside the file"), "{err}");
}

/// Every regression file is a typed error naming it, through either loader, never a panic.
#[test]
fn every_fuzz_regression_file_is_a_typed_error() {
    let dir = fuzz_regression("");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder") {
        errors_of(&entry.expect("entry").path());
        files += 1;
    }
    assert!(files >= 5, "only {files} regression files");
}
