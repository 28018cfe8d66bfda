"""Days of the world: dates, holidays (US federal + Black Friday), paydays, major events, school terms."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from mmm_platform.simulate.config import WorldConfig

_EPOCH = dt.date(1970, 1, 1)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th `weekday` (Mon=0) of a month; n=-1 for the last one."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def us_holidays(year: int) -> dict[dt.date, str]:
    """US federal holidays (on their calendar day) plus Black Friday: the fixed list the demand model uses."""
    thanksgiving = nth_weekday(year, 11, 3, 4)
    return {
        dt.date(year, 1, 1): "New Year's Day",
        nth_weekday(year, 1, 0, 3): "Martin Luther King Jr. Day",
        nth_weekday(year, 2, 0, 3): "Presidents' Day",
        nth_weekday(year, 5, 0, -1): "Memorial Day",
        dt.date(year, 6, 19): "Juneteenth",
        dt.date(year, 7, 4): "Independence Day",
        nth_weekday(year, 9, 0, 1): "Labor Day",
        nth_weekday(year, 10, 0, 2): "Columbus Day",
        dt.date(year, 11, 11): "Veterans Day",
        thanksgiving: "Thanksgiving",
        thanksgiving + dt.timedelta(days=1): "Black Friday",
        dt.date(year, 12, 25): "Christmas Day",
    }


def national_events(year: int) -> dict[dt.date, str]:
    """Retail moments that are not holidays (calendar.major_event)."""
    thanksgiving = nth_weekday(year, 11, 3, 4)
    return {
        nth_weekday(year, 2, 6, 2): "Super Bowl",
        dt.date(year, 2, 14): "Valentine's Day",
        nth_weekday(year, 5, 6, 2): "Mother's Day",
        nth_weekday(year, 6, 6, 3): "Father's Day",
        dt.date(year, 10, 31): "Halloween",
        thanksgiving + dt.timedelta(days=4): "Cyber Monday",
    }


@dataclass(frozen=True)
class Timeline:
    """Every simulated day, plus `max_lead` days after the end that forecasts may target."""

    start: dt.date
    #: observed days; arrays below have n_days + max_lead entries
    n_days: int
    epoch_days: np.ndarray
    doy: np.ndarray
    dow: np.ndarray
    day: np.ndarray
    month: np.ndarray
    year: np.ndarray
    #: index into `holiday_names`, -1 when not a holiday
    holiday: np.ndarray
    holiday_names: list[str]
    #: index into `event_names`, -1 when no national event
    event: np.ndarray
    event_names: list[str]

    @property
    def n_total(self) -> int:
        return len(self.epoch_days)

    def date(self, t: int) -> dt.date:
        return self.start + dt.timedelta(days=int(t))

    def index(self, day: dt.date) -> int:
        return (day - self.start).days

    @property
    def is_payday(self) -> np.ndarray:
        return (self.day == 1) | (self.day == 15)

    def season(self, peak_doy: float, harmonic: int = 1) -> np.ndarray:
        """cos of the annual cycle, 1 on `peak_doy`."""
        return np.cos(2 * np.pi * harmonic * (self.doy - peak_doy) / 365.25)


def build_timeline(config: WorldConfig) -> Timeline:
    n_total = config.n_days + config.max_lead
    dates = [config.start + dt.timedelta(days=t) for t in range(n_total)]
    years = range(config.start.year, dates[-1].year + 1)
    holidays = {d: name for y in years for d, name in us_holidays(y).items()}
    events = {d: name for y in years for d, name in national_events(y).items()}
    holiday_names = sorted(set(holidays.values()))
    event_names = sorted(set(events.values()))
    return Timeline(
        start=config.start,
        n_days=config.n_days,
        epoch_days=np.array([(d - _EPOCH).days for d in dates], dtype=np.int32),
        doy=np.array([d.timetuple().tm_yday for d in dates]),
        dow=np.array([d.weekday() for d in dates]),
        day=np.array([d.day for d in dates]),
        month=np.array([d.month for d in dates]),
        year=np.array([d.year for d in dates]),
        holiday=np.array([holiday_names.index(holidays[d]) if d in holidays else -1 for d in dates]),
        holiday_names=holiday_names,
        event=np.array([event_names.index(events[d]) if d in events else -1 for d in dates]),
        event_names=event_names,
    )
