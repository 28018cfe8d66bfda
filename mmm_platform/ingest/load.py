"""Load landing files into raw.<table>: validate each file against the contract, refuse bad files
whole (their rows go to quarantine with the reason), and replace a window of partitions with the
accepted rows in one transaction.

Why DuckDB SQL rather than a dataframe library: every step (typed projection, rule counts, key
uniqueness, supersession across files, the replace) is one vectorised query straight over the
CSV/Parquet files, so validation costs a read of the file and nothing is materialised twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mmm_platform.contracts import Column, Contract, Table
from mmm_platform.ingest.landing import LandingFile, scan_table
from mmm_platform.ingest.warehouse import (
    LINEAGE_COLUMNS,
    ensure_warehouse,
    literal,
    quote,
    raw_table,
    table_columns,
)
from mmm_platform.quality.rules import Rule, contract_rules

log = logging.getLogger(__name__)

#: how many offending row numbers a report names per rule
SAMPLE_ROWS = 5
#: delimiters a CSV "with one column" most likely used instead of the comma
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class Window:
    """A closed range of partition dates; `open_end` also takes every later date (forecasts for
    days after today live in today's partition)."""

    start: dt.date
    end: dt.date
    open_end: bool = False

    def predicate(self, expr: str) -> str:
        lo = f"{expr} >= DATE {literal(self.start.isoformat())}"
        if self.open_end:
            return lo
        return f"{lo} AND {expr} <= DATE {literal(self.end.isoformat())}"

    def overlaps(self, lo: dt.date | None, hi: dt.date | None) -> bool:
        if lo is None or hi is None:
            return True
        return hi >= self.start and (self.open_end or lo <= self.end)


@dataclass(frozen=True)
class Violation:
    rule: str
    description: str
    rows: int
    sample_rows: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = f" (rows {', '.join(map(str, self.sample_rows))}{', ...' if self.rows > len(self.sample_rows) else ''})"
        return f"{self.rule}: {self.description}: {self.rows} row(s){where if self.sample_rows else ''}"


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


@dataclass
class LoadResult:
    table: str
    window: Window | None
    rows_written: int
    files: list[FileReport]
    seconds: float

    @property
    def refused(self) -> list[FileReport]:
        return [f for f in self.files if not f.accepted]

    @property
    def loaded_from(self) -> list[str]:
        return [
            f.file.name
            for f in self.files
            if f.accepted and (self.window is None or self.window.overlaps(f.min_date, f.max_date))
        ]


class UnreadableFile(Exception):
    pass


#: the column a multi-file read names each row's file in (not `filename`, which a user may use)
PATH_COLUMN = "_landing_path"


def reader_sql(files: list[LandingFile], with_row: bool = False) -> str:
    """A subquery reading same-format files as one relation (union by column name). With one
    file, `with_row` numbers its data rows from 1; with several, PATH_COLUMN names the file."""
    paths = "[" + ", ".join(literal(str(f.path)) for f in files) + "]"
    many = f", union_by_name = true, filename = {literal(PATH_COLUMN)}" if len(files) > 1 else ""
    if files[0].format == "parquet":
        row = ", file_row_number + 1 AS _row" if with_row else ""
        return f"(SELECT * EXCLUDE (file_row_number){row} FROM read_parquet({paths}, file_row_number = true{many}))"
    row = ", row_number() OVER () AS _row" if with_row else ""
    return (
        f"(SELECT *{row} FROM read_csv({paths}, all_varchar = true, header = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true{many}))"
    )


def source_columns(con: duckdb.DuckDBPyConnection, files: list[LandingFile]) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(files)}").fetchall()
    except duckdb.Error as exc:
        raise UnreadableFile(f"unreadable {files[0].format} file: {str(exc).splitlines()[0]}") from exc
    return {r[0]: r[1] for r in rows if r[0] != PATH_COLUMN}


