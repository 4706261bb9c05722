"""Figure helpers: every chart titled and labelled, sized for an HTML report."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from lifelines.plotting import add_at_risk_counts

from analysis.present.page import category

__all__ = ["style", "histogram", "cumulative_share", "accounting_bars", "trend_with_targets", "rate_bars", "matrix_heatmap",
           "daily_lines", "staffing_lines", "change_forest", "no_data", "cohort_heatmap", "ltv_by_horizon",
           "km_curves", "hazard_forest", "rate_by_cohort", "funnel_bars"]

FIGSIZE = (8, 3.6)


def style() -> None:
    """The suite's look: seaborn whitegrid, compact fonts, PNG at a modest resolution. Text is
    never parsed as mathtext: labels come from the data (a segment "$5 plan, $10 plan" is text,
    and one like "$\\x$" would otherwise fail the figure)."""
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    plt.rcParams["figure.dpi"] = 90
    plt.rcParams["text.parse_math"] = False
    pd.set_option("display.precision", 3)


def histogram(counts: pd.DataFrame, title: str, xlabel: str, log_x: bool = False):
    """A histogram already counted (``quality.histogram_counts``: left, right, rows per bin), n in
    the title; a log x axis on request."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    n = int(counts["rows"].sum()) if len(counts) else 0
    if n:
        edges = np.r_[counts["left"].to_numpy(), counts["right"].to_numpy()[-1:]]
        if edges[0] == edges[-1]:   # one value: a bar of unit width around it
            edges = np.array([edges[0] * 0.9, edges[0] * 1.1]) if log_x else np.array([edges[0] - 0.5, edges[0] + 0.5])
        ax.stairs(counts["rows"].to_numpy(), edges, fill=True, color=sns.color_palette()[0])
        if log_x:   # plain numbers at the decades: the reports do not parse mathtext (10^3 would show as code)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.FuncFormatter(
                lambda x, _: f"{x:,.0f}" if x >= 1 else f"{x:g}"))
            ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} (n = {n:,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    fig.tight_layout()
    return fig


def accounting_bars(table: pd.DataFrame, title: str = "Rows read, used and set aside per table"):
    """Horizontal stacked bars of rows used and set aside per table (quality.accounting_table)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = table[["rows used", "rows set aside"]]
    if len(t):
        t.plot.barh(stacked=True, ax=ax, color=[sns.color_palette()[0], sns.color_palette()[3]])
    else:
        no_data(ax, "no table given")
    ax.set_title(title)
    ax.set_xlabel("rows")
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def cumulative_share(values: pd.Series, title: str, xlabel: str, mark: float | None = None,
                     mark_label: str = "", xmax: float | None = None):
    """The share of values at or below x (an empirical cumulative curve: "how many paid within x
    days"), on a linear axis up to ``xmax`` (default: the 95th percentile, the rest said in the
    corner), with a labelled vertical line at ``mark`` and the share there."""
    v = pd.Series(values).dropna().sort_values().to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    if len(v):
        share = np.arange(1, len(v) + 1) / len(v)
        top = xmax if xmax is not None else max(float(np.quantile(v, 0.95)), (mark or 0) * 2, 1.0)
        ax.step(np.concatenate([[0.0], v]), np.concatenate([[0.0], share]), where="post", lw=1.6)
        ax.set_xlim(0, top)
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        if mark is not None:
            within = float((v <= mark).mean())
            ax.axvline(mark, color="grey", ls="--", lw=1)
            ax.text(mark, within, f"  {within:.0%} within {mark_label or mark}", va="bottom", fontsize=8)
        beyond = int((v > top).sum())
        if beyond:
            ax.text(0.99, 0.03, f"{beyond:,} of {len(v):,} beyond the axis", transform=ax.transAxes, ha="right",
                    fontsize=7, color="dimgrey")
    else:
        no_data(ax)
    ax.set_title(f"{title} (n = {len(v):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of clients")
    fig.tight_layout()
    return fig


def no_data(ax, text: str = "no values") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _intervals(ax, at, low, high, horizontal: bool) -> None:
    """Interval lines from ``low`` to ``high`` with end caps at positions ``at``. Unlike
    errorbar's distances from the estimate, a percentile bootstrap interval need not contain its
    estimate (small samples, medians): it is drawn where it lies."""
    lines, caps = (ax.hlines, "|") if horizontal else (ax.vlines, "_")
    lines(at, low, high, color="black", lw=1, zorder=3)
    for end in (low, high):
        ax.plot(*((end, at) if horizontal else (at, end)), caps, color="black", ms=6, zorder=3)


def trend_with_targets(frame: pd.DataFrame, value: str, title: str, ylabel: str, target: str | None = None,
                       order: list[str] | None = None, percent: bool = False):
    """Small multiples: one panel per tier over weeks (columns week, tier, value[, target]), each
    axis scaled to the tier's data (not to its target); the tier's target as a labelled dashed
    line when it lies within reach of the data, else named in the panel ("target 1,440 min,
    above the axis"), so a target far above the data cannot squash it flat."""
    tiers = [t for t in (order or sorted(frame["tier"].astype(str).unique())) if (frame["tier"] == t).any()]
    n = max(len(tiers), 1)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.4 * rows + 0.8), sharex=True, squeeze=False)
    palette = dict(zip(tiers, sns.color_palette(n_colors=n)))
    show = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:,.0f}")
    for ax, tier in zip(axes.flat, tiers):
        d = frame[frame["tier"] == tier]
        ax.plot(d["week"], d[value], color=palette[tier], lw=1.4)
        data_max = float(np.nanmax(d[value].to_numpy(dtype=float))) if d[value].notna().any() else 0.0
        top = data_max * 1.15 if data_max > 0 else 1.0
        if target is not None and d[target].notna().any():
            goal = float(d[target].dropna().iloc[0])
            if goal <= top * 1.5:
                top = max(top, goal * 1.1)
                ax.axhline(goal, color="grey", ls="--", lw=1)
                ax.text(0.01, goal, f" target {show(goal)}", transform=ax.get_yaxis_transform(), va="bottom",
                        fontsize=7, color="dimgrey")
            else:
                ax.text(0.99, 0.95, f"target {show(goal)}, above the axis", transform=ax.transAxes, ha="right",
                        va="top", fontsize=7, color="dimgrey")
        ax.set_ylim(0, top)
        ax.set_title(str(tier), fontsize=9)
        if percent:
            ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(tiers):]:
        ax.axis("off")
    if not tiers:
        no_data(axes.flat[0])
    fig.suptitle(title)
    fig.supylabel(ylabel, fontsize=9)
    fig.supxlabel("week (Monday start, UTC)", fontsize=9)
    fig.tight_layout()
    return fig


