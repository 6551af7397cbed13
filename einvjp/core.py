"""The public GE functions: `einsum` and `vjp`.

>>> import numpy as np
>>> x, a = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
>>> einsum("ik,kj->ij", x, a)
array([[ 3.,  3.],
       [12., 12.]])
>>> einsum("i->ii", np.array([1.0, 2.0]))
array([[1., 0.],
       [0., 2.]])
>>> einsum("i->ij", np.array([1.0, 2.0]), sizes={"j": 3}).shape
(2, 3)
>>> gx, ga = vjp("ik,kj->ij", (x, a), np.ones((2, 2)))
>>> gx
array([[2., 2., 2.],
       [2., 2., 2.]])
"""

from __future__ import annotations

from .backend import Entry, backend_for, caller, shape_of as _shape
from .equation import bind, interleaved, is_interleaved, lettered_sizes, parse, wanted
from .errors import CotangentError
from .errors import EinvjpError
from .plan import check_optimize, optimize_key, plan_for
from .slicing import cotengra_slices, limited


_PLANS = {}  # (equation, shapes, sizes, optimize) -> Plan


def plan(equation: str, shapes, *, sizes=None, optimize="auto", memory_limit=None,
         itemsize=8, backward=True):
    """The cached plan of an equation at these operand shapes: print it for
    its steps and costs, or read `.cost`.  With `memory_limit=` (bytes), the
    cheapest plan whose peak fits, for operands of `itemsize` bytes — the
    peak of the all-operand VJP (`backward=True`) or of the forward only."""
    return _plan(equation, None, shapes, sizes, optimize, memory_limit, itemsize, backward)


def _plan(equation, spec, shapes, sizes, optimize, limit=None, itemsize=8, backward=False):
    """`plan`, with the parsed `spec` of `equation` when the caller has it."""
    shapes = tuple(map(tuple, shapes))
    sizes_key = tuple(sorted(sizes.items())) if sizes else ()
    key = (equation, shapes, sizes_key, optimize_key(optimize)) + \
        (() if limit is None else (limit, itemsize, backward))
    found = _PLANS.get(key)
    if found is None:
        ge = bind(spec or parse(equation), shapes, dict(sizes_key))
        check_optimize(optimize, len(shapes))
        found = plan_for(ge, optimize)
        sliced = cotengra_slices(ge, optimize) if callable(optimize) else []
        if limit is not None or sliced:
            found = limited(ge, optimize, _limit(limit), itemsize, backward, sliced)
        _PLANS[key] = found
    return found


def _limit(limit):
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
        raise EinvjpError(f"memory_limit={limit!r} must be a positive number of bytes")
    return limit


def _itemsize(arrays):
    return max((getattr(x.dtype, "itemsize", 8) for x in arrays if hasattr(x, "dtype")),
               default=8)


def einsum(equation: str, *operands, sizes=None, optimize="auto", memory_limit=None):
    """Evaluate a generalized einsum: everything `numpy.einsum` accepts, plus
    repeated output labels (a diagonal embedding) and output labels that no
    operand carries (a broadcast; give their size in `sizes`).

    Labels are the letters a-z, A-Z and any character from U+00C0 on (every
    `opt_einsum.get_symbol(i)`), so an equation may have any number of them.
    NumPy's interleaved form `einsum(a, [0, 1], b, [1, 2], [0, 2])` takes any
    hashable values as labels, `Ellipsis` for '...', and an optional output
    list (without it: the labels seen once, sorted); `sizes=` then names the
    labels as given.

    `memory_limit=` (bytes) keeps the peak of what einvjp allocates beyond
    the operands and the result under the limit, by contracting slice by
    slice (see `einvjp.plan`); a cotengra optimizer's slices are kept.

    On torch tensors and jax arrays the result is differentiable by that
    library's autodiff through einvjp's derived VJP (with a memory limit,
    the backward runs slice by slice too).
    """
    args = (equation,) + operands
    _, equation, operands, lettered = _form(args, sizes)
    tracer = next((x for x in operands if hasattr(type(x), "_einvjp_einsum")), None)
    if tracer is not None:  # inside einvjp.compile(fn): record IR instead
        return tracer._einvjp_einsum(equation, *operands, sizes=lettered, optimize=optimize)
    # The arguments as given (plain values and arrays), for the backend's `call`.
    return caller(operands).call(_EINSUM, args, sizes, optimize, memory_limit)


def _form(args, sizes):
    """(spec or None, equation, operands, sizes) of `einsum`'s arguments, in
    either form (an equation, or NumPy's interleaved one)."""
    if is_interleaved(args):
        spec, operands = interleaved(args)
        return spec, spec.equation, operands, lettered_sizes(spec, sizes) if sizes else sizes
    return None, args[0], args[1:], sizes


def _einsum(args, sizes, optimize, memory_limit):
    spec, equation, operands, sizes = _form(args, sizes)
    B = backend_for(operands)
    arrays = [B.asarray(x) for x in operands]
    p = _plan(equation, spec, [_shape(x) for x in arrays], sizes, optimize, memory_limit,
              _itemsize(arrays), B.autodiff)
    return p.evaluate(B, arrays)


_EINSUM = Entry(_einsum)


def vjp(equation: str, operands, cotangent, *, sizes=None, optimize="auto", wrt=None,
        memory_limit=None):
    """The vector-Jacobian product: one gradient per operand, in one pass.

    `wrt` (an int or a sequence of ints) limits the work to those operands;
    the others come back as None.  Complex operands follow the linear-transpose
    convention of `jax.vjp` (no conjugation).  `memory_limit=` (bytes)
    bounds the peak beyond the operands, the cotangent and the gradients.
    """
    operands = tuple(operands)
    return caller(operands + (cotangent,)).call(_VJP, equation, operands, cotangent,
                                                     sizes, optimize, wrt, memory_limit)


def _vjp(equation, operands, cotangent, sizes, optimize, wrt, memory_limit):
    B = backend_for(operands + (cotangent,))
    arrays = [B.asarray(x) for x in operands]
    cot = B.asarray(cotangent)
    p = _plan(equation, None, [_shape(x) for x in arrays], sizes, optimize, memory_limit,
              _itemsize(arrays + [cot]), True)
    want = wanted(wrt, len(arrays), equation)
    expected = tuple(idx.size for idx in p.ge.out)
    if _shape(cot) != expected:
        raise CotangentError(
            f"the cotangent has shape {_shape(cot)} but the output of the equation "
            f"has shape {expected}", equation=equation, position=len(equation))
    return p.gradients(B, arrays, cot, want)


_VJP = Entry(_vjp)
