"""Experiment readouts: every experiment in raw.experiments read out by a paired DiD over its window.

Per geo, the log of its mean revenue in the window over its mean in the pre-period (as many days as the
window, ending the day before it starts); per matched pair, treated minus control; the lift is the mean
over pairs, its SE the spread across pairs / sqrt(pairs), the interval on t(pairs - 1). The pairs are the
design's strata (`pair_id` when the table carries it); without them, treated and control geos are
matched one to one by an optimal assignment on distance and size (how matched markets are built),
never pairing two geos that another experiment put in one arm (matched markets are re-used), so
the readout still differences out what pairs share (area, weather, size). The log lift d converts to
dollars on the treated geos' revenue R in the window: lift = R (1 - exp(-d)).

The same log DiD between the two halves of the pre-period is the placebo (pre-trend) test.
`lift_test_rows` turns a readout into PyMC-Marketing's `add_lift_test_measurements` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import linear_sum_assignment

from mmm_platform.features.spatial import haversine_km


@dataclass(frozen=True)
class Readout:
    experiment_id: str
    channel: str
    experiment_type: str
    start: pd.Timestamp
    end: pd.Timestamp
    pre_start: pd.Timestamp
    pairs: list[tuple[str, str]]
    #: mean over pairs of the treated-minus-control log change, its SE, the t df
    log_lift: float
    log_se: float
    df: int
    #: revenue of the treated geos over the window (observed)
    treated_revenue: float
    #: per treated geo: observed window revenue
    treated_revenue_by_geo: dict[str, float]
    #: the same DiD between the halves of the pre-period: estimate, SE
    placebo_log_lift: float
    placebo_log_se: float
    spend_delta: float
    #: treated geos' spend on the channel in the window (observed)
    treated_spend: float
    treated_spend_by_geo: dict[str, float]
    spend_delta_by_geo: dict[str, float]
    level: float = 0.95

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def n_treated(self) -> int:
        return len(self.pairs)

    def _crit(self) -> float:
        return float(stats.t.ppf(0.5 + self.level / 2, self.df))

    def dollars(self, log_value: float) -> float:
        return float(self.treated_revenue * (1 - np.exp(-log_value)))

    @property
    def lift(self) -> float:
        return self.dollars(self.log_lift)

    @property
    def lift_se(self) -> float:
        """Delta method: d lift / d log_lift = R exp(-d)."""
        return float(self.treated_revenue * np.exp(-self.log_lift) * self.log_se)

    @property
    def ci(self) -> tuple[float, float]:
        half = self._crit() * self.log_se
        return self.dollars(self.log_lift - half), self.dollars(self.log_lift + half)

    @property
    def p_value(self) -> float:
        return float(2 * stats.t.sf(abs(self.log_lift / self.log_se), self.df))

    @property
    def placebo_p_value(self) -> float:
        if not self.placebo_log_se > 0:
            return float("nan")
        return float(2 * stats.t.sf(abs(self.placebo_log_lift / self.placebo_log_se), self.df))

    @property
    def lift_share(self) -> float:
        """Lift over the treated geos' counterfactual revenue."""
        return float(np.expm1(self.log_lift))


def match_pairs(
    treated: list[str], control: list[str], geo: pd.DataFrame, same_arm: set[frozenset[str]] = frozenset()
) -> list[tuple[str, str]]:
    """One control per treated geo: the assignment of least total cost, distance / 300 km plus
    |log size ratio| / 0.1 with size = population^0.35 (nearby geos of similar size). Pairs in
    `same_arm` (two geos that another experiment on the same matched markets put in one arm, so they
    cannot be a pair of the design) are avoided."""
    info = geo.set_index("geo_id")
    t, c = info.loc[treated], info.loc[control]
    distance = haversine_km(
        t["latitude"].to_numpy()[:, None],
        t["longitude"].to_numpy()[:, None],
        c["latitude"].to_numpy()[None, :],
        c["longitude"].to_numpy()[None, :],
    )
    size = 0.35 * np.abs(np.log(t["population"].to_numpy()[:, None] / c["population"].to_numpy()[None, :]))
    cost = distance / 300.0 + size / 0.1
    for i, a in enumerate(treated):
        for j, b in enumerate(control):
            if frozenset((a, b)) in same_arm:
                cost[i, j] += 1e6
    rows, cols = linear_sum_assignment(cost)
    return [(treated[r], control[k]) for r, k in zip(rows, cols, strict=True)]


def same_arm_pairs(experiments: pd.DataFrame) -> set[frozenset[str]]:
    """Geo pairs that some experiment put in the same arm: matched markets are re-used across
    experiments with a fresh coin per pair, so a design pair is always split."""
    out: set[frozenset[str]] = set()
    for _, rows in experiments.groupby("experiment_id"):
        for _, arm in rows.groupby("is_treatment"):
            geos = sorted(arm["geo_id"])
            out |= {frozenset((a, b)) for i, a in enumerate(geos) for b in geos[i + 1 :]}
    return out


def _pairs(rows: pd.DataFrame, geo: pd.DataFrame, same_arm: set[frozenset[str]]) -> list[tuple[str, str]]:
    treated = sorted(rows.loc[rows["is_treatment"], "geo_id"])
    control = sorted(rows.loc[~rows["is_treatment"], "geo_id"])
    if rows["pair_id"].notna().all():
        pairs = []
        for _, group in rows.groupby("pair_id"):
            t = group.loc[group["is_treatment"], "geo_id"].tolist()
            c = group.loc[~group["is_treatment"], "geo_id"].tolist()
            if len(t) == 1 and len(c) == 1:
                pairs.append((t[0], c[0]))
        if len(pairs) == len(treated):
            return sorted(pairs)
    if len(treated) != len(control):
        # unequal arms: pair as many as possible, the rest are left out
        n = min(len(treated), len(control))
        return match_pairs(treated[:n], control, geo, same_arm)
    return sorted(match_pairs(treated, control, geo, same_arm))


