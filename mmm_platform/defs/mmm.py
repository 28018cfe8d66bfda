"""The marketing-mix model and the allocator as Dagster assets (wiring only: mmm_platform.mmm and
mmm_platform.allocate do the work). SciPy, Matplotlib and PyMC load inside the steps that use
them, not with the definitions (every CLI run, run worker and code server loads those).

Every asset here is partitioned by refit date (`refit_partitions`, weekly, Mondays): the partition
of week W refits on the data up to the end of W (or up to the newest day, for the current week).
A backfill over a range refits history; rows carry `run_id` and `as_of` and are replaced by `as_of`,
so refits live side by side. The `mmm` job runs the fit and everything downstream of it.

The fit step reads its inputs, closes the warehouse, samples (minutes), and only then writes: it is
not in the `duckdb_write` pool, so other runs are not held up by the sampler. The steps that write
tables are in the pool.
"""

import datetime as dt
import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from mmm_platform.config import get_settings
from mmm_platform.defs.checks import check_result
from mmm_platform.defs.figures import figure_metadata, table_metadata
from mmm_platform.defs.partitions import PARTITION_START
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource
from mmm_platform.mmm.calibration import read_calibration
from mmm_platform.mmm.config import DEFAULT_CONFIG_PATH, MMMConfig, load_config
from mmm_platform.mmm.convergence import convergence_check
from mmm_platform.mmm.data import load_panel
from mmm_platform.mmm.store import diagnostics_row, load_fit, save_fit, with_run
from mmm_platform.report.sources import read_truth, truth_roas
from mmm_platform.warehouse import write_table

MMM_GROUP = "mmm"
ALLOCATOR_GROUP = "allocator"
#: the HTML report of a refit (defs/report.py), written by the same job
REPORT_GROUP = "report"
#: the backtest over stored refits (defs/validation.py), written by the same job
VALIDATION_GROUP = "validation"
#: a refit needs this much history before its date
MIN_HISTORY_DAYS = 182
FEATURES = [dg.AssetKey(["features", "geo_day"]), dg.AssetKey(["features", "media_channel_day"])]


def _first_refit_week() -> dt.date:
    first = PARTITION_START + dt.timedelta(days=MIN_HISTORY_DAYS)
    return first + dt.timedelta(days=(7 - first.weekday()) % 7)  # the next Monday


#: one partition per week (Monday keys), the current week included
refit_partitions = dg.WeeklyPartitionsDefinition(start_date=_first_refit_week().isoformat(), day_offset=1, end_offset=1)


def refit_date(context: dg.AssetExecutionContext) -> dt.date:
    """The last day a refit may see: the partition week's Sunday (clipped to the data later)."""
    window = context.partition_time_window
    return (window.end - dt.timedelta(days=1)).date()


class MMMRunConfig(dg.Config):
    config_path: str = ""  # empty: assets/models/mmm.yaml
    #: overrides for quick runs (tests, a backfill that only needs point estimates)
    draws: int | None = None
    tune: int | None = None


def _config(cfg: MMMRunConfig) -> MMMConfig:
    m = load_config(Path(cfg.config_path) if cfg.config_path else DEFAULT_CONFIG_PATH)
    sampler = m.sampler.model_copy(
        update={k: v for k, v in {"draws": cfg.draws, "tune": cfg.tune}.items() if v is not None}
    )
    return m.model_copy(update={"sampler": sampler})


def fits_dir() -> Path:
    """Stored refits live beside the warehouse they describe: <warehouse folder>/mmm_fits/."""
    return get_settings().warehouse.parent / "mmm_fits"


def fit_folder(partition_key: str) -> Path:
    return fits_dir() / partition_key


def _figures(as_of: dt.date) -> str:
    """Figures of one refit sit in their own folder, so refits side by side keep theirs."""
    return f"mmm/{as_of.isoformat()}"


def _truth_roas() -> dict[str, float] | None:
    """The demo world's true ROAS, when the landing zone carries truth.json (for the plot only)."""
    return truth_roas(read_truth(get_settings().landing_dir / "truth.json"))


# --- the fit ------------------------------------------------------------------------------------


