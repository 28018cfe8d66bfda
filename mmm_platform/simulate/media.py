"""Media: channels and campaigns, plans set in advance, delivery that reacts to the forecast, and the
true response (geometric adstock, then Hill saturation, times the geo's size).

Intent and always-on performance campaigns adjust bids on the day-ahead (lead-1) forecast: spend is
higher when the forecast is warm or wet. That makes spend a channel of forecast-driven confounding for
a naive weather regression, and weather a confounder for a naive media regression.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.signal import lfilter

from mmm_platform.simulate.config import WorldConfig, ar1, rng_for
from mmm_platform.simulate.frames import conform, date_series, panel_keys, string_series
from mmm_platform.simulate.geography import Geography
from mmm_platform.simulate.timeline import Timeline
from mmm_platform.simulate.weather import WeatherDrivers


@dataclass(frozen=True)
class Channel:
    """A channel's true response; money in $ for a geo of size 1."""

    name: str
    group: str
    #: geometric adstock retention per day (normalised: weights (1 - a) a^k sum to 1)
    adstock_alpha: float
    #: adstocked daily spend (per unit of geo size) at which the effect is half its maximum
    half_saturation: float
    slope: float
    #: revenue per geo-day (per unit of geo size) at full saturation
    max_revenue: float
    cpm: float
    ctr: float
    #: share of the revenue it drives that lands online
    online_share: float
    #: platform-reported revenue / true incremental revenue; None: the channel has no platform reporting
    attribution_bias: float | None


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    channel: str
    objective: str
    pacing: str
    #: planned spend per geo-day (per unit of geo size) while live
    daily_budget: float
    #: log-spend change per °C of the lead-1 forecast temperature anomaly (bid adjustments)
    temp_reaction: float
    #: log-spend change per mm of the lead-1 forecast precipitation anomaly
    precip_reaction: float
    #: always | flights (TV buys) | holiday (Nov 10 - Dec 23) | bursts
    schedule: str


CHANNELS: tuple[Channel, ...] = (
    Channel("tv", "brand", 0.88, 260.0, 1.6, 2100.0, 30.0, 0.0, 0.25, None),
    Channel("online_video", "brand", 0.75, 150.0, 1.4, 900.0, 16.0, 0.004, 0.30, 1.5),
    Channel("audio", "brand", 0.70, 90.0, 1.3, 400.0, 10.0, 0.0008, 0.25, 1.3),
    Channel("search", "performance", 0.25, 350.0, 1.0, 3300.0, 55.0, 0.05, 0.60, 2.2),
    Channel("social", "performance", 0.45, 220.0, 1.1, 1400.0, 9.0, 0.011, 0.55, 1.8),
    Channel("display", "performance", 0.35, 160.0, 1.0, 650.0, 4.0, 0.0025, 0.65, 2.6),
)
CHANNEL_NAMES = [c.name for c in CHANNELS]

CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("tv_brand_flights", "tv", "brand", "burst", 450.0, 0.0, 0.0, "flights"),
    Campaign("tv_holiday", "tv", "brand", "burst", 350.0, 0.0, 0.0, "holiday"),
    Campaign("olv_brand", "online_video", "brand", "always_on", 90.0, 0.0, 0.0, "always"),
    Campaign("olv_launch", "online_video", "prospecting", "burst", 140.0, 0.0, 0.0, "bursts"),
    Campaign("audio_brand", "audio", "brand", "always_on", 60.0, 0.0, 0.0, "always"),
    Campaign("search_generic", "search", "prospecting", "intent", 170.0, 0.025, 0.01, "always"),
    Campaign("search_brand", "search", "loyalty", "intent", 60.0, 0.01, 0.0, "always"),
    Campaign("search_weather", "search", "prospecting", "intent", 45.0, 0.08, 0.02, "always"),
    Campaign("social_prospecting", "social", "prospecting", "always_on", 120.0, 0.015, 0.0, "always"),
    Campaign("social_loyalty", "social", "loyalty", "always_on", 40.0, 0.0, 0.0, "always"),
    Campaign("display_retargeting", "display", "retargeting", "always_on", 70.0, 0.01, 0.0, "always"),
    Campaign("display_prospecting", "display", "prospecting", "burst", 80.0, 0.0, 0.0, "bursts"),
)
CAMPAIGN_CHANNEL = np.array([CHANNEL_NAMES.index(c.channel) for c in CAMPAIGNS])
#: (J, N) campaign -> channel membership
CAMPAIGN_ONEHOT = np.eye(len(CHANNELS))[CAMPAIGN_CHANNEL]