def readout(
    panel: pd.DataFrame,
    rows: pd.DataFrame,
    geo: pd.DataFrame,
    channel_spend: pd.DataFrame,
    level: float = 0.95,
    same_arm: set[frozenset[str]] = frozenset(),
) -> Readout:
    """The paired log DiD of one experiment (its rows of raw.experiments)."""
    first = rows.iloc[0]
    start, end = pd.Timestamp(first["start_date"]), pd.Timestamp(first["end_date"])
    days = (end - start).days + 1
    pre_start = start - pd.Timedelta(days=days)
    pairs = _pairs(rows, geo, same_arm)
    geos = sorted({g for pair in pairs for g in pair})
    part = panel.loc[panel["geo_id"].isin(geos) & panel["date"].between(pre_start, end), ["geo_id", "date", "revenue"]]
    window = part[part["date"] >= start].groupby("geo_id")["revenue"]
    pre = part[part["date"] < start]
    half = pre_start + pd.Timedelta(days=days // 2)
    change = np.log(window.mean() / pre.groupby("geo_id")["revenue"].mean())
    placebo = np.log(
        pre[pre["date"] >= half].groupby("geo_id")["revenue"].mean()
        / pre[pre["date"] < half].groupby("geo_id")["revenue"].mean()
    )
    diffs = np.array([change[t] - change[c] for t, c in pairs])
    placebo_diffs = np.array([placebo[t] - placebo[c] for t, c in pairs])
    k = len(pairs)
    treated = [t for t, _ in pairs]
    spend = channel_spend.loc[
        channel_spend["geo_id"].isin(treated)
        & channel_spend["date"].between(start, end)
        & (channel_spend["channel"] == first["channel"])
    ]
    spend_by_geo = spend.groupby("geo_id")["spend"].sum().reindex(treated, fill_value=0.0)
    delta_by_geo = rows.set_index("geo_id")["spend_delta"].reindex(treated).fillna(0.0)
    window_sum = window.sum()
    return Readout(
        experiment_id=str(first["experiment_id"]),
        channel=str(first["channel"]),
        experiment_type=str(first["experiment_type"]),
        start=start,
        end=end,
        pre_start=pre_start,
        pairs=pairs,
        log_lift=float(diffs.mean()),
        log_se=float(diffs.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
        df=max(k - 1, 1),
        treated_revenue=float(window_sum[treated].sum()),
        treated_revenue_by_geo={g: float(window_sum[g]) for g in treated},
        placebo_log_lift=float(placebo_diffs.mean()),
        placebo_log_se=float(placebo_diffs.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
        spend_delta=float(delta_by_geo.sum()),
        treated_spend=float(spend_by_geo.sum()),
        treated_spend_by_geo={g: float(v) for g, v in spend_by_geo.items()},
        spend_delta_by_geo={g: float(v) for g, v in delta_by_geo.items()},
        level=level,
    )


def readouts(
    panel: pd.DataFrame, experiments: pd.DataFrame, geo: pd.DataFrame, channel_spend: pd.DataFrame, level: float
) -> list[Readout]:
    same_arm = same_arm_pairs(experiments) if experiments["pair_id"].isna().any() else set()
    return [
        readout(panel, rows, geo, channel_spend, level, same_arm)
        for _, rows in experiments.groupby("experiment_id", sort=True)
        if rows["is_treatment"].any() and (~rows["is_treatment"]).any()
    ]


def lift_test_rows(r: Readout) -> pd.DataFrame:
    """PyMC-Marketing lift-test rows (`add_lift_test_measurements`): channel, x (the channel's spend per
    treated geo-day without the test), delta_x (the test's spend change per geo-day), delta_y (the
    revenue lift per geo-day), sigma (its SE), per geo-day units (multiply all four by 7 for a weekly
    model). One pooled row (geo 'all') and one per treated geo: the experiment's relative lift on that
    geo's revenue, sigma inflated by sqrt(treated geos) so that the geo rows together carry exactly
    the experiment's information (they share one estimate; a model must not count it n times)."""
    days = r.days
    n = r.n_treated
    factor = np.exp(-r.log_lift)
    rows = [
        {
            "experiment_id": r.experiment_id,
            "grain": "pooled",
            "geo": "all",
            "channel": r.channel,
            "x": (r.treated_spend - r.spend_delta) / (n * days),
            "delta_x": r.spend_delta / (n * days),
            "delta_y": r.lift / (n * days),
            "sigma": r.lift_se / (n * days),
            "days": days,
        }
    ]
    for g, revenue in r.treated_revenue_by_geo.items():
        rows.append(
            {
                "experiment_id": r.experiment_id,
                "grain": "geo",
                "geo": g,
                "channel": r.channel,
                "x": (r.treated_spend_by_geo[g] - r.spend_delta_by_geo[g]) / days,
                "delta_x": r.spend_delta_by_geo[g] / days,
                "delta_y": revenue * (1 - factor) / days,
                "sigma": revenue * factor * r.log_se * np.sqrt(n) / days,
                "days": days,
            }
        )
    out = pd.DataFrame(rows)
    # PyMC-Marketing needs delta_x and delta_y of one sign (its Gamma likelihood is on |delta_y|)
    out["consistent_sign"] = np.sign(out["delta_x"]) == np.sign(out["delta_y"])
    out["start_date"], out["end_date"] = r.start.date(), r.end.date()
    return out
