//! Solar geometry and clear-sky irradiance, deterministic functions of place and time (so they
//! may be used for future times without leaking observations).
//!
//! - Sun position: the NOAA solar calculator equations (after Meeus), about 0.01° from NREL's SPA
//!   for 1900–2100, with the NOAA atmospheric-refraction correction for the apparent elevation.
//! - Clear sky: Ineichen–Perez with a fixed Linke turbidity, Kasten–Young air mass and Spencer's
//!   extraterrestrial irradiance, the same formulas as pvlib's `ineichen`.
//! - Plane of array: isotropic-sky transposition with ground reflection (albedo 0.25 by default).
//!
//! Tested against golden values computed with pvlib (`tests/golden/solar.py`).

use crate::time::UnixTime;

/// Where the sun is, seen from one place at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SunPosition {
    /// Elevation above the horizon without refraction, degrees.
    pub elevation_deg: f64,
    /// Elevation corrected for atmospheric refraction, degrees.
    pub apparent_elevation_deg: f64,
    /// Azimuth, degrees clockwise from north.
    pub azimuth_deg: f64,
}

impl SunPosition {
    /// Apparent zenith angle, degrees.
    pub fn apparent_zenith_deg(&self) -> f64 {
        90.0 - self.apparent_elevation_deg
    }
}

/// The sun's position at `time` seen from (`latitude_deg`, `longitude_deg`).
pub fn sun_position(time: UnixTime, latitude_deg: f64, longitude_deg: f64) -> SunPosition {
    let julian_day = time.0 as f64 / 86_400.0 + 2_440_587.5;
    let jc = (julian_day - 2_451_545.0) / 36_525.0;

    let mean_longitude = (280.46646 + jc * (36_000.769_83 + jc * 0.000_303_2)).rem_euclid(360.0);
    let mean_anomaly = 357.52911 + jc * (35_999.050_29 - 0.000_153_7 * jc);
    let eccentricity = 0.016_708_634 - jc * (0.000_042_037 + 0.000_000_126_7 * jc);
    let m = mean_anomaly.to_radians();
    let centre = m.sin() * (1.914_602 - jc * (0.004_817 + 0.000_014 * jc))
        + (2.0 * m).sin() * (0.019_993 - 0.000_101 * jc)
        + (3.0 * m).sin() * 0.000_289;
    let true_longitude = mean_longitude + centre;
    let omega = (125.04 - 1_934.136 * jc).to_radians();
    let apparent_longitude = true_longitude - 0.005_69 - 0.004_78 * omega.sin();
    let mean_obliquity =
        23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.000_59 - jc * 0.001_813))) / 60.0) / 60.0;
    let obliquity = (mean_obliquity + 0.002_56 * omega.cos()).to_radians();
    let declination = (obliquity.sin() * apparent_longitude.to_radians().sin()).asin();

    let y = (obliquity / 2.0).tan().powi(2);
    let l0 = mean_longitude.to_radians();
    let equation_of_time_min = 4.0
        * (y * (2.0 * l0).sin() - 2.0 * eccentricity * m.sin()
            + 4.0 * eccentricity * y * m.sin() * (2.0 * l0).cos()
            - 0.5 * y * y * (4.0 * l0).sin()
            - 1.25 * eccentricity * eccentricity * (2.0 * m).sin())
        .to_degrees();

    let minutes_of_day = time.0.rem_euclid(86_400) as f64 / 60.0;
    let true_solar_minutes =
        (minutes_of_day + equation_of_time_min + 4.0 * longitude_deg).rem_euclid(1_440.0);
    let hour_angle = (true_solar_minutes / 4.0 - 180.0).to_radians();

    let latitude = latitude_deg.to_radians();
    let cos_zenith = (latitude.sin() * declination.sin()
        + latitude.cos() * declination.cos() * hour_angle.cos())
    .clamp(-1.0, 1.0);
    let elevation_deg = 90.0 - cos_zenith.acos().to_degrees();
    let azimuth_deg = (hour_angle
        .sin()
        .atan2(hour_angle.cos() * latitude.sin() - declination.tan() * latitude.cos())
        .to_degrees()
        + 180.0)
        .rem_euclid(360.0);
    SunPosition {
        elevation_deg,
        apparent_elevation_deg: elevation_deg + refraction_deg(elevation_deg),
        azimuth_deg,
    }
}

