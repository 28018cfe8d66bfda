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

import contextlib
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mmm_platform.contracts import Contract, Table
from mmm_platform.ingest.landing import LandingFile, current_stamp, scan_table
from mmm_platform.ingest.read import (
    PATH_COLUMN,
    FilePlan,
    UnreadableFile,
    clamped,
    duckdb_reason,
    plan_file,
    reader_sql,
)
from mmm_platform.ingest.validate import FileReport, check_files, typed_rows
from mmm_platform.rules import contract_rules, flagged
from mmm_platform.warehouse import Window, ensure_warehouse, literal, quote, raw_table, table_columns, transaction

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
    #: a retracted file whose rows raw still holds (read_known): a run must remove them
    pending: bool = False

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


#: how often a table is read again when a file changes while it is being loaded
MAX_ATTEMPTS = 3


class LandingChanged(RuntimeError):
    """Files changed (or vanished) between the scan and the commit: nothing was written."""

    def __init__(self, table: str, files: list[str]):
        self.files = files
        super().__init__(
            f"raw/{table}: {', '.join(files)} changed while being loaded, {MAX_ATTEMPTS} times: nothing was "
            "written (is an upload still writing it? upload under a temporary name such as x.csv.part, then rename)"
        )


class LoadFailed(RuntimeError):
    """The accepted files could not be written to raw (nothing was): DuckDB's reason, and the files."""


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
    dimensions) in raw with the accepted rows, newest file winning per key. Idempotent.

    The window grows to every partition a changed file's old or new version touches, so that raw
    always holds exactly the accepted version of each file. A file that changes while it is read
    is read again (the whole table, up to MAX_ATTEMPTS times)."""
    t0 = time.perf_counter()
    today = today or dt.date.today()
    table = contract[table_name]
    # dates never depend on the caller's connection: a UTC-midnight timestamp is that UTC day
    con.execute("SET TimeZone = 'UTC'")
    ensure_warehouse(con, contract)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return _ingest_once(con, table, landing_root, window, run_id, partition_start, today, t0)
        except LandingChanged as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            log.warning("raw/%s: %s changed while being loaded; reading the folder again", table.name, exc.files)
    raise AssertionError("unreachable")


def _ingest_once(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    landing_root: Path,
    window: Window | None,
    run_id: str,
    partition_start: dt.date,
    today: dt.date,
    t0: float,
) -> LoadResult:
    known = known_files(con, table.name)
    scanned = scan_table(landing_root, table.name)
    present = {f.name for f in scanned}
    vanished = sorted(n for n, k in known.items() if n not in present and k.status != "retracted")
    held = _rows_held(con, table, vanished)
    if not scanned and held:
        reason = (
            f"{landing_root / table.name}/ is missing or empty, but {len(held)} file(s) were loaded from it "
            "before: raw is left untouched (restore the folder, or retract the files with `mmm-platform retract`)"
        )
        _mark_missing(con, table, vanished, known, held, run_id)
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

    window = _covering(con, table, window, reports, known)
    written = _load(con, table, window, reports, plans, vanished, run_id, known, today, scanned)
    result = LoadResult(table.name, window, written, reports, time.perf_counter() - t0, vanished)
    log.info(
        "raw/%s: %s rows from %d file(s), %d refused, %.2fs",
        table.name, f"{result.rows_written:,}", len(result.loaded_from), len(result.refused), result.seconds,
    )  # fmt: skip
    return result


def _rows_held(con: duckdb.DuckDBPyConnection, table: Table, files: list[str]) -> dict[str, int]:
    """How many rows raw holds from each of `files` (only those with rows)."""
    if not files:
        return {}
    names = ", ".join(literal(n) for n in files)
    rows = con.execute(
        f"SELECT _source_file, count(*) FROM {raw_table(table)} WHERE _source_file IN ({names}) GROUP BY 1"
    ).fetchall()
    return {f: int(n) for f, n in rows}


def _raw_span(con: duckdb.DuckDBPyConnection, table: Table, files: list[str]) -> tuple | None:
    """First and last partition date of the rows raw holds from `files`, or None."""
    if not files or not table.partition_column:
        return None
    part = quote(table.partition_column)
    names = ", ".join(literal(n) for n in files)
    lo, hi = con.execute(
        f"SELECT {clamped(f'min({part})')}, {clamped(f'max({part})')} FROM {raw_table(table)} "
        f"WHERE _source_file IN ({names})"
    ).fetchone()
    return (lo, hi) if lo is not None else None


def _covering(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    window: Window | None,
    reports: list[FileReport],
    known: dict[str, KnownFile],
) -> Window | None:
    """`window`, grown to every partition that an accepted new version of a file, its previous
    version (whose rows it replaces), or a retracted file still in raw touches. A run over fewer
    partitions (a schedule run over this month meeting a file that spans two) would otherwise
    load part of a file, or leave rows of a replaced or retracted version behind."""
    if window is None or not table.partition_column:
        return window
    if table.partition_column not in table.key:
        # a key without the partition column can move between partitions (an event re-dated by a
        # correction): a newer row supersedes it wherever it is, and a retraction brings it back
        # wherever it was, only when the whole table is rewritten (such tables are small: events)
        return Window(dt.date(1, 1, 1), window.end, open_end=True)
    spans = []
    for r in reports:
        if r.cached or not r.accepted:
            continue
        spans.append((r.min_date, r.max_date))
        before = known.get(r.file.name)
        if before is not None:
            spans.append((before.min_date, before.max_date))
    spans.append(_raw_span(con, table, [n for n, k in known.items() if k.status == "retracted"]) or (None, None))
    spans = [(lo, hi) for lo, hi in spans if lo is not None and hi is not None]
    if not spans:
        return window
    lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
    grown = Window(min(window.start, lo), window.end if window.open_end else max(window.end, hi), window.open_end)
    if grown != window:
        log.info("raw/%s: the run covers %s..%s; writing %s..%s, where changed files have rows",
                 table.name, window.start, window.end, grown.start, grown.end)  # fmt: skip
    return grown


def _changed(files: list[LandingFile]) -> list[str]:
    """Files whose stamp differs from the scan's: written, replaced or deleted since."""
    return [f.name for f in files if f.stamp is not None and current_stamp(f.path) != f.stamp]


