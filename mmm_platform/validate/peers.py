"""Peer models (LightweightMMM, Robyn): fitted in their own environments, as subprocesses, on the
same folds and scored by the same code as the platform's models.

Why subprocesses: their pins (jax 0.4.13 and numpy < 1.27; rpy2 with R's glmnet and pandas < 3)
cannot share the main environment. The protocol, one folder per fit: the main process writes
`train.csv` (the `window_days` days up to the origin, national: date, revenue, spend per channel,
controls), `future.csv` (the horizon's days: spend and controls, no revenue) and `spec.json`; it
runs `<env>/bin/python <runner> <folder>` with a timeout and reads `result.json`:

- `draws`: (S, D) predictive draws of the national revenue of the horizon's days,
- `fitted`: (T,) the in-sample expected revenue of the training days,
- `roas`: per channel, draws of its ROAS over the training days as the platform defines it
  (revenue with the channel's spend as it was minus with it at zero, over its spend), and
  optionally `roas_point` (channel -> the model's own estimate; default the draws' mean),
- `info`: what the runner wants to report (sampler diagnostics, objective values).

A backend that cannot run (no environment, a failed or slow runner, a malformed result) raises
`PeerError` with the reason, which becomes the row's status. The runners are `peers/<name>/run.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import duckdb
import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from mmm_platform.config import PROJECT_ROOT
from mmm_platform.mmm.config import Control, Strict
from mmm_platform.mmm.data import GEO_DAY, MEDIA, DataError, Panel
from mmm_platform.mmm.results import hdi, roas_draws
from mmm_platform.mmm.store import StoredFit

#: the peer backends, by the model name their rows carry
PEERS = ("lightweight_mmm", "robyn")
#: what `make peers` leaves in an environment once every package is in (a half-built one has none)
BUILT = ".installed"
#: environment variables of the main environment that must not leak into a peer's
_LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class PeerError(Exception):
    """Why a peer could not fit or forecast: the row's status."""


# --- configuration ------------------------------------------------------------------------------


class PeerControl(Strict):
    """A control the peers see: SQL over one row of `features.geo_day`, averaged over the geos."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    expr: str

    @model_validator(mode="after")
    def _not_post_treatment(self) -> PeerControl:
        Control(name=self.name, expr=self.expr)  # the MMM's rule: no outcome of media as a control
        return self


class Backend(Strict):
    #: the environment (`make peers` builds it) and the runner script, relative to the project root
    env: str
    runner: str
    #: seconds one fit may take before its row says it ran out of time
    timeout_s: int = Field(900, ge=10)
    #: passed to the runner as they are (iterations, trials, warmup, samples ...)
    settings: dict[str, int | float | str] = Field(default_factory=dict)

    def path(self, rel: str) -> Path:
        """`rel` (env or runner) as a path: relative ones from the project root."""
        p = Path(rel)
        return p if p.is_absolute() else PROJECT_ROOT / p


class PeersConfig(Strict):
    #: days of history before each origin the peers fit on (the plan's prototype: 90)
    window_days: int = Field(90, ge=28, le=730)
    controls: list[PeerControl] = Field(default_factory=list)
    lightweight_mmm: Backend = Backend(env=".venv-peers/lightweight_mmm", runner="peers/lightweight_mmm/run.py")
    robyn: Backend = Backend(env=".venv-peers/robyn", runner="peers/robyn/run.py")

    def backend(self, name: str) -> Backend:
        return getattr(self, name)


# --- the data a peer sees -----------------------------------------------------------------------


@dataclass(frozen=True)
class PeerData:
    """A peer's fold: national days up to the origin (with revenue) and of the horizon (without)."""

    train: pd.DataFrame  # date, revenue, one column per channel ($ spend), one per control
    future: pd.DataFrame  # date, channels, controls
    channels: list[str]
    controls: list[str]
    #: channels of the panel the peers do not see, with why (no spend in the window)
    dropped: dict[str, str]

    @property
    def window_days(self) -> int:
        return len(self.train)


