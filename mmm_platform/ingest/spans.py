"""What the landing zone holds that raw does not yet reflect, and which partitions that touches.

This is what the sensor requests and what `mmm-platform ingest` runs: the landing files whose
signature (size, modification time, content hash) differs from the one ingest.landing_files
recorded, plus the files that vanished, each with the span of partition dates it touches. Spans
come from file metadata wherever it has them (Parquet statistics; ingest.landing_files for the
version loaded before); only a new CSV file is read, and only its date column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from mmm_platform.contracts import Contract, Table
from mmm_platform.ingest.landing import LandingFile, scan_table
from mmm_platform.ingest.load import KnownFile
from mmm_platform.ingest.read import PATH_COLUMN, UnreadableFile, clamped, plan_file, reader_sql, typed_expr
from mmm_platform.warehouse import literal, quote

Span = tuple[dt.date, dt.date]


@dataclass(frozen=True)
class Change:
    table: str
    file: str
    #: new | changed | vanished | refused (a refused file fails every run until it is fixed, removed
    #: or retracted, so its check keeps naming it) | returned (a file marked missing is back) |
    #: retracted (raw still holds its rows)
    kind: str
    #: partition dates the change touches; None: unknown (unreadable file) or an undated table
    span: Span | None
    #: the file's signature now (None for a vanished file)
    signature: tuple | None = None


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _stat(statistics, which: str) -> object:
    """A row group's min or max; dates Python cannot hold (year 0 or 10000) clamp to the ends of its range."""
    try:
        return getattr(statistics, which)
    except (OverflowError, ValueError):
        return dt.date.min if which == "min" else dt.date.max


def _parquet_span(file: LandingFile, column: str) -> Span | None:
    """min/max of `column` from the footer's row-group statistics; None when any group lacks them."""
    meta = pq.read_metadata(file.path)
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if column not in names:
        return None
    i = names.index(column)
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(i).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo, hi = _as_date(_stat(stats, "min")), _as_date(_stat(stats, "max"))
        if lo is None or hi is None:
            return None
        lows.append(lo)
        highs.append(hi)
    return (min(lows), max(highs)) if lows else None


#: spans already read in this process, by (path, signature): the CLI asks twice (partition start, plan)
_SPANS: dict[tuple, Span | None] = {}


def _read_span(con: duckdb.DuckDBPyConnection, file: LandingFile, table: Table) -> Span | None:
    """A file's span from its partition column, read with the gate's typed expression."""
    plan = plan_file(con, file, table, [], [])
    expr = plan.typed.get(table.partition_column)
    if expr is None:
        return None
    lo, hi = con.execute(
        f"SELECT {clamped(f'min({expr})')}, {clamped(f'max({expr})')} FROM {reader_sql([file])}"
    ).fetchone()
    return (lo, hi) if lo is not None else None


def file_spans(con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table) -> dict[str, Span | None]:
    """First and last partition date of each file (None: it holds none or cannot be read). Parquet
    files answer from their footer statistics; CSV files are read together in one scan of the
    date column, file by file only when that scan fails."""
    out: dict[str, Span | None] = {}
    todo = []
    for f in files:
        cached = (f.path, f.signature)
        if cached in _SPANS:
            out[f.name] = _SPANS[cached]
        elif f.problem or table.partition_column is None:
            out[f.name] = None
        elif f.format == "parquet" and (span := _parquet_span_or_none(f, table.partition_column)) is not None:
            out[f.name] = span
        else:
            todo.append(f)
    csvs = [f for f in todo if f.format == "csv"]
    if len(csvs) > 1:
        out |= _csv_spans(con, csvs, table)
    for f in todo:
        if f.name not in out:
            try:
                out[f.name] = _read_span(con, f, table)
            except (duckdb.Error, UnreadableFile, OSError, ValueError):
                out[f.name] = None
    for f in files:
        _SPANS[(f.path, f.signature)] = out[f.name]
    return out


