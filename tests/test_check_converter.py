"""The one converter from a core check outcome to a Dagster check result stores what Dagster can
serialise: NumPy scalars (what estimators return) as Python numbers, containers as JSON."""

import dagster as dg
import numpy as np
from dagster._serdes import serialize_value

from mmm_platform.defs.checks import check_result
from mmm_platform.quality.checks import CheckOutcome


def test_numpy_scalars_and_tuples_become_storable_metadata() -> None:
    outcome = CheckOutcome(
        name="converged",
        passed=False,
        severity="warn",
        summary="not converged",
        details=["max R-hat 1.2 > 1.01"],
        metadata={"max_rhat": np.float64(1.2), "divergences": np.int64(3), "bar": {"span": (1, 2)}},
    )
    result = check_result(outcome, check_name="converged")
    assert result.severity == dg.AssetCheckSeverity.WARN and not result.passed
    meta = result.metadata
    assert type(meta["max_rhat"].value) is float and meta["divergences"].value == 3
    assert meta["bar"].value == {"span": [1, 2]}
    serialize_value(result.metadata)  # raises on a type Dagster cannot store
