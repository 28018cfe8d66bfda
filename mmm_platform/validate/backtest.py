"""Rolling-origin backtests: every model forecasts the same held-out periods from the data before
them, and is scored the same way.

A fold's origin is a refit date (a week's Sunday, so a refit of that week is what the MMM brings):
the models see the data up to it and forecast the `horizon_days` after it, given their spend and
controls (known in a backtest). The newest fold's horizon ends with the data the backtest sees,
each earlier origin `step_days` before the next. A model is a function of the fold's data in
`MODELS`: `placeholder`, the log-log regression of revenue on spend the platform replaces, fitted
here; `mmm`, the stored refit of the origin week carried forward (`mmm/forecast.py`), never fitted
here: without that refit the fold's row says so; `lightweight_mmm` and `robyn`, the peers of the
modelling plan, fitted in their own environments on the national days before the origin
(`validate/peers.py`), their daily draws summed into the same periods.

Metrics, on the total revenue per period over all geos (what a budget is judged on): MAPE, RMSE
($ per period) and the share of periods inside the predictive interval (`interval_prob`); the same
per geo-period as `mape_geo` and `interval_coverage_geo`; `mape_train`, the in-sample MAPE of the
total, shows how much of the fit survives outside it. A national model (the peers) has no geo
metrics: those are NaN.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from mmm_platform.config import ASSETS_DIR
from mmm_platform.mmm.config import MMMConfig, Strict, check_config, read_config
from mmm_platform.mmm.data import DataError, Panel, latest_day, load_panel
from mmm_platform.mmm.forecast import calendar_basis, forecast
from mmm_platform.mmm.results import hdi
from mmm_platform.mmm.store import StoredFit
from mmm_platform.validate.peers import (
    PEERS,
    PeerData,
    PeerError,
    PeerResult,
    PeersConfig,
    load_peer_data,
    run_peer,
    to_periods,
)

DEFAULT_CONFIG_PATH = ASSETS_DIR / "models" / "backtest.yaml"
#: periods of actual revenue before each origin in the predictions (context for the plot)
CONTEXT_PERIODS = 8


# --- configuration ------------------------------------------------------------------------------


class Placeholder(Strict):
    #: Fourier order of the yearly terms, used once the training data cover a year
    yearly_fourier: int = Field(2, ge=0, le=10)


class BacktestConfig(Strict):
    version: Literal[1] = 1
    folds: int = Field(4, ge=1, le=52)
    horizon_days: int = Field(28, ge=7)
    #: days between consecutive origins
    step_days: int = Field(28, ge=7)
    interval_prob: float = Field(0.9, gt=0, lt=1)
    models: list[str] = Field(default_factory=lambda: ["placeholder", "mmm", *PEERS])
    #: predictive draws of the models that simulate their own (the MMM brings its posterior's)
    draws: int = Field(400, ge=50)
    seed: int = 11
    placeholder: Placeholder = Placeholder()
    peers: PeersConfig = PeersConfig()

    @field_validator("horizon_days", "step_days")
    @classmethod
    def _whole_weeks(cls, v: int) -> int:
        if v % 7:
            raise ValueError(f"{v} is not a multiple of 7: fold origins are refit weeks (Sundays)")
        return v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(MODELS))
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
        return v

    @property
    def peer_models(self) -> list[str]:
        return [m for m in self.models if m in PEERS]

    @property
    def span_days(self) -> int:
        """From the oldest origin to the end of the newest horizon."""
        return (self.folds - 1) * self.step_days + self.horizon_days


def parse_backtest_config(data: dict | None) -> BacktestConfig:
    return check_config(BacktestConfig, data, "<dict>", "backtest configuration")


def load_backtest_config(path: Path | str | None = None) -> BacktestConfig:
    """Read and check the configuration (default `assets/models/backtest.yaml`)."""
    return read_config(BacktestConfig, Path(path) if path else DEFAULT_CONFIG_PATH, "backtest configuration")


# --- folds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    number: int  # 1: the oldest origin
    train_end: dt.date  # the origin: the last day a model sees (a Sunday)
    horizon_days: int

    @property
    def test_start(self) -> dt.date:
        return self.train_end + dt.timedelta(days=1)

    @property
    def test_end(self) -> dt.date:
        return self.train_end + dt.timedelta(days=self.horizon_days)

    @property
    def refit_week(self) -> str:
        """The refit partition (its Monday) whose fit saw the data up to the origin."""
        return (self.train_end - dt.timedelta(days=6)).isoformat()


def last_sunday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


def backtest_end(con: duckdb.DuckDBPyConnection, until: dt.date) -> dt.date:
    """The last day the backtest scores: the last complete week on or before `until` with sales."""
    newest = latest_day(con)
    if newest is None:
        raise DataError("features.geo_day has no day with revenue: build the feature marts first")
    return last_sunday(min(until, newest))


def make_folds(end: dt.date, cfg: BacktestConfig) -> list[Fold]:
    """The folds whose newest horizon ends on `end` (a Sunday), oldest first."""
    if end.weekday() != 6:
        raise ValueError(f"{end} is not a Sunday: horizons end with a refit week")
    return [
        Fold(k + 1, end - dt.timedelta(days=(cfg.folds - 1 - k) * cfg.step_days + cfg.horizon_days), cfg.horizon_days)
        for k in range(cfg.folds)
    ]


# --- the data of a fold -------------------------------------------------------------------------


class Unavailable(Exception):
    """Why a fold could not be built or a model could not forecast it: the row's status."""


