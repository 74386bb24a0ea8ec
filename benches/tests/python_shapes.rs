//! The PyTorch script measures the same attention shapes as the Rust benches: every shape of
//! `ATTENTION_SHAPES`, with the same sizes, appears in `benches/python/attention_sdpa.py`.

use power_perceiver_benches::ATTENTION_SHAPES;

#[test]
fn the_sdpa_script_measures_every_benched_shape() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/attention_sdpa.py");
    let script = std::fs::read_to_string(path).expect("read the script");
    for s in ATTENTION_SHAPES {
        let row = format!(
            "(\"{}\", {}, {}, {}, {}, {}, {}),",
            s.name, s.b, s.h, s.nq, s.nk, s.d, s.padded
        );
        assert!(script.contains(&row), "{path} lacks {row}");
    }
}
