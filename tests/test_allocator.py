"""The allocator on response curves whose optimum is known: budget moves towards the higher
marginal ROAS, the expected lift is positive, and every constraint holds exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmm_platform.allocate.optimize import AllocationError, Constraints, allocate

GEOS = ["g1", "g2"]


def curves(params: dict[str, tuple[float, float]], current: dict[str, float], margin_rate=None) -> pd.DataFrame:
    """Concave curves revenue(s) = a * (1 - exp(-s / b)) per (channel, geo), grid 0..2.5x current."""
    rows = []
    for ch, (a, b) in params.items():
        for gi, g in enumerate(GEOS):
            cur = current[ch] * (1 + 0.5 * gi)
            rate = 0.3 if margin_rate is None else margin_rate[gi]
            for x in np.linspace(0, 2.5 * cur, 41):
                rev = a * (1 + 0.5 * gi) * (1 - np.exp(-x / b))
                rows.append(
                    {
                        "channel": ch,
                        "geo_id": g,
                        "spend": x,
                        "current_spend": cur,
                        "expected_revenue": rev,
                        "expected_margin": rate * rev,
                        "spend_multiple": x / cur,
                    }
                )
    df = pd.DataFrame(rows)
    nat = df.groupby(["channel", "spend_multiple"], as_index=False).agg(
        spend=("spend", "sum"), current_spend=("current_spend", "sum"), expected_revenue=("expected_revenue", "sum"),
        expected_margin=("expected_margin", "sum"),
    )  # fmt: skip
    nat["geo_id"] = "all"
    return pd.concat([df, nat], ignore_index=True)


# high: steep curve at current spend (mROAS well above 1); low: nearly flat (mROAS well below 1)
PARAMS = {"high": (5000.0, 2000.0), "low": (800.0, 400.0)}
CURRENT = {"high": 1000.0, "low": 1000.0}


def mroas(ch: str, s: float, gi: int = 0) -> float:
    a, b = PARAMS[ch]
    return a * (1 + 0.5 * gi) / b * np.exp(-s / b)


def test_budget_moves_towards_higher_marginal_roas_and_lift_is_positive():
    assert mroas("high", 1000) > 1 > mroas("low", 1000)
    plan = allocate(curves(PARAMS, CURRENT), Constraints(max_change=0.5))
    by = plan.groupby("channel")[["current_spend", "recommended_spend"]].sum()
    assert by.loc["high", "recommended_spend"] > by.loc["high", "current_spend"]
    assert by.loc["low", "recommended_spend"] < by.loc["low", "current_spend"]
    assert plan["expected_incremental_revenue"].sum() > 0
    # the low channel hits its floor (max change), the high one takes what it frees
    np.testing.assert_allclose(plan.loc[plan.channel == "low", "recommended_spend"], [500.0, 750.0], rtol=1e-9)


def test_constraints_hold_exactly():
    cons = Constraints(total_budget=5500.0, max_change=0.3, channel_bounds={"high": (None, 2900.0)})
    plan = allocate(curves(PARAMS, CURRENT), cons)
    assert plan["recommended_spend"].sum() == pytest.approx(5500.0, rel=1e-12)
    assert plan.loc[plan.channel == "high", "recommended_spend"].sum() <= 2900.0 * (1 + 1e-12)
    change = plan["recommended_spend"] / plan["current_spend"] - 1
    assert change.abs().max() <= 0.3 + 1e-12
    assert (plan["recommended_spend"] >= 0).all()


def test_optimum_equalises_marginal_roas_when_unconstrained():
    params = {"a": (3000.0, 1500.0), "b": (2000.0, 800.0)}
    plan = allocate(curves(params, {"a": 1000.0, "b": 1000.0}), Constraints(max_change=None))
    m = plan["mroas_recommended"].to_numpy()
    # interior optimum: every (channel, geo) at the same marginal return
    assert m.max() - m.min() < 0.02 * m.mean()
    assert plan["recommended_spend"].sum() == pytest.approx(plan["current_spend"].sum(), rel=1e-12)


def test_margin_objective_follows_the_margin_rates():
    # same curves, but geo g2 earns twice the margin per revenue dollar: margin moves spend to g2
    params = {"a": (3000.0, 1500.0), "b": (2000.0, 800.0)}
    df = curves(params, {"a": 1000.0, "b": 1000.0}, margin_rate=[0.2, 0.4])
    rev = allocate(df, Constraints(max_change=None, objective="revenue"))
    mar = allocate(df, Constraints(max_change=None, objective="margin"))
    g2 = lambda p: p.loc[p.geo_id == "g2", "recommended_spend"].sum()  # noqa: E731
    assert g2(mar) > g2(rev)
    assert mar["expected_incremental_margin"].sum() >= rev["expected_incremental_margin"].sum() - 1e-6


def test_infeasible_constraints_are_refused_with_a_reason():
    with pytest.raises(AllocationError, match="outside what the constraints allow"):
        allocate(curves(PARAMS, CURRENT), Constraints(total_budget=20000.0, max_change=0.3))
    with pytest.raises(AllocationError, match="channels the curves do not have"):
        allocate(curves(PARAMS, CURRENT), Constraints(channel_bounds={"radio": (0.0, 1.0)}))
