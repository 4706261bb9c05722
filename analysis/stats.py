"""Shared statistics: Wilson intervals, duration summaries and seeded bootstrap replicates.

Every random draw takes an explicit ``numpy.random.Generator`` built from a seed, so the same
data and seed give the same interval on every run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

__all__ = ["wilson_interval", "rate_table", "duration_aggregates", "quantile_replicates",
           "mean_replicates", "proportion_replicates", "block_length", "block_ratio_replicates",
           "percentile_interval", "NORMAL_LIMIT_N",
           "SKEW_LIMIT", "difference_interval", "hazard_to_risk_ratio", "smd_to_risk_ratio", "e_value", "e_value_interval"]


def wilson_interval(successes, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for successes / n (statsmodels ``proportion_confint``, method wilson).

    Vectorised over arrays; where n == 0 both bounds are NaN (no rate to bound).
    Example: 8 of 10 -> (0.490, 0.943).
    """
    k = np.asarray(successes, dtype="float64")
    m = np.asarray(n, dtype="float64")
    safe = np.where(m > 0, m, 1.0)
    lo, hi = proportion_confint(np.where(m > 0, k, 0.0), safe, alpha=1 - confidence, method="wilson")
    return np.where(m > 0, lo, np.nan), np.where(m > 0, hi, np.nan)


