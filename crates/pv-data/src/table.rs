//! Reading one Parquet or Arrow IPC file into columns, with case-insensitive column look-up and
//! typed extraction that reports the file, column and row of anything it cannot interpret.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use crate::error::{DataError, Location, Result};

/// The file formats we read tables from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Parquet,
    ArrowIpc,
    Csv,
}

impl Format {
    pub(crate) fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Format::Parquet),
            "arrow" | "ipc" | "feather" | "arrows" => Some(Format::ArrowIpc),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Record batches of one file, read lazily.
type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>>;

/// One file's contents (or a run of its rows), as Arrow record batches.
pub(crate) struct Table {
    pub(crate) path: PathBuf,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// File row number of this table's first row (non-zero for a later batch of a stream).
    first_row: usize,
}

impl Table {
    /// Reads a whole Parquet or Arrow IPC file (chosen by extension).
    pub(crate) fn read(path: &Path) -> Result<Table> {
        let (schema, segments) = open(path, &[])?;
        let batches = segments
            .into_iter()
            .flat_map(|(_, batches)| batches)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| corrupt(path, &e))?;
        Ok(Table {
            path: path.to_owned(),
            schema,
            batches,
            first_row: 0,
        })
    }

    /// Reads a Parquet or Arrow IPC file one record batch (at most 64 Ki rows) at a time, so
    /// memory holds one batch however large the file: `f` sees each batch as a table of its own
    /// whose rows keep their file row numbers in errors. A Parquet row group whose column
    /// statistics put it outside any of `keep` is skipped unread. Returns the rows read.
    pub(crate) fn for_each_batch(
        path: &Path,
        keep: &[KeepRange<'_>],
        mut f: impl FnMut(&Table) -> Result<()>,
    ) -> Result<usize> {
        let (schema, segments) = open(path, keep)?;
        let mut read = 0;
        for (mut first_row, batches) in segments {
            for batch in batches {
                let batch = batch.map_err(|e| corrupt(path, &e))?;
                let rows = batch.num_rows();
                let table = Table {
                    path: path.to_owned(),
                    schema: schema.clone(),
                    batches: vec![batch],
                    first_row,
                };
                f(&table)?;
                first_row += rows;
                read += rows;
            }
        }
        Ok(read)
    }

    /// The file row number of this table's row `row`.
    pub(crate) fn file_row(&self, row: usize) -> usize {
        self.first_row + row
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The names of all columns, as spelled in the file.
    pub(crate) fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Finds a column by any of `names`, ignoring ASCII case.
    pub(crate) fn find(&self, names: &[&str]) -> Option<Column<'_>> {
        let index = self
            .schema
            .fields()
            .iter()
            .position(|f| names.iter().any(|n| f.name().eq_ignore_ascii_case(n)))?;
        Some(Column { table: self, index })
    }

    /// Like [`Table::find`], but a missing column is an error naming the first of `names`.
    pub(crate) fn require(&self, names: &[&str]) -> Result<Column<'_>> {
        self.find(names).ok_or_else(|| DataError::MissingColumn {
            path: self.path.clone(),
            column: names[0].to_owned(),
            found: self.column_names().join(", "),
        })
    }

    /// Every column, in file order.
    pub(crate) fn columns(&self) -> impl Iterator<Item = Column<'_>> {
        (0..self.schema.fields().len()).map(|index| Column { table: self, index })
    }
}

/// A column of a [`Table`], spanning all its batches.
#[derive(Clone, Copy)]
pub(crate) struct Column<'a> {
    table: &'a Table,
    index: usize,
}

/// A timestamp column converted to seconds, with the time zone the file declared (None: naive).
pub(crate) struct TimeColumn {
    pub(crate) seconds: Vec<Option<i64>>,
    pub(crate) zone: Option<Arc<str>>,
}

