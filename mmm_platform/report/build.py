"""The one-page HTML report: what the warehouse says about one refit, for a reader without Dagster.

Self-contained on purpose (inline CSS, figures as base64 PNG data URIs, no script, no font or style
sheet from elsewhere), so it opens from a file, offline, mailed or archived. Every text that comes
from the data is escaped. Each section reads one table; when it is missing (or lacks the columns or
rows it needs) the section says so and names the asset that writes it, and the page is still built.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from mmm_platform.causal.catalog import IDENTIFYING_ASSUMPTION, PER_EVENT_STUDY
from mmm_platform.causal.evidence import UNITS, ci_text, money, p_text
from mmm_platform.mmm import plots
from mmm_platform.mmm.config import Checks
from mmm_platform.mmm.convergence import convergence_check
from mmm_platform.quality.checks import CheckOutcome
from mmm_platform.report.png import png_base64
from mmm_platform.report.sources import REFIT_TABLES, SOURCES, Rows, read, refit_as_of, truth_roas

#: resolution of the embedded figures (their inches come from mmm_platform.mmm.plots)
DPI = 100
ALL = "all"
#: a first-stage F below this is a weak instrument (the causal suite's instrument_strength check)
WEAK_F = 10.0


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    body: str
    #: why the section has nothing to show (its table is missing, lacks columns or rows); () if shown
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    html: str
    #: the refit the MMM sections describe; None when the warehouse holds none
    as_of: dt.date | None
    sections: tuple[Section, ...]

    @property
    def present(self) -> list[str]:
        return [s.name for s in self.sections if not s.missing]

    @property
    def missing(self) -> dict[str, str]:
        return {s.name: "; ".join(s.missing) for s in self.sections if s.missing}


# --- formatting ---------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _code(text: str) -> str:
    """Escaped text with `backticks` shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _dollars(x: Any, *, signed: bool = False) -> str:
    if not _finite(x):
        return "n/a"
    sign = "-" if float(x) < 0 else ("+" if signed and float(x) > 0 else "")
    return f"{sign}${abs(float(x)):,.0f}"


def _num(x: Any, spec: str = ".2f") -> str:
    return format(float(x), spec) if _finite(x) else "n/a"


def _period(frame: pd.DataFrame) -> str:
    days = int(frame["period_days"].iloc[0]) if "period_days" in frame and _finite(frame["period_days"].iloc[0]) else 0
    return {1: "day", 7: "week"}.get(days, f"{days} days" if days else "period")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, text_columns: int = 1, total: bool = False) -> str:
    """An HTML table of escaped cells; columns after the first `text_columns` are numbers (right
    aligned); `total`: the last row is a total."""

    def row(cells: Sequence[Any], tag: str, cls: str = "") -> str:
        tds = "".join(f"<{tag}{' class=n' if i >= text_columns else ''}>{esc(c)}</{tag}>" for i, c in enumerate(cells))
        return f"<tr{cls}>{tds}</tr>"

    body = [row(r, "td", ' class="total"' if total and i == len(rows) - 1 else "") for i, r in enumerate(rows)]
    return f"<table><thead>{row(headers, 'th')}</thead><tbody>{''.join(body)}</tbody></table>"


def _figure(fig: Any, alt: str) -> str:
    return f'<img src="data:image/png;base64,{png_base64(fig, DPI)}" alt="{esc(alt)}">'


def _note(text: str) -> str:
    return f'<p class="note">{_code(text)}</p>'


def _absent(rows: Rows) -> str:
    source = SOURCES[rows.table]
    made = f"It is written by asset `{source.asset}` ({source.how})." if source.asset else source.how.capitalize() + "."
    return f'<p class="missing"><strong>Not available:</strong> {_code(rows.problem)}. {_code(made)}</p>'


def _section(name: str, title: str, rows: Rows, render: Callable[[pd.DataFrame], str]) -> Section:
    if not rows.ok:
        return Section(name, title, _absent(rows), (rows.problem,))
    return Section(name, title, render(rows.frame))


# --- sections -----------------------------------------------------------------------------------


def _evidence(lift: pd.DataFrame) -> str:
    single = lift["study_id"].astype(str).str.match(PER_EVENT_STUDY)
    shown = lift[~single & lift["statement"].notna()]
    items = "".join(
        f'<li>{esc(r.statement)} <span class="tag">{esc(r.study_id)} · {esc(r.method)}</span></li>'
        for r in shown.itertuples()
    )
    as_of = f" Causal suite data up to {pd.Timestamp(lift['as_of'].iloc[0]):%Y-%m-%d}." if "as_of" in lift else ""
    return (
        _note(
            "Measured without the marketing-mix model: weather shocks by difference-in-differences, "
            "experiments as randomized comparisons, plans as quasi-experiments. Placebos should find nothing."
            + (f" The single-event studies ({int(single.sum())}) are in `causal.lift` too." if single.any() else "")
            + as_of
        )
        + f'<ul class="evidence">{items}</ul>'
    )


