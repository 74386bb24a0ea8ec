//! Metrics and baselines on hand-made batches whose answers are worked out by hand.

use forecaster::baselines::{
    ClearSkyScale, DEFAULT_CLIMATOLOGICAL_INDEX, MIN_CLEAR_SKY, forecasts,
};
use pv_data::features::{Modality, PerModality, PvToken, Query};
use pv_data::{Array, Batch, BatchTokens, ExampleKey, UnixTime};
use trainer::metrics::Metrics;

/// One system (2 kWp), two history steps, two lead times.
/// History: power 0.30 then 0.40 (observed), clear-sky 0.50 then 0.80.
/// Leads: clear-sky 1.00 and 0.60, targets 0.50 and 0.45, sun up then down.
fn batch() -> Batch {
    let (h, k) = (2, 2);
    let fp = PvToken::WIDTH;
    let mut pv = vec![0.0; h * fp];
    for (step, (p, c)) in [(0.30, 0.50), (0.40, 0.80)].into_iter().enumerate() {
        pv[step * fp + PvToken::INDEX.power] = p;
        pv[step * fp + PvToken::INDEX.observed] = 1.0;
        pv[step * fp + PvToken::INDEX.clear_sky] = c;
    }
    let fq = Query::WIDTH;
    let mut queries = vec![0.0; k * fq];
    for (lead, c) in [1.0, 0.60].into_iter().enumerate() {
        queries[lead * fq + Query::INDEX.clear_sky] = c;
        queries[lead * fq + Query::INDEX.last_power] = 0.40;
        queries[lead * fq + Query::INDEX.last_observed] = 1.0;
        queries[lead * fq + Query::INDEX.last_clear_sky] = 0.80;
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
        tokens: PerModality([
            BatchTokens {
                values: arr(vec![1, h, 1, fp], pv),
                mask: arr(vec![1, h, 1], vec![1.0; h]),
            },
            empty(),
            empty(),
            empty(),
        ]),
        queries: arr(vec![1, 1, k, fq], queries),
        query_mask: arr(vec![1, 1], vec![1.0]),
        targets: arr(vec![1, 1, k], vec![0.50, 0.45]),
        target_mask: arr(vec![1, 1, k], vec![1.0, 1.0]),
        sun_elevation_deg: arr(vec![1, 1, k], vec![30.0, -2.0]),
        capacity_kwp: arr(vec![1, 1], vec![2.0]),
    }
}

/// `batch()` with its history replaced by observed steps of (power, clear sky).
fn batch_with_history(steps: &[(f32, f32)]) -> Batch {
    let (h, fp) = (steps.len(), PvToken::WIDTH);
    let mut pv = vec![0.0; h * fp];
    for (step, &(p, c)) in steps.iter().enumerate() {
        pv[step * fp + PvToken::INDEX.power] = p;
        pv[step * fp + PvToken::INDEX.observed] = 1.0;
        pv[step * fp + PvToken::INDEX.clear_sky] = c;
    }
    let mut b = batch();
    b.tokens[Modality::Pv] = BatchTokens {
        values: Array {
            shape: vec![1, h, 1, fp],
            data: pv,
        },
        mask: Array {
            shape: vec![1, h, 1],
            data: vec![1.0; h],
        },
    };
    b
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
        ..ClearSkyScale::default()
    };
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], 0.50);
    // Below the threshold after scaling (0.80 × 0.3 = 0.24 < MIN_CLEAR_SKY) k(t0) is undefined
    // and the climatological index (here the default) is used.
    let scale = ClearSkyScale {
        by_system: [(7, 0.3)].into_iter().collect(),
        ..ClearSkyScale::default()
    };
    const { assert!(0.80 * 0.3 < MIN_CLEAR_SKY) };
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], DEFAULT_CLIMATOLOGICAL_INDEX * 1.0 * 0.3);
    // The index is clipped: last power 0.9 under 0.80 × 0.45 = 0.36 is an index of 2.5, clipped
    // to 1.5.
    let mut b = batch();
    let fq = Query::WIDTH;
    for lead in 0..2 {
        b.queries.data[lead * fq + Query::INDEX.last_power] = 0.9;
    }
    let scale = ClearSkyScale {
        by_system: [(7, 0.45)].into_iter().collect(),
        ..ClearSkyScale::default()
    };
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], 1.5 * 0.45);
}