impl<'a> Column<'a> {
    pub(crate) fn name(&self) -> &'a str {
        self.table.schema.field(self.index).name()
    }

    pub(crate) fn data_type(&self) -> &'a DataType {
        self.table.schema.field(self.index).data_type()
    }

    pub(crate) fn location(&self) -> Location {
        Location::column(&self.table.path, self.name())
    }

    pub(crate) fn cell(&self, row: usize) -> Location {
        Location::cell(&self.table.path, self.name(), self.table.first_row + row)
    }

    fn arrays(&self) -> impl Iterator<Item = &'a ArrayRef> {
        let index = self.index;
        self.table.batches.iter().map(move |b| b.column(index))
    }

    fn wrong_type(&self, expected: &'static str) -> DataError {
        DataError::WrongType {
            at: self.location(),
            expected,
            found: format!("{}", self.data_type()),
        }
    }

    pub(crate) fn is_numeric(&self) -> bool {
        self.data_type().is_numeric()
    }

    /// Integers of any width; floats and strings are a type error.
    pub(crate) fn integers(&self) -> Result<Vec<Option<i64>>> {
        let mut out = Vec::with_capacity(self.table.num_rows());
        for array in self.arrays() {
            macro_rules! push {
                ($t:ty) => {
                    out.extend(
                        array
                            .as_primitive::<$t>()
                            .iter()
                            .map(|v| v.map(|v| v as i64)),
                    )
                };
            }
            match array.data_type() {
                DataType::Int8 => push!(Int8Type),
                DataType::Int16 => push!(Int16Type),
                DataType::Int32 => push!(Int32Type),
                DataType::Int64 => push!(Int64Type),
                DataType::UInt8 => push!(UInt8Type),
                DataType::UInt16 => push!(UInt16Type),
                DataType::UInt32 => push!(UInt32Type),
                DataType::UInt64 => {
                    for (i, v) in array.as_primitive::<UInt64Type>().iter().enumerate() {
                        match v.map(i64::try_from) {
                            Some(Err(_)) => {
                                return Err(DataError::WrongType {
                                    at: self.cell(out.len() + i),
                                    expected: "an integer that fits in i64",
                                    found: "a larger u64".to_owned(),
                                });
                            }
                            other => out.push(other.map(|r| r.unwrap_or_default())),
                        }
                    }
                }
                _ => return Err(self.wrong_type("an integer column")),
            }
        }
        Ok(out)
    }

    /// Floats or integers, as f64. NaN stays NaN: validation is the caller's job.
    pub(crate) fn floats(&self) -> Result<Vec<Option<f64>>> {
        let mut out = Vec::with_capacity(self.table.num_rows());
        for array in self.arrays() {
            macro_rules! push {
                ($t:ty) => {
                    out.extend(array.as_primitive::<$t>().iter().map(|v| v.map(f64::from)))
                };
            }
            match array.data_type() {
                DataType::Float16 => out.extend(
                    array
                        .as_primitive::<Float16Type>()
                        .iter()
                        .map(|v| v.map(f64::from)),
                ),
                DataType::Float32 => push!(Float32Type),
                DataType::Float64 => push!(Float64Type),
                DataType::Int8 => push!(Int8Type),
                DataType::Int16 => push!(Int16Type),
                DataType::Int32 => push!(Int32Type),
                DataType::Int64 => out.extend(
                    array
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.map(|v| v as f64)),
                ),
                DataType::UInt8 => push!(UInt8Type),
                DataType::UInt16 => push!(UInt16Type),
                DataType::UInt32 => push!(UInt32Type),
                DataType::UInt64 => out.extend(
                    array
                        .as_primitive::<UInt64Type>()
                        .iter()
                        .map(|v| v.map(|v| v as f64)),
                ),
                _ => return Err(self.wrong_type("a numeric column")),
            }
        }
        Ok(out)
    }

    /// A timestamp column in seconds since the epoch (sub-second parts are floored).
    /// Arrow stores zoned timestamps as UTC instants, so the zone only matters for naive ones.
    pub(crate) fn times(&self) -> Result<TimeColumn> {
        let DataType::Timestamp(_, zone) = self.data_type() else {
            return Err(self.wrong_type("a timestamp column"));
        };
        let mut seconds = Vec::with_capacity(self.table.num_rows());
        for array in self.arrays() {
            macro_rules! push {
                ($t:ty, $per_second:expr) => {
                    seconds.extend(
                        array
                            .as_primitive::<$t>()
                            .iter()
                            .map(|v| v.map(|v| v.div_euclid($per_second))),
                    )
                };
            }
            match array.data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => push!(TimestampSecondType, 1),
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    push!(TimestampMillisecondType, 1_000)
                }
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    push!(TimestampMicrosecondType, 1_000_000)
                }
                DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                    push!(TimestampNanosecondType, 1_000_000_000)
                }
                _ => return Err(self.wrong_type("a timestamp column")),
            }
        }
        Ok(TimeColumn {
            seconds,
            zone: zone.clone(),
        })
    }

    /// A duration column (Arrow `Duration`) in seconds, or an integer column of minutes.
    pub(crate) fn durations_seconds(&self) -> Result<Vec<Option<i64>>> {
        let mut out = Vec::with_capacity(self.table.num_rows());
        for array in self.arrays() {
            macro_rules! push {
                ($t:ty, $per_second:expr) => {
                    out.extend(
                        array
                            .as_primitive::<$t>()
                            .iter()
                            .map(|v| v.map(|v| v.div_euclid($per_second))),
                    )
                };
            }
            match array.data_type() {
                DataType::Duration(TimeUnit::Second) => push!(DurationSecondType, 1),
                DataType::Duration(TimeUnit::Millisecond) => push!(DurationMillisecondType, 1_000),
                DataType::Duration(TimeUnit::Microsecond) => {
                    push!(DurationMicrosecondType, 1_000_000)
                }
                DataType::Duration(TimeUnit::Nanosecond) => {
                    push!(DurationNanosecondType, 1_000_000_000)
                }
                _ => return Err(self.wrong_type("a duration column")),
            }
        }
        Ok(out)
    }

    /// Strings (Utf8, LargeUtf8, Utf8View or a string dictionary).
    pub(crate) fn strings(&self) -> Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(self.table.num_rows());
        for array in self.arrays() {
            let array = match array.data_type() {
                DataType::Dictionary(_, value) if value.as_ref() == &DataType::Utf8 => {
                    arrow_cast_dictionary(array)
                        .ok_or_else(|| self.wrong_type("a string column"))?
                }
                _ => array.clone(),
            };
            match array.data_type() {
                DataType::Utf8 => out.extend(
                    array
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v.map(str::to_owned)),
                ),
                DataType::LargeUtf8 => out.extend(
                    array
                        .as_string::<i64>()
                        .iter()
                        .map(|v| v.map(str::to_owned)),
                ),
                DataType::Utf8View => {
                    out.extend(array.as_string_view().iter().map(|v| v.map(str::to_owned)))
                }
                _ => return Err(self.wrong_type("a string column")),
            }
        }
        Ok(out)
    }
}

