"""How a command becomes Dagster runs: what changed in the landing zone decides which assets run
over which months, the runs execute in this process against the instance in DAGSTER_HOME, and the
terminal shows progress, a summary and every failed check.

With nothing new the command answers from the warehouse and the instance without loading the
Dagster definitions (whose imports alone cost seconds): a no-op `ingest` takes about a second.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from mmm_platform.config import INSTANCE_TEMPLATE, Settings, get_settings
from mmm_platform.contracts import load_contract
from mmm_platform.ingest.spans import Change, landing_changes, read_known
from mmm_platform.warehouse import check_writable, connect

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A command that cannot run as given: the CLI prints it on one line and exits 2."""


def instance(settings: Settings) -> Any:  # -> dg.DagsterInstance
    """The instance in DAGSTER_HOME (default .dagster_home, the one `make dev` shows), created with
    the project's local instance settings (pools) when it does not exist yet."""
    import dagster as dg

    home = settings.dagster_home
    config = home / "dagster.yaml"
    home.mkdir(parents=True, exist_ok=True)
    # two commands started at once must not both create the instance's SQLite storage (the second
    # fails with "table ... already exists"): one at a time, the other then finds it made
    with (home / ".instance.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not config.exists():
            shutil.copyfile(INSTANCE_TEMPLATE, config)
        os.environ["DAGSTER_HOME"] = str(home)
        return dg.DagsterInstance.get()


class PlannedRun(NamedTuple):
    keys: list  # asset keys
    months: tuple[dt.date, dt.date] | None  # first and last month; None: undated tables only
    why: str


def landing_state(settings: Settings) -> list[Change]:
    """The landing files that raw does not reflect yet (ingest.landing_files against the zone)."""
    known = {}
    if settings.warehouse.exists():
        with connect(settings.warehouse, read_only=True, lock_timeout_s=settings.lock_timeout_s) as con:
            known = read_known(con)
    return landing_changes(load_contract(), settings.landing_dir, known)


def _ranged(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "start", None) or getattr(args, "end", None) or getattr(args, "full", False))


def plan(
    args: argparse.Namespace, definitions: Any, inst: Any, job_name: str, changes: list[Change]
) -> list[PlannedRun]:
    """Which assets run over which months: the given range (`--start/--end`, `--full`) for every
    raw table (or `args.tables`), else what the landing changes touch; `run` adds everything
    downstream of them, every asset that was never materialized, and the daily assets (DAILY_GROUPS)
    that are behind their inputs, except that a daily asset that ran today skips a change within
    the current month."""
    import dagster as dg

    from mmm_platform.defs.automation import DAILY_GROUPS
    from mmm_platform.defs.partitions import PARTITION_START, last_month
    from mmm_platform.defs.raw import LANDING_ZONE_KEY, raw_key
    from mmm_platform.ingest.spans import plan_runs

    contract = load_contract()
    last = last_month()
    graph = definitions.resolve_asset_graph()
    in_job = set(definitions.resolve_job_def(job_name).asset_layer.executable_asset_keys)
    if _ranged(args):
        tables = getattr(args, "tables", None) or list(contract.tables)
        unknown = sorted(set(tables) - set(contract.tables))
        if unknown:
            raise UsageError(f"no landing table named {', '.join(unknown)} (tables: {', '.join(contract.tables)})")
        first = max(getattr(args, "start", None) or PARTITION_START, PARTITION_START)
        runs = [(tables, (first, min(getattr(args, "end", None) or last, last)), "requested range")]
    else:
        runs = [
            (list(p.tables), p.months, f"{p.files} changed file(s)")
            for p in plan_runs(contract, changes, PARTITION_START, last)
        ]
    events = inst.get_latest_materialization_events(in_job) if job_name == "everything" else {}
    latest = {k: events.get(k) for k in in_job} if job_name == "everything" else {}  # None: never
    never = [k for k, event in latest.items() if graph.get(k).group_name != "raw" and event is None]
    daily = dg.AssetSelection.groups(*DAILY_GROUPS).resolve(graph) & in_job if job_name == "everything" else set()
    today = dt.datetime.now(dt.UTC).date()
    ran_today = {k for k in daily if latest[k] is not None and _utc_day(latest[k].timestamp) == today}
    # a daily asset that has not run today but whose inputs changed since it ran: its turn now
    behind = [
        k
        for k in daily - ran_today
        if latest[k] is not None and any(_newer(latest.get(p), latest[k].timestamp) for p in graph.get(k).parent_keys)
    ]
    if (never or behind) and not runs:
        due = len(never) + len(behind)
        runs = [([], (PARTITION_START, last), f"{due} asset(s) never materialized or behind their inputs")]
    planned = []
    for i, (tables, months, why) in enumerate(runs):
        keys = {raw_key(t) for t in tables} | ({LANDING_ZONE_KEY} if i == 0 else set())
        if job_name == "everything":
            keys = dg.AssetSelection.assets(*keys, *never, *behind).downstream().resolve(graph)
            if ran_today and months is not None and months[0] >= last:
                # a change within the current month: what ran today takes it in tomorrow
                keys -= dg.AssetSelection.assets(*ran_today).downstream().resolve(graph)
                why += f"; {', '.join(sorted({graph.get(k).group_name for k in ran_today}))} ran today"
        planned.append(PlannedRun(sorted(keys & in_job), months, why))
    return planned


