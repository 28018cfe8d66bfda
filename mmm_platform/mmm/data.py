"""The model's input panel, read from the feature marts up to a refit date.

One row per geo and period (day, or ISO week from Monday) with the target, the margin, one spend
column per channel and the controls the configuration names. Channels, their groups and the geos
come from the data: `features.media_channel_day` (spend by channel) and `staging.stg_media_spend`
(`channel_group`). A refit sees only days up to its `as_of` date; at weekly grain only complete
weeks (7 observed days) are used. A backtest reads past a refit's date with `fit_until`: the rows
after it are shaped by what the refit saw, so its model meets them as it met its own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from mmm_platform.mmm.config import MMMConfig

GEO_DAY = "features.geo_day"
MEDIA = "features.media_channel_day"
GROUPS = "staging.stg_media_spend"
CLUSTERS = "features.geo_cluster"


class DataError(ValueError):
    """The warehouse cannot give the model what it needs (no data before the refit date, no media...)."""


@dataclass
class Panel:
    """The model's input at one grain: `frame` has `date`, `geo`, the target (`y`), `margin`, one
    column per channel (spend, $ per period) and one per control (standardised)."""

    grain: str
    as_of: dt.date
    frame: pd.DataFrame
    channels: list[str]
    channel_groups: dict[str, str]
    controls: list[str]
    #: mean and sd used to standardise each control (raw units), and its share of missing values
    control_stats: pd.DataFrame
    geos: list[str]
    clusters: dict[str, int] = field(default_factory=dict)
    #: dropped, with the reason (constant control, channel without spend ...)
    dropped: dict[str, str] = field(default_factory=dict)
    #: columns of `frame` the model does not see: standardised controls that are the same in every
    #: geo on each date (holidays, paydays), which the date effects absorb in the fit; known for
    #: future periods, they carry the date effects forward in a forecast (`forecast.py`). Beside
    #: them, with date effects, `national_mean(c)` of each control `c`: its mean over geos on each
    #: date, net of each geo's mean and cycle, the part of it the date effects absorb
    national: list[str] = field(default_factory=list)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(sorted(self.frame["date"].unique()))

    @property
    def first_day(self) -> dt.date:
        return self.frame["date"].min().date()

    @property
    def last_day(self) -> dt.date:
        """The last day of data the model saw (the end of the last period)."""
        end = self.frame["date"].max().date()
        return end + dt.timedelta(days=6) if self.grain == "week" else end

    def spend(self) -> np.ndarray:
        """(date, geo, channel) spend in $, dates and geos in the frame's order."""
        return self.cube(self.channels)

    def cube(self, columns: list[str]) -> np.ndarray:
        f = self.frame.sort_values(["date", "geo"])
        n_d, n_g = len(self.dates), len(self.geos)
        return f[columns].to_numpy(dtype=float).reshape(n_d, n_g, len(columns))

    def series(self, column: str) -> np.ndarray:
        return self.cube([column])[..., 0]

    def groups(self) -> list[str]:
        return sorted(set(self.channel_groups.values()))


def national_mean(control: str) -> str:
    """The frame's column with the national part of `control` (see `Panel.national`)."""
    return f"{control}__national_mean"


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, _, name = qualified.rpartition(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema or "main", name],
        ).fetchone()[0]
    )


