//! Metrics and baselines on hand-made batches whose answers are worked out by hand.

use pv_data::example::features;
use pv_data::{Array, Batch, BatchTokens, ExampleKey, UnixTime};
use trainer::baselines::{ClearSkyScale, forecasts};
use trainer::metrics::Metrics;

fn index(names: &[&str], name: &str) -> usize {
    names.iter().position(|n| *n == name).expect("feature")
}

/// One system (2 kWp), two history steps, two lead times.
/// History: power 0.30 then 0.40 (observed), clear-sky 0.50 then 0.80.
/// Leads: clear-sky 1.00 and 0.60, targets 0.50 and 0.45, sun up then down.
fn batch() -> Batch {
    let (h, k) = (2, 2);
    let fp = features::PV.len();
    let mut pv = vec![0.0; h * fp];
    for (step, (p, c)) in [(0.30, 0.50), (0.40, 0.80)].into_iter().enumerate() {
        pv[step * fp + index(features::PV, "power")] = p;
        pv[step * fp + index(features::PV, "observed")] = 1.0;
        pv[step * fp + index(features::PV, "clear_sky")] = c;
    }
    let fq = features::QUERY.len();
    let mut queries = vec![0.0; k * fq];
    for (lead, c) in [1.0, 0.60].into_iter().enumerate() {
        queries[lead * fq + features::QUERY_CLEAR_SKY] = c;
        queries[lead * fq + features::QUERY_LAST_POWER] = 0.40;
        queries[lead * fq + features::QUERY_LAST_OBSERVED] = 1.0;
        queries[lead * fq + features::QUERY_LAST_CLEAR_SKY] = 0.80;
    }
    let arr = |shape: Vec<usize>, data: Vec<f32>| Array { shape, data };
    let empty = || BatchTokens {
        values: arr(vec![1, h, 0, 0], vec![]),
        mask: arr(vec![1, h, 0], vec![]),
    };
    Batch {
        keys: vec![ExampleKey {
            system: 0,
            t0: UnixTime(0),
        }],
        target_ss_ids: vec![vec![7]],
        pv: BatchTokens {
            values: arr(vec![1, h, 1, fp], pv),
            mask: arr(vec![1, h, 1], vec![1.0; h]),
        },
        satellite: empty(),
        observations: empty(),
        nwp: empty(),
        queries: arr(vec![1, 1, k, fq], queries),
        query_mask: arr(vec![1, 1], vec![1.0]),
        targets: arr(vec![1, 1, k], vec![0.50, 0.45]),
        target_mask: arr(vec![1, 1, k], vec![1.0, 1.0]),
        sun_elevation_deg: arr(vec![1, 1, k], vec![30.0, -2.0]),
        capacity_kwp: arr(vec![1, 1], vec![2.0]),
    }
}

fn close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
}

#[test]
fn baselines_follow_their_definitions() {
    let b = batch();
    let [persistence, smart, ratio] = forecasts(&b, &ClearSkyScale::default());
    // Persistence: the last observed value.
    close(persistence[0], 0.40);
    close(persistence[1], 0.40);
    // Smart persistence: index 0.40 / 0.80 = 0.5, times the clear sky at each lead.
    close(smart[0], 0.50);
    close(smart[1], 0.30);
    // Clear-sky ratio: mean index (0.30/0.50 + 0.40/0.80) / 2 = 0.55.
    close(ratio[0], 0.55);
    close(ratio[1], 0.33);
    // A fitted scale of 0.8 changes the index but not the clear-sky power it multiplies by...
    let scale = ClearSkyScale {
        by_system: [(7, 0.8)].into_iter().collect(),
    };
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], 0.50);
    // ...until the index hits its clip: with a scale of 0.2 the index 0.4 / 0.16 = 2.5 is clipped to 1.5.
    let scale = ClearSkyScale {
        by_system: [(7, 0.2)].into_iter().collect(),
    };
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], 1.5 * 0.2);
}

#[test]
fn metrics_split_daylight_from_all_steps_and_compute_skill() {
    let b = batch();
    let mut m = Metrics::new(2);
    let [persistence, smart, _] = forecasts(&b, &ClearSkyScale::default());
    m.add_point("persistence", &b, &persistence);
    m.add_point("smart_persistence", &b, &smart);
    // Quantiles for the model: (0.4, 0.5, 0.6) then (0.5, 0.6, 0.7).
    m.add_quantiles(
        "model",
        &b,
        &[0.4, 0.5, 0.6, 0.5, 0.6, 0.7],
        &[0.1, 0.5, 0.9],
    );
    let r = m.report("smart_persistence");
    let p = &r["persistence"];
    // Daylight is lead 0 only: |0.40 − 0.50| = 0.10; kW: 0.10 × 2 kWp.
    assert!((p.nmae - 0.10).abs() < 1e-6);
    assert!((p.mae_kw - 0.20).abs() < 1e-6);
    assert!(p.nmae_by_lead[1].is_nan(), "no daylight target at lead 1");
    // All steps: (0.10 + 0.05) / 2.
    assert!((p.nmae_all_steps - 0.075).abs() < 1e-6);
    let s = &r["smart_persistence"];
    assert!(s.nmae.abs() < 1e-6 && s.skill.is_none());
    let model = &r["model"];
    assert!(model.nmae.abs() < 1e-6);
    // Coverage: 0.50 in [0.4, 0.6] yes; 0.45 in [0.5, 0.7] no.
    assert_eq!(model.coverage, Some(0.5));
    // Pinball: lead 0: τ=.1 d=.1 → .01; τ=.5 d=0 → 0; τ=.9 d=−.1 → .01.
    //          lead 1: τ=.1 d=−.05 → .045; τ=.5 d=−.15 → .075; τ=.9 d=−.25 → .025. Sum .165 / 6.
    assert!((model.pinball.expect("pinball") - 0.165 / 6.0).abs() < 1e-6);
    assert!(
        p.skill.expect("skill").is_infinite(),
        "smart persistence is perfect here, so skill is −inf"
    );
    let json = serde_json::to_value(&r).expect("json");
    assert!(json["model"]["nmae_by_lead"].is_array());
}

#[test]
fn the_clear_sky_scale_is_a_high_percentile_of_the_ratio() {
    // 20 history steps of one system with ratios 0.05, 0.10, ..., 1.00: the 95th percentile is 0.95.
    let h = 20;
    let fp = features::PV.len();
    let mut pv = vec![0.0; h * fp];
    for step in 0..h {
        pv[step * fp + index(features::PV, "power")] = 0.05 * (step + 1) as f32 * 0.5;
        pv[step * fp + index(features::PV, "observed")] = 1.0;
        pv[step * fp + index(features::PV, "clear_sky")] = 0.5;
    }
    let mut b = batch();
    b.pv = BatchTokens {
        values: Array {
            shape: vec![1, h, 1, fp],
            data: pv,
        },
        mask: Array {
            shape: vec![1, h, 1],
            data: vec![1.0; h],
        },
    };
    let scale = ClearSkyScale::fit([&b]);
    close(scale.by_system[&7], 0.95);
}
