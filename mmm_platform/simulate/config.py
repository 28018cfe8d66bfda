"""The knobs of the demo world and the seeded random streams every module draws from."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from mmm_platform.contracts import MAX_FORECAST_LEAD_DAYS


@dataclass(frozen=True)
class WorldConfig:
    """Size, seed and bid reaction of a world; everything else is fixed, so the same config gives the
    same world."""

    seed: int = 7
    #: >= 3 climate zones always, >= 3 geos per zone when n_geos >= 9
    n_geos: int = 24
    #: first simulated day; None: the world ends yesterday (resolved once, in __post_init__)
    start: dt.date | None = None
    n_days: int = 730
    #: spread over the 5 category_l1 values
    n_skus: int = 20
    #: forecasts are issued at leads 0..max_lead
    max_lead: int = 7
    #: how strongly the bids follow the day-ahead forecast, as a multiple of each campaign's reaction:
    #: 1 is the demo retailer; a retailer with weather-triggered campaigns bids several times harder,
    #: which makes the weather a strong confounder of media (tests/test_mmm_recovery.py uses 4)
    bid_reaction: float = 1.0

    def __post_init__(self) -> None:
        if self.n_geos < 3:
            raise ValueError("n_geos must be >= 3 (one geo per climate zone at least)")
        if self.n_days < 60:
            raise ValueError("n_days must be >= 60 (room for shocks and three experiments with pre-periods)")
        if self.n_skus < 5:
            raise ValueError("n_skus must be >= 5 (one sku per category at least)")
        if not 1 <= self.max_lead <= MAX_FORECAST_LEAD_DAYS:
            raise ValueError(f"max_lead must be in 1..{MAX_FORECAST_LEAD_DAYS} (lead 1 is the instrument)")
        if self.bid_reaction < 0:
            raise ValueError("bid_reaction must be >= 0 (0: bids ignore the forecast)")
        if self.start is None:  # frozen: the one place the default start is resolved
            object.__setattr__(self, "start", dt.date.today() - dt.timedelta(days=self.n_days))

    @property
    def end(self) -> dt.date:
        """The last simulated (observed) day."""
        return self.start + dt.timedelta(days=self.n_days - 1)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per named stream, so a new draw in one module never shifts another's."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def ar1(innovations: np.ndarray, phi: float, burn_in: int) -> np.ndarray:
    """Unit-variance AR(1) along the last axis driven by iid unit `innovations`; the first `burn_in` steps
    are dropped so the series starts in its stationary distribution (no start-up artefact)."""
    return lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], innovations, axis=-1)[..., burn_in:]