def typed_expr(col: Column, source_type: str) -> str:
    """SQL that turns a file's column into the contract type, NULL where the value does not fit.

    Text (every CSV column) is parsed strictly: ISO dates only, booleans as true/false/0/1, and
    integers only when integral ("3" or "3.0", not "3.5", which a plain cast would round)."""
    q = quote(col.name)
    if source_type == "VARCHAR":
        return {
            "string": q,
            "int": f"CASE WHEN regexp_full_match(trim({q}), '[+-]?[0-9]+(\\.0*)?') "
            f"THEN TRY_CAST(split_part(trim({q}), '.', 1) AS BIGINT) END",
            "float": f"TRY_CAST({q} AS DOUBLE)",
            "bool": f"CASE lower(trim({q})) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE "
            "WHEN 'false' THEN FALSE WHEN '0' THEN FALSE END",
            "date": f"TRY_CAST(TRY_STRPTIME(trim({q}), '%Y-%m-%d') AS DATE)",
            "timestamp": f"TRY_CAST({q} AS TIMESTAMP)",
        }[col.type]
    numeric = source_type in ("DOUBLE", "FLOAT", "REAL") or source_type.startswith("DECIMAL")
    if col.type == "int" and numeric:
        return f"CASE WHEN {q} = trunc({q}) THEN TRY_CAST({q} AS BIGINT) END"
    if col.type == "bool" and source_type != "BOOLEAN":
        return f"CASE WHEN TRY_CAST({q} AS DOUBLE) IN (0, 1) THEN TRY_CAST({q} AS DOUBLE) = 1 END"
    return f"TRY_CAST({q} AS {col.duckdb_type})"


def _rule_predicate(rule: Rule, table: Table, today: dt.date) -> str | None:
    """SQL that is true on a row breaking `rule`, over the typed projection (None: not row-wise)."""
    c = quote(rule.column) if rule.column else ""
    match rule.kind:
        case "type":
            return quote(f"__bad_{rule.column}")
        case "not_null":
            return f"{c} IS NULL AND NOT {quote(f'__bad_{rule.column}')}"
        case "range":
            parts = []
            if rule.params["min"] is not None:
                parts.append(f"{c} < {rule.params['min']!r}")
            if rule.params["max"] is not None:
                parts.append(f"{c} > {rule.params['max']!r}")
            return " OR ".join(parts)
        case "allowed":
            return f"{c} NOT IN ({', '.join(literal(v) for v in rule.params['allowed'])})"
        case "not_future":
            return f"CAST({c} AS DATE) > DATE {literal(today.isoformat())}"
        case "partition_start":
            return f"{c} < DATE {literal(rule.params['start'].isoformat())}"
        case "lead":
            return f"datediff('day', issue_date, target_date) NOT BETWEEN {rule.params['min']} AND {rule.params['max']}"
        case "known_geo":
            return f"{c} NOT IN (SELECT geo_id FROM raw.geo)"
        case "unique_key":
            return "_dup"
    raise ValueError(rule.kind)


@dataclass(frozen=True)
class _Plan:
    """How one file maps onto the contract: typed select list and the row-wise rule predicates."""

    typed: dict[str, str]  # contract column -> typed SQL (only columns present in the file)
    extras: list[str]  # unknown columns, kept as VARCHAR
    missing_required: list[str]
    checks: list[tuple[Rule, str]]  # (rule, predicate) for rules whose columns are present

    def select_list(self, table: Table) -> str:
        cols = [f"{expr} AS {quote(name)}" for name, expr in self.typed.items()]
        cols += [f"CAST(NULL AS {c.duckdb_type}) AS {quote(c.name)}" for c in table.columns if c.name not in self.typed]
        cols += [f"CAST({quote(x)} AS VARCHAR) AS {quote(x)}" for x in self.extras]
        return ", ".join(cols)