def rate_bars(table: pd.DataFrame, rate: str, title: str, n: str, xlabel: str = "rate"):
    """Horizontal bars of a rate per row with its Wilson interval (``rate``_low/_high) and n."""
    t = table[table[n] > 0]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(t), 2) + 1.2))
    if len(t):
        labels = [str(category(i)) if not isinstance(i, tuple) else " / ".join(str(category(v)) for v in i)
                  for i in t.index]
        y = np.arange(len(t))[::-1]
        err = np.clip(np.vstack([t[rate] - t[f"{rate}_low"], t[f"{rate}_high"] - t[rate]]), 0, None)  # Wilson ends at 0 or 1 may round past the rate
        ax.barh(y, t[rate], color=sns.color_palette()[0], xerr=err, capsize=3)
        ax.set_yticks(y, labels)
        top = min(1.0, max(float(t[f"{rate}_high"].max()), 0.01) * 1.15)   # the axis fits the data, not 0-100%
        # the values in a column right of the axes: never on a bar or a whisker
        for yi, r, k in zip(y, t[rate], t[n]):
            ax.text(1.02, yi, f"{r:.1%}  (n = {k:,})", transform=ax.get_yaxis_transform(), va="center", ha="left",
                    fontsize=9)
        ax.set_xlim(0, top)
        ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(nbins=5))   # room for each label
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel(xlabel + " (bars: 95% Wilson interval)")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
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
    """Erlang C per hour of day (staffing.staffing_table), three panels over a shared hour axis:
    the calls arriving per hour, the agents needed for the target, and the expected answer time
    those agents give; one line per voice tier, each axis scaled to its data."""
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    panels = (("calls_per_hour", "calls per hour", False), ("agents", "agents needed", True),
              ("asa_s", "expected answer time (s)", False))
    for ax, (col, ylabel, steps) in zip(axes, panels):
        for tier, d in table.groupby("tier", observed=True, sort=False):
            if steps:
                ax.step(d["hour"], d[col], where="mid", label=str(tier))
            else:
                ax.plot(d["hour"], d[col], marker="o", ms=3, label=str(tier))
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        if steps and len(table):
            ax.yaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_ylim(0, max(float(table[col].max()), 1) + 1)
    if len(table):
        axes[0].legend(title="tier", fontsize=8, ncol=min(table["tier"].nunique(), 5))
        axes[-1].set_xticks(range(0, 24, 2))
    else:
        for ax in axes:
            no_data(ax)
    axes[0].set_title(title)
    axes[-1].set_xlabel("hour of day")
    fig.tight_layout()
    return fig


