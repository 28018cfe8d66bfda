"""What a stored refit predicts for periods after its data, given their spend and controls.

The model's mean per geo and period is, per posterior draw (in units of the geo's mean revenue):

    mu[t, g] = level[g] + media[t, g] + national[t] + controls[t, g] . gamma + season[t] . coef[g]

where `media` is the numpy forward pass of `results.py` (carry-over from the refit's own spend runs
into the future), `level` is the intercept net of the geo's mean media (the model centres media),
and `national` is what moves every geo at once: the date effects net of the national media the
centring moved into them. Every term but `national` is known for a future period from its spend and
controls. Of `national`, the part the controls explain is known too: the date effects absorbed each
control's mean over geos (the model sees only each geo's deviation from it), at the control's own
coefficient. The rest is regressed on what moves every geo at once and is known ahead (the panel's
`national` columns: holidays, events, paydays, the December season), then carried forward at the
level of its last four weeks, plus those drivers and the yearly cycle once a year of history
exists; the error that rule makes on the refit's own periods joins the model's noise in the
predictive draws. The forecast's `expected` rebuilds the model's own `mu` over the refit's periods
too (the tests compare them), so a forecast extends exactly what was fitted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmm_platform.mmm.data import Panel, fourier_basis, national_mean
from mmm_platform.mmm.results import Draws, contributions, posterior_dataset, stacked, thin_index

if TYPE_CHECKING:  # the model imports PyMC; a forecast needs only the draws
    from mmm_platform.mmm.model import ModelSpec

#: yearly terms are extrapolated only from at least this much history: a partial cycle fitted by
#: sines and cosines extrapolates anywhere
YEAR_DAYS = 365
#: the national effect is carried forward at its mean over this many last days
LEVEL_DAYS = 28


@dataclass
class Baseline:
    """Thinned posterior draws of the mean's terms that are not media (the same draws as `Draws`)."""

    intercept: np.ndarray  # (S, G)
    gamma: np.ndarray  # (S, K) per control of the panel
    season: np.ndarray  # (S, M, G) yearly Fourier coefficients per geo (M = 0: none)
    date_effect: np.ndarray  # (S, T) national effect per period of the refit (T = 0: none)
    sigma: np.ndarray  # (S, G) observation noise

    @property
    def n_order(self) -> int:
        return self.season.shape[1] // 2


def extract_baseline(spec: ModelSpec, idata, n_draws: int | None = 400) -> Baseline:
    """The non-media terms of the fitted model, thinned like `results.extract_draws`."""
    post = posterior_dataset(idata)
    idx = thin_index(post.sizes["chain"] * post.sizes["draw"], n_draws)
    geos = sorted(spec.X["geo"].unique())
    controls = list(spec.mmm.control_columns or [])

    def take(name: str, dims: tuple[str, ...], labels: dict[str, list]) -> np.ndarray | None:
        if name not in post:
            return None
        da = stacked(post, name).isel(sample=idx).transpose("sample", *dims)
        return da.sel({k: v for k, v in labels.items() if k in dims}).to_numpy()

    n = len(idx)
    intercept = take("intercept_contribution", ("geo",), {"geo": geos})
    sigma = take("y_sigma", ("geo",), {"geo": geos})
    gamma = take("gamma_control", ("control",), {"control": controls})
    season = None
    if "season_coef" in post:
        mode = next(d for d in post["season_coef"].dims if d not in ("chain", "draw", "geo"))
        season = take("season_coef", (mode, "geo"), {"geo": geos})
    date_effect = take("date_effect_contribution", ("date",), {})
    return Baseline(
        intercept=intercept,
        gamma=gamma if gamma is not None else np.zeros((n, 0)),
        season=season if season is not None else np.zeros((n, 0, len(geos))),
        date_effect=date_effect if date_effect is not None else np.zeros((n, 0)),
        sigma=sigma,
    )


def calendar_basis(dates: pd.DatetimeIndex, origin: dt.date, history_days: int, n_order: int) -> np.ndarray:
    """(T, 2 + 2 n_order) constant, trend in years since `origin`, and the yearly terms when
    `history_days` cover a year (else none)."""
    years = (dates - pd.Timestamp(origin)).days.to_numpy() / 365.25
    order = n_order if history_days >= YEAR_DAYS else 0
    return np.column_stack([np.ones(len(dates)), years, fourier_basis(dates, order)])


