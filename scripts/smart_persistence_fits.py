"""What else could bring smart persistence on PVDAQ 50 nearer the independent 0.122 (offline diagnostic).

Session 17, issue 13. The independent computation behind the issue fitted tilt, azimuth and a time
shift on the training block by minimising smart persistence's own error (DATA_NOTES.md); the
project fits them to the clearest days' shape (`data inspect`). This script measures, with the
project's rule as replicated in `clear_sky_variants.py` (the same clear-sky model: Ineichen, Linke
turbidity 3, isotropic sky, albedo 0.25, the metadata's altitude):

1. the geometry grid scored by smart persistence's error on the training block (as the independent
   fit did), and on the validation block and the training block's August-December days (the test
   block's season, in earlier years: the test block itself is not read);
2. the label shift at the metadata's geometry and at the best one;
3. the dawn threshold, and a climatological index per calendar month instead of one;
4. an empirical clear sky (Bacher, Madsen & Nielsen 2009: a high quantile of the training block's
   power by day of year and time of day) in place of the physical one;
5. how power relates to clear-sky power through the day on clear days, winter against summer.

    pip install pvlib==0.16.1 pandas pyarrow
    python3 scripts/smart_persistence_fits.py

Not a runtime dependency of anything; results in docs/SKILL.md ("Smart persistence: what else was
tried").
"""
import os
import sys
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clear_sky_variants import prepare, smart_persistence_errors, fitted_scale, block  # noqa: E402

warnings.filterwarnings('ignore')
AUG_DEC = [8, 9, 10, 11, 12]


def scores(ss, variant=None, threshold=0.3, monthly=False, clear=None):
    """Smart persistence nMAE on the training block, the validation block and the training
    block's August-December days. `clear` replaces the clear-sky power (kW/kWp) when given."""
    grid, p, cs, elev, train, cut1, cut2, end = prepare(ss, variant or {})
    scale, kclim = fitted_scale(p, cs, train, threshold)
    csp = cs * scale if clear is None else clear(grid, p, train)
    if clear is not None:
        ok = train & (csp >= threshold) & ~np.isnan(p)
        kclim = p[ok].sum() / csp[ok].sum()
    if monthly:
        month = grid.month.values
        ok = train & (csp >= threshold) & ~np.isnan(p)
        table = {m: p[ok & (month == m)].sum() / csp[ok & (month == m)].sum() for m in range(1, 13)}
        kclim = np.array([table[m] for m in month])
    out = []
    for b in [train, block(grid, train, cut1, cut2, end, 'validation'), train & np.isin(grid.month, AUG_DEC)]:
        out.append(smart_persistence_errors(p, csp, elev, b, kclim, threshold).mean())
    return out


def empirical_clear_sky(q):
    def clear(grid, p, train):
        doy = grid.dayofyear.values - 1
        slot = (grid.hour.values * 60 + grid.minute.values) // 15
        seen = np.where(train, p, np.nan)
        table = np.zeros((366, 96))
        for d in range(366):
            near = np.minimum(np.abs(doy - d), 366 - np.abs(doy - d)) <= 15
            for s in range(96):
                v = seen[near & (np.abs(slot - s) <= 1)]
                v = v[~np.isnan(v)]
                if len(v) >= 5:
                    table[d, s] = np.quantile(v, q)
        return table[doy, slot]
    return clear


def line(label, r):
    print(f'{label:44s} train {r[0]:.4f}  validation {r[1]:.4f}  train Aug-Dec {r[2]:.4f}', flush=True)


if __name__ == '__main__':
    line('50 metadata (35, 150), shift 0', scores(50))
    coarse = sorted((scores(50, {'tilt': t, 'az': a})[0], t, a)
                    for t in range(0, 71, 10) for a in range(90, 271, 15))
    print('coarse grid, best three by training-block error:', [(round(e, 4), t, a) for e, t, a in coarse[:3]])
    fine = sorted((scores(50, {'tilt': t, 'az': a})[0], t, a)
                  for t in range(40, 71, 5) for a in range(145, 176, 5))
    for _, t, a in fine[:4]:
        line(f'50 tilt {t}, azimuth {a}', scores(50, {'tilt': t, 'az': a}))
    _, t, a = fine[0]
    for shift in [-7.5, -5, -2.5, 2.5, 5, 7.5]:
        line(f'50 metadata, shift {shift:+} min', scores(50, {'shift': shift}))
        line(f'50 tilt {t}, azimuth {a}, shift {shift:+} min', scores(50, {'tilt': t, 'az': a, 'shift': shift}))
    for threshold in [0.1, 0.2, 0.4, 0.5]:
        line(f'50 dawn threshold {threshold}', scores(50, threshold=threshold))
    line('50 climatological index per month', scores(50, monthly=True))
    for q in [0.9, 0.95]:
        line(f'50 empirical clear sky, quantile {q}', scores(50, clear=empirical_clear_sky(q)))
    line('1001 metadata (35, 140)', scores(1001))
    serf = sorted((scores(1001, {'tilt': t, 'az': a})[0], t, a)
                  for t in range(0, 71, 10) for a in range(90, 271, 15))
    for _, t, a in serf[:2]:
        line(f'1001 tilt {t}, azimuth {a}', scores(1001, {'tilt': t, 'az': a}))

    # Power over clear-sky power by local hour on the clearest fifth of the training block's days.
    grid, p, cs, elev, train, *_ = prepare(50, {})
    scale, _ = fitted_scale(p, cs, train)
    local = grid - pd.Timedelta(hours=7)
    for months in [[11, 12], [6, 7]]:
        m = train & np.isin(grid.month, months) & (elev > 0)
        df = pd.DataFrame({'p': p[m], 'c': cs[m] * scale, 'h': local[m].hour, 'd': local[m].date})
        daily = df.groupby('d').apply(lambda x: x.p.sum() / x.c.sum())
        clear = df[df.d.isin(daily[daily > daily.quantile(0.8)].index)]
        ratio = clear.groupby('h').apply(lambda x: x.p.sum() / max(x.c.sum(), 1e-9))
        hours = [h for h in ratio.index if clear[clear.h == h].c.mean() > 0.05]
        print(f'50 clear days, months {months}: power / clear-sky power by local hour',
              ' '.join(f'{h}h {ratio[h]:.2f}' for h in hours))