def _utc_day(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


def _newer(event: Any, than: float) -> bool:
    """Whether a latest materialization (an event log entry, or None) is later than `than`."""
    return event is not None and event.timestamp > than


def _prefetch_suites(args: argparse.Namespace, changes: list[Change]) -> None:
    """Start Great Expectations' worker (3-4 s of imports) when a table with a suite will load, so
    that it imports on the other core while the instance and the definitions load here."""
    from mmm_platform.quality.gx_suite import prefetch
    from mmm_platform.quality.suites import load_suite

    tables = (getattr(args, "tables", None) or load_contract().tables) if _ranged(args) else {c.table for c in changes}
    if any(load_suite(t).expectations for t in tables):
        prefetch()


def _planned_assets(definitions: Any) -> dict[str, int]:
    """step (op) name -> how many assets it materializes (for the live counter of dbt steps)."""
    graph = definitions.resolve_asset_graph()
    counts: dict[str, int] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_executable and node.assets_def.is_executable:
            counts[node.assets_def.op.name] = len(node.assets_def.keys)
    return counts


def execute(job_name: str, args: argparse.Namespace) -> int:
    """Execute one job of the definitions over what the landing zone needs; print progress, a
    summary and every failed check; return the exit code."""
    settings = get_settings()
    out = sys.stdout
    if not settings.landing_dir.is_dir():
        print(
            f"mmm-platform: landing zone {settings.landing_dir} does not exist "
            "(set MMM_LANDING_DIR, or run `mmm-platform demo`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    check_writable(settings.warehouse)  # a warehouse that can never be written: exit 2 now, not in a step
    t0 = time.perf_counter()
    changes = [] if _ranged(args) else landing_state(settings)
    _prefetch_suites(args, changes)
    inst = instance(settings)
    if not changes and not _ranged(args) and (job_name == "ingest" or getattr(args, "no_refit", False)):
        _say(out, f"{job_name}: nothing new in {settings.landing_dir}: every landing file is as last loaded")
        return _report_standing(inst, _raw_blocking_checks(), out)

    from mmm_platform.cli.progress import Progress, summary
    from mmm_platform.definitions import defs
    from mmm_platform.defs.partitions import range_tags

    definitions = defs()
    job = definitions.resolve_job_def(job_name)
    runs = plan(args, definitions, inst, job_name, changes)
    refit = None if getattr(args, "no_refit", False) else _refit(definitions, inst, job_name, bool(runs), out)
    if not runs and refit is None:
        _say(out, f"{job_name}: nothing new in {settings.landing_dir}: every landing file is as last loaded")
        graph = definitions.resolve_asset_graph()
        in_job = set(job.asset_layer.executable_asset_keys)
        return _report_standing(inst, [k for k in graph.asset_check_keys if k.asset_key in in_job], out)
    logs = settings.dagster_home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{dt.datetime.now():%Y%m%dT%H%M%S}-{job_name}.log"
    counts = _planned_assets(definitions)
    progress = Progress(out, lambda step: counts.get(step, 1), live=out.isatty())
    _say(out, f"{job_name}: landing {settings.landing_dir} -> warehouse {settings.warehouse}")
    if not args.verbose:
        _say(out, f"  logs (dbt and every step): {log_file}")
    run_ids = []
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with _quiet(log_file, not args.verbose):
        for keys, months, why in runs:
            run_id = str(uuid.uuid4())
            run_ids.append(run_id)
            span = f"{months[0]:%Y-%m} .. {months[1]:%Y-%m}" if months else "undated tables"
            _say(out, f"run {run_id[:8]}  {span}  ({len(keys)} assets; {why})")
            inst.add_event_listener(run_id, progress)
            result = job.execute_in_process(
                instance=inst,
                run_id=run_id,
                tags=(range_tags(*months) if months else {}) | {"mmm/cli": job_name},
                asset_selection=keys,
                raise_on_error=False,
                run_config=quiet,
            )
            if not result.success:
                refit = None  # the models are not refitted on data a blocking check failed
        if refit is not None:
            refit_job, key = refit
            run_id = str(uuid.uuid4())
            run_ids.append(run_id)
            _say(out, f"run {run_id[:8]}  refit {key}  (job {refit_job.name})")
            inst.add_event_listener(run_id, progress)
            refit_job.execute_in_process(
                instance=inst,
                run_id=run_id,
                partition_key=key,
                tags={"mmm/cli": job_name},
                raise_on_error=False,
                run_config=quiet,
            )
    where = {
        "runs": f"{', '.join(r[:8] for r in run_ids)} in {settings.dagster_home} (`make dev`: http://localhost:3000/runs)",
        "warehouse": f"{settings.warehouse} (refused rows: ingest.quarantine)",
    }
    _say(out, f"{job_name}: done")
    for line in summary(progress, time.perf_counter() - t0, where):
        _say(out, line)
    _print_problems(inst, run_ids, out)
    return EXIT_CHECK_FAILED if progress.checks.failed or progress.failures else EXIT_OK


#: the job of the assets partitioned by refit date (defs/mmm.py), run after `everything`
REFIT_JOB = "mmm"


def _refit(definitions: Any, inst: Any, job_name: str, data_changed: bool, out: TextIO) -> tuple[Any, str] | None:
    """(job, partition key) of the latest refit when `run` should refit: after new data, or when
    the latest refit date has never been fitted. None for `ingest`, or without a refit job."""
    if job_name != "everything":
        return None
    import dagster as dg

    try:
        job = definitions.resolve_job_def(REFIT_JOB)
    except dg.DagsterInvariantViolationError:  # definitions without models: no refit job
        return None
    key = job.partitions_def.get_last_partition_key() if job.partitions_def else None
    if key is None:
        start = job.partitions_def.start.date() if job.partitions_def else None
        _say(out, f"{REFIT_JOB}: no refit yet: the first refit week starts {start} (a refit needs half a year of data)")
        return None
    graph = definitions.resolve_asset_graph()
    fitted = all(
        inst.fetch_materializations(dg.AssetRecordsFilter(asset_key=k, asset_partitions=[key]), limit=1).records
        for k in job.asset_layer.executable_asset_keys
        if graph.get(k).partitions_def is not None
    )
    return (job, key) if data_changed or not fitted else None


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


@contextlib.contextmanager
def _quiet(log_file: Path, quiet: bool) -> Iterator[None]:
    """Send dbt's console log, Python logging and anything printed into `log_file`."""
    if not quiet:
        yield
        return
    root = logging.getLogger()
    with log_file.open("a") as f, contextlib.redirect_stdout(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
        saved = root.handlers[:]
        root.handlers = [handler]
        try:
            yield
        finally:
            root.handlers = saved


#: detail lines printed per warning (all of them for a failed blocking check; the rest are in the UI)
WARNING_LINES = 5


def _print_problems(inst: Any, run_ids: list[str], out: TextIO) -> None:
    """Every failed check of these runs with its problems (table, file, rule, rows): all of them
    for a blocking check, the first few for a warning (the check's page in the UI has the rest)."""
    import dagster as dg

    for run_id in run_ids:
        records = inst.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for record in records:
            ev = record.event_log_entry.dagster_event.event_specific_data
            if ev.passed:
                continue
            blocking = ev.severity == dg.AssetCheckSeverity.ERROR
            problems = ev.metadata.get("problems")
            lines = problems.value.splitlines() if problems is not None and problems.value != "none" else []
            lines = [line for line in lines if line != f"- {ev.description}"]  # already the headline
            label = "FAILED check" if blocking else "warning"
            _say(out, f"{label} {'/'.join(ev.asset_key.path)}:{ev.check_name}: {ev.description}")
            shown = lines if blocking else lines[:WARNING_LINES]
            for line in shown:
                _say(out, line)
            if len(lines) > len(shown):
                _say(out, f"  ... {len(lines) - len(shown)} more on the check's page in the UI")


def _raw_blocking_checks() -> list:
    """The blocking checks of every raw asset, known from the contract without loading definitions."""
    import dagster as dg

    from mmm_platform.quality.checks import CHECKS

    return [
        dg.AssetCheckKey(dg.AssetKey(["raw", t]), spec.name)
        for t in load_contract().tables
        for spec in CHECKS
        if spec.blocking
    ]


def _report_standing(inst: Any, check_keys: list, out: TextIO) -> int:
    """With nothing to run: the blocking checks whose latest evaluation failed still fail the command."""
    import dagster as dg

    failing = []
    for key, record in inst.event_log_storage.get_latest_asset_check_execution_by_key(check_keys).items():
        event = record.event.dagster_event if record.event else None
        if event is None or event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.asset_check_evaluation_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            path = "/".join(key.asset_key.path)
            failing.append(f"{path}:{key.name} (run {record.run_id[:8]}): {evaluation.description}")
    for line in failing:
        _say(out, f"still FAILED check {line}")
    return EXIT_CHECK_FAILED if failing else EXIT_OK
