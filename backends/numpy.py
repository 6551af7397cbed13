"""NumPy: the embedded default.  Views wherever the lowering allows one.

* `BACKEND`: the `NumpyBackend`, whose kernels are the array-API ones.

>>> import numpy as np
>>> x = np.arange(4.0).reshape(2, 2)
>>> BACKEND.diagonal(x, ((0, 1),))
array([0., 3.])
>>> BACKEND.diag_embed(np.array([1.0, 2.0]), (2, 2), ((0, 1),))
array([[1., 0.],
       [0., 2.]])
"""

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from einvjp.backend import Backend, basic_index
from einvjp.backends._array_api import kernels

_found = []


def _erf(x):
    """scipy.special.erf when SciPy is installed (imported on first use),
    else math.erf elementwise."""
    if not _found:
        try:
            from scipy.special import erf as f
        except ImportError:  # pragma: no cover - scipy is optional
            f = np.vectorize(math.erf, otypes=[float])
        _found.append(f)
    return _found[0](x)


def _diagonal_view(x, groups, writeable):
    shape = tuple(x.shape[g[0]] for g in groups)
    strides = tuple(int(np.sum([x.strides[a] for a in g])) for g in groups)
    return as_strided(x, shape, strides, writeable=writeable)


class NumpyBackend(Backend):
    name = "numpy"
    numbers_as_arrays = False  # NumPy's functions take Python numbers as they are
    kernels = kernels(np, _erf, np.linalg)

    transpose = staticmethod(np.transpose)
    reshape = staticmethod(np.reshape)
    matmul = staticmethod(np.matmul)
    multiply = staticmethod(np.multiply)
    add = staticmethod(np.add)
    subtract = staticmethod(np.subtract)
    broadcast_to = staticmethod(np.broadcast_to)
    asarray = staticmethod(np.asarray)
    conj = staticmethod(np.conj)

    @staticmethod
    def sum(x, axes):
        return np.sum(x, axis=axes)

    @staticmethod
    def swap_last(x):
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def scale(x, c):
        return x * c

    @staticmethod
    def diagonal(x, groups):
        """A read-only view: axes in each group collapse to one (a diagonal)."""
        return _diagonal_view(np.asarray(x), groups, writeable=False)

    @staticmethod
    def diag_embed(x, shape, groups):
        """Zeros of `shape` with `x` written into the diagonal view `groups`."""
        out = np.zeros(shape, dtype=x.dtype)
        _diagonal_view(out, groups, writeable=True)[...] = x
        return out

    @staticmethod
    def cast_like(g, x):
        """A gradient in the dtype of its primal (the real part for a real one),
        an array (not a NumPy scalar), writeable."""
        g = np.asarray(g)
        if np.iscomplexobj(g) and not np.iscomplexobj(x):
            g = g.real
        if g.dtype != x.dtype and np.issubdtype(x.dtype, np.inexact):
            g = g.astype(x.dtype)
        return NumpyBackend.writeable(g)

    @staticmethod
    def copy(x):
        """A copy of a result that would share memory with another one."""
        return x.copy() if isinstance(x, np.ndarray) else x

    @staticmethod
    def owner(x):
        """The object at the root of x's chain of bases (`as_strided` views
        pass through a wrapper that has a `base` too)."""
        while getattr(x, "base", None) is not None:
            x = x.base
        return id(x)

    @staticmethod
    def shares_memory(x, y):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and \
            np.may_share_memory(x, y)

    @staticmethod
    def writeable(x):
        """A result handed back to the caller, writeable as NumPy's own results
        are: a read-only view (a diagonal, a broadcast) is copied."""
        return x.copy() if isinstance(x, np.ndarray) and not x.flags.writeable else x

    @staticmethod
    def full(shape, value, like):
        return np.full(shape, value, dtype=np.result_type(like) if like is not None else None)

    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def index(x, positions):
        return x[basic_index(positions, x.ndim)] if positions else x

    @staticmethod
    def add_at(acc, positions, x):
        """acc with x added at fixed positions of some axes, in place."""
        acc[basic_index(positions, acc.ndim)] += x
        return acc


BACKEND = NumpyBackend()
