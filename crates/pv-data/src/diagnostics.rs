//! Checks of a dataset against physics and the split rule, for `data inspect` and the trainer:
//! how much observed daylight each system's train / validation / test block holds, and which
//! time shift best aligns its measured power with its clear-sky power (a label convention or
//! clock error shows up as a shift of tens of minutes).

use crate::example::ExampleConfig;
use crate::example::solar_of;
use crate::series::PvSeries;
use crate::split::{Split, block};
use crate::time::UnixTime;

/// Observed daylight steps of one system's block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BlockCoverage {
    /// Which block.
    pub split: Split,
    /// Grid steps in the block (0 when the block is empty).
    pub steps: usize,
    /// Steps with the sun up (apparent elevation above 0 at the interval midpoint).
    pub daylight_steps: usize,
    /// Daylight steps with an observed value.
    pub observed_daylight_steps: usize,
}

impl BlockCoverage {
    /// Whether the block holds (almost) no observed daylight, as when a long gap in the data
    /// swallows it: fewer than 24 observed daylight steps, or under 10 % of its daylight steps.
    pub fn is_starved(&self) -> bool {
        self.observed_daylight_steps < 24
            || (self.observed_daylight_steps as f64) < 0.1 * self.daylight_steps as f64
    }
}

/// Coverage of each block of `series` under `config`'s split.
pub fn block_coverage(series: &PvSeries, config: &ExampleConfig) -> Vec<BlockCoverage> {
    Split::ALL
        .into_iter()
        .map(|split| {
            let mut c = BlockCoverage {
                split,
                steps: 0,
                daylight_steps: 0,
                observed_daylight_steps: 0,
            };
            if let Some(b) = block(series, split, &config.split, config.example_steps()) {
                let mut t = b.first.0;
                while t <= b.last.0 {
                    c.steps += 1;
                    if sun_elevation_deg(series, UnixTime(t)) > 0.0 {
                        c.daylight_steps += 1;
                        c.observed_daylight_steps +=
                            series.normalised_at(UnixTime(t)).is_some() as usize;
                    }
                    t += series.step_s;
                }
            }
            c
        })
        .collect()
}

/// Apparent sun elevation at the midpoint of the interval ending at `t`.
fn sun_elevation_deg(series: &PvSeries, t: UnixTime) -> f64 {
    let m = &series.meta;
    let mid = UnixTime(t.0 - series.step_s / 2);
    crate::solar::sun_position(mid, m.latitude_deg, m.longitude_deg).apparent_elevation_deg
}

/// The time shift that best aligns measured power with clear-sky power on a training block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LabelOffset {
    /// Minutes to add to each interval's midpoint so that clear-sky power there correlates best
    /// with the measured value (positive: the values describe later times than their labels
    /// say, as when labels mark interval starts instead of ends).
    pub minutes: f64,
    /// Fit of power to clear-sky power at the best shift (see `daily_fit`: 1 is perfect).
    pub correlation: f64,
    /// The same without a shift.
    pub correlation_unshifted: f64,
}

impl LabelOffset {
    /// Shifts of 10 minutes or more are flagged (every sun feature would be that far off) when
    /// the fit is good enough to be evidence (at least 0.9: sparse or heavily clipped data, such
    /// as the UK fixtures' with dim values dropped, fit poorly at any shift).
    pub fn is_suspect(&self) -> bool {
        self.minutes.abs() >= 10.0 && self.correlation >= 0.9
    }
}

/// The clearest days of `series`' training block: local solar days with at least 80 % of their
/// daylight steps observed, ranked by observed energy over clear-sky energy (with the metadata's
/// panel geometry); the top 10 %, at least 5 and at most 60 days. Fits of timing and geometry
/// use these: on cloudy days power follows the clouds, not the sun's path, and drowns the signal.
fn clear_days(series: &PvSeries, config: &ExampleConfig) -> std::collections::BTreeSet<i64> {
    let Some(b) = block(series, Split::Train, &config.split, config.example_steps()) else {
        return Default::default();
    };
    // Per day: (daylight steps, observed, observed energy, clear-sky energy of observed steps).
    let mut days: std::collections::BTreeMap<i64, (usize, usize, f64, f64)> = Default::default();
    let mut t = b.first.0;
    while t <= b.last.0 {
        let state = solar_of(series, UnixTime(t - series.step_s / 2), &config.clear_sky);
        if state.sun.apparent_elevation_deg > 0.0 {
            let d = days.entry(local_day(series, t)).or_default();
            d.0 += 1;
            if let Some(p) = series.normalised_at(UnixTime(t)) {
                d.1 += 1;
                d.2 += p as f64;
                d.3 += state.clear_sky_poa / 1000.0;
            }
        }
        t += series.step_s;
    }
    let mut ranked: Vec<(f64, i64)> = days
        .into_iter()
        .filter(|(_, d)| d.0 > 0 && d.1 * 5 >= d.0 * 4 && d.3 > 0.0)
        .map(|(day, d)| (d.2 / d.3, day))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let keep = (ranked.len() / 10).clamp(5, 60).min(ranked.len());
    ranked[..keep].iter().map(|&(_, day)| day).collect()
}

