"""Ingestion throughput: the platform's contract-checked load vs plain DuckDB on the same files.

    .venv/bin/python bench/ingest.py [--geos 200] [--days 730] [--format parquet] [--repeat 2]

Writes the demo world (default 200 geos x 2 years) into a temporary landing zone, then in fresh
child processes (so peak memory is each method's own) loads every table into a new warehouse:
- `platform`: `ingest_table` per table: every file validated against the contract (types, nulls,
  ranges, allowed values, unique keys, known geos, dates), lineage columns, one transaction;
- `plain duckdb`: `CREATE TABLE raw.<t> AS SELECT * FROM read_<format>('<t>/*')`, no checks.
Prints rows/s and peak RSS for each, and the ratio platform / plain (the figure to watch).
"""

from __future__ import annotations

import sys

# bench/platform.py shadows the standard library's `platform`: keep the bench folder off the path
sys.path = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def child_platform(landing: Path, warehouse: Path) -> dict:
    import duckdb

    from mmm_platform.contracts import load_contract
    from mmm_platform.ingest.load import ingest_table
    from mmm_platform.warehouse import Window

    contract = load_contract()
    start = dt.date(2020, 1, 1)
    window = Window(start, dt.date.today(), open_end=True)
    con = duckdb.connect(str(warehouse))
    t0 = time.perf_counter()
    rows = 0
    for name, table in sorted(contract.tables.items(), key=lambda kv: kv[0] != "geo"):
        result = ingest_table(
            con, contract, name, landing, window=window if table.is_partitioned else None,
            run_id="bench", partition_start=start,
        )  # fmt: skip
        if result.refused:
            raise SystemExit(f"bench world refused: {[r.reason for r in result.refused]}")
        rows += result.rows_written
    return {"rows": rows, "seconds": time.perf_counter() - t0}


def child_plain(landing: Path, warehouse: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(warehouse))
    con.execute("CREATE SCHEMA raw")
    t0 = time.perf_counter()
    rows = 0
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        parts = []
        for ext, reader in (("parquet", "read_parquet"), ("csv", "read_csv")):
            if any(folder.glob(f"*.{ext}")):
                parts.append(f"SELECT * FROM {reader}('{folder}/*.{ext}', union_by_name = true)")
        con.execute(f'CREATE TABLE raw."{folder.name}" AS {" UNION ALL BY NAME ".join(parts)}')
        rows += con.execute(f'SELECT count(*) FROM raw."{folder.name}"').fetchone()[0]
    return {"rows": rows, "seconds": time.perf_counter() - t0}


def child_world(landing: Path, geos: int, days: int, file_format: str) -> dict:
    from mmm_platform.simulate import WorldConfig, simulate, write_landing

    t0 = time.perf_counter()
    world = simulate(WorldConfig(n_geos=geos, n_days=days))
    files = write_landing(world, landing, file_format=file_format)
    return {
        "rows": sum(t.height for t in world.tables.values()),
        "files": len(files),
        "mib": sum(p.stat().st_size for p in files) / 2**20,
        "seconds": time.perf_counter() - t0,
    }


def measure(method: str, landing: Path, workdir: Path) -> dict:
    """Run one method in a child process; its peak RSS comes from the kernel (wait4)."""
    warehouse = workdir / f"{method}.duckdb"
    warehouse.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            method,
            "--landing",
            str(landing),
            "--warehouse",
            str(warehouse),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{method} failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["rows_per_s"] = result["rows"] / result["seconds"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--geos", type=int, default=200)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--format", choices=["parquet", "csv", "mixed"], default="parquet")
    ap.add_argument("--repeat", type=int, default=2, help="runs per method; the best is reported")
    ap.add_argument("--child", choices=["platform", "plain", "world"], help=argparse.SUPPRESS)
    ap.add_argument("--landing", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "world":
        print(json.dumps(child_world(a.landing, a.geos, a.days, a.format)))
        return
    if a.child:
        fn = child_platform if a.child == "platform" else child_plain
        print(json.dumps(fn(a.landing, a.warehouse)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        # the world is made in a child too, so this process stays small and each measured child
        # starts from a small parent (a child's peak RSS counts what it inherited at fork)
        out = subprocess.run(
            [sys.executable, __file__, "--child", "world", "--landing", str(workdir / "landing"),
             "--geos", str(a.geos), "--days", str(a.days), "--format", a.format],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        world = json.loads(out.strip().splitlines()[-1])
        n_rows = world["rows"]
        print(
            f"world: {a.geos} geos x {a.days} days, {n_rows:,} rows in {world['files']} {a.format} files "
            f"({world['mib']:.0f} MiB), simulated and written in {world['seconds']:.1f}s"
        )
        best: dict[str, dict] = {}
        for i in range(a.repeat):
            for method in ("plain", "platform") if i % 2 == 0 else ("platform", "plain"):
                r = measure(method, workdir / "landing", workdir)
                if r["rows"] != n_rows:
                    raise SystemExit(f"{method} loaded {r['rows']:,} rows, the world has {n_rows:,}")
                if method not in best or r["seconds"] < best[method]["seconds"]:
                    best[method] = r
        print(f"{'method':<14}{'rows':>12}{'seconds':>10}{'rows/s':>14}{'peak RSS MiB':>14}")
        for method, label in (("plain", "plain duckdb"), ("platform", "platform")):
            r = best[method]
            print(f"{label:<14}{r['rows']:>12,}{r['seconds']:>10.2f}{r['rows_per_s']:>14,.0f}{r['peak_rss_mb']:>14.0f}")
        ratio = best["platform"]["rows_per_s"] / best["plain"]["rows_per_s"]
        print(f"throughput ratio platform / plain duckdb: {ratio:.2f} (best of {a.repeat} runs each)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
