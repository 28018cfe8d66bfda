"""A generated corpus of hostile landing input, as an upload pipeline delivers it: for each case the
exit code or verdict, the message (file and rule), the quarantine rows, and the invariant that no
good row is lost, duplicated or altered (tests/hostile.py).

Most cases drop one file next to a loaded baseline and call the ingestion core (`ingest_table`);
the stateful ones (vanished folders, retraction, edits, files changed mid-run) are scenarios; the
command line (`main([...])`, in process) where the case is about exit codes and runs; subprocesses
only for the host time zone, concurrent writers and kill -9.

HOSTILE_TALLY=<file> writes the totals (comparisons, rows lost, rows unexpected) there.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import datetime as dt
import decimal
import gzip
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import (
    ALL,
    NEW,
    Corpus,
    Zone,
    arrow,
    as_text,
    csv_text,
    new_dates,
    new_sales,
    put_bytes,
    put_csv,
    put_parquet,
    timestamps,
    with_cell,
    write_tally,
)

from mmm_platform.ingest.landing import scan_zone
from mmm_platform.ingest.load import retract_file
from mmm_platform.ingest.spans import landing_changes, read_known
from mmm_platform.quality.checks import CheckContext, contract, landing_zone_layout, quality_warnings
from mmm_platform.rules import contract_rules
from mmm_platform.warehouse import WarehouseUnavailable, Window, connect

from conftest import DAYS, PARTITION_START, TODAY, geo_frame, sales_frame, weather_frame, write

REPO = Path(__file__).resolve().parent.parent
C = Corpus()


def refused_rows(rule: str) -> dict:
    """A refused 4-row file: all 4 rows quarantined, the offending ones with `rule` as reason."""
    return {"refuse": (rule,), "quarantined": (4, rule)}


def unreadable(*words: str) -> dict:
    """A file refused as a whole: one quarantine row for the file."""
    return {"refuse": words, "quarantined": (1, words[0])}


# ---------------------------------------------------------------- non-finite values (issue class)
for fmt in ("csv", "parquet"):
    for label, value in (("NaN", math.nan), ("+inf", math.inf), ("-inf", -math.inf)):
        df = with_cell(new_sales(), "revenue", value)
        make = put_csv(df) if fmt == "csv" else put_parquet(df)
        C.add("non-finite", f"{label} revenue in {fmt}", f"sales/x.{fmt}", make, **refused_rows("finite:revenue"))
for text in ("NaN", "nan", "Infinity", "-Infinity", "inf", "1e400"):
    df = with_cell(as_text(new_sales(), "contribution_margin"), "contribution_margin", text)
    C.add(
        "non-finite",
        f"{text!r} in an unbounded csv column",
        "sales/x.csv",
        put_csv(df),
        **refused_rows("finite:contribution_margin"),
    )
for label, value in (("NaN", math.nan), ("+inf", math.inf)):
    df = with_cell(new_sales().with_columns(pl.lit(5.0).alias("pos_revenue")), "pos_revenue", value)
    C.add(
        "non-finite",
        f"{label} in an optional parquet column",
        "sales/x.parquet",
        put_parquet(df),
        **refused_rows("finite:pos_revenue"),
    )
C.add(
    "non-finite",
    "NaN latitude in the geo dimension",
    "geo/geo_more.parquet",
    put_parquet(with_cell(geo_frame().with_columns(pl.lit("g09").alias("geo_id")).head(1), "latitude", math.nan)),
    refuse=("finite:latitude",),
    quarantined=(1, "finite:latitude"),
)

# ---------------------------------------------------------------- type drift across runs (issue class)
DRIFT_GOOD = {
    "parquet DATE": arrow(new_sales()),
    "parquet date64": arrow(new_sales(), date=lambda c: c.cast(pa.date64())),
    "parquet TIMESTAMP s": arrow(new_sales(), date=timestamps(new_dates(), "s")),
    "parquet TIMESTAMP ms": arrow(new_sales(), date=timestamps(new_dates(), "ms")),
    "parquet TIMESTAMP us": arrow(new_sales(), date=timestamps(new_dates(), "us")),
    "parquet TIMESTAMP ns": arrow(new_sales(), date=timestamps(new_dates(), "ns")),
    "parquet TIMESTAMPTZ UTC midnight": arrow(new_sales(), date=timestamps(new_dates(), tz="UTC")),
    "parquet TIMESTAMPTZ New York holding UTC midnight": arrow(
        new_sales(), date=timestamps(new_dates(), tz="America/New_York")
    ),
    "parquet date as text": arrow(new_sales(), date=lambda c: c.cast(pa.string())),
    "parquet orders as double": arrow(new_sales(), orders=lambda c: c.cast(pa.float64())),
    "parquet orders as int32": arrow(new_sales(), orders=lambda c: c.cast(pa.int32())),
    "parquet orders as uint8": arrow(new_sales(), orders=lambda c: c.cast(pa.uint8())),
    "parquet orders as text": arrow(new_sales(), orders=lambda c: c.cast(pa.string())),
    "parquet revenue as int64": arrow(new_sales(), revenue=lambda c: c.cast(pa.int64())),
}
for name, table in DRIFT_GOOD.items():
    C.add("type drift", name, "sales/x.parquet", put_parquet(table), good=new_sales())
C.add(
    "type drift",
    "parquet int96 timestamps",
    "sales/x.parquet",
    put_parquet(arrow(new_sales(), date=timestamps(new_dates(), "ns")), use_deprecated_int96_timestamps=True),
    good=new_sales(),
)
C.add(
    "type drift",
    "csv integers written as 50.0",
    "sales/x.csv",
    put_csv(new_sales().with_columns(pl.col("orders").cast(pl.Float64))),
    good=new_sales(),
)
ny_midnight = pa.array(
    [dt.datetime.combine(d, dt.time(), tzinfo=ZoneInfo("America/New_York")) for d in new_dates()],
    pa.timestamp("us", tz="America/New_York"),
)
C.add(
    "type drift",
    "TIMESTAMPTZ at New York midnight (05:00 UTC)",
    "sales/x.parquet",
    put_parquet(arrow(new_sales(), date=ny_midnight)),
    **refused_rows("type:date"),
)
C.add(
    "type drift",
    "TIMESTAMP one second after midnight",
    "sales/x.parquet",
    put_parquet(arrow(new_sales(), date=timestamps(new_dates(), at=dt.time(0, 0, 1)))),
    **refused_rows("type:date"),
)
C.add(
    "type drift",
    "date as plain int32 (no DATE type)",
    "sales/x.parquet",
    put_parquet(arrow(new_sales(), date=pa.array([19787, 19788] * 2, pa.int32()))),
    **refused_rows("type:date"),
)


# ---------------------------------------------------------------- Parquet physical types (own)
def decimals(values, precision: int, scale: int) -> pa.Array:
    return pa.array([decimal.Decimal(str(v)) for v in values], pa.decimal128(precision, scale))


PQ_GOOD = {
    "decimal(12,2) revenue": (arrow(new_sales(), revenue=lambda c: decimals(c.to_pylist(), 12, 2)), new_sales()),
    "decimal(10,0) orders": (arrow(new_sales(), orders=lambda c: decimals(c.to_pylist(), 10, 0)), new_sales()),
    "float32 revenue": (
        arrow(new_sales(), revenue=lambda c: c.cast(pa.float32())),
        new_sales().with_columns(pl.col("revenue").cast(pl.Float32).cast(pl.Float64)),
    ),
    "uint64 orders within int64": (arrow(new_sales(), orders=lambda c: c.cast(pa.uint64())), new_sales()),
    "dictionary-encoded strings": (arrow(new_sales(), category_l1=lambda c: c.dictionary_encode()), new_sales()),
    "binary geo_id holding UTF-8": (arrow(new_sales(), geo_id=lambda c: c.cast(pa.binary())), new_sales()),
    "null-typed optional column": (arrow(new_sales(), pos_revenue=pa.nulls(4)), new_sales()),
    "struct in an extra column": (arrow(new_sales(), meta=pa.array([{"a": 1}] * 4)), new_sales()),
    "many row groups": (arrow(new_sales([*NEW, dt.date(2024, 3, 7)])), new_sales([*NEW, dt.date(2024, 3, 7)])),
}
for name, (table, good) in PQ_GOOD.items():
    C.add("parquet types", name, "sales/x.parquet", put_parquet(table, row_group_size=2), good=good)
PQ_BAD = {
    "decimal(10,2) orders with cents": (
        arrow(new_sales(), orders=decimals([50.5, 51, 50, 51], 10, 2)),
        refused_rows("type:orders"),
    ),
    "uint64 beyond int64": (
        arrow(new_sales(), orders=pa.array([2**63 + 1, 1, 2, 3], pa.uint64())),
        refused_rows("type:orders"),
    ),
    "boolean orders": (arrow(new_sales(), orders=pa.array([True, False] * 2)), refused_rows("type:orders")),
    "binary that is not UTF-8": (
        arrow(new_sales(), category_l1=pa.array([b"\xff\xfe"] * 4, pa.binary())),
        unreadable("unreadable parquet", "string encoding"),
    ),
    "struct in a contract column": (
        arrow(new_sales(), revenue=pa.array([{"a": 1.0}] * 4)),
        refused_rows("type:revenue"),
    ),
    "list in a contract column": (
        arrow(new_sales(), category_l1=pa.array([["all"]] * 4)),
        refused_rows("type:category_l1"),
    ),
    "null-typed required column": (arrow(new_sales(), cogs=pa.nulls(4)), refused_rows("not_null:cogs")),
    "0 rows, with a schema": (arrow(new_sales()).slice(0, 0), unreadable("empty file")),
    "duplicate column names": (
        pa.Table.from_arrays([*arrow(new_sales()).columns, pa.array([1.0] * 4)], [*new_sales().columns, "revenue"]),
        unreadable("'revenue' appears twice"),
    ),
    "a contract column in another case": (
        arrow(new_sales()).rename_columns([c if c != "revenue" else "Revenue" for c in new_sales().columns]),
        unreadable("'Revenue' must be named 'revenue'"),
    ),
    "a bad row in the third row group": (
        arrow(with_cell(new_sales([*NEW, dt.date(2024, 3, 7)]), "revenue", -1.0, row=4)),
        {"refuse": ("range:revenue", "(rows 5)"), "quarantined": (6, "range:revenue")},
    ),
}
for name, (table, outcome) in PQ_BAD.items():
    C.add("parquet types", name, "sales/x.parquet", put_parquet(table, row_group_size=2), **outcome)


# ---------------------------------------------------------------- encodings and CSV dialects (own)
def crlf(s: str) -> str:
    return s.replace("\n", "\r\n")


LAST_IS_TEXT = new_sales().select([c for c in new_sales().columns if c != "category_l1"] + ["category_l1"])
TEXT = csv_text(new_sales())
ENCODINGS = {
    "UTF-8 with BOM": (put_bytes(codecs.BOM_UTF8 + TEXT.encode()), {"good": new_sales()}),
    "UTF-16 LE with BOM": (put_bytes(TEXT.encode("utf-16")), unreadable("UTF-16")),
    "UTF-16 BE with BOM": (put_bytes(codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")), unreadable("UTF-16")),
    "UTF-16 without BOM": (put_bytes(TEXT.encode("utf-16-le")), unreadable("UTF-16")),
    "Latin-1 byte in a data row": (
        put_bytes(TEXT.replace("all", "caf\xe9", 1).encode("latin-1")),
        unreadable("not utf-8", "line: 2"),
    ),
    "Latin-1 byte in the header": (
        put_bytes(TEXT.replace("orders", "\xf6rders").encode("latin-1")),
        unreadable("UTF-8"),
    ),
    "cp1252 smart quotes": (put_bytes(TEXT.replace("all", "\u201call\u201d", 1).encode("cp1252")), unreadable("utf-8")),
    "gzip bytes named .csv": (put_bytes(gzip.compress(TEXT.encode())), unreadable("gzip")),
    "bzip2 bytes named .csv": (put_bytes(bz2.compress(TEXT.encode())), unreadable("bzip2")),
    "zip archive named .csv": (
        lambda p: zipfile.ZipFile(p, "w").writestr("sales.csv", TEXT),
        unreadable("zip"),
    ),
    "Parquet bytes named .csv": (
        lambda p: pq.write_table(new_sales().to_arrow(), p),
        unreadable("Parquet"),
    ),
    "CRLF line endings": (put_csv(LAST_IS_TEXT, crlf), {"good": new_sales()}),
    "CRLF, next to the baseline's LF file of the same columns": (put_csv(new_sales(), crlf), {"good": new_sales()}),
    "CR-only line endings": (put_csv(LAST_IS_TEXT, lambda s: s.replace("\n", "\r")), {"good": new_sales()}),
    "CRLF, header only": (put_bytes(crlf(TEXT.splitlines(keepends=True)[0]).encode()), unreadable("empty file")),
    "no newline at the end": (put_csv(new_sales(), str.rstrip), {"good": new_sales()}),
    "blank lines at the end": (put_csv(new_sales(), lambda s: s + "\n\n\n"), {"good": new_sales()}),
    "every field quoted": (
        put_bytes(new_sales().write_csv(quote_style="always").encode()),
        {"good": new_sales()},
    ),
    "quoted newline in a value": (
        put_csv(new_sales().with_columns(pl.lit("all\nstores").alias("category_l1"))),
        {"good": new_sales().with_columns(pl.lit("all\nstores").alias("category_l1"))},
    ),
    "columns in another order": (put_csv(new_sales().select(reversed(new_sales().columns))), {"good": new_sales()}),
    "text 'NULL' is a value": (
        put_csv(new_sales().with_columns(pl.lit("NULL").alias("category_l1"))),
        {"good": new_sales().with_columns(pl.lit("NULL").alias("category_l1"))},
    ),
    "spaces around numbers": (
        put_csv(new_sales(), lambda s: s.replace(",50,", ", 50 ,").replace(",1000.0,", ", 1000.0 ,")),
        {"good": new_sales()},
    ),
    "header with a trailing space": (
        put_csv(new_sales(), lambda s: s.replace("revenue,", "revenue ,", 1)),
        unreadable("'revenue '", "must be named 'revenue'"),
    ),
    "header with a leading space": (
        put_csv(new_sales(), lambda s: s.replace("geo_id", " geo_id", 1)),
        unreadable("' geo_id'"),
    ),
    "duplicate header names": (
        put_csv(new_sales().with_columns(pl.col("cogs").alias("x")), lambda s: s.replace(",x\n", ",cogs\n", 1)),
        unreadable("'cogs' appears twice"),
    ),
    "two headers differing in case": (
        put_csv(new_sales().with_columns(pl.col("cogs").alias("COGS"))),
        unreadable("'COGS'", "case"),
    ),
    "an empty header cell": (
        put_csv(new_sales().with_columns(pl.lit(1).alias("x")), lambda s: s.replace(",x\n", ",\n", 1)),
        unreadable("has no name"),
    ),
    "a trailing comma on every line": (put_csv(new_sales(), lambda s: s.replace("\n", ",\n")), unreadable("no name")),
    "tab-separated": (put_csv(new_sales(), lambda s: s.replace(",", "\t")), unreadable("wrong delimiter", "tab")),
    "pipe-separated": (put_csv(new_sales(), lambda s: s.replace(",", "|")), unreadable("wrong delimiter", "pipe")),
    "backslash-escaped quote": (
        put_csv(new_sales(), lambda s: s.replace(",all,", ',"a\\"ll",', 1)),
        unreadable("unreadable csv", "line 2"),
    ),
    "a row with an extra field": (
        put_csv(new_sales(), lambda s: s.replace("\n", ",9\n", 2).replace(",9\n", "\n", 1)),
        unreadable("unreadable csv", "line 2 has 9 field(s), the header 8"),
    ),
    "thousands separators": (
        put_csv(as_text(new_sales(), "revenue").with_columns(pl.lit("1,000.5").alias("revenue"))),
        refused_rows("type:revenue"),
    ),
    "exponent in an integer column": (
        put_csv(with_cell(as_text(new_sales(), "orders"), "orders", "5e1")),
        refused_rows("type:orders"),
    ),
    "exponent in a float column": (
        put_csv(as_text(new_sales(), "revenue"), lambda s: s.replace(",1000.0,", ",1e3,")),
        {"good": new_sales()},
    ),
}
for name, (make, outcome) in ENCODINGS.items():
    C.add("encodings and dialects", name, "sales/x.csv", make, **outcome)
WEATHER = weather_frame(NEW)
for spelling in (("TRUE", "FALSE"), ("True", "false"), ("1", "0")):
    df = as_text(WEATHER, "severe_alert").with_columns(
        pl.when(pl.col("precip_mm") > 0).then(pl.lit(spelling[0])).otherwise(pl.lit(spelling[1])).alias("severe_alert")
    )
    good = WEATHER.with_columns((pl.col("precip_mm") > 0).alias("severe_alert"))
    C.add(
        "encodings and dialects",
        f"booleans spelled {'/'.join(spelling)}",
        "weather_observed/w.csv",
        put_csv(df),
        good=good,
    )
C.add(
    "encodings and dialects",
    "booleans spelled yes/no",
    "weather_observed/w.csv",
    put_csv(with_cell(as_text(WEATHER, "severe_alert"), "severe_alert", "yes")),
    **refused_rows("type:severe_alert"),
)

# ---------------------------------------------------------------- odd names and odd entries (own)
for name in (
    "region=west.csv",
    "date=2024-03-05.csv",
    "march sales.csv",
    "SALES.CSV",
    "a+b_c-d.e.csv",
    "x" * 240 + ".csv",
):
    C.add("odd names", f"file named {name[:40]!r}", f"sales/{name}", put_csv(new_sales()), good=new_sales())
for name in ("ventes_été.csv", "a\nb.csv", "s[1].csv", "s*.csv", "it's.csv", "-rf.csv"):
    C.add("odd names", f"file named {name!r}", f"sales/{name}", put_csv(new_sales()), **unreadable("not allowed"))
for name in ("x.csv.gz", "x.csv ", "x.xlsx", "x.json"):
    C.add("odd names", f"file named {name!r}", f"sales/{name}", put_csv(new_sales()), **unreadable("not a .csv"))
for name in (".x.csv", "~$x.csv", "x.csv.part", "x.csv.tmp", "x.parquet.crdownload"):
    C.add("odd names", f"upload in progress {name!r}", f"sales/{name}", put_csv(new_sales()), skipped=True)
C.add("odd entries", "a folder named x.csv", "sales/x.csv", lambda p: p.mkdir(), **unreadable("is a folder"))
C.add(
    "odd entries",
    "a hive partition folder inside a table folder",
    "sales/date=2024-03-05",
    lambda p: write(new_sales(), p / "part-0.parquet"),
    **unreadable("is a folder"),
)
C.add("odd entries", "a named pipe", "sales/pipe.csv", os.mkfifo, **unreadable("not a regular file"))
C.add("odd entries", "a zero-byte csv", "sales/x.csv", put_bytes(b""), **unreadable("empty file"))
C.add("odd entries", "a zero-byte parquet", "sales/x.parquet", put_bytes(b""), **unreadable("empty file"))
C.add(
    "odd entries",
    "a dangling link",
    "sales/x.csv",
    lambda p: p.symlink_to(p.parent / "gone.csv"),
    **unreadable("link to nothing"),
)
C.add("odd entries", "a link loop", "sales/x.csv", lambda p: p.symlink_to(p), **unreadable("loop"))
C.add(
    "odd entries",
    "a link out of the landing zone",
    "sales/x.csv",
    lambda p: p.symlink_to(write(new_sales(), p.parents[2] / "outside.csv")),
    **unreadable("outside the landing zone"),
)
C.add(
    "odd entries",
    "a link to a folder out of the zone",
    "sales/x.csv",
    lambda p: p.symlink_to("/tmp"),
    **unreadable("outside the landing zone"),
)
C.add(
    "odd entries",
    "a link to a file in the zone",
    "sales/x.csv",
    lambda p: p.symlink_to(write(new_sales(), p.parents[1] / "archive" / "new.csv")),
    good=new_sales(),
)
C.add(
    "odd entries",
    "a link to another table's file",
    "sales/x.csv",
    lambda p: p.symlink_to(write(weather_frame(NEW), p.parents[1] / "weather_observed" / "w.csv")),
    refuse=("missing required column",),
    quarantined=(4, "missing required column"),
)

# ---------------------------------------------------------------- extreme values (own)
EXTREME_GOOD = {
    "revenue 1e308": with_cell(new_sales(), "revenue", 1e308),
    "revenue 5e-324 (subnormal)": with_cell(new_sales(), "revenue", 5e-324),
    "orders at int64 max": with_cell(new_sales(), "orders", 2**63 - 1),
    "a leap day": new_sales([dt.date(2024, 2, 29)]),
    "the first partition day": new_sales([PARTITION_START]),
    "a 10,000-character extra value": new_sales().with_columns(pl.lit("x" * 10_000).alias("note")),
}
for name, df in EXTREME_GOOD.items():
    for fmt in ("csv", "parquet"):
        C.add(
            "extreme values",
            f"{name} ({fmt})",
            f"sales/x.{fmt}",
            put_csv(df) if fmt == "csv" else put_parquet(df),
            good=df,
        )
C.add(
    "extreme values",
    "-0.0 keeps its sign (csv)",
    "sales/x.csv",
    put_csv(with_cell(new_sales(), "contribution_margin", -0.0)),
    good=with_cell(new_sales(), "contribution_margin", -0.0),
    then=lambda z: _assert_negative_zero(z),
)


def epoch_days(first: int) -> pa.Array:
    """Dates as days since 1970 (Python's date cannot hold every one), the first row's `first`."""
    return pa.array([first, 19788] * 2, pa.int32()).cast(pa.date32())


EXTREME_BAD = {
    "orders at int64 max + 1": ("csv", as_text(new_sales(), "orders"), "orders", str(2**63), "type:orders"),
    "orders at int64 min": ("csv", new_sales(), "orders", -(2**63), "range:orders"),
    "year 0001": ("csv", as_text(new_sales(), "date"), "date", "0001-01-01", "partition_start:date"),
    "year 9999": ("csv", as_text(new_sales(), "date"), "date", "9999-12-31", "not_future:date"),
    "February 30th": ("csv", as_text(new_sales(), "date"), "date", "2024-02-30", "type:date"),
    "a 10,000-character geo_id": ("csv", new_sales(), "geo_id", "g" * 10_000, "known_geo:geo_id"),
    "a geo_id with a trailing space": ("csv", new_sales(), "geo_id", "g01 ", "known_geo:geo_id"),
    "parquet date in year 20000": (
        "parquet",
        arrow(new_sales(), date=epoch_days(6_585_000)),
        None,
        None,
        "not_future:date",
    ),
    "parquet date before year 1": (
        "parquet",
        arrow(new_sales(), date=epoch_days(-800_000)),
        None,
        None,
        "partition_start:date",
    ),
}
for name, (fmt, base, col, value, rule) in EXTREME_BAD.items():
    df = with_cell(base, col, value) if col else base
    make = put_csv(df) if fmt == "csv" else put_parquet(df)
    C.add("extreme values", name, f"sales/x.{fmt}", make, **refused_rows(rule), then=lambda z: _assert_plannable(z))

# ---------------------------------------------------------------- column collisions, one file (issue class)
for extra in ("Pos_Revenue", "POS_REVENUE", " pos_revenue", "pos_revenue "):
    df = new_sales().with_columns(pl.lit(1.0).alias(extra))
    C.add(
        "column collisions",
        f"extra {extra!r} next to the contract's pos_revenue",
        "sales/x.csv",
        put_csv(df),
        **unreadable(repr(extra), "pos_revenue"),
    )
for extra in (
    "_source_file",
    "_source_mtime",
    "_loaded_at",
    "_run_id",
    "_landing_path",
    "_row",
    "_rn",
    "file_row_number",
    "__bad_revenue",
    "__r0",
):
    for fmt in ("csv", "parquet") if extra in ("_source_file", "_landing_path", "file_row_number") else ("csv",):
        df = new_sales().with_columns(pl.lit("sneaky").alias(extra))
        make = put_csv(df) if fmt == "csv" else put_parquet(df)
        C.add(
            "column collisions",
            f"lineage-named extra {extra!r} ({fmt})",
            f"sales/x.{fmt}",
            make,
            **unreadable(repr(extra), "reserves"),
        )
for extra in ("note", "src", "_path", "filename", "s", "_f"):
    df = new_sales().with_columns(pl.lit("kept").alias(extra))
    C.add(
        "column collisions",
        f"harmless extra {extra!r}",
        "sales/x.csv",
        put_csv(df),
        good=new_sales(),
        then=lambda z, extra=extra: _assert_extra(z, extra, {"kept"}),
    )


def _assert_extra(z: Zone, column: str, values: set) -> None:
    got = {r[0] for r in z.q(f'SELECT DISTINCT "{column}" FROM raw.sales WHERE "{column}" IS NOT NULL')}
    assert got == values


def _assert_negative_zero(z: Zone) -> None:
    assert z.q("SELECT count(*) FROM raw.sales WHERE signbit(contribution_margin)") == [(1,)]


def _assert_plannable(z: Zone) -> None:
    """The command line can still plan runs over this landing zone (spans of absurd dates)."""
    changes = landing_changes(z.contract, z.root, read_known(z.con), ["sales"])
    assert all(c.span is None or c.span[0] <= c.span[1] for c in changes)


@pytest.mark.parametrize("case", C.cases, ids=lambda c: c.id)
def test_hostile_file(case, tmp_path):
    z = Zone(tmp_path)
    case.make(z.path(case.file))
    if case.good is not None:
        z.expect(case.file, case.good)
    result = z.ingest(case.table)
    if case.skipped:
        assert all(f.file.name != case.file for f in result.files)
        assert z.status(case.file) is None
    z.verify(
        case.table,
        refused={case.file: list(case.refuse)} if case.refuse else {},
        quarantined={case.file: case.quarantined} if case.quarantined else {},
    )
    if case.then:
        case.then(z)


# ================================================================ scenarios: type drift (issue class)


def test_table_folder_that_is_a_link(tmp_path):
    """A table folder may be a link (to a share mounted elsewhere): its files are read as files."""
    z = Zone(tmp_path)
    elsewhere = tmp_path / "share" / "sales"
    shutil.move(z.root / "sales", elsewhere)
    (z.root / "sales").symlink_to(elsewhere, target_is_directory=True)
    z.put("sales/new.parquet", new_sales())
    z.ingest()
    z.verify()


def test_type_drift_in_one_run(tmp_path):
    """ISO text, DATE, TIMESTAMP and TIMESTAMPTZ files of one table, checked and loaded in one run."""
    z = Zone(tmp_path, baseline=False)
    z.put("geo/geo.parquet", geo_frame())
    z.ingest("geo")
    z.put("sales/text.csv", sales_frame(DAYS[:1]))
    z.put("sales/date.parquet", sales_frame(DAYS[1:2]))
    z.expect("sales/ts.parquet", sales_frame(DAYS[2:3]))
    pq.write_table(arrow(sales_frame(DAYS[2:3]), date=timestamps(DAYS[2:3] * 2, "ns")), z.path("sales/ts.parquet"))
    z.expect("sales/tz.parquet", sales_frame(DAYS[3:4]))
    pq.write_table(arrow(sales_frame(DAYS[3:4]), date=timestamps(DAYS[3:4] * 2, tz="UTC")), z.path("sales/tz.parquet"))
    result = z.ingest()
    assert sorted(result.loaded_from) == [
        "sales/date.parquet",
        "sales/text.csv",
        "sales/ts.parquet",
        "sales/tz.parquet",
    ]
    z.verify()


@pytest.mark.parametrize("order", ["text first", "timestamp first"])
def test_type_drift_across_two_runs(tmp_path, order):
    z = Zone(tmp_path, baseline=False)
    z.put("geo/geo.parquet", geo_frame())
    z.ingest("geo")

    def text():
        z.put("sales/text.csv", sales_frame(DAYS[:2]))

    def stamp():
        z.expect("sales/ts.parquet", sales_frame(DAYS[2:]))
        pq.write_table(arrow(sales_frame(DAYS[2:]), date=timestamps(DAYS[2:] * 2)), z.path("sales/ts.parquet"))

    first, second = (text, stamp) if order == "text first" else (stamp, text)
    first()
    z.ingest()
    z.assert_raw()
    second()
    z.ingest()
    z.verify()


def test_dates_never_use_the_connections_time_zone(tmp_path):
    """The core on a connection set to Los Angeles (not warehouse.connect's UTC) still files a
    UTC-midnight timestamp under its UTC day."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("SET TimeZone = 'America/Los_Angeles'")
    z = Zone(tmp_path, con=con)
    z.expect("sales/tz.parquet", new_sales())
    pq.write_table(arrow(new_sales(), date=timestamps(new_dates(), tz="UTC")), z.path("sales/tz.parquet"))
    z.ingest()
    z.verify()


# ================================================================ hive-looking paths (issue class)


def macro_frame(day: dt.date) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "region": ["north", "south"],
            "date": [day, day],
            "cpi": [101.0, 99.0],
            "disposable_income_index": [1.0, 1.1],
            "unemployment_rate_pct": [4.0, 5.5],
            "gas_price_per_l": [1.8, 1.7],
        }
    )


