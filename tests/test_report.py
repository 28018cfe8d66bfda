"""The HTML report: built from a hand-made warehouse (the output contract's columns and what the
assets write besides), self-contained, escaped, honest about what is missing; and the Dagster
asset in process."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from html import escape as html_escape
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from mmm_platform.report.build import Report, build_report, write_report

AS_OF = dt.date(2025, 6, 1)
EARLIER = dt.date(2025, 5, 25)
CHANNELS = {"tv": "offline", "search": "online"}
LIFT_SENTENCE = "The search holdout test drove revenue by $120 per affected store-day (95% CI $80 to $160, p < 0.001)."
TRUTH = {
    "channels": {"tv": {"roas": 1.7}, "search": {"roas": 3.1}},
    "meta": {"config": {"seed": 7, "n_geos": 2, "n_days": 365, "start": "2024-06-02"}},
}


def _put(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    schema = table.split(".")[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("_rows", frame)
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema || '.' || table_name = ?", [table]
    ).fetchone()[0]
    con.execute(
        f"INSERT INTO {table} SELECT * FROM _rows" if exists else f"CREATE TABLE {table} AS SELECT * FROM _rows"
    )
    con.unregister("_rows")


def _refit(con: duckdb.DuckDBPyConnection, as_of: dt.date, run: str, channels: dict[str, str], scale: float) -> None:
    """The tables one refit writes (mmm.*, allocator.recommendations), for every channel."""
    stamp = {"run_id": run, "as_of": as_of}
    roas = []
    for i, (c, group) in enumerate(channels.items()):
        for geo, share in [("g01", 0.4), ("g02", 0.6), ("all", 1.0)]:
            r = scale * (1.5 + i)
            roas.append(
                stamp
                | {"channel": c, "channel_group": group, "geo_id": geo, "spend": 1e5 * share,
                   "incremental_revenue": r * 1e5 * share, "roas": r, "roas_lower": r - 0.4, "roas_upper": r + 0.5,
                   "mroas": r / 2, "incremental_margin": r * 3e4 * share, "fit_run_id": f"fit-{run}"}
            )  # fmt: skip
    _put(con, "mmm.channel_roas", pd.DataFrame(roas))
    curves = []
    for c in channels:
        for m in np.linspace(0, 2.5, 11):
            curves.append(
                stamp
                | {"channel": c, "geo_id": "all", "spend_multiple": m, "spend": 2e3 * m, "current_spend": 2e3,
                   "expected_revenue": 4e3 * np.sqrt(m), "revenue_lower": 3e3 * np.sqrt(m),
                   "revenue_upper": 5e3 * np.sqrt(m), "expected_margin": 1e3 * np.sqrt(m), "mroas": 1.0 / max(m, 0.1),
                   "period_days": 7}
            )  # fmt: skip
    _put(con, "mmm.response_curves", pd.DataFrame(curves))
    dates = pd.date_range(as_of - dt.timedelta(weeks=19), as_of, freq="7D")
    contrib = pd.DataFrame(
        {"date": np.repeat(dates, 2), "geo_id": np.tile(["g01", "g02"], len(dates)), "revenue": 5e4, "fitted": 4.9e4}
    )
    for c in channels:
        contrib[f"contribution_{c}"] = 3e3
    contrib["media"] = 3e3 * len(channels)
    contrib["baseline"] = contrib["fitted"] - contrib["media"]
    _put(con, "mmm.contributions", contrib.assign(**stamp)[["run_id", "as_of", *contrib.columns]])
    _put(
        con,
        "mmm.diagnostics",
        pd.DataFrame(
            [stamp | {"sampler": "nutpie", "draws": 1000, "chains": 4, "max_rhat": 1.004, "max_rhat_variable": "saturation_lam",
                      "min_ess_bulk": 900.0, "min_ess_bulk_variable": "intercept", "divergences": 0, "fit_seconds": 312.5,
                      "r2_in_sample": 0.93, "mape_in_sample": 0.061}]
        ),
    )  # fmt: skip
    recs = [
        {"plan_id": f"plan-{run}", "created_at": pd.Timestamp("2025-06-02 08:00"), "run_id": run, "as_of": as_of,
         "geo_id": geo, "channel": c, "current_spend": 1e3, "recommended_spend": 1e3 + (200 if i else -200),
         "expected_incremental_revenue": 150.0 if i else -40.0, "expected_incremental_margin": 40.0,
         "objective": "revenue", "period_days": 7}
        for i, c in enumerate(channels) for geo in ("g01", "g02")
    ]  # fmt: skip
    _put(con, "allocator.recommendations", pd.DataFrame(recs))


def _causal(con: duckdb.DuckDBPyConnection) -> None:
    stamp = {"run_id": "causal-1", "as_of": AS_OF}
    lift = [
        ("storm_01", "did_stacked", "storm", "Storms cut revenue by $900 per affected store-day (one event)."),
        ("storm_all", "did_stacked", "storm", "Storms cut revenue by $850 per affected store-day (95% CI ...)."),
        ("EXP-01-search-holdout", "experiment", "holdout:search", LIFT_SENTENCE),
    ]
    _put(
        con,
        "causal.lift",
        pd.DataFrame(
            [stamp | {"study_id": s, "method": m, "treatment": t, "att_per_geo_day": -1.0, "statement": text}
             for s, m, t, text in lift]
        ),
    )  # fmt: skip
    effects = []
    for method, est, f in [("ols", 40.0, None), ("iv_2sls", 95.0, 850.0), ("iv_2sls_by_cluster", 80.0, None)]:
        effects.append(
            stamp
            | {"method": method, "weather_variable": "temp_mean_c", "outcome": "revenue", "effect_per_unit": est,
               "std_error": 5.0, "ci_lower": est - 10, "ci_upper": est + 10, "p_value": 0.0001, "n_obs": 10_000,
               "instrument": "temp_mean_c_fc_error_l1" if f else None, "first_stage_f": f,
               "geo_cluster": 1 if method.endswith("cluster") else None,
               "statement": f"By {method}, each extra °C moves revenue by +${est:.0f} per store-day."}
        )  # fmt: skip
    _put(con, "causal.weather_effects", pd.DataFrame(effects))


def _comparison(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """validation.model_comparison: the MMM and LightweightMMM per channel, Robyn without its environment."""
    rows = [
        {
            "model": m,
            "window_days": w,
            "channel": c,
            "roas": r,
            "roas_lower": r - 0.3,
            "roas_upper": r + 0.3,
            "true_roas": TRUTH["channels"][c]["roas"],
            "status": "ok",
        }
        for m, w, shift in [("mmm", 730, 0.0), ("lightweight_mmm", 90, 0.75)]
        for c, r in [("tv", 1.6 + shift), ("search", 3.0 + shift)]
    ] + [{"model": "robyn", "window_days": 90, "status": "environment .venv-peers/robyn missing: run `make peers`"}]
    frame = pd.DataFrame(rows)
    frame.insert(0, "as_of", as_of)
    frame.insert(0, "run_id", "cmp-run")
    _put(con, "validation.model_comparison", frame)  # fmt: skip


def _warehouse(path: Path, channels: dict[str, str] = CHANNELS) -> Path:
    with duckdb.connect(str(path)) as con:
        _causal(con)
        _refit(con, EARLIER, "run-earlier", channels, scale=0.5)
        _refit(con, AS_OF, "run-latest", channels, scale=1.0)
        _comparison(con, AS_OF)
    return path


def _build(path: Path, **kw) -> Report:
    with duckdb.connect(str(path), read_only=True) as con:
        return build_report(con, warehouse=str(path), run_id="report-run", **kw)


def _external(html: str) -> list[str]:
    """Anything the page would fetch from elsewhere: src/href to a URL, scripts, style sheets, imports."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]*)""", html, flags=re.IGNORECASE)
    return refs + re.findall(r"<script|<link|@import|url\(", html, flags=re.IGNORECASE)


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> tuple[Report, Path]:
    folder = tmp_path_factory.mktemp("report")
    report = _build(_warehouse(folder / "w.duckdb"), truth=TRUTH)
    out = folder / "out" / "report.html"
    assert write_report(report.html, out) == out.stat().st_size
    return report, out