/// Expands a `Dictionary(Int*, Utf8)` array into plain strings.
fn arrow_cast_dictionary(array: &ArrayRef) -> Option<ArrayRef> {
    use arrow_array::StringArray;
    let dictionary = array.as_any_dictionary_opt()?;
    let values = dictionary.values().as_string_opt::<i32>()?;
    let keys = dictionary.normalized_keys();
    let strings: StringArray = (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                None
            } else {
                Some(values.value(keys[i]))
            }
        })
        .collect();
    Some(Arc::new(strings))
}

/// The error for a file the Parquet or Arrow reader rejects.
fn corrupt(path: &Path, e: &dyn std::fmt::Display) -> DataError {
    match Format::of(path) {
        Some(Format::ArrowIpc) => DataError::ArrowIpc {
            path: path.to_owned(),
            message: e.to_string(),
        },
        _ => DataError::Parquet {
            path: path.to_owned(),
            message: e.to_string(),
        },
    }
}

/// A record-batch reader whose panics become errors. The parquet crate panics on some corrupt
/// files instead of returning an error (found by fuzzing: a dictionary-encoded page without a
/// dictionary page, `tests/fuzz-regressions/`); a user's bad file must give a typed error naming
/// it, never a crash.
struct PanicFree<I>(I);

impl<I: Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>>> Iterator
    for PanicFree<I>
{
    type Item = I::Item;

    fn next(&mut self) -> Option<Self::Item> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.next())) {
            Ok(item) => item,
            Err(panic) => Some(Err(arrow_schema::ArrowError::ParquetError(format!(
                "the Parquet decoder failed on this file ({})",
                panic_message(&*panic)
            )))),
        }
    }
}