def _effect(row: Any, outcome: str) -> str:
    if row is None or not _finite(row.effect_per_unit):
        return "n/a"
    if outcome == "revenue":
        return f"{money(row.effect_per_unit)} ({ci_text(row.ci_lower, row.ci_upper)})"
    return (
        f"{_num(row.effect_per_unit, '+,.1f')} (95% CI {_num(row.ci_lower, '+,.1f')} to {_num(row.ci_upper, '+,.1f')})"
    )


def _weather(effects: pd.DataFrame) -> str:
    national = effects[effects["method"].isin(["ols", "iv_2sls"])]
    if "geo_cluster" in national:
        national = national[national["geo_cluster"].isna()]
    if national.empty:
        return _note("`causal.weather_effects` has no national `ols` or `iv_2sls` rows.")
    rows = []
    for (outcome, variable), group in national.groupby(["outcome", "weather_variable"], sort=False):
        by = {r.method: r for r in group.itertuples()}
        ols, iv = by.get("ols"), by.get("iv_2sls")
        f = iv.first_stage_f if iv is not None else None
        weak = " (weak)" if _finite(f) and float(f) < WEAK_F else ""
        p = p_text(float(iv.p_value)) if iv is not None and "p_value" in group and _finite(iv.p_value) else ""
        rows.append(
            [
                f"{variable} (per {UNITS.get(variable, 'unit')})",
                outcome,
                _effect(ols, outcome),
                _effect(iv, outcome),
                p,
                _num(f, ",.0f") + weak,
            ]
        )
    statements = ""
    if "statement" in national:
        iv_rev = national[(national["method"] == "iv_2sls") & (national["outcome"] == "revenue")]
        statements = "".join(f"<li>{esc(s)}</li>" for s in iv_rev["statement"].dropna())
    return (
        _note(
            "Effect per store-day of one more unit of observed weather. OLS is confounded (marketing and shoppers "
            "react to the forecast); the IV uses only the forecast's error, which nobody could react to."
        )
        + _table(
            ["Weather", "Outcome", "OLS (95% CI)", "IV 2SLS (95% CI)", "IV p-value", "First-stage F"],
            rows,
            text_columns=2,
        )
        + (f'<ul class="evidence">{statements}</ul>' if statements else "")
        + f"<details><summary>Why the forecast error is a valid instrument</summary><p>{esc(IDENTIFYING_ASSUMPTION)}</p></details>"
    )


def _roas(roas: pd.DataFrame, truth: dict[str, float] | None, verdict: CheckOutcome | None) -> str:
    national = roas[roas["geo_id"] == ALL].sort_values("roas", ascending=False)
    if national.empty:
        return _note("`mmm.channel_roas` has no rows for all geos (`geo_id = 'all'`).")
    headers = ["Channel", "Group", "Spend", "Incremental revenue", "ROAS", "ROAS 90% HDI", "mROAS"]
    if truth:
        headers.append("True ROAS (demo world's truth)")
    rows = []
    for r in national.itertuples():
        row = [
            r.channel,
            r.channel_group,
            _dollars(r.spend),
            _dollars(r.incremental_revenue),
            _num(r.roas),
            f"{_num(r.roas_lower)} to {_num(r.roas_upper)}",
            _num(r.mroas),
        ]
        if truth:
            row.append(_num(truth.get(r.channel)))
        rows.append(row)
    spend, inc = national["spend"].sum(), national["incremental_revenue"].sum()
    rows.append(
        ["All media", "", _dollars(spend), _dollars(inc), _num(inc / spend if spend else None), "", ""]
        + ([""] if truth else [])
    )
    banner = ""
    if verdict is not None and not verdict.passed:
        banner = (
            '<p class="warn"><strong>The model did NOT converge</strong> (see Model health): '
            "read these figures as provisional.</p>"
        )
    return (
        banner
        + _note(
            "ROAS: incremental revenue (the model's revenue minus the same with the channel switched off) per "
            "dollar spent over the window; above 1 the channel paid for itself. mROAS: revenue from the next "
            "dollar at today's spend level."
            + (" The truth column is the simulated demo world's known answer, not an estimate." if truth else "")
        )
        + _table(headers, rows, text_columns=2, total=True)
        + _figure(plots.roas_figure(roas, truth), "ROAS by channel with 90% intervals")
    )


