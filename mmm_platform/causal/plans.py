"""Allocator plans as quasi-experiments.

Each historical plan recommends spend per geo, day and channel for a window (raw.allocator_plans);
executed plans' media rows carry its plan_id (raw.media_spend), modified plans apply part of it,
rejected plans none. The recommendation moves spend in a way the planners' own forecasts did not choose
geo by geo, so within a plan its recommended change is an instrument for the realised change:

    per geo g:  dy_g = revenue change, ds_g = spend change, dr_g = recommended change
                (window mean minus the mean of the `pre_days` before, per geo-day, all channels,
                 divided by the geo's pre-period revenue so that geo size does not drive it)
    2SLS dy_g ~ ds_g  [ds_g ~ dr_g],  robust SE   ->  revenue per extra dollar the plan moved

For a rejected plan the same reduced form (dy on dr) is a placebo: a recommendation nobody followed
must not move revenue. Acceptance is not as good as random when accepted and rejected plans differ
before they start: `balance` compares their pre-period revenue growth (Welch t-test), and says when
there are too few plans per arm to tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mmm_platform.causal import iv

ACCEPTED = {"executed": 1.0, "modified": 0.5}


@dataclass(frozen=True)
class PlanStudy:
    plan_id: str
    status: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    n_geos: int
    executed_rows: int
    #: 2SLS of revenue change on spend change (revenue per plan-moved dollar); placebo reduced form
    #: (revenue change per recommended dollar) for a rejected plan
    method: str
    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    p_value: float
    first_stage_f: float
    #: mean spend change and revenue change per geo-day (dollars)
    spend_change: float
    revenue_change: float
    #: pre-period revenue growth (log, pre window over the window before it), for the balance test
    pre_growth: float


def _changes(plan: pd.DataFrame, panel: pd.DataFrame, spend: pd.DataFrame, pre_days: int) -> pd.DataFrame:
    start, end = plan["date"].min(), plan["date"].max()
    pre_lo = start - pd.Timedelta(days=pre_days)
    before_lo = pre_lo - pd.Timedelta(days=pre_days)

    def mean(frame: pd.DataFrame, column: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
        part = frame[frame["date"].between(lo, hi)]
        return part.groupby(["geo_id", "date"])[column].sum().groupby("geo_id").mean()

    day = pd.Timedelta(days=1)
    revenue_pre = mean(panel, "revenue", pre_lo, start - day)
    out = pd.DataFrame(
        {
            "dy": mean(panel, "revenue", start, end) - revenue_pre,
            "ds": mean(spend, "spend", start, end) - mean(spend, "spend", pre_lo, start - day),
            "dr": mean(plan, "recommended_spend", start, end) - mean(spend, "spend", pre_lo, start - day),
            "scale": revenue_pre,
            "pre_growth": np.log(revenue_pre / mean(panel, "revenue", before_lo, pre_lo - day)),
        }
    ).dropna()
    return out


def plan_studies(
    plans: pd.DataFrame, panel: pd.DataFrame, channel_spend: pd.DataFrame, pre_days: int, level: float = 0.95
) -> list[PlanStudy]:
    out = []
    for plan_id, plan in plans.groupby("plan_id", sort=True):
        status = str(plan["status"].iloc[0])
        if status not in (*ACCEPTED, "rejected"):
            continue  # pending: no outcome yet
        if plan["date"].max() > panel["date"].max():
            continue
        ch = _changes(plan, panel, channel_spend, pre_days)
        if len(ch) < 4:
            continue
        frame = pd.DataFrame(
            {
                "dy": ch["dy"] / ch["scale"],
                "ds": ch["ds"] / ch["scale"],
                "dr": ch["dr"] / ch["scale"],
                "geo_id": ch.index,
            }
        )
        if status in ACCEPTED:
            fit_ = iv.fit(frame, "dy", ["ds"], ["dr"], absorb=(), cluster=None, cov_type="robust", level=level)
            name, method, f_stat = "ds", "plan_iv", fit_.first_stage["ds"].f_stat
        else:
            fit_ = iv.fit(frame, "dy", ["dr"], absorb=(), cluster=None, cov_type="robust", level=level)
            name, method, f_stat = "dr", "plan_placebo", float("nan")
        lo, hi = fit_.ci(name)
        out.append(
            PlanStudy(
                plan_id=str(plan_id),
                status=status,
                window_start=plan["date"].min(),
                window_end=plan["date"].max(),
                n_geos=len(ch),
                executed_rows=int(plan["executed_rows"].sum()),
                method=method,
                estimate=float(fit_.params[name]),
                std_error=float(fit_.std_errors[name]),
                ci_lower=lo,
                ci_upper=hi,
                p_value=fit_.pvalue(name),
                first_stage_f=float(f_stat),
                spend_change=float(ch["ds"].mean()),
                revenue_change=float(ch["dy"].mean()),
                pre_growth=float(ch["pre_growth"].mean()),
            )
        )
    return out


@dataclass(frozen=True)
class Balance:
    n_accepted: int
    n_rejected: int
    difference: float
    p_value: float
    verdict: str


def balance(studies: list[PlanStudy]) -> Balance:
    """Accepted against rejected plans on their pre-period revenue growth. With fewer than two plans in
    an arm the test has no power: acceptance cannot be shown to be as good as random."""
    accepted = np.array([s.pre_growth for s in studies if s.status in ACCEPTED])
    rejected = np.array([s.pre_growth for s in studies if s.status == "rejected"])
    if len(accepted) < 2 or len(rejected) < 2:
        diff = float(accepted.mean() - rejected.mean()) if len(accepted) and len(rejected) else float("nan")
        return Balance(
            len(accepted),
            len(rejected),
            diff,
            float("nan"),
            f"not testable: {len(accepted)} accepted and {len(rejected)} rejected plan(s); acceptance cannot "
            "be shown to be as good as random, so plan-based estimates are a check, not proof",
        )
    test = stats.ttest_ind(accepted, rejected, equal_var=False)
    verdict = (
        "imbalanced: accepted plans followed different revenue trends (acceptance is not as good as random)"
        if test.pvalue < 0.05
        else "balanced on pre-period revenue growth"
    )
    return Balance(len(accepted), len(rejected), float(accepted.mean() - rejected.mean()), float(test.pvalue), verdict)
