"""Difference in differences: weather shocks defined from the data, read out by a stacked DiD with clean
controls (robust to staggered timing), an event study with a pre-trend test, placebo shocks, the naive
two-way fixed-effects figure beside it, and Callaway-Sant'Anna ATT(g, t) for absorbing adoption.

Stacked DiD (Cengiz, Dube, Lindner & Zipperer 2019; Wing, Freedman & Hollingsworth 2024): every event
is a block of its treated geos and its clean controls (same climate cluster, no shock of any type in the
window +- a buffer) over its own window; geo x block and date x block effects are absorbed, so a geo
that is treated in one block is never a control in a block where its own shock is running (the
"forbidden comparison" of TWFE), and event-specific terms read each event's effect against its own
reference days. Errors are clustered by geo across blocks. No installed package does this for transient
events with an anticipation day, so it is written over linearmodels (iv.fit) and numpy.

The event-time terms are per event (or pooled) for treated cells, by category: `lead` (days -7..-2),
`anticipation` (the eve: storms are forecast, shoppers stock up the day before; it is its own term,
never part of the baseline), `window` (the shock's days: the ATT), `post` (the days after). The
reference is every day before the leads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.linalg import cho_factor, cho_solve

from mmm_platform.causal import fe, iv
from mmm_platform.causal.config import ShockConfig

SHOCK_TYPES = ("storm", "heatwave", "severe_alert")
#: placebo draws needed before their spread is used as the standard error
MIN_PLACEBO_DRAWS = 10


# ---------------------------------------------------------------------------------------------------
# shocks from the data


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) inclusive index pairs of the runs of True in a 1-d boolean array."""
    padded = np.concatenate([[False], flag, [False]]).astype(int)
    edges = np.diff(padded)
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def shock_days(panel: pd.DataFrame, config: ShockConfig) -> pd.DataFrame:
    """geo_id, date and one boolean column per shock type: storm (storm category at or above the
    threshold), severe_alert (an alert on a day that is not a storm day) and heatwave (a run of at least
    `heatwave_min_days` days whose temperature anomaly is at least the threshold in degrees and in
    climatological SDs, in the heatwave months)."""
    out = panel[["geo_id", "date"]].copy()
    out["storm"] = panel["storm_category"].to_numpy() >= config.storm_min_category
    out["severe_alert"] = panel["severe_alert"].to_numpy() & ~out["storm"].to_numpy() if config.alerts else False
    hot = (
        (panel["temp_mean_anom_c"].fillna(-np.inf) >= config.heatwave_min_anomaly_c)
        & (panel["temp_mean_anom_z"].fillna(-np.inf) >= config.heatwave_min_z)
        & panel["date"].dt.month.isin(config.heatwave_months)
    ).to_numpy()
    heat = np.zeros(len(panel), dtype=bool)
    for _, rows in panel.groupby("geo_id", sort=False).indices.items():
        # consecutive calendar days only: a missing day breaks a run
        dates = panel["date"].to_numpy()[rows]
        flag = hot[rows]
        gap = np.concatenate([[False], np.diff(dates).astype("timedelta64[D]").astype(int) != 1])
        for a, b in _runs(flag):
            if b - a + 1 >= config.heatwave_min_days and not gap[a + 1 : b + 1].any():
                heat[rows[a : b + 1]] = True
    out["heatwave"] = heat
    return out


