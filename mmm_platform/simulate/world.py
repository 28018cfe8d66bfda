"""`simulate`: build the drivers once, run the factual world, publish the tables, compute the truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mmm_platform.simulate.config import WorldConfig, rng_for
from mmm_platform.simulate.context import (
    build_context,
    calendar_table,
    competitive_table,
    digital_table,
    macro_table,
    operations_table,
)
from mmm_platform.simulate.geography import Geography, build_geography
from mmm_platform.simulate.media import (
    CAMPAIGNS,
    MENTION_WEIGHT,
    allocator_plans_table,
    build_media_plan,
    campaigns_of,
    creative_table,
    customer_shares,
    experiments_table,
    exposure,
    governance_table,
    impressions,
    media_spend_table,
)
from mmm_platform.simulate.outcomes import (
    DemandModel,
    Outcome,
    Scenario,
    baseline_demand,
    demand_noise,
    planned_revenue,
    sales_table,
)
from mmm_platform.simulate.retail import CATEGORIES, build_retail, inventory_table, promotions_table
from mmm_platform.simulate.timeline import build_timeline
from mmm_platform.simulate.truth import build_truth
from mmm_platform.simulate.weather import simulate_weather


@dataclass
class World:
    #: keyed by landing-contract table name; all 17 tables
    tables: dict[str, pl.DataFrame]
    #: JSON-serialisable ground truth (see docs/simulator.md)
    truth: dict
    config: WorldConfig


def _online_shares(config: WorldConfig, geo: Geography) -> np.ndarray:
    """(G, C) share of a category's demand bought online: higher in dense geos."""
    rng = rng_for(config.seed, "online_share")
    base = np.array([c.online_share for c in CATEGORIES])
    density = (geo.density / np.median(geo.density)) ** 0.15
    return np.clip(base * density[:, None] * rng.lognormal(0.0, 0.1, (geo.n, len(CATEGORIES))), 0.05, 0.8)


def build_model(config: WorldConfig) -> DemandModel:
    timeline = build_timeline(config)
    geo = build_geography(config)
    weather = simulate_weather(config, timeline, geo)
    context = build_context(config, timeline, geo)
    baseline = baseline_demand(timeline, geo, context)
    retail = build_retail(config, timeline, geo, planned_revenue(baseline, weather, geo, config.n_days))
    return DemandModel(
        config=config,
        timeline=timeline,
        geo=geo,
        weather=weather,
        context=context,
        retail=retail,
        media=build_media_plan(config, timeline, geo),
        baseline=baseline,
        noise=demand_noise(config, baseline.shape),
        online_share=_online_shares(config, geo),
    )


def build_tables(model: DemandModel, actual: Outcome) -> dict[str, pl.DataFrame]:
    config, timeline, geo, ctx = model.config, model.timeline, model.geo, model.context
    media, retail = model.media, model.retail
    search = campaigns_of("search")
    mention_weight = np.array([MENTION_WEIGHT.get(c.channel, 0.0) for c in CAMPAIGNS])
    revenue = actual.revenue.sum(axis=-1)
    demand = model.baseline.sum(axis=-1)
    organic = revenue - actual.media_revenue.sum(axis=-1)  # what people buy anyway: platforms' clickers among them
    imps = impressions(media, actual.spend, timeline)
    sales = sales_table(actual, retail, geo, timeline, config, *customer_shares(imps, geo))
    orders = sales["orders"].to_numpy().reshape(config.n_days, geo.n, len(CATEGORIES)).sum(axis=-1).T
    no_experiments = frozenset(e.experiment_id for e in media.experiments)
    return {
        "geo": geo.table(),
        "weather_observed": model.weather.observed_table(),
        "weather_forecast": model.weather.forecast_table(),
        "media_spend": media_spend_table(
            media, actual.spend, imps, organic / organic.mean(axis=1, keepdims=True), geo, timeline, config
        ),
        "creative": creative_table(media, actual.spend, imps, geo, timeline, config),
        "allocator_plans": allocator_plans_table(media, geo, timeline),
        "products": retail.products.table(),
        "promotions": promotions_table(retail, geo, timeline, config),
        "inventory": inventory_table(retail, geo, timeline, config),
        "sales": sales,
        "calendar": calendar_table(ctx, timeline, geo, actual.pos.sum(axis=-1), actual.weather.precip),
        "macro": macro_table(ctx, geo),
        "competitive": competitive_table(
            ctx,
            timeline,
            geo,
            retail.promo.depth.mean(axis=-1),
            actual.spend[..., search].sum(axis=-1),
            media.planned[..., search].sum(axis=-1),
            revenue / demand,
        ),
        "digital": digital_table(
            ctx,
            timeline,
            geo,
            config,
            actual.online.sum(axis=-1),
            orders,
            exposure(imps, geo, mention_weight, days=3),
            actual.ops.shipping_delay,
        ),
        "operations": operations_table(
            ctx,
            timeline,
            geo,
            actual.ops,
            actual.weather.storm_category,
            actual.weather.temp_forecast_anomaly_day_ahead,
        ),
        "experiments": experiments_table(
            media, actual.spend, media.spend(media.delivered(actual.weather), no_experiments), geo, timeline
        ),
        "governance_events": governance_table(media, actual.spend, geo, timeline),
    }


def simulate(config: WorldConfig | None = None) -> World:
    """The demo world: all 17 landing tables and the ground truth they were generated from
    (None: the default world, ending yesterday)."""
    config = WorldConfig() if config is None else config
    model = build_model(config)
    actual = model.run(Scenario())
    tables = build_tables(model, actual)
    return World(tables=tables, truth=build_truth(model, actual, tables["media_spend"]), config=config)
