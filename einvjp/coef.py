"""Numbers of the IR: coefficients that keep named sizes symbolic.

- `Dim`: a size with a name (`H` for the label `h`)
- `Coef`: a number times named sizes to integer powers (1/H stays 1/H)
"""

from __future__ import annotations

import math
from fractions import Fraction


class Dim(int):
    """A size with a name (`H` for the label `h`): an int everywhere, printed
    by its name, kept symbolic inside coefficients so that 1/H stays 1/H.

    >>> H = Dim(4, "H")
    >>> H + 1, H.name
    (5, 'H')
    """

    def __new__(cls, value, name):
        self = int.__new__(cls, value)
        self.name = name
        return self

    def __repr__(self):
        return f"Dim({int(self)}, {self.name!r})"


class Coef:
    """A number times named sizes to integer powers: `num · Π dims`.

    Arithmetic is exact on fractions; where it cannot be, a coefficient
    follows NumPy float64: 1/0 is inf (so `x / 0` gives inf, -inf or nan as
    NumPy's does), a number too large for a float is inf.

    >>> H = Dim(4, "H")
    >>> c = Coef.of(2) / H
    >>> c.text(), float(c.value()), (c * H).text()
    ('2/H', 0.5, '2')
    >>> Coef.of(3).inverse() * 3, Coef.of(0).inverse().number(), Coef.of(10 ** 400).number()
    (Coef(1), inf, inf)
    """
    __slots__ = ("num", "dims")

    def __init__(self, num=1, dims=()):
        self.num = num
        self.dims = dims  # sorted ((name, size), power) with power != 0

    @staticmethod
    def of(x) -> "Coef":
        if isinstance(x, Coef):
            return x
        if isinstance(x, Dim):
            return Coef(Fraction(1), (((x.name, int(x)), 1),))
        if isinstance(x, (bool, int)):
            return Coef(Fraction(int(x)))
        if isinstance(x, Fraction):
            return Coef(x)
        if isinstance(x, float) and x.is_integer() and abs(x) < 2 ** 53:
            return Coef(Fraction(int(x)))
        if isinstance(x, complex) and x.imag == 0:
            return Coef.of(x.real)
        return Coef(x)

    def __mul__(self, other):
        other = Coef.of(other)
        dims = dict(self.dims)
        for key, p in other.dims:
            dims[key] = dims.get(key, 0) + p
        return Coef(self.num * other.num, tuple(sorted((k, p) for k, p in dims.items() if p)))

    __rmul__ = __mul__

    def inverse(self):
        if self.num == 0:  # 1/0 as NumPy float64 gives it
            num = math.copysign(math.inf, self.num) if isinstance(self.num, float) else math.inf
        else:
            num = Fraction(1) / self.num if isinstance(self.num, Fraction) else 1 / self.num
        return Coef(num, tuple((k, -p) for k, p in self.dims))

    def __truediv__(self, other):
        return self * Coef.of(other).inverse()

    def __neg__(self):
        return Coef(-self.num, self.dims)

    def __eq__(self, other):
        return isinstance(other, Coef) and self.num == other.num and self.dims == other.dims

    def __hash__(self):
        return hash((self.num, self.dims))

    def __repr__(self):
        return f"Coef({self.text()})"

    @property
    def is_zero(self):
        return self.num == 0

    @property
    def is_one(self):
        return self.num == 1 and not self.dims

    def value(self):
        """The number (exact when it can be)."""
        v = self.num
        for (_, size), p in self.dims:
            if size == 0 and p < 0:  # 1/0 for a size-0 label (the mean over it)
                v = v * math.inf
            else:
                v = v * (Fraction(size) ** p if isinstance(v, Fraction) else size ** p)
        return v

    def number(self):
        """A Python int, float or complex for the array libraries: an int
        when it fits in int64, else the nearest float (inf beyond range)."""
        v = self.value()
        if isinstance(v, Fraction):
            if v.denominator == 1 and abs(v) < 2 ** 63:
                return int(v)
            try:
                return float(v)
            except OverflowError:
                return math.inf if v > 0 else -math.inf
        return v

    def sign_and_magnitude(self):
        neg = isinstance(self.num, (Fraction, int, float)) and self.num < 0
        return neg, (-self if neg else self)

    def parts(self):
        """(numerator text, denominator text) of a positive coefficient, with
        '' for a factor of 1."""
        num, den = [], []
        n = self.num
        if isinstance(n, Fraction):
            if n.numerator != 1:
                num.append(str(n.numerator))
            if n.denominator != 1:
                den.append(str(n.denominator))
        elif n != 1:
            num.append(_number_text(n))
        for (name, _), p in self.dims:
            text = name if abs(p) == 1 else f"{name}^{abs(p)}"
            (num if p > 0 else den).append(text)
        return " ".join(num), " ".join(den)

    def text(self):
        neg, mag = self.sign_and_magnitude()
        num, den = mag.parts()
        if isinstance(mag.num, Fraction) and not mag.dims and mag.num.denominator != 1 \
                and _terminates(mag.num):
            body = _number_text(float(mag.num))
        else:
            body = (num or "1") + (f"/{den}" if den and " " not in den else
                                   f"/({den})" if den else "")
        return ("-" if neg else "") + body


def _terminates(f: Fraction) -> bool:
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1 and f.denominator <= 1000


def _number_text(x) -> str:
    if isinstance(x, float) and not math.isfinite(x):  # as the text language reads them
        return "(0/0)" if math.isnan(x) else "(1/0)" if x > 0 else "(-1/0)"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x) if not isinstance(x, Fraction) else str(x)