def detect_events(panel: pd.DataFrame, config: ShockConfig) -> pd.DataFrame:
    """One row per event: event_id, type, start, end, geo_ids (tuple), cluster_id, storm_category. A
    geo's run of shock days is an episode; episodes of one type that start within `merge_days` of each
    other are one event (a storm hits several geos of a zone on the same days; climate clusters can
    split a zone, so the merge is not limited to one cluster). cluster_ids: the clusters of its geos."""
    days = shock_days(panel, config)
    cluster = panel["cluster_id"].to_numpy()
    category = panel["storm_category"].to_numpy()
    episodes = []
    for kind in SHOCK_TYPES:
        flag = days[kind].to_numpy()
        for geo, rows in panel.groupby("geo_id", sort=False).indices.items():
            dates = panel["date"].to_numpy()[rows]
            for a, b in _runs(flag[rows]):
                # split a run at missing days
                episodes.append(
                    {
                        "type": kind,
                        "geo_id": geo,
                        "cluster_id": int(cluster[rows[a]]),
                        "start": pd.Timestamp(dates[a]),
                        "end": pd.Timestamp(dates[b]),
                        "storm_category": int(category[rows[a : b + 1]].max()),
                    }
                )
    if not episodes:
        return pd.DataFrame(columns=["event_id", "type", "start", "end", "geo_ids", "cluster_ids", "storm_category"])
    ep = pd.DataFrame(episodes).sort_values(["type", "cluster_id", "start", "geo_id"])
    events = []
    for kind, group in ep.sort_values(["type", "start", "geo_id"]).groupby("type", sort=False):
        current: list[dict] = []
        for row in group.to_dict("records"):
            if current and (row["start"] - current[0]["start"]).days > config.merge_days:
                events.append((kind, current))
                current = []
            current.append(row)
        if current:
            events.append((kind, current))
    rows = []
    for kind, members in events:
        rows.append(
            {
                "type": kind,
                "start": min(m["start"] for m in members),
                "end": max(m["end"] for m in members),
                "geo_ids": tuple(sorted({m["geo_id"] for m in members})),
                "cluster_ids": tuple(sorted({m["cluster_id"] for m in members})),
                "storm_category": max(m["storm_category"] for m in members) if kind == "storm" else None,
            }
        )
    out = pd.DataFrame(rows).sort_values(["start", "type"]).reset_index(drop=True)
    counters: dict[str, int] = {}
    ids = []
    for kind in out["type"]:
        counters[kind] = counters.get(kind, 0) + 1
        ids.append(f"{kind}_{counters[kind]:02d}")
    out.insert(0, "event_id", ids)
    return out


# ---------------------------------------------------------------------------------------------------
# the stacked design


def default_category(config: ShockConfig) -> Callable[[int, int], str | None]:
    """Event time k (days from the start) of an event lasting `duration` days -> its term."""

    def category(k: int, duration: int) -> str | None:
        if k <= config.reference_until_day:
            return None
        if k < -config.anticipation_days:
            return "lead"
        if k < 0:
            return "anticipation"
        if k < duration:
            return "window"
        return "post"

    return category


def event_time_category(reference: int) -> Callable[[int, int], str | None]:
    """A term per event day, except the `reference` day (the saturated event study)."""
    return lambda k, duration: None if k == reference else f"k{k:+d}"


@dataclass(frozen=True)
class Stack:
    #: block, geo_id, date, k (event time), treated, outcome columns, and block_geo / block_date keys
    cells: pd.DataFrame
    #: event_id, n_treated_geos, n_control_geos, control_scope, duration, dropped (reason, when skipped)
    blocks: pd.DataFrame


def clean_controls(
    days: pd.DataFrame, events: pd.DataFrame, geo: pd.DataFrame, config: ShockConfig, pre: int, post: int
) -> dict[str, tuple[list[str], list[str], str]]:
    """Per event: (treated geos, clean controls, scope). Treated geos with another shock inside the window
    are left out; controls are geos of the event's clusters with no shock day of any type in the window +-
    `buffer_days`; fewer than `min_controls` there: clean geos of any cluster."""
    any_shock = days[["storm", "severe_alert", "heatwave"]].any(axis=1).to_numpy()
    shocked = days.loc[any_shock, ["geo_id", "date"]]
    by_geo = {g: np.sort(d["date"].to_numpy()) for g, d in shocked.groupby("geo_id")}
    cluster_of = dict(zip(geo["geo_id"], geo["cluster_id"], strict=True))
    out = {}
    for e in events.itertuples():
        lo = e.start - pd.Timedelta(days=pre + config.buffer_days)
        hi = e.end + pd.Timedelta(days=post + config.buffer_days)
        w_lo, w_hi = e.start - pd.Timedelta(days=pre), e.end + pd.Timedelta(days=post)

        def hits(g: str, a: pd.Timestamp, b: pd.Timestamp) -> np.ndarray:
            d = by_geo.get(g, np.array([], dtype="datetime64[ns]"))
            return d[(d >= np.datetime64(a)) & (d <= np.datetime64(b))]

        treated = []
        for g in e.geo_ids:
            own = hits(g, w_lo, w_hi)
            outside = own[(own < np.datetime64(e.start)) | (own > np.datetime64(e.end))]
            if len(outside) == 0:
                treated.append(g)
        candidates = [g for g in geo["geo_id"] if g not in e.geo_ids and len(hits(g, lo, hi)) == 0]
        same = [g for g in candidates if cluster_of.get(g) in e.cluster_ids]
        if len(same) >= config.min_controls:
            out[e.event_id] = (treated, same, "cluster")
        else:
            out[e.event_id] = (treated, candidates, "all")
    return out


