"""Expectation suites beyond the contract, declared in assets/expectations/<table>.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from mmm_platform.config import ASSETS_DIR

EXPECTATIONS_DIR = ASSETS_DIR / "expectations"

Severity = Literal["error", "warn"]


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
