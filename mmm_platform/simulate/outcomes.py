"""Revenue per geo, day and category as a deterministic function of its drivers and fixed noise draws.

Running the same function with one driver removed (and the same noise) gives the counterfactual
truth. Per category and channel (store / online):

    core   = baseline x noise x promotion x shock uplift  +  forecast-driven demand (unobserved, non-linear)
    demand = share x core  +  media  +  size x (temp_effect x (temp - ref) + precip_effect x precip)
    revenue = availability x operations factor x max(demand, 0)

The weather terms are linear in the OBSERVED weather, so the true effect per °C and per mm is a
constant per unit of geo size; the forecast-driven demand and the bid reactions move with the
FORECAST, which is what makes a naive regression on observed weather biased.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from mmm_platform.simulate.config import WorldConfig, ar1, rng_for
from mmm_platform.simulate.context import (
    COMPETITOR_EFFECT,
    EVENT_EFFECT,
    HOLIDAY_EFFECT,
    LOCAL_EVENT_EFFECT,
    Context,
    Operations,
    operations,
)
from mmm_platform.simulate.frames import panel_frame
from mmm_platform.simulate.geography import Geography
from mmm_platform.simulate.media import CHANNELS, MediaPlan
from mmm_platform.simulate.retail import CATEGORIES, CATEGORY_NAMES, Retail
from mmm_platform.simulate.timeline import Timeline
from mmm_platform.simulate.weather import Weather, WeatherDrivers

#: $ per geo-day (size 1) per °C of the mean lead-1 / lead-3 forecast anomaly: trips planned and stock
#: moved on the forecast
FORECAST_DEMAND_TEMP = 90.0
#: and per °C of that forecast above HEAT_THRESHOLD_C (cooling and pool trips), so the confounder is not
#: linear in the forecast; both are WEEKEND_FORECAST_FACTOR times stronger on Saturdays and Sundays
FORECAST_DEMAND_HEAT = 120.0
HEAT_THRESHOLD_C = 25.0
WEEKEND_FORECAST_FACTOR = 1.6
#: $ per geo-day (size 1) per mm of the day-ahead forecast precipitation anomaly: trips postponed
FORECAST_DEMAND_PRECIP = -15.0
#: how the weather effect splits between stores and online (rain moves shoppers online)
TEMP_STORE_SHARE = 0.85
PRECIP_STORE_SHARE = 1.5
DOW_EFFECT = np.array([0.93, 0.90, 0.93, 0.97, 1.07, 1.22, 1.00])

_TEMP_EFFECT = np.array([c.temp_effect for c in CATEGORIES])
_TEMP_REF = np.array([c.temp_ref for c in CATEGORIES])
_PRECIP_EFFECT = np.array([c.precip_effect for c in CATEGORIES])
_CATEGORY_BASE = np.array([c.base for c in CATEGORIES])
_HEAT_UPLIFT = np.array([c.heat_uplift for c in CATEGORIES])
_STORM_EVE_UPLIFT = np.array([c.storm_eve_uplift for c in CATEGORIES])
_FORECAST_DEMAND_SHARE = np.array([c.forecast_demand_share for c in CATEGORIES])
#: media revenue lands in categories in proportion to their baseline size
MEDIA_CATEGORY_SHARE = _CATEGORY_BASE / _CATEGORY_BASE.sum()
_CHANNEL_ONLINE = np.array([c.online_share for c in CHANNELS])


@dataclass(frozen=True)
class Scenario:
    """Which drivers are switched on, and by how much: the factual world is `Scenario()`."""

    shocks_off: frozenset[str] = frozenset()
    channel_scale: dict[str, float] = field(default_factory=dict)
    experiments_off: frozenset[str] = frozenset()
    #: False: demand noise at its mean (1), for the noise-free baseline of the oracle regression
    demand_noise: bool = True
    promotions: bool = True
    stockouts: bool = True
    temp_shift: float = 0.0
    precip_shift: float = 0.0


@dataclass(frozen=True)
class Outcome:
    pos: np.ndarray  # (G, T, C)
    online: np.ndarray  # (G, T, C)
    spend: np.ndarray  # (G, T, J)
    contribution: np.ndarray  # (G, T, N) media revenue before availability and operations
    weather: WeatherDrivers
    ops: Operations
    #: what turns demand into revenue: (G, T, C) share served from stock (or 1) and the store and online
    #: factors of operations (0 where that side's demand is not positive), and online shares (G, 1, C)
    availability: np.ndarray | float
    store_factor: np.ndarray
    online_factor: np.ndarray
    online_share: np.ndarray
    #: (G, T, C) the part of demand the multiplicative noise scales
    noisy_demand: np.ndarray

    @property
    def revenue(self) -> np.ndarray:
        return self.pos + self.online

    @cached_property
    def media_revenue(self) -> np.ndarray:
        """(G, T, N) the revenue each channel adds after availability and operations: what switching the
        channel off removes, on every geo-day."""
        served = MEDIA_CATEGORY_SHARE * self.availability
        return self.contribution * (
            (1 - _CHANNEL_ONLINE) * (served * self.store_factor).sum(axis=-1, keepdims=True)
            + _CHANNEL_ONLINE * (served * self.online_factor).sum(axis=-1, keepdims=True)
        )

    @cached_property
    def noise_loading(self) -> np.ndarray:
        """(G, T, C) revenue per unit of demand noise: revenue = ... + noise_loading x (noise - 1)."""
        share = self.online_share
        return self.availability * self.noisy_demand * (self.store_factor * (1 - share) + self.online_factor * share)


def baseline_demand(timeline: Timeline, geo: Geography, ctx: Context) -> np.ndarray:
    """(G, T, C) expected revenue before media, weather, promotions, stockouts and shocks."""
    n_t = timeline.n_days
    doy, month, day = timeline.doy[:n_t], timeline.month[:n_t], timeline.day[:n_t]
    peaks = np.array([c.season_peak for c in CATEGORIES])
    amps = np.array([c.season_amp for c in CATEGORIES])
    season = 1 + amps * np.cos(2 * np.pi * (doy[:, None] - peaks) / 365.25)
    holiday = np.array([HOLIDAY_EFFECT[timeline.holiday_names[h]] if h >= 0 else 1.0 for h in timeline.holiday[:n_t]])
    event = np.array([EVENT_EFFECT[timeline.event_names[e]] if e >= 0 else 1.0 for e in timeline.event[:n_t]])
    december = (month == 12) & (day <= 23)
    retail_season = np.where(december, 1.1 + 0.3 * day / 23, 1.0) * np.where((month == 12) & (day >= 26), 1.1, 1.0)
    retail_season *= np.where((month == 1) & (day >= 2), 0.92, 1.0)
    payday = np.where(timeline.is_payday[:n_t], 1.06, 1.0) * np.where(np.isin(day, (2, 16)), 1.03, 1.0)
    trend = 1.05 ** (np.arange(n_t) / 365.0)
    daily = DOW_EFFECT[timeline.dow[:n_t]] * holiday * event * retail_season * payday * trend
    school = np.ones((geo.n, n_t, len(CATEGORIES)))
    school[..., CATEGORY_NAMES.index("apparel")] += 0.3 * ctx.back_to_school
    school[..., CATEGORY_NAMES.index("home")] += 0.1 * ctx.back_to_school
    weekday = timeline.dow[:n_t] < 5
    school[..., CATEGORY_NAMES.index("outdoor_living")] += 0.05 * (ctx.summer_break & weekday)
    local = (1 + 0.25 * (ctx.tourism / 100 - 1)) * ctx.macro_multiplier(geo)
    local *= np.where(ctx.local_event >= 0, LOCAL_EVENT_EFFECT, 1.0) * (
        1 - COMPETITOR_EFFECT * ctx.competitor_intensity
    )
    return geo.size[:, None, None] * _CATEGORY_BASE * season[None] * daily[None, :, None] * school * local[..., None]


def weather_terms(size: np.ndarray, temp: np.ndarray, precip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(store, online) linear weather effects, (G, T, C) each; they sum to the true per-unit effects."""
    d_temp = (temp[..., None] - _TEMP_REF) * _TEMP_EFFECT
    d_precip = precip[..., None] * _PRECIP_EFFECT
    s = size[:, None, None]
    store = s * (TEMP_STORE_SHARE * d_temp + PRECIP_STORE_SHARE * d_precip)
    return store, s * (d_temp + d_precip) - store