def build_stack(
    panel: pd.DataFrame,
    events: pd.DataFrame,
    controls: dict[str, tuple[list[str], list[str], str]],
    outcomes: Sequence[str],
    pre: int,
    post: int,
    shift_days: int = 0,
) -> Stack:
    """The stacked cells of every event: its treated geos and clean controls over [start - pre, end +
    post] (moved `shift_days` earlier for placebo events)."""
    frames, blocks = [], []
    indexed = panel.set_index(["geo_id", "date"])
    for e in events.itertuples():
        treated, control, scope = controls[e.event_id]
        duration = (e.end - e.start).days + 1
        info = {"event_id": e.event_id, "n_treated_geos": len(treated), "n_control_geos": len(control)}
        info |= {"control_scope": scope, "duration": duration, "dropped": None}
        if not treated or not control:
            blocks.append(info | {"dropped": "no clean treated geo" if not treated else "no clean control"})
            continue
        start = e.start - pd.Timedelta(days=shift_days)
        dates = pd.date_range(start - pd.Timedelta(days=pre), start + pd.Timedelta(days=duration - 1 + post))
        geos = [*treated, *control]
        index = pd.MultiIndex.from_product([geos, dates], names=["geo_id", "date"])
        cells = indexed.reindex(index)[list(outcomes)].reset_index()
        cells = cells.dropna(subset=list(outcomes))
        if cells.empty:
            blocks.append(info | {"dropped": "no data in the window"})
            continue
        cells["block"] = e.event_id
        cells["k"] = (cells["date"] - start).dt.days
        cells["treated"] = cells["geo_id"].isin(treated)
        cells["duration"] = duration
        frames.append(cells)
        blocks.append(info)
    stacked = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not stacked.empty:
        stacked["block_geo"] = stacked["block"] + "|" + stacked["geo_id"]
        stacked["block_date"] = stacked["block"] + "|" + stacked["date"].dt.strftime("%Y-%m-%d")
    return Stack(stacked, pd.DataFrame(blocks))


def add_terms(
    stack: Stack, category: Callable[[int, int], str | None], per_event: bool = True, prefix: str = ""
) -> list[str]:
    """Indicator columns for treated cells by term (per event `block:term`, or pooled `term`), added to
    the stack's cells at once; returns their names."""
    cells = stack.cells
    k, duration, treated = (cells[c].to_numpy() for c in ("k", "duration", "treated"))
    cache: dict[tuple[int, int], str | None] = {}
    labels = np.empty(len(cells), dtype=object)
    for i, (a, b, t) in enumerate(zip(k, duration, treated, strict=True)):
        if not t:
            labels[i] = None
            continue
        key = (int(a), int(b))
        if key not in cache:
            cache[key] = category(*key)
        labels[i] = cache[key]
    has = np.array([lab is not None for lab in labels])
    keys = np.full(len(cells), None, dtype=object)
    block = cells["block"].to_numpy()
    keys[has] = [
        f"{prefix}{b}:{lab}" if per_event else f"{prefix}{lab}" for b, lab in zip(block[has], labels[has], strict=True)
    ]
    names = sorted(set(keys[has]))
    index = {n: j for j, n in enumerate(names)}
    matrix = np.zeros((len(cells), len(names)))
    rows = np.flatnonzero(has)
    matrix[rows, [index[x] for x in keys[has]]] = 1.0
    stack.cells.drop(columns=[c for c in names if c in cells.columns], inplace=True)
    object.__setattr__(
        stack, "cells", pd.concat([stack.cells, pd.DataFrame(matrix, columns=names, index=cells.index)], axis=1)
    )
    return names


