"""The Dagster wiring, in process: definitions load, blocking checks stop downstream work, the
sensor requests exactly the touched partitions, single-run backfills, the schedule and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mmm_platform.cli import main
from mmm_platform.contracts import load_contract
from mmm_platform.defs.automation import daily_ingest_schedule, weather_files_sensor
from mmm_platform.defs.partitions import range_tags
from mmm_platform.defs.raw import raw_assets, raw_checks
from mmm_platform.defs.resources import DUCKDB_POOL
from mmm_platform.quality.checks import CHECKS

from conftest import DAYS, forecast_frame, sales_frame, weather_frame, write


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    from mmm_platform.definitions import defs

    return defs()


def test_every_landing_table_is_an_asset_with_its_checks(definitions):
    dg.Definitions.validate_loadable(definitions)
    graph = definitions.resolve_asset_graph()
    for table in load_contract().tables.values():
        key = dg.AssetKey(["raw", table.name])
        assert graph.has(key), f"no asset for {table.name}"
        checks = {k.name for k in graph.get(key).check_keys}
        assert checks == {c.name for c in CHECKS}
        assert (graph.get(key).partitions_def is not None) == table.is_partitioned
    blocking = {c.name for c in CHECKS if c.blocking}
    assert blocking == {"landing_files_accepted", "contract"}
    assert all(a.op.pool == DUCKDB_POOL for a in raw_assets)
    assert all(c.node_def.pool == DUCKDB_POOL for c in raw_checks)


def _run(definitions, start: dt.date, end: dt.date, selection=None) -> dg.ExecuteInProcessResult:
    job = definitions.resolve_job_def("ingest")
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags=range_tags(start, end),
        asset_selection=selection,
        raise_on_error=False,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {f"{e.asset_key.path[-1]}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def test_single_run_backfill_loads_every_partition(definitions, env, tmp_path):
    result = _run(definitions, DAYS[0], DAYS[-1])
    assert result.success
    mats = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    sales_parts = sorted(m.partition for m in mats if m.asset_key.path[-1] == "sales")
    assert sales_parts == [d.isoformat() for d in DAYS]  # one run, four partitions
    checks = _checks(result)
    assert checks["sales:landing_files_accepted"] and checks["sales:contract"]
    con = duckdb.connect(os.environ["MMM_WAREHOUSE"], read_only=True)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 8


def test_refused_file_fails_its_blocking_check_and_names_it(definitions, env):
    bad = sales_frame().filter(pl.col("date") == DAYS[1]).with_columns(pl.lit(-3.0).alias("revenue"))
    write(bad, env / "sales" / "zz_bad.csv")
    result = _run(definitions, DAYS[0], DAYS[-1])
    assert not result.success
    evals = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "sales"}
    failed = evals["landing_files_accepted"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    problems = failed.metadata["problems"].value
    assert "sales/zz_bad.csv" in problems and "range:revenue" in problems and "2 row(s)" in problems
    # a partition the bad file does not touch passes
    ok = _run(definitions, DAYS[3], DAYS[3], selection=[dg.AssetKey(["raw", "sales"])])
    assert _checks(ok)["sales:landing_files_accepted"]


def test_contract_check_runs_great_expectations_on_raw(definitions, env):
    """A rule beyond the landing contract (assets/expectations/weather_observed.yaml: temp_mean <=
    temp_max) does not refuse the file; the GX suite in the blocking `contract` check fails."""
    odd = weather_frame([DAYS[1]]).with_columns((pl.col("temp_max_c") + 10).alias("temp_mean_c"))
    write(odd, env / "weather_observed" / "weather_fix.parquet")
    result = _run(definitions, DAYS[0], DAYS[-1])
    evals = {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "weather_observed"
    }
    assert evals["landing_files_accepted"].passed
    failed = evals["contract"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert "temp_max_not_below_mean: 2 row(s)" in failed.metadata["problems"].value
    ok = _run(definitions, DAYS[3], DAYS[3], selection=[dg.AssetKey(["raw", "weather_observed"])])
    assert _checks(ok)["weather_observed:contract"]


def test_blocking_failure_stops_downstream_assets(definitions, env):
    write(pl.DataFrame({"geo_id": ["g09"], "geo_name": ["x"]}), env / "geo" / "geo_bad.csv")
    result = _run(definitions, DAYS[0], DAYS[-1])
    assert not _checks(result)["geo:landing_files_accepted"]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "geo" in materialized and "sales" not in materialized  # sales depends on geo


def test_sensor_requests_exactly_the_touched_partitions(env):
    instance = dg.DagsterInstance.ephemeral()
    first = weather_files_sensor(dg.build_sensor_context(instance=instance))
    ranges = sorted(
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in first.run_requests
    )
    # weather_a holds days 0-1, weather_b days 2-3: one run per contiguous range per file
    assert ranges == [(DAYS[0].isoformat(), DAYS[1].isoformat()), (DAYS[2].isoformat(), DAYS[3].isoformat())]
    assert {tuple(r.asset_selection[0].path) for r in first.run_requests} == {("raw", "weather_observed")}
    # nothing new: no requests
    again = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert again.run_requests == []
    # a new file with two non-adjacent days and a forecast file: exactly those partitions
    write(
        weather_frame([DAYS[0], DAYS[3]]).filter(pl.col("geo_id") == "g01"),
        env / "weather_observed" / "fix.parquet",
    )
    write(forecast_frame([DAYS[2]], leads=(1,)), env / "weather_forecast" / "fc.csv")
    third = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    got = sorted(
        (
            r.asset_selection[0].path[-1],
            r.tags["dagster/asset_partition_range_start"],
            r.tags["dagster/asset_partition_range_end"],
        )
        for r in third.run_requests
    )
    assert got == [
        ("weather_forecast", DAYS[2].isoformat(), DAYS[2].isoformat()),
        ("weather_observed", DAYS[0].isoformat(), DAYS[0].isoformat()),
        ("weather_observed", DAYS[3].isoformat(), DAYS[3].isoformat()),
    ]
    # a changed file (new mtime and size) is requested again
    path = env / "weather_observed" / "fix.parquet"
    write(weather_frame([DAYS[1]]), path)
    fourth = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=third.cursor))
    assert [r.tags["dagster/asset_partition_range_start"] for r in fourth.run_requests] == [DAYS[1].isoformat()]
    assert set(json.loads(fourth.cursor)) == {
        "weather_observed/weather_a.parquet", "weather_observed/weather_b.csv",
        "weather_observed/fix.parquet", "weather_forecast/fc.csv",
    }  # fmt: skip


def test_daily_schedule_loads_yesterday_and_today():
    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 6, 2, 6, 0, tzinfo=dt.UTC))
    request = daily_ingest_schedule(ctx)
    assert request.tags["dagster/asset_partition_range_start"] == "2025-06-01"
    assert request.tags["dagster/asset_partition_range_end"] == "2025-06-02"


def test_cli_ingest_exit_codes_and_messages(env, capsys, caplog):
    assert main(["ingest"]) == 0
    write(sales_frame().head(2).with_columns(pl.lit("nowhere").alias("geo_id")), env / "sales" / "zz_bad.csv")
    assert main(["ingest"]) == 1
    text = caplog.text
    assert "FAILED check raw/sales:landing_files_accepted" in text
    assert "sales/zz_bad.csv" in text and "known_geo" in text and "2 row(s)" in text
    con = duckdb.connect(os.environ["MMM_WAREHOUSE"], read_only=True)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 8


def test_cli_refuses_a_missing_landing_zone(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MMM_LANDING_DIR", str(tmp_path / "nope"))
    assert main(["ingest"]) == 2


def test_cli_records_runs_in_dagster_home_with_the_pool_limit(env, monkeypatch, tmp_path: Path):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["ingest", "--start", DAYS[0].isoformat(), "--end", DAYS[0].isoformat()]) == 0
    instance = dg.DagsterInstance.get()
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    (run,) = instance.get_runs()
    assert run.job_name == "ingest" and run.tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
