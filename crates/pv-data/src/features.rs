//! The feature layout: one declaration per row kind, from which everything else is derived.
//!
//! Each row kind is declared once, with [`feature_row!`]: its features in row order, each with
//! its meaning. From that one list come the row struct that [`crate::example`] fills by field
//! name (so the order values are pushed in cannot drift from the names), the name list
//! (`NAMES`) and width (`WIDTH`) the model sizes its embedders from, the per-feature
//! documentation (`FEATURES`), and named column indices (`INDEX.<feature>`) for the model and the
//! baselines, which read single features out of batches.
//!
//! The modalities' rows:
//!
//! | modality | a token's row |
//! |---|---|
//! | `pv` | [`PvToken`] |
//! | `satellite` | the channels (standardised), then [`PlaceTime`] |
//! | `observations` | the variables (standardised), then [`PlaceTime`] |
//! | `nwp` | the variables (standardised), then [`PlaceTime`], then [`NwpAge`] |
//! | queries | [`Query`], then (with NWP) the variables at the target time (standardised), then [`NwpAtTarget`] |

/// One feature of a row: its name and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// The name (a field of the row struct).
    pub name: &'static str,
    /// What the value is, with its unit or scaling.
    pub meaning: &'static str,
}

/// Where `name` is in `names`; a compile-time error (in a `const`) when it is not there.
pub const fn position(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        if const_str_eq(names[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("feature not in the layout")
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares a row kind: a struct of `f32` features in row order, and an index struct with each
/// feature's column. See the module documentation.
macro_rules! feature_row {
    (
        $(#[$doc:meta])*
        $Row:ident, $Index:ident {
            $($field:ident: $meaning:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq)]
        pub struct $Row {
            $(
                #[doc = $meaning]
                pub $field: f32,
            )+
        }

        #[doc = concat!("The column of each feature in a [`", stringify!($Row), "`] row.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $Index {
            $(
                #[doc = $meaning]
                pub $field: usize,
            )+
        }

        impl $Row {
            /// The features with their meanings, in row order.
            pub const FEATURES: &'static [Feature] = &[
                $(Feature { name: stringify!($field), meaning: $meaning },)+
            ];
            /// The feature names, in row order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field),)+];
            /// Features per row.
            pub const WIDTH: usize = Self::NAMES.len();
            /// The column of each feature.
            pub const INDEX: $Index = $Index {
                $($field: position(Self::NAMES, stringify!($field)),)+
            };

            /// The row's values, in row order.
            pub fn to_array(&self) -> [f32; Self::WIDTH] {
                [$(self.$field,)+]
            }
        }
    };
}

feature_row! {
    /// A PV token: one system at one history step (targets first, then context systems).
    PvToken, PvTokenIndex {
        power: "mean power over the interval / kWp (0 where missing)",
        observed: "1 where the power was observed",
        is_target: "1 for a target system, 0 for a context system",
        east: "offset east of the anchor system, / context radius",
        north: "offset north of the anchor system, / context radius",
        sin_orientation: "sine of the panel azimuth",
        cos_orientation: "cosine of the panel azimuth",
        tilt: "panel tilt / 90°",
        log_kwp: "ln(capacity in kWp)",
        hours_from_t0: "interval end − t0, hours (≤ 0)",
        sun_up: "sin(apparent sun elevation) at the interval midpoint",
        sun_east: "cos(elevation)·sin(azimuth) at the interval midpoint",
        sun_north: "cos(elevation)·cos(azimuth) at the interval midpoint",
        clear_sky: "clear-sky plane-of-array irradiance at the interval midpoint / 1000 W/m² (≈ kW/kWp)",
    }
}

feature_row! {
    /// Where and when a satellite, observation or NWP token is, after its own values.
    PlaceTime, PlaceTimeIndex {
        observed_fraction: "fraction of the token's own values present (missing ones are 0)",
        east: "offset east of the anchor system, / context radius",
        north: "offset north of the anchor system, / context radius",
        hours_from_t0: "time of the values − t0, hours (≤ 0)",
        sun_up: "sin(apparent sun elevation) there and then",
        sun_east: "cos(elevation)·sin(azimuth) there and then",
        sun_north: "cos(elevation)·cos(azimuth) there and then",
    }
}

feature_row! {
    /// The age of an NWP token's forecast, after its [`PlaceTime`].
    NwpAge, NwpAgeIndex {
        hours_since_init: "valid time − the run's initialisation time, hours",
        hours_past_run_end: "valid time − the run's last step, hours, where that step's values are carried past it (else 0)",
    }
}

feature_row! {
    /// Where a query's NWP values come from, after the variables at its target time.
    NwpAtTarget, NwpAtTargetIndex {
        observed_fraction: "fraction of the variables present (0: no run available by t0 reaches the target time, even carried)",
        hours_since_init: "target time − the run's initialisation time, hours",
        hours_past_run_end: "target time − the run's last step, hours, where that step's values are carried past it (else 0)",
    }
}

feature_row! {
    /// A decoder query: one target system at one lead time, before any NWP values.
    Query, QueryIndex {
        sin_orientation: "sine of the panel azimuth",
        cos_orientation: "cosine of the panel azimuth",
        tilt: "panel tilt / 90°",
        log_kwp: "ln(capacity in kWp)",
        lead_hours: "lead time τ, hours",
        sun_up: "sin(apparent sun elevation) at the midpoint of the interval ending at t0 + τ",
        sun_east: "cos(elevation)·sin(azimuth) then",
        sun_north: "cos(elevation)·cos(azimuth) then",
        clear_sky: "clear-sky plane-of-array irradiance at t0 + τ / 1000 W/m² (≈ kW/kWp)",
        last_power: "the last observed power / kWp at or before t0 in the history window (0 if none)",
        last_observed: "1 if the history window holds an observed value",
        last_age_hours: "t0 − that value's time, hours",
        last_clear_sky: "clear-sky plane-of-array irradiance / 1000 at that value's time",
    }
}

/// The Fourier-encoded features of any token row (offsets in space and time).
pub const FOURIER: [&str; 3] = ["east", "north", "hours_from_t0"];

/// The kinds of token input, in the order the model embeds them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// PV power of the target and context systems.
    Pv,
    /// Satellite pixels near the anchor.
    Satellite,
    /// Point observations (e.g. irradiance) of the example's systems.
    Observations,
    /// NWP at points near the anchor.
    Nwp,
}

impl Modality {
    /// Every modality, in embedding order.
    pub const ALL: [Modality; 4] = [
        Modality::Pv,
        Modality::Satellite,
        Modality::Observations,
        Modality::Nwp,
    ];

    /// The name used in parameter names (`embed.<name>`) and messages.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Pv => "pv",
            Modality::Satellite => "satellite",
            Modality::Observations => "observations",
            Modality::Nwp => "nwp",
        }
    }

    /// The features after a token's own values (none for PV, whose row is all fixed).
    pub fn tail(self) -> Vec<&'static str> {
        match self {
            Modality::Pv => Vec::new(),
            Modality::Satellite | Modality::Observations => PlaceTime::NAMES.to_vec(),
            Modality::Nwp => [PlaceTime::NAMES, NwpAge::NAMES].concat(),
        }
    }

    /// The names of a token row `width` wide: its own values (`value`), then its fixed features.
    /// An absent modality (width 0) has none.
    pub fn feature_names(self, width: usize) -> Vec<&'static str> {
        match self {
            _ if width == 0 => Vec::new(),
            Modality::Pv => PvToken::NAMES.to_vec(),
            _ => {
                let tail = self.tail();
                let mut names = vec!["value"; width.saturating_sub(tail.len())];
                names.extend(tail);
                names
            }
        }
    }
}

