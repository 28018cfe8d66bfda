"""The one partitions definition every dated asset shares, so partition keys line up across the
graph and one job can hold every dated asset (Dagster jobs need a single partitions definition)."""

import datetime as dt

import dagster as dg

from mmm_platform.config import get_settings

#: one partition per day, up to and including today (landing data may be dated today). Forecasts
#: are partitioned by target date; those for days after today live in today's partition (see
#: docs/architecture.md, "Partitions").
daily_partitions = dg.DailyPartitionsDefinition(start_date=get_settings().partition_start.isoformat(), end_offset=1)

#: run tags that make one run cover a range of partitions (a single-run backfill)
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    return {RANGE_START: start.isoformat(), RANGE_END: end.isoformat()}