/// How well clear-sky power explains measured power on clear days, each day with its own scale
/// (on a clear day the clear-sky index should be flat; seasons, clipping and temperature change
/// only its level): the square root of Σ_days (Σ p·c)² / Σ c² over Σ p², 1 for a perfect match.
/// `points` are (day, power, clear sky), ordered by day.
fn daily_fit(points: impl Iterator<Item = (i64, f64, f64)>) -> f64 {
    let (mut explained, mut total) = (0.0, 0.0);
    let (mut day, mut pc, mut cc) = (None, 0.0, 0.0);
    for (d, p, c) in points {
        if day != Some(d) {
            if cc > 0.0 {
                explained += pc * pc / cc;
            }
            (day, pc, cc) = (Some(d), 0.0, 0.0);
        }
        pc += p * c;
        cc += c * c;
        total += p * p;
    }
    if cc > 0.0 {
        explained += pc * pc / cc;
    }
    if total > 0.0 {
        (explained / total).sqrt()
    } else {
        f64::NAN
    }
}

/// The observed values of the training block's clearest days ([`clear_days`]) with the sun above
/// −15° (night far from any shift's reach adds nothing but agreement on zero): (normalised
/// power, interval end), in time order. `None` when the block is empty.
fn clear_day_points(series: &PvSeries, config: &ExampleConfig) -> Option<Vec<(f64, i64)>> {
    let b = block(series, Split::Train, &config.split, config.example_steps())?;
    let clear = clear_days(series, config);
    let mut points = Vec::new();
    let mut t = b.first.0;
    while t <= b.last.0 {
        if let Some(p) = series.normalised_at(UnixTime(t))
            && clear.contains(&local_day(series, t))
            && sun_elevation_deg(series, UnixTime(t)) > -15.0
        {
            points.push((p as f64, t));
        }
        t += series.step_s;
    }
    Some(points)
}

fn local_day(series: &PvSeries, t: i64) -> i64 {
    UnixTime(t).local_solar_day(series.meta.longitude_deg)
}

/// Shifts tried, minutes: −60 to +60 in steps of 2.5.
const SHIFTS: std::ops::RangeInclusive<i32> = -24..=24;
const SHIFT_STEP_MIN: f64 = 2.5;

/// Fits the label offset of `series` on its training block: the shift (−60 … +60 min, 2.5-min
/// steps) at which plane-of-array clear-sky irradiance at the shifted interval midpoint best
/// explains observed power, each day with its own scale, over the observed steps with the sun above −15°
/// of the block's clearest days (thinned evenly to at most 20,000, for speed). `None` without enough observed daylight.
pub fn label_offset(series: &PvSeries, config: &ExampleConfig) -> Option<LabelOffset> {
    let points: Vec<(f64, UnixTime)> = clear_day_points(series, config)?
        .into_iter()
        .map(|(p, t)| (p, UnixTime(t - series.step_s / 2)))
        .collect();
    if points.len() < 50 {
        return None;
    }
    // At most ~20,000 points: plenty for a correlation, and fast on years of data.
    let stride = points.len().div_ceil(20_000);
    let points: Vec<(f64, UnixTime)> = points.into_iter().step_by(stride).collect();
    let correlation_at = |shift_min: f64| {
        let shift_s = (shift_min * 60.0) as i64;
        daily_fit(points.iter().map(|&(p, mid)| {
            let c = solar_of(series, UnixTime(mid.0 + shift_s), &config.clear_sky).clear_sky_poa;
            (local_day(series, mid.0), p, c / 1000.0)
        }))
    };
    let (minutes, correlation) = SHIFTS
        .map(|k| k as f64 * SHIFT_STEP_MIN)
        .map(|s| (s, correlation_at(s)))
        .fold((0.0, f64::NEG_INFINITY), |best, (s, r)| {
            if r > best.1 { (s, r) } else { best }
        });
    Some(LabelOffset {
        minutes,
        correlation,
        correlation_unshifted: correlation_at(0.0),
    })
}

