"""Jobs, the weather-file sensor and the daily schedule."""

import datetime as dt
import hashlib
import json

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.contracts import load_contract
from mmm_platform.defs.partitions import PARTITION_START, last_month, monthly_partitions, range_tags
from mmm_platform.ingest.load import KnownFile
from mmm_platform.ingest.spans import landing_changes, plan_runs, read_known
from mmm_platform.warehouse import WarehouseUnavailable, connect

WEATHER_TABLES = ("weather_observed", "weather_forecast")
RAW = dg.AssetSelection.groups("raw")

ingest_job = dg.define_asset_job(
    "ingest",
    selection=RAW,
    description="Load landing tables into raw.<table> and run their data-quality checks.",
    partitions_def=monthly_partitions,
)

weather_job = dg.define_asset_job(
    "ingest_weather",
    selection=dg.AssetSelection.assets(*[dg.AssetKey(["raw", t]) for t in WEATHER_TABLES]),
    description="Load new or changed weather files (what the weather_files sensor requests).",
    partitions_def=monthly_partitions,
)

#: the groups of the assets partitioned by refit date (weekly), which run in their own job (`mmm`):
#: a Dagster job holds one partitions definition
REFIT_GROUPS = ("mmm", "allocator", "report", "validation")

#: the groups whose assets read all history (the causal suite: 5-15 s) and take a new day in at
#: most once a day: `mmm-platform run` reruns them when they have not run today (UTC) or when a
#: change reaches before the current month (a correction of history, a backfill); otherwise a new
#: day of data waits for the first run of the next day (docs/architecture.md, "Runs")
DAILY_GROUPS = ("causal",)

everything_job = dg.define_asset_job(
    "everything",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups(*REFIT_GROUPS),
    description="Ingest, build features and run every monthly or unpartitioned asset; `mmm-platform run` "
    "then runs the `mmm` job for the latest refit date.",
    partitions_def=monthly_partitions,
)


def _known_weather(cursor: dict[str, list]) -> dict[str, dict[str, KnownFile]]:
    """What ingest.landing_files holds, when the warehouse can be read now, else nothing; the
    cursor adds the files already requested (read back as their signature alone)."""
    settings = get_settings()
    known: dict[str, dict[str, KnownFile]] = {}
    if settings.warehouse.exists():
        try:
            con = connect(settings.warehouse, read_only=True, lock_timeout_s=0)
        except WarehouseUnavailable:
            con = None  # a run is writing: the cursor alone decides this tick
        if con is not None:
            with con:
                known = read_known(con)
    for name, (size, mtime, digest) in cursor.items():
        table = name.split("/", 1)[0]
        if name not in known.get(table, {}):
            known.setdefault(table, {})[name] = KnownFile(
                size, dt.datetime.fromisoformat(mtime), digest, "requested", None, None, None
            )
    return known


@dg.sensor(
    name="weather_files",
    minimum_interval_seconds=60,
    job=weather_job,
    description="Requests the months new or changed weather files touch: the fewest runs, one per "
    "contiguous range of months, skipping files ingest.landing_files already holds.",
)
def weather_files_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Cursor: {file: [size, mtime, hash]} of every weather file requested so far."""
    settings = get_settings()
    contract = load_contract()
    cursor: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    changes = [
        c
        for c in landing_changes(contract, settings.landing_dir, _known_weather(cursor), WEATHER_TABLES)
        if c.kind != "vanished"
    ]
    if not changes:
        return dg.SkipReason("no new or changed weather file")
    requests = []
    for plan in plan_runs(contract, changes, PARTITION_START, last_month()):
        start, end = plan.months
        digest = hashlib.blake2b(
            "\n".join(sorted(f"{c.file}@{c.signature[2]}" for c in changes)).encode(), digest_size=6
        )
        requests.append(
            dg.RunRequest(
                run_key=f"weather:{start}:{end}:{digest.hexdigest()}",
                asset_selection=[dg.AssetKey(["raw", t]) for t in plan.tables],
                tags=range_tags(start, end) | {"mmm/files": str(plan.files)},
            )
        )
    for c in changes:
        size, mtime, digest = c.signature
        cursor[c.file] = [size, mtime.isoformat(), digest]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


@dg.schedule(
    name="daily_ingest",
    cron_schedule="0 6 * * *",
    job=ingest_job,
    execution_timezone="UTC",
    description="Every morning: reload the months of yesterday (complete) and today (forecasts ahead).",
)
def daily_ingest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    today = context.scheduled_execution_time.date()
    return dg.RunRequest(run_key=f"daily:{today}", tags=range_tags(today - dt.timedelta(days=1), today))
