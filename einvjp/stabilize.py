"""Stable rewrites of exp/log patterns.

- `stabilize`: exp(x)/Σexp(x) into softmax, log Σexp into logsumexp, log of
  softmax and of products holding one into log_softmax forms
"""

from __future__ import annotations

import math

from .ge import Index
from .ir import (Call, Const, Contract, Expr, Func, Input, contract, distinct, is_func, is_map,
                 product, total)
from .rewrite import flatten, fuse_contract, rebuild, remake
from . import prims


def _sum_of_exp(node):
    """D = c · Σ_J exp(y), with c any real number but 0 however it is written
    (a coefficient of the sum, or of a Contract reading the sum): (D as one
    Contract, the exp node, its term in D, c) or None."""
    while isinstance(node, Contract) and len(node.args) == 1 \
            and isinstance(node.args[0], Contract):
        node = fuse_contract(list(node.operands()), node.out, node.coeff, lambda n: True)
    if isinstance(node, Contract) and len(node.args) == 1 and is_map(node.args[0], "exp") \
            and len(set(node.terms[0])) == len(node.terms[0]) \
            and set(node.out) <= set(node.terms[0]) and len(set(node.out)) == len(node.out):
        c = node.coeff.number()
        if isinstance(c, (int, float)) and c != 0:
            return node, node.args[0], node.terms[0], node.coeff
    return None


def _through(node, term):
    """Operand 0 of a Map/Func `node` read through `term` (node's out -> term)."""
    ren = dict(zip(node.out, term))
    return node.args[0], tuple(ren.get(l, l) for l in node.terms[0]), ren


def _softmax_pair(ops):
    """Find exp(x)[t] · (1/(c Σ_J exp(x)))[t'] among Contract operands:
    returns (index of exp, index of reciprocal, J labels, c) or None."""
    for i, (e, te) in enumerate(ops):
        if not is_map(e, "exp"):
            continue
        for k, (r, tr) in enumerate(ops):
            if not is_map(r, "reciprocal"):
                continue
            found = _sum_of_exp(r.args[0])
            if found is None or found[1] is not e:
                continue
            d, _, dterm, c = found
            dt_r = dict(zip(r.out, tr))
            # D's kept labels, renamed into the reader, must match exp's labels.
            d_out = {lab: dt_r[r.terms[0][p]] for p, lab in enumerate(d.out)} \
                if len(r.terms[0]) == len(d.out) else None
            if d_out is None:
                continue
            over, ok = [], True
            for axis, lab in enumerate(dterm):
                if lab in d_out:
                    ok = ok and te[axis] is d_out[lab]
                else:
                    over.append(te[axis])
            if ok and over and len(set(te)) == len(te):
                return i, k, over, c
    return None


def _log_parts(node, term):
    """log(node[term]) as a list of (Expr, coeff) terms when a stable form
    exists (node is exp, softmax, 1/Σexp or a product holding one)."""
    if is_map(node, "exp"):
        x, t, _ = _through(node, term)
        return [(Expr(x, t), 1)]
    if is_func(node, "softmax"):
        x, t, ren = _through(node, term)
        return [(_func_expr(prims.LOG_SOFTMAX, x, t, term, (tuple(ren[l] for l in
                                                                 node.params[0]),)), 1)]
    if is_map(node, "reciprocal"):
        inner = node.args[0]
        ren = dict(zip(node.out, term))
        parts = _log_parts(inner, tuple(ren[l] for l in node.terms[0]))
        return None if parts is None else [(e, -c) for e, c in parts]
    if isinstance(node, Contract):
        return _log_product(node, term)
    return None


def _func_expr(p, x, xterm, out, params, extra=()):
    node = Func(p, (x,) + tuple(n for n, _ in extra), (xterm,) + tuple(t for _, t in extra),
                out, params)
    return Expr(node, out)


def _log_product(node, term):
    if len(set(term)) != len(term) or len(set(node.out)) != len(node.out):
        return None
    c = node.coeff.number()
    if not isinstance(c, (int, float)) or c <= 0:
        return None
    node = flatten(node)
    ren = dict(zip(node.out, term))
    for t in node.terms:
        for lab in t:
            if lab not in ren:
                ren[lab] = Index(lab.name, lab.size)
    ops = [(n, tuple(ren[l] for l in t)) for n, t in node.operands()]
    kept = set(term)
    inside = [(n, t) for n, t in ops if not set(t) <= kept]
    outside = [(n, t) for n, t in ops if set(t) <= kept]
    special = [(n, t) for n, t in inside if is_map(n, "exp") or is_func(n, "softmax")]
    helpful = special or any(_log_parts(n, t) is not None for n, t in outside
                             if isinstance(n, Call))
    if not helpful or len(special) > 1:
        return None
    parts = []
    if c != 1:
        parts.append((Expr(Const(math.log(c)), ()), 1))
    for n, t in outside:
        p = _log_parts(n, t) if not isinstance(n, (Input,)) else None
        parts += p if p is not None else [(prims.log(Expr(n, t)), 1)]
    if inside:
        if not special:
            e = product(*[Expr(n, t) for n, t in inside], out=[l for l in distinct(
                l for _, t in inside for l in t) if l in kept])
            parts.append((prims.log(e), 1))
            return parts
        (s, ts), = special
        x, tx, sren = _through(s, ts)
        xlabels = set(tx)
        weights = [(n, t) for n, t in inside if n is not s]
        wl = distinct(l for _, t in weights for l in t if l in xlabels)
        if any(l in kept and l not in xlabels for _, t in weights for l in t):
            return None
        over = tuple(l for l in distinct(tx) if l not in kept)
        extra = ()
        if weights:
            w = product(*[Expr(n, t) for n, t in weights], out=wl)
            extra = ((w.node, w.labels),)
        out = tuple(l for l in tx if l in kept)
        parts.append((_func_expr(prims.LSE, x, tx, out, (over,), extra), 1))
        if is_func(s, "softmax"):
            j = tuple(sren[l] for l in s.params[0])
            norm = tuple(l for l in tx if l not in j)
            if not set(norm) <= kept:
                return None
            parts.append((_func_expr(prims.LSE, x, tx, norm, (j,)), -1))
    return parts


def stabilize(outputs):
    """Rewrite exp/(c Σexp) quotients into softmax / c, and log of exp, softmax and
    products holding them into logsumexp / log_softmax forms."""

    def fn(node, new, old):
        if new != old:
            node = remake(node, new)
        if isinstance(node, Contract):
            ops = list(node.operands())
            found = _softmax_pair(ops)
            if found is not None:
                i, k, over, c = found
                e, te = ops[i]
                x, tx, _ = _through(e, te)
                s = Func(prims.SOFTMAX, (x,), (tx,), te, (tuple(over),))
                rest = [op for j, op in enumerate(ops) if j not in (i, k)]
                return contract(rest + [(s, te)], node.out, node.coeff / c)
        if is_map(node, "log"):
            parts = _log_parts(node.args[0], node.terms[0])
            if parts is not None:
                return total(*[(e, c) for e, c in parts], out=node.out).node
        return node
    return rebuild(outputs, fn)