def latest_day(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The newest day with sales in the marts (what a refit 'today' can see)."""
    if not table_exists(con, GEO_DAY):
        return None
    return con.execute(f"SELECT max(date) FROM {GEO_DAY} WHERE revenue IS NOT NULL").fetchone()[0]


def _channels(con: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> pd.DataFrame:
    """channel, channel_group (the most frequent one for the channel), spend in the window."""
    groups = (
        f"""(SELECT channel, mode(channel_group) AS channel_group FROM {GROUPS} GROUP BY channel)"""
        if table_exists(con, GROUPS)
        else "(SELECT NULL::VARCHAR AS channel, NULL::VARCHAR AS channel_group WHERE false)"
    )
    return con.execute(
        f"""SELECT m.channel, coalesce(g.channel_group, 'ungrouped') AS channel_group, sum(m.spend) AS spend
            FROM {MEDIA} m LEFT JOIN {groups} g USING (channel)
            WHERE m.date BETWEEN ? AND ? GROUP BY ALL ORDER BY m.channel""",
        [first, last],
    ).df()


def _safe_name(level: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(level).lower()).strip("_") or "blank"


def fourier_basis(dates, n_order: int) -> np.ndarray:
    """(date, 2 n_order) yearly sine/cosine terms (the model's per-geo seasonality uses the same)."""
    t = pd.DatetimeIndex(dates)
    doy = (t.dayofyear.to_numpy() - 1) / 365.25
    cols = []
    for k in range(1, n_order + 1):
        cols += [np.sin(2 * np.pi * k * doy), np.cos(2 * np.pi * k * doy)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(t), 0))


def partial_out(
    frame: pd.DataFrame, controls: list[str], n_order: int, date_effects: bool, fit: pd.Series | None = None
) -> pd.DataFrame:
    """Each control minus what the model's own time terms already explain in it: its geo's mean
    and yearly cycle (the per-geo seasonality), and each date's mean over geos (the date effects).
    The geo terms are estimated on the rows where `fit` (aligned with `frame`) holds, default all,
    and taken out of every row: later rows then change nothing in the earlier ones.

    The model estimates those terms freely, so by Frisch-Waugh-Lovell a control's coefficient is
    the same with the control or with this residual, but the residual no longer trades off with
    the seasonality and date effects in the sampler (temperature's seasonal swing against each geo's
    cycle: an effective sample size of 10 in 600 draws before this, hundreds after)."""
    order = frame.sort_values(["geo", "date"]).index
    f = frame.loc[order].copy()
    in_fit = np.ones(len(f), dtype=bool) if fit is None else fit.loc[order].to_numpy()
    x = np.array(f[controls].to_numpy(dtype=float), copy=True)
    geo = f["geo"].to_numpy()
    dates = f["date"].to_numpy()
    basis = np.column_stack([np.ones(len(f)), fourier_basis(dates, n_order)])
    groups = [np.flatnonzero(geo == g) for g in pd.unique(geo)]
    fitted_rows = [idx[in_fit[idx]] for idx in groups]
    pinv = {i: np.linalg.pinv(basis[idx]) for i, idx in enumerate(fitted_rows)}
    date_codes, date_index = np.unique(dates, return_inverse=True)
    counts = np.bincount(date_index, minlength=len(date_codes))[:, None]
    for _ in range(30 if date_effects else 1):  # alternating projections onto both complements
        for i, idx in enumerate(groups):
            x[idx] -= basis[idx] @ (pinv[i] @ x[fitted_rows[i]])
        if not date_effects:
            break
        means = np.zeros((len(date_codes), x.shape[1]))
        np.add.at(means, date_index, x)
        x -= (means / counts)[date_index]
    f[controls] = x
    return f.sort_values(["date", "geo"]).reset_index(drop=True)


#: a control this well explained by the controls before it (R^2) adds nothing but a ridge in the
#: posterior (price index and discount depth, a storm day and its eve in a week ...): dropped
COLLINEAR_R2 = 0.98


def _drop_collinear(frame: pd.DataFrame, controls: list[str], dropped: dict[str, str]) -> list[str]:
    """`frame`: the rows the decision rests on."""
    kept: list[str] = []
    for c in controls:
        if kept:
            x = frame[kept].to_numpy()
            yv = frame[c].to_numpy()
            beta, *_ = np.linalg.lstsq(x, yv, rcond=None)
            r2 = 1.0 - np.var(yv - x @ beta) / max(np.var(yv), 1e-300)
            if r2 > COLLINEAR_R2:
                dropped[f"control:{c}"] = f"collinear with the controls before it (R2 {r2:.3f})"
                continue
        kept.append(c)
    return kept


def load_panel(
    con: duckdb.DuckDBPyConnection, cfg: MMMConfig, as_of: dt.date | None = None, *, fit_until: dt.date | None = None
) -> Panel:
    """The panel the model fits for a refit at `as_of` (default: the newest day with sales).

    With `fit_until` (a backtest: the refit's date, before `as_of`) everything the data decide
    about channels and controls (the channels kept, event levels, standardisation, geo centring,
    seasonal parts, the controls dropped) is decided on the periods that start by then, so those
    rows equal the refit's panel and the later ones are shaped as the refit would shape them."""
    for t in (GEO_DAY, MEDIA):
        if not table_exists(con, t):
            raise DataError(f"{t} does not exist: build the feature marts first (mmm-platform run)")
    newest = latest_day(con)
    if newest is None:
        raise DataError(f"{GEO_DAY} has no day with revenue")
    last = min(as_of, newest) if as_of is not None else newest
    first = con.execute(f"SELECT min(date) FROM {GEO_DAY} WHERE revenue IS NOT NULL AND date <= ?", [last]).fetchone()[
        0
    ]
    if first is None:
        raise DataError(f"{GEO_DAY} has no day with revenue on or before {last}")
    if cfg.window_days is not None:
        first = max(first, last - dt.timedelta(days=cfg.window_days - 1))
    if cfg.grain == "week":
        # whole ISO weeks only: from the first Monday on, up to the last complete Sunday
        first = first + dt.timedelta(days=(7 - first.weekday()) % 7)
        last = last - dt.timedelta(days=(last.weekday() + 1) % 7)
    if (last - first).days + 1 < 8 * cfg.period_days:
        raise DataError(f"only {(last - first).days + 1} days of data between {first} and {last}: too little to fit")

    chans = _channels(con, first, fit_until or last)
    total = chans["spend"].sum()
    if chans.empty or total <= 0:
        raise DataError(f"no media spend between {first} and {last} in {MEDIA}")
    dropped: dict[str, str] = {}
    keep = chans["spend"] >= cfg.channels.min_spend_share * total
    for c in chans.loc[~keep, "channel"]:
        dropped[f"channel:{c}"] = f"spend below {cfg.channels.min_spend_share:.1%} of all media spend"
    chans = chans[keep]
    channels = list(chans["channel"])
    groups = dict(zip(chans["channel"], chans["channel_group"], strict=True))
    missing = sorted(set(cfg.channels.overrides) - set(channels))
    for c in missing:
        dropped[f"override:{c}"] = "no channel of that name in the data (override unused)"

    ctrl_sql = ",\n".join(f"({c.expr})::DOUBLE AS {c.name}" for c in cfg.controls)
    event_sql = ",\n".join(f"{col}::VARCHAR AS ev__{col}" for col in cfg.events.columns)
    extra = ",\n".join(s for s in (ctrl_sql, event_sql) if s)
    spend_sql = ",\n".join(
        f"coalesce(sum(m.spend) FILTER (WHERE m.channel = ${i + 3}), 0) AS ch__{i}" for i in range(len(channels))
    )
    try:
        daily = con.execute(
            f"""WITH gd AS (
                    SELECT geo_id, date, {cfg.target}::DOUBLE AS y, {cfg.margin}::DOUBLE AS margin,
                           day_of_week::INTEGER AS day_of_week{", " + extra if extra else ""}
                    FROM {GEO_DAY} WHERE date BETWEEN $1 AND $2
                ),
                md AS (
                    SELECT m.geo_id, m.date, {spend_sql}
                    FROM {MEDIA} m WHERE m.date BETWEEN $1 AND $2 GROUP BY ALL
                )
                SELECT gd.*, {", ".join(f"coalesce(md.ch__{i}, 0) AS ch__{i}" for i in range(len(channels)))}
                FROM gd LEFT JOIN md USING (geo_id, date)
                ORDER BY date, geo_id""",
            [first, last, *channels],
        ).df()
    except duckdb.Error as err:
        raise DataError(f"reading {GEO_DAY} with the configured controls failed: {err}") from None
    daily = daily.rename(columns={f"ch__{i}": c for i, c in enumerate(channels)})
    daily["date"] = pd.to_datetime(daily["date"])

    # drop geo-days without a target (a geo that stops reporting) and geos with gaps: the model
    # needs a rectangular panel
    daily = daily[daily["y"].notna()]
    per_geo = daily.groupby("geo_id")["date"].nunique()
    n_days = daily["date"].nunique()
    full = per_geo[per_geo == n_days].index
    for g in sorted(set(per_geo.index) - set(full)):
        dropped[f"geo:{g}"] = f"{per_geo[g]} of {n_days} days observed (the panel must be complete)"
    daily = daily[daily["geo_id"].isin(full)]
    if daily.empty:
        raise DataError(f"no geo has every day between {first} and {last}")

    # events: one indicator per level seen often enough, the rest pooled as other_<column>
    event_cols: list[str] = []
    cutoff = pd.Timestamp(fit_until or last)
    seen = daily["date"] <= cutoff
    for col in cfg.events.columns:
        raw = daily.pop(f"ev__{col}")
        counts = raw[seen].value_counts()
        frequent = [lv for lv in counts.index if counts[lv] >= cfg.events.min_days]
        rare = raw.notna() & ~raw.isin(frequent)
        for lv in sorted(frequent):
            name = f"{col}__{_safe_name(lv)}"
            daily[name] = (raw == lv).astype(float)
            event_cols.append(name)
            if cfg.events.include_day_after:
                name1 = f"{name}__after"
                daily[name1] = daily.groupby("geo_id")[name].shift(1).fillna(0.0)
                event_cols.append(name1)
        if rare.any():
            daily[f"{col}__other"] = rare.astype(float)
            event_cols.append(f"{col}__other")

    if cfg.grain == "day" and cfg.seasonality.day_of_week:
        for d in range(2, 8):  # Monday is the reference
            daily[f"dow_{d}"] = (daily["day_of_week"] == d).astype(float)
            event_cols.append(f"dow_{d}")
    daily = daily.drop(columns="day_of_week")

    controls = [c.name for c in cfg.controls]
    if cfg.grain == "week":
        daily["date"] = daily["date"] - pd.to_timedelta(daily["date"].dt.weekday, unit="D")
        aggs = {"y": "sum", "margin": "sum", **dict.fromkeys(channels, "sum")}
        aggs |= {c.name: c.agg for c in cfg.controls}
        aggs |= dict.fromkeys(event_cols, "sum")
        frame = daily.groupby(["date", "geo_id"], as_index=False).agg(aggs)
    else:
        frame = daily
    frame = frame.rename(columns={"geo_id": "geo"})
    if cfg.seasonality.trend == "linear":
        t0 = frame["date"].min()
        frame["trend"] = (frame["date"] - t0).dt.days / 365.25
        controls.append("trend")
    controls += event_cols

    # standardise controls; drop constant ones (an event that never happens in the window), and
    # with date effects the national ones (the same in every geo on each date: collinear with them)
    stats = []
    kept: list[str] = []
    national: list[str] = []
    fit = frame["date"] <= cutoff
    for c in controls:
        x = frame[c].astype(float)
        mean, sd, na = x[fit].mean(), x[fit].std(), x[fit].isna().mean()
        if not np.isfinite(sd) or sd < 1e-9:
            dropped[f"control:{c}"] = "constant in the window"
            frame = frame.drop(columns=c)
            continue
        z = ((x - mean) / sd).fillna(0.0)
        if cfg.seasonality.date_effects and frame[fit].groupby("date")[c].std().fillna(0).max() < 1e-9 * sd:
            dropped[f"control:{c}"] = "the same in every geo on each date: the date effects hold it"
            if c != "trend":  # a forecast carries the recent level, not the window's trend
                frame[c] = z
                national.append(c)
            else:
                frame = frame.drop(columns=c)
            continue
        # standardised, then centred within each geo: a geo's average level of a control is in
        # its intercept, so the two do not trade off in the sampler
        frame[c] = z - frame["geo"].map(z[fit].groupby(frame["geo"][fit]).mean())
        stats.append({"control": c, "mean": mean, "sd": sd, "missing_share": na})
        kept.append(c)

    if kept:
        order = cfg.seasonality.yearly_fourier
        partialled = partial_out(frame, kept, order, cfg.seasonality.date_effects, fit)
        if cfg.seasonality.date_effects:  # what the date effects take of each control, for a forecast
            means = partial_out(frame, kept, order, False, fit).groupby("date")[kept].transform("mean")
            partialled[[national_mean(c) for c in kept]] = means.to_numpy()
        frame = partialled
    standardised, kept = kept, _drop_collinear(frame[frame["date"] <= cutoff], kept, dropped)
    frame = frame.drop(columns=[national_mean(c) for c in standardised if c not in kept], errors="ignore")
    stats = [s for s in stats if s["control"] in kept]

    geos = sorted(frame["geo"].unique())
    clusters: dict[str, int] = {}
    if table_exists(con, CLUSTERS):
        clusters = dict(con.execute(f"SELECT geo_id, cluster_id FROM {CLUSTERS}").fetchall())
    frame = frame.sort_values(["date", "geo"]).reset_index(drop=True)
    return Panel(
        grain=cfg.grain,
        as_of=last,
        frame=frame,
        channels=channels,
        channel_groups=groups,
        controls=kept,
        control_stats=pd.DataFrame(stats),
        geos=geos,
        clusters={g: int(clusters[g]) for g in geos if g in clusters},
        dropped=dropped,
        national=national,
    )