@dataclass
class FoldData:
    """What a model may see: the data up to the origin, and the horizon's spend and controls."""

    fold: Fold
    train: Panel  # the panel a refit of the origin week fits
    future: Panel  # the horizon's periods: spend and controls, shaped like `train`'s; no target
    refit: StoredFit | None  # the stored refit of the origin week, if there is one
    #: the peers' national days, or why there are none (no peer asked for: "")
    peer: PeerData | str = ""


@dataclass
class Loaded:
    """A fold ready to score, or (`data` None) why it could not be built."""

    fold: Fold
    data: FoldData | None
    actual: np.ndarray | None  # (H, G) the horizon's revenue: scored, never shown to a model
    status: str = "ok"


def split(full: Panel, fold: Fold) -> tuple[Panel, Panel, np.ndarray]:
    """(train, future without the target, the future's target (H, G)) of a panel over the fold."""
    f = full.frame
    start = pd.Timestamp(fold.test_start)
    train = replace(full, frame=f[f["date"] < start].reset_index(drop=True), as_of=fold.train_end)
    ahead = replace(full, frame=f[f["date"] >= start].reset_index(drop=True))
    if len(train.dates) < 8:
        raise Unavailable(f"only {len(train.dates)} periods before the origin {fold.train_end}: too few to fit")
    actual = ahead.series("y")
    return train, replace(ahead, frame=ahead.frame.drop(columns=["y", "margin"])), actual


def load_fold(con: duckdb.DuckDBPyConnection, cfg: MMMConfig, fold: Fold) -> tuple[Panel, Panel, np.ndarray]:
    """The fold's panel up to the horizon's end, every data-driven choice made on the data up to
    the origin (`load_panel(fit_until=)`): its training rows are what the origin week's refit saw."""
    window = None if cfg.window_days is None else cfg.window_days + fold.horizon_days
    full = load_panel(con, cfg.model_copy(update={"window_days": window}), fold.test_end, fit_until=fold.train_end)
    if full.last_day < fold.test_end:
        raise Unavailable(f"the data end on {full.last_day}, before the horizon ends on {fold.test_end}")
    return split(full, fold)


def load_folds(
    con: duckdb.DuckDBPyConnection,
    cfg: MMMConfig,
    folds: list[Fold],
    refit: Callable[[Fold], StoredFit | None],
    peers: PeersConfig | None = None,
) -> list[Loaded]:
    """Each fold's data; with `peers`, the peers' national days of the fold's geos and channels too."""
    out = []
    for fold in folds:
        try:
            train, future, actual = load_fold(con, cfg, fold)
        except (DataError, Unavailable) as err:
            out.append(Loaded(fold, None, None, status=str(err)))
            continue
        peer: PeerData | str = ""
        if peers is not None:
            try:
                peer = load_peer_data(con, train, cfg.target, fold.train_end, fold.horizon_days, peers)
            except DataError as err:
                peer = str(err)
        out.append(Loaded(fold, FoldData(fold, train, future, refit(fold), peer), actual))
    return out


# --- models -------------------------------------------------------------------------------------


