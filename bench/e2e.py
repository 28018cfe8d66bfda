"""The whole chain through the README's first command, timed: `mmm-platform demo` on a fresh
working folder (landing zone, warehouse, Dagster instance and report of its own), from the
simulated world to the allocator plan and the HTML report, the MMM fit included, installation
excluded (run `make setup` first).

    .venv/bin/python bench/e2e.py [--geos 24] [--days 730] [--workdir DIR] [--keep]

Prints the wall time against the aim (issue 11: under 10 minutes on 2 cores), the peak RSS, the
slowest steps as the CLI reported them, the load average before and after (another process on
the machine inflates every figure) and what the run left: the report's size and the allocator's
rows.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

CLI = Path(sys.executable).with_name("mmm-platform")
AIM_S = 600.0
#: a step line of the CLI's progress output: "  [23] mmm/fit      192.4 s"
STEP = re.compile(r"^\s*\[\s*\d+\]\s+(?P<asset>\S+(?: \(\d+ assets\))?).*?(?P<seconds>\d+(?:\.\d+)?) s$")


def environment(workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MMM_LANDING_DIR": str(workdir / "landing"),
        "MMM_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "MMM_REPORT_DIR": str(workdir / "reports"),
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        "GX_ANALYTICS_ENABLED": "false",
    }


def run_demo(workdir: Path, geos: int, days: int) -> tuple[float, float, list[tuple[str, float]], int]:
    """(wall seconds, peak RSS in GiB, the steps the CLI timed, exit code), the CLI's lines echoed."""
    cmd = ["/usr/bin/time", "-f", "peak_rss_kib %M", str(CLI), "demo", "--geos", str(geos), "--days", str(days)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=environment(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    steps, rss_kib = [], 0
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("peak_rss_kib "):
            rss_kib = int(line.split()[1])
            continue
        print("  |", line, flush=True)
        if m := STEP.match(line):
            steps.append((m["asset"], float(m["seconds"])))
    rc = proc.wait()
    return time.perf_counter() - t0, rss_kib / 2**20, steps, rc


def outputs(workdir: Path) -> tuple[int, int]:
    """(report bytes, allocator rows) the run left."""
    report = workdir / "reports" / "report.html"
    with duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM allocator.recommendations").fetchone()[0]
    return (report.stat().st_size if report.is_file() else 0), int(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--geos", type=int, default=24)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--workdir", type=Path, help="a folder to run in (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mmm-e2e-"))
    if args.workdir and any(workdir.iterdir() if workdir.exists() else []):
        sys.exit(f"{workdir} is not empty: the bench needs a fresh folder")
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    print(f"mmm-platform demo --geos {args.geos} --days {args.days} in {workdir} ({os.cpu_count()} cores)")
    try:
        wall, rss, steps, rc = run_demo(workdir, args.geos, args.days)
        load_after = os.getloadavg()
        if rc != 0:
            sys.exit(f"mmm-platform demo exited {rc} after {wall:.1f} s")
        report_bytes, plan_rows = outputs(workdir)
    finally:
        if not (args.workdir or args.keep):
            shutil.rmtree(workdir, ignore_errors=True)
    verdict = "met" if wall <= AIM_S else "NOT met"
    print(f"\nwall time     {wall:7.1f} s   (aim: under {AIM_S:.0f} s: {verdict})")
    print(f"peak RSS      {rss:7.2f} GiB")
    print(f"load average  {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    print(f"report        {report_bytes / 1024:.0f} KiB; allocator.recommendations {plan_rows} rows")
    print("slowest steps:")
    for asset, seconds in sorted(steps, key=lambda s: -s[1])[:6]:
        print(f"  {asset:34s} {seconds:7.1f} s  ({seconds / wall:.0%})")


if __name__ == "__main__":
    main()
