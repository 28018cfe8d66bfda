"""The backtest harness: folds start at refit weeks and never let a model see its horizon, the
placeholder and the metrics give the known answer on synthetic panels, the MMM's stored refit
forecasts held-out weeks of a small world (and rebuilds its own fit exactly), and the Dagster asset
writes validation.backtest with the contract's columns, saying why a fold without a refit did not
run.

One small world (4 geos x 300 days) and one MCMC fit (2 chains x 100 draws) serve the world tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from test_mmm_recovery import build_world_warehouse

from mmm_platform.mmm.config import ConfigError, load_config
from mmm_platform.mmm.data import Panel, load_panel, national_mean
from mmm_platform.mmm.forecast import extrapolate, forecast
from mmm_platform.validate.backtest import (
    COLUMNS,
    BacktestConfig,
    Fold,
    FoldData,
    Forecast,
    load_backtest_config,
    load_folds,
    make_folds,
    parse_backtest_config,
    placeholder,
    run_backtest,
    score,
    split,
)

CONTRACT = ["run_id", "model", "fold", "train_end", "horizon_days", "mape", "rmse", "interval_coverage", "status"]
SUNDAY = dt.date(2025, 6, 29)


# --- folds and configuration --------------------------------------------------------------------


def test_folds_start_at_refit_weeks_and_their_horizons_follow_the_origin():
    cfg = load_backtest_config()
    assert (cfg.folds, cfg.horizon_days, cfg.models) == (4, 28, ["placeholder", "mmm", "lightweight_mmm", "robyn"])
    folds = make_folds(SUNDAY, cfg)
    assert [f.number for f in folds] == [1, 2, 3, 4]
    assert folds[-1].test_end == SUNDAY
    for f in folds:
        assert f.train_end.weekday() == 6 and f.test_start == f.train_end + dt.timedelta(days=1)
        assert (f.test_end - f.train_end).days == 28
        assert dt.date.fromisoformat(f.refit_week).weekday() == 0
        assert dt.date.fromisoformat(f.refit_week) + dt.timedelta(days=6) == f.train_end
    # origins step_days apart; with step = horizon the horizons tile the span without overlap
    assert [(b.train_end - a.train_end).days for a, b in itertools.pairwise(folds)] == [28, 28, 28]
    assert all(a.test_end <= b.train_end for a, b in itertools.pairwise(folds))
    weekly = make_folds(SUNDAY, cfg.model_copy(update={"step_days": 7}))
    assert [f.refit_week for f in weekly] == ["2025-05-05", "2025-05-12", "2025-05-19", "2025-05-26"]
    with pytest.raises(ValueError, match="not a Sunday"):
        make_folds(SUNDAY - dt.timedelta(days=1), cfg)


def test_the_configuration_refuses_what_it_cannot_run():
    with pytest.raises(ConfigError, match=r"horizon_days.*multiple of 7"):
        parse_backtest_config({"horizon_days": 30})
    with pytest.raises(ConfigError, match=r"unknown model.*prophet"):
        parse_backtest_config({"models": ["mmm", "prophet"]})
    with pytest.raises(ConfigError, match=r"placeholder\.yearly_fourer.*unknown key"):
        parse_backtest_config({"placeholder": {"yearly_fourer": 2}})


# --- the placeholder and the metrics on synthetic panels ------------------------------------------

CHANNELS = {"tv": "brand", "search": "performance"}
LEVEL = {"a": 11.0, "b": 11.7, "c": 12.3}
ELASTICITY = {"tv": 0.08, "search": 0.05}


def loglog_panel(n_weeks: int = 60, noise: float = 0.0, seed: int = 0) -> Panel:
    """Revenue exactly log-linear in log(1 + spend) with geo levels and a trend, times noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_weeks, freq="7D")
    rows = []
    for d in dates:
        for g, level in LEVEL.items():
            spend = {c: rng.gamma(2.0, 2000.0) * (rng.random() > 0.15) for c in CHANNELS}
            log_y = (
                level + sum(ELASTICITY[c] * np.log1p(s) for c, s in spend.items()) + 0.1 * (d - dates[0]).days / 365.25
            )
            rows.append({"date": d, "geo": g, "y": np.exp(log_y + noise * rng.normal()), "margin": 0.0, **spend})
    return Panel(
        grain="week",
        as_of=(dates[-1] + pd.Timedelta(days=6)).date(),
        frame=pd.DataFrame(rows),
        channels=list(CHANNELS),
        channel_groups=CHANNELS,
        controls=[],
        control_stats=pd.DataFrame(columns=["control", "mean", "sd", "missing_share"]),
        geos=list(LEVEL),
    )


