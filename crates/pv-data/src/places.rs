//! Systems binned by place, so that an example finds the systems within its context radius
//! without measuring the distance to every system of the fleet.
//!
//! The cells are `radius / 110.574 km` degrees on a side (one radius of latitude). A query looks
//! at the cells of the box around the origin that holds every place [`LatLon::distance_km`] can
//! put within the radius (that distance is equirectangular about the origin, so the box is exact
//! up to rounding, which a small margin covers), and measures only the systems in them. The
//! answer is the linear scan's exactly: the same distance function decides, on a superset of
//! the candidates (property-tested against the scan below).

use std::collections::HashMap;

use crate::inputs::LatLon;

/// Kilometres per degree of latitude and, at the equator, of longitude (as [`LatLon::offset_km`]).
const KM_PER_DEG_LAT: f64 = 110.574;
const KM_PER_DEG_LON: f64 = 111.320;

/// Places binned into square cells of latitude and longitude.
#[derive(Debug, Clone)]
pub(crate) struct PlaceIndex {
    places: Vec<LatLon>,
    radius_km: f64,
    cell_deg: f64,
    /// Indices into `places`, by cell, each list increasing.
    cells: HashMap<(i64, i64), Vec<usize>>,
}

impl PlaceIndex {
    /// Bins `places` for queries of `radius_km`.
    pub(crate) fn new(places: Vec<LatLon>, radius_km: f64) -> PlaceIndex {
        // A cell narrower than about 100 m only multiplies the cells a query looks at.
        let cell_deg = (radius_km / KM_PER_DEG_LAT).max(1e-3);
        let mut cells: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
        for (i, p) in places.iter().enumerate() {
            cells.entry(cell_of(*p, cell_deg)).or_default().push(i);
        }
        PlaceIndex {
            places,
            radius_km,
            cell_deg,
            cells,
        }
    }

    /// Every place within the radius of `origin` (`distance_km ≤ radius`), with its distance,
    /// in no particular order.
    pub(crate) fn within(&self, origin: LatLon) -> Vec<(f64, usize)> {
        let r = self.radius_km;
        let margin = 1.0 + 1e-9;
        let half_lat = r / KM_PER_DEG_LAT * margin + 1e-9;
        let half_lon =
            r / (KM_PER_DEG_LON * origin.latitude_deg.to_radians().cos().abs()) * margin + 1e-9;
        let measure = |i: usize| {
            let d = self.places[i].distance_km(origin);
            (d <= r).then_some((d, i))
        };
        let span = |centre: f64, half: f64| {
            (
                ((centre - half) / self.cell_deg).floor(),
                ((centre + half) / self.cell_deg).floor(),
            )
        };
        let (lat_lo, lat_hi) = span(origin.latitude_deg, half_lat);
        let (lon_lo, lon_hi) = span(origin.longitude_deg, half_lon);
        let box_cells = (lat_hi - lat_lo + 1.0) * (lon_hi - lon_lo + 1.0);
        // Near a pole, with a radius of half the Earth, or in a small fleet, looking up the box's
        // cells costs more than measuring every place (or the box is not finite): measure them.
        if !(box_cells.is_finite() && box_cells <= self.places.len() as f64) {
            return (0..self.places.len()).filter_map(measure).collect();
        }
        let mut found = Vec::new();
        for lat in lat_lo as i64..=lat_hi as i64 {
            for lon in lon_lo as i64..=lon_hi as i64 {
                if let Some(members) = self.cells.get(&(lat, lon)) {
                    found.extend(members.iter().filter_map(|&i| measure(i)));
                }
            }
        }
        found
    }
}

fn cell_of(p: LatLon, cell_deg: f64) -> (i64, i64) {
    (
        (p.latitude_deg / cell_deg).floor() as i64,
        (p.longitude_deg / cell_deg).floor() as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn place() -> impl Strategy<Value = LatLon> {
        // Clusters near one place (the usual fleet), anywhere on Earth, and near the poles and
        // the antimeridian.
        prop_oneof![
            (50.0..51.0f64, -1.0..1.0f64),
            (-90.0..90.0f64, -180.0..180.0f64),
            (85.0..90.0f64, 170.0..180.0f64),
        ]
        .prop_map(|(latitude_deg, longitude_deg)| LatLon {
            latitude_deg,
            longitude_deg,
        })
    }

    fn scan(places: &[LatLon], origin: LatLon, r: f64) -> Vec<(f64, usize)> {
        places
            .iter()
            .enumerate()
            .map(|(i, p)| (p.distance_km(origin), i))
            .filter(|&(d, _)| d <= r)
            .collect()
    }

    fn sorted(mut v: Vec<(f64, usize)>) -> Vec<(f64, usize)> {
        v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn the_index_finds_what_a_scan_of_every_place_finds(
            places in proptest::collection::vec(place(), 1..200),
            origin in 0usize..200,
            radius_km in prop_oneof![Just(0.0), 0.0..20.0f64, 0.0..200.0f64, Just(1e7)],
        ) {
            let origin = places[origin % places.len()];
            let index = PlaceIndex::new(places.clone(), radius_km);
            prop_assert_eq!(sorted(index.within(origin)), sorted(scan(&places, origin, radius_km)));
        }
    }

    /// Places exactly on the radius, and on cell edges, are found.
    #[test]
    fn places_on_the_radius_and_on_cell_edges_are_found() {
        let origin = LatLon {
            latitude_deg: 0.0,
            longitude_deg: 0.0,
        };
        let r = 50.0;
        let places: Vec<LatLon> = [
            (r / KM_PER_DEG_LAT, 0.0),
            (-r / KM_PER_DEG_LAT, 0.0),
            (0.0, r / KM_PER_DEG_LON),
            (0.0, -r / KM_PER_DEG_LON),
            (0.0, 0.0),
            (0.0, 2.0 * r / KM_PER_DEG_LON),
        ]
        .into_iter()
        .map(|(latitude_deg, longitude_deg)| LatLon {
            latitude_deg,
            longitude_deg,
        })
        .collect();
        let index = PlaceIndex::new(places.clone(), r);
        let found = sorted(index.within(origin));
        assert_eq!(found, sorted(scan(&places, origin, r)));
        assert_eq!(found.len(), 5, "{found:?}");
    }
}