def campaigns_of(channel: str) -> np.ndarray:
    """(J,) mask of the campaigns that belong to a channel."""
    return np.array([c.channel == channel for c in CAMPAIGNS])


#: average order value the platforms use to turn attributed revenue into conversions
PLATFORM_AOV = 68.0
HOLDOUT_CHANNEL = "search"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    channel: str
    treated: np.ndarray  # (G,) bool
    start: int
    end: int


@dataclass(frozen=True)
class AllocatorPlan:
    plan_id: str
    status: str
    created_at: dt.datetime
    start: int
    end: int
    #: (N,) recommended spend / baseline plan, by channel
    multiplier: np.ndarray


@dataclass(frozen=True)
class GovernanceEvent:
    day: int
    geo: int
    channel: str | None
    event_type: str
    description: str


@dataclass(frozen=True)
class MediaPlan:
    """Everything about media decided before the weather is known, plus delivery noise."""

    #: (G, T, J) planned spend after executed allocator plans and manual overrides
    planned: np.ndarray
    #: (G, T, N) channel plan before any allocator plan, what the allocator starts from
    baseline_channel_plan: np.ndarray
    pacing: np.ndarray
    frozen: np.ndarray
    experiment: Experiment
    plans: list[AllocatorPlan]
    governance: list[GovernanceEvent]
    noise: dict[str, np.ndarray]

    def spend(
        self, weather: WeatherDrivers, holdout: bool = True, channel_scale: dict[str, float] | None = None
    ) -> np.ndarray:
        """(G, T, J) delivered spend: plan x pacing x bid reaction to the lead-1 forecast."""
        temp_r = np.array([c.temp_reaction for c in CAMPAIGNS])
        precip_r = np.array([c.precip_reaction for c in CAMPAIGNS])
        signal = (
            temp_r * weather.temp_forecast_anomaly_day_ahead[..., None]
            + precip_r * weather.precip_forecast_anomaly_day_ahead[..., None]
        )
        spend = self.planned * self.pacing * np.exp(0.5 * np.tanh(signal / 0.5)) * ~self.frozen
        if holdout:
            exp = self.experiment
            cols = np.flatnonzero(campaigns_of(exp.channel))
            rows = np.flatnonzero(exp.treated)
            spend[np.ix_(rows, np.arange(exp.start, exp.end + 1), cols)] = 0.0
        for name, scale in (channel_scale or {}).items():
            spend[..., campaigns_of(name)] *= scale
        return spend


