"""The honesty audit of a world: what naive methods get on it and what the right ones get, from the
published tables (plus the truth to score them, and the model itself where only it can tell: the true
daily contributions and re-simulation). tests/test_world_honesty.py asserts on these numbers and
bench/simulate.py prints them for docs/simulator.md."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import polars as pl
from linearmodels import PanelOLS
from linearmodels.iv import IV2SLS

from mmm_platform.simulate.media import CAMPAIGN_ONEHOT, CAMPAIGNS, CHANNEL_NAMES
from mmm_platform.simulate.outcomes import DemandModel, Outcome, Scenario, demand_noise
from mmm_platform.simulate.truth import oracle_fit
from mmm_platform.simulate.world import World

#: columns that are the media inputs themselves (spend and what it buys), exempt from the leak check
#: against their own channel's contribution: an identifiable world needs spend that moves the effect
MEDIA_INPUTS = frozenset(
    {
        ("media_spend", "spend"),
        ("media_spend", "planned_spend"),
        ("media_spend", "impressions"),
        ("media_spend", "clicks"),
        ("media_spend", "share_of_voice_pct"),
        ("allocator_plans", "recommended_spend"),
        ("creative", "frequency"),
        ("creative", "eligible_reach"),
        ("competitive", "impression_share_pct"),
        ("competitive", "top_of_page_rate_pct"),
    }
)
#: the channel whose spend drives a geo-level input column
_INPUT_CHANNEL = {"impression_share_pct": "search", "top_of_page_rate_pct": "search"}


def _grid(world: World, frame: pl.DataFrame, value: str, date: str = "date") -> np.ndarray:
    """(G, T) array of `value` from a (geo_id, date) frame covering every geo-day."""
    config = world.config
    ordered = frame.sort("geo_id", date)
    return ordered[value].to_numpy().astype(float).reshape(config.n_geos, config.n_days)


def revenue(world: World) -> np.ndarray:
    """(G, T) revenue over all categories."""
    return _grid(world, world.tables["sales"].group_by("geo_id", "date").agg(pl.col("revenue").sum()), "revenue")


def _two_way_demean(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()


def weather_panel(world: World, variable: str, lead: int = 1) -> pd.DataFrame:
    """(geo_id, date)-indexed revenue, observed `variable` and its forecast issued `lead` days before."""
    tables = world.tables
    forecast = tables["weather_forecast"].filter((pl.col("target_date") - pl.col("issue_date")).dt.total_days() == lead)
    return (
        tables["weather_observed"]
        .select("geo_id", "date", variable)
        .join(
            forecast.select("geo_id", pl.col("target_date").alias("date"), pl.col(variable).alias("forecast")),
            on=["geo_id", "date"],
        )
        .join(tables["sales"].group_by("geo_id", "date").agg(pl.col("revenue").sum()), on=["geo_id", "date"])
        .sort("geo_id", "date")
        .to_pandas()
        .set_index(["geo_id", "date"])
    )


@dataclass(frozen=True)
class WeatherEstimates:
    truth: float
    ols: float
    iv: float
    iv_se: float


def weather_estimates(world: World, variable: str, lead: int = 1) -> WeatherEstimates:
    """Revenue on observed `variable` with geo and date fixed effects, SE clustered by geo (linearmodels):
    OLS, and 2SLS with the error against the forecast issued `lead` days before as instrument (the fixed
    effects purged first, as IV2SLS has none; the panel is balanced)."""
    panel = weather_panel(world, variable, lead)
    ols = PanelOLS(panel["revenue"], panel[[variable]], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", cluster_entity=True
    )
    shape = (world.config.n_geos, world.config.n_days)

    def purged(values: pd.Series) -> pd.Series:
        return pd.Series(_two_way_demean(values.to_numpy().reshape(shape)).ravel())

    iv = IV2SLS(
        purged(panel["revenue"]),
        None,
        purged(panel[variable]).rename("x"),
        purged(panel[variable] - panel["forecast"]).rename("z"),
    ).fit(cov_type="clustered", clusters=pd.Series(np.repeat(np.arange(shape[0]), shape[1])))
    return WeatherEstimates(
        truth=world.truth["weather"][variable],
        ols=float(ols.params[variable]),
        iv=float(iv.params["x"]),
        iv_se=float(iv.std_errors["x"]),
    )


def temperature_anomaly_autocorrelation(world: World) -> float:
    """Mean over geos of the lag-1 autocorrelation of observed temperature minus its annual cycle (two
    harmonics fitted per geo): the anomaly as an analyst sees it."""
    temp = _grid(world, world.tables["weather_observed"], "temp_mean_c")
    day = 2 * np.pi * np.arange(temp.shape[1]) / 365.25
    design = np.column_stack([np.ones_like(day), np.cos(day), np.sin(day), np.cos(2 * day), np.sin(2 * day)])
    anomaly = temp - (design @ np.linalg.lstsq(design, temp.T, rcond=None)[0]).T
    anomaly -= anomaly.mean(axis=1, keepdims=True)
    return float(np.mean((anomaly[:, 1:] * anomaly[:, :-1]).sum(axis=1) / (anomaly**2).sum(axis=1)))


def attribution_roas(world: World) -> dict[str, tuple[float, float]]:
    """(platform-implied ROAS, true ROAS) per channel with platform reporting."""
    claimed = (
        world.tables["media_spend"].group_by("channel").agg(pl.col("attributed_revenue").sum(), pl.col("spend").sum())
    )
    channels = world.truth["channels"]
    return {
        name: (claim / spend, channels[name]["roas"])
        for name, claim, spend in claimed.iter_rows()
        if channels[name]["platform_attribution_ratio"] is not None
    }


@dataclass(frozen=True)
class Readout:
    experiment_id: str
    #: log of (1 + lift share): what the readout estimates
    truth: float
    estimate: float
    se: float
    #: the SE of the same estimate read as two groups, ignoring the pairs
    se_unpaired: float


def experiment_readouts(world: World) -> list[Readout]:
    """Each experiment read out the simple way: per geo, the log of mean revenue in the window over the
    pre-period; per matched pair, treated minus control; the mean over pairs and its SE across pairs."""
    rev = revenue(world)
    index = {g: i for i, g in enumerate(sorted(world.tables["geo"]["geo_id"]))}
    start = world.config.start
    out = []
    for e in world.truth["experiments"]:
        pre, first, last = ((dt.date.fromisoformat(e[k]) - start).days for k in ("pre_period_start", "start", "end"))
        change = np.log(rev[:, first : last + 1].mean(axis=1) / rev[:, pre:first].mean(axis=1))
        treated, control = (change[[index[g] for g in e[k]]] for k in ("treated_geo_ids", "control_geo_ids"))
        pairs = np.array([change[index[t]] - change[index[c]] for t, c in e["pairs"]])
        out.append(
            Readout(
                e["experiment_id"],
                float(np.log1p(e["true_lift_share"])),
                pairs.mean(),
                pairs.std(ddof=1) / np.sqrt(len(pairs)),
                np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control)),
            )
        )
    return out


@dataclass(frozen=True)
class ShockReadout:
    event_id: str
    truth: float
    before_after: float
    did: float


def shock_readouts(world: World, pre_days: int = 7) -> list[ShockReadout]:
    """Per shock, revenue per affected geo-day: the window minus the `pre_days` before it in the hit geos
    (before/after), and that minus the same change in the unaffected geos of the region(s) hit (DiD)."""
    rev = revenue(world)
    geo = world.tables["geo"].sort("geo_id")
    ids, region = geo["geo_id"].to_list(), geo["region"].to_numpy()
    start = world.config.start
    out = []
    for s in world.truth["shocks"]:
        first, last = ((dt.date.fromisoformat(s[k]) - start).days for k in ("start", "end"))
        change = rev[:, first : last + 1].mean(axis=1) - rev[:, first - pre_days : first].mean(axis=1)
        hit = np.isin(ids, s["geo_ids"])
        control = ~hit & np.isin(region, region[hit])
        out.append(
            ShockReadout(
                s["event_id"], s["att_per_geo_day"], change[hit].mean(), change[hit].mean() - change[control].mean()
            )
        )
    return out


def oracle_roas_resimulated(model: DemandModel, actual: Outcome, replications: int) -> np.ndarray:
    """(replications, N) the oracle regression's ROAS on worlds that differ from this one only in the
    demand noise (fresh draws): their spread is the oracle's standard error, by brute force."""
    baseline = model.run(Scenario(channel_scale={c: 0.0 for c in CHANNEL_NAMES}, demand_noise=False))
    per_dollar = actual.media_revenue.sum(axis=(0, 1)) / (actual.spend @ CAMPAIGN_ONEHOT).sum(axis=(0, 1))
    shape = model.noise.shape
    estimates = []
    for r in range(replications):
        redrawn = replace(model, noise=demand_noise(replace(model.config, seed=10_000 + r), shape))
        estimates.append(oracle_fit(redrawn.run(Scenario()), baseline.revenue.sum(axis=-1)) * per_dollar)
    return np.array(estimates)


