"""Fixed effects absorbed by the within transformation, with the degrees of freedom they use.

IV2SLS in linearmodels has no fixed effects (bashtage/linearmodels#368): the maintainer's advice is to
purge them first and correct the degrees of freedom, which is what this module does. `demean` removes
any number of factors by alternating projections (exact after one sweep on a balanced two-way panel),
`absorbed_dof` counts the parameters they used (levels minus the redundant ones: for two factors one per
connected component of the bipartite level graph), and `extra_df` is the part that a cluster-robust
covariance must count: factors nested in the clusters are left out (the convention of Stata's areg /
reghdfe, whose effects are not estimated consistently per cluster anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components


def codes(values: Sequence | np.ndarray | pd.Series) -> np.ndarray:
    """0..k-1 integer codes of any labels."""
    return pd.factorize(pd.Series(values), sort=True)[0]


def indicator(factor: np.ndarray) -> csr_matrix:
    """(n, levels) sparse 0/1 matrix of integer codes."""
    n = len(factor)
    return csr_matrix((np.ones(n), (np.arange(n), factor)), shape=(n, int(factor.max()) + 1))


def demean(values: np.ndarray, factors: Sequence[np.ndarray], tol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """(n, k) `values` with the means of every factor (integer codes, (n,) each) removed jointly."""
    x = np.array(values, dtype=float, copy=True)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    dummies = [indicator(f) for f in factors]
    counts = [np.asarray(d.sum(axis=0)).ravel() for d in dummies]
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    for _ in range(max_iter):
        largest = 0.0
        for d, n in zip(dummies, counts, strict=True):
            step = d @ ((d.T @ x) / np.maximum(n, 1)[:, None])
            x -= step
            largest = max(largest, float((np.abs(step).max(axis=0) / scale).max()) if len(step) else 0.0)
        if largest < tol or len(factors) < 2:
            break
    return x[:, 0] if squeeze else x


def absorbed_dof(factors: Sequence[np.ndarray]) -> int:
    """Parameters the factors use: their levels less the redundant ones (exact for one or two factors;
    for more, one redundancy per extra factor is assumed, as for a connected design)."""
    levels = [int(f.max()) + 1 for f in factors]
    if len(factors) == 0:
        return 0
    if len(factors) == 1:
        return levels[0]
    if len(factors) == 2:
        a, b = factors
        graph = coo_matrix((np.ones(len(a)), (a, b + levels[0])), shape=(sum(levels), sum(levels)))
        components, _ = connected_components(graph, directed=False)
        return sum(levels) - components
    return sum(levels) - (len(factors) - 1)


def nested(factor: np.ndarray, clusters: np.ndarray) -> bool:
    """Every level of `factor` lies inside one cluster."""
    pairs = pd.DataFrame({"f": factor, "c": clusters}).drop_duplicates()
    return bool(pairs["f"].is_unique)


def extra_df(factors: Sequence[np.ndarray], clusters: np.ndarray | None) -> int:
    """Degrees of freedom a covariance must add for the absorbed factors: all of them, less the levels of
    factors nested in the clusters (cluster-robust covariance)."""
    total = absorbed_dof(factors)
    if clusters is None:
        return total
    for f in factors:
        if nested(f, clusters):
            total -= int(f.max()) + 1
    return max(total, 0)
