"""Figures of a refit (matplotlib `Figure`s; the Dagster wiring turns them into PNGs)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # never a window: figures are rendered to files

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

ALL = "all"


def response_curves_figure(curves: pd.DataFrame, geo: str = ALL) -> Figure:
    """Expected revenue per period against spend per period, one panel per channel, with the HDI
    band, the current spend and the mROAS there."""
    df = curves[curves["geo_id"] == geo]
    chans = sorted(df["channel"].unique())
    n = len(chans)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, c in zip(axes.ravel(), chans, strict=False):
        d = df[df["channel"] == c].sort_values("spend")
        ax.fill_between(d["spend"], d["revenue_lower"], d["revenue_upper"], alpha=0.25, color="C0", label="90% HDI")
        ax.plot(d["spend"], d["expected_revenue"], color="C0", label="expected")
        cur = d["current_spend"].iloc[0]
        at = d.iloc[(d["spend"] - cur).abs().argsort()[:1]]
        ax.axvline(cur, color="0.4", ls="--", lw=0.8)
        ax.plot(at["spend"], at["expected_revenue"], "o", color="C3")
        ax.plot(d["spend"], d["spend"], color="0.6", lw=0.8, ls=":", label="break-even")
        ax.set_title(f"{c}: mROAS {float(at['mroas'].iloc[0]):.2f} at current", fontsize=9)
        ax.set_xlabel("spend per period ($)", fontsize=8)
        ax.set_ylabel("incremental revenue per period ($)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(f"Response curves ({geo})", fontsize=11)
    fig.tight_layout()
    return fig


def contributions_figure(over_time: pd.DataFrame, channels: list[str]) -> Figure:
    """National revenue decomposed: baseline and each channel's contribution, stacked."""
    nat = over_time.groupby("date").sum(numeric_only=True)
    fig, ax = plt.subplots(figsize=(11, 4))
    parts = [nat["baseline"]] if "baseline" in nat else []
    labels = ["baseline"] if parts else []
    for c in channels:
        parts.append(nat[f"contribution_{c}"])
        labels.append(c)
    ax.stackplot(nat.index, *parts, labels=labels, alpha=0.85)
    ax.plot(nat.index, nat["revenue"], color="k", lw=0.8, label="observed")
    ax.set_ylabel("revenue per period ($)")
    ax.set_title("Contribution decomposition (posterior mean, all geos)")
    ax.legend(ncol=4, fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def media_contributions_figure(over_time: pd.DataFrame, channels: list[str]) -> Figure:
    """Each channel's contribution over time (all geos), without the baseline that dwarfs it."""
    nat = over_time.groupby("date").sum(numeric_only=True)
    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.stackplot(nat.index, *[nat[f"contribution_{c}"] for c in channels], labels=channels, alpha=0.85)
    ax.set_ylabel("incremental revenue per period ($)")
    ax.set_title("Media contributions over time (posterior mean, all geos)")
    ax.legend(ncol=6, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def fit_figure(dates, observed: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> Figure:
    """Posterior fit of national revenue per period: observed, expected and its HDI."""
    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.fill_between(dates, lower, upper, alpha=0.3, color="C0", label="90% HDI of the expected revenue")
    ax.plot(dates, mean, color="C0", lw=1, label="expected")
    ax.plot(dates, observed, color="k", lw=0.8, label="observed")
    ax.set_ylabel("revenue per period ($)")
    ax.set_title("Posterior fit (all geos)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def roas_figure(roas: pd.DataFrame, truth: dict[str, float] | None = None) -> Figure:
    """ROAS per channel with its 90% HDI (all geos); break-even at 1; the truth when known."""
    df = roas[roas["geo_id"] == ALL].sort_values("roas")
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(df) + 1.5))
    y = np.arange(len(df))
    err = np.vstack([df["roas"] - df["roas_lower"], df["roas_upper"] - df["roas"]])
    colors = [
        "C3" if u < 1 else ("C1" if lo < 1 else "C2") for lo, u in zip(df["roas_lower"], df["roas_upper"], strict=True)
    ]
    ax.barh(y, df["roas"], xerr=err, color=colors, alpha=0.8, capsize=3)
    if truth:
        ax.plot([truth.get(c, np.nan) for c in df["channel"]], y, "kx", label="truth")
        ax.legend(fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, df["channel"])
    ax.set_xlabel("ROAS (incremental revenue / spend), 90% HDI")
    ax.set_title("ROAS by channel")
    fig.tight_layout()
    return fig


def allocation_figure(by_channel: pd.DataFrame, period: str = "period") -> Figure:
    """Current against recommended spend per channel (one plan, all geos): what the plan moves."""
    df = by_channel.sort_values("current_spend")
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(df) + 1.5))
    y = np.arange(len(df))
    ax.barh(y - 0.2, df["current_spend"], height=0.4, color="0.6", label="current")
    ax.barh(y + 0.2, df["recommended_spend"], height=0.4, color="C0", label="recommended")
    ax.set_yticks(y, df["channel"])
    ax.set_xlabel(f"spend per {period} ($)")
    ax.set_title("Budget plan by channel")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
