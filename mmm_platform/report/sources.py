"""What the report reads: warehouse tables (one refit's rows, the newest causal run's) and the demo
world's truth. Any of them may be absent; a read says why there are no rows instead of failing, so
the page can say what is missing and what produces it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Source:
    """Where a table comes from, for the sentence a missing table gets."""

    asset: str
    how: str


_REFIT = "job `mmm`, which `mmm-platform run` starts after new data"
_CAUSAL = "the causal suite, run by `mmm-platform run`"
SOURCES = {
    "causal.lift": Source("causal/lift", _CAUSAL),
    "causal.weather_effects": Source("causal/weather_effects", _CAUSAL),
    "mmm.channel_roas": Source("mmm/channel_roas", _REFIT),
    "mmm.contributions": Source("mmm/channel_roas", _REFIT),
    "mmm.response_curves": Source("mmm/response_curves", _REFIT),
    "mmm.diagnostics": Source("mmm/diagnostics", _REFIT),
    "allocator.recommendations": Source("allocator/recommendations", _REFIT),
    "validation.backtest": Source("validation/backtest", _REFIT),
    "validation.model_comparison": Source(
        "validation/model_comparison", _REFIT + "; the peers need their environments (`make peers`)"
    ),
}

#: the tables one refit writes, all with the refit's as_of
REFIT_TABLES = (
    "mmm.channel_roas",
    "mmm.diagnostics",
    "mmm.response_curves",
    "mmm.contributions",
    "allocator.recommendations",
)


@dataclass(frozen=True)
class Rows:
    """A table's rows for the report, or (`problem`) why there are none."""

    table: str
    frame: pd.DataFrame
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The table's columns in order; [] when it does not exist."""
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


def refit_as_of(con: duckdb.DuckDBPyConnection, until: dt.date | None = None) -> dt.date | None:
    """The newest refit in the warehouse (on or before `until`): the largest as_of of the tables a
    refit writes. A refit's data may end before its week does, so this is not the refit date."""
    found = []
    for table in REFIT_TABLES:
        if "as_of" not in table_columns(con, table):
            continue
        value = con.execute(f"SELECT max(as_of) FROM {table} WHERE ? IS NULL OR as_of <= ?", [until, until]).fetchone()[
            0
        ]
        if value is not None:
            found.append(pd.Timestamp(value).date())
    return max(found, default=None)


def read(
    con: duckdb.DuckDBPyConnection,
    table: str,
    required: Iterable[str],
    *,
    as_of: dt.date | None = None,
    until: dt.date | None = None,
) -> Rows:
    """The rows of one run of `table`, in the order they were written: those of `as_of`, else of the
    newest as_of (on or before `until`); of those, the last run written (a table keyed by run_id can
    hold two runs of one as_of)."""
    columns = table_columns(con, table)
    if not columns:
        return Rows(table, pd.DataFrame(), f"table {table} does not exist")
    lacking = [c for c in required if c not in columns]
    if lacking:
        return Rows(table, pd.DataFrame(), f"table {table} has no column {', '.join(lacking)}")
    where, params = "TRUE", []
    if "as_of" in columns:
        if as_of is None:
            as_of = con.execute(
                f"SELECT max(as_of) FROM {table} WHERE ? IS NULL OR as_of <= ?", [until, until]
            ).fetchone()[0]
        where, params = "as_of = ?", [as_of]
    if "run_id" in columns:
        where += f" AND run_id = (SELECT arg_max(run_id, rowid) FROM {table} WHERE {where})"
        params = params * 2
    frame = con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY rowid", params).df()
    if frame.empty:
        scope = (
            f" for as_of {pd.Timestamp(as_of).date()}"
            if as_of is not None
            else (f" on or before {until}" if until else "")
        )
        return Rows(table, frame, f"table {table} has no rows{scope}")
    return Rows(table, frame)


def read_truth(path: Path) -> dict | None:
    """The demo world's truth.json, or None when there is none (real data) or it cannot be read."""
    if not path.is_file():
        return None
    try:
        truth = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return truth if isinstance(truth, dict) else None


def truth_roas(truth: dict | None) -> dict[str, float] | None:
    """channel -> true ROAS from a truth.json (`channels.<name>.roas`), None without one."""
    try:
        return {c: float(v["roas"]) for c, v in (truth or {})["channels"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
