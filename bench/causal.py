"""Time the causal suite per estimator and in total, and print its headline numbers against the truth.

.venv/bin/python bench/causal.py                 # the default demo world, simulated in process
.venv/bin/python bench/causal.py --seed 1        # another world (seed 1 has an executed plan)
.venv/bin/python bench/causal.py --warehouse data/warehouse.duckdb   # a warehouse `mmm-platform demo` built
"""

import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

import argparse
import datetime as dt
import json
import time

import duckdb
import numpy as np
import pandas as pd

from mmm_platform.causal import data, suite
from mmm_platform.causal.config import load_config


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--geos", type=int, default=24)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--warehouse", help="read a built warehouse instead of simulating")
    p.add_argument("--truth", help="truth.json of the warehouse's landing zone")
    args = p.parse_args()
    config = load_config()
    truth = None
    t0 = time.perf_counter()
    if args.warehouse:
        with duckdb.connect(args.warehouse, read_only=True) as con:
            inputs = data.load_inputs(con, config)
        truth = json.loads(Path(args.truth).read_text()) if args.truth else None
    else:
        from mmm_platform.simulate import WorldConfig, simulate

        world = simulate(WorldConfig(seed=args.seed, n_geos=args.geos, n_days=args.days, start=dt.date(2024, 1, 1)))
        truth = world.truth
        inputs = data.inputs_from_tables(world.tables, config)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = suite.run(inputs, config)
    tables = suite.all_tables(result, "bench", inputs.plans)
    total = time.perf_counter() - t0
    print(f"inputs {load_s:.1f}s; suite {total:.1f}s (limit 60 s)")
    for name, seconds in result.timings.items():
        print(f"  {name:22s} {seconds:6.2f}s")
    print("\nweather effects on revenue ($ per geo-day per unit)")
    for (outcome, method), f in result.weather.fits.items():
        if outcome != "revenue":
            continue
        for v in result.weather.variables:
            lo, hi = f.ci(v)
            fs = f.first_stage.get(v)
            t = truth["weather"][v] if truth else float("nan")
            print(
                f"  {method:15s} {v:12s} {f.params[v]:8.1f} (SE {f.std_errors[v]:5.1f}, CI {lo:7.1f} .. {hi:7.1f})"
                f"  F {fs.f_stat if fs else float('nan'):7.1f}  truth {t:7.1f}"
            )
    for c in result.weather.lead_checks:
        print(
            f"  lead {c.lead} {c.variable:12s} with lead 1: estimate {c.estimate:7.1f}, Hansen J p {c.j_pvalue:.4f}"
            f" {'FLAGGED' if c.flagged else ''}"
        )
    overid = result.weather.fits[("revenue", "iv_2sls_overid")]
    print(
        f"  leads 0+1 Hansen J p {overid.tests['hansen_j'].pvalue:.3f}; Wu-Hausman p "
        f"{result.weather.fits[('revenue', 'iv_2sls')].tests['wu_hausman'].pvalue:.2g}"
    )
    lift = tables["lift"].set_index("study_id")
    print("\nshocks (revenue per affected geo-day)")
    for kind in ("storm", "heatwave", "severe_alert"):
        if truth:
            shocks = [s for s in truth["shocks"] if s["type"] == kind]
            w = np.array(
                [len(s["geo_ids"]) * ((pd.Timestamp(s["end"]) - pd.Timestamp(s["start"])).days + 1) for s in shocks]
            )
            t = float((w * [s["att_per_geo_day"] for s in shocks]).sum() / w.sum()) if len(shocks) else float("nan")
        else:
            t = float("nan")
        for suffix in ("all", "twfe", "placebo"):
            key = f"{kind}_{suffix}"
            if key in lift.index:
                r = lift.loc[key]
                print(
                    f"  {key:20s} {r.att_per_geo_day:9.0f} (CI {r.ci_lower:9.0f} .. {r.ci_upper:9.0f}) pretrend p "
                    f"{r.pretrend_p_value if pd.notna(r.pretrend_p_value) else float('nan'):.3f}  n_events {r.n_events}"
                    f"  truth (planted events) {t:9.0f}"
                )
    if truth:
        storms = [s for s in truth["shocks"] if s["type"] == "storm"]
        per = result.shocks.events.set_index("event_id")
        ids = result.events.loc[result.events["type"] == "storm", "event_id"]
        for e, s in zip(ids, storms, strict=False):
            r = per.loc[e]
            print(
                f"    {e}: {r.window:8.0f} (CI {r.ci_lower:8.0f} .. {r.ci_upper:8.0f}) eve {r.anticipation:6.0f}"
                f"  truth {s['att_per_geo_day']:8.0f} eve {s['anticipation_revenue'] / len(s['geo_ids']):6.0f}"
            )
    print("\nexperiments (lift over the window, $)")
    t_exp = {e["experiment_id"]: e for e in truth["experiments"]} if truth else {}
    for r in result.readouts:
        lo, hi = r.ci
        t = t_exp.get(r.experiment_id, {}).get("true_lift", float("nan"))
        print(
            f"  {r.experiment_id:26s} {r.lift:12,.0f} (CI {lo:12,.0f} .. {hi:12,.0f}) SE/lift {r.lift_se / abs(r.lift):.2f}"
            f"  truth {t:12,.0f}  pre-period placebo p {r.placebo_p_value:.2f}"
        )
    print("\nplans")
    for s in result.plan_studies:
        extra = ""
        if truth and s.method == "plan_iv":
            extra = "  (truth: mROAS " + ", ".join(f"{c} {v['mroas']:.2f}" for c, v in truth["channels"].items()) + ")"
        print(
            f"  {s.plan_id} {s.status:9s} {s.method:13s} {s.estimate:6.2f} (CI {s.ci_lower:6.2f} .. {s.ci_upper:6.2f})"
            f" F {s.first_stage_f:6.1f}{extra}"
        )
    print(f"  balance: {result.plan_balance.verdict}")
    print("\nweather against normal")
    for c in result.contributions:
        print(f"  last {c.period_days:3d} days: {c.estimate:12,.0f} (CI {c.ci_lower:12,.0f} .. {c.ci_upper:12,.0f})")


if __name__ == "__main__":
    main()
