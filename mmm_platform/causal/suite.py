"""The whole causal suite over one set of inputs, and the output tables (docs/causal.md):

causal.weather_effects    one row per outcome, method and weather variable (ols, iv_2sls, iv_2sls_overid,
                          iv_2sls_by_cluster)
causal.weather_priors     the IV effects as priors for the MMM's weather controls ($ per geo-day per unit)
causal.weather_contribution  weather against normal over the last N days
causal.weather_effects_by_geo  per-geo IV, spatially smoothed
causal.lift               one row per study: shocks (per event and pooled, stacked DiD, TWFE, placebo),
                          experiments, plans, weather against normal
causal.lift_tests         PyMC-Marketing add_lift_test_measurements rows per experiment
causal.event_study        event-time coefficients per shock type
causal.plan_evidence      every plan with the studies available when it was created
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmm_platform.causal import did, evidence, experiments, plans, weather
from mmm_platform.causal.config import CausalConfig
from mmm_platform.causal.data import CausalInputs
from mmm_platform.quality.checks import CheckOutcome
from mmm_platform.warehouse import write_table


@dataclass
class SuiteResult:
    as_of: dt.date
    weather: weather.WeatherStudy
    contributions: list[weather.Contribution]
    events: pd.DataFrame
    shocks: did.StackedResult
    placebo: did.StackedResult
    placebo_shift_days: int
    event_studies: dict[str, did.EventStudy]
    twfe: object
    readouts: list[experiments.Readout]
    plan_studies: list[plans.PlanStudy]
    plan_balance: plans.Balance
    timings: dict[str, float] = field(default_factory=dict)


def run(inputs: CausalInputs, config: CausalConfig) -> SuiteResult:
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - t0
        return out

    panel = inputs.panel
    study = timed("iv", weather.study, panel, inputs.neighbors, config)
    iv_fit = study.fits[("revenue", "iv_2sls")]
    contributions = timed(
        "weather_contribution",
        lambda: [weather.contribution(panel, iv_fit, d, config.level) for d in config.attribution.periods_days],
    )
    sc = config.shocks
    events = timed("shock_detection", did.detect_events, panel, sc)
    shocks = timed("did_stacked", did.event_att, panel, events, inputs.geo, sc, "revenue", config.level)
    shift = did.placebo_shift(panel, events, sc)
    placebo = timed("did_placebo", did.event_att, panel, events, inputs.geo, sc, "revenue", config.level, shift)
    studies = {}
    t0 = time.perf_counter()
    for kind in did.SHOCK_TYPES:
        chosen = events[events["type"] == kind]
        if len(chosen):
            studies[kind] = did.event_study(panel, chosen, inputs.geo, sc, "revenue", config.level)
    timings["event_study"] = time.perf_counter() - t0
    tw = timed("did_twfe", did.twfe, panel, sc, "revenue", config.level)
    readouts = timed(
        "experiments", experiments.readouts, panel, inputs.experiments, inputs.geo, inputs.channel_spend, config.level
    )
    plan_studies = timed(
        "plans", plans.plan_studies, inputs.plans, panel, inputs.channel_spend, config.plans.pre_days, config.level
    )
    return SuiteResult(
        as_of=inputs.as_of,
        weather=study,
        contributions=contributions,
        events=events,
        shocks=shocks,
        placebo=placebo,
        placebo_shift_days=shift,
        event_studies=studies,
        twfe=tw,
        readouts=readouts,
        plan_studies=plan_studies,
        plan_balance=plans.balance(plan_studies),
        timings=timings,
    )


# ---------------------------------------------------------------------------------------------------
# tables


def _stamp(frame: pd.DataFrame, run_id: str, as_of: dt.date) -> pd.DataFrame:
    frame.insert(0, "as_of", as_of)
    frame.insert(0, "run_id", run_id)
    return frame


def weather_effects_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    study = result.weather
    rows = []
    for (outcome, method), f in study.fits.items():
        for v in study.variables:
            lo, hi = f.ci(v)
            fs = f.first_stage.get(v)
            rows.append(
                {
                    "method": method,
                    "weather_variable": v,
                    "outcome": outcome,
                    "effect_per_unit": float(f.params[v]),
                    "std_error": float(f.std_errors[v]),
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "p_value": f.pvalue(v),
                    "n_obs": f.n_obs,
                    "instrument": ", ".join(f.instruments) if f.instruments else None,
                    "first_stage_f": fs.f_stat if fs else None,
                    "first_stage_partial_r2": fs.partial_r2 if fs else None,
                    "weak_instrument": fs.weak if fs else None,
                    "wu_hausman_p": f.tests["wu_hausman"].pvalue if "wu_hausman" in f.tests else None,
                    "overid_j_p": f.tests["hansen_j"].pvalue if "hansen_j" in f.tests else None,
                    "geo_cluster": None,
                    "n_clusters": f.n_clusters,
                    "statement": evidence.weather_statement(
                        v, outcome, method, float(f.params[v]), lo, hi, f.pvalue(v)
                    ),
                }
            )
    for r in study.by_cluster.itertuples():
        if not np.isfinite(r.estimate):
            est, lo, hi, p = r.smoothed, None, None, None
            statement = (
                f"Climate cluster {r.cluster_id} ({r.n_geos} geo): too few geos for its own IV; "
                f"spatially smoothed effect {r.smoothed:+,.1f} per {evidence.UNITS.get(r.variable, '')}."
            )
        else:
            est = r.estimate
            crit = 1.96
            lo, hi = r.estimate - crit * r.std_error, r.estimate + crit * r.std_error
            from scipy import stats

            p = float(2 * stats.norm.sf(abs(r.estimate / r.std_error)))
            statement = evidence.weather_statement(r.variable, "revenue", "iv_2sls", est, lo, hi, p).replace(
                "By forecast-error IV", f"In climate cluster {r.cluster_id} ({r.n_geos} geos), by forecast-error IV"
            )
        rows.append(
            {
                "method": "iv_2sls_by_cluster",
                "weather_variable": r.variable,
                "outcome": "revenue",
                "effect_per_unit": est,
                "std_error": r.std_error if np.isfinite(r.std_error) else None,
                "ci_lower": lo,
                "ci_upper": hi,
                "p_value": p,
                "n_obs": None,
                "instrument": ", ".join(weather.instruments_for(study.variables, (study.instrument_lead,))),
                "first_stage_f": None,
                "geo_cluster": int(r.cluster_id),
                "n_clusters": int(r.n_geos),
                "smoothed_effect_per_unit": r.smoothed,
                "statement": statement,
            }
        )
    return _stamp(pd.DataFrame(rows), run_id, result.as_of)


def weather_priors_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    """The IV effect on revenue per geo-day as a Normal prior (mean, sd) for each weather control."""
    f = result.weather.fits[("revenue", "iv_2sls")]
    rows = [
        {
            "variable": v,
            "mean": float(f.params[v]),
            "sd": float(f.std_errors[v]),
            "units": f"$ revenue per geo-day per {evidence.UNITS.get(v, 'unit')} of observed {v}",
            "distribution": "Normal",
            "method": "iv_2sls",
            "instrument": iv_instrument(v, result.weather.instrument_lead),
            "first_stage_f": f.first_stage[v].f_stat,
        }
        for v in result.weather.variables
    ]
    return _stamp(pd.DataFrame(rows), run_id, result.as_of)


def iv_instrument(variable: str, lead: int) -> str:
    return f"{variable}_fc_error_l{lead}"


def weather_contribution_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    rows = [
        {
            "period_days": c.period_days,
            "window_start": c.start.date(),
            "window_end": c.end.date(),
            "n_geos": c.n_geos,
            "incremental_revenue": c.estimate,
            "std_error": c.std_error,
            "ci_lower": c.ci_lower,
            "ci_upper": c.ci_upper,
            "p_value": c.p_value,
            **{f"from_{k}": v for k, v in c.by_variable.items()},
            "statement": (
                f"Over the last {c.period_days} days, weather drove {evidence.money(c.estimate)} of revenue against "
                f"normal weather ({evidence.ci_text(c.ci_lower, c.ci_upper)}, {evidence.p_text(c.p_value)})."
            ),
        }
        for c in result.contributions
    ]
    return _stamp(pd.DataFrame(rows), run_id, result.as_of)


def weather_by_geo_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    return _stamp(result.weather.by_geo.copy(), run_id, result.as_of)


LIFT_COLUMNS = [
    "study_id",
    "method",
    "treatment",
    "n_treated_geos",
    "window_start",
    "window_end",
    "att_per_geo_day",
    "incremental_revenue",
    "ci_lower",
    "ci_upper",
    "p_value",
    "pretrend_p_value",
    "plan_id",
    "statement",
]


def _plan_meta(inputs_plans: pd.DataFrame) -> pd.DataFrame:
    if inputs_plans.empty:
        return pd.DataFrame(columns=["plan_id", "status", "created_at"])
    return inputs_plans.groupby("plan_id", as_index=False).agg(
        status=("status", "first"), created_at=("created_at", "min")
    )


def informed_plan(meta: pd.DataFrame, window_end) -> str | None:
    """The plan a study informs: the first pending plan created after the study's window, else the
    latest plan created after it."""
    if window_end is None or meta.empty:
        return None
    after = meta[pd.to_datetime(meta["created_at"]) > pd.Timestamp(window_end)]
    if after.empty:
        return None
    pending = after[after["status"] == "pending"].sort_values("created_at")
    return str(
        (pending if len(pending) else after.sort_values("created_at")).iloc[-1 if pending.empty else 0]["plan_id"]
    )


def lift_table(result: SuiteResult, run_id: str, plan_rows: pd.DataFrame) -> pd.DataFrame:
    meta = _plan_meta(plan_rows)
    rows = []
    events = result.events.set_index("event_id") if len(result.events) else pd.DataFrame()
    table = result.shocks.events.set_index("event_id") if len(result.shocks.events) else pd.DataFrame()
    # per event
    for event_id, e in events.iterrows():
        if event_id not in table.index or pd.isna(table.loc[event_id].get("window")):
            continue
        t = table.loc[event_id]
        days = did.treated_geo_days(result.shocks, event_id)
        rows.append(
            {
                "study_id": event_id,
                "method": "did_stacked",
                "treatment": e["type"],
                "n_treated_geos": int(t["n_treated_geos"]),
                "window_start": e["start"].date(),
                "window_end": e["end"].date(),
                "att_per_geo_day": float(t["window"]),
                "incremental_revenue": float(t["window"]) * days,
                "ci_lower": float(t["ci_lower"]),
                "ci_upper": float(t["ci_upper"]),
                "p_value": float(t["window_p"]),
                "pretrend_p_value": float(t.get("lead_p", np.nan)),
                "std_error": float(t["window_se"]),
                "std_error_cluster": float(t["window_se_cluster"]),
                "anticipation_per_geo_day": float(t.get("anticipation", np.nan)),
                "n_control_geos": int(t["n_control_geos"]),
                "control_scope": t["control_scope"],
                "n_events": 1,
                "storm_category": e.get("storm_category"),
                "geo_ids": ",".join(e["geo_ids"]),
            }
        )
    # pooled per type: stacked, placebo, TWFE
    for kind in did.SHOCK_TYPES:
        ids = result.events.loc[result.events["type"] == kind, "event_id"].tolist() if len(result.events) else []
        pooled = did.pooled_att(result.shocks, ids)
        if pooled is None:
            continue
        lead = did.pooled_att(result.shocks, ids, term="lead")
        antic = did.pooled_att(result.shocks, ids, term="anticipation")
        es = result.event_studies.get(kind)
        first = result.events.loc[result.events["event_id"].isin(ids), "start"].min()
        last = result.events.loc[result.events["event_id"].isin(ids), "end"].max()
        n_geos = len({g for gs in result.events.loc[result.events["event_id"].isin(ids), "geo_ids"] for g in gs})
        base = {
            "treatment": kind,
            "n_treated_geos": n_geos,
            "window_start": first.date(),
            "window_end": last.date(),
            "n_events": pooled["n_events"],
        }
        rows.append(
            base
            | {
                "study_id": f"{kind}_all",
                "method": "did_stacked",
                "att_per_geo_day": pooled["estimate"],
                "incremental_revenue": pooled["estimate"] * pooled["treated_geo_days"],
                "ci_lower": pooled["ci_lower"],
                "ci_upper": pooled["ci_upper"],
                "p_value": pooled["p_value"],
                "pretrend_p_value": lead["p_value"] if lead else None,
                "std_error": pooled["std_error"],
                "anticipation_per_geo_day": antic["estimate"] if antic else None,
                "event_study_pretrend_wald_p": es.pretrend.pvalue if es else None,
            }
        )
        ids_p = [i for i in ids if i in set(result.placebo.events["event_id"])]
        placebo = did.pooled_att(result.placebo, ids_p)
        if placebo:
            rows.append(
                base
                | {
                    "study_id": f"{kind}_placebo",
                    "method": "did_stacked_placebo",
                    "att_per_geo_day": placebo["estimate"],
                    "incremental_revenue": placebo["estimate"] * placebo["treated_geo_days"],
                    "ci_lower": placebo["ci_lower"],
                    "ci_upper": placebo["ci_upper"],
                    "p_value": placebo["p_value"],
                    "std_error": placebo["std_error"],
                    "placebo_shift_days": result.placebo_shift_days,
                    "n_events": placebo["n_events"],
                }
            )
        tw = result.twfe
        if kind in tw.params.index:
            lo, hi = tw.ci(kind)
            rows.append(
                base
                | {
                    "study_id": f"{kind}_twfe",
                    "method": "did_twfe",
                    "att_per_geo_day": float(tw.params[kind]),
                    "incremental_revenue": None,
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "p_value": tw.pvalue(kind),
                    "std_error": float(tw.std_errors[kind]),
                }
            )
    # experiments
    for r in result.readouts:
        lo, hi = r.ci
        n_days = r.n_treated * r.days
        rows.append(
            {
                "study_id": r.experiment_id,
                "method": "experiment",
                "treatment": f"{r.experiment_type}:{r.channel}",
                "n_treated_geos": r.n_treated,
                "window_start": r.start.date(),
                "window_end": r.end.date(),
                "att_per_geo_day": r.lift / n_days,
                "incremental_revenue": r.lift,
                "ci_lower": lo / n_days,
                "ci_upper": hi / n_days,
                "p_value": r.p_value,
                "pretrend_p_value": r.placebo_p_value,
                "std_error": r.lift_se / n_days,
                "incremental_revenue_ci_lower": lo,
                "incremental_revenue_ci_upper": hi,
                "lift_share": r.lift_share,
                "spend_delta": r.spend_delta,
                "incremental_roas": r.lift / r.spend_delta if r.spend_delta else None,
                "n_events": 1,
            }
        )
    # plans
    for s in result.plan_studies:
        days = (s.window_end - s.window_start).days + 1
        what = (
            "revenue per extra dollar the plan moved"
            if s.method == "plan_iv"
            else "revenue per recommended dollar (not executed: placebo)"
        )
        rows.append(
            {
                "study_id": f"plan_{s.plan_id}",
                "method": s.method,
                "treatment": f"plan:{s.plan_id}",
                "n_treated_geos": s.n_geos,
                "window_start": s.window_start.date(),
                "window_end": s.window_end.date(),
                "att_per_geo_day": s.revenue_change,
                "incremental_revenue": s.revenue_change * s.n_geos * days,
                "ci_lower": None,
                "ci_upper": None,
                "p_value": s.p_value,
                "pretrend_p_value": result.plan_balance.p_value,
                "plan_id": s.plan_id,
                "ratio_estimate": s.estimate,
                "ratio_ci_lower": s.ci_lower,
                "ratio_ci_upper": s.ci_upper,
                "first_stage_f": s.first_stage_f,
                "statement": (
                    f"Plan {s.plan_id} ({s.status}): {what} {s.estimate:+.2f} "
                    f"(95% CI {s.ci_lower:+.2f} to {s.ci_upper:+.2f}, {evidence.p_text(s.p_value)}); "
                    f"balance: {result.plan_balance.verdict}."
                ),
            }
        )
    # weather against normal
    for c in result.contributions:
        n_days = c.n_geos * c.period_days
        rows.append(
            {
                "study_id": f"weather_vs_normal_{c.period_days}d",
                "method": "iv_2sls_counterfactual",
                "treatment": "weather_vs_normal",
                "n_treated_geos": c.n_geos,
                "window_start": c.start.date(),
                "window_end": c.end.date(),
                "att_per_geo_day": c.estimate / n_days,
                "incremental_revenue": c.estimate,
                "ci_lower": c.ci_lower / n_days,
                "ci_upper": c.ci_upper / n_days,
                "p_value": c.p_value,
                "statement": (
                    f"Weather drove {evidence.money(c.estimate)} of revenue against normal weather over the last "
                    f"{c.period_days} days ({evidence.ci_text(c.ci_lower, c.ci_upper)}, {evidence.p_text(c.p_value)})."
                ),
            }
        )
    frame = pd.DataFrame(rows)
    for column in LIFT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    missing = frame["statement"].isna()
    frame.loc[missing, "statement"] = [
        evidence.lift_statement(
            r.treatment, r.att_per_geo_day, r.ci_lower, r.ci_upper, r.p_value, r.incremental_revenue
        )
        + (
            " (placebo: the same geos, dates moved earlier; should be nothing)"
            if r.method == "did_stacked_placebo"
            else ""
        )
        + (" (naive two-way fixed effects)" if r.method == "did_twfe" else "")
        for r in frame.loc[missing].itertuples()
    ]
    no_plan = frame["plan_id"].isna()
    frame.loc[no_plan, "plan_id"] = [informed_plan(meta, w) for w in frame.loc[no_plan, "window_end"]]
    ordered = [*LIFT_COLUMNS, *[c for c in frame.columns if c not in LIFT_COLUMNS]]
    return _stamp(frame[ordered], run_id, result.as_of)


def lift_tests_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    frames = [experiments.lift_test_rows(r) for r in result.readouts]
    if not frames:
        return _stamp(
            pd.DataFrame(columns=["experiment_id", "grain", "geo", "channel", "x", "delta_x", "delta_y", "sigma"]),
            run_id,
            result.as_of,
        )
    return _stamp(pd.concat(frames, ignore_index=True), run_id, result.as_of)


def event_study_table(result: SuiteResult, run_id: str) -> pd.DataFrame:
    frames = [es.coefficients.assign(treatment=kind) for kind, es in result.event_studies.items()]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["k", "estimate"])
    return _stamp(frame, run_id, result.as_of)


def plan_evidence_table(lift: pd.DataFrame, plan_rows: pd.DataFrame, run_id: str, as_of: dt.date) -> pd.DataFrame:
    """Every plan with every study it can rest on: its own quasi-experiment, and every study whose
    window ended before the plan was created."""
    meta = _plan_meta(plan_rows)
    rows = []
    for p in meta.itertuples():
        for s in lift.itertuples():
            if s.treatment == f"plan:{p.plan_id}":
                rows.append({"plan_id": p.plan_id, "study_id": s.study_id, "relation": "measures"})
            elif s.window_end is not None and pd.Timestamp(s.window_end) < pd.Timestamp(p.created_at):
                rows.append({"plan_id": p.plan_id, "study_id": s.study_id, "relation": "available_at_creation"})
    frame = pd.DataFrame(rows, columns=["plan_id", "study_id", "relation"])
    return _stamp(frame, run_id, as_of)


def all_tables(result: SuiteResult, run_id: str, plan_rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    lift = lift_table(result, run_id, plan_rows)
    return {
        "weather_effects": weather_effects_table(result, run_id),
        "weather_priors": weather_priors_table(result, run_id),
        "weather_contribution": weather_contribution_table(result, run_id),
        "weather_effects_by_geo": weather_by_geo_table(result, run_id),
        "lift": lift,
        "lift_tests": lift_tests_table(result, run_id),
        "event_study": event_study_table(result, run_id),
        "plan_evidence": plan_evidence_table(lift, plan_rows, run_id, result.as_of),
    }


def write_tables(con, tables: dict[str, pd.DataFrame], run_id: str, schema: str = "causal") -> None:
    """Write each frame into <schema>.<name>: the rows of this run are replaced, other runs' rows stay."""
    for name, frame in tables.items():
        write_table(con, f"{schema}.{name}", frame, key={"run_id": run_id})


