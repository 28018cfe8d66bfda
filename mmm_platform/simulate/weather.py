"""Weather that forecasters could have known: climatology plus anomalies revealed lead by lead.

Every anomaly is a sum of independent pieces, each revealed a fixed number of days before the target
day (and each an AR(1) series over target days, so forecast busts last a few days). The forecast issued
L days ahead is the conditional expectation of the observed value given the pieces revealed at leads
>= L, so `observed = forecast_L + error_L` with error_L independent of every forecast for that day
issued L or more days ahead, and of everything that reacts only to them (never "truth plus noise",
which would make the error useless as an instrument). Precipitation is a transform of a latent Gaussian
and its forecast is the closed-form conditional expectation of that transform. Storms and heatwaves are
added on top (timing, geos and category known at every lead, a storm's rain and wind only from the day
before) and can be switched off one at a time for counterfactual truth.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from mmm_platform.simulate.config import WorldConfig, ar1, rng_for
from mmm_platform.simulate.context import calendar_changes
from mmm_platform.simulate.frames import conform, date_series, panel_frame, panel_values, string_series
from mmm_platform.simulate.geography import ZONES, Geography
from mmm_platform.simulate.timeline import Timeline

#: within one area of a zone (the two areas of a zone are far apart) anomalies correlate as
#: exp(-distance / length): slow anomalies are large-scale, the day-to-day surprises that forecasts miss
#: are more local, so nearby geos share their weather (what makes matched markets match)
PERSISTENT_LENGTH_KM = 2000.0
SURPRISE_LENGTH_KM = 100.0
#: the leads of the forecasts the unobserved demand reacts to (next-day trips; merchandising 3 days out)
DEMAND_REACTION_LEADS = (1, 3)
#: the day-ahead forecast: bids and postponed trips react to it
DAY_AHEAD_LEAD = 1
_BURN_IN = 60
_COLDEST = -45.0
#: slow temperature anomalies are larger in winter than in summer: x (1 - this x annual cycle)
WINTER_SWING = 0.3


@dataclass(frozen=True)
class FieldSpec:
    """Standard deviations of the pieces of an anomaly (the persistent one before the per-geo scale)."""

    #: never forecast: the error that remains at lead 0
    unrevealed_sd: float
    #: revealed on the target day itself
    lead0_sd: float
    #: revealed at each of leads 1..max_lead
    lead_sd: float
    #: slow anomaly, known at every lead
    persistent_sd: float
    persistence: float
    #: AR(1) coefficient of every piece along target days: a forecast bust lasts a few days
    surprise_persistence: float


TEMP = FieldSpec(1.4, 2.0, 1.2, 3.2, 0.85, 0.65)
DIURNAL = FieldSpec(1.0, 0.6, 0.4, 1.0, 0.6, 0.4)
PRECIP = FieldSpec(0.4, 0.35, 0.25, 0.55, 0.5, 0.3)
WIND = FieldSpec(0.5, 0.3, 0.2, 0.6, 0.6, 0.4)
DEW = FieldSpec(0.5, 0.3, 0.2, 0.6, 0.6, 0.4)


@dataclass(frozen=True)
class RevealedField:
    """`known[L]`: the anomaly a forecaster knows L days ahead; `observed`: what happens."""

    known: np.ndarray
    observed: np.ndarray
    #: (max_lead + 1, G, 1): variance not yet revealed at lead L (the forecast error variance)
    unknown_var: np.ndarray
    #: (G, 1) or (G, T): variance of the whole anomaly (what climatology alone leaves unknown)
    total_var: np.ndarray


def area_mixing(geo: Geography, length_km: float) -> np.ndarray:
    """(G, G) matrix M with M M' = exp(-distance / length) for geos of one area, 0 across areas: M times
    independent unit normals gives spatially correlated ones."""
    lat, lon = np.radians(geo.lat), np.radians(geo.lon)
    x = 6371.0 * lon * np.cos(lat.mean())
    y = 6371.0 * lat
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    area = geo.area_key
    correlation = np.where(area[:, None] == area[None, :], np.exp(-distance / length_km), 0.0)
    return np.linalg.cholesky(correlation + 1e-9 * np.eye(geo.n))


def revealed_field(
    rng: np.random.Generator,
    spec: FieldSpec,
    mixing: tuple[np.ndarray, np.ndarray],
    n_t: int,
    max_lead: int,
    scale: np.ndarray,
) -> RevealedField:
    """Pieces revealed at each lead plus a persistent part scaled by `scale` ((G, 1) or (G, T):
    continental climates and winters have larger slow anomalies); the forecast error variance is the
    same everywhere. `mixing`: (persistent, surprise) spatial mixing matrices."""
    n_g = mixing[0].shape[0]

    def draw(k: int, m: np.ndarray, phi: float) -> np.ndarray:
        """k unit-variance fields (k, G, n_t): spatially mixed, AR(1) along days."""
        iid = rng.standard_normal((k, n_g, n_t + _BURN_IN))
        return ar1(np.einsum("ij,kjt->kit", m, iid), phi, _BURN_IN)

    sds = np.array([spec.lead0_sd] + [spec.lead_sd] * max_lead)
    pieces = draw(max_lead + 2, mixing[1], spec.surprise_persistence)
    persistent = draw(1, mixing[0], spec.persistence)[0] * spec.persistent_sd * scale
    known = persistent + np.cumsum((pieces[:-1] * sds[:, None, None])[::-1], axis=0)[::-1]
    observed = known[0] + pieces[-1] * spec.unrevealed_sd
    unknown_var = spec.unrevealed_sd**2 + np.concatenate([[0.0], np.cumsum(sds[:-1] ** 2)])
    total = (spec.persistent_sd * scale) ** 2 + spec.unrevealed_sd**2 + np.sum(sds**2)
    return RevealedField(
        known=known,
        observed=observed,
        unknown_var=np.broadcast_to(unknown_var[:, None, None], (max_lead + 1, n_g, 1)),
        total_var=total,
    )


def expected_square_positive(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """E[max(0, Z)^2] for Z ~ N(mu, var): the forecast of precipitation = scale * max(0, Z)^2."""
    sd = np.sqrt(var)
    z = mu / sd
    return (mu**2 + var) * ndtr(z) + mu * sd * np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


def snow_fraction(temp_mean: np.ndarray) -> np.ndarray:
    """Share of precipitation falling as snow: all of it below -1 °C, none above 1.5 °C."""
    return np.clip((1.5 - temp_mean) / 2.5, 0.0, 1.0)


#: log-sd of the part of a storm's intensity (rain and wind) revealed at each lead from 2 on: a week out
#: a storm's rain is uncertain by about +-35%; from the day before it is known, so the day-ahead forecast
#: error on a storm day is the ordinary one and the lead-1 instrument does not lean on storms (where closed
#: stores make the effect per mm small)
STORM_INTENSITY_SD = 0.15
#: days around a shock kept free of calendar changes: the week before (a DiD's pre-period) and 2 after
SHOCK_CALENDAR_MARGIN = (7, 2)


@dataclass(frozen=True)
class Shock:
    """A storm or heatwave hitting some geos on consecutive days. Its timing, geos and category are known
    to forecasters at every lead; a storm's rain and wind are revealed lead by lead."""

    event_id: str
    kind: str
    geos: np.ndarray
    start: int
    end: int
    category: int
    #: (len(geos), end - start + 1) additions to the weather of the affected geo-days
    temp_add: np.ndarray
    precip_add: np.ndarray
    wind_add: np.ndarray
    #: (len(geos), max_lead + 1) multiplier of precip_add and wind_add that a forecast issued L days ahead
    #: expects (index 0: what happens); each geo's own
    intensity: np.ndarray


