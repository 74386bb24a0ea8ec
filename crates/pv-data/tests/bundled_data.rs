//! The real dataset in `data/` loads, splits and batches as documented.

use std::path::PathBuf;

use pv_data::{Dataset, ExampleConfig, LoadConfig, Split, build_batch, example_keys};

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
