"""The landing contract (assets/contracts/landing_contract.yaml) as typed objects.

Everything that knows what a landing table looks like (ingestion, quality rules, the Dagster asset
factory, the simulator's tests) reads it from here, so adding a column or a table is an edit of
the YAML, not of code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from mmm_platform.config import ASSETS_DIR

CONTRACT_PATH = ASSETS_DIR / "contracts" / "landing_contract.yaml"
#: platform rules the shared contract states in prose (future target dates, forecast leads)
PLATFORM_RULES_PATH = ASSETS_DIR / "contracts" / "platform_rules.yaml"

#: contract type -> DuckDB type
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    unit: str | None = None

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class LeadDays:
    """`to - from` in days must lie in [min, max] (a forecast's lead)."""

    start: str
    end: str
    min: int
    max: int


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required: bool = True
    #: the date column that places a row in a partition; None for dimensions
    partition_column: str | None = None
    #: date columns that may lie after today (forecast target dates)
    future_dates_allowed: tuple[str, ...] = ()
    lead_days: LeadDays | None = None
    #: days after which the newest date is stale: None for MMM_FRESHNESS_DAYS, 0 for never
    freshness_days: int | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def is_partitioned(self) -> bool:
        return self.partition_column is not None

    @property
    def references_geo(self) -> bool:
        return self.name != "geo" and "geo_id" in self.column_names

    @property
    def date_columns(self) -> list[Column]:
        return [c for c in self.columns if c.type in ("date", "timestamp")]


@dataclass(frozen=True)
class Contract:
    version: int
    tables: dict[str, Table]

    def __getitem__(self, name: str) -> Table:
        return self.tables[name]


def _partition_column(name: str, spec: dict) -> str | None:
    if "partition_column" in spec:
        return spec["partition_column"]
    cols = spec["columns"]
    if "date" in cols and cols["date"]["type"] == "date":
        return "date"
    return None


def _lead(name: str, spec: dict | None, columns: set[str]) -> LeadDays | None:
    if spec is None:
        return None
    lead = LeadDays(spec["from"], spec["to"], int(spec["min"]), int(spec["max"]))
    if not {lead.start, lead.end} <= columns:
        raise ValueError(f"platform rules, table {name}: lead_days names undeclared columns")
    return lead


def _freshness(name: str, value: object) -> int | None:
    """`off` (YAML reads it as False) -> 0: never stale; a number of days; absent -> the default."""
    if value is None:
        return None
    if value is False:
        return 0
    if isinstance(value, int) and value > 0:
        return value
    raise ValueError(f"platform rules, table {name}: freshness_days must be a positive number of days or off")


def parse_contract(doc: dict, platform: dict | None = None) -> Contract:
    """The contract's tables, with the platform rules of `platform` (platform_rules.yaml) merged in."""
    extra = (platform or {}).get("tables", {})
    unknown_tables = set(extra) - set(doc["tables"])
    if unknown_tables:
        raise ValueError(f"platform rules name tables the contract lacks: {sorted(unknown_tables)}")
    tables = {}
    for name, spec in doc["tables"].items():
        columns = tuple(
            Column(
                name=col,
                type=c["type"],
                required=c.get("required", True) is not False,
                min=c.get("min"),
                max=c.get("max"),
                allowed=tuple(c["allowed"]) if "allowed" in c else None,
                unit=c.get("unit"),
            )
            for col, c in spec["columns"].items()
        )
        unknown = {c.type for c in columns} - DUCKDB_TYPES.keys()
        if unknown:
            raise ValueError(f"contract table {name}: unknown column types {sorted(unknown)}")
        missing_key = set(spec["key"]) - {c.name for c in columns}
        if missing_key:
            raise ValueError(f"contract table {name}: key columns {sorted(missing_key)} not declared")
        rules = extra.get(name, {})
        names = {c.name for c in columns}
        future = tuple(rules.get("future_dates_allowed", ()))
        if not set(future) <= names:
            raise ValueError(f"platform rules, table {name}: future_dates_allowed names undeclared columns")
        tables[name] = Table(
            name=name,
            key=tuple(spec["key"]),
            columns=columns,
            required=spec.get("required", True) is not False,
            partition_column=_partition_column(name, spec),
            future_dates_allowed=future,
            lead_days=_lead(name, rules.get("lead_days"), names),
            freshness_days=_freshness(name, rules.get("freshness_days")),
        )
    return Contract(version=int(doc.get("version", 1)), tables=tables)


@cache
def load_contract(path: Path = CONTRACT_PATH, platform_rules: Path = PLATFORM_RULES_PATH) -> Contract:
    platform = _yaml(Path(platform_rules)) if Path(platform_rules).exists() else None
    return parse_contract(_yaml(Path(path)), platform)


def _yaml(path: Path) -> dict:
    """libyaml's loader where it is built in: ten times faster than the pure-Python one."""
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


#: the largest lead a forecast may have (target_date - issue_date), in days
MAX_FORECAST_LEAD_DAYS = load_contract()["weather_forecast"].lead_days.max