/// At dawn the last observation's clear-sky power is tiny, so k(t0) is undefined: smart
/// persistence uses the system's climatological index instead of persisting ≈ 0 all morning.
#[test]
fn smart_persistence_uses_the_climatological_index_at_dawn() {
    let mut b = batch();
    let fq = Query::WIDTH;
    for lead in 0..2 {
        // Last observation: 0.001 kW/kWp under a clear sky of 0.02 (sun just up).
        b.queries.data[lead * fq + Query::INDEX.last_power] = 0.001;
        b.queries.data[lead * fq + Query::INDEX.last_clear_sky] = 0.02;
    }
    // The history's own index tokens are dawn too, so the ratio baseline has none either.
    let fp = PvToken::WIDTH;
    for step in 0..2 {
        b.tokens[Modality::Pv].values.data[step * fp + PvToken::INDEX.clear_sky] = 0.02;
    }
    let scale = ClearSkyScale {
        by_system: [(7, 0.9)].into_iter().collect(),
        climatological_index: [(7, 0.7)].into_iter().collect(),
    };
    let [persistence, smart, ratio] = forecasts(&b, &scale);
    close(persistence[0], 0.001);
    // 0.7 × clear-sky power 1.00 × 0.9 at lead 0; 0.7 × 0.60 × 0.9 at lead 1.
    close(smart[0], 0.63);
    close(smart[1], 0.378);
    close(ratio[0], 0.63);
    // Just above the threshold (0.34 × 0.9 = 0.306) k(t0) is defined and persisted.
    const { assert!(0.34 * 0.9 >= MIN_CLEAR_SKY && 0.33 * 0.9 < MIN_CLEAR_SKY) };
    for lead in 0..2 {
        b.queries.data[lead * fq + Query::INDEX.last_clear_sky] = 0.34;
    }
    let [_, smart, _] = forecasts(&b, &scale);
    close(smart[0], 0.001 / (0.34 * 0.9) * 0.9);
    // A system without a fitted index uses the documented default.
    let [_, smart, _] = forecasts(&batch_with_dawn_history(), &ClearSkyScale::default());
    close(smart[0], DEFAULT_CLIMATOLOGICAL_INDEX * 1.0);
}

fn batch_with_dawn_history() -> Batch {
    let mut b = batch();
    let fq = Query::WIDTH;
    for lead in 0..2 {
        b.queries.data[lead * fq + Query::INDEX.last_clear_sky] = 0.01;
    }
    b
}

#[test]
fn the_climatological_index_is_energy_over_clear_sky_energy_of_the_training_steps() {
    // 20 observed steps with clear-sky 0.5 and power 0.025, 0.05, ..., 0.5, plus 5 dawn steps
    // (clear-sky 0.01) that must not count.
    let steps: Vec<(f32, f32)> = (0..25)
        .map(|step| {
            if step < 20 {
                (0.025 * (step + 1) as f32, 0.5)
            } else {
                (0.009, 0.01)
            }
        })
        .collect();
    let b = batch_with_history(&steps);
    let fitted = ClearSkyScale::fit([&b]);
    // Scale: 95th percentile of ratios 0.05..1.00 = 0.95. Energy: 0.025 × (1 + … + 20) = 5.25;
    // clear-sky energy: 20 × 0.5 × 0.95 = 9.5 (the dawn steps' 0.01 × 0.95 is under the threshold).
    close(fitted.by_system[&7], 0.95);
    close(fitted.climatological_index[&7], 5.25 / 9.5);
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
    let p = &r.pooled["persistence"];
    // Daylight is lead 0 only: |0.40 − 0.50| = 0.10; kW: 0.10 × 2 kWp.
    assert!((p.nmae - 0.10).abs() < 1e-6);
    assert!((p.mae_kw - 0.20).abs() < 1e-6);
    assert!(p.nmae_by_lead[1].is_nan(), "no daylight target at lead 1");
    // All steps: (0.10 + 0.05) / 2.
    assert!((p.nmae_all_steps - 0.075).abs() < 1e-6);
    let s = &r.pooled["smart_persistence"];
    assert!(s.nmae.abs() < 1e-6 && s.skill.is_none());
    let model = &r.pooled["model"];
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
    assert!(json["pooled"]["model"]["nmae_by_lead"].is_array());
}

#[test]
fn the_clear_sky_scale_is_a_high_percentile_of_the_ratio() {
    // 20 history steps of one system with ratios 0.05, 0.10, ..., 1.00: the 95th percentile is 0.95.
    let steps: Vec<(f32, f32)> = (0..20)
        .map(|step| (0.05 * (step + 1) as f32 * 0.5, 0.5))
        .collect();
    let b = batch_with_history(&steps);
    let scale = ClearSkyScale::fit([&b]);
    close(scale.by_system[&7], 0.95);
}

