"""The ingestion gate: the verdict on each landing file, read whole, against the contract rules.

A file with any violation is refused whole. Files of one physical schema are first counted
together in one grouped scan; only a file with a problem is read again alone, for the reasons and
up to SAMPLE_ROWS row numbers per rule (the verdicts equal the file-by-file ones: a test checks).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from mmm_platform.contracts import Table
from mmm_platform.ingest.landing import LandingFile
from mmm_platform.ingest.read import (
    PATH_COLUMN,
    ROW_COLUMN,
    FilePlan,
    UnreadableFile,
    clamped,
    duckdb_reason,
    plan_file,
    reader_sql,
)
from mmm_platform.rules import Rule, UniqueKey, evaluate
from mmm_platform.warehouse import quote

#: how many offending row numbers a report names per rule
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Violation:
    rule: str
    description: str
    rows: int
    sample_rows: tuple[int, ...] = ()

    def __str__(self) -> str:
        more = ", ..." if self.rows > len(self.sample_rows) else ""
        where = f" (rows {', '.join(map(str, self.sample_rows))}{more})" if self.sample_rows else ""
        return f"{self.rule}: {self.description}: {self.rows} row(s){where}"


@dataclass
class FileReport:
    file: LandingFile
    status: str  # accepted | refused
    n_rows: int | None = None
    min_date: dt.date | None = None
    max_date: dt.date | None = None
    violations: list[Violation] = field(default_factory=list)
    reason: str | None = None
    #: True when the verdict came from ingest.landing_files (file unchanged since it was checked)
    cached: bool = False

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def _refused(file: LandingFile, reason: str) -> FileReport:
    return FileReport(file, "refused", reason=reason, violations=[Violation("readable", reason, 0)])


def typed_rows(file: LandingFile, plan: FilePlan, record: bool = False) -> str:
    """One file's rows typed to the contract, each with its data row number, the type flags and
    (`record`) the row as it was in the file, as JSON."""
    # the alias is a reserved name: a landing column may be called `src`, never `__src`
    rec = ", to_json(__src) AS _record" if record else ""
    return f"(SELECT {ROW_COLUMN}{rec}{plan.typed_columns()} FROM {reader_sql([file], with_row=True)} AS __src)"


def _span(table: Table, plan: FilePlan) -> tuple[str, ...]:
    part = table.partition_column
    if part not in plan.typed:
        return ("NULL", "NULL")
    return clamped(f"min({quote(part)})"), clamped(f"max({quote(part)})")


def check_file(
    con: duckdb.DuckDBPyConnection, file: LandingFile, table: Table, plan: FilePlan, today: dt.date
) -> FileReport:
    """Count every rule's offending rows in one pass over the file, then sample the failed ones."""
    try:
        result = evaluate(con, typed_rows(file, plan), plan.rules, today, ROW_COLUMN, _span(table, plan), SAMPLE_ROWS)
    except duckdb.Error as exc:
        return _refused(file, f"unreadable {file.format} file: {duckdb_reason(exc)}")
    lo, hi = result.aggregates
    violations = [Violation(rule.name, rule.description, n, samples) for rule, n, samples in result.broken]
    if plan.missing_required:
        missing = ", ".join(plan.missing_required)
        violations.insert(0, Violation("required_column", f"missing required column(s): {missing}", result.rows))
    if result.rows == 0:
        violations.append(Violation("not_empty", "empty file: a header but no data rows", 0))
    reason = "; ".join(str(v) for v in violations) or None
    return FileReport(file, "refused" if violations else "accepted", result.rows, lo, hi, violations, reason)


