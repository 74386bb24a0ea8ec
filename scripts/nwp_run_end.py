"""Jumps of the forecast between consecutive leads where the latest usable NWP run ends.

Reads the forecast CSVs of scripts/nwp-run-end.sh (one folder per run). The bundled UKV runs start
every 3 h, reach 4 h ahead and are usable 2 h after init (the default
examples.nwp_available_after_minutes), so at t0 the run in use is the latest initialised by
t0 − 2 h and it ends 4 h after its init. A lead pair (k, k + 1) crosses the run's end when lead k's
valid time is at or before it and lead k + 1's after.
"""

import collections
import csv
import datetime as dt
import glob
import os
import sys

HOUR = 3600
KWP = {"8215": 2.880, "8229": 2.520}  # data/metadata.csv


def seconds(text):
    t = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


def mean(xs):
    return sum(xs) / len(xs)


for folder in sys.argv[1:]:
    median = {True: [], False: []}
    band = {True: [], False: []}
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        by_system = collections.defaultdict(list)
        for row in csv.DictReader(open(path)):
            by_system[row["ss_id"]].append(row)
        for ss_id, rows in by_system.items():
            rows.sort(key=lambda r: int(r["lead_minutes"]))
            t0 = seconds(rows[0]["t0"])
            init = (t0 - 2 * HOUR) // (3 * HOUR) * (3 * HOUR)
            run_end = init + 4 * HOUR
            for a, b in zip(rows, rows[1:]):
                crosses = seconds(a["valid_time"]) <= run_end < seconds(b["valid_time"])
                width = lambda r: float(r["q0.9_kw"]) - float(r["q0.1_kw"])
                median[crosses].append(abs(float(b["q0.5_kw"]) - float(a["q0.5_kw"])) / KWP[ss_id])
                band[crosses].append(abs(width(b) - width(a)) / KWP[ss_id])
    print(
        f"{os.path.basename(folder)}: change per lead / kWp where the run ends vs elsewhere: "
        f"median {mean(median[True]):.4f} vs {mean(median[False]):.4f} "
        f"({mean(median[True]) / mean(median[False]):.2f}x), "
        f"10-90 % band width {mean(band[True]):.4f} vs {mean(band[False]):.4f} "
        f"({mean(band[True]) / mean(band[False]):.2f}x); {len(median[True])} crossings"
    )
