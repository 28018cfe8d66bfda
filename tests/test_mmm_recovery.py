"""The MMM recovers the true ROAS of a small simulated world, and models that are wrong in the ways
that matter do not: without carry-over, with the weather left out, or with a post-treatment control.

The world is a retailer with weather-triggered campaigns (`bid_reaction` 4: bids follow the
day-ahead forecast four times as hard as the demo retailer's), so the weather confounds media. At
the demo's reaction, leaving the weather out moved the media's total error by 4 points (+4 % to
+8 %) on a world this small: too weak a confounder to fail a model. It goes through the real feature
marts (raw tables from the simulator, dbt, climate clusters); the fits use the shipped configuration
with few draws. Real numbers, small world: 9 geos x 78 weeks, 2 chains x 200 draws.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from mmm_platform.contracts import load_contract
from mmm_platform.mmm.config import Control, MMMConfig, load_config
from mmm_platform.mmm.data import load_panel
from mmm_platform.mmm.fit import diagnostics, fit_model, fitted
from mmm_platform.mmm.model import build_mmm
from mmm_platform.mmm.results import channel_roas, extract_draws
from mmm_platform.warehouse import ensure_warehouse

GEOS, DAYS, SEED, BID_REACTION = 9, 546, 3, 4.0
START = dt.date(2024, 1, 1)
#: the controls that carry the weather, observed and forecast (assets/models/mmm.yaml)
WEATHER_CONTROLS = {
    *("temp_mean_c", "precip_mm", "snowfall_cm", "storm_day", "storm_eve", "severe_alert"),
    *("fc_temp_anom_l1", "fc_temp_anom_l3", "fc_heat_l1", "fc_precip_anom_l1", "fc_temp_anom_weekend"),
}


def build_world_warehouse(
    folder: Path, n_geos: int = GEOS, n_days: int = DAYS, seed: int = SEED, bid_reaction: float = 1.0
) -> tuple[Path, dict]:
    """A simulated world's raw tables loaded as they are, the dbt marts built over all of it, and
    the climate clusters: what the model reads, without the ingestion checks (tested elsewhere)."""
    from mmm_platform.defs.features.project import dbt_project, ensure_manifest
    from mmm_platform.features.climate import write_geo_clusters
    from mmm_platform.simulate import WorldConfig, simulate

    world = simulate(WorldConfig(seed=seed, n_geos=n_geos, n_days=n_days, start=START, bid_reaction=bid_reaction))
    wh = folder / "warehouse.duckdb"
    with duckdb.connect(str(wh)) as con:
        ensure_warehouse(con, load_contract())
        for name, df in world.tables.items():
            con.register("t", df.to_arrow())
            con.execute(f'INSERT INTO raw."{name}" BY NAME SELECT * FROM t')
            con.unregister("t")
    ensure_manifest()
    env = os.environ | {"MMM_WAREHOUSE": str(wh), "MMM_DBT_MIN_DATE": "", "MMM_DBT_MAX_DATE": ""}
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run(
        [str(dbt), "build", "--quiet", "--exclude", "resource_type:test"],
        cwd=dbt_project.project_dir, env=env, check=True, capture_output=True,
    )  # fmt: skip
    with duckdb.connect(str(wh)) as con:
        write_geo_clusters(con)
    return wh, world.truth


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    return build_world_warehouse(tmp_path_factory.mktemp("mmm_world"), bid_reaction=BID_REACTION)


def quick(cfg: MMMConfig) -> MMMConfig:
    return cfg.model_copy(
        update={
            "sampler": cfg.sampler.model_copy(update={"draws": 200, "tune": 200, "chains": 2}),
            "outputs": cfg.outputs.model_copy(update={"output_draws": 200}),
        }
    )


def roas_of(wh: Path, cfg: MMMConfig) -> tuple[dict[str, dict], dict]:
    with duckdb.connect(str(wh), read_only=True) as con:
        panel = load_panel(con, cfg)
    spec = build_mmm(panel, cfg)
    fit = fit_model(spec, cfg.sampler)
    diag = diagnostics(fit, panel, fitted(fit, panel)["mean"])
    tab, _ = channel_roas(panel, extract_draws(spec, fit.idata, cfg.outputs.output_draws))
    nat = tab[tab["geo_id"] == "all"].set_index("channel")
    return nat[["roas", "roas_lower", "roas_upper", "prob_profitable"]].to_dict(orient="index"), diag


def errors(est: dict[str, dict], truth: dict) -> dict[str, float]:
    return {c: est[c]["roas"] / truth["channels"][c]["roas"] - 1 for c in est}


def total_media_error(est: dict[str, dict], truth: dict) -> float:
    """Error of the total incremental revenue of all media (spend-weighted ROAS)."""
    ch = truth["channels"]
    num = sum(est[c]["roas"] * ch[c]["spend"] for c in est)
    return num / sum(ch[c]["incremental_revenue"] for c in est) - 1


@pytest.fixture(scope="module")
def right(world):
    wh, _ = world
    return roas_of(wh, quick(load_config()))


def test_the_model_recovers_the_true_roas(world, right):
    _, truth = world
    est, diag = right
    err = errors(est, truth)
    covered = [est[c]["roas_lower"] <= truth["channels"][c]["roas"] <= est[c]["roas_upper"] for c in est]
    print(json.dumps({"errors": err, "diag": {k: diag[k] for k in ("max_rhat", "divergences", "fit_seconds")}}))
    assert np.median(np.abs(list(err.values()))) <= 0.25
    assert sum(covered) >= len(covered) - 1
    assert abs(total_media_error(est, truth)) <= 0.15
    # the channel that returns 30 cents per dollar is found the least profitable, and more likely
    # unprofitable than not: four geos put its posterior P(ROAS > 1) near 0.2 (0.205 in one run,
    # under 0.2 in the next: the fit is not bit-for-bit repeatable), so the bar sits above that
    assert min(est, key=lambda c: est[c]["roas"]) == "display"
    assert est["display"]["prob_profitable"] < 0.3
    assert diag["divergences"] <= 5 and diag["max_rhat"] < 1.1


def test_without_carry_over_the_model_is_wrong(world, right):
    wh, truth = world
    cfg = quick(load_config())
    cfg = cfg.model_copy(update={"adstock": cfg.adstock.model_copy(update={"l_max_days": 1})})
    est, _ = roas_of(wh, cfg)
    good = np.median(np.abs(list(errors(right[0], truth).values())))
    bad = np.median(np.abs(list(errors(est, truth).values())))
    # brand media (TV peaks a week after airing) loses the weeks after the spend
    assert bad > good + 0.05 or errors(est, truth)["tv"] < -0.25


def test_with_the_weather_left_out_the_media_take_its_credit(world, right):
    wh, truth = world
    cfg = quick(load_config())
    assert {c.name for c in cfg.controls} >= WEATHER_CONTROLS  # all 11 are in the shipped file
    cfg = cfg.model_copy(update={"controls": [c for c in cfg.controls if c.name not in WEATHER_CONTROLS]})
    est, _ = roas_of(wh, cfg)
    print(
        json.dumps(
            {
                "total_media_error": {
                    "without": total_media_error(est, truth),
                    "with": total_media_error(right[0], truth),
                }
            }
        )
    )
    # warm and wet forecasts raise both the bids and the demand: without the weather, the media that
    # bid on it are credited with the weather's sales (+21 % in total against +3 %, in two runs)
    assert total_media_error(est, truth) > total_media_error(right[0], truth) + 0.1


def test_a_post_treatment_control_absorbs_the_media(world, right):
    wh, truth = world
    cfg = quick(load_config())
    # the schema refuses it; forced in here to show why
    sessions = Control.model_construct(name="sessions", expr="sessions", agg="sum", doc="")
    cfg = cfg.model_copy(update={"controls": [*cfg.controls, sessions]})
    est, _ = roas_of(wh, cfg)
    assert total_media_error(est, truth) < total_media_error(right[0], truth) - 0.1
