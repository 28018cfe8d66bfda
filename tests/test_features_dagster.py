"""The Dagster wiring of the feature marts, materialized in-process over a tiny warehouse: dbt
models become assets keyed by table, dbt tests become asset checks, a partition run passes its
window to dbt and writes only that window, and the Python feature assets write their tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mmm_platform.contracts import load_contract
from mmm_platform.defs.features.assets import DbtResource, dbt_features, geo_cluster, geo_neighbors, window_env
from mmm_platform.defs.features.project import dbt_project
from mmm_platform.defs.resources import WarehouseResource
from mmm_platform.warehouse import ensure_warehouse

START = dt.date(2024, 1, 1)
DAYS = 60
#: two cold geos in the north-east, two warm ones in the south-west
GEOS = {
    "NE1": (42.4, -71.1, 0.0),
    "NE2": (40.7, -74.0, 2.0),
    "SW1": (33.4, -112.1, 22.0),
    "SW2": (34.1, -118.2, 20.0),
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("dagster_features") / "warehouse.duckdb"
    geo = pl.DataFrame(
        [
            {
                "geo_id": g,
                "geo_name": g,
                "dma": g,
                "region": g[:2],
                "latitude": lat,
                "longitude": lon,
                "population": 1000,
                "population_density": 10.0,
            }
            for g, (lat, lon, _) in GEOS.items()
        ]
    )
    weather = pl.DataFrame(
        [
            {
                "geo_id": g,
                "date": START + dt.timedelta(days=i),
                "temp_max_c": t + 5,
                "temp_min_c": t - 5,
                "temp_mean_c": t + i % 3,
                "feels_like_c": t,
                "humidity_pct": 50.0,
                "dew_point_c": t - 5,
                "wind_speed_kmh": 5.0,
                "uv_index": 2.0,
                "precip_mm": 1.0,
                "precip_type": "rain",
                "snowfall_cm": 0.0,
                "air_quality_index": 30.0,
                "severe_alert": False,
            }
            for g, (_, _, t) in GEOS.items()
            for i in range(DAYS)
        ]
    )
    with duckdb.connect(str(path)) as con:
        ensure_warehouse(con, load_contract())
        for table, frame in [("geo", geo), ("weather_observed", weather)]:
            con.register("frame", frame)
            con.execute(f"INSERT INTO raw.{table} BY NAME SELECT * FROM frame")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMM_WAREHOUSE", str(path))  # the dbt subprocesses read it from profiles.yml
        yield path


def resources(warehouse: Path) -> dict[str, object]:
    return {"dbt": DbtResource(project_dir=dbt_project), "duckdb": WarehouseResource(database=str(warehouse))}


def count(warehouse: Path, sql: str) -> tuple:
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(sql).fetchone()


def test_dbt_models_are_one_monthly_asset_keyed_by_table_with_checks() -> None:
    dbt = dbt_features()
    assert {
        dg.AssetKey(["features", "geo_day"]),
        dg.AssetKey(["staging", "stg_weather_observed"]),
        dg.AssetKey(["features", "weather_climatology"]),
        dg.AssetKey(["staging", "stg_geo"]),
    } <= dbt.keys
    assert len(dbt.keys) == 27 and isinstance(dbt.partitions_def, dg.MonthlyPartitionsDefinition)
    assert all(spec.group_name == "features" for spec in dbt.specs)
    # sources are the ingestion assets; dbt tests are checks on the models
    assert dg.AssetKey(["raw", "weather_observed"]) in dbt.asset_deps[dg.AssetKey(["staging", "stg_weather_observed"])]
    assert dg.AssetCheckKey(dg.AssetKey(["features", "geo_day"]), "matches_landing_geo_days_geo_day_") in dbt.check_keys


def test_dbt_resource_skips_the_version_subprocess_and_the_in_process_adapter(monkeypatch) -> None:
    import dagster_dbt.core.resource
    import dbt.version

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("dbt --version was run")

    monkeypatch.setattr(dagster_dbt.core.resource, "check_output", no_subprocess)
    resource = DbtResource(project_dir=dbt_project)
    assert str(resource._cli_version) == dbt.version.__version__
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_partition_window_becomes_the_inclusive_dbt_window() -> None:
    window = dg.TimeWindow(dt.datetime(2024, 2, 1), dt.datetime(2024, 3, 1))
    assert window_env(window) == {"MMM_DBT_MIN_DATE": "2024-02-01", "MMM_DBT_MAX_DATE": "2024-02-29"}
    assert window_env(None) == {"MMM_DBT_MIN_DATE": "", "MMM_DBT_MAX_DATE": ""}  # all history


def test_materialize_the_features_for_a_month(warehouse: Path) -> None:
    last = START + dt.timedelta(days=DAYS - 1)
    month = last.replace(day=1)
    # one run of the newest monthly partition: the dbt build, then the Python assets downstream
    result = dg.materialize(
        [dbt_features(), geo_cluster, geo_neighbors], partition_key=month.isoformat(), resources=resources(warehouse)
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    checked = {c.asset_key for c in checks}
    assert {dg.AssetKey(["features", "geo_day"]), dg.AssetKey(["features", "weather_climatology"])} <= checked
    assert all(c.passed for c in checks)

    assert count(warehouse, "SELECT count(DISTINCT geo_id), max(k) FROM features.geo_cluster") == (4, 2)
    cold = "SELECT list(geo_id ORDER BY geo_id) FROM features.geo_cluster WHERE cluster_id = 0"
    assert count(warehouse, cold) == (["NE1", "NE2"],)  # the two cold geos share the first cluster
    assert count(warehouse, "SELECT count(*), round(sum(weight), 9) FROM features.geo_neighbors") == (12, 4.0)
    # a first run of the newest partition writes its window only: the month and the lead_days (7) before it
    days = (last - month).days + 1 + 7
    assert count(warehouse, "SELECT count(*), min(date), max(date) FROM features.weather_daily") == (
        4 * days,
        month - dt.timedelta(days=7),
        last,
    )
    assert count(warehouse, "SELECT count(*) FROM features.geo_day") == (4 * days,)


def test_a_weather_run_builds_only_the_marts_downstream_of_weather(warehouse: Path) -> None:
    import json

    from mmm_platform.defs.features.assets import TARGET

    month = (START + dt.timedelta(days=DAYS - 1)).replace(day=1)
    assets = [dbt_features(), geo_cluster, geo_neighbors]
    graph = dg.Definitions(assets=assets, resources=resources(warehouse)).resolve_asset_graph()
    # what `mmm-platform run` selects for a new weather day: everything downstream of raw/weather_observed
    selection = dg.AssetSelection.assets(dg.AssetKey(["raw", "weather_observed"])).downstream().resolve(graph)
    selection -= {dg.AssetKey(["raw", "weather_observed"])}
    result = dg.materialize(
        assets, selection=list(selection), partition_key=month.isoformat(), resources=resources(warehouse)
    )
    assert result.success
    built = {
        r["unique_id"].split(".")[-1]
        for r in json.loads((TARGET / "run_results.json").read_text())["results"]
        if r["unique_id"].startswith("model.")
    }
    assert built == {
        "stg_weather_observed",
        "weather_climatology",
        "weather_daily",
        "weather_forecast_error",
        "geo_day",
        "geo_week",
    }
    # the climate clusters read the climatology; the neighbour weights only the geos
    assert dg.AssetKey(["features", "geo_cluster"]) in selection
    assert dg.AssetKey(["features", "geo_neighbors"]) not in selection


def test_dbt_runs_in_the_steps_process_and_frees_the_warehouse_after(warehouse: Path) -> None:
    import inspect
    import subprocess
    import sys

    import dagster_dbt.core.resource
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

    from mmm_platform.defs.features.in_process import InProcessInvocation

    # the hook: dagster-dbt's resource names the invocation class, whose `run` takes these arguments
    assert dagster_dbt.core.resource.DbtCliInvocation is DbtCliInvocation
    assert inspect.signature(InProcessInvocation.run).parameters.keys() == (
        inspect.signature(DbtCliInvocation.run).parameters.keys()
    )

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("dbt was started as a subprocess")

    month = (START + dt.timedelta(days=DAYS - 1)).replace(day=1).isoformat()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess, "Popen", no_subprocess)
        result = dg.materialize(
            [dbt_features()],
            selection=[dg.AssetKey(["staging", "stg_geo"])],
            partition_key=month,
            resources=resources(warehouse),
        )
    assert result.success
    assert {c.check_name for c in result.get_asset_check_evaluations() if c.passed} >= {"not_null_stg_geo_geo_id"}
    # dbt's DuckDB connection is closed: another process can take the file's write lock
    probe = f"import duckdb; duckdb.connect({str(warehouse)!r}).execute('SELECT 1')"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).returncode == 0


def test_a_failed_dbt_command_fails_with_dbts_own_error() -> None:
    invocation = DbtResource(project_dir=dbt_project).cli(["bulid"], raise_on_error=False)
    assert not invocation.is_successful()
    assert invocation.process.returncode == 2  # as `dbt bulid` exits
    assert "No such command 'bulid'" in str(invocation.get_error())
