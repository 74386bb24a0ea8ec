//! Any bytes as a metadata file, CSV and Parquet: a typed error or metadata, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pv_data::Metadata;

#[path = "common.rs"]
mod common;

fuzz_target!(init: common::abort_on_panics_outside_parquet(), |data: &[u8]| {
    // The first byte picks the format, so one corpus serves both readers.
    let (ext, body) = match data.split_first() {
        Some((b, rest)) if b % 2 == 0 => ("csv", rest),
        Some((_, rest)) => ("parquet", rest),
        None => ("csv", data),
    };
    let _ = Metadata::load(&common::as_file(body, ext));
});
