"""The causal suite as Dagster assets (wiring only; the estimators are mmm_platform/causal/).

One unpartitioned multi-asset in group `causal` runs the whole suite once over the feature marts and
writes every causal.* table; each table is its own asset with its description, a preview, the
plain-language statements and (for the headline tables) a plot. Asset checks turn the suite's plain
check results into AssetCheckResults in one place (`defs/checks.py`).
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from mmm_platform.causal.catalog import CHECK_SPECS, IDENTIFYING_ASSUMPTION, PER_EVENT_STUDY
from mmm_platform.defs.checks import check_result
from mmm_platform.defs.figures import figure_metadata, table_metadata
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource

GROUP = "causal"

DEPS = [
    dg.AssetKey(["features", "geo_day"]),
    dg.AssetKey(["features", "weather_daily"]),
    dg.AssetKey(["features", "weather_forecast_error"]),
    dg.AssetKey(["features", "weather_climatology"]),
    dg.AssetKey(["features", "geo_cluster"]),
    dg.AssetKey(["features", "geo_neighbors"]),
    dg.AssetKey(["features", "media_channel_day"]),
    dg.AssetKey(["raw", "weather_forecast"]),
    dg.AssetKey(["raw", "geo"]),
    dg.AssetKey(["raw", "experiments"]),
    dg.AssetKey(["raw", "allocator_plans"]),
    dg.AssetKey(["raw", "media_spend"]),
]

DESCRIPTIONS = {
    "weather_effects": (
        "Effect of observed weather (temperature, precipitation) on revenue and units per geo-day: naive OLS "
        "beside 2SLS instrumented by the lead-1 forecast error (and leads 0+1, over-identified), geo and date "
        "effects absorbed (within transformation, dof corrected), SE clustered by geo; first-stage F, "
        "Wu-Hausman, Hansen J; and by climate cluster. Identifying assumption: " + IDENTIFYING_ASSUMPTION
    ),
    "weather_priors": (
        "The IV weather effects as Normal priors (mean, sd; $ revenue per geo-day per unit) for the MMM's "
        "weather controls (docs/causal.md, 'Interface for the MMM')."
    ),
    "weather_contribution": (
        "Revenue the weather drove against normal weather (each geo's climatology) over the last N days: "
        "IV effects x anomalies, CI from the IV covariance."
    ),
    "weather_effects_by_geo": (
        "Per-geo lead-1 IV effects (HAC SE) and their spatially smoothed values: each geo shrunk towards its "
        "neighbours by precision against the between-geo variance (features.geo_neighbors)."
    ),
    "lift": (
        "One row per study: weather shocks defined from the data (storms, heatwaves, severe alerts) read out "
        "by a stacked DiD with clean controls (per event and pooled; placebo-in-time SEs; the storm eve is "
        "anticipation, never baseline), its placebo (dates moved earlier) and the naive TWFE figure; every "
        "experiment by a paired log DiD; allocator plans as quasi-experiments; weather against normal. "
        "plan_id: the plan a study measures or informs. statement: the result in one sentence."
    ),
    "lift_tests": (
        "PyMC-Marketing add_lift_test_measurements rows per experiment (channel, x, delta_x, delta_y, sigma; "
        "per geo-day; pooled row geo='all' and per treated geo)."
    ),
    "event_study": "Event-study coefficients per shock type: days -7 to +9 from the start, reference days -14..-8.",
    "plan_evidence": "Every allocator plan with the studies it rests on (its own, and those finished before it).",
}


def _preview(frame: pd.DataFrame, columns: list[str], rows: int = 40) -> dg.MetadataValue:
    shown = [c for c in columns if c in frame.columns]
    return table_metadata(frame[shown].head(rows), floatfmt=",.2f")


CHECKS = [
    dg.AssetCheckSpec(c.name, asset=dg.AssetKey(["causal", c.table]), description=c.description) for c in CHECK_SPECS
]


@dg.multi_asset(
    name="causal_suite",
    specs=[
        dg.AssetSpec(key=["causal", name], deps=DEPS, group_name=GROUP, kinds={"python", "duckdb"}, description=text)
        for name, text in DESCRIPTIONS.items()
    ],
    check_specs=CHECKS,
    pool=DUCKDB_POOL,
)
def causal_suite(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> Iterator:
    # the estimators (linearmodels, scipy, statsmodels: seconds of imports) load when the suite runs,
    # not with the definitions (every CLI call, run worker and code server loads those)
    from mmm_platform.causal import suite
    from mmm_platform.causal.config import load_config
    from mmm_platform.causal.data import load_inputs
    from mmm_platform.causal.evidence import figure_event_study, figure_iv

    config = load_config()
    with duckdb.get_connection() as con:
        inputs = load_inputs(con, config)
        result = suite.run(inputs, config)
        tables = suite.all_tables(result, context.run_id, inputs.plans)
        suite.write_tables(con, tables, context.run_id)
    meta: dict[str, dict] = {name: {"dagster/row_count": len(frame)} for name, frame in tables.items()}
    for name in tables:
        meta[name]["as_of"] = str(result.as_of)
    we = tables["weather_effects"]
    meta["weather_effects"]["statements"] = dg.MetadataValue.md(
        "\n".join(f"- {s}" for s in we.loc[we["outcome"] == "revenue", "statement"].head(8))
    )
    meta["weather_effects"]["preview"] = _preview(
        we,
        [
            "method",
            "weather_variable",
            "outcome",
            "effect_per_unit",
            "ci_lower",
            "ci_upper",
            "first_stage_f",
            "geo_cluster",
        ],
    )
    meta["weather_effects"] |= figure_metadata(
        figure_iv(result.weather.fits, result.weather.variables), "causal/weather_effects", "plot"
    )
    meta["weather_effects"]["identifying_assumption"] = dg.MetadataValue.text(IDENTIFYING_ASSUMPTION)
    lift = tables["lift"]
    headline = lift[~lift["study_id"].str.match(PER_EVENT_STUDY)]
    meta["lift"]["statements"] = dg.MetadataValue.md(
        "\n".join(f"- **{r.study_id}**: {r.statement}" for r in headline.itertuples())
    )
    meta["lift"]["preview"] = _preview(
        lift,
        [
            "study_id",
            "method",
            "treatment",
            "att_per_geo_day",
            "ci_lower",
            "ci_upper",
            "p_value",
            "pretrend_p_value",
            "plan_id",
        ],
    )
    if "storm" in result.event_studies:
        meta["lift"] |= figure_metadata(
            figure_event_study(result.event_studies["storm"].coefficients, "Storms: revenue per geo-day"),
            "causal/lift",
            "storm_event_study",
        )
    meta["weather_contribution"]["statements"] = dg.MetadataValue.md(
        "\n".join(f"- {s}" for s in tables["weather_contribution"]["statement"])
    )
    meta["lift_tests"]["preview"] = _preview(
        tables["lift_tests"], ["experiment_id", "grain", "geo", "channel", "x", "delta_x", "delta_y", "sigma"], 12
    )
    meta["weather_priors"]["preview"] = _preview(tables["weather_priors"], ["variable", "mean", "sd", "units"])
    for name in tables:
        yield dg.MaterializeResult(asset_key=dg.AssetKey(["causal", name]), metadata=meta[name])
    context.log.info("causal suite timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    for table, outcome in suite.checks(result, tables):
        yield check_result(outcome, asset_key=dg.AssetKey(["causal", table]), check_name=outcome.name)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[causal_suite])
