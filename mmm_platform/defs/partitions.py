"""The one partitions definition every dated asset shares: calendar months.

Monthly, not daily, because Dagster records a planned and a materialization event per asset and
partition: a two-year load of the demo world records about 25 x assets events instead of 730 x
assets (docs/architecture.md has the measurements), while a month of a geo-day table reloads in
milliseconds. Partitions start where the landing data starts (or at MMM_PARTITION_START) and end
with the current month, which also holds forecasts for the days after today.
"""

import datetime as dt
from pathlib import Path

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.contracts import load_contract
from mmm_platform.ingest.spans import first_landing_date, month_start, read_known
from mmm_platform.warehouse import WarehouseUnavailable, connect

#: with no setting and no landing data yet: two years back (reload the code location once data lands)
FALLBACK_YEARS = 2


def _known(warehouse: Path) -> dict:
    """ingest.landing_files when the warehouse can be read at once, else nothing (a run is writing:
    the files are then read instead)."""
    if not warehouse.exists():
        return {}
    try:
        con = connect(warehouse, read_only=True, lock_timeout_s=0)
    except WarehouseUnavailable:
        return {}
    with con:
        return read_known(con)


def partition_start() -> dt.date:
    """MMM_PARTITION_START, else the first month of the landing data, else two years ago."""
    settings = get_settings()
    if settings.partition_start is not None:
        return settings.partition_start
    first = first_landing_date(load_contract(), settings.landing_dir, _known(settings.warehouse))
    if first is None:
        today = dt.date.today()
        first = today.replace(year=today.year - FALLBACK_YEARS, day=1)
    return month_start(first)


PARTITION_START = partition_start()
monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=month_start(PARTITION_START).isoformat(), end_offset=1)

#: run tags that make one run cover a range of partitions (a single-run backfill)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
#: the dates a run covers, for people reading the run list
DATES_TAG = "mmm/dates"


def month_key(day: dt.date) -> str:
    return month_start(day).isoformat()


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    """Tags of a run over the months from `start`'s to `end`'s."""
    return {RANGE_START: month_key(start), RANGE_END: month_key(end), DATES_TAG: f"{start:%Y-%m}..{end:%Y-%m}"}


def last_month() -> dt.date:
    return dt.date.fromisoformat(monthly_partitions.get_last_partition_key())


def window_of(start_key: str, end_key: str) -> tuple[dt.date, dt.date, bool]:
    """(first day, last day, open end) of the months from `start_key` to `end_key`: the newest
    partition is open-ended (forecasts for days after today)."""
    start = dt.date.fromisoformat(start_key)
    end_month = dt.date.fromisoformat(end_key)
    end = (end_month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return start, end, end_key >= monthly_partitions.get_last_partition_key()
