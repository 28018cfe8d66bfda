"""What the fitted posterior says, computed draw by draw: contributions, ROAS, mROAS, response
curves, the fit's diagnostics.

Everything is a counterfactual on the posterior, not a coefficient read off it: a channel's
incremental revenue is the model's revenue with the channel's spend as it was minus the same with
its spend set to zero over the whole window (for this additive model: the sum of its contribution,
carry-over included), per posterior draw; ROAS is that over the spend. mROAS is the same difference
for spend x1.01 on every geo-period, over the extra 1%. The forward pass is done here in numpy
(the adstock kernels come from PyMC-Marketing's own `sample_curve`, the saturation is the model's
curve), so the big `(draw, date, geo, channel)` contribution array never has to sit in the trace;
`check_forward_pass` proves it equals the model's `channel_contribution`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from mmm_platform.mmm.data import Panel

if TYPE_CHECKING:  # the model imports PyMC; the tables computed here need only the draws
    from mmm_platform.mmm.model import ModelSpec

ALL = "all"


@dataclass
class Draws:
    """Thinned posterior draws in numpy: adstock kernels and saturation parameters."""

    kernel: np.ndarray  # (S, C, L)
    sat: dict[str, np.ndarray]  # (S, C) or (S, G, C)
    form: str  # hill_at_mean | logistic_at_mean
    channel_scale: np.ndarray  # (G, C)
    target_scale: np.ndarray  # (G,)

    @property
    def n(self) -> int:
        return self.kernel.shape[0]


def stacked(post: xr.Dataset, var: str) -> xr.DataArray:
    da = post[var]
    return da.stack(sample=("chain", "draw")).transpose("sample", ...)


def thin_index(n_total: int, n_keep: int | None) -> np.ndarray:
    if n_keep is None or n_keep >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_keep).round().astype(int))


def posterior_dataset(idata) -> xr.Dataset:
    post = idata.posterior
    return post.to_dataset() if hasattr(post, "to_dataset") else post


def adstock_kernel(form: str, l_max: int, params: dict[str, np.ndarray]) -> np.ndarray:
    """(S, C, L) normalised carry-over weights of PyMC-Marketing's adstock forms (the same formulas
    as `pymc_marketing.mmm.transformers`; tests compare them with `sample_curve`)."""
    lags = np.arange(l_max, dtype=float)
    if form == "GeometricAdstock":
        a = params["alpha"][..., None]
        w = np.power(a, lags)
    elif form == "DelayedAdstock":
        a, th = params["alpha"][..., None], params["theta"][..., None]
        w = np.power(a, (lags - th) ** 2)
    elif form == "WeibullPDFAdstock":
        lam, k = params["lam"][..., None], params["k"][..., None]
        t = lags + 1
        w = (k / lam) * np.power(t / lam, k - 1) * np.exp(-np.power(t / lam, k))
        lo, hi = w.min(axis=-1, keepdims=True), w.max(axis=-1, keepdims=True)
        w = (w - lo) / np.where(hi > lo, hi - lo, 1.0)
    elif form == "WeibullCDFAdstock":
        lam, k = params["lam"][..., None], params["k"][..., None]
        t = np.arange(1, l_max, dtype=float)
        surv = np.exp(-np.power(t / lam, k))
        w = np.cumprod(np.concatenate([np.ones_like(surv[..., :1]), surv], axis=-1), axis=-1)
    else:
        raise ValueError(f"no numpy kernel for adstock {form!r}")
    return w / w.sum(axis=-1, keepdims=True)


def extract_draws(spec: ModelSpec, idata, n_draws: int | None = 400) -> Draws:
    mmm = spec.mmm
    post = posterior_dataset(idata)
    n_total = post.sizes["chain"] * post.sizes["draw"]
    idx = thin_index(n_total, n_draws)
    chans = list(mmm.channel_columns)

    ad = {}
    for p in mmm.adstock.default_priors:
        da = stacked(post, f"{mmm.adstock.prefix}_{p}").isel(sample=idx)
        ad[p] = (da.sel(channel=chans) if "channel" in da.dims else da).to_numpy()
    kernel = adstock_kernel(type(mmm.adstock).__name__, mmm.adstock.l_max, ad)  # (S, C, L)

    sat = {}
    for p in mmm.saturation.default_priors:
        da = stacked(post, f"{mmm.saturation.prefix}_{p}").isel(sample=idx)
        order = [d for d in ("sample", "geo", "channel") if d in da.dims]
        da = da.transpose(*order)
        if "channel" in da.dims:
            da = da.sel(channel=chans)
        if "geo" in da.dims:
            da = da.sel(geo=list(spec.X["geo"].drop_duplicates().sort_values()))
        sat[p] = da.to_numpy()
    scalers = mmm.scalers
    geos = sorted(spec.X["geo"].unique())
    cs = scalers["_channel"].transpose("geo", "channel").sel(geo=geos, channel=chans).to_numpy()
    ts = scalers["_target"].sel(geo=geos).to_numpy()
    return Draws(kernel=kernel, sat=sat, form=mmm.saturation.lookup_name, channel_scale=cs, target_scale=ts)


def saturate(x: np.ndarray, draws: Draws, sl: slice | np.ndarray = slice(None)) -> np.ndarray:
    """The saturation curve in scaled units for x of shape (S, ..., G, C)."""

    def par(name):
        v = draws.sat[name][sl]
        if v.ndim == 2:  # (S, C)
            v = v[:, None, :]
        # (S, G, C) -> broadcast over the axes between S and (G, C)
        extra = x.ndim - v.ndim
        return v.reshape(v.shape[:1] + (1,) * extra + v.shape[1:])

    if draws.form == "hill_at_mean":
        s, k, m = par("slope"), par("kappa"), par("m")
        xs = np.power(np.maximum(x, 0.0), s)
        ks = np.power(k, s)
        return m * (1.0 + ks) * xs / (xs + ks)
    if draws.form == "logistic_at_mean":
        lam, m = par("lam"), par("m")

        def lg(v):
            e = np.exp(-lam * v)
            return (1 - e) / (1 + e)

        return m * lg(x) / lg(np.ones_like(x[:1]))
    raise ValueError(f"no numpy curve for saturation {draws.form!r}")


def adstocked(spend: np.ndarray, draws: Draws, sl: slice | np.ndarray = slice(None)) -> np.ndarray:
    """(S, T, G, C) adstocked spend in scaled units; spend is (T, G, C) in $."""
    x = spend / draws.channel_scale[None]
    w = draws.kernel[sl]  # (s, C, L)
    n_t = x.shape[0]
    out = np.zeros((w.shape[0], *x.shape))
    for lag in range(min(w.shape[2], n_t)):
        out[:, lag:] += w[:, None, None, :, lag] * x[None, : n_t - lag]
    return out


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def contributions(spend: np.ndarray, draws: Draws, *, chunk: int = 50) -> np.ndarray:
    """(S, T, G, C) contribution in $ per period."""
    out = np.empty((draws.n, *spend.shape))
    for sl in chunks(draws.n, chunk):
        out[sl] = saturate(adstocked(spend, draws, sl), draws, sl) * draws.target_scale[None, None, :, None]
    return out


def window_totals(spend: np.ndarray, draws: Draws, multipliers: np.ndarray, *, chunk: int = 25) -> np.ndarray:
    """(S, K, G, C): contribution over the window, in $, with every channel's spend scaled by each
    multiplier (adstock is linear, so the scaled adstocked spend is the multiplier times it)."""
    out = np.empty((draws.n, len(multipliers), spend.shape[1], spend.shape[2]))
    for sl in chunks(draws.n, chunk):
        a = adstocked(spend, draws, sl)  # (s, T, G, C)
        for k, mult in enumerate(multipliers):
            c = saturate(mult * a, draws, sl) * draws.target_scale[None, None, :, None]
            out[sl, k] = c.sum(axis=1)
    return out


def hdi(x: np.ndarray, prob: float = 0.9, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval along `axis` (the shortest interval holding `prob` of the draws)."""
    x = np.sort(np.moveaxis(x, axis, 0), axis=0)
    n = x.shape[0]
    k = max(1, min(n - 1, int(np.floor(prob * n))))
    widths = x[k:] - x[: n - k]
    i = np.argmin(widths, axis=0)
    lo = np.take_along_axis(x, i[None], axis=0)[0]
    hi = np.take_along_axis(x, (i + k)[None], axis=0)[0]
    return lo, hi


