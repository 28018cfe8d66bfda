"""LightweightMMM (Google, 0.1.9) on one fold, in its own environment: `python run.py <folder>`.

Reads the folder that mmm_platform/validate/peers.py writes (train.csv, future.csv, spec.json) and
writes result.json there (the protocol is in that module's docstring). Imports only this
environment's packages (`make peers`, peers/lightweight_mmm/requirements.txt).

The model is LightweightMMM's national daily one: `settings.model` (hill_adstock: Hill saturation of
adstocked spend), a trend, yearly Fourier terms (`degrees_seasonality`), a day-of-week effect, the
controls as extra features, NUTS with numpyro. Revenue and spend are divided by their means (as
LightweightMMM's CustomScaler does), the controls standardised.

- Forecast: LightweightMMM's `predict` gives the posterior of the expected revenue (`mu`) of the
  horizon, the training days carrying the adstock and the trend on; the draws add the model's own
  noise (`sigma`), so they are predictive draws like the platform's.
- ROAS: the model is additive in the expected revenue and a channel's term is zero at zero spend, so
  the revenue the channel's spend brought over the training days (spend as it was minus spend at
  zero) is its term, `media_transformed x coef_media`, summed over the days; per posterior draw,
  over the channel's spend.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def main(folder: Path) -> None:
    spec = json.loads((folder / "spec.json").read_text())
    settings = spec["settings"]
    chains = int(settings.get("chains", 2))
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={chains}")
    import jax.numpy as jnp  # after the device count is set
    import numpyro
    from lightweight_mmm import lightweight_mmm

    numpyro.set_host_device_count(chains)
    train = pd.read_csv(folder / "train.csv")
    future = pd.read_csv(folder / "future.csv")
    channels, controls = spec["channels"], spec["controls"]

    y = train["revenue"].to_numpy(float)
    y_scale = y.mean()
    spend = train[channels].to_numpy(float)
    m_scale = spend.mean(axis=0)
    totals = spend.sum(axis=0)
    x_mean, x_sd = train[controls].mean().to_numpy(float), train[controls].std().to_numpy(float)

    def extra(frame: pd.DataFrame):
        return jnp.asarray((frame[controls].to_numpy(float) - x_mean) / x_sd) if controls else None

    model = lightweight_mmm.LightweightMMM(model_name=settings.get("model", "hill_adstock"))
    model.fit(
        media=jnp.asarray(spend / m_scale),
        media_prior=jnp.asarray(totals / totals.mean()),
        target=jnp.asarray(y / y_scale),
        extra_features=extra(train),
        degrees_seasonality=int(settings.get("degrees_seasonality", 2)),
        seasonality_frequency=365,
        weekday_seasonality=True,
        media_names=channels,
        number_warmup=int(settings.get("warmup", 500)),
        number_samples=int(settings.get("samples", 500)),
        number_chains=chains,
        seed=int(spec["seed"]),
    )
    trace = model.trace
    n = len(trace["sigma"])
    keep = np.linspace(0, n - 1, min(int(spec["draws"]), n)).round().astype(int)
    sigma = np.asarray(trace["sigma"]).reshape(n)[keep]
    rng = np.random.default_rng(int(spec["seed"]))
    if len(future):
        mu = np.asarray(
            model.predict(
                media=jnp.asarray(future[channels].to_numpy(float) / m_scale),
                extra_features=extra(future),
                seed=int(spec["seed"]),
            )
        )[keep]
        draws = (mu + sigma[:, None] * rng.standard_normal(mu.shape)) * y_scale
    else:
        draws = np.zeros((len(keep), 0))
    term = np.asarray(trace["media_transformed"]) * np.asarray(trace["coef_media"])[:, None, :]  # (S, T, C)
    incremental = term.sum(axis=1) * y_scale  # (S, C) $
    roas = {c: (incremental[keep, i] / totals[i]).tolist() for i, c in enumerate(channels)}
    summary = numpyro.diagnostics.summary(
        {
            k: np.asarray(v).reshape(chains, -1, *np.shape(v)[1:])
            for k, v in trace.items()
            if k not in ("mu", "media_transformed")
        }
    )
    info = {
        "max_rhat": float(max(np.nanmax(s["r_hat"]) for s in summary.values())),
        "divergences": int(np.asarray(model._mcmc.get_extra_fields()["diverging"]).sum()),
        "draws_total": n,
        "media_share": float(term.sum(axis=(1, 2)).mean() / np.asarray(trace["mu"]).sum(axis=1).mean()),
    }
    result = {
        "draws": draws.tolist(),
        "fitted": (np.asarray(trace["mu"]).mean(axis=0) * y_scale).tolist(),
        "roas": roas,
        "info": info,
    }
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
