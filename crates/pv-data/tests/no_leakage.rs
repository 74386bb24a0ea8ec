//! The no-leakage invariant, as a property: for any example at `t0`, rewriting every observation
//! made after `t0` (PV, satellite, point observations) and every NWP run not yet available at `t0`
//! (initialised after `t0 − nwp_available_after_minutes`) leaves all of the example's inputs
//! bit-for-bit unchanged. Only targets may change.

mod common;

use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array};
use common::*;
use proptest::prelude::*;
use pv_data::features::Modality;
use pv_data::{
    Dataset, Example, ExampleConfig, ExampleKey, LoadConfig, Split, build_example, example_keys,
};

const DAYS: i64 = 5;
const STEP: i64 = 900;

/// A small synthetic dataset with every modality, written as real files and loaded once.
fn dataset() -> &'static (tempfile::TempDir, Dataset) {
    static DATA: OnceLock<(tempfile::TempDir, Dataset)> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let n = (DAYS * 86_400 / STEP) as usize;
        let t = grid(JUNE_2020, STEP, n);
        let mut ss = Vec::new();
        let mut gen_times = Vec::new();
        let mut wh = Vec::new();
        for (k, id) in [11i64, 12, 13].into_iter().enumerate() {
            for (i, &s) in t.iter().enumerate() {
                // Some missing readings, differently placed per system.
                if (i + 7 * k) % 29 == 0 {
                    continue;
                }
                let hour = (s % 86_400) as f64 / 3600.0;
                let day = ((hour - 12.0) / 6.0 * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .max(0.0);
                ss.push(id);
                gen_times.push(s);
                wh.push(Some(1000.0 * day * (0.6 + 0.1 * k as f64) + (i % 5) as f64));
            }
        }
        write_parquet(
            &d.join("generation.parquet"),
            &generation(&ss, &gen_times, &wh),
        );
        std::fs::write(
            d.join("metadata.csv"),
            "ss_id,latitude_rounded,longitude_rounded,orientation,tilt,kWp\n\
             11,52.00,0.00,180,30,4.0\n12,52.05,0.10,200,25,3.0\n13,51.95,-0.08,160,40,5.0\n",
        )
        .expect("metadata");

        // Satellite: 3 x 3 pixels, images every 15 min but taken 5 min past the grid.
        let mut st = Vec::new();
        let (mut lat, mut lon, mut c1, mut c2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, &s) in t.iter().enumerate() {
            for py in 0..3 {
                for px in 0..3 {
                    st.push(s + 300);
                    lat.push(51.95 + 0.05 * py as f64);
                    lon.push(-0.1 + 0.1 * px as f64);
                    c1.push(if (i + px) % 13 == 0 {
                        None
                    } else {
                        Some(((i + py) % 17) as f64 / 17.0)
                    });
                    c2.push(Some(((i * 3 + px) % 11) as f64));
                }
            }
        }
        write_parquet(
            &d.join("satellite.parquet"),
            &table(vec![
                ("time", times(&st, Some("UTC"))),
                ("latitude", Arc::new(Float64Array::from(lat)) as ArrayRef),
                ("longitude", Arc::new(Float64Array::from(lon))),
                ("IR_108", Arc::new(Float64Array::from(c1))),
                ("VIS006", Arc::new(Float64Array::from(c2))),
            ]),
        );

        // NWP: 2 points, runs every 3 h, steps 0..4 h hourly, two variables.
        let (mut init, mut step, mut nlat, mut nlon, mut var, mut val) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for r in 0..(DAYS * 8) {
            for s in 0..5 {
                for p in 0..2 {
                    for v in ["dswrf", "lcc"] {
                        init.push(JUNE_2020 + r * 3 * 3600);
                        step.push(s as i32 * 60);
                        nlat.push(52.0 + 0.2 * p as f64);
                        nlon.push(0.0);
                        var.push(v);
                        val.push(
                            ((r * 7 + s * 3 + p) % 23) as f64 * if v == "lcc" { 4.0 } else { 10.0 },
                        );
                    }
                }
            }
        }
        write_parquet(
            &d.join("nwp.parquet"),
            &table(vec![
                ("init_time", times(&init, Some("UTC"))),
                ("step_minutes", Arc::new(Int32Array::from(step)) as ArrayRef),
                ("latitude", Arc::new(Float64Array::from(nlat))),
                ("longitude", Arc::new(Float64Array::from(nlon))),
                ("variable", strings(&var)),
                ("value", Arc::new(Float64Array::from(val))),
            ]),
        );

        // Point observations for two systems, every 30 min.
        let (mut oid, mut ot, mut ghi) = (Vec::new(), Vec::new(), Vec::new());
        for id in [11i64, 13] {
            for (i, &s) in t.iter().enumerate().step_by(2) {
                oid.push(id);
                ot.push(s);
                ghi.push(((i * 5) % 31) as f64 * 20.0);
            }
        }
        write_parquet(
            &d.join("observations.parquet"),
            &table(vec![
                ("ss_id", Arc::new(Int64Array::from(oid)) as ArrayRef),
                ("time", times(&ot, Some("UTC"))),
                ("ghi", Arc::new(Float64Array::from(ghi))),
            ]),
        );

        let dataset = Dataset::load_folder(d, LoadConfig::default()).expect("load");
        (dir, dataset)
    })
}

fn config() -> ExampleConfig {
    ExampleConfig {
        max_target_systems: 2,
        satellite_pixels: 4,
        nwp_points: 2,
        nwp_available_after_minutes: 180,
        ..ExampleConfig::default()
    }
}

/// All inputs of an example, without the targets.
fn inputs(e: &Example) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &e.target_ss_ids,
        &e.context_ss_ids,
        &e.tokens,
        &e.queries,
        &e.capacity_kwp,
    )
}