/// `batch()` for another system, capacity and forecast time.
fn batch_of(ss_id: i64, capacity_kwp: f32, t0: i64) -> Batch {
    let mut b = batch();
    b.target_ss_ids = vec![vec![ss_id]];
    b.capacity_kwp.data = vec![capacity_kwp];
    b.keys[0].t0 = UnixTime(t0);
    b
}

/// Two systems on two days, worked by hand. Targets are 0.50 (daylight) and 0.45 (night).
/// System 7 (2 kWp): forecast 0.40 → error 0.10; reference 0.45 → 0.05.
/// System 9 (4 kWp): forecast 0.20 → error 0.30; reference 0.30 → 0.20.
#[test]
fn metrics_are_reported_per_system_and_pooled() {
    let day = 86_400;
    let seven = batch_of(7, 2.0, 3 * day);
    let nine = batch_of(9, 4.0, 5 * day);
    let mut m = Metrics::new(2);
    m.add_point("model", &seven, &[0.40, 0.0]);
    m.add_point("smart_persistence", &seven, &[0.45, 0.0]);
    m.add_point("model", &nine, &[0.20, 0.0]);
    m.add_point("smart_persistence", &nine, &[0.30, 0.0]);
    let r = m.report("smart_persistence");

    let (s7, s9, pooled) = (
        &r.systems[&7]["model"],
        &r.systems[&9]["model"],
        &r.pooled["model"],
    );
    close(s7.nmae as f32, 0.10);
    close(s9.nmae as f32, 0.30);
    close(pooled.nmae as f32, 0.20);
    close(s7.mae_kw as f32, 0.20);
    close(s9.mae_kw as f32, 1.20);
    close(pooled.mae_kw as f32, 0.70);
    // All steps include the night lead: system 7 (0.10 + 0.45) / 2.
    close(s7.nmae_all_steps as f32, 0.275);
    close(s7.skill.expect("skill") as f32, 1.0 - 0.10 / 0.05);
    close(s9.skill.expect("skill") as f32, 1.0 - 0.30 / 0.20);
    close(pooled.skill.expect("skill") as f32, 1.0 - 0.20 / 0.125);
    assert_eq!((s7.daylight_targets, s7.days), (1, 1));
    assert_eq!((pooled.daylight_targets, pooled.days), (2, 2));
    // One day cannot be resampled; two days give resamples {7, 7}: skill −1, {9, 9}: −0.5 and
    // {7, 9}: −0.6, so the 95 % interval spans the extremes.
    assert_eq!(s7.skill_interval, None);
    let [lo, hi] = pooled.skill_interval.expect("interval");
    close(lo as f32, -1.0);
    close(hi as f32, -0.5);
    assert!(r.systems[&7]["smart_persistence"].skill.is_none());

    // The JSON has the pooled table and a `systems` object keyed by ss_id with the same fields.
    let json = serde_json::to_value(&r).expect("json");
    let fields = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        fields(&json["pooled"]["model"]),
        fields(&json["systems"]["9"]["model"])
    );
    let back: trainer::metrics::Report = serde_json::from_value(json).expect("read back");
    assert_eq!(back.systems[&9]["model"].days, 1);
}

/// Days are local solar days: in Colorado (105° W) 01:00 UTC is 18:00 the evening before, so two
/// examples at 20:00 and 01:00 UTC fall on one day there, but on two UTC days.
#[test]
fn bootstrap_days_are_local_solar_days() {
    let day = 86_400;
    let afternoon = batch_of(7, 2.0, 2 * day + 20 * 3600);
    let evening = batch_of(7, 2.0, 3 * day + 3600);
    for (longitude, days) in [(-105.0, 1), (0.0, 2)] {
        let mut m = Metrics::new(2).with_longitudes([(7, longitude)]);
        m.add_point("model", &afternoon, &[0.4, 0.0]);
        m.add_point("model", &evening, &[0.4, 0.0]);
        assert_eq!(m.report("none").pooled["model"].days, days, "{longitude}");
    }
}