def fold_of(panel: Panel) -> Fold:
    return Fold(1, panel.as_of - dt.timedelta(days=28), 28)


def test_the_split_hides_the_horizon_and_a_model_never_sees_it():
    full = loglog_panel(noise=0.02)
    fold = fold_of(full)
    train, future, actual = split(full, fold)
    assert train.dates.max() < pd.Timestamp(fold.test_start) <= future.dates.min()
    assert future.dates.max() + pd.Timedelta(days=6) == pd.Timestamp(fold.test_end)
    assert len(future.dates) == 4 and actual.shape == (4, 3)
    assert {"y", "margin"}.isdisjoint(future.frame.columns)
    cfg = BacktestConfig()
    seen = placeholder(FoldData(fold, train, future, None), cfg, np.random.default_rng(0))
    # the horizon's revenue set to anything: the same forecast
    poisoned = full.frame.copy()
    poisoned.loc[poisoned["date"] >= pd.Timestamp(fold.test_start), "y"] = 1e12
    train2, future2, actual2 = split(replace(full, frame=poisoned), fold)
    again = placeholder(FoldData(fold, train2, future2, None), cfg, np.random.default_rng(0))
    assert np.array_equal(seen.draws, again.draws) and actual2.max() == 1e12


def test_the_placeholder_recovers_a_log_log_world():
    exact = loglog_panel()
    fold = fold_of(exact)
    train, future, actual = split(exact, fold)
    fc = placeholder(FoldData(fold, train, future, None), BacktestConfig(), np.random.default_rng(0))
    assert score(fc, actual, 0.9)["mape"] < 1e-9 and fc.mape_train < 1e-9
    # 3 % noise: errors of that size, and 90 % intervals that hold about 90 % (over worlds)
    scores = []
    for seed in range(10):
        train, future, actual = split(loglog_panel(noise=0.03, seed=seed), fold)
        fc = placeholder(FoldData(fold, train, future, None), BacktestConfig(), np.random.default_rng(seed))
        scores.append(score(fc, actual, 0.9))
    got = pd.DataFrame(scores).mean()
    assert got["mape"] < 0.03 and got["mape_geo"] < 0.04
    assert 0.75 <= got["interval_coverage_geo"] <= 1.0 and 0.75 <= got["interval_coverage"] <= 1.0


def test_the_metrics_are_those_of_the_total_per_period():
    actual = np.array([[60.0, 60.0], [90.0, 110.0]])  # totals 120 and 200
    draws = np.stack([np.full((2, 2), 55.0), np.full((2, 2), 65.0)])  # totals 110 or 130: mean 120
    got = score(Forecast(draws=draws, mape_train=0.5), actual, 0.9)
    assert got["mape"] == pytest.approx((0 / 120 + 80 / 200) / 2)
    assert got["rmse"] == pytest.approx(np.sqrt((0**2 + 80**2) / 2))
    assert got["interval_coverage"] == 0.5  # 120 in [110, 130], 200 not
    assert got["mape_geo"] == pytest.approx((0 + 0 + 30 / 90 + 50 / 110) / 4)
    assert got["interval_coverage_geo"] == 0.5  # 60, 60 in [55, 65]; 90, 110 not
    assert got["mape_train"] == 0.5 and got["periods"] == 2


# --- a small world: the MMM's stored refit, and the asset ---------------------------------------


