//! The real dataset in `data/` loads, splits and batches as documented.

use std::path::PathBuf;

use pv_data::features::{Modality, PvToken, Query};
use pv_data::{Dataset, ExampleConfig, LoadConfig, Split, UnixTime, build_batch, example_keys};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn load() -> Dataset {
    Dataset::load_folder(&data_dir(), LoadConfig::default()).expect("data loads")
}

#[test]
fn bundled_data_loads_with_every_modality() {
    let d = load();
    let ids: Vec<i64> = d.systems.iter().map(|s| s.meta.ss_id).collect();
    assert_eq!(ids, vec![50, 1001, 8215, 8229]);
    assert_eq!(d.report.rows, 104_286);
    assert!(d.report.masked.is_empty());
    let sat = d.satellite.as_ref().expect("satellite");
    assert_eq!(
        (sat.times.len(), sat.pixels.len(), sat.channels.len()),
        (517, 1350, 4)
    );
    let nwp = d.nwp.as_ref().expect("nwp");
    assert_eq!(nwp.variables, vec!["dswrf", "hcc", "lcc", "mcc"]);
    assert_eq!(
        d.observations.as_ref().expect("observations").systems.len(),
        2
    );
    // UK values are kW-per-kWp plausible in January; system 50 peaks near its AC-side capacity.
    let uk = &d.systems[2];
    assert_eq!(uk.native_interval_s, 300);
    assert!(uk.observed_fraction() > 0.2 && uk.observed_fraction() < 0.4);
}

#[test]
fn bundled_batches_are_finite_with_real_tokens_in_every_modality() {
    let d = load();
    let config = ExampleConfig::default();
    // A UK example at midday on 2020-01-02 sees satellite, NWP and PV.
    let keys = example_keys(&d, &config, Split::Train).expect("keys");
    let first_40_of = |ss_id: i64| {
        keys.iter()
            .copied()
            .filter(|k| d.systems[k.system].meta.ss_id == ss_id)
            .take(40)
            .collect::<Vec<_>>()
    };
    let (uk, us) = (first_40_of(8215), first_40_of(50));
    let batch = build_batch(&d, &config, &[uk, us].concat(), Split::Train);
    assert_eq!(batch.len(), 80);
    for (m, t) in batch.tokens.iter() {
        let name = m.name();
        assert!(t.values.data.iter().all(|v| v.is_finite()), "{name}");
        assert!(t.mask.data.contains(&1.0), "{name} has no real token");
        assert_eq!(t.values.shape[..2], [80, config.history_steps]);
    }
    assert!(batch.queries.data.iter().all(|v| v.is_finite()));
    assert_eq!(batch.targets.shape, vec![80, 1, config.lead_times]);
    // Every example has at least one observed target (that is what makes it an example).
    for b in 0..80 {
        let observed: f32 = batch.target_mask.data[b * 16..(b + 1) * 16].iter().sum();
        assert!(observed >= 1.0);
    }
}

/// Dropping an input from one example of a batch masks and zeroes exactly that example's tokens
/// of it (for PV: its context systems', never its targets'), and for NWP its query values.
/// At 11:00 the 09:00 UKV run is available (after its 2-hour delay) and covers two hours ahead.
#[test]
fn dropping_an_input_touches_one_example_and_one_input() {
    let d = load();
    let config = ExampleConfig::default();
    let keys: Vec<_> = example_keys(&d, &config, Split::Train)
        .expect("keys")
        .into_iter()
        .filter(|k| {
            d.systems[k.system].meta.ss_id == 8215
                && k.t0 >= UnixTime::parse("2020-01-02T11:00:00Z").expect("time")
        })
        .take(4)
        .collect();
    let batch = build_batch(&d, &config, &keys, Split::Train);
    let real = |b: &pv_data::Batch, m: Modality, example: usize| -> usize {
        let [_, h, n] = b.tokens[m].mask.shape[..] else {
            panic!("mask is [B, H, N]")
        };
        b.tokens[m].mask.data[example * h * n..(example + 1) * h * n]
            .iter()
            .filter(|&&x| x == 1.0)
            .count()
    };
    for m in Modality::ALL {
        assert!(
            real(&batch, m, 1) > 0 || m == Modality::Observations,
            "{m:?}"
        );
        let mut dropped = batch.clone();
        dropped.drop_input(1, m);
        for (other, tokens) in dropped.tokens.iter() {
            for example in [0, 2, 3] {
                assert_eq!(real(&dropped, other, example), real(&batch, other, example));
            }
            if other != m {
                assert_eq!(tokens, &batch.tokens[other]);
            }
        }
        let [_, h, n, f] = dropped.tokens[m].values.shape[..] else {
            panic!("values are [B, H, N, F]")
        };
        let rows = &dropped.tokens[m].values.data[h * n * f..2 * h * n * f];
        let targets = rows
            .chunks(f)
            .filter(|r| m == Modality::Pv && r[PvToken::INDEX.is_target] == 1.0)
            .count();
        // One target system per example at each history step: its own history stays.
        let kept = if m == Modality::Pv { h } else { 0 };
        assert_eq!((real(&dropped, m, 1), targets), (kept, kept));
        let queries = |b: &pv_data::Batch, example: usize| {
            let [_, s, k, fq] = b.queries.shape[..] else {
                panic!("queries are [B, S, K, F]")
            };
            b.queries.data[example * s * k * fq..(example + 1) * s * k * fq].to_vec()
        };
        let nwp_in_queries = |b: &pv_data::Batch| {
            queries(b, 1)
                .chunks(b.queries.shape[3])
                .map(|row| row[Query::WIDTH..].iter().filter(|&&x| x != 0.0).count())
                .sum::<usize>()
        };
        assert!(nwp_in_queries(&batch) > 0);
        match m {
            Modality::Nwp => assert_eq!(nwp_in_queries(&dropped), 0),
            _ => assert_eq!(queries(&dropped, 1), queries(&batch, 1)),
        }
        assert_eq!(queries(&dropped, 2), queries(&batch, 2));
    }
}

#[test]
fn split_blocks_are_ordered_and_disjoint_on_real_data() {
    let d = load();
    let config = ExampleConfig::default();
    let step = d.step_s();
    let mut last_end = std::collections::HashMap::new();
    for split in Split::ALL {
        for key in example_keys(&d, &config, split).expect("keys") {
            let first = key.t0.0 - (config.history_steps as i64 - 1) * step;
            if let Some(&(prev_split, end)) = last_end.get(&key.system)
                && prev_split != split
            {
                // The first window of a later block starts after the previous block's last window.
                assert!(
                    first > end,
                    "{split} window at {} overlaps the previous block",
                    key.t0
                );
            }
            let end = key.t0.0 + config.lead_times as i64 * step;
            let entry = last_end.entry(key.system).or_insert((split, end));
            *entry = (split, end.max(entry.1));
        }
    }
}

#[test]
fn docs_data_md_matches_the_loader() {
    let doc = std::fs::read_to_string(data_dir().join("../docs/DATA.md")).expect("docs/DATA.md");
    let begin = "<!-- BEGIN GENERATED: inspect --markdown -->\n";
    let start = doc.find(begin).expect("begin marker") + begin.len();
    let end = doc.find("<!-- END GENERATED -->").expect("end marker");
    assert_eq!(
        &doc[start..end],
        load().summary().to_markdown(),
        "regenerate the block in docs/DATA.md"
    );
}
