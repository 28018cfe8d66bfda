"""Load landing files into raw.<table>: check new or changed files at the gate, then replace a
window of partitions with the accepted rows in one transaction.

What is loaded and what is kept:
- an accepted file's rows reach raw (the newest file wins per key, as corrections are delivered);
- a refused file's rows go to ingest.quarantine with the reason; rows an earlier, accepted version
  of it delivered stay in raw (a bad correction never deletes good data);
- a file that vanished from the landing zone keeps its rows (state `missing`, a warning names it);
  a table folder that vanished, or an empty landing root, leaves raw untouched (a blocking check);
- only a retraction (`retract_file`, `mmm-platform retract`) removes a file's rows.
A crash anywhere rolls the transaction back: no half partition.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mmm_platform.contracts import Contract, Table
from mmm_platform.ingest.landing import LandingFile, scan_table
from mmm_platform.ingest.read import PATH_COLUMN, FilePlan, plan_file, reader_sql
from mmm_platform.ingest.validate import FileReport, check_files, typed_rows
from mmm_platform.rules import contract_rules, flagged
from mmm_platform.warehouse import Window, ensure_warehouse, literal, quote, raw_table, table_columns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownFile:
    """A file as ingest.landing_files last recorded it."""

    size: int
    mtime: dt.datetime
    content_hash: str | None
    status: str
    n_rows: int | None
    min_date: dt.date | None
    max_date: dt.date | None

    @property
    def signature(self) -> tuple[int, dt.datetime, str | None]:
        return self.size, self.mtime, self.content_hash


def known_files(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, KnownFile]:
    rows = con.execute(
        "SELECT file, size, mtime, content_hash, status, n_rows, min_date, max_date "
        "FROM ingest.landing_files WHERE table_name = ?",
        [table],
    ).fetchall()
    return {r[0]: KnownFile(*r[1:]) for r in rows}


@dataclass
class LoadResult:
    table: str
    window: Window | None
    rows_written: int
    files: list[FileReport]
    seconds: float
    #: files loaded before that are gone from the landing zone (their rows are kept)
    missing: list[str] = field(default_factory=list)
    #: why raw was left untouched (a vanished table folder, an empty landing root), or None
    skipped: str | None = None

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

    @property
    def checked(self) -> int:
        return sum(1 for f in self.files if not f.cached)


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
    """Check new or changed files of one table and replace `window` (None: the whole table, for
    dimensions) in raw with the accepted rows, newest file winning per key. Idempotent."""
    t0 = time.perf_counter()
    today = today or dt.date.today()
    table = contract[table_name]
    ensure_warehouse(con, contract)
    known = known_files(con, table.name)
    scanned = scan_table(landing_root, table.name)
    present = {f.name for f in scanned}
    vanished = sorted(n for n, k in known.items() if n not in present and k.status != "retracted")
    if not scanned and any(known[n].status in ("accepted", "missing") for n in vanished):
        reason = (
            f"{landing_root / table.name}/ is missing or empty, but {len(vanished)} file(s) were loaded from it "
            "before: raw is left untouched (restore the folder, or retract the files with `mmm-platform retract`)"
        )
        _mark_missing(con, table, vanished, known, run_id)
        log.error("raw/%s: %s", table.name, reason)
        return LoadResult(table.name, window, 0, [], time.perf_counter() - t0, vanished, skipped=reason)

    reports: list[FileReport] = []
    fresh: list[LandingFile] = []
    for f in scanned:
        hit = known.get(f.name)
        if hit and hit.signature == f.signature and hit.status == "accepted":
            reports.append(FileReport(f, "accepted", hit.n_rows, hit.min_date, hit.max_date, cached=True))
        elif not (hit and hit.signature == f.signature and hit.status == "retracted"):
            fresh.append(f)  # new, changed, refused before (the geo it lacked may exist now), or back
    raw_columns = table_columns(con, "raw", table.name)
    rules = contract_rules(table, partition_start)
    plans: dict[str, FilePlan | None] = {}
    for report, plan in check_files(con, fresh, table, rules, today, raw_columns):
        reports.append(report)
        plans[report.file.name] = plan
        if not report.accepted:
            log.warning("%s: refused %s: %s", table.name, report.file.name, report.reason)
    for name in vanished:
        if known[name].status != "missing":
            log.warning("%s: %s is gone from the landing zone; its rows stay in raw", table.name, name)

    written = _replace(con, table, window, reports, plans, vanished, run_id, known, today)
    result = LoadResult(table.name, window, written, reports, time.perf_counter() - t0, vanished)
    log.info(
        "raw/%s: %s rows from %d file(s), %d refused, %.2fs",
        table.name, f"{result.rows_written:,}", len(result.loaded_from), len(result.refused), result.seconds,
    )  # fmt: skip
    return result


def _replace(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    window: Window | None,
    reports: list[FileReport],
    plans: dict[str, FilePlan | None],
    vanished: list[str],
    run_id: str,
    known: dict[str, KnownFile],
    today: dt.date,
) -> int:
    """Replace the window's rows in one transaction and record every verdict; the row count written."""
    accepted = [r for r in reports if r.accepted and (window is None or window.overlaps(r.min_date, r.max_date))]
    # rows from files whose current version contributes nothing, but whose earlier rows stand
    carried = [r.file.name for r in reports if not r.accepted] + vanished
    part = table.partition_column
    where = window.predicate(quote(part)) if window is not None and part else "TRUE"

    groups: dict[tuple, tuple[FilePlan, list[LandingFile]]] = {}
    for r in accepted:
        # a cached verdict has no plan yet: resolve the file's columns (its footer or header only)
        plan = plans.get(r.file.name) or plan_file(con, r.file, table, [], table_columns(con, "raw", table.name))
        groups.setdefault(plan.schema, (plan, []))[1].append(r.file)
    selects = [_select(table, plan, files, where, run_id) for plan, files in groups.values()]
    extras = list(dict.fromkeys(x for plan, _ in groups.values() for x in plan.extras))
    if carried:
        names = ", ".join(literal(n) for n in carried)
        selects.append(f"SELECT * FROM {raw_table(table)} WHERE {where} AND _source_file IN ({names})")
    body = " UNION ALL BY NAME ".join(selects)
    if len(accepted) + bool(carried) > 1 and _may_overlap(table, accepted, bool(carried)):
        key = ", ".join(quote(k) for k in table.key)
        body = (
            f"SELECT * EXCLUDE (_rn) FROM (SELECT *, row_number() OVER (PARTITION BY {key} "
            f"ORDER BY _source_mtime DESC, _source_file DESC) AS _rn FROM ({body})) WHERE _rn = 1"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        existing = set(table_columns(con, "raw", table.name))
        for x in extras:
            if x not in existing:
                con.execute(f"ALTER TABLE {raw_table(table)} ADD COLUMN {quote(x)} VARCHAR")
        written = 0
        if carried and selects:  # the carried rows are read from raw, so read them before the delete
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
        for r in reports:
            if not r.cached:
                _record(con, r, table, run_id)
                if not r.accepted:
                    _quarantine(con, r, table, plans.get(r.file.name), run_id, today)
        _mark_missing(con, table, vanished, known, run_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(written)


def _select(table: Table, plan: FilePlan, files: list[LandingFile], where: str, run_id: str) -> str:
    """The typed rows of same-schema files, with lineage, restricted to the window."""
    if len(files) == 1:
        f = files[0]
        lineage = f"{literal(f.name)} AS _source_file, TIMESTAMP {literal(f.mtime.isoformat())} AS _source_mtime"
        source = reader_sql(files)
    else:
        rows = ", ".join(
            f"({literal(str(f.path))}, {literal(f.name)}, TIMESTAMP {literal(f.mtime.isoformat())})" for f in files
        )
        lineage = "_f._source_file, _f._source_mtime"
        source = (
            f"{reader_sql(files)} AS s JOIN (VALUES {rows}) AS _f(_path, _source_file, _source_mtime) "
            f"ON s.{PATH_COLUMN} = _f._path"
        )
    return (
        f"SELECT * FROM (SELECT {plan.select_list(table)}, {lineage}, now()::TIMESTAMP AS _loaded_at, "
        f"{literal(run_id)} AS _run_id FROM {source}) WHERE {where}"
    )


def _may_overlap(table: Table, accepted: list[FileReport], carried: bool) -> bool:
    """Whether two sources can deliver the same key: only when the key does not contain the
    partition column, rows are carried over, or two files' date spans intersect."""
    if carried or table.partition_column not in table.key:
        return True
    spans = sorted((r.min_date, r.max_date) for r in accepted)
    if any(lo is None for lo, _ in spans):
        return True
    return any(spans[i + 1][0] <= spans[i][1] for i in range(len(spans) - 1))


def _record(con: duckdb.DuckDBPyConnection, report: FileReport, table: Table, run_id: str) -> None:
    f = report.file
    con.execute(
        "INSERT OR REPLACE INTO ingest.landing_files (table_name, file, size, mtime, status, n_rows, min_date, "
        "max_date, reason, violations, checked_at, run_id, content_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?)",
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
            f.content_hash,
        ],
    )


def _mark_missing(
    con: duckdb.DuckDBPyConnection, table: Table, vanished: list[str], known: dict[str, KnownFile], run_id: str
) -> None:
    for name in vanished:
        if known[name].status == "missing":
            continue
        con.execute(
            "UPDATE ingest.landing_files SET status = 'missing', reason = ?, checked_at = now(), run_id = ? "
            "WHERE table_name = ? AND file = ?",
            [f"gone from the landing zone (was {known[name].status}); its rows are kept", run_id, table.name, name],
        )


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    report: FileReport,
    table: Table,
    plan: FilePlan | None,
    run_id: str,
    today: dt.date,
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
        f"CASE WHEN __r{i} THEN {literal(rule.name + ': ' + rule.description)} END" for i, rule in enumerate(plan.rules)
    )
    row_reason = f"array_to_string(list_filter([{reasons}], x -> x IS NOT NULL), '; ')" if reasons else "''"
    con.execute(
        f"""INSERT INTO ingest.quarantine
        SELECT {header}, _row, coalesce(nullif({row_reason}, ''), {summary}), _record, now(), ?
        FROM {flagged(typed_rows(f, plan, record=True), plan.rules, today)}""",
        [run_id],
    )


def retract_file(con: duckdb.DuckDBPyConnection, contract: Contract, name: str, reason: str, run_id: str) -> KnownFile:
    """Withdraw a loaded file: the next load of its table drops its rows from raw (and from every
    partition it touched), and the file is not loaded again until a new version of it lands."""
    ensure_warehouse(con, contract)
    table = name.split("/", 1)[0]
    known = known_files(con, table).get(name) if table in contract.tables else None
    if known is None:
        raise KeyError(f"{name} is not a file ingest.landing_files knows (use <table>/<file name>)")
    con.execute(
        "UPDATE ingest.landing_files SET status = 'retracted', reason = ?, checked_at = now(), run_id = ? "
        "WHERE table_name = ? AND file = ?",
        [f"retracted: {reason}", run_id, table, name],
    )
    return known