@dataclass(frozen=True)
class StackedResult:
    fit: iv.Fit
    stack: Stack
    terms: list[str]
    #: per event: event_id, term estimates (window, anticipation, post, lead) with SEs, pretrend p
    events: pd.DataFrame = field(default_factory=pd.DataFrame)


def fit_stack(stack: Stack, outcome: str, terms: list[str], level: float = 0.95) -> iv.Fit:
    """OLS of the outcome on the terms with geo x block and date x block effects, clustered by geo."""
    return iv.ols_clustered(stack.cells, outcome, terms, ("block_geo", "block_date"), "geo_id", level)


def fit_blocks(stack: Stack, outcome: str, terms: list[str], level: float = 0.95) -> iv.Fit:
    """`fit_stack` for terms that are each specific to one block (per-event terms): the design is then
    block diagonal, so every block is demeaned and solved on its own, and only the cluster scores are
    summed across blocks (exactly the joint fit, at a fraction of its cost)."""
    cells = stack.cells
    geo_codes = fe.codes(cells["geo_id"])
    n_geo = int(geo_codes.max()) + 1
    index = {t: j for j, t in enumerate(terms)}
    params = np.full(len(terms), np.nan)
    bread = np.zeros((len(terms), len(terms)))
    scores = np.zeros((n_geo, len(terms)))
    n_obs = extra = n_params = 0
    for block, rows in cells.groupby("block", sort=False).indices.items():
        own = [t for t in terms if t.startswith(f"{block}:")]
        part = cells.iloc[rows]
        values = part[[outcome, *own]].to_numpy(float)
        factors = [fe.codes(part["geo_id"]), fe.codes(part["date"])]
        values = fe.demean(values, factors)
        y, x = values[:, 0], values[:, 1:]
        keep = np.sqrt((x**2).sum(axis=0)) > 1e-9
        cols = [index[t] for t, k in zip(own, keep, strict=True) if k]
        n_obs += len(rows)
        extra += int(factors[1].max())  # date x block effects less one (geo x block is nested in geo)
        if not cols:
            continue
        xk = x[:, keep]
        xtx = xk.T @ xk
        try:
            inv = cho_solve(cho_factor(xtx), np.eye(len(xtx)))
        except np.linalg.LinAlgError:
            continue
        beta = inv @ (xk.T @ y)
        resid = y - xk @ beta
        params[cols] = beta
        bread[np.ix_(cols, cols)] = inv
        contribution = np.zeros((n_geo, len(cols)))
        np.add.at(contribution, geo_codes[rows], xk * resid[:, None])
        scores[:, cols] += contribution
        n_params += len(cols)
    scale = n_geo / (n_geo - 1) * (n_obs - 1) / max(n_obs - n_params - extra, 1)
    cov = bread @ (scores.T @ scores) @ bread * scale
    ok = ~np.isnan(params)
    cov[~ok, :] = np.nan
    cov[:, ~ok] = np.nan
    names = pd.Index(terms)
    return iv.Fit(
        method="ols",
        outcome=outcome,
        regressors=tuple(terms),
        instruments=(),
        params=pd.Series(params, index=names),
        std_errors=pd.Series(np.sqrt(np.diag(cov)), index=names),
        cov=pd.DataFrame(cov, index=names, columns=names),
        n_obs=n_obs,
        n_clusters=n_geo,
        df_resid=float(n_geo - 1),
        level=level,
    )


def aggregate(fit_: iv.Fit, weights: dict[str, float]) -> dict[str, float]:
    """A weighted mean of terms (weights normalised) with its SE, CI and p-value (t on the fit's df)."""
    total = sum(weights.values())
    w = {k: v / total for k, v in weights.items()}
    est, se = fit_.linear_combination(w)
    crit = fit_.t_crit()
    p = float(2 * stats.t.sf(abs(est / se), fit_.df_resid)) if se > 0 else float("nan")
    return {"estimate": est, "std_error": se, "ci_lower": est - crit * se, "ci_upper": est + crit * se, "p_value": p}


