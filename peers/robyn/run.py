"""Robyn (Meta; the Python port robynpy 0.3.6, ridge through R's glmnet) on one fold, in its own
environment: `python run.py <folder>`.

Reads the folder that mmm_platform/validate/peers.py writes (train.csv, future.csv, spec.json) and
writes result.json there (the protocol is in that module's docstring). Imports only this
environment's packages (`make peers`, peers/robyn/requirements.txt; R and glmnet from apt).

Robyn as its tutorial runs it, daily: geometric adstock and Hill saturation per channel, Prophet's
trend and weekday terms (90 days hold no yearly cycle), the controls as context variables, a ridge
regression whose hyperparameters Nevergrad (TwoPointsDE) searches for `iterations` x `trials`
against two objectives, NRMSE and DECOMP.RSSD. Robyn answers with a Pareto front of models, not a
posterior, so:

- the model is the first front's with the lowest `error_score` (Robyn's combined, normalised
  distance to the ideal of both objectives);
- ROAS: per model, the revenue its channel term brings over the training days (the ridge is
  additive and the term is zero at zero spend, so this is spend as it was minus spend at zero,
  the platform's definition; Robyn's own `roi_total` is the same ratio), over the channel's spend;
  the draws are the first front's models, the point the chosen model's;
- forecast: Robyn has no predict for new periods. The chosen model's terms are carried over the
  horizon: adstock continued from the training spend, Hill with the model's own inflexion (from
  the training days), Prophet refitted exactly as Robyn fits it (the same training values, checked)
  and extended over the horizon, the controls as given; the draws add normal noise with the
  model's in-sample residual sd.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("RPY2_CFFI_MODE", "ABI")  # rpy2 built without R headers (make peers)


def adstocked(x: np.ndarray, theta: float) -> np.ndarray:
    out, carry = np.empty_like(x), 0.0
    for i, v in enumerate(x):
        carry = v + theta * carry
        out[i] = carry
    return out


def main(folder: Path) -> None:
    import robyn  # after the rpy2 mode is set
    from prophet import Prophet
    from robyn.data.entities.enums import AdstockType, DependentVarType
    from robyn.data.entities.holidays_data import HolidaysData
    from robyn.data.entities.hyperparameters import ChannelHyperparameters, Hyperparameters
    from robyn.data.entities.mmmdata import MMMData
    from robyn.modeling.entities.modelrun_trials_config import TrialsConfig
    from robyn.robyn import Robyn

    logging.disable(logging.INFO)
    spec = json.loads((folder / "spec.json").read_text())
    settings = spec["settings"]
    train = pd.read_csv(folder / "train.csv")
    future = pd.read_csv(folder / "future.csv")
    channels, controls = spec["channels"], spec["controls"]

    data_spec = MMMData.MMMDataSpec(
        dep_var="revenue",
        dep_var_type=DependentVarType.REVENUE,
        date_var="date",
        paid_media_spends=channels,
        paid_media_vars=channels,
        context_vars=controls,
        organic_vars=[],
        window_start=train["date"].min(),
        window_end=train["date"].max(),
        day_interval=1,
        interval_type="day",
    )
    holidays = pd.read_csv(Path(robyn.__file__).parent / "tutorials" / "resources" / "dt_prophet_holidays.csv")
    prophet_vars = ["trend", "weekday"]
    bounds = {
        k: list(settings.get(k, v)) for k, v in {"thetas": [0, 0.9], "alphas": [0.5, 3], "gammas": [0.3, 1]}.items()
    }
    hyper = Hyperparameters(
        hyperparameters={c: ChannelHyperparameters(**bounds) for c in channels},
        adstock=AdstockType.GEOMETRIC,
        lambda_=[0, 1],
        train_size=[0.5, 0.8],
    )
    model = Robyn(working_dir=str(folder / "robyn"), console_log_level="WARNING", file_log_level="WARNING")
    model.initialize(
        MMMData(data=train, mmmdata_spec=data_spec),
        HolidaysData(
            dt_holidays=holidays, prophet_vars=prophet_vars, prophet_signs=["default"] * 2, prophet_country="US"
        ),
        hyper,
    )
    model.feature_engineering(display_plots=False)
    np.random.seed(int(spec["seed"]))
    model.train_models(
        trials_config=TrialsConfig(
            trials=int(settings.get("trials", 1)), iterations=int(settings.get("iterations", 500))
        ),
        cores=1,
        display_plots=False,
    )
    model.evaluate_models(display_plots=False)
    pareto = model.pareto_result
    hyp = pareto.result_hyp_param.set_index("sol_id")
    front = hyp[(hyp["robynPareto"] == 1) & hyp.index.isin(pareto.pareto_solutions)].sort_values("error_score")
    if front.empty:
        raise RuntimeError("Robyn's first Pareto front is empty")

    # Prophet's terms over the training days and the horizon, fitted as Robyn fits them
    prophet = Prophet(yearly_seasonality=False, weekly_seasonality=True, daily_seasonality=False)
    prophet.fit(pd.DataFrame({"ds": pd.to_datetime(train["date"]), "y": train["revenue"]}))
    days = pd.concat([train["date"], future["date"]], ignore_index=True)
    terms = prophet.predict(pd.DataFrame({"ds": pd.to_datetime(days)}))
    base = {"trend": terms["trend"].to_numpy(), "weekday": terms["weekly"].to_numpy()}
    dt_mod = model.featurized_mmm_data.dt_mod
    for name in prophet_vars:
        gap = np.max(np.abs(base[name][: len(train)] - dt_mod[name].to_numpy()))
        if gap > 1e-6 * max(1.0, np.abs(dt_mod[name]).max()):
            raise RuntimeError(
                f"Prophet's {name} refitted differs from Robyn's by {gap:g}: the forecast would not be Robyn's"
            )
    both = pd.concat([train, future], ignore_index=True)
    n = len(train)

    def predict(sol: str) -> tuple[np.ndarray, dict[str, float]]:
        """The model's expected revenue over training days and horizon, and its ROAS per channel."""
        coef = pareto.x_decomp_agg.loc[pareto.x_decomp_agg["sol_id"] == sol].set_index("rn")["coef"]
        pred = np.full(len(both), float(coef["intercept"]))
        for name in prophet_vars:
            pred += coef[name] * base[name]
        for c in controls:
            pred += coef[c] * both[c].to_numpy(float)
        roas = {}
        for c in channels:
            ad = adstocked(both[c].to_numpy(float), hyp.loc[sol, f"{c}_thetas"])
            gamma, alpha = hyp.loc[sol, f"{c}_gammas"], hyp.loc[sol, f"{c}_alphas"]
            inflexion = gamma * ad[:n].max() + (1 - gamma) * ad[:n].min()
            term = coef[c] * ad**alpha / (ad**alpha + inflexion**alpha)
            pred += term
            roas[c] = float(term[:n].sum() / train[c].sum())
        return pred, roas

    chosen = front.index[0]
    pred, point = predict(chosen)
    spread = [predict(sol)[1] for sol in front.index]
    sd = float(np.std(train["revenue"].to_numpy() - pred[:n], ddof=1))
    rng = np.random.default_rng(int(spec["seed"]))
    draws = pred[n:][None, :] + sd * rng.standard_normal((int(spec["draws"]), len(future)))
    result = {
        "draws": draws.tolist(),
        "fitted": pred[:n].tolist(),
        "roas": {c: [r[c] for r in spread] for c in channels},
        "roas_point": point,
        "info": {
            "model": chosen,
            "front_models": len(front),
            "nrmse": float(front.loc[chosen, "nrmse"]),
            "decomp_rssd": float(front.loc[chosen, "decomp.rssd"]),
            "rsq_train": float(front.loc[chosen, "rsq_train"]),
            "robyn_roi_total": {
                c: float(v)
                for c, v in pareto.x_decomp_agg.loc[pareto.x_decomp_agg["sol_id"] == chosen]
                .set_index("rn")["roi_total"]
                .reindex(channels)
                .items()
            },
        },
    }
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
