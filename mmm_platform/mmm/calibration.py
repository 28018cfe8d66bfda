"""Calibration inputs: lift tests and weather priors.

`causal.lift_tests` (built by the causal suite) has PyMC-Marketing's `add_lift_test_measurements`
columns, `channel, x, delta_x, delta_y, sigma` (plus `geo` when per geo, and `experiment_id`), in $
per day: `x` the spend before the test, `delta_x` its change, `delta_y` the revenue change, `sigma`
the standard error of `delta_y`. The model's periods may be weeks, so they are converted here.

`causal.weather_priors` has `variable, mean, sd` in $ per geo-day per unit of the variable.
The experiments are read out once, by the causal suite (mmm_platform/causal/experiments.py).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from mmm_platform.mmm.config import MMMConfig
from mmm_platform.mmm.data import Panel, table_exists

LIFT_COLUMNS = ["channel", "x", "delta_x", "delta_y", "sigma"]


class CalibrationError(ValueError):
    """Calibration is required by the configuration but its input is missing or unusable."""


def read_lift_tests(con: duckdb.DuckDBPyConnection, cfg: MMMConfig, as_of: dt.date) -> pd.DataFrame | None:
    """The lift tests the configuration asks for (None when calibration is off or the table is
    missing and not required). Tests that end after the refit date are left out."""
    mode, table = cfg.calibration.lift_tests, cfg.calibration.table
    if mode == "off":
        return None
    if not table_exists(con, table):
        if mode == "required":
            raise CalibrationError(f"calibration.lift_tests is 'required' but {table} does not exist")
        return None
    df = con.execute(f"SELECT * FROM {table}").df()
    missing = [c for c in LIFT_COLUMNS if c not in df.columns]
    if missing:
        raise CalibrationError(f"{table} lacks the columns {', '.join(missing)} (needs {', '.join(LIFT_COLUMNS)})")
    if "end_date" in df.columns:
        df = df[pd.to_datetime(df["end_date"]).dt.date <= as_of]
    if df.empty and mode == "required":
        raise CalibrationError(f"calibration.lift_tests is 'required' but {table} has no test ending by {as_of}")
    return df


def read_weather_priors(con: duckdb.DuckDBPyConnection, cfg: MMMConfig) -> pd.DataFrame | None:
    mode, table = cfg.calibration.weather_priors, cfg.calibration.weather_table
    if mode == "off":
        return None
    if not table_exists(con, table):
        if mode == "required":
            raise CalibrationError(f"calibration.weather_priors is 'required' but {table} does not exist")
        return None
    df = con.execute(f"SELECT * FROM {table}").df()
    missing = [c for c in ("variable", "mean", "sd") if c not in df.columns]
    if missing:
        raise CalibrationError(f"{table} lacks the columns {', '.join(missing)}")
    return df


def lift_tests_for_panel(lift: pd.DataFrame | None, panel: Panel) -> pd.DataFrame | None:
    """Lift tests in the model's units: per period of the panel's grain, channels and geos the panel
    has, one row per geo (a test without `geo` is spread over the geos in proportion to their
    spend on the channel)."""
    if lift is None or lift.empty:
        return None
    days = 7 if panel.grain == "week" else 1
    df = lift[lift["channel"].isin(panel.channels)].copy()
    if "geo" not in df.columns and "geo_id" in df.columns:
        df = df.rename(columns={"geo_id": "geo"})
    if "geo" not in df.columns or df["geo"].isna().all():
        spend = panel.spend().sum(axis=0)  # (G, C)
        rows = []
        for _, r in df.iterrows():
            share = spend[:, panel.channels.index(r["channel"])]
            share = share / share.sum()
            for g, w in zip(panel.geos, share, strict=True):
                rows.append({**r.to_dict(), "geo": g, "x": r["x"] * w, "delta_x": r["delta_x"] * w,
                             "delta_y": r["delta_y"] * w, "sigma": r["sigma"] * np.sqrt(w)})  # fmt: skip
        df = pd.DataFrame(rows)
    df = df[df["geo"].isin(panel.geos)]
    if df.empty:
        return None
    out = df[["channel", "geo", *LIFT_COLUMNS[1:]]].copy()
    out[["x", "delta_x", "delta_y", "sigma"]] = out[["x", "delta_x", "delta_y", "sigma"]].astype(float) * days
    # a holdout switches the channel off: its spend change cannot exceed the spend it had
    out["delta_x"] = np.maximum(out["delta_x"], -out["x"])
    out = out[(out["sigma"] > 0) & (out["x"] >= 0) & (out["delta_x"] != 0)]
    return out.reset_index(drop=True) if not out.empty else None


def read_calibration(
    con: duckdb.DuckDBPyConnection, cfg: MMMConfig, panel: Panel
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """What a fit of `panel` is calibrated with, as `build_mmm` takes it: the lift tests in the
    panel's units and the weather priors (each None when off or absent)."""
    lift = lift_tests_for_panel(read_lift_tests(con, cfg, panel.as_of), panel)
    return lift, read_weather_priors(con, cfg)
