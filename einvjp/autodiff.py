"""The VJP walk: a program's derivative as another program.

- `vjp_nodes`: walk the nodes backwards, each node's rule emitting its operands'
  cotangents as new nodes (the role swap for a Contract, "sum the labels the
  operand lacks" for an Add, partials for a Map, a closed form for a Func),
  accumulated with Add
- `batch`: vmap by label
- `jacobian_node`: a full Jacobian, the VJP batched over an identity cotangent
"""

from __future__ import annotations

from .ir import (Add, Contract, Expr, Input, Map, axes, contract, is_zero, materialize,
                 product, topo)
from .ir import add as add_node
from .simplify import simplify

def _accumulate(node, contributions):
    if len(contributions) == 1:
        g = contributions[0]
    else:
        labels = axes(node, [l.name for l in node.out] if hasattr(node, "out")
                      and len(set(node.out)) == len(node.out) else None)
        g = add_node([(c, labels, 1) for c in contributions], labels)
    if node.name and not isinstance(g, Input) and g.name is None and g.grad_of is None:
        g.grad_of = node.name
    return g


def _operand_vjp(node, k, g):
    """The cotangent of operand k of `node`, given the node's cotangent g: a
    node of the operand's shape (or None for zero)."""
    if isinstance(node, Contract):
        ops = list(node.operands())
        return contract([(g, node.out)] + ops[:k] + ops[k + 1:], node.terms[k], node.coeff)
    if isinstance(node, Add):
        return contract([(g, node.out)], node.terms[k], node.coeffs[k])
    args = [Expr(a, t) for a, t in node.operands()]
    out = Expr(node, node.out)
    ct = Expr(g, node.out)
    if isinstance(node, Map):
        v = node.prim.cotangent(ct, args, out, node.params, k)
        return None if v is None else product(v, out=node.terms[k]).node
    params = dict(zip(node.prim.param_names, node.params))
    v = node.prim.vjp(ct, *args, out=out, **params)[k]
    return None if v is None else materialize(v, node.terms[k])


def vjp_nodes(outputs, cotangents, wrt):
    """Cotangent nodes of the `wrt` nodes (None where an input does not
    reach the outputs), given one cotangent node per output."""
    order = topo(outputs)
    live = set(wrt)
    for node in order:
        if any(a in live for a in getattr(node, "args", ())):
            live.add(node)
    pending = {}
    for o, c in zip(outputs, cotangents):
        if o in live:
            pending.setdefault(o, []).append(c)
    grads = {}
    for node in reversed(order):
        cs = pending.pop(node, None)
        if not cs:
            continue
        g = grads[node] = _accumulate(node, cs)
        for k, arg in enumerate(getattr(node, "args", ())):
            if arg in live:
                c = _operand_vjp(node, k, g)
                if c is not None and not is_zero(c):
                    pending.setdefault(arg, []).append(c)
    return [grads.get(w) for w in wrt]


def batch(outputs, source, replacement, extra):
    """vmap by label: every node depending on `source` gains the labels
    `extra` (appended to its axes); `source` becomes `replacement`, whose
    axes are source's followed by extra's."""
    memo, dep = {}, set()
    for node in topo(outputs):
        if node is source:
            memo[node], _ = replacement, dep.add(node)
            continue
        args = getattr(node, "args", ())
        if not any(a in dep for a in args):
            memo[node] = node
            continue
        dep.add(node)
        new = [memo[a] for a in args]
        terms = [t + tuple(extra) if a in dep else t for a, t in zip(args, node.terms)]
        out = node.out + tuple(extra)
        if isinstance(node, Contract):
            memo[node] = Contract(new, terms, out, node.coeff)
        elif isinstance(node, Add):
            memo[node] = Add(new, terms, out, node.coeffs)
        else:
            memo[node] = node.__class__(node.prim, new, terms, out, node.params)
    return [memo[o] for o in outputs]


def jacobian_node(outputs, k, x):
    """∂outputs[k]/∂x as one node of shape out.shape + x.shape: the VJP
    program batched over a cotangent that is the identity δ[o,o'] (never
    materialised: fusion turns it into renamed labels)."""
    out = outputs[k]
    ct = Input(f"∂l/∂{out.name or 'y'}", out.shape)
    g, = vjp_nodes([out], [ct], [x])
    o = axes(ct, [f"o{j}" for j in range(ct.ndim)])
    if g is None:
        xl = axes(x)
        return contract([], o + xl, 0)
    extra = axes(ct, [f"o{j}" for j in range(ct.ndim)])
    identity = Contract((), (), o + o, 1)
    gb, = batch([g], ct, identity, extra)
    xl = axes(x)
    j, = simplify([contract([(gb, xl + extra)], extra + xl)])
    return j
