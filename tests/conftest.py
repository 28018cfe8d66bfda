"""Shared fixtures: a tiny hand-made landing zone whose every value is known, and a warehouse."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from mmm_platform.contracts import Contract, load_contract

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# before any test module imports the Dagster definitions: their partitions start here, not where
# whatever landing zone the working directory holds starts
os.environ["MMM_PARTITION_START"] = "2020-01-01"
# parallel workers (pytest-xdist, `-n`): dbt's artifacts (manifest, partial-parse state, run results)
# in a target folder per worker, so no two dbt runs write one folder at once
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["DBT_TARGET_PATH"] = f"target/pytest-{worker}"

DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(4)]
GEOS = ["g01", "g02"]
PARTITION_START = dt.date(2020, 1, 1)
TODAY = dt.date(2024, 3, 10)


def geo_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "geo_id": GEOS,
            "geo_name": ["North Town", "South Bay"],
            "dma": ["dma1", "dma2"],
            "region": ["north", "south"],
            "latitude": [52.1, 34.0],
            "longitude": [-1.2, -118.2],
            "population": [120_000, 450_000],
            "population_density": [800.0, 2400.0],
        }
    )


def weather_frame(days: list[dt.date] = DAYS) -> pl.DataFrame:
    rows = []
    for g_i, g in enumerate(GEOS):
        for d_i, d in enumerate(days):
            t = 10.0 + 5 * g_i + d_i
            rows.append(
                {
                    "geo_id": g,
                    "date": d,
                    "temp_max_c": t + 4,
                    "temp_min_c": t - 4,
                    "temp_mean_c": t,
                    "feels_like_c": t - 1,
                    "humidity_pct": 60.0 + d_i,
                    "dew_point_c": t - 6,
                    "wind_speed_kmh": 12.0,
                    "uv_index": 3.0,
                    "precip_mm": 0.0 if d_i % 2 else 2.5,
                    "precip_type": "none" if d_i % 2 else "rain",
                    "snowfall_cm": 0.0,
                    "air_quality_index": 40.0,
                    "severe_alert": False,
                }
            )
    return pl.DataFrame(rows)


def sales_frame(days: list[dt.date] = DAYS) -> pl.DataFrame:
    rows = []
    for g_i, g in enumerate(GEOS):
        for d_i, d in enumerate(days):
            revenue = 1000.0 * (g_i + 1) + 10 * d_i
            rows.append(
                {
                    "geo_id": g,
                    "date": d,
                    "category_l1": "all",
                    "orders": 50 + d_i,
                    "units": 80 + d_i,
                    "revenue": revenue,
                    "cogs": revenue * 0.6,
                    "contribution_margin": revenue * 0.3,
                }
            )
    return pl.DataFrame(rows)


def forecast_frame(days: list[dt.date] = DAYS, leads: tuple[int, ...] = (0, 1, 3)) -> pl.DataFrame:
    rows = []
    for g in GEOS:
        for d in days:
            for lead in leads:
                rows.append(
                    {
                        "geo_id": g,
                        "issue_date": d - dt.timedelta(days=lead),
                        "target_date": d,
                        "temp_max_c": 15.0 + lead,
                        "temp_min_c": 5.0,
                        "temp_mean_c": 10.0 + lead,
                        "precip_mm": 1.0,
                    }
                )
    return pl.DataFrame(rows)


def write(df: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.write_csv(path)
    else:
        df.write_parquet(path)
    return path


@pytest.fixture(autouse=True)
def throwaway_dagster_instance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test records its CLI runs in its own Dagster instance, whatever DAGSTER_HOME the shell
    has, and writes its figures under its own report folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MMM_REPORT_DIR", str(tmp_path / "reports"))


@pytest.fixture
def contract() -> Contract:
    return load_contract()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """geo (parquet), weather_observed split in a parquet and a CSV file, sales as CSV."""
    root = tmp_path / "landing"
    write(geo_frame(), root / "geo" / "geo.parquet")
    w = weather_frame()
    write(w.filter(pl.col("date") <= DAYS[1]), root / "weather_observed" / "weather_a.parquet")
    write(w.filter(pl.col("date") > DAYS[1]), root / "weather_observed" / "weather_b.csv")
    write(sales_frame(), root / "sales" / "sales.csv")
    return root


@pytest.fixture
def warehouse(tmp_path: Path) -> Callable[[], duckdb.DuckDBPyConnection]:
    path = tmp_path / "warehouse.duckdb"
    return lambda: duckdb.connect(str(path))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, landing: Path, tmp_path: Path) -> Path:
    """Point the platform's settings at the test landing zone and warehouse."""
    monkeypatch.setenv("MMM_LANDING_DIR", str(landing))
    monkeypatch.setenv("MMM_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    return landing
