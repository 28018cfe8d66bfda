"""Run a table's expectation suite (assets/expectations/<table>.yaml) with Great Expectations 1.x.

One ephemeral GX context serves every check of a process (a run executes its steps in one
process), so a run pays GX's import and context set-up once, not once per check. GX is imported
on first use: its import costs seconds, and loading the Dagster definitions must stay fast.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from mmm_platform.contracts import Table
from mmm_platform.quality.suites import Suite

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int
    sample: list[Any]
    description: str

    def __str__(self) -> str:
        return f"{self.description}: {self.unexpected_count} row(s) fail {self.expectation}, e.g. {self.sample[:3]}"


@dataclass(frozen=True)
class SuiteOutcome:
    evaluated: int
    failures: list[Failure]

    @property
    def passed(self) -> bool:
        return not self.failures


def _plain(value: Any) -> str:
    """A sample value as a reader wants it: 12.5, not np.float64(12.5); pairs as (a, b)."""
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_plain(v) for v in value) + ")"
    return str(value.item() if hasattr(value, "item") else value)


_lock = threading.Lock()


def prefetch() -> None:
    """Start importing GX (3-4 s) in a background thread, so that it overlaps with the DuckDB work
    of the step that calls it (DuckDB releases the GIL) instead of delaying the first check."""
    threading.Thread(target=_datasource, name="gx-import", daemon=True).start()


def _datasource() -> Any:
    with _lock:
        return _make_datasource()


@cache
def _make_datasource() -> Any:
    """The process's GX pandas datasource, in one ephemeral context."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # after import: GX sets its own
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx.data_sources.add_pandas("raw")


_batch_names = itertools.count()


def suite_columns(suite: Suite, severity: str) -> list[str]:
    """The columns the suite's expectations of one severity read (so only those are loaded)."""
    cols: list[str] = []
    for e in suite.expectations:
        if e.severity == severity:
            for key in ("column", "column_A", "column_B"):
                if key in e.kwargs:
                    cols.append(e.kwargs[key])
            cols += e.kwargs.get("column_list", [])
    return list(dict.fromkeys(cols))


def run_suite(df: pd.DataFrame, table: Table, suite: Suite, severity: str) -> SuiteOutcome:
    """Validate `df` (raw rows of the columns the suite reads) with its expectations of one severity."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    pairs = [
        (getattr(gxe, e.expectation_type)(**e.kwargs), e.name) for e in suite.expectations if e.severity == severity
    ]
    if not pairs:
        return SuiteOutcome(0, [])
    df = df.copy()
    for col in table.date_columns:  # GX compares dates with timestamps
        if col.name in df:
            df[col.name] = pd.to_datetime(df[col.name])
    for expectation, description in pairs:
        expectation.meta = {"description": description}
    name = f"{table.name}_{severity}_{next(_batch_names)}"
    batch_def = _datasource().add_dataframe_asset(name).add_batch_definition_whole_dataframe("window")
    gx_suite = gx.ExpectationSuite(name=name, expectations=[p[0] for p in pairs])
    result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(
        gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
    )
    failures = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        failures.append(
            Failure(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                unexpected_count=int(r.result.get("unexpected_count") or 0),
                sample=[_plain(v) for v in (r.result.get("partial_unexpected_list") or [])],
                description=(cfg.meta or {}).get("description", cfg.type),
            )
        )
    _datasource().delete_asset(name)
    return SuiteOutcome(len(result.results), failures)
