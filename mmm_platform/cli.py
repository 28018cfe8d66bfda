"""`mmm-platform simulate | ingest | run | demo`: the command line over the same Dagster
definitions the UI shows (it executes their jobs; there is no second code path)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from mmm_platform.config import PROJECT_ROOT, get_settings

log = logging.getLogger("mmm_platform.cli")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def _instance():  # -> dg.DagsterInstance
    """The instance of DAGSTER_HOME when set (runs then show in the UI), else an ephemeral one.
    A DAGSTER_HOME that does not exist yet is created with the project's dagster.yaml (pools)."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", config)
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
    log.info(
        "simulated %d geos x %d days: %d tables, %s rows, %d files in %s (%.1fs); ground truth in %s",
        config.n_geos, config.n_days, len(world.tables), f"{rows:,}", len(paths), landing,
        time.perf_counter() - t0, Path(landing) / "truth.json",
    )  # fmt: skip
    return EXIT_OK


def _window(args: argparse.Namespace) -> tuple[dt.date, dt.date] | None:
    """The partition range to load: as given, else every date the landing files hold, clamped
    to the partitions that exist."""
    from mmm_platform.contracts import load_contract
    from mmm_platform.defs.partitions import daily_partitions
    from mmm_platform.ingest.spans import landing_span

    settings = get_settings()
    span = landing_span(load_contract(), settings.landing_dir)
    start = getattr(args, "start", None) or (span[0] if span else None)
    end = getattr(args, "end", None) or (span[1] if span else None)
    if start is None or end is None:
        return None
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    start, end = max(start, settings.partition_start), min(end, last)
    return (start, end) if start <= end else None


def execute(job_name: str, args: argparse.Namespace) -> int:
    """Execute one job of the definitions over the landing zone's partition window; report every
    failed check and return the exit code."""

    from mmm_platform.definitions import defs
    from mmm_platform.defs.partitions import range_tags

    settings = get_settings()
    if not settings.landing_dir.is_dir():
        log.error(
            "landing zone %s does not exist (set MMM_LANDING_DIR, or run `mmm-platform demo`)",
            settings.landing_dir,
        )
        return EXIT_USAGE
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    definitions = defs()
    job = definitions.resolve_job_def(job_name)
    window = _window(args)
    selection = None
    tags = {}
    if window:
        tags = range_tags(*window)
        log.info(
            "%s: partitions %s .. %s, landing %s, warehouse %s",
            job_name,
            *window,
            settings.landing_dir,
            settings.warehouse,
        )
    else:
        graph = definitions.resolve_asset_graph()
        selection = [k for k in job.asset_layer.executable_asset_keys if graph.get(k).partitions_def is None]
        log.info("%s: no dated landing files; loading the undated tables only", job_name)
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=_instance(),
        tags=tags,
        asset_selection=selection,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    return report(result, time.perf_counter() - t0)


def report(result, seconds: float) -> int:  # result: dg.ExecuteInProcessResult
    """Print failed checks and steps; non-zero when a blocking check or a step failed."""
    import dagster as dg

    evaluations = result.get_asset_check_evaluations()
    blocking_failed = []
    for ev in evaluations:
        if ev.passed:
            continue
        key = f"{'/'.join(ev.asset_key.path)}:{ev.check_name}"
        problems = ev.metadata.get("problems")
        lines = problems.value if problems is not None else (ev.description or "")
        if ev.severity == dg.AssetCheckSeverity.ERROR:
            blocking_failed.append(key)
            log.error("FAILED check %s: %s\n%s", key, ev.description, lines)
        else:
            log.warning("warning %s: %s\n%s", key, ev.description, lines)
    # a blocking check that failed also fails its step; those are reported above already
    failed_steps = [
        e
        for e in result.all_events
        if e.is_step_failure and "DagsterAssetCheckFailedError" not in (e.step_failure_data.error.cls_name or "")
    ]
    for e in failed_steps:
        err = e.step_failure_data.error
        cause = err.cause or err
        log.error("FAILED step %s: %s", e.step_key, cause.message.strip())
    materialized = len({e.asset_key for e in result.get_asset_materialization_events()})
    passed = sum(1 for ev in evaluations if ev.passed)
    log.info(
        "%d asset(s) materialized, %d/%d checks passed, %d blocking failure(s), %d failed step(s) in %.1fs",
        materialized, passed, len(evaluations), len(blocking_failed), len(failed_steps), seconds,
    )  # fmt: skip
    return EXIT_CHECK_FAILED if blocking_failed or failed_steps else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    code = cmd_simulate(args)
    return code or execute("everything", args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmm-platform", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def world_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--geos", type=int, default=24, help="number of geos (default 24)")
        sp.add_argument("--days", type=int, default=730, help="number of days (default 730)")
        sp.add_argument("--seed", type=int, default=7)
        sp.add_argument(
            "--first-day",
            dest="first_day",
            type=_date,
            default=dt.date(2024, 1, 1),
            help="default 2024-01-01",
        )
        sp.add_argument("--format", choices=["parquet", "csv", "mixed"], default="mixed")
        sp.add_argument("--landing", type=Path, default=None, help="landing root (default MMM_LANDING_DIR)")

    def range_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--start", type=_date, default=None, help="first partition (default: earliest landing date)")
        sp.add_argument("--end", type=_date, default=None, help="last partition (default: latest landing date)")

    sp = sub.add_parser("simulate", help="write the demo world and its ground truth into the landing zone")
    world_args(sp)
    sp.set_defaults(func=cmd_simulate)
    sp = sub.add_parser("ingest", help="load the landing zone into raw.<table> and run the data-quality checks")
    range_args(sp)
    sp.set_defaults(func=lambda a: execute("ingest", a))
    sp = sub.add_parser("run", help="ingest, build features, fit the models and write every output table")
    range_args(sp)
    sp.set_defaults(func=lambda a: execute("everything", a))
    sp = sub.add_parser("demo", help="simulate the demo world into the landing zone, then `run`")
    world_args(sp)
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("mmm_platform").setLevel(logging.INFO)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
