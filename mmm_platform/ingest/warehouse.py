"""Warehouse layout owned by ingestion: raw.<table> per landing table, and the ingest bookkeeping.

Every raw table exists from the first run on, empty when nothing landed, so dbt sources and the
models never meet a missing table. Columns follow the contract; unknown extra columns found in
landing files are added as VARCHAR, and four lineage columns say where each row came from.
"""

from __future__ import annotations

import duckdb

from mmm_platform.contracts import Contract, Table

LINEAGE_COLUMNS = {
    "_source_file": "VARCHAR",  # landing file, relative to the landing root
    "_source_mtime": "TIMESTAMP",  # that file's modification time (UTC)
    "_loaded_at": "TIMESTAMP",
    "_run_id": "VARCHAR",
}

BOOKKEEPING_DDL = [
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS ingest",
    """CREATE TABLE IF NOT EXISTS ingest.landing_files (
        table_name VARCHAR NOT NULL,
        file VARCHAR NOT NULL,
        size BIGINT NOT NULL,
        mtime TIMESTAMP NOT NULL,
        status VARCHAR NOT NULL,          -- accepted | refused
        n_rows BIGINT,
        min_date DATE,                    -- span of the partition column; null if unknown
        max_date DATE,
        reason VARCHAR,                   -- why a refused file was refused
        violations JSON,                  -- [{rule, description, rows, sample_rows}]
        checked_at TIMESTAMP NOT NULL,
        run_id VARCHAR,
        PRIMARY KEY (table_name, file)
    )""",
    """CREATE TABLE IF NOT EXISTS ingest.quarantine (
        table_name VARCHAR NOT NULL,
        file VARCHAR NOT NULL,
        file_mtime TIMESTAMP NOT NULL,
        file_size BIGINT NOT NULL,
        row_number BIGINT,                -- 1-based data row (CSV line = row_number + 1); null: whole file
        reason VARCHAR NOT NULL,
        record JSON,                      -- the row as it was in the file
        quarantined_at TIMESTAMP NOT NULL,
        run_id VARCHAR
    )""",
]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw_table(table: Table) -> str:
    return f"raw.{quote(table.name)}"


def ensure_warehouse(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    for ddl in BOOKKEEPING_DDL:
        con.execute(ddl)
    for table in contract.tables.values():
        cols = [f"{quote(c.name)} {c.duckdb_type}" for c in table.columns]
        cols += [f"{quote(n)} {t}" for n, t in LINEAGE_COLUMNS.items()]
        con.execute(f"CREATE TABLE IF NOT EXISTS {raw_table(table)} ({', '.join(cols)})")


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]
