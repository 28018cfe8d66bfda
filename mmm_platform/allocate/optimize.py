"""Budget allocation over the MMM's response curves (`mmm.response_curves`).

Each (channel, geo) curve gives the expected revenue (and margin) per period as a function of the
period's spend. The allocator chooses spend per channel and geo for a total budget, maximising
expected revenue or contribution margin, under constraints:

- the total budget (equality, exact);
- per-channel bounds on the channel's total spend (absolute $ per period, or multiples of current);
- a maximum change from current spend per channel and geo (a share of current, e.g. 0.3 = +/-30%);
- spend within the curve's grid (a response curve is not extrapolated beyond what it shows).

Curves are interpolated with a monotone cubic (PCHIP), so gradients are continuous; the problem is
solved by SLSQP from the current plan (or its projection on the constraints), then repaired so that
every constraint holds to floating-point precision (bounds clipped, the total matched exactly).

Why not PyMC-Marketing's `BudgetOptimizer` here: it optimises the fitted model object (it needs
the posterior and the PyTensor graph in memory) over a future date window, while this allocator
works from the published response curves, so a plan can be made from the warehouse alone, for any
stored refit. It also has no notion of a maximum change from current spend, or a margin objective
with per-geo margin rates, other than by writing custom constraints and utilities. The PyMC-Marketing
optimizer is used as a cross-check where the model is in memory (`pymc_marketing_plan`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator
from scipy.optimize import minimize


class AllocationError(ValueError):
    """The constraints cannot all hold (e.g. the bounds do not add up to the budget)."""


@dataclass(frozen=True)
class Constraints:
    #: total spend per period; None: the current total
    total_budget: float | None = None
    #: channel -> (lower, upper) spend per period for the channel (all geos); None for no bound
    channel_bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: channel -> (lower, upper) as multiples of the channel's current spend
    channel_bounds_multiple: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: largest relative change of any (channel, geo) spend from current (0.3: within +/-30%)
    max_change: float | None = 0.3
    objective: str = "revenue"  # revenue | margin

    def as_dict(self) -> dict:
        return {
            "total_budget": self.total_budget,
            "channel_bounds": {k: list(v) for k, v in self.channel_bounds.items()},
            "channel_bounds_multiple": {k: list(v) for k, v in self.channel_bounds_multiple.items()},
            "max_change": self.max_change,
            "objective": self.objective,
        }


@dataclass
class Curve:
    channel: str
    geo: str
    current: float
    x_max: float
    revenue: PchipInterpolator
    margin: PchipInterpolator


def curves_from_table(curves: pd.DataFrame) -> list[Curve]:
    """One interpolated curve per (channel, geo) of `mmm.response_curves` (geo 'all' left out: the
    allocator works per geo, the national curve is their sum)."""
    out = []
    for (c, g), df in curves[curves["geo_id"] != "all"].groupby(["channel", "geo_id"], sort=True):
        df = df.sort_values("spend").drop_duplicates("spend")
        x = df["spend"].to_numpy()
        if len(x) < 2 or x[-1] <= 0:
            continue
        out.append(
            Curve(
                channel=c,
                geo=g,
                current=float(df["current_spend"].iloc[0]),
                x_max=float(x[-1]),
                revenue=PchipInterpolator(x, df["expected_revenue"].to_numpy()),
                margin=PchipInterpolator(x, df["expected_margin"].to_numpy()),
            )
        )
    return out


def _bounds(curves: list[Curve], cons: Constraints) -> tuple[np.ndarray, np.ndarray]:
    lo = np.zeros(len(curves))
    hi = np.array([c.x_max for c in curves])
    if cons.max_change is not None:
        cur = np.array([c.current for c in curves])
        lo = np.maximum(lo, cur * (1 - cons.max_change))
        hi = np.minimum(hi, cur * (1 + cons.max_change))
    return lo, hi


def _channel_limits(curves: list[Curve], cons: Constraints) -> dict[str, tuple[float, float]]:
    out = {}
    for ch in sorted({c.channel for c in curves}):
        cur = sum(c.current for c in curves if c.channel == ch)
        lo, hi = 0.0, np.inf
        if ch in cons.channel_bounds:
            a, b = cons.channel_bounds[ch]
            lo, hi = max(lo, a if a is not None else 0.0), min(hi, b if b is not None else np.inf)
        if ch in cons.channel_bounds_multiple:
            a, b = cons.channel_bounds_multiple[ch]
            lo = max(lo, a * cur if a is not None else 0.0)
            hi = min(hi, b * cur if b is not None else np.inf)
        out[ch] = (lo, hi)
    unknown = sorted((set(cons.channel_bounds) | set(cons.channel_bounds_multiple)) - set(out))
    if unknown:
        raise AllocationError(f"bounds given for channels the curves do not have: {', '.join(unknown)}")
    return out


def _repair(x: np.ndarray, lo, hi, groups, glim, budget: float) -> np.ndarray:
    """Move x onto the constraint set: bounds, channel limits, the exact total (a few projection
    sweeps; the SLSQP answer is already within its tolerance)."""
    x = np.clip(x, lo, hi)
    for _ in range(50):
        for ch, idx in groups.items():
            a, b = glim[ch]
            s = x[idx].sum()
            if s < a - 1e-12 or s > b + 1e-12:
                target = min(max(s, a), b)
                x[idx] = _spread(x[idx], lo[idx], hi[idx], target - s)
        gap = budget - x.sum()
        if abs(gap) <= 1e-9 * max(1.0, budget):
            break
        # spread the gap over entries whose channel still has room
        room = np.zeros_like(x, dtype=bool)
        for ch, idx in groups.items():
            a, b = glim[ch]
            s = x[idx].sum()
            if (gap > 0 and s < b) or (gap < 0 and s > a):
                room[idx] = True
        if not room.any():
            break
        x[room] = _spread(x[room], lo[room], hi[room], gap)
    # last cents: put the float residue on the entry with the most room
    gap = budget - x.sum()
    if gap:
        slack = (hi - x) if gap > 0 else (x - lo)
        i = int(np.argmax(slack))
        x[i] += gap
    return x


def _spread(x, lo, hi, delta):
    """Add `delta` to x in proportion to each entry's room towards the bound it moves to."""
    room = (hi - x) if delta > 0 else (x - lo)
    total = room.sum()
    if total <= 0:
        return x
    step = min(abs(delta), total) * np.sign(delta)
    return np.clip(x + step * room / total, lo, hi)