def test_the_report_shows_every_section_self_contained(full):
    report, out = full
    html = out.read_text()
    assert _external(html) == []
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file written here, not mkstemp's 0600
    assert report.as_of == AS_OF
    assert report.missing.keys() == {"backtest"}  # the hand-made warehouse has no backtest
    assert "validation.backtest" in html and "does not exist" in html
    assert html_escape(LIFT_SENTENCE) in html  # '<' of 'p < 0.001' escaped
    assert "one event" not in html  # single events stay in the table, the page shows the pooled studies
    roas = html[html.index('id="roas"') : html.index('id="curves"')]
    for channel in CHANNELS:
        assert f"<td>{channel}</td>" in roas
    assert "True ROAS (demo world&#x27;s truth)" in roas and "<td class=n>3.10</td>" in roas
    assert "<td class=n>2.50</td>" in roas  # search's ROAS of the latest refit, not the earlier one's 1.25
    assert html.count('<img src="data:image/png;base64,') >= 5
    assert '<p class="verdict ok">Converged</p>' in html and "NOT converged" not in html
    assert "First-stage F" in html and "850" in html  # IV beside OLS with the first stage
    assert "plan-run-latest" in html and "seed 7" in html and "report-run" in html and "fit-run-latest" in html
    peers = html[html.index('id="peers"') :]
    assert "<th class=n>MMM (this platform) ROAS (90% interval)</th><th class=n>LightweightMMM ROAS" in peers
    assert (
        "<td>search</td><td class=n>3.00 (2.70 to 3.30)</td><td class=n>3.75 (3.45 to 4.05)</td><td class=n>n/a</td>"
        "<td class=n>3.10</td>" in peers
    )
    assert "Robyn: environment .venv-peers/robyn missing: run <code>make peers</code>" in peers
    assert "MMM (this platform) 730 days, LightweightMMM 90 days" in peers