def extrapolate(
    past: pd.DatetimeIndex,
    values: np.ndarray,
    future: pd.DatetimeIndex,
    n_order: int,
    level_periods: int,
    drivers: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row of `values` (S, T) carried to `future` (H periods): the level of its last
    `level_periods`, plus the yearly cycle (fitted with a trend) once a year of history exists, plus
    the effect of `drivers` ((T, K) over the past, (H, K) over the future: national calendar
    columns), fitted with them. A trend over the whole window extrapolates whatever part of the
    season the window ends in; a recent level does not. Returns ((S, H) forecast, (S, H) sd of that
    rule's error h periods ahead, measured on the past)."""
    history = (past[-1] - past[0]).days
    x_past, x_future = drivers if drivers is not None else (np.zeros((len(past), 0)), np.zeros((len(future), 0)))
    a = np.column_stack([calendar_basis(past, past[0].date(), history, n_order), x_past])
    b = np.column_stack([calendar_basis(future, past[0].date(), history, n_order), x_future])
    coef, *_ = np.linalg.lstsq(a, values.T, rcond=None)  # (P, S): constant, trend, cycle, drivers
    rest = values - (a[:, 2:] @ coef[2:]).T  # without the cycle and the drivers
    n = min(level_periods, len(past) - 1)
    ahead = rest[:, -n:].mean(axis=1)[:, None] + (b[:, 2:] @ coef[2:]).T
    csum = np.concatenate([np.zeros((len(values), 1)), np.cumsum(rest, axis=1)], axis=1)
    level = (csum[:, n:-1] - csum[:, : -n - 1]) / n  # (S, T - n): the level of the n periods before each
    sd = np.empty(ahead.shape)
    for h in range(len(future)):
        err = rest[:, n + h :] - level[:, : level.shape[1] - h]
        sd[:, h] = np.sqrt(np.mean(err**2, axis=1)) if err.shape[1] else sd[:, h - 1]
    return ahead, sd


@dataclass
class MMMForecast:
    expected: np.ndarray  # (S, T + H, G) expected revenue in $: the refit's periods, then the future's
    predictive: np.ndarray  # (S, H, G) posterior predictive draws of revenue in $ over the future


def forecast(panel: Panel, draws: Draws, base: Baseline, future: Panel, rng: np.random.Generator) -> MMMForecast:
    """The refit of `panel` carried over the periods of `future` (spend and controls, no target;
    they must follow the refit's last period, for the same geos)."""
    if list(future.geos) != list(panel.geos):
        raise ValueError(f"the future's geos {future.geos} are not the refit's {panel.geos}")
    step = pd.Timedelta(days=7 if panel.grain == "week" else 1)
    if future.dates[0] != panel.dates[-1] + step:
        raise ValueError(f"the future starts {future.dates[0].date()}, not right after the refit's last period")
    n_t = len(panel.dates)
    explained = [c for c in panel.controls if national_mean(c) in panel.frame]  # none in older refits
    means = [national_mean(c) for c in explained]
    columns = ["date", "geo", *panel.channels, *panel.controls, *panel.national, *means]
    fut = future.frame.reindex(columns=columns, fill_value=0.0)
    fut_panel = replace(future, frame=fut, channels=panel.channels, controls=panel.controls)
    spend = np.concatenate([panel.spend(), fut_panel.spend()])  # (T + H, G, C)
    media = contributions(spend, draws).sum(axis=3) / draws.target_scale[None, None, :]  # (S, T + H, G)
    level = base.intercept - media[:, :n_t].mean(axis=1)  # (S, G)
    if base.date_effect.shape[1]:
        national = base.date_effect - media[:, :n_t].mean(axis=2) + media[:, :n_t].mean(axis=(1, 2))[:, None]
        x_mean = np.concatenate([panel.cube(means)[:, 0], fut_panel.cube(means)[:, 0]])  # (T + H, K'): per date
        by_controls = x_mean @ base.gamma[:, [panel.controls.index(c) for c in explained]].T  # (T + H, S)
        recent = -(-LEVEL_DAYS // step.days)
        drivers = (panel.cube(panel.national)[:, 0], fut_panel.cube(panel.national)[:, 0])  # the same in every geo
        rest_ahead, nat_sd = extrapolate(
            panel.dates, national - by_controls[:n_t].T, future.dates, base.n_order, recent, drivers
        )
        national = np.concatenate([national, rest_ahead + by_controls[n_t:].T], axis=1)
    else:
        national, nat_sd = np.zeros(media.shape[:2]), np.zeros((media.shape[0], len(future.dates)))
    dates = panel.dates.append(future.dates)
    x = np.concatenate([panel.cube(panel.controls), fut_panel.cube(panel.controls)])  # (T + H, G, K)
    mu = level[:, None, :] + media + national[:, :, None]
    mu += np.einsum("tgk,sk->stg", x, base.gamma)
    if base.n_order:
        mu += np.einsum("tm,smg->stg", fourier_basis(dates, base.n_order), base.season)
    ahead = mu[:, n_t:]
    noise = nat_sd[:, :, None] * rng.standard_normal((*ahead.shape[:2], 1))
    noise = noise + base.sigma[:, None, :] * rng.standard_normal(ahead.shape)
    ts = draws.target_scale[None, None, :]
    return MMMForecast(expected=mu * ts, predictive=(ahead + noise) * ts)