def event_att(
    panel: pd.DataFrame,
    events: pd.DataFrame,
    geo: pd.DataFrame,
    config: ShockConfig,
    outcome: str = "revenue",
    level: float = 0.95,
    shift_days: int = 0,
) -> StackedResult:
    """The stacked DiD of every event with per-event terms (lead, anticipation, window, post); per event
    its ATT (the window term: outcome change per treated geo-day), and the pre-trend test of its lead
    term (days -7..-2 against the reference days)."""
    days = shock_days(panel, config)
    controls = clean_controls(days, events, geo, config, config.pre_days, config.post_days)
    stack = build_stack(panel, events, controls, [outcome], config.pre_days, config.post_days, shift_days)
    terms = add_terms(stack, default_category(config))
    fit_ = fit_blocks(stack, outcome, terms, level)
    placebo = placebo_in_time(panel, events, controls, config, outcome) if shift_days == 0 else {}
    crit = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for b in stack.blocks.itertuples():
        row = b._asdict()
        row.pop("Index")
        for term in ("window", "anticipation", "post", "lead"):
            name = f"{b.event_id}:{term}"
            if name in fit_.params.index:
                row[term] = float(fit_.params[name])
                row[f"{term}_se"] = float(fit_.std_errors[name])
                row[f"{term}_p"] = fit_.pvalue(name)
        draws = placebo.get(b.event_id, {"window": np.array([]), "lead": np.array([])})
        row["n_placebo"] = len(draws["window"])
        for term in ("window", "lead"):
            if term not in row:
                continue
            # the SE: the placebo-in-time spread when there are enough draws, never below the clustered SE
            spread = float(draws[term].std(ddof=1)) if len(draws[term]) >= MIN_PLACEBO_DRAWS else 0.0
            row[f"{term}_se_cluster"] = row[f"{term}_se"]
            row[f"{term}_se"] = max(row[f"{term}_se"], spread)
            row[f"{term}_p"] = float(2 * stats.norm.sf(abs(row[term] / row[f"{term}_se"])))
        if "window" in row:
            row["ci_lower"] = row["window"] - crit * row["window_se"]
            row["ci_upper"] = row["window"] + crit * row["window_se"]
        rows.append(row)
    return StackedResult(fit_, stack, terms, pd.DataFrame(rows))


def placebo_in_time(
    panel: pd.DataFrame,
    events: pd.DataFrame,
    controls: dict[str, tuple[list[str], list[str], str]],
    config: ShockConfig,
    outcome: str = "revenue",
    max_weeks: int = 60,
) -> dict[str, dict[str, np.ndarray]]:
    """Per event, the same 2x2 DiD (window and lead days against the reference days, treated against its
    clean controls) on its own geos at every whole number of weeks earlier or later whose window (+-
    buffer) holds no shock day of those geos: the estimator's distribution under no effect. Its spread
    includes what a geo-clustered SE misses: shocks common to the treated geos of one area (their own
    weather, regional promotions), which every event's geos share."""
    values = grid_of(panel, outcome)
    geos = sorted(panel["geo_id"].unique())
    index = {g: i for i, g in enumerate(geos)}
    dates = pd.DatetimeIndex(sorted(panel["date"].unique()))
    days = shock_days(panel, config)
    shocked = grid_of(days.assign(any=days[["storm", "severe_alert", "heatwave"]].any(axis=1)), "any") > 0
    n_t = len(dates)
    ref_lo, ref_hi = -config.pre_days, config.reference_until_day
    lead_lo, lead_hi = config.reference_until_day + 1, -config.anticipation_days - 1
    out = {}
    for e in events.itertuples():
        treated, control, _ = controls[e.event_id]
        if not treated or not control or e.start not in dates:
            continue
        ti, ci = [index[g] for g in treated], [index[g] for g in control]
        start = dates.get_loc(e.start)
        duration = (e.end - e.start).days + 1
        windows, leads = [], []
        for week in range(-max_weeks, max_weeks + 1):
            t0 = start + 7 * week
            lo, hi = t0 + ref_lo - config.buffer_days, t0 + duration + config.post_days + config.buffer_days
            if week == 0 or lo < 0 or hi > n_t or shocked[ti + ci, lo:hi].any():
                continue

            def did(a: int, b: int, t0: int = t0, ti: list[int] = ti, ci: list[int] = ci) -> float:
                ref = slice(t0 + ref_lo, t0 + ref_hi + 1)
                part = slice(t0 + a, t0 + b + 1)
                return float(
                    values[ti, part].mean() - values[ti, ref].mean() - values[ci, part].mean() + values[ci, ref].mean()
                )

            windows.append(did(0, duration - 1))
            leads.append(did(lead_lo, lead_hi))
        out[e.event_id] = {"window": np.array(windows), "lead": np.array(leads)}
    return out