def change_forest(table: pd.DataFrame, title: str):
    """Relative change (after / before - 1) per metric with its bootstrap 95% interval."""
    t = table.dropna(subset=["relative_change", "relative_ci_low"])
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(t), 2) + 1.2))
    if len(t):
        y = np.arange(len(t))[::-1]
        _intervals(ax, y, t["relative_ci_low"], t["relative_ci_high"], horizontal=True)
        ax.plot(t["relative_change"], y, "o", zorder=4)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(y, [f"{m} ({tier})" for m, tier in zip(t["label"], t["tier"])])
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("change after vs before (95% bootstrap interval)")
    fig.tight_layout()
    return fig


def cohort_heatmap(values: pd.DataFrame, sizes: pd.Series, title: str, max_age: int = 24):
    """Cohort x age heatmap of cumulative LTV; masked cells (not fully observed) left blank and
    hatched, never drawn as zero; the cohort's clients in the row label."""
    v = values.iloc[:, :max_age]
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.5 * v.shape[1], 14), 0.28 * max(len(v), 4) + 1.5))
    if v.size:
        ax.patch.set(hatch="//", edgecolor="lightgrey")
        # every cell carries its value (thousands as "14.5k" where the grid is wide)
        wide = v.shape[1] > 12
        text = v.map(lambda x: "" if pd.isna(x) else (f"{x / 1000:.1f}k" if wide and abs(x) >= 1000 else f"{x:,.0f}"))
        sns.heatmap(v, ax=ax, cmap="viridis", mask=v.isna(), cbar_kws={"label": "LTV per client"},
                    annot=text.to_numpy(), fmt="", annot_kws={"fontsize": 6 if wide else 7})
        ax.set_yticks(np.arange(len(v)) + 0.5, [f"{c} (n={sizes.get(c, 0):,})" for c in v.index], fontsize=7)
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("months since first charge (hatched: not yet observed for every client)")
    ax.set_ylabel("cohort (month of first charge)")
    fig.tight_layout()
    return fig


