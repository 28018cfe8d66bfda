"""The MMM's Dagster wiring, in process: the `mmm` job over a refit partition writes every table of
the output contract with run_id and as_of, attaches the plots, reports convergence as a warning
check, refits replace their own rows only, and the fit sees no day after its refit date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_mmm_recovery import build_world_warehouse

CONTRACT = {
    "mmm.channel_roas": [
        "run_id", "as_of", "channel", "channel_group", "geo_id", "spend", "incremental_revenue", "roas",
        "roas_lower", "roas_upper", "mroas", "incremental_margin",
    ],
    "mmm.response_curves": [
        "run_id", "as_of", "channel", "geo_id", "spend", "expected_revenue", "revenue_lower", "revenue_upper", "mroas",
    ],
    "mmm.diagnostics": [
        "run_id", "as_of", "sampler", "draws", "chains", "max_rhat", "min_ess_bulk", "divergences", "fit_seconds",
        "r2_in_sample", "mape_in_sample",
    ],
    "allocator.recommendations": [
        "plan_id", "created_at", "run_id", "geo_id", "channel", "current_spend", "recommended_spend",
        "expected_incremental_revenue", "expected_incremental_margin", "objective",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    wh, _ = build_world_warehouse(tmp_path_factory.mktemp("mmm_dagster"), n_geos=6, n_days=364, seed=5)
    return wh


def _run(wh: Path, partition: str, monkeypatch, tmp_path: Path, selection=None) -> dg.ExecuteInProcessResult:
    monkeypatch.setenv("MMM_WAREHOUSE", str(wh))
    monkeypatch.setenv("MMM_REPORT_DIR", str(tmp_path / "reports"))
    from mmm_platform.defs import mmm as m
    from mmm_platform.defs.report import report_html
    from mmm_platform.defs.resources import WarehouseResource

    defs = dg.Definitions(
        assets=[
            m.mmm_fit,
            m.mmm_diagnostics,
            m.mmm_channel_roas,
            m.mmm_response_curves,
            m.allocator_recommendations,
            report_html,
        ],
        jobs=[m.mmm_job],
        resources={"duckdb": WarehouseResource()},
        executor=dg.in_process_executor,
    )
    quick = {"config": {"draws": 60, "tune": 60}}
    ops = ["mmm__fit", "mmm__channel_roas", "mmm__response_curves", "allocator__recommendations"]
    return defs.resolve_job_def("mmm").execute_in_process(
        partition_key=partition,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {k: v for k, v in dict.fromkeys(ops, quick).items() if selection is None or k != "mmm__fit"}
        },
        asset_selection=selection,
        raise_on_error=False,
    )


def test_the_mmm_job_writes_the_output_contract(warehouse, monkeypatch, tmp_path):
    from mmm_platform.defs.mmm import mmm_job, refit_partitions

    assert mmm_job.name == "mmm"
    keys = refit_partitions.get_partition_keys()
    # the refit week whose Sunday is the world's 300th day: the fit must not see what comes after
    sunday = dt.date(2024, 1, 1) + dt.timedelta(days=300)
    sunday -= dt.timedelta(days=(sunday.weekday() + 1) % 7)
    week = (sunday - dt.timedelta(days=6)).isoformat()
    assert week in keys
    result = _run(warehouse, week, monkeypatch, tmp_path)
    assert result.success
    mats = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    assert set(mats) == {
        "mmm/fit",
        "mmm/diagnostics",
        "mmm/channel_roas",
        "mmm/response_curves",
        "allocator/recommendations",
        "report/html",
    }
    page = Path(mats["report/html"].event_specific_data.materialization.metadata["path"].value)
    assert page == tmp_path / "reports" / "report.html" and "ROAS" in page.read_text()
    fit_md = mats["mmm/fit"].event_specific_data.materialization.metadata
    assert fit_md["as_of"].value == sunday.isoformat()
    plot = fit_md["posterior_predictive_fit"].value
    assert plot.startswith("![posterior_predictive_fit](data:image/png;base64,")
    assert Path(fit_md["posterior_predictive_fit_file"].value).is_file()
    roas_md = mats["mmm/channel_roas"].event_specific_data.materialization.metadata
    assert {"roas_plot", "contribution_decomposition"} <= set(roas_md)
    assert "response_curves" in mats["mmm/response_curves"].event_specific_data.materialization.metadata
    # 60 draws do not converge: a visible warning, not a silent number
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["converged"].severity == dg.AssetCheckSeverity.WARN

    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, cols in CONTRACT.items():
            have = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert set(cols) <= set(have), (table, set(cols) - set(have))
            assert con.execute(f"SELECT count(DISTINCT run_id) FROM {table}").fetchone()[0] == 1
        as_of = con.execute("SELECT DISTINCT as_of FROM mmm.channel_roas").fetchall()
        assert as_of == [(sunday,)]
        geos = {r[0] for r in con.execute("SELECT DISTINCT geo_id FROM mmm.channel_roas").fetchall()}
        assert "all" in geos and len(geos) == 7
        grid = con.execute(
            "SELECT min(spend_multiple), max(spend_multiple) FROM mmm.response_curves WHERE geo_id = 'all'"
        ).fetchone()
        assert grid[0] == 0 and grid[1] >= 2
        plan = con.execute(
            "SELECT sum(recommended_spend), sum(current_spend), count(DISTINCT plan_id), any_value(objective) "
            "FROM allocator.recommendations"
        ).fetchone()
        assert plan[0] == pytest.approx(plan[1], rel=1e-9) and plan[2] == 1 and plan[3] == "revenue"

    # the steps after the fit, run again from the stored fit, replace their rows (delete + insert by as_of)
    after = [dg.AssetKey(["mmm", k]) for k in ("diagnostics", "channel_roas", "response_curves")]
    again = _run(
        warehouse, week, monkeypatch, tmp_path, selection=[*after, dg.AssetKey(["allocator", "recommendations"])]
    )
    assert again.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in CONTRACT:
            runs = con.execute(f"SELECT DISTINCT run_id FROM {table}").fetchall()
            assert runs == [(again.run_id,)], table


def test_refits_live_side_by_side(tmp_path):
    import pandas as pd

    from mmm_platform.mmm.store import with_run
    from mmm_platform.warehouse import write_table

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    df = pd.DataFrame({"channel": ["tv", "search"], "roas": [2.0, 3.0]})
    for run, day in [("r1", dt.date(2025, 1, 5)), ("r2", dt.date(2025, 1, 12)), ("r3", dt.date(2025, 1, 5))]:
        write_table(con, "mmm.t", with_run(df, run, day), key={"as_of": day})
    rows = con.execute("SELECT as_of, run_id, count(*) FROM mmm.t GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [(dt.date(2025, 1, 5), "r3", 2), (dt.date(2025, 1, 12), "r2", 2)]
    # a new column is added, old rows keep NULL
    write_table(
        con, "mmm.t", with_run(df.assign(mroas=1.0), "r4", dt.date(2025, 1, 19)), key={"as_of": dt.date(2025, 1, 19)}
    )
    assert con.execute("SELECT count(*) FROM mmm.t WHERE mroas IS NULL").fetchone()[0] == 4
