#!/usr/bin/env bash
# Regenerates third_party/candle-core: candle-core's published source (the .crate on crates.io,
# checked against the checksum Cargo.lock held for it) with third_party/candle-core.patch applied.
# Test, example and bench targets are dropped from its manifest: their files are not vendored.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.11.1
sha256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -sSfL -o "$work/crate.tar.gz" "https://static.crates.io/crates/candle-core/candle-core-$version.crate"
echo "$sha256  $work/crate.tar.gz" | sha256sum --check --quiet
tar -xzf "$work/crate.tar.gz" -C "$work"
src="$work/candle-core-$version"
rm -rf third_party/candle-core
mkdir -p third_party/candle-core
cp -r "$src/src" "$src/LICENSE" "$src/README.md" "$src/Cargo.toml" third_party/candle-core/
python3 - third_party/candle-core/Cargo.toml <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r'\n\[\[(example|test|bench)\]\]\n(?:[^\[\n][^\n]*\n)*', '\n', text)
open(path, 'w').write(re.sub(r'\n{3,}', '\n\n', text))
PY
patch --quiet -d third_party/candle-core -p1 < third_party/candle-core.patch
echo "third_party/candle-core: candle-core $version with third_party/candle-core.patch"