# ---------------------------------------------------------------------------------------------------
# checks: plain results, converted to Dagster's in defs/causal.py


def checks(result: SuiteResult, tables: dict[str, pd.DataFrame]) -> list[tuple[str, CheckOutcome]]:
    """(table, outcome) per check of CHECK_SPECS; each summary says what was found."""
    out = []

    def add(table: str, name: str, passed: bool, metadata: dict, found: str) -> None:
        out.append((table, CheckOutcome(name, bool(passed), "warn", found, [] if passed else [found], metadata)))

    f_stats = {
        f"{o}/{m}/{v}": fs.f_stat for (o, m), fit_ in result.weather.fits.items() for v, fs in fit_.first_stage.items()
    }
    weakest = min(f_stats, key=f_stats.get) if f_stats else None
    add(
        "weather_effects",
        "instrument_strength",
        all(f >= 10 for f in f_stats.values()),
        f_stats,
        f"weakest first stage: {weakest} F = {f_stats[weakest]:,.0f} (weak below 10)" if weakest else "no IV fitted",
    )
    overid = result.weather.fits.get(("revenue", "iv_2sls_overid"))
    j_p = overid.tests["hansen_j"].pvalue if overid and "hansen_j" in overid.tests else float("nan")
    flagged = {f"lead{c.lead}/{c.variable}": round(c.j_pvalue, 4) for c in result.weather.lead_checks}
    temperature_flagged = all(c.flagged for c in result.weather.lead_checks if c.variable == "temp_mean_c")
    add(
        "weather_effects",
        "instrument_validity",
        (not j_p < 0.05) and temperature_flagged,
        {"valid_leads_hansen_j_p": j_p, **flagged},
        f"Hansen J over the valid leads p = {j_p:.3f}; invalid temperature leads "
        + ("all flagged" if temperature_flagged else "NOT all flagged"),
    )
    lift = tables["lift"]
    pooled = lift[lift["study_id"].str.endswith("_all") | (lift["method"] == "experiment")]
    pre = dict(zip(pooled["study_id"], pooled["pretrend_p_value"], strict=True))
    rejected = {k: p for k, p in pre.items() if p is not None and p < 0.05}
    add(
        "lift",
        "pretrend",
        not rejected,
        pre,
        f"pre-trend rejected for {', '.join(rejected)}" if rejected else f"no pre-trend in {len(pre)} studies",
    )
    placebo = lift[lift["method"] == "did_stacked_placebo"]
    covered = {r.study_id: (r.ci_lower, r.ci_upper) for r in placebo.itertuples()}
    found = {k: (lo, hi) for k, (lo, hi) in covered.items() if not lo <= 0 <= hi}
    add(
        "lift",
        "placebo",
        not found,
        covered,
        "; ".join(f"{k} finds an effect: 95% CI {lo:+,.0f} to {hi:+,.0f}" for k, (lo, hi) in found.items())
        if found
        else f"{len(covered)} placebo shocks find nothing (every CI covers 0)",
    )
    lt = tables["lift_tests"]
    ok = bool(len(lt)) and bool((lt["sigma"] > 0).all() and lt["consistent_sign"].all())
    add(
        "lift_tests",
        "pymc_ready",
        ok,
        {"rows": len(lt)},
        f"{len(lt)} lift-test rows" + ("" if ok else ": bad sigma or signs"),
    )
    return out