def _mmm_job() -> dg.JobDefinition:
    from mmm_platform.defs import mmm as m
    from mmm_platform.defs.resources import WarehouseResource
    from mmm_platform.defs.validation import validation_backtest, validation_model_comparison

    defs = dg.Definitions(
        assets=[m.mmm_fit, validation_backtest, validation_model_comparison],
        jobs=[m.mmm_job],
        resources={"duckdb": WarehouseResource()},
        executor=dg.in_process_executor,
    )
    return defs.resolve_job_def("mmm")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The warehouse of a 4-geo, 300-day world (its truth.json in the landing zone), its folds, and
    the stored refit of the newest fold's origin week only (the asset then has three folds without
    one)."""
    from mmm_platform.validate.backtest import backtest_end

    folder = tmp_path_factory.mktemp("backtest_world")
    wh, truth = build_world_warehouse(folder, n_geos=4, n_days=300, seed=5)
    (folder / "landing").mkdir()
    (folder / "landing" / "truth.json").write_text(json.dumps(truth))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMM_WAREHOUSE", str(wh))
        mp.setenv("MMM_LANDING_DIR", str(folder / "landing"))
        mp.setenv("MMM_REPORT_DIR", str(folder / "reports"))
        with duckdb.connect(str(wh), read_only=True) as con:
            folds = make_folds(backtest_end(con, dt.date(2100, 1, 1)), load_backtest_config())
        fit = _mmm_job().execute_in_process(
            partition_key=folds[-1].refit_week,
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey(["mmm", "fit"])],
            run_config={"ops": {"mmm__fit": {"config": {"draws": 100, "tune": 100}}}},
        )
        assert fit.success
        yield wh, folds


def test_the_national_effect_is_carried_forward_with_the_holidays_it_saw():
    # weekly date effects: a level, a holiday week worth +0.3 (seen once), and noise; the
    # forecast's eight weeks hold the holiday's next occurrence
    weeks = pd.date_range("2024-01-01", periods=104, freq="7D")
    past, future = weeks[:96], weeks[96:]
    holiday = (weeks.isocalendar().week.to_numpy() == 47).astype(float)[:, None]
    rng = np.random.default_rng(3)
    values = 0.5 + 0.3 * holiday[:96, 0] + 0.02 * rng.standard_normal((50, 96))
    plain, plain_sd = extrapolate(past, values, future, 0, 4)
    ahead, sd = extrapolate(past, values, future, 0, 4, (holiday[:96], holiday[96:]))
    week47 = int(np.flatnonzero(holiday[96:, 0])[0])
    # with the driver the holiday week is forecast at its effect, the others at the level
    assert ahead[:, week47].mean() == pytest.approx(0.8, abs=0.02)
    assert np.delete(ahead, week47, axis=1).mean() == pytest.approx(0.5, abs=0.02)
    # without it the holiday is missed, and its spikes in the past widen the rule's error
    assert plain[:, week47].mean() == pytest.approx(0.5, abs=0.03)
    assert sd.mean() < 0.6 * plain_sd.mean()


def test_the_stored_refit_forecasts_the_held_out_weeks(world):
    from mmm_platform.defs.validation import stored_refit

    wh, folds = world
    fold, cfg = folds[-1], load_config()
    with duckdb.connect(str(wh), read_only=True) as con:
        loaded = load_folds(con, cfg, [fold], stored_refit)
        refit_panel = load_panel(con, cfg, fold.train_end)
    data = loaded[0].data
    st = data.refit
    # the fold's training rows are what the refit saw, controls included: the horizon shaped nothing
    pd.testing.assert_frame_equal(data.train.frame, refit_panel.frame)
    pd.testing.assert_frame_equal(st.panel.frame, refit_panel.frame, check_dtype=False)
    # the forecast extends the fit: over the refit's weeks it is the model's own expected revenue
    # (2 x 100 draws are under outputs.output_draws: all of them are stored)
    fc = forecast(st.panel, st.draws, st.baseline, data.future, np.random.default_rng(0))
    np.testing.assert_allclose(fc.expected[:, : len(st.panel.dates)].mean(axis=0), st.fitted["mean"], rtol=1e-6)
    # a control's national part, which the date effects absorbed, moves the forecast at the
    # control's own coefficient: one more unit of it in every future week adds gamma x scale
    k = int(np.argmax(np.abs(st.baseline.gamma).mean(axis=0)))
    control = st.panel.controls[k]
    shifted = data.future.frame.assign(**{national_mean(control): data.future.frame[national_mean(control)] + 1.0})
    fc2 = forecast(st.panel, st.draws, st.baseline, replace(data.future, frame=shifted), np.random.default_rng(0))
    added = (fc2.predictive - fc.predictive) / st.draws.target_scale[None, None, :]
    np.testing.assert_allclose(added, np.broadcast_to(st.baseline.gamma[:, k, None, None], added.shape), atol=1e-9)

    rows, predictions = run_backtest(
        loaded, load_backtest_config().model_copy(update={"models": ["placeholder", "mmm"]})
    )
    got = rows.set_index("model")
    print(got[["mape", "rmse", "interval_coverage", "mape_geo", "mape_train"]].to_string())
    assert list(got["status"]) == ["ok", "ok"]
    mmm = got.loc["mmm"]
    assert np.isfinite(mmm["mape"]) and mmm["mape"] < 0.15 and mmm["rmse"] > 0
    # the bar on this world's one fold (3.9 % against 14.3 % when written)
    assert mmm["mape"] < 0.8 * got.loc["placeholder", "mape"]
    assert 0 <= mmm["interval_coverage"] <= 1 and 0 <= mmm["interval_coverage_geo"] <= 1
    assert set(predictions["model"]) == {"actual", "placeholder", "mmm"}


def test_the_asset_writes_the_table_and_names_the_missing_refits(world, tmp_path):
    wh, folds = world
    week = (folds[-1].test_end - dt.timedelta(days=6)).isoformat()  # its last complete week ends the newest horizon
    job = _mmm_job()
    only = [dg.AssetKey(["validation", "backtest"])]
    own = tmp_path / "backtest.yaml"  # the platform's models only: the peers' asset runs are tested in test_peers
    own.write_text(yaml.safe_dump({"models": ["placeholder", "mmm"]}))
    run_config = {"ops": {"validation__backtest": {"config": {"config_path": str(own)}}}}
    first = job.execute_in_process(
        partition_key=week, instance=dg.DagsterInstance.ephemeral(), asset_selection=only, run_config=run_config
    )
    assert first.success
    md = first.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert md["refit_weeks"].value == [f.refit_week for f in folds]
    assert md["backtest_plot"].value.startswith("![backtest_plot](data:image/png;base64,")
    assert Path(md["backtest_plot_file"].value).is_file()
    with duckdb.connect(str(wh)) as con:
        have = {r[0] for r in con.execute("DESCRIBE validation.backtest").fetchall()}
        assert {*CONTRACT, "as_of"} <= have and set(COLUMNS) <= have
        rows = con.execute("SELECT * FROM validation.backtest ORDER BY fold, model").df()
        # a peer model's rows for the same as_of are not the backtest's to replace
        con.execute(
            "INSERT INTO validation.backtest BY NAME SELECT 'peer' AS run_id, as_of, 'robyn' AS model, fold, "
            "'no R here' AS status FROM validation.backtest WHERE model = 'mmm'"
        )
    assert len(rows) == 8 and set(rows["run_id"]) == {first.run_id}
    assert set(rows["as_of"].dt.date) == {folds[-1].test_end} and set(rows["horizon_days"]) == {28}
    status = rows.set_index(["model", "fold"])["status"]
    assert (status["placeholder"] == "ok").all() and status["mmm", 4] == "ok"
    for f in folds[:3]:
        assert status["mmm", f.number] == f"no refit for week {f.refit_week}: backfill mmm/fit over that week"

    again = job.execute_in_process(
        partition_key=week, instance=dg.DagsterInstance.ephemeral(), asset_selection=only, run_config=run_config
    )
    assert again.success
    with duckdb.connect(str(wh), read_only=True) as con:
        runs = dict(
            con.execute("SELECT model, string_agg(DISTINCT run_id) FROM validation.backtest GROUP BY 1").fetchall()
        )
    assert runs == {"placeholder": again.run_id, "mmm": again.run_id, "robyn": "peer"}


def test_the_comparison_asset_sets_the_refit_beside_the_peers_and_the_truth(world, tmp_path):
    from test_peers import fake_peers

    from mmm_platform.validate.peers import Backend

    wh, folds = world
    week = folds[-1].refit_week  # the week whose refit is stored
    peers = fake_peers(tmp_path).model_copy(
        update={"robyn": Backend(env=str(tmp_path / "no_robyn"), runner="peers/robyn/run.py")}
    )
    own = tmp_path / "backtest.yaml"
    own.write_text(yaml.safe_dump({"peers": peers.model_dump()}))
    result = _mmm_job().execute_in_process(
        partition_key=week,
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(["validation", "model_comparison"])],
        run_config={"ops": {"validation__model_comparison": {"config": {"config_path": str(own)}}}},
    )
    assert result.success
    md = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert md["comparison"].value.startswith("| model")
    assert md["peers"].value["lightweight_mmm"]["controls"] == ["temp_mean_c", "discount_depth"]
    assert md["peers"].value["robyn"].startswith("environment ")
    truth = json.loads((Path(str(wh)).parent / "landing" / "truth.json").read_text())["channels"]
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute("SELECT * FROM validation.model_comparison ORDER BY rowid").df()
    contract = ["run_id", "model", "window_days", "channel", "roas", "roas_lower", "roas_upper", "true_roas"]
    assert set(contract) <= set(rows.columns) and set(rows["run_id"]) == {result.run_id}
    assert set(rows["origin"].dt.date) == {folds[-1].train_end}
    mmm = rows[rows["model"] == "mmm"].set_index("channel")
    assert (mmm["status"] == "ok").all() and set(mmm.index) <= set(truth)
    assert (mmm["window_days"] > 90).all() and (mmm["roas_lower"] < mmm["roas_upper"]).all()
    for c, r in mmm.iterrows():
        assert r["true_roas"] == truth[c]["roas"]
    lw = rows[rows["model"] == "lightweight_mmm"]
    assert (lw["window_days"] == 90).all() and (lw["status"] == "ok").sum() >= 3
    assert lw["true_roas"].notna().all()
    robyn = rows[rows["model"] == "robyn"]
    assert robyn["status"].tolist() == [f"environment {tmp_path / 'no_robyn'} missing: run `make peers`"]