def allocate(curves: pd.DataFrame, cons: Constraints | None = None) -> pd.DataFrame:
    """Recommended spend per (channel, geo) per period; columns as in allocator.recommendations
    (without plan_id and the run's identifiers)."""
    cons = cons or Constraints()
    if cons.objective not in ("revenue", "margin"):
        raise AllocationError(f"objective must be revenue or margin, not {cons.objective!r}")
    cs = curves_from_table(curves)
    if not cs:
        raise AllocationError("no response curve to allocate over")
    cur = np.array([c.current for c in cs])
    budget = float(cur.sum() if cons.total_budget is None else cons.total_budget)
    lo, hi = _bounds(cs, cons)
    glim = _channel_limits(cs, cons)
    groups = {ch: np.array([i for i, c in enumerate(cs) if c.channel == ch]) for ch in glim}
    # feasibility
    g_lo = sum(max(glim[ch][0], lo[idx].sum()) for ch, idx in groups.items())
    g_hi = sum(min(glim[ch][1], hi[idx].sum()) for ch, idx in groups.items())
    for ch, idx in groups.items():
        if glim[ch][0] > hi[idx].sum() + 1e-9 or glim[ch][1] < lo[idx].sum() - 1e-9:
            raise AllocationError(
                f"channel {ch}: its bounds {glim[ch]} cannot be met within the maximum change from current spend "
                f"({lo[idx].sum():,.0f}..{hi[idx].sum():,.0f} per period)"
            )
    if not g_lo - 1e-9 <= budget <= g_hi + 1e-9:
        raise AllocationError(
            f"a total budget of {budget:,.0f} per period is outside what the constraints allow ({g_lo:,.0f}..{g_hi:,.0f})"
        )

    f = [c.margin if cons.objective == "margin" else c.revenue for c in cs]
    df = [fi.derivative() for fi in f]
    scale = max(1.0, abs(sum(fi(ci) for fi, ci in zip(f, cur, strict=True))))

    def obj(x):
        return -sum(fi(xi) for fi, xi in zip(f, x, strict=True)) / scale

    def grad(x):
        return -np.array([d(xi) for d, xi in zip(df, x, strict=True)]) / scale

    constraints = [{"type": "eq", "fun": lambda x: (x.sum() - budget) / max(budget, 1.0)}]
    for ch, idx in groups.items():
        a, b = glim[ch]
        if a > 0:
            constraints.append({"type": "ineq", "fun": lambda x, idx=idx, a=a: (x[idx].sum() - a) / max(a, 1.0)})
        if np.isfinite(b):
            constraints.append({"type": "ineq", "fun": lambda x, idx=idx, b=b: (b - x[idx].sum()) / max(b, 1.0)})
    x0 = _repair(cur.copy(), lo, hi, groups, glim, budget)
    res = minimize(
        obj, x0, jac=grad, bounds=list(zip(lo, hi, strict=True)), constraints=constraints, method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-12},
    )  # fmt: skip
    x = res.x if res.success or obj(res.x) <= obj(x0) else x0
    x = _repair(np.asarray(x, dtype=float).copy(), lo, hi, groups, glim, budget)
    if obj(x) > obj(x0):  # never recommend a plan the curves say is worse than the start
        x = x0
    rows = []
    for c, xi, ci in zip(cs, x, cur, strict=True):
        rows.append(
            {
                "geo_id": c.geo,
                "channel": c.channel,
                "current_spend": ci,
                "recommended_spend": float(xi),
                "expected_revenue_current": float(c.revenue(ci)),
                "expected_revenue_recommended": float(c.revenue(xi)),
                "expected_incremental_revenue": float(c.revenue(xi) - c.revenue(ci)),
                "expected_incremental_margin": float(c.margin(xi) - c.margin(ci)),
                "mroas_current": float(c.revenue.derivative()(ci)),
                "mroas_recommended": float(c.revenue.derivative()(xi)),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["optimizer"] = {"success": bool(res.success), "message": str(res.message), "iterations": int(res.nit)}
    out.attrs["budget"] = budget
    return out


def new_plan_id() -> str:
    return f"plan-{uuid.uuid4().hex[:12]}"