def _parquet_span_or_none(file: LandingFile, column: str) -> Span | None:
    try:
        return _parquet_span(file, column)
    except (OSError, ValueError):  # an unreadable footer: the gate will say why
        return None


def _csv_spans(con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table) -> dict[str, Span]:
    col = table.column(table.partition_column)
    paths = "[" + ", ".join(literal(str(f.path)) for f in files) + "]"
    expr = typed_expr(col, "VARCHAR")
    try:
        rows = con.execute(
            f"SELECT {PATH_COLUMN}, {clamped(f'min({expr})')}, {clamped(f'max({expr})')} FROM read_csv({paths}, "
            "all_varchar = true, header = true, "
            f"delim = ',', quote = '\"', escape = '\"', strict_mode = true, hive_partitioning = false, "
            f"union_by_name = true, filename = {literal(PATH_COLUMN)}) GROUP BY 1"
        ).fetchall()
    except duckdb.Error:
        return {}
    names = {str(f.path): f.name for f in files}
    return {names[path]: (lo, hi) for path, lo, hi in rows if lo is not None}


def _known_span(known: KnownFile | None) -> Span | None:
    return (known.min_date, known.max_date) if known and known.min_date and known.max_date else None


def _union(a: Span | None, b: Span | None) -> Span | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


def landing_changes(
    contract: Contract,
    root: Path,
    known: dict[str, dict[str, KnownFile]],
    tables: Iterable[str] | None = None,
) -> list[Change]:
    """Every new, changed or vanished landing file of `tables` (default: all), against `known`
    (ingest.landing_files by table and file). A changed file touches its old span and its new one."""
    changes: list[Change] = []
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for name in tables or contract.tables:
            table = contract[name]
            seen = known.get(name, {})
            present = set()
            fresh = []
            for f in scan_table(root, name):
                present.add(f.name)
                before = seen.get(f.name)
                if before is None or before.signature != f.signature:
                    fresh.append(f)
                elif before.status in ("refused", "missing"):
                    kind = "refused" if before.status == "refused" else "returned"
                    changes.append(Change(name, f.name, kind, _known_span(before), f.signature))
                elif before.status == "retracted" and before.pending:
                    changes.append(Change(name, f.name, "retracted", _known_span(before), f.signature))
            spans = file_spans(con, fresh, table)
            for f in fresh:
                before = seen.get(f.name)
                span = _union(spans[f.name], _known_span(before))
                changes.append(Change(name, f.name, "changed" if before else "new", span, f.signature))
            for file, before in seen.items():
                if file not in present and before.status not in ("missing", "retracted"):
                    changes.append(Change(name, file, "vanished", _known_span(before)))
                elif file not in present and before.status == "retracted" and before.pending:
                    # gone, and retracted: its rows must leave raw (a "vanished" change has no signature)
                    changes.append(Change(name, file, "vanished", _known_span(before)))
    return changes


def landing_span(changes: Iterable[Change]) -> Span | None:
    """The hull of the changes' spans."""
    span = None
    for c in changes:
        span = _union(span, c.span)
    return span


def read_known(con: duckdb.DuckDBPyConnection | None) -> dict[str, dict[str, KnownFile]]:
    """ingest.landing_files by table and file; empty for a warehouse that has never loaded."""
    if con is None:
        return {}
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ingest' AND table_name = 'landing_files'"
    ).fetchone()[0]
    if not exists:
        return {}
    cols = {r[0] for r in con.execute("DESCRIBE ingest.landing_files").fetchall()}
    digest = "content_hash" if "content_hash" in cols else "NULL"
    rows = con.execute(
        f"SELECT table_name, file, size, mtime, {digest}, status, n_rows, min_date, max_date FROM ingest.landing_files"
    ).fetchall()
    out: dict[str, dict[str, KnownFile]] = {}
    for t, f, *rest in rows:
        out.setdefault(t, {})[f] = KnownFile(*rest)
    for t, files in out.items():
        retracted = [f for f, k in files.items() if k.status == "retracted"]
        for f in _still_in_raw(con, t, retracted):
            files[f] = dataclasses.replace(files[f], pending=True)
    return out