def _storm_intensity(rng: np.random.Generator, n_geos: int, max_lead: int) -> np.ndarray:
    """(n_geos, max_lead + 1) mean-one log-normal pieces revealed at leads 2..max_lead: the forecast at
    lead L, the product of those revealed at leads >= L, is the conditional mean of what happens (index 0)."""
    pieces = np.exp(rng.normal(-(STORM_INTENSITY_SD**2) / 2, STORM_INTENSITY_SD, (n_geos, max_lead + 1)))
    pieces[:, :2] = 1.0
    return np.cumprod(pieces[:, ::-1], axis=1)[:, ::-1]


def draw_shocks(config: WorldConfig, timeline: Timeline, geo: Geography) -> list[Shock]:
    """Several storms and heatwaves, each on a random subset of one zone's geos (leaving two of them
    unaffected where the zone has three or more), never overlapping in time nor near a calendar change."""
    rng = rng_for(config.seed, "shocks")
    n_days = config.n_days
    n_heat = max(1, round(3 * n_days / 365))
    n_storm = max(1, round(4 * n_days / 365))
    kinds = ["heatwave"] * n_heat + ["storm"] * n_storm
    rng.shuffle(kinds)
    busy = np.zeros(n_days + 14, dtype=bool)
    before, after = SHOCK_CALENDAR_MARGIN
    calendar = np.concatenate([calendar_changes(timeline, geo), np.zeros(after + 1, dtype=bool)])
    warm = (timeline.month[:n_days] >= 5) & (timeline.month[:n_days] <= 9)
    placed: list[tuple[str, int, int]] = []
    for kind in kinds:
        length = int(rng.integers(3, 8) if kind == "heatwave" else rng.integers(1, 4))
        candidates = np.arange(21, n_days - length - 3)
        # free: no shock within a week and no calendar change in the margin around the window
        near_shock = sliding_window_view(np.concatenate([np.zeros(7, dtype=bool), busy]), length + 14).any(axis=1)
        near_change = sliding_window_view(calendar, length + before + after).any(axis=1)
        starts = candidates[~near_shock[candidates] & ~near_change[candidates - before]]
        if kind == "heatwave" and warm[starts].any():
            starts = starts[warm[starts]]
        if len(starts) == 0:
            continue
        s = int(rng.choice(starts))
        busy[s : s + length] = True
        placed.append((kind, s, s + length - 1))
    placed.sort(key=lambda p: p[1])
    shocks = []
    counters = {"heatwave": 0, "storm": 0}
    for kind, s, e in placed:
        counters[kind] += 1
        zone_geos = np.flatnonzero(geo.zone_idx == rng.integers(len(ZONES)))
        most = max(1, len(zone_geos) - 2)
        k = min(most, max(1, int(np.ceil(rng.uniform(0.5, 1.0) * len(zone_geos)))))
        geos = np.sort(rng.choice(zone_geos, size=k, replace=False))
        length = e - s + 1
        none = np.zeros((k, length))
        intensity = np.ones((k, config.max_lead + 1))
        if kind == "heatwave":
            profile = np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 0.5
            cat, temp, precip, wind = 0, rng.uniform(5.0, 10.0, (k, 1)) * profile, none, none
        else:
            cat = int(rng.choice(5, p=[0.4, 0.3, 0.17, 0.09, 0.04])) + 1
            precip = (15.0 + 15.0 * cat) * rng.uniform(0.7, 1.3, (k, length))
            temp, wind = none, (25.0 + 15.0 * cat) * rng.uniform(0.8, 1.2, (k, length))
            intensity = _storm_intensity(rng, k, config.max_lead)
        shocks.append(Shock(f"{kind}_{counters[kind]:02d}", kind, geos, s, e, cat, temp, precip, wind, intensity))
    return shocks


