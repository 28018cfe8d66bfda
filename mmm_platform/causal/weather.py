"""The weather studies: OLS beside the forecast-error IV, the lead checks, the forecast-control collapse,
heterogeneity by climate cluster and geo (spatially smoothed), and the weather-vs-normal total."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats

from mmm_platform.causal import fe, iv
from mmm_platform.causal.config import CausalConfig
from mmm_platform.features.spatial import spatial_smooth


@dataclass(frozen=True)
class LeadCheck:
    lead: int
    #: the variable whose lead-L error joins the lead-1 instruments
    variable: str
    estimate: float
    hansen_j: float
    j_pvalue: float
    flagged: bool


@dataclass(frozen=True)
class WeatherStudy:
    #: (outcome, method) -> fit; methods: ols, iv_2sls (lead 1), iv_2sls_overid (valid leads)
    fits: dict[tuple[str, str], iv.Fit]
    lead_checks: list[LeadCheck]
    #: 2SLS with the lead-1 forecast as a control: the collapse (partial R2 of the first stage = 1)
    collapse: iv.Fit
    #: cluster_id, variable, estimate, std_error, n_geos, smoothed
    by_cluster: pd.DataFrame
    #: geo_id, cluster_id, variable, estimate, std_error, smoothed, neighbor_mean
    by_geo: pd.DataFrame
    variables: tuple[str, ...]
    instrument_lead: int


def instruments_for(variables: tuple[str, ...], leads: tuple[int, ...]) -> list[str]:
    return [iv.error_column(v, lead) for lead in leads for v in variables]


def study(panel: pd.DataFrame, neighbors: pl.DataFrame, config: CausalConfig) -> WeatherStudy:
    c = config.iv
    variables = tuple(c.variables)
    fits: dict[tuple[str, str], iv.Fit] = {}
    z1 = instruments_for(variables, (c.instrument_lead,))
    for outcome in c.outcomes:
        fits[(outcome, "ols")] = iv.fit(panel, outcome, variables, level=config.level)
        first_stage_only = "full" if outcome == c.outcomes[0] else "first_stage"
        fits[(outcome, "iv_2sls")] = iv.fit(
            panel, outcome, variables, z1, level=config.level, weak_f=c.weak_instrument_f, diagnostics=first_stage_only
        )
        if len(c.overid_leads) > 1:
            fits[(outcome, "iv_2sls_overid")] = iv.fit(
                panel,
                outcome,
                variables,
                instruments_for(variables, tuple(c.overid_leads)),
                level=config.level,
                weak_f=c.weak_instrument_f,
                diagnostics="full" if outcome == c.outcomes[0] else "none",
            )
    outcome = c.outcomes[0]
    checks = []
    for lead in c.check_leads:
        for v in variables:
            extra = iv.error_column(v, lead)
            if extra not in panel.columns or panel[extra].isna().all():
                continue
            f = iv.fit(panel, outcome, variables, [*z1, extra], level=config.level, diagnostics="overid")
            j = f.tests["hansen_j"]
            checks.append(LeadCheck(lead, v, float(f.params[v]), j.stat, j.pvalue, j.pvalue < 1 - config.level))
    controls = [iv.forecast_column(v, c.instrument_lead) for v in variables]
    collapse = iv.fit(panel, outcome, variables, z1, exog=controls, level=config.level, diagnostics="first_stage")
    by_cluster = _by_cluster(panel, outcome, variables, z1, config)
    by_geo = _by_geo(panel, outcome, variables, z1, neighbors, config)
    by_cluster = by_cluster.merge(
        by_geo.groupby(["cluster_id", "variable"], as_index=False)["smoothed"].mean(), how="left"
    )
    return WeatherStudy(fits, checks, collapse, by_cluster, by_geo, variables, c.instrument_lead)


def _by_cluster(panel, outcome, variables, z1, config: CausalConfig) -> pd.DataFrame:
    rows = []
    for cluster, part in panel.groupby("cluster_id"):
        n_geos = part["geo_id"].nunique()
        for v in variables:
            row = {"cluster_id": int(cluster), "variable": v, "n_geos": n_geos, "estimate": np.nan, "std_error": np.nan}
            if n_geos >= 2:  # a one-geo cluster has nothing left after the date effects
                f = iv.fit(part, outcome, variables, z1, level=config.level, diagnostics="none")
                row |= {"estimate": float(f.params[v]), "std_error": float(f.std_errors[v])}
            rows.append(row)
    return pd.DataFrame(rows)


def _hac_iv(y: np.ndarray, x: np.ndarray, z: np.ndarray, bandwidth: int) -> tuple[np.ndarray, np.ndarray]:
    """Just-identified IV of y on x with instruments z (one series, in time order): coefficients and
    Newey-West (Bartlett) standard errors."""
    zx = z.T @ x
    beta = np.linalg.solve(zx, z.T @ y)
    u = y - x @ beta
    s = z * u[:, None]
    meat = s.T @ s
    for lag in range(1, bandwidth + 1):
        w = 1 - lag / (bandwidth + 1)
        g = s[lag:].T @ s[:-lag]
        meat += w * (g + g.T)
    inv = np.linalg.inv(zx)
    n, k = x.shape
    cov = inv @ meat @ inv.T * n / max(n - k, 1)
    return beta, np.sqrt(np.diag(cov))


def _by_geo(panel, outcome, variables, z1, neighbors: pl.DataFrame, config: CausalConfig) -> pd.DataFrame:
    """Per geo, the lead-1 IV from its own days after the two-way within transformation of the whole
    panel (date effects from every geo), HAC SE; then each geo's estimate shrunk towards its neighbours'
    by its precision against the between-geo variance (DerSimonian-Laird), with features.spatial."""
    columns = [outcome, *variables, *z1]
    data = panel[["geo_id", "date", "cluster_id", *columns]].dropna()
    values = fe.demean(data[columns].to_numpy(float), [fe.codes(data["geo_id"]), fe.codes(data["date"])])
    rows = []
    for geo, index in data.groupby("geo_id", sort=True).indices.items():
        part = values[index]
        beta, se = _hac_iv(
            part[:, 0], part[:, 1 : 1 + len(variables)], part[:, 1 + len(variables) :], config.iv.geo_hac_bandwidth_days
        )
        cluster = int(data["cluster_id"].iloc[index[0]])
        for j, v in enumerate(variables):
            rows.append({"geo_id": geo, "cluster_id": cluster, "variable": v, "estimate": beta[j], "std_error": se[j]})
    by_geo = pd.DataFrame(rows)
    out = []
    for _, part in by_geo.groupby("variable", sort=False):
        w = 1 / part["std_error"].to_numpy() ** 2
        est = part["estimate"].to_numpy()
        mean = (w * est).sum() / w.sum()
        q = (w * (est - mean) ** 2).sum()
        tau2 = max(0.0, (q - (len(est) - 1)) / (w.sum() - (w**2).sum() / w.sum()))
        prior = 1 / tau2 if tau2 > 0 else 1e12
        values_pl = pl.DataFrame({"geo_id": part["geo_id"].tolist(), "value": est.tolist(), "precision": w.tolist()})
        if neighbors.height:
            sm = spatial_smooth(values_pl, neighbors, value="value", evidence="precision", prior_strength=prior)
            sm = sm.to_pandas().rename(columns={"value": "estimate"})
            merged = part.merge(sm[["geo_id", "neighbor_mean", "smoothed"]], on="geo_id", how="left")
        else:
            merged = part.assign(neighbor_mean=np.nan, smoothed=part["estimate"])
        merged["between_geo_sd"] = np.sqrt(tau2)
        out.append(merged)
    return pd.concat(out, ignore_index=True)


@dataclass(frozen=True)
class Contribution:
    period_days: int
    start: pd.Timestamp
    end: pd.Timestamp
    n_geos: int
    estimate: float
    std_error: float
    ci_lower: float
    ci_upper: float
    p_value: float
    #: the part of each variable
    by_variable: dict[str, float]


def contribution(panel: pd.DataFrame, fit_: iv.Fit, period_days: int, level: float = 0.95) -> Contribution:
    """Revenue the weather drove over the last `period_days` days against normal weather (each geo's
    climatology: observed minus its anomaly): sum over geo-days of effect x (observed - normal), with
    its SE from the IV covariance of the effects (the anomalies are data, not estimates)."""
    end = panel["date"].max()
    start = end - pd.Timedelta(days=period_days - 1)
    part = panel[panel["date"].between(start, end)]
    anomalies = {
        "temp_mean_c": part["temp_mean_anom_c"],
        "precip_mm": part["precip_anom_mm"],
    }
    weights = {v: float(anomalies[v].sum()) for v in fit_.regressors if v in anomalies}
    est, se = fit_.linear_combination(weights)
    crit = fit_.t_crit()
    return Contribution(
        period_days=period_days,
        start=start,
        end=end,
        n_geos=part["geo_id"].nunique(),
        estimate=est,
        std_error=se,
        ci_lower=est - crit * se,
        ci_upper=est + crit * se,
        p_value=float(2 * stats.t.sf(abs(est / se), fit_.df_resid)) if se > 0 else float("nan"),
        by_variable={v: float(fit_.params[v]) * a for v, a in weights.items()},
    )
