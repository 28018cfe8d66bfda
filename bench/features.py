"""Feature marts on the default demo world: how long the full build takes, and how long a new day of
weather takes from its landing file to updated features for that day.

    .venv/bin/python bench/features.py [--workdir DIR]

Steps (in a temporary folder unless --workdir):
1. simulate(WorldConfig()) and load every table into raw.* with DuckDB, holding back the last day
   of observed weather; that day is written as a landing file instead (setup, not timed);
2. full build through Dagster: the static dbt assets, the Python assets (clusters, neighbours) and
   every daily partition in one single-run backfill;
3. the same full build with the dbt CLI alone (`dbt build`, no vars): the marts' own build time;
   the Dagster backfill adds a materialization record per asset and partition (23 daily assets x
   730 days), which is most of its time;
4. new day: ingestion of the held-back file (the ingest code the platform runs) and the Dagster run
   of that day's partition; then the same partition with the dbt CLI alone, to show what the
   orchestration adds. Every partition run parses the dbt project again: dbt re-parses whenever
   its vars change;
5. the forecast error of the demo world per lead (mean about 0, spread growing with lead).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl


def load_raw(warehouse: Path, tables: dict[str, pl.DataFrame]) -> None:
    from mmm_platform.contracts import load_contract
    from mmm_platform.warehouse import ensure_warehouse

    with duckdb.connect(str(warehouse)) as con:
        ensure_warehouse(con, load_contract())
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f"INSERT INTO raw.{name} BY NAME SELECT * FROM frame")
            con.unregister("frame")


def timed[T](label: str, fn: Callable[..., T], *args: object, **kwargs: object) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    print(f"{label:<58} {seconds:7.1f} s")
    return out, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep the landing zone and warehouse here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_features_"))
    workdir.mkdir(parents=True, exist_ok=True)
    warehouse, landing = workdir / "warehouse.duckdb", workdir / "landing"
    warehouse.unlink(missing_ok=True)
    os.environ["MMM_WAREHOUSE"] = str(warehouse)  # before the definitions read the settings

    import dagster as dg
    from dagster_dbt import DbtCliResource
    from dagster_duckdb import DuckDBResource

    from mmm_platform.config import get_settings
    from mmm_platform.contracts import load_contract
    from mmm_platform.defs.features.assets import dbt_feature_assets, geo_cluster, geo_neighbors
    from mmm_platform.defs.features.project import dbt_project, ensure_manifest
    from mmm_platform.defs.partitions import range_tags
    from mmm_platform.ingest.load import Window, ingest_table
    from mmm_platform.simulate import WorldConfig, simulate

    config = WorldConfig()
    world, _ = timed(f"simulate {config.n_geos} geos x {config.n_days} days", simulate, config)
    last = config.end
    weather = world.tables["weather_observed"]
    tables = world.tables | {"weather_observed": weather.filter(pl.col("date") < last)}
    timed("load raw (DuckDB inserts, setup)", load_raw, warehouse, tables)
    new_file = landing / "weather_observed" / f"weather_observed_{last}.parquet"
    new_file.parent.mkdir(parents=True, exist_ok=True)
    weather.filter(pl.col("date") == last).write_parquet(new_file)
    timed("prepare the dbt manifest (setup; skipped when fresh)", ensure_manifest)

    daily, static = dbt_feature_assets()
    resources = {"dbt": DbtCliResource(project_dir=dbt_project), "duckdb": DuckDBResource(database=str(warehouse))}
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

    def materialize(assets: list, **kwargs: object) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # dagster-dbt echoes dbt's log
            result = dg.materialize(assets, resources=resources, run_config=quiet, raise_on_error=False, **kwargs)
        failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
        if not result.success or failed:
            raise SystemExit(
                f"materialization failed: {[f'{c.asset_key.to_user_string()}:{c.check_name}' for c in failed]}"
            )

    print()
    _, t_static = timed("full build: static dbt assets (dims, climatology)", materialize, [static])
    _, t_python = timed("full build: geo_cluster + geo_neighbors", materialize, [geo_cluster, geo_neighbors])
    _, t_daily = timed(
        f"full build: daily dbt assets {config.start} .. {last - dt.timedelta(days=1)}",
        materialize, [daily], tags=range_tags(config.start, last - dt.timedelta(days=1)),
    )  # fmt: skip
    print(f"{'full build of the marts through Dagster':<58} {t_static + t_python + t_daily:7.1f} s")
    dbt = Path(sys.executable).with_name("dbt")

    def dbt_build(*args: str) -> None:
        subprocess.run([str(dbt), "build", "--quiet", *args], cwd=dbt_project.project_dir, check=True)

    timed("full build of the dbt marts, dbt CLI (dbt build)", dbt_build)

    print()
    settings = get_settings()

    def ingest() -> None:
        with duckdb.connect(str(warehouse)) as con:
            result = ingest_table(
                con, load_contract(), "weather_observed", landing, window=Window(last, last),
                run_id="bench", partition_start=settings.partition_start, today=last,
            )  # fmt: skip
        assert result is not None

    _, t_ingest = timed(f"new day {last}: ingest the weather file", ingest)
    _, t_features = timed(f"new day {last}: Dagster run of partition {last}", materialize, [daily],
                          partition_key=last.isoformat())  # fmt: skip
    print(f"{'new weather file -> updated features':<58} {t_ingest + t_features:7.1f} s  (aim < 15 s)")
    dbt_vars = json.dumps({"min_date": last.isoformat(), "max_date": last.isoformat()})
    timed("  same partition, dbt CLI only (build --select tag:daily)", dbt_build,
          "--select", "tag:daily", "--vars", dbt_vars)  # fmt: skip

    with duckdb.connect(str(warehouse)) as con:
        geo_days = con.sql("SELECT count(*) FROM features.geo_day").fetchone()[0]
        print(f"\nfeatures.geo_day: {geo_days:,} rows ({config.n_geos} geos x {config.n_days} days)")
        k, silhouette = con.sql("SELECT max(k), avg(silhouette) FROM features.geo_cluster").fetchone()
        print(f"features.geo_cluster: k = {k} climate clusters (chosen by silhouette; mean {silhouette:.2f})")
        print("forecast error of temp_mean_c (observed - forecast), per lead:")
        for lead in (1, 3, 7):
            mean, sd, n = con.sql(
                f"SELECT avg(temp_mean_c_fc_error_l{lead}), stddev_samp(temp_mean_c_fc_error_l{lead}), "
                f"count(temp_mean_c_fc_error_l{lead}) FROM features.weather_forecast_error"
            ).fetchone()
            print(f"  lead {lead}: mean {mean:+.3f} C, sd {sd:.3f} C, n {n:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
