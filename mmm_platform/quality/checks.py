"""The data-quality checks of one raw table over a window of partitions, as plain functions.

Four checks per table, each with a fixed severity:
- `landing_files_accepted` (error, blocking): no landing file touching the window was refused.
- `contract` (error, blocking): raw rows in the window pass the contract rules and the error-level
  expectations of assets/expectations/<table>.yaml, run by Great Expectations.
- `quality_warnings` (warn): warn-level expectations and null-coverage floors.
- `freshness` (warn): the newest date is recent enough.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from mmm_platform.contracts import Table
from mmm_platform.ingest.load import Window
from mmm_platform.ingest.warehouse import LINEAGE_COLUMNS, quote, raw_table
from mmm_platform.quality.gx_suite import run_suite
from mmm_platform.quality.rules import Severity, contract_rules, load_suite


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity
    summary: str
    #: one line per problem, naming table, file or column, rule and rows
    details: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckContext:
    con: duckdb.DuckDBPyConnection
    table: Table
    window: Window | None
    today: dt.date
    partition_start: dt.date
    freshness_days: int


def _where(ctx: CheckContext) -> str:
    if ctx.window is None or ctx.table.partition_column is None:
        return "TRUE"
    return ctx.window.predicate(quote(ctx.table.partition_column))


def read_window(ctx: CheckContext) -> pd.DataFrame:
    lineage = ", ".join(LINEAGE_COLUMNS)
    return ctx.con.execute(f"SELECT * EXCLUDE ({lineage}) FROM {raw_table(ctx.table)} WHERE {_where(ctx)}").df()


def landing_files_accepted(ctx: CheckContext) -> CheckOutcome:
    rows = ctx.con.execute(
        "SELECT file, reason, violations, n_rows, min_date, max_date FROM ingest.landing_files "
        "WHERE table_name = ? AND status = 'refused' ORDER BY file",
        [ctx.table.name],
    ).fetchall()
    refused = [r for r in rows if ctx.window is None or ctx.window.overlaps(r[4], r[5])]
    details = []
    for file, reason, violations, *_ in refused:
        listed = json.loads(violations) if violations else []
        if not listed:
            details.append(f"{ctx.table.name}: file {file} refused: {reason}")
        for v in listed:
            rows_txt = f"{v['rows']} row(s)" + (f", e.g. rows {v['sample_rows']}" if v["sample_rows"] else "")
            details.append(
                f"{ctx.table.name}: file {file} refused by rule {v['rule']} ({v['description']}): {rows_txt}"
            )
    return CheckOutcome(
        "landing_files_accepted",
        passed=not refused,
        severity="error",
        summary=f"{len(refused)} landing file(s) refused" if refused else "every landing file was accepted",
        details=details,
        metadata={"refused_files": [r[0] for r in refused]},
    )


def _suite_check(ctx: CheckContext, df: pd.DataFrame, severity: Severity) -> tuple[list[str], dict[str, Any]]:
    rules = contract_rules(ctx.table, ctx.partition_start) if severity == "error" else []
    known = [r[0] for r in ctx.con.execute("SELECT geo_id FROM raw.geo").fetchall()]
    outcome = run_suite(df, ctx.table, rules, load_suite(ctx.table.name), severity, known, ctx.today)
    details = [f"{ctx.table.name}: {f}" for f in outcome.failures]
    return details, {"rows_checked": len(df), "expectations": outcome.evaluated}


def contract(ctx: CheckContext) -> CheckOutcome:
    df = read_window(ctx)
    n = len(df)
    details, meta = _suite_check(ctx, df, "error")
    return CheckOutcome(
        "contract",
        passed=not details,
        severity="error",
        summary=f"{len(details)} expectation(s) failed on {n} rows" if details else f"{n} rows meet the contract",
        details=details,
        metadata=meta,
    )


def null_coverage(ctx: CheckContext) -> dict[str, float]:
    """Share of non-null values per contract column in the window (1.0 for an empty window),
    counted in DuckDB so the ingestion asset can report it without reading the rows."""
    cols = ctx.table.column_names
    counts = ", ".join(f"count({quote(c)})" for c in cols)
    n, *filled = ctx.con.execute(
        f"SELECT count(*), {counts} FROM {raw_table(ctx.table)} WHERE {_where(ctx)}"
    ).fetchone()
    return {c: (f / n if n else 1.0) for c, f in zip(cols, filled, strict=True)}


def quality_warnings(ctx: CheckContext) -> CheckOutcome:
    df = read_window(ctx)
    details, meta = _suite_check(ctx, df, "warn")
    coverage = null_coverage(ctx)
    for col, floor in load_suite(ctx.table.name).min_coverage.items():
        if coverage.get(col, 0.0) < floor:
            details.append(f"{ctx.table.name}: column {col} is {coverage.get(col, 0.0):.0%} filled, below {floor:.0%}")
    return CheckOutcome(
        "quality_warnings",
        passed=not details,
        severity="warn",
        summary=f"{len(details)} warning(s)" if details else "no warnings",
        details=details,
        metadata=meta | {"null_coverage": {k: round(v, 4) for k, v in coverage.items()}},
    )


def freshness(ctx: CheckContext) -> CheckOutcome:
    col = ctx.table.partition_column
    if col is None:
        return CheckOutcome("freshness", True, "warn", "not a dated table")
    latest = ctx.con.execute(f"SELECT max({quote(col)}) FROM {raw_table(ctx.table)}").fetchone()[0]
    if latest is None:
        ok = not ctx.table.required
        return CheckOutcome(
            "freshness", ok, "warn", "no rows yet" + ("" if ok else f": {ctx.table.name} has never loaded")
        )
    age = (ctx.today - latest).days
    ok = age <= ctx.freshness_days
    summary = f"newest {col} is {latest} ({age} day(s) old; limit {ctx.freshness_days})"
    return CheckOutcome(
        "freshness",
        ok,
        "warn",
        summary,
        [] if ok else [f"{ctx.table.name}: {summary}"],
        {"latest": str(latest), "age_days": age},
    )


@dataclass(frozen=True)
class CheckSpec:
    name: str
    severity: Severity
    description: str
    run: Callable[[CheckContext], CheckOutcome]

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


CHECKS = [
    CheckSpec(
        "landing_files_accepted",
        "error",
        "No landing file touching these partitions was refused.",
        landing_files_accepted,
    ),
    CheckSpec(
        "contract",
        "error",
        "Raw rows meet the landing contract and error-level expectations (Great Expectations).",
        contract,
    ),
    CheckSpec(
        "quality_warnings",
        "warn",
        "Warn-level expectations and null-coverage floors (Great Expectations).",
        quality_warnings,
    ),
    CheckSpec("freshness", "warn", "The newest partition date is recent (MMM_FRESHNESS_DAYS).", freshness),
]