/// NOAA's approximation of atmospheric refraction at a true elevation, degrees.
fn refraction_deg(elevation_deg: f64) -> f64 {
    let e = elevation_deg;
    let arcseconds = if e > 85.0 {
        0.0
    } else if e > 5.0 {
        let t = e.to_radians().tan();
        58.1 / t - 0.07 / t.powi(3) + 0.000_086 / t.powi(5)
    } else if e > -0.575 {
        1_735.0 + e * (-518.2 + e * (103.4 + e * (-12.79 + e * 0.711)))
    } else {
        -20.772 / e.to_radians().tan()
    };
    arcseconds / 3_600.0
}

/// Extraterrestrial normal irradiance on a day of the year (Spencer 1971), W/m².
pub fn extraterrestrial_irradiance(day_of_year: u32) -> f64 {
    let b = 2.0 * std::f64::consts::PI * (day_of_year as f64 - 1.0) / 365.0;
    1_366.1
        * (1.000_11
            + 0.034_221 * b.cos()
            + 0.001_28 * b.sin()
            + 0.000_719 * (2.0 * b).cos()
            + 0.000_077 * (2.0 * b).sin())
}

/// Relative optical air mass (Kasten & Young 1989); `None` with the sun below the horizon.
pub fn relative_airmass(zenith_deg: f64) -> Option<f64> {
    if zenith_deg > 90.0 {
        return None;
    }
    Some(1.0 / (zenith_deg.to_radians().cos() + 0.505_72 * (96.079_95 - zenith_deg).powf(-1.6364)))
}

/// Standard-atmosphere pressure at an altitude, Pa.
pub fn pressure_at_altitude(altitude_m: f64) -> f64 {
    100.0 * ((44_331.514 - altitude_m) / 11_880.516).powf(1.0 / 0.190_263_2)
}

/// Clear-sky irradiance components, W/m².
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClearSky {
    /// Global horizontal irradiance.
    pub ghi: f64,
    /// Direct normal irradiance.
    pub dni: f64,
    /// Diffuse horizontal irradiance.
    pub dhi: f64,
}

/// Ineichen–Perez clear-sky model (Ineichen & Perez 2002) without the Perez enhancement factor,
/// as in pvlib. `apparent_zenith_deg` should include refraction.
pub fn ineichen(
    apparent_zenith_deg: f64,
    altitude_m: f64,
    linke_turbidity: f64,
    day_of_year: u32,
) -> ClearSky {
    let Some(airmass) = relative_airmass(apparent_zenith_deg) else {
        return ClearSky::default();
    };
    let airmass = airmass * pressure_at_altitude(altitude_m) / 101_325.0;
    let tl = linke_turbidity;
    let dni_extra = extraterrestrial_irradiance(day_of_year);
    let cos_zenith = apparent_zenith_deg.to_radians().cos().max(0.0);
    let fh1 = (-altitude_m / 8_000.0).exp();
    let fh2 = (-altitude_m / 1_250.0).exp();
    let cg1 = 5.09e-5 * altitude_m + 0.868;
    let cg2 = 3.92e-5 * altitude_m + 0.0387;
    let ghi =
        cg1 * dni_extra * cos_zenith * (-cg2 * airmass * (fh1 + fh2 * (tl - 1.0))).exp().max(0.0);
    let b = 0.664 + 0.163 / fh1;
    let dni_beam = dni_extra * (b * (-0.09 * airmass * (tl - 1.0)).exp()).max(0.0);
    let dni_limit = if cos_zenith > 0.0 {
        ghi * ((1.0 - (0.1 - 0.2 * (-tl).exp()) / (0.1 + 0.882 / fh1)) / cos_zenith)
            .clamp(0.0, 1e20)
    } else {
        0.0
    };
    let dni = dni_beam.min(dni_limit);
    ClearSky {
        ghi,
        dni,
        dhi: ghi - dni * cos_zenith,
    }
}

