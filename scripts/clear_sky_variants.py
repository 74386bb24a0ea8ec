"""Smart persistence under clear-sky model variants, computed with pvlib (offline diagnostic).

Session 13, issue 13: does a better clear-sky model (monthly Linke turbidity climatology, Perez
or Hay-Davies transposition, an incidence-angle modifier) close the gap between the project's
smart persistence on PVDAQ 50 and an independent computation's? Replicates the project's rule on
the bundled data (70/15/15 split by calendar range, labels at the interval midpoint per the
metadata's time_label, the 95th-percentile clear-sky scale and the climatological index fitted
on the training block, dawn threshold 0.3 kW/kWp, 16 leads, daylight targets); its "ours" row
matches the Rust figures (validation PVDAQ 50 0.1075 vs 0.1071, SERF East 0.1513 vs 0.1513).

    pip install pvlib==0.16.1 pandas pyarrow
    python3 scripts/clear_sky_variants.py validation

Not a runtime dependency of anything; results in docs/SKILL.md.
"""
import os, sys

import numpy as np
import pandas as pd
import pvlib

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
g = pd.read_parquet(DATA + '/generation.parquet')
meta = pd.read_csv(DATA + '/metadata.csv').set_index('ss_id')
SPLIT = sys.argv[1] if len(sys.argv) > 1 else 'validation'

def clear_sky(times_mid, m, variant):
    lat, lon = m.latitude_rounded, m.longitude_rounded
    tilt, az, alt = variant.get('tilt', m.tilt), variant.get('az', m.orientation), m.altitude_m
    loc = pvlib.location.Location(lat, lon, altitude=alt)
    sp = loc.get_solarposition(times_mid)
    am_rel = pvlib.atmosphere.get_relative_airmass(sp.apparent_zenith, 'kastenyoung1989')
    am_abs = pvlib.atmosphere.get_absolute_airmass(am_rel, pvlib.atmosphere.alt2pres(alt))
    dni_extra = pvlib.irradiance.get_extra_radiation(times_mid)
    if variant.get('tl') == 'clim':
        tl = pvlib.clearsky.lookup_linke_turbidity(times_mid, lat, lon)
    else:
        tl = variant.get('tl', 3.0)
    cs = pvlib.clearsky.ineichen(sp.apparent_zenith, am_abs, tl, altitude=alt, dni_extra=dni_extra)
    model = variant.get('sky', 'isotropic')
    poa = pvlib.irradiance.get_total_irradiance(tilt, az, sp.apparent_zenith, sp.azimuth,
        cs.dni, cs.ghi, cs.dhi, dni_extra=dni_extra, airmass=am_rel, albedo=0.25, model=model)
    if variant.get('iam'):
        aoi = pvlib.irradiance.aoi(tilt, az, sp.apparent_zenith, sp.azimuth)
        iam = pvlib.iam.physical(aoi)
        out = poa.poa_direct.fillna(0) * iam + poa.poa_diffuse.fillna(0) * 0.95
    else:
        out = poa.poa_global
    out = out.fillna(0).clip(lower=0).values / 1000.0
    return out, sp.elevation.values

def prepare(ss, variant):
    """System `ss` on its 15-min grid: (grid, power kW/kWp, clear-sky POA kW/m2, sun elevation,
    training-block mask, validation cut, test cut, last label)."""
    m = meta.loc[ss]
    d = g[g.ss_id == ss].set_index('datetime_GMT').generation_Wh
    start, end = d.index.min(), d.index.max()
    grid = pd.date_range(start, end, freq='15min')
    p = d.reindex(grid).values * 4 / 1000 / m.kWp  # kW/kWp
    half = pd.Timedelta(minutes=7.5)
    mid = grid + (half if m.time_label == 'interval_start' else -half)
    mid = mid + pd.Timedelta(minutes=variant.get('shift', 0))
    cs, elev = clear_sky(pd.DatetimeIndex(mid, tz='UTC'), m, variant)
    span = end - start
    cut1, cut2 = start + 0.7 * span, start + 0.85 * span
    return grid, p, cs, elev, grid < cut1, cut1, cut2, end


def smart_persistence_errors(p, csp, elev, block, kclim, threshold=0.3):
    """Absolute errors of smart persistence over the daylight targets of `block` (a mask), leads
    1-16, from the last observation within 8 steps of t0; the climatological index where the
    clear-sky power there is under `threshold` kW/kWp (the dawn rule); `kclim` is one value or one
    per step (read at the last observation)."""
    kclim = np.broadcast_to(np.asarray(kclim, dtype=float), p.shape)
    idx = np.nonzero(block)[0]
    errs = []
    n = len(p)
    for lead in range(1, 17):
        t0 = idx[idx + lead < n]
        tgt = t0 + lead
        valid = block[tgt] & ~np.isnan(p[tgt]) & (elev[tgt] > 0)
        # last observation at or before t0 (within 8 steps of history)
        k = np.full(len(t0), np.nan)
        for back in range(0, 8):
            j = t0 - back
            fill = np.isnan(k) & (j >= 0)
            jj = np.where(fill, j, 0)
            has = fill & ~np.isnan(p[jj])
            dawn = has & (csp[jj] < threshold)
            kk = np.clip(p[jj] / np.maximum(csp[jj], 1e-9), 0, 1.5)
            k = np.where(has & ~dawn, kk, np.where(dawn, kclim[jj], k))
        k = np.where(np.isnan(k), kclim[t0], k)
        errs.append(np.abs(k * csp[tgt] - p[tgt])[valid])
    return np.concatenate(errs)


def fitted_scale(p, cs, train, threshold=0.3):
    """The clear-sky scale (95th percentile of power / clear sky) and the climatological index
    (energy / clear-sky energy), both on the training block."""
    ok = train & (cs >= 0.3) & ~np.isnan(p)
    scale = np.nanpercentile(p[ok] / cs[ok], 95)
    csp = cs * scale
    okc = train & (csp >= threshold) & ~np.isnan(p)
    return scale, p[okc].sum() / csp[okc].sum()


def block(grid, train, cut1, cut2, end, split):
    if split == 'train':
        return train
    lo, hi = (cut1, cut2) if split == 'validation' else (cut2, end + pd.Timedelta(minutes=1))
    return (grid >= lo) & (grid < hi)


def run(ss, variant, split=None, threshold=0.3):
    grid, p, cs, elev, train, cut1, cut2, end = prepare(ss, variant)
    scale, kclim = fitted_scale(p, cs, train, threshold)
    e = smart_persistence_errors(p, cs * scale, elev, block(grid, train, cut1, cut2, end, split or SPLIT),
                                 kclim, threshold)
    return e.mean(), len(e), scale, kclim


if __name__ == "__main__":
    variants = {
        'ours (TL 3, isotropic)': {},
        'TL climatology': {'tl': 'clim'},
        'perez': {'sky': 'perez'},
        'haydavies': {'sky': 'haydavies'},
        'TL clim + perez': {'tl': 'clim', 'sky': 'perez'},
        'TL clim + perez + iam': {'tl': 'clim', 'sky': 'perez', 'iam': 1},
        'iam': {'iam': 1},
    }
    for ss in [50, 1001]:
        for name, v in variants.items():
            r = run(ss, v)
            print(f'{SPLIT} {ss} {name:28s} nMAE {r[0]:.4f} pairs {r[1]} scale {r[2]:.3f} kclim {r[3]:.3f}', flush=True)
