"""Vector helpers on ID columns for the modules that still work on pandas frames (the ticket,
agent and escalation reports; validation; month arithmetic on per-client tables).

The contract types IDs as Arrow-backed text (``analysis.data.contract.TEXT``). pandas 2.3's
``isin`` on such a column builds one Python object per looked-up value and ``map`` goes through
an object index; these helpers do the same with one Arrow hash pass (``is_in`` / ``index_in``).
Results are the same as ``isin`` / ``map``; other dtypes fall back to pandas. Once a column's
keys are positions (``codes``), the rest is integer work: ``order_by`` to sort per key,
``sorted_rank`` to keep text order, ``ns`` for timestamps as int64.

Every function is pure: nothing is kept between calls. (The lookup registry that used to keep
positions between calls and hand them over through the run's snapshot is gone: the per-row work
of the retention, sales and onboarding reports runs in the engine, ``analysis.data.engine``.)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["arrow_text", "one_array", "isin", "codes", "present", "factorize", "increasing", "sorted_order",
           "sorted_rank", "group_order", "order_by", "blocks", "BLOCK", "ns", "NAT", "from_ns"]


def arrow_text(values) -> pa.Array | pa.ChunkedArray | None:
    """The Arrow string data behind a Series/Index/array of text (no copy when it is
    Arrow-backed already), or None when it is not text."""
    data = getattr(getattr(values, "array", values), "_pa_array", None)
    if data is not None and (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return data
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.StringDtype) or (dtype is not None and dtype == object):
        try:
            return pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    return None


def one_array(data: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array (what Arrow's set lookups take as their value set)."""
    return data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data


def isin(values, keys) -> np.ndarray:
    """Boolean array: is each element of ``values`` (Series, Index or array) among ``keys``?
    Nulls are never in. Same as ``values.isin(keys)``.

    >>> s = pd.Series(["a", "b", None, "c"], dtype=pd.StringDtype("pyarrow"))
    >>> isin(s, pd.Index(["c", "a"], dtype=pd.StringDtype("pyarrow"))).tolist()
    [True, False, False, True]
    """
    left, right = arrow_text(values), arrow_text(keys)
    if left is None or right is None:
        values = values if isinstance(values, (pd.Series, pd.Index)) else pd.Series(values)
        return np.asarray(values.isin(keys), dtype=bool)
    found = pc.is_in(left, value_set=pc.unique(one_array(right)).drop_null())
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def codes(values, universe) -> np.ndarray:
    """int64 position of each element of ``values`` in ``universe`` (unique keys), -1 where
    absent or null: integer keys to sort, group and join on instead of text.

    >>> codes(pd.Series(["b", "x", None, "a"], dtype=pd.StringDtype("pyarrow")),
    ...       pd.Index(["a", "b"], dtype=pd.StringDtype("pyarrow"))).tolist()
    [1, -1, -1, 0]
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):  # each category looked up once
        cat = pd.Series(values).cat
        inner = np.append(codes(pd.Series(cat.categories), universe), -1)  # a null's code, -1, reads the last
        return inner[cat.codes.to_numpy()]
    left, right = arrow_text(values), arrow_text(universe)
    if left is None or right is None:
        return np.asarray(pd.Index(universe).get_indexer(pd.Index(values)), dtype="int64")
    pos = pc.index_in(left, value_set=one_array(right)).to_numpy(zero_copy_only=False)
    return np.where(pd.isna(pos), -1, pos).astype("int64")


def factorize(values: pd.Series, rows: np.ndarray | None = None) -> tuple[np.ndarray, pd.Index]:
    """(codes, uniques) as ``pd.factorize(values.take(rows))`` (all rows when None): order of
    first appearance, nulls -1.

    >>> c, u = factorize(pd.Series(["b", "a", "b"], dtype=pd.StringDtype("pyarrow")))
    >>> u[c].tolist()
    ['b', 'a', 'b']
    """
    return pd.factorize(values if rows is None else values.take(rows))


def present(universe, values, where: np.ndarray | None = None) -> np.ndarray:
    """``isin(universe, values)`` for unique keys ``universe``: True for each key that some
    value equals (nulls match nothing; with ``where``, only the values where it is True), from
    ``codes(values, universe)``.

    >>> present(pd.Series(["a", "b", "c"], dtype=pd.StringDtype("pyarrow")),
    ...         pd.Series(["c", None, "x", "c"], dtype=pd.StringDtype("pyarrow"))).tolist()
    [False, False, True]
    >>> present(pd.Series(["a", "b"], dtype=pd.StringDtype("pyarrow")),
    ...         pd.Series(["a", "b"], dtype=pd.StringDtype("pyarrow")), where=np.array([False, True])).tolist()
    [False, True]
    """
    out = np.zeros(len(universe) + 1, dtype=bool)  # the last entry: a value not in ``universe`` (-1)
    pos = codes(values, universe)
    out[pos if where is None else pos[where]] = True
    return out[:-1]


def increasing(values) -> bool:
    """Are ``values`` (unique keys) in strictly ascending order? On Arrow text one vectorised
    comparison of neighbours (bytes order, as ``sorted_order``), no Python object per row.

    >>> increasing(pd.Series(["a", "b"], dtype=pd.StringDtype("pyarrow"))), increasing(pd.Series([2, 1]))
    (True, False)
    """
    data = arrow_text(values)
    if data is None:
        v = pd.Index(values)
        return bool(v.is_monotonic_increasing and v.is_unique)
    return data.null_count == 0 and (len(data) < 2 or pc.all(pc.greater(data[1:], data[:-1])).as_py())


def sorted_order(values) -> np.ndarray:
    """int64 positions that put ``values`` (unique keys) in ascending order, as
    ``np.argsort(sorted_rank(values))`` without the second sort. Arrow sorts text by its bytes,
    as pandas' ``sort_values`` does on Arrow strings.

    >>> sorted_order(pd.Series(["b", "c", "a"], dtype=pd.StringDtype("pyarrow"))).tolist()
    [2, 0, 1]
    """
    data = arrow_text(values)
    if data is not None:
        if increasing(values):
            return np.arange(len(data), dtype="int64")  # already strictly increasing: no sort
        return np.asarray(pc.sort_indices(data), dtype="int64")
    return np.argsort(np.asarray(values), kind="stable").astype("int64")


def sorted_rank(values) -> np.ndarray:
    """int64 rank of each element of ``values`` (unique keys) in ascending order: where it
    would stand after sorting, to order rows by a text key while working on integer positions.

    >>> sorted_rank(pd.Series(["b", "c", "a"], dtype=pd.StringDtype("pyarrow"))).tolist()
    [1, 2, 0]
    """
    order = sorted_order(values)
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order), dtype="int64")
    return rank


NAT = np.iinfo("int64").min  # NaT as int64 nanoseconds: below every instant


def ns(values) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC) of a timestamp column; NaT -> ``NAT``.

    A column already in nanoseconds (naive, read as UTC, or with any time zone: pandas keeps
    those as UTC nanoseconds) is returned as a read-only view of its values, without a copy."""
    dtype = getattr(values, "dtype", None)
    if isinstance(values, (pd.Series, pd.Index)) and (
            dtype == np.dtype("M8[ns]") or (isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "ns")):
        out = values.array.asi8.view()
        out.flags.writeable = False
        return out
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def from_ns(values: np.ndarray) -> pd.DatetimeIndex:
    """The inverse of ``ns``: int64 nanoseconds (``NAT`` -> NaT) as UTC timestamps."""
    return pd.DatetimeIndex(np.asarray(values, dtype="int64").view("M8[ns]")).tz_localize("UTC")


