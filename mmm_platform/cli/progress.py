"""What a data engineer sees in the terminal during a run: one line per step as it finishes
(asset, rows, partitions, seconds), a live counter inside long multi-asset steps (dbt), and a
closing summary of what was materialized, how the checks went and where to look.

It listens to the run's Dagster events (`DagsterInstance.add_event_listener`), so the lines come
from what the UI records, not from a second bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import dagster as dg

#: the names of the metadata entries a step line reads its row count from, in order of preference
ROW_KEYS = ("rows_written", "dagster/row_count")


@dataclass
class StepLine:
    key: str
    started: float
    assets: list[str] = field(default_factory=list)
    #: rows per asset (a run over several partitions repeats the asset's metadata on each)
    rows: dict[str, int] = field(default_factory=dict)
    checks: int = 0


@dataclass
class CheckTally:
    passed: int = 0
    warned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Progress:
    """Prints to `out` as events arrive; `planned(step_key)` names how many assets a step holds."""

    def __init__(self, out: TextIO, planned: Callable[[str], int], live: bool) -> None:
        self.out, self.planned, self.live = out, planned, live
        self.steps: dict[str, StepLine] = {}
        self.done = 0
        self.materialized: set[str] = set()
        self.checks = CheckTally()
        self.failures: list[str] = []
        self._counter_shown = False

    def __call__(self, entry: Any) -> None:  # an EventLogEntry
        event = entry.dagster_event
        if event is None:
            return
        step_key = event.step_key
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            self.steps[step_key] = StepLine(step_key, time.perf_counter())
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            self._materialized(self.steps.get(step_key), event)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            self._check(self.steps.get(step_key), event.event_specific_data)
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            self._finish(step_key, "")
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            if "DagsterAssetCheckFailedError" not in (error.cls_name or ""):
                message = (error.cause or error).message.strip().splitlines()[0]
                self.failures.append(f"{step_key}: {message}")
            self._finish(step_key, "FAILED")
        elif kind == dg.DagsterEventType.STEP_SKIPPED:
            self._print(f"  {'skipped':>8}  {self._name(step_key)}  (an upstream blocking check failed)")

    def _materialized(self, line: StepLine | None, event: Any) -> None:
        mat = event.event_specific_data.materialization
        name = "/".join(mat.asset_key.path)
        self.materialized.add(name)
        if line is None:
            return
        if name not in line.assets:
            line.assets.append(name)
        for key in ROW_KEYS:
            value = mat.metadata.get(key)
            if value is not None:
                line.rows[name] = int(value.value)
                break
        total = self.planned(line.key)
        if self.live and total > 1:
            self.out.write(f"\r  {'':>8}  {self._name(line.key)}  {len(line.assets)}/{total} ...")
            self.out.flush()
            self._counter_shown = True

    def _check(self, line: StepLine | None, evaluation: Any) -> None:
        if line is not None:
            line.checks += 1
        name = f"{'/'.join(evaluation.asset_key.path)}:{evaluation.check_name}"
        if evaluation.passed:
            self.checks.passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.ERROR:
            self.checks.failed.append(name)
        else:
            self.checks.warned.append(name)

    def _name(self, step_key: str) -> str:
        line = self.steps.get(step_key)
        if line and len(line.assets) == 1:
            return line.assets[0]
        if line and line.assets:
            return f"{step_key} ({len(line.assets)} assets)"
        return step_key

    def _finish(self, step_key: str, status: str) -> None:
        line = self.steps.get(step_key)
        if line is None or (line.checks and not line.assets):
            return  # a check's own step: its verdict is in the summary
        self.done += 1
        seconds = time.perf_counter() - line.started
        rows = f"{sum(line.rows.values()):>11,} rows" if line.rows else " " * 16
        if self._counter_shown:
            self.out.write("\r\033[K")
            self._counter_shown = False
        self._print(f"  [{self.done:>2}] {self._name(step_key):<38} {rows} {seconds:>7.1f} s  {status}".rstrip())

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def summary(progress: Progress, seconds: float, where: dict[str, str]) -> list[str]:
    """The closing table: counts, then the checks that need a look, then where things are."""
    t = progress.checks
    lines = [
        f"  {'assets materialized':<22}{len(progress.materialized):>6}    {'checks passed':<16}{t.passed:>6}",
        f"  {'checks warned':<22}{len(t.warned):>6}    {'checks failed':<16}{len(t.failed):>6}",
        f"  {'wall time':<22}{seconds:>5.1f}s    {'failed steps':<16}{len(progress.failures):>6}",
    ]
    lines += [f"  failed step  {f}" for f in progress.failures]
    lines += [f"  {label:<10} {value}" for label, value in where.items()]
    return lines