@dg.asset(
    key=["mmm", "fit"],
    deps=[*FEATURES, dg.AssetKey(["features", "geo_cluster"])],
    group_name=MMM_GROUP,
    kinds={"pymc", "python"},
    partitions_def=refit_partitions,
    check_specs=[dg.AssetCheckSpec("converged", asset=dg.AssetKey(["mmm", "fit"]), blocking=False)],
    description="Geo-level PyMC-Marketing MMM fitted on the data up to the refit date; stores the "
    "thinned posterior for the steps after it.",
)
def mmm_fit(context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: MMMRunConfig):
    cfg = _config(config)
    as_of = refit_date(context)
    with duckdb.get_connection() as con:  # read, then let go of the warehouse while sampling
        panel = load_panel(con, cfg, as_of)
        lift_p, weather = read_calibration(con, cfg, panel)
    from mmm_platform.mmm import plots
    from mmm_platform.mmm.fit import diagnostics, fit_model, fitted  # PyMC: on run only
    from mmm_platform.mmm.forecast import extract_baseline
    from mmm_platform.mmm.model import build_mmm
    from mmm_platform.mmm.results import extract_draws

    spec = build_mmm(panel, cfg, weather_priors=weather, lift_tests=lift_p)
    context.log.info(
        f"fitting {len(panel.geos)} geos x {len(panel.dates)} {panel.grain}s, {len(panel.channels)} channels, "
        f"{len(panel.controls)} controls up to {panel.as_of} with {cfg.sampler.name} "
        f"({cfg.sampler.chains} x {cfg.sampler.draws} draws)"
    )
    fit = fit_model(spec, cfg.sampler)
    fv = fitted(fit, panel, cfg.outputs.hdi_prob)
    diag = diagnostics(fit, panel, fv["mean"])
    draws = extract_draws(spec, fit.idata, cfg.outputs.output_draws)
    meta = {
        "run_id": context.run_id,
        "partition": context.partition_key,
        "config": cfg.model_dump(mode="json"),
        "lift_tests": 0 if lift_p is None else len(lift_p),
        "weather_priors": spec.weather_priors_used,
        "priors": spec.priors.to_dict(orient="records"),
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    baseline = extract_baseline(spec, fit.idata, cfg.outputs.output_draws)
    folder = save_fit(fit_folder(context.partition_key), panel, draws, fv, diag, meta, baseline)
    fig = plots.fit_figure(
        panel.dates, panel.series("y").sum(axis=1), fv["total_mean"], fv["total_lower"], fv["total_upper"]
    )
    yield dg.MaterializeResult(
        metadata={
            "as_of": panel.as_of.isoformat(),
            "grain": panel.grain,
            "geos": len(panel.geos),
            "periods": len(panel.dates),
            "channels": dg.MetadataValue.json(panel.channel_groups),
            "controls": dg.MetadataValue.json(panel.controls),
            "dropped": dg.MetadataValue.json(panel.dropped),
            "lift_tests_used": meta["lift_tests"],
            "weather_priors_used": dg.MetadataValue.json(spec.weather_priors_used),
            "sampler": fit.sampler,
            "fit_seconds": round(fit.fit_seconds, 1),
            "max_rhat": round(diag["max_rhat"], 4),
            "min_ess_bulk": round(diag["min_ess_bulk"], 1),
            "divergences": diag["divergences"],
            "r2_in_sample": round(diag["r2_in_sample"], 4),
            "mape_in_sample": round(diag["mape_in_sample"], 4),
            "stored_fit": dg.MetadataValue.path(str(folder)),
            **figure_metadata(fig, _figures(panel.as_of), "posterior_predictive_fit"),
        }
    )
    yield check_result(convergence_check(diag, cfg.checks), check_name="converged")


# --- tables from the stored fit -----------------------------------------------------------------


def _stored(context: dg.AssetExecutionContext):
    folder = fit_folder(context.partition_key)
    if not (folder / "fit.json").is_file():
        raise dg.Failure(f"no stored fit for refit week {context.partition_key} in {folder}: materialize mmm/fit first")
    return load_fit(folder)


@dg.asset(
    key=["mmm", "diagnostics"],
    deps=[dg.AssetKey(["mmm", "fit"])],
    group_name=MMM_GROUP,
    kinds={"duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="mmm.diagnostics: sampler, draws, chains, max R-hat, min bulk ESS, divergences, fit seconds, in-sample R2 and MAPE.",
)
def mmm_diagnostics(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    st = _stored(context)
    run_id = context.run_id
    row = with_run(diagnostics_row(st.diagnostics), run_id, st.panel.as_of, fit_run_id=st.meta["run_id"])
    with duckdb.get_connection() as con:
        write_table(con, "mmm.diagnostics", row, key={"as_of": st.panel.as_of})
    return dg.MaterializeResult(
        metadata={"as_of": st.panel.as_of.isoformat(), "diagnostics": table_metadata(row.T.reset_index())}
    )


@dg.asset(
    key=["mmm", "channel_roas"],
    deps=[dg.AssetKey(["mmm", "fit"])],
    group_name=MMM_GROUP,
    kinds={"duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="mmm.channel_roas (per channel and geo, and 'all'): incremental revenue with the channel "
    "switched off over the window, ROAS with its 90% HDI, mROAS, the margin view; and mmm.contributions.",
)
def mmm_channel_roas(context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: MMMRunConfig):
    from mmm_platform.mmm import plots
    from mmm_platform.mmm.results import channel_roas, contributions_over_time

    cfg = _config(config)
    st = _stored(context)
    t0 = time.perf_counter()
    roas, contrib = channel_roas(st.panel, st.draws, hdi_prob=cfg.outputs.hdi_prob)
    over_time = contributions_over_time(st.panel, contrib, fitted_mean=st.fitted.get("mean"))
    run_id, as_of = context.run_id, st.panel.as_of
    roas_rows = with_run(roas, run_id, as_of, fit_run_id=st.meta["run_id"])
    ot_rows = with_run(over_time, run_id, as_of)
    with duckdb.get_connection() as con:
        write_table(con, "mmm.channel_roas", roas_rows, key={"as_of": as_of})
        write_table(con, "mmm.contributions", ot_rows, key={"as_of": as_of})
    nat = roas[roas["geo_id"] == "all"][
        [
            "channel",
            "channel_group",
            "spend",
            "incremental_revenue",
            "roas",
            "roas_lower",
            "roas_upper",
            "mroas",
            "incremental_margin",
        ]
    ]
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "dagster/row_count": len(roas_rows),
            "roas": table_metadata(nat),
            "seconds": round(time.perf_counter() - t0, 1),
            **figure_metadata(plots.roas_figure(roas, _truth_roas()), _figures(as_of), "roas_plot"),
            **figure_metadata(
                plots.contributions_figure(over_time, st.panel.channels), _figures(as_of), "contribution_decomposition"
            ),
            **figure_metadata(
                plots.media_contributions_figure(over_time, st.panel.channels), _figures(as_of), "media_contributions"
            ),
        }
    )


@dg.asset(
    key=["mmm", "response_curves"],
    deps=[dg.AssetKey(["mmm", "fit"])],
    group_name=MMM_GROUP,
    kinds={"duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="mmm.response_curves: expected revenue per period against spend per period (0 to 2.5x the "
    "current average), 90% HDI, marginal ROAS; per channel and geo, and 'all'.",
)
def mmm_response_curves(context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: MMMRunConfig):
    from mmm_platform.mmm import plots
    from mmm_platform.mmm.results import response_curves

    cfg = _config(config)
    st = _stored(context)
    curves = response_curves(
        st.panel,
        st.draws,
        max_multiple=cfg.outputs.curve_max_multiple,
        points=cfg.outputs.curve_points,
        hdi_prob=cfg.outputs.hdi_prob,
    )
    run_id, as_of = context.run_id, st.panel.as_of
    rows = with_run(curves, run_id, as_of, fit_run_id=st.meta["run_id"])
    with duckdb.get_connection() as con:
        write_table(con, "mmm.response_curves", rows, key={"as_of": as_of})
    cur = curves[(curves["geo_id"] == "all") & np.isclose(curves["spend_multiple"], 1.0)]
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "dagster/row_count": len(rows),
            "at_current_spend": table_metadata(
                cur[["channel", "current_spend", "expected_revenue", "revenue_lower", "revenue_upper", "mroas"]]
            ),
            **figure_metadata(plots.response_curves_figure(curves), _figures(as_of), "response_curves"),
        }
    )


# --- the allocator ------------------------------------------------------------------------------


@dg.asset(
    key=["allocator", "recommendations"],
    deps=[dg.AssetKey(["mmm", "response_curves"])],
    group_name=ALLOCATOR_GROUP,
    kinds={"scipy", "duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="allocator.recommendations: spend by channel and geo for the budget, maximising expected "
    "revenue or margin over the refit's response curves, within the configured constraints.",
)
def allocator_recommendations(context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: MMMRunConfig):
    from mmm_platform.allocate.optimize import AllocationError, Constraints, allocate, new_plan_id

    cfg = _config(config)
    st = _stored(context)
    as_of = st.panel.as_of
    with duckdb.get_connection() as con:
        curves = con.execute("SELECT * FROM mmm.response_curves WHERE as_of = ?", [as_of]).df()
    if curves.empty:
        raise dg.Failure(f"mmm.response_curves has no rows for as_of {as_of}: materialize mmm/response_curves first")
    current_total = curves[(curves["geo_id"] != "all") & np.isclose(curves["spend_multiple"], 1.0)][
        "current_spend"
    ].sum()
    a = cfg.allocator
    cons = Constraints(
        total_budget=a.budget_multiple * current_total,
        channel_bounds_multiple={k: tuple(v) for k, v in a.channel_bounds_multiple.items()},
        max_change=a.max_change,
        objective=a.objective,
    )
    try:
        plan = allocate(curves, cons)
    except AllocationError as err:
        raise dg.Failure(f"allocator: {err}") from None
    plan_id = new_plan_id()
    rows = plan.copy()
    rows.insert(0, "created_at", pd.Timestamp.now(tz="UTC").tz_localize(None))
    rows.insert(0, "plan_id", plan_id)
    rows["objective"] = a.objective
    rows["total_budget"] = cons.total_budget
    rows["max_change"] = a.max_change
    rows["channel_bounds"] = json.dumps(cons.as_dict()["channel_bounds_multiple"])
    rows["constraints"] = json.dumps(cons.as_dict())
    rows["period_days"] = int(curves["period_days"].iloc[0])
    rows = with_run(rows, context.run_id, as_of)
    rows = rows[["plan_id", "created_at", *[c for c in rows.columns if c not in ("plan_id", "created_at")]]]
    with duckdb.get_connection() as con:
        write_table(con, "allocator.recommendations", rows, key={"as_of": as_of})
    by_channel = plan.groupby("channel")[["current_spend", "recommended_spend", "expected_incremental_revenue"]].sum()
    return dg.MaterializeResult(
        metadata={
            "plan_id": plan_id,
            "as_of": as_of.isoformat(),
            "objective": a.objective,
            "budget_per_period": round(float(cons.total_budget), 2),
            "expected_lift_per_period": round(float(plan["expected_incremental_revenue"].sum()), 2),
            "expected_margin_lift_per_period": round(float(plan["expected_incremental_margin"].sum()), 2),
            "by_channel": table_metadata(by_channel.reset_index(), floatfmt=",.0f"),
            "optimizer": dg.MetadataValue.json(plan.attrs.get("optimizer", {})),
        }
    )


mmm_job = dg.define_asset_job(
    "mmm",
    selection=dg.AssetSelection.groups(MMM_GROUP, ALLOCATOR_GROUP, REPORT_GROUP, VALIDATION_GROUP),
    description="Refit the MMM for a refit week and write ROAS, response curves, diagnostics, the budget plan, "
    "the HTML report and the backtest over the stored refits.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[mmm_fit, mmm_diagnostics, mmm_channel_roas, mmm_response_curves, allocator_recommendations],
        jobs=[mmm_job],
    )
