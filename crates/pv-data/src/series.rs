//! Resampling a system's readings onto one regular grid of interval ends, by energy.
//!
//! A grid interval `(t − step, t]` holds the energy of every reading whose own interval ends in it.
//! Its mean power is that energy over the step; it is *observed* only when every native interval
//! in it is present, so a partly missing interval is missing, never scaled up or filled.

use crate::error::{BadValueKind, DataError, Result};
use crate::generation::{BadValuePolicy, LoadReport, RawSeries};
use crate::metadata::SystemMetadata;
use crate::time::{UnixTime, ceil_to};

/// One system's power on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PvSeries {
    /// The system.
    pub meta: SystemMetadata,
    /// End of the first grid interval.
    pub start: UnixTime,
    /// Grid step, seconds.
    pub step_s: i64,
    /// The interval of the source readings, seconds (the most common spacing).
    pub native_interval_s: i64,
    /// Mean power over each grid interval, kW; NaN where not observed.
    pub power_kw: Vec<f32>,
}

impl PvSeries {
    /// Number of grid intervals.
    pub fn len(&self) -> usize {
        self.power_kw.len()
    }

    /// Whether the series has no interval.
    pub fn is_empty(&self) -> bool {
        self.power_kw.is_empty()
    }

    /// End of grid interval `i`.
    pub fn time(&self, i: usize) -> UnixTime {
        UnixTime(self.start.0 + i as i64 * self.step_s)
    }

    /// End of the last grid interval.
    pub fn end(&self) -> UnixTime {
        self.time(self.len().saturating_sub(1))
    }

    /// The grid index whose interval ends at `t`, if `t` is on the grid and in range.
    pub fn index_of(&self, t: UnixTime) -> Option<usize> {
        let offset = t.0 - self.start.0;
        if offset < 0 || offset % self.step_s != 0 {
            return None;
        }
        let i = (offset / self.step_s) as usize;
        (i < self.len()).then_some(i)
    }

    /// Power normalised by capacity (kW / kWp) at `t`, if observed.
    pub fn normalised_at(&self, t: UnixTime) -> Option<f32> {
        let p = self.power_kw[self.index_of(t)?];
        (!p.is_nan()).then(|| p / self.meta.capacity_kwp as f32)
    }

    /// Fraction of grid intervals that are observed.
    pub fn observed_fraction(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        self.power_kw.iter().filter(|p| !p.is_nan()).count() as f64 / self.len() as f64
    }
}

/// The most common positive spacing between readings (the step if there is only one reading).
pub fn native_interval(times: &[UnixTime], fallback_s: i64) -> i64 {
    let mut diffs: Vec<i64> = times.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if diffs.is_empty() {
        return fallback_s;
    }
    diffs.sort_unstable();
    let (mut best, mut best_count, mut run) = (diffs[0], 0usize, 0usize);
    for i in 0..diffs.len() {
        run = if i > 0 && diffs[i] == diffs[i - 1] {
            run + 1
        } else {
            1
        };
        if run > best_count {
            best = diffs[i];
            best_count = run;
        }
    }
    best
}

