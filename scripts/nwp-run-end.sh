#!/usr/bin/env bash
# How much the UK systems' forecasts jump where the latest usable NWP run ends (issue 15): for each
# RUN given, forecasts of 8215 and 8229 at every t0 from 08:00 to 12:45 UTC on their test days
# (2020-01-11 to 13), then scripts/nwp_run_end.py compares the median's and the 10–90 % band's
# change between consecutive leads across the run's end with the change elsewhere.
# Usage: scripts/nwp-run-end.sh runs/A runs/B   (needs python3, standard library only)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p trainer --bin power-perceiver
out=$(mktemp -d)
for run in "$@"; do
    dir="$out/$(basename "$run")"
    mkdir -p "$dir"
    for day in 2020-01-11 2020-01-12 2020-01-13; do
        for hh in 08 09 10 11 12; do
            for mm in 00 15 30 45; do
                # t0s past the end of the data are refused; they are skipped.
                target/release/power-perceiver forecast "$run" --t0 "$day $hh:$mm" \
                    --systems 8215,8229 --out "$dir/$day-$hh$mm.csv" >/dev/null 2>&1 || true
            done
        done
    done
done
python3 scripts/nwp_run_end.py "$out"/*