/// Panel geometry and label offset fitted together on the training block ([`geometry_fit`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GeometryFit {
    /// Fitted tilt from horizontal, degrees (0 to [`MAX_TILT_DEG`]).
    pub tilt_deg: f64,
    /// Fitted orientation (azimuth the panels face), degrees clockwise from north.
    pub orientation_deg: f64,
    /// Fitted shift, minutes, as in [`LabelOffset::minutes`].
    pub minutes: f64,
    /// Fit of power to clear-sky power at the fitted values (see [`label_offset`]: 1 is perfect).
    pub fit: f64,
    /// The same at the metadata's geometry and no shift.
    pub fit_at_metadata: f64,
    /// Share of [`BOOTSTRAP_DRAWS`] refits on clear days drawn with replacement that land within
    /// 5° of tilt, 10° of orientation and 2.5 min of shift of the fitted values: how firmly the
    /// data pin them down.
    pub stability: f64,
    /// The best tilt or shift lies on the edge of the searched range.
    pub at_edge: bool,
}

impl GeometryFit {
    /// Whether the data pin the fitted values down: not at an edge of the search, and at least
    /// 80 % of the bootstrap refits agree with them.
    pub fn is_identified(&self) -> bool {
        !self.at_edge && self.stability >= 0.8
    }

    /// Whether the fit is evidence that the metadata are off: identified, and a tilt 10° or an
    /// orientation 20° (of a tilted panel) away from theirs.
    pub fn disagrees_with(&self, tilt_deg: f64, orientation_deg: f64) -> bool {
        let turn = (self.orientation_deg - orientation_deg).rem_euclid(360.0);
        let turn = turn.min(360.0 - turn);
        self.is_identified()
            && ((self.tilt_deg - tilt_deg).abs() >= 10.0 || (turn >= 20.0 && self.tilt_deg >= 5.0))
    }
}

/// The steepest tilt searched, degrees.
pub const MAX_TILT_DEG: f64 = 70.0;
const TILT_STEP_DEG: f64 = 5.0;
const ORIENTATION_STEP_DEG: f64 = 10.0;
/// Refits on resampled clear days behind [`GeometryFit::stability`].
pub const BOOTSTRAP_DRAWS: usize = 200;

/// One observed value with what every geometry needs at one shifted time: the sun's direction and
/// the clear-sky irradiance components.
#[derive(Clone, Copy)]
struct SkyAt {
    power: f64,
    cos_zenith: f64,
    sin_zenith: f64,
    cos_azimuth: f64,
    sin_azimuth: f64,
    dni: f64,
    dhi: f64,
    ghi: f64,
}

