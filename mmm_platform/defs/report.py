"""The HTML report as a Dagster asset (wiring only; mmm_platform/report/ builds the page).

Partitioned by refit week like the models, so the `mmm` job writes it after the refit it
describes: the page shows the newest refit on or before the week's Sunday and the newest causal
run. `<MMM_REPORT_DIR>/report.html` is always the newest refit's; a rerun of an older week (a
backfill) writes `refits/report_<as_of>.html` instead of replacing it.
"""

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.defs.mmm import REPORT_GROUP, refit_date, refit_partitions
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource
from mmm_platform.mmm.config import DEFAULT_CONFIG_PATH, load_config
from mmm_platform.report.sources import read_truth, refit_as_of

DEPS = [
    dg.AssetKey(["mmm", "diagnostics"]),
    dg.AssetKey(["mmm", "channel_roas"]),
    dg.AssetKey(["mmm", "response_curves"]),
    dg.AssetKey(["allocator", "recommendations"]),
    dg.AssetKey(["causal", "lift"]),
    dg.AssetKey(["causal", "weather_effects"]),
    dg.AssetKey(["validation", "backtest"]),
    dg.AssetKey(["validation", "model_comparison"]),
]


@dg.asset(
    key=["report", "html"],
    deps=DEPS,
    group_name=REPORT_GROUP,
    kinds={"html"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="One self-contained HTML page (no Dagster, works offline) at MMM_REPORT_DIR/report.html: the "
    "causal evidence, weather IV against OLS, ROAS with intervals, response curves, contributions, "
    "convergence, the budget plan, the backtest and the peer comparison; each missing table named with the asset "
    "that writes it.",
)
def report_html(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    from mmm_platform.report.build import build_report, write_report  # Matplotlib: on run only

    settings = get_settings()
    until = refit_date(context)
    with duckdb.get_connection() as con:
        report = build_report(
            con,
            until=until,
            truth=read_truth(settings.landing_dir / "truth.json"),
            checks=load_config(DEFAULT_CONFIG_PATH).checks,
            warehouse=str(settings.warehouse),
            run_id=context.run_id,
        )
        newest = refit_as_of(con)
    if report.as_of is None or newest is None or report.as_of >= newest:
        path = settings.report_dir / "report.html"
    else:
        path = settings.report_dir / "refits" / f"report_{report.as_of.isoformat()}.html"
    size = write_report(report.html, path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "as_of": report.as_of.isoformat() if report.as_of else "none",
            "sections_present": dg.MetadataValue.json(report.present),
            "sections_missing": dg.MetadataValue.json(report.missing),
            "size_bytes": size,
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[report_html])
