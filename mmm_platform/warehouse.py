"""The warehouse as ingestion and the quality checks both see it: how to open it, raw.<table> per
landing table, the ingest bookkeeping, SQL quoting and the partition window; and the one writer
of the output tables (the MMM's, the causal suite's, the validation's).

It sits below `ingest` and `quality` so that neither imports the other. Every raw table exists from
the first run on, empty when nothing landed, so dbt sources and the models never meet a missing
table. Columns follow the contract; unknown extra columns found in landing files are added as
VARCHAR, and four lineage columns say where each row came from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from mmm_platform.contracts import Contract, Table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = {
    "_source_file": "VARCHAR",  # landing file, relative to the landing root
    "_source_mtime": "TIMESTAMP",  # that file's modification time (UTC)
    "_loaded_at": "TIMESTAMP",
    "_run_id": "VARCHAR",
}
#: the prefix of the names the loader uses for its own aliases and flags while it reads a file; a
#: landing column may not start with it (nor use a lineage name): it would meet the loader's SQL
RESERVED_PREFIX = "__"

#: file states in ingest.landing_files: the verdict of the last check (accepted, refused), or what
#: became of a file that was loaded before (missing: gone from the landing zone, its rows kept;
#: retracted: withdrawn with `mmm-platform retract`, its rows removed)
FILE_STATES = ("accepted", "refused", "missing", "retracted")

BOOKKEEPING_DDL = [
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS ingest",
    """CREATE TABLE IF NOT EXISTS ingest.landing_files (
        table_name VARCHAR NOT NULL,
        file VARCHAR NOT NULL,
        size BIGINT NOT NULL,
        mtime TIMESTAMP NOT NULL,
        status VARCHAR NOT NULL,          -- accepted | refused | missing | retracted
        n_rows BIGINT,
        min_date DATE,                    -- span of the partition column; null if unknown
        max_date DATE,
        reason VARCHAR,                   -- why a file was refused, went missing or was retracted
        violations JSON,                  -- [{rule, description, rows, sample_rows}]
        checked_at TIMESTAMP NOT NULL,
        run_id VARCHAR,
        PRIMARY KEY (table_name, file)
    )""",
    # content identity (added after the first release: older warehouses gain the column)
    "ALTER TABLE ingest.landing_files ADD COLUMN IF NOT EXISTS content_hash VARCHAR",
    """CREATE TABLE IF NOT EXISTS ingest.quarantine (
        table_name VARCHAR NOT NULL,
        file VARCHAR NOT NULL,
        file_mtime TIMESTAMP NOT NULL,
        file_size BIGINT NOT NULL,
        row_number BIGINT,                -- 1-based data row (CSV line = row_number + 1); null: whole file
        reason VARCHAR NOT NULL,
        record JSON,                      -- the row as it was in the file
        quarantined_at TIMESTAMP NOT NULL,
        run_id VARCHAR
    )""",
]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw_table(table: Table) -> str:
    return f"raw.{quote(table.name)}"


@dataclass(frozen=True)
class Window:
    """A closed range of partition dates; `open_end` also takes every later date (forecasts for
    days after today live in the newest partition)."""

    start: dt.date
    end: dt.date
    open_end: bool = False

    def predicate(self, expr: str) -> str:
        lo = f"{expr} >= DATE {literal(self.start.isoformat())}"
        if self.open_end:
            return lo
        return f"{lo} AND {expr} <= DATE {literal(self.end.isoformat())}"

    def overlaps(self, lo: dt.date | None, hi: dt.date | None) -> bool:
        if lo is None or hi is None:
            return True
        return hi >= self.start and (self.open_end or lo <= self.end)


class WarehouseUnavailable(RuntimeError):
    """The warehouse file cannot be opened, now or ever: the message says why and what to do."""


#: DuckDB's message when another process holds the file: "Conflicting lock is held in <exe> (PID n)"
_LOCK = re.compile(r"Conflicting lock is held in (?P<holder>.+?) \(PID (?P<pid>\d+)\)")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_writable(path: Path) -> None:
    """Fail now, with the reason, when the warehouse at `path` could never be opened for writing:
    a folder, not a DuckDB file, or a place where nothing can be written (a read-only file system,
    no permission). It creates nothing (a probe file in the folder is removed at once) and does not
    wait for a lock another process holds: `connect` does that."""
    path = Path(path)
    if path.is_dir():
        raise WarehouseUnavailable(f"warehouse {path} is a folder, not a DuckDB file (check MMM_WAREHOUSE)")
    if path.exists():
        if _read_only_fs(path) or not os.access(path, os.W_OK):
            raise WarehouseUnavailable(f"cannot write the warehouse {path}: read-only file system or no permission")
        try:
            duckdb.connect(str(path), read_only=True).close()
        except duckdb.Error as exc:
            if _LOCK.search(str(exc)) is None:
                raise WarehouseUnavailable(f"cannot open the warehouse {path}: {_first_line(str(exc))}") from exc
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".mmm-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise WarehouseUnavailable(
            f"cannot create the warehouse {path}: nothing can be written in {folder} ({exc.strerror})"
        ) from exc


def connect(path: Path, *, read_only: bool = False, lock_timeout_s: float = 600.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. A lock held by another process is waited for (up to `lock_timeout_s`,
    saying who holds it); anything else (not a DuckDB file, a folder, a read-only file system, no
    permission) can never succeed by waiting and fails at once with the reason."""
    path = Path(path)
    if path.is_dir():
        raise WarehouseUnavailable(f"warehouse {path} is a folder, not a DuckDB file (check MMM_WAREHOUSE)")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseUnavailable(
                f"cannot create the warehouse {path}: cannot create its folder {path.parent} ({exc.strerror})"
            ) from exc
    deadline = time.monotonic() + lock_timeout_s
    delay, announced = 0.2, False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            # dates never depend on the host's time zone: a UTC-midnight timestamp is that UTC day
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.Error as exc:
            message = str(exc)
            held = _LOCK.search(message)
            if held is None:
                raise WarehouseUnavailable(f"cannot open the warehouse {path}: {_first_line(message)}") from exc
            if time.monotonic() + delay > deadline:
                raise WarehouseUnavailable(
                    f"the warehouse {path} is still locked by {held['holder']} (PID {held['pid']}) after "
                    f"{lock_timeout_s:.0f} s (MMM_LOCK_TIMEOUT); stop that process or wait for it to finish"
                ) from exc
            if not announced:
                log.warning(
                    "warehouse %s is locked by %s (PID %s); waiting up to %.0f s",
                    path, held["holder"], held["pid"], lock_timeout_s,
                )  # fmt: skip
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def ensure_warehouse(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    for ddl in BOOKKEEPING_DDL:
        con.execute(ddl)
    for table in contract.tables.values():
        cols = [f"{quote(c.name)} {c.duckdb_type}" for c in table.columns]
        cols += [f"{quote(n)} {t}" for n, t in LINEAGE_COLUMNS.items()]
        con.execute(f"CREATE TABLE IF NOT EXISTS {raw_table(table)} ({', '.join(cols)})")


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    """The table's column names in order; [] when it does not exist. (DESCRIBE: about ten times
    faster than information_schema.columns, which the loader asks several times per table.)"""
    try:
        rows = con.execute(f"DESCRIBE {quote(schema)}.{quote(name)}").fetchall()
    except duckdb.CatalogException:
        return []
    return [r[0] for r in rows]


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back on any error (a crash leaves
    nothing half written)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def write_table(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame, *, key: dict[str, object]) -> int:
    """Replace the rows of `table` ("schema.name") matching `key` (column -> value: the refit's
    as_of, the run_id) with the data frame `df`, in one transaction, so that results of many refits
    or runs live side by side. A column the table lacks is added (older rows keep NULL): nothing is
    dropped when an output gains a column."""
    schema, name = table.split(".")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.register("_output_rows", df)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{name} AS SELECT * FROM _output_rows LIMIT 0")
        have = set(table_columns(con, schema, name))
        types = {r[0]: r[1] for r in con.execute("DESCRIBE SELECT * FROM _output_rows").fetchall()}
        with transaction(con):
            for col in df.columns:
                if col not in have:
                    con.execute(f"ALTER TABLE {schema}.{name} ADD COLUMN {quote(col)} {types[col]}")
            where = " AND ".join(f"{quote(k)} = ?" for k in key)
            con.execute(f"DELETE FROM {schema}.{name} WHERE {where}", list(key.values()))
            con.execute(f"INSERT INTO {schema}.{name} BY NAME SELECT * FROM _output_rows")
    finally:
        con.unregister("_output_rows")
    return len(df)
