//! Any bytes as a generation Parquet file: a typed error or a table, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pv_data::{BadValuePolicy, load_generation};

#[path = "common.rs"]
mod common;

fuzz_target!(init: common::abort_on_panics_outside_parquet(), |data: &[u8]| {
    let path = common::as_file(data, "parquet");
    for policy in [BadValuePolicy::Error, BadValuePolicy::MaskAndReport] {
        let _ = load_generation(&path, policy);
    }
});
