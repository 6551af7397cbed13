"""The interpreter: IR nodes evaluated one by one on a backend.

* `evaluate(outputs, values, B)`: a graph's outputs from its inputs' values;
* `evaluate_node(node, args, B)`: one node — a Contract, an Add or a Map
  through its operations (`einvjp.lowering`, cached on the node), a
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
from .ir import Add, Const, Contract, Func, Input, Map, topo
from .lowering import lower


_NUMBERS = (int, float, complex)


def _is_number(v):
    return isinstance(v, _NUMBERS)


def _like(values):
    return next((v for v in values if not _is_number(v)), None)


def _tensor(B, v, like):
    return B.cast_like(B.asarray(v), like) if like is not None else B.asarray(v)


def _shape(node):
    return tuple(int(s) for s in node.shape)


def evaluate_node(node, args, B, like=None):
    if isinstance(node, Const):
        return node.value.number()
    if isinstance(node, (Contract, Add, Map)):
        return lower(node, B, tuple(_is_number(a) for a in args))(B, *args, like)
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
