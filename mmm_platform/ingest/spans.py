"""Which partition dates landing files touch: what the sensor requests and the CLI loads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb

from mmm_platform.contracts import Contract, Table
from mmm_platform.ingest.landing import LandingFile, scan_table
from mmm_platform.ingest.load import UnreadableFile, reader_sql, source_columns, typed_expr


def _dates_sql(file: LandingFile, table: Table, con: duckdb.DuckDBPyConnection, agg: str) -> list:
    col = table.column(table.partition_column)
    source = source_columns(con, [file])
    if col.name not in source:
        raise UnreadableFile(f"no {col.name} column")
    expr = typed_expr(col, source[col.name])
    return con.execute(
        f"SELECT {agg} FROM (SELECT {expr} AS d FROM {reader_sql([file])}) WHERE d IS NOT NULL"
    ).fetchall()


def file_dates(file: LandingFile, table: Table) -> list[dt.date] | None:
    """Distinct partition dates in a file; None when the file cannot be read."""
    if file.problem:
        return None
    with duckdb.connect() as con:
        try:
            return sorted(r[0] for r in _dates_sql(file, table, con, "DISTINCT d"))
        except (duckdb.Error, UnreadableFile):
            return None


def touched_dates(table: Table, root: Path, seen: dict[str, list]) -> Iterator[tuple[str, list, list[dt.date] | None]]:
    """(file, signature, dates) for each file whose [size, mtime] is not the one in `seen`."""
    for f in scan_table(root, table.name):
        signature = [f.size, f.mtime.isoformat()]
        if seen.get(f.name) != signature:
            yield f.name, signature, file_dates(f, table)


def landing_span(contract: Contract, root: Path) -> tuple[dt.date, dt.date] | None:
    """First and last partition date over every readable dated landing file."""
    lo: dt.date | None = None
    hi: dt.date | None = None
    with duckdb.connect() as con:
        for table in contract.tables.values():
            if not table.is_partitioned:
                continue
            for f in scan_table(root, table.name):
                if f.problem:
                    continue
                try:
                    ((a, b),) = _dates_sql(f, table, con, "min(d), max(d)")
                except (duckdb.Error, UnreadableFile):
                    continue
                if a is not None:
                    lo, hi = min(lo or a, a), max(hi or b, b)
    return (lo, hi) if lo is not None and hi is not None else None


def contiguous_ranges(dates: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted dates -> [(start, end)] runs of consecutive days."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for d in dates:
        if ranges and d - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges
