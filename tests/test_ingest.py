"""The ingestion core on crafted landing files: good data loads exactly, every kind of bad file is
refused whole with a clear reason and quarantined, and nothing loaded before is lost."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mmm_platform.ingest.load import LoadResult, ingest_table
from mmm_platform.warehouse import Window

from conftest import DAYS, PARTITION_START, TODAY, forecast_frame, sales_frame, weather_frame, write

ALL = Window(PARTITION_START, TODAY, open_end=True)


def ingest(con, contract, landing: Path, table: str, window: Window | None = ALL, run_id: str = "r1") -> LoadResult:
    if not contract[table].is_partitioned:
        window = None
    return ingest_table(
        con,
        contract,
        table,
        landing,
        window=window,
        run_id=run_id,
        partition_start=PARTITION_START,
        today=TODAY,
    )


def load_all(con, contract, landing: Path) -> dict[str, LoadResult]:
    return {t: ingest(con, contract, landing, t) for t in ("geo", "weather_observed", "sales")}


def count(con, table: str) -> int:
    return con.execute(f'SELECT count(*) FROM raw."{table}"').fetchone()[0]


def test_valid_files_load_exactly(contract, landing, warehouse):
    con = warehouse()
    results = load_all(con, contract, landing)
    assert count(con, "geo") == 2
    assert count(con, "weather_observed") == 8
    assert count(con, "sales") == 8
    assert not any(r.refused for r in results.values())
    # values arrive typed and unchanged, CSV and Parquet alike
    got = con.execute(
        "SELECT date, temp_mean_c, precip_type, severe_alert FROM raw.weather_observed "
        "WHERE geo_id = 'g02' ORDER BY date"
    ).fetchall()
    assert got == [(d, 15.0 + i, "rain" if i % 2 == 0 else "none", False) for i, d in enumerate(DAYS)]
    assert con.execute("SELECT sum(revenue) FROM raw.sales").fetchone()[0] == pytest.approx(
        sales_frame()["revenue"].sum()
    )
    # optional columns absent from the files exist and are null; every raw table exists
    assert con.execute("SELECT count(wind_gust_kmh) FROM raw.weather_observed").fetchone()[0] == 0
    assert count(con, "creative") == 0
    # lineage names the file each row came from
    files = {r[0] for r in con.execute("SELECT DISTINCT _source_file FROM raw.weather_observed").fetchall()}
    assert files == {"weather_observed/weather_a.parquet", "weather_observed/weather_b.csv"}


def test_rerun_is_idempotent(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    before = con.execute("SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.sales ORDER BY ALL").fetchall()
    load_all(con, contract, landing)
    load_all(con, contract, landing)
    after = con.execute("SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.sales ORDER BY ALL").fetchall()
    assert before == after


def test_partition_window_replaces_only_that_window(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    con.execute("UPDATE raw.sales SET revenue = -1")  # mark every row, then reload one day
    day = DAYS[2]
    r = ingest(con, contract, landing, "sales", Window(day, day))
    assert r.rows_written == 2
    marked = dict(con.execute("SELECT date, count(*) FILTER (WHERE revenue = -1) FROM raw.sales GROUP BY 1").fetchall())
    assert marked == {DAYS[0]: 2, DAYS[1]: 2, DAYS[2]: 0, DAYS[3]: 2}


def test_newer_file_supersedes_older_rows(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    fix = sales_frame().filter((pl.col("geo_id") == "g01") & (pl.col("date") == DAYS[0]))
    fix = fix.with_columns(pl.lit(4242.0).alias("revenue"))
    path = write(fix, landing / "sales" / "sales_correction.csv")
    later = os.stat(landing / "sales" / "sales.csv").st_mtime + 60
    os.utime(path, (later, later))
    ingest(con, contract, landing, "sales")
    assert count(con, "sales") == 8
    assert con.execute(
        "SELECT revenue, _source_file FROM raw.sales WHERE geo_id = 'g01' AND date = ?", [DAYS[0]]
    ).fetchone() == (4242.0, "sales/sales_correction.csv")


def test_unknown_extra_columns_are_kept(contract, landing, warehouse):
    con = warehouse()
    write(sales_frame().with_columns(pl.lit("web").alias("store_channel")), landing / "sales" / "sales.csv")
    load_all(con, contract, landing)
    assert con.execute("SELECT DISTINCT store_channel FROM raw.sales").fetchall() == [("web",)]


def _bad_sales(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("date") == DAYS[0])


BAD_FILES = {
    # case: (file name, writer(landing dir) -> None, words the reason must contain)
    "missing column": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).drop("revenue"), p),
        ["missing required column", "revenue"],
    ),
    "wrong type": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit("lots").alias("revenue")), p),
        ["type:revenue", "float"],
    ),
    "wrong type in parquet": (
        "bad.parquet",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit("lots").alias("orders")), p),
        ["type:orders", "int"],
    ),
    "fractional integer": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit(2.5).alias("orders")), p),
        ["type:orders"],
    ),
    "out of range": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit(-5.0).alias("revenue")), p),
        ["range:revenue", "between 0 and inf"],
    ),
    "null in required column": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit(None, pl.Float64).alias("cogs")), p),
        ["not_null:cogs"],
    ),
    "duplicate key": (
        "bad.csv",
        lambda p: write(pl.concat([_bad_sales(sales_frame()), _bad_sales(sales_frame()).head(1)]), p),
        ["unique_key", "geo_id, date, category_l1", "rows 1, 3"],
    ),
    "unknown geo": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit("nowhere").alias("geo_id")), p),
        ["known_geo", "geo_id must exist"],
    ),
    "date in the future": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit(TODAY + dt.timedelta(days=3)).alias("date")), p),
        ["not_future:date", "after today"],
    ),
    "date before the first partition": (
        "bad.csv",
        lambda p: write(_bad_sales(sales_frame()).with_columns(pl.lit(dt.date(2019, 6, 1)).alias("date")), p),
        ["partition_start:date", "MMM_PARTITION_START"],
    ),
    "date not ISO": (
        "bad.csv",
        lambda p: p.write_text(
            "geo_id,date,category_l1,orders,units,revenue,cogs,contribution_margin\n"
            "g01,03/01/2024,all,1,1,10.0,5.0,2.0\n"
        ),
        ["type:date"],
    ),
    "empty file": ("bad.csv", lambda p: p.write_bytes(b""), ["empty file"]),
    "header only": (
        "bad.csv",
        lambda p: p.write_text("geo_id,date,category_l1,orders,units,revenue,cogs,contribution_margin\n"),
        ["empty file", "no data rows"],
    ),
    "wrong delimiter": (
        "bad.csv",
        lambda p: p.write_text(
            "geo_id;date;category_l1;orders;units;revenue;cogs;contribution_margin\n"
            "g01;2024-03-01;all;1;1;10.0;5.0;2.0\n"
        ),
        ["wrong delimiter", "semicolon"],
    ),
    "ragged csv": (
        "bad.csv",
        lambda p: p.write_text(
            "geo_id,date,category_l1,orders,units,revenue,cogs,contribution_margin\ng01,2024-03-01,all,1\n"
        ),
        ["unreadable csv"],
    ),
    "truncated parquet": (
        "bad.parquet",
        lambda p: (write(sales_frame(), p), p.write_bytes(p.read_bytes()[:300])),
        ["unreadable parquet"],
    ),
    "not a data file": ("notes.txt", lambda p: p.write_text("hello"), ["not a .csv or .parquet"]),
    "quote in file name": (
        "it's.csv",
        lambda p: write(_bad_sales(sales_frame()), p),
        ["not allowed"],
    ),
    "leading dash in file name": ("-rf.csv", lambda p: write(_bad_sales(sales_frame()), p), ["not allowed"]),
    "link out of the landing zone": (
        "escape.csv",
        lambda p: p.symlink_to(write(_bad_sales(sales_frame()), p.parent.parent.parent / "outside.csv")),
        ["points outside the landing zone"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_refused_whole_and_good_data_stays(case, contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    before = con.execute("SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.sales ORDER BY ALL").fetchall()

    name, make, words = BAD_FILES[case]
    make(landing / "sales" / name)
    result = ingest(con, contract, landing, "sales", run_id="r2")

    refused = {r.file.name: r for r in result.refused}
    assert list(refused) == [f"sales/{name}"], f"{case}: expected exactly the bad file refused, got {refused}"
    reason = refused[f"sales/{name}"].reason
    for w in words:
        assert w.lower() in reason.lower(), f"{case}: reason {reason!r} does not mention {w!r}"
    # nothing from the bad file reached raw, and every good row is still there, once
    after = con.execute("SELECT * EXCLUDE (_loaded_at, _run_id) FROM raw.sales ORDER BY ALL").fetchall()
    assert after == before
    # the refusal is recorded with the reason, and its rows (or the file) are quarantined
    status = con.execute("SELECT status, reason FROM ingest.landing_files WHERE file = ?", [f"sales/{name}"]).fetchone()
    assert status[0] == "refused" and status[1] == reason
    quarantined = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL OR reason = '') FROM ingest.quarantine WHERE file = ?",
        [f"sales/{name}"],
    ).fetchone()
    assert quarantined[0] >= 1 and quarantined[1] == 0
    # re-running neither duplicates the quarantine nor changes raw
    ingest(con, contract, landing, "sales", run_id="r3")
    again = con.execute("SELECT count(*) FROM ingest.quarantine WHERE file = ?", [f"sales/{name}"]).fetchone()[0]
    assert again == quarantined[0]


def test_quarantine_keeps_each_row_with_its_own_reason(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    bad = _bad_sales(sales_frame()).with_columns(
        pl.when(pl.col("geo_id") == "g01").then(-1.0).otherwise(pl.col("revenue")).alias("revenue")
    )
    write(bad, landing / "sales" / "bad.csv")
    ingest(con, contract, landing, "sales")
    rows = con.execute(
        "SELECT row_number, reason, record->>'geo_id', record->>'revenue' FROM ingest.quarantine ORDER BY row_number"
    ).fetchall()
    assert rows[0][0] == 1 and rows[0][1].startswith("range:revenue") and rows[0][2:] == ("g01", "-1.0")
    # the other row broke no rule itself: it is quarantined because its file was refused
    assert rows[1][1].startswith("file refused: range:revenue") and rows[1][2] == "g02"


def test_file_changed_to_bad_keeps_its_earlier_rows(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    path = landing / "weather_observed" / "weather_b.csv"
    write(
        weather_frame().filter(pl.col("date") > DAYS[1]).with_columns(pl.lit(900.0).alias("humidity_pct")),
        path,
    )
    result = ingest(con, contract, landing, "weather_observed")
    assert [r.file.name for r in result.refused] == ["weather_observed/weather_b.csv"]
    assert count(con, "weather_observed") == 8
    assert con.execute("SELECT max(humidity_pct) FROM raw.weather_observed").fetchone()[0] < 100


def test_forecast_lead_and_future_targets(contract, landing, warehouse):
    con = warehouse()
    load_all(con, contract, landing)
    future = [TODAY + dt.timedelta(days=i) for i in (1, 2)]
    # issued today or earlier (leads 2 and 3) for target dates after today
    fc = pl.concat([forecast_frame(DAYS), forecast_frame(future, leads=(2, 3))])
    write(fc, landing / "weather_forecast" / "fc.parquet")
    result = ingest(con, contract, landing, "weather_forecast", Window(DAYS[0], TODAY, open_end=True))
    assert not result.refused
    assert count(con, "weather_forecast") == 2 * (4 * 3 + 2 * 2)  # target dates after today are kept
    bad = forecast_frame([DAYS[0]], leads=(15,))
    write(bad, landing / "weather_forecast" / "fc_bad.parquet")
    result = ingest(con, contract, landing, "weather_forecast")
    assert "lead:target_date" in result.refused[0].reason


def test_crash_mid_write_leaves_no_half_partition(contract, landing, warehouse, monkeypatch):
    con = warehouse()
    load_all(con, contract, landing)
    before = con.execute("SELECT * FROM raw.sales ORDER BY ALL").fetchall()

    class Crashing:
        """A connection that dies on the insert, after the delete already ran."""

        def __init__(self, inner: duckdb.DuckDBPyConnection):
            self.inner = inner

        def execute(self, sql: str, *args):
            if sql.startswith("INSERT INTO raw."):
                raise RuntimeError("power cut")
            return self.inner.execute(sql, *args)

    with pytest.raises(RuntimeError, match="power cut"):
        ingest(Crashing(con), contract, landing, "sales")
    assert con.execute("SELECT * FROM raw.sales ORDER BY ALL").fetchall() == before


def test_in_progress_uploads_are_skipped(contract, landing, warehouse):
    con = warehouse()
    write(sales_frame(), landing / "sales" / ".sales_upload.csv")
    write(sales_frame(), landing / "sales" / "more.csv.part")
    result = ingest(con, contract, landing, "geo")
    result = ingest(con, contract, landing, "sales")
    assert [f.file.name for f in result.files] == ["sales/sales.csv"]


def test_grouped_checks_give_the_same_verdicts_as_file_by_file(contract, landing, warehouse):
    """check_files counts same-format files in one scan; its verdicts must equal check_file's."""
    con = warehouse()
    load_all(con, contract, landing)
    for name, (file_name, make, _) in BAD_FILES.items():
        if name not in ("link out of the landing zone", "not a data file", "leading dash in file name"):
            make(landing / "sales" / f"{name.replace(' ', '_')}_{file_name}")
    write(sales_frame(), landing / "sales" / "good_copy.parquet")
    from mmm_platform.ingest.landing import scan_table
    from mmm_platform.ingest.validate import check_files
    from mmm_platform.rules import contract_rules

    table, rules = contract["sales"], contract_rules(contract["sales"], PARTITION_START)
    files = scan_table(landing, "sales")
    grouped = [r for r, _ in check_files(con, files, table, rules, TODAY, [])]
    single = [check_files(con, [f], table, rules, TODAY, [])[0][0] for f in files]
    assert [(r.file.name, r.status, r.reason, r.n_rows, r.min_date) for r in grouped] == [
        (r.file.name, r.status, r.reason, r.n_rows, r.min_date) for r in single
    ]
    assert sum(r.accepted for r in grouped) == 2  # sales.csv and good_copy.parquet
