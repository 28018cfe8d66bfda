"""Helpers of the hostile-input corpus (tests/test_hostile_inputs.py): a landing zone with a known
baseline, writers for every kind of bad file, and the one invariant every case is judged by.

The invariant: raw.<table> holds exactly the rows of the files that should be in it, each row
once and unchanged (compared both ways with EXCEPT ALL on every contract column and the file it
came from), and every accepted file has as many rows in raw as it holds, unless a newer file
superseded some of its keys by design.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mmm_platform.contracts import Contract, Table, load_contract
from mmm_platform.ingest.load import LoadResult, ingest_table
from mmm_platform.quality.checks import CheckContext, CheckOutcome, landing_files_accepted
from mmm_platform.warehouse import Window, connect, literal, quote

from conftest import PARTITION_START, TODAY, geo_frame, sales_frame, write

ALL = Window(PARTITION_START, TODAY, open_end=True)
#: days no baseline file holds: a hostile file with these rows never supersedes the baseline
NEW = [dt.date(2024, 3, 5), dt.date(2024, 3, 6)]

#: rows lost and rows unexpected (duplicated, altered or not meant to be there), over every case
TALLY = {"comparisons": 0, "lost": 0, "unexpected": 0}


def new_sales(days: list[dt.date] = NEW) -> pl.DataFrame:
    """4 valid sales rows (2 geos x 2 days) on days the baseline does not hold."""
    return sales_frame(days)


def with_cell(df: pl.DataFrame, column: str, value: object, row: int = 0, dtype: pl.DataType | None = None):
    """`df` with one cell replaced (the column is created, null elsewhere, if it is new)."""
    base = pl.col(column) if column in df.columns else pl.lit(None, dtype=dtype or pl.Float64)
    lit = pl.lit(value, dtype=dtype or (df.schema[column] if column in df.columns else None))
    return df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(lit).otherwise(base).alias(column))


def as_text(df: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return df.with_columns(pl.col(c).cast(pl.String) for c in columns)


def csv_text(df: pl.DataFrame) -> str:
    return df.write_csv()


def put_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def put_csv(df: pl.DataFrame, edit: Callable[[str], str] = lambda s: s, encoding: str = "utf-8"):
    return lambda p: p.write_bytes(edit(csv_text(df)).encode(encoding))


def put_parquet(table: pa.Table | pl.DataFrame, **kwargs) -> Callable[[Path], None]:
    t = table.to_arrow() if isinstance(table, pl.DataFrame) else table
    return lambda p: pq.write_table(t, p, **kwargs)


def arrow(df: pl.DataFrame, **columns: pa.Array | Callable[[pa.ChunkedArray], pa.Array]) -> pa.Table:
    """`df` as Arrow with columns replaced (or appended) by the given arrays."""
    t = df.to_arrow()
    for name, arr in columns.items():
        i = t.schema.get_field_index(name)
        if callable(arr):
            arr = arr(t.column(i))
        t = t.set_column(i, name, arr) if i >= 0 else t.append_column(name, arr)
    return t


def timestamps(days: list[dt.date], unit: str = "us", tz: str | None = None, at: dt.time = dt.time()) -> pa.Array:
    """Timestamps on `days` at `at` in UTC (stored with time zone `tz`, or naive)."""
    values = [dt.datetime.combine(d, at, tzinfo=dt.UTC if tz else None) for d in days]
    return pa.array(values, pa.timestamp(unit, tz=tz))


def new_dates() -> list[dt.date]:
    return new_sales()["date"].to_list()


class Zone:
    """A landing zone and its warehouse, with what raw must hold (`expected`, by table and file).

    `baseline`: geo/geo.parquet and sales/base.csv (8 rows, ISO text dates), loaded in a first run."""

    def __init__(self, base: Path, root: Path | None = None, baseline: bool = True, con=None):
        self.base = base
        self.root = root or base / "landing"
        self.db = base / "warehouse.duckdb"
        self.contract: Contract = load_contract()
        self.expected: dict[str, dict[str, pl.DataFrame]] = {}
        self.last: LoadResult | None = None
        if baseline and root is None and con is None:
            # a copy of the loaded baseline (files with their modification times, and the warehouse):
            # the same state as loading it, in a fraction of the time
            template = _template()
            shutil.copytree(template / "landing", self.root, copy_function=shutil.copy2)
            shutil.copyfile(template / "warehouse.duckdb", self.db)
            self.expect("geo/geo.parquet", geo_frame())
            self.expect("sales/base.csv", sales_frame())
            baseline = False
        self.con = con if con is not None else connect(self.db)
        self.root.mkdir(parents=True, exist_ok=True)
        if baseline:
            self.put("geo/geo.parquet", geo_frame())
            self.put("sales/base.csv", sales_frame())
            self.ingest("geo")
            self.ingest("sales")

    # -- the landing zone

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def put(self, rel: str, df: pl.DataFrame, expect: bool = True) -> Path:
        """Write a good file; its rows are expected in raw."""
        p = write(df, self.path(rel))
        if expect:
            self.expect(rel, df)
        return p

    def expect(self, rel: str, df: pl.DataFrame | None) -> None:
        table = rel.split("/", 1)[0]
        if df is None:
            self.expected.get(table, {}).pop(rel, None)
        else:
            self.expected.setdefault(table, {})[rel] = df

    def touch_later(self, rel: str, seconds: float = 60) -> None:
        """Give a file a later modification time than every other (corrections win by mtime)."""
        newest = max(p.stat().st_mtime for p in self.root.rglob("*") if p.is_file())
        os.utime(self.path(rel), (newest + seconds, newest + seconds))

    # -- the warehouse

    def table(self, name: str) -> Table:
        return self.contract[name]

    def ingest(self, table: str = "sales", window: Window | None = ALL, run_id: str = "r", con=None) -> LoadResult:
        if not self.table(table).is_partitioned:
            window = None
        self.last = ingest_table(
            con if con is not None else self.con,
            self.contract,
            table,
            self.root,
            window=window,
            run_id=run_id,
            partition_start=PARTITION_START,
            today=TODAY,
        )
        return self.last

    def q(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def check(self, table: str = "sales", window: Window | None = ALL) -> CheckOutcome:
        t = self.table(table)
        ctx = CheckContext(self.con, t, window if t.is_partitioned else None, TODAY, PARTITION_START, 3, self.root)
        return landing_files_accepted(ctx)

    def status(self, rel: str) -> tuple | None:
        rows = self.q("SELECT status, reason, n_rows FROM ingest.landing_files WHERE file = ?", [rel])
        return rows[0] if rows else None

    def quarantine(self, rel: str) -> list[tuple]:
        return self.q(
            "SELECT row_number, reason, record FROM ingest.quarantine WHERE file = ? ORDER BY row_number NULLS FIRST",
            [rel],
        )

    def raw_diff(self, table: str) -> tuple[int, int]:
        """(rows expected but not in raw, rows in raw not expected), multiset-wise."""
        return raw_diff(self.con, self.table(table), self.expected.get(table, {}))

    def per_file_mismatches(self, table: str, superseded: set[str] = frozenset()) -> list[tuple]:
        """Accepted files whose row count differs from what raw holds from them."""
        held = dict(self.q(f"SELECT _source_file, count(*) FROM raw.{quote(table)} GROUP BY 1"))
        accepted = self.q(
            "SELECT file, n_rows FROM ingest.landing_files WHERE table_name = ? AND status = 'accepted'", [table]
        )
        return [(f, n, held.get(f, 0)) for f, n in accepted if f not in superseded and held.get(f, 0) != n]

    def verify(
        self,
        table: str = "sales",
        refused: dict[str, list[str]] | None = None,
        quarantined: dict[str, tuple[int, str]] | None = None,
        superseded: set[str] = frozenset(),
        rerun: bool = True,
    ) -> None:
        """The case's verdicts, reasons, quarantine and the raw invariant; then a re-run changes nothing."""
        refused = refused or {}
        result = self.last
        assert result is not None and result.skipped is None, result and result.skipped
        got = {f.file.name: f.reason or "" for f in result.refused}
        assert set(got) == set(refused), f"refused {got}, expected {sorted(refused)}"
        outcome = self.check(table)
        for name, words in refused.items():
            for w in words:
                assert w.lower() in got[name].lower(), f"{name}: reason {got[name]!r} lacks {w!r}"
            assert self.status(name)[0] == "refused"
            assert any(name in d for d in outcome.details), f"the blocking check does not name {name}: {outcome}"
            rows, word = (quarantined or {}).get(name, (1, words[0] if words else ""))
            q = self.quarantine(name)
            assert len(q) == rows, f"{name}: {len(q)} quarantine rows, expected {rows}: {q[:3]}"
            assert all(r[1] for r in q), f"{name}: a quarantine row without a reason"
            assert any(word.lower() in r[1].lower() for r in q), f"{name}: no quarantine reason names {word!r}: {q[:2]}"
        if not refused:
            assert outcome.passed, outcome.details
        self.assert_raw(table, superseded)
        if rerun:
            before = {n: len(self.quarantine(n)) for n in refused}
            again = self.ingest(table, run_id="rerun")
            assert {f.file.name for f in again.refused} == set(refused)
            assert {n: len(self.quarantine(n)) for n in refused} == before
            self.assert_raw(table, superseded)

    def assert_raw(self, table: str = "sales", superseded: set[str] = frozenset()) -> None:
        lost, unexpected = self.raw_diff(table)
        TALLY["comparisons"] += 1
        TALLY["lost"] += lost
        TALLY["unexpected"] += unexpected
        assert (lost, unexpected) == (0, 0), f"raw.{table}: {lost} row(s) lost, {unexpected} unexpected"
        assert self.per_file_mismatches(table, superseded) == []


