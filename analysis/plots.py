"""Figure helpers: every chart titled and labelled, sized for an HTML report."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["style", "histogram", "accounting_bars"]

FIGSIZE = (8, 3.6)


def style() -> None:
    """The suite's look: seaborn whitegrid, compact fonts, PNG at a modest resolution."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    plt.rcParams["figure.dpi"] = 90
    pd.set_option("display.precision", 3)


def histogram(values: pd.Series, title: str, xlabel: str, log_x: bool = False, bins: int = 50):
    """Histogram of a numeric series (nulls left out, n in the title); log-spaced bins on request."""
    v = pd.Series(values).dropna()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    if log_x:
        v = v[v > 0]
    if len(v):
        edges = (np.geomspace(v.min(), v.max(), bins) if log_x and v.min() < v.max() else bins)
        ax.hist(v, bins=edges, color=sns.color_palette()[0])
        if log_x:
            ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} (n = {len(v):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    fig.tight_layout()
    return fig


def accounting_bars(table: pd.DataFrame, title: str = "Rows read, used and set aside per table"):
    """Horizontal stacked bars of rows used and set aside per table (quality.accounting_table)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = table[["rows used", "rows set aside"]]
    t.plot.barh(stacked=True, ax=ax, color=[sns.color_palette()[0], sns.color_palette()[3]])
    ax.set_title(title)
    ax.set_xlabel("rows")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
