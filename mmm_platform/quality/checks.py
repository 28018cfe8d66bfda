"""The data-quality checks of one raw table over a window of partitions, as plain functions.

Four checks per table, each with a fixed severity:
- `landing_files_accepted` (error, blocking): no landing file touching the window was refused, and
  the table's folder has not vanished since it was loaded.
- `contract` (error, blocking): raw rows in the window pass the contract rules (the gate's SQL
  predicates, re-run on raw) and the error-level expectations of assets/expectations/<table>.yaml,
  run by Great Expectations.
- `quality_warnings` (warn): warn-level expectations, null-coverage floors, vanished files.
- `freshness` (warn): the newest date is recent enough.
Plus one check of the landing zone as a whole (`landing_zone_layout`, warn): what lies at its root
that no table claims.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mmm_platform.contracts import Table
from mmm_platform.ingest.landing import has_entries
from mmm_platform.quality.gx_suite import run_suite, suite_columns
from mmm_platform.quality.suites import Severity, load_suite
from mmm_platform.rules import contract_rules, evaluate, raw_relation
from mmm_platform.warehouse import Window, quote, raw_table


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
    landing_root: Path


def _where(ctx: CheckContext) -> str:
    if ctx.window is None or ctx.table.partition_column is None:
        return "TRUE"
    return ctx.window.predicate(quote(ctx.table.partition_column))


def _files(ctx: CheckContext, status: str) -> list[tuple]:
    return ctx.con.execute(
        "SELECT file, reason, violations, min_date, max_date FROM ingest.landing_files "
        "WHERE table_name = ? AND status = ? ORDER BY file",
        [ctx.table.name, status],
    ).fetchall()


def vanished_folder(ctx: CheckContext) -> str | None:
    """Why the table's input is gone although raw holds rows loaded from it, or None. A folder
    holding only uploads in progress is empty; rows of retracted files do not count."""
    folder = ctx.landing_root / ctx.table.name
    if has_entries(ctx.landing_root, ctx.table.name):
        return None
    loaded = ctx.con.execute(
        f"SELECT count(DISTINCT _source_file) FROM {raw_table(ctx.table)} WHERE _source_file IN "
        "(SELECT file FROM ingest.landing_files WHERE table_name = ? AND status <> 'retracted')",
        [ctx.table.name],
    ).fetchone()[0]
    if not loaded:
        return None
    where = "the landing root is empty" if not any(ctx.landing_root.glob("*")) else f"{folder}/ is missing or empty"
    return (
        f"{ctx.table.name}: {where}, but {loaded} file(s) were loaded from it before; raw is left untouched "
        "(restore the files, or retract them with `mmm-platform retract`)"
    )


def landing_files_accepted(ctx: CheckContext) -> CheckOutcome:
    refused = [r for r in _files(ctx, "refused") if ctx.window is None or ctx.window.overlaps(r[3], r[4])]
    details = []
    gone = vanished_folder(ctx)
    if gone:
        details.append(gone)
    for file, reason, violations, *_ in refused:
        listed = json.loads(violations) if violations else []
        if not listed:
            details.append(f"{ctx.table.name}: file {file} refused: {reason}")
        for v in listed:
            rows_txt = f"{v['rows']} row(s)" + (f", e.g. rows {v['sample_rows']}" if v["sample_rows"] else "")
            details.append(
                f"{ctx.table.name}: file {file} refused by rule {v['rule']} ({v['description']}): {rows_txt}"
            )
    summary = (
        "the table's landing folder has vanished"
        if gone
        else f"{len(refused)} landing file(s) refused"
        if refused
        else "every landing file was accepted"
    )
    return CheckOutcome(
        "landing_files_accepted",
        passed=not details,
        severity="error",
        summary=summary,
        details=details,
        metadata={"refused_files": [r[0] for r in refused]},
    )


def _suite_check(ctx: CheckContext, severity: Severity) -> tuple[list[str], int]:
    """The table's Great Expectations suite of one severity over the window: (problems, expectations)."""
    suite = load_suite(ctx.table.name)
    cols = suite_columns(suite, severity)
    if not cols:
        return [], 0
    df = ctx.con.execute(
        f"SELECT {', '.join(quote(c) for c in cols)} FROM {raw_table(ctx.table)} WHERE {_where(ctx)}"
    ).df()
    outcome = run_suite(df, ctx.table, suite, severity)
    return [f"{ctx.table.name}: {f}" for f in outcome.failures], outcome.evaluated