_TEMPLATE: list[Path] = []


def _template() -> Path:
    """A landing zone with the baseline and its warehouse, loaded once per test session."""
    if not _TEMPLATE:
        base = Path(tempfile.mkdtemp(prefix="hostile-baseline-"))
        atexit.register(shutil.rmtree, base, True)
        z = Zone(base, root=base / "landing")
        z.con.close()
        _TEMPLATE.append(base)
    return _TEMPLATE[0]


def raw_diff(con: duckdb.DuckDBPyConnection, table: Table, expected: dict[str, pl.DataFrame]) -> tuple[int, int]:
    cols = table.column_names
    raw = f"SELECT {', '.join(quote(c) for c in cols)}, _source_file FROM raw.{quote(table.name)}"
    parts, views = [], []
    for i, (name, df) in enumerate(expected.items()):
        view = f"_expected_{i}"
        con.register(view, df.to_arrow())
        views.append(view)
        exprs = [
            f"CAST({quote(c.name)} AS {c.duckdb_type})" if c.name in df.columns else f"CAST(NULL AS {c.duckdb_type})"
            for c in table.columns
        ]
        parts.append(f"SELECT {', '.join(exprs)}, {literal(name)} FROM {view}")
    if not parts:
        parts = [f"SELECT {', '.join(f'CAST(NULL AS {c.duckdb_type})' for c in table.columns)}, NULL WHERE FALSE"]
    exp = " UNION ALL ".join(parts)
    try:
        lost = con.execute(f"SELECT count(*) FROM (({exp}) EXCEPT ALL ({raw}))").fetchone()[0]
        unexpected = con.execute(f"SELECT count(*) FROM (({raw}) EXCEPT ALL ({exp}))").fetchone()[0]
    finally:
        for v in views:
            con.unregister(v)
    return int(lost), int(unexpected)


@dataclass(frozen=True)
class Hostile:
    """One hostile file dropped next to the baseline: accepted with exactly `good`'s rows, or
    refused with `refuse` in its reason and `quarantined` (rows, a word of their reasons)."""

    klass: str
    name: str
    file: str  # <table>/<file name>
    make: Callable[[Path], object]
    good: pl.DataFrame | None = None
    refuse: tuple[str, ...] = ()
    quarantined: tuple[int, str] | None = None
    #: an extra check on the zone after the run
    then: Callable[[Zone], None] | None = None
    #: the file is skipped (an upload in progress): no verdict at all
    skipped: bool = False

    @property
    def table(self) -> str:
        return self.file.split("/", 1)[0]

    @property
    def id(self) -> str:
        return f"{self.klass}: {self.name}"


@dataclass
class Corpus:
    cases: list[Hostile] = field(default_factory=list)

    def add(self, klass: str, name: str, file: str, make, **kw) -> None:
        self.cases.append(Hostile(klass, name, file, make, **kw))

    def by_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cases:
            out[c.klass] = out.get(c.klass, 0) + 1
        return out


def write_tally(path: str | None, extra: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(TALLY | extra, indent=2, sort_keys=True))