/// Fits tilt, orientation and the label offset together on `series`' training block, with the
/// clear-sky model that runs at training and forecast time (the system's altitude, the run's
/// turbidity and albedo): the grid point (tilt 0–70° by 5°, orientation by 10°, shift −60 to +60
/// min by 2.5 min) at which plane-of-array clear-sky irradiance best explains observed power on
/// the block's clearest days, each day with its own scale, as [`label_offset`] measures it.
/// Values within 3 % of the largest are left out: an inverter clipping at its limit flattens the
/// midday peak, which a steep or turned plane would otherwise be fitted to mimic. At most 8,000
/// points, thinned evenly. `None` without enough observed daylight.
///
/// With a scale per day the fit reads the shape of each clear day: where the peak lies (shift
/// and orientation, told apart by how the sun's path changes through the year) and how broad it
/// is (tilt). That landscape is flat: far-apart geometries can fit within a few thousandths of
/// each other, less than clouds, shading and temperature move real data. So the fit is repeated
/// on [`BOOTSTRAP_DRAWS`] resamples of the clear days (seeded, so the answer is reproducible),
/// and [`GeometryFit::stability`] says how often it lands on the same values.
pub fn geometry_fit(series: &PvSeries, config: &ExampleConfig) -> Option<GeometryFit> {
    let m = &series.meta;
    let sky_config = crate::solar::ClearSkyConfig {
        altitude_m: m.altitude_m.unwrap_or(config.clear_sky.altitude_m),
        ..config.clear_sky
    };
    // (power, interval midpoint, day)
    let mut points: Vec<(f64, i64, i64)> = clear_day_points(series, config)?
        .into_iter()
        .map(|(p, t)| (p, t - series.step_s / 2, local_day(series, t)))
        .collect();
    let peak = points.iter().map(|p| p.0).fold(0.0, f64::max);
    points.retain(|p| p.0 < 0.97 * peak);
    if points.len() < 50 {
        return None;
    }
    let stride = points.len().div_ceil(8_000);
    let points: Vec<(f64, i64, i64)> = points.into_iter().step_by(stride).collect();
    // Each day's points, as ranges (the points are in time order).
    let mut days: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match days.last_mut() {
            Some(r) if points[r.start].2 == p.2 => r.end = i + 1,
            _ => days.push(i..i + 1),
        }
    }
    let power_sq: Vec<f64> = days
        .iter()
        .map(|d| points[d.clone()].iter().map(|p| p.0 * p.0).sum())
        .collect();
    let geometries: Vec<(f64, f64)> = (0..=(MAX_TILT_DEG / TILT_STEP_DEG) as usize)
        .flat_map(|i| {
            let tilt = i as f64 * TILT_STEP_DEG;
            // A flat plane faces nowhere: one orientation is enough.
            let turns = if i == 0 {
                1
            } else {
                (360.0 / ORIENTATION_STEP_DEG) as usize
            };
            (0..turns).map(move |j| (tilt, j as f64 * ORIENTATION_STEP_DEG))
        })
        .chain(std::iter::once((m.tilt_deg, m.orientation_deg)))
        .collect();
    let shifts: Vec<f64> = SHIFTS.map(|k| k as f64 * SHIFT_STEP_MIN).collect();
    // What each day explains, per (shift, geometry): explained[(s · G + g) · D + d].
    let (n_g, n_d) = (geometries.len(), days.len());
    let mut explained = Vec::with_capacity(shifts.len() * n_g * n_d);
    let planes = Planes::new(&geometries, sky_config.albedo);
    for &shift in &shifts {
        let shift_s = (shift * 60.0) as i64;
        let sky: Vec<SkyAt> = points
            .iter()
            .map(|&(power, mid, _)| sky_at(power, UnixTime(mid + shift_s), m, &sky_config))
            .collect();
        explained_per_day(&sky, &days, &planes, &mut explained);
    }
    // Day weights: the fit itself (every day once), then the refits on the clear days drawn
    // with replacement (SplitMix64, fixed seed); `weights[d · W + w]`, day-major so that one
    // pass over `explained` serves every weighting.
    let n_w = 1 + BOOTSTRAP_DRAWS;
    let mut weights = vec![0.0; n_d * n_w];
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for d in 0..n_d {
        weights[d * n_w] = 1.0;
    }
    for w in 1..n_w {
        for _ in 0..n_d {
            weights[(next() % n_d as u64) as usize * n_w + w] += 1.0;
        }
    }
    // The best grid point of each weighting (the metadata's geometry, the last, is not a
    // candidate): (shift, geometry, weighted explained power), the first of equals.
    let mut top = vec![(0, 0, f64::NEG_INFINITY); n_w];
    let mut sums = vec![0.0; n_w];
    for s in 0..shifts.len() {
        for g in 0..n_g - 1 {
            let e = &explained[(s * n_g + g) * n_d..][..n_d];
            sums.fill(0.0);
            for (d, &e) in e.iter().enumerate() {
                for (sum, &w) in sums.iter_mut().zip(&weights[d * n_w..][..n_w]) {
                    *sum += e * w;
                }
            }
            for (top, &v) in top.iter_mut().zip(&sums) {
                if v > top.2 {
                    *top = (s, g, v);
                }
            }
        }
    }
    let total: f64 = power_sq.iter().sum();
    let (s, g, fit) = (top[0].0, top[0].1, (top[0].2 / total).sqrt());
    let (tilt_deg, orientation_deg) = geometries[g];
    let zero = shifts.iter().position(|&x| x == 0.0)?;
    let at_metadata: f64 = explained[(zero * n_g + n_g - 1) * n_d..][..n_d]
        .iter()
        .sum();
    let mut agree = 0;
    for &(bs, bg, _) in &top[1..] {
        let (bt, bo) = geometries[bg];
        let turn = (bo - orientation_deg).rem_euclid(360.0);
        let turn = turn.min(360.0 - turn);
        agree += ((bt - tilt_deg).abs() <= TILT_STEP_DEG
            && (turn <= ORIENTATION_STEP_DEG || bt.max(tilt_deg) < TILT_STEP_DEG)
            && (shifts[bs] - shifts[s]).abs() <= SHIFT_STEP_MIN) as usize;
    }
    Some(GeometryFit {
        tilt_deg,
        orientation_deg,
        minutes: shifts[s],
        fit,
        fit_at_metadata: (at_metadata / total).sqrt(),
        stability: agree as f64 / BOOTSTRAP_DRAWS as f64,
        at_edge: tilt_deg >= MAX_TILT_DEG || s == 0 || s == shifts.len() - 1,
    })
}