/// One value per modality, indexed by [`Modality`]: what replaces a struct field per modality
/// (token sets of an example or a batch, tensors of a batch).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerModality<T>(pub [T; 4]);

impl<T> PerModality<T> {
    /// `f` of every modality, in [`Modality::ALL`] order.
    pub fn from_fn(f: impl FnMut(Modality) -> T) -> Self {
        PerModality(Modality::ALL.map(f))
    }

    /// Every modality with its value, in [`Modality::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Modality, &T)> {
        Modality::ALL.into_iter().zip(&self.0)
    }

    /// `f` of every value, keeping the modality.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerModality<U> {
        PerModality::from_fn(|m| f(&self[m]))
    }
}

impl<T> std::ops::Index<Modality> for PerModality<T> {
    type Output = T;
    fn index(&self, m: Modality) -> &T {
        &self.0[m as usize]
    }
}

impl<T> std::ops::IndexMut<Modality> for PerModality<T> {
    fn index_mut(&mut self, m: Modality) -> &mut T {
        &mut self.0[m as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_has_unique_names_and_consistent_indices() {
        for names in [
            PvToken::NAMES,
            PlaceTime::NAMES,
            NwpAge::NAMES,
            NwpAtTarget::NAMES,
            Query::NAMES,
        ] {
            for (i, name) in names.iter().enumerate() {
                assert_eq!(position(names, name), i, "{name} appears twice");
            }
        }
        assert_eq!(PvToken::WIDTH, PvToken::FEATURES.len());
        assert_eq!(Query::INDEX.last_power, 9);
        assert_eq!(Query::INDEX.clear_sky, 8);
        assert_eq!(PvToken::INDEX.clear_sky, PvToken::WIDTH - 1);
        let row = Query {
            last_power: 0.5,
            clear_sky: 0.25,
            ..Query::default()
        }
        .to_array();
        assert_eq!(row[Query::INDEX.last_power], 0.5);
        assert_eq!(row[Query::INDEX.clear_sky], 0.25);
        assert_eq!(row.iter().sum::<f32>(), 0.75);
    }

    #[test]
    fn modality_names_end_with_their_fixed_features() {
        assert_eq!(Modality::Pv.feature_names(PvToken::WIDTH), PvToken::NAMES);
        let nwp = Modality::Nwp.feature_names(3 + PlaceTime::WIDTH + NwpAge::WIDTH);
        assert_eq!(&nwp[..3], &["value"; 3]);
        assert_eq!(nwp.last(), Some(&"hours_past_run_end"));
        assert!(Modality::Satellite.feature_names(0).is_empty());
        let per = PerModality::from_fn(Modality::name);
        for (m, name) in per.iter() {
            assert_eq!(per[m], *name);
            assert_eq!(Modality::ALL[m as usize], m);
        }
        for name in FOURIER {
            assert!(PvToken::NAMES.contains(&name) && PlaceTime::NAMES.contains(&name));
        }
    }
}
