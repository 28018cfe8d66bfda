"""Context that shifts demand: school terms, tourism, local events, regional macro, competitors,
owned channels (email) and operations (store hours, shipping delays, carrier outages)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from mmm_platform.simulate.config import WorldConfig, ar1, rng_for
from mmm_platform.simulate.frames import conform, date_series, panel_frame, panel_values, string_series
from mmm_platform.simulate.geography import Geography
from mmm_platform.simulate.timeline import Timeline, nth_weekday

LOCAL_EVENTS = ("County Fair", "City Marathon", "Music Festival", "Home Game", "Food Festival")
#: demand multiplier on holidays (all categories); stores close on Christmas and half-close on Thanksgiving
HOLIDAY_EFFECT = {
    "New Year's Day": 0.7,
    "Martin Luther King Jr. Day": 1.05,
    "Presidents' Day": 1.12,
    "Memorial Day": 1.3,
    "Juneteenth": 1.03,
    "Independence Day": 1.25,
    "Labor Day": 1.25,
    "Columbus Day": 1.06,
    "Veterans Day": 1.08,
    "Thanksgiving": 0.6,
    "Black Friday": 1.9,
    "Christmas Day": 0.5,
}
HOLIDAY_STORE_HOURS = {"Thanksgiving": 0.5, "Christmas Day": 0.0}
EVENT_EFFECT = {
    "Super Bowl": 1.04,
    "Valentine's Day": 1.03,
    "Mother's Day": 1.06,
    "Father's Day": 1.06,
    "Halloween": 1.05,
    "Cyber Monday": 1.35,
}
LOCAL_EVENT_EFFECT = 1.06
#: demand loss per unit of competitor promotion intensity
COMPETITOR_EFFECT = 0.12
EMAIL_ONLINE_UPLIFT = 0.04


#: share of the variance of a slow drift (tourism, competitors) common to an area of a zone
REGIONAL_DRIFT_SHARE = 0.8


def _drift(rng: np.random.Generator, geo: Geography, n_t: int, phi: float) -> np.ndarray:
    """(G, T) unit-variance AR(1) noise along days: slow drifts, mostly shared by the geos of an area
    (tourism and competitors move regionally), partly local."""
    area = geo.area_key
    common = ar1(rng.standard_normal((area.max() + 1, n_t + 50)), phi, 50)[area]
    local = ar1(rng.standard_normal((geo.n, n_t + 50)), phi, 50)
    return np.sqrt(REGIONAL_DRIFT_SHARE) * common + np.sqrt(1 - REGIONAL_DRIFT_SHARE) * local


def _school_terms(timeline: Timeline, geo: Geography) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in session, back-to-school shopping window, summer break), each (G, T): by region, US-style."""
    n_t = timeline.n_days
    off, back, summer = (np.zeros((geo.n, n_t), dtype=bool) for _ in range(3))
    for r, (off_r, back_r, summer_r) in enumerate(_region_terms(timeline, geo)):
        rows = geo.region_idx == r
        off[rows], back[rows], summer[rows] = off_r, back_r, summer_r
    weekend = timeline.dow[:n_t] >= 5
    holiday = timeline.holiday[:n_t] >= 0
    return ~(off | weekend | holiday), back, summer