/// Rejects footers the parquet crate would panic on or misread, before any page is read (found by
/// fuzzing): row groups whose declared row counts are negative or sum past `usize` (the crate adds
/// them unchecked: a panic in a debug build, a silently wrapped row limit in a release one), and
/// column chunks whose byte range is negative or runs past the end of the file (an assertion in
/// the crate).
fn check_footer(
    metadata: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> std::result::Result<(), parquet::errors::ParquetError> {
    let bad = |message: String| parquet::errors::ParquetError::General(message);
    let mut total: usize = 0;
    for (i, group) in metadata.row_groups().iter().enumerate() {
        let rows = group.num_rows();
        total = usize::try_from(rows)
            .ok()
            .and_then(|rows| total.checked_add(rows))
            .ok_or_else(|| {
                bad(format!(
                    "row group {i} declares {rows} rows, an impossible count"
                ))
            })?;
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let len = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len));
            if end.is_none_or(|end| end > file_len) {
                return Err(bad(format!(
                    "row group {i}, column {}: bytes {start}..{start}+{len} are not inside the \
                     file ({file_len} bytes)",
                    column.column_path()
                )));
            }
        }
    }
    Ok(())
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Opens a Parquet or Arrow IPC (file or stream format) file: its schema and a lazy reader of
/// its record batches.
/// An inclusive range of one integer or timestamp column: a Parquet row group whose statistics
/// say no value of it lies in the range is skipped ([`Table::for_each_batch`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepRange<'a> {
    /// The column, by any of these names (ASCII case ignored).
    pub(crate) names: &'a [&'a str],
    /// Smallest value kept (seconds for a timestamp column).
    pub(crate) min: i64,
    /// Largest value kept (seconds for a timestamp column).
    pub(crate) max: i64,
    /// Only these values, when given (within `min..=max`): a row group must span one of them.
    pub(crate) only: Option<&'a std::collections::BTreeSet<i64>>,
}

/// Runs of a file's record batches, each with the file row number of its first row.
type Segments = Vec<(usize, Batches)>;