#[test]
fn the_day_block_interval_is_seeded_and_exact_when_every_day_agrees() {
    use std::collections::BTreeMap;
    use trainer::metrics::{Bootstrap, day_block_skill_interval};
    // Every day the forecaster's errors are 0.6 of the reference's: skill 0.4 in every resample.
    let reference: BTreeMap<i64, (f64, usize)> =
        (0..30).map(|d| (d, (1.0 + d as f64, 10))).collect();
    let forecaster: BTreeMap<i64, (f64, usize)> = reference
        .iter()
        .map(|(&d, &(a, n))| (d, (0.6 * a, n)))
        .collect();
    let [lo, hi] =
        day_block_skill_interval(&forecaster, &reference, Bootstrap::default()).expect("interval");
    assert!(
        (lo - 0.4).abs() < 1e-12 && (hi - 0.4).abs() < 1e-12,
        "{lo} {hi}"
    );
    // Days that disagree give a real interval around the pooled skill, the same for a seed.
    let noisy: BTreeMap<i64, (f64, usize)> = reference
        .iter()
        .map(|(&d, &(a, n))| (d, (if d % 3 == 0 { 1.2 } else { 0.5 } * a, n)))
        .collect();
    let a = day_block_skill_interval(&noisy, &reference, Bootstrap::default()).expect("a");
    let b = day_block_skill_interval(&noisy, &reference, Bootstrap::default()).expect("b");
    assert_eq!(a, b);
    let pooled = 1.0
        - noisy.values().map(|v| v.0).sum::<f64>() / reference.values().map(|v| v.0).sum::<f64>();
    assert!(
        a[0] < pooled && pooled < a[1] && a[0] > -0.2 && a[1] < 0.5,
        "{a:?} {pooled}"
    );
    let other = Bootstrap {
        seed: 7,
        ..Bootstrap::default()
    };
    assert_ne!(day_block_skill_interval(&noisy, &reference, other), Some(a));
}

/// The model against the trees, on the two systems and days of the test above. System 7: model
/// error 0.10, trees 0.20; system 9: model 0.30, trees 0.25.
#[test]
fn the_model_is_reported_against_the_trees_with_a_day_block_interval() {
    let day = 86_400;
    let seven = batch_of(7, 2.0, 3 * day);
    let nine = batch_of(9, 4.0, 5 * day);
    let mut m = Metrics::new(2).with_head_to_head("model", "gbt");
    for (name, f7, f9) in [
        ("model", 0.40, 0.20),
        ("gbt", 0.30, 0.25),
        ("smart_persistence", 0.45, 0.30),
    ] {
        m.add_point(name, &seven, &[f7, 0.0]);
        m.add_point(name, &nine, &[f9, 0.0]);
    }
    let r = m.report("smart_persistence");
    let against = |t: &trainer::metrics::ForecasterTable| t["model"].skill_against["gbt"];
    close(against(&r.systems[&7]).skill as f32, 1.0 - 0.10 / 0.20);
    close(against(&r.systems[&9]).skill as f32, 1.0 - 0.30 / 0.25);
    let pooled = against(&r.pooled);
    close(pooled.skill as f32, 1.0 - 0.20 / 0.225);
    // Resamples {7, 7}: +0.5, {9, 9}: −0.2, {7, 9}: 1 − 0.20 / 0.225; the interval spans the
    // extremes. One day has none.
    let [lo, hi] = pooled.interval.expect("interval");
    close(lo as f32, -0.2);
    close(hi as f32, 0.5);
    assert_eq!(against(&r.systems[&7]).interval, None);
    // Only the pair asked for: not the trees against the model, nor the reference.
    assert!(r.pooled["gbt"].skill_against.is_empty());
    assert!(r.pooled["smart_persistence"].skill_against.is_empty());
    // The skill against the reference is unchanged by it.
    close(
        r.pooled["model"].skill.expect("skill") as f32,
        1.0 - 0.20 / 0.125,
    );

    // In the JSON and back; a file without the field (written before it existed) reads as none.
    let json = serde_json::to_value(&r).expect("json");
    close(
        json["systems"]["7"]["model"]["skill_against"]["gbt"]["skill"]
            .as_f64()
            .expect("number") as f32,
        0.5,
    );
    let back: trainer::metrics::Report = serde_json::from_value(json.clone()).expect("read back");
    assert_eq!(
        back.pooled["model"].skill_against,
        r.pooled["model"].skill_against
    );
    let mut old = json;
    old["pooled"]["model"]
        .as_object_mut()
        .expect("object")
        .remove("skill_against");
    let back: trainer::metrics::Report = serde_json::from_value(old).expect("old file");
    assert!(back.pooled["model"].skill_against.is_empty());

    // Without the trees in the evaluation there is nothing to compare with.
    let mut m = Metrics::new(2).with_head_to_head("model", "gbt");
    m.add_point("model", &seven, &[0.40, 0.0]);
    assert!(
        m.report("smart_persistence").pooled["model"]
            .skill_against
            .is_empty()
    );
}
