"""Nodes lowered to backend operations, once: the interpreter runs the list,
the code writer prints it.

* `lower(node, B, numbers, known, late)`: the `Ops` of a Contract, an Add or
  a Map node; its registers are the node's operands, then `like` (the
  program's first array, or None);
* `node_plan(node, numbers)`: a Contract's plan over its array operands.

Where a number goes: a Contract's numbers multiply its coefficient (known
ones while lowering) and scale the planned result, also when the factor is
1 (a number operand always multiplies: the dtype does not depend on its
value); an Add's known numbers add up into one number added last, also
when it is 0; a Map's numbers become arrays when the backend's kernels take
arrays (`numbers_as_arrays`), in the dtype of its first array operand, or
of the program's when that is floating point.

>>> import numpy as np, einvjp
>>> from einvjp.backend import backend_for
>>> g = einvjp.compile("y[b] = x[b,j] w[j] / 2 + s").graph(x=np.ones((2, 3)), w=np.ones(3), s=1.0)
>>> B = backend_for([np.ones(1)])
>>> add = g.outputs[0]
>>> [name for name, _, _ in lower(add, B, (False, True)).ops]
['add']
"""

from __future__ import annotations

from .ge import GE, Index
from .ir import Add, Contract, Map, distinct
from .ops import Ops, broadcast_shape
from .plan import plan_for


def node_plan(node, numbers):
    """The plan of a Contract over its array operands (`numbers` flags the
    operands that are Python numbers; None when none is an array), its
    output labels and its coefficient as a number; cached on the node."""
    if node.cache is None:
        node.cache = {}
    key = ("plan", numbers)
    hit = node.cache.get(key)
    if hit is None:
        plain = {}

        def lab(l):
            if l not in plain:
                plain[l] = Index(l.name, int(l.size))
            return plain[l]
        terms = [[lab(l) for l in t] for t, n in zip(node.terms, numbers) if not n]
        out = [lab(l) for l in node.out]
        p = plan_for(GE(terms, out, 1)) if terms else None
        hit = node.cache[key] = (p, out, node.coeff.number())
    return hit


def lower(node, B, numbers, known=None, late=()) -> Ops:
    """The operations computing `node` from its operands (`numbers[k]`:
    operand k is a Python number; `known[k]`, when not None, is its value,
    the same on every call, folded in) and `like`.  An Add reads its array
    terms with coefficient 1 first, those at the positions `late` last.
    Without `known` and `late` the list is cached on the node."""
    cached = known is None and not late
    key = ("ops", numbers, B.numbers_as_arrays)
    if cached and node.cache is not None and key in node.cache:
        return node.cache[key]
    known = known or (None,) * len(numbers)
    shapes = [None if n else tuple(int(s) for s in a.shape) for a, n in zip(node.args, numbers)]
    ops = Ops(*shapes, None)  # the last: like, an array of unknown shape, or None
    if isinstance(node, Contract):
        _contract(ops, node, numbers, known)
    elif isinstance(node, Add):
        _add(ops, node, numbers, known, late)
    elif isinstance(node, Map):
        _map(ops, node, numbers, B.numbers_as_arrays)
    else:
        raise TypeError(f"no lowering for {node!r}")
    if cached:
        node.cache = node.cache or {}
        node.cache[key] = ops
    return ops


