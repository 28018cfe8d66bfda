"""The backtest of one refit week from the stored refits (what `validation/backtest` computes), beside
the MMM forecast's former rule for the national date effects: their level of the last four weeks
plus the yearly cycle, without the controls' national part and without the national calendar.

    .venv/bin/python bench/backtest.py [--week 2026-11-30]     # MMM_WAREHOUSE, its mmm_fits/

It refits nothing: backfill `mmm/fit` over the origin weeks first (docs/mmm.md#backtest). Prints
MAPE, RMSE and interval coverage per model and fold, and their means.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import replace

import duckdb

from mmm_platform.config import get_settings
from mmm_platform.defs.validation import stored_refit
from mmm_platform.mmm.config import load_config
from mmm_platform.mmm.data import national_mean
from mmm_platform.validate.backtest import (
    Loaded,
    backtest_end,
    load_backtest_config,
    load_folds,
    make_folds,
    run_backtest,
)


def former_rule(item: Loaded) -> Loaded:
    """The same refit, its panel without the columns the forecast now carries the date effects with."""
    if item.data is None or item.data.refit is None:
        return item
    panel = item.data.refit.panel
    frame = panel.frame.drop(columns=[national_mean(c) for c in panel.controls], errors="ignore")
    refit = replace(item.data.refit, panel=replace(panel, frame=frame, national=[]))
    return replace(item, data=replace(item.data, refit=refit))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--week", default=None, help="the refit week (Monday) whose backtest to run; default: the newest")
    args = ap.parse_args()
    cfg = load_backtest_config().model_copy(update={"models": ["placeholder", "mmm"]})
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        until = dt.date.fromisoformat(args.week) + dt.timedelta(days=6) if args.week else dt.date.today()
        end = backtest_end(con, until)
        folds = make_folds(end, cfg)
        loaded = load_folds(con, load_config(), folds, stored_refit)
    shown = ["model", "fold", "train_end", "mape", "rmse", "interval_coverage", "status"]
    for label, items in (("shipped rule", loaded), ("former rule", [former_rule(i) for i in loaded])):
        scores, _ = run_backtest(items, cfg)
        scores.loc[scores["model"] == "mmm", "model"] = f"mmm ({label})"
        print(f"\n## {label}: folds ending {end} (refit weeks {', '.join(f.refit_week for f in folds)})")
        print(scores[shown].to_markdown(index=False, floatfmt=".3f"))
        ok = scores[scores["status"] == "ok"]
        print(ok.groupby("model", sort=False)[["mape", "rmse", "interval_coverage"]].mean().to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
