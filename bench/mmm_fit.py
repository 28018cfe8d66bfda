"""Bench the MMM fit: the same model on the same data with PyMC's default NUTS and with the chosen
sampler (nutpie), each in a fresh process; then a scale run (200 geos, 3 years, weekly).

For each fit it prints wall time (compile + sampling + deterministics), the sampler's own time,
min bulk ESS, ESS per second, max R-hat, divergences and peak memory (RSS of the fit's process).

    .venv/bin/python bench/mmm_fit.py                          # MMM_WAREHOUSE, both samplers, shipped draws
    .venv/bin/python bench/mmm_fit.py --draws 500 --tune 500
    .venv/bin/python bench/mmm_fit.py --samplers nutpie --calibrated   # as the fit asset fits
    .venv/bin/python bench/mmm_fit.py --scale-warehouse data/scale/warehouse.duckdb   # scale run too
    .venv/bin/python bench/mmm_fit.py --build-scale data/scale   # simulate + build the 200-geo warehouse

`--calibrated` fits as the `mmm/fit` asset does, with the causal suite's lift tests and IV weather
priors from the warehouse (`causal.lift_tests`, `causal.weather_priors`); without it the model is
the same but uncalibrated, which samples faster.

The scale warehouse is a demo world of 200 geos x 1095 days run through the platform (`mmm-platform
demo --geos 200 --days 1095` with MMM_WAREHOUSE / MMM_LANDING_DIR pointing at that folder).
"""

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import json
import os
import resource
import subprocess
import time

ROOT = Path(__file__).resolve().parent.parent


def one_fit(
    warehouse: str,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    adaptation: str,
    config: str | None,
    calibrated: bool = False,
) -> dict:
    """Fit once in this process and report (called in a child process)."""
    import warnings

    warnings.filterwarnings("ignore")
    import duckdb

    from mmm_platform.mmm.calibration import read_calibration
    from mmm_platform.mmm.config import DEFAULT_CONFIG_PATH, load_config
    from mmm_platform.mmm.data import load_panel
    from mmm_platform.mmm.fit import diagnostics, fit_model, fitted
    from mmm_platform.mmm.model import build_mmm

    cfg = load_config(config or DEFAULT_CONFIG_PATH)
    cfg = cfg.model_copy(
        update={
            "sampler": cfg.sampler.model_copy(
                update={"name": sampler, "draws": draws, "tune": tune, "chains": chains, "adaptation": adaptation}
            )
        }
    )
    t0 = time.perf_counter()
    with duckdb.connect(warehouse, read_only=True) as con:
        panel = load_panel(con, cfg)
        lift, weather = read_calibration(con, cfg, panel) if calibrated else (None, None)
    t_load = time.perf_counter() - t0
    spec = build_mmm(panel, cfg, weather_priors=weather, lift_tests=lift)
    fit = fit_model(spec, cfg.sampler)
    fv = fitted(fit, panel)
    d = diagnostics(fit, panel, fv["mean"])
    return {
        "sampler": sampler,
        "adaptation": adaptation if sampler == "nutpie" else "-",
        "geos": len(panel.geos),
        "periods": len(panel.dates),
        "grain": panel.grain,
        "lift_tests": 0 if lift is None else len(lift),
        "weather_priors": len(spec.weather_priors_used),
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "load_s": round(t_load, 1),
        "fit_s": round(fit.fit_seconds, 1),
        "sampling_s": None if fit.sampling_seconds is None else round(fit.sampling_seconds, 1),
        "min_ess_bulk": round(d["min_ess_bulk"], 1),
        "ess_per_s": round(d["min_ess_bulk"] / fit.fit_seconds, 3),
        "max_rhat": round(d["max_rhat"], 4),
        "max_rhat_variable": d.get("max_rhat_variable", ""),
        "divergences": d["divergences"],
        "mean_tree_steps": round(d["mean_tree_steps"], 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def run_child(args: list[str]) -> dict:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        return {"error": (out.stderr or out.stdout)[-1500:]}
    return json.loads(line[-1][7:])


def build_scale(folder: Path, geos: int, days: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "MMM_LANDING_DIR": str(folder / "landing"),
        "MMM_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "DAGSTER_HOME": str(folder / "dagster_home"),
    }
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mmm_platform.cli", "simulate", "--geos", str(geos), "--days", str(days)],
        env=env,
        check=True,
        cwd=ROOT,
    )
    subprocess.run([sys.executable, "-m", "mmm_platform.cli", "ingest"], env=env, check=True, cwd=ROOT)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mmm_fit.py"), "--features-only", str(folder / "warehouse.duckdb")],
        env=env,
        check=True,
        cwd=ROOT,
    )
    print(f"scale warehouse built in {time.perf_counter() - t0:.0f} s: {folder / 'warehouse.duckdb'}")
    return folder / "warehouse.duckdb"


