"""Figure helpers: every chart titled and labelled, sized for an HTML report."""
from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["style", "table", "histogram", "accounting_bars", "trend_with_targets", "rate_bars", "matrix_heatmap",
           "daily_lines", "staffing_lines", "change_forest", "no_data"]

FIGSIZE = (8, 3.6)


def style() -> None:
    """The suite's look: seaborn whitegrid, compact fonts, PNG at a modest resolution."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    plt.rcParams["figure.dpi"] = 90
    pd.set_option("display.precision", 3)


def table(frame: pd.DataFrame, title: str, precision: int = 3):
    """A table with its title as caption, numbers to ``precision`` decimals, empty cells blank
    (nothing to measure), for display in a report."""
    uuid = hashlib.sha1(title.encode()).hexdigest()[:8]  # stable ids: the same report gives the same HTML
    styler = frame.style.set_uuid(uuid).set_caption(title).format(precision=precision, na_rep="", thousands=",")
    return styler.set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold; "
                                                                      "font-size: 1.05em; text-align: left;"}])


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


def no_data(ax, text: str = "no values") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def trend_with_targets(frame: pd.DataFrame, value: str, title: str, ylabel: str, target: str | None = None,
                       order: list[str] | None = None, percent: bool = False):
    """One line per tier over weeks (columns week, tier, value[, target]); the tier's target as
    a dashed line of the same colour."""
    fig, ax = plt.subplots(figsize=(9, 4))
    tiers = [t for t in (order or sorted(frame["tier"].astype(str).unique())) if (frame["tier"] == t).any()]
    palette = dict(zip(tiers, sns.color_palette(n_colors=max(len(tiers), 1))))
    for tier in tiers:
        d = frame[frame["tier"] == tier]
        ax.plot(d["week"], d[value], label=tier, color=palette[tier], lw=1.4)
        if target is not None and d[target].notna().any():
            ax.axhline(d[target].dropna().iloc[0], color=palette[tier], ls="--", lw=1, alpha=0.8)
    if not tiers:
        no_data(ax)
    if percent:
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("week (Monday start, UTC)")
    if tiers:
        ax.legend(title="tier" + (" (dashed: target)" if target else ""), fontsize=8, ncol=min(len(tiers), 5))
    fig.tight_layout()
    return fig


def rate_bars(table: pd.DataFrame, rate: str, title: str, n: str, xlabel: str = "rate"):
    """Horizontal bars of a rate per row with its Wilson interval (``rate``_low/_high) and n."""
    t = table[table[n] > 0]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(t), 2) + 1.2))
    if len(t):
        labels = [str(i) if not isinstance(i, tuple) else " / ".join(map(str, i)) for i in t.index]
        y = np.arange(len(t))[::-1]
        err = np.vstack([t[rate] - t[f"{rate}_low"], t[f"{rate}_high"] - t[rate]])
        ax.barh(y, t[rate], color=sns.color_palette()[0], xerr=err, capsize=3)
        ax.set_yticks(y, labels)
        for yi, (r, k) in zip(y, zip(t[rate], t[n])):
            ax.text(0.01, yi, f"{r:.1%}  n = {k:,}", va="center", ha="left", color="white", fontsize=8)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel + " (bars: 95% Wilson interval)")
    fig.tight_layout()
    return fig


def matrix_heatmap(matrix: pd.DataFrame, title: str, fmt: str = ",d"):
    """Annotated heatmap of a count matrix (e.g. entry tier x resolving tier)."""
    fig, ax = plt.subplots(figsize=(1.1 * matrix.shape[1] + 3, 0.6 * matrix.shape[0] + 1.6))
    sns.heatmap(matrix, annot=True, fmt=fmt, cmap="Blues", cbar=False, ax=ax, linewidths=0.5)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def daily_lines(frame: pd.DataFrame, title: str, ylabel: str):
    """One line per column over the index (days)."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    cols = [c for c in frame.columns if frame[c].abs().sum() > 0]
    if cols:
        frame[cols].plot(ax=ax, lw=1.2)
        ax.legend(title="tier", fontsize=8, ncol=min(len(cols), 5))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    fig.tight_layout()
    return fig


def staffing_lines(table: pd.DataFrame, title: str):
    """Required agents per hour of day, one step line per tier (staffing.staffing_table)."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for tier, d in table.groupby("tier", observed=True, sort=False):
        ax.step(d["hour"], d["agents"], where="mid", label=str(tier))
    if len(table):
        ax.legend(title="tier", fontsize=8)
        ax.set_xticks(range(0, 24, 2))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("agents needed")
    fig.tight_layout()
    return fig


def change_forest(table: pd.DataFrame, title: str):
    """Relative change (after / before - 1) per metric with its bootstrap 95% interval."""
    t = table.dropna(subset=["relative_change", "relative_ci_low"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(t), 2) + 1.2))
    if len(t):
        y = np.arange(len(t))[::-1]
        err = np.vstack([t["relative_change"] - t["relative_ci_low"], t["relative_ci_high"] - t["relative_change"]])
        ax.errorbar(t["relative_change"], y, xerr=err, fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(y, [f"{m} ({tier})" for m, tier in zip(t["label"], t["tier"])])
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("change after vs before (95% bootstrap interval)")
    fig.tight_layout()
    return fig