def check_forward_pass(spec: ModelSpec, idata, draws: Draws, idx: np.ndarray, spend: np.ndarray) -> float:
    """Largest relative difference between this module's contributions and the model's
    `channel_contribution` (needs it in the trace)."""
    post = posterior_dataset(idata)
    cc = stacked(post, "channel_contribution").isel(sample=idx)
    geos = sorted(spec.X["geo"].unique())
    cc = cc.transpose("sample", "date", "geo", "channel").sel(geo=geos, channel=list(spec.mmm.channel_columns))
    model = cc.to_numpy() * draws.target_scale[None, None, :, None]
    ours = contributions(spend, draws)
    return float(np.abs(ours - model).max() / np.abs(model).max())


# --- tables -------------------------------------------------------------------------------------


def margin_rates(panel: Panel) -> tuple[np.ndarray, float]:
    """Contribution-margin rate per geo and overall (margin / revenue over the window)."""
    y, m = panel.series("y"), panel.series("margin")
    per_geo = np.nansum(m, axis=0) / np.nansum(y, axis=0)
    return per_geo, float(np.nansum(m) / np.nansum(y))


def roas_draws(panel: Panel, draws: Draws) -> dict[str, np.ndarray]:
    """channel -> draws of its ROAS over the window and all geos: what switching it off loses,
    over its spend. The model comparison's MMM rows; their mean is channel_roas's 'all' row (tested)."""
    cube = panel.spend()
    spend, inc = cube.sum(axis=(0, 1)), contributions(cube, draws).sum(axis=(1, 2))  # (C,), (S, C)
    return {c: inc[:, i] / spend[i] for i, c in enumerate(panel.channels) if spend[i] > 0}