def load_peer_data(
    con: duckdb.DuckDBPyConnection,
    panel: Panel,
    target: str,
    origin: dt.date,
    horizon_days: int,
    cfg: PeersConfig,
) -> PeerData:
    """The `window_days` days up to `origin` and the `horizon_days` after it, summed over the
    panel's geos (controls averaged), for the panel's channels: the MMM's geos and channels,
    national and daily, which is the grain LightweightMMM and Robyn are built for."""
    first = origin - dt.timedelta(days=cfg.window_days - 1)
    last = origin + dt.timedelta(days=horizon_days)
    ctrl = "".join(f", avg(({c.expr})::DOUBLE) AS {c.name}" for c in cfg.controls)
    spend = "".join(
        f", coalesce(sum(spend) FILTER (WHERE channel = ${i + 4}), 0) AS ch__{i}" for i in range(len(panel.channels))
    )
    try:
        frame = con.execute(
            f"""WITH gd AS (
                    SELECT date, sum(({target})::DOUBLE) AS revenue, count(({target})) AS geos{ctrl}
                    FROM {GEO_DAY} WHERE date BETWEEN $1 AND $2 AND list_contains($3, geo_id) GROUP BY date
                ),
                md AS (
                    SELECT date{spend} FROM {MEDIA}
                    WHERE date BETWEEN $1 AND $2 AND list_contains($3, geo_id) GROUP BY date
                )
                SELECT gd.*, {", ".join(f"coalesce(md.ch__{i}, 0) AS ch__{i}" for i in range(len(panel.channels)))}
                FROM gd LEFT JOIN md USING (date) ORDER BY date""",
            [first, last, panel.geos, *panel.channels],
        ).df()
    except duckdb.Error as err:
        raise DataError(f"reading the peers' national days failed: {err}") from None
    frame = frame.rename(columns={f"ch__{i}": c for i, c in enumerate(panel.channels)})
    frame["date"] = pd.to_datetime(frame["date"])
    want = pd.date_range(first, last, freq="D")
    have = frame[(frame["geos"] == len(panel.geos)) & frame["revenue"].notna()]
    gaps = want.difference(pd.DatetimeIndex(have["date"]))
    if len(gaps):
        raise DataError(
            f"{len(gaps)} of the {len(want)} days from {first} to {last} lack revenue in some of the "
            f"{len(panel.geos)} geos (first {gaps[0].date()}): the peers need every day"
        )
    frame = frame.drop(columns="geos")
    train = frame[frame["date"] <= pd.Timestamp(origin)].reset_index(drop=True)
    future = frame[frame["date"] > pd.Timestamp(origin)].drop(columns="revenue").reset_index(drop=True)
    dark = [c for c in panel.channels if train[c].sum() <= 0]  # no effect to learn, a 0/0 in every scaling
    dropped = dict.fromkeys(dark, f"no spend in the {cfg.window_days} days before {origin}")
    train, future = train.drop(columns=dark), future.drop(columns=dark)
    controls = []
    for c in cfg.controls:  # a control without variation in the window tells a peer nothing
        mean = train[c.name].mean()
        if not np.isfinite(train[c.name].std()) or train[c.name].std() < 1e-9:
            train, future = train.drop(columns=c.name), future.drop(columns=c.name)
            continue
        train[c.name], future[c.name] = train[c.name].fillna(mean), future[c.name].fillna(mean)
        controls.append(c.name)
    return PeerData(train, future, [c for c in panel.channels if c not in dropped], controls, dropped)


# --- running a peer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerResult:
    draws: np.ndarray  # (S, D) national revenue of the horizon's days
    fitted: np.ndarray  # (T,) in-sample expected revenue of the training days
    roas: dict[str, np.ndarray]  # channel -> ROAS draws over the training days
    roas_point: dict[str, float]  # channel -> the model's estimate
    info: dict[str, Any]
    seconds: float


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def run_peer(name: str, data: PeerData, cfg: PeersConfig, *, draws: int, seed: int) -> PeerResult:
    """Fit peer `name` on `data` in its environment; its result, checked, or PeerError."""
    backend = cfg.backend(name)
    env_dir, runner = backend.path(backend.env), backend.path(backend.runner)
    if not (env_dir / BUILT).is_file():
        raise PeerError(f"environment {backend.env} missing: run `make peers`")
    if not runner.is_file():
        raise PeerError(f"runner {backend.runner} missing")
    spec = {
        "model": name,
        "channels": data.channels,
        "controls": data.controls,
        "draws": draws,
        "seed": seed,
        "settings": backend.settings,
    }
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    with tempfile.TemporaryDirectory(prefix=f"peer_{name}_") as tmp:
        folder = Path(tmp)
        data.train.to_csv(folder / "train.csv", index=False, date_format="%Y-%m-%d")
        data.future.to_csv(folder / "future.csv", index=False, date_format="%Y-%m-%d")
        (folder / "spec.json").write_text(json.dumps(spec, indent=1))
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(env_dir / "bin" / "python"), str(runner), str(folder)],
                capture_output=True, text=True, timeout=backend.timeout_s, env=env, cwd=folder,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PeerError(f"{name} ran past its timeout of {backend.timeout_s} s (peers.{name}.timeout_s)") from None
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise PeerError(f"{name} failed (exit {proc.returncode}): {_last_line(proc.stderr or proc.stdout)}")
        try:
            out = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError) as err:
            raise PeerError(f"{name} wrote no readable result.json: {err}") from None
    return check_result(name, out, data, seconds)