def grid_of(frame: pd.DataFrame, column: str) -> np.ndarray:
    """(G, T) array of a balanced (geo_id, date) frame's column."""
    ordered = frame.sort_values(["geo_id", "date"])
    return ordered[column].to_numpy(float).reshape(ordered["geo_id"].nunique(), -1)


def treated_geo_days(result: StackedResult, event_id: str) -> int:
    cells = result.stack.cells
    mask = (cells["block"] == event_id) & cells["treated"] & (cells["k"] >= 0) & (cells["k"] < cells["duration"])
    return int(mask.sum())


def pooled_att(
    result: StackedResult, event_ids: Sequence[str], term: str = "window", level: float = 0.95
) -> dict | None:
    """The ATT over the events (weighted by their treated geo-days) with its SE from the per-event SEs
    (events months apart are independent; each SE is its placebo spread or clustered SE, the larger)."""
    table = result.events.set_index("event_id")
    rows = []
    for e in event_ids:
        if e not in table.index or pd.isna(table.loc[e].get(term)) or pd.isna(table.loc[e].get(f"{term}_se")):
            continue
        weight = treated_geo_days(result, e)
        if weight > 0:
            rows.append((weight, float(table.loc[e, term]), float(table.loc[e, f"{term}_se"])))
    if not rows:
        return None
    w = np.array([r[0] for r in rows], dtype=float)
    est = float((w * [r[1] for r in rows]).sum() / w.sum())
    se = float(np.sqrt((w**2 * np.array([r[2] for r in rows]) ** 2).sum()) / w.sum())
    crit = float(stats.norm.ppf(0.5 + level / 2))
    return {
        "estimate": est,
        "std_error": se,
        "ci_lower": est - crit * se,
        "ci_upper": est + crit * se,
        "p_value": float(2 * stats.norm.sf(abs(est / se))) if se > 0 else float("nan"),
        "n_events": len(rows),
        "treated_geo_days": int(w.sum()),
    }


@dataclass(frozen=True)
class EventStudy:
    #: k, estimate, std_error, ci_lower, ci_upper (reference days: k <= reference_until_day)
    coefficients: pd.DataFrame
    pretrend: iv.Test
    fit: iv.Fit


def event_study(
    panel: pd.DataFrame,
    events: pd.DataFrame,
    geo: pd.DataFrame,
    config: ShockConfig,
    outcome: str = "revenue",
    level: float = 0.95,
) -> EventStudy:
    """Pooled over the events given: a term per event day from -7 to the end of the post window (days
    from the start; the reference is every day up to `reference_until_day`), and the pre-trend test:
    the leads -7..-(1 + anticipation) jointly zero (the eve is anticipation, tested apart)."""
    days = shock_days(panel, config)
    controls = clean_controls(days, events, geo, config, config.pre_days, config.post_days)
    stack = build_stack(panel, events, controls, [outcome], config.pre_days, config.post_days)

    def category(k: int, duration: int) -> str | None:
        return None if k <= config.reference_until_day else f"k{k:+03d}"

    terms = add_terms(stack, category, per_event=False)
    fit_ = fit_stack(stack, outcome, terms, level)
    rows = []
    for name in terms:
        lo, hi = fit_.ci(name)
        rows.append(
            {
                "k": int(name[1:]),
                "estimate": float(fit_.params[name]),
                "std_error": float(fit_.std_errors[name]),
                "ci_lower": lo,
                "ci_upper": hi,
            }
        )
    coefficients = pd.DataFrame(rows).sort_values("k").reset_index(drop=True)
    leads = [n for n in terms if config.reference_until_day < int(n[1:]) < -config.anticipation_days]
    pretrend = fit_.wald(leads) if leads else iv.Test("wald", float("nan"), float("nan"))
    return EventStudy(coefficients, pretrend, fit_)


