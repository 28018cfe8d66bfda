"""Settings every entry point honours, read from the environment (see docs/operations.md)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


@dataclass(frozen=True)
class Settings:
    """Relative paths are taken from the working directory and made absolute here, so dbt (which
    runs inside dbt_project/) opens the same warehouse file."""

    landing_dir: Path
    warehouse: Path
    #: first day of the daily partitions; landing rows before it are refused as out of range
    partition_start: dt.date
    #: days after which the newest partition of a dated table is reported stale (a warning)
    freshness_days: int


def get_settings() -> Settings:
    return Settings(
        landing_dir=Path(os.environ.get("MMM_LANDING_DIR", "data/landing")).absolute(),
        warehouse=Path(os.environ.get("MMM_WAREHOUSE", "data/warehouse.duckdb")).absolute(),
        partition_start=dt.date.fromisoformat(os.environ.get("MMM_PARTITION_START", "2020-01-01")),
        freshness_days=int(os.environ.get("MMM_FRESHNESS_DAYS", "3")),
    )
