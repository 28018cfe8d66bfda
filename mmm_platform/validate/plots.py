"""The backtest's figure (a matplotlib `Figure`; the Dagster wiring turns it into a PNG)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # never a window: figures are rendered to files

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def backtest_figure(predictions: pd.DataFrame, scores: pd.DataFrame) -> Figure:
    """One panel per fold: the actual total revenue per period before and after the origin, and
    each model's forecast over the horizon with its interval and MAPE; a fold a model could not
    forecast names why."""
    folds = sorted(scores["fold"].unique())
    cols = min(4, len(folds))
    rows = math.ceil(len(folds) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    models = list(dict.fromkeys(scores["model"]))
    for ax, fold in zip(axes.ravel(), folds, strict=False):
        s = scores[scores["fold"] == fold]
        p = predictions[predictions["fold"] == fold] if len(predictions) else predictions
        actual = p[p["model"] == "actual"]
        ax.plot(actual["date"], actual["revenue"], color="k", lw=1, marker=".", label="actual")
        notes = []
        for i, model in enumerate(models):
            row = s[s["model"] == model].iloc[0]
            if row["status"] != "ok":
                notes.append(f"{model}: {row['status']}")
                continue
            m = p[p["model"] == model]
            ax.fill_between(m["date"], m["lower"], m["upper"], color=f"C{i}", alpha=0.2)
            ax.plot(m["date"], m["revenue"], color=f"C{i}", lw=1.2, label=f"{model} (MAPE {row['mape']:.1%})")
        ax.axvline(pd.Timestamp(s["test_start"].iloc[0]), color="0.5", lw=0.8, ls="--")
        ax.set_title(f"fold {fold}: origin {s['train_end'].iloc[0]}", fontsize=9)
        ax.set_ylabel("revenue per period, all geos ($)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=30)
        if notes:
            ax.text(0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=6, va="bottom", wrap=True)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes.ravel()[len(folds) :]:
        ax.set_visible(False)
    fig.suptitle("Backtest: forecasts of held-out periods (interval shaded)", fontsize=11)
    fig.tight_layout()
    return fig