def response(spend: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(G, T, N) true revenue contribution of each channel from (G, T, J) campaign spend."""
    per_size = (spend @ CAMPAIGN_ONEHOT) / size[:, None, None]
    out = np.empty_like(per_size)
    for n, ch in enumerate(CHANNELS):
        a = ch.adstock_alpha
        x = per_size[..., n]
        warm_start = a * x[:, :28].mean(axis=1, keepdims=True)  # as if the first weeks' spend ran before
        adstock = lfilter([1 - a], [1.0, -a], x, axis=1, zi=warm_start)[0]
        hill = adstock**ch.slope / (adstock**ch.slope + ch.half_saturation**ch.slope)
        out[..., n] = ch.max_revenue * hill * size[:, None]
    return out


def _schedule(rng: np.random.Generator, kind: str, timeline: Timeline, n_g: int) -> np.ndarray:
    """(G, T) live days of a campaign: always on, TV flights, the holiday flight, or bursts."""
    n_t = timeline.n_days
    if kind == "always":
        return np.ones((n_g, n_t), dtype=bool)
    if kind == "holiday":
        m, d = timeline.month[:n_t], timeline.day[:n_t]
        live = ((m == 11) & (d >= 10)) | ((m == 12) & (d <= 23))
        return np.broadcast_to(live, (n_g, n_t)).copy()
    on, off, share = ((14, 29), (10, 31), 0.85) if kind == "flights" else ((10, 21), (40, 81), 0.7)
    live = np.zeros((n_g, n_t), dtype=bool)
    t = int(rng.integers(0, 15))
    while t < n_t:
        length = int(rng.integers(*on))
        # regional buys: not every geo is in every flight
        live[rng.uniform(size=n_g) < share, t : t + length] = True
        t += length + int(rng.integers(*off))
    return live


def build_media_plan(config: WorldConfig, timeline: Timeline, geo: Geography) -> MediaPlan:
    rng = rng_for(config.seed, "media")
    n_g, n_t, n_j = geo.n, config.n_days, len(CAMPAIGNS)
    m = timeline.month[:n_t]
    season = 1 + 0.15 * np.isin(m, (11, 12)) + 0.08 * np.isin(m, (5, 6, 7)) - 0.1 * np.isin(m, (1, 2))
    quarter = (timeline.year[:n_t] - timeline.year[0]) * 4 + (m - 1) // 3
    planned = np.empty((n_g, n_t, n_j))
    for j, c in enumerate(CAMPAIGNS):
        geo_weight = (
            rng.lognormal(0.0, 0.2, n_g)[:, None] * rng.lognormal(0.0, 0.15, (n_g, quarter.max() + 1))[:, quarter]
        )
        weekend = 1.1 if c.channel in ("search", "social") else 1.0
        daily = c.daily_budget * season * np.where(timeline.dow[:n_t] >= 5, weekend, 1.0)
        planned[..., j] = daily * geo.size[:, None] * geo_weight * _schedule(rng, c.schedule, timeline, n_g)
    baseline_channel_plan = planned @ CAMPAIGN_ONEHOT
    experiment = _draw_experiment(rng, config, n_g)
    plans = _draw_allocator_plans(rng, config, timeline, experiment)
    for plan in plans:
        keep = {"executed": 1.0, "modified": 0.5}.get(plan.status, 0.0)  # modified: half the shift applied
        factor = 1 + keep * (plan.multiplier[CAMPAIGN_CHANNEL] - 1)
        planned[:, plan.start : plan.end + 1] *= factor
    frozen = np.zeros_like(planned, dtype=bool)
    governance = _governance(rng, config, timeline, geo, experiment, plans, planned, frozen)
    phi, sd = 0.7, np.where(np.array([c.pacing == "burst" for c in CAMPAIGNS]), 0.12, 0.08)
    eta = rng.standard_normal((n_g, n_t + 30, n_j))
    pacing = np.exp(ar1(eta, phi, 30) * sd - sd**2 / 2)
    noise = {k: rng.standard_normal((n_g, n_t, n_j)) for k in ("cpm", "ctr", "sov", "attribution")}
    noise["rival"] = rng.normal(0.3, 0.5, (n_g, 1, n_j))
    return MediaPlan(planned, baseline_channel_plan, pacing, frozen, experiment, plans, governance, noise)


def _draw_experiment(rng: np.random.Generator, config: WorldConfig, n_g: int) -> Experiment:
    """Search off in a random half of the geos for 6-8 weeks in the second half of the period."""
    n_t = config.n_days
    length = min(int(rng.integers(42, 57)), n_t // 3)
    latest = n_t - length - 7
    start = int(rng.integers(n_t // 2, latest + 1)) if latest > n_t // 2 else n_t - length - 1
    treated = np.zeros(n_g, dtype=bool)
    treated[rng.permutation(n_g)[: n_g // 2]] = True
    return Experiment("EXP-01-search-holdout", HOLDOUT_CHANNEL, treated, start, start + length - 1)


def _draw_allocator_plans(
    rng: np.random.Generator, config: WorldConfig, timeline: Timeline, experiment: Experiment
) -> list[AllocatorPlan]:
    """A few historical plans (rejected, executed, modified, executed) and one still pending at the end."""
    n_t = config.n_days
    length = min(14, n_t // 10)
    slots = [(0.12, "rejected"), (0.26, "executed"), (0.40, "modified"), (0.85, "executed")]
    windows = [(round(n_t * f), status) for f, status in slots]
    windows.append((n_t - length, "pending"))
    plans = []
    for start, status in windows:
        end = start + length - 1
        if status != "pending" and experiment.start - 7 <= end and start <= experiment.end + 7:
            continue  # never change the plan during the holdout
        multiplier = np.exp(rng.normal(0.0, 0.25, len(CHANNELS)))
        created = dt.datetime.combine(timeline.date(start - 3), dt.time(9, int(rng.integers(0, 60))))
        plans.append(
            AllocatorPlan(f"AP-{len(plans) + 1:03d}", status, created, start, end, multiplier / multiplier.mean())
        )
    return plans


def _governance(
    rng: np.random.Generator,
    config: WorldConfig,
    timeline: Timeline,
    geo: Geography,
    experiment: Experiment,
    plans: list[AllocatorPlan],
    planned: np.ndarray,
    frozen: np.ndarray,
) -> list[GovernanceEvent]:
    """Freezes and overrides that change delivery (applied to `planned` / `frozen` in place)."""
    n_t = config.n_days
    events = [
        GovernanceEvent(
            experiment.start,
            -1,
            experiment.channel,
            "manual_override",
            f"{experiment.experiment_id}: {experiment.channel} paused in "
            f"{int(experiment.treated.sum())} randomly chosen geos until "
            f"{timeline.date(experiment.end).isoformat()}",
        )
    ]
    for plan in plans:
        if plan.status == "modified":
            events.append(
                GovernanceEvent(
                    plan.start - 1,
                    -1,
                    None,
                    "manual_override",
                    f"{plan.plan_id} modified before execution: half of each shift applied",
                )
            )
    social = campaigns_of("social")
    day = int(rng.integers(14, n_t // 3))
    frozen[:, day : day + 3, social] = True
    events.append(
        GovernanceEvent(day, -1, "social", "campaign_freeze", "Brand-safety freeze of every social campaign for 3 days")
    )
    g, day = int(rng.integers(geo.n)), int(rng.integers(n_t // 3, n_t // 2))
    display = campaigns_of("display")
    frozen[g, day : day + 4, display] = True
    events.append(
        GovernanceEvent(
            day,
            g,
            "display",
            "campaign_freeze",
            f"Display paused in {geo.names[g]} for 4 days after a landing-page outage",
        )
    )
    tv = campaigns_of("tv")
    g, day = int(rng.integers(geo.n)), int(rng.integers(n_t // 6, n_t // 3))
    planned[g, day : day + 7, tv] *= 1.6
    events.append(
        GovernanceEvent(
            day,
            g,
            "tv",
            "manual_override",
            f"TV weight raised 60% for 7 days in {geo.names[g]} (store opening)",
        )
    )
    return events


def media_spend_table(
    plan: MediaPlan,
    spend: np.ndarray,
    contribution: np.ndarray,
    geo: Geography,
    timeline: Timeline,
    config: WorldConfig,
) -> pl.DataFrame:
    """One row per live campaign, geo and day (rows also for paused days: planned > 0, spend 0)."""
    rng = rng_for(config.seed, "media_table")
    n_t = config.n_days
    nz = plan.noise
    q4 = np.isin(timeline.month[:n_t], (11, 12))[None, :, None]
    cpm = np.array([CHANNELS[n].cpm for n in CAMPAIGN_CHANNEL]) * (1 + 0.25 * q4) * np.exp(0.08 * nz["cpm"])
    impressions = np.round(spend / cpm * 1000)
    ctr = np.array([CHANNELS[n].ctr for n in CAMPAIGN_CHANNEL]) * np.exp(0.1 * nz["ctr"])
    rival = np.round(plan.planned / cpm * 1000 * np.exp(nz["rival"] + 0.1 * nz["sov"]))
    channel_spend = (spend @ CAMPAIGN_ONEHOT)[..., CAMPAIGN_CHANNEL]
    bias = np.array([np.nan if (b := CHANNELS[n].attribution_bias) is None else b for n in CAMPAIGN_CHANNEL])
    attributed = (
        contribution[..., CAMPAIGN_CHANNEL]
        * spend
        / np.maximum(channel_spend, 1e-9)
        * bias
        * np.exp(0.15 * nz["attribution"])
    )
    plan_code = np.full(n_t, -1)
    executed = [p for p in plan.plans if p.status == "executed"]
    for i, p in enumerate(executed):
        plan_code[p.start : p.end + 1] = i
    live = ((plan.planned > 0) | (spend > 0)).transpose(1, 0, 2).ravel()

    def rows(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, spend.shape).transpose(1, 0, 2).ravel()[live]

    imp = rows(impressions).astype(np.int64)
    n_j = len(CAMPAIGNS)
    keys = panel_keys(geo.ids, timeline.epoch_days[:n_t], inner=n_j)
    campaign = np.tile(np.arange(n_j), n_t * geo.n)[live]
    sov = 100 * imp / np.maximum(imp + rows(rival), 1)
    return conform(
        "media_spend",
        pl.DataFrame(
            [
                keys[0].filter(live),
                keys[1].filter(live),
                string_series("channel", CHANNEL_NAMES, CAMPAIGN_CHANNEL[campaign]),
                string_series("channel_group", [c.group for c in CHANNELS], CAMPAIGN_CHANNEL[campaign]),
                string_series("campaign_id", [c.campaign_id for c in CAMPAIGNS], campaign),
                string_series("campaign_objective", [c.objective for c in CAMPAIGNS], campaign),
                string_series("pacing_type", [c.pacing for c in CAMPAIGNS], campaign),
                pl.Series("spend", np.round(rows(spend), 2)),
                pl.Series("planned_spend", np.round(rows(plan.planned), 2)),
                pl.Series("impressions", imp),
                pl.Series("clicks", rng.binomial(imp, np.minimum(rows(ctr), 1.0))),
                pl.Series("conversions", np.round(rows(attributed) / PLATFORM_AOV, 2), nan_to_null=True),
                pl.Series("attributed_revenue", np.round(rows(attributed), 2), nan_to_null=True),
                pl.Series("share_of_voice_pct", np.round(sov, 1)),
                string_series("plan_id", [p.plan_id for p in executed], rows(plan_code[None, :, None])),
            ]
        ),
    )


_FORMATS = {
    "tv": (("video_30s", "video_15s"), ("linear_tv", "ctv")),
    "online_video": (("video_15s", "bumper_6s"), ("youtube", "ctv")),
    "audio": (("audio_30s",), ("streaming_audio", "podcast")),
    "search": (("text_ad", "responsive_search"), ("google_search", "bing_search")),
    "social": (("carousel", "story", "video_15s"), ("meta_feed", "instagram_stories", "tiktok")),
    "display": (("banner_300x250", "banner_728x90", "native"), ("programmatic", "retargeting_network")),
}
_AUDIENCE = {
    "prospecting": ("lookalike", "broad_interest"),
    "retargeting": ("cart_abandoners", "site_visitors"),
    "loyalty": ("loyalty_members",),
    "brand": ("broad_reach", "adults_25_54"),
}
_TAGS = (
    "summer",
    "winter",
    "rain_ready",
    "outdoor",
    "home",
    "apparel",
    "grocery",
    "sale",
    "new_arrivals",
    "brand",
)
_CTA = ("shop_now", "learn_more", "get_offer", "see_more")


def creative_table(
    plan: MediaPlan, spend: np.ndarray, geo: Geography, timeline: Timeline, config: WorldConfig
) -> pl.DataFrame:
    """Creatives rotating inside each campaign (national, per day); two overlapping ones are an A/B pair.
    `frequency` is the trailing 7-day impressions per person reached."""
    rng = rng_for(config.seed, "creative")
    n_t = config.n_days
    live = ((plan.planned > 0) | (spend > 0)).any(axis=0)  # (T, J)
    cpm = np.array([CHANNELS[n].cpm for n in CAMPAIGN_CHANNEL])
    daily = np.cumsum(spend.sum(axis=0) / cpm * 1000, axis=0)
    weekly = daily - np.concatenate([np.zeros((7, len(CAMPAIGNS))), daily[:-7]])  # trailing 7-day impressions
    columns: dict[str, list] = {
        k: []
        for k in (
            "day",
            "campaign",
            "creative",
            "format",
            "placement",
            "themed",
            "cta",
            "tags",
            "bucket",
            "audience",
            "reach",
            "frequency",
            "quality",
        )
    }
    for j, c in enumerate(CAMPAIGNS):
        formats, placements = _FORMATS[c.channel]
        reach = int(geo.population.sum() * rng.uniform(0.15, 0.5))
        start = 0
        spans = []
        while start < n_t:
            life = int(rng.integers(45, 121))
            spans.append((start, min(start + life, n_t)))
            start += int(life * rng.uniform(0.5, 0.8))
        active = np.zeros((len(spans), n_t), dtype=bool)
        for k, (a, b) in enumerate(spans):
            active[k, a:b] = True
        n_active = active.sum(axis=0)
        for k in range(len(spans)):
            days = np.flatnonzero(active[k] & live[:, j])
            if len(days) == 0:
                continue
            # while two creatives run side by side they are an A/B test: the older one is "A"
            newer = active[:k, days].any(axis=0)
            bucket = np.where(n_active[days] > 1, np.where(newer, "B", "A"), None)
            themed = c.campaign_id == "search_weather" or rng.uniform() < 0.15
            tags = ";".join(sorted(rng.choice(_TAGS, size=int(rng.integers(1, 4)), replace=False)))
            n = len(days)
            columns["day"] += days.tolist()
            columns["campaign"] += [c.campaign_id] * n
            columns["creative"] += [f"{c.campaign_id}-cr{k + 1:02d}"] * n
            columns["format"] += [str(rng.choice(formats))] * n
            columns["placement"] += [str(rng.choice(placements))] * n
            columns["themed"] += [bool(themed)] * n
            columns["cta"] += [None if c.channel in ("tv", "audio") else str(rng.choice(_CTA))] * n
            columns["tags"] += [tags] * n
            columns["bucket"] += bucket.tolist()
            columns["audience"] += [str(rng.choice(_AUDIENCE[c.objective]))] * n
            columns["reach"] += [reach] * n
            columns["frequency"] += np.round(weekly[days, j] / n_active[days] / reach, 3).tolist()
            columns["quality"] += [
                str(rng.choice(["above_average", "average", "below_average"], p=[0.3, 0.5, 0.2]))
            ] * n
    frame = pl.DataFrame(
        {
            "date": date_series("date", timeline.epoch_days[np.array(columns["day"], dtype=np.int64)]),
            "campaign_id": columns["campaign"],
            "creative_id": columns["creative"],
            "ad_format": columns["format"],
            "placement": columns["placement"],
            "weather_themed": columns["themed"],
            "cta": pl.Series(columns["cta"], dtype=pl.String),
            "asset_tags": columns["tags"],
            "experiment_bucket": pl.Series(columns["bucket"], dtype=pl.String),
            "audience_segment": columns["audience"],
            "eligible_reach": columns["reach"],
            "frequency": columns["frequency"],
            "quality_ranking": columns["quality"],
        }
    )
    return conform("creative", frame.sort("date", "campaign_id", "creative_id"))


def allocator_plans_table(plan: MediaPlan, geo: Geography, timeline: Timeline) -> pl.DataFrame:
    frames = []
    n_ch = len(CHANNELS)
    for p in plan.plans:
        days = np.arange(p.start, p.end + 1)
        recommended = plan.baseline_channel_plan[:, days] * p.multiplier  # (G, D, N)
        keys = panel_keys(geo.ids, timeline.epoch_days[days], inner=n_ch)
        frames.append(
            pl.DataFrame(
                [
                    pl.Series("plan_id", [p.plan_id] * recommended.size),
                    pl.Series("created_at", [p.created_at] * recommended.size, dtype=pl.Datetime("us")),
                    *keys,
                    string_series("channel", CHANNEL_NAMES, np.tile(np.arange(n_ch), recommended.size // n_ch)),
                    pl.Series("recommended_spend", np.round(recommended.transpose(1, 0, 2).ravel(), 2)),
                    pl.Series("status", [p.status] * recommended.size),
                ]
            )
        )
    return conform("allocator_plans", pl.concat(frames))


def governance_table(plan: MediaPlan, spend: np.ndarray, geo: Geography, timeline: Timeline) -> pl.DataFrame:
    """Planned governance events plus the worst guardrail breaches (delivery above 135% of plan)."""
    ratio = np.where(plan.planned > 0, spend / np.maximum(plan.planned, 1e-9), 0.0)
    worst = np.argsort(ratio, axis=None)[::-1][:3]
    breaches = [
        GovernanceEvent(
            int(t),
            int(g),
            CAMPAIGNS[j].channel,
            "guardrail_breach",
            f"{CAMPAIGNS[j].campaign_id} delivered {ratio[g, t, j]:.0%} of plan (cap 135%)",
        )
        for g, t, j in zip(*np.unravel_index(worst, ratio.shape), strict=True)
        if ratio[g, t, j] > 1.35
    ]
    events = sorted(plan.governance + breaches, key=lambda e: (e.day, e.event_type, e.geo))
    return conform(
        "governance_events",
        pl.DataFrame(
            {
                "event_id": [f"GOV-{i + 1:04d}" for i in range(len(events))],
                "date": date_series("date", timeline.epoch_days[[e.day for e in events]]),
                "geo_id": pl.Series([geo.ids[e.geo] if e.geo >= 0 else None for e in events], dtype=pl.String),
                "channel": pl.Series([e.channel for e in events], dtype=pl.String),
                "event_type": [e.event_type for e in events],
                "description": [e.description for e in events],
            }
        ),
    )


def experiments_table(
    plan: MediaPlan, spend: np.ndarray, spend_without_holdout: np.ndarray, geo: Geography, timeline: Timeline
) -> pl.DataFrame:
    exp = plan.experiment
    window = slice(exp.start, exp.end + 1)
    delta = (spend[:, window] - spend_without_holdout[:, window]).sum(axis=(1, 2))
    epoch = timeline.epoch_days
    return conform(
        "experiments",
        pl.DataFrame(
            {
                "experiment_id": [exp.experiment_id] * geo.n,
                "experiment_type": ["holdout"] * geo.n,
                "geo_id": geo.ids,
                "channel": [exp.channel] * geo.n,
                "start_date": date_series("start_date", np.full(geo.n, epoch[exp.start])),
                "end_date": date_series("end_date", np.full(geo.n, epoch[exp.end])),
                "is_treatment": exp.treated,
                "spend_delta": np.round(delta, 2),
            }
        ),
    )
