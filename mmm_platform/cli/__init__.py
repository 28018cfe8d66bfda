"""`mmm-platform simulate | ingest | run | demo | retract`: the command line over the same Dagster
definitions the UI shows (it executes their jobs, recorded in DAGSTER_HOME; there is no second code
path).

Runs are incremental: the landing files whose signature differs from what ingest.landing_files
recorded (new, changed, vanished, or still refused) decide which tables and months run, in the
fewest runs (one per contiguous range of months). With nothing new, nothing runs.
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
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from mmm_platform.config import INSTANCE_TEMPLATE, Settings, SettingsError, get_settings
from mmm_platform.warehouse import WarehouseUnavailable, check_writable, connect

log = logging.getLogger("mmm_platform.cli")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
PLANNED_EVENTS_FLAG = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


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


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def cmd_simulate(args: argparse.Namespace) -> int:
    from mmm_platform.simulate import WorldConfig, simulate, write_landing

    landing = args.landing or get_settings().landing_dir
    config = WorldConfig(seed=args.seed, n_geos=args.geos, n_days=args.days, start=args.first_day)
    t0 = time.perf_counter()
    world = simulate(config)
    rows = sum(t.height for t in world.tables.values())
    paths = write_landing(world, Path(landing), file_format=args.format)
    print(
        f"simulated {config.n_geos} geos x {config.n_days} days ({world.truth['meta']['config']['start']} .. "
        f"{world.truth['meta']['end']}): {rows:,} rows in {len(paths)} files under {landing} "
        f"({time.perf_counter() - t0:.1f}s); ground truth in {Path(landing) / 'truth.json'}"
    )
    return EXIT_OK


class PlannedRun(NamedTuple):
    keys: list  # asset keys
    months: tuple[dt.date, dt.date] | None  # first and last month; None: undated tables only
    why: str


def _known(settings: Settings) -> dict:
    from mmm_platform.ingest.spans import read_known

    if not settings.warehouse.exists():
        return {}
    with connect(settings.warehouse, read_only=True, lock_timeout_s=settings.lock_timeout_s) as con:
        return read_known(con)


def plan(args: argparse.Namespace, definitions: Any, inst: Any, job_name: str, settings: Settings) -> list[PlannedRun]:
    """Which assets run over which months: the given range (`--start/--end`, `--full`) for every
    raw table (or `args.tables`), else what the landing changes touch; `run` adds everything
    downstream of them, and every asset that was never materialized."""
    import dagster as dg

    from mmm_platform.contracts import load_contract
    from mmm_platform.defs.partitions import PARTITION_START, last_month
    from mmm_platform.defs.raw import LANDING_ZONE_KEY, raw_key
    from mmm_platform.ingest.spans import landing_changes, plan_runs

    contract = load_contract()
    last = last_month()
    graph = definitions.resolve_asset_graph()
    in_job = set(definitions.resolve_job_def(job_name).asset_layer.executable_asset_keys)
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if start or end or getattr(args, "full", False):
        tables = getattr(args, "tables", None) or list(contract.tables)
        runs = [(tables, (max(start or PARTITION_START, PARTITION_START), min(end or last, last)), "requested range")]
    else:
        changes = landing_changes(contract, settings.landing_dir, _known(settings))
        runs = [
            (list(p.tables), p.months, f"{p.files} changed file(s)")
            for p in plan_runs(contract, changes, PARTITION_START, last)
        ]
    never = [
        k
        for k in in_job
        if job_name == "everything"
        and graph.get(k).group_name != "raw"
        and inst.get_latest_materialization_event(k) is None
    ]
    if never and not runs:
        runs = [([], (PARTITION_START, last), f"{len(never)} asset(s) never materialized")]
    planned = []
    for i, (tables, months, why) in enumerate(runs):
        keys = {raw_key(t) for t in tables} | ({LANDING_ZONE_KEY} if i == 0 else set())
        if job_name == "everything":
            keys = dg.AssetSelection.assets(*keys, *never).downstream().resolve(graph)
        planned.append(PlannedRun(sorted(keys & in_job), months, why))
    return planned


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
    if not settings.landing_dir.is_dir():
        print(
            f"mmm-platform: landing zone {settings.landing_dir} does not exist "
            "(set MMM_LANDING_DIR, or run `mmm-platform demo`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    check_writable(settings.warehouse)  # a warehouse that can never be written: exit 2 now, not in a step
    t0 = time.perf_counter()
    inst = instance(settings)
    from mmm_platform.definitions import defs
    from mmm_platform.defs.partitions import range_tags

    definitions = defs()
    job = definitions.resolve_job_def(job_name)
    runs = plan(args, definitions, inst, job_name, settings)
    out = sys.stdout
    if not runs:
        print(f"{job_name}: nothing new in {settings.landing_dir}: every landing file is as last loaded")
        return _report_standing(inst, definitions, job_name, out)
    logs = settings.dagster_home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{dt.datetime.now():%Y%m%dT%H%M%S}-{job_name}.log"
    counts = _planned_assets(definitions)
    from mmm_platform.cli.progress import Progress, summary

    progress = Progress(out, lambda step: counts.get(step, 1), live=out.isatty())
    print(f"{job_name}: landing {settings.landing_dir} -> warehouse {settings.warehouse}")
    if not args.verbose:
        print(f"  logs (dbt and every step): {log_file}")
    run_ids = []
    with _quiet(log_file, not args.verbose):
        for keys, months, why in runs:
            tags = range_tags(*months) if months else {}
            span = f"{months[0]:%Y-%m} .. {months[1]:%Y-%m}" if months else "undated tables"
            run_id = str(uuid.uuid4())
            run_ids.append(run_id)
            _say(out, f"run {run_id[:8]}  {span}  ({len(keys)} assets; {why})")
            inst.add_event_listener(run_id, progress)
            job.execute_in_process(
                instance=inst,
                run_id=run_id,
                tags=tags,
                asset_selection=keys,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
    seconds = time.perf_counter() - t0
    where = {
        "runs": f"{', '.join(r[:8] for r in run_ids)} in {settings.dagster_home} (`make dev`: http://localhost:3000/runs)",
        "warehouse": f"{settings.warehouse} (refused rows: ingest.quarantine)",
    }
    print(f"{job_name}: done")
    for line in summary(progress, seconds, where):
        print(line)
    _print_problems(inst, run_ids, out)
    return EXIT_CHECK_FAILED if progress.checks.failed or progress.failures else EXIT_OK


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


@contextlib.contextmanager
def _quiet(log_file: Path, quiet: bool):
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


def _print_problems(inst: Any, run_ids: list[str], out: TextIO) -> None:
    """Every failed check of these runs with its problems (table, file, rule, rows)."""
    import dagster as dg

    for run_id in run_ids:
        records = inst.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for record in records:
            ev = record.event_log_entry.dagster_event.event_specific_data
            if ev.passed:
                continue
            label = "FAILED check" if ev.severity == dg.AssetCheckSeverity.ERROR else "warning"
            problems = ev.metadata.get("problems")
            _say(out, f"{label} {'/'.join(ev.asset_key.path)}:{ev.check_name}: {ev.description}")
            if problems is not None and problems.value != "none":
                _say(out, problems.value)


def _report_standing(inst: Any, definitions: Any, job_name: str, out: TextIO) -> int:
    """With nothing to run: the blocking checks whose latest evaluation failed still fail the command."""
    import dagster as dg

    graph = definitions.resolve_asset_graph()
    job_keys = set(definitions.resolve_job_def(job_name).asset_layer.executable_asset_keys)
    check_keys = [k for k in graph.asset_check_keys if k.asset_key in job_keys]
    latest = inst.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    failing = []
    for key, record in latest.items():
        event = record.event.dagster_event if record.event else None
        is_evaluation = event is not None and event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        evaluation = event.asset_check_evaluation_data if is_evaluation else None
        if evaluation is not None and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failing.append(
                f"{'/'.join(key.asset_key.path)}:{key.name} (run {record.run_id[:8]}): {evaluation.description}"
            )
    for line in failing:
        _say(out, f"still FAILED check {line}")
    return EXIT_CHECK_FAILED if failing else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    code = cmd_simulate(args)
    return code or execute("everything", args)


def cmd_retract(args: argparse.Namespace) -> int:
    """Withdraw a loaded file, then reload the months it touched (its rows leave raw)."""
    from mmm_platform.contracts import load_contract
    from mmm_platform.ingest.load import retract_file

    settings = get_settings()
    contract = load_contract()
    with connect(settings.warehouse, lock_timeout_s=settings.lock_timeout_s) as con:
        try:
            known = retract_file(con, contract, args.file, args.reason, run_id="cli-retract")
        except KeyError as exc:
            print(f"mmm-platform: {exc.args[0]}", file=sys.stderr)
            return EXIT_USAGE
    print(f"retracted {args.file} ({known.n_rows} rows, {known.min_date} .. {known.max_date}): {args.reason}")
    args.start, args.end, args.full = known.min_date, known.max_date, False
    args.tables = [args.file.split("/", 1)[0]]
    return execute("ingest", args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmm-platform", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def world_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--geos", type=int, default=24, help="number of geos (default 24)")
        sp.add_argument("--days", type=int, default=730, help="number of days (default 730)")
        sp.add_argument("--seed", type=int, default=7)
        sp.add_argument(
            "--first-day",
            dest="first_day",
            type=_date,
            default=None,
            help="first simulated day (default: the world ends yesterday)",
        )
        sp.add_argument("--format", choices=["parquet", "csv", "mixed"], default="mixed")
        sp.add_argument("--landing", type=Path, default=None, help="landing root (default MMM_LANDING_DIR)")

    def run_args(sp: argparse.ArgumentParser, ranged: bool = True) -> None:
        if ranged:
            sp.add_argument("--start", type=_date, default=None, help="first day of a backfill (its month is loaded)")
            sp.add_argument("--end", type=_date, default=None, help="last day of a backfill (its month is loaded)")
            sp.add_argument("--full", action="store_true", help="reload every partition, changed or not")
        sp.add_argument("--verbose", action="store_true", help="show dbt's log and every step's log here")

    sp = sub.add_parser("simulate", help="write the demo world and its ground truth into the landing zone")
    world_args(sp)
    sp.set_defaults(func=cmd_simulate)
    sp = sub.add_parser("ingest", help="load what changed in the landing zone into raw.<table>, with the checks")
    run_args(sp)
    sp.set_defaults(func=lambda a: execute("ingest", a))
    sp = sub.add_parser("run", help="ingest, build features, fit the models and write every output table")
    run_args(sp)
    sp.set_defaults(func=lambda a: execute("everything", a))
    sp = sub.add_parser("demo", help="simulate the demo world into the landing zone, then `run`")
    world_args(sp)
    run_args(sp, ranged=False)
    sp.set_defaults(func=cmd_demo)
    sp = sub.add_parser("retract", help="withdraw a loaded landing file: its rows leave raw (recorded)")
    sp.add_argument("file", help="the file as ingest.landing_files names it: <table>/<file name>")
    sp.add_argument("--reason", required=True, help="why (recorded in ingest.landing_files)")
    run_args(sp, ranged=False)
    sp.set_defaults(func=cmd_retract)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # one planned event per asset for a run over many partitions, not one per asset and partition
    # (docs/architecture.md: the cost of events); the trade-off: a failed run's partitions show as
    # missing rather than failed in the UI, while the run itself shows failed
    os.environ.setdefault(PLANNED_EVENTS_FLAG, "true")
    args = build_parser().parse_args(argv)
    try:
        get_settings()
        return args.func(args)
    except (SettingsError, WarehouseUnavailable) as exc:
        print(f"mmm-platform: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