@dataclass(frozen=True)
class DemandModel:
    """Everything fixed in advance: drivers, plans and noise draws. `run` maps a scenario to outcomes."""

    config: WorldConfig
    timeline: Timeline
    geo: Geography
    weather: Weather
    context: Context
    retail: Retail
    media: MediaPlan
    baseline: np.ndarray
    noise: np.ndarray
    online_share: np.ndarray

    def forecast_demand(self, wd: WeatherDrivers) -> np.ndarray:
        """(G, T) the unobserved demand that reacts to the forecasts: the confounder of the weather effect."""
        weekend = np.where(self.timeline.dow[: self.config.n_days] >= 5, WEEKEND_FORECAST_FACTOR, 1.0)
        return (
            self.geo.size[:, None]
            * weekend
            * (
                FORECAST_DEMAND_TEMP * wd.temp_forecast_anomaly
                + FORECAST_DEMAND_HEAT * np.maximum(wd.temp_forecast - HEAT_THRESHOLD_C, 0.0)
                + FORECAST_DEMAND_PRECIP * wd.precip_forecast_anomaly_day_ahead
            )
        )

    def weather_and_delivery(
        self, shocks_off: frozenset[str] = frozenset()
    ) -> tuple[WeatherDrivers, Operations, np.ndarray]:
        """The weather without `shocks_off`, the operations it leaves and the spend it makes bids deliver."""
        wd = self.weather.drivers([s for s in self.weather.shock_ids if s not in shocks_off])
        return wd, operations(self.context, self.timeline, wd.storm_category), self.media.delivered(wd)

    @cached_property
    def factual(self) -> tuple[WeatherDrivers, Operations, np.ndarray, np.ndarray, np.ndarray]:
        """What most scenarios share with the factual world: its weather, operations, delivered spend, and
        spend and contribution (a run reuses the channels whose spend it leaves alone)."""
        wd, ops, delivered = self.weather_and_delivery()
        spend = self.media.spend(delivered)
        return wd, ops, delivered, spend, self.media.contribution(spend, self.geo.size)

    def run(self, scenario: Scenario) -> Outcome:
        wd, ops, delivered, *factual_media = self.factual
        if scenario.shocks_off:
            wd, ops, delivered = self.weather_and_delivery(scenario.shocks_off)
        spend = self.media.spend(delivered, scenario.experiments_off, scenario.channel_scale)
        contribution = self.media.contribution(spend, self.geo.size, previous=tuple(factual_media))
        retail = self.retail
        promo = retail.promo.lift * retail.promo.pre_post if scenario.promotions else 1.0
        inventory = retail.inventory if scenario.promotions else retail.inventory_without_promotions
        availability = inventory.availability if scenario.stockouts else 1.0
        uplift = 1 + _HEAT_UPLIFT * wd.heatwave[..., None] + _STORM_EVE_UPLIFT * wd.storm_eve[..., None]
        noise = self.noise if scenario.demand_noise else 1.0
        noisy = self.baseline * promo * uplift
        core = noisy * noise + self.forecast_demand(wd)[..., None] * _FORECAST_DEMAND_SHARE
        weather_store, weather_online = weather_terms(
            self.geo.size, wd.temp_mean + scenario.temp_shift, wd.precip + scenario.precip_shift
        )
        media_online = (contribution @ _CHANNEL_ONLINE)[..., None] * MEDIA_CATEGORY_SHARE
        media_store = contribution.sum(axis=-1)[..., None] * MEDIA_CATEGORY_SHARE - media_online
        online_share = self.online_share[:, None, :]
        store = (1 - online_share) * core + media_store + weather_store
        online = online_share * core + media_online + weather_online
        store_factor = ops.store_factor[..., None] * (store > 0)
        online_factor = ops.online_factor[..., None] * (online > 0)
        return Outcome(
            pos=availability * store_factor * store,
            online=availability * online_factor * online,
            spend=spend,
            contribution=contribution,
            weather=wd,
            ops=ops,
            availability=availability,
            store_factor=store_factor,
            online_factor=online_factor,
            online_share=online_share,
            noisy_demand=noisy,
        )