def _key_sample(table: Table) -> str:
    """A row's key as one readable value, e.g. 'g01, 2024-03-01'."""
    return "concat_ws(', ', " + ", ".join(f"CAST({quote(k)} AS VARCHAR)" for k in table.key) + ")"


def contract(ctx: CheckContext) -> CheckOutcome:
    """The contract rules (SQL, the predicates the gate ran on each file) over raw, then the
    error-level expectations of the table's suite (Great Expectations)."""
    rules = [r for r in contract_rules(ctx.table, ctx.partition_start) if r.kind != "type"]
    result = evaluate(ctx.con, raw_relation(ctx.table, _where(ctx)), rules, ctx.today, _key_sample(ctx.table))
    details = [
        f"{ctx.table.name}: {rule.name} ({rule.description}): {n} row(s), e.g. keys {list(samples)}"
        for rule, n, samples in result.broken
    ]
    suite_details, expectations = _suite_check(ctx, "error")
    details += suite_details
    n = result.rows
    meta = {"rows_checked": n, "contract_rules": len(rules), "expectations": expectations}
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
    details, expectations = _suite_check(ctx, "warn")
    meta = {"expectations": expectations}
    coverage = null_coverage(ctx)
    for col, floor in load_suite(ctx.table.name).min_coverage.items():
        if coverage.get(col, 0.0) < floor:
            details.append(f"{ctx.table.name}: column {col} is {coverage.get(col, 0.0):.0%} filled, below {floor:.0%}")
    missing = _files(ctx, "missing")
    for file, reason, *_ in missing:
        details.append(f"{ctx.table.name}: file {file} is {reason}")
    return CheckOutcome(
        "quality_warnings",
        passed=not details,
        severity="warn",
        summary=f"{len(details)} warning(s)" if details else "no warnings",
        details=details,
        metadata=meta
        | {"null_coverage": {k: round(v, 4) for k, v in coverage.items()}, "missing_files": [m[0] for m in missing]},
    )


def freshness(ctx: CheckContext) -> CheckOutcome:
    col = ctx.table.partition_column
    if col is None or ctx.table.freshness_days == 0:
        return CheckOutcome("freshness", True, "warn", "not a dated series (platform_rules.yaml: freshness off)")
    limit = ctx.table.freshness_days or ctx.freshness_days
    latest = ctx.con.execute(f"SELECT max({quote(col)}) FROM {raw_table(ctx.table)}").fetchone()[0]
    if latest is None:
        ok = not ctx.table.required
        return CheckOutcome(
            "freshness", ok, "warn", "no rows yet" + ("" if ok else f": {ctx.table.name} has never loaded")
        )
    age = (ctx.today - latest).days
    ok = age <= limit
    summary = f"newest {col} is {latest} ({age} day(s) old; limit {limit})"
    return CheckOutcome(
        "freshness",
        ok,
        "warn",
        summary,
        [] if ok else [f"{ctx.table.name}: {summary}"],
        {"latest": str(latest), "age_days": age},
    )


def landing_zone_layout(root: Path, table_folders: list[str], strays: list[str]) -> CheckOutcome:
    """Folders and files at the landing root that no table claims (`strays`, one line each, with
    the table each resembles), or a root that holds no table folder at all."""
    if not root.is_dir():
        details = [f"the landing root {root} does not exist"]
    elif not table_folders:
        details = [f"the landing root {root} holds no table folder", *strays]
    else:
        details = strays
    return CheckOutcome(
        "landing_zone_layout",
        passed=not details,
        severity="warn",
        summary=f"{len(details)} problem(s) in the landing zone layout" if details else "every entry is a table folder",
        details=details,
        metadata={"table_folders": table_folders, "ignored": strays},
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
        "No landing file touching these partitions was refused, and the table's folder has not vanished.",
        landing_files_accepted,
    ),
    CheckSpec(
        "contract",
        "error",
        "Raw rows meet the landing contract rules (SQL) and the error-level expectations (Great Expectations).",
        contract,
    ),
    CheckSpec(
        "quality_warnings",
        "warn",
        "Warn-level expectations, null-coverage floors and landing files that vanished (their rows are kept).",
        quality_warnings,
    ),
    CheckSpec("freshness", "warn", "The newest date is recent (MMM_FRESHNESS_DAYS).", freshness),
]