/// Deterministic garbage, different for every call site.
fn noise(seed: u64, i: usize) -> f32 {
    let x =
        (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 40) as f32 / (1u64 << 24) as f32 * 7.0 - 1.0
}

/// Rewrites everything observed after `t0`, and every NWP run not available at `t0`.
fn rewrite_future(dataset: &Dataset, t0: pv_data::UnixTime, seed: u64) -> Dataset {
    let nwp_available_by = config().nwp_available_by(t0);
    let mut d = dataset.clone();
    for (k, s) in d.systems.iter_mut().enumerate() {
        for i in 0..s.len() {
            if s.time(i) > t0 {
                // Missing becomes present and present becomes missing or another value.
                s.power_kw[i] = if noise(seed, i + k) > 4.0 {
                    f32::NAN
                } else {
                    noise(seed, i * 3 + k).abs()
                };
            }
        }
    }
    if let Some(sat) = &mut d.satellite {
        let per_image = sat.pixels.len() * sat.channels.len();
        for (ti, &t) in sat.times.iter().enumerate() {
            if t > t0 {
                for j in 0..per_image {
                    sat.values[ti * per_image + j] = noise(seed, ti * per_image + j);
                }
            }
        }
    }
    if let Some(obs) = &mut d.observations {
        let nv = obs.variables.len();
        for (times, values) in obs.systems.values_mut() {
            for (r, &t) in times.iter().enumerate() {
                if t > t0 {
                    for v in 0..nv {
                        values[r * nv + v] = noise(seed, r * nv + v);
                    }
                }
            }
        }
    }
    if let Some(nwp) = &mut d.nwp {
        let per_init = nwp.steps_s.len() * nwp.points.len() * nwp.variables.len();
        for (ii, &init) in nwp.inits.iter().enumerate() {
            if init > nwp_available_by {
                for j in 0..per_init {
                    nwp.values[ii * per_init + j] = noise(seed, ii * per_init + j) * 100.0;
                }
            }
        }
    }
    d
}

fn all_keys() -> &'static Vec<(ExampleKey, Split)> {
    static KEYS: OnceLock<Vec<(ExampleKey, Split)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (_, d) = dataset();
        Split::ALL
            .into_iter()
            .flat_map(|s| {
                example_keys(d, &config(), s)
                    .expect("keys")
                    .into_iter()
                    .map(move |k| (k, s))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn nothing_after_t0_enters_the_inputs(index in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let (_, d) = dataset();
        let keys = all_keys();
        let (key, split) = keys[index.index(keys.len())];
        let before = build_example(d, &config(), key, split);
        let rewritten = rewrite_future(d, key.t0, seed);
        let after = build_example(&rewritten, &config(), key, split);
        prop_assert_eq!(inputs(&before), inputs(&after));
    }
}

#[test]
fn the_synthetic_data_exercises_every_modality() {
    let (_, d) = dataset();
    let keys = all_keys();
    assert!(keys.len() > 200, "{}", keys.len());
    // Pick a daytime example and check every modality has real tokens and the NWP reaches the queries.
    let &(key, split) = keys
        .iter()
        .find(|(k, _)| (k.t0.0 % 86_400) == 12 * 3600)
        .expect("a noon example");
    let e = build_example(d, &config(), key, split);
    assert_eq!(e.target_ss_ids.len(), 2, "two targets");
    assert!(!e.context_ss_ids.is_empty());
    for (m, set) in e.tokens.iter() {
        let name = m.name();
        assert!(set.mask.contains(&1.0), "{name} has no real token");
        assert!(
            set.values.iter().all(|v| v.is_finite()),
            "{name} has a non-finite value"
        );
    }
    assert!(e.queries.iter().all(|v| v.is_finite()));
}

#[test]
fn changing_the_last_observation_at_t0_does_change_the_inputs() {
    // The property above must be able to fail: data at t0 itself is an input.
    let (_, d) = dataset();
    let &(key, split) = all_keys()
        .iter()
        .find(|(k, _)| (k.t0.0 % 86_400) == 12 * 3600)
        .expect("noon");
    let before = build_example(d, &config(), key, split);
    let mut changed = d.clone();
    let s = &mut changed.systems[key.system];
    let i = s.index_of(key.t0).expect("t0 on the grid");
    s.power_kw[i] += 0.5;
    let after = build_example(&changed, &config(), key, split);
    assert_ne!(before.tokens[Modality::Pv], after.tokens[Modality::Pv]);

    // And an NWP run becomes usable exactly `nwp_available_after_minutes` (3 h here) after its
    // init time: the 09:00 run is used at noon, the noon run is not.
    let perturb = |init: pv_data::UnixTime| {
        let mut changed = d.clone();
        let nwp = changed.nwp.as_mut().expect("nwp");
        let run = nwp
            .inits
            .iter()
            .position(|&t| t == init)
            .expect("a run at that time");
        let per_init = nwp.steps_s.len() * nwp.points.len() * nwp.variables.len();
        for v in &mut nwp.values[run * per_init..(run + 1) * per_init] {
            *v += 50.0;
        }
        build_example(&changed, &config(), key, split)
    };
    let available = pv_data::UnixTime(key.t0.0 - 3 * 3600);
    assert_eq!(config().nwp_available_by(key.t0), available);
    let after = perturb(available);
    assert_ne!(before.queries, after.queries);
    assert_ne!(before.tokens[Modality::Nwp], after.tokens[Modality::Nwp]);
    let after = perturb(key.t0);
    assert_eq!(
        inputs(&before),
        inputs(&after),
        "a run initialised at t0 is not out yet"
    );
}