fn open(path: &Path, keep: &[KeepRange<'_>]) -> Result<(SchemaRef, Segments)> {
    match Format::of(path) {
        Some(Format::Parquet) => {
            use parquet::arrow::arrow_reader::{
                ArrowReaderMetadata, ParquetRecordBatchReaderBuilder,
            };
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
            // The footer is parsed here, and the parquet crate panics on some corrupt footers
            // (negative column offsets, found by fuzzing): caught like the batches' panics.
            let opened = std::panic::catch_unwind(|| {
                let metadata = ArrowReaderMetadata::load(&file, Default::default())?;
                check_footer(metadata.metadata(), file_len)?;
                Ok::<_, parquet::errors::ParquetError>(metadata)
            });
            let metadata = match opened {
                Ok(result) => result.map_err(|e| corrupt(path, &e))?,
                Err(panic) => {
                    return Err(corrupt(
                        path,
                        &format!(
                            "the Parquet reader failed on this file ({})",
                            panic_message(&*panic)
                        ),
                    ));
                }
            };
            let schema = metadata.schema().clone();
            let reader = |groups: Option<Vec<usize>>| -> Result<Batches> {
                let file = file.try_clone().map_err(|e| DataError::io(path, e))?;
                let mut builder =
                    ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                        .with_batch_size(64 * 1024);
                if let Some(groups) = groups {
                    builder = builder.with_row_groups(groups);
                }
                let reader = builder.build().map_err(|e| corrupt(path, &e))?;
                Ok(Box::new(PanicFree(reader)))
            };
            if keep.is_empty() {
                return Ok((schema, vec![(0, reader(None)?)]));
            }
            let mut segments = Vec::new();
            let mut first_row = 0;
            for (g, group) in metadata.metadata().row_groups().iter().enumerate() {
                if keep.iter().all(|range| may_hold(&schema, group, range)) {
                    segments.push((first_row, reader(Some(vec![g]))?));
                }
                first_row += group.num_rows() as usize;
            }
            Ok((schema, segments))
        }
        Some(Format::ArrowIpc) => {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let whole = |batches: Batches| Ok((0, batches));
            match arrow_ipc::reader::FileReader::try_new(file, None) {
                Ok(reader) => Ok((reader.schema(), vec![whole(Box::new(reader))?])),
                Err(file_error) => {
                    // Not the file format: perhaps the streaming format.
                    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
                    let reader = arrow_ipc::reader::StreamReader::try_new(
                        std::io::BufReader::new(file),
                        None,
                    )
                    .map_err(|_| corrupt(path, &file_error))?;
                    Ok((reader.schema(), vec![whole(Box::new(reader))?]))
                }
            }
        }
        _ => Err(DataError::UnsupportedFormat {
            path: path.to_owned(),
            csv_allowed: false,
        }),
    }
}

/// Whether a Parquet row group may hold a value of `range`'s column inside it: false only when
/// the column's statistics exist and put all its values outside.
fn may_hold(
    schema: &SchemaRef,
    group: &parquet::file::metadata::RowGroupMetaData,
    range: &KeepRange<'_>,
) -> bool {
    use parquet::file::statistics::Statistics;
    let Some(index) = schema
        .fields()
        .iter()
        .position(|f| range.names.iter().any(|n| f.name().eq_ignore_ascii_case(n)))
    else {
        return true;
    };
    // Flat files only: with a nested column before it, leaf and field indices differ.
    if schema.fields().iter().any(|f| f.data_type().is_nested()) || index >= group.num_columns() {
        return true;
    }
    let scale = match schema.field(index).data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000_000,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => 1,
        _ => return true,
    };
    let (min, max) = match group.column(index).statistics() {
        Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(&a), Some(&b)) => (i64::from(a), i64::from(b)),
            _ => return true,
        },
        Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => return true,
        },
        _ => return true,
    };
    let overlaps = max >= range.min.saturating_mul(scale) && min <= range.max.saturating_mul(scale);
    match range.only {
        Some(values) if scale == 1 => overlaps && values.range(min..=max).next().is_some(),
        _ => overlaps,
    }
}

/// Lists the data files of an input: the file itself, or every file with a known extension below a
/// folder (hive partitions such as `year=2020/` included), sorted by path so reads are reproducible.
pub(crate) fn list_files(path: &Path, allow_csv: bool) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let entry = entry.map_err(|e| DataError::io(&dir, e))?;
            let p = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Hidden files and Spark/Hadoop markers (_SUCCESS, .crc) are not data.
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if match Format::of(&p) {
                Some(Format::Csv) => allow_csv,
                Some(_) => true,
                None => false,
            } {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::Empty {
            path: path.to_owned(),
            what: "no .parquet or .arrow files in the folder".into(),
        });
    }
    Ok(files)
}
