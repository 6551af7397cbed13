"""Rebuilding a graph bottom-up, the step every simplification takes.

- `rebuild`: each node replaced by what a function makes of it and its new operands
- `remake`: a node with new operands, normalised (scalar Maps folded)
- `fuse_contract`: a Contract with the Contract operands `inline` picks inlined
- `flatten`: a Contract with every Contract operand inlined
"""

from __future__ import annotations

from .backend import load
from .ge import Index
from .ir import Add, Const, Contract, Input, Map, contract, is_zero, topo
from .ir import add as add_node
from . import prims


def rebuild(outputs, fn):
    """Rebuild the graph bottom-up: fn(node, new_args, old_args) returns the
    replacement (the node itself when nothing changes)."""
    memo = {}
    for node in topo(outputs):
        old = getattr(node, "args", ())
        new = tuple(memo[a] for a in old)
        r = fn(node, new, old)
        if r is not node:
            if node.name and r.name is None and not isinstance(r, (Input, Const)):
                r.name = node.name
            if node.grad_of and r.grad_of is None and r.name is None:
                r.grad_of = node.grad_of
        memo[node] = r
    return [memo[o] for o in outputs]


def remake(node, args):
    """`node` with new operands, normalised."""
    ops = list(zip(args, node.terms))
    if isinstance(node, Contract):
        if any(is_zero(a) for a in args):
            return contract([], node.out, 0)
        return contract(ops, node.out, node.coeff)
    if isinstance(node, Add):
        return add_node([(a, t, c) for a, t, c in zip(args, node.terms, node.coeffs)], node.out)
    if isinstance(node, Map):
        if all(isinstance(a, Const) for a in args):  # scalars only: fold
            v = load("numpy").kernels[node.prim.name](*[a.value.number() for a in args],
                                                       *node.params)
            return Const(v.item() if hasattr(v, "item") else v)
    return type(node)(node.prim, args, node.terms, node.out, node.params)


class _UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        while self.parent.get(x, x) is not x:
            x = self.parent[x]
        return x

    def union(self, a, b, prefer):
        a, b = self.find(a), self.find(b)
        if a is not b:
            if b in prefer and a not in prefer:
                a, b = b, a
            self.parent[b] = a


def _inline_contract(inner, term):
    """inner's operands renamed into the reader's labels `term`, plus the
    label pairs that must be equal (a repeated label of inner.out)."""
    ren, merges = {}, []
    for a, c in zip(inner.out, term):
        if a in ren:
            merges.append((ren[a], c))
        else:
            ren[a] = c
    for t in inner.terms:
        for lab in t:
            if lab not in ren:
                ren[lab] = Index(lab.name, lab.size)
    return [(n, tuple(ren[l] for l in t)) for n, t in inner.operands()], merges


def fuse_contract(ops, out, coeff, inline):
    """A Contract over `ops`, with the operands `inline(node)` selects
    replaced by their own operands (one bigger GE)."""
    summed = [l for _, t in ops for l in t if l not in set(out)]
    new_ops, merges = [], []
    for n, t in ops:
        if isinstance(n, Contract) and inline(n):
            more, m = _inline_contract(n, t)
            new_ops += more
            merges += m
            coeff = coeff * n.coeff
            summed += [l for l in t if l not in set(out)]
        else:
            new_ops.append((n, t))
    if merges:
        uf = _UnionFind()
        keep = set(out)
        for a, b in merges:
            uf.union(a, b, keep)
        new_ops = [(n, tuple(uf.find(l) for l in t)) for n, t in new_ops]
        out = tuple(uf.find(l) for l in out)
        summed = [uf.find(l) for l in summed]
    return contract(new_ops, out, coeff, summed=summed)


def flatten(node):
    """A Contract with every Contract operand inlined (recursively)."""
    while isinstance(node, Contract) and any(isinstance(a, Contract) for a in node.args):
        node = fuse_contract(list(node.operands()), node.out, node.coeff,
                             lambda n: True)
    return node