def check_result(name: str, out: dict, data: PeerData, seconds: float) -> PeerResult:
    """The runner's result as arrays, or PeerError naming what is wrong with it."""
    try:
        draws = np.asarray(out["draws"], dtype=float)
        fitted = np.asarray(out["fitted"], dtype=float)
        roas = {c: np.asarray(out["roas"][c], dtype=float).ravel() for c in data.channels}
        point = {c: float(out.get("roas_point", {}).get(c, np.mean(roas[c]))) for c in data.channels}
    except (KeyError, TypeError, ValueError) as err:
        raise PeerError(f"{name} returned a malformed result: {type(err).__name__} {err}") from None
    if draws.ndim != 2 or draws.shape[1] != len(data.future):
        raise PeerError(f"{name} returned draws of shape {draws.shape}, not (S, {len(data.future)} days)")
    if fitted.shape != (len(data.train),):
        raise PeerError(f"{name} returned {fitted.shape} fitted values, not ({len(data.train)},)")
    checked = {"draws": draws, "fitted": fitted, **roas, **{f"roas_point {c}": np.array(v) for c, v in point.items()}}
    bad = [k for k, v in checked.items() if not np.isfinite(v).all()]
    bad += [c for c, v in roas.items() if not v.size]
    if bad or not len(draws):
        raise PeerError(f"{name} returned no draws or empty or non-finite values for {', '.join(bad) or 'draws'}")
    return PeerResult(draws, fitted, roas, point, dict(out.get("info", {})), seconds)


def to_periods(daily: np.ndarray, days: pd.Series, starts: pd.DatetimeIndex, period_days: int) -> np.ndarray:
    """(S, P) sums of (S, D) daily values over the periods starting at `starts`, each
    `period_days` long; every day must fall in one and every period be complete."""
    d = pd.DatetimeIndex(days)
    idx = starts.searchsorted(d, side="right") - 1
    inside = (idx >= 0) & ((d - starts[np.clip(idx, 0, None)]).days < period_days)
    if not inside.all() or np.bincount(idx, minlength=len(starts)).tolist() != [period_days] * len(starts):
        raise PeerError(f"the peers' days do not tile the horizon's {len(starts)} periods of {period_days} days")
    out = np.zeros((daily.shape[0], len(starts)))
    np.add.at(out.T, idx, daily.T)
    return out


# --- the comparison table -----------------------------------------------------------------------

#: validation.model_comparison's columns (the wiring adds run_id and as_of)
COMPARISON_COLUMNS = [
    "model",
    "window_days",
    "origin",
    "channel",
    "spend",
    "roas",
    "roas_lower",
    "roas_upper",
    "true_roas",
    "seconds",
    "status",
]


def _rows(
    model: str,
    window_days: int,
    spend: dict[str, float],
    roas: dict[str, np.ndarray],
    point: dict[str, float],
    prob: float,
) -> list[dict]:
    rows = []
    for c, r in roas.items():
        lo, hi = hdi(r, prob) if r.size > 1 else (r[0], r[0])
        rows.append(
            {
                "model": model,
                "window_days": window_days,
                "channel": c,
                "spend": spend[c],
                "roas": point[c],
                "roas_lower": float(lo),
                "roas_upper": float(hi),
                "status": "ok",
            }
        )
    return rows


def comparison(
    origin: dt.date,
    refit: StoredFit | str,
    peers: dict[str, PeerResult | str],
    data: PeerData | None,
    truth: dict[str, float] | None,
    prob: float,
) -> pd.DataFrame:
    """One row per model and channel: the MMM's refit (over its window) and each peer's fit (over
    the `window_days` before `origin`), ROAS with its `prob` interval beside the true ROAS; a model
    that did not run gets one row whose status says why (`refit`/`peers` given as a string)."""
    rows: list[dict] = []
    if isinstance(refit, str):
        rows.append({"model": "mmm", "status": refit})
    else:
        p = refit.panel
        spend = dict(zip(p.channels, p.spend().sum(axis=(0, 1)).tolist(), strict=True))
        days = (p.last_day - p.first_day).days + 1
        draws = roas_draws(p, refit.draws)
        rows += _rows("mmm", days, spend, draws, {c: float(r.mean()) for c, r in draws.items()}, prob)
    for name, result in peers.items():
        if isinstance(result, str):
            rows.append({"model": name, "window_days": data.window_days if data else None, "status": result})
            continue
        spend = {c: float(data.train[c].sum()) for c in data.channels}
        got = _rows(name, data.window_days, spend, result.roas, result.roas_point, prob)
        got += [
            {"model": name, "window_days": data.window_days, "channel": c, "status": why}
            for c, why in data.dropped.items()
        ]
        rows += [r | {"seconds": result.seconds} for r in got]
    out = pd.DataFrame(rows).reindex(columns=COMPARISON_COLUMNS)
    out["origin"] = origin
    out["true_roas"] = out["channel"].map(truth or {}).astype(float)
    return out