@dataclass
class Forecast:
    """What every model returns, so every model is scored by the same code."""

    draws: np.ndarray  # (S, H, G) predictive draws of revenue per geo-period over the horizon, $
    mape_train: float  # in-sample MAPE of the total per period


def mape(pred: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - actual) / np.abs(actual)))


def _design(panel: Panel, origin: dt.date, history_days: int, n_order: int) -> np.ndarray:
    """(T G, P) rows in (period, geo) order: geo fixed effects, log(1 + spend) per channel, trend
    and yearly terms."""
    n_t, n_g = len(panel.dates), len(panel.geos)
    cal = calendar_basis(panel.dates, origin, history_days, n_order)[:, 1:]  # the geos hold the level
    return np.column_stack(
        [
            np.tile(np.eye(n_g), (n_t, 1)),
            np.log1p(panel.spend()).reshape(n_t * n_g, -1),
            np.repeat(cal, n_g, axis=0),
        ]
    )


def placeholder(data: FoldData, cfg: BacktestConfig, rng: np.random.Generator) -> Forecast:
    """The model the platform replaces: log revenue per geo-period on geo fixed effects, log(1 +
    spend) per channel, a trend and yearly terms, by least squares. Its interval comes from the
    residuals: a part shared by the geos in a period (national shocks) and the rest."""
    train = data.train
    origin, history = train.dates[0].date(), (train.dates[-1] - train.dates[0]).days
    x = _design(train, origin, history, cfg.placeholder.yearly_fourier)
    y = train.series("y")
    log_y = np.log(np.where(y > 0, y, np.nan)).ravel()
    ok = np.isfinite(log_y)
    coef, *_ = np.linalg.lstsq(x[ok], log_y[ok], rcond=None)
    resid = (log_y - x @ coef).reshape(y.shape)
    shared = np.nanmean(resid, axis=1)
    sd_shared, sd_rest = float(np.nanstd(shared, ddof=1)), float(np.nanstd(resid - shared[:, None]))
    log_f = (_design(data.future, origin, history, cfg.placeholder.yearly_fourier) @ coef).reshape(
        len(data.future.dates), len(data.future.geos)
    )
    s = cfg.draws
    noise = sd_shared * rng.standard_normal((s, log_f.shape[0], 1)) + sd_rest * rng.standard_normal((s, *log_f.shape))
    fitted = np.exp((x @ coef).reshape(y.shape) + (sd_shared**2 + sd_rest**2) / 2)  # the log-normal mean
    return Forecast(draws=np.exp(log_f[None] + noise), mape_train=mape(fitted.sum(axis=1), y.sum(axis=1)))


def mmm(data: FoldData, cfg: BacktestConfig, rng: np.random.Generator) -> Forecast:
    """The stored refit of the origin week, carried over the horizon with its posterior draws."""
    fold, st, week = data.fold, data.refit, data.fold.refit_week
    if st is None:
        raise Unavailable(f"no refit for week {week}: backfill mmm/fit over that week")
    if st.baseline is None:
        raise Unavailable(f"the refit of week {week} was stored before forecasts existed: rerun mmm/fit for that week")
    if st.panel.as_of != fold.train_end:
        raise Unavailable(
            f"the refit of week {week} saw the data up to {st.panel.as_of}, not {fold.train_end}: rerun mmm/fit for that week"
        )
    if st.panel.geos != data.future.geos:
        raise Unavailable(f"the refit of week {week} has other geos than the data of the horizon: rerun mmm/fit")
    fc = forecast(st.panel, st.draws, st.baseline, data.future, rng)
    fitted = fc.expected[:, : len(st.panel.dates)].mean(axis=0)
    return Forecast(draws=fc.predictive, mape_train=mape(fitted.sum(axis=1), st.panel.series("y").sum(axis=1)))


Predictor = Callable[[FoldData, BacktestConfig, np.random.Generator], Forecast]


def peer_forecast(result: PeerResult, data: FoldData) -> Forecast:
    """A peer's daily national draws of the horizon summed into the fold's periods (one column)."""
    period = 7 if data.future.grain == "week" else 1
    total = to_periods(result.draws, data.peer.future["date"], data.future.dates, period)
    return Forecast(draws=total[..., None], mape_train=mape(result.fitted, data.peer.train["revenue"].to_numpy()))


