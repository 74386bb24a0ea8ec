//! Loading a selection of systems and a time window from a large generation file: the result is
//! exactly the full load's, restricted; Parquet row groups outside the selection are not read.

mod common;

use std::collections::BTreeSet;

use common::*;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use pv_data::{DataError, DataPaths, Dataset, LoadConfig, Selection, UnixTime};

/// 40 systems × 4 days of 15-minute values, sorted by ss_id then time as uk_pv's files are, in
/// row groups of one day of one system (384 row groups).
fn write_fleet(dir: &std::path::Path) -> usize {
    let (systems, steps) = (40i64, 4 * 96);
    let mut ids = Vec::new();
    let mut t = Vec::new();
    let mut wh = Vec::new();
    for id in 1..=systems {
        for i in 0..steps {
            ids.push(id);
            t.push(JUNE_2020 + (i as i64 + 1) * 900);
            wh.push(Some(
                ((i % 96) as f64 - 48.0).abs().mul_add(-5.0, 240.0).max(0.0) + id as f64,
            ));
        }
    }
    let batch = generation(&ids, &t, &wh);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(96))
        .build();
    let file = std::fs::File::create(dir.join("generation.parquet")).expect("create");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    write_metadata(dir, &(1..=systems).collect::<Vec<_>>());
    ids.len()
}

#[test]
fn a_selection_loads_the_full_data_restricted_and_skips_row_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = write_fleet(dir.path());
    let paths = DataPaths::in_folder(dir.path()).expect("paths");
    let full = Dataset::load(&paths, LoadConfig::default()).expect("full");
    assert_eq!(full.report.rows, rows);

    let from = UnixTime(JUNE_2020 + 96 * 900 + 900); // the second day's first interval
    let to = UnixTime(JUNE_2020 + 2 * 96 * 900); // the second day's last
    let selection = Selection {
        systems: Some(BTreeSet::from([7, 8, 30])),
        from: Some(from),
        to: Some(to),
    };
    let part = Dataset::load_selected(&paths, LoadConfig::default(), &selection).expect("part");
    let ids: Vec<i64> = part.systems.iter().map(|s| s.meta.ss_id).collect();
    assert_eq!(ids, vec![7, 8, 30]);
    for series in &part.systems {
        let whole = full
            .systems
            .iter()
            .find(|s| s.meta.ss_id == series.meta.ss_id)
            .expect("in the full load");
        assert_eq!((series.start, series.end()), (from, to));
        let at = whole.index_of(from).expect("on the grid");
        assert_eq!(series.power_kw, whole.power_kw[at..at + series.len()]);
    }
    // Read: the row groups of systems 7, 8 and 30 on the second day (their ss_id and time
    // statistics), not the file.
    assert_eq!(part.report.rows, 3 * 96, "rows read");

    // A selection with nothing in it says so.
    let nothing = Selection {
        systems: Some(BTreeSet::from([99])),
        ..Selection::default()
    };
    let err = Dataset::load_selected(&paths, LoadConfig::default(), &nothing).expect_err("empty");
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("selection (1 systems)"), "{err}");
}
