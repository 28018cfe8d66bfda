"""The rules the landing contract implies, one class per kind, each with its SQL predicate.

One predicate, two places: the ingestion gate evaluates it over each landing file's typed rows (so
a bad file is refused before anything reaches raw), and the `contract` asset check evaluates the
same predicate over what raw holds (`violations`). The two cannot drift, and adding a kind is
adding a class here. Rules beyond the contract are Great Expectations suites (quality/suites.py).

Why SQL and not GX for the contract rules on raw: as GX pandas validations the same rules cost
several times more (a pandas copy of every table, a Python call per value) than as DuckDB queries
over the table in place; bench/platform.py prints both (docs/architecture.md has the figures).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

import duckdb

from mmm_platform.contracts import Table
from mmm_platform.warehouse import literal, quote


def type_flag(column: str) -> str:
    """Name of the gate's per-row flag: the value is present but does not fit the contract type."""
    return f"__bad_{column}"


@dataclass(frozen=True)
class Rule:
    column: str | None
    description: str

    kind: ClassVar[str]
    severity: ClassVar[str] = "error"

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.column}" if self.column else self.kind

    @property
    def needs(self) -> set[str]:
        """Contract columns the rule reads: the gate evaluates it only on files that have them all."""
        return {self.column} if self.column else set()

    def sql(self, today: dt.date) -> str:
        """A predicate true on a row that breaks the rule (typed columns; NULL counts as not broken)."""
        raise NotImplementedError

    def sql_per_file(self, today: dt.date, file_column: str) -> str:
        """The predicate over several files read as one relation, `file_column` naming each row's file."""
        return self.sql(today)


@dataclass(frozen=True)
class TypeRule(Rule):
    type: str = "string"
    kind: ClassVar[str] = "type"

    def sql(self, today: dt.date) -> str:
        return quote(type_flag(self.column))


@dataclass(frozen=True)
class NotNull(Rule):
    kind: ClassVar[str] = "not_null"

    def sql(self, today: dt.date) -> str:
        # a value of the wrong type is already reported by the type rule
        return f"{quote(self.column)} IS NULL AND NOT {quote(type_flag(self.column))}"


@dataclass(frozen=True)
class Finite(Rule):
    """NaN and ±infinity are bad values: they pass every range test in SQL and poison every sum."""

    kind: ClassVar[str] = "finite"

    def sql(self, today: dt.date) -> str:
        return f"{quote(self.column)} IS NOT NULL AND NOT isfinite({quote(self.column)})"


@dataclass(frozen=True)
class Range(Rule):
    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "range"

    def sql(self, today: dt.date) -> str:
        c = quote(self.column)
        parts = [f"{c} < {self.min!r}"] if self.min is not None else []
        parts += [f"{c} > {self.max!r}"] if self.max is not None else []
        # NaN sorts above every number in DuckDB: leave it to the finite rule
        return f"NOT coalesce(isnan(TRY_CAST({c} AS DOUBLE)), FALSE) AND ({' OR '.join(parts)})"


@dataclass(frozen=True)
class Allowed(Rule):
    values: tuple[str, ...] = ()
    kind: ClassVar[str] = "allowed"

    def sql(self, today: dt.date) -> str:
        return f"{quote(self.column)} NOT IN ({', '.join(literal(v) for v in self.values)})"


@dataclass(frozen=True)
class NotFuture(Rule):
    kind: ClassVar[str] = "not_future"

    def sql(self, today: dt.date) -> str:
        return f"CAST({quote(self.column)} AS DATE) > DATE {literal(today.isoformat())}"


@dataclass(frozen=True)
class PartitionStart(Rule):
    start: dt.date = dt.date.min
    kind: ClassVar[str] = "partition_start"

    def sql(self, today: dt.date) -> str:
        return f"{quote(self.column)} < DATE {literal(self.start.isoformat())}"


@dataclass(frozen=True)
class Lead(Rule):
    """`column - start_column` in days within [min, max]: a forecast's lead."""

    start_column: str = ""
    min: int = 0
    max: int = 0
    kind: ClassVar[str] = "lead"

    @property
    def needs(self) -> set[str]:
        return {self.column, self.start_column}

    def sql(self, today: dt.date) -> str:
        days = f"datediff('day', {quote(self.start_column)}, {quote(self.column)})"
        return f"{days} NOT BETWEEN {self.min} AND {self.max}"


@dataclass(frozen=True)
class UniqueKey(Rule):
    key: tuple[str, ...] = ()
    kind: ClassVar[str] = "unique_key"

    @property
    def needs(self) -> set[str]:
        return set(self.key)

    def sql(self, today: dt.date) -> str:
        return f"count(*) OVER (PARTITION BY {', '.join(quote(k) for k in self.key)}) > 1"

    def sql_per_file(self, today: dt.date, file_column: str) -> str:
        # a duplicate is within one file; across files the newer file supersedes the older
        return f"count(*) OVER (PARTITION BY {quote(file_column)}, {', '.join(quote(k) for k in self.key)}) > 1"

    def duplicates(self, relation: str, file_column: str | None = None) -> str:
        """SQL counting the rows that break the rule (per `file_column` when given, as
        `file, __duplicates`): a hash aggregate over the key, where the window of `sql` sorts every row
        (seconds over millions of rows, for a rule that almost never fails)."""
        by = ", ".join(([quote(file_column)] if file_column else []) + [quote(k) for k in self.key])
        groups = f"SELECT {by}, count(*) AS __n FROM {relation} GROUP BY {by} HAVING count(*) > 1"
        if file_column is None:
            return f"SELECT coalesce(sum(__n), 0) FROM ({groups})"
        return f"SELECT {quote(file_column)}, sum(__n) AS __duplicates FROM ({groups}) GROUP BY {quote(file_column)}"