#: multiplicative demand noise: log-sd of a persistent local (geo-day, AR(1)) part and of a category part
NOISE_LOCAL_SD = 0.03
NOISE_PERSISTENCE = 0.6
NOISE_CATEGORY_SD = 0.025


def demand_noise(config: WorldConfig, shape: tuple[int, int, int]) -> np.ndarray:
    """(G, T, C) mean-one multiplicative noise: a persistent local (geo-day) part and a category part."""
    rng = rng_for(config.seed, "demand_noise")
    n_g, n_t, _ = shape
    local = ar1(rng.standard_normal((n_g, n_t + 30)), NOISE_PERSISTENCE, 30)
    log = NOISE_LOCAL_SD * local[..., None] + NOISE_CATEGORY_SD * rng.standard_normal(shape)
    return np.exp(log - (NOISE_LOCAL_SD**2 + NOISE_CATEGORY_SD**2) / 2)


def planned_revenue(model_baseline: np.ndarray, weather: Weather, geo: Geography, n_days: int) -> np.ndarray:
    """The retailer's demand plan per category: baseline plus weather at climatology plus typical media."""
    store, online = weather_terms(geo.size, weather.clim_temp[:, :n_days], weather.clim_precip[:, :n_days])
    typical_media = 0.12 * model_baseline.sum(axis=-1, keepdims=True) * MEDIA_CATEGORY_SHARE
    return np.maximum(model_baseline + store + online + typical_media, 0.0)