def _clean_in_group(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table, plan: FilePlan, today: dt.date
) -> dict[str, tuple[int, dt.date | None, dt.date | None]]:
    """Files of one physical schema that break no rule, with (rows, first date, last date), from
    one grouped scan. Empty when the scan fails: the caller then checks file by file."""
    if len(files) < 2:
        return {}
    by_row = [r for r in plan.rules if not isinstance(r, UniqueKey)]
    keys = [r for r in plan.rules if isinstance(r, UniqueKey)]
    flags = "".join(f", ({r.sql_per_file(today, PATH_COLUMN)}) AS __r{i}" for i, r in enumerate(by_row))
    counts = "".join(f", count(*) FILTER (WHERE __r{i})" for i in range(len(by_row)))
    # the typed rows are materialized once: the row rules and each key's duplicates read them
    dups = "".join(f", __d{i} AS ({r.duplicates('__typed', PATH_COLUMN)})" for i, r in enumerate(keys))
    sql = (
        f"WITH __src AS {reader_sql(files)}, "
        f"__typed AS MATERIALIZED (SELECT {PATH_COLUMN}{plan.typed_columns()} FROM __src), "
        f"__flagged AS (SELECT *{flags} FROM __typed), "
        f"__rows AS (SELECT {PATH_COLUMN}, count(*) AS __count, {', '.join(_span(table, plan))}{counts} "
        f"FROM __flagged GROUP BY {PATH_COLUMN}){dups} "
        f"SELECT __rows.*{''.join(f', __d{i}.__duplicates' for i in range(len(keys)))} FROM __rows"
        + "".join(f" LEFT JOIN __d{i} USING ({PATH_COLUMN})" for i in range(len(keys)))
    )
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        return {}
    names = {str(f.path): f.name for f in files}
    return {names[r[0]]: (int(r[1]), r[2], r[3]) for r in rows if r[1] and not any(r[4:])}


def check_files(
    con: duckdb.DuckDBPyConnection,
    files: list[LandingFile],
    table: Table,
    rules: list[Rule],
    today: dt.date,
    raw_columns: list[str],
) -> list[tuple[FileReport, FilePlan | None]]:
    """Verdicts on several files, in their order, each with its plan (None: unreadable)."""
    plans: dict[str, FilePlan] = {}
    early: dict[str, FileReport] = {}
    for f in files:
        if f.problem:
            early[f.name] = _refused(f, f.problem)
            continue
        try:
            plans[f.name] = plan_file(con, f, table, rules, raw_columns)
        except UnreadableFile as exc:
            early[f.name] = _refused(f, str(exc))
    groups: dict[tuple, list[LandingFile]] = defaultdict(list)
    for f in files:
        if f.name in plans and not plans[f.name].missing_required:
            groups[plans[f.name].schema].append(f)
    clean: dict[str, tuple[int, dt.date | None, dt.date | None]] = {}
    for group in groups.values():
        clean |= _clean_in_group(con, group, table, plans[group[0].name], today)
    out = []
    for f in files:
        if f.name in early:
            out.append((early[f.name], None))
        elif f.name in clean:
            out.append((FileReport(f, "accepted", *clean[f.name]), plans[f.name]))
        else:
            out.append((check_file(con, f, table, plans[f.name], today), plans[f.name]))
    return _extra_spellings(out, table, raw_columns)


def _extra_spellings(
    verdicts: list[tuple[FileReport, FilePlan | None]], table: Table, raw_columns: list[str]
) -> list[tuple[FileReport, FilePlan | None]]:
    """Refuse an accepted file whose extra column another accepted file of this run spells
    differently (`Note` and `note`: one raw column), the later file of the two. Raw's own
    spellings were checked per file (plan_file)."""
    spelled = {c.lower(): (c, f"raw.{table.name}") for c in raw_columns}
    out = []
    for report, plan in verdicts:
        clash = None
        if report.accepted and plan is not None:
            for x in plan.extras:
                first = spelled.get(x.lower())
                if first is not None and first[0] != x:
                    clash = f"extra column {x!r} clashes with {first[0]!r} of {first[1]} (one raw column)"
                    break
            if clash is None:
                for x in plan.extras:
                    spelled.setdefault(x.lower(), (x, report.file.name))
        if clash:
            report, plan = _refused(report.file, f"column names cannot be loaded: {clash}"), None
        out.append((report, plan))
    return out