def test_a_refit_week_shows_its_own_refit(tmp_path):
    report = _build(_warehouse(tmp_path / "w.duckdb"), until=EARLIER + dt.timedelta(days=3))
    assert report.as_of == EARLIER
    assert "plan-run-earlier" in report.html and "plan-run-latest" not in report.html
    assert "True ROAS" not in report.html and "no truth.json" in report.html
    none = _build(tmp_path / "w.duckdb", until=EARLIER - dt.timedelta(days=1))
    assert none.as_of is None and set(none.present) == {"evidence", "weather"}
    assert f"table mmm.channel_roas has no rows on or before {EARLIER - dt.timedelta(days=1)}" in none.html


def test_missing_tables_are_named_with_what_writes_them(tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    report = _build(path)
    assert report.present == []
    assert _external(report.html) == []
    for table, asset in [
        ("causal.lift", "causal/lift"),
        ("causal.weather_effects", "causal/weather_effects"),
        ("mmm.channel_roas", "mmm/channel_roas"),
        ("mmm.response_curves", "mmm/response_curves"),
        ("mmm.diagnostics", "mmm/diagnostics"),
        ("allocator.recommendations", "allocator/recommendations"),
        ("validation.backtest", "validation/backtest"),
        ("validation.model_comparison", "validation/model_comparison"),
    ]:
        assert f"table {table} does not exist" in report.html
        assert f"<code>{asset}</code>" in report.html
    # a table without the columns a section needs says which
    with duckdb.connect(str(path)) as con:
        _put(con, "mmm.diagnostics", pd.DataFrame({"run_id": ["r"], "as_of": [AS_OF], "max_rhat": [1.0]}))
    assert "table mmm.diagnostics has no column min_ess_bulk, divergences" in _build(path).html


def test_data_is_escaped_and_a_bad_fit_is_flagged(tmp_path):
    bad = "<script>alert('x')</script>"
    path = _warehouse(tmp_path / "w.duckdb", channels={bad: "online", "tv": "offline"})
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE mmm.diagnostics SET max_rhat = 1.2, divergences = 7")
    report = _build(path)
    assert "<script" not in report.html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in report.html
    assert '<p class="verdict bad">NOT converged</p>' in report.html
    assert "max R-hat 1.200 &gt; 1.01 (saturation_lam)" in report.html
    assert "The model did NOT converge" in report.html  # beside the ROAS, not only in Model health


def test_the_asset_writes_the_report(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "truth.json").write_text(json.dumps(TRUTH))
    monkeypatch.setenv("MMM_WAREHOUSE", str(_warehouse(tmp_path / "w.duckdb")))
    monkeypatch.setenv("MMM_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MMM_LANDING_DIR", str(landing))
    from mmm_platform.defs import mmm as m
    from mmm_platform.defs.report import report_html
    from mmm_platform.defs.resources import WarehouseResource

    models = [m.mmm_fit, m.mmm_diagnostics, m.mmm_channel_roas, m.mmm_response_curves, m.allocator_recommendations]
    defs = dg.Definitions(assets=[*models, report_html], jobs=[m.mmm_job], resources={"duckdb": WarehouseResource()})
    job = defs.resolve_job_def("mmm")
    assert report_html.key in job.asset_layer.executable_asset_keys  # the refit writes its report
    key = report_html.partitions_def.get_last_partition_key()
    result = dg.materialize(
        [report_html],
        partition_key=key,
        resources={"duckdb": WarehouseResource()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    meta = result.asset_materializations_for_node("report__html")[0].metadata
    path = tmp_path / "reports" / "report.html"
    assert meta["path"].value == str(path) and path.is_file()
    assert meta["size_bytes"].value == path.stat().st_size
    assert meta["as_of"].value == AS_OF.isoformat()
    assert meta["sections_missing"].value == {"backtest": "table validation.backtest does not exist"}
    assert "roas" in meta["sections_present"].value
    assert "True ROAS" in path.read_text()
    assert not list(path.parent.glob(".*.tmp"))
