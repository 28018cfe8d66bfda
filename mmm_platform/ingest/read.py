"""Reading one landing file as the contract's typed columns.

Each file is typed on its own, from its own physical schema, before files are combined: one file
with dates as ISO text and another with Parquet timestamps both arrive as DATE, and a combined
read can never promote one file's column to a type that nulls the other's values. Files whose
physical schemas are identical are read together (one multi-file scan, about twice as fast as a
union of single-file scans: bench/ingest.py).

Nothing is inferred from paths: no hive partitioning (a landing zone under `region=west/` must not
turn into a column), and the file name is only lineage.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from mmm_platform.contracts import Column, Table
from mmm_platform.ingest.landing import LandingFile
from mmm_platform.rules import Rule, type_flag
from mmm_platform.warehouse import LINEAGE_COLUMNS, RESERVED_PREFIX, literal, quote

#: the column a multi-file read names each row's file in, and the one a single-file read numbers
#: its data rows in; no landing column may use these, any lineage name, or a name starting with
#: RESERVED_PREFIX (the loader's own aliases and flags use that prefix: __src, __bad_<col>, __r<i>)
PATH_COLUMN = "_landing_path"
ROW_COLUMN = "_row"
RESERVED = frozenset({PATH_COLUMN, ROW_COLUMN, "_record", "_rn", "file_row_number", *LINEAGE_COLUMNS})
#: delimiters a CSV "with one column" most likely used instead of the comma
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
NESTED_TYPES = ("STRUCT", "MAP", "UNION")
#: how a file that is not CSV text begins, and what it then is
MAGIC = {
    b"\x1f\x8b": "a gzip-compressed file",
    b"BZh": "a bzip2-compressed file",
    b"\xfd7zXZ\x00": "an xz-compressed file",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
    b"PK\x03\x04": "a zip archive (or an Excel workbook)",
    b"PAR1": "a Parquet file",
}
#: dates Python can hold: spans (for planning runs) are clamped to them; rows outside are refused
#: anyway (before the first partition, or after today)
DATE_FLOOR, DATE_CEILING = "DATE '0001-01-01'", "DATE '9999-12-31'"


def clamped(expr: str) -> str:
    """A DATE expression clamped to the dates Python can represent (NULL stays NULL: greatest and
    least skip NULLs)."""
    return f"(CASE WHEN ({expr}) IS NOT NULL THEN least(greatest({expr}, {DATE_FLOOR}), {DATE_CEILING}) END)"


class UnreadableFile(Exception):
    """The file cannot be used at all; the message says why (it becomes the refusal reason)."""


def reader_sql(files: list[LandingFile], with_row: bool = False) -> str:
    """A subquery reading files of one physical schema as one relation. With one file, `with_row`
    numbers its data rows from 1; with several, PATH_COLUMN names each row's file."""
    paths = "[" + ", ".join(literal(str(f.path)) for f in files) + "]"
    many = f", filename = {literal(PATH_COLUMN)}" if len(files) > 1 else ""
    if files[0].format == "parquet":
        row = f", file_row_number + 1 AS {ROW_COLUMN}" if with_row else ""
        return (
            f"(SELECT * EXCLUDE (file_row_number){row} FROM read_parquet({paths}, file_row_number = true, "
            f"hive_partitioning = false, binary_as_string = true{many}))"
        )
    row = f", row_number() OVER () AS {ROW_COLUMN}" if with_row else ""
    return (
        f"(SELECT *{row} FROM read_csv({paths}, all_varchar = true, header = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true, hive_partitioning = false{many}))"
    )


