"""Writes the fuzzing seed corpus (fuzz/seeds/) from the bundled data/: small slices, so that each
execution is fast, in the encodings the loaders meet (zstd, snappy, uncompressed; dictionary or
not; several row groups), plus the metadata as CSV and Parquet. The checkpoint seed comes from a
tiny training run (scripts/fuzz.sh makes it). Offline tool: python3 -m pip install pyarrow==18.1.0
"""
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fuzz/seeds"


def main():
    gen = pq.read_table(ROOT / "data/generation.parquet")
    g = OUT / "generation"
    g.mkdir(parents=True, exist_ok=True)
    # Two systems, 24 readings each, in the bundled schema.
    ids = sorted(set(gen.column("ss_id").to_pylist()))[:2]
    parts = [gen.filter(pa.compute.equal(gen["ss_id"], i)).slice(0, 24) for i in ids]
    small = pa.concat_tables(parts)
    pq.write_table(small, g / "zstd.parquet", compression="zstd")
    pq.write_table(small, g / "snappy_dict.parquet", compression="snappy", use_dictionary=True)
    pq.write_table(small, g / "plain_rowgroups.parquet", compression="none", use_dictionary=False, row_group_size=8)
    # The other time column name and a timezone-aware timestamp.
    aware = small.rename_columns(["ss_id", "datetime_utc", "generation_Wh"]).cast(
        pa.schema([("ss_id", pa.int64()), ("datetime_utc", pa.timestamp("us", tz="UTC")), ("generation_Wh", pa.float64())])
    )
    pq.write_table(aware, g / "utc.parquet")

    m = OUT / "metadata"
    m.mkdir(parents=True, exist_ok=True)
    csv_bytes = (ROOT / "data/metadata.csv").read_bytes()
    # The target's first byte picks the reader: even = CSV, odd = Parquet.
    (m / "csv").write_bytes(b"\x00" + csv_bytes)
    meta = pcsv.read_csv(ROOT / "data/metadata.csv")
    sink = pa.BufferOutputStream()
    pq.write_table(meta, sink)
    (m / "parquet").write_bytes(b"\x01" + sink.getvalue().to_pybytes())
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