def placebo_shift(panel: pd.DataFrame, events: pd.DataFrame, config: ShockConfig) -> int:
    """The smallest shift of at least `placebo_shift_days` (in weeks, so weekdays line up) for which no
    placebo window (pre to post) overlaps a real shock day of its geos."""
    days = shock_days(panel, config)
    any_shock = days[["storm", "severe_alert", "heatwave"]].any(axis=1)
    shocked = set(zip(days.loc[any_shock, "geo_id"], days.loc[any_shock, "date"], strict=True))
    first = panel["date"].min()
    shift = int(np.ceil(config.placebo_shift_days / 7) * 7)
    for _ in range(20):
        clash = False
        for e in events.itertuples():
            lo = e.start - pd.Timedelta(days=shift + config.pre_days)
            hi = e.end - pd.Timedelta(days=shift - config.post_days)
            if lo < first:
                continue
            window = pd.date_range(lo, hi)
            if any((g, d) in shocked for g in e.geo_ids for d in window):
                clash = True
                break
        if not clash:
            return shift
        shift += 7
    return shift


def twfe(panel: pd.DataFrame, config: ShockConfig, outcome: str = "revenue", level: float = 0.95) -> iv.Fit:
    """The naive figure: the outcome on one indicator per shock type (the geo-day is a shock day) with geo
    and date effects over the whole panel, clustered by geo. Every other geo-day is its control:
    the storm eve (stock-up) sits in the baseline and already or recently hit geos are controls."""
    days = shock_days(panel, config)
    frame = panel[["geo_id", "date", outcome]].copy()
    names = []
    for kind in SHOCK_TYPES:
        if days[kind].any():
            frame[kind] = days[kind].astype(float).to_numpy()
            names.append(kind)
    return iv.fit(frame, outcome, names, absorb=("geo_id", "date"), cluster="geo_id", level=level)


# ---------------------------------------------------------------------------------------------------
# Callaway & Sant'Anna (2021), absorbing adoption, never-treated controls, no covariates


@dataclass(frozen=True)
class CSResult:
    #: group, time, att, std_error
    att_gt: pd.DataFrame
    simple: float
    simple_se: float


def callaway_santanna(frame: pd.DataFrame, y: str, unit: str, time: str, group: str) -> CSResult:
    """ATT(g, t) = the 2x2 DiD of cohort g against the never treated (group 0) between t and the base
    period (g - 1 after treatment, t - 1 before: the `varying` base of the R package `did`), with
    analytic influence-function SEs; the simple aggregate weights post-treatment cells by cohort size,
    its SE including the estimated weights (as `did::aggte(type = "simple")`)."""
    wide = frame.pivot(index=unit, columns=time, values=y)
    g_of = frame.groupby(unit)[group].first().reindex(wide.index).to_numpy()
    times = sorted(wide.columns)
    n = len(wide)
    never = g_of == 0
    p_c = never.mean()
    cohorts = sorted(g for g in set(g_of) if g != 0)
    rows, influence = [], []
    for g in cohorts:
        member = g_of == g
        p_g = member.mean()
        for t in times[1:]:
            base = g - 1 if t >= g else times[times.index(t) - 1]
            if base not in wide.columns:
                continue
            change = (wide[t] - wide[base]).to_numpy()
            mu_g, mu_c = change[member].mean(), change[never].mean()
            psi = member / p_g * (change - mu_g) - never / p_c * (change - mu_c)
            rows.append({"group": g, "time": t, "att": mu_g - mu_c, "std_error": np.sqrt((psi**2).sum()) / n})
            influence.append(psi)
    att = pd.DataFrame(rows)
    psi_gt = np.array(influence)
    post = (att["time"] >= att["group"]).to_numpy()
    share = {g: (g_of == g).mean() for g in cohorts}
    pg = np.array([share[g] for g in att["group"]])
    total = pg[post].sum()
    w = np.where(post, pg / total, 0.0)
    simple = float(w @ att["att"].to_numpy())
    # influence of the estimated weights
    indicator = np.array([(g_of == g).astype(float) - share[g] for g in att["group"]])
    wif = (
        np.where(post[:, None], indicator / total, 0.0)
        - np.outer(np.where(post, pg, 0.0), indicator[post].sum(axis=0)) / total**2
    )
    psi = w @ psi_gt + att["att"].to_numpy() @ wif
    return CSResult(att, simple, float(np.sqrt((psi**2).sum()) / n))
