"""Instrumental variables with absorbed fixed effects (linearmodels), and the weather effects they give.

`fit` is the one estimator: OLS or 2SLS of an outcome on regressors, with any fixed effects absorbed by
the within transformation (fe.py, degrees of freedom corrected through linearmodels' `extra_df`),
covariance unadjusted, robust, clustered or HAC, and for IV the diagnostics that tell whether to believe
it: the first-stage F and partial / Shea R² per regressor with a weak-instrument verdict, the Wu-Hausman
and the (robust) Wooldridge regression test of endogeneity, and, over-identified, Sargan's test and the
cluster-robust Hansen J of a two-step GMM with the same instruments.

The weather design (docs/causal.md): the effect of observed weather on revenue per geo-day, instrumented
by its forecast error at lead 1 (observed minus the forecast issued the day before). Marketing and
demand react to the forecast, not to its error; the error is independent of every forecast of lead >= 1
(forecasts are efficient) and moves the observed weather one for one, so it is a valid instrument.
Never add the forecast itself as a control while instrumenting with its error: observed = forecast +
error exactly, so the instrument becomes the regressor and the first stage is perfect
(`forecast_control_collapse` shows it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from linearmodels.iv import IV2SLS, IVGMM
from scipy import stats
from scipy.linalg import cho_factor, cho_solve

from mmm_platform.causal import fe


@dataclass(frozen=True)
class FirstStage:
    regressor: str
    f_stat: float
    f_pvalue: float
    partial_r2: float
    shea_r2: float
    weak: bool


@dataclass(frozen=True)
class Test:
    name: str
    stat: float
    pvalue: float
    df: float | None = None


@dataclass(frozen=True)
class Fit:
    method: str
    outcome: str
    regressors: tuple[str, ...]
    instruments: tuple[str, ...]
    params: pd.Series
    std_errors: pd.Series
    cov: pd.DataFrame
    n_obs: int
    n_clusters: int | None
    #: degrees of freedom of the t distribution of every interval and p-value (clusters - 1 when
    #: clustered, as Stata does; n - k otherwise)
    df_resid: float
    level: float
    first_stage: dict[str, FirstStage] = field(default_factory=dict)
    tests: dict[str, Test] = field(default_factory=dict)

    def t_crit(self) -> float:
        return float(stats.t.ppf(0.5 + self.level / 2, self.df_resid))

    def pvalue(self, name: str) -> float:
        t = self.params[name] / self.std_errors[name]
        return float(2 * stats.t.sf(abs(t), self.df_resid))

    def ci(self, name: str) -> tuple[float, float]:
        half = self.t_crit() * self.std_errors[name]
        return float(self.params[name] - half), float(self.params[name] + half)

    def linear_combination(self, weights: dict[str, float]) -> tuple[float, float]:
        """Estimate and standard error of sum(w * param)."""
        names = list(weights)
        w = np.array([weights[n] for n in names])
        est = float(w @ self.params[names].to_numpy())
        se = float(np.sqrt(w @ self.cov.loc[names, names].to_numpy() @ w))
        return est, se

    def wald(self, names: Sequence[str]) -> Test:
        """Joint test that the named parameters are all zero: F = Wald / q on (q, df_resid)."""
        names = list(names)
        b = self.params[names].to_numpy()
        v = self.cov.loc[names, names].to_numpy()
        wald = float(b @ np.linalg.pinv(v) @ b)
        q = len(names)
        return Test("wald", wald / q, float(stats.f.sf(wald / q, q, self.df_resid)), q)


def _cov_options(cov_type: str, clusters: np.ndarray | None, bandwidth: int | None, extra: int, debiased: bool) -> dict:
    options: dict = {"cov_type": cov_type, "debiased": debiased, "extra_df": extra}
    if cov_type == "clustered":
        # a numpy array, not a Series: linearmodels deep-copies cov_config into every auxiliary model
        options["clusters"] = fe.codes(clusters)
    if cov_type == "kernel":
        options.update(kernel="bartlett", bandwidth=bandwidth)
    return options


def fit(
    frame: pd.DataFrame,
    outcome: str,
    regressors: Sequence[str],
    instruments: Sequence[str] = (),
    exog: Sequence[str] = (),
    absorb: Sequence[str] = ("geo_id", "date"),
    cluster: str | None = "geo_id",
    cov_type: str | None = None,
    level: float = 0.95,
    weak_f: float = 10.0,
    bandwidth: int | None = None,
    debiased: bool = True,
    diagnostics: str = "full",
) -> Fit:
    """OLS (no instruments) or 2SLS of `outcome` on `regressors` (endogenous when `instruments` are
    given) and `exog`, with the `absorb` factors removed by the within transformation. Without absorbed
    factors a constant is added. `cov_type` defaults to clustered by `cluster` (unadjusted without)."""
    regressors, instruments, exog = list(regressors), list(instruments), list(exog)
    columns = [outcome, *regressors, *instruments, *exog]
    data = frame[list(dict.fromkeys([*columns, *absorb, *([cluster] if cluster else [])]))].dropna()
    if data.empty:
        raise ValueError(f"no complete rows for {outcome} ~ {regressors}")
    factors = [fe.codes(data[a]) for a in absorb]
    values = data[columns].to_numpy(float)
    if factors:
        values = fe.demean(values, factors)
    x = pd.DataFrame(values, columns=columns)
    if not factors:
        x["const"] = 1.0
        exog = ["const", *exog]
    clusters = data[cluster].to_numpy() if cluster else None
    cov_type = cov_type or ("clustered" if cluster else "unadjusted")
    extra = fe.extra_df(factors, clusters if cov_type == "clustered" else None) if factors else 0
    options = _cov_options(cov_type, clusters, bandwidth, extra, debiased)
    dep = x[outcome]
    ex = x[exog] if exog else None
    if instruments:
        model = IV2SLS(dep, ex, x[regressors], x[instruments])
        method = "iv_2sls"
    else:
        model = IV2SLS(dep, x[[*exog, *regressors]], None, None)
        method = "ols"
    res = model.fit(**options)
    n = len(data)
    n_clusters = int(pd.Series(clusters).nunique()) if cov_type == "clustered" else None
    df_resid = (n_clusters - 1) if n_clusters else max(n - len(res.params) - extra, 1)
    out = Fit(
        method=method,
        outcome=outcome,
        regressors=tuple(regressors),
        instruments=tuple(instruments),
        params=res.params,
        std_errors=res.std_errors,
        cov=res.cov,
        n_obs=n,
        n_clusters=n_clusters,
        df_resid=float(df_resid),
        level=level,
    )
    if instruments and diagnostics != "none":
        _diagnose(out, res, x, dep, ex, regressors, instruments, options, weak_f, diagnostics)
    return out


def ols_clustered(
    frame: pd.DataFrame,
    outcome: str,
    regressors: Sequence[str],
    absorb: Sequence[str],
    cluster: str,
    level: float = 0.95,
) -> Fit:
    """OLS with absorbed factors and a cluster-robust covariance, in numpy: for designs with many
    indicator regressors (stacked DiD), where linearmodels' rank checks (an SVD of the whole design)
    dominate. Same small-sample factor as linearmodels' debiased clustered covariance with extra_df:
    G / (G - 1) x (n - 1) / (n - k - extra_df). Regressors that the factors absorb (all zero after the
    within transformation, or collinear) get NaN."""
    regressors = list(regressors)
    data = frame[list(dict.fromkeys([outcome, *regressors, *absorb, cluster]))].dropna()
    factors = [fe.codes(data[a]) for a in absorb]
    values = fe.demean(data[[outcome, *regressors]].to_numpy(float), factors)
    y, x = values[:, 0], values[:, 1:]
    norms = np.sqrt((x**2).sum(axis=0))
    keep = norms > 1e-9 * max(float(norms.max(initial=0.0)), 1.0)
    xk = x[:, keep]
    xtx = xk.T @ xk
    try:  # positive definite: full rank
        factor = cho_factor(xtx)
        inv = cho_solve(factor, np.eye(len(xtx)))
        full_rank = True
    except np.linalg.LinAlgError:
        inv, full_rank = np.linalg.pinv(xtx), False
    beta = inv @ (xk.T @ y)
    resid = y - xk @ beta
    groups = fe.codes(data[cluster])
    scores = fe.indicator(groups).T @ (xk * resid[:, None])
    n, k, g = len(y), int(keep.sum()), int(groups.max()) + 1
    extra = fe.extra_df(factors, groups)
    scale = g / (g - 1) * (n - 1) / max(n - k - extra, 1)
    cov_k = inv @ (scores.T @ scores) @ inv * scale
    params = np.full(len(regressors), np.nan)
    params[keep] = beta
    cov = np.full((len(regressors), len(regressors)), np.nan)
    cov[np.ix_(keep, keep)] = cov_k
    if not full_rank:  # collinear regressors: nothing here is identified reliably
        params[:] = np.nan
    index = pd.Index(regressors)
    return Fit(
        method="ols",
        outcome=outcome,
        regressors=tuple(regressors),
        instruments=(),
        params=pd.Series(params, index=index),
        std_errors=pd.Series(np.sqrt(np.diag(cov)), index=index),
        cov=pd.DataFrame(cov, index=index, columns=index),
        n_obs=n,
        n_clusters=g,
        df_resid=float(g - 1),
        level=level,
    )


def _diagnose(out: Fit, res, x, dep, ex, regressors, instruments, options, weak_f, which: str) -> None:
    n_excluded = len(instruments)
    try:
        diag = res.first_stage.diagnostics if which != "overid" else pd.DataFrame()
    except np.linalg.LinAlgError:
        # too few clusters for the clustered first-stage Wald test (a handful of geos): no F, and
        # the instrument counts as weak, so the strength check says so instead of the run failing
        diag = pd.DataFrame(
            {"f.stat": np.nan, "f.dist": "F", "f.pval": np.nan, "partial.rsquared": np.nan, "shea.rsquared": np.nan},
            index=list(regressors),
        )
    for name in regressors if which != "overid" else ():
        row = diag.loc[name]
        stat = float(row["f.stat"])
        # under a robust covariance linearmodels reports the Wald chi2(q): F = chi2 / q
        f_stat = stat / n_excluded if str(row["f.dist"]).startswith("chi2") else stat
        out.first_stage[name] = FirstStage(
            regressor=name,
            f_stat=f_stat,
            f_pvalue=float(row["f.pval"]),
            partial_r2=float(row["partial.rsquared"]),
            shea_r2=float(row["shea.rsquared"]),
            weak=not f_stat >= weak_f,
        )
    if which == "first_stage":
        return
    # each test refits auxiliary models; a degenerate design (the forecast-control collapse) has none
    try:
        if which == "overid":
            raise ValueError("endogeneity tests not requested")
        wu = res.wu_hausman()
        out.tests["wu_hausman"] = Test("wu_hausman", float(wu.stat), float(wu.pval), float(wu.df))
        wr = res.wooldridge_regression
        out.tests["wooldridge_regression"] = Test("wooldridge_regression", float(wr.stat), float(wr.pval), float(wr.df))
    except (ValueError, np.linalg.LinAlgError):
        pass
    if n_excluded > len(regressors):
        try:
            if which == "full":
                sargan = res.sargan
                out.tests["sargan"] = Test("sargan", float(sargan.stat), float(sargan.pval), float(sargan.df))
            weight = {k: v for k, v in options.items() if k in ("clusters", "kernel", "bandwidth")}
            weight_type = {"clustered": "clustered", "kernel": "kernel", "robust": "robust"}.get(
                options["cov_type"], "unadjusted"
            )
            gmm = IVGMM(dep, ex, x[regressors], x[instruments], weight_type=weight_type, **weight).fit(
                cov_type=options["cov_type"], **{k: v for k, v in options.items() if k in ("clusters",)}
            )
            j = gmm.j_stat
            out.tests["hansen_j"] = Test("hansen_j", float(j.stat), float(j.pval), float(j.df))
        except (ValueError, np.linalg.LinAlgError):
            pass


def overid_test(fit_: Fit) -> Test | None:
    """The robust over-identification test of an over-identified fit (Hansen J), else None."""
    return fit_.tests.get("hansen_j")


def error_column(variable: str, lead: int) -> str:
    """The feature marts' name of the forecast error of `variable` at `lead` (observed - forecast)."""
    return f"{variable}_fc_error_l{lead}"


def forecast_column(variable: str, lead: int) -> str:
    return f"{variable}_fc_l{lead}"
