"""Media: channels and campaigns, plans set in advance, delivery that reacts to the forecast, experiments,
the platforms' own reporting, and the true response.

The true response is outside the usual model family on purpose: TV's carry-over peaks about a week
after the airing (Weibull), online video's a few days after (delayed adstock), the others decay
geometrically; each channel saturates (Hill) at a point that differs from geo to geo beyond size; social
wears out slowly. Plans vary by geo and week (regional flights, pulses, dark stretches, quarterly budget
shifts between channels), so an analyst with the right model can identify every channel.

Intent and always-on performance campaigns adjust bids on the day-ahead (lead-1) forecast: spend is
higher when the forecast is warm or wet. That makes spend a channel of forecast-driven confounding for
a naive weather regression, and weather a confounder for a naive media regression.

Platforms report what they can see: conversions of people who clicked (or, for video, viewed) inside a
window, at the conversion rate of people who were shopping anyway. That over-credits search and
retargeting, under-credits video and audio, misses TV, drifts, and carries no information about the
true response beyond the spend.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from mmm_platform.simulate.config import WorldConfig, ar1, rng_for
from mmm_platform.simulate.frames import conform, date_series, panel_keys, string_series
from mmm_platform.simulate.geography import Geography
from mmm_platform.simulate.timeline import Timeline
from mmm_platform.simulate.weather import WeatherDrivers


@dataclass(frozen=True)
class Platform:
    """How an ad platform credits itself: conversions inside its window, whether caused or not."""

    #: conversions per click within the click window (people who click were often about to buy)
    click_cvr: float
    #: view-through conversions per 1000 impressions (video, display)
    view_cvr: float
    #: click window in days; a click's conversions spread over it (half on the day, then halving)
    window: int
    #: the platform's attribution model changes once, on a random day, by this factor
    model_change: float


@dataclass(frozen=True)
class Channel:
    """A channel's true response; money in $ for a geo of size 1."""

    name: str
    group: str
    #: carry-over form: geometric | delayed | weibull
    adstock: str
    #: geometric (alpha,), delayed (alpha, theta: peak day), weibull (shape, scale in days)
    adstock_params: tuple[float, ...]
    #: days of carry-over (the kernel's length)
    l_max: int
    #: adstocked daily spend (per unit of geo size) at half the maximum effect, in the median geo
    half_saturation: float
    #: log-sd of the geo's own half-saturation multiplier: geos saturate at different points beyond size
    saturation_spread: float
    slope: float
    #: revenue per geo-day (per unit of geo size) at full saturation
    max_revenue: float
    #: effect multiplier on the first and the last day, linear in between (creative wear-out)
    drift: tuple[float, float]
    cpm: float
    ctr: float
    #: share of the revenue it drives that lands online
    online_share: float
    #: None: the channel has no platform reporting (TV)
    platform: Platform | None


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
    #: always | flights (TV buys) | holiday (Nov 10 - Dec 23) | bursts | pulses (regional on/off)
    schedule: str


