"""Geos: climate zones, coordinates consistent with the zone, regions derived from coordinates, size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mmm_platform.simulate.config import WorldConfig, rng_for


@dataclass(frozen=True)
class SubArea:
    """A part of a climate zone: where its geos sit and how wet and humid it is."""

    lat: tuple[float, float]
    lon: tuple[float, float]
    #: added to the zone's latent precipitation mean (sets the share of wet days)
    wet: float
    #: typical gap between air temperature and dew point, °C (dry air: large)
    dew: float


@dataclass(frozen=True)
class Zone:
    """A climate zone: seasonal climatology and how strongly its weather swings around it."""

    name: str
    temp_base: float
    temp_amp: float
    diurnal_range: float
    #: multiplies the slow temperature anomaly (continental climates swing more); forecast errors are alike
    anomaly_scale: float
    precip_mu: float
    #: seasonal swing of the latent precipitation mean (+: wetter summers)
    precip_season: float
    #: mm per squared latent unit
    precip_scale: float
    wind_kmh: float
    #: cap on a daily mean temperature, °C (only hot, dry air gets to 40)
    hottest: float
    areas: tuple[SubArea, SubArea]


# fmt: off
ZONES: tuple[Zone, ...] = (
    Zone(
        name="cold_continental", temp_base=8.0, temp_amp=15.0, diurnal_range=10.0, anomaly_scale=1.15,
        precip_mu=-0.35, precip_season=0.15, precip_scale=5.5, wind_kmh=16.0, hottest=38.0,
        areas=(SubArea(lat=(40.0, 46.0), lon=(-96.0, -85.5), wet=0.0, dew=4.5),    # midwest
               SubArea(lat=(41.0, 45.0), lon=(-80.0, -70.5), wet=0.1, dew=4.0)),   # northeast
    ),
    Zone(
        name="temperate_wet", temp_base=11.5, temp_amp=7.5, diurnal_range=8.0, anomaly_scale=0.85,
        precip_mu=0.1, precip_season=-0.35, precip_scale=5.0, wind_kmh=14.0, hottest=36.0,
        areas=(SubArea(lat=(44.0, 48.5), lon=(-123.5, -121.0), wet=0.15, dew=2.5),  # pacific NW
               SubArea(lat=(37.5, 40.5), lon=(-78.0, -74.5), wet=-0.1, dew=3.5)),   # mid-atlantic
    ),
    Zone(
        name="hot_dry", temp_base=21.0, temp_amp=8.5, diurnal_range=13.0, anomaly_scale=0.75,
        precip_mu=-1.0, precip_season=0.25, precip_scale=7.0, wind_kmh=13.0, hottest=46.0,
        areas=(SubArea(lat=(31.5, 36.0), lon=(-115.0, -104.0), wet=-0.2, dew=12.0),  # southwest
               SubArea(lat=(26.0, 30.5), lon=(-98.0, -81.0), wet=0.45, dew=5.0)),    # gulf coast
    ),
)
# fmt: on

_NAME_STEMS = (
    "Oak",
    "Maple",
    "Cedar",
    "River",
    "Lake",
    "Pine",
    "Stone",
    "Fair",
    "Green",
    "Red",
    "Silver",
    "Clear",
    "Spring",
    "North",
    "West",
    "East",
    "South",
    "Bright",
    "Hill",
    "Brook",
    "Elm",
    "Willow",
    "Ash",
    "Birch",
    "Granite",
)
_NAME_ENDS = ("ton", "field", "ville", " Falls", "port", " Heights", "wood", "dale", " City", "burg")


def region_of(lat: float, lon: float) -> str:
    """US-style census region from coordinates, so region and latitude/longitude never disagree."""
    if lon < -103.0:
        return "west"
    if lat < 37.0:
        return "south"
    return "midwest" if lon < -84.0 else "northeast"


@dataclass(frozen=True)
class Geography:
    """The geos of the world; index i of every (G, ...) array is geo `ids[i]`."""

    ids: list[str]
    names: list[str]
    zone_idx: np.ndarray
    area_idx: np.ndarray
    regions: list[str]
    region_idx: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    population: np.ndarray
    density: np.ndarray
    competitor_density: np.ndarray
    store_count: np.ndarray
    #: revenue and spend scale of a geo, mean 1 over geos (grows with population, less than linearly)
    size: np.ndarray
    #: local price level (1 = list price)
    price_index: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def area_key(self) -> np.ndarray:
        """(G,) which of the six areas (zone x area) each geo lies in: geos of one area share weather,
        region and season."""
        return 2 * self.zone_idx + self.area_idx

    def zone(self, i: int) -> Zone:
        return ZONES[int(self.zone_idx[i])]

    def area(self, i: int) -> SubArea:
        return self.zone(i).areas[int(self.area_idx[i])]

    def table(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "geo_id": self.ids,
                "geo_name": self.names,
                "dma": [str(501 + i) for i in range(self.n)],
                "region": [self.regions[r] for r in self.region_idx],
                "latitude": np.round(self.lat, 4),
                "longitude": np.round(self.lon, 4),
                "population": self.population.astype(np.int64),
                "population_density": np.round(self.density, 1),
                "competitor_density": np.round(self.competitor_density, 2),
                "store_count": self.store_count.astype(np.int64),
            }
        )


def build_geography(config: WorldConfig) -> Geography:
    """Zones round-robin (so every zone gets n_geos // 3 geos or one more), areas alternate inside a zone."""
    rng = rng_for(config.seed, "geography")
    n = config.n_geos
    slots = np.arange(n)
    zone_idx = slots % len(ZONES)
    area_idx = (slots // len(ZONES)) % 2
    order = rng.permutation(n)  # geo ids do not give the zone away
    zone_idx, area_idx = zone_idx[order], area_idx[order]
    lat = np.empty(n)
    lon = np.empty(n)
    for i in range(n):
        area = ZONES[zone_idx[i]].areas[area_idx[i]]
        lat[i] = rng.uniform(*area.lat)
        lon[i] = rng.uniform(*area.lon)
    region_names = [region_of(a, b) for a, b in zip(lat, lon, strict=True)]
    regions = sorted(set(region_names))
    population = np.round(np.exp(rng.normal(np.log(900_000), 0.65, n)), -2).clip(80_000, 12_000_000)
    density = np.exp(rng.normal(np.log(250), 0.8, n)) * (population / 900_000) ** 0.4
    size = (population / np.median(population)) ** 0.35
    size = size / size.mean()
    stems = [s + e for s in _NAME_STEMS for e in _NAME_ENDS]
    picks = rng.choice(len(stems), size=min(n, len(stems)), replace=False)
    names = [stems[p] for p in picks] + [f"Metro {i}" for i in range(len(stems), n)]
    return Geography(
        ids=[f"geo_{i + 1:03d}" for i in range(n)],
        names=names,
        zone_idx=zone_idx,
        area_idx=area_idx,
        regions=regions,
        region_idx=np.array([regions.index(r) for r in region_names]),
        lat=lat,
        lon=lon,
        population=population,
        density=density,
        competitor_density=rng.gamma(4.0, 0.8, n),
        store_count=np.maximum(1, np.round(population / 120_000 * rng.lognormal(0, 0.2, n))),
        size=size,
        price_index=rng.normal(1.0, 0.025, n),
    )