def duckdb_reason(exc: Exception) -> str:
    """DuckDB's error in one line: its first line, and for a CSV error the line saying what is
    wrong (DuckDB puts it after the offending line, e.g. "Invalid unicode ... not utf-8 encoded")."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines()]
    first = lines[0] if lines else type(exc).__name__
    if "CSV Error on Line" in first:
        for ln in lines[1:]:
            if ln and not ln.startswith(("Original Line", "Possible Solution", "file =", "LINE ")):
                return f"{first}: {ln}"
    return first


def _newline(line: bytes) -> str:
    return "crlf" if line.endswith(b"\r\n") else "cr" if line.endswith(b"\r") else "lf"


def _csv_head(file: LandingFile) -> tuple[list[str], str]:
    """The header's column names as the file spells them (a multi-file reader renames duplicates:
    a_1, A_2), and its line ending (files read together must share it)."""
    with file.path.open("rb") as f:
        head = f.read(1 << 20)
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            raise UnreadableFile(f"unreadable csv file: it is {what}, not CSV text")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("unreadable csv file: encoded as UTF-16; landing CSV files must be UTF-8")
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    end = min(ends) if ends else len(head)
    line = head[: end + (2 if head[end : end + 2] == b"\r\n" else 1)]
    if b"\x00" in line:
        raise UnreadableFile(
            "unreadable csv file: NUL bytes in the header (UTF-16 without a BOM?); CSV files must be UTF-8"
        )
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"unreadable csv file: the header is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    try:
        names = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as exc:
        raise UnreadableFile(f"unreadable csv file: the header cannot be parsed ({exc})") from exc
    return names, _newline(line)


def _header(file: LandingFile) -> tuple[list[str], str]:
    """Column names as the file spells them, and the CSV line ending ('' for Parquet)."""
    try:
        if file.format == "parquet":
            return list(pq.read_schema(file.path).names), ""
        return _csv_head(file)
    except (OSError, ValueError) as exc:  # pyarrow: ArrowInvalid is a ValueError
        raise UnreadableFile(f"unreadable {file.format} file: {duckdb_reason(exc)}") from exc


def csv_problem(path: Path, limit: int = 1_000_000) -> str | None:
    """Where a CSV file DuckDB cannot read breaks the format, found by Python's strict reader (only
    on that failure path: DuckDB's sniffer names no line): a row with another number of fields than
    the header, a stray quote, a byte that is not UTF-8. None when it finds nothing."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, [])
            for i, row in enumerate(reader):
                if row and len(row) != len(header):
                    return f"line {reader.line_num} has {len(row)} field(s), the header {len(header)}"
                if i > limit:
                    break
    except csv.Error as exc:
        return f"line {reader.line_num}: {exc}"
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    except OSError:
        return None
    return None


def source_columns(con: duckdb.DuckDBPyConnection, file: LandingFile) -> dict[str, str]:
    """The file's columns and their DuckDB types, as one file read."""
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {reader_sql([file])}").fetchall()
    except duckdb.Error as exc:
        where = csv_problem(file.path) if file.format == "csv" else None
        found = f"{where} ({duckdb_reason(exc)})" if where else duckdb_reason(exc)
        raise UnreadableFile(f"unreadable {file.format} file: {found}") from exc
    return {r[0]: r[1] for r in rows}


def _collisions(names: list[str], table: Table, raw_columns: list[str]) -> list[str]:
    """Why these column names cannot be loaded: a duplicate, names that differ only in case or
    spaces, a near-miss of a contract column, a reserved name, or an extra column that raw already
    holds under another spelling. Empty when they can."""
    problems = []
    contract = {c.name.strip().lower(): c.name for c in table.columns}
    seen: dict[str, str] = {}
    existing = {c.lower(): c for c in raw_columns}
    for i, name in enumerate(names, start=1):
        norm = name.strip().lower()
        if not name.strip():
            problems.append(f"column {i} has no name")
            continue
        if norm in seen:
            other = seen[norm]
            what = "appears twice" if other == name else f"and {other!r} differ only in case or spaces"
            problems.append(f"column {name!r} {what}")
            continue
        seen[norm] = name
        if norm in contract and contract[norm] != name:
            problems.append(f"column {name!r} must be named {contract[norm]!r} (column names are case-sensitive)")
        elif norm in {r.lower() for r in RESERVED} or name.startswith(RESERVED_PREFIX):
            problems.append(f"column {name!r} is a name the platform reserves for lineage")
        elif norm not in contract and norm in existing and existing[norm] != name:
            problems.append(f"extra column {name!r} clashes with raw.{table.name}.{existing[norm]!r}")
    return problems


