"""Settings every entry point honours, read from the environment (see docs/operations.md).

A bad setting is a `SettingsError` with one line that names the variable, its value and what it
must be; the CLI prints it and exits 2, `dagster dev` shows it when the code location loads.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
#: the local Dagster instance settings (pools, run limits) copied into a new DAGSTER_HOME
INSTANCE_TEMPLATE = PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"


#: schemas the platform writes, and names DuckDB reserves: a warehouse file named like one of them
#: makes every `schema.table` reference ambiguous (the database is named after the file)
WAREHOUSE_SCHEMAS = frozenset(
    {
        "raw",
        "ingest",
        "staging",
        "features",
        "mmm",
        "causal",
        "allocator",
        "validation",
        "main",
        "memory",
        "system",
        "temp",
    }
)


class SettingsError(ValueError):
    """A setting from the environment that cannot be used as given."""


@dataclass(frozen=True)
class Settings:
    """Relative paths are taken from the working directory and made absolute here, so dbt (which
    runs inside dbt_project/) opens the same warehouse file."""

    landing_dir: Path
    warehouse: Path
    #: first day of the partitions as configured; None: where the landing data starts
    partition_start: dt.date | None
    #: days after which the newest date of a dated table is reported stale (a warning)
    freshness_days: int
    #: seconds a run waits for another process's lock on the warehouse before it fails
    lock_timeout_s: float
    #: the Dagster instance the command line records its runs in (the one `make dev` shows)
    dagster_home: Path
    #: the HTML report and the full-size figures of the asset pages
    report_dir: Path


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _path(name: str, default: str) -> Path:
    path = Path(_env(name, default)).expanduser().absolute()
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SettingsError(f"{name}={path}: {parent} is a file, so nothing can be created under it")
    if name == "MMM_WAREHOUSE":
        if path.is_dir():
            raise SettingsError(
                f"{name}={path} is a folder; it must name a DuckDB file (e.g. {path / 'warehouse.duckdb'})"
            )
        if path.stem.lower() in WAREHOUSE_SCHEMAS:
            raise SettingsError(
                f"{name}={path}: DuckDB names the database after the file, and {path.stem!r} is one of the "
                f"warehouse's schemas ({', '.join(sorted(WAREHOUSE_SCHEMAS))}): choose another file name"
            )
    return path


def _number(name: str, default: str, kind: type[int] | type[float], minimum: float) -> int | float:
    raw = _env(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _date(name: str) -> dt.date | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from None
    if day > dt.date.today():
        raise SettingsError(f"{name}={raw!r} is after today: no partition could hold any data")
    return day


def get_settings() -> Settings:
    return Settings(
        landing_dir=_path("MMM_LANDING_DIR", "data/landing"),
        warehouse=_path("MMM_WAREHOUSE", "data/warehouse.duckdb"),
        partition_start=_date("MMM_PARTITION_START"),
        freshness_days=int(_number("MMM_FRESHNESS_DAYS", "3", int, 0)),
        lock_timeout_s=float(_number("MMM_LOCK_TIMEOUT", "600", float, 0)),
        dagster_home=_path("DAGSTER_HOME", ".dagster_home"),
        report_dir=_path("MMM_REPORT_DIR", "data/reports"),
    )