def _still_in_raw(con: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> set[str]:
    """Which of `files` raw.<table> still holds rows of."""
    if not files:
        return set()
    names = ", ".join(literal(f) for f in files)
    try:
        rows = con.execute(f"SELECT DISTINCT _source_file FROM raw.{quote(table)} WHERE _source_file IN ({names})")
    except duckdb.CatalogException:
        return set()
    return {r[0] for r in rows.fetchall()}


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_range(span: Span) -> list[dt.date]:
    """First days of the months a span touches."""
    months, m = [], month_start(span[0])
    while m <= span[1]:
        months.append(m)
        m = (m + dt.timedelta(days=32)).replace(day=1)
    return months


def contiguous_ranges(days: list[dt.date], step: str = "day") -> list[Span]:
    """Sorted dates -> [(start, end)] runs of consecutive days (or months, `step="month"`)."""
    ranges: list[Span] = []
    for d in days:
        nxt = (ranges[-1][1] + dt.timedelta(days=32)).replace(day=1) if ranges and step == "month" else None
        if ranges and (d == nxt or (step == "day" and d - ranges[-1][1] == dt.timedelta(days=1))):
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges


@dataclass(frozen=True)
class RunPlan:
    """One run: the raw tables to load and the months they cover (None: undated tables only)."""

    tables: tuple[str, ...]
    months: Span | None
    files: int


def plan_runs(contract: Contract, changes: list[Change], first: dt.date, last: dt.date) -> list[RunPlan]:
    """The fewest runs that cover every change: one per contiguous range of touched months (clamped
    to the partitions [first, last]), each loading the tables with a change in it. A dated change
    of unknown span (an unreadable file) touches the newest month, where its refusal is reported;
    undated tables (geo, products, ...) ride in the first run, before the tables that need them."""
    touched: dict[dt.date, set[str]] = {}
    files: dict[dt.date, int] = {}
    undated: set[str] = set()
    for c in changes:
        if not contract[c.table].is_partitioned:
            undated.add(c.table)
            continue
        lo, hi = c.span or (last, last)
        lo, hi = min(max(lo, first), last), min(max(hi, first), last)
        for m in month_range((lo, hi)):
            touched.setdefault(m, set()).add(c.table)
        files[month_start(lo)] = files.get(month_start(lo), 0) + 1
    plans = [
        RunPlan(
            tuple(sorted({t for m, ts in touched.items() if start <= m <= end for t in ts})),
            (start, end),
            sum(n for m, n in files.items() if start <= m <= end),
        )
        for start, end in contiguous_ranges(sorted(touched), step="month")
    ]
    if undated:
        n = sum(1 for c in changes if c.table in undated)
        head = plans[0] if plans else RunPlan((), None, 0)
        plans[:1] = [RunPlan(tuple(sorted({*undated, *head.tables})), head.months, head.files + n)]
    return plans


def first_landing_date(
    contract: Contract, root: Path, known: dict[str, dict[str, KnownFile]] | None = None
) -> dt.date | None:
    """The earliest partition date the dated landing files hold, or None for an empty landing zone:
    from `known` (ingest.landing_files) for files unchanged since they were loaded, from the file
    itself (Parquet footer, CSV date column) for the others."""
    known = known or {}
    dated = [t.name for t in contract.tables.values() if t.is_partitioned]
    changes = landing_changes(contract, root, known, dated)
    firsts = [c.span[0] for c in changes if c.span]
    firsts += [k.min_date for t in dated for k in known.get(t, {}).values() if k.min_date and k.status != "retracted"]
    return min(firsts) if firsts else None