def _curves(curves: pd.DataFrame) -> str:
    national = curves[curves["geo_id"] == ALL]
    if national.empty:
        return _note("`mmm.response_curves` has no rows for all geos (`geo_id = 'all'`).")
    period = _period(national)
    rows = []
    for channel, d in national.groupby("channel", sort=True):
        at = d.iloc[(d["spend"] - d["current_spend"]).abs().argmin()]
        rows.append(
            [
                channel,
                _dollars(at["current_spend"]),
                _dollars(at["expected_revenue"]),
                f"{_dollars(at['revenue_lower'])} to {_dollars(at['revenue_upper'])}",
                _num(at["mroas"]),
            ]
        )
    return (
        _note(
            f"Expected incremental revenue per {period} against spend per {period}, with its 90% interval; the "
            "dashed line is today's spend. Where the curve flattens, more spend buys little."
        )
        + _table(["Channel", f"Spend per {period}", f"Revenue per {period}", "90% HDI", "mROAS at current spend"], rows)
        + _figure(plots.response_curves_figure(curves), "response curves by channel")
    )


def _contributions(over_time: pd.DataFrame) -> str:
    channels = [c.removeprefix("contribution_") for c in over_time.columns if c.startswith("contribution_")]
    if not channels:
        return _note("`mmm.contributions` has no `contribution_<channel>` column.")
    media = over_time[[f"contribution_{c}" for c in channels]].sum().sum()
    revenue = over_time["revenue"].sum()
    share = f" Media drove {media / revenue:.1%} of revenue over the window." if revenue else ""
    return (
        _note("What each channel added to revenue, period by period (posterior mean, all geos)." + share)
        + _figure(plots.contributions_figure(over_time, channels), "revenue decomposed into baseline and channels")
        + _figure(plots.media_contributions_figure(over_time, channels), "media contributions over time")
    )


DIAGNOSTICS = {
    "sampler": ("Sampler", None),
    "chains": ("Chains", ".0f"),
    "draws": ("Draws per chain", ".0f"),
    "max_rhat": ("Max R-hat", ".3f"),
    "min_ess_bulk": ("Min bulk ESS", ",.0f"),
    "divergences": ("Divergences", ".0f"),
    "fit_seconds": ("Fit seconds", ",.1f"),
    "r2_in_sample": ("R² (in sample)", ".3f"),
    "mape_in_sample": ("MAPE (in sample)", ".1%"),
}


def _diagnostics(diag: pd.DataFrame, verdict: CheckOutcome) -> str:
    row = diag.iloc[0]
    cells = [
        [label, str(row[k]) if spec is None else _num(row[k], spec)]
        for k, (label, spec) in DIAGNOSTICS.items()
        if k in row
    ]
    head = '<p class="verdict ok">Converged</p>' if verdict.passed else '<p class="verdict bad">NOT converged</p>'
    details = "".join(f"<li>{esc(d)}</li>" for d in verdict.details)
    return (
        head
        + f"<p>{esc(verdict.summary)}</p>"
        + (f"<ul>{details}</ul>" if details else "")
        + _note(
            "R-hat near 1, enough effective draws and no divergences mean the sampler explored the model; "
            "R² and MAPE say how closely it follows the revenue it was fitted on."
        )
        + _table(["Measure", "Value"], cells)
    )


def _plan(recs: pd.DataFrame) -> str:
    plan_id = recs.sort_values("created_at")["plan_id"].iloc[-1]
    plan = recs[recs["plan_id"] == plan_id]
    by = (
        plan.groupby("channel", as_index=False)[["current_spend", "recommended_spend", "expected_incremental_revenue"]]
        .sum()
        .sort_values("recommended_spend", ascending=False)
    )
    period = _period(plan)
    rows = [
        [
            r.channel,
            _dollars(r.current_spend),
            _dollars(r.recommended_spend),
            _dollars(r.recommended_spend - r.current_spend, signed=True),
            _dollars(r.expected_incremental_revenue, signed=True),
        ]
        for r in by.itertuples()
    ]
    cur, rec, lift = by["current_spend"].sum(), by["recommended_spend"].sum(), by["expected_incremental_revenue"].sum()
    rows.append(
        ["All channels", _dollars(cur), _dollars(rec), _dollars(rec - cur, signed=True), _dollars(lift, signed=True)]
    )
    objective = f", maximising {plan['objective'].iloc[0]}" if "objective" in plan else ""
    return (
        _note(
            f"Plan `{plan_id}` (created {pd.Timestamp(plan['created_at'].iloc[0]):%Y-%m-%d %H:%M}{objective}): spend per {period} by channel, "
            f"summed over geos; the expected lift is the revenue per {period} the plan adds over today's spend, "
            "read off the response curves."
        )
        + _table(
            ["Channel", f"Current per {period}", f"Recommended per {period}", "Change", "Expected lift"],
            rows,
            total=True,
        )
        + _figure(plots.allocation_figure(by, period), "current against recommended spend by channel")
    )


def _backtest(backtest: pd.DataFrame) -> str:
    rows = []
    for model, g in backtest.groupby("model", sort=False):
        rows.append(
            [
                model,
                str(len(g)),
                *(
                    _num(g[c].mean(), spec) if c in g else "n/a"
                    for c, spec in [("mape", ".3f"), ("rmse", ",.0f"), ("interval_coverage", ".2f")]
                ),
                ", ".join(sorted(g["status"].astype(str).unique())),
            ]
        )
    return _note("Out-of-sample forecasts, fold by fold (means over folds).") + _table(
        ["Model", "Folds", "MAPE", "RMSE", "Interval coverage", "Status"], rows, text_columns=1
    )


#: the comparison's columns, in this order, and their headings
PEER_NAMES = {"mmm": "MMM (this platform)", "lightweight_mmm": "LightweightMMM", "robyn": "Robyn"}


def _peers(table: pd.DataFrame) -> str:
    ok = table[table["status"] == "ok"] if "status" in table else table
    models = [m for m in PEER_NAMES if m in set(table["model"])] + sorted(set(table["model"]) - set(PEER_NAMES))
    truth = "true_roas" in ok and ok["true_roas"].notna().any()
    headers = ["Channel"] + [f"{PEER_NAMES.get(m, m)} ROAS (90% interval)" for m in models]
    headers += ["True ROAS"] if truth else []
    rows = []
    for channel, g in ok.groupby("channel", sort=True):
        by = {r.model: r for r in g.itertuples()}
        cells = [
            f"{_num(by[m].roas)} ({_num(by[m].roas_lower)} to {_num(by[m].roas_upper)})" if m in by else "n/a"
            for m in models
        ]
        rows.append([channel, *cells, *([_num(g["true_roas"].iloc[0])] if truth else [])])
    windows = ", ".join(
        f"{PEER_NAMES.get(m, m)} {int(w)} days" for m, w in table.groupby("model", sort=False)["window_days"].max().items()
        if _finite(w)
    )  # fmt: skip
    problems = table[table["status"] != "ok"] if "status" in table else table.iloc[:0]
    notes = "".join(
        f"<li>{esc(PEER_NAMES.get(r.model, r.model))}{f' ({esc(r.channel)})' if isinstance(r.channel, str) else ''}: "
        f"{_code(r.status)}</li>"
        for r in problems.itertuples()
    )
    return (
        _note(
            "The modelling plan's peers, each in its own environment, fitted on the last days of the same data "
            "(national, daily); ROAS as this platform defines it: the revenue the channel's spend brought over the "
            f"model's window, per dollar. Windows: {windows or 'n/a'}."
            + (" The truth is the demo world's ROAS over its whole span." if truth else "")
        )
        + _table(headers, rows)
        + (f'<ul class="evidence">{notes}</ul>' if notes else "")
    )


# --- the page -----------------------------------------------------------------------------------

#: the columns each section needs from its table
REQUIRED = {
    "causal.lift": ("study_id", "method", "statement"),
    "causal.weather_effects": (
        "method", "weather_variable", "outcome", "effect_per_unit", "ci_lower", "ci_upper", "first_stage_f",
    ),
    "mmm.channel_roas": (
        "channel", "channel_group", "geo_id", "spend", "incremental_revenue", "roas", "roas_lower", "roas_upper",
        "mroas",
    ),
    "mmm.response_curves": (
        "channel", "geo_id", "spend", "current_spend", "expected_revenue", "revenue_lower", "revenue_upper", "mroas",
    ),
    "mmm.contributions": ("date", "revenue"),
    "mmm.diagnostics": ("max_rhat", "min_ess_bulk", "divergences"),
    "allocator.recommendations": (
        "plan_id", "created_at", "channel", "current_spend", "recommended_spend", "expected_incremental_revenue",
    ),
    "validation.backtest": ("model", "status"),
    "validation.model_comparison": ("model", "window_days", "channel", "roas", "roas_lower", "roas_upper", "status"),
}  # fmt: skip

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;
  max-width:1080px;margin:0 auto;padding:24px;line-height:1.45}
