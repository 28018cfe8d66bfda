"""The one place a core check outcome (quality.checks.CheckOutcome) becomes a Dagster check result."""

import json

import dagster as dg
import numpy as np

from mmm_platform.quality.checks import CheckOutcome


def check_result(outcome: CheckOutcome, **keys: object) -> dg.AssetCheckResult:
    """The one place a core check outcome becomes a Dagster check result."""
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=outcome.summary,
        metadata={
            "summary": dg.MetadataValue.text(outcome.summary),
            "problems": dg.MetadataValue.md("\n".join(f"- {d}" for d in outcome.details) or "none"),
            **{k: _value(v) for k, v in outcome.metadata.items()},
        },
        **keys,
    )


def _value(value: object) -> object:
    """Containers as JSON (tuples as lists), numbers and text as they are (NumPy scalars as the
    Python number: Dagster cannot store them), anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict | list | tuple):
        return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return dg.MetadataValue.text(str(value))
