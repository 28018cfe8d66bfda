"""Jobs, the weather-file sensor and the daily schedule."""

import datetime as dt
import json

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.contracts import load_contract
from mmm_platform.defs.partitions import daily_partitions, range_tags
from mmm_platform.ingest.spans import contiguous_ranges, touched_dates

WEATHER_TABLES = ("weather_observed", "weather_forecast")

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups("raw"),
    description="Load every landing table into raw.<table> and run its data-quality checks.",
    partitions_def=daily_partitions,
)

everything_job = dg.define_asset_job(
    "everything",
    selection=dg.AssetSelection.all(),
    description="Ingest, build features and fit every model: what `mmm-platform run` executes.",
    partitions_def=daily_partitions,
)


@dg.sensor(
    name="weather_files",
    minimum_interval_seconds=60,
    asset_selection=[dg.AssetKey(["raw", t]) for t in WEATHER_TABLES],
    description="Requests exactly the daily partitions that new or changed weather files touch.",
)
def weather_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Cursor: {file: [size, mtime]} of every weather file seen. A file is new or changed when its
    signature differs; its dates become one run per contiguous range (a single-run backfill)."""
    settings = get_settings()
    contract = load_contract()
    seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    requests, now_seen = [], {}
    for table in WEATHER_TABLES:
        for name, signature, dates in touched_dates(contract[table], settings.landing_dir, seen):
            now_seen[name] = signature
            # an unreadable file gets a run of the newest partition, whose check then names it
            touched = dates if dates is not None else [last]
            in_range = sorted({min(d, last) for d in touched if d >= settings.partition_start})
            for start, end in contiguous_ranges(in_range):
                requests.append(
                    dg.RunRequest(
                        run_key=f"{name}:{signature[0]}:{signature[1]}:{start}:{end}",
                        asset_selection=[dg.AssetKey(["raw", table])],
                        tags=range_tags(start, end),
                    )
                )
    seen.update(now_seen)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))


@dg.schedule(
    name="daily_ingest",
    cron_schedule="0 6 * * *",
    job=ingest_job,
    execution_timezone="UTC",
    description="Every morning: load yesterday (complete) and today (forecasts ahead) for every table.",
)
def daily_ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    today = context.scheduled_execution_time.date()
    return dg.RunRequest(run_key=f"daily:{today}", tags=range_tags(today - dt.timedelta(days=1), today))