/// The sun's direction and the clear-sky irradiance at `time` for system `m`.
fn sky_at(
    power: f64,
    time: UnixTime,
    m: &crate::SystemMetadata,
    config: &crate::solar::ClearSkyConfig,
) -> SkyAt {
    let sun = crate::solar::sun_position(time, m.latitude_deg, m.longitude_deg);
    let zenith = sun.apparent_zenith_deg();
    let s = crate::solar::ineichen(
        zenith,
        config.altitude_m,
        config.linke_turbidity,
        time.day_of_year(),
    );
    let (z, a) = (zenith.to_radians(), sun.azimuth_deg.to_radians());
    SkyAt {
        power,
        cos_zenith: z.cos(),
        sin_zenith: z.sin(),
        cos_azimuth: a.cos(),
        sin_azimuth: a.sin(),
        dni: s.dni,
        dhi: s.dhi,
        ghi: s.ghi,
    }
}

/// The planes of the geometry grid, as what [`explained_per_day`] needs of each: columns, so that
/// one point's clear-sky power on every plane is one vectorisable loop.
struct Planes {
    cos_tilt: Vec<f64>,
    sin_tilt: Vec<f64>,
    cos_orientation: Vec<f64>,
    sin_orientation: Vec<f64>,
    /// Sky-diffuse and ground-reflected view factors (isotropic sky).
    diffuse: Vec<f64>,
    ground: Vec<f64>,
}

impl Planes {
    fn new(geometries: &[(f64, f64)], albedo: f64) -> Planes {
        let column = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
            geometries
                .iter()
                .map(|&(t, o)| f(t.to_radians(), o.to_radians()))
                .collect()
        };
        Planes {
            cos_tilt: column(&|t, _| t.cos()),
            sin_tilt: column(&|t, _| t.sin()),
            cos_orientation: column(&|_, o| o.cos()),
            sin_orientation: column(&|_, o| o.sin()),
            diffuse: column(&|t, _| (1.0 + t.cos()) / 2.0),
            ground: column(&|t, _| albedo * (1.0 - t.cos()) / 2.0),
        }
    }
}

/// Appends, per plane and per day, what clear-sky power on the plane explains of the day's
/// power, (Σ p·c)² / Σ c² (the terms of [`daily_fit`]), in `out[g · D + d]` order after what
/// `out` holds: isotropic-sky transposition as [`crate::solar::plane_of_array`], from the
/// precomputed sun directions and irradiances. Each plane's sums run over the day's points in
/// time order, as one plane at a time would; the planes are the inner loop.
fn explained_per_day(
    sky: &[SkyAt],
    days: &[std::ops::Range<usize>],
    planes: &Planes,
    out: &mut Vec<f64>,
) {
    let (n_g, n_d) = (planes.cos_tilt.len(), days.len());
    let base = out.len();
    out.resize(base + n_g * n_d, 0.0);
    let (mut pc, mut cc) = (vec![0.0; n_g], vec![0.0; n_g]);
    for (d, day) in days.iter().enumerate() {
        pc.fill(0.0);
        cc.fill(0.0);
        for s in &sky[day.clone()] {
            let (ct, st, co, so, diffuse, ground) = (
                &planes.cos_tilt[..n_g],
                &planes.sin_tilt[..n_g],
                &planes.cos_orientation[..n_g],
                &planes.sin_orientation[..n_g],
                &planes.diffuse[..n_g],
                &planes.ground[..n_g],
            );
            let (pc, cc) = (&mut pc[..n_g], &mut cc[..n_g]);
            for g in 0..n_g {
                let cos_aoi = ct[g] * s.cos_zenith
                    + st[g] * s.sin_zenith * (s.cos_azimuth * co[g] + s.sin_azimuth * so[g]);
                let c =
                    ((s.dni * cos_aoi).max(0.0) + s.dhi * diffuse[g] + s.ghi * ground[g]) / 1000.0;
                pc[g] += s.power * c;
                cc[g] += c * c;
            }
        }
        for g in 0..n_g {
            out[base + g * n_d + d] = if cc[g] > 0.0 {
                pc[g] * pc[g] / cc[g]
            } else {
                0.0
            };
        }
    }
}
