"""The interpreter: IR nodes evaluated one by one on a backend.

* `evaluate(outputs, values, B)`: a graph's outputs from its inputs' values;
* `evaluate_node(node, args, B)`: one node — a Contract through its cached
  plan, an Add or a Map of operands aligned by label (`einvjp.ops`), a
  structured primitive through its own layout (`Structured.run`).

>>> import numpy as np, einvjp
>>> from einvjp.backend import backend_for
>>> x = np.arange(6.0).reshape(2, 3)
>>> g = einvjp.compile("y[b] = exp(x[b,j]) x[b,j] / J").graph(x=x)
>>> out, = evaluate(g.outputs, {g.inputs["x"]: x}, backend_for([x]))
>>> np.allclose(out, (np.exp(x) * x).sum(1) / 3)
True
"""

from __future__ import annotations

from .errors import ProgramError
from .ge import GE, Index
from .ir import Add, Const, Contract, Func, Input, Map, distinct, topo
from .ops import aligned
from .plan import plan_for


_NUMBERS = (int, float, complex)


def _is_number(v):
    return isinstance(v, _NUMBERS)


def _lowered(node, numbers):
    """The plan of a Contract over its array operands (`numbers` flags the
    operands that arrive as Python numbers), and its coefficient as a
    number; cached on the node."""
    if node.cache is None:
        node.cache = {}
    hit = node.cache.get(numbers)
    if hit is None:
        plain = {}

        def lab(l):
            if l not in plain:
                plain[l] = Index(l.name, int(l.size))
            return plain[l]
        terms = [[lab(l) for l in t] for t, n in zip(node.terms, numbers) if not n]
        out = [lab(l) for l in node.out]
        p = plan_for(GE(terms, out, 1)) if terms else None
        hit = node.cache[numbers] = (p, out, node.coeff.number())
    return hit


def _tensor(B, v, like):
    return B.cast_like(B.asarray(v), like) if like is not None else B.asarray(v)


def _like(values):
    return next((v for v in values if not _is_number(v)), None)


def _numbers_like(args, like):
    """The array whose dtype numbers take, as arrays, in a function of
    `args`: the first array among them; for numbers only, `like` (an array
    of the program) when it is real floating point, so that exp(s) of a
    float64 program is computed in float64 (else the library's default)."""
    found = _like(args)
    if found is None and "float" in str(getattr(like, "dtype", "")):
        return like
    return found


def _shape(node):
    return tuple(int(s) for s in node.shape)


def evaluate_node(node, args, B, like=None):
    if isinstance(node, Const):
        return node.value.number()
    if isinstance(node, Contract):
        numbers = tuple(_is_number(a) for a in args)
        p, out, scale = _lowered(node, numbers)
        ops = []
        for a, n in zip(args, numbers):
            if n:
                scale = scale * a
            else:
                ops.append(a)
        if not ops:  # a constant: broadcast, or embedded on a diagonal (an identity)
            if not out:
                return scale
            labels = distinct(out)
            ones = B.full(tuple(l.size for l in labels), 1, like)
            if len(labels) < len(out):
                ones = plan_for(GE([labels], out, 1))(B, [ones])
            return ones if scale == 1 else B.scale(ones, scale)
        r = B.apply(p, ops)
        # A number operand always multiplies (the dtype does not depend on its value).
        return r if scale == 1 and not any(numbers) else B.scale(r, scale)
    if isinstance(node, Add):
        out = list(node.out)
        acc = None
        for a, t, c in zip(args, node.terms, node.coeffs):
            c = c.number()
            v = aligned(B, a, list(t), out, summed=True)
            v = v if c == 1 else (v * c if _is_number(v) else B.scale(v, c))
            acc = v if acc is None else (acc + v if _is_number(acc) and _is_number(v)
                                         else B.add(acc, v) if not _is_number(acc)
                                         else B.add(v, acc))
        if _is_number(acc) or tuple(acc.shape) != _shape(node):
            acc = B.broadcast_to(_tensor(B, acc, _like(args)) if _is_number(acc) else acc,
                                 _shape(node))
        return acc
    if isinstance(node, Map):
        out = list(node.out)
        like = _numbers_like(args, like)
        vals = [aligned(B, a, list(t), out) for a, t in zip(args, node.terms)]
        if B.numbers_as_arrays:
            vals = [_tensor(B, v, like) if _is_number(v) else v for v in vals]
        return B.kernels[node.prim.name](*vals, *node.params)
    if isinstance(node, Func):
        return node.prim.run(B.kernels[node.prim.name], B, node, args)
    raise ProgramError(f"cannot evaluate {node!r}")


def evaluate(outputs, values, B, known=None):
    """Evaluate `outputs`; `values` maps Input nodes to arrays (or numbers);
    `known` maps already computed nodes to values (updated in place)."""
    vals = dict(values)
    if known:
        vals.update(known)
    like = _like(vals.values())
    for node in topo(outputs):
        if node in vals:
            continue
        if isinstance(node, Input):
            raise ProgramError(f"no value for input {node.name!r}")
        vals[node] = evaluate_node(node, [vals[a] for a in getattr(node, "args", ())], B, like)
    if known is not None:
        known.update(vals)
    return [vals[o] for o in outputs]


def _inexact(v):
    dtype = str(getattr(v, "dtype", ""))
    return "float" in dtype or "complex" in dtype
