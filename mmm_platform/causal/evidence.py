"""Plain-language statements and plots of the causal results (matplotlib Figures; defs/ turns them into
metadata)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

UNITS = {"temp_mean_c": "°C", "precip_mm": "mm"}
NAMES = {"temp_mean_c": "each extra °C", "precip_mm": "each extra mm of rain"}


def money(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    sign = "-" if x < 0 else "+"
    x = abs(x)
    if x >= 1e6:
        return f"{sign}${x / 1e6:,.2f}M"
    if x >= 1e4:
        return f"{sign}${x / 1e3:,.1f}k"
    return f"{sign}${x:,.0f}"


def p_text(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def ci_text(lo: float, hi: float, level: float = 0.95) -> str:
    return f"{level:.0%} CI {money(lo)} to {money(hi)}"


def weather_statement(variable: str, outcome: str, method: str, est: float, lo: float, hi: float, p: float) -> str:
    unit = "units" if outcome == "units" else "revenue"
    value = f"{est:+,.1f} units" if outcome == "units" else money(est)
    bounds = f"95% CI {lo:+,.1f} to {hi:+,.1f}" if outcome == "units" else ci_text(lo, hi)
    how = {
        "ols": "naive OLS (confounded by forecast-driven demand)",
        "iv_2sls": "forecast-error IV",
        "iv_2sls_overid": "forecast-error IV, leads 0 and 1",
    }.get(method, method)
    return f"By {how}, {NAMES.get(variable, variable)} moves {unit} by {value} per store-day ({bounds}, {p_text(p)})."


def lift_statement(treatment: str, att: float, lo: float, hi: float, p: float, total: float | None = None) -> str:
    verb = "drove" if att >= 0 else "cut"
    label = {
        "storm": "Storms",
        "heatwave": "Heatwaves",
        "severe_alert": "Severe-weather alerts",
    }.get(treatment.split(":")[0], treatment)
    if treatment.startswith(("holdout:", "geo_split:", "spend_up:", "experiment:")):
        kind, channel = treatment.split(":", 1)
        label = f"The {channel} {kind.replace('_', ' ')} test"
    if treatment.startswith("plan:"):
        label = f"Plan {treatment.split(':', 1)[1]}"
    if treatment == "weather_vs_normal":
        label = "Weather against normal"
    amount = money(abs(att)) if verb == "cut" else money(att)
    text = f"{label} {verb} revenue by {amount.lstrip('+')} per affected store-day ({ci_text(lo, hi)}, {p_text(p)})"
    if total is not None and math.isfinite(total):
        text += f"; {money(total)} in all"
    return text + "."


def figure_iv(fits: dict, variables: tuple[str, ...], truth: dict | None = None):
    """OLS against IV per variable, with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(variables), figsize=(3.2 * len(variables), 2.6))
    axes = np.atleast_1d(axes)
    for ax, v in zip(axes, variables, strict=True):
        labels, ests, errs = [], [], []
        for method in ("ols", "iv_2sls", "iv_2sls_overid"):
            f = fits.get(("revenue", method))
            if f is None:
                continue
            lo, hi = f.ci(v)
            labels.append(method)
            ests.append(f.params[v])
            errs.append((hi - lo) / 2)
        ax.errorbar(range(len(ests)), ests, yerr=errs, fmt="o", capsize=4)
        ax.set_xticks(range(len(ests)), labels, fontsize=7)
        ax.axhline(0, color="grey", lw=0.5)
        if truth and v in truth:
            ax.axhline(truth[v], color="green", ls="--", lw=1, label="truth")
        ax.set_title(f"$ per geo-day per {UNITS.get(v, v)}", fontsize=8)
    fig.tight_layout()
    return fig


def figure_event_study(coefficients: pd.DataFrame, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.errorbar(
        coefficients["k"],
        coefficients["estimate"],
        yerr=[coefficients["estimate"] - coefficients["ci_lower"], coefficients["ci_upper"] - coefficients["estimate"]],
        fmt="o",
        ms=3,
        capsize=2,
    )
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(-0.5, color="red", lw=0.5, ls=":")
    ax.set_xlabel("days from the start (reference: days -14..-8)", fontsize=7)
    ax.set_ylabel("$ per geo-day", fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
