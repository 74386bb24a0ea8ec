"""Convert the bundled public PV datasets to power-perceiver's uk_pv-style layout.

Run offline, once, by a maintainer (never by users or tests):

    python3 -m pip install -r data/prepare/requirements.txt
    python3 -m pip download --no-deps -d /tmp/wheels pvanalytics==0.2.2 pv-site-prediction==0.1.21
    python3 data/prepare/prepare_data.py --wheels /tmp/wheels --out data

The wheels are read as zip files; nothing is installed from them. Every number this script
prints is what data/SOURCES.md quotes. See SOURCES.md for licences and for what was changed.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import xarray as xr

PVANALYTICS_WHEEL = "pvanalytics-0.2.2-py3-none-any.whl"
PSP_WHEEL = "pv_site_prediction-0.1.21-py3-none-any.whl"

# Identifiers. PVDAQ system 50 keeps its PVDAQ id; SERF East has none, so it gets 1001.
SYSTEM_50 = 50
SERF_EAST = 1001
GOLDEN_LAT, GOLDEN_LON, GOLDEN_ALT = 39.7406, -105.1775, 1800.0
SERF_LAT, SERF_LON = 39.742, -105.173

# SERF East reports small negative AC power at night (the inverter's own draw). The policy:
# values in [-NEGATIVE_FLOOR_W, 0) are set to 0 and counted; anything lower is an error.
NEGATIVE_FLOOR_W = 50.0

STEP_15 = pd.Timedelta(minutes=15)


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        return z.read(member)


def extract_tree(wheel: Path, prefix: str, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(prefix):
                z.extract(name, dest)
    return dest / prefix


def report(stats: dict, key: str, value) -> None:
    stats[key] = value
    print(f"  {key}: {value}")


def fit_orientation(times_utc: pd.DatetimeIndex, power_w: np.ndarray, lat: float, lon: float,
                    train_fraction: float = 0.7) -> tuple[float, float]:
    """Fit tilt and azimuth on the training block only: maximise the correlation of measured
    power with clear-sky plane-of-array irradiance on the clearest days."""
    n_train = int(len(times_utc) * train_fraction)
    t = times_utc[:n_train]
    p = power_w[:n_train]
    loc = pvlib.location.Location(lat, lon, altitude=GOLDEN_ALT)
    # Label is the end of the interval: evaluate the sun at the interval midpoint.
    mid = t - STEP_15 / 2
    sp = loc.get_solarposition(mid)
    cs = loc.get_clearsky(mid, model="ineichen")
    day = (sp["apparent_elevation"].to_numpy() > 10) & np.isfinite(p)
    # Clearest days: highest ratio of energy to clear-sky GHI energy.
    df = pd.DataFrame({"p": np.where(day, p, 0.0), "ghi": np.where(day, cs["ghi"], 0.0)}, index=t)
    daily = df.groupby(df.index.date).sum()
    ratio = daily["p"] / daily["ghi"].clip(lower=1)
    clear_days = set(ratio.sort_values().index[-40:])
    sel = day & np.array([d in clear_days for d in t.date])
    best = (-2.0, 0.0, 180.0)
    for tilt in range(0, 61, 5):
        for az in range(90, 271, 5):
            poa = pvlib.irradiance.get_total_irradiance(
                tilt, az, sp["apparent_zenith"], sp["azimuth"], cs["dni"], cs["ghi"], cs["dhi"])["poa_global"]
            c = np.corrcoef(poa.to_numpy()[sel], p[sel])[0, 1]
            if c > best[0]:
                best = (c, float(tilt), float(az))
    print(f"  fitted tilt {best[1]} deg, azimuth {best[2]} deg (corr {best[0]:.4f}, {sel.sum()} clear-day steps)")
    return best[1], best[2]


def prepare_system_50(wheel: Path, stats: dict) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    print("PVDAQ system 50")
    raw = pd.read_parquet(io.BytesIO(read_member(wheel, "pvanalytics/data/system_50_ac_power_2_full_DST.parquet")))
    report(stats, "system_50_source_rows", len(raw))
    report(stats, "system_50_source_nan", int(raw["ac_power_2"].isna().sum()))
    # The labels say -07:00 all year, but summer labels are local daylight time. Read each label's
    # wall clock as America/Denver time; labels that do not exist or are ambiguous at the switch
    # (night time) are dropped and counted.
    wall = raw["measured_on"].dt.tz_localize(None)
    local = wall.dt.tz_localize("America/Denver", ambiguous="NaT", nonexistent="NaT")
    bad = local.isna()
    report(stats, "system_50_dst_ambiguous_or_nonexistent_rows_dropped", int(bad.sum()))
    df = pd.DataFrame({"t": local[~bad].dt.tz_convert("UTC"), "w": raw["ac_power_2"][~bad].astype("float64")})
    df = df.dropna(subset=["w"])
    dup = df["t"].duplicated(keep=False)
    report(stats, "system_50_duplicate_rows_dropped", int(dup.sum()))
    df = df[~dup].sort_values("t")
    report(stats, "system_50_ac_power_p995_kw", round(float(np.percentile(df["w"], 99.5)) / 1000, 3))
    report(stats, "system_50_ac_power_max_kw", round(float(df["w"].max()) / 1000, 3))
    # Each value is taken as the mean AC power over a 15-minute interval. The metadata say the label
    # marks its start (time_label), on the evidence in data/SOURCES.md.
    gen = pd.DataFrame({"ss_id": SYSTEM_50, "datetime_GMT": df["t"], "generation_Wh": df["w"] * 0.25})
    tilt, az = fit_orientation(pd.DatetimeIndex(df["t"]), df["w"].to_numpy(), GOLDEN_LAT, GOLDEN_LON)
    meta = dict(ss_id=SYSTEM_50, latitude_rounded=GOLDEN_LAT, longitude_rounded=GOLDEN_LON, orientation=az,
                tilt=tilt, kWp=stats["system_50_ac_power_p995_kw"], time_label="interval_start",
                altitude_m=GOLDEN_ALT)

    psm = pd.read_parquet(io.BytesIO(read_member(wheel, "pvanalytics/data/system_50_ac_power_2_full_DST_psm3.parquet")))
    t = pd.to_datetime(psm["index"]).dt.tz_convert("UTC")
    obs = pd.DataFrame({"ss_id": SYSTEM_50, "time": t, "ghi": psm["ghi"].astype("float32"),
                        "ghi_clear": psm["ghi_clear"].astype("float32"), "temp_air": psm["temp_air"].astype("float32")})
    report(stats, "system_50_psm3_rows", len(obs))
    return gen, meta, obs


def prepare_serf_east(wheel: Path, stats: dict) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    print("SERF East")
    raw = pd.read_csv(io.BytesIO(read_member(wheel, "pvanalytics/data/serf_east_15min_ac_power.csv")))
    t = pd.to_datetime(raw["measured_on"]).dt.tz_convert("UTC")
    w = raw["ac_power"].astype("float64").to_numpy()
    report(stats, "serf_east_source_rows", len(raw))
    neg = w < 0
    if (w < -NEGATIVE_FLOOR_W).any():
        raise SystemExit("SERF East has negative power beyond the inverter-draw floor")
    report(stats, "serf_east_negative_values_set_to_zero", int(neg.sum()))
    report(stats, "serf_east_most_negative_w", float(w.min()))
    w = np.where(neg, 0.0, w)
    report(stats, "serf_east_ac_power_p995_kw", round(float(np.percentile(w, 99.5)) / 1000, 3))
    gen = pd.DataFrame({"ss_id": SERF_EAST, "datetime_GMT": t, "generation_Wh": w * 0.25})
    tilt, az = fit_orientation(pd.DatetimeIndex(t), w, SERF_LAT, SERF_LON)
    meta = dict(ss_id=SERF_EAST, latitude_rounded=SERF_LAT, longitude_rounded=SERF_LON, orientation=az, tilt=tilt,
                kWp=stats["serf_east_ac_power_p995_kw"], time_label="interval_end", altitude_m=GOLDEN_ALT)
    psm = pd.read_csv(io.BytesIO(read_member(wheel, "pvanalytics/data/serf_east_psm3_data.csv")))
    obs = pd.DataFrame({"ss_id": SERF_EAST, "time": pd.to_datetime(psm["measured_on"]).dt.tz_convert("UTC"),
                        "ghi": psm["ghi"].astype("float32"), "ghi_clear": psm["ghi_clear"].astype("float32"),
                        "temp_air": psm["temp_air"].astype("float32")})
    report(stats, "serf_east_psm3_rows", len(obs))
    return gen, meta, obs


def prepare_uk(fixtures: Path, stats: dict, out: Path) -> tuple[pd.DataFrame, list[dict]]:
    print("UK systems (pv-site-prediction fixtures)")
    pv = xr.open_dataset(fixtures / "pv_data.nc")
    gens, metas = [], []
    for i, ss in enumerate(pv.ss_id.values):
        s = pv.isel(ss_id=i)
        kw = s["generation_wh"].to_numpy().astype("float64")  # despite the name, values are kW
        t = pd.DatetimeIndex(s.timestamp.values).tz_localize("UTC")
        step = pd.Series(t).diff().mode()[0]
        ok = np.isfinite(kw)
        report(stats, f"uk_{ss}_rows", int(len(kw)))
        report(stats, f"uk_{ss}_missing_fraction", round(float(1 - ok.mean()), 4))
        report(stats, f"uk_{ss}_step_minutes", int(step / pd.Timedelta(minutes=1)))
        report(stats, f"uk_{ss}_max_kw", round(float(np.nanmax(kw)), 3))
        wh = kw * 1000 * (step / pd.Timedelta(hours=1))
        gens.append(pd.DataFrame({"ss_id": int(ss), "datetime_GMT": t[ok], "generation_Wh": wh[ok]}))
        metas.append(dict(ss_id=int(ss), latitude_rounded=float(s.latitude), longitude_rounded=float(s.longitude),
                          orientation=float(s.orientation), tilt=float(s.tilt), kWp=round(float(s.factor) * 1000, 3)))

    print("Satellite (EUMETSAT SEVIRI RSS, 4 channels)")
    sat = xr.open_zarr(fixtures / "satellite.zarr")
    # Keep every third 5-min image (15-min step) and the full 45 x 30 crop.
    sat = sat.isel(time=slice(0, None, 3))
    geos = pyproj.CRS.from_proj4("+proj=geos +lon_0=9.5 +h=35785831 +x_0=0 +y_0=0 +a=6378169 "
                                 "+rf=295.488065897014 +no_defs +type=crs")
    to_ll = pyproj.Transformer.from_crs(geos, "EPSG:4326", always_xy=True)
    xx, yy = np.meshgrid(sat.x_geostationary.values, sat.y_geostationary.values)
    lon, lat = to_ll.transform(xx, yy)
    data = sat["data"].values.astype("float32")  # time, y, x, channel
    nt, ny, nx, nc = data.shape
    channels = [str(v) for v in sat.variable.values]
    times = pd.DatetimeIndex(sat.time.values).tz_localize("UTC")
    cols = {
        "time": pa.array(np.repeat(times.values.astype("datetime64[us]"), ny * nx), type=pa.timestamp("us", tz="UTC")),
        "latitude": pa.array(np.tile(lat.ravel(), nt).astype("float32")),
        "longitude": pa.array(np.tile(lon.ravel(), nt).astype("float32")),
    }
    for c, name in enumerate(channels):
        v = data[..., c].ravel()
        cols[name] = pa.array(v, mask=~np.isfinite(v))
    table = pa.table(cols)
    pq.write_table(table, out / "satellite.parquet", compression="zstd", compression_level=9)
    report(stats, "satellite_images", nt)
    report(stats, "satellite_pixels_per_image", ny * nx)
    report(stats, "satellite_channels", channels)
    report(stats, "satellite_missing_fraction", round(float(np.isnan(data).mean()), 4))
    report(stats, "satellite_lat_range", [round(float(lat.min()), 3), round(float(lat.max()), 3)])
    report(stats, "satellite_lon_range", [round(float(lon.min()), 3), round(float(lon.max()), 3)])

    print("NWP (UKV)")
    nwp = xr.open_zarr(fixtures / "nwp.zarr")
    osgb = pyproj.Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)
    rows = []
    u = nwp["UKV"].values.astype("float32")  # variable, init, step, y, x
    for vi, var in enumerate(nwp.variable.values):
        for ii, init in enumerate(nwp.init_time.values):
            for si, step in enumerate(nwp.step.values):
                for yi, y in enumerate(nwp.y.values):
                    for xi, x in enumerate(nwp.x.values):
                        lo, la = osgb.transform(float(x), float(y))
                        rows.append((init, int(step / np.timedelta64(1, "m")), float(la), float(lo), str(var),
                                     float(u[vi, ii, si, yi, xi])))
    df = pd.DataFrame(rows, columns=["init_time", "step_minutes", "latitude", "longitude", "variable", "value"])
    table = pa.table({
        "init_time": pa.array(pd.DatetimeIndex(df["init_time"]).values.astype("datetime64[us]"),
                              type=pa.timestamp("us", tz="UTC")),
        "step_minutes": pa.array(df["step_minutes"].to_numpy().astype("int32")),
        "latitude": pa.array(df["latitude"].to_numpy().astype("float32")),
        "longitude": pa.array(df["longitude"].to_numpy().astype("float32")),
        "variable": pa.array(df["variable"]),
        "value": pa.array(df["value"].to_numpy().astype("float32")),
    })
    pq.write_table(table, out / "nwp.parquet", compression="zstd")
    report(stats, "nwp_rows", len(df))
    report(stats, "nwp_init_times", int(nwp.init_time.size))
    report(stats, "nwp_variables", [str(v) for v in nwp.variable.values])
    return pd.concat(gens), metas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {}

    g50, m50, o50 = prepare_system_50(args.wheels / PVANALYTICS_WHEEL, stats)
    gse, mse, ose = prepare_serf_east(args.wheels / PVANALYTICS_WHEEL, stats)
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = extract_tree(args.wheels / PSP_WHEEL, "psp/tests/fixtures/", Path(tmp))
        guk, muk = prepare_uk(fixtures, stats, out)

    gen = pd.concat([g50, gse, guk]).sort_values(["ss_id", "datetime_GMT"]).reset_index(drop=True)
    table = pa.table({
        "ss_id": pa.array(gen["ss_id"].to_numpy().astype("int64")),
        "datetime_GMT": pa.array(pd.DatetimeIndex(gen["datetime_GMT"]).tz_convert("UTC").tz_localize(None)
                                 .values.astype("datetime64[us]"), type=pa.timestamp("us")),
        "generation_Wh": pa.array(gen["generation_Wh"].to_numpy().astype("float64")),
    })
    pq.write_table(table, out / "generation.parquet", compression="zstd")
    report(stats, "generation_rows", len(gen))

    meta = pd.DataFrame([m50, mse, *muk])
    meta.to_csv(out / "metadata.csv", index=False)
    print(meta.to_string(index=False))

    obs = pd.concat([o50, ose]).sort_values(["ss_id", "time"]).reset_index(drop=True)
    table = pa.table({
        "ss_id": pa.array(obs["ss_id"].to_numpy().astype("int64")),
        "time": pa.array(pd.DatetimeIndex(obs["time"]).values.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
        "ghi": pa.array(obs["ghi"].to_numpy()),
        "ghi_clear": pa.array(obs["ghi_clear"].to_numpy()),
        "temp_air": pa.array(obs["temp_air"].to_numpy()),
    })
    pq.write_table(table, out / "observations.parquet", compression="zstd")
    report(stats, "observation_rows", len(obs))
    (out / "prepare" / "prepare_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
