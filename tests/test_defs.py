"""The Dagster wiring, in process: definitions load, blocking checks stop downstream work, the
sensor requests the fewest runs for what new files touch, single-run backfills, the schedule, and
the command line (incremental runs recorded in DAGSTER_HOME, progress lines and a summary)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mmm_platform.cli import main
from mmm_platform.contracts import load_contract
from mmm_platform.defs.automation import daily_ingest_schedule, weather_files_sensor
from mmm_platform.defs.partitions import RANGE_END, RANGE_START, monthly_partitions, range_tags
from mmm_platform.defs.raw import LANDING_ZONE_KEY, raw_assets
from mmm_platform.defs.resources import DUCKDB_POOL
from mmm_platform.quality.checks import CHECKS

from conftest import DAYS, forecast_frame, sales_frame, weather_frame, write

MARCH = "2024-03-01"


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
    assert {k.name for k in graph.get(LANDING_ZONE_KEY).check_keys} == {"landing_zone_layout"}
    blocking = {c.name for c in CHECKS if c.blocking}
    assert blocking == {"landing_files_accepted", "contract"}
    assert all(a.op.pool == DUCKDB_POOL for a in raw_assets)
    # the checks run in their asset's step (one step per table), blocking where they block
    assert all({s.blocking for s in a.check_specs if s.name in blocking} == {True} for a in raw_assets)
    # monthly partitions from MMM_PARTITION_START (conftest), steps in one process
    assert isinstance(monthly_partitions, dg.MonthlyPartitionsDefinition)
    assert monthly_partitions.get_first_partition_key() == "2020-01-01"
    assert definitions.resolve_job_def("ingest").executor_def.name == "in_process"


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


def test_single_run_backfill_loads_every_partition(definitions, env):
    april = [dt.date(2024, 4, 2), dt.date(2024, 4, 3)]
    write(sales_frame(april), env / "sales" / "sales_april.parquet")
    result = _run(definitions, DAYS[0], april[-1])
    assert result.success
    mats = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    sales_parts = sorted(m.partition for m in mats if m.asset_key.path[-1] == "sales")
    assert sales_parts == [MARCH, "2024-04-01"]  # one run, two monthly partitions
    checks = _checks(result)
    assert checks["sales:landing_files_accepted"] and checks["sales:contract"]
    con = duckdb.connect(os.environ["MMM_WAREHOUSE"], read_only=True)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 8 + 4


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
    # a month the bad file does not touch passes
    april = dt.date(2024, 4, 2)
    write(sales_frame([april]), env / "sales" / "sales_april.parquet")
    ok = _run(definitions, april, april, selection=[dg.AssetKey(["raw", "sales"])])
    assert _checks(ok)["sales:landing_files_accepted"]


def test_contract_check_runs_the_rules_and_great_expectations_on_raw(definitions, env):
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
    assert "great_expectations" not in sys.modules  # the suites ran in their worker process


def test_contract_check_sees_what_no_single_file_shows(definitions, env):
    """sales was accepted while its geos existed; a corrected geo file then drops g02. The sales
    file is unchanged (its verdict is reused), but the contract check over raw finds its orphans."""
    assert _run(definitions, DAYS[0], DAYS[-1]).success
    geo = pl.read_parquet(env / "geo" / "geo.parquet").filter(pl.col("geo_id") == "g01")
    write(geo, env / "geo" / "geo.parquet")
    result = _run(definitions, DAYS[0], DAYS[-1])
    evals = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "sales"}
    assert evals["landing_files_accepted"].passed
    problems = evals["contract"].metadata["problems"].value
    assert not evals["contract"].passed
    assert "known_geo:geo_id" in problems and "4 row(s)" in problems and "g02" in problems


def test_blocking_failure_stops_downstream_assets(definitions, env):
    write(pl.DataFrame({"geo_id": ["g09"], "geo_name": ["x"]}), env / "geo" / "geo_bad.csv")
    result = _run(definitions, DAYS[0], DAYS[-1])
    assert not _checks(result)["geo:landing_files_accepted"]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert "geo" in materialized and "sales" not in materialized  # sales depends on geo


def _requests(result) -> list[tuple]:
    return sorted(
        (tuple(sorted(k.path[-1] for k in r.asset_selection)), r.tags[RANGE_START], r.tags[RANGE_END])
        for r in result.run_requests
    )


def test_sensor_requests_the_fewest_runs_for_what_new_files_touch(env):
    instance = dg.DagsterInstance.ephemeral()
    first = weather_files_sensor(dg.build_sensor_context(instance=instance))
    # two files, one month: one run, named with its months
    assert _requests(first) == [(("weather_observed",), MARCH, MARCH)]
    assert first.run_requests[0].tags["mmm/dates"] == "2024-03..2024-03"
    # nothing new: no requests
    again = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert isinstance(again, dg.SkipReason)
    # a file spanning two months and a forecast file in one of them: one run over both months
    write(weather_frame([DAYS[0], dt.date(2024, 4, 30)]), env / "weather_observed" / "fix.parquet")
    write(forecast_frame([dt.date(2024, 4, 2)], leads=(1,)), env / "weather_forecast" / "fc.csv")
    third = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert _requests(third) == [(("weather_forecast", "weather_observed"), MARCH, "2024-04-01")]
    # a file in a month apart from the others: a run of its own
    write(weather_frame([dt.date(2024, 7, 1)]), env / "weather_observed" / "july.parquet")
    fourth = weather_files_sensor(dg.build_sensor_context(instance=instance, cursor=third.cursor))
    assert _requests(fourth) == [(("weather_observed",), "2024-07-01", "2024-07-01")]
    assert set(json.loads(fourth.cursor)) == {
        "weather_observed/weather_a.parquet", "weather_observed/weather_b.csv", "weather_observed/fix.parquet",
        "weather_forecast/fc.csv", "weather_observed/july.parquet",
    }  # fmt: skip


def test_sensor_skips_files_the_warehouse_already_holds(env):
    assert main(["ingest"]) == 0
    fresh = weather_files_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral()))
    assert isinstance(fresh, dg.SkipReason)  # no cursor, but ingest.landing_files knows every file


def test_daily_schedule_loads_the_months_of_yesterday_and_today():
    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 6, 1, 6, 0, tzinfo=dt.UTC))
    request = daily_ingest_schedule(ctx)
    assert request.tags[RANGE_START] == "2025-05-01"
    assert request.tags[RANGE_END] == "2025-06-01"


def test_cli_runs_only_what_changed_and_records_it(env, capsys):
    assert main(["ingest"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # one progress line per step: counter, asset, rows, seconds; dbt's log goes to a file
    step = next(line for line in lines if "raw/sales" in line)
    assert re.match(r"^\s+\[\s*\d+\] raw/sales\s+8 rows\s+\d+\.\d s$", step), step
    assert any(line.startswith("  logs (dbt and every step): ") and line.endswith(".log") for line in lines)
    # the closing summary: what was materialized, how the checks went, where to look
    assert re.search(r"assets materialized\s+4\s+checks passed\s+\d+", out)
    assert re.search(r"checks warned\s+\d+\s+checks failed\s+0", out)
    assert "runs " in out and "dagster_home" in out
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: a persistent instance, as `make dev` shows
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    (run,) = instance.get_runs()
    assert run.job_name == "ingest" and run.tags[RANGE_START] == MARCH
    assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "sales"])) is not None
    # nothing new: nothing runs, nothing is written
    warehouse = Path(os.environ["MMM_WAREHOUSE"])
    before = warehouse.stat().st_mtime_ns
    assert main(["ingest"]) == 0
    assert "nothing new" in capsys.readouterr().out
    assert len(instance.get_runs()) == 1 and warehouse.stat().st_mtime_ns == before
    # a new sales file: one run of raw/sales (and the landing zone) only
    write(sales_frame([dt.date(2024, 3, 5)]), env / "sales" / "sales_more.csv")
    assert main(["ingest"]) == 0
    newest = instance.get_runs(limit=1)[0]
    assert newest.asset_selection == {dg.AssetKey(["raw", "sales"]), LANDING_ZONE_KEY}


def test_cli_exit_codes_and_messages(env, capsys):
    assert main(["ingest"]) == 0
    write(sales_frame().head(2).with_columns(pl.lit("nowhere").alias("geo_id")), env / "sales" / "zz_bad.csv")
    assert main(["ingest"]) == 1
    text = capsys.readouterr().out
    assert "FAILED check raw/sales:landing_files_accepted" in text
    assert "sales/zz_bad.csv" in text and "known_geo" in text and "2 row(s)" in text
    con = duckdb.connect(os.environ["MMM_WAREHOUSE"], read_only=True)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 8
    con.close()
    # the refused file still fails the next run, and the one after
    assert main(["ingest"]) == 1


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MMM_PARTITION_START", "2024-13-01", "not a date"),
        ("MMM_FRESHNESS_DAYS", "three", "not an integer"),
        ("MMM_WAREHOUSE", "{file}/warehouse.duckdb", "is a file"),
        ("MMM_WAREHOUSE", "{dir}", "is a folder"),
        ("MMM_WAREHOUSE", "{dir}/ingest.duckdb", "one of the warehouse's schemas"),
    ],
)
def test_cli_settings_errors_exit_2_with_one_line(env, monkeypatch, tmp_path, capsys, variable, value, words):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv(variable, value.format(file=tmp_path / "a_file", dir=tmp_path))
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and variable in err and words in err


def test_cli_refuses_a_missing_landing_zone(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("MMM_LANDING_DIR", str(tmp_path / "nope"))
    assert main(["ingest"]) == 2


def _weather_day(day: dt.date) -> list:
    from mmm_platform.ingest.spans import Change

    file = f"weather_observed/weather_observed_{day}.parquet"
    return [Change("weather_observed", file, "new", (day, day), (1, dt.datetime.now(), "h"))]


def test_a_new_weather_day_plans_only_what_it_touches_and_the_causal_suite_once_a_day(definitions, monkeypatch):
    import argparse

    from mmm_platform.cli import runs

    instance = dg.DagsterInstance.ephemeral()
    job = definitions.resolve_job_def("everything")
    args = argparse.Namespace(start=None, end=None, full=False, tables=None)
    # nothing materialized yet: every asset downstream of raw runs, the causal suite too
    (run,) = runs.plan(args, definitions, instance, "everything", [])
    assert dg.AssetKey(["causal", "lift"]) in run.keys and dg.AssetKey(["features", "sales_day"]) in run.keys
    for key in job.asset_layer.executable_asset_keys:  # everything materialized, just now
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    today = dt.date.today()

    (run,) = runs.plan(args, definitions, instance, "everything", _weather_day(today))
    planned = {"/".join(k.path) for k in run.keys}
    # the weather tables' marts and what reads them, in the one month the day falls in
    assert run.months == (today.replace(day=1), today.replace(day=1))
    assert {"raw/weather_observed", "staging/stg_weather_observed", "features/weather_daily"} <= planned
    assert {"features/geo_day", "features/geo_week", "features/geo_cluster"} <= planned
    assert not planned & {"raw/sales", "features/sales_day", "features/media_day", "staging/stg_sales"}
    # the causal suite (all history) ran today: it takes the new day in tomorrow
    assert not any(k.startswith("causal/") for k in planned) and "causal ran today" in run.why

    # a correction of an earlier month changes history: the causal suite reruns
    (run,) = runs.plan(args, definitions, instance, "everything", _weather_day(today.replace(day=1) - dt.timedelta(1)))
    assert dg.AssetKey(["causal", "lift"]) in run.keys

    # the next day, a run with nothing new catches the causal suite up with its newer inputs
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey(["features", "geo_day"])))
    monkeypatch.setattr(runs, "_utc_day", lambda _: today - dt.timedelta(days=1))
    (run,) = runs.plan(args, definitions, instance, "everything", [])
    assert {k.path[0] for k in run.keys} == {"causal", "ingest"}  # the landing zone's layout check rides along


def _index_contents(home: Path) -> dict:
    """What an instance's event log holds across runs (the index file), run ids and times aside."""
    import sqlite3

    with sqlite3.connect(home / "history" / "runs" / "index.db") as con:
        return {
            "events": con.execute("SELECT dagster_event_type, asset_key, partition, count(*) FROM event_logs "
                                  "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall(),
            # values aside: a data version hashes the run
            "tags": con.execute("SELECT asset_key, key, count(*) FROM asset_event_tags GROUP BY 1, 2 ORDER BY 1, 2").fetchall(),
            "checks": con.execute("SELECT asset_key, check_name, partition, execution_status "
                                  "FROM asset_check_executions ORDER BY 1, 2, 3, 4").fetchall(),
            "assets": con.execute("SELECT asset_key, last_materialization IS NOT NULL FROM asset_keys "
                                  "ORDER BY 1").fetchall(),
        }  # fmt: skip


def test_the_local_event_log_stores_a_run_over_many_months_as_dagsters_own_does(
    definitions, env, monkeypatch, tmp_path
):
    from mmm_platform.config import INSTANCE_TEMPLATE
    from mmm_platform.event_log import BatchedSqliteEventLogStorage

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # as the CLI and `make dev` set it
    write(sales_frame([dt.date(2024, 4, 2), dt.date(2024, 5, 3)]), env / "sales" / "sales_spring.parquet")
    sales = dg.AssetKey(["raw", "sales"])
    held = {}
    for name, config in [("dagster", "telemetry:\n  enabled: false\n"), ("local", INSTANCE_TEMPLATE.read_text())]:
        home = tmp_path / name
        home.mkdir()
        (home / "dagster.yaml").write_text(config)
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("MMM_WAREHOUSE", str(tmp_path / f"{name}.duckdb"))
        instance = dg.DagsterInstance.from_config(str(home))
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage) == (name == "local")
        result = definitions.resolve_job_def("ingest").execute_in_process(
            instance=instance,
            tags=range_tags(dt.date(2024, 3, 1), dt.date(2024, 5, 31)),
            asset_selection=[sales, dg.AssetKey(["raw", "geo"])],
            raise_on_error=False,
        )
        assert result.success
        assert instance.get_materialized_partitions(sales) == {"2024-03-01", "2024-04-01", "2024-05-01"}
        held[name] = (len(instance.all_logs(result.run_id)), _index_contents(home))
    # the same events in the run's file and the same rows in the index, stored in fewer transactions
    assert held["local"] == held["dagster"]
