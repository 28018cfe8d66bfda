"""The posterior computations without MCMC: on prior draws of the real model, the numpy forward
pass (adstock kernels, saturation) equals the model's own `channel_contribution` for every adstock
and saturation form, ROAS is incremental revenue over spend, and response curves pass through the
current contribution with mROAS as their slope."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from mmm_platform.mmm.config import parse_config
from mmm_platform.mmm.data import Panel
from mmm_platform.mmm.model import build_mmm
from mmm_platform.mmm.results import (
    channel_roas,
    contributions,
    extract_draws,
    hdi,
    response_curves,
    roas_draws,
)

CHANNELS = {"tv": "brand", "radio": "brand", "search": "performance"}


def synthetic_panel(n_weeks: int = 40, geos: tuple[str, ...] = ("a", "b", "c"), seed: int = 0) -> Panel:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-06", periods=n_weeks, freq="7D")
    rows = []
    for gi, g in enumerate(geos):
        size = 1 + gi
        for d in dates:
            row = {"date": d, "geo": g, "y": size * 1e5 * (1 + 0.05 * rng.normal()), "margin": size * 3e4}
            for c in CHANNELS:
                row[c] = size * 1000 * rng.gamma(2.0, 0.5) * (rng.random() > 0.2)
            row["temp"] = rng.normal()
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame["temp"] -= frame.groupby("geo")["temp"].transform("mean")
    return Panel(
        grain="week",
        as_of=(dates[-1] + pd.Timedelta(days=6)).date(),
        frame=frame,
        channels=list(CHANNELS),
        channel_groups=CHANNELS,
        controls=["temp"],
        control_stats=pd.DataFrame([{"control": "temp", "mean": 0.0, "sd": 1.0, "missing_share": 0.0}]),
        geos=list(geos),
    )


def prior_idata(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with spec.mmm.model:
            # Python ops, not C: 40 draws run fast, and a fresh machine compiles nothing
            prior = pm.sample_prior_predictive(draws=40, random_seed=1, compile_kwargs={"mode": "FAST_COMPILE"})
    return prior.prior


class PriorAsPosterior:
    def __init__(self, prior):
        self.posterior = prior


@pytest.mark.parametrize(
    ("adstock", "saturation"),
    [
        ("delayed", "hill"),  # the default
        ("weibull_pdf", "hill"),
        ("geometric", "logistic"),
    ],
)
def test_numpy_forward_pass_equals_the_models_contributions(adstock, saturation):
    panel = synthetic_panel()
    cfg = parse_config({"adstock": {"form": adstock, "l_max_days": 28}, "saturation": {"form": saturation}})
    spec = build_mmm(panel, cfg)
    prior = prior_idata(spec)
    draws = extract_draws(spec, PriorAsPosterior(prior), n_draws=None)
    ours = contributions(panel.spend(), draws)  # (S, T, G, C) in $
    cc = prior["channel_contribution"].stack(sample=("chain", "draw")).transpose("sample", "date", "geo", "channel")
    model = cc.sel(geo=panel.geos, channel=panel.channels).to_numpy() * draws.target_scale[None, None, :, None]
    # prior draws can be degenerate (a Weibull kernel that underflows everywhere): compare the rest
    ok = np.isfinite(model).all(axis=(1, 2, 3)) & np.isfinite(ours).all(axis=(1, 2, 3))
    assert ok.mean() > 0.8
    np.testing.assert_allclose(ours[ok], model[ok], rtol=1e-6, atol=1e-6 * np.abs(model[ok]).max())


def test_roas_mroas_and_curves_agree_with_each_other():
    panel = synthetic_panel()
    spec = build_mmm(panel, parse_config({}))
    draws = extract_draws(spec, PriorAsPosterior(prior_idata(spec)), n_draws=None)
    roas, contrib = channel_roas(panel, draws)
    spend = panel.spend()
    nat = roas[roas.geo_id == "all"].set_index("channel")
    by_channel = roas_draws(panel, draws)
    for ci, c in enumerate(panel.channels):
        inc = contrib[..., ci].sum(axis=(1, 2))
        assert nat.loc[c, "incremental_revenue"] == pytest.approx(inc.mean(), rel=1e-9)
        assert nat.loc[c, "roas"] == pytest.approx((inc / spend[..., ci].sum()).mean(), rel=1e-9)
        assert nat.loc[c, "roas_lower"] <= nat.loc[c, "roas"] <= nat.loc[c, "roas_upper"]
        # the model comparison's draws are the same ROAS
        assert by_channel[c].mean() == pytest.approx(nat.loc[c, "roas"], rel=1e-9)
    # per-geo rows add up to the national one
    per_geo = roas[roas.geo_id != "all"].groupby("channel")["incremental_revenue"].sum()
    np.testing.assert_allclose(per_geo.loc[nat.index], nat["incremental_revenue"], rtol=1e-9)
    curves = response_curves(panel, draws, max_multiple=2.5, points=51)
    for c in panel.channels:
        cur = curves[(curves.channel == c) & (curves.geo_id == "all")].sort_values("spend")
        at1 = cur[np.isclose(cur.spend_multiple, 1.0)].iloc[0]
        # at current spend the curve is the window's average contribution per period
        assert at1.expected_revenue == pytest.approx(nat.loc[c, "incremental_revenue"] / len(panel.dates), rel=1e-9)
        assert cur.expected_revenue.iloc[0] == 0.0 and cur.spend.max() >= 2 * at1.spend
        # mROAS of the curve at current spend ~ the x1.01 counterfactual of channel_roas
        assert at1.mroas == pytest.approx(nat.loc[c, "mroas"], rel=0.05)
        assert (np.diff(cur.expected_revenue) >= -1e-9).all()


def test_hdi_is_the_shortest_interval():
    x = np.random.default_rng(0).exponential(size=20000)
    lo, hi = hdi(x, 0.9)
    assert lo == pytest.approx(0.0, abs=0.01) and hi == pytest.approx(-np.log(0.1), rel=0.03)


def test_panel_dates_and_weeks():
    p = synthetic_panel(n_weeks=10)
    assert p.last_day == dt.date(2025, 3, 16) and p.spend().shape == (10, 3, 3)


def test_with_clusters_each_clusters_term_is_the_mean_of_its_geos():
    """The geo deviations sum to zero within each cluster (not only over all geos), so a
    cluster's level and its geos' mean deviation are not one likelihood direction split in two."""
    from mmm_platform.mmm.model import GroupedEffect

    geos, cluster_index = [f"g{i}" for i in range(7)], np.array([0, 0, 0, 1, 1, 2, 2])
    effect = GroupedEffect(
        centre=np.log([1.0, 2.0]), channel_sd=np.array([0.5, 0.5]), group_sd=0.5,
        group_index=np.array([0, 0]), groups=["brand"], channels=["tv", "search"], geos=geos,
        cluster_index=cluster_index, clusters=["0", "1", "2"],
    )  # fmt: skip
    with pm.Model(coords={"geo": geos, "channel": ["tv", "search"]}):
        effect.create_variable("m")
        draws = pm.draw([pm.modelcontext(None)[n] for n in ("m", "m_channel_log", "m_cluster_sd", "m_cluster")],
                        draws=200, random_seed=3)  # fmt: skip
    log_v, log_c, c_sd, k = np.log(draws[0]), draws[1], draws[2], draws[3]  # (S, G, C), (S, C), (S, C), (S, C, K)
    cluster_level = log_c[:, None, :] + k.transpose(0, 2, 1)  # (S, K, C)
    # the centred cluster terms keep the prior: standard zero-sum normal once divided by their scale
    assert (k / c_sd[:, :, None]).std() == pytest.approx(np.sqrt(2 / 3), rel=0.1)
    for j in range(3):
        in_j = log_v[:, cluster_index == j, :]
        np.testing.assert_allclose(in_j.mean(axis=1), cluster_level[:, j, :], atol=1e-9)
        assert in_j.std(axis=1).mean() > 0.05  # the geos still differ within a cluster
