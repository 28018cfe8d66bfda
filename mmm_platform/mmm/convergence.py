"""Whether a fit converged, from its diagnostics row alone.

Apart from `fit.py` (which imports ArviZ and PyMC) so that what only reads `mmm.diagnostics`, the
HTML report for one, gives the same verdict as the fit's check without loading the sampler stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmm_platform.mmm.config import Checks
from mmm_platform.quality.checks import CheckOutcome


def _where(diag: Mapping[str, Any], key: str) -> str:
    """' (variable)' when the row names the worst variable (a stored row may not)."""
    name = diag.get(key)
    return f" ({name})" if isinstance(name, str) and name else ""


def convergence_check(diag: Mapping[str, Any], checks: Checks) -> CheckOutcome:
    """The fit against the configured convergence bar, one plain sentence per miss (a warning:
    the numbers stay available, but nobody should read them as converged)."""
    misses = []
    if not diag["max_rhat"] <= checks.max_rhat:
        misses.append(f"max R-hat {diag['max_rhat']:.3f} > {checks.max_rhat}{_where(diag, 'max_rhat_variable')}")
    if diag["divergences"] > checks.max_divergences:
        misses.append(f"{diag['divergences']} divergent transitions (allowed {checks.max_divergences})")
    if not diag["min_ess_bulk"] >= checks.min_ess_bulk:
        misses.append(
            f"min bulk ESS {diag['min_ess_bulk']:.0f} < {checks.min_ess_bulk:.0f}"
            f"{_where(diag, 'min_ess_bulk_variable')}"
        )
    summary = (
        f"not converged: {misses[0]}" + (f" (and {len(misses) - 1} more)" if len(misses) > 1 else "")
        if misses
        else f"converged: max R-hat {diag['max_rhat']:.3f}, {diag['divergences']} divergences, "
        f"min bulk ESS {diag['min_ess_bulk']:.0f}"
    )
    return CheckOutcome(
        name="converged",
        passed=not misses,
        severity="warn",
        summary=summary,
        details=misses,
        metadata={
            "max_rhat": diag["max_rhat"],
            "max_rhat_variable": diag.get("max_rhat_variable"),
            "divergences": diag["divergences"],
            "min_ess_bulk": diag["min_ess_bulk"],
            "bar": checks.model_dump(),
        },
    )
