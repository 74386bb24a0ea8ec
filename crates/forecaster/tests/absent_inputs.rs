//! A model trained with every input forecasts from a folder that lacks some of them: the missing
//! inputs are masked, not refused, and the forecast is exactly the one the full data give with
//! those inputs dropped. A folder with an input the model never saw is refused by name, and an
//! input that runs out part-way through the horizon changes nothing before it runs out.

mod common;

use common::bundled;

use candle_core::Device;
use forecaster::{Error, ModelSetup, SavedModel, predict};
use pv_data::features::{Modality, Query};
use pv_data::{
    Dataset, ExampleKey, FeatureWidths, InputUse, Split, UnixTime, build_batch, example_keys,
};

/// `dataset` as loaded from a folder holding only generation and metadata.
fn pv_only(dataset: &Dataset) -> Dataset {
    let mut pv = dataset.clone();
    pv.satellite = None;
    pv.nwp = None;
    pv.observations = None;
    pv.paths.satellite = None;
    pv.paths.nwp = None;
    pv.paths.observations = None;
    pv
}

/// A freshly initialised model for `dataset`, written to `dir` and read back.
fn saved_model(dataset: &Dataset, dir: &std::path::Path) -> SavedModel {
    common::write_model(dataset, dir);
    SavedModel::read(dir, &Device::Cpu).expect("read")
}

/// Examples of UK system 8215 on 2020-01-02 between 09:00 and 13:00 UTC (training split), when
/// the bundled satellite imagery and NWP both cover its history and the first leads.
fn uk_keys(dataset: &Dataset, setup: &ModelSetup) -> Vec<ExampleKey> {
    let from = UnixTime::parse("2020-01-02T09:00:00Z").expect("time");
    let to = UnixTime::parse("2020-01-02T13:00:00Z").expect("time");
    example_keys(dataset, &setup.examples, Split::Train)
        .expect("keys")
        .into_iter()
        .filter(|k| dataset.systems[k.system].meta.ss_id == 8215 && k.t0 >= from && k.t0 <= to)
        .collect()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_pv_only_folder_is_forecast_as_the_full_data_with_those_inputs_dropped() {
    let full = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = saved_model(&full, dir.path());
    let setup = &saved.setup;

    let mut pv = pv_only(&full);
    let used = saved
        .adapt(&mut pv)
        .expect("a PV-only folder is adapted, not refused");
    assert_eq!(
        used,
        InputUse {
            present: vec![Modality::Pv],
            absent: vec![Modality::Satellite, Modality::Observations, Modality::Nwp],
        }
    );
    assert_eq!(
        used.to_string(),
        "inputs used: pv; absent from the data, masked: satellite, observations, nwp"
    );
    assert_eq!(FeatureWidths::of(&pv), saved.widths);
    let mut again = full.clone();
    assert_eq!(
        saved.adapt(&mut again).expect("full").absent,
        Vec::<Modality>::new()
    );

    let keys = uk_keys(&full, setup);
    assert!(!keys.is_empty());
    let mut dropped = build_batch(&full, &setup.examples, &keys, Split::Train);
    let with_everything = predict(&saved.model, &dropped, &Device::Cpu).expect("full");
    // The full batch really has satellite and NWP here, so dropping them can matter.
    for m in [Modality::Satellite, Modality::Nwp] {
        assert!(dropped.tokens[m].mask.data.contains(&1.0), "{m:?}");
    }
    for example in 0..dropped.len() {
        for m in [Modality::Satellite, Modality::Observations, Modality::Nwp] {
            dropped.drop_input(example, m);
        }
    }
    let pv_batch = build_batch(&pv, &setup.examples, &keys, Split::Train);
    assert_eq!(pv_batch.queries, dropped.queries);
    assert_eq!(pv_batch.tokens[Modality::Pv], dropped.tokens[Modality::Pv]);
    for m in [Modality::Satellite, Modality::Observations, Modality::Nwp] {
        let tokens = &pv_batch.tokens[m];
        assert_eq!(tokens.values.shape[2], 0, "{m:?}: no token");
        assert_eq!(tokens.values.shape[3], saved.widths.of_modality(m), "{m:?}");
    }
    let from_pv = predict(&saved.model, &pv_batch, &Device::Cpu).expect("pv only");
    let from_dropped = predict(&saved.model, &dropped, &Device::Cpu).expect("dropped");
    assert!(from_pv.iter().all(|x| x.is_finite()));
    // Masked tokens carry no weight: the same forecast up to float rounding.
    assert!(max_difference(&from_pv, &from_dropped) < 1e-5);
    assert!(max_difference(&from_pv, &with_everything) > 1e-3);
}

#[test]
fn an_input_the_model_never_saw_is_refused_by_name() {
    let full = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = saved_model(&pv_only(&full), dir.path());
    let mut data = full.clone();
    let err = saved.adapt(&mut data).expect_err("satellite is unknown");
    assert!(matches!(err, Error::Data { .. }), "{err}");
    let message = format!("{err}: {}", std::error::Error::source(&err).expect("cause"));
    assert!(message.contains("satellite"), "{message}");
    assert!(message.contains("IR_016"), "{message}");
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn nwp_that_runs_out_part_way_changes_nothing_before_it_runs_out() {
    let full = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = saved_model(&full, dir.path());
    let setup = &saved.setup;
    let batch = build_batch(&full, &setup.examples, &uk_keys(&full, setup), Split::Train);
    let before = predict(&saved.model, &batch, &Device::Cpu).expect("before");

    // NWP at the targets stops after lead 6 (as when no run available by t0 reaches further).
    let cut = 6;
    let mut shorter = batch.clone();
    let [_, _, k, fq] = shorter.queries.shape[..] else {
        panic!("queries are [B, S, K, F]")
    };
    let mut removed = 0;
    for (i, row) in shorter.queries.data.chunks_mut(fq).enumerate() {
        if i % k >= cut {
            removed += row[Query::WIDTH..].iter().filter(|&&x| x != 0.0).count();
            row[Query::WIDTH..].fill(0.0);
        }
    }
    assert!(removed > 0, "the NWP at later leads held values");
    let after = predict(&saved.model, &shorter, &Device::Cpu).expect("after");
    let q = setup.model.quantiles.len();
    let lead_of = |i: usize| (i / q) % k;
    let (early, late): (Vec<usize>, Vec<usize>) =
        (0..before.len()).partition(|&i| lead_of(i) < cut);
    assert!(
        early.iter().all(|&i| before[i] == after[i]),
        "forecasts before the cut are untouched"
    );
    assert!(late.iter().any(|&i| before[i] != after[i]));
}
