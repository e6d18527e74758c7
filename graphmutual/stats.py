r"""Mean ± standard deviation over seeds: the one rule every table in graphmutual uses.

For per-seed values :math:`x_1, \dots, x_m`, let :math:`F` be those that are finite
numbers (``None``, NaN and :math:`\pm\infty` are left out: a diverged or undefined seed
must not turn a whole table into NaN, and the count shows that it was dropped). Then, with
:math:`n = |F|`,

.. math::

    \bar x = \frac{1}{n} \sum_{x \in F} x, \qquad
    s = \sqrt{\frac{1}{n - 1} \sum_{x \in F} (x - \bar x)^2}
    \quad (\text{unbiased, as OGB reports; } s = 0 \text{ for } n = 1),

and :math:`\bar x = s = \text{NaN}` for :math:`n = 0`. Always report :math:`n` next to
the mean, so a left-out seed is visible.

This module imports nothing from graphmutual, so every layer (``train``, ``recsys``,
``bench``) and the scripts under ``benchmarks/`` can share it.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Tuple

__all__ = ["finite", "mean_std", "format_mean_std"]


def finite(values: Iterable[Optional[float]]) -> list:
    """The values that are finite numbers, in order (``None``, NaN and ±inf left out)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_std(values: Iterable[Optional[float]]) -> Tuple[float, float, int]:
    """``(mean, unbiased std, n)`` over the finite values (see the module docstring).

    >>> mean_std([80.0, 82.0, float("nan"), None])
    (81.0, 1.4142135623730951, 2)
    >>> mean_std([0.5])
    (0.5, 0.0, 1)
    """
    xs = finite(values)
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, 0.0, 1
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var), n


def format_mean_std(mean: float, std: float, n: int, scale: float = 1.0,
                    digits: int = 2, width: int = 0) -> str:
    """``"81.23 ± 0.45"`` for ``n > 1``, ``"81.23"`` for one value, ``"n/a"`` for none.

    ``scale`` multiplies both numbers (100 for percentages); ``width`` right-aligns the
    mean (and the std) in that many characters, for fixed-width console tables.
    """
    if n == 0 or not math.isfinite(mean):
        return "n/a"
    m = f"{mean * scale:{width}.{digits}f}"
    if n == 1:
        return m
    return f"{m} ± {std * scale:{max(width - 1, 0)}.{digits}f}"