# fmt: off
CHANNELS: tuple[Channel, ...] = (
    Channel(
        "tv", "brand", adstock="weibull", adstock_params=(2.0, 9.0), l_max=35, half_saturation=700.0,
        saturation_spread=0.3, slope=1.5, max_revenue=3250.0, drift=(1.0, 1.0), cpm=30.0, ctr=0.0, online_share=0.25,
        platform=None,
    ),
    Channel(
        "online_video", "brand", adstock="delayed", adstock_params=(0.75, 3.0), l_max=14, half_saturation=200.0,
        saturation_spread=0.3, slope=1.3, max_revenue=630.0, drift=(1.0, 1.0), cpm=16.0, ctr=0.004, online_share=0.30,
        platform=Platform(click_cvr=0.02, view_cvr=0.02, window=7, model_change=1.0),
    ),
    Channel(
        "audio", "brand", adstock="geometric", adstock_params=(0.6,), l_max=21, half_saturation=150.0,
        saturation_spread=0.3, slope=1.2, max_revenue=420.0, drift=(1.0, 1.0), cpm=10.0, ctr=0.0008,
        online_share=0.25, platform=Platform(click_cvr=0.02, view_cvr=0.0, window=7, model_change=1.0),
    ),
    Channel(
        "search", "performance", adstock="geometric", adstock_params=(0.35,), l_max=10, half_saturation=600.0,
        saturation_spread=0.25, slope=1.0, max_revenue=4000.0, drift=(1.0, 1.0), cpm=55.0, ctr=0.05,
        online_share=0.60, platform=Platform(click_cvr=0.095, view_cvr=0.0, window=7, model_change=1.0),
    ),
    Channel(
        "social", "performance", adstock="geometric", adstock_params=(0.5,), l_max=14, half_saturation=3000.0,
        saturation_spread=0.3, slope=1.0, max_revenue=6100.0, drift=(1.1, 0.9), cpm=9.0, ctr=0.011, online_share=0.55,
        platform=Platform(click_cvr=0.035, view_cvr=0.004, window=7, model_change=0.75),
    ),
    Channel(
        "display", "performance", adstock="geometric", adstock_params=(0.3,), l_max=10, half_saturation=250.0,
        saturation_spread=0.3, slope=1.0, max_revenue=155.0, drift=(1.0, 1.0), cpm=4.0, ctr=0.0025, online_share=0.65,
        platform=Platform(click_cvr=0.05, view_cvr=0.08, window=30, model_change=0.8),
    ),
)
# fmt: on
CHANNEL_NAMES = [c.name for c in CHANNELS]

CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign("tv_brand_flights", "tv", "brand", "burst", 1100.0, 0.0, 0.0, "flights"),
    Campaign("tv_holiday", "tv", "brand", "burst", 500.0, 0.0, 0.0, "holiday"),
    Campaign("olv_brand", "online_video", "brand", "always_on", 100.0, 0.0, 0.0, "always"),
    Campaign("olv_launch", "online_video", "prospecting", "burst", 200.0, 0.0, 0.0, "bursts"),
    Campaign("audio_brand", "audio", "brand", "always_on", 160.0, 0.0, 0.0, "pulses"),
    Campaign("search_generic", "search", "prospecting", "intent", 310.0, 0.025, 0.01, "always"),
    Campaign("search_brand", "search", "loyalty", "intent", 100.0, 0.01, 0.0, "always"),
    Campaign("search_weather", "search", "prospecting", "intent", 90.0, 0.08, 0.02, "always"),
    Campaign("social_prospecting", "social", "prospecting", "always_on", 250.0, 0.015, 0.0, "always"),
    Campaign("social_loyalty", "social", "loyalty", "always_on", 80.0, 0.0, 0.0, "always"),
    Campaign("display_retargeting", "display", "retargeting", "always_on", 180.0, 0.01, 0.0, "always"),
    Campaign("display_prospecting", "display", "prospecting", "burst", 300.0, 0.0, 0.0, "bursts"),
)
CAMPAIGN_CHANNEL = np.array([CHANNEL_NAMES.index(c.channel) for c in CAMPAIGNS])
#: (J, N) campaign -> channel membership
CAMPAIGN_ONEHOT = np.eye(len(CHANNELS))[CAMPAIGN_CHANNEL]
#: average order value the platforms credit per conversion (before the geo's prices and the season)
PLATFORM_AOV = 68.0


def campaigns_of(channel: str) -> np.ndarray:
    """(J,) mask of the campaigns that belong to a channel."""
    return np.array([c.channel == channel for c in CAMPAIGNS])


def adstock_weights(channel: Channel) -> np.ndarray:
    """(l_max,) carry-over kernel, summing to 1: the share of a day's spend that acts l days later."""
    lag = np.arange(channel.l_max, dtype=float)
    if channel.adstock == "geometric":
        (alpha,) = channel.adstock_params
        w = alpha**lag
    elif channel.adstock == "delayed":  # PyMC-Marketing's DelayedAdstock
        alpha, theta = channel.adstock_params
        w = alpha ** ((lag - theta) ** 2)
    else:  # weibull: the density at the middle of each day
        shape, scale = channel.adstock_params
        x = (lag + 0.5) / scale
        w = x ** (shape - 1) * np.exp(-(x**shape))
    return w / w.sum()


ADSTOCK_WEIGHTS = [adstock_weights(c) for c in CHANNELS]