@dataclass(frozen=True)
class WeatherDrivers:
    """What demand and media react to, for the observed days (G, n_days)."""

    #: published (rounded) observed values, the ones revenue depends on
    temp_mean: np.ndarray
    precip: np.ndarray
    #: forecast anomalies versus climatology, the channel of confounding; the first is the mean over
    #: DEMAND_REACTION_LEADS (and `temp_forecast` the same forecast as a temperature), the others are
    #: the day-ahead forecast
    temp_forecast_anomaly: np.ndarray
    temp_forecast: np.ndarray
    temp_forecast_anomaly_day_ahead: np.ndarray
    precip_forecast_anomaly_day_ahead: np.ndarray
    heatwave: np.ndarray
    storm_category: np.ndarray
    #: the day before a storm hits: people stock up on the forecast
    storm_eve: np.ndarray


@dataclass(frozen=True)
class Weather:
    """All weather arrays are (G, n_days + max_lead); forecasts are (max_lead + 1, G, n_days + max_lead)."""

    timeline: Timeline
    geo: Geography
    max_lead: int
    clim_temp: np.ndarray
    #: (G, 1) cap on a daily mean temperature: 40 °C and above only in hot, dry geos
    hottest: np.ndarray
    clim_diurnal: np.ndarray
    precip_mu: np.ndarray
    precip_scale: np.ndarray
    clim_precip: np.ndarray
    dew_depression: np.ndarray
    wind_base: np.ndarray
    temp: RevealedField
    diurnal: RevealedField
    precip_latent: RevealedField
    wind: RevealedField
    dew: RevealedField
    shocks: list[Shock]
    noise: dict[str, np.ndarray]

    @property
    def shock_ids(self) -> list[str]:
        return [s.event_id for s in self.shocks]

    def shock_arrays(self, active: Collection[str], lead: int | None = None) -> dict[str, np.ndarray]:
        """Additions of the active shocks to the base weather, (G, n_t) each: as observed, or (`lead`) as
        forecast `lead` days ahead (storm rain and wind at the intensity expected then)."""
        shape = self.clim_temp.shape
        out = {k: np.zeros(shape) for k in ("temp", "precip", "wind")}
        out["category"] = np.zeros(shape, dtype=np.int64)
        out["heatwave"] = np.zeros(shape, dtype=bool)
        for sh in self.shocks:
            if sh.event_id not in active:
                continue
            window = (sh.geos[:, None], np.arange(sh.start, sh.end + 1)[None, :])
            intensity = sh.intensity[:, [0 if lead is None else lead]]
            out["temp"][window] += sh.temp_add
            out["precip"][window] += sh.precip_add * intensity
            out["wind"][window] += sh.wind_add * intensity
            out["category"][window] = sh.category
            out["heatwave"][window] |= sh.kind == "heatwave"
        return out

    def temperature(self, anomaly: np.ndarray) -> np.ndarray:
        """Daily mean temperature (unrounded) from an anomaly, within the geo's physical range."""
        return np.clip(self.clim_temp + anomaly, _COLDEST, self.hottest)

    def observed_temp_precip(self, add: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        temp = np.round(self.temperature(self.temp.observed + add["temp"]), 1)
        base = self.precip_scale * np.maximum(0.0, self.precip_mu + self.precip_latent.observed) ** 2
        return temp, np.round(base + add["precip"], 1)

    def precip_forecast(self, lead: int, add: dict[str, np.ndarray]) -> np.ndarray:
        mu = self.precip_mu + self.precip_latent.known[lead]
        return self.precip_scale * expected_square_positive(mu, self.precip_latent.unknown_var[lead]) + add["precip"]

    def drivers(self, active: Collection[str] | None = None) -> WeatherDrivers:
        """Weather as demand sees it, with only the `active` shocks (None: all of them)."""
        active = self.shock_ids if active is None else active
        add = self.shock_arrays(active)
        day_ahead = self.shock_arrays(active, DAY_AHEAD_LEAD)
        n = self.timeline.n_days
        temp, precip = self.observed_temp_precip(add)
        demand_leads = [min(lead, self.max_lead) for lead in DEMAND_REACTION_LEADS]
        demand_anomaly = np.mean([self.temp.known[lead] for lead in demand_leads], axis=0) + add["temp"]
        category = add["category"]
        eve = np.zeros_like(category, dtype=bool)
        eve[:, :-1] = (category[:, 1:] > 0) & (category[:, :-1] == 0)
        precip_day_ahead = self.precip_forecast(DAY_AHEAD_LEAD, day_ahead) - self.clim_precip
        return WeatherDrivers(
            temp_mean=temp[:, :n],
            precip=precip[:, :n],
            temp_forecast_anomaly=demand_anomaly[:, :n],
            temp_forecast=self.temperature(demand_anomaly)[:, :n],
            temp_forecast_anomaly_day_ahead=(self.temp.known[DAY_AHEAD_LEAD] + add["temp"])[:, :n],
            precip_forecast_anomaly_day_ahead=precip_day_ahead[:, :n],
            heatwave=add["heatwave"][:, :n],
            storm_category=category[:, :n],
            storm_eve=eve[:, :n],
        )

    # ---- published tables -------------------------------------------------------------------------

    def _dew_and_humidity(self, temp: np.ndarray, depression: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dew = np.round(np.minimum(temp - np.maximum(depression, 0.3), 35.0), 1)
        rh = 100 * np.exp(17.625 * dew / (243.04 + dew) - 17.625 * temp / (243.04 + temp))
        return dew, np.round(np.minimum(rh, 100.0), 1)

    def _uv(self, cloud_frac: np.ndarray) -> np.ndarray:
        decl = 23.44 * np.sin(2 * np.pi * (self.timeline.doy - 81) / 365.0)
        elevation = np.radians(90.0 - np.abs(self.geo.lat[:, None] - decl[None, :]))
        clear = 12.5 * np.maximum(np.sin(elevation), 0.0) ** 2.5
        return np.round(clear * (1 - 0.7 * cloud_frac), 1)

    def observed_table(self) -> pl.DataFrame:
        n = self.timeline.n_days
        add = self.shock_arrays(self.shock_ids)
        nz = self.noise
        temp, precip = self.observed_temp_precip(add)
        mean_raw = self.temperature(self.temp.observed + add["temp"])
        wet = np.minimum(1.0, precip / 10.0)
        diurnal = np.maximum(self.clim_diurnal + self.diurnal.observed - 2.5 * wet, 2.0)
        dew, rh = self._dew_and_humidity(temp, self.dew_depression * np.exp(0.3 * self.dew.observed) * (1 - 0.6 * wet))
        wind = np.round(self.wind_base * np.exp(0.35 * self.wind.observed) + add["wind"], 1)
        latent = self.precip_mu + self.precip_latent.observed
        cloud = np.clip(ndtr(0.9 * latent + 0.5) + 0.08 * nz["cloud"], 0.0, 1.0)
        snow = snow_fraction(temp)
        hail = (mean_raw + diurnal / 2 > 24) & (precip >= 20) & (nz["hail"] < 0.15)
        ptype = np.select([precip == 0, snow >= 0.9, snow > 0.5, snow > 0.1, hail], [0, 2, 3, 5, 4], default=1)
        vapour = rh / 100 * 6.105 * np.exp(17.27 * temp / (237.7 + temp))
        aqi = np.clip(
            _AQI_BASE[self.geo.zone_idx][:, None]
            + 1.5 * np.maximum(self.temp.observed + add["temp"], 0.0)
            + 25 * np.exp(-wind / 8.0)
            + 8 * nz["aqi"]
            - 10 * wet,
            5.0,
            500.0,
        )
        visibility = 24 * np.exp(-0.04 * precip) * np.where(rh > 96, 0.4, 1.0) * nz["vis"]
        floats: dict[str, np.ndarray] = {
            "temp_max_c": np.round(mean_raw + diurnal / 2, 1),
            "temp_min_c": np.round(mean_raw - diurnal / 2, 1),
            "temp_mean_c": temp,
            "feels_like_c": np.round(np.clip(temp + 0.33 * vapour - 0.70 * wind / 3.6 - 4.0, -85.0, 68.0), 1),
            "humidity_pct": rh,
            "dew_point_c": dew,
            "wind_speed_kmh": wind,
            # sensors drop out now and then: a few optional columns are partly null
            "wind_gust_kmh": np.where(nz["gust_gap"], np.nan, np.round(wind * (1.3 + 0.4 * nz["gust"]) + 5.0, 1)),
            "uv_index": self._uv(cloud),
            "precip_mm": precip,
            "snowfall_cm": np.round(precip * snow, 1),
            "visibility_km": np.where(nz["vis_gap"], np.nan, np.round(np.clip(visibility, 0.2, 60.0), 1)),
            "cloud_cover_pct": np.round(100 * cloud, 0),
            "air_quality_index": np.round(aqi, 0),
            "pm25_ugm3": np.where(nz["pm_gap"], np.nan, np.round(aqi * 0.28 * (1 + 0.1 * nz["pm"]), 1)),
            **self._pollen(wet),
        }
        alert = (add["category"] > 0) | add["heatwave"] | (precip >= 50.0) | (wind >= 70.0)
        columns = {
            **floats,
            "precip_type": string_series("precip_type", PRECIP_TYPES, panel_values(ptype, n)),
            "severe_alert": alert,
            "storm_category": add["category"],
        }
        return panel_frame("weather_observed", self.geo.ids, self.timeline.epoch_days[:n], columns)

    def _pollen(self, wet: np.ndarray) -> dict[str, np.ndarray]:
        """Seasonal pollen counts, reported only in the monitoring season (null outside it)."""
        doy = self.timeline.doy
        out = {}
        for name, peak, width in (
            ("pollen_tree", 105, 25),
            ("pollen_grass", 160, 25),
            ("pollen_weed", 245, 20),
        ):
            amp = _POLLEN[name][self.geo.zone_idx][:, None]
            bell = np.exp(-0.5 * ((doy - peak) / width) ** 2)[None, :]
            value = np.round(amp * bell * (1 - 0.8 * wet) * self.noise[name], 0)
            out[name] = np.where((doy >= 60) & (doy <= 300), value, np.nan)
        return out

    def forecast_table(self) -> pl.DataFrame:
        """One row per geo, issue date and target date: leads 0..max_lead, issue dates up to the last day."""
        adds = [self.shock_arrays(self.shock_ids, k) for k in range(self.max_lead + 1)]
        temp_raw = np.stack([self.temperature(self.temp.known[k] + a["temp"]) for k, a in enumerate(adds)])
        temp = np.round(temp_raw, 1)
        precip = np.stack([self.precip_forecast(k, a) for k, a in enumerate(adds)])
        storm_wind = np.stack([add["wind"] for add in adds])
        mu = self.precip_mu[None] + self.precip_latent.known
        prob = np.where(adds[0]["precip"][None] > 0, 1.0, ndtr(mu / np.sqrt(self.precip_latent.unknown_var)))
        wet = np.minimum(1.0, precip / 10.0)
        diurnal = np.maximum(self.clim_diurnal[None] + self.diurnal.known - 2.5 * wet, 2.0)
        depression = self.dew_depression[None] * np.exp(0.3 * self.dew.known + 0.045 * self.dew.unknown_var)
        _, rh = self._dew_and_humidity(temp, depression * (1 - 0.6 * wet))
        wind = self.wind_base[None] * np.exp(0.35 * self.wind.known + 0.06125 * self.wind.unknown_var) + storm_wind
        columns = {
            "temp_max_c": np.round(temp_raw + diurnal / 2, 1),
            "temp_min_c": np.round(temp_raw - diurnal / 2, 1),
            "temp_mean_c": temp,
            "humidity_pct": rh,
            "wind_speed_kmh": np.round(wind, 1),
            "uv_index": np.stack([self._uv(0.3 + 0.6 * p) for p in prob]),
            "precip_mm": np.round(precip, 1),
            "precip_prob_pct": np.round(100 * prob, 0),
            "snowfall_cm": np.round(precip * snow_fraction(temp), 1),
        }
        n_lead, n_g, n_t = temp.shape
        lead = np.arange(n_lead)[::-1]  # issue dates ascending within a target date and geo
        shape = (n_t, n_g, n_lead)
        issued_in_time = np.arange(n_t)[:, None, None] - lead[None, None, :] <= self.timeline.n_days - 1
        valid = np.broadcast_to(issued_in_time, shape).ravel()

        def flat(a: np.ndarray) -> np.ndarray:
            return np.broadcast_to(a, shape).ravel()[valid]

        days = self.timeline.epoch_days[:, None, None]
        return conform(
            "weather_forecast",
            pl.DataFrame(
                [
                    string_series("geo_id", self.geo.ids, flat(np.arange(n_g)[None, :, None])),
                    date_series("issue_date", flat(days - lead[None, None, :])),
                    date_series("target_date", flat(days)),
                    *(pl.Series(k, flat(v[::-1].transpose(2, 1, 0))) for k, v in columns.items()),
                ]
            ),
        )


PRECIP_TYPES = ("none", "rain", "snow", "sleet", "hail", "mixed")
_AQI_BASE = np.array([32.0, 28.0, 45.0])
_POLLEN = {
    "pollen_tree": np.array([500.0, 800.0, 300.0]),
    "pollen_grass": np.array([80.0, 120.0, 60.0]),
    "pollen_weed": np.array([120.0, 90.0, 60.0]),
}


def simulate_weather(config: WorldConfig, timeline: Timeline, geo: Geography) -> Weather:
    """Climatology by zone and latitude, revealed anomalies, and the storm/heatwave calendar."""
    rng = rng_for(config.seed, "weather")
    n_t = timeline.n_total
    zones = [geo.zone(i) for i in range(geo.n)]
    areas = [geo.area(i) for i in range(geo.n)]

    def per_geo(values: list[float]) -> np.ndarray:
        return np.array(values)[:, None]

    lat_offset = geo.lat - np.array([np.mean([a.lat for a in z.areas]) for z in zones])
    season = timeline.season(200)[None, :]
    clim_temp = (
        per_geo([z.temp_base for z in zones])
        - 0.6 * lat_offset[:, None]
        + (per_geo([z.temp_amp for z in zones]) + 0.25 * lat_offset[:, None]) * season
    )
    temp_scale = per_geo([z.anomaly_scale for z in zones]) * (1 - WINTER_SWING * season)
    mixing = (area_mixing(geo, PERSISTENT_LENGTH_KM), area_mixing(geo, SURPRISE_LENGTH_KM))
    fields = {
        name: revealed_field(
            rng, spec, mixing, n_t, config.max_lead, temp_scale if name == "temp" else np.ones((geo.n, 1))
        )
        for name, spec in (
            ("temp", TEMP),
            ("diurnal", DIURNAL),
            ("precip", PRECIP),
            ("wind", WIND),
            ("dew", DEW),
        )
    }
    precip_mu = (
        per_geo([z.precip_mu + a.wet for z, a in zip(zones, areas, strict=True)])
        + per_geo([z.precip_season for z in zones]) * season
    )
    precip_scale = per_geo([z.precip_scale for z in zones])
    noise_rng = rng_for(config.seed, "weather_noise")
    shape = (geo.n, n_t)
    noise = {
        "gust": noise_rng.uniform(size=shape),
        "cloud": noise_rng.standard_normal(shape),
        "hail": noise_rng.uniform(size=shape),
        "vis": noise_rng.uniform(0.8, 1.1, shape),
        "aqi": noise_rng.standard_normal(shape),
        "pm": noise_rng.standard_normal(shape),
        "gust_gap": noise_rng.uniform(size=shape) < 0.02,
        "vis_gap": noise_rng.uniform(size=shape) < 0.015,
        "pm_gap": noise_rng.uniform(size=shape) < 0.03,
        **{k: noise_rng.lognormal(0.0, 0.5, shape) for k in ("pollen_tree", "pollen_grass", "pollen_weed")},
    }
    return Weather(
        timeline=timeline,
        geo=geo,
        max_lead=config.max_lead,
        clim_temp=clim_temp,
        hottest=per_geo([z.hottest for z in zones]),
        clim_diurnal=per_geo([z.diurnal_range for z in zones]) * (1 + 0.15 * season),
        precip_mu=precip_mu,
        precip_scale=precip_scale,
        clim_precip=precip_scale * expected_square_positive(precip_mu, fields["precip"].total_var),
        dew_depression=per_geo([a.dew for a in areas]) * (1 + 0.3 * season),
        wind_base=per_geo([z.wind_kmh for z in zones]) * (1 + 0.15 * timeline.season(30)[None, :]),
        temp=fields["temp"],
        diurnal=fields["diurnal"],
        precip_latent=fields["precip"],
        wind=fields["wind"],
        dew=fields["dew"],
        shocks=draw_shocks(config, timeline, geo),
        noise=noise,
    )
