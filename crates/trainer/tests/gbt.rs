//! The gradient-boosted baseline's columns are named in row order (each named column holds what
//! its name says), and its feature importance names them: shares of the total split gain, largest
//! first, summing to 1.

mod common;

use forecaster::baselines::forecasts;
use pv_data::features::{Modality, PvToken, Query};
use pv_data::{Split, build_batch, example_keys};
use trainer::config::RunConfig;
use trainer::evaluate::fit_clear_sky_scale;
use trainer::gbt::{Gbt, GbtConfig, GbtFeatures};

#[test]
fn every_column_is_named_for_what_it_holds() {
    let dataset = common::dataset();
    let config = RunConfig::default();
    let scale = fit_clear_sky_scale(&dataset, &config).expect("scale");
    // UK examples carry every modality: take some of each system.
    let keys = example_keys(&dataset, &config.examples, Split::Validation).expect("keys");
    let picked: Vec<_> = keys.iter().step_by(keys.len() / 40).copied().collect();
    let batch = build_batch(&dataset, &config.examples, &picked, Split::Validation);
    let rows = GbtFeatures::of(&batch, &scale);
    assert!(rows.rows > 0);
    assert_eq!(rows.names.len(), rows.columns);
    let mut unique = rows.names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.columns, "{:?}", rows.names);
    let column = |name: &str| -> &[f64] {
        let c = rows
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no column {name}: {:?}", rows.names));
        &rows.values[c * rows.rows..(c + 1) * rows.rows]
    };
    let baselines = forecasts(&batch, &scale);
    let fq = batch.queries.shape[3];
    let [_, h, n, fp] = batch.tokens[Modality::Pv].values.shape[..] else {
        panic!("[B, H, N, F]")
    };
    let k = batch.queries.shape[2];
    let s = batch.queries.shape[1];
    for (r, &i) in rows.index.iter().enumerate() {
        let q = &batch.queries.data[i * fq..(i + 1) * fq];
        assert_eq!(
            column("last_power")[r],
            f64::from(q[Query::INDEX.last_power])
        );
        assert_eq!(
            column("lead_hours")[r],
            f64::from(q[Query::INDEX.lead_hours])
        );
        assert_eq!(column("smart_persistence")[r], f64::from(baselines[1][i]));
        // The target's own power one step before t0 (the second-last history step).
        let (bi, si) = (i / (s * k), i / k % s);
        let token = |step: usize| {
            let at = ((bi * h + step) * n + si) * fp;
            &batch.tokens[Modality::Pv].values.data[at..at + fp]
        };
        let before = token(h - 2);
        let value = column("power_1_steps_before_t0")[r];
        if before[PvToken::INDEX.observed] == 1.0 {
            assert_eq!(value, f64::from(before[PvToken::INDEX.power]));
        } else {
            assert!(value.is_nan());
        }
    }
    // NWP at the target time, where the data have it, ends the query's columns.
    if fq > Query::WIDTH {
        assert_eq!(rows.names[fq - 1], "nwp_hours_past_run_end");
        assert_eq!(rows.names[Query::WIDTH], "nwp_variable_0_at_target");
    }
}

#[test]
fn importance_names_the_columns_and_shares_their_gain() {
    let dataset = common::dataset();
    let config = RunConfig::default();
    let scale = fit_clear_sky_scale(&dataset, &config).expect("scale");
    let gbt_config = GbtConfig {
        max_train_rows: 20_000,
        max_validation_rows: 5_000,
        max_depths: vec![4],
        rounds: 40,
        ..GbtConfig::default()
    };
    let gbt = Gbt::fit(&dataset, &config.examples, &gbt_config, &scale).expect("fit");
    let shares = gbt.importance();
    assert!(!shares.is_empty());
    let total: f64 = shares.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-6, "{total}");
    assert!(shares.windows(2).all(|w| w[0].1 >= w[1].1), "{shares:?}");
    for (name, share) in &shares {
        assert!(gbt.names.contains(name), "{name}");
        assert!(*share >= 0.0);
    }
    // Power this far ahead is mostly the clear sky and the last power: the largest share is one
    // of the columns that carry them.
    let top = &shares[0].0;
    assert!(
        top.contains("clear_sky")
            || top.contains("persistence")
            || top.contains("power")
            || top.contains("sun"),
        "{shares:?}"
    );
}
