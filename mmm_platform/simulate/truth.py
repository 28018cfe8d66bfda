"""Ground truth by counterfactual simulation: rerun the world with the same noise and one driver removed
(or nudged), and take the difference. Every number is exact for this world, not a model estimate, except
the oracle regression, which says how precisely media CAN be estimated on this world."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.signal import lfilter

from mmm_platform.simulate.media import ADSTOCK_WEIGHTS, CAMPAIGN_ONEHOT, CHANNELS, EXPERIMENT_TAIL
from mmm_platform.simulate.outcomes import (
    FORECAST_DEMAND_HEAT,
    FORECAST_DEMAND_PRECIP,
    FORECAST_DEMAND_TEMP,
    HEAT_THRESHOLD_C,
    NOISE_CATEGORY_SD,
    NOISE_LOCAL_SD,
    NOISE_PERSISTENCE,
    WEEKEND_FORECAST_FACTOR,
    DemandModel,
    Outcome,
    Scenario,
    contribution_margin,
)
from mmm_platform.simulate.retail import CATEGORY_NAMES
from mmm_platform.simulate.weather import DAY_AHEAD_LEAD, DEMAND_REACTION_LEADS

#: marginal ROAS is the revenue change of a 1% spend increase, per extra dollar
MARGINAL_STEP = 0.01

CONFOUNDING = (
    "Unobserved demand (trip planning, merchandising) reacts to the temperature forecasts issued "
    "{demand} days ahead, more strongly above {heat} °C and on weekends, and to the precipitation forecast "
    "issued {bid} day ahead; intent and always-on performance campaigns raise bids on that day-ahead "
    "forecast. None of these is in any table. Revenue depends causally only on the observed weather. Warm "
    "forecasts come with warm days, so OLS of revenue on observed temperature absorbs the forecast-driven "
    "demand and spend and is biased upward, and a linear control for the forecast does not remove it. The "
    "forecast error against the lead-1 forecast (observed - forecast issued 1 day before) is the part of "
    "the weather revealed after every confounder had acted: it is independent of the lead->=1 forecasts "
    "and moves the observed weather one for one, so 2SLS with it as instrument recovers the effect. The "
    "lead-0 error is valid but weaker; errors at leads >= 2 contain weather already in the lead-1 forecast "
    "the confounders used, so they are invalid."
)


def _round(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def oracle_fit(actual: Outcome, baseline_revenue: np.ndarray) -> np.ndarray:
    """(N,) OLS coefficients of revenue minus the noise-free non-media revenue on each channel's true
    revenue series (true shapes, true baseline, one coefficient per channel; 1 is the truth)."""
    x = actual.media_revenue.reshape(-1, len(CHANNELS))
    y = (actual.revenue.sum(axis=-1) - baseline_revenue).ravel()
    return np.linalg.solve(x.T @ x, x.T @ y)


def oracle_covariance(actual: Outcome) -> np.ndarray:
    """(N, N) covariance of `oracle_fit` under the world's own demand noise: residual = sum over categories
    of noise_loading x (noise - 1), a geo-level AR(1) part and an independent category part, so
    X' Cov(e) X = sd_local^2 sum_g u' R u + sd_cat^2 sum x x' q, with u = x times the total loading, R the
    AR(1) correlation matrix (applied as a forward plus a backward filter) and q the summed squared
    loadings (first order in the small noise sds)."""
    x = actual.media_revenue
    loading = actual.noise_loading
    u = x * loading.sum(axis=-1)[..., None]
    phi = NOISE_PERSISTENCE
    forward = lfilter([1.0], [1.0, -phi], u, axis=1)
    backward = lfilter([1.0], [1.0, -phi], u[:, ::-1], axis=1)[:, ::-1]
    n = x.shape[-1]
    meat = NOISE_LOCAL_SD**2 * np.einsum("gtc,gtd->cd", u, forward + backward - u)
    meat += NOISE_CATEGORY_SD**2 * np.einsum("gtc,gtd,gt->cd", x, x, (loading**2).sum(axis=-1))
    bread = np.linalg.inv(x.reshape(-1, n).T @ x.reshape(-1, n))
    return bread @ meat @ bread


def _channels(model: DemandModel, actual: Outcome, total: float, media_spend: pl.DataFrame) -> dict:
    spend = (actual.spend @ CAMPAIGN_ONEHOT).sum(axis=(0, 1))
    margin = contribution_margin(actual.pos, actual.online, model.retail).sum()
    no_media = model.run(Scenario(channel_scale={c.name: 0.0 for c in CHANNELS}, demand_noise=False))
    beta = oracle_fit(actual, no_media.revenue.sum(axis=-1))
    beta_se = np.sqrt(np.diag(oracle_covariance(actual)))
    claimed = dict(media_spend.group_by("channel").agg(pl.col("attributed_revenue").sum()).iter_rows())
    size = model.geo.size
    out = {}
    for n, ch in enumerate(CHANNELS):
        off = model.run(Scenario(channel_scale={ch.name: 0.0}))
        more = model.run(Scenario(channel_scale={ch.name: 1 + MARGINAL_STEP})).revenue.sum()
        incremental = total - off.revenue.sum()
        per_dollar = actual.media_revenue[..., n].sum() / spend[n]
        form = {"geometric": ("alpha",), "delayed": ("alpha", "theta"), "weibull": ("shape", "scale")}[ch.adstock]
        out[ch.name] = {
            "channel_group": ch.group,
            "spend": _round(spend[n], 2),
            "incremental_revenue": _round(incremental, 2),
            "incremental_margin": _round(margin - contribution_margin(off.pos, off.online, model.retail).sum(), 2),
            "roas": _round(incremental / spend[n]),
            "mroas": _round((more - total) / (MARGINAL_STEP * spend[n])),
            "roas_oracle": _round(beta[n] * per_dollar),
            "roas_oracle_se": _round(beta_se[n] * per_dollar),
            "adstock": ch.adstock,
            "params": {
                "form": ch.adstock,
                **dict(zip(form, ch.adstock_params, strict=True)),
                "l_max": ch.l_max,
                "adstock_weights": [_round(w, 6) for w in ADSTOCK_WEIGHTS[n]],
                "hill_slope": ch.slope,
                "half_saturation_by_geo": {
                    g: _round(k * s, 2)
                    for g, k, s in zip(model.geo.ids, model.media.half_saturation[:, n], size, strict=True)
                },
                "max_revenue_by_geo": {
                    g: _round(ch.max_revenue * s, 2) for g, s in zip(model.geo.ids, size, strict=True)
                },
                "effect_multiplier_first_last_day": list(ch.drift),
                "definition": "contribution(geo, day) = max_revenue x hill(adstocked spend) x effect multiplier, "
                "adstocked spend = sum_l adstock_weights[l] x spend(day - l) in $ of the geo, hill(a) = "
                "a^s / (a^s + half_saturation^s); revenue removed = contribution x availability x store/online "
                "operations",
            },
            "platform_attribution_ratio": None if ch.platform is None else _round(claimed[ch.name] / incremental),
        }
    return out


def _weather(model: DemandModel, actual: Outcome) -> dict:
    n_geo_days = actual.revenue.shape[0] * actual.revenue.shape[1]
    effects = {}
    for variable, scenario in (
        ("temp_mean_c", Scenario(temp_shift=1.0)),
        ("precip_mm", Scenario(precip_shift=1.0)),
    ):
        delta = model.run(scenario).revenue - actual.revenue
        effects[variable] = (delta.sum() / n_geo_days, delta.sum(axis=(0, 1)) / n_geo_days)
    max_lead = model.config.max_lead
    demand_leads = sorted({min(lead, max_lead) for lead in DEMAND_REACTION_LEADS})
    return {
        "temp_mean_c": _round(effects["temp_mean_c"][0]),
        "precip_mm": _round(effects["precip_mm"][0]),
        "by_category": {v: {c: _round(x) for c, x in zip(CATEGORY_NAMES, effects[v][1], strict=True)} for v in effects},
        "definition": "revenue change per geo-day (all categories) when the observed value rises by one unit "
        "on every geo-day with forecasts held fixed; the effect scales with geo size, this is its mean",
        "valid_instrument_lead": 1,
        "valid_instrument_leads": [0, 1],
        "invalid_instrument_leads": list(range(2, max_lead + 1)),
        "instrument": "observed - forecast issued valid_instrument_lead days before the target date",
        "confounding": CONFOUNDING.format(
            demand=" and ".join(str(lead) for lead in demand_leads), heat=HEAT_THRESHOLD_C, bid=DAY_AHEAD_LEAD
        ),
        "forecast_driven_demand_per_size_unit": {
            "temp_mean_c_anomaly_leads": demand_leads,
            "temp_mean_c": FORECAST_DEMAND_TEMP,
            "temp_mean_c_above_threshold": FORECAST_DEMAND_HEAT,
            "heat_threshold_c": HEAT_THRESHOLD_C,
            "weekend_factor": WEEKEND_FORECAST_FACTOR,
            "precip_mm_anomaly_lead": DAY_AHEAD_LEAD,
            "precip_mm": FORECAST_DEMAND_PRECIP,
        },
    }


def _shocks(model: DemandModel, actual: Outcome) -> list[dict]:
    out = []
    revenue = actual.revenue.sum(axis=-1)
    ids = model.geo.ids
    for sh in model.weather.shocks:
        cf = model.run(Scenario(shocks_off=frozenset({sh.event_id}))).revenue.sum(axis=-1)
        delta = revenue - cf
        window = delta[sh.geos, sh.start : sh.end + 1]
        eve = delta[sh.geos, sh.start - 1].sum() if sh.start > 0 else 0.0
        out.append(
            {
                "event_id": sh.event_id,
                "type": sh.kind,
                "geo_ids": [ids[g] for g in sh.geos],
                "start": model.timeline.date(sh.start).isoformat(),
                "end": model.timeline.date(sh.end).isoformat(),
                "storm_category": sh.category if sh.kind == "storm" else None,
                "att_per_geo_day": _round(window.mean(), 2),
                "incremental_revenue": _round(window.sum(), 2),
                "anticipation_revenue": _round(eve, 2),
                "revenue_effect_outside_window": _round(delta.sum() - window.sum(), 2),
            }
        )
    return out


def _experiments(model: DemandModel, actual: Outcome) -> list[dict]:
    out = []
    ids, date = model.geo.ids, model.timeline.date
    revenue = actual.revenue.sum(axis=-1)
    for exp in model.media.experiments:
        cf = model.run(Scenario(experiments_off=frozenset({exp.experiment_id})))
        treated = exp.treated
        window = slice(exp.start, exp.end + 1)
        after = slice(exp.end + 1, exp.end + 1 + EXPERIMENT_TAIL)
        delta = revenue - cf.revenue.sum(axis=-1)
        counterfactual = cf.revenue.sum(axis=-1)[treated, window].sum()
        out.append(
            {
                "experiment_id": exp.experiment_id,
                "channel": exp.channel,
                "experiment_type": exp.design.experiment_type,
                "design": exp.design.design,
                "spend_multiplier": exp.design.multiplier,
                "treated_geo_ids": [ids[g] for g in treated],
                "control_geo_ids": [ids[g] for g in exp.control],
                "pairs": [[ids[t], ids[c]] for t, c in exp.pairs],
                "pre_period_start": date(exp.pre_start).isoformat(),
                "start": date(exp.start).isoformat(),
                "end": date(exp.end).isoformat(),
                "spend_delta": _round((actual.spend - cf.spend)[treated, window].sum(), 2),
                "true_lift": _round(delta[treated, window].sum(), 2),
                "true_lift_per_geo_day": _round(delta[treated, window].mean(), 2),
                "true_lift_share": _round(delta[treated, window].sum() / counterfactual),
                "carryover_after_end_28d": _round(delta[treated, after].sum(), 2),
            }
        )
    return out


EXPERIMENT_DEFINITION = (
    "true_lift: revenue in the treated geos over the window minus the same world without this experiment "
    "(negative when the channel was switched off); true_lift_share: the same over the counterfactual revenue; "
    "pairs: (treated, control) matched markets, the treated one by a coin flip; the readout's pre-period runs "
    "from pre_period_start to the day before start, and every geo follows the national media plan from "
    "pre_period_start to end"
)


def _promotions(model: DemandModel, actual: Outcome) -> dict:
    promo = model.retail.promo
    delta = actual.revenue - model.run(Scenario(promotions=False)).revenue

    def cells(mask: np.ndarray) -> dict:
        return {
            "cells": int(mask.sum()),
            "mean_effect_per_geo_category_day": _round(delta[mask].mean(), 2),
            "total": _round(delta[mask].sum(), 2),
        }

    return {
        "promo_day": cells(promo.promo_cell),
        "pre_promotion_dip": cells(promo.pre_cell),
        "post_promotion_hangover": cells(promo.post_cell),
        "incremental_revenue": _round(delta.sum(), 2),
        "n_promotions": len(model.retail.events),
        "definition": "revenue with promotions minus the same world without any (prices at list, no pre-dip "
        "or hangover, inventory replanned), on (geo, category, day) cells",
    }


def _stockouts(model: DemandModel, actual: Outcome, total: float) -> dict:
    full = model.run(Scenario(stockouts=False)).revenue.sum()
    inventory = model.retail.inventory
    return {
        "lost_revenue": _round(full - total, 2),
        "lost_share": _round((full - total) / full),
        "stockout_sku_days": int(inventory.stockout.sum()),
        "stockout_share": _round(inventory.stockout.mean()),
    }


def build_truth(model: DemandModel, actual: Outcome, media_spend: pl.DataFrame) -> dict:
    """`media_spend`: the published table (platform-attributed revenue is read from it)."""
    total = float(actual.revenue.sum())
    no_media = float(model.run(Scenario(channel_scale={c.name: 0.0 for c in CHANNELS})).revenue.sum())
    config = model.config
    return {
        "channels": _channels(model, actual, total, media_spend),
        "weather": _weather(model, actual),
        "shocks": _shocks(model, actual),
        "experiments": _experiments(model, actual),
        "experiments_definition": EXPERIMENT_DEFINITION,
        "promotions": _promotions(model, actual),
        "stockouts": _stockouts(model, actual, total),
        "baseline": {
            "revenue_without_media": _round(no_media, 2),
            "media_incremental_revenue": _round(total - no_media, 2),
            "media_share_of_revenue": _round((total - no_media) / total),
        },
        "meta": {
            "config": {
                "seed": config.seed,
                "n_geos": config.n_geos,
                "start": config.start.isoformat(),
                "n_days": config.n_days,
                "n_skus": config.n_skus,
                "max_lead": config.max_lead,
                "bid_reaction": config.bid_reaction,
            },
            "seed": config.seed,
            "end": config.end.isoformat(),
            "total_revenue": _round(total, 2),
            "total_spend": _round(actual.spend.sum(), 2),
            "geo_size_factor": {g: _round(s) for g, s in zip(model.geo.ids, model.geo.size, strict=True)},
            "money_unit": "USD; per-size-unit parameters apply to a geo of size factor 1 (mean over geos)",
            "oracle_definition": ORACLE_DEFINITION,
        },
    }


ORACLE_DEFINITION = (
    "roas_oracle: OLS, over every geo-day, of revenue minus the noise-free revenue without media on the six "
    "channels' true revenue series (true adstock, saturation and availability per geo; no intercept), times "
    "the channel's true revenue per dollar; roas_oracle_se: its standard error under the world's demand "
    "noise (a per-geo AR(1) part and an independent category part, the only thing such an oracle does not "
    "know), exact for this world's spend"
)