def build_features(warehouse: str) -> None:
    """dbt build over all history, then the climate clusters (what the `everything` job does after
    ingestion, without fitting)."""
    from mmm_platform.defs.features.project import dbt_project, ensure_manifest

    ensure_manifest()
    env = os.environ | {
        "MMM_WAREHOUSE": str(Path(warehouse).absolute()),
        "MMM_DBT_MIN_DATE": "",
        "MMM_DBT_MAX_DATE": "",
    }
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run([str(dbt), "build", "--quiet"], cwd=dbt_project.project_dir, env=env, check=True)
    import duckdb

    from mmm_platform.features.climate import write_geo_clusters

    with duckdb.connect(warehouse) as con:
        write_geo_clusters(con)


def table(rows: list[dict]) -> str:
    cols = [c for c in rows[0] if c != "error"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        lines.append(" | ".join(str(r.get(c, "")) for c in cols) if "error" not in r else f"error: {r['error'][-300:]}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", default=os.environ.get("MMM_WAREHOUSE", "data/warehouse.duckdb"))
    ap.add_argument("--samplers", default="pymc,nutpie")
    ap.add_argument("--draws", type=int, default=None, help="default: the configuration's sampler.draws")
    ap.add_argument("--tune", type=int, default=None, help="default: the configuration's sampler.tune")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--adaptation", default="diag")
    ap.add_argument("--config", default=None, help="an MMM configuration file (default assets/models/mmm.yaml)")
    ap.add_argument("--calibrated", action="store_true", help="with the lift tests and weather priors, as mmm/fit")
    ap.add_argument("--scale-warehouse", default=None, help="warehouse of a 200-geo x 3-year world: run the scale fit")
    ap.add_argument("--scale-draws", type=int, default=500)
    ap.add_argument("--scale-tune", type=int, default=None, help="tuning steps of the scale fit (default: its draws)")
    ap.add_argument("--build-scale", default=None, help="folder: simulate and build the scale warehouse there")
    ap.add_argument("--scale-geos", type=int, default=200)
    ap.add_argument("--scale-days", type=int, default=1095)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--features-only", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.draws is None or args.tune is None:  # bench what ships unless told otherwise
        from mmm_platform.mmm.config import DEFAULT_CONFIG_PATH, load_config

        shipped = load_config(args.config or DEFAULT_CONFIG_PATH).sampler
        args.draws = shipped.draws if args.draws is None else args.draws
        args.tune = shipped.tune if args.tune is None else args.tune

    if args.features_only:
        build_features(args.features_only)
        return 0
    if args.child:
        sampler = args.samplers
        res = one_fit(
            args.warehouse, sampler, args.draws, args.tune, args.chains, args.adaptation, args.config, args.calibrated
        )
        print("RESULT " + json.dumps(res))
        return 0
    rows = []
    common = [
        "--warehouse",
        args.warehouse,
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
    ]
    if args.config:
        common += ["--config", args.config]
    if args.calibrated:
        common += ["--calibrated"]
    for s in [s for s in args.samplers.split(",") if s]:  # --samplers "": the scale run only
        print(f"fitting with {s} ...", flush=True)
        rows.append(run_child(["--samplers", s, "--adaptation", args.adaptation, *common]))
        print(table([rows[-1]]), flush=True)
    ok = [r for r in rows if "error" not in r]
    if rows:
        print("\n## Same model, same data\n")
        print(table(rows))
    by = {r["sampler"]: r for r in ok}
    if "pymc" in by and "nutpie" in by:
        print(f"\nnutpie / pymc ESS per second: {by['nutpie']['ess_per_s'] / max(by['pymc']['ess_per_s'], 1e-9):.1f}x")
    scale = args.scale_warehouse
    if args.build_scale:
        scale = str(build_scale(Path(args.build_scale), args.scale_geos, args.scale_days))
    if scale:
        print("\n## Scale run\n", flush=True)
        res = run_child(["--samplers", "nutpie", "--adaptation", args.adaptation, "--warehouse", scale,
                         "--draws", str(args.scale_draws), "--tune", str(args.scale_tune or args.scale_draws), "--chains", str(args.chains),
                         *(["--config", args.config] if args.config else [])])  # fmt: skip
        print(table([res]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