@pytest.mark.parametrize("root", ["region=west/landing", "date=2024-03-01/geo_id=g99", "data [v1] *it's é"])
def test_paths_that_look_like_hive_partitions_or_globs(tmp_path, root):
    z = Zone(tmp_path, root=tmp_path / root)
    z.put("macro/macro_jan.csv", macro_frame(dt.date(2024, 1, 1)))
    z.put("macro/macro_feb.parquet", macro_frame(dt.date(2024, 2, 1)))
    z.put("sales/region=east.parquet", new_sales())
    assert not z.ingest("macro").refused
    z.verify("macro")
    z.ingest("sales")
    z.verify("sales")
    z.ingest("geo")
    z.verify("geo")
    assert z.q("SELECT region FROM raw.geo ORDER BY geo_id") == [("north",), ("south",)]
    for table in ("sales", "geo", "macro"):
        cols = {r[0] for r in z.q("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}
        assert not cols & {"region_1", "date_1", "geo_id_1", "filename"}, cols
    assert "region" not in {
        r[0] for r in z.q("SELECT column_name FROM information_schema.columns WHERE table_name = 'sales'")
    }
    spans = {c.file: c.span for c in landing_changes(z.contract, z.root, {}, ["macro", "sales"])}
    assert spans["macro/macro_jan.csv"] == (dt.date(2024, 1, 1),) * 2
    assert spans["sales/region=east.parquet"] == (NEW[0], NEW[1])


# ================================================================ missing is not deleted (issue class)


def test_vanished_table_folder_leaves_raw_untouched(tmp_path):
    z = Zone(tmp_path)
    (z.root / "sales").rename(z.root / "sales_old")
    result = z.ingest()
    assert result.skipped and "sales" in result.skipped
    z.assert_raw()  # every row still there
    outcome = z.check()
    assert not outcome.passed and any("sales/ is missing or empty" in d for d in outcome.details)
    layout = scan_zone(z.root, set(z.contract.tables)).describe()
    assert layout == ["sales_old/ is not a landing table folder and is ignored; did you mean sales/?"]
    (z.root / "sales_old").rename(z.root / "sales")
    z.ingest()
    z.verify()
    assert z.status("sales/base.csv")[0] == "accepted"


def test_folder_holding_only_uploads_in_progress_is_a_vanished_folder(tmp_path):
    z = Zone(tmp_path)
    (z.root / "sales" / "base.csv").rename(z.root / "sales" / "base.csv.part")
    assert z.ingest().skipped
    z.assert_raw()
    outcome = z.check()
    assert not outcome.passed and any("missing or empty" in d for d in outcome.details)


def test_empty_landing_root_leaves_raw_untouched(tmp_path):
    z = Zone(tmp_path)
    shutil.move(z.root, tmp_path / "unmounted")
    z.root.mkdir()
    for table in ("geo", "sales"):
        assert z.ingest(table).skipped
        z.assert_raw(table)
        outcome = z.check(table)
        assert not outcome.passed and any("the landing root is empty" in d for d in outcome.details), outcome
    assert not landing_zone_layout(z.root, [], []).passed


def test_deleted_file_keeps_its_rows_and_is_named(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/new.csv", new_sales())
    z.ingest()
    (z.root / "sales" / "base.csv").unlink()
    result = z.ingest()
    assert result.missing == ["sales/base.csv"]
    z.verify()  # base.csv's rows are still expected, and there
    assert z.status("sales/base.csv")[0] == "missing"
    ctx = CheckContext(z.con, z.table("sales"), ALL, TODAY, PARTITION_START, 3, z.root)
    warned = quality_warnings(ctx)
    assert not warned.passed and any("sales/base.csv" in d and "gone" in d for d in warned.details)


def test_refused_file_that_is_removed_stops_failing(tmp_path):
    z = Zone(tmp_path, baseline=False)
    z.put("geo/geo.parquet", geo_frame())
    z.ingest("geo")
    write(with_cell(sales_frame(), "revenue", -1.0), z.path("sales/only.csv"))
    assert z.ingest().refused
    assert not z.check().passed
    (z.root / "sales" / "only.csv").unlink()
    z.ingest()
    z.verify()


def test_retraction_removes_the_rows_and_is_recorded(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/new.csv", new_sales())
    z.ingest()
    retract_file(z.con, z.contract, "sales/base.csv", "double-counted by the vendor", run_id="retract")
    z.expect("sales/base.csv", None)
    z.ingest()
    z.verify()
    status, reason, _ = z.status("sales/base.csv")
    assert status == "retracted" and "double-counted by the vendor" in reason
    # undo: deliver a new version of the file
    z.put("sales/base.csv", sales_frame())
    z.touch_later("sales/base.csv")
    z.ingest()
    z.verify()
    assert z.status("sales/base.csv")[0] == "accepted"


def test_retraction_of_a_dimension_file_is_planned(tmp_path):
    """An undated table's retraction is a change the command line plans a run for."""
    z = Zone(tmp_path)
    retract_file(z.con, z.contract, "geo/geo.parquet", "wrong vendor", run_id="retract")
    changes = landing_changes(z.contract, z.root, read_known(z.con))
    assert [c.file for c in changes] == ["geo/geo.parquet"]
    z.ingest("geo")
    assert z.q("SELECT count(*) FROM raw.geo") == [(0,)]
    assert landing_changes(z.contract, z.root, read_known(z.con)) == []


# ================================================================ per-file isolation (issue class)


def test_colliding_file_is_refused_alone(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/good.csv", new_sales())
    write(new_sales([DAYS[0]]).with_columns(pl.lit(1.0).alias("Pos_Revenue")), z.path("sales/pos.csv"))
    write(new_sales([dt.date(2024, 3, 7)]).with_columns(pl.lit("x").alias("_source_file")), z.path("sales/lin.parquet"))
    z.ingest()
    z.verify(
        refused={
            "sales/pos.csv": ["'Pos_Revenue'", "pos_revenue", "case"],
            "sales/lin.parquet": ["'_source_file'", "reserves"],
        }
    )


def test_extra_column_spelled_two_ways_in_one_run(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/a.csv", new_sales().with_columns(pl.lit("a").alias("Note")))
    write(new_sales([dt.date(2024, 3, 7)]).with_columns(pl.lit("b").alias("note")), z.path("sales/b.csv"))
    z.touch_later("sales/b.csv")
    z.ingest()
    z.verify(refused={"sales/b.csv": ["'note'", "'Note'"]}, quarantined={"sales/b.csv": (1, "'note'")})
    assert z.q('SELECT DISTINCT "Note" FROM raw.sales WHERE "Note" IS NOT NULL') == [("a",)]


def test_extra_column_that_raw_holds_under_another_spelling(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/a.csv", new_sales().with_columns(pl.lit("a").alias("note")))
    z.ingest()
    write(new_sales([dt.date(2024, 3, 7)]).with_columns(pl.lit("b").alias("NOTE")), z.path("sales/b.csv"))
    z.ingest()
    z.verify(refused={"sales/b.csv": ["'NOTE'", "raw.sales", "'note'"]}, quarantined={"sales/b.csv": (1, "'NOTE'")})


def test_extra_column_whose_type_differs_between_parquet_files(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/a.parquet", new_sales().with_columns(pl.lit(7).alias("note")))
    z.put("sales/b.parquet", new_sales([dt.date(2024, 3, 7)]).with_columns(pl.lit("seven").alias("note")))
    z.expect("sales/c.parquet", new_sales([dt.date(2024, 3, 8)]))
    pq.write_table(arrow(new_sales([dt.date(2024, 3, 8)]), note=pa.array([[1, 2]] * 2)), z.path("sales/c.parquet"))
    z.ingest()
    z.verify()
    assert {r[0] for r in z.q("SELECT DISTINCT note FROM raw.sales WHERE note IS NOT NULL")} == {"7", "seven", "[1, 2]"}


def test_extras_named_like_the_loaders_aliases_in_files_read_together(tmp_path):
    """Two CSV files of one schema are read in one scan; their extras must not meet the SQL's own names."""
    z = Zone(tmp_path)
    extras = {"src": "s", "_path": "p", "s": "x", "_f": "f", "typed": "t"}
    z.put("sales/a.csv", new_sales().with_columns(pl.lit(v).alias(k) for k, v in extras.items()))
    z.put("sales/b.csv", new_sales([dt.date(2024, 3, 7)]).with_columns(pl.lit(v).alias(k) for k, v in extras.items()))
    bad = with_cell(new_sales([dt.date(2024, 3, 8)]), "revenue", -1.0).with_columns(
        pl.lit(v).alias(k) for k, v in extras.items()
    )
    write(bad, z.path("sales/c.csv"))
    z.ingest()
    z.verify(refused={"sales/c.csv": ["range:revenue"]}, quarantined={"sales/c.csv": (2, "range:revenue")})
    record = z.quarantine("sales/c.csv")[0][2]
    assert '"geo_id":"g01"' in record.replace(" ", "") and '"src":"s"' in record.replace(" ", "")


def test_duplicate_keys_across_files_with_the_same_mtime(tmp_path):
    """Two files deliver the same keys at the same modification time: the later name wins, always."""
    z = Zone(tmp_path)
    a = z.put("sales/a.csv", new_sales())
    b = z.put("sales/b.csv", new_sales().with_columns(pl.col("revenue") + 1))
    os.utime(b, (a.stat().st_atime, a.stat().st_mtime))
    z.expect("sales/a.csv", None)
    z.ingest()
    z.verify(superseded={"sales/a.csv"})


def test_correction_supersedes_only_its_keys(tmp_path):
    z = Zone(tmp_path)
    fix = sales_frame(DAYS[:1]).with_columns(pl.lit(4242.0).alias("revenue"))
    z.put("sales/fix.csv", fix)
    z.touch_later("sales/fix.csv")
    z.expect("sales/base.csv", sales_frame().filter(pl.col("date") > DAYS[0]))
    z.ingest()
    z.verify(superseded={"sales/base.csv"})


# ================================================================ windows and changed spans (own)


MARCH = Window(dt.date(2024, 3, 1), dt.date(2024, 3, 31), open_end=True)
FEB_MAR = [dt.date(2024, 2, 27), dt.date(2024, 3, 7)]


def test_file_spanning_months_beyond_the_run_window_loads_whole(tmp_path):
    """A schedule run over March meets a new file spanning February and March: every row loads."""
    z = Zone(tmp_path)
    z.put("sales/span.csv", sales_frame(FEB_MAR))
    z.ingest(window=MARCH)
    z.verify()


def test_changed_file_leaves_no_rows_of_its_old_version(tmp_path):
    z = Zone(tmp_path)
    z.put("sales/span.csv", sales_frame(FEB_MAR))
    z.ingest()
    z.put("sales/span.csv", sales_frame([dt.date(2024, 3, 8)]))
    z.touch_later("sales/span.csv")
    z.ingest(window=MARCH)
    z.verify()


def test_refused_version_keeps_the_span_of_the_rows_it_carries(tmp_path):
    """v1 (February) loads; v2 (March) is refused, v1's rows stay; v3 (March) is accepted: the runs
    the command line plans from ingest.landing_files must reach February and drop v1's rows."""
    z = Zone(tmp_path)
    z.put("sales/f.csv", sales_frame([dt.date(2024, 2, 27)]))
    z.ingest()
    write(with_cell(sales_frame([dt.date(2024, 3, 8)]), "revenue", -1.0), z.path("sales/f.csv"))
    z.touch_later("sales/f.csv")
    for step in ("v2", "v3"):
        (change,) = landing_changes(z.contract, z.root, read_known(z.con), ["sales"])
        window = Window(change.span[0].replace(day=1), TODAY, open_end=True)
        z.ingest(window=window)
        if step == "v2":
            z.verify(refused={"sales/f.csv": ["range:revenue"]}, quarantined={"sales/f.csv": (2, "range")})
            z.put("sales/f.csv", sales_frame([dt.date(2024, 3, 9)]))
            z.touch_later("sales/f.csv")
    z.verify()


def test_redated_event_supersedes_across_partitions_and_comes_back_on_retraction(tmp_path):
    """governance_events' key (event_id) lacks its partition column: a correction that moves an
    event to March replaces its February row, and retracting the correction brings it back."""
    z = Zone(tmp_path)

    def event(day: dt.date, text: str) -> pl.DataFrame:
        return pl.DataFrame(
            {"event_id": ["e1"], "date": [day], "event_type": ["manual_override"], "description": [text]}
        )

    z.put("governance_events/a.csv", event(dt.date(2024, 2, 10), "first"))
    z.ingest("governance_events")
    z.put("governance_events/b.csv", event(dt.date(2024, 3, 5), "re-dated"))
    z.touch_later("governance_events/b.csv")
    z.expect("governance_events/a.csv", None)
    z.ingest("governance_events", window=MARCH)
    z.verify("governance_events", superseded={"governance_events/a.csv"})
    retract_file(z.con, z.contract, "governance_events/b.csv", "wrong date", run_id="retract")
    z.expect("governance_events/a.csv", event(dt.date(2024, 2, 10), "first"))
    z.expect("governance_events/b.csv", None)
    z.ingest("governance_events", window=MARCH)
    z.verify("governance_events")


# ================================================================ file identity and edits (issue class + own)


def _same_size_edit(path: Path, old: str, new: str) -> None:
    st = path.stat()
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_edit_with_same_size_and_mtime_is_rechecked(tmp_path):
    z = Zone(tmp_path)
    path = z.root / "sales" / "base.csv"
    _same_size_edit(path, ",1000.0,", ",1001.0,")
    z.expect("sales/base.csv", with_cell(sales_frame(), "revenue", 1001.0))
    assert [c.kind for c in landing_changes(z.contract, z.root, read_known(z.con), ["sales"])] == ["changed"]
    z.ingest()
    z.verify()
    _same_size_edit(path, ",1001.0,", ",-101.0,")
    z.ingest()  # refused: the previous version's rows stay
    z.verify(refused={"sales/base.csv": ["range:revenue"]}, quarantined={"sales/base.csv": (8, "range:revenue")})


class Meddling:
    """A connection that runs `act` once, just before the statement starting with `before`."""

    def __init__(self, inner, before: str, act):
        self.inner, self.before, self.act = inner, before, act

    def execute(self, sql: str, *args):
        if self.act and sql.lstrip().startswith(self.before):
            act, self.act = self.act, None
            act()
        return self.inner.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("edit", ["replaced by a bad version", "replaced by a good version", "deleted"])
def test_file_replaced_between_check_and_load(tmp_path, edit):
    """The file changes after the gate read it and before the load reads it again."""
    z = Zone(tmp_path)
    z.put("sales/new.csv", new_sales())
    path = z.root / "sales" / "new.csv"

    def meddle():
        if edit == "deleted":
            path.unlink()
        else:
            df = new_sales().with_columns(pl.lit(-5.0 if "bad" in edit else 7.0).alias("revenue"))
            tmp = path.with_name("new.csv.part")
            tmp.write_text(df.write_csv())
            tmp.replace(path)

    refused = {}
    if edit == "replaced by a bad version":
        z.expect("sales/new.csv", None)
        refused = {"sales/new.csv": ["range:revenue"]}
    elif edit == "replaced by a good version":
        z.expect("sales/new.csv", new_sales().with_columns(pl.lit(7.0).alias("revenue")))
    else:
        z.expect("sales/new.csv", None)
    z.ingest(con=Meddling(z.con, "INSERT INTO raw.", meddle))
    z.verify(refused=refused, quarantined={"sales/new.csv": (4, "range:revenue")})


# ================================================================ gate and check agree on non-finite values


def test_gate_and_contract_check_agree_on_non_finite_values(tmp_path):
    z = Zone(tmp_path)
    z.con.execute("UPDATE raw.sales SET revenue = 'nan'::DOUBLE WHERE geo_id = 'g01' AND date = ?", [DAYS[0]])
    z.con.execute("UPDATE raw.sales SET cogs = '-inf'::DOUBLE WHERE geo_id = 'g02' AND date = ?", [DAYS[0]])
    z.con.execute("UPDATE raw.sales SET contribution_margin = 'inf'::DOUBLE WHERE date = ?", [DAYS[1]])
    ctx = CheckContext(z.con, z.table("sales"), ALL, TODAY, PARTITION_START, 3, z.root)
    outcome = contract(ctx)
    found = {d.split(":")[1].strip() + ":" + d.split(":")[2].split(" ")[0] for d in outcome.details if "finite:" in d}
    assert found == {"finite:revenue", "finite:cogs", "finite:contribution_margin"}
    finite = {r.name for r in contract_rules(z.table("sales")) if r.kind == "finite"}
    assert finite == {f"finite:{c.name}" for c in z.table("sales").columns if c.type == "float"}


# ================================================================ the warehouse (issue class)


def _held_lock(db: Path, seconds: float) -> subprocess.Popen:
    code = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(float(sys.argv[2])); con.close()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_held_by_another_process_is_waited_for_and_named(tmp_path, caplog):
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    holder = _held_lock(db, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(WarehouseUnavailable, match=rf"PID {holder.pid}\b.*MMM_LOCK_TIMEOUT"):
            connect(db, lock_timeout_s=1)
        assert time.monotonic() - t0 < 10
    finally:
        holder.kill()
        holder.wait()
    holder = _held_lock(db, 1.5)
    try:
        with caplog.at_level("WARNING"):
            connect(db, lock_timeout_s=30).close()
        assert f"PID {holder.pid}" in caplog.text
    finally:
        holder.wait()


def _not_duckdb(tmp_path: Path) -> Path:
    p = tmp_path / "w.duckdb"
    p.write_text("geo_id,date\n")
    return p


def _truncated_duckdb(tmp_path: Path) -> Path:
    p = tmp_path / "w.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")
    con.close()
    p.write_bytes(p.read_bytes()[:5000])
    return p


def _folder(tmp_path: Path) -> Path:
    p = tmp_path / "w.duckdb"
    p.mkdir()
    return p


PERMANENT = {
    "not a DuckDB file": (_not_duckdb, "cannot open the warehouse"),
    "a truncated DuckDB file": (_truncated_duckdb, "cannot open the warehouse"),
    "a folder": (_folder, "is a folder"),
    "on a file system nothing can be created in": (lambda _: Path("/proc/mmm/w.duckdb"), "cannot create"),
    "in a folder nothing can be created in": (lambda _: Path("/proc/w.duckdb"), "cannot"),
}


@pytest.mark.parametrize("kind", PERMANENT)
def test_permanent_warehouse_errors_fail_at_once(tmp_path, kind, monkeypatch, capsys):
    make, words = PERMANENT[kind]
    db = make(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(WarehouseUnavailable, match=words):
        connect(db, lock_timeout_s=600)
    assert time.monotonic() - t0 < 5
    from mmm_platform.cli import main

    write(sales_frame(), tmp_path / "landing" / "sales" / "s.csv")
    monkeypatch.setenv("MMM_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("MMM_WAREHOUSE", str(db))
    t0 = time.monotonic()
    assert main(["ingest"]) == 2
    assert time.monotonic() - t0 < 60
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(db) in err, err


def test_read_only_file_system(tmp_path):
    """An existing warehouse on a read-only mount (a private mount namespace; skipped where the
    sandbox does not allow one): writing fails at once with the reason."""
    db = tmp_path / "ro" / "w.duckdb"
    db.parent.mkdir()
    duckdb.connect(str(db)).close()
    code = (
        "import sys, time; from pathlib import Path; from mmm_platform.warehouse import connect, WarehouseUnavailable\n"
        "t0 = time.monotonic()\n"
        "try:\n    connect(Path(sys.argv[1]), lock_timeout_s=600)\nexcept WarehouseUnavailable as e:\n"
        "    print('unavailable', round(time.monotonic() - t0, 1), e)\nelse:\n    print('opened')\n"
    )
    script = f'mount --bind {db.parent} {db.parent} && mount -o remount,ro,bind {db.parent} && exec "$0" "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable, "-c", code, str(db)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        timeout=60,
    )
    if proc.returncode != 0 and "unavailable" not in proc.stdout:
        pytest.skip(f"no private read-only mount here: {proc.stderr.strip()[:200]}")
    assert proc.stdout.startswith("unavailable"), proc.stdout + proc.stderr
    assert float(proc.stdout.split()[1]) < 5 and "read-only" in proc.stdout.lower(), proc.stdout


# ================================================================ the command line (issue classes)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """main([...]) over a landing zone and warehouse in tmp_path: (exit code, stdout, stderr)."""
    from mmm_platform.cli import main

    root = tmp_path / "landing"
    root.mkdir()
    monkeypatch.setenv("MMM_LANDING_DIR", str(root))
    monkeypatch.setenv("MMM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args or ["ingest"]))
        out, err = capsys.readouterr()
        return code, out, err

    run.root = root
    run.db = tmp_path / "warehouse.duckdb"
    return run


def _zone_for_cli(cli, tmp_path) -> Zone:
    """A Zone model over the command line's landing zone (for expectations; it opens no warehouse)."""
    z = Zone.__new__(Zone)
    z.root, z.base, z.db, z.last = cli.root, tmp_path, cli.db, None
    from mmm_platform.contracts import load_contract

    z.contract, z.expected = load_contract(), {}
    return z


@contextlib.contextmanager
def opened(z: Zone):
    z.con = duckdb.connect(str(z.db), read_only=True)
    try:
        yield z
    finally:
        z.con.close()


def test_cli_lifecycle_of_bad_and_vanishing_files(cli, tmp_path):
    z = _zone_for_cli(cli, tmp_path)
    z.put("geo/geo.parquet", geo_frame())
    z.put("sales/base.csv", sales_frame())
    assert cli()[0] == 0
    # type drift across two runs: a Parquet TIMESTAMP file after an ISO-text one
    z.expect("sales/ts.parquet", new_sales())
    pq.write_table(arrow(new_sales(), date=timestamps(new_dates())), z.path("sales/ts.parquet"))
    assert cli()[0] == 0
    with opened(z):
        z.assert_raw()
    # NaN: exit 1 naming file and rule, rows quarantined, raw unchanged; it fails every run until removed
    write(with_cell(new_sales([dt.date(2024, 3, 7)]), "revenue", math.nan), z.path("sales/nan.csv"))
    code, out, _ = cli()
    assert code == 1 and "sales/nan.csv" in out and "finite:revenue" in out, out
    with opened(z):
        z.assert_raw()
        assert len(z.quarantine("sales/nan.csv")) == 2
        assert sum(r[1].startswith("finite:revenue") for r in z.quarantine("sales/nan.csv")) == 1
    code, out, _ = cli()
    assert code == 1 and "sales/nan.csv" in out
    (z.root / "sales" / "nan.csv").unlink()
    assert cli()[0] == 0
    # a deleted file keeps its rows, and a warning names it
    (z.root / "sales" / "ts.parquet").unlink()
    code, out, _ = cli()
    assert code == 0 and "sales/ts.parquet" in out and "warning" in out, out
    with opened(z):
        z.assert_raw()
    # retraction: the rows leave raw, recorded; a new version undoes it
    code, out, _ = cli("retract", "sales/base.csv", "--reason", "sent twice")
    assert code == 0, out
    z.expect("sales/base.csv", None)
    with opened(z):
        z.assert_raw()
        assert z.status("sales/base.csv")[:2] == ("retracted", "retracted: sent twice")
    code, out, _ = cli("retract", "geo/geo.parquet", "--reason", "wrong geos")
    assert code == 0, out
    with opened(z):
        assert z.q("SELECT count(*) FROM raw.geo") == [(0,)]
    z.put("sales/base.csv", sales_frame())
    z.put("geo/geo.parquet", geo_frame())
    z.touch_later("sales/base.csv")
    z.touch_later("geo/geo.parquet")
    assert cli()[0] == 0
    with opened(z):
        z.assert_raw()
        z.assert_raw("geo")


def test_cli_vanished_folder_empty_root_and_edits(cli, tmp_path):
    z = _zone_for_cli(cli, tmp_path)
    z.put("geo/geo.parquet", geo_frame())
    z.put("sales/base.csv", sales_frame())
    assert cli()[0] == 0
    # a renamed table folder: exit 1 naming it, the misspelling suggested, raw untouched
    (z.root / "sales").rename(z.root / "Sales")
    code, out, _ = cli()
    assert code == 1 and "sales/ is missing or empty" in out and "Sales/" in out and "did you mean sales/" in out, out
    with opened(z):
        z.assert_raw()
    (z.root / "Sales").rename(z.root / "sales")
    code, out, _ = cli()
    assert code == 0, out
    with opened(z):
        assert z.status("sales/base.csv")[0] == "accepted"
    # an empty landing root (an unmounted share): exit 1, raw untouched
    shutil.move(z.root, tmp_path / "away")
    z.root.mkdir()
    code, out, _ = cli()
    assert code == 1 and "the landing root is empty" in out, out
    with opened(z):
        z.assert_raw()
        z.assert_raw("geo")
    z.root.rmdir()
    shutil.move(tmp_path / "away", z.root)
    assert cli()[0] == 0
    # same size and mtime, other content: re-checked
    _same_size_edit(z.root / "sales" / "base.csv", ",1000.0,", ",-100.0,")
    code, out, _ = cli()
    assert code == 1 and "sales/base.csv" in out and "range:revenue" in out, out
    with opened(z):
        z.assert_raw()  # the previous version's rows stay


def test_cli_reports_misplaced_files_and_folders(cli, tmp_path):
    z = _zone_for_cli(cli, tmp_path)
    z.put("geo/geo.parquet", geo_frame())
    z.put("sales/base.csv", sales_frame())
    write(new_sales(), z.path("Sales/more.csv"))
    write(new_sales(), z.path("sale/more.csv"))
    write(new_sales(), z.path("sales_2024-03.csv"))
    write(weather_frame(), z.path("weather/w.csv"))
    z.path("notes.txt").write_text("hello")
    z.path("truth.json").write_text("{}")
    code, out, _ = cli()
    assert code == 0, out
    assert "warning ingest/landing_zone:landing_zone_layout" in out
    lines = out.splitlines()
    for entry, hint in (
        ("Sales/", "did you mean sales/?"),
        ("sale/", "did you mean sales/?"),
        ("sales_2024-03.csv", "did you mean sales/?"),
        ("notes.txt", "ignored"),
        ("weather/", "ignored"),
    ):
        assert any(line.startswith(f"- {entry} ") and hint in line for line in lines), (entry, out)
    assert "truth.json" not in out
    with opened(z):
        z.assert_raw()


SETTINGS = [
    ("MMM_PARTITION_START", "2024-13-01", "not a date"),
    ("MMM_PARTITION_START", "last year", "not a date"),
    ("MMM_PARTITION_START", "2999-01-01", "after today"),
    ("MMM_WAREHOUSE", "{file}/warehouse.duckdb", "is a file"),
    ("MMM_LANDING_DIR", "{file}/landing", "is a file"),
    ("DAGSTER_HOME", "{file}/dagster", "is a file"),
    ("MMM_LOCK_TIMEOUT", "soon", "not a number"),
    ("MMM_LOCK_TIMEOUT", "-5", "at least 0"),
    ("MMM_FRESHNESS_DAYS", "-1", "at least 0"),
    ("MMM_FRESHNESS_DAYS", "2.5", "not an integer"),
]


@pytest.mark.parametrize(("variable", "value", "words"), SETTINGS, ids=[f"{v}={x}" for v, x, _ in SETTINGS])
def test_settings_errors_exit_2_with_one_line(cli, tmp_path, monkeypatch, variable, value, words):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv(variable, value.format(file=tmp_path / "a_file"))
    code, _, err = cli()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert variable in err and words in err, err


# ================================================================ subprocesses: time zone, concurrency, kill -9


def _cli_process(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mmm_platform.cli", *(args or ["ingest"])],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)} | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_ingests_under_a_los_angeles_host_time_zone(tmp_path):
    """Two `mmm-platform ingest` at once against one warehouse, both with TZ=America/Los_Angeles:
    both succeed (one waits for the other's lock), no row is lost or duplicated, and timestamps at
    UTC midnight (time-zone-aware, and naive) keep their UTC day."""
    z = Zone(tmp_path, baseline=False, con=duckdb.connect())
    z.put("geo/geo.parquet", geo_frame())
    z.put("sales/base.csv", sales_frame())
    z.expect("sales/tz.parquet", new_sales())
    pq.write_table(arrow(new_sales(), date=timestamps(new_dates(), tz="UTC")), z.path("sales/tz.parquet"))
    days = [dt.date(2024, 3, 7), dt.date(2024, 3, 8)]
    z.expect("sales/naive.parquet", sales_frame(days))
    pq.write_table(arrow(sales_frame(days), date=timestamps(days * 2)), z.path("sales/naive.parquet"))
    env = {
        "TZ": "America/Los_Angeles",
        "MMM_LANDING_DIR": str(z.root),
        "MMM_WAREHOUSE": str(z.db),
        "DAGSTER_HOME": str(tmp_path / "dh"),
    }
    procs = [_cli_process(env), _cli_process(env)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n----\n".join(outs)
    with opened(z):
        for table in ("geo", "sales"):
            z.assert_raw(table)
        assert z.q("SELECT count(*) FROM ingest.landing_files WHERE status <> 'accepted'") == [(0,)]


KILLED = """
import sys, time
from pathlib import Path
from mmm_platform.contracts import load_contract
from mmm_platform.ingest.load import ingest_table
from mmm_platform.warehouse import Window, connect
import datetime as dt
root, db, marker, point = sys.argv[1:5]

class Stalling:
    def __init__(self, inner):
        self.inner = inner
    def execute(self, sql, *args):
        result = self.inner.execute(sql, *args)
        if sql.lstrip().startswith(point):
            Path(marker).write_text("now")
            time.sleep(600)
        return result
    def __getattr__(self, name):
        return getattr(self.inner, name)

start = dt.date(2020, 1, 1)
ingest_table(Stalling(connect(Path(db))), load_contract(), "sales", Path(root),
             window=Window(start, dt.date(2024, 3, 10), open_end=True), run_id="killed",
             partition_start=start, today=dt.date(2024, 3, 10))
"""


@pytest.mark.parametrize("point", ["DELETE FROM raw.", "INSERT INTO raw.", "INSERT INTO ingest.quarantine"])
def test_kill_9_mid_load_converges(tmp_path, point):
    z = Zone(tmp_path)
    z.con.close()
    fix = sales_frame(DAYS[:2]).with_columns(pl.lit(77.0).alias("revenue"))
    write(fix, z.path("sales/fix.csv"))
    z.touch_later("sales/fix.csv")
    write(with_cell(new_sales(), "revenue", -1.0), z.path("sales/bad.csv"))  # something to quarantine
    marker = tmp_path / "stalled"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(z.root), str(z.db), str(marker), point],
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the load never reached the kill point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    z.con = connect(z.db)
    z.assert_raw()  # as before the killed run: no half partition
    assert z.q("SELECT count(*) FROM ingest.landing_files WHERE run_id = 'killed'") == [(0,)]
    z.expect("sales/fix.csv", fix)
    z.expect("sales/base.csv", sales_frame().filter(pl.col("date") >= DAYS[2]))
    z.ingest()
    z.verify(
        refused={"sales/bad.csv": ["range:revenue"]},
        quarantined={"sales/bad.csv": (4, "range:revenue")},
        superseded={"sales/base.csv"},
    )


@pytest.fixture(scope="module", autouse=True)
def _tally():
    yield
    write_tally(os.environ.get("HOSTILE_TALLY"), {"generated_cases": len(C.cases), "by_class": C.by_class()})


def test_corpus_covers_the_issue_classes():
    classes = C.by_class()
    assert len(C.cases) >= 100, classes
    for klass in (
        "non-finite",
        "type drift",
        "column collisions",
        "parquet types",
        "encodings and dialects",
        "odd names",
        "odd entries",
        "extreme values",
    ):
        assert classes.get(klass, 0) >= 5, klass