def _plan(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table, rules: list[Rule], today: dt.date
) -> _Plan:
    source = source_columns(con, files)
    if len(source) == 1 and files[0].format == "csv":
        (only,) = source
        for sep, name in OTHER_DELIMITERS.items():
            if sep in only:
                raise UnreadableFile(
                    f"wrong delimiter: the header uses {name}s ({only[:60]!r}); CSV files must be comma-separated"
                )
    contract_cols = {c.name: c for c in table.columns}
    typed = {name: typed_expr(col, source[name]) for name, col in contract_cols.items() if name in source}
    missing = [c.name for c in table.columns if (c.required or c.name in table.key) and c.name not in source]
    extras = [name for name in source if name not in contract_cols and name not in LINEAGE_COLUMNS]
    checks = []
    for rule in rules:
        needed = {rule.column} if rule.column else set()
        if rule.kind == "lead":
            needed = {"issue_date", "target_date"}
        if rule.kind == "unique_key":
            needed = set(table.key)
        if needed <= typed.keys():
            checks.append((rule, _rule_predicate(rule, table, today)))
    return _Plan(typed=typed, extras=extras, missing_required=missing, checks=checks)


def _typed_columns(plan: _Plan) -> str:
    """`, <typed> AS "c", ..., <type failed> AS "__bad_c"` for every contract column present."""
    typed = "".join(f", {e} AS {quote(n)}" for n, e in plan.typed.items())
    bad_flags = "".join(
        f", ({quote(n)} IS NOT NULL AND ({e}) IS NULL) AS {quote('__bad_' + n)}" for n, e in plan.typed.items()
    )
    return typed + bad_flags


def _checked_cte(file: LandingFile, table: Table, plan: _Plan, record: bool = False) -> str:
    """WITH ... checked: each row of the file typed, with a type-failure flag per column, a
    duplicate-key flag, and (`record`) the row as it was in the file, as JSON."""
    key = ", ".join(quote(k) for k in table.key if k in plan.typed)
    dup = f"count(*) OVER (PARTITION BY {key}) > 1" if key else "FALSE"
    rec = ", to_json(src) AS _record" if record else ""
    return (
        f"WITH src AS {reader_sql([file], with_row=True)}, "
        f"typed AS (SELECT _row{rec}{_typed_columns(plan)} FROM src), "
        f"checked AS (SELECT *, {dup} AS _dup FROM typed) "
    )


def _clean_files(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table, rules: list[Rule], today: dt.date
) -> dict[str, tuple[int, dt.date | None, dt.date | None]]:
    """Files that break no rule, with (rows, first date, last date), found in one grouped scan of
    same-format files (one parallel read instead of one per file). Empty when the scan fails: the
    caller then checks file by file."""
    if len(files) < 2:
        return {}
    plan = _plan(con, files, table, rules, today)
    part = table.partition_column
    span = f"min({quote(part)}), max({quote(part)})" if part in plan.typed else "NULL, NULL"
    key = ", ".join(quote(k) for k in table.key)
    counts = [f"count(*) FILTER (WHERE {pred})" for rule, pred in plan.checks if rule.kind != "unique_key"]
    counts.append(f"count(*) - count(DISTINCT ({key}))")
    sql = (
        f"WITH src AS {reader_sql(files)}, typed AS (SELECT {PATH_COLUMN}{_typed_columns(plan)} FROM src) "
        f"SELECT {PATH_COLUMN}, count(*), {span}, {', '.join(counts)} FROM typed GROUP BY {PATH_COLUMN}"
    )
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        return {}
    names = {str(f.path): f.name for f in files}
    return {names[r[0]]: (int(r[1]), r[2], r[3]) for r in rows if r[1] and not any(r[4:])}


