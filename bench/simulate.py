"""The demo world's figures in docs/simulator.md: size and speed, the media table and the honesty table.

    .venv/bin/python bench/simulate.py [--seed 7] [--seeds 8] [--coverage 0] [--no-speed]

- speed: `simulate` and `write_landing` (parquet) for 6 x 120, 24 x 730 and 200 x 730 geo-days, each in a
  fresh child process so peak RSS is its own;
- the default world (24 geos x 730 days from 2024-01-01, `--seed`): row counts, channels, experiments,
  and what naive and right methods get (mmm_platform.simulate.audit);
- `--seeds N`: the headline figures on seeds 1..N;
- `--coverage N`: the forecast-error IV's coverage over N weather redraws of the default world (the
  rest of the world fixed), against the SE clustered by geo.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the simulator is imported lazily, so the speed children start clean
    from mmm_platform.simulate.outcomes import DemandModel, Outcome
    from mmm_platform.simulate.world import World

FIRST_DAY = dt.date(2024, 1, 1)


def child_speed(geos: int, days: int) -> dict:
    from mmm_platform.simulate import WorldConfig, simulate, write_landing

    t0 = time.perf_counter()
    world = simulate(WorldConfig(n_geos=geos, n_days=days, start=FIRST_DAY))
    simulated = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_landing(world, Path(tmp), "parquet")
        written = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in paths)
    return {
        "rows": sum(t.height for t in world.tables.values()),
        "simulate_s": simulated,
        "write_s": written,
        "files": len(paths) - 1,
        "mb": size / 1e6,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def speed() -> None:
    print("| world | rows (all tables) | simulate | write_landing (parquet) | peak RSS |")
    for geos, days in ((6, 120), (24, 730), (200, 730)):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(geos), str(days)], check=True, capture_output=True, text=True
        )
        r = json.loads(out.stdout.splitlines()[-1])
        print(
            f"| {geos} geos x {days} days | {r['rows'] / 1e6:.2f} M | {r['simulate_s']:.1f} s | "
            f"{r['write_s']:.1f} s ({r['files']} files, {r['mb']:.0f} MB) | {r['peak_rss_gb']:.2f} GB |"
        )


def build(seed: int) -> tuple[DemandModel, Outcome, World]:
    from mmm_platform.simulate import WorldConfig
    from mmm_platform.simulate.outcomes import Scenario
    from mmm_platform.simulate.truth import build_truth
    from mmm_platform.simulate.world import World, build_model, build_tables

    config = WorldConfig(seed=seed, start=FIRST_DAY)
    model = build_model(config)
    actual = model.run(Scenario())
    tables = build_tables(model, actual)
    return model, actual, World(tables, build_truth(model, actual, tables["media_spend"]), config)


def weather_section(world: World) -> None:
    """OLS, OLS with a linear forecast control, OLS with geo-specific seasons, and IV at several leads."""
    import pandas as pd
    from linearmodels import PanelOLS

    from mmm_platform.simulate import audit

    for variable in ("temp_mean_c", "precip_mm"):
        base = audit.weather_estimates(world, variable, lead=1)
        panel = audit.weather_panel(world, variable, lead=1)
        g, t = world.config.n_geos, world.config.n_days
        day = 2 * np.pi * np.arange(t) / 365.25
        cycles = np.column_stack([np.cos(day), np.sin(day), np.cos(2 * day), np.sin(2 * day)])
        seasons = pd.DataFrame(np.kron(np.eye(g), cycles)[:, 4:], index=panel.index).add_prefix("s")

        def ols(exog: pd.DataFrame, revenue: pd.Series = panel["revenue"], name: str = variable) -> float:
            fit = PanelOLS(revenue, exog, entity_effects=True, time_effects=True).fit()
            return float(fit.params[name])

        controlled = ols(panel[[variable, "forecast"]])
        seasonal = ols(pd.concat([panel[[variable]], seasons], axis=1))
        truth = base.truth
        print(f"\n{variable}: truth {truth:.1f}")
        print(f"  OLS {base.ols:.1f} ({base.ols / truth - 1:+.0%})")
        print(f"  OLS + linear lead-1 forecast control {controlled:.1f} ({controlled / truth - 1:+.0%})")
        share = (base.ols - seasonal) / (base.ols - truth)
        print(f"  OLS + geo-specific annual cycles {seasonal:.1f}: {share:.0%} of the OLS bias is geo seasonality")
        for lead in (0, 1, 3, world.config.max_lead):
            est = audit.weather_estimates(world, variable, lead=lead)
            print(f"  IV lead-{lead} error {est.iv:.1f} (SE {est.iv_se:.1f}, {est.iv / truth - 1:+.0%})")


def confounder_section(model: DemandModel, actual: Outcome, world: World) -> None:
    """How much of the forecast-driven demand a linear control for the published forecasts removes."""
    from mmm_platform.simulate import audit
    from mmm_platform.simulate.media import campaigns_of

    def purge(a: np.ndarray) -> np.ndarray:
        return (a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()).ravel()

    shape = (world.config.n_geos, world.config.n_days)
    controls = [audit.weather_panel(world, "temp_mean_c", lead)["forecast"] for lead in (1, 3)]
    controls.append(audit.weather_panel(world, "precip_mm", 1)["forecast"])
    x = np.column_stack([purge(c.to_numpy().reshape(shape)) for c in controls])

    def residual(a: np.ndarray) -> np.ndarray:
        y = purge(a)
        return y - x @ np.linalg.lstsq(x, y, rcond=None)[0]

    confounder = purge(model.forecast_demand(actual.weather))
    left = residual(model.forecast_demand(actual.weather))
    search = residual(actual.spend[..., campaigns_of("search")].sum(axis=-1))
    print(
        f"forecast-driven demand after geo and date effects: a linear control for the published lead-1 and "
        f"lead-3 temperature and lead-1 precipitation forecasts leaves {left.var() / confounder.var():.0%} of it, "
        f"correlated {np.corrcoef(left, search)[0, 1]:.2f} with search spend (after the same control) and "
        f"{np.corrcoef(left, purge(actual.weather.temp_mean))[0, 1]:.2f} with observed temperature"
    )


def default_world(seed: int) -> None:
    from mmm_platform.simulate import audit
    from mmm_platform.simulate.media import CHANNEL_NAMES

    t0 = time.perf_counter()
    model, actual, world = build(seed)
    print(f"\n## default world, seed {seed} (built in {time.perf_counter() - t0:.1f} s)")
    print("rows:", ", ".join(f"{k} {v.height:,}" for k, v in world.tables.items()))
    truth = world.truth
    print("baseline:", truth["baseline"], "stockouts:", truth["stockouts"])
    print(f"spend share of revenue {truth['meta']['total_spend'] / truth['meta']['total_revenue']:.3f}")
    print("\n| channel | form | spend | ROAS | mROAS | oracle ROAS (SE) | SE/ROAS | platform-implied ROAS |")
    implied = audit.attribution_roas(world)
    for name in CHANNEL_NAMES:
        c = truth["channels"][name]
        claim = f"{implied[name][0]:.2f}" if name in implied else "none"
        print(
            f"| {name} | {c['adstock']} | {c['spend'] / 1e6:.2f} M | {c['roas']:.2f} | {c['mroas']:.2f} | "
            f"{c['roas_oracle']:.2f} ({c['roas_oracle_se']:.3f}) | {c['roas_oracle_se'] / c['roas']:.1%} | {claim} |"
        )
    print("\nexperiments (paired log DiD readout vs truth):")
    for e, r in zip(truth["experiments"], audit.experiment_readouts(world), strict=True):
        print(
            f"  {e['experiment_id']} {e['start']}..{e['end']} {len(e['pairs'])} pairs, spend delta "
            f"{e['spend_delta'] / 1e3:.0f} k: true lift {e['true_lift'] / 1e3:.0f} k ({e['true_lift_per_geo_day']:.0f} "
            f"per treated geo-day, {e['true_lift_share']:+.2%}); readout {np.expm1(r.estimate):+.2%} "
            f"(SE {r.se:.2%}, SE/lift {r.se / abs(r.truth):.2f}; read as two groups, SE {r.se_unpaired:.2%})"
        )
    shocks = audit.shock_readouts(world)
    for kind in ("heatwave", "storm"):
        chosen = [s for s in shocks if s.event_id.startswith(kind)]
        before_after = np.median([abs(s.before_after / s.truth - 1) for s in chosen])
        did = np.median([abs(s.did / s.truth - 1) for s in chosen])
        print(f"{kind}s ({len(chosen)}): median abs error before/after {before_after:.0%}, DiD {did:.0%}")
    print(f"temperature anomaly lag-1 autocorrelation {audit.temperature_anomaly_autocorrelation(world):.2f}")
    correlations = audit.contribution_correlations(world, actual)
    for label, chosen in (("non-input", [c for c in correlations if not c.is_input]), ("input", correlations)):
        top = max(chosen, key=lambda c: c.largest)
        print(f"largest |corr| with a contribution ({label}): {top.largest:.2f} {top.column} vs {top.channel}")
    weather_section(world)
    confounder_section(model, actual, world)
    draws = audit.oracle_roas_resimulated(model, actual, 100)
    print(
        "oracle SE by re-simulation / published:",
        (draws.std(axis=0, ddof=1) / [truth["channels"][c]["roas_oracle_se"] for c in CHANNEL_NAMES]).round(2),
    )


def across_seeds(n: int) -> None:
    from mmm_platform.simulate import audit

    print(f"\n## seeds 1..{n}")
    for seed in range(1, n + 1):
        _, actual, world = build(seed)
        est = audit.weather_estimates(world, "temp_mean_c")
        readouts = audit.experiment_readouts(world)
        worst = max(r.se / abs(r.truth) for r in readouts)
        covered = sum(abs(r.estimate - r.truth) <= 1.96 * r.se for r in readouts)
        roas = {k: round(v["roas"], 2) for k, v in world.truth["channels"].items()}
        leak = max(
            (c for c in audit.contribution_correlations(world, actual) if not c.is_input), key=lambda c: c.largest
        )
        print(
            f"seed {seed}: OLS {est.ols / est.truth - 1:+.0%}, IV {est.iv / est.truth - 1:+.1%} "
            f"(z {(est.iv - est.truth) / est.iv_se:+.2f}); experiments covered {covered}/{len(readouts)}, max SE/lift "
            f"{worst:.2f}; max non-input |corr| {leak.largest:.2f}; ROAS {roas}"
        )


def coverage(seed: int, replications: int) -> None:
    """The lead-1 IV over weather redraws, everything else fixed: bias, spread, and how often the interval
    with the SE clustered by geo covers the truth of each redraw."""
    from mmm_platform.simulate.outcomes import Scenario
    from mmm_platform.simulate.weather import simulate_weather

    model, _, world = build(seed)
    n = world.config.n_days
    rows = []
    for r in range(replications):
        weather = simulate_weather(dataclasses.replace(world.config, seed=1000 + r), model.timeline, model.geo)
        redrawn = dataclasses.replace(model, weather=weather)
        actual = redrawn.run(Scenario())
        truth = (redrawn.run(Scenario(temp_shift=1.0)).revenue - actual.revenue).sum(axis=-1).mean()
        forecast = np.round(
            weather.temperature(weather.temp.known[1] + weather.shock_arrays(weather.shock_ids, 1)["temp"]), 1
        )

        def purge(a: np.ndarray) -> np.ndarray:
            return a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()

        y, x = purge(actual.revenue.sum(axis=-1)), purge(actual.weather.temp_mean)
        z = purge(actual.weather.temp_mean - forecast[:, :n])
        iv = (z * y).sum() / (z * x).sum()
        scores = (z * (y - iv * x)).sum(axis=1)
        se = np.sqrt((scores**2).sum() * len(scores) / (len(scores) - 1)) / abs((z * x).sum())
        rows.append((iv - truth, se))
    err, se = np.array(rows).T
    print(
        f"\nIV over {replications} weather redraws: bias {err.mean():+.1f}, SD {err.std(ddof=1):.1f}, mean SE "
        f"(clustered by geo) {se.mean():.1f}, 95% interval covers {np.mean(np.abs(err) <= 1.96 * se):.0%}"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child_speed(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=0, help="headline figures on seeds 1..N")
    parser.add_argument("--coverage", type=int, default=0, help="IV coverage over N weather redraws")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    if not args.no_speed:
        speed()
    default_world(args.seed)
    if args.seeds:
        across_seeds(args.seeds)
    if args.coverage:
        coverage(args.seed, args.coverage)


if __name__ == "__main__":
    main()