def peer_predictor(name: str) -> Predictor:
    """The predictor of peer `name`: fitted in its environment on the national days up to the origin."""

    def predict(data: FoldData, cfg: BacktestConfig, rng: np.random.Generator) -> Forecast:
        if isinstance(data.peer, str):
            raise Unavailable(data.peer or "the fold was loaded without the peers' data")
        try:
            return peer_forecast(
                run_peer(name, data.peer, cfg.peers, draws=cfg.draws, seed=int(rng.integers(2**31))), data
            )
        except PeerError as err:
            raise Unavailable(str(err)) from None

    return predict


#: every model the backtest can run, by the name its rows carry (`validation.backtest.model`)
MODELS: dict[str, Predictor] = {"placeholder": placeholder, "mmm": mmm} | {name: peer_predictor(name) for name in PEERS}


# --- scores -------------------------------------------------------------------------------------

#: the columns of a backtest row (the wiring adds run_id and as_of)
COLUMNS = [
    "model",
    "fold",
    "refit_week",
    "train_end",
    "test_start",
    "test_end",
    "horizon_days",
    "periods",
    "mape",
    "rmse",
    "interval_coverage",
    "mape_geo",
    "interval_coverage_geo",
    "mape_train",
    "interval_prob",
    "status",
]


def score(fc: Forecast, actual: np.ndarray, prob: float) -> dict[str, float]:
    """`fc.draws` per geo, or with one column for a national model (its geo metrics are NaN)."""
    total, observed = fc.draws.sum(axis=2), actual.sum(axis=1)  # (S, H), (H,)
    point = total.mean(axis=0)
    lo, hi = hdi(total, prob)
    per_geo = fc.draws.shape[2] == actual.shape[1]
    geo_lo, geo_hi = hdi(fc.draws, prob) if per_geo else (None, None)
    return {
        "periods": len(observed),
        "mape": mape(point, observed),
        "rmse": float(np.sqrt(np.mean((point - observed) ** 2))),
        "interval_coverage": float(np.mean((lo <= observed) & (observed <= hi))),
        "mape_geo": mape(fc.draws.mean(axis=0), actual) if per_geo else np.nan,
        "interval_coverage_geo": float(np.mean((geo_lo <= actual) & (actual <= geo_hi))) if per_geo else np.nan,
        "mape_train": fc.mape_train,
    }


def run_backtest(loaded: list[Loaded], cfg: BacktestConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model and fold (`COLUMNS`); and per fold and period the total revenue each model
    predicted (mean and interval) beside the actual (`model` "actual", from a few periods before
    the origin on)."""
    rows, preds = [], []
    for item in loaded:
        f = item.fold
        base = {
            "fold": f.number,
            "refit_week": f.refit_week,
            "train_end": f.train_end,
            "test_start": f.test_start,
            "test_end": f.test_end,
            "horizon_days": f.horizon_days,
            "interval_prob": cfg.interval_prob,
        }
        if item.data is None:
            rows += [base | {"model": name, "status": item.status} for name in cfg.models]
            continue
        seen = item.data.train
        preds.append(
            pd.DataFrame(
                {
                    "fold": f.number,
                    "model": "actual",
                    "date": seen.dates[-CONTEXT_PERIODS:].append(item.data.future.dates),
                    "revenue": np.concatenate(
                        [seen.series("y").sum(axis=1)[-CONTEXT_PERIODS:], item.actual.sum(axis=1)]
                    ),
                }
            )
        )
        for i, name in enumerate(cfg.models):
            try:
                fc = MODELS[name](item.data, cfg, np.random.default_rng([cfg.seed, f.number, i]))
            except Unavailable as err:
                rows.append(base | {"model": name, "status": str(err)})
                continue
            rows.append(base | {"model": name, **score(fc, item.actual, cfg.interval_prob), "status": "ok"})
            total = fc.draws.sum(axis=2)
            lo, hi = hdi(total, cfg.interval_prob)
            preds.append(
                pd.DataFrame(
                    {
                        "fold": f.number,
                        "model": name,
                        "date": item.data.future.dates,
                        "revenue": total.mean(axis=0),
                        "lower": lo,
                        "upper": hi,
                    }
                )
            )
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=["fold", "model", "date"])
    return pd.DataFrame(rows).reindex(columns=COLUMNS), predictions
