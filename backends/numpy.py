"""NumPy: the embedded default.  Views wherever the lowering allows one.

>>> import numpy as np
>>> x = np.arange(4.0).reshape(2, 2)
>>> diagonal(x, ((0, 1),))
array([0., 3.])
>>> diag_embed(np.array([1.0, 2.0]), (2, 2), ((0, 1),))
array([[1., 0.],
       [0., 2.]])
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

name = "numpy"
transpose = np.transpose
reshape = np.reshape
matmul = np.matmul
multiply = np.multiply
add = np.add
subtract = np.subtract
broadcast_to = np.broadcast_to


def asarray(x):
    return np.asarray(x)


def sum(x, axes):
    return np.sum(x, axis=axes)


def swap_last(x):
    return np.swapaxes(x, -1, -2)


def scale(x, c):
    return x * c


def _diagonal_view(x, groups, writeable):
    shape = tuple(x.shape[g[0]] for g in groups)
    strides = tuple(int(np.sum([x.strides[a] for a in g])) for g in groups)
    return as_strided(x, shape, strides, writeable=writeable)


def diagonal(x, groups):
    """A read-only view: axes in each group collapse to one (a diagonal)."""
    return _diagonal_view(np.asarray(x), groups, writeable=False)


def diag_embed(x, shape, groups):
    """Zeros of `shape` with `x` written into the diagonal view `groups`."""
    out = np.zeros(shape, dtype=x.dtype)
    _diagonal_view(out, groups, writeable=True)[...] = x
    return out


def cast_like(g, x):
    """A gradient in the dtype of its primal (the real part for a real one),
    an array (not a NumPy scalar), writeable."""
    g = np.asarray(g)
    if np.iscomplexobj(g) and not np.iscomplexobj(x):
        g = g.real
    if g.dtype != x.dtype and np.issubdtype(x.dtype, np.inexact):
        g = g.astype(x.dtype)
    return writeable(g)


def copy(x):
    """A copy of a result that would share memory with another one."""
    return x.copy() if isinstance(x, np.ndarray) else x


def shares_memory(x, y):
    return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and \
        np.may_share_memory(x, y)


def writeable(x):
    """A result handed back to the caller, writeable as NumPy's own results
    are: a read-only view (a diagonal, a broadcast) is copied."""
    return x.copy() if isinstance(x, np.ndarray) and not x.flags.writeable else x


def conj(x):
    return np.conj(x)