@dataclass(frozen=True)
class Correlation:
    column: str
    channel: str
    pooled: float
    within: float
    #: a media input (spend and what it buys) against its own channel's contribution
    is_input: bool

    @property
    def largest(self) -> float:
        return float(np.nanmax([abs(self.pooled), abs(self.within)]))


def contribution_correlations(world: World, actual: Outcome) -> list[Correlation]:
    """Correlation of every numeric column of every dated table with every channel's true daily revenue
    contribution, on the table's own grain (geo-day, region-month, national day; per channel where the
    table has one), pooled and within the spatial unit (demeaned per geo or region; no pooled value over
    the four regions, where it would only compare their sizes); media inputs against their own channel are
    flagged (MEDIA_INPUTS). Static tables (geo, products, experiments) have no days."""
    config = world.config
    geo = world.tables["geo"].sort("geo_id")
    truth = pl.DataFrame(
        {
            "geo_id": np.repeat(geo["geo_id"].to_numpy(), config.n_days),
            "region": np.repeat(geo["region"].to_numpy(), config.n_days),
            "date": np.tile(pl.date_range(config.start, config.end, eager=True).to_numpy(), config.n_geos),
            **{c: actual.media_revenue[..., n].ravel() for n, c in enumerate(CHANNEL_NAMES)},
        }
    )
    tables = dict(world.tables)
    lead1 = (pl.col("target_date") - pl.col("issue_date")).dt.total_days() == 1
    tables["weather_forecast"] = (
        tables["weather_forecast"].filter(lead1).drop("issue_date").rename({"target_date": "date"})
    )
    channel_of = {c.campaign_id: c.channel for c in CAMPAIGNS}
    tables["creative"] = tables["creative"].with_columns(channel=pl.col("campaign_id").replace_strict(channel_of))
    out = []
    for name, frame in tables.items():
        if "date" not in frame.columns or name == "experiments":
            continue
        unit = next((k for k in ("geo_id", "region") if k in frame.columns), None)
        keys = [k for k in (unit, "date") if k]
        values = [c for c, t in frame.schema.items() if t.is_numeric()]
        grain = [*keys, "channel"] if "channel" in frame.columns else keys
        observed = frame.group_by(grain).agg(
            pl.when(pl.col(v).is_not_null().any()).then(pl.col(v).sum()).alias(v) for v in values
        )
        if name == "macro":  # monthly, by region
            contributions = truth.group_by("region", pl.col("date").dt.truncate("1mo"))
        else:
            contributions = truth.group_by(keys)
        joined = observed.join(contributions.agg(pl.col(CHANNEL_NAMES).sum()), on=keys)
        groups = joined.partition_by("channel", as_dict=True) if "channel" in grain else {(None,): joined}
        for (own,), rows in groups.items():
            for column in values:
                for channel in CHANNEL_NAMES:
                    is_input = (name, column) in MEDIA_INPUTS and (own or _INPUT_CHANNEL.get(column)) == channel
                    label = f"{name}.{column}" + (f"[{own}]" if own else "")
                    pair = rows.select(unit or pl.lit(0).alias("unit"), column, channel).drop_nulls()
                    if pair[column].std() == 0 or pair.height < 3:
                        continue
                    pooled, within = _pooled_and_within(pair)
                    out.append(Correlation(label, channel, np.nan if unit == "region" else pooled, within, is_input))
    return out


def _pooled_and_within(pair: pl.DataFrame) -> tuple[float, float]:
    """Correlation of the last two columns of `pair`: pooled, and after demeaning per its first column."""
    unit, x, y = pair.columns
    pooled = pair.select(pl.corr(x, y)).item()
    within = pair.select(pl.corr(pl.col(x) - pl.col(x).mean().over(unit), pl.col(y) - pl.col(y).mean().over(unit)))
    return float(pooled), float(within.item())
