"""Run a table's expectation suite (assets/expectations/<table>.yaml) with Great Expectations 1.x.

Every suite of a process runs in one worker process, in one ephemeral GX context, so a run pays
GX's import and context set-up once, not once per check. A process, not a thread: GX's import is
3-4 s of Python, which in a thread waits for the same lock as Dagster's start-up and the steps
(measured: no gain), while a process imports it on the other core. `prefetch` starts it as early
as the caller knows a suite will run; loading the Dagster definitions never imports GX.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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


@cache
def _worker() -> ProcessPoolExecutor:
    """The one process that runs this process's suites (spawned: forking a process that holds
    DuckDB's and Dagster's threads is unsafe)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_fast)


def _exit_fast() -> None:
    """The worker holds nothing to flush or close, so at its exit it skips tearing down GX's
    modules (0.6 s at the end of every command that ran a suite)."""
    atexit.register(os._exit, 0)


def prefetch() -> None:
    """Start the worker and its import of GX now, so that the first check does not wait for it."""
    _worker().submit(_warm_up)


def _warm_up() -> None:
    _datasource()


@cache
def _datasource() -> Any:
    """The worker's GX pandas datasource, in one ephemeral context."""
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
    """Validate `df` (raw rows of the columns the suite reads) with its expectations of one
    severity, in the worker process."""
    if not any(e.severity == severity for e in suite.expectations):
        return SuiteOutcome(0, [])
    try:
        return _worker().submit(_validate, df, table, suite, severity).result()
    except BrokenProcessPool as e:
        _worker.cache_clear()  # the next check starts a new worker
        raise RuntimeError(
            f"the Great Expectations worker process died while validating {table.name} "
            f"({len(df):,} rows; out of memory?)"
        ) from e


def _validate(df: pd.DataFrame, table: Table, suite: Suite, severity: str) -> SuiteOutcome:
    """In the worker, on its own copy of `df`."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    pairs = [
        (getattr(gxe, e.expectation_type)(**e.kwargs), e.name) for e in suite.expectations if e.severity == severity
    ]
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
