"""Sampling and the fit's diagnostics.

nutpie by default (NUTS compiled with numba; measured in docs/mmm.md against PyMC's own NUTS);
`pymc` and `numpyro` are the other configured samplers. numpyro needs jax, which this platform does
not install: configured without it, the fit stops with a message saying so instead of falling back.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import xarray as xr

from mmm_platform.mmm.config import Sampler
from mmm_platform.mmm.data import Panel
from mmm_platform.mmm.model import ModelSpec


class SamplerUnavailable(RuntimeError):
    """The configured sampler is not installed."""


@dataclass
class FitResult:
    spec: ModelSpec
    idata: object
    sampler: str
    draws: int
    tune: int
    chains: int
    fit_seconds: float  # wall time of the whole fit: compilation, sampling, deterministics
    sampling_seconds: float | None = None  # the sampler's own report, when it gives one
    extra: dict = field(default_factory=dict)


def check_sampler(name: str) -> None:
    needs = {"nutpie": ["nutpie"], "numpyro": ["numpyro", "jax"], "pymc": []}[name]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise SamplerUnavailable(
            f"sampler {name!r} is configured (sampler.name in assets/models/mmm.yaml) but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed: install "
            f"{' '.join(missing)} into the platform's environment, or set sampler.name: nutpie"
        )


def fit_model(spec: ModelSpec, sampler: Sampler, *, progressbar: bool = False) -> FitResult:
    check_sampler(sampler.name)
    cores = sampler.cores or min(sampler.chains, os.cpu_count() or 1)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        idata = spec.mmm.fit(
            spec.X,
            spec.y,
            nuts_sampler=sampler.name,
            draws=sampler.draws,
            tune=sampler.tune,
            chains=sampler.chains,
            cores=cores,
            target_accept=sampler.target_accept,
            random_seed=sampler.seed,
            progressbar=progressbar,
            **({"nuts_sampler_kwargs": {"adaptation": sampler.adaptation}} if sampler.name == "nutpie" else {}),
        )
    wall = time.perf_counter() - t0
    sampling = idata.posterior.attrs.get("sampling_time")
    return FitResult(
        spec=spec,
        idata=idata,
        sampler=sampler.name,
        draws=sampler.draws,
        tune=sampler.tune,
        chains=sampler.chains,
        fit_seconds=wall,
        sampling_seconds=float(sampling) if sampling is not None else None,
    )


def _free_posterior(fit: FitResult) -> xr.Dataset:
    post = fit.idata.posterior
    post = post.to_dataset() if hasattr(post, "to_dataset") else post
    names = [v.name for v in fit.spec.mmm.model.free_RVs if v.name in post]
    return post[names]


def convergence(fit: FitResult) -> dict:
    """Max R-hat and min bulk/tail ESS over every sampled (free) variable, and divergences."""
    post = _free_posterior(fit)
    rhat = az.rhat(post)
    ess = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")
    worst_r = max(((float(np.nanmax(rhat[v].values)), v) for v in rhat.data_vars), default=(np.nan, ""))
    worst_e = min(((float(np.nanmin(ess[v].values)), v) for v in ess.data_vars), default=(np.nan, ""))
    stats = fit.idata.sample_stats
    div = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    steps = float(np.asarray(stats["n_steps"]).mean()) if "n_steps" in stats else np.nan
    return {
        "max_rhat": worst_r[0],
        "max_rhat_variable": worst_r[1],
        "min_ess_bulk": worst_e[0],
        "min_ess_bulk_variable": worst_e[1],
        "min_ess_tail": min((float(np.nanmin(ess_tail[v].values)) for v in ess_tail.data_vars), default=np.nan),
        "divergences": div,
        "mean_tree_steps": steps,
    }


def fitted(fit: FitResult, panel: Panel, hdi_prob: float = 0.9) -> dict[str, np.ndarray]:
    """Posterior of the expected revenue: per geo-period mean, and the national total per period
    (mean and HDI), in $."""
    from mmm_platform.mmm.results import hdi, posterior_dataset, stacked

    post = posterior_dataset(fit.idata)
    ts = fit.spec.mmm.scalers["_target"].sel(geo=panel.geos).to_numpy()
    mu = stacked(post, "mu").transpose("sample", "date", "geo").sel(geo=panel.geos).to_numpy() * ts[None, None]
    total = mu.sum(axis=2)  # (S, T)
    lo, hi = hdi(total, hdi_prob)
    return {"mean": mu.mean(axis=0), "total_mean": total.mean(axis=0), "total_lower": lo, "total_upper": hi}


def diagnostics(fit: FitResult, panel: Panel, fit_mean: np.ndarray) -> dict:
    """The row of mmm.diagnostics: convergence, speed and in-sample fit."""
    conv = convergence(fit)
    y = panel.series("y")
    resid = y - fit_mean
    r2 = 1.0 - float(np.sum(resid**2) / np.sum((y - y.mean()) ** 2))
    mape = float(np.mean(np.abs(resid) / np.abs(y)))
    n_draws = fit.draws * fit.chains
    return {
        "sampler": fit.sampler,
        "draws": fit.draws,
        "tune": fit.tune,
        "chains": fit.chains,
        **conv,
        "fit_seconds": fit.fit_seconds,
        "sampling_seconds": fit.sampling_seconds,
        "ess_bulk_per_second": conv["min_ess_bulk"] / fit.fit_seconds,
        "r2_in_sample": r2,
        "mape_in_sample": mape,
        "n_draws_total": n_draws,
        "grain": panel.grain,
        "n_geos": len(panel.geos),
        "n_periods": len(panel.dates),
        "n_channels": len(panel.channels),
        "n_controls": len(panel.controls),
    }
