"""Run a table's rules as a Great Expectations 1.x suite (ephemeral context) over a dataframe.

GX is imported inside the functions: its import costs seconds, and loading the Dagster
definitions must stay fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mmm_platform.contracts import Table
from mmm_platform.quality.rules import Rule, Suite

#: name of the computed column the forecast-lead rule is checked on
LEAD_COLUMN = "_lead_days"


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


def expectations_for_rules(rules: list[Rule], known_geos: list[str], today: dt.date) -> list[tuple[Any, str]]:
    """(GX expectation, plain description) for each contract rule that GX can express on raw.

    Column types are not re-checked: raw's DDL already enforces them."""
    import great_expectations.expectations as gxe

    out = []
    for r in rules:
        c = r.column
        match r.kind:
            case "not_null":
                out.append((gxe.ExpectColumnValuesToNotBeNull(column=c), r.description))
            case "range":
                out.append(
                    (
                        gxe.ExpectColumnValuesToBeBetween(
                            column=c, min_value=r.params["min"], max_value=r.params["max"]
                        ),
                        r.description,
                    )
                )
            case "allowed":
                out.append((gxe.ExpectColumnValuesToBeInSet(column=c, value_set=r.params["allowed"]), r.description))
            case "not_future":
                out.append(
                    (
                        gxe.ExpectColumnValuesToBeBetween(
                            column=c, max_value=pd.Timestamp(today) + pd.Timedelta(days=1), strict_max=True
                        ),
                        r.description,
                    )
                )
            case "partition_start":
                out.append(
                    (
                        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=pd.Timestamp(r.params["start"])),
                        r.description,
                    )
                )
            case "lead":
                out.append(
                    (
                        gxe.ExpectColumnValuesToBeBetween(
                            column=LEAD_COLUMN, min_value=r.params["min"], max_value=r.params["max"]
                        ),
                        r.description,
                    )
                )
            case "unique_key":
                key = r.params["key"]
                exp = (
                    gxe.ExpectColumnValuesToBeUnique(column=key[0])
                    if len(key) == 1
                    else gxe.ExpectCompoundColumnsToBeUnique(column_list=key)
                )
                out.append((exp, r.description))
            case "known_geo":
                out.append((gxe.ExpectColumnValuesToBeInSet(column=c, value_set=known_geos), r.description))
    return out


def _prepare(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Dates as pandas datetimes (GX compares them with timestamps), plus computed columns."""
    df = df.copy()
    for col in table.date_columns:
        if col.name in df:
            df[col.name] = pd.to_datetime(df[col.name])
    if table.name == "weather_forecast" and len(df):
        df[LEAD_COLUMN] = (df["target_date"] - df["issue_date"]).dt.days
    elif table.name == "weather_forecast":
        df[LEAD_COLUMN] = pd.Series(dtype="int64")
    return df


def run_suite(
    df: pd.DataFrame,
    table: Table,
    rules: list[Rule],
    suite: Suite,
    severity: str,
    known_geos: list[str],
    today: dt.date,
) -> SuiteOutcome:
    """Validate `df` with the contract rules and the suite's expectations of one severity."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # after import: GX sets its own

    contract_pairs = expectations_for_rules([r for r in rules if r.severity == severity], known_geos, today)
    extra = [
        (getattr(gxe, e.expectation_type)(**e.kwargs), e.name) for e in suite.expectations if e.severity == severity
    ]
    pairs = contract_pairs + extra
    if not pairs:
        return SuiteOutcome(0, [])
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        ctx.data_sources.add_pandas("raw")
        .add_dataframe_asset(table.name)
        .add_batch_definition_whole_dataframe("window")
    )
    for expectation, description in pairs:
        expectation.meta = {"description": description}
    gx_suite = gx.ExpectationSuite(name=f"{table.name}_{severity}", expectations=[p[0] for p in pairs])
    result = batch_def.get_batch(batch_parameters={"dataframe": _prepare(df, table)}).validate(
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
    return SuiteOutcome(len(result.results), failures)
