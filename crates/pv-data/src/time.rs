//! Time as whole seconds since the Unix epoch, UTC. All of pv-data works on this one scale, so
//! there is no time-zone arithmetic past the loaders.

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// Seconds since the epoch.
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time (`2020-01-01T12:00:00Z`) or a naive `YYYY-MM-DD HH:MM[:SS]` read as UTC.
    pub fn parse(text: &str) -> Option<UnixTime> {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
            return Some(UnixTime(t.timestamp()));
        }
        for format in [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
                return Some(UnixTime(t.and_utc().timestamp()));
            }
        }
        None
    }

    /// Day of the year, 1-based (1 January = 1), in UTC.
    pub fn day_of_year(self) -> u32 {
        use chrono::Datelike;
        self.to_chrono().map_or(1, |t| t.ordinal())
    }

    /// The local solar day this instant falls on at `longitude_deg` (days since 1970, with the
    /// day boundary at local mean solar midnight: UTC shifted by 4 minutes per degree east), so a
    /// day's daylight is never cut in two, as UTC midnight cuts it in the Americas.
    pub fn local_solar_day(self, longitude_deg: f64) -> i64 {
        (self.0 as f64 + longitude_deg * 240.0).div_euclid(86_400.0) as i64
    }

    fn to_chrono(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp(self.0, 0)
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_chrono() {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            None => write!(f, "{}s", self.0),
        }
    }
}

/// Rounds `t` up to the next multiple of `step` (seconds); a multiple stays where it is.
pub fn ceil_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let t = UnixTime::parse("2020-01-01T12:15:00Z").expect("valid time");
        assert_eq!(t.0, 1_577_880_900);
        assert_eq!(t.to_string(), "2020-01-01T12:15:00Z");
        assert_eq!(UnixTime::parse("2020-01-01 12:15"), Some(t));
        assert_eq!(UnixTime::parse("yesterday"), None);
    }

    #[test]
    fn ceil_rounds_up_only_off_grid() {
        assert_eq!(ceil_to(900, 900), 900);
        assert_eq!(ceil_to(901, 900), 1800);
        assert_eq!(ceil_to(-1, 900), 0);
        assert_eq!(ceil_to(-900, 900), -900);
    }

    #[test]
    fn day_of_year_counts_from_one() {
        assert_eq!(UnixTime(0).day_of_year(), 1);
        assert_eq!(
            UnixTime::parse("2020-12-31T23:00:00Z").map(UnixTime::day_of_year),
            Some(366)
        );
    }
}
