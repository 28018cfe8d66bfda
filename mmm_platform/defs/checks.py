"""The one place a core check outcome (quality.checks.CheckOutcome) becomes a Dagster check result."""

import dagster as dg

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
            **{k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in outcome.metadata.items()},
        },
        **keys,
    )
