"""Golden values for pv-data's solar module, computed with pvlib (offline; output committed).

    python3 -m pip install pvlib==0.11.2 pandas==2.2.3 numpy==1.26.4
    python3 crates/pv-data/tests/golden/solar.py > crates/pv-data/tests/golden/solar.json
"""
import json

import numpy as np
import pandas as pd
import pvlib

rng = np.random.default_rng(20261129)
cases = []
sites = [(39.7406, -105.1775), (52.2, -3.3), (53.7, -2.7), (-33.9, 151.2), (0.0, 0.0), (64.1, -21.9)]
for lat, lon in sites:
    # Random instants across 1990-2040, plus a spread over one day so every hour angle is covered.
    seconds = rng.integers(631152000, 2240611200, size=12)
    day = pd.Timestamp("2016-06-21", tz="UTC").value // 10**9 + np.arange(0, 86400, 7200)
    for s in np.concatenate([seconds, day]):
        t = pd.DatetimeIndex([pd.Timestamp(int(s), unit="s", tz="UTC")])
        sp = pvlib.solarposition.get_solarposition(t, lat, lon, method="nrel_numpy")
        tilt = float(rng.uniform(0, 60))
        orientation = float(rng.uniform(90, 270))
        altitude = float(rng.choice([0.0, 150.0, 1800.0]))
        zen = float(sp["apparent_zenith"].iloc[0])
        am_rel = pvlib.atmosphere.get_relative_airmass(zen, model="kastenyoung1989")
        am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pvlib.atmosphere.alt2pres(altitude))
        dni_extra = float(pvlib.irradiance.get_extra_radiation(t, method="spencer").iloc[0])
        cs = pvlib.clearsky.ineichen(zen, am_abs, 3.0, altitude=altitude, dni_extra=dni_extra)
        ghi, dni, dhi = (float(np.nan_to_num(cs[k])) for k in ("ghi", "dni", "dhi"))
        poa = pvlib.irradiance.get_total_irradiance(
            tilt, orientation, zen, float(sp["azimuth"].iloc[0]), dni, ghi, dhi, albedo=0.25, model="isotropic"
        )["poa_global"]
        cases.append(dict(
            unix_s=int(s), latitude=lat, longitude=lon, tilt=tilt, orientation=orientation, altitude=altitude,
            day_of_year=int(t.dayofyear[0]),
            elevation=float(sp["elevation"].iloc[0]), apparent_elevation=float(sp["apparent_elevation"].iloc[0]),
            azimuth=float(sp["azimuth"].iloc[0]), apparent_zenith=zen, dni_extra=dni_extra,
            ghi=ghi, dni=dni, dhi=dhi, poa_global=float(np.nan_to_num(poa)),
        ))
print(json.dumps({"generator": "pvlib " + pvlib.__version__, "linke_turbidity": 3.0, "albedo": 0.25,
                  "cases": cases}, indent=1))