def _validate(con: duckdb.DuckDBPyConnection, file: LandingFile, table: Table, plan: _Plan) -> FileReport:
    """Count every rule's offending rows in one pass over the file."""
    part = table.partition_column
    aggs = [
        "count(*)",
        f"min({quote(part)})" if part in plan.typed else "NULL",
        f"max({quote(part)})" if part in plan.typed else "NULL",
    ]
    aggs += [f"count(*) FILTER (WHERE {pred})" for _, pred in plan.checks]
    cte = _checked_cte(file, table, plan)
    try:
        row = con.execute(f"{cte} SELECT {', '.join(aggs)} FROM checked").fetchone()
        broken = [(rule, pred, int(n)) for (rule, pred), n in zip(plan.checks, row[3:], strict=True) if n]
        # sample row numbers only for the rules that failed: ordered lists cost a sort each
        samples = (
            con.execute(
                f"{cte} SELECT "
                + ", ".join(f"(list(_row ORDER BY _row) FILTER (WHERE {p}))[1:{SAMPLE_ROWS}]" for _, p, _ in broken)
                + " FROM checked"
            ).fetchone()
            if broken
            else ()
        )
    except duckdb.Error as exc:
        raise UnreadableFile(f"unreadable {file.format} file: {str(exc).splitlines()[0]}") from exc
    n_rows, lo, hi = row[0], row[1], row[2]
    violations = [
        Violation(rule.name, rule.description, n, tuple(sample or ()))
        for (rule, _, n), sample in zip(broken, samples, strict=True)
    ]
    if plan.missing_required:
        violations.insert(
            0,
            Violation(
                "required_column",
                f"missing required column(s): {', '.join(plan.missing_required)}",
                int(n_rows),
            ),
        )
    if n_rows == 0:
        violations.append(Violation("not_empty", "empty file: a header but no data rows", 0))
    status = "refused" if violations else "accepted"
    reason = "; ".join(str(v) for v in violations) or None
    return FileReport(file, status, int(n_rows), lo, hi, violations, reason)


def _quarantine(
    con: duckdb.DuckDBPyConnection, report: FileReport, table: Table, plan: _Plan | None, run_id: str
) -> None:
    """Put every row of a refused file in ingest.quarantine with the reasons that row breaks,
    or one row for the whole file when it cannot be read."""
    f = report.file
    con.execute(
        "DELETE FROM ingest.quarantine WHERE table_name = ? AND file = ? AND file_mtime = ? AND file_size = ?",
        [table.name, f.name, f.mtime, f.size],
    )
    header = f"{literal(table.name)}, {literal(f.name)}, TIMESTAMP {literal(f.mtime.isoformat())}, {f.size}"
    summary = literal(f"file refused: {report.reason}")
    if plan is None or not report.n_rows:
        con.execute(f"INSERT INTO ingest.quarantine VALUES ({header}, NULL, {summary}, NULL, now(), ?)", [run_id])
        return
    reasons = ", ".join(
        f"CASE WHEN {pred} THEN {literal(rule.name + ': ' + rule.description)} END" for rule, pred in plan.checks
    )
    row_reason = f"array_to_string(list_filter([{reasons}], x -> x IS NOT NULL), '; ')" if reasons else "''"
    con.execute(
        f"""INSERT INTO ingest.quarantine
        {_checked_cte(f, table, plan, record=True)}
        SELECT {header}, _row, coalesce(nullif({row_reason}, ''), {summary}), _record, now(), ?
        FROM checked""",
        [run_id],
    )


def _record(con: duckdb.DuckDBPyConnection, report: FileReport, table: Table, run_id: str) -> None:
    f = report.file
    con.execute(
        "INSERT OR REPLACE INTO ingest.landing_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
        [
            table.name,
            f.name,
            f.size,
            f.mtime,
            report.status,
            report.n_rows,
            report.min_date,
            report.max_date,
            report.reason,
            json.dumps([v.__dict__ | {"sample_rows": list(v.sample_rows)} for v in report.violations]),
            run_id,
        ],
    )


