"""Ground truth by counterfactual simulation: rerun the world with the same noise and one driver removed
(or nudged), and take the difference. Every number is exact for this world, not a model estimate."""

from __future__ import annotations

import numpy as np

from mmm_platform.simulate.media import CAMPAIGN_ONEHOT, CHANNELS
from mmm_platform.simulate.outcomes import (
    FORECAST_DEMAND_PRECIP,
    FORECAST_DEMAND_TEMP,
    DemandModel,
    Outcome,
    Scenario,
)
from mmm_platform.simulate.retail import CATEGORY_NAMES
from mmm_platform.simulate.weather import DAY_AHEAD_LEAD, DEMAND_REACTION_LEADS

#: marginal ROAS is the revenue change of a 1% spend increase, per extra dollar
MARGINAL_STEP = 0.01

CONFOUNDING = (
    "Unobserved demand (trip planning, merchandising) reacts to the temperature forecasts issued "
    "{demand} days ahead and to the precipitation forecast issued {bid} day ahead, and intent and "
    "always-on performance campaigns raise bids on that day-ahead forecast; none of these is in any "
    "table. Revenue depends causally only on the observed weather. Warm forecasts come with warm days, "
    "so OLS of revenue on observed temperature absorbs the forecast-driven demand and spend and is "
    "biased upward. The forecast error against the lead-1 forecast (observed - forecast issued 1 day "
    "before) is the part of the weather revealed after every confounder had acted: it is independent "
    "of the lead->=1 forecasts and moves the observed weather one for one, so 2SLS with it as "
    "instrument recovers the effect. The lead-0 error is valid but weaker; errors at leads >= 2 "
    "contain weather already in the lead-1 forecast the confounders used, so they are invalid."
)


def _round(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def _channels(model: DemandModel, actual: Outcome, total: float) -> dict:
    spend = (actual.spend @ CAMPAIGN_ONEHOT).sum(axis=(0, 1))
    out = {}
    for n, ch in enumerate(CHANNELS):
        off = model.run(Scenario(channel_scale={ch.name: 0.0})).revenue.sum()
        more = model.run(Scenario(channel_scale={ch.name: 1 + MARGINAL_STEP})).revenue.sum()
        incremental = total - off
        out[ch.name] = {
            "channel_group": ch.group,
            "spend": _round(spend[n], 2),
            "incremental_revenue": _round(incremental, 2),
            "roas": _round(incremental / spend[n]),
            "mroas": _round((more - total) / (MARGINAL_STEP * spend[n])),
            "adstock_alpha": ch.adstock_alpha,
            "hill_half_saturation": ch.half_saturation,
            "hill_slope": ch.slope,
            "hill_max_revenue": ch.max_revenue,
            "platform_attribution_bias": ch.attribution_bias,
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
        "confounding": CONFOUNDING.format(demand=" and ".join(str(lead) for lead in demand_leads), bid=DAY_AHEAD_LEAD),
        "forecast_driven_demand_per_size_unit": {
            "temp_mean_c_anomaly_leads": demand_leads,
            "temp_mean_c": FORECAST_DEMAND_TEMP,
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


def _experiment(model: DemandModel, actual: Outcome) -> dict:
    exp = model.media.experiment
    cf = model.run(Scenario(holdout=False))
    treated = np.flatnonzero(exp.treated)
    window = slice(exp.start, exp.end + 1)
    after = slice(exp.end + 1, exp.end + 29)
    delta = actual.revenue.sum(axis=-1) - cf.revenue.sum(axis=-1)
    spend_delta = (actual.spend - cf.spend)[treated, window].sum()
    return {
        "experiment_id": exp.experiment_id,
        "channel": exp.channel,
        "treated_geo_ids": [model.geo.ids[g] for g in treated],
        "start": model.timeline.date(exp.start).isoformat(),
        "end": model.timeline.date(exp.end).isoformat(),
        "true_lift": _round(delta[treated, window].sum(), 2),
        "true_lift_per_geo_day": _round(delta[treated, window].mean(), 2),
        "carryover_after_end_28d": _round(delta[treated, after].sum(), 2),
        "spend_delta": _round(spend_delta, 2),
        "definition": "revenue in treated geos over the window minus the same world without the holdout "
        "(negative: turning the channel off loses revenue)",
    }


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


def build_truth(model: DemandModel, actual: Outcome) -> dict:
    total = float(actual.revenue.sum())
    no_media = float(model.run(Scenario(channel_scale={c.name: 0.0 for c in CHANNELS})).revenue.sum())
    config = model.config
    return {
        "channels": _channels(model, actual, total),
        "weather": _weather(model, actual),
        "shocks": _shocks(model, actual),
        "experiment": _experiment(model, actual),
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
            },
            "seed": config.seed,
            "end": config.end.isoformat(),
            "total_revenue": _round(total, 2),
            "total_spend": _round(actual.spend.sum(), 2),
            "geo_size_factor": {g: _round(s) for g, s in zip(model.geo.ids, model.geo.size, strict=True)},
            "money_unit": "USD; per-size-unit parameters apply to a geo of size factor 1 (mean over geos)",
        },
    }