@dataclass(frozen=True)
class KnownGeo(Rule):
    kind: ClassVar[str] = "known_geo"

    def sql(self, today: dt.date) -> str:
        return f"{quote(self.column)} NOT IN (SELECT geo_id FROM raw.geo)"


def contract_rules(table: Table, partition_start: dt.date | None = None) -> list[Rule]:
    """Every rule the landing contract implies for one table (all of them errors), plus the
    platform's own: no row may fall before the first partition, where it could never load."""
    rules: list[Rule] = []
    for c in table.columns:
        rules.append(TypeRule(c.name, f"{c.name} must be of type {c.type}", type=c.type))
        if c.required or c.name in table.key:
            rules.append(NotNull(c.name, f"{c.name} is required and must not be null"))
        if c.type == "float":
            rules.append(Finite(c.name, f"{c.name} must be a finite number (not NaN or infinity)"))
        if c.min is not None or c.max is not None:
            lo = "-inf" if c.min is None else f"{c.min:g}"
            hi = "inf" if c.max is None else f"{c.max:g}"
            rules.append(Range(c.name, f"{c.name} must be between {lo} and {hi}", min=c.min, max=c.max))
        if c.allowed is not None:
            rules.append(Allowed(c.name, f"{c.name} must be one of {', '.join(c.allowed)}", values=c.allowed))
        if c.type in ("date", "timestamp") and c.name not in table.future_dates_allowed:
            rules.append(NotFuture(c.name, f"{c.name} must not be after today"))
    rules.append(UniqueKey(None, f"key ({', '.join(table.key)}) must be unique", key=table.key))
    if table.references_geo:
        rules.append(KnownGeo("geo_id", "geo_id must exist in the geo table"))
    if table.partition_column and partition_start is not None:
        rules.append(
            PartitionStart(
                table.partition_column,
                f"{table.partition_column} must not be before the first partition, {partition_start}"
                " (set MMM_PARTITION_START to load older data)",
                start=partition_start,
            )
        )
    if table.lead_days is not None:
        lead = table.lead_days
        rules.append(
            Lead(
                lead.end,
                f"{lead.end} - {lead.start} must be between {lead.min} and {lead.max} days",
                start_column=lead.start,
                min=lead.min,
                max=lead.max,
            )
        )
    return rules


def flagged(relation: str, rules: list[Rule], today: dt.date) -> str:
    """`relation` (a subquery of typed columns and type flags) with a column __r<i> per rule, true
    where the row breaks rule i."""
    flags = "".join(f", ({r.sql(today)}) AS __r{i}" for i, r in enumerate(rules))
    return f"(SELECT *{flags} FROM {relation})"


def raw_relation(table: Table, where: str) -> str:
    """Rows of raw.<table> as the rules read them: raw's columns are typed, so no value failed its type."""
    flags = "".join(f", FALSE AS {quote(type_flag(c.name))}" for c in table.columns)
    return f"(SELECT *{flags} FROM raw.{quote(table.name)} WHERE {where})"


@dataclass(frozen=True)
class Evaluation:
    rows: int
    #: the values of the extra aggregates asked for, in order
    aggregates: tuple
    #: (rule, offending rows, the first offending `sample` values in order) for each broken rule
    broken: list[tuple[Rule, int, tuple]]


def evaluate(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    rules: list[Rule],
    today: dt.date,
    sample: str,
    aggregates: tuple[str, ...] = (),
    limit: int = 5,
) -> Evaluation:
    """Count every rule's offending rows in one pass (a unique key in a hash aggregate of its own),
    then sample (`sample`, e.g. a row number or the key) the rules that failed: ordered lists cost a
    sort each, so only for those."""
    by_row = [r for r in rules if not isinstance(r, UniqueKey)]
    selected = ", ".join(["count(*)", *aggregates, *(f"count(*) FILTER (WHERE __r{i})" for i in range(len(by_row)))])
    row = con.execute(f"SELECT {selected} FROM {flagged(relation, by_row, today)}").fetchone()
    row_counts = iter(row[1 + len(aggregates) :])
    counts = [
        con.execute(r.duplicates(relation)).fetchone()[0] if isinstance(r, UniqueKey) else next(row_counts)
        for r in rules
    ]
    failed = [(i, int(n)) for i, n in enumerate(counts) if n]
    samples: tuple = ()
    if failed:
        source = flagged(relation, rules, today)
        lists = ", ".join(f"(list({sample} ORDER BY {sample}) FILTER (WHERE __r{i}))[1:{limit}]" for i, _ in failed)
        samples = con.execute(f"SELECT {lists} FROM {source}").fetchone()
    broken = [(rules[i], n, tuple(s or ())) for (i, n), s in zip(failed, samples, strict=True)]
    return Evaluation(int(row[0]), tuple(row[1 : 1 + len(aggregates)]), broken)