def _region_terms(timeline: Timeline, geo: Geography) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per region: (school off for a break, back-to-school window, summer break), each (T,)."""
    n_t = timeline.n_days
    dates = [timeline.date(t) for t in range(n_t)]
    out = []
    for r, region in enumerate(geo.regions):
        early = region == "south"
        off, bts, summer = (np.zeros(n_t, dtype=bool) for _ in range(3))
        for t, d in enumerate(dates):
            first_day = dt.date(d.year, 8, 8) if early else dt.date(d.year, 8, 29)
            last_day = dt.date(d.year, 5, 31) if early else dt.date(d.year, 6, 14)
            spring = nth_weekday(d.year, 3, 0, 2) + dt.timedelta(weeks=r % 3)
            summer[t] = last_day < d < first_day
            winter = (d.month == 12 and d.day >= 21) or (d.month == 1 and d.day <= 2)
            off[t] = summer[t] or winter or spring <= d < spring + dt.timedelta(days=5)
            bts[t] = 0 <= (first_day - d).days <= 20
        out.append((off, bts, summer))
    return out


def calendar_changes(timeline: Timeline, geo: Geography) -> np.ndarray:
    """(T,) days on which the calendar shifts demand somewhere: a school term, break or back-to-school
    window starts or ends in some region, or a holiday or national event. Shocks are placed away from
    them, so a before/after or DiD window around a shock is not confounded by the calendar."""
    n_t = timeline.n_days
    change = (timeline.holiday[:n_t] >= 0) | (timeline.event[:n_t] >= 0)
    for terms in _region_terms(timeline, geo):
        for status in terms:
            change[1:] |= status[1:] != status[:-1]
    return change


@dataclass(frozen=True)
class Context:
    """Context drivers on the (G, T) grid of observed days, and monthly macro by region."""

    in_session: np.ndarray
    back_to_school: np.ndarray
    summer_break: np.ndarray
    tourism: np.ndarray
    local_event: np.ndarray
    months: list[dt.date]
    month_idx: np.ndarray
    macro: dict[str, np.ndarray]
    competitor_intensity: np.ndarray
    email_day: np.ndarray
    carrier_outage: np.ndarray
    normal_hours: np.ndarray
    noise: dict[str, np.ndarray]

    def macro_multiplier(self, geo: Geography) -> np.ndarray:
        """(G, T) demand shift from regional income, unemployment and fuel prices."""
        m = {k: v[geo.region_idx][:, self.month_idx] for k, v in self.macro.items()}
        return (
            (m["disposable_income_index"] / 100) ** 0.8
            * (1 - 0.025 * (m["unemployment_rate_pct"] - 4.0))
            * (1 - 0.15 * (m["gas_price_per_l"] - 1.0))
        )


def build_context(config: WorldConfig, timeline: Timeline, geo: Geography) -> Context:
    rng = rng_for(config.seed, "context")
    n_g, n_t = geo.n, config.n_days
    shape = (n_g, n_t)
    in_session, back, summer = _school_terms(timeline, geo)
    peak = np.where(geo.zone_idx == 2, 45, 200)
    amp = np.array([0.25, 0.2, 0.35])[geo.zone_idx]
    season = np.cos(2 * np.pi * (timeline.doy[None, :n_t] - peak[:, None]) / 365.25)
    holiday_week = np.convolve(timeline.holiday[:n_t] >= 0, np.ones(5), mode="same") > 0
    tourism = 100 * (1 + amp[:, None] * season) * (1 + 0.12 * holiday_week) * np.exp(0.05 * _drift(rng, geo, n_t, 0.9))
    local = np.where(rng.uniform(size=shape) < 8 / 365, rng.integers(0, len(LOCAL_EVENTS), shape), -1)
    months = sorted({dt.date(timeline.year[t], timeline.month[t], 1) for t in range(n_t)})
    month_idx = np.searchsorted(
        [m.toordinal() for m in months],
        [dt.date(timeline.year[t], timeline.month[t], 1).toordinal() for t in range(n_t)],
    )
    n_r, n_m = len(geo.regions), len(months)
    steps = np.arange(n_m)
    summer_fuel = np.array([np.sin(np.pi * (m.month - 3) / 6) if 3 <= m.month <= 9 else 0.0 for m in months])
    macro = {
        "cpi": 308 * 1.0025**steps * rng.normal(1, 0.03, (n_r, 1)) + rng.normal(0, 0.4, (n_r, n_m)),
        "disposable_income_index": 100 * rng.normal(1, 0.04, (n_r, 1))
        + np.cumsum(rng.normal(0.15, 0.5, (n_r, n_m)), axis=1),
        "unemployment_rate_pct": np.clip(
            3.9 + rng.normal(0, 0.5, (n_r, 1)) + np.cumsum(rng.normal(0, 0.12, (n_r, n_m)), axis=1), 2.5, 9.0
        ),
        "gas_price_per_l": 0.95
        + rng.normal(0, 0.06, (n_r, 1))
        + 0.07 * summer_fuel
        + np.cumsum(rng.normal(0, 0.02, (n_r, n_m)), axis=1),
    }
    bf_week = np.zeros(n_t, dtype=bool)
    for t in np.flatnonzero(timeline.holiday[:n_t] >= 0):
        if timeline.holiday_names[timeline.holiday[t]] == "Black Friday":
            bf_week[max(0, t - 3) : t + 4] = True
    competitor_promo = np.zeros(shape)
    for _ in range(round(12 * n_t / 365)):
        region, start = rng.integers(n_r), rng.integers(0, n_t - 5)
        competitor_promo[geo.region_idx == region, start : start + rng.integers(2, 6)] = rng.uniform(0.4, 0.6)
    intensity = np.clip(0.2 + 0.08 * _drift(rng, geo, n_t, 0.95) + competitor_promo + 0.5 * bf_week, 0.0, 1.0)
    email = np.broadcast_to(np.isin(timeline.dow[:n_t], (1, 4)), shape)
    outage = np.zeros(shape, dtype=bool)
    for _ in range(round(4 * n_t / 365 * n_r)):
        region, start = rng.integers(n_r), rng.integers(0, n_t - 3)
        outage[geo.region_idx == region, start : start + rng.integers(1, 4)] = True
    noise = {
        k: rng.standard_normal(shape)
        for k in (
            "delay",
            "staff",
            "footfall",
            "mobility",
            "sessions",
            "gap",
            "trend",
            "shelf",
            "overlap",
            "sentiment",
        )
    }
    noise["delay"] = rng.gamma(2.0, 2.0, shape)
    return Context(
        in_session=in_session,
        back_to_school=back,
        summer_break=summer,
        tourism=tourism,
        local_event=local,
        months=months,
        month_idx=month_idx,
        macro=macro,
        competitor_intensity=intensity,
        email_day=email,
        carrier_outage=outage,
        normal_hours=rng.choice([10.0, 11.0, 12.0, 13.0, 14.0], n_g),
        noise=noise,
    )


@dataclass(frozen=True)
class Operations:
    store_hours: np.ndarray
    #: share of normal store trade possible (hours open / normal hours)
    store_factor: np.ndarray
    #: online revenue multiplier: shipping delays and outages hurt, storms and emails help
    online_factor: np.ndarray
    shipping_delay: np.ndarray


def operations(ctx: Context, timeline: Timeline, storm_category: np.ndarray) -> Operations:
    """Store hours and online fulfilment given the storms that hit (storms close stores, delay parcels)."""
    n_t = storm_category.shape[1]
    holiday_hours = np.array(
        [HOLIDAY_STORE_HOURS.get(timeline.holiday_names[h], 1.0) if h >= 0 else 1.0 for h in timeline.holiday[:n_t]]
    )
    storm_hours = np.clip(1 - 0.22 * storm_category, 0.0, 1.0)
    hours = np.round(2 * ctx.normal_hours[:, None] * holiday_hours[None, :] * storm_hours) / 2
    peak = ((timeline.month[:n_t] == 12) & (timeline.day[:n_t] <= 24)).astype(float)
    delay = np.round(22 + 10 * peak + 30 * ctx.carrier_outage + 10 * storm_category + ctx.noise["delay"], 1)
    online = (
        (1 - 0.35 * ctx.carrier_outage)
        * np.exp(-0.006 * np.maximum(0.0, delay - 24))
        * (1 + 0.08 * storm_category)
        * (1 + EMAIL_ONLINE_UPLIFT * ctx.email_day)
    )
    return Operations(hours, hours / ctx.normal_hours[:, None], online, delay)


def calendar_table(
    ctx: Context, timeline: Timeline, geo: Geography, pos_revenue: np.ndarray, precip: np.ndarray
) -> pl.DataFrame:
    n_t = timeline.n_days
    holiday = np.broadcast_to(timeline.holiday[:n_t], (geo.n, n_t))
    national = timeline.event[:n_t]
    names = [*timeline.event_names, *LOCAL_EVENTS]
    event = np.where(
        national[None, :] >= 0,
        national[None, :],
        np.where(ctx.local_event >= 0, ctx.local_event + len(timeline.event_names), -1),
    )
    footfall = 100 * pos_revenue / pos_revenue.mean(axis=1, keepdims=True) * np.exp(0.05 * ctx.noise["footfall"])
    mobility = 100 * (0.5 + 0.5 * footfall / 100) * np.exp(-0.01 * precip + 0.04 * ctx.noise["mobility"])
    payday = np.broadcast_to(timeline.is_payday[:n_t], (geo.n, n_t))
    columns = {
        "is_holiday": holiday >= 0,
        "holiday_name": string_series("holiday_name", timeline.holiday_names, panel_values(holiday, n_t)),
        "is_payday": payday,
        "school_in_session": ctx.in_session,
        "major_event": string_series("major_event", names, panel_values(event, n_t)),
        "footfall_index": np.round(footfall, 1),
        "tourism_index": np.round(ctx.tourism, 1),
        "mobility_index": np.round(mobility, 1),
    }
    return panel_frame("calendar", geo.ids, timeline.epoch_days[:n_t], columns)


def macro_table(ctx: Context, geo: Geography) -> pl.DataFrame:
    n_r, n_m = len(geo.regions), len(ctx.months)
    epoch = dt.date(1970, 1, 1)
    decimals = {"cpi": 1, "disposable_income_index": 2, "unemployment_rate_pct": 2, "gas_price_per_l": 3}
    return conform(
        "macro",
        pl.DataFrame(
            [
                string_series("region", geo.regions, np.tile(np.arange(n_r), n_m)),
                date_series("date", np.repeat([(m - epoch).days for m in ctx.months], n_r)),
                *(pl.Series(k, np.round(v.T.ravel(), decimals[k])) for k, v in ctx.macro.items()),
            ]
        ),
    )


def competitive_table(
    ctx: Context,
    timeline: Timeline,
    geo: Geography,
    our_depth: np.ndarray,
    search_spend: np.ndarray,
    search_plan: np.ndarray,
    demand_ratio: np.ndarray,
) -> pl.DataFrame:
    """`demand_ratio`: realised demand over the baseline plan, which drives search interest."""
    n_t = timeline.n_days
    nz = ctx.noise
    gap = 2.0 * nz["gap"] - 8 * ctx.competitor_intensity + 0.25 * our_depth
    rival = search_plan * np.exp(0.3 + 0.2 * nz["overlap"])
    impression_share = 100 * search_spend / np.maximum(search_spend + rival, 1e-9)
    trend = np.clip(50 * demand_ratio * np.exp(0.06 * nz["trend"]), 0.0, 100.0)
    overlap = np.clip(65 + 8 * np.tanh(geo.competitor_density - 3)[:, None] + 2 * nz["overlap"], 0, 100)
    shelf = np.clip(25 - 6 * ctx.competitor_intensity + 1.5 * nz["shelf"], 0, 100)
    columns = {
        "competitor_price_gap_pct": np.round(gap, 2),
        "competitor_promo_intensity": np.round(ctx.competitor_intensity, 3),
        "assortment_overlap_pct": np.round(overlap, 1),
        "impression_share_pct": np.round(impression_share, 1),
        "top_of_page_rate_pct": np.round(impression_share * (0.6 + 0.05 * np.tanh(nz["gap"])), 1),
        "search_trend_index": np.round(trend, 1),
        "share_of_shelf_pct": np.round(shelf, 1),
    }
    return panel_frame("competitive", geo.ids, timeline.epoch_days[:n_t], columns)


def digital_table(
    ctx: Context,
    timeline: Timeline,
    geo: Geography,
    config: WorldConfig,
    online_revenue: np.ndarray,
    orders: np.ndarray,
    brand_exposure: np.ndarray,
    shipping_delay: np.ndarray,
) -> pl.DataFrame:
    """Owned-channel behaviour: sessions follow online demand, tickets follow orders and delivery trouble,
    social mentions follow what people saw of the brand (`brand_exposure`: impressions per person over
    the last days) and local events."""
    rng = rng_for(config.seed, "digital")
    n_t = timeline.n_days
    subscribers = geo.population[:, None] * 0.04
    sessions = np.round(online_revenue / (70 * 0.028) * np.exp(0.05 * ctx.noise["sessions"])).astype(np.int64)
    add_to_cart = rng.binomial(sessions, 0.09)
    late = np.maximum(0.0, shipping_delay - 24)
    tickets = rng.poisson(orders * 0.015 * (1 + 0.02 * late) * (1 + ctx.carrier_outage))
    sentiment = np.tanh(0.35 - 0.015 * late - 0.4 * ctx.carrier_outage + 0.1 * ctx.noise["sentiment"])
    friday = np.broadcast_to(timeline.dow[:n_t] == 4, (geo.n, n_t))
    columns = {
        "sessions": sessions,
        "app_sessions": np.round(sessions * rng.uniform(0.35, 0.45, sessions.shape)),
        "add_to_cart": add_to_cart,
        "checkouts": rng.binomial(add_to_cart, 0.38),
        "email_sends": np.round(subscribers * np.where(ctx.email_day, 0.95, 0.03)),
        "sms_sends": np.round(subscribers * 0.2 * np.where(friday, 1.0, 0.01)),
        "push_sends": np.round(sessions * 0.4 * 0.5),
        "organic_search_clicks": rng.poisson(online_revenue / 70 * 0.6),
        "social_mentions": rng.poisson(
            (geo.size[:, None] * 25 + geo.population[:, None] / 1e5 * 120 * brand_exposure)
            * np.where(ctx.local_event >= 0, 1.5, 1.0)
        ),
        "support_tickets": tickets,
        "support_sentiment": np.round(sentiment, 3),
    }
    return panel_frame("digital", geo.ids, timeline.epoch_days[:n_t], columns)


def operations_table(
    ctx: Context,
    timeline: Timeline,
    geo: Geography,
    ops: Operations,
    storm_category: np.ndarray,
    temp_forecast_anomaly: np.ndarray,
) -> pl.DataFrame:
    """Store managers staff to the forecast: staffing is an observed trace of the forecast-driven response."""
    n_t = timeline.n_days
    season = (timeline.month[:n_t] == 12) | ((timeline.month[:n_t] == 11) & (timeline.day[:n_t] >= 20))
    staffing = np.clip(
        100 + 8 * season + 1.5 * temp_forecast_anomaly - 15 * (storm_category > 0) + 3 * ctx.noise["staff"],
        0,
        200,
    )
    columns = {
        "shipping_delay_hours": ops.shipping_delay,
        "carrier_outage": ctx.carrier_outage,
        "staffing_level_pct": np.round(staffing, 1),
        "store_open_hours": ops.store_hours,
        "curbside_capacity": np.round(geo.size[:, None] * 60 * ops.store_factor).astype(np.int64),
    }
    return panel_frame("operations", geo.ids, timeline.epoch_days[:n_t], columns)
