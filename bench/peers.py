"""Print the peer evaluation a warehouse holds as the markdown tables of docs/validation.md: the
newest backtest per model (folds run, mean MAPE, RMSE, interval coverage, in-sample MAPE) and the
newest model comparison per channel (ROAS with its interval per model, the truth, fit seconds).

    .venv/bin/python bench/peers.py                      # MMM_WAREHOUSE (default data/warehouse.duckdb)
    .venv/bin/python bench/peers.py --warehouse /tmp/w/warehouse.duckdb

Run `make peers` and then `mmm-platform demo --geos 6 --days 400` (or any run of the `mmm` job) first.
"""

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse

import duckdb
import pandas as pd

from mmm_platform.config import get_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", default=str(get_settings().warehouse))
    args = ap.parse_args()
    with duckdb.connect(args.warehouse, read_only=True) as con:
        bt = con.execute(
            "SELECT * FROM validation.backtest WHERE as_of = (SELECT max(as_of) FROM validation.backtest)"
        ).df()
        cmp = con.execute(
            "SELECT * FROM validation.model_comparison "
            "WHERE as_of = (SELECT max(as_of) FROM validation.model_comparison)"
        ).df()
    ok = bt[bt["status"] == "ok"]
    summary = ok.groupby("model", sort=False).agg(
        folds_ok=("fold", "size"),
        mape=("mape", "mean"),
        rmse=("rmse", "mean"),
        interval_coverage=("interval_coverage", "mean"),
        mape_train=("mape_train", "mean"),
    )
    print(f"backtest as_of {bt['as_of'].max()}, folds ending {sorted(bt['test_end'].astype(str).unique())}")
    print(summary.reset_index().to_markdown(index=False, floatfmt=".3f"))
    for r in bt[bt["status"] != "ok"].drop_duplicates(["model", "status"]).itertuples():
        print(f"- {r.model}: {r.status}")
    print()
    good = cmp[cmp["status"] == "ok"]
    cell = good.assign(v=good.apply(lambda r: f"{r.roas:.2f} ({r.roas_lower:.2f}-{r.roas_upper:.2f})", axis=1))
    wide = cell.pivot(index="channel", columns="model", values="v")
    wide["true_roas"] = good.groupby("channel")["true_roas"].first()
    print(f"model comparison as_of {cmp['as_of'].max()}, windows {cmp.groupby('model')['window_days'].max().to_dict()}")
    print(wide.reset_index().to_markdown(index=False))
    seconds = cmp.groupby("model")["seconds"].max().dropna()
    print("fit seconds: " + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()))
    for r in cmp[cmp["status"] != "ok"].itertuples():
        print(f"- {r.model} {r.channel if isinstance(r.channel, str) else ''}: {r.status}")
    err = good.assign(err=(good["roas"] - good["true_roas"]).abs() / good["true_roas"])
    covered = good.assign(inside=(good["roas_lower"] <= good["true_roas"]) & (good["true_roas"] <= good["roas_upper"]))
    print(
        pd.DataFrame(
            {
                "median_abs_error": err.groupby("model")["err"].median(),
                "truth_inside": covered.groupby("model")["inside"].sum().astype(int).astype(str)
                + "/"
                + covered.groupby("model").size().astype(str),
            }
        )
        .reset_index()
        .to_markdown(index=False, floatfmt=".3f")
    )


if __name__ == "__main__":
    main()
