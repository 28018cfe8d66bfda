"""The model: a geo-level `pymc_marketing.mmm.MMM` with priors derived from the data.

Scaling. The target is divided by each geo's mean revenue per period and each channel's spend by
its mean in that geo (PyMC-Marketing's `DataDerivedScaling(method="mean")` per geo and channel), so
one parameter value means the same thing in a small and a large geo: effects scale with the geo.

Saturation in "effect at mean spend" coordinates. PyMC-Marketing's Hill curve `beta * x^s /
(x^s + kappa^s)` is kept, but sampled as `m = f(1)`, the contribution at the channel's mean spend
(`beta = m * (1 + kappa^s)`): the data pin `m` down, while `beta` and `kappa` alone slide along a
ridge that stalls NUTS. `m` is the channel's return at mean spend times its spend-to-revenue ratio
in the geo, and that return is where the priors live:

    log r[g, c] = log r0 + media + group[group(c)] + channel[c] + geo_sd[c] * z[g, c]

so channels of one group (brand, performance) share a group-level return, geos are partially
pooled around their channel, and the prior expects contribution shares in proportion to spend
shares (the spend-share prior). Carry-over has the same group structure on the log mean lag.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pymc.dims as pmd
import pytensor.tensor as pt
from pymc_extras.prior import Prior
from pymc_marketing.mmm import MMM
from pymc_marketing.mmm.additive_effect import MuEffect
from pymc_marketing.mmm.components.adstock import (
    DelayedAdstock,
    GeometricAdstock,
    WeibullCDFAdstock,
    WeibullPDFAdstock,
)
from pymc_marketing.mmm.components.saturation import SaturationTransformation
from pymc_marketing.mmm.scaling import DataDerivedScaling, Scaling
from pymc_marketing.mmm.transformers import hill_function, logistic_saturation
from pymc_marketing.serialization import serialization
from pytensor.xtensor import as_xtensor

from mmm_platform.mmm.config import MMMConfig
from mmm_platform.mmm.data import Panel, fourier_basis

GEO = "geo"
CHANNEL = "channel"
GROUP = "channel_group"
CLUSTER = "geo_cluster"


# --- saturation curves sampled at the mean spend -----------------------------------------------


@serialization.register
class HillAtMean(SaturationTransformation):
    """Hill saturation, `beta * x^s / (x^s + kappa^s)`, parameterised by `m`, its value at x = 1
    (the channel's mean spend): `beta = m * (1 + kappa^s)`."""

    lookup_name = "hill_at_mean"

    def function(self, x, slope, kappa, m, *, dim: str | None = None):
        return m * (1 + kappa**slope) * hill_function(x, slope, kappa)

    default_priors = {  # noqa: RUF012 (the PyMC-Marketing idiom)
        "slope": Prior("LogNormal", mu=np.log(1.2), sigma=0.3),
        "kappa": Prior("LogNormal", mu=np.log(1.5), sigma=0.6),
        "m": Prior("LogNormal", mu=np.log(0.05), sigma=1.0),
    }


@serialization.register
class LogisticAtMean(SaturationTransformation):
    """Logistic saturation, `beta * (1 - e^{-lam x}) / (1 + e^{-lam x})`, parameterised by `m`, its
    value at x = 1: `beta = m / logistic(1, lam)`."""

    lookup_name = "logistic_at_mean"

    def function(self, x, lam, m, *, dim: str | None = None):
        return m * logistic_saturation(x, lam) / logistic_saturation(1.0, lam)

    default_priors = {  # noqa: RUF012
        "lam": Prior("LogNormal", mu=np.log(1.0), sigma=0.6),
        "m": Prior("LogNormal", mu=np.log(0.05), sigma=1.0),
    }


# --- hierarchical priors ------------------------------------------------------------------------


def _ensure_coord(name: str, values) -> None:
    model = pm.modelcontext(None)
    if name not in model.coords:
        model.add_coord(name, list(values))


def _within_groups(x, index: np.ndarray):
    """x (., n) less the mean of its group along the last axis (`index`: (n,) -> group)."""
    onehot = (index[:, None] == np.arange(index.max() + 1)[None, :]).astype(float)  # (n, k)
    means = pt.dot(x, onehot / onehot.sum(axis=0))  # (., k)
    return x - means[..., index]


@dataclass
class GroupedEffect:
    """A positive (geo, channel) or (channel,) parameter on the log scale:

        group[k]    = centre_group + group_sd * u[k]                       (non-centred)
        log v[c]    ~ Normal(group[group(c)] + offset[c], channel_sd[c])   (centred: the data
                                                                            pin each channel down)
        log v[g, c] = log v[c] (+ k[cluster(g), c]) + geo_sd[c] z[g, c]

    with standard-normal u, k normal with scale cluster_sd[c] (centred) and summing to zero over
    the clusters, and z summing to zero over the geos (with clusters: over the geos of each
    cluster), then `v = transform(exp(log v)) * ratio`. `centre` is the prior median per channel
    (`offset` = centre - the group's mean centre, so a per-channel override moves only that
    channel); the group term is what channels of one group share."""

    centre: np.ndarray  # (channel,) log prior median
    channel_sd: np.ndarray  # (channel,)
    group_sd: float
    group_index: np.ndarray  # (channel,) -> group
    groups: list[str]
    channels: list[str]
    geos: list[str] | None = None  # None: a (channel,) parameter
    geo_sd: float = 0.2
    cluster_index: np.ndarray | None = None  # (geo,) -> cluster
    clusters: list[str] | None = None
    ratio: np.ndarray | None = None  # (geo, channel) or (channel,) multiplier
    transform: str = "identity"  # identity | lag_to_alpha (L -> L / (1 + L))

    @property
    def dims(self) -> tuple[str, ...]:
        return (GEO, CHANNEL) if self.geos is not None else (CHANNEL,)

    def to_dict(self) -> dict:
        """JSON-safe description (PyMC-Marketing writes every prior into the fit's attributes)."""
        out: dict = {"__type__": f"{type(self).__module__}.{type(self).__qualname__}"}
        for k, v in self.__dict__.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def create_variable(self, name: str, xdist: bool = False):
        _ensure_coord(GROUP, self.groups)
        n_groups = len(self.groups)
        group_centre = np.array(
            [
                self.centre[self.group_index == k].mean() if np.any(self.group_index == k) else 0.0
                for k in range(n_groups)
            ]
        )
        offset = self.centre - group_centre[self.group_index]
        group = pm.Deterministic(
            f"{name}_group_log",
            pt.as_tensor(group_centre) + self.group_sd * pm.Normal(f"{name}_group_raw", 0.0, 1.0, dims=GROUP),
            dims=GROUP,
        )
        log_c = pm.Normal(
            f"{name}_channel_log",
            mu=group[self.group_index] + pt.as_tensor(offset),
            sigma=pt.as_tensor(self.channel_sd),
            dims=CHANNEL,
        )
        if self.geos is not None:
            # geo (and cluster) deviations around the channel, non-centred and summing to zero over
            # the geos: the channel's level then moves alone (what a weakly identified channel
            # needs), and the level is the geos' mean (what a strongly identified one needs)
            log_v = log_c[None, :]
            if self.cluster_index is not None:
                _ensure_coord(CLUSTER, self.clusters)
                c_sd = pm.LogNormal(f"{name}_cluster_sd", np.log(self.geo_sd), 0.5, dims=CHANNEL)
                # centred: each cluster holds tens of geos, so the data pin its term down, and a
                # non-centred term (scale x raw) would be a funnel along which NUTS crawls
                k = pm.ZeroSumNormal(f"{name}_cluster", sigma=c_sd[:, None], dims=(CHANNEL, CLUSTER))
                log_v = log_v + k.T[self.cluster_index]
                # the geos' deviations sum to zero within each cluster: summing over all geos only,
                # a cluster's term and the mean deviation of its geos would be one direction of the
                # likelihood (a ridge only the priors bound, which the sampler crawls along)
                z = _within_groups(pm.Normal(f"{name}_geo_raw", 0.0, 1.0, dims=(CHANNEL, GEO)), self.cluster_index)
            else:
                z = pm.ZeroSumNormal(f"{name}_geo_raw", sigma=1.0, dims=(CHANNEL, GEO))
            g_sd = pm.LogNormal(f"{name}_geo_sd", np.log(self.geo_sd), 0.5, dims=CHANNEL)
            log_v = log_v + (g_sd[:, None] * z).T
        else:
            log_v = log_c
        v = pt.exp(log_v)
        if self.transform == "lag_to_alpha":
            v = v / (1.0 + v)
        if self.ratio is not None:
            v = v * pt.as_tensor(self.ratio)
        if xdist:  # a pymc.dims variable, as PyMC-Marketing's own priors make (lift tests index it by dim)
            return pmd.Deterministic(name, as_xtensor(v, dims=self.dims))
        return pm.Deterministic(name, v, dims=self.dims)


# --- time effects -------------------------------------------------------------------------------


class DateEffect(MuEffect):
    """A national effect per period, shared by every geo (in units of each geo's mean revenue):
    date fixed effects with a common half-normal scale, summing to zero over the periods (the geo
    intercepts hold the level). It absorbs whatever moves all geos at once (holidays, the season,
    national events and budget pushes), so media is identified by how spend differs between geos
    within a period."""

    prefix: str = "date"
    sigma: float = 0.1

    def create_data(self, mmm) -> None:
        return None

    def create_effect(self, mmm):
        # centred: with many geos per period the data pin each period's effect down
        sd = pm.HalfNormal(f"{self.prefix}_sd", self.sigma)
        eff = pm.ZeroSumNormal(f"{self.prefix}_effect_contribution", sigma=sd, dims="date")
        return as_xtensor(eff, dims=("date",))

    def set_data(self, mmm, model, X) -> None:
        return None


class GeoSeasonality(MuEffect):
    """A yearly cycle per geo (Fourier terms). With date effects on, the geos' cycles sum to zero
    (the national cycle is in the date effects), so the two do not trade off."""

    prefix: str = "season"
    n_order: int = 3
    sigma: float = 0.05
    zero_sum: bool = True

    def create_data(self, mmm) -> None:
        return None

    def create_effect(self, mmm):
        model = mmm.model
        mode = f"{self.prefix}_mode"
        _ensure_coord(mode, [f"{f}_{k}" for k in range(1, self.n_order + 1) for f in ("sin", "cos")])
        basis = fourier_basis(model.coords["date"], self.n_order)  # (date, mode)
        if self.zero_sum:
            raw = pm.ZeroSumNormal(f"{self.prefix}_raw", sigma=1.0, dims=(mode, GEO))
        else:
            raw = pm.Normal(f"{self.prefix}_raw", 0.0, 1.0, dims=(mode, GEO))
        coef = pm.Deterministic(f"{self.prefix}_coef", raw * self.sigma, dims=(mode, GEO))
        det = pm.Deterministic(f"{self.prefix}_effect_contribution", pt.as_tensor(basis) @ coef, dims=("date", GEO))
        return as_xtensor(det, dims=("date", GEO))

    def set_data(self, mmm, model, X) -> None:
        return None


class CentredMedia(MuEffect):
    """Media enters the mean net of its geo means (and, with date effects, of its date means), and
    the intercept is each geo's whole level: the same model, reparameterised so that the baseline
    and a channel's average contribution (or a date's effect and national media) no longer slide
    against each other in the sampler. The baseline-share prior is kept, on the level minus the
    geo's mean media contribution, which must stay positive."""

    prefix: str = "media_centring"
    date_effects: bool = True
    baseline_mu: float = float(np.log(0.85))
    baseline_sigma: float = 0.25

    def create_data(self, mmm) -> None:
        return None

    def create_effect(self, mmm):
        model = mmm.model
        media = model["channel_contribution"].sum("channel")  # (date, geo), scaled
        geo_mean = media.mean("date")
        shift = -geo_mean
        if self.date_effects:
            shift = shift - media.mean(GEO) + media.mean()
        baseline = pmd.Deterministic("baseline_share", (model["intercept_contribution"] - geo_mean).transpose(GEO))
        # the baseline-share prior as a pseudo-observation of its log (a log-normal kernel; PyMC
        # differentiates observed pymc.dims variables, not potentials built from them)
        log_b = pmd.math.log(pmd.math.maximum(baseline, 1e-6))
        pmd.Normal(
            "baseline_share_prior",
            mu=log_b,
            sigma=self.baseline_sigma,
            observed=as_xtensor(np.full(len(model.coords[GEO]), self.baseline_mu), dims=(GEO,)),
        )
        return pmd.Deterministic(f"{self.prefix}_effect_contribution", shift.transpose("date", GEO))

    def set_data(self, mmm, model, X) -> None:
        return None


# --- the model class ------------------------------------------------------------------------------

#: deterministics recomputed into the trace after sampling; the (draw, date, geo, channel) ones are
#: left out (at daily grain they are gigabytes) and recomputed on thinned draws by results.py
TRACE_DETERMINISTICS = (
    "mu",
    "intercept_contribution",
    "saturation_m",
    "saturation_kappa",
    "saturation_slope",
    "saturation_lam",
    "adstock_alpha",
    "date_effect_contribution",
    "season_coef",  # with the rest, what a forecast of later periods needs (mmm/forecast.py)
    "baseline_share",
)


class PlatformMMM(MMM):
    """PyMC-Marketing's MMM, sampling as it does (free variables first, deterministics recomputed
    after), but recomputing only the deterministics the platform reads."""

    def _sample_with_deterministics(self, sampler_kwargs, step_factory=None):
        model = self._get_sampling_model()
        with model:
            kwargs = dict(sampler_kwargs)
            if step_factory is not None:
                kwargs["step"] = step_factory()
            idata = pm.sample(var_names=[v.name for v in model.free_RVs], **kwargs)
            det = {v.name for v in model.deterministics}
            keep = [v for v in TRACE_DETERMINISTICS if v in det]
            if keep:
                pm.compute_deterministics(idata, var_names=keep, extend_dataset=True, progressbar=False)
        return idata


# --- building the model -------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """What build_mmm made, besides the MMM: the data in its shape and the derived priors."""

    mmm: MMM
    X: pd.DataFrame
    y: pd.Series
    priors: pd.DataFrame  # one row per channel: the priors derived from the data
    weather_priors_used: list[str]
    lift_tests: pd.DataFrame | None = None


def _adstock(cfg: MMMConfig, priors: dict):
    form, l_max = cfg.adstock.form, cfg.l_max
    if form == "geometric":
        return GeometricAdstock(l_max=l_max, normalize=True, priors=priors)
    if form == "delayed":
        return DelayedAdstock(l_max=l_max, normalize=True, priors=priors)
    if form == "weibull_pdf":
        return WeibullPDFAdstock(l_max=l_max, normalize=True, priors=priors)
    return WeibullCDFAdstock(l_max=l_max, normalize=True, priors=priors)


def channel_prior_table(panel: Panel, cfg: MMMConfig) -> pd.DataFrame:
    """The priors of each channel after the overrides, and the data they are scaled by."""
    spend = panel.spend()  # (date, geo, channel)
    y = panel.series("y")
    rows = []
    for i, c in enumerate(panel.channels):
        p = cfg.channel_priors(c)
        rows.append(
            {
                "channel": c,
                "channel_group": panel.channel_groups[c],
                "spend_share": spend[..., i].sum() / spend.sum(),
                "spend_to_revenue": spend[..., i].sum() / y.sum(),
                "roas_median": (p.roas or cfg.priors.media_roas).median,
                "roas_log_sd": (p.roas.log_sd if p.roas else cfg.priors.channel_log_sd),
                "overridden": c in cfg.channels.overrides,
                "lag_mean_days": p.adstock_alpha_daily.mean / (1 - p.adstock_alpha_daily.mean),
                "alpha_concentration": p.adstock_alpha_daily.concentration,
                "half_saturation_median": p.half_saturation.median,
                "half_saturation_log_sd": p.half_saturation.log_sd,
                "hill_slope_median": p.hill_slope.median,
                "hill_slope_log_sd": p.hill_slope.log_sd,
                "peak_delay_days_median": p.peak_delay_days.median,
                "peak_delay_days_log_sd": p.peak_delay_days.log_sd,
            }
        )
    return pd.DataFrame(rows)


def _weather_prior_sigma(
    panel: Panel, cfg: MMMConfig, weather: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Normal prior (mu, sigma) of every control coefficient, in units of the geo's mean revenue
    per period per standard deviation of the control; a control named like a row of
    causal.weather_priors (`variable`, `mean`, `sd` in $ per geo-day per unit) gets that prior."""
    n = len(panel.controls)
    mu, sigma = np.zeros(n), np.full(n, cfg.priors.control_sd)
    used: list[str] = []
    if weather is None or weather.empty:
        return mu, sigma, used
    stats = panel.control_stats.set_index("control")
    by_expr = {c.name: c for c in cfg.controls}
    y_mean = panel.frame["y"].mean()  # $ per geo-period
    for _, row in weather.iterrows():
        var = str(row["variable"])
        # the control whose name or expression is the variable itself
        match = [n for n, c in by_expr.items() if n == var or c.expr.strip() == var]
        for name in match:
            if name not in stats.index:
                continue
            days = cfg.period_days if by_expr[name].agg == "mean" else 1
            k = panel.controls.index(name)
            sd_x = stats.loc[name, "sd"]
            mu[k] = row["mean"] * days * sd_x / y_mean
            sigma[k] = max(row["sd"] * days * sd_x / y_mean, 1e-4)
            used.append(name)
    return mu, sigma, used


def build_mmm(
    panel: Panel,
    cfg: MMMConfig,
    *,
    weather_priors: pd.DataFrame | None = None,
    lift_tests: pd.DataFrame | None = None,
) -> ModelSpec:
    """The PyMC-Marketing MMM for this panel, built (`build_model`) and, when given, calibrated
    with lift tests (`add_lift_test_measurements`)."""
    chans, geos = panel.channels, panel.geos
    groups = panel.groups()
    group_index = np.array([groups.index(panel.channel_groups[c]) for c in chans])
    table = channel_prior_table(panel, cfg)
    pr = cfg.priors

    use_clusters = len(geos) > cfg.geo.cluster_min_geos and len(set(panel.clusters.values())) > 1
    cluster_kw: dict = {}
    if use_clusters:
        cl = sorted({str(panel.clusters.get(g, -1)) for g in geos})
        cluster_kw = {
            "cluster_index": np.array([cl.index(str(panel.clusters.get(g, -1))) for g in geos]),
            "clusters": cl,
        }

    # effect at mean spend: m[g, c] = return r[g, c] x spend mean[g, c] / revenue mean[g]
    spend = panel.spend()
    y = panel.series("y")
    ratio = spend.mean(axis=0) / y.mean(axis=0)[:, None]  # (geo, channel)
    partial = cfg.geo.pooling == "partial"
    m_prior = GroupedEffect(
        centre=np.log(table["roas_median"].to_numpy()),
        channel_sd=table["roas_log_sd"].to_numpy(),
        group_sd=pr.media_roas.log_sd,
        group_index=group_index,
        groups=groups,
        channels=chans,
        geos=geos if partial else None,
        geo_sd=pr.geo_log_sd,
        ratio=ratio if partial else ratio.mean(axis=0),
        **(cluster_kw if partial else {}),
    )
    if cfg.saturation.form == "hill":
        saturation = HillAtMean(
            priors={
                "slope": Prior(
                    "LogNormal",
                    mu=np.log(table["hill_slope_median"].to_numpy()),
                    sigma=table["hill_slope_log_sd"].to_numpy(),
                    dims=CHANNEL,
                ),
                "kappa": Prior(
                    "LogNormal",
                    mu=np.log(table["half_saturation_median"].to_numpy()),
                    sigma=table["half_saturation_log_sd"].to_numpy(),
                    dims=CHANNEL,
                ),
                "m": m_prior,
            }
        )
    else:
        saturation = LogisticAtMean(
            priors={
                # lam is 1 / the spend (in means) where the curve bends: the half-saturation prior
                "lam": Prior(
                    "LogNormal",
                    mu=-np.log(table["half_saturation_median"].to_numpy()),
                    sigma=table["half_saturation_log_sd"].to_numpy(),
                    dims=CHANNEL,
                ),
                "m": m_prior,
            }
        )

    # carry-over: the mean lag (days -> periods) per channel, group-pooled, as alpha = L / (1 + L)
    lag_periods = table["lag_mean_days"].to_numpy() / cfg.period_days
    lag_sd = 1.0 / np.sqrt(table["alpha_concentration"].to_numpy())  # a Beta(., k) is about this wide in logit
    alpha_prior = GroupedEffect(
        centre=np.log(lag_periods),
        channel_sd=lag_sd,
        group_sd=0.3,
        group_index=group_index,
        groups=groups,
        channels=chans,
        transform="lag_to_alpha",
    )
    adstock_priors: dict = {"alpha": alpha_prior}
    if cfg.adstock.form == "delayed":
        adstock_priors["theta"] = Prior(
            "LogNormal",
            mu=np.log(table["peak_delay_days_median"].to_numpy() / cfg.period_days),
            sigma=table["peak_delay_days_log_sd"].to_numpy(),
            dims=CHANNEL,
        )
    elif cfg.adstock.form.startswith("weibull"):
        adstock_priors = {
            "lam": Prior("LogNormal", mu=np.log(np.maximum(lag_periods, 0.3)), sigma=0.7, dims=CHANNEL),
            "k": Prior("LogNormal", mu=np.log(1.5), sigma=0.5, dims=CHANNEL),
        }
    adstock = _adstock(cfg, adstock_priors)

    ctrl_mu, ctrl_sigma, weather_used = _weather_prior_sigma(panel, cfg, weather_priors)
    model_config = {
        # a positive baseline: each geo's intercept is a share of its mean revenue
        "intercept": Prior("LogNormal", mu=np.log(pr.baseline_share.median), sigma=pr.baseline_share.log_sd, dims=GEO),
        "likelihood": (
            Prior("Normal", sigma=Prior("HalfNormal", sigma=pr.noise_sd, dims=GEO), dims=("date", GEO))
            if pr.likelihood == "normal"
            else Prior("StudentT", nu=5, sigma=Prior("HalfNormal", sigma=pr.noise_sd, dims=GEO), dims=("date", GEO))
        ),
        "gamma_control": Prior("Normal", mu=ctrl_mu, sigma=ctrl_sigma, dims="control"),
    }
    mmm = PlatformMMM(
        date_column="date",
        channel_columns=chans,
        target_column="y",
        adstock=adstock,
        saturation=saturation,
        dims=(GEO,),
        scaling=Scaling(
            target=DataDerivedScaling(method="mean", dims=()),
            channel=DataDerivedScaling(method="mean", dims=()),
        ),
        control_columns=panel.controls or None,
        model_config=model_config,
    )
    mmm.add_mu_effect(
        CentredMedia(
            date_effects=cfg.seasonality.date_effects,
            baseline_mu=float(np.log(pr.baseline_share.median)),
            baseline_sigma=pr.baseline_share.log_sd,
        )
    )
    if cfg.seasonality.date_effects:
        mmm.add_mu_effect(DateEffect(sigma=pr.date_effect_sd))
    if cfg.seasonality.yearly_fourier:
        mmm.add_mu_effect(
            GeoSeasonality(
                n_order=cfg.seasonality.yearly_fourier,
                sigma=pr.seasonality_sd,
                zero_sum=cfg.seasonality.date_effects,
            )
        )
    X = panel.frame[["date", "geo", *chans, *panel.controls]].copy()
    y_s = panel.frame["y"].rename("y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mmm.build_model(X, y_s)
    if lift_tests is not None and not lift_tests.empty:
        mmm.add_lift_test_measurements(lift_tests)
    return ModelSpec(mmm=mmm, X=X, y=y_s, priors=table, weather_priors_used=weather_used, lift_tests=lift_tests)