def _cached(con: duckdb.DuckDBPyConnection, table: Table) -> dict[str, tuple]:
    rows = con.execute(
        "SELECT file, size, mtime, status, n_rows, min_date, max_date FROM ingest.landing_files WHERE table_name = ?",
        [table.name],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def check_file(
    con: duckdb.DuckDBPyConnection, file: LandingFile, table: Table, rules: list[Rule], today: dt.date
) -> tuple[FileReport, _Plan | None]:
    """The verdict on one landing file, read whole, against the contract."""
    if file.problem:
        return FileReport(
            file, "refused", reason=file.problem, violations=[Violation("readable", file.problem, 0)]
        ), None
    try:
        plan = _plan(con, [file], table, rules, today)
        return _validate(con, file, table, plan), plan
    except UnreadableFile as exc:
        return FileReport(file, "refused", reason=str(exc), violations=[Violation("readable", str(exc), 0)]), None


def check_files(
    con: duckdb.DuckDBPyConnection, files: list[LandingFile], table: Table, rules: list[Rule], today: dt.date
) -> list[tuple[FileReport, _Plan | None]]:
    """Verdicts on several files. Those whose columns resolve are first counted together, per
    format, in one scan; only a file with a problem is read again alone, for the reasons and the
    row numbers of its violations. Same verdicts as `check_file` on each, faster."""
    plans: dict[str, _Plan] = {}
    for f in files:
        if f.problem:
            continue
        try:
            plan = _plan(con, [f], table, rules, today)
        except UnreadableFile:
            continue
        if not plan.missing_required:
            plans[f.name] = plan
    clean: dict[str, tuple[int, dt.date | None, dt.date | None]] = {}
    for fmt in sorted({f.format for f in files if f.name in plans}):
        clean |= _clean_files(con, [f for f in files if f.name in plans and f.format == fmt], table, rules, today)
    return [
        (FileReport(f, "accepted", *clean[f.name]), plans[f.name])
        if f.name in clean
        else check_file(con, f, table, rules, today)
        for f in files
    ]


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    table_name: str,
    landing_root: Path,
    *,
    window: Window | None,
    run_id: str,
    partition_start: dt.date,
    today: dt.date | None = None,
) -> LoadResult:
    """Validate new or changed files of one table and replace `window` (None: the whole table for
    dimensions) in raw with the accepted rows, newest file winning per key. Idempotent."""
    t0 = time.perf_counter()
    today = today or dt.date.today()
    table = contract[table_name]
    ensure_warehouse(con, contract)
    rules = contract_rules(table, partition_start)
    cached = _cached(con, table)
    reports: list[FileReport] = []
    plans: dict[str, _Plan | None] = {}
    fresh = []
    for f in scan_table(landing_root, table.name):
        hit = cached.get(f.name)
        if hit and (hit[0], hit[1]) == f.signature and hit[2] == "accepted":
            reports.append(FileReport(f, "accepted", hit[3], hit[4], hit[5], cached=True))
        else:
            fresh.append(f)
    for report, plan in check_files(con, fresh, table, rules, today):
        reports.append(report)
        plans[report.file.name] = plan
        if not report.accepted:
            log.warning("%s: refused %s: %s", table.name, report.file.name, report.reason)

    touching = [r for r in reports if window is None or window.overlaps(r.min_date, r.max_date)]
    accepted = [r for r in touching if r.accepted]
    refused_names = [r.file.name for r in reports if not r.accepted]
    part = table.partition_column
    where = window.predicate(quote(part)) if window is not None and part else "TRUE"

    # one scan per file format: a single multi-file read is about twice as fast as a union of
    # per-file reads (bench/ingest.py)
    selects = []
    for fmt in sorted({r.file.format for r in accepted}):
        files = [r.file for r in accepted if r.file.format == fmt]
        plan = _plan(con, files, table, rules, today)
        if len(files) == 1:
            f = files[0]
            lineage = f"{literal(f.name)} AS _source_file, TIMESTAMP {literal(f.mtime.isoformat())} AS _source_mtime"
            source = reader_sql(files)
        else:
            rows = ", ".join(
                f"({literal(str(f.path))}, {literal(f.name)}, TIMESTAMP {literal(f.mtime.isoformat())})" for f in files
            )
            lineage = "_f._source_file, _f._source_mtime"
            source = f"{reader_sql(files)} AS s JOIN (VALUES {rows}) AS _f(_path, _source_file, _source_mtime) ON s.{PATH_COLUMN} = _f._path"
        selects.append(
            f"SELECT * FROM (SELECT {plan.select_list(table)}, {lineage}, now()::TIMESTAMP AS _loaded_at, "
            f"{literal(run_id)} AS _run_id FROM {source}) WHERE {where}"
        )
        _add_extra_columns(con, table, plan.extras)
    if refused_names:  # rows an earlier, good version of a now-refused file delivered stay in raw
        names = ", ".join(literal(n) for n in refused_names)
        selects.append(f"SELECT * FROM {raw_table(table)} WHERE {where} AND _source_file IN ({names})")

    key = ", ".join(quote(k) for k in table.key)
    needs_dedup = len(accepted) + bool(refused_names) > 1 and _may_overlap(table, accepted, bool(refused_names))
    body = " UNION ALL BY NAME ".join(selects)
    if needs_dedup:
        body = (
            f"SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY {key} "
            f"ORDER BY _source_mtime DESC, _source_file DESC) AS _rn FROM ({body})) WHERE _rn = 1"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        written = 0
        if refused_names:  # the carried rows are read from raw, so read them before the delete
            con.execute(f"CREATE OR REPLACE TEMP TABLE _incoming AS {body}")
            body = "SELECT * FROM _incoming"
        con.execute(f"DELETE FROM {raw_table(table)} WHERE {where}")
        if selects:
            # raw rows have no order; not keeping the files' order lets DuckDB load in parallel
            con.execute("SET preserve_insertion_order = false")
            try:
                written = con.execute(f"INSERT INTO {raw_table(table)} BY NAME {body}").fetchone()[0]
            finally:
                con.execute("RESET preserve_insertion_order")
        con.execute("DROP TABLE IF EXISTS _incoming")
        present = [r.file.name for r in reports]
        con.execute(
            f"DELETE FROM ingest.landing_files WHERE table_name = ? "
            f"{'AND file NOT IN (' + ', '.join(literal(n) for n in present) + ')' if present else ''}",
            [table.name],
        )
        for r in reports:
            if not r.cached:
                _record(con, r, table, run_id)
                if not r.accepted:
                    _quarantine(con, r, table, plans.get(r.file.name), run_id)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    result = LoadResult(table.name, window, int(written), reports, time.perf_counter() - t0)
    log.info(
        "raw/%s: %s rows from %d file(s), %d refused, %.2fs",
        table.name, f"{result.rows_written:,}", len(result.loaded_from), len(result.refused), result.seconds,
    )  # fmt: skip
    return result


def _may_overlap(table: Table, accepted: list[FileReport], carried: bool) -> bool:
    """Whether two sources can deliver the same key: only when the key does not contain the
    partition column, rows are carried over, or two files' date spans intersect."""
    if carried or table.partition_column not in table.key:
        return True
    spans = sorted((r.min_date, r.max_date) for r in accepted)
    if any(lo is None for lo, _ in spans):
        return True
    return any(spans[i + 1][0] <= spans[i][1] for i in range(len(spans) - 1))


def _add_extra_columns(con: duckdb.DuckDBPyConnection, table: Table, extras: list[str]) -> None:
    existing = set(table_columns(con, "raw", table.name))
    for x in extras:
        if x not in existing:
            con.execute(f"ALTER TABLE {raw_table(table)} ADD COLUMN {quote(x)} VARCHAR")
