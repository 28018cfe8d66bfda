"""The dbt feature marts on a tiny hand-made warehouse whose answers are worked out by hand.

The world: geos G1 and G2 (region R1) observed 2024-01-01..20, G2 missing 01-05; G3 (region R2)
present only in the calendar on 01-01. G1's temp_mean_c is the day of month (1..20), G2's is
20 + day. Everything else is set where a test needs it. dbt runs in-process (dbtRunner) once for
the full build; the incremental tests then add a day and rebuild only its window.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from dbt.cli.main import dbtRunner

from mmm_platform.config import DBT_PROJECT_DIR
from mmm_platform.contracts import load_contract
from mmm_platform.warehouse import ensure_warehouse


def day(n: int) -> dt.date:
    return dt.date(2024, 1, n)


def insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    """Append rows (dicts of contract columns) to raw.<table>; lineage columns stay NULL."""
    frame = pl.DataFrame(rows)
    con.register("frame", frame)
    con.execute(f"INSERT INTO raw.{table} BY NAME SELECT * FROM frame")
    con.unregister("frame")


def weather_row(geo: str, n: int, temp: float, **overrides: object) -> dict:
    row = {
        "geo_id": geo,
        "date": day(n),
        "temp_max_c": temp + 5,
        "temp_min_c": temp - 5,
        "temp_mean_c": temp,
        "feels_like_c": temp - 1,
        "humidity_pct": 60.0,
        "dew_point_c": temp - 8,
        "wind_speed_kmh": 10.0,
        "uv_index": 3.0,
        "precip_mm": 0.0,
        "precip_type": "none",
        "snowfall_cm": 0.0,
        "air_quality_index": 40.0,
        "severe_alert": False,
    }
    return row | overrides


def build_tiny_world(con: duckdb.DuckDBPyConnection) -> None:
    ensure_warehouse(con, load_contract())
    insert(
        con,
        "geo",
        [
            {
                "geo_id": g,
                "geo_name": g,
                "dma": g,
                "region": r,
                "latitude": lat,
                "longitude": lon,
                "population": 1000,
                "population_density": 10.0,
            }
            for g, r, lat, lon in [
                ("G1", "R1", 40.7, -74.0),
                ("G2", "R1", 42.4, -71.1),
                ("G3", "R2", 34.1, -118.2),
            ]
        ],
    )
    insert(
        con,
        "weather_observed",
        [
            weather_row(
                "G1",
                n,
                float(n),
                severe_alert=(n == 10),
                precip_mm=30.0 if n == 10 else 0.0,
                precip_type="rain" if n == 10 else "none",
            )
            for n in range(1, 21)
        ]
        + [weather_row("G2", n, 20.0 + n) for n in range(1, 21) if n != 5],
    )
    # G1, target 01-10 (observed 10.0): issued at leads 0, 1, 2, 3 and 7
    insert(
        con,
        "weather_forecast",
        [
            {
                "geo_id": "G1",
                "issue_date": day(10 - lead),
                "target_date": day(10),
                "temp_max_c": fc + 5,
                "temp_min_c": fc - 5,
                "temp_mean_c": fc,
                "precip_mm": 0.0,
            }
            for lead, fc in [(0, 10.5), (1, 9.0), (2, 50.0), (3, 12.0), (7, 4.0)]
        ],
    )
    insert(
        con,
        "macro",
        [
            {
                "region": "R1",
                "date": d,
                "cpi": cpi,
                "disposable_income_index": 100.0,
                "unemployment_rate_pct": 5.0,
                "gas_price_per_l": 1.5,
            }
            for d, cpi in [(dt.date(2023, 12, 1), 100.0), (day(15), 102.0)]
        ],
    )
    insert(
        con,
        "calendar",
        [
            {
                "geo_id": g,
                "date": day(n),
                "is_holiday": n == 1,
                "is_payday": n == 15,
                "school_in_session": n > 3,
            }
            for g in ("G1", "G2")
            for n in range(1, 21)
        ]
        + [
            {
                "geo_id": "G3",
                "date": day(1),
                "is_holiday": True,
                "is_payday": False,
                "school_in_session": False,
            }
        ],
    )
    insert(
        con,
        "products",
        [
            {
                "sku_id": sku,
                "category_l1": "c",
                "weather_affinity": "neutral",
                "lifecycle_stage": "core",
                "unit_cost": 1.0,
                "list_price": price,
            }
            for sku, price in [("A", 10.0), ("B", 30.0)]
        ],
    )
    # G1: both SKUs 20% off on 01-12..13; A alone 10% off on 01-03 (weighted 2.5%: not a promotion)
    insert(
        con,
        "promotions",
        [
            {
                "geo_id": "G1",
                "date": day(n),
                "sku_id": sku,
                "discount_depth_pct": depth,
                "price": list_price * (1 - depth / 100),
            }
            for n in range(1, 21)
            for sku, list_price in [("A", 10.0), ("B", 30.0)]
            for depth in [20.0 if n in (12, 13) else 10.0 if (n == 3 and sku == "A") else 0.0]
        ],
    )
    insert(
        con,
        "inventory",
        [
            {
                "geo_id": "G1",
                "date": day(n),
                "sku_id": sku,
                "on_hand_units": 0 if (n == 10 and sku == "A") else 100,
                "stockout": n == 10 and sku == "A",
            }
            for n in range(1, 21)
            for sku in ("A", "B")
        ],
    )
    # G1 reports totals (and on 01-02 a category row as well); G2 reports two categories
    insert(
        con,
        "sales",
        [
            {
                "geo_id": "G1",
                "date": day(n),
                "category_l1": "all",
                "orders": 5,
                "units": 10,
                "revenue": 100.0,
                "cogs": 50.0,
                "contribution_margin": 50.0,
            }
            for n in range(1, 21)
        ]
        + [
            {
                "geo_id": "G1",
                "date": day(2),
                "category_l1": "c",
                "orders": 1,
                "units": 3,
                "revenue": 30.0,
                "cogs": 15.0,
                "contribution_margin": 15.0,
            }
        ]
        + [
            {
                "geo_id": "G2",
                "date": day(n),
                "category_l1": cat,
                "orders": 2,
                "units": units,
                "revenue": 10.0 * units,
                "cogs": 5.0 * units,
                "contribution_margin": 5.0 * units,
            }
            for n in range(1, 21)
            for cat, units in [("a", 4), ("b", 6)]
        ],
    )
    insert(
        con,
        "media_spend",
        [
            {
                "geo_id": "G1",
                "date": day(n),
                "channel": channel,
                "channel_group": group,
                "campaign_id": campaign,
                "campaign_objective": objective,
                "pacing_type": pacing,
                "spend": spend,
                "planned_spend": planned,
                "impressions": impressions,
                "clicks": clicks,
                "conversions": 2.0,
                "share_of_voice_pct": sov,
            }
            for n in range(1, 21)
            for channel, group, campaign, objective, pacing, spend, planned, impressions, clicks, sov in [
                (" Search", "performance", "s1", "prospecting", "always_on", 100.0, 80.0, 20000, 50, 10.0),
                (
                    "tv",
                    "brand",
                    "t1",
                    "brand",
                    "burst",
                    300.0 if n == 5 else 0.0,
                    None,
                    30000 if n == 5 else 0,
                    0,
                    30.0,
                ),
            ]
        ],
    )


def run_dbt(warehouse: Path, *args: str) -> None:
    """dbt in-process against `warehouse`; fails the test with dbt's messages when a node fails."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMM_WAREHOUSE", str(warehouse))
        result = dbtRunner().invoke(
            [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"]
        )
    failures = [f"{r.node.name}: {r.message}" for r in (result.result or []) if r.status not in ("success", "pass")]
    assert result.success and not failures, result.exception or failures


def window_vars(first: dt.date, last: dt.date) -> str:
    return json.dumps({"min_date": first.isoformat(), "max_date": last.isoformat()})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("features") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        build_tiny_world(con)
    run_dbt(path, "build")
    yield path


def query(warehouse: Path, sql: str, *params: object) -> list[tuple]:
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(sql, list(params)).fetchall()


def row(warehouse: Path, table: str, geo: str, date: dt.date, columns: str) -> tuple:
    rows = query(warehouse, f"SELECT {columns} FROM {table} WHERE geo_id = ? AND date = ?", geo, date)
    assert len(rows) == 1, rows
    return rows[0]


def test_sources_list_the_contract_columns() -> None:
    doc = yaml.safe_load((DBT_PROJECT_DIR / "models" / "sources.yml").read_text())
    listed = {t["name"]: [c["name"] for c in t["columns"]] for t in doc["sources"][0]["tables"]}
    contract = load_contract()
    assert listed == {name: table.column_names for name, table in contract.tables.items()}
    assert all(t["config"]["meta"]["dagster"]["asset_key"] == ["raw", t["name"]] for t in doc["sources"][0]["tables"])


def test_media_vars_are_the_contract_enumerations() -> None:
    dbt_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    media = load_contract()["media_spend"]
    for var, column in [
        ("channel_groups", "channel_group"),
        ("campaign_objectives", "campaign_objective"),
        ("pacing_types", "pacing_type"),
    ]:
        assert list(media.column(column).allowed) == dbt_vars[var]


def test_degree_days(warehouse: Path) -> None:
    # base 18 C: G1 on 01-01 is 1 C -> HDD 17; G2 on 01-01 is 21 C -> CDD 3; 18 C -> neither
    assert row(warehouse, "features.weather_daily", "G1", day(1), "hdd, cdd") == (17.0, 0.0)
    assert row(warehouse, "features.weather_daily", "G2", day(1), "hdd, cdd") == (0.0, 3.0)
    assert row(warehouse, "features.weather_daily", "G1", day(18), "hdd, cdd") == (0.0, 0.0)


def test_lags_stay_within_a_geo_and_respect_gaps(warehouse: Path) -> None:
    # the first day of every geo has no lag (not the previous geo's last day)
    assert row(warehouse, "features.weather_daily", "G2", day(1), "temp_mean_c_lag1") == (None,)
    assert row(warehouse, "features.weather_daily", "G1", day(8), "temp_mean_c_lag1, temp_mean_c_lag7") == (
        7.0,
        1.0,
    )
    # G2 has no 01-05: the lag 1 of 01-06 is missing, its lag 2 is 01-04's value (not shifted)
    assert row(
        warehouse,
        "features.weather_daily",
        "G2",
        day(6),
        "temp_mean_c_lag1, temp_mean_c_lag2, temp_mean_c_lag3",
    ) == (None, 24.0, 23.0)
    # rolling mean over the calendar week 01-03..09 of G2 skips the missing day
    assert row(warehouse, "features.weather_daily", "G2", day(9), "temp_mean_c_avg7d, observed_days_7d") == (
        pytest.approx((23 + 24 + 26 + 27 + 28 + 29) / 6),
        6,
    )


def test_anomalies_against_the_geo_climatology(warehouse: Path) -> None:
    # 20 days of history, normals over +/-15 days of year: 01-10 sees all 20 days of G1 (mean 10.5),
    # 01-01 sees days 1..16 (mean 8.5)
    assert row(warehouse, "features.weather_daily", "G1", day(10), "temp_mean_anom_c") == (pytest.approx(-0.5),)
    assert row(warehouse, "features.weather_daily", "G1", day(1), "temp_mean_anom_c") == (pytest.approx(-7.5),)
    # G2's normals are its own (mean of 21..40 without 25), not pooled with G1
    expected = 20 + 10 - (sum(20 + n for n in range(1, 21) if n != 5) / 19)
    assert row(warehouse, "features.weather_daily", "G2", day(10), "temp_mean_anom_c") == (pytest.approx(expected),)


def test_weather_categories_and_event_windows(warehouse: Path) -> None:
    assert row(warehouse, "features.weather_daily", "G1", day(10), "precip_intensity, precip_is_rain") == (
        "heavy",
        True,
    )
    flags = "severe_alert_lead1, severe_alert_lag1, severe_alert_pre_window, severe_alert_post_window"
    # alert on 01-10, windows of 3 days
    assert row(warehouse, "features.weather_daily", "G1", day(9), flags) == (True, False, True, False)
    assert row(warehouse, "features.weather_daily", "G1", day(7), flags) == (False, False, True, False)
    assert row(warehouse, "features.weather_daily", "G1", day(6), flags) == (False, False, False, False)
    assert row(warehouse, "features.weather_daily", "G1", day(10), flags) == (False, False, False, False)
    assert row(warehouse, "features.weather_daily", "G1", day(11), flags) == (False, True, False, True)
    assert row(warehouse, "features.weather_daily", "G1", day(13), flags) == (False, False, False, True)


def test_forecast_error_sign_and_lead_alignment(warehouse: Path) -> None:
    # observed 10.0; issued 1, 3, 7 days before: 9.0, 12.0, 4.0 (the leads 0 and 2 are not features)
    got = row(
        warehouse,
        "features.weather_forecast_error",
        "G1",
        day(10),
        "temp_mean_c_fc_l1, temp_mean_c_fc_error_l1, temp_mean_c_fc_error_l3, temp_mean_c_fc_error_l7, "
        "temp_mean_c_fc_revision_l3_l1, temp_mean_c_fc_revision_l7_l3, temp_max_c_fc_error_l1",
    )
    assert got == (9.0, 1.0, -2.0, 6.0, -3.0, 8.0, 1.0)
    assert row(warehouse, "features.weather_forecast_error", "G1", day(9), "temp_mean_c_fc_error_l1") == (None,)


def test_macro_is_forward_filled_from_its_releases(warehouse: Path) -> None:
    assert row(warehouse, "features.geo_day", "G1", day(14), "cpi, macro_age_days") == (100.0, 44)
    assert row(warehouse, "features.geo_day", "G2", day(15), "cpi, macro_age_days") == (102.0, 0)
    assert row(warehouse, "features.geo_day", "G1", day(20), "cpi, macro_age_days") == (102.0, 5)
    assert row(warehouse, "features.geo_day", "G3", day(1), "cpi") == (None,)  # R2 has no release


def test_promotion_depth_index_and_windows(warehouse: Path) -> None:
    columns = (
        "round(weighted_discount_depth_pct, 9), round(price_index, 9), promo_active, "
        "pre_promo_window, post_promo_window, days_to_promo, days_since_promo"
    )
    assert row(warehouse, "features.promo_day", "G1", day(3), columns) == (
        2.5,
        97.5,
        False,
        False,
        False,
        None,
        None,
    )
    assert row(warehouse, "features.promo_day", "G1", day(4), columns)[3:6] == (False, False, None)
    assert row(warehouse, "features.promo_day", "G1", day(5), columns)[3:6] == (True, False, 7)
    assert row(warehouse, "features.promo_day", "G1", day(11), columns)[3:6] == (True, False, 1)
    assert row(warehouse, "features.promo_day", "G1", day(12), columns) == (
        20.0,
        80.0,
        True,
        False,
        False,
        0,
        0,
    )
    assert row(warehouse, "features.promo_day", "G1", day(14), columns)[3:] == (False, True, None, 1)
    assert row(warehouse, "features.promo_day", "G1", day(20), columns)[3:] == (False, True, None, 7)


def test_inventory_and_sales(warehouse: Path) -> None:
    assert row(warehouse, "features.inventory_day", "G1", day(10), "stockout_rate, on_hand_units, days_of_cover") == (
        0.5,
        100,
        10.0,
    )
    # a total row wins over a category row of the same geo-day; categories are summed otherwise
    assert row(warehouse, "features.sales_day", "G1", day(2), "units, revenue") == (10, 100.0)
    assert row(warehouse, "features.sales_day", "G2", day(2), "units, revenue") == (10, 100.0)


def test_media_features(warehouse: Path) -> None:
    channels = query(warehouse, "SELECT DISTINCT channel FROM features.media_channel_day ORDER BY 1")
    assert channels == [("search",), ("tv",)]
    got = query(
        warehouse,
        "SELECT cpm, cpc, cpa, plan_deviation, plan_deviation_pct, paid_sov_pct, pacing_always_on "
        "FROM features.media_channel_day WHERE geo_id = 'G1' AND date = ? AND channel = 'search'",
        day(1),
    )
    assert got == [(5.0, 2.0, 50.0, 20.0, 25.0, 10.0, True)]
    columns = "spend, spend_group_brand, spend_group_performance, spend_obj_brand, pacing_burst, paid_sov_pct"
    assert row(warehouse, "features.media_day", "G1", day(5), columns) == (
        400.0,
        300.0,
        100.0,
        300.0,
        True,
        22.0,
    )
    assert row(warehouse, "features.media_day", "G1", day(6), columns)[:5] == (100.0, 0.0, 100.0, 0.0, False)
    # a geo-day without media rows has zero spend in geo_day, not NULL
    assert row(warehouse, "features.geo_day", "G2", day(1), "spend, pacing_burst") == (0.0, False)


def test_geo_day_has_one_row_per_landing_geo_day(warehouse: Path) -> None:
    landing = query(
        warehouse,
        """
        SELECT count(*) FROM (
            SELECT geo_id, date FROM raw.weather_observed UNION SELECT geo_id, date FROM raw.calendar
            UNION SELECT geo_id, date FROM raw.sales UNION SELECT geo_id, date FROM raw.media_spend)""",
    )
    assert landing == [(41,)]  # G1 20, G2 20 (calendar covers 01-05), G3 1
    assert query(warehouse, "SELECT count(*), count(DISTINCT (geo_id, date)) FROM features.geo_day") == [(41, 41)]
    assert row(warehouse, "features.geo_day", "G3", day(1), "region, is_holiday, temp_mean_c") == (
        "R2",
        True,
        None,
    )


def test_geo_week_aggregates_days(warehouse: Path) -> None:
    # ISO week of Monday 2024-01-08: 7 days, G1 spend 100 a day, revenue 100 a day, alert on 01-10
    got = query(
        warehouse,
        "SELECT days, spend, revenue, severe_alert_days, temp_mean_c FROM features.geo_week "
        "WHERE geo_id = 'G1' AND week_start = ?",
        day(8),
    )
    assert got == [(7, 700.0, 700.0, 1, 11.0)]


def test_new_day_rebuilds_only_its_window(warehouse: Path) -> None:
    def snapshot() -> list[tuple]:
        return query(warehouse, "SELECT * FROM features.weather_daily ORDER BY geo_id, date")

    with duckdb.connect(str(warehouse)) as con:
        # a marker far outside the next window: a rebuild of history would overwrite it
        con.execute("UPDATE features.weather_daily SET humidity_pct = -1 WHERE geo_id = 'G1' AND date = ?", [day(1)])
        insert(con, "weather_observed", [weather_row("G1", 21, 21.0, severe_alert=True)])
    run_dbt(warehouse, "build", "--select", "tag:daily", "--vars", window_vars(day(21), day(21)))
    assert row(warehouse, "features.weather_daily", "G1", day(21), "temp_mean_c_lag1, temp_mean_c_lag7") == (
        20.0,
        14.0,
    )
    # the day before learns that an alert follows it (the write window reaches back lead_days)
    assert row(warehouse, "features.weather_daily", "G1", day(20), "severe_alert_lead1") == (True,)
    assert row(warehouse, "features.weather_daily", "G1", day(1), "humidity_pct") == (-1.0,)
    assert row(warehouse, "features.geo_day", "G1", day(21), "temp_mean_c, spend") == (21.0, 0.0)
    before = snapshot()
    run_dbt(warehouse, "build", "--select", "tag:daily", "--vars", window_vars(day(21), day(21)))
    assert snapshot() == before  # idempotent


def test_views_still_read_after_the_warehouse_file_is_renamed(warehouse: Path, tmp_path: Path) -> None:
    # DuckDB names the catalog after the file and stores a view's SQL as written: a view that
    # named "warehouse".raw.x broke in a copy called backup.duckdb
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CHECKPOINT")  # everything in the file, nothing left in its write-ahead log
    copy = tmp_path / "backup.duckdb"
    shutil.copy(warehouse, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        views = con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        assert len(views) >= 10, views
        for schema, view in views:
            con.execute(f'SELECT count(*) FROM "{schema}"."{view}"').fetchone()