def difference_interval(k1: int, n1: int, k0: int, n0: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for the difference of two proportions k1/n1 - k0/n0
    (statsmodels ``confint_proportions_2indep``, method newcomb): built from the two Wilson
    intervals, so it stays honest at 0 or n successes, where a percentile bootstrap collapses to
    (0, 0). NaN where either n is 0.
    Example: 0 of 25 vs 0 of 25 -> Wilson upper z^2 / (25 + z^2) = 0.1332 each -> (-0.1332, 0.1332)."""
    if not n1 or not n0:
        return (np.nan, np.nan)
    lo, hi = confint_proportions_2indep(k1, n1, k0, n0, compare="diff", method="newcomb", alpha=1 - confidence)
    return float(lo), float(hi)


def rate_table(successes: pd.Series, n: pd.Series, name: str = "rate") -> pd.DataFrame:
    """``name`` = successes / n with its Wilson 95% interval; null (not 0) where n is 0."""
    lo, hi = wilson_interval(successes, n)
    rate = successes.astype("float64") / n.where(n > 0).astype("float64")
    return pd.DataFrame({name: rate, f"{name}_low": lo, f"{name}_high": hi}, index=successes.index)


def duration_aggregates(values, prefix: str = "") -> dict:
    """Duration statistics as engine aggregates of an Ibis column (nulls left out): n, median and
    p90 (linear interpolation: DuckDB's quantile_cont, PostgreSQL's percentile_cont and Spark's
    percentile, numpy's default) and mean; on no values n = 0 (or null, read back by
    ``engine.as_count``) and the statistics null."""
    return {f"{prefix}n": values.count(), f"{prefix}median_min": values.quantile(0.5),
            f"{prefix}p90_min": values.quantile(0.9), f"{prefix}mean_min": values.mean()}


# ------------------------------------------------------------------------------ bootstrap
def quantile_replicates(values, q: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the q-quantile (linear interpolation) of ``values``, exactly.

    Resampling n values with replacement and sorting them gives the order statistics of n
    uniforms pushed through the empirical quantile function x_(ceil(n u)). The k-th uniform
    order statistic is Beta(k, n - k + 1) and the next one is U_k + (1 - U_k) Beta(1, n - k),
    so the two order statistics the interpolated quantile needs are drawn directly: O(reps)
    work after one sort instead of reps x n. Empty input -> all NaN.
    """
    x = np.sort(np.asarray(values, dtype="float64"))
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return np.full(reps, np.nan)
    if n == 1:
        return np.full(reps, x[0])
    h = (n - 1) * q
    k = int(np.floor(h))              # 0-based lower order statistic
    frac = h - k
    u_k = rng.beta(k + 1, n - k, size=reps)
    u_next = u_k + (1 - u_k) * rng.beta(1, n - k - 1, size=reps) if k + 1 < n else u_k
    def pick(u):
        return x[np.clip(np.ceil(u * n).astype("int64") - 1, 0, n - 1)]
    lo = pick(u_k)
    return lo + frac * (pick(u_next) - lo) if frac else lo


NORMAL_LIMIT_N = 50_000  # above this many values the bootstrap of a mean takes its skew-corrected normal limit
SKEW_LIMIT = 0.5         # ... while the mean's own skewness (sample skewness / sqrt(n)) stays below this


def mean_replicates(values, reps: int, rng: np.random.Generator, chunk: int = 200_000) -> np.ndarray:
    """Bootstrap replicates of the mean (resampling with replacement, in bounded chunks).

    Above ``NORMAL_LIMIT_N`` values the replicates are drawn from the bootstrap distribution's
    limit instead: resampling costs reps x n draws (2,000 x 2.5M tickets is minutes). The limit
    is the normal one corrected for skewness (Cornish-Fisher, the first Edgeworth term):
    mean + se x (Z + (Z^2 - 1) g / 6), se = sd / sqrt(n) (ddof 0, the bootstrap's own standard
    error), g = sample skewness / sqrt(n), the skewness of the bootstrap mean. The plain normal
    limit is off by 4-16% of the interval's width on heavy tails (lognormal sigma 2-3 at 60,000
    values, as money and durations can be); the corrected one stays within about 3% up to
    g = 0.5 (tests/test_scale.py), beyond which (4-6% at g = 0.9) the expansion is not trusted:
    above ``SKEW_LIMIT`` the mean is resampled for real, however long it takes. g shrinks as
    sqrt(n) grows, so at millions of values only an extreme tail pays that cost. Below the threshold, real
    resampling too, so the sample's intervals are those of the plain bootstrap.
    """
    x = np.asarray(values, dtype="float64")
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return np.full(reps, np.nan)
    if n > NORMAL_LIMIT_N:
        mean, sd = x.mean(), x.std()
        g = float(np.mean(((x - mean) / sd) ** 3) / np.sqrt(n)) if sd > 0 else 0.0
        if abs(g) <= SKEW_LIMIT:
            z = rng.standard_normal(reps)
            return mean + sd / np.sqrt(n) * (z + (z ** 2 - 1) * g / 6)
    out = np.empty(reps)
    step = max(1, chunk // n)
    for i in range(0, reps, step):
        m = min(step, reps - i)
        out[i:i + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return out


def proportion_replicates(successes: int, n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of successes / n: resampling n 0/1 values is Binomial(n, p-hat) / n."""
    if n == 0:
        return np.full(reps, np.nan)
    return rng.binomial(n, successes / n, size=reps) / n


def block_length(series) -> float:
    """Expected block length for a stationary bootstrap of a daily series: Politis & White's
    (2004) automatic choice with Patton, Politis & White's (2009) correction, as computed by
    ``arch.bootstrap.optimal_block_length``, at least 1 and at most the series' length. A
    series too short or too flat for the estimate (fewer than 10 values, or no variation)
    gets 1: plain resampling of days."""
    from arch.bootstrap import optimal_block_length
    x = np.asarray(series, dtype="float64")
    if len(x) < 10 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return 1.0
    with np.errstate(all="ignore"):
        b = float(optimal_block_length(x)["stationary"].iloc[0])
    return float(min(max(b, 1.0), len(x))) if np.isfinite(b) else 1.0


def block_ratio_replicates(numerator, denominator, reps: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Replicates of sum(numerator) / sum(denominator) over consecutive days, resampled by
    Politis & Romano's stationary bootstrap (``arch.bootstrap.StationaryBootstrap``: blocks of
    geometric length, wrapping around), so a series whose days depend on each other (a backlog
    is a stock: today's is yesterday's plus what came in minus what was solved) gets an interval
    as wide as that dependence makes it; independent days resampling would make it far too
    narrow. The expected block length is ``block_length`` of the ratio's linearisation
    numerator - ratio x denominator. Returns (replicates, expected block length); no days: NaN."""
    from arch.bootstrap import StationaryBootstrap
    a = np.asarray(numerator, dtype="float64")
    b = np.asarray(denominator, dtype="float64")
    if len(a) == 0 or b.sum() <= 0:
        return np.full(reps, np.nan), np.nan
    block = block_length(a - a.sum() / b.sum() * b)
    boot = StationaryBootstrap(block, a, b, seed=rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps_ = boot.apply(lambda x, y: np.array([x.sum() / y.sum() if y.sum() > 0 else np.nan]), reps)[:, 0]
    return reps_, block


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates left out; none -> NaN, NaN)."""
    r = np.asarray(replicates, dtype="float64")
    r = r[~np.isnan(r)]
    if not len(r):
        return (np.nan, np.nan)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(r, [a, 1 - a])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ sensitivity
def hazard_to_risk_ratio(hr: float, rare: bool = False) -> float:
    """A hazard ratio on the risk-ratio scale (VanderWeele & Ding 2017, Table 2): the HR itself
    when the outcome is rare (under 15% by the end of follow-up), else the common-outcome
    conversion RR = (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR)) (as R's ``EValue::evalues.HR``).
    Churn is common, so the suite passes ``rare=False``. Example: HR 0.5, common -> 0.620."""
    if not np.isfinite(hr) or hr <= 0:
        return np.nan
    if rare:
        return float(hr)
    return float((1 - 0.5 ** np.sqrt(hr)) / (1 - 0.5 ** np.sqrt(1 / hr)))


def smd_to_risk_ratio(d: float) -> float:
    """A standardised mean difference d (difference of means / the outcome's standard deviation)
    on the risk-ratio scale, RR = exp(0.91 x d) (VanderWeele & Ding 2017, as R's
    ``EValue::evalues.MD``), for the E-value of a continuous outcome such as LTV.
    Examples: d = 0 -> 1; d = 0.5 -> exp(0.455) = 1.576; NaN for a missing d."""
    if not np.isfinite(d):
        return np.nan
    return float(np.exp(0.91 * d))


def e_value(hr: float, rare: bool = False) -> float:
    """E-value of a hazard ratio (VanderWeele & Ding 2017): the smallest risk ratio that an
    unmeasured factor would need with both the exposure and the outcome, each, to explain the
    estimate away. RR = ``hazard_to_risk_ratio(hr, rare)``, inverted when below 1;
    E = RR + sqrt(RR x (RR - 1)); 1 for RR = 1; NaN for a missing estimate.
    Examples: HR 2, rare -> 2 + sqrt(2) = 3.414; HR 0.5, rare -> the same 3.414."""
    rr = hazard_to_risk_ratio(hr, rare)
    if not np.isfinite(rr):
        return np.nan
    rr = 1 / rr if rr < 1 else rr
    return float(rr + np.sqrt(rr * (rr - 1)))


def e_value_interval(ci_low: float, ci_high: float, rare: bool = False) -> float:
    """E-value of the confidence limit nearest 1 (VanderWeele & Ding 2017): 1 when the interval
    contains 1 (no unmeasured confounding is needed to make it compatible with no effect).
    Example: HR 0.56 (0.46-0.69), rare -> the E-value of 0.69: 1/0.69 = 1.449, E = 2.256."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return np.nan
    if ci_low <= 1 <= ci_high:
        return 1.0
    return e_value(ci_high if ci_high < 1 else ci_low, rare)
