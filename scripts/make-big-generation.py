"""Writes a uk_pv-layout folder whose generation file is 100x the bundled one (for the memory
measurement in docs/RELIABILITY.md): every bundled system copied 100 times under new ss_ids
(ss_id + k * 1,000,000), with matching metadata rows. Offline tool, needs pyarrow:

    python3 -m pip install pyarrow==18.1.0
    python3 scripts/make-big-generation.py OUT_DIR [COPIES]
"""
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def main():
    out = Path(sys.argv[1])
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    out.mkdir(parents=True, exist_ok=True)
    gen = pq.read_table(ROOT / "data/generation.parquet")
    meta = pcsv.read_csv(ROOT / "data/metadata.csv")
    with pq.ParquetWriter(out / "generation.parquet", gen.schema, compression="zstd") as w:
        for k in range(copies):
            ids = pc.add(gen["ss_id"], k * 1_000_000)
            w.write_table(gen.set_column(0, "ss_id", ids), row_group_size=1 << 20)
    metas = [meta.set_column(0, "ss_id", pc.add(meta["ss_id"], k * 1_000_000)) for k in range(copies)]
    pcsv.write_csv(pa.concat_tables(metas), out / "metadata.csv")
    rows = pq.ParquetFile(out / "generation.parquet").metadata.num_rows
    size = (out / "generation.parquet").stat().st_size
    print(f"{out}/generation.parquet: {rows} rows, {size / 1e6:.1f} MB; metadata: {len(metas) * meta.num_rows} systems")


if __name__ == "__main__":
    main()