/// Cosine of the angle of incidence of the sun's rays on a tilted plane.
pub fn cos_angle_of_incidence(
    tilt_deg: f64,
    orientation_deg: f64,
    zenith_deg: f64,
    sun_azimuth_deg: f64,
) -> f64 {
    let (tilt, zenith) = (tilt_deg.to_radians(), zenith_deg.to_radians());
    tilt.cos() * zenith.cos()
        + tilt.sin() * zenith.sin() * (sun_azimuth_deg - orientation_deg).to_radians().cos()
}

/// Plane-of-array irradiance by isotropic-sky transposition (Liu & Jordan), W/m².
pub fn plane_of_array(
    sky: ClearSky,
    tilt_deg: f64,
    orientation_deg: f64,
    zenith_deg: f64,
    sun_azimuth_deg: f64,
    albedo: f64,
) -> f64 {
    let cos_aoi = cos_angle_of_incidence(tilt_deg, orientation_deg, zenith_deg, sun_azimuth_deg);
    let direct = (sky.dni * cos_aoi).max(0.0);
    let cos_tilt = tilt_deg.to_radians().cos();
    let sky_diffuse = sky.dhi * (1.0 + cos_tilt) / 2.0;
    let ground = sky.ghi * albedo * (1.0 - cos_tilt) / 2.0;
    direct + sky_diffuse + ground
}

/// Settings for the clear-sky model; defaults suit mid-latitude sites without local data.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClearSkyConfig {
    /// Linke turbidity (2 very clean, 3 typical rural, 4–5 hazy or urban).
    pub linke_turbidity: f64,
    /// Site altitude above sea level, metres, for systems whose metadata give none (column
    /// `altitude_m`).
    pub altitude_m: f64,
    /// Ground reflectance for the transposition.
    pub albedo: f64,
}

impl Default for ClearSkyConfig {
    fn default() -> Self {
        ClearSkyConfig {
            linke_turbidity: 3.0,
            altitude_m: 0.0,
            albedo: 0.25,
        }
    }
}

/// Geometry and clear-sky power of one system at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolarState {
    /// Where the sun is.
    pub sun: SunPosition,
    /// Clear-sky plane-of-array irradiance, W/m².
    pub clear_sky_poa: f64,
    /// Clear-sky global horizontal irradiance, W/m².
    pub clear_sky_ghi: f64,
}

/// Sun position and clear-sky irradiance for a system with the given panel geometry.
pub fn solar_state(
    time: UnixTime,
    latitude_deg: f64,
    longitude_deg: f64,
    tilt_deg: f64,
    orientation_deg: f64,
    config: &ClearSkyConfig,
) -> SolarState {
    let sun = sun_position(time, latitude_deg, longitude_deg);
    let zenith = sun.apparent_zenith_deg();
    let sky = ineichen(
        zenith,
        config.altitude_m,
        config.linke_turbidity,
        time.day_of_year(),
    );
    let clear_sky_poa = plane_of_array(
        sky,
        tilt_deg,
        orientation_deg,
        zenith,
        sun.azimuth_deg,
        config.albedo,
    );
    SolarState {
        sun,
        clear_sky_poa,
        clear_sky_ghi: sky.ghi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_is_high_at_equinox_noon_on_the_equator() {
        let t = UnixTime::parse("2021-03-20T12:07:00Z").expect("time");
        let sun = sun_position(t, 0.0, 0.0);
        assert!(sun.elevation_deg > 89.0, "{sun:?}");
    }

    #[test]
    fn night_has_no_clear_sky() {
        let sky = ineichen(120.0, 0.0, 3.0, 100);
        assert_eq!(sky, ClearSky::default());
    }
}