/// Resamples `raw` onto a grid of `step_s`, converting Wh to mean kW. Each label is first moved
/// to the end of the interval its value covers (`meta.time_label`): by the source spacing for
/// interval-start labels, by half of it for instantaneous readings.
///
/// Readings above twice what the system's capacity allows in their interval are bad values,
/// handled by `policy` and counted in `report`.
pub fn resample(
    raw: &RawSeries,
    meta: &SystemMetadata,
    step_s: i64,
    policy: BadValuePolicy,
    files: &[std::path::PathBuf],
    report: &mut LoadReport,
) -> Result<PvSeries> {
    if step_s <= 0 {
        return Err(DataError::Config(format!(
            "step must be positive, got {step_s} s"
        )));
    }
    let native = native_interval(&raw.times, step_s);
    if native > step_s || step_s % native != 0 {
        return Err(DataError::IntervalMismatch {
            ss_id: raw.ss_id,
            interval_minutes: native / 60,
            step_minutes: step_s / 60,
            problem: if native > step_s {
                "is coarser than"
            } else {
                "does not divide"
            },
        });
    }
    let per_step = (step_s / native) as u32;
    let max_wh = 2.0 * meta.capacity_kwp * 1000.0 * native as f64 / 3600.0;

    let (Some(first), Some(last)) = (raw.times.first(), raw.times.last()) else {
        return Err(DataError::Empty {
            path: files.first().cloned().unwrap_or_default(),
            what: format!("ss_id {}", raw.ss_id),
        });
    };
    // Labels become interval ends (the grid's convention) by the system's time-label rule.
    let to_end = meta.time_label.to_interval_end_s(native);
    let start = ceil_to(first.0 + to_end, step_s);
    let n = ((ceil_to(last.0 + to_end, step_s) - start) / step_s + 1) as usize;
    let mut energy = vec![0.0f64; n];
    let mut count = vec![0u32; n];
    for (i, (&t, &wh)) in raw.times.iter().zip(&raw.energy_wh).enumerate() {
        let Some(mut wh) = wh else { continue };
        if wh > max_wh {
            match policy {
                BadValuePolicy::Error => {
                    return Err(DataError::BadValue {
                        at: raw.location_of(files, i),
                        value: wh,
                        kind: BadValueKind::AboveCapacity,
                    });
                }
                BadValuePolicy::MaskAndReport => {
                    report.count_masked(BadValueKind::AboveCapacity);
                    continue;
                }
            }
        }
        // Readings that fall between native ticks still count once; negative zero becomes zero.
        wh = wh.max(0.0);
        let bin = ((ceil_to(t.0 + to_end, step_s) - start) / step_s) as usize;
        energy[bin] += wh;
        count[bin] += 1;
    }
    let hours = step_s as f64 / 3600.0;
    let power_kw = energy
        .iter()
        .zip(&count)
        .map(|(&wh, &c)| {
            if c == per_step {
                (wh / hours / 1000.0) as f32
            } else {
                f32::NAN
            }
        })
        .collect();
    Ok(PvSeries {
        meta: *meta,
        start: UnixTime(start),
        step_s,
        native_interval_s: native,
        power_kw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `resample` with the test metadata, errors for bad values and no labels to move.
    fn resample_strict(r: &RawSeries, step_s: i64) -> Result<PvSeries> {
        resample(
            r,
            &meta(),
            step_s,
            BadValuePolicy::Error,
            &[],
            &mut LoadReport::default(),
        )
    }

    fn meta() -> SystemMetadata {
        SystemMetadata {
            ss_id: 1,
            latitude_deg: 52.0,
            longitude_deg: 0.0,
            orientation_deg: 180.0,
            tilt_deg: 30.0,
            capacity_kwp: 4.0,
            time_label: Default::default(),
            altitude_m: None,
        }
    }

    fn raw(times: &[i64], wh: &[Option<f64>]) -> RawSeries {
        RawSeries {
            ss_id: 1,
            times: times.iter().map(|&t| UnixTime(t)).collect(),
            energy_wh: wh.to_vec(),
            origin: (0..times.len() as u32).map(|r| (0, r)).collect(),
        }
    }

    #[test]
    fn five_minute_energy_becomes_fifteen_minute_mean_power() {
        // Intervals ending 00:05, 00:10, 00:15 (one grid interval) and 00:20..00:30 (one missing).
        let r = raw(
            &[300, 600, 900, 1200, 1500, 1800],
            &[
                Some(100.0),
                Some(200.0),
                Some(300.0),
                Some(50.0),
                None,
                Some(50.0),
            ],
        );
        let s = resample_strict(&r, 900).expect("resample");
        assert_eq!(s.start, UnixTime(900));
        assert_eq!(s.native_interval_s, 300);
        // 600 Wh in a quarter hour is 2.4 kW mean.
        assert_eq!(s.power_kw.len(), 2);
        assert!((s.power_kw[0] - 2.4).abs() < 1e-6);
        assert!(
            s.power_kw[1].is_nan(),
            "a partly missing interval is missing"
        );
        assert_eq!(s.normalised_at(UnixTime(900)), Some(0.6));
    }

    /// The same 5-min readings under each label convention: interval-start labels move one
    /// reading later (the value labelled 00:10 covers 00:10–00:15), instantaneous ones half a
    /// reading (it stands for 00:07:30–00:12:30).
    #[test]
    fn time_labels_move_readings_to_their_interval_ends() {
        let r = raw(
            &[300, 600, 900, 1200],
            &[Some(100.0), Some(200.0), Some(300.0), Some(400.0)],
        );
        let at = |label: crate::metadata::TimeLabel| {
            let meta = SystemMetadata {
                time_label: label,
                ..meta()
            };
            resample(
                &r,
                &meta,
                900,
                BadValuePolicy::Error,
                &[],
                &mut LoadReport::default(),
            )
            .expect("resample")
        };
        use crate::metadata::TimeLabel::*;
        // End: 00:05..00:15 fill the interval ending 00:15 (600 Wh = 2.4 kW).
        let end = at(IntervalEnd);
        assert_eq!((end.start, end.power_kw[0]), (UnixTime(900), 2.4));
        // Start: ends 00:10, 00:15, 00:20, 00:25: the interval ending 00:15 has two of three.
        let start = at(IntervalStart);
        assert_eq!(start.start, UnixTime(900));
        assert!(start.power_kw[0].is_nan());
        assert_eq!(start.len(), 2);
        // Instant: ends 00:07:30 .. 00:22:30: 00:15 holds the first two, 00:30 the last two.
        let instant = at(Instant);
        assert_eq!((instant.start, instant.len()), (UnixTime(900), 2));
        assert!(instant.power_kw.iter().all(|p| p.is_nan()));
    }

    #[test]
    fn coarser_data_than_the_step_is_refused() {
        let r = raw(&[1800, 3600, 5400], &[Some(1.0); 3]);
        let e = resample_strict(&r, 900);
        assert!(
            matches!(
                e,
                Err(DataError::IntervalMismatch {
                    interval_minutes: 30,
                    ..
                })
            ),
            "{e:?}"
        );
    }

    #[test]
    fn impossible_energy_is_refused_or_masked() {
        // 4 kWp cannot make 3 kWh in 15 minutes (limit 2 kWh with the 2x margin).
        let r = raw(&[900, 1800], &[Some(3000.0), Some(500.0)]);
        let files = [std::path::PathBuf::from("g.parquet")];
        let e = resample(
            &r,
            &meta(),
            900,
            BadValuePolicy::Error,
            &files,
            &mut LoadReport::default(),
        );
        assert!(
            matches!(
                e,
                Err(DataError::BadValue {
                    kind: BadValueKind::AboveCapacity,
                    ..
                })
            ),
            "{e:?}"
        );
        let mut report = LoadReport::default();
        let s = resample(
            &r,
            &meta(),
            900,
            BadValuePolicy::MaskAndReport,
            &files,
            &mut report,
        )
        .expect("masked");
        assert!(s.power_kw[0].is_nan());
        assert_eq!(report.masked.values().sum::<usize>(), 1);
    }

    #[test]
    fn native_interval_is_the_most_common_spacing() {
        let t: Vec<UnixTime> = [0, 300, 600, 1500, 1800]
            .iter()
            .map(|&s| UnixTime(s))
            .collect();
        assert_eq!(native_interval(&t, 900), 300);
    }
}