def group_order(codes: np.ndarray, size: int, counts: bool = False):
    """The stable order of rows by integer code in [0, size): ``np.argsort(codes,
    kind="stable")``, by a counting sort in O(n + size) (pandas' ``groupsort_indexer``, what its
    groupby uses) instead of a comparison sort; codes of -1 come first, as argsort puts them.
    With ``counts``: (order, rows per code 0..size-1).

    >>> group_order(np.array([2, 0, 2, 1, 0]), 3).tolist()
    [1, 4, 3, 0, 2]
    >>> group_order(np.array([2, 0, 2, 1, 0]), 3, counts=True)[1].tolist()
    [2, 1, 2]
    """
    codes = np.asarray(codes)
    if _groupsort is None or not len(codes):
        order = np.argsort(codes, kind="stable").astype("int64")
        n = np.bincount(codes[codes >= 0], minlength=size)[:size] if len(codes) else np.zeros(size, dtype="int64")
    else:
        order, n = _groupsort(codes.astype(np.intp, copy=False), int(size))
        order, n = order.astype("int64", copy=False), n[1:]  # n[0]: the rows of code -1
    return (order, n.astype("int64", copy=False)) if counts else order


try:  # pandas' counting sort (the same result as a stable argsort; checked by the tests)
    from pandas._libs.algos import groupsort_indexer as _groupsort
except ImportError:  # pragma: no cover - another pandas: the comparison sort
    _groupsort = None


def order_by(codes: np.ndarray, size: int, at: np.ndarray) -> np.ndarray:
    """``np.lexsort((at, codes))`` for integer codes in [0, size): rows by code, then by
    ``at``, then in table order. A stable sort on ``at`` (fast when ``at`` comes in sorted runs,
    as timestamps of an event log do) followed by the counting sort of ``group_order``.

    >>> order_by(np.array([1, 0, 1, 0]), 2, np.array([5, 7, 3, 7])).tolist()
    [1, 3, 2, 0]
    """
    by_time = np.argsort(np.asarray(at), kind="stable")
    return by_time[group_order(np.asarray(codes)[by_time], size)]


BLOCK = 1 << 18  # rows per block of a long array: 2 MiB of int64, within the CPU caches


def blocks(n: int, size: int | None = None):
    """Slices that cover range(n) in blocks of ``size`` rows, for a vectorised pass over a long
    array whose temporaries should stay small: in the CPU caches and reused in the heap, where
    whole-length temporaries (168 MB per 21M int64) are fresh memory on every call.

    >>> [(b.start, b.stop) for b in blocks(5, 2)]
    [(0, 2), (2, 4), (4, 5)]
    """
    size = size or BLOCK
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


