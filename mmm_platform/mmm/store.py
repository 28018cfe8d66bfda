"""A fitted refit on disk, and the warehouse tables the model writes.

The fit step saves what every downstream step needs (the panel it saw, thinned posterior draws in
numpy, the fitted values and the diagnostics) in one folder per refit date, so the ROAS, curves,
diagnostics, allocator and backtest steps run without refitting and without the PyMC objects.

Tables are written with `warehouse.write_table`, by `as_of` (and the extra keys given), so
re-running a refit replaces its rows and many refits live side by side.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmm_platform.mmm.data import Panel
from mmm_platform.mmm.forecast import Baseline
from mmm_platform.mmm.results import Draws


@dataclass
class StoredFit:
    panel: Panel
    draws: Draws
    fitted: dict[str, np.ndarray]
    diagnostics: dict
    meta: dict
    #: the non-media terms a forecast needs; None in fits stored before forecasts existed
    baseline: Baseline | None = None


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (dt.date, dt.datetime, pd.Timestamp)):
        return o.isoformat()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def save_fit(
    folder: Path,
    panel: Panel,
    draws: Draws,
    fitted: dict,
    diagnostics: dict,
    meta: dict,
    baseline: Baseline,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    panel.frame.to_parquet(folder / "panel.parquet", index=False)
    panel.control_stats.to_parquet(folder / "control_stats.parquet", index=False)
    np.savez_compressed(
        folder / "draws.npz",
        kernel=draws.kernel,
        channel_scale=draws.channel_scale,
        target_scale=draws.target_scale,
        **{f"sat_{k}": v for k, v in draws.sat.items()},
        **{f"fitted_{k}": v for k, v in fitted.items()},
        **{f"base_{k}": v for k, v in vars(baseline).items()},
    )
    info = {
        "panel": {
            "grain": panel.grain,
            "as_of": panel.as_of,
            "channels": panel.channels,
            "channel_groups": panel.channel_groups,
            "controls": panel.controls,
            "geos": panel.geos,
            "clusters": panel.clusters,
            "dropped": panel.dropped,
            "national": panel.national,
        },
        "form": draws.form,
        "diagnostics": diagnostics,
        "meta": meta,
    }
    (folder / "fit.json").write_text(json.dumps(info, indent=1, default=_json_default))
    return folder


def load_fit(folder: Path) -> StoredFit:
    info = json.loads((folder / "fit.json").read_text())
    p = info["panel"]
    frame = pd.read_parquet(folder / "panel.parquet")
    panel = Panel(
        grain=p["grain"],
        as_of=dt.date.fromisoformat(p["as_of"]),
        frame=frame,
        channels=p["channels"],
        channel_groups=p["channel_groups"],
        controls=p["controls"],
        control_stats=pd.read_parquet(folder / "control_stats.parquet"),
        geos=p["geos"],
        clusters={k: int(v) for k, v in p["clusters"].items()},
        dropped=p["dropped"],
        national=p.get("national", []),  # none in a refit stored before they were kept
    )
    z = np.load(folder / "draws.npz")
    draws = Draws(
        kernel=z["kernel"],
        sat={k[4:]: z[k] for k in z.files if k.startswith("sat_")},
        form=info["form"],
        channel_scale=z["channel_scale"],
        target_scale=z["target_scale"],
    )
    fitted = {k[7:]: z[k] for k in z.files if k.startswith("fitted_")}
    base = {k[5:]: z[k] for k in z.files if k.startswith("base_")}
    return StoredFit(
        panel=panel,
        draws=draws,
        fitted=fitted,
        diagnostics=info["diagnostics"],
        meta=info["meta"],
        baseline=Baseline(**base) if base else None,
    )


# --- warehouse tables ---------------------------------------------------------------------------


def with_run(df: pd.DataFrame, run_id: str, as_of: dt.date, **extra) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "as_of", pd.Timestamp(as_of).date())
    out.insert(0, "run_id", run_id)
    for k, v in extra.items():
        out[k] = v
    return out


def diagnostics_row(diag: dict) -> pd.DataFrame:
    return pd.DataFrame([{k: v for k, v in diag.items() if not isinstance(v, (dict, list))}])