def channel_roas(panel: Panel, draws: Draws, *, hdi_prob: float = 0.9) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per channel and geo, and per channel for 'all': spend, incremental revenue and
    margin, ROAS (posterior mean and HDI), mROAS; plus the (S, T, G, C) contribution array."""
    spend = panel.spend()
    contrib = contributions(spend, draws)  # (S, T, G, C)
    inc = contrib.sum(axis=1)  # (S, G, C)
    up = window_totals(spend, draws, np.array([1.01]))[:, 0]  # (S, G, C)
    extra = 0.01 * spend.sum(axis=0)  # (G, C)
    rate_g, rate_all = margin_rates(panel)
    rows = []
    for ci, c in enumerate(panel.channels):
        for gi, g in [*enumerate(panel.geos), (None, ALL)]:
            if gi is None:
                s, r_inc, r_up, ex = spend[..., ci].sum(), inc[:, :, ci].sum(1), up[:, :, ci].sum(1), extra[:, ci].sum()
                rate = (inc[:, :, ci] * rate_g[None]).sum(1)
            else:
                s, r_inc, r_up, ex = spend[:, gi, ci].sum(), inc[:, gi, ci], up[:, gi, ci], extra[gi, ci]
                rate = inc[:, gi, ci] * rate_g[gi]
            roas = r_inc / s if s > 0 else np.full_like(r_inc, np.nan)
            mroas = (r_up - r_inc) / ex if ex > 0 else np.full_like(r_inc, np.nan)
            lo, hi = hdi(roas, hdi_prob) if s > 0 else (np.nan, np.nan)
            mlo, mhi = hdi(mroas, hdi_prob) if ex > 0 else (np.nan, np.nan)
            rows.append(
                {
                    "channel": c,
                    "channel_group": panel.channel_groups[c],
                    "geo_id": g,
                    "spend": float(s),
                    "incremental_revenue": float(r_inc.mean()),
                    "incremental_revenue_lower": float(hdi(r_inc, hdi_prob)[0]),
                    "incremental_revenue_upper": float(hdi(r_inc, hdi_prob)[1]),
                    "roas": float(np.mean(roas)),
                    "roas_lower": float(lo),
                    "roas_upper": float(hi),
                    "roas_sd": float(np.std(roas)),
                    "prob_profitable": float(np.mean(roas > 1.0)),
                    "mroas": float(np.mean(mroas)),
                    "mroas_lower": float(mlo),
                    "mroas_upper": float(mhi),
                    "incremental_margin": float(rate.mean()),
                    "margin_rate": float(rate.mean() / r_inc.mean()) if r_inc.mean() else rate_all,
                    "margin_roas": float(rate.mean() / s) if s > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows), contrib


def response_curves(
    panel: Panel, draws: Draws, *, max_multiple: float = 2.5, points: int = 41, hdi_prob: float = 0.9
) -> pd.DataFrame:
    """Per channel and geo (and 'all'): expected revenue per period when the channel's spend plan
    over the window is scaled so that its average spend per period is `spend` (a grid from 0 to
    `max_multiple` x the current average), with the HDI band and the marginal ROAS (the slope)."""
    spend = panel.spend()
    n_t = spend.shape[0]
    mult = np.linspace(0.0, max_multiple, points)
    if not np.any(np.isclose(mult, 1.0)):
        mult = np.sort(np.append(mult, 1.0))
    tot = window_totals(spend, draws, mult) / n_t  # (S, K, G, C): revenue per period
    avg = spend.mean(axis=0)  # (G, C) current average spend per period
    rate_g, _ = margin_rates(panel)
    rows = []
    for ci, c in enumerate(panel.channels):
        for gi, g in [*enumerate(panel.geos), (None, ALL)]:
            if gi is None:
                rev = tot[:, :, :, ci].sum(axis=2)  # (S, K)
                marg = (tot[:, :, :, ci] * rate_g[None, None]).sum(axis=2)
                cur = avg[:, ci].sum()
            else:
                rev = tot[:, :, gi, ci]
                marg = rev * rate_g[gi]
                cur = avg[gi, ci]
            x = mult * cur
            lo, hi = hdi(rev, hdi_prob)
            slope = np.gradient(rev, x, axis=1) if cur > 0 else np.full_like(rev, np.nan)
            mean = rev.mean(axis=0)
            for k in range(len(mult)):
                rows.append(
                    {
                        "channel": c,
                        "geo_id": g,
                        "spend_multiple": float(mult[k]),
                        "spend": float(x[k]),
                        "current_spend": float(cur),
                        "expected_revenue": float(mean[k]),
                        "revenue_lower": float(lo[k]),
                        "revenue_upper": float(hi[k]),
                        "expected_margin": float(marg[:, k].mean()),
                        "mroas": float(slope[:, k].mean()),
                    }
                )
    out = pd.DataFrame(rows)
    out["period_days"] = 7 if panel.grain == "week" else 1
    return out


def contributions_over_time(panel: Panel, contrib: np.ndarray, fitted_mean: np.ndarray | None = None) -> pd.DataFrame:
    """Per period and geo: observed revenue, the posterior-mean fit, the mean contribution of each
    channel, and the baseline (the fit minus media: everything that is not media)."""
    geos, dates = panel.geos, panel.dates
    mean = contrib.mean(axis=0)  # (T, G, C)
    media = mean.sum(axis=2)
    rows = {
        "date": np.repeat(dates.values, len(geos)),
        "geo_id": np.tile(geos, len(dates)),
        "revenue": panel.series("y").ravel(),
    }
    if fitted_mean is not None:
        rows["fitted"] = fitted_mean.ravel()
        rows["baseline"] = (fitted_mean - media).ravel()
    rows["media"] = media.ravel()
    for ci, c in enumerate(panel.channels):
        rows[f"contribution_{c}"] = mean[:, :, ci].ravel()
    return pd.DataFrame(rows)