def ltv_by_horizon(table: pd.DataFrame, title: str, groups: list[str]):
    """Mean LTV per group at each horizon with its bootstrap interval (cohorts.ltv_by_group)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    t = table[table["group"].isin(groups)]
    horizons = list(dict.fromkeys(t["horizon"]))
    width = 0.8 / max(len(groups), 1)
    for i, g in enumerate(groups):
        d = t[t["group"] == g].set_index("horizon").reindex(horizons)
        x = np.arange(len(horizons)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(x, d["ltv"], width, label=category(g))
        known = d["ci_low"].notna().to_numpy()
        _intervals(ax, x[known], d["ci_low"][known], d["ci_high"][known], horizontal=False)
    if len(t):
        months = [int(h[4:-1]) for h in horizons]
        ax.set_xticks(np.arange(len(horizons)), [f"{m} month{'s' if m != 1 else ''}" for m in months])
        ax.legend(fontsize=8)
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_ylabel("net payments per client")
    fig.tight_layout()
    return fig


def km_curves(fits: dict, title: str, at_risk: pd.DataFrame | None = None,
              xlabel: str = "months since first charge", ylabel: str = "share still paying"):
    """Kaplan-Meier curves with 95% bands, one per group, and the at-risk counts under the axis."""
    fig, ax = plt.subplots(figsize=(9, 4.6))
    for label, kmf in fits.items():
        kmf.plot_survival_function(ax=ax, ci_show=True, lw=1.4, label=str(category(label)))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    if at_risk is not None and len(at_risk) and fits:
        # lifelines' own table, aligned under the ticks (``at_risk`` says which groups to count)
        add_at_risk_counts(*[fits[g] for g in at_risk.index if g in fits], ax=ax, rows_to_show=["At risk"],
                           labels=[str(category(g)) for g in at_risk.index if g in fits])
    fig.tight_layout()
    return fig


def hazard_forest(effects: pd.DataFrame, title: str):
    """Hazard ratio per method (the index) with its 95% interval on a log axis; 1 (no effect) as
    a grey line."""
    est = effects.dropna(subset=["hazard_ratio"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(est), 2) + 1.3))
    if len(est):
        y = np.arange(len(est))[::-1]
        err = np.clip(np.vstack([est["hazard_ratio"] - est["ci_low"], est["ci_high"] - est["hazard_ratio"]]), 0, None)
        ax.errorbar(est["hazard_ratio"], y, xerr=err, fmt="o", capsize=3)
        ax.set_yticks(y, [str(category(i)) for i in est.index])
        ax.axvline(1, color="grey", lw=1)
        ax.set_xscale("log")
        lo, hi = min(est["ci_low"].min(), 1.0), max(est["ci_high"].max(), 1.0)
        ticks = [x for x in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0) if lo / 1.2 <= x <= hi * 1.2]
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("hazard ratio of churn, contacted vs not (log scale; < 1: less churn)")
    fig.tight_layout()
    return fig


def rate_by_cohort(table: pd.DataFrame, title: str):
    """A rate per cohort and group (long table: cohort, group, rate, rate_low, rate_high, clients)."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for g, d in table.groupby("group", sort=False):
        ax.plot(d["cohort"], d["rate"], marker="o", ms=3, label=category(g))
        ax.fill_between(d["cohort"], d["rate_low"], d["rate_high"], alpha=0.15)
    if len(table):
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    else:
        no_data(ax)
    ax.set_title(title)
    ax.set_ylabel("rate (band: 95% Wilson)")
    fig.tight_layout()
    return fig


def funnel_bars(table: pd.DataFrame, title: str, steps=("registrations", "reached", "paid"), xlabel: str = "clients"):
    """Horizontal funnel: clients at each step with the share of the first step."""
    t = table.loc[list(steps)]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    y = np.arange(len(t))[::-1]
    ax.barh(y, t["clients"], color=sns.color_palette()[:len(t)])
    top = t["clients"].iloc[0]
    for yi, (name, n) in zip(y, t["clients"].items()):
        share = f" ({n / top:.1%} of {category(steps[0])})" if top else ""
        ax.text(n, yi, f"  {n:,}{share}", va="center", fontsize=8)
    ax.set_yticks(y, [str(category(i)) for i in t.index])
    ax.set_xlim(0, max(top, 1) * 1.35)
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig
