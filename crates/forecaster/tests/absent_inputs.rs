//! A model trained with every input forecasts from a folder that lacks some of them: the missing
//! inputs are masked, not refused, and the forecast is exactly the one the full data give with
//! those inputs dropped. A folder with an input the model never saw is refused by name, and NWP
//! runs that end part-way through the horizon change nothing before they end and little after.

mod common;

use common::bundled;

use candle_core::Device;
use forecaster::{Error, ModelSetup, SavedModel, predict};
use pv_data::features::{Modality, NwpAtTarget};
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

/// `dataset` with every NWP run cut after `hours` of steps, as from a provider whose runs reach
/// less far ahead.
fn runs_cut_after(dataset: &Dataset, hours: i64) -> Dataset {
    let mut cut = dataset.clone();
    let nwp = cut.nwp.as_mut().expect("the bundled data have NWP");
    let keep = nwp.steps_s.partition_point(|&s| s <= hours * 3600);
    let per_step = nwp.points.len() * nwp.variables.len();
    let per_init = nwp.steps_s.len() * per_step;
    assert!(keep > 0 && keep < nwp.steps_s.len(), "{:?}", nwp.steps_s);
    nwp.values = nwp
        .values
        .chunks(per_init)
        .flat_map(|run| run[..keep * per_step].to_vec())
        .collect();
    nwp.steps_s.truncate(keep);
    cut
}

/// What the smoothness test compares: per query, its forecast quantiles and the hours past the
/// end of the run its NWP values come from (0 while the run covers the target time); per
/// example, its NWP tokens.
struct RunEnds {
    forecast: Vec<Vec<f32>>,
    past_end: Vec<f32>,
    nwp_tokens: Vec<Vec<f32>>,
}

fn forecast_with_run_ends(
    saved: &SavedModel,
    dataset: &Dataset,
    examples: &pv_data::ExampleConfig,
) -> RunEnds {
    let batch = build_batch(
        dataset,
        examples,
        &uk_keys(dataset, &saved.setup),
        Split::Train,
    );
    let forecast = predict(&saved.model, &batch, &Device::Cpu).expect("forecast");
    let fq = *batch.queries.shape.last().expect("query width");
    let past_end = batch
        .queries
        .data
        .chunks(fq)
        .map(|row| row[fq - NwpAtTarget::WIDTH + NwpAtTarget::INDEX.hours_past_run_end])
        .collect::<Vec<f32>>();
    let q = saved.setup.model.quantiles.len();
    let tokens = &batch.tokens[Modality::Nwp].values;
    RunEnds {
        forecast: forecast.chunks(q).map(<[f32]>::to_vec).collect(),
        past_end,
        nwp_tokens: tokens
            .data
            .chunks(tokens.data.len() / tokens.shape[0])
            .map(<[f32]>::to_vec)
            .collect(),
    }
}

#[test]
fn nwp_that_runs_out_part_way_changes_the_forecast_smoothly() {
    let full = bundled();
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = saved_model(&full, dir.path());
    let examples = saved.setup.examples;
    let before = forecast_with_run_ends(&saved, &full, &examples);

    // Runs that stop 3 h after init instead of 4 h: carried past their end (the default), and
    // missing there.
    let cut = runs_cut_after(&full, 3);
    let carried = forecast_with_run_ends(&saved, &cut, &examples);
    let no_carry = pv_data::ExampleConfig {
        nwp_carry_minutes: 0,
        ..examples
    };
    let dropped = forecast_with_run_ends(&saved, &cut, &no_carry);

    let per_example = before.forecast.len() / before.nwp_tokens.len();
    let distance = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>();
    let (mut untouched, mut carried_change, mut dropped_change) = (0, 0.0, 0.0);
    let mut first_past_end = 0;
    for i in 0..before.forecast.len() {
        let same_history =
            before.nwp_tokens[i / per_example] == carried.nwp_tokens[i / per_example];
        if same_history && carried.past_end[i] == 0.0 {
            // Where the shorter runs still cover the target (and the history), nothing changes.
            assert_eq!(before.forecast[i], carried.forecast[i], "query {i}");
            untouched += 1;
        } else if same_history
            && before.past_end[i] == 0.0
            && carried.past_end[i] > 0.0
            && carried.past_end[i] <= 0.25
        {
            // The first step past the shorter runs' end, where the full runs still cover it
            // (and the history is the same, so only that query's NWP differs): carried values
            // move the forecast a little, missing ones a lot.
            carried_change += distance(&carried.forecast[i], &before.forecast[i]);
            dropped_change += distance(&dropped.forecast[i], &before.forecast[i]);
            first_past_end += 1;
        }
    }
    assert!(
        untouched > 0,
        "some targets are covered by the shorter runs"
    );
    assert!(first_past_end > 0, "the first step past the cut was seen");
    eprintln!(
        "first step past the cut ({first_past_end} queries): forecast moved {carried_change} carried, {dropped_change} missing"
    );
    assert!(
        carried_change < 0.25 * dropped_change,
        "carried {carried_change} vs missing {dropped_change}"
    );
}