def typed_expr(col: Column, source_type: str) -> str:
    """SQL that turns a file's column into the contract type, NULL where the value does not fit.

    Text (every CSV column) is parsed strictly: ISO dates only, booleans as true/false/0/1, and
    integers only when integral ("3" or "3.0", not "3.5", which a plain cast would round). A
    timestamp is a date only at midnight, in UTC (the connection's time zone is UTC)."""
    q = quote(col.name)
    t = source_type.upper()
    if t.startswith(NESTED_TYPES) or t.endswith("]"):
        return f"CAST(NULL AS {col.duckdb_type})"  # a list or struct fits no contract type
    if t == "VARCHAR":
        return {
            "string": q,
            "int": f"CASE WHEN regexp_full_match(trim({q}), '[+-]?[0-9]+(\\.0*)?') "
            f"THEN TRY_CAST(split_part(trim({q}), '.', 1) AS BIGINT) END",
            "float": f"TRY_CAST({q} AS DOUBLE)",
            "bool": f"CASE lower(trim({q})) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE "
            "WHEN 'false' THEN FALSE WHEN '0' THEN FALSE END",
            "date": f"TRY_CAST(TRY_STRPTIME(trim({q}), '%Y-%m-%d') AS DATE)",
            "timestamp": f"CAST(TRY_CAST({q} AS TIMESTAMPTZ) AS TIMESTAMP)",
        }[col.type]
    numeric = t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL")
    integral = t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER")
    integral = integral or t in ("UBIGINT", "UHUGEINT")
    timestamp = t.startswith("TIMESTAMP")
    match col.type:
        case "string":
            return f"CAST({q} AS VARCHAR)"
        case "int" if numeric:
            return f"CASE WHEN isfinite({q}) AND {q} = trunc({q}) THEN TRY_CAST({q} AS BIGINT) END"
        case "int":
            return f"TRY_CAST({q} AS BIGINT)" if integral else "CAST(NULL AS BIGINT)"
        case "float":
            return f"TRY_CAST({q} AS DOUBLE)" if numeric or integral else "CAST(NULL AS DOUBLE)"
        case "bool" if t == "BOOLEAN":
            return q
        case "bool":
            return (
                f"CASE WHEN TRY_CAST({q} AS DOUBLE) IN (0, 1) THEN TRY_CAST({q} AS DOUBLE) = 1 END"
                if (numeric or integral)
                else "CAST(NULL AS BOOLEAN)"
            )
        case "date" if t == "DATE":
            return q
        case "date" if timestamp:
            ts = f"CAST({q} AS TIMESTAMP)"
            return f"CASE WHEN CAST({ts} AS TIME) = TIME '00:00:00' THEN CAST({ts} AS DATE) END"
        case "date":
            return "CAST(NULL AS DATE)"
        case "timestamp" if timestamp or t == "DATE":
            return f"CAST({q} AS TIMESTAMP)"
        case _:
            return f"CAST(NULL AS {col.duckdb_type})"


@dataclass(frozen=True)
class FilePlan:
    """How one file maps onto the contract: typed select list, extras, what is missing, and the
    rules whose columns the file has. `schema` groups files that can be read together."""

    schema: tuple[str, tuple[tuple[str, str], ...]]
    typed: dict[str, str]  # contract column -> typed SQL (only columns present in the file)
    extras: list[str]  # unknown columns, kept as VARCHAR
    missing_required: list[str]
    rules: list[Rule]

    def select_list(self, table: Table) -> str:
        cols = [f"{expr} AS {quote(name)}" for name, expr in self.typed.items()]
        cols += [f"CAST(NULL AS {c.duckdb_type}) AS {quote(c.name)}" for c in table.columns if c.name not in self.typed]
        cols += [f"CAST({quote(x)} AS VARCHAR) AS {quote(x)}" for x in self.extras]
        return ", ".join(cols)

    def typed_columns(self) -> str:
        """`, <typed> AS "c", ..., <value that failed its type> AS "__bad_c"` for each contract column."""
        typed = "".join(f", {e} AS {quote(n)}" for n, e in self.typed.items())
        bad = "".join(
            f", ({quote(n)} IS NOT NULL AND ({e}) IS NULL) AS {quote(type_flag(n))}" for n, e in self.typed.items()
        )
        return typed + bad


def plan_file(
    con: duckdb.DuckDBPyConnection, file: LandingFile, table: Table, rules: list[Rule], raw_columns: list[str]
) -> FilePlan:
    """Resolve a file's columns against the contract; UnreadableFile when they cannot be loaded."""
    names, newline = _header(file)
    problems = _collisions(names, table, raw_columns)
    if problems:
        raise UnreadableFile("column names cannot be loaded: " + "; ".join(problems))
    source = source_columns(con, file)
    if len(source) == 1 and file.format == "csv":
        (only,) = source
        for sep, name in OTHER_DELIMITERS.items():
            if sep in only:
                raise UnreadableFile(
                    f"wrong delimiter: the header uses {name}s ({only[:60]!r}); CSV files must be comma-separated"
                )
    contract_cols = {c.name: c for c in table.columns}
    typed = {name: typed_expr(col, source[name]) for name, col in contract_cols.items() if name in source}
    return FilePlan(
        # DuckDB reads several CSV files with the first one's dialect: only files with the same
        # line ending can be read together
        schema=(file.format + (f"/{newline}" if newline else ""), tuple(source.items())),
        typed=typed,
        extras=[name for name in source if name not in contract_cols],
        missing_required=[
            c.name for c in table.columns if (c.required or c.name in table.key) and c.name not in source
        ],
        rules=[r for r in rules if r.needs <= typed.keys()],
    )
