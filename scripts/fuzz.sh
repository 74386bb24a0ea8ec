#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on the stable toolchain, with the seed
# corpus from fuzz/seeds/ (slices of data/, made by fuzz/make_seeds.py) and a checkpoint from a
# tiny training run. Findings land in fuzz/artifacts/<target>/; the grown corpora in
# fuzz/corpus/<target>/ (not committed). Prints executions and coverage per target.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# FUZZ_TIMEOUT (seconds, default 60) is libFuzzer's per-input wall-clock limit: every input runs in
# milliseconds, so a timeout means a hang, unless the machine starved the fuzzer (on a busy 2-core
# machine raise it, or check a reported input by running it alone, as below).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"; shift || true
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(generation metadata checkpoint)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

for t in generation metadata; do
    mkdir -p "fuzz/corpus/$t"; cp -n fuzz/seeds/$t/* "fuzz/corpus/$t/" 2>/dev/null || true
done
mkdir -p fuzz/corpus/checkpoint
if [ -z "$(ls -A fuzz/corpus/checkpoint)" ]; then
    # A real checkpoint of a tiny model, written by the trainer itself.
    tmp=$(mktemp -d)
    cat > "$tmp/tiny.toml" <<'TOML'
[train]
steps = 2
batch_size = 4
[eval]
every_steps = 1
max_validation_examples = 8
[model]
token_dim = 8
decoder_channels = 8
decoder_blocks = 1
decoder_heads = 1
widening = 1
[[model.levels]]
groups = 8
latents = 1
channels = 8
self_attention_layers = 0
heads = 1
[[model.levels]]
groups = 1
latents = 2
channels = 8
self_attention_layers = 0
heads = 1
TOML
    cargo run --release -q -p trainer --bin power-perceiver -- train --config "$tmp/tiny.toml" \
        --out "$tmp/run" --stop-after 2 >/dev/null 2>&1 || true
    cp "$tmp"/run/*.safetensors fuzz/corpus/checkpoint/ 2>/dev/null || true
    rm -rf "$tmp"
fi

for t in "${targets[@]}"; do
    echo "== $t: ${seconds} s"
    (cd fuzz && cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout="${FUZZ_TIMEOUT:-60}" -print_final_stats=1) 2>&1 \
        | tee "fuzz/$t.log" | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY)|panicked" || true
    if ls "fuzz/artifacts/$t"/{crash,timeout,oom}-* >/dev/null 2>&1; then
        echo "FOUND: fuzz/artifacts/$t/"; exit 1
    fi
done
