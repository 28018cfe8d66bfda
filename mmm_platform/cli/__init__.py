"""`mmm-platform simulate | ingest | run | demo | retract`: the command line over the same Dagster
definitions the UI shows (it executes their jobs, recorded in DAGSTER_HOME; there is no second code
path).

Runs are incremental: the landing files whose signature differs from what ingest.landing_files
recorded (new, changed, vanished, or still refused) decide which tables and months run, in the
fewest runs (one per contiguous range of months). With nothing new, nothing runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

from mmm_platform.cli.runs import EXIT_OK, EXIT_USAGE, UsageError, execute
from mmm_platform.config import SettingsError, get_settings
from mmm_platform.warehouse import WarehouseUnavailable, connect

PLANNED_EVENTS_FLAG = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
#: how many events Dagster may hand its storage at once (mmm_platform/event_log.py stores a batch in
#: one transaction): a run's materializations over all its months, or its planned events, fit in one
EVENT_BATCH_SIZE = ("DAGSTER_EVENT_BATCH_SIZE", "1000")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from exc


def cmd_simulate(args: argparse.Namespace) -> int:
    from mmm_platform.simulate import WorldConfig, simulate, write_landing

    landing = args.landing or get_settings().landing_dir
    try:
        config = WorldConfig(
            seed=args.seed, n_geos=args.geos, n_days=args.days, start=args.first_day, bid_reaction=args.bid_reaction
        )
    except ValueError as exc:  # a world the design cannot hold: say which knob, no traceback
        raise UsageError(f"simulate: {exc}") from exc
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
        sp.add_argument(
            "--bid-reaction",
            dest="bid_reaction",
            type=float,
            default=1.0,
            help="how hard bids follow the day-ahead forecast, x the demo retailer's (default 1; 4: weather-triggered)",
        )
        sp.add_argument("--format", choices=["parquet", "csv", "mixed"], default="mixed")
        sp.add_argument("--landing", type=Path, default=None, help="landing root (default MMM_LANDING_DIR)")

    def run_args(sp: argparse.ArgumentParser, ranged: bool = True) -> None:
        if ranged:
            sp.add_argument("--start", type=_date, default=None, help="first day of a backfill (its month is loaded)")
            sp.add_argument("--end", type=_date, default=None, help="last day of a backfill (its month is loaded)")
            sp.add_argument("--full", action="store_true", help="reload every partition, changed or not")
            sp.add_argument(
                "--tables",
                type=lambda v: [t.strip() for t in v.split(",") if t.strip()],
                default=None,
                help="with --start/--end/--full: only these landing tables (comma-separated)",
            )
        sp.add_argument("--verbose", action="store_true", help="show dbt's log and every step's log here")

    def refit_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--no-refit",
            dest="no_refit",
            action="store_true",
            help="stop after the features and the causal suite: no MMM refit (minutes); a later `run` fits",
        )

    sp = sub.add_parser("simulate", help="write the demo world and its ground truth into the landing zone")
    world_args(sp)
    sp.set_defaults(func=cmd_simulate)
    sp = sub.add_parser("ingest", help="load what changed in the landing zone into raw.<table>, with the checks")
    run_args(sp)
    sp.set_defaults(func=lambda a: execute("ingest", a))
    sp = sub.add_parser("run", help="ingest, build features, fit the models and write every output table")
    run_args(sp)
    refit_arg(sp)
    sp.set_defaults(func=lambda a: execute("everything", a))
    sp = sub.add_parser("demo", help="simulate the demo world into the landing zone, then `run`")
    world_args(sp)
    run_args(sp, ranged=False)
    refit_arg(sp)
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
    os.environ.setdefault(*EVENT_BATCH_SIZE)
    args = build_parser().parse_args(argv)
    try:
        get_settings()
        return args.func(args)
    except (SettingsError, UsageError, WarehouseUnavailable) as exc:
        print(f"mmm-platform: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
