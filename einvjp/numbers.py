"""Python numbers as NumPy float64 computes them (constant folding and the
kernels share this).

* `power(x, p)`: x ** p of two numbers.
"""

from __future__ import annotations

import builtins
from fractions import Fraction

import numpy as np

from .ir import Coef

SCALARS = (int, float, Fraction)  # a Python number, as a folded constant is


def power(x, p):
    """x ** p of two numbers as NumPy float64 computes it: nan (not a
    complex) for a negative base to a fractional power, inf (not an error)
    for 0 to a negative power or past the float range; exact for integers
    and fractions to a small integer power.

    >>> power(2, 10), power(-1, 0.5), power(0, -1), power(10, 400), power(2, -2)
    (1024, nan, inf, inf, 0.25)
    """
    if isinstance(x, complex) or isinstance(p, complex):
        return x ** p
    if isinstance(p, int) and isinstance(x, (int, Fraction)) and x != 0:
        f = Fraction(x)
        bits = builtins.max(f.numerator.bit_length(), f.denominator.bit_length(), 2)
        if p * p * bits * bits <= 1100 ** 2:  # |p| · bits ≤ 1100: past float range
            return Coef.of(f ** p).number()
    with np.errstate(all="ignore"):
        return float(np.float64(x) ** np.float64(p))
