"""graphmutual.stats: the one mean ± std rule of every table."""
from __future__ import annotations

import math

import numpy as np
import pytest

from graphmutual.stats import finite, format_mean_std, mean_std


def test_mean_std_matches_numpy_unbiased():
    xs = [0.81, 0.79, 0.84, 0.80]
    m, s, n = mean_std(xs)
    assert n == 4
    assert m == pytest.approx(np.mean(xs), abs=1e-15)
    assert s == pytest.approx(np.std(xs, ddof=1), abs=1e-15)
    assert s != pytest.approx(np.std(xs, ddof=0))  # biased std would differ


def test_non_finite_values_are_left_out_and_counted():
    m, s, n = mean_std([0.5, float("nan"), None, 0.7, float("inf"), -float("inf")])
    assert (m, n) == (pytest.approx(0.6), 2)
    assert s == pytest.approx(math.sqrt(0.02))
    assert finite([1, None, float("nan"), 2.5]) == [1.0, 2.5]


def test_one_and_no_values():
    assert mean_std([0.3]) == (0.3, 0.0, 1)
    m, s, n = mean_std([float("nan")])
    assert n == 0 and math.isnan(m) and math.isnan(s)
    assert mean_std(iter([]))[2] == 0  # any iterable


@pytest.mark.parametrize("args, kwargs, text", [
    ((0.8123, 0.0045, 3), {"scale": 100}, "81.23 ± 0.45"),
    ((0.8123, 0.0, 1), {"scale": 100}, "81.23"),
    ((float("nan"), float("nan"), 0), {}, "n/a"),
    ((0.5, 0.1, 0), {}, "n/a"),
    ((0.5, 0.01, 2), {"scale": 100, "width": 6}, " 50.00 ±  1.00"),
    ((0.12345, 0.001, 2), {"digits": 4}, "0.1235 ± 0.0010"),
])
def test_format_mean_std(args, kwargs, text):
    assert format_mean_std(*args, **kwargs) == text
