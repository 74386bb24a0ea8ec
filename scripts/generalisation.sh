#!/usr/bin/env bash
# Issue 15's measured generalisation on the bundled data, written to runs/generalisation/:
#   pv-only      trained and tested on a PV-only copy of data/ (generation and metadata only);
#   dropout      the default model trained with train.modality_dropout = 0.25 on data/, tested on
#                data/ and on the PV-only copy (inputs absent, masked);
#   without-50   trained on data/ without PVDAQ 50, tested on PVDAQ 50 alone (never seen);
#   without-1001 trained on data/ without SERF East, tested on SERF East alone (never seen).
# Each is trained with every seed in SEEDS (default "0 1"); finished runs and evaluations are
# kept, so a rerun resumes where it stopped. Summaries: `power-perceiver skill` over the seeds.
# A system is left out through its metadata row and `data.bad_values = "mask_and_report"`, which
# drops (and lists) systems without metadata: the folders need no copy of the generation file.
# Takes about 50 minutes on 2 cores for two seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"0 1"}
OUT=${OUT:-runs/generalisation}
cargo build --release -q -p trainer --bin power-perceiver
pp=target/release/power-perceiver
mkdir -p "$OUT/data"

# folder NAME FILES... METADATA_IDS: data/FILES linked into $OUT/data/NAME, metadata of the ids.
folder() {
    local name=$1 ids=$2
    shift 2
    local dir="$OUT/data/$name"
    mkdir -p "$dir"
    for file in "$@"; do ln -sf "$PWD/data/$file" "$dir/$file"; done
    head -1 data/metadata.csv >"$dir/metadata.csv"
    grep -E "^($ids)," data/metadata.csv >>"$dir/metadata.csv"
}
all="generation.parquet satellite.parquet nwp.parquet observations.parquet"
folder pv-only "50|1001|8215|8229" generation.parquet
folder without-50 "1001|8215|8229" $all
folder only-50 "50" $all
folder without-1001 "50|8215|8229" $all
folder only-1001 "1001" $all

printf '[train]\nmodality_dropout = 0.25\n' >"$OUT/dropout.toml"
printf '[data]\nbad_values = "mask_and_report"\n' >"$OUT/leave-out.toml"
printf '' >"$OUT/default.toml"

# train NAME CONFIG DATA SEED
train() {
    local run="$OUT/$1-seed$4"
    if [ -f "$run/test_metrics.json" ]; then return; fi
    if [ -f "$run/config.toml" ]; then
        "$pp" train --resume "$run" --data "$3" >/dev/null
    else
        "$pp" train --config "$2" --data "$3" --seed "$4" --out "$run" >/dev/null
    fi
}

# evaluate RUN DATA NAME: the run's model on the test split of DATA, into RUN/evaluation-NAME.
evaluate() {
    if [ -f "$1/evaluation-$3/metrics.json" ]; then return; fi
    "$pp" evaluate "$1" --data "$2" --out "$1/evaluation-$3" >/dev/null
}

for seed in $SEEDS; do
    train pv-only "$OUT/default.toml" "$OUT/data/pv-only" "$seed"
    train dropout "$OUT/dropout.toml" data "$seed"
    evaluate "$OUT/dropout-seed$seed" "$OUT/data/pv-only" pv-only
    train without-50 "$OUT/leave-out.toml" "$OUT/data/without-50" "$seed"
    evaluate "$OUT/without-50-seed$seed" "$OUT/data/only-50" only-50
    train without-1001 "$OUT/leave-out.toml" "$OUT/data/without-1001" "$seed"
    evaluate "$OUT/without-1001-seed$seed" "$OUT/data/only-1001" only-1001
done
# The ablation study's design runs (no dropout; `cargo xtask ablate`), where they exist, on the
# PV-only folder: the same model without modality dropout.
for run in runs/ablation/design-seed*; do
    if [ -f "$run/model.safetensors" ]; then evaluate "$run" "$OUT/data/pv-only" pv-only; fi
done
echo "done: $OUT"