h1{margin:0 0 8px}h2{margin-top:36px;border-bottom:2px solid #e3e7ef;padding-bottom:4px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0;color:#4a5263}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
nav a{margin-right:12px}
table{border-collapse:collapse;margin:12px 0;font-size:14px}
th,td{padding:4px 10px;border-bottom:1px solid #e3e7ef;text-align:left}th{background:#f4f6fa}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600;border-top:2px solid #c9cfdb}
img{max-width:100%;height:auto;display:block;margin:12px 0}
.note{color:#4a5263;font-size:14px}.tag{color:#7a8294;font-size:12px;white-space:nowrap}
.missing{background:#fff7e0;border-left:4px solid #e0a800;padding:8px 12px}
.warn{background:#fdecec;border-left:4px solid #c62828;padding:8px 12px}
.verdict{font-size:20px;font-weight:700;margin:8px 0}.verdict.ok{color:#2e7d32}.verdict.bad{color:#c62828}
ul.evidence li{margin:4px 0}code{background:#f4f6fa;padding:0 3px}
"""


def _page(title: str, meta: list[tuple[str, str]], sections: Sequence[Section]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta)
    nav = "".join(f'<a href="#{s.name}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.name}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><dl class="meta">{items}</dl><nav>{nav}</nav></header>'
        f"{body}</body></html>\n"
    )


def _world(truth: dict | None) -> str:
    if truth is None:
        return "no truth.json in the landing zone: real data, no known answer"
    cfg = truth.get("meta", {}).get("config", {})
    if not isinstance(cfg, dict) or not cfg:
        return "demo world (truth.json in the landing zone)"
    return (
        f"demo world with known truth: seed {cfg.get('seed')}, {cfg.get('n_geos')} geos, "
        f"{cfg.get('n_days')} days from {cfg.get('start')}"
    )


def build_report(
    con: duckdb.DuckDBPyConnection,
    *,
    until: dt.date | None = None,
    truth: dict | None = None,
    checks: Checks | None = None,
    warehouse: str = "",
    run_id: str = "",
    now: dt.datetime | None = None,
) -> Report:
    """The report of the newest refit on or before `until` (None: the newest) and the newest causal
    run. `truth`: the demo world's truth.json, shown beside the estimates; `checks`: the
    convergence bar (the model config's)."""
    as_of = refit_as_of(con, until)

    def rows(table: str) -> Rows:
        if table in REFIT_TABLES:
            return read(con, table, REQUIRED[table], as_of=as_of, until=until)
        if table == "validation.model_comparison":  # written per refit week, keyed by its as_of
            return read(con, table, REQUIRED[table], until=until)
        return read(con, table, REQUIRED[table])

    diag = rows("mmm.diagnostics")
    verdict = convergence_check(diag.frame.iloc[0].to_dict(), checks or Checks()) if diag.ok else None
    roas = rows("mmm.channel_roas")
    true_roas = truth_roas(truth)
    sections = (
        _section("evidence", "Evidence: what caused sales", rows("causal.lift"), _evidence),
        _section("weather", "Weather effects: IV against OLS", rows("causal.weather_effects"), _weather),
        _section("roas", "Return on ad spend by channel", roas, lambda f: _roas(f, true_roas, verdict)),
        _section("curves", "Response curves", rows("mmm.response_curves"), _curves),
        _section("contributions", "Contributions over time", rows("mmm.contributions"), _contributions),
        _section("diagnostics", "Model health", diag, lambda f: _diagnostics(f, verdict)),
        _section("plan", "Budget plan", rows("allocator.recommendations"), _plan),
        _section("backtest", "Backtest", rows("validation.backtest"), _backtest),
        _section("peers", "Peer models: LightweightMMM and Robyn", rows("validation.model_comparison"), _peers),
    )
    fit_run = roas.frame["fit_run_id"].iloc[0] if roas.ok and "fit_run_id" in roas.frame else None
    meta = [
        ("World", _world(truth)),
        ("Warehouse", warehouse or "n/a"),
        ("Data up to (as_of)", str(as_of) if as_of else f"no MMM refit{f' on or before {until}' if until else ''}"),
        ("Generated", f"{(now or dt.datetime.now(dt.UTC)):%Y-%m-%d %H:%M} UTC"),
        ("Report run", run_id or "n/a"),
    ]
    if fit_run:
        meta.append(("Model fit run", str(fit_run)))
    return Report(_page("Marketing mix report", meta, sections), as_of, sections)


def write_report(text: str, path: Path) -> int:
    """Write the page atomically (a reader, or a browser reloading, never sees half of it); bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the page from whoever serves it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)