def contribution_margin(pos: np.ndarray, online: np.ndarray, retail: Retail) -> np.ndarray:
    """(G, T, C) revenue minus cost of goods, fulfilment (9% online, 4% in store) and payment fees (2.5%)."""
    revenue = pos + online
    return revenue * (1 - retail.cost_per_dollar) - 0.09 * online - 0.04 * pos - 0.025 * revenue


def sales_table(
    outcome: Outcome,
    retail: Retail,
    geo: Geography,
    timeline: Timeline,
    config: WorldConfig,
    new_share: np.ndarray,
    assisted_share: np.ndarray,
) -> pl.DataFrame:
    """Orders, units, cogs and margin consistent with the day's SKU prices, discounts and unit costs.
    `new_share`, `assisted_share` (G, T): the share of orders from new customers and from customers who
    saw an ad in the last week, both driven by exposure (impressions per person), not by the true effect."""
    rng = rng_for(config.seed, "sales_table")
    n_t = config.n_days
    pos = np.round(outcome.pos, 2)
    online = np.round(outcome.online, 2)
    revenue = pos + online
    products = retail.products
    share = retail.revenue_share
    units_per_dollar = (share / retail.price) @ products.onehot
    units = np.round(revenue * units_per_dollar).astype(np.int64)
    upo = np.array([c.units_per_order for c in CATEGORIES])
    orders = np.minimum(units, np.maximum(np.round(units / upo * rng.lognormal(0, 0.05, units.shape)), units > 0))
    orders = orders.astype(np.int64)
    cogs = np.round(revenue * retail.cost_per_dollar, 2)
    margin = np.round(contribution_margin(pos, online, retail), 2)
    new = rng.binomial(orders, new_share[..., None])
    assisted = rng.binomial(orders, assisted_share[..., None])
    columns = {
        "orders": orders,
        "units": units,
        "revenue": np.round(revenue, 2),
        "cogs": cogs,
        "contribution_margin": margin,
        "new_customers": new,
        "returning_customers": orders - new,
        "assisted_conversions": assisted,
        "pos_revenue": pos,
        "online_revenue": online,
    }
    return panel_frame("sales", geo.ids, timeline.epoch_days[:n_t], columns, ("category_l1", CATEGORY_NAMES))
