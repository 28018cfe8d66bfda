"""Every causal estimator on a small table with an answer checkable by hand, and against published
results on datasets that packages ship (docs/causal.md, "Published results")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from linearmodels import PanelOLS

from mmm_platform.causal import did, experiments, fe, iv, plans


def test_within_transformation_and_absorbed_dof_by_hand() -> None:
    # 2 geos x 3 days: y = geo effect + day effect exactly, so nothing is left after the within step
    geo = np.array([0, 0, 0, 1, 1, 1])
    day = np.array([0, 1, 2, 0, 1, 2])
    y = np.array([1.0, 2.0, 4.0, 11.0, 12.0, 14.0])
    assert np.allclose(fe.demean(y, [geo, day]), 0.0)
    assert fe.absorbed_dof([geo, day]) == 2 + 3 - 1
    # geo effects are nested in geo clusters: only the day effects count for a clustered covariance
    assert fe.extra_df([geo, day], geo) == 2
    # unbalanced (a cell missing): the same residual as a regression on every dummy
    rng = np.random.default_rng(3)
    g, t = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    keep = np.ones(20, dtype=bool)
    keep[[3, 11]] = False
    v = rng.normal(size=20)[keep]
    dummies = np.column_stack([np.eye(4)[g[keep]], np.eye(5)[t[keep]][:, 1:]])
    expected = v - dummies @ np.linalg.lstsq(dummies, v, rcond=None)[0]
    assert np.allclose(fe.demean(v, [g[keep], t[keep]]), expected, atol=1e-8)


def test_fe_ols_matches_paneols_with_clusters() -> None:
    rng = np.random.default_rng(0)
    g, t = np.repeat(np.arange(12), 30), np.tile(np.arange(30), 12)
    x = rng.normal(size=g.size) + 0.3 * g
    y = 2.0 * x + g + 0.1 * t + rng.normal(size=g.size)
    frame = pd.DataFrame({"geo_id": g, "date": t, "x": x, "y": y})
    ours = iv.fit(frame, "y", ["x"])
    panel = PanelOLS(
        frame.set_index(["geo_id", "date"])["y"],
        frame.set_index(["geo_id", "date"])[["x"]],
        entity_effects=True,
        time_effects=True,
    ).fit(cov_type="clustered", cluster_entity=True)
    assert ours.params["x"] == pytest.approx(panel.params["x"], rel=1e-10)
    # PanelOLS counts every absorbed effect; the areg/reghdfe convention leaves out the nested geo effects
    assert ours.std_errors["x"] == pytest.approx(panel.std_errors["x"], rel=0.03)
    numpy_fit = iv.ols_clustered(frame, "y", ["x"], ("geo_id", "date"), "geo_id")
    assert numpy_fit.params["x"] == pytest.approx(ours.params["x"], rel=1e-10)
    assert numpy_fit.std_errors["x"] == pytest.approx(ours.std_errors["x"], rel=1e-8)


def test_iv_by_hand_wald_ratio() -> None:
    # one binary instrument: 2SLS = (mean y | z=1 - mean y | z=0) / (mean x | z=1 - mean x | z=0)
    frame = pd.DataFrame({"z": [0, 0, 1, 1], "x": [1.0, 2.0, 4.0, 5.0], "y": [3.0, 5.0, 9.0, 13.0]})
    f = iv.fit(frame, "y", ["x"], ["z"], absorb=(), cluster=None)
    assert f.params["x"] == pytest.approx((11.0 - 4.0) / (4.5 - 1.5))


def test_mroz_two_stage_least_squares_reproduces_wooldridge() -> None:
    """Wooldridge Ex. 15.5 / 15.7-15.8: educ .0614 (.0314), first-stage F 55.40, Sargan .378."""
    from linearmodels.datasets import mroz

    data = mroz.load().dropna()
    data["lwage"], data["expersq"] = np.log(data["wage"]), data["exper"] ** 2
    f = iv.fit(data, "lwage", ["educ"], ["fatheduc", "motheduc"], exog=["exper", "expersq"], absorb=(), cluster=None)
    assert f.params["educ"] == pytest.approx(0.0614, abs=5e-5)
    assert f.std_errors["educ"] == pytest.approx(0.0314, abs=5e-5)
    assert f.first_stage["educ"].f_stat == pytest.approx(55.40, abs=0.01)
    assert f.tests["sargan"].stat == pytest.approx(0.378, abs=1e-3)
    assert f.tests["wu_hausman"].stat == pytest.approx(2.79, abs=0.01)
    assert iv.fit(data, "lwage", ["educ"], absorb=(), cluster=None).params["educ"] == pytest.approx(0.1086, abs=1e-4)


def test_forecast_as_control_collapses_the_instrument() -> None:
    """observed = forecast + error: with the forecast as a control the error IS the regressor (pitfall 5)."""
    rng = np.random.default_rng(1)
    n = 2000
    forecast, error = rng.normal(size=n), rng.normal(size=n)
    observed = forecast + error
    y = 1.0 * observed + 0.5 * forecast**2 + rng.normal(size=n)  # demand reacts to the forecast
    frame = pd.DataFrame({"w": observed, "f": forecast, "e": error, "y": y})
    collapsed = iv.fit(frame, "y", ["w"], ["e"], exog=["f"], absorb=(), cluster=None, diagnostics="first_stage")
    assert collapsed.first_stage["w"].partial_r2 == pytest.approx(1.0, abs=1e-9)
    assert collapsed.first_stage["w"].f_stat > 1e12


def _shock_panel() -> tuple[pd.DataFrame, pd.DataFrame]:
    """4 geos x 40 days, revenue 100 + geo + day effects; geos a, b get a storm on days 30-31 (-50), the
    eve +20; c, d are clean controls in the same cluster."""
    dates = pd.date_range("2024-03-01", periods=40)
    rows = []
    for i, g in enumerate("abcd"):
        for k, d in enumerate(dates):
            storm = g in "ab" and k in (30, 31)
            revenue = 100 + 10 * i + (k % 7) - 50 * storm + 20 * (g in "ab" and k == 29)
            rows.append(
                {
                    "geo_id": g,
                    "date": d,
                    "revenue": float(revenue),
                    "storm_category": 2 if storm else 0,
                    "severe_alert": storm,
                    "temp_mean_anom_c": 0.0,
                    "temp_mean_anom_z": 0.0,
                    "cluster_id": 0,
                }
            )
    geo = pd.DataFrame({"geo_id": list("abcd"), "cluster_id": 0})
    return pd.DataFrame(rows), geo


def test_stacked_did_by_hand() -> None:
    panel, geo = _shock_panel()
    config = did.ShockConfig(placebo_shift_days=7)
    events = did.detect_events(panel, config)
    assert list(events["type"]) == ["storm"] and events.iloc[0]["geo_ids"] == ("a", "b")
    result = did.event_att(panel, events, geo, config)
    row = result.events.iloc[0]
    assert row["window"] == pytest.approx(-50.0, abs=1e-9)  # exact: no noise
    assert row["anticipation"] == pytest.approx(20.0, abs=1e-9)  # the eve, not baseline
    assert row["lead"] == pytest.approx(0.0, abs=1e-9)
    # the naive TWFE puts the eve's stock-up in the baseline: not exactly -50
    assert did.twfe(panel, config).params["storm"] != pytest.approx(-50.0, abs=0.5)


def test_stacked_did_reproduces_callaway_santanna_on_mpdta() -> None:
    """mpdta (moderndid): CS simple ATT -.0400 (.0120) and ATT(g,t) from the R `did` vignette; the stacked
    design with never-treated controls and event-time terms gives the same ATT(g,t)."""
    moderndid = pytest.importorskip("moderndid")
    data = moderndid.load_mpdta().to_pandas()
    cs = did.callaway_santanna(data, "lemp", "countyreal", "year", "first.treat")
    assert cs.simple == pytest.approx(-0.0400, abs=5e-5)
    assert cs.simple_se == pytest.approx(0.0120, abs=5e-4)
    att = cs.att_gt.set_index(["group", "time"])["att"]
    for key, value in {
        (2004, 2004): -0.0105,
        (2004, 2006): -0.1373,
        (2006, 2007): -0.0412,
        (2007, 2007): -0.0261,
    }.items():
        assert att[key] == pytest.approx(value, abs=5e-5)
    frames = []
    for g in (2004, 2006, 2007):
        b = data[data["first.treat"].isin([g, 0])].copy()
        b["block"], b["k"], b["treated"], b["duration"] = str(g), b["year"] - g, b["first.treat"] == g, 99
        b["geo_id"], b["date"] = b["countyreal"], b["year"]
        frames.append(b)
    cells = pd.concat(frames, ignore_index=True)
    cells["block_geo"] = cells["block"] + "|" + cells["geo_id"].astype(str)
    cells["block_date"] = cells["block"] + "|" + cells["year"].astype(str)
    stack = did.Stack(cells, pd.DataFrame())
    terms = did.add_terms(stack, did.event_time_category(-1))
    fit = did.fit_stack(stack, "lemp", terms)
    assert fit.params["2004:k+2"] == pytest.approx(-0.1373, abs=5e-5)
    sizes = data.groupby("countyreal")["first.treat"].first().value_counts()
    simple = did.aggregate(fit, {t: sizes[int(t[:4])] for t in terms if int(t.split(":k")[1]) >= 0})
    assert simple["estimate"] == pytest.approx(-0.0400, abs=5e-5)
    assert simple["std_error"] == pytest.approx(0.0120, abs=1e-3)
    # the blockwise solver equals the joint one
    blocks = did.fit_blocks(stack, "lemp", terms)
    assert np.allclose(blocks.params, fit.params) and np.allclose(blocks.std_errors, fit.std_errors, rtol=1e-8)


def test_paired_experiment_readout_by_hand() -> None:
    dates = pd.date_range("2024-01-01", periods=20)
    rows = []
    for g, base, lift in (("t1", 100.0, 1.1), ("c1", 200.0, 1.0), ("t2", 50.0, 1.3), ("c2", 50.0, 1.1)):
        for k, d in enumerate(dates):
            rows.append({"geo_id": g, "date": d, "revenue": base * (lift if k >= 10 else 1.0)})
    panel = pd.DataFrame(rows)
    design = pd.DataFrame(
        {
            "experiment_id": "E",
            "experiment_type": "geo_split",
            "geo_id": ["t1", "c1", "t2", "c2"],
            "channel": "tv",
            "start_date": dates[10],
            "end_date": dates[19],
            "is_treatment": [True, False, True, False],
            "spend_delta": [100.0, 0.0, 100.0, 0.0],
            "pair_id": ["p1", "p1", "p2", "p2"],
        }
    )
    geo = pd.DataFrame({"geo_id": ["t1", "c1", "t2", "c2"], "latitude": 0.0, "longitude": 0.0, "population": 1e5})
    spend = pd.DataFrame({"geo_id": ["t1", "t2"], "date": dates[10], "channel": "tv", "spend": [150.0, 150.0]})
    r = experiments.readout(panel, design, geo, spend)
    d1, d2 = np.log(1.1), np.log(1.3) - np.log(1.1)
    assert r.log_lift == pytest.approx((d1 + d2) / 2)
    assert r.log_se == pytest.approx(abs(d1 - d2) / 2)
    assert r.placebo_log_lift == pytest.approx(0.0)
    assert r.lift == pytest.approx((110 + 65) * 10 * (1 - np.exp(-(d1 + d2) / 2)))
    rows_ = experiments.lift_test_rows(r)
    pooled = rows_[rows_["grain"] == "pooled"].iloc[0]
    assert pooled["delta_x"] == pytest.approx(200 / 20) and pooled["x"] == pytest.approx(100 / 20)
    assert pooled["delta_y"] == pytest.approx(r.lift / 20) and pooled["sigma"] == pytest.approx(r.lift_se / 20)


def test_match_pairs_avoids_geos_another_experiment_put_in_one_arm() -> None:
    geo = pd.DataFrame(
        {
            "geo_id": ["a", "b", "c", "d"],
            "latitude": [40, 40.1, 45, 45.1],
            "longitude": [-100, -100, -80, -80],
            "population": [1e5, 1e5, 1e5, 1e5],
        }
    )
    assert sorted(experiments.match_pairs(["a", "c"], ["b", "d"], geo)) == [("a", "b"), ("c", "d")]
    forced = experiments.match_pairs(["a", "c"], ["b", "d"], geo, {frozenset(("a", "b"))})
    assert sorted(forced) == [("a", "d"), ("c", "b")]


def test_plan_iv_and_placebo_by_hand() -> None:
    dates = pd.date_range("2024-01-01", periods=28)
    rows, spend_rows, plan_rows = [], [], []
    for i, g in enumerate("abcdef"):
        scale = 1000.0
        for k, d in enumerate(dates):
            recommended = (10.0 * (i + 1)) if k >= 14 else 0.0  # the executed plan adds spend from day 14
            extra = recommended * (1.0 + 0.2 * (-1) ** i) if k >= 14 else 0.0  # delivered: not exactly the plan
            noise = 3.0 * (-1) ** (i // 2) if k >= 14 else 0.0  # revenue moves for other reasons too
            rows.append({"geo_id": g, "date": d, "revenue": scale + 2.0 * extra + noise})
            spend_rows.append({"geo_id": g, "date": d, "channel": "search", "spend": 100.0 + extra})
            if k >= 14:
                plan_rows.append(
                    {
                        "plan_id": "P1",
                        "status": "executed",
                        "created_at": dates[11],
                        "geo_id": g,
                        "date": d,
                        "channel": "search",
                        "recommended_spend": 100.0 + recommended,
                        "spend": 100.0 + extra,
                        "executed_rows": 1,
                    }
                )
    study = plans.plan_studies(pd.DataFrame(plan_rows), pd.DataFrame(rows), pd.DataFrame(spend_rows), pre_days=7)
    assert len(study) == 1 and study[0].method == "plan_iv"
    assert study[0].estimate == pytest.approx(2.0, abs=0.25)  # revenue per extra dollar
    assert study[0].ci_lower < 2.0 < study[0].ci_upper and study[0].first_stage_f > 10
    assert "not testable" in plans.balance(study).verdict
