"""The backtest as a Dagster asset (wiring only: mmm_platform/validate does the work).

Partitioned by refit week like the models, and run by the `mmm` job after the fit: the partition of
week W scores folds whose newest horizon ends with W's last complete week, their origins the refit
weeks `horizon_days`, `horizon_days + step_days`, ... before it. It reads the stored refits of
those weeks, so a backfill of `mmm/fit` over them feeds it, and never fits the MMM itself: a fold
whose refit is missing gets a row naming the week to backfill. The dependency on `mmm/fit` maps
each partition to those earlier weeks (from the shipped `assets/models/backtest.yaml`), so a
backfill of both assets runs each backtest after the refits it reads.

`validation/model_comparison` (the same partitions, after the week's refit) sets the peers' ROAS,
fitted on the `peers.window_days` days up to the refit's data end, beside the refit's own and the
demo world's truth.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from mmm_platform.config import get_settings
from mmm_platform.defs.figures import figure_metadata, table_metadata
from mmm_platform.defs.mmm import VALIDATION_GROUP, fit_folder, refit_date, refit_partitions
from mmm_platform.defs.resources import DUCKDB_POOL, WarehouseResource
from mmm_platform.mmm.config import MMMConfig, load_config
from mmm_platform.mmm.data import DataError, load_panel
from mmm_platform.mmm.store import StoredFit, load_fit, with_run
from mmm_platform.report.sources import read_truth, truth_roas
from mmm_platform.validate.backtest import (
    BacktestConfig,
    Fold,
    backtest_end,
    load_backtest_config,
    load_folds,
    make_folds,
    run_backtest,
)
from mmm_platform.validate.peers import PeerError, comparison, load_peer_data, run_peer
from mmm_platform.warehouse import write_table

TABLE = "validation.backtest"
COMPARISON = "validation.model_comparison"


def refit_weeks(cfg: BacktestConfig) -> dg.TimeWindowPartitionMapping:
    """The refit weeks a partition's folds start at: from `horizon_days` back to the oldest origin,
    one week further when the partition's own week is not complete yet. The first weeks map to
    weeks before the first refit, which is no error (a beta parameter: its notice is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=-(cfg.span_days // 7) - 1,
            end_offset=-(cfg.horizon_days // 7),
            allow_nonexistent_upstream_partitions=True,
        )


class BacktestRunConfig(dg.Config):
    config_path: str = ""  # empty: assets/models/backtest.yaml
    #: the MMM configuration the refits were fitted with; empty: assets/models/mmm.yaml
    mmm_config_path: str = ""


def stored_fit(week: str) -> StoredFit | None:
    folder = fit_folder(week)
    return load_fit(folder) if (folder / "fit.json").is_file() else None


def stored_refit(fold: Fold) -> StoredFit | None:
    return stored_fit(fold.refit_week)


def configs(config: BacktestRunConfig) -> tuple[BacktestConfig, MMMConfig]:
    return load_backtest_config(config.config_path or None), load_config(config.mmm_config_path or None)


@contextmanager
def data_errors_fail() -> Iterator[None]:
    """Data the week cannot be scored on (no complete week, a missing mart) fails the step in the
    core's own words, without a traceback."""
    try:
        yield
    except DataError as err:
        raise dg.Failure(str(err)) from None


@dg.asset(
    key=["validation", "backtest"],
    deps=[dg.AssetDep(dg.AssetKey(["mmm", "fit"]), partition_mapping=refit_weeks(load_backtest_config()))],
    group_name=VALIDATION_GROUP,
    kinds={"numpy", "duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="validation.backtest: rolling-origin folds (assets/models/backtest.yaml) on which the placeholder "
    "log-log regression and the stored MMM refit of each origin week forecast the held-out weeks; MAPE, RMSE "
    "and interval coverage of the total revenue per period, per model and fold.",
)
def validation_backtest(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: BacktestRunConfig
) -> dg.MaterializeResult:
    from mmm_platform.validate.plots import backtest_figure  # Matplotlib: on run only

    cfg, model_cfg = configs(config)
    with duckdb.get_connection() as con, data_errors_fail():
        end = backtest_end(con, refit_date(context))
        folds = make_folds(end, cfg)
        loaded = load_folds(con, model_cfg, folds, stored_refit, cfg.peers if cfg.peer_models else None)
    scores, predictions = run_backtest(loaded, cfg)
    rows = with_run(scores, context.run_id, end)
    with duckdb.get_connection() as con:
        for model, part in rows.groupby("model", sort=False):  # peers' rows in the table stay
            write_table(con, TABLE, part, key={"as_of": end, "model": model})
    ok = scores[scores["status"] == "ok"]
    summary = ok.groupby("model", sort=False)[["mape", "rmse", "interval_coverage", "mape_train"]].mean()
    summary.insert(0, "folds_ok", ok.groupby("model", sort=False).size())
    shown = ["model", "fold", "train_end", "mape", "rmse", "interval_coverage", "mape_train", "status"]
    return dg.MaterializeResult(
        metadata={
            "as_of": end.isoformat(),
            "dagster/row_count": len(rows),
            "refit_weeks": dg.MetadataValue.json([f.refit_week for f in folds]),
            "summary": table_metadata(summary.reset_index()),
            "folds": table_metadata(scores[shown]),
            **figure_metadata(backtest_figure(predictions, scores), f"validation/{end.isoformat()}", "backtest_plot"),
        }
    )


@dg.asset(
    key=["validation", "model_comparison"],
    deps=[dg.AssetKey(["mmm", "fit"])],
    group_name=VALIDATION_GROUP,
    kinds={"duckdb"},
    partitions_def=refit_partitions,
    pool=DUCKDB_POOL,
    description="validation.model_comparison: ROAS per channel of the week's MMM refit beside the peers "
    "(LightweightMMM, Robyn, each in its own environment) fitted on the last peers.window_days days of the same "
    "data, and the demo world's true ROAS; a peer that cannot run gets a row saying why.",
)
def validation_model_comparison(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, config: BacktestRunConfig
) -> dg.MaterializeResult:
    cfg, model_cfg = configs(config)
    with duckdb.get_connection() as con, data_errors_fail():
        origin = backtest_end(con, refit_date(context))
        panel = load_panel(con, model_cfg, origin)
        data = load_peer_data(con, panel, model_cfg.target, origin, 0, cfg.peers)
    week = context.partition_key
    refit = stored_fit(week)
    mmm = f"no refit for week {week}: materialize mmm/fit for it" if refit is None else refit
    peers = {}
    for i, name in enumerate(cfg.peer_models):
        try:
            peers[name] = run_peer(name, data, cfg.peers, draws=cfg.draws, seed=cfg.seed + i)
        except PeerError as err:
            peers[name] = str(err)
    truth = truth_roas(read_truth(get_settings().landing_dir / "truth.json"))
    rows = with_run(comparison(origin, mmm, peers, data, truth, cfg.interval_prob), context.run_id, origin)
    with duckdb.get_connection() as con:
        write_table(con, COMPARISON, rows, key={"as_of": origin})
    shown = ["model", "window_days", "channel", "roas", "roas_lower", "roas_upper", "true_roas", "status"]
    return dg.MaterializeResult(
        metadata={
            "as_of": origin.isoformat(),
            "dagster/row_count": len(rows),
            "comparison": table_metadata(rows[shown]),
            # what each runner reports of its own fit (R-hat, divergences; NRMSE, DECOMP.RSSD ...)
            "peers": dg.MetadataValue.json(
                {n: r if isinstance(r, str) else {"seconds": round(r.seconds, 1), **r.info} for n, r in peers.items()}
            ),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[validation_backtest, validation_model_comparison])