def _contract(ops, node, numbers, known):
    p, out, factor = node_plan(node, numbers)
    varying = []
    for k, n in enumerate(numbers):
        if n and known[k] is not None:
            factor = factor * known[k]
        elif n:
            varying.append(k)
    f = ops.emit("times", varying, (factor,), None) if varying else None
    arrays = [k for k, n in enumerate(numbers) if not n]
    shape = tuple(int(lab.size) for lab in out)
    if not arrays:  # a constant: a number, or ones broadcast or embedded on a diagonal
        if not out:
            if f is None:
                ops.emit("times", (), (factor,), None)
            return
        labels = distinct(out)
        if f is None and len(labels) == len(out):  # a constant tensor: written once
            ops.emit("ones", (ops.n_in - 1,), (shape, factor), shape)
            return
        r = ops.emit("ones", (ops.n_in - 1,), (tuple(int(lab.size) for lab in labels),),
                     tuple(int(lab.size) for lab in labels))
        if len(labels) < len(out):
            r = _inline(ops, plan_for(GE([labels], out, 1)), [r])
        if f is not None:
            ops.emit("scale", (r, f), (), shape)
        elif factor != 1:
            ops.emit("scale", (r,), (factor,), shape)
        return
    r = ops.emit("contract", arrays, (p,), shape)
    if f is not None:
        ops.emit("scale", (r, f), (), shape)
    elif factor != 1 or any(numbers):
        ops.emit("scale", (r,), (factor,), shape)


def _inline(ops, plan, regs):
    """The steps of a plan appended to `ops`, on registers `regs`."""
    slots = list(regs)
    for step in plan.steps:
        local = list(slots[i] for i in step.ins)
        for name, args, params in step.ops.ops:
            local.append(ops.emit(name, [local[a] for a in args], params,
                                  step.ops.shapes[len(local)]))
        slots.append(local[-1])
    return slots[-1]


def _add(ops, node, numbers, known, late):
    out = list(node.out)
    terms, number, folded = [], 0, False
    for k, (t, c) in enumerate(zip(node.terms, node.coeffs)):
        if known[k] is not None:  # constants add up while lowering
            number, folded = number + c.number() * known[k], True
        else:
            terms.append((k, list(t), c.number()))
    # An array read with coefficient 1 first: the others add or subtract.
    terms.sort(key=lambda item: (numbers[item[0]], item[0] in late, item[2] != 1))
    acc = None
    for k, t, c in terms:
        x = ops.align(k, t, out, summed=True)
        if acc is None:
            acc = x if c == 1 else ops.emit(*_scaled(ops, x, c))
        elif ops.shapes[x] is None:  # a number that varies
            x = x if c == 1 else ops.emit("times", (x,), (c,), None)
            acc = ops.emit("plus" if ops.shapes[acc] is None else "add", (acc, x), (),
                           ops.shapes[acc])
        else:
            shape = broadcast_shape(ops.shapes[acc], ops.shapes[x])
            acc = ops.emit("add_scaled", (acc, x), (c,), shape)
    if folded:  # even a 0 (it may promote, and -0.0 + 0 is 0)
        acc = ops.emit("plus" if ops.shapes[acc] is None else "add", (acc,), (number,),
                       ops.shapes[acc])
    shape = tuple(int(lab.size) for lab in out)
    if ops.shapes[acc] != shape:
        if ops.shapes[acc] is None:
            acc = ops.emit("as_array", (acc,), (), ())
        ops.emit("broadcast_to", (acc,), (shape,), shape)
    elif acc < ops.n_in:  # one term read as it is: the result is a register of its own
        ops.emit("reshape", (acc,), (shape,), shape)


def _scaled(ops, x, c):
    if ops.shapes[x] is None:
        return "times", (x,), (c,), None
    return "scale", (x,), (c,), ops.shapes[x]


def _map(ops, node, numbers, numbers_as_arrays):
    out = list(node.out)
    regs = [ops.align(k, list(t), out) for k, t in enumerate(node.terms)]
    if numbers_as_arrays and any(numbers):
        arrays = [k for k, n in enumerate(numbers) if not n]
        like, floating = (arrays[0], False) if arrays else (ops.n_in - 1, True)
        regs = [ops.emit("as_array", (r, like), (floating,), ()) if n else r
                for r, n in zip(regs, numbers)]
    ops.emit("kernel", regs, (node.prim.name, tuple(node.params)),
             tuple(int(lab.size) for lab in out))
