//! Any bytes as a checkpoint: a typed error or a checkpoint whose metadata can be read, never a
//! panic (and no allocation sized by an unchecked header field).
#![no_main]
use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use forecaster::checkpoint::Checkpoint;

#[path = "common.rs"]
mod common;

fuzz_target!(init: common::abort_on_panics_outside_parquet(), |data: &[u8]| {
    let path = common::as_file(data, "safetensors");
    if let Ok(checkpoint) = Checkpoint::read(&path, &Device::Cpu) {
        let _ = checkpoint.json::<serde_json::Value>("state");
        let _ = checkpoint.text("config");
    }
});
