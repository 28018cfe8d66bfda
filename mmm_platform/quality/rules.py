"""Data-quality rules, compiled from the landing contract and the expectation suites in assets/.

One list of rules has two executors: the ingestion gate runs them as DuckDB SQL on each landing
file (so a bad file is refused before anything reaches raw), and the asset checks run them as a
Great Expectations suite on what raw holds. Writing a rule once keeps the two from drifting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from mmm_platform.config import ASSETS_DIR
from mmm_platform.contracts import MAX_FORECAST_LEAD_DAYS, Table

EXPECTATIONS_DIR = ASSETS_DIR / "expectations"

Severity = Literal["error", "warn"]


@dataclass(frozen=True)
class Rule:
    """One contract rule. `kind` selects how each executor evaluates it."""

    kind: Literal[
        "not_null",
        "type",
        "range",
        "allowed",
        "unique_key",
        "known_geo",
        "not_future",
        "lead",
        "partition_start",
    ]
    column: str | None
    description: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    severity: Severity = "error"

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.column}" if self.column else self.kind


def contract_rules(table: Table, partition_start: dt.date | None = None) -> list[Rule]:
    """Every rule the landing contract implies for one table (all of them errors), plus the
    platform's own: no row may fall before the first daily partition, where it could never load."""
    rules: list[Rule] = []
    for c in table.columns:
        rules.append(Rule("type", c.name, f"{c.name} must be of type {c.type}", {"type": c.type}))
        if c.required or c.name in table.key:
            rules.append(Rule("not_null", c.name, f"{c.name} is required and must not be null"))
        if c.min is not None or c.max is not None:
            lo = "-inf" if c.min is None else f"{c.min:g}"
            hi = "inf" if c.max is None else f"{c.max:g}"
            rules.append(Rule("range", c.name, f"{c.name} must be between {lo} and {hi}", {"min": c.min, "max": c.max}))
        if c.allowed is not None:
            rules.append(
                Rule(
                    "allowed",
                    c.name,
                    f"{c.name} must be one of {', '.join(c.allowed)}",
                    {"allowed": list(c.allowed)},
                )
            )
        if c.type in ("date", "timestamp") and not (table.name == "weather_forecast" and c.name == "target_date"):
            rules.append(Rule("not_future", c.name, f"{c.name} must not be after today"))
    rules.append(Rule("unique_key", None, f"key ({', '.join(table.key)}) must be unique", {"key": list(table.key)}))
    if table.references_geo:
        rules.append(Rule("known_geo", "geo_id", "geo_id must exist in the geo table"))
    if table.partition_column and partition_start is not None:
        rules.append(
            Rule(
                "partition_start",
                table.partition_column,
                f"{table.partition_column} must not be before the first partition, {partition_start}"
                " (set MMM_PARTITION_START to load older data)",
                {"start": partition_start},
            )
        )
    if table.name == "weather_forecast":
        rules.append(
            Rule(
                "lead",
                "target_date",
                f"target_date - issue_date must be between 0 and {MAX_FORECAST_LEAD_DAYS} days",
                {"min": 0, "max": MAX_FORECAST_LEAD_DAYS},
            )
        )
    return rules


@dataclass(frozen=True)
class Expectation:
    """A Great Expectations expectation declared in assets/expectations/<table>.yaml."""

    name: str
    expectation_type: str
    kwargs: dict[str, Any] = field(hash=False, compare=False)
    severity: Severity


@dataclass(frozen=True)
class Suite:
    """Rules beyond the contract for one table: extra expectations and null-coverage floors."""

    expectations: tuple[Expectation, ...] = ()
    #: column -> minimum share of non-null values in a checked range (a warning below it)
    min_coverage: dict[str, float] = field(default_factory=dict, hash=False, compare=False)


@cache
def load_suite(table: str, directory: Path = EXPECTATIONS_DIR) -> Suite:
    path = directory / f"{table}.yaml"
    if not path.exists():
        return Suite()
    doc = yaml.safe_load(path.read_text()) or {}
    expectations = tuple(
        Expectation(
            name=e["name"],
            expectation_type=e["expectation"],
            kwargs=dict(e.get("kwargs", {})),
            severity=e.get("severity", "error"),
        )
        for e in doc.get("expectations", [])
    )
    bad = [e.name for e in expectations if e.severity not in ("error", "warn")]
    if bad:
        raise ValueError(f"{path}: severity must be 'error' or 'warn' (rules {bad})")
    return Suite(expectations=expectations, min_coverage=dict(doc.get("min_coverage", {})))