def _load(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    window: Window | None,
    reports: list[FileReport],
    plans: dict[str, FilePlan | None],
    vanished: list[str],
    run_id: str,
    known: dict[str, KnownFile],
    today: dt.date,
    scanned: list[LandingFile],
) -> int:
    """_replace with files of one physical schema read together; if DuckDB cannot read them
    together (a dialect detail the schema does not show), with each file read alone."""
    for grouped in (True, False):
        try:
            return _replace(con, table, window, reports, plans, vanished, run_id, known, today, scanned, grouped)
        except duckdb.Error as exc:
            changed = _changed(scanned)
            if changed:
                raise LandingChanged(table.name, changed) from exc
            files = ", ".join(r.file.name for r in reports if r.accepted) or "none"
            if not grouped:
                raise LoadFailed(
                    f"raw/{table.name}: the accepted files could not be written, nothing was: {duckdb_reason(exc)} "
                    f"(files: {files})"
                ) from exc
            log.warning("raw/%s: reading files together failed (%s); reading them one by one",
                        table.name, duckdb_reason(exc))  # fmt: skip
    raise AssertionError("unreachable")


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
    scanned: list[LandingFile],
    grouped: bool = True,
) -> int:
    """Replace the window's rows in one transaction and record every verdict; the row count written.
    Before the commit, every file read is checked to be the one scanned (else LandingChanged)."""
    accepted = [r for r in reports if r.accepted and (window is None or window.overlaps(r.min_date, r.max_date))]
    # rows from files whose current version contributes nothing, but whose earlier rows stand
    carried = [r.file.name for r in reports if not r.accepted] + vanished
    part = table.partition_column
    where = window.predicate(quote(part)) if window is not None and part else "TRUE"

    groups: dict[object, tuple[FilePlan, list[LandingFile]]] = {}
    for r in accepted:
        # a cached verdict has no plan yet: resolve the file's columns (its footer or header only)
        plan = plans.get(r.file.name)
        if plan is None:
            try:
                plan = plan_file(con, r.file, table, [], table_columns(con, "raw", table.name))
            except UnreadableFile as exc:
                if _changed([r.file]):
                    raise LandingChanged(table.name, [r.file.name]) from exc
                raise LoadFailed(
                    f"raw/{table.name}: {r.file.name}, accepted before, cannot be read now: {exc}"
                ) from exc
        groups.setdefault(plan.schema if grouped else r.file.name, (plan, []))[1].append(r.file)
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
    # raw rows have no order; not keeping the files' order lets DuckDB load in parallel (set outside
    # the transaction: a statement after a failed one would only say "transaction is aborted")
    con.execute("SET preserve_insertion_order = false")
    try:
        with transaction(con):
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
                written = con.execute(f"INSERT INTO {raw_table(table)} BY NAME {body}").fetchone()[0]
            con.execute("DROP TABLE IF EXISTS _incoming")
            fresh = [r for r in reports if not r.cached]
            _record(con, fresh, table, run_id)
            for r in fresh:
                if not r.accepted:
                    _quarantine(con, r, table, plans.get(r.file.name), run_id, today)
            _mark_missing(con, table, vanished, known, _rows_held(con, table, vanished), run_id)
            changed = _changed(scanned)
            if changed:
                raise LandingChanged(table.name, changed)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("RESET preserve_insertion_order")
    return int(written)