def lagged_sum(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_l weights[l] x[:, t - l] along axis 1, days before the first counting as 0 (a causal filter,
    vectorised: scipy's lfilter loops over rows for such kernels)."""
    n = len(weights)
    padded = np.concatenate([np.zeros((x.shape[0], n - 1, *x.shape[2:])), x], axis=1)
    return sliding_window_view(padded, n, axis=1) @ weights[::-1]


def response(
    spend: np.ndarray,
    size: np.ndarray,
    half_saturation: np.ndarray,
    effect: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(G, T, N) true revenue contribution of each channel from (G, T, J) campaign spend.
    `half_saturation` (G, N) per unit of geo size; `effect` (T, N) the slow effectiveness drift;
    `previous`: (spend, contribution) of another run, whose channels with the same spend are reused."""
    per_size = (spend @ CAMPAIGN_ONEHOT) / size[:, None, None]
    out = np.empty_like(per_size)
    same = np.zeros(len(CHANNELS), dtype=bool)
    if previous is not None:
        same = np.all(previous[0] @ CAMPAIGN_ONEHOT == spend @ CAMPAIGN_ONEHOT, axis=(0, 1))
        out[..., same] = previous[1][..., same]
    for n, ch in enumerate(CHANNELS):
        if same[n]:
            continue
        w = ADSTOCK_WEIGHTS[n]
        x = per_size[..., n]
        # as if the first four weeks' spend had also run before the first day (no start-up dip)
        lead_in = np.repeat(x[:, :28].mean(axis=1, keepdims=True), len(w) - 1, axis=1)
        adstock = lagged_sum(np.concatenate([lead_in, x], axis=1), w)[:, len(w) - 1 :]
        k = half_saturation[:, None, n] ** ch.slope
        hill = adstock**ch.slope / (adstock**ch.slope + k)
        out[..., n] = ch.max_revenue * hill * size[:, None] * effect[None, :, n]
    return out


@dataclass(frozen=True)
class ExperimentDesign:
    experiment_id: str
    channel: str
    #: as in the landing contract: holdout | geo_split
    experiment_type: str
    #: holdout | matched_market | spend_up
    design: str
    #: spend multiplier in treated cells during the window (0: off)
    multiplier: float
    #: days of the window in a world of 730 days or more (shorter worlds scale it down)
    length: int


EXPERIMENT_DESIGNS = (
    ExperimentDesign("EXP-01-search-holdout", "search", "holdout", "holdout", 0.0, 63),
    ExperimentDesign("EXP-02-tv-matched-market", "tv", "geo_split", "matched_market", 0.0, 70),
    ExperimentDesign("EXP-03-social-spend-up", "social", "geo_split", "spend_up", 6.0, 70),
)
#: days after a window that its carry-over needs before the next experiment's pre-period
EXPERIMENT_TAIL = 28


@dataclass(frozen=True)
class Experiment:
    design: ExperimentDesign
    #: (treated, control) geo index per matched pair; treated by a coin flip inside each pair
    pairs: list[tuple[int, int]]
    #: the readout's pre-period: pre_start .. start - 1, as long as the window
    pre_start: int
    start: int
    end: int

    @property
    def experiment_id(self) -> str:
        return self.design.experiment_id

    @property
    def channel(self) -> str:
        return self.design.channel

    @property
    def treated(self) -> np.ndarray:
        return np.array([t for t, _ in self.pairs])

    @property
    def control(self) -> np.ndarray:
        return np.array([c for _, c in self.pairs])


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
    experiments: list[Experiment]
    plans: list[AllocatorPlan]
    governance: list[GovernanceEvent]
    #: (G, N) half-saturation per unit of geo size, and (T, N) effectiveness drift
    half_saturation: np.ndarray
    effect: np.ndarray
    noise: dict[str, np.ndarray]
    #: WorldConfig.bid_reaction: the multiple of each campaign's reaction to the forecast
    bid_reaction: float

    def delivered(self, weather: WeatherDrivers) -> np.ndarray:
        """(G, T, J) spend as delivered without experiments: plan x pacing x bid reaction to the lead-1
        forecast."""
        temp_r = np.array([c.temp_reaction for c in CAMPAIGNS])
        precip_r = np.array([c.precip_reaction for c in CAMPAIGNS])
        signal = self.bid_reaction * (
            temp_r * weather.temp_forecast_anomaly_day_ahead[..., None]
            + precip_r * weather.precip_forecast_anomaly_day_ahead[..., None]
        )
        return self.planned * self.pacing * np.exp(0.5 * np.tanh(signal / 0.5)) * ~self.frozen

    def spend(
        self,
        delivered: np.ndarray,
        experiments_off: frozenset[str] = frozenset(),
        channel_scale: dict[str, float] | None = None,
    ) -> np.ndarray:
        """(G, T, J) spend: `delivered` with the experiments that are not switched off applied to their
        treated cells, and channels scaled."""
        spend = delivered.copy()
        for exp in self.experiments:
            if exp.experiment_id not in experiments_off:
                cells = np.ix_(
                    exp.treated, np.arange(exp.start, exp.end + 1), np.flatnonzero(campaigns_of(exp.channel))
                )
                spend[cells] *= exp.design.multiplier
        for name, scale in (channel_scale or {}).items():
            spend[..., campaigns_of(name)] *= scale
        return spend

    def contribution(
        self, spend: np.ndarray, size: np.ndarray, previous: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        return response(spend, size, self.half_saturation, self.effect, previous)


def _runs(rng: np.random.Generator, n_t: int, on: tuple[int, int], off: tuple[int, int]) -> list[tuple[int, int]]:
    """Alternating on/off stretches (lengths drawn from `on` and `off`): the (start, end) of each on one."""
    runs, t = [], int(rng.integers(0, off[1]))
    while t < n_t:
        length = int(rng.integers(*on))
        runs.append((t, min(t + length, n_t)))
        t += length + int(rng.integers(*off))
    return runs


def _schedule(rng: np.random.Generator, kind: str, timeline: Timeline, n_g: int) -> np.ndarray:
    """(G, T) live days of a campaign: always on, TV flights and bursts (regional buys: not every geo is
    in every flight), pulses (each geo on its own on/off rhythm), or the holiday flight."""
    n_t = timeline.n_days
    if kind == "always":
        return np.ones((n_g, n_t), dtype=bool)
    if kind == "holiday":
        m, d = timeline.month[:n_t], timeline.day[:n_t]
        live = ((m == 11) & (d >= 10)) | ((m == 12) & (d <= 23))
        return np.broadcast_to(live, (n_g, n_t)).copy()
    live = np.zeros((n_g, n_t), dtype=bool)
    if kind == "pulses":
        for g in range(n_g):
            for a, b in _runs(rng, n_t, (28, 57), (14, 29)):
                live[g, a:b] = True
        return live
    on, off = ((14, 29), (10, 31)) if kind == "flights" else ((10, 21), (40, 81))
    for a, b in _runs(rng, n_t, on, off):
        live[rng.uniform(size=n_g) < 0.7, a:b] = True  # each flight or burst bought in ~70% of geos
    return live


def _unsteady_start(
    rng: np.random.Generator, length: int, steady: np.ndarray, low: int = 0, high: int | None = None
) -> int:
    """A random start in [low, high) whose `length` days keep clear of the experiments' steady plan (any
    start if none does)."""
    high = len(steady) - length + 1 if high is None else high
    busy = sliding_window_view(np.concatenate([steady, np.zeros(length, dtype=bool)]), length).any(axis=1)
    free = np.flatnonzero(~busy[low:high]) + low
    return int(rng.choice(free)) if len(free) else int(rng.integers(low, high))


def _dark(rng: np.random.Generator, n_g: int, n_t: int, steady: np.ndarray) -> np.ndarray:
    """(G, T) days a channel is dark: once a year nationally (a budget freeze, 2-4 weeks) and once a year
    in each geo on its own (2-5 weeks), outside the experiments' steady plan."""
    dark = np.zeros((n_g, n_t), dtype=bool)
    for _ in range(max(1, round(n_t / 365))):
        for rows, (low, high) in ((slice(None), (14, 29)), *((g, (14, 36)) for g in range(n_g))):
            length = min(int(rng.integers(low, high)), n_t // 6)
            start = _unsteady_start(rng, length, steady)
            dark[rows, start : start + length] = True
    return dark & ~steady


def _pairs(geo: Geography) -> list[tuple[int, int]]:
    """Matched markets: geos paired inside their area (same weather, region and season) by distance and
    size, cheapest pairs first; the few left over are paired inside their zone, then anywhere."""
    x = geo.lon * np.cos(np.radians(geo.lat.mean())) * 111.0
    y = geo.lat * 111.0
    cost = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) / 300.0
    cost += np.abs(np.log(geo.size[:, None] / geo.size[None, :])) / 0.1
    area = geo.area_key
    free = np.ones(geo.n, dtype=bool)
    pairs = []
    for group in (area, geo.zone_idx, np.zeros(geo.n, dtype=int)):
        allowed = (group[:, None] == group[None, :]) & free[:, None] & free[None, :] & ~np.eye(geo.n, dtype=bool)
        for flat in np.argsort(np.where(allowed, cost, np.inf), axis=None):
            a, b = np.unravel_index(flat, cost.shape)
            if not allowed[a, b]:
                break
            if free[a] and free[b]:
                free[a] = free[b] = False
                pairs.append((int(min(a, b)), int(max(a, b))))
    return sorted(pairs)


def _draw_experiments(rng: np.random.Generator, config: WorldConfig, geo: Geography) -> list[Experiment]:
    """The experiments one after another in the later part of the period, each with a pre-period as long
    as its window and a tail for its carry-over; treated geo of each pair by a fresh coin per experiment."""
    n_t = config.n_days
    full = sum(2 * d.length + EXPERIMENT_TAIL for d in EXPERIMENT_DESIGNS)
    scale = min(1.0, (n_t - 14) / full)
    lengths = [max(5, round(d.length * scale)) for d in EXPERIMENT_DESIGNS]
    tail = max(2, round(EXPERIMENT_TAIL * scale))
    needed = sum(2 * length + tail for length in lengths)
    t = int(rng.integers(max(7, n_t - needed - n_t // 4), n_t - needed + 1))
    pairs = _pairs(geo)
    experiments = []
    for design, length in zip(EXPERIMENT_DESIGNS, lengths, strict=True):
        flips = rng.uniform(size=len(pairs)) < 0.5
        arms = [(b, a) if flip else (a, b) for (a, b), flip in zip(pairs, flips, strict=True)]
        experiments.append(Experiment(design, arms, t, t + length, t + 2 * length - 1))
        t += 2 * length + tail
    return experiments


def steady_days(experiments: list[Experiment], n_t: int) -> np.ndarray:
    """(T,) days on which every geo follows the national plan: each experiment's pre-period and window, so
    the treated and control geos differ only by the experiment."""
    steady = np.zeros(n_t, dtype=bool)
    for exp in experiments:
        steady[exp.pre_start : exp.end + 1] = True
    return steady


def build_media_plan(config: WorldConfig, timeline: Timeline, geo: Geography) -> MediaPlan:
    rng = rng_for(config.seed, "media")
    n_g, n_t, n_j, n_n = geo.n, config.n_days, len(CAMPAIGNS), len(CHANNELS)
    experiments = _draw_experiments(rng, config, geo)
    steady = steady_days(experiments, n_t)
    m = timeline.month[:n_t]
    season = 1 + 0.15 * np.isin(m, (11, 12)) + 0.08 * np.isin(m, (5, 6, 7)) - 0.1 * np.isin(m, (1, 2))
    quarter = (timeline.year[:n_t] - timeline.year[0]) * 4 + (m - 1) // 3
    week = np.arange(n_t) // 7
    # budget shifts between channels each quarter (the total stays), national
    shift = rng.lognormal(0.0, 0.3, (n_n, quarter.max() + 1))
    budget = np.array([sum(c.daily_budget for c in CAMPAIGNS if c.channel == ch.name) for ch in CHANNELS])
    shift *= budget.sum() / (budget @ shift)
    # geo-level variation: a standing weight, quarterly re-plans and weekly flighting, per channel
    local = (
        rng.lognormal(0.0, 0.2, (n_g, 1, n_n))
        * rng.lognormal(0.0, 0.15, (n_g, quarter.max() + 1, n_n))[:, quarter]
        * np.exp(0.25 * ar1(rng.standard_normal((n_g, n_n, week.max() + 11)), 0.5, 10)).transpose(0, 2, 1)[:, week]
    )
    local[:, steady] = local[:, steady].mean(axis=0, keepdims=True)  # national plan while experiments run
    dark = np.stack([_dark(rng, n_g, n_t, steady) for _ in CHANNELS], axis=-1)
    planned = np.empty((n_g, n_t, n_j))
    for j, c in enumerate(CAMPAIGNS):
        n = CHANNEL_NAMES.index(c.channel)
        live = _schedule(rng, c.schedule, timeline, n_g)
        live[:, steady] = live[:, steady].mean(axis=0) >= 0.5
        for exp in experiments:
            if exp.channel == c.channel:
                live[:, exp.pre_start : exp.end + 1] |= c.schedule != "holiday"
        weekend = 1.1 if c.channel in ("search", "social") else 1.0
        daily = c.daily_budget * season * shift[n, quarter] * np.where(timeline.dow[:n_t] >= 5, weekend, 1.0)
        planned[..., j] = daily * geo.size[:, None] * local[..., n] * live * ~dark[..., n]
    baseline_channel_plan = planned @ CAMPAIGN_ONEHOT
    plans = _draw_allocator_plans(rng, config, timeline, steady)
    for plan in plans:
        keep = {"executed": 1.0, "modified": 0.5}.get(plan.status, 0.0)  # modified: half the shift applied
        factor = 1 + keep * (plan.multiplier[CAMPAIGN_CHANNEL] - 1)
        planned[:, plan.start : plan.end + 1] *= factor
    frozen = np.zeros_like(planned, dtype=bool)
    governance = _governance(rng, config, timeline, geo, experiments, steady, plans, planned, frozen)
    phi, sd = 0.7, np.where(np.array([c.pacing == "burst" for c in CAMPAIGNS]), 0.12, 0.08)
    eta = rng.standard_normal((n_g, n_j, n_t + 30))
    pacing = np.exp(ar1(eta, phi, 30).transpose(0, 2, 1) * sd - sd**2 / 2)
    response_rng = rng_for(config.seed, "media_response")
    half_saturation = np.array(
        [c.half_saturation * np.exp(c.saturation_spread * response_rng.standard_normal(n_g)) for c in CHANNELS]
    ).T
    ramp = np.linspace(0.0, 1.0, n_t)[:, None]
    first, last = np.array([c.drift for c in CHANNELS]).T
    noise_rng = rng_for(config.seed, "media_noise")
    noise = {k: noise_rng.standard_normal((n_g, n_t, n_j)) for k in ("cpm", "ctr", "sov", "conversions", "aov")}
    noise["rival"] = noise_rng.normal(0.3, 0.5, (n_g, 1, n_j))
    noise["platform_drift"] = np.exp(0.2 * ar1(noise_rng.standard_normal((n_j, n_t + 100)), 0.99, 100)).T
    noise["model_change_day"] = noise_rng.integers(n_t // 4, 3 * n_t // 4 + 1, n_j)
    return MediaPlan(
        planned=planned,
        baseline_channel_plan=baseline_channel_plan,
        pacing=pacing,
        frozen=frozen,
        experiments=experiments,
        plans=plans,
        governance=governance,
        half_saturation=half_saturation,
        effect=first + (last - first) * ramp,
        noise=noise,
        bid_reaction=config.bid_reaction,
    )


def _draw_allocator_plans(
    rng: np.random.Generator, config: WorldConfig, timeline: Timeline, steady: np.ndarray
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
        if status != "pending" and steady[max(0, start - 7) : end + 8].any():
            continue  # never change the plan while an experiment runs
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
    experiments: list[Experiment],
    steady: np.ndarray,
    plans: list[AllocatorPlan],
    planned: np.ndarray,
    frozen: np.ndarray,
) -> list[GovernanceEvent]:
    """Freezes and overrides that change delivery (applied to `planned` / `frozen` in place)."""
    n_t = config.n_days
    events = []
    for exp in experiments:
        change = "paused" if exp.design.multiplier == 0 else f"raised x{exp.design.multiplier:g}"
        events.append(
            GovernanceEvent(
                exp.start,
                -1,
                exp.channel,
                "manual_override",
                f"{exp.experiment_id}: {exp.channel} {change} in {len(exp.pairs)} geos, one of each matched "
                f"pair by a coin flip, until {timeline.date(exp.end).isoformat()}",
            )
        )
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
    day = _unsteady_start(rng, 3, steady, 14, n_t // 3)
    frozen[:, day : day + 3, social] = True
    events.append(
        GovernanceEvent(day, -1, "social", "campaign_freeze", "Brand-safety freeze of every social campaign for 3 days")
    )
    g, day = int(rng.integers(geo.n)), _unsteady_start(rng, 4, steady, n_t // 3, n_t // 2)
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
    g, day = int(rng.integers(geo.n)), _unsteady_start(rng, 7, steady, n_t // 6, n_t // 3)
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


def impressions(plan: MediaPlan, spend: np.ndarray, timeline: Timeline) -> np.ndarray:
    """(G, T, J) delivered impressions: spend at a CPM that is 25% dearer in Q4 and noisy."""
    q4 = np.isin(timeline.month[: spend.shape[1]], (11, 12))[None, :, None]
    cpm = np.array([CHANNELS[n].cpm for n in CAMPAIGN_CHANNEL]) * (1 + 0.25 * q4) * np.exp(0.08 * plan.noise["cpm"])
    return np.round(spend / cpm * 1000)


def trailing(a: np.ndarray, days: int) -> np.ndarray:
    """Sum over the last `days` days (today included) along axis 1."""
    return lagged_sum(a, np.ones(days))


def exposure(imps: np.ndarray, geo: Geography, weights: np.ndarray, days: int = 7) -> np.ndarray:
    """(G, T) impressions over the last `days` days per person, campaign j's counted `weights[j]` times:
    what people saw, the source of every exposure-driven metric (assisted conversions, mentions, new
    customers)."""
    return trailing(imps @ weights, days) / geo.population[:, None]


#: how much one impression of a channel gets people talking about the brand (social mentions)
MENTION_WEIGHT = {"tv": 1.0, "online_video": 0.4, "audio": 0.2, "social": 0.1}
#: impressions per person over the last week at which exposure-driven shares reach 63% of their range
_TYPICAL_WEEKLY_EXPOSURE = 0.5


def customer_shares(imps: np.ndarray, geo: Geography) -> tuple[np.ndarray, np.ndarray]:
    """(G, T) shares of orders from new customers (prospecting reach) and assisted by an ad seen in the
    last week (any clickable channel): functions of what people saw, never of the true effect."""
    prospecting = np.array([c.objective == "prospecting" for c in CAMPAIGNS], dtype=float)
    clickable = np.array([CHANNELS[n].ctr > 0 for n in CAMPAIGN_CHANNEL], dtype=float)
    reach_new = 1 - np.exp(-exposure(imps, geo, prospecting) / _TYPICAL_WEEKLY_EXPOSURE)
    reach_any = 1 - np.exp(-exposure(imps, geo, clickable) / _TYPICAL_WEEKLY_EXPOSURE)
    return 0.12 + 0.25 * reach_new, 0.04 + 0.5 * reach_any


def media_spend_table(
    plan: MediaPlan,
    spend: np.ndarray,
    imps: np.ndarray,
    intent: np.ndarray,
    geo: Geography,
    timeline: Timeline,
    config: WorldConfig,
) -> pl.DataFrame:
    """One row per live campaign, geo and day (rows also for paused days: planned > 0, spend 0).
    `intent` (G, T): the day's demand without media relative to the geo's usual (the platforms' conversion
    rate follows it: many of their clickers were buying anyway)."""
    rng = rng_for(config.seed, "media_table")
    n_t = config.n_days
    nz = plan.noise
    ctr = np.array([CHANNELS[n].ctr for n in CAMPAIGN_CHANNEL]) * np.exp(0.1 * nz["ctr"])
    clicks = rng.binomial(imps.astype(np.int64), np.minimum(ctr, 1.0))
    q4 = np.isin(timeline.month[:n_t], (11, 12))[None, :, None]
    cpm = np.array([CHANNELS[n].cpm for n in CAMPAIGN_CHANNEL]) * (1 + 0.25 * q4)
    rival = np.round(plan.planned / cpm * 1000 * np.exp(nz["rival"] + 0.1 * nz["sov"]))
    conversions = np.full(spend.shape, np.nan)
    for j, n in enumerate(CAMPAIGN_CHANNEL):
        p = CHANNELS[n].platform
        if p is None:
            continue
        delay = 0.5 ** np.arange(p.window)
        credited = lagged_sum(clicks[..., j], delay / delay.sum()) * p.click_cvr
        credited += imps[..., j] / 1000 * p.view_cvr
        model = np.where(np.arange(n_t) >= nz["model_change_day"][j], p.model_change, 1.0)
        expected = credited * intent * nz["platform_drift"][:, j] * model
        conversions[..., j] = rng.poisson(expected * np.exp(0.3 * nz["conversions"][..., j] - 0.045))
    basket = np.where(np.isin(timeline.month[:n_t], (11, 12)), 1.1, 1.0)[None, :, None]
    aov = PLATFORM_AOV * geo.price_index[:, None, None] * basket * np.exp(0.1 * nz["aov"])
    plan_code = np.full(n_t, -1)
    executed = [p for p in plan.plans if p.status == "executed"]
    for i, p in enumerate(executed):
        plan_code[p.start : p.end + 1] = i
    live = ((plan.planned > 0) | (spend > 0)).transpose(1, 0, 2).ravel()

    def rows(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, spend.shape).transpose(1, 0, 2).ravel()[live]

    imp = rows(imps).astype(np.int64)
    n_j = len(CAMPAIGNS)
    keys = panel_keys(geo.ids, timeline.epoch_days[:n_t], inner=n_j)
    campaign = np.tile(np.arange(n_j), n_t * geo.n)[live]
    sov = 100 * imp / np.maximum(imp + rows(rival), 1)
    conv = np.round(rows(conversions), 2)
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
                pl.Series("clicks", rows(clicks).astype(np.int64)),
                pl.Series("conversions", conv, nan_to_null=True),
                pl.Series("attributed_revenue", np.round(conv * rows(aov), 2), nan_to_null=True),
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
    plan: MediaPlan, spend: np.ndarray, imps: np.ndarray, geo: Geography, timeline: Timeline, config: WorldConfig
) -> pl.DataFrame:
    """Creatives rotating inside each campaign (national, per day); two overlapping ones are an A/B pair.
    `frequency` is the trailing 7-day impressions per person reached."""
    rng = rng_for(config.seed, "creative")
    n_t = config.n_days
    live = ((plan.planned > 0) | (spend > 0)).any(axis=0)  # (T, J)
    weekly = trailing(imps.sum(axis=0)[None], 7)[0]  # (T, J) trailing 7-day impressions
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
    plan: MediaPlan, spend: np.ndarray, spend_without: np.ndarray, geo: Geography, timeline: Timeline
) -> pl.DataFrame:
    """One row per experiment and participating geo; `spend_delta`: the treated cell's spend change over
    the window (`spend_without`: the same world with no experiment)."""
    frames = []
    epoch = timeline.epoch_days
    for exp in plan.experiments:
        geos = np.concatenate([exp.treated, exp.control])
        cells = np.ix_(geos, np.arange(exp.start, exp.end + 1), np.flatnonzero(campaigns_of(exp.channel)))
        delta = (spend[cells] - spend_without[cells]).sum(axis=(1, 2))
        n = len(geos)
        frames.append(
            pl.DataFrame(
                {
                    "experiment_id": [exp.experiment_id] * n,
                    "experiment_type": [exp.design.experiment_type] * n,
                    "geo_id": [geo.ids[g] for g in geos],
                    "channel": [exp.channel] * n,
                    "start_date": date_series("start_date", np.full(n, epoch[exp.start])),
                    "end_date": date_series("end_date", np.full(n, epoch[exp.end])),
                    "is_treatment": np.arange(n) < len(exp.treated),
                    "spend_delta": np.round(delta, 2),
                }
            ).sort("geo_id")
        )
    return conform("experiments", pl.concat(frames))
