//! The declared feature layout (`pv_data::features`) and the rows `build_example` writes agree:
//! every column named by the layout holds the quantity its name says, computed here again from
//! the data, on real examples of every modality (the UK systems have satellite, NWP and
//! observations). A feature pushed in another order than declared fails here.

use std::path::PathBuf;

use pv_data::features::{Modality, NwpAge, PlaceTime, PvToken, Query};
use pv_data::{
    Dataset, ExampleConfig, FeatureWidths, LoadConfig, Split, UnixTime, build_example, example_keys,
};

fn load() -> Dataset {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    Dataset::load_folder(&dir, LoadConfig::default()).expect("data loads")
}

#[test]
fn rows_hold_what_the_layout_names() {
    let dataset = load();
    let config = ExampleConfig::default();
    let widths = FeatureWidths::of(&dataset);
    let step = dataset.step_s();
    let h = config.history_steps;
    let keys = example_keys(&dataset, &config, Split::Train).expect("keys");
    // A few examples of every system, including the UK ones with every modality.
    let mut checked_nwp = 0;
    for system in 0..dataset.systems.len() {
        let own: Vec<_> = keys.iter().filter(|k| k.system == system).collect();
        for key in own.iter().step_by(own.len().div_ceil(5).max(1)) {
            let e = build_example(&dataset, &config, **key, Split::Train);
            let t0 = key.t0;
            let anchor = &dataset.systems[key.system];

            // PV: the anchor is token 0, a target; power and hours match the series and grid.
            let pv = &e.tokens[Modality::Pv];
            assert_eq!(pv.features, PvToken::WIDTH);
            assert_eq!(pv.features, widths.pv);
            let i = PvToken::INDEX;
            for step_i in 0..h {
                let row = &pv.values[step_i * pv.tokens * pv.features..][..pv.features];
                let t = UnixTime(t0.0 - (h - 1 - step_i) as i64 * step);
                let power = anchor.normalised_at(t);
                assert_eq!(row[i.power], power.unwrap_or(0.0));
                assert_eq!(row[i.observed], power.is_some() as u8 as f32);
                assert_eq!(row[i.is_target], 1.0);
                assert_eq!((row[i.east], row[i.north]), (0.0, 0.0));
                assert!((row[i.hours_from_t0] - (t.0 - t0.0) as f32 / 3600.0).abs() < 1e-6);
                assert!((row[i.tilt] - (anchor.meta.tilt_deg / 90.0) as f32).abs() < 1e-6);
                assert!((row[i.log_kwp] - anchor.meta.capacity_kwp.ln() as f32).abs() < 1e-6);
                let sun =
                    row[i.sun_up].powi(2) + row[i.sun_east].powi(2) + row[i.sun_north].powi(2);
                assert!((sun - 1.0).abs() < 1e-4, "sun direction is a unit vector");
                assert!(row[i.clear_sky] >= 0.0 && row[i.clear_sky] < 1.3);
                assert!(
                    (row[i.sin_orientation].powi(2) + row[i.cos_orientation].powi(2) - 1.0).abs()
                        < 1e-5
                );
            }

            // Queries: lead hours count up the grid, the last observation is the series' own.
            let fq = widths.query;
            assert_eq!(e.queries.len() % fq, 0);
            let q = Query::INDEX;
            let last = (0..h).find_map(|j| anchor.normalised_at(UnixTime(t0.0 - j as i64 * step)));
            for lead in 0..config.lead_times {
                let row = &e.queries[lead * fq..(lead + 1) * fq];
                let hours = ((lead + 1) as i64 * step) as f32 / 3600.0;
                assert!((row[q.lead_hours] - hours).abs() < 1e-6);
                assert_eq!(row[q.last_power], last.unwrap_or(0.0));
                assert_eq!(row[q.last_observed], last.is_some() as u8 as f32);
                assert!(row[q.last_age_hours] >= 0.0);
                assert!(row[q.clear_sky] >= 0.0 && row[q.last_clear_sky] >= 0.0);
            }

            // Tokens of the other modalities: values, then place and time (then the NWP age).
            for (modality, set) in e.tokens.iter() {
                if modality == Modality::Pv || set.tokens == 0 {
                    continue;
                }
                assert_eq!(set.features, widths.of_modality(modality), "{modality:?}");
                let tail = modality.tail().len();
                let pt = set.features - tail;
                for (token, &m) in set.mask.iter().enumerate() {
                    if m == 0.0 {
                        continue;
                    }
                    let row = &set.values[token * set.features..(token + 1) * set.features];
                    let p = PlaceTime::INDEX;
                    let place_time = &row[pt..pt + PlaceTime::WIDTH];
                    assert!(
                        place_time[p.observed_fraction] > 0.0
                            && place_time[p.observed_fraction] <= 1.0
                    );
                    assert!(
                        place_time[p.hours_from_t0] <= 0.0,
                        "{modality:?}: from the past"
                    );
                    if modality == Modality::Nwp {
                        let age = row[pt + PlaceTime::WIDTH + NwpAge::INDEX.hours_since_init];
                        // Valid time − init ≥ the availability delay, since the run was
                        // available by t0 and the value is valid at or before t0.
                        let delay = config.nwp_available_after_minutes as f32 / 60.0;
                        assert!(age >= delay + place_time[p.hours_from_t0] - 1e-4, "{age}");
                        checked_nwp += 1;
                    }
                }
            }
        }
    }
    assert!(checked_nwp > 0, "the UK examples carry NWP tokens");
}