def _select(table: Table, plan: FilePlan, files: list[LandingFile], where: str, run_id: str) -> str:
    """The typed rows of same-schema files, with lineage, restricted to the window."""
    if len(files) == 1:
        f = files[0]
        lineage = f"{literal(f.name)} AS _source_file, TIMESTAMP {literal(f.mtime.isoformat())} AS _source_mtime"
        source = reader_sql(files)
    else:
        # aliases in the reserved namespace: a landing column may be called `_path` or `s`
        rows = ", ".join(
            f"({literal(str(f.path))}, {literal(f.name)}, TIMESTAMP {literal(f.mtime.isoformat())})" for f in files
        )
        lineage = "__lineage._source_file, __lineage._source_mtime"
        source = (
            f"{reader_sql(files)} AS __s JOIN (VALUES {rows}) AS __lineage(__path, _source_file, _source_mtime) "
            f"ON __s.{PATH_COLUMN} = __lineage.__path"
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


def _record(con: duckdb.DuckDBPyConnection, reports: list[FileReport], table: Table, run_id: str) -> None:
    """Record the verdicts, in one statement (one per file cost 15-25 ms each: seconds per run). A
    refused file's span also covers the rows of its earlier version that raw keeps (carried): the
    runs planned from ingest.landing_files must reach them when it is fixed."""
    if not reports:
        return
    rows = []
    for report in reports:
        f = report.file
        lo, hi = report.min_date, report.max_date
        if not report.accepted:
            kept = _raw_span(con, table, [f.name])
            if kept is not None:
                lo = min(d for d in (lo, kept[0]) if d is not None)
                hi = max(d for d in (hi, kept[1]) if d is not None)
        violations = json.dumps([v.__dict__ | {"sample_rows": list(v.sample_rows)} for v in report.violations])
        rows.append([table.name, f.name, f.size, f.mtime, report.status, report.n_rows, lo, hi])
        rows[-1] += [report.reason, violations, run_id, f.content_hash]
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?)"] * len(rows))
    con.execute(
        "INSERT OR REPLACE INTO ingest.landing_files (table_name, file, size, mtime, status, n_rows, min_date, "
        f"max_date, reason, violations, checked_at, run_id, content_hash) VALUES {values}",
        [v for row in rows for v in row],
    )


def _mark_missing(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    vanished: list[str],
    known: dict[str, KnownFile],
    held: dict[str, int],
    run_id: str,
) -> None:
    for name in vanished:
        if known[name].status == "missing":
            continue
        kept = f"its {held[name]} row(s) in raw are kept" if name in held else "none of its rows are in raw"
        con.execute(
            "UPDATE ingest.landing_files SET status = 'missing', reason = ?, checked_at = now(), run_id = ? "
            "WHERE table_name = ? AND file = ?",
            [f"gone from the landing zone (was {known[name].status}); {kept}", run_id, table.name, name],
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
