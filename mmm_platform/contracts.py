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

#: contract type -> DuckDB type
DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}

#: the largest lead a forecast may have (target_date - issue_date), in days
MAX_FORECAST_LEAD_DAYS = 14


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
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required: bool = True
    #: the date column that places a row in a daily partition; None for dimensions
    partition_column: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[Column]:
        return [c for c in self.columns if c.required]

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


def parse_contract(doc: dict) -> Contract:
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
        tables[name] = Table(
            name=name,
            key=tuple(spec["key"]),
            columns=columns,
            required=spec.get("required", True) is not False,
            partition_column=_partition_column(name, spec),
        )
    return Contract(version=int(doc.get("version", 1)), tables=tables)


@cache
def load_contract(path: Path = CONTRACT_PATH) -> Contract:
    return parse_contract(yaml.safe_load(Path(path).read_text()))
