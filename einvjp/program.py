"""Programs: evaluate a graph, derive its VJP as another graph, simplify.

The VJP of a program is a program: walk the nodes backwards, let
each node's rule emit new nodes for its operands' cotangents (the role swap
for a Contract, "sum the labels the operand lacks" for an Add, partials for a
Map, a closed form for a structured primitive), accumulate with Add.  Then
simplify: CSE up to label renaming, fold constants and coefficients, fuse a
Contract read once into its reader (one bigger GE for opt_einsum to order),
rewrite exp/log patterns into stable forms, and drop what is dead (the
rebuild starts from the outputs).  The backward graph reads the forward's
nodes directly, so forward intermediates are reused, never recomputed.

>>> import numpy as np
>>> import einvjp
>>> prog = einvjp.compile('''
...     m[b]    = x[b,h] / H
...     mu[b,h] = x[b,h] - m[b]
...     v[b]    = mu[b,h]^2 / H
...     s[b]    = sqrt(v[b] + eps)
...     y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]
... ''')
>>> print(prog.derivative("gamma"))
∂l/∂gamma[p] = ∂l/∂y[b,p] mu[b,p] / s[b]
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from fractions import Fraction

from .errors import ProgramError
from .ge import Index
from .ir import (Add, Coef, Const, Contract, Expr, Func, Input, Map, axes, contract,
                 distinct, is_zero, key, materialize, product, topo, total, uses)
from .ir import add as add_node
from .backend import load
from .codegen import Lowered
from .execute import _NUMBERS, _inexact, _is_number, _shape, _tensor, evaluate
from . import prims

# --- VJP --------------------------------------------------------------------


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
    ge = Expr(g, node.out)
    if isinstance(node, Map):
        v = node.prim.cotangent(ge, args, out, node.params, k)
        return None if v is None else product(v, out=node.terms[k]).node
    params = dict(zip(node.prim.param_names, node.params))
    v = node.prim.vjp(ge, *args, out=out, **params)[k]
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


# --- Simplification -------------------------------------------------------------


def _rebuild(outputs, fn):
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


def _remake(node, args):
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
        return Map(node.prim, args, node.terms, node.out, node.params)
    return Func(node.prim, args, node.terms, node.out, node.params)


def cse(outputs):
    """Merge nodes equal up to label renaming; re-normalise changed nodes."""
    table = {}

    def fn(node, new, old):
        if new != old:
            node = _remake(node, new)
        k = key(node)
        found = table.get(k)
        if found is None:
            table[k] = found = node
        return found
    return _rebuild(outputs, fn)


def _is_relabel(node):
    """A single-operand Contract that only permutes, scales or broadcasts."""
    if not isinstance(node, Contract) or len(node.args) != 1:
        return False
    term = node.terms[0]
    return len(set(term)) == len(term) and len(set(node.out)) == len(node.out) \
        and set(term) <= set(node.out)


def _is_permutation(node):
    return _is_relabel(node) and node.coeff.is_one and set(node.terms[0]) == set(node.out)


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


def fuse(outputs):
    """Fuse Contracts read once into the Contract reading them; fold
    relabelling Contracts into Add terms and Map/Func operands; flatten an
    Add read once into the Add reading it."""
    count = uses(outputs)
    roots = set(outputs)

    def once(old):
        """Read once, and not a tensor the program names (kept for printing)."""
        return count.get(old, 0) == 1 and old not in roots and old.name is None

    def inline(n, single):
        return n in single or _is_relabel(n) or not n.args  # a constant or a delta

    def fn(node, new, old):
        if isinstance(node, Contract):
            single = {n for n, o in zip(new, old) if once(o)}
            if not any(isinstance(n, Contract) and inline(n, single) for n in new):
                return node if new == old else _remake(node, new)
            return fuse_contract(list(zip(new, node.terms)), node.out, node.coeff,
                                 lambda n: inline(n, single))
        if isinstance(node, Add):
            terms, changed = [], new != old
            for n, o, t, c in zip(new, old, node.terms, node.coeffs):
                if _is_relabel(n):
                    ren = dict(zip(n.out, t))
                    terms.append((n.args[0], tuple(ren[l] for l in n.terms[0]), c * n.coeff))
                    changed = True
                elif isinstance(n, Add) and once(o):
                    ren = dict(zip(n.out, t))
                    terms += [(a, tuple(ren[l] for l in tt), c * cc)
                              for a, tt, cc in zip(n.args, n.terms, n.coeffs)]
                    changed = True
                else:
                    terms.append((n, t, c))
            return add_node(terms, node.out) if changed else node
        if isinstance(node, (Map, Func)):
            if not any(_is_permutation(n) for n in new):
                return node if new == old else _remake(node, new)
            args, terms = [], []
            for n, t in zip(new, node.terms):
                if _is_permutation(n):
                    ren = dict(zip(n.out, t))
                    args.append(n.args[0])
                    terms.append(tuple(ren[l] for l in n.terms[0]))
                else:
                    args.append(n)
                    terms.append(t)
            return node.__class__(node.prim, args, terms, node.out, node.params)
        return node
    return _rebuild(outputs, fn)


# --- Stable rewrites ------------------------------------------------------------


def _is_map(node, name):
    return isinstance(node, Map) and node.prim.name == name


def _is_func(node, name):
    return isinstance(node, Func) and node.prim.name == name


def _sum_of_exp(node):
    """D = c · Σ_J exp(y), with c any real number but 0 however it is written
    (a coefficient of the sum, or of a Contract reading the sum): (D as one
    Contract, the exp node, its term in D, c) or None."""
    while isinstance(node, Contract) and len(node.args) == 1 \
            and isinstance(node.args[0], Contract):
        node = fuse_contract(list(node.operands()), node.out, node.coeff, lambda n: True)
    if isinstance(node, Contract) and len(node.args) == 1 and _is_map(node.args[0], "exp") \
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
        if not _is_map(e, "exp"):
            continue
        for k, (r, tr) in enumerate(ops):
            if not _is_map(r, "reciprocal"):
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
    if _is_map(node, "exp"):
        x, t, _ = _through(node, term)
        return [(Expr(x, t), 1)]
    if _is_func(node, "softmax"):
        x, t, ren = _through(node, term)
        return [(_func_expr(prims.LOG_SOFTMAX, x, t, term, (tuple(ren[l] for l in
                                                                 node.params[0]),)), 1)]
    if _is_map(node, "reciprocal"):
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
    node = _flatten(node)
    ren = dict(zip(node.out, term))
    for t in node.terms:
        for lab in t:
            if lab not in ren:
                ren[lab] = Index(lab.name, lab.size)
    ops = [(n, tuple(ren[l] for l in t)) for n, t in node.operands()]
    kept = set(term)
    inside = [(n, t) for n, t in ops if not set(t) <= kept]
    outside = [(n, t) for n, t in ops if set(t) <= kept]
    special = [(n, t) for n, t in inside if _is_map(n, "exp") or _is_func(n, "softmax")]
    helpful = special or any(_log_parts(n, t) is not None for n, t in outside
                             if isinstance(n, (Map, Func)))
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
        if _is_func(s, "softmax"):
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
            node = _remake(node, new)
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
        if _is_map(node, "log"):
            parts = _log_parts(node.args[0], node.terms[0])
            if parts is not None:
                return total(*[(e, c) for e, c in parts], out=node.out).node
        return node
    return _rebuild(outputs, fn)


# --- Cancellation -----------------------------------------------------------------


def _flatten(node):
    """A Contract with every Contract operand inlined (recursively)."""
    while isinstance(node, Contract) and any(isinstance(a, Contract) for a in node.args):
        node = fuse_contract(list(node.operands()), node.out, node.coeff,
                             lambda n: True)
    return node


def _distribute(node, k):
    """node = Σ_j c_j · node with Add operand k replaced by its term j."""
    ops = list(node.operands())
    a, t = ops[k]
    ren = dict(zip(a.out, t))
    summed = [l for _, tt in ops for l in tt if l not in set(node.out)]
    return [_flatten(contract(ops[:k] + [(b, tuple(ren[l] for l in bt))] + ops[k + 1:],
                              node.out, node.coeff * c, summed=summed))
            for b, bt, c in zip(a.args, a.terms, a.coeffs)]


def _broadcast_under_sum(node, k):
    """Operand k of a Contract is an Add with a term constant along a label
    the Contract sums (Σ_h (x[h] - 1[h] m)): the shape of a cancellation."""
    a, t = node.args[k], node.terms[k]
    if not isinstance(a, Add):
        return False
    summed = {pos for pos, lab in enumerate(t) if lab not in set(node.out)}
    return any(a.out[pos] not in set(at) for at in a.terms for pos in summed)


_MASK = (1 << 64) - 1  # leaf hashes add up modulo 2^64


class _Pairing:
    """Which nodes may hide a cancellation, memoised per node (linear in the
    graph): distributing a product over its Add operands can only make terms
    cancel when some Add reachable through the product's Contracts (and, once
    distributed, through its terms' Contracts) has two terms made of the same
    factors, or when a factor is a constant zero.  Terms of different
    factors never have equal keys, so a product reaching no such Add never
    vanishes, and `_vanishes` need not distribute it."""

    def __init__(self):
        self._leaves, self._reach = {}, {}

    def leaves(self, node):
        """A hash of the multiset of non-Contract factors `node` flattens to
        (equal factors, up to label renaming, hash equally)."""
        found = self._leaves.get(node)
        if found is None:
            if isinstance(node, Contract):
                found = sum(self.leaves(a) for a in node.args) & _MASK
            elif isinstance(node, Const):
                found = 0
            else:
                found = hash(key(node)) & _MASK
            self._leaves[node] = found
        return found

    def reach(self, node):
        """Whether flattening and distributing `node` may meet a pairable Add
        or a zero factor."""
        found = self._reach.get(node)
        if found is None:
            if is_zero(node):
                found = True
            elif isinstance(node, Contract):
                found = any(self.reach(a) for a in node.args)
            elif isinstance(node, Add):
                hashes = [self.leaves(a) for a in node.args]
                found = len(set(hashes)) < len(hashes) or any(self.reach(a) for a in node.args)
            else:
                found = False
            self._reach[node] = found
        return found



def _vanishes(node, depth, memo, pairing):
    """Whether a Contract is identically zero because distributing it over
    an Add operand of that shape makes every term cancel."""
    if is_zero(node):
        return True
    if not isinstance(node, Contract) or depth <= 0 or not pairing.reach(node):
        return False
    k0 = key(node)
    if k0 in memo:
        return memo[k0]
    memo[k0] = False
    for k in range(len(node.args)):
        if not _broadcast_under_sum(node, k):
            continue
        acc = {}  # key -> (sum of the coefficients, the largest of them)
        for term in _distribute(node, k):
            if _vanishes(term, depth - 1, memo, pairing):
                continue
            if isinstance(term, Contract):
                kk, c = key(Contract(term.args, term.terms, term.out, 1)), term.coeff.value()
            else:
                kk, c = key(term), 1
            total_c, largest = acc.get(kk, (0, 0))
            acc[kk] = total_c + c, max(largest, abs(c))
        # Equal terms cancel when their coefficients add up to 0: exactly, or
        # to rounding for floating-point ones (never a small coefficient alone).
        if all(abs(v) <= 1e-12 * largest for v, largest in acc.values()):
            memo[k0] = True
            break
    return memo[k0]


def cancel(outputs, depth=3, seen=None):
    """Distribute a Contract over an Add operand when some of the resulting
    terms vanish (see `_vanishes`), keeping the others: the step
    1[h] mu[p,h] = 0 of the layer norm's gradient (docs/notation.md).  Such
    a sum is 0 for finite values (with an inf or nan among them, evaluating
    it would give nan); a tensor minus itself, by contrast, is kept as
    written (see `einvjp.ir.add`).  `seen` (a set shared by the rounds of
    `simplify`) holds the nodes already found to have nothing to cancel."""
    memo, pairing = {}, _Pairing()
    seen = set() if seen is None else seen

    def fn(node, new, old):
        if new != old:
            node = _remake(node, new)
        if node in seen or not isinstance(node, Contract) or len(set(node.out)) != len(node.out):
            return node
        for k, a in enumerate(node.args):
            if isinstance(a, Add):
                if not (pairing.reach(a) or any(pairing.reach(b) for i, b in
                                                enumerate(node.args) if i != k)):
                    continue  # no term of the distribution can vanish
                terms = _distribute(node, k)
                keep = [t for t in terms if not _vanishes(t, depth, memo, pairing)]
                if len(keep) < len(terms):
                    return add_node([(t, node.out, 1) for t in keep], node.out)
        seen.add(node)
        return node
    return _rebuild(outputs, fn)


def simplify(outputs, stable=True, rounds=12):
    """Run the passes until nothing changes (at most `rounds` times)."""
    outputs, seen = list(outputs), set()
    for _ in range(rounds):
        new = cse(outputs)
        new = fuse(new)
        if stable:
            new = stabilize(new)
        new = cse(cancel(new, seen=seen))
        if all(a is b for a, b in zip(new, outputs)):
            break
        outputs = new
    return outputs


# --- Programs -------------------------------------------------------------------


_CACHED = 64  # entries a per-graph cache keyed by number values keeps before it starts over


def _is_array(v):
    return not isinstance(v, (int, float, complex, bool)) and hasattr(v, "shape")


def _aliased(nodes):
    """Which of `nodes`, results handed to a caller, may share memory with a
    value the caller gave (an Input: an input, a cotangent, a constant) or
    with an earlier result: a node that is an Input, or a view of one or of
    an earlier result's node (a one-operand Contract that only relabels:
    transpose, diagonal, broadcast), or an earlier result's node again."""
    roots, flags = set(), []
    for node in nodes:
        while isinstance(node, Contract) and len(node.args) == 1 and node.coeff.is_one \
                and set(node.terms[0]) <= set(node.out):
            node = node.args[0]
        flags.append(node is not None and (isinstance(node, Input) or node in roots))
        roots.add(node)
    return flags


def _owned(B, results, flags):
    """The results with those `flags` marks (see `_aliased`), or that are
    the same object as an earlier one, copied: results never share memory
    with each other or with the caller's values."""
    out = []
    for y, flag in zip(results, flags):
        out.append(B.copy(y) if flag or any(y is o for o in out) else y)
    return out


class Graph:
    """A program bound to input shapes: Input nodes and output nodes, the
    forward simplified, derivatives derived (and cached) on demand."""

    def __init__(self, inputs, outputs, output_names):
        self.inputs = dict(inputs)
        self.output_names = list(output_names)
        self.raw = list(outputs)
        self.outputs = simplify(outputs)
        self.constants = {}  # Input node -> array, for arrays a traced function closed over
        self._derived = {}
        self._functions = {}  # (backend, array inputs, numbers) -> (_Autodiff, B.differentiable)
        self._lowered = {}  # (backend, outputs, given nodes) -> Lowered

    def feed(self, values, B):
        """Input nodes -> values (the program's inputs and its constants)."""
        feed = {self.inputs[n]: v for n, v in values.items() if n in self.inputs}
        feed.update({n: B.asarray(v) for n, v in self.constants.items()})
        return feed

    def lowered(self, outputs, given, B, fixed=()) -> Lowered:
        """`outputs` from the values of the `given` nodes as straight-line
        code (`einvjp.execute.Lowered`), the (node, number) pairs of `fixed`
        written in as constants; cached."""
        key = (B.name, tuple(outputs), tuple(given), _exact(fixed))
        found = self._lowered.get(key)
        if found is None:
            if len(self._lowered) >= 4 * _CACHED:
                self._lowered.clear()
            found = self._lowered[key] = Lowered(outputs, given, B, dict(fixed))
        return found

    def evaluate(self, outputs, feed, B):
        """`evaluate(outputs, feed, ...)` through `lowered` code."""
        return self.lowered(outputs, list(feed), B)(list(feed.values()))

    def cotangent_inputs(self):
        return [Input(f"∂l/∂{n}", o.shape) for n, o in zip(self.output_names, self.outputs)]

    def __str__(self):
        """The (simplified) forward program in index notation."""
        return _render_program(_Text(), self.outputs, self.output_names)[0]

    @property
    def sizes(self):
        """The sizes of the labels that no tensor carries in their statement
        (a broadcast, `y[i,j] = x[i] 1[j]`): `compile(str(g), sizes=g.sizes)`
        is this program again."""
        return _render_program(_Text(), self.outputs, self.output_names)[1]

    def latex(self):
        return " \\\\\n".join(_render_program(_Latex(), self.outputs,
                                               self.output_names)[0].split("\n"))

    def jacobian(self, name, k=0):
        """The (cached) node of ∂outputs[k]/∂name."""
        if ("jacobian", name, k) not in self._derived:
            self._derived["jacobian", name, k] = jacobian_node(self.outputs, k,
                                                               self.inputs[name])
        return self._derived["jacobian", name, k]

    def derived_function(self, values, B):
        """(f, nodes): `B.differentiable(_Autodiff(...))` at the numbers in
        `values`, a function of the values of `nodes` (the array inputs and
        constants); cached."""
        feed = self.feed(values, B)
        nodes = tuple(n for n, v in feed.items() if not _is_number(v))
        numbers = tuple((n, v) for n, v in feed.items() if _is_number(v))
        # The numbers are constants of the code (the fastest code) until, where
        # the backend allows (`numbers_vary`: torch), one is met with another
        # value: from then on they are arguments of the code, written once for
        # every value (not once a value).
        exact = _exact(numbers)
        vary = B.numbers_vary
        key = (B.name, nodes, tuple((n, type(v)) for n, v in numbers) if vary else exact)
        found = self._functions.get(key)
        if found is None:
            if len(self._functions) >= _CACHED:  # e.g. a number input that changes every call
                self._functions.clear()
            rule = _Autodiff(self, nodes, numbers, B)
            found = self._functions[key] = (rule, B.differentiable(rule))
        rule, f = found
        if rule.exact != exact and not rule.vary:
            rule = _Autodiff(self, nodes, numbers, B, vary=True)
            rule, f = self._functions[key] = (rule, B.differentiable(rule))
        if rule.exact != exact:
            f = B.differentiable(rule.at(numbers))
        return f, nodes

    def linearized(self, wrt):
        """(tangent inputs, one JVP node per output or None) for the inputs
        named in `wrt`: the VJP program transposed, i.e. its own VJP with
        respect to the cotangents, in which it is linear."""
        wrt = tuple(wrt)
        if ("jvp", wrt) not in self._derived:
            cts, _, grads = self.derived(wrt)
            tangents = [Input(f"∂{n}", self.inputs[n].shape) for n in wrt]
            present = [(g, t) for g, t in zip(grads, tangents) if g is not None]
            outs = vjp_nodes([g for g, _ in present], [t for _, t in present], cts)
            simple = iter(simplify([o for o in outs if o is not None]))
            self._derived["jvp", wrt] = (tangents, [None if o is None else next(simple)
                                                    for o in outs])
        return self._derived["jvp", wrt]

    def derived(self, wrt):
        """(cotangent inputs, forward outputs, gradient nodes or None) for the
        inputs named in `wrt`, simplified together."""
        wrt = tuple(wrt)
        if wrt not in self._derived:
            cts = self.cotangent_inputs()
            grads = vjp_nodes(self.outputs, cts, [self.inputs[n] for n in wrt])
            present = [g for g in grads if g is not None]
            both = simplify(list(self.outputs) + present)
            fwd, rest = both[:len(self.outputs)], iter(both[len(self.outputs):])
            self._derived[wrt] = (cts, fwd, [None if g is None else next(rest) for g in grads])
        return self._derived[wrt]


def number_key(v):
    """A number as part of a cache key: its type and exact value, so that
    2, 2.0 and True are apart, 0.0 and -0.0 too, and a NaN finds itself."""
    if isinstance(v, float):  # and its subclasses (NumPy's float64), by their type
        return type(v), v.hex()
    if isinstance(v, complex):
        return type(v), v.real.hex(), v.imag.hex()
    return type(v), v


def _exact(numbers):
    """(node, number) pairs as a key: each number by its type and exact value."""
    return tuple((n, number_key(v)) for n, v in numbers)


class _Autodiff:
    """A bound graph as a function of its array inputs (`nodes`) at the
    Python `numbers` ((node, value) pairs), for a backend's `differentiable`:
    `run` evaluates the forward program, `vjp` the derived VJP program and
    `jvp` its transpose, all with B's ops (which the library can
    differentiate again).

    The numbers are written into the code as constants, or, with `vary`
    (see `Graph.derived_function`), passed to it after the arrays;
    `at(numbers)` is then the same rule, and the same code, at other
    values.

    `vjp` and `jvp` recompute the forward tensors they read from the
    inputs, so that under autograd they connect to them; a backward that is
    not differentiated again can pass the `residuals` that `forward` kept
    instead.  Equal (and hashed) by graph, inputs and numbers: a parameter
    fit for a JAX primitive."""

    def __init__(self, graph, nodes, numbers, B, vary=False):
        self.graph, self.nodes, self.B, self.vary = graph, nodes, B, vary
        self.numbers, self.exact = numbers, _exact(numbers)
        self.n_outputs = len(graph.outputs)
        # Shared by `at`: the residual nodes, the Lowered outputs + residuals,
        # and per (wanted, dtypes, with residuals) what vjp needs.
        self._cache = {"residuals": None, "forward": None, "vjps": {}}

    def at(self, numbers):
        """This rule at other values of its numbers (`vary`: the code, shared,
        takes them as arguments)."""
        assert self.vary, "a rule with its numbers in its code cannot change them"
        other = copy.copy(self)
        other.numbers, other.exact = numbers, _exact(numbers)
        return other

    def _key(self):
        return (self.graph, self.B.name, self.nodes, self.exact)

    def __eq__(self, other):
        return isinstance(other, _Autodiff) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return f"_Autodiff({', '.join(self.graph.output_names)})"

    def _feed(self, arrays):
        feed = dict(zip(self.nodes, arrays))
        feed.update(self.numbers)
        return feed

    def _outputs(self, outs, arrays):
        return tuple(_tensor(self.B, y, arrays[0]) if _is_number(y) else y
                     for y in outs)

    def run(self, *arrays):
        """The outputs."""
        return self._outputs(self._evaluate(self.graph.outputs, (), arrays), arrays)

    def _lowered(self, outputs, given=()):
        """Lowered code for `outputs` of the arrays (then the numbers, when
        they vary) and further `given` nodes; see `_args`."""
        if self.vary:
            return self.graph.lowered(outputs, self.nodes + tuple(n for n, _ in self.numbers)
                                      + tuple(given), self.B)
        return self.graph.lowered(outputs, self.nodes + tuple(given), self.B, self.numbers)

    def _args(self, arrays, values=()):
        """The arguments of `_lowered` code: the arrays, the numbers when
        they vary, the values of the further given nodes."""
        numbers = [v for _, v in self.numbers] if self.vary else []
        return list(arrays) + numbers + list(values)

    def _evaluate(self, outputs, given, arrays, values=()):
        """`outputs` from the arrays and further `given` nodes (with their
        `values`), through the graph's lowered code."""
        return self._lowered(outputs, given)(self._args(arrays, values))

    def forward(self, *arrays):
        """(outputs, residuals): the residuals are the forward tensors other
        than the outputs that the VJP program (for every inexact array)
        reads."""
        cache = self._cache
        if cache["residuals"] is None:
            known = {}
            evaluate(self.graph.outputs, self._feed(arrays), self.B, known)
            names = tuple(n.name for n, x in zip(self.nodes, arrays) if _inexact(x))
            _, _, grads = self.graph.derived(names)
            grads = [g for g in grads if g is not None]
            forward = set(topo(self.graph.outputs))
            # What the VJP program reads of the forward: not their ancestors.
            reads = set(grads).union(*(getattr(n, "args", ()) for n in topo(grads)
                                       if n not in forward))
            skip = set(self.graph.outputs)
            cache["residuals"] = [n for n in topo(self.graph.outputs) if n in reads
                                  and n not in skip and not isinstance(n, (Input, Const))
                                  and not _is_number(known[n])]
            cache["forward"] = self._lowered(list(self.graph.outputs) + cache["residuals"])
        vals = cache["forward"](self._args(arrays))
        return self._outputs(vals[:self.n_outputs], arrays), tuple(vals[self.n_outputs:])

    def vjp(self, arrays, cotangents, wanted, residuals=None):
        """One gradient per array (None where not wanted or not inexact),
        given one cotangent per output (None for zero); `residuals`, when
        given, are the outputs followed by `forward`'s residuals."""
        key = (tuple(wanted), tuple(getattr(x, "dtype", None) for x in arrays),
               residuals is None)
        vjps = self._cache["vjps"]
        found = vjps.get(key)
        if found is None:
            found = vjps[key] = self._prepare_vjp(arrays, wanted, residuals is not None)
        wanted, cts, grads, lowered = found
        like = next(c for c in cotangents if c is not None)
        values = [self.B.full(_shape(n), 0, like) if c is None else c
                  for n, c in zip(cts, cotangents)]
        vals = iter(lowered(self._args(arrays, values if residuals is None
                                       else values + list(residuals))))
        result, grads = [], iter(grads)
        for x, w in zip(arrays, wanted):
            if not w:
                result.append(None)
                continue
            gnode = next(grads)
            result.append(self.B.zeros_like(x) if gnode is None
                          else self.B.cast_like(self.B.asarray(next(vals)), x))
        return tuple(result)

    def _prepare_vjp(self, arrays, wanted, with_residuals):
        """(wanted, cotangent nodes, gradient nodes, their Lowered code)."""
        wanted = [w and _inexact(x) for w, x in zip(wanted, arrays)]
        names = tuple(n.name for n, w in zip(self.nodes, wanted) if w)
        cts, _, grads = self.graph.derived(names)
        given = tuple(cts)
        if with_residuals:
            given += tuple(self.graph.outputs) + tuple(self._cache["residuals"])
        lowered = self._lowered([x for x in grads if x is not None], given)
        return wanted, cts, grads, lowered

    def jvp(self, arrays, tangents):
        """One tangent per output, given one per array (None for zero)."""
        moving = [(n, t) for n, x, t in zip(self.nodes, arrays, tangents)
                  if t is not None and _inexact(x)]
        ts, outs = self.graph.linearized(n.name for n, _ in moving)
        vals = iter(self._evaluate([o for o in outs if o is not None], ts, arrays,
                                   [t for _, t in moving]))
        like = moving[0][1] if moving else arrays[0]
        return tuple(self.B.full(_shape(y), 0, like) if o is None
                     else _tensor(self.B, next(vals), like)
                     for y, o in zip(self.graph.outputs, outs))


class Program:
    """A compiled program (from index-notation text or a traced function).

    `prog(**inputs)` evaluates it; `prog.vjp(cotangent, **inputs)` returns
    {name: gradient} for every array input (None for an integer one); `jacobian` and
    `hessian` build full derivative tensors; `derivative(name)` prints the
    VJP program in index notation.
    """

    input_names: list = []

    def _graph_for(self, values) -> Graph:
        raise NotImplementedError

    def _values(self, args, kwargs):
        names = list(self.input_names)
        if len(args) > len(names):
            raise ProgramError(f"the program takes {len(names)} input(s) "
                               f"({', '.join(names)}), {len(args)} were given")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in values:
                raise ProgramError(f"input {k!r} given twice")
            if k not in names:
                raise ProgramError(f"unknown input {k!r}; the inputs are {', '.join(names)}")
            values[k] = v
        missing = [n for n in names if n not in values]
        if missing:
            raise ProgramError(f"missing input(s) {', '.join(missing)}")
        return values

    def _setup(self, args, kwargs, extra=()):
        from .backend import backend_for
        values = self._values(args, kwargs)
        B = backend_for(list(values.values()) + list(extra))
        values = {n: (B.asarray(v) if not isinstance(v, (int, float, complex)) else v)
                  for n, v in values.items()}
        return values, B, self._graph_for(values)

    def graph(self, *args, **kwargs) -> Graph:
        """The bound graph at these inputs' shapes."""
        return self._setup(args, kwargs)[2]

    def __call__(self, *args, **kwargs):
        if kwargs or len(args) != len(self.input_names):
            named = self._values(args, kwargs)
            args = [named[n] for n in self.input_names]
        values = args
        try:
            key = tuple(number_key(v) if isinstance(v, _NUMBERS) else (type(v), tuple(v.shape))
                        for v in values)
        except AttributeError:  # a list or other array-like: no fast path
            key = None
        runs = self.__dict__.setdefault("_runs", {})
        run = runs.get(key)
        if run is None:
            run = self._runner(dict(zip(self.input_names, values)))
            if key is not None:
                if len(runs) >= _CACHED:  # e.g. a number input that changes every call
                    runs.clear()
                runs[key] = run
        out = run(values)
        return out[0] if len(out) == 1 else tuple(out)

    def _runner(self, values):
        """A function of the input values (in `input_names` order) giving the
        outputs, for inputs of these types, shapes and numbers: what is
        decided once per signature (the backend, the bound graph, the
        lowered code) decided here."""
        values, B, g = self._setup((), values)
        if B.autodiff:  # torch, jax: differentiated by derived programs
            f, given = g.derived_function(values, B)
        else:
            given = list(g.feed(values, B))
            f = g.lowered(g.outputs, given, B)
        position = {n: k for k, n in enumerate(self.input_names)}
        # A constant (an array the traced function closed over) is converted
        # on every call, as the inputs are: it may have changed in place, and
        # under jax.jit a converted one would be a tracer of that trace.
        picks = [(position[n.name], None) if n.name in position and g.inputs.get(n.name) is n
                 else (None, g.constants[n]) for n in given]
        asarray = B.asarray
        if B.autodiff:
            run = lambda vals: f(*[asarray(c if k is None else vals[k])  # noqa: E731
                                   for k, c in picks])
        else:
            run = lambda vals: tuple(map(B.writeable, f([  # noqa: E731
                vals[k] if k is not None and isinstance(vals[k], _NUMBERS)
                else asarray(c if k is None else vals[k]) for k, c in picks])))
        flags = _aliased(g.outputs)  # `return x, x`, an input or a view of one: copied
        if not any(flags):
            return run
        return lambda vals: tuple(_owned(B, run(vals), flags))

    def wrt_names(self, values):
        return [n for n in self.input_names if _is_array(values[n]) and _inexact(values[n])]

    def vjp(self, cotangent, *args, **kwargs):
        """{name: ∂l/∂name} for every array input, given ∂l/∂ (each output)
        — a tuple when the program returns several.

        A floating-point (or complex) array input gets its gradient, an
        array of its shape and dtype (zeros where the output does not depend
        on it); an integer or boolean array input gets None, as in PyTorch,
        where such a tensor has no gradient.  Python numbers are constants of
        the program and get no entry.  Every gradient is an array of its own,
        sharing memory with no input, cotangent or other gradient."""
        from .errors import CotangentError
        cots = tuple(cotangent) if isinstance(cotangent, (tuple, list)) else (cotangent,)
        values, B, g = self._setup(args, kwargs, cots)
        wrt = self.wrt_names(values)
        cts, fwd, grads = g.derived(wrt)
        if len(cots) != len(cts):
            raise CotangentError(f"{len(cts)} cotangent(s) expected, one per output, "
                                 f"got {len(cots)}")
        feed = g.feed(values, B)
        for node, c, name in zip(cts, cots, g.output_names):
            c = c if isinstance(c, (int, float, complex)) else B.asarray(c)
            shape = () if isinstance(c, (int, float, complex)) else tuple(c.shape)
            if shape != tuple(int(s) for s in node.shape):
                raise CotangentError(f"the cotangent of {name!r} has shape {shape} but "
                                     f"{name!r} has shape {_shape(node)}")
            feed[node] = c
        present = [x for x in grads if x is not None]
        vals = iter(g.evaluate(present, feed, B))
        result = {}
        for n, gnode in zip(wrt, grads):
            x = values[n]
            result[n] = B.zeros_like(x) if gnode is None else \
                B.cast_like(B.asarray(next(vals)), x)
        # A gradient that is the cotangent (y = x + z), an input, or another one: copied.
        owned = dict(zip(result, _owned(B, list(result.values()), _aliased(grads))))
        return {n: owned.get(n) for n in self.input_names if _is_array(values[n])}

    def _differentiable(self, name, values, what):
        """Check that `name` names an array input of floating point type."""
        if not isinstance(name, str) or name not in values:
            raise ProgramError(f"{what}({name!r}): not an input; the inputs are "
                               f"{', '.join(self.input_names)}")
        x = values[name]
        if not _is_array(x):
            raise ProgramError(f"{what}({name!r}): {name!r} is a Python number here; give "
                               f"it as a 0-d array (numpy.asarray(2.0), not 2.0) to "
                               f"differentiate with respect to it")
        if not _inexact(x):
            raise ProgramError(f"{what}({name!r}): {name!r} has dtype {x.dtype}, which "
                               f"cannot be differentiated; give it as floating point")

    def jacobian(self, name, *args, **kwargs):
        """∂out/∂name as one tensor of shape out.shape + name.shape (of the
        only output, or the first): one program, the VJP batched over an
        identity cotangent."""
        values, B, g = self._setup(args, kwargs)
        self._differentiable(name, values, "jacobian")
        j = g.jacobian(name)
        return B.cast_like(evaluate([j], g.feed(values, B), B)[0], values[name])

    def hessian(self, name, *args, **kwargs):
        """∂²out/∂name² of a scalar output, shape name.shape + name.shape: the
        gradient program's Jacobian, derived symbolically again."""
        values, B, g = self._setup(args, kwargs)
        self._differentiable(name, values, "hessian")
        if g.outputs[0].shape != ():
            raise ProgramError("hessian needs a scalar output; use jacobian")
        cts, fwd, (gnode,) = g.derived((name,))
        x = g.inputs[name]
        if gnode is None:
            gnode = contract([], axes(x), 0)
        second = Graph({**g.inputs, cts[0].name: cts[0]}, [gnode], [f"∂l/∂{name}"])
        second.constants = g.constants
        feed = second.feed(values, B)
        feed[cts[0]] = 1.0
        return B.cast_like(evaluate([second.jacobian(name)], feed, B)[0], values[name])

    def derivative(self, name, *args, **kwargs):
        """The VJP of the output with respect to `name`, printed as a program
        in index notation (`str()`) or LaTeX (`.latex()`)."""
        if args or kwargs:
            g = self.graph(*args, **kwargs)
        else:
            g = self._symbolic_graph()
        if name not in g.inputs:
            raise ProgramError(f"{name!r} is not an input; the inputs are "
                               f"{', '.join(g.inputs)}")
        cts, fwd, grads = g.derived((name,))
        return Derivative(g, name, grads[0], fwd)

    def _symbolic_graph(self):
        raise ProgramError("give the inputs (their shapes) to print a derivative")


def compile(source, **options):  # noqa: A001 - einvjp's public name
    """Compile index-notation text (a string) or trace a Python function.

    Text is one statement a line, `name[labels] = expression`; a label on the
    right that is not on the left is summed over the smallest product that
    holds all its occurrences (or its whole additive term):

    >>> import numpy as np, einvjp
    >>> prog = einvjp.compile("y[i] = x[i,j] w[j] + b[i]")
    >>> prog(x=np.ones((2, 3)), w=np.arange(3.0), b=np.zeros(2))
    array([3., 3.])
    >>> print(prog.derivative("w"))
    ∂l/∂w[p] = ∂l/∂y[i] x[i,p]

    `sizes={"j": 3}` sizes labels that no tensor carries (`y[i,j] = x[i] 1[j]`).
    The language in full — the scope rule, broadcasting, `delta` and `1[…]`,
    every function, matrix functions, `return`, errors — is docs/language.md;
    the rules the derivatives follow are docs/notation.md.

    Usable as a decorator: `@einvjp.compile` over a function written with
    einvjp.einsum, einvjp.exp, … and `+ - * / **` (NumPy broadcasting, axis
    arguments), traced once per input signature."""
    if isinstance(source, str):
        from .lang import TextProgram
        return TextProgram(source, **options)
    if callable(source):
        from .trace import TracedProgram
        return TracedProgram(source)
    raise ProgramError(f"compile() takes index-notation text or a function, not "
                       f"{type(source).__name__}")


# --- Printing -----------------------------------------------------------------------

_FREE_LETTERS = "pqrstuvwmnoabcdefgz"
_DUMMY_LETTERS = "hijklmnoabcdefgrstuvwxyz"
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi",
          "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Sigma", "Phi", "Psi", "Omega"}


# `q`, `x^h6`: a `(` after it would be a call (`∂l/∂y` is not a name of the text)
_ENDS_IN_NAME = re.compile(r"(?<![\w∂])[^\W\d]\w*$")


class _Text:
    def product(self, factors):
        """Factors side by side; `*` after a bare name that a parenthesis
        follows (`q (x)` would read as a call of q)."""
        out = []
        for f in factors:
            if out and f.startswith("(") and _ENDS_IN_NAME.search(out[-1]):
                out.append("*")
            out.append(f)
        return " ".join(out)

    def leaf(self, name, letters):
        return f"{name}[{','.join(letters)}]" if letters else name

    def grad(self, name, letters):
        return self.leaf(f"∂l/∂{name}", letters)

    def one(self, letter):
        return f"1[{letter}]"

    def delta(self, a, b):
        return f"δ[{a},{b}]"

    def call(self, name, args):
        return f"{name}({', '.join(args)})"

    def power(self, base, p):
        return f"{base}^{p}"

    def paren(self, s):
        return f"({s})"

    def fraction(self, num, den, apart=()):
        """num / den: `den` (numbers and sizes) grouped, the tensors `apart`
        each divided on its own — a parenthesised group of them would be a
        product of its own, summing the labels only it holds."""
        text = self.product(num) or "1"
        if den:
            text += f" / {den[0] if len(den) == 1 else self.paren(self.product(den))}"
        return text + "".join(f" / {d}" for d in apart)


class _Latex(_Text):
    def product(self, factors):
        return " ".join(factors)

    def _name(self, name):
        if name in _GREEK:
            return "\\" + name
        if name == "eps":
            return r"\epsilon"
        return name if len(name) == 1 else rf"\mathrm{{{name}}}"

    def leaf(self, name, letters):
        if name.startswith("∂l/∂"):
            return self.grad(name[4:], letters)
        sub = f"_{{{''.join(letters)}}}" if letters else ""
        return self._name(name) + sub

    def grad(self, name, letters):
        sub = f"_{{{''.join(letters)}}}" if letters else ""
        return rf"\frac{{\partial l}}{{\partial {self._name(name)}{sub}}}"

    def one(self, letter):
        return rf"\mathbf{{1}}_{{{letter}}}"

    def delta(self, a, b):
        return rf"\delta_{{{a}{b}}}"

    def call(self, name, args):
        if name == "sqrt":
            return rf"\sqrt{{{args[0]}}}"
        head = {"exp": r"\exp", "log": r"\log", "sin": r"\sin", "cos": r"\cos",
                "tanh": r"\tanh", "det": r"\det", "max": r"\max", "min": r"\min"}.get(
                    name, r"\operatorname{" + name.replace("_", r"\_") + "}")
        return rf"{head}\left({', '.join(args)}\right)"

    def power(self, base, p):
        return f"{{{base}}}^{{{p}}}"

    def paren(self, s):
        return rf"\left({s}\right)"

    def fraction(self, num, den, apart=()):
        return rf"\frac{{{' '.join(num) or '1'}}}{{{' '.join(list(den) + list(apart))}}}"


class Derivative:
    """A derived VJP, printable as a program: `str()` in index notation
    (∂l/∂x[p,q] = … with p, q, … for the free indices) and `.latex()`.
    Forward tensors appear by their names; a backward tensor read more than
    once gets its own statement."""

    def __init__(self, graph, name, node, forward):
        self.graph, self.name, self.node = graph, name, node
        self.forward = set(topo(list(forward)))
        # forward tensors by the names their printed program gives them (an
        # output by its output name, a name clashing with an input's changed)
        _, names, _, self.forward_taken = _program_names(list(forward), graph.output_names)
        self.forward_names = {n: v for n, v in names.items() if n.name or n in forward}

    def __str__(self):
        return self._render(_Text())[0]

    @property
    def sizes(self):
        """The sizes of the labels that no tensor carries in their statement
        (`∂l/∂x[p] = ∂l/∂y 1[p]`), for `compile(..., sizes=d.sizes)`."""
        return self._render(_Text())[1]

    def __repr__(self):
        return f"Derivative(∂l/∂{self.name})"

    def latex(self):
        return " \\\\\n".join(self._render(_Latex())[0].split("\n"))

    def _render(self, fmt):
        x = self.graph.inputs[self.name]
        known = set(self.graph.inputs) | {n.name for n in self.forward if n.name} | \
            self.forward_taken
        reserved = known | {n.lower() for n in known if n.isupper()}
        free = [c for c in _FREE_LETTERS if c not in reserved]
        if self.node is None:
            letters = free[:x.ndim]
            return (f"{fmt.grad(self.name, letters)} = 0",
                    {c: int(s) for c, s in zip(letters, x.shape)})
        count = {}
        for n in topo([self.node]):
            for a in getattr(n, "args", ()):
                count[a] = count.get(a, 0) + 1
        stmts = [n for n in topo([self.node]) if n is self.node or (
            count.get(n, 0) > 1 and n not in self.forward and isinstance(n, (Contract, Add))
            and not _is_relabel(n))]
        names, taken = dict(self.forward_names), set()
        for k, n in enumerate(stmts):
            if n is self.node:
                names[n] = ("grad", self.name)
            elif n.grad_of and ("grad", n.grad_of) not in taken:
                names[n] = ("grad", n.grad_of)
            else:  # a temporary: named apart from the forward program's names
                name = f"g{k}"
                while name in known:
                    name += "_"
                names[n] = ("leaf", name)
            taken.add(names[n])
        lines, sizes = [], {}
        for n in stmts:
            kind, nm = names[n]
            letters = free[:n.ndim] if n.ndim <= len(free) else \
                [f"p{k}" for k in range(n.ndim)]
            letters, text = _statement(fmt, names, self.forward, n, letters, reserved, sizes)
            lhs = fmt.grad(nm, letters) if kind == "grad" else fmt.leaf(nm, letters)
            lines.append(f"{lhs} = {text}")
        return "\n".join(lines), sizes


def _program_names(outputs, output_names):
    """(statements, {node: ("leaf", name)}, outputs that are an input or a
    constant, names taken) of a printed program: an output by its output
    name, a named node by its name, a node used twice as t{k}; a name an
    input (or an earlier statement) has gets an underscore."""
    count = uses(outputs)
    roots = dict(zip(outputs, output_names))
    nodes = topo(outputs)
    stmts = [n for n in nodes if not isinstance(n, (Input, Const)) and (
        n in roots or n.name or (count.get(n, 0) > 1 and not _is_relabel(n)))]
    taken = {n.name for n in nodes if isinstance(n, Input)}
    names = {}
    for k, n in enumerate(stmts):
        name = roots.get(n) or n.name or f"t{k}"
        while name in taken:
            name = f"{name}_"
        taken.add(name)
        names[n] = ("leaf", name)
    plain = [o for o in outputs if isinstance(o, (Input, Const))]  # y = x, y = 2
    for o in plain:
        name = roots[o]
        while name in taken:
            name = f"{name}_"
        taken.add(name)
    return stmts, names, plain, taken


def _render_program(fmt, outputs, output_names):
    """The statements of a program: text that `compile` reads back to the
    same function (dummy letters unique in each top-level term, a summed
    label kept to its product by a one-tensor where the scope rule needs it,
    named sizes only where their label is in the statement)."""
    stmts, names, plain, taken = _program_names(outputs, output_names)
    roots = dict(zip(outputs, output_names))
    reserved = taken | {n.lower() for n in taken if n.isupper()}
    special = taken & {"delta", "δ"}
    if special:
        raise ProgramError(f"an input named {special.pop()!r} cannot be printed in index "
                           f"notation, where delta[i,j] is the Kronecker delta; rename it")
    lines, sizes, printed = [], {}, {}
    for n in stmts + plain:
        letters = [l.name for l in n.out] if not isinstance(n, (Input, Const)) else []
        if len(letters) != n.ndim or len(set(letters)) < len(letters) or not all(
                len(c) == 1 and c.isalpha() and c not in reserved for c in letters):
            letters = [c for c in _FREE_LETTERS if c not in reserved][:n.ndim]
        letters, text = _statement(fmt, names, set(), n, letters, reserved, sizes)
        name = names[n][1] if n in names else roots[n]
        lines.append(f"{fmt.leaf(name, letters)} = {text}")
        printed[n] = name
    order = stmts + plain
    if len(outputs) > 1 or (order and order[-1] is not outputs[0]):
        lines.append("return " + ", ".join(printed[o] for o in outputs))
    return "\n".join(lines), sizes


def _statement(fmt, names, forward, node, letters, reserved=(), sizes=None):
    """(letters, right-hand side) of `node[letters] = …`: a named size (H)
    only where a label of its letter and size is in the statement, else its
    value; a label no tensor carries there gets its size into `sizes`, one
    size a letter across the program (a clashing letter is changed)."""
    sizes = {} if sizes is None else sizes
    numeric, avoid = set(), set()
    while True:
        r = _Renderer(fmt, names, forward, node, letters, set(reserved) | avoid, numeric)
        text = r.expr(node, letters, top=True)[0]
        wrong = {name for name, size in r.dims.items() if r.sizes.get(name.lower()) != size}
        loose = {c: s for c, s in r.sizes.items() if c not in r.carried}
        clash = {c for c, s in loose.items() if sizes.get(c, s) != s}
        if clash:
            avoid |= clash
            spare = (c for c in _FREE_LETTERS + _DUMMY_LETTERS
                     if c not in reserved and c not in avoid and c not in letters)
            letters = [next(spare) if c in clash else c for c in letters]
        elif wrong:
            numeric |= wrong
        else:
            sizes.update(loose)
            return letters, text


_MATRIX = ("inv", "det", "logdet", "solve")


class _Renderer:
    def __init__(self, fmt, names, forward, top, letters, reserved=(), numeric=()):
        self.fmt, self.names, self.forward, self.top = fmt, names, forward, top
        self.used = set(letters)
        self.sizes = dict(zip(letters, (int(s) for s in top.shape)))  # one size a letter
        self.reserved, self.numeric = set(reserved), set(numeric)
        self.dims = {}  # named sizes printed: name -> size
        self.carried = set()  # letters some printed tensor carries
        self.stack = []  # the products being printed (ids), outermost first
        self.occ = []  # (letter, stack) of each label printed
        self.lone = set()  # ids pushed for what printed as a single factor
        self.ids = itertools.count()

    def letter(self, lab):
        size = int(lab.size)

        def free(c):
            return c not in self.used and c not in self.reserved and \
                self.sizes.get(c, size) == size
        found = next((c for c in [lab.name] + list(_DUMMY_LETTERS)
                      if len(c) == 1 and c.isalpha() and free(c)), None)
        k = 0
        while found is None:
            found = f"{lab.name.rstrip('0123456789') or 'i'}{k}"
            found, k = (found if free(found) else None), k + 1
        self.used.add(found)
        self.sizes[found] = size
        return found

    def _seen(self, letters):
        self.occ += [(c, tuple(self.stack)) for c in letters]

    def _enclosed(self, letter, mark, depth):
        """Whether every occurrence of `letter` printed since `mark` lies in
        one product below the current `depth`."""
        inner = [tuple(p for p in stack[depth:] if p not in self.lone)
                 for c, stack in self.occ[mark:] if c == letter]
        return bool(inner) and all(s and s[0] == inner[0][0] for s in inner)

    def coef(self, c):
        """A coefficient with the sizes that cannot be named folded in."""
        if any(name in self.numeric for (name, _), _ in c.dims):
            num = c.num
            for (name, size), p in c.dims:
                if name in self.numeric:
                    num = num * (Fraction(size) ** p if isinstance(num, Fraction) else size ** p)
            c = Coef(num, tuple(d for d in c.dims if d[0][0] not in self.numeric))
        for (name, size), _ in c.dims:
            self.dims[name] = size
        return c

    def leaf_name(self, node):
        if node in self.names and node is not self.top:
            return self.names[node]
        if isinstance(node, Input) or (node in self.forward and node.name):
            return ("leaf", node.name)
        return None

    def expr(self, node, letters, top=False):
        """(text, precedence): 3 atom, 2 product, 1 sum; letters name its axes.
        `top`: the node is the statement's right-hand side.  A label of the
        node that its text does not show (a broadcast that printing folded
        away) is kept by a one-tensor, except at the top, where the
        statement broadcasts along its left-hand labels."""
        mark, depth = len(self.occ), len(self.stack)
        text, prec = self._expr(node, letters, top)
        seen = {c for c, _ in self.occ[mark:]}
        missing = [c for c in dict.fromkeys(letters) if c not in seen]
        if not missing or top:  # a statement broadcasts its terms along its labels
            return text, prec
        pid = next(self.ids)  # a product around what was printed
        self.occ[mark:] = [(c, s[:depth] + (pid,) + s[depth:]) for c, s in self.occ[mark:]]
        self.stack.append(pid)
        self._seen(missing)
        self.stack.pop()
        body = text if prec >= 2 else self.fmt.paren(text)
        return self.fmt.product([body, self.fmt.one(",".join(missing))]), 2

    def _expr(self, node, letters, top):
        fmt = self.fmt
        named = self.leaf_name(node)
        if named is not None:
            kind, nm = named
            self._seen(letters)
            self.carried.update(letters)
            return (fmt.grad(nm, letters) if kind == "grad" else fmt.leaf(nm, letters)), 3
        if isinstance(node, Const):
            neg, mag = self.coef(node.value).sign_and_magnitude()
            return self.coef(node.value).text(), (1 if neg else 3)
        if isinstance(node, Contract):
            return self.contraction(node, letters, top=top)
        if not isinstance(node, (Add, Map)) and len(set(letters)) < len(letters):
            return self.diagonal(node, letters)
        if isinstance(node, Add):
            ren = dict(zip(node.out, letters))
            parts, used = [], set(self.used)
            for a, t, c in zip(node.args, node.terms, node.coeffs):
                if top:
                    self.used = set(used)  # dummy letters are local to a top-level term
                neg, text = self.term(a, [ren[l] for l in t], c, top)
                parts.append(("-" if neg else "+", text))
            s = " ".join(f"{sign} {text}" for sign, text in parts)
            s = s[2:] if s.startswith("+ ") else "-" + s[1:] if s.startswith("- ") else s
            return s, 1
        ren, bound = dict(zip(node.out, letters)), set()
        for t in node.terms:
            for lab in t:
                if lab not in ren:  # reduced by a structured primitive: its own letter
                    ren[lab] = self.letter(lab)
                    bound.add(ren[lab])
        product = isinstance(node, Map) and node.prim.name in ("wexp", "reciprocal")
        if product:
            self.stack.append(pid := next(self.ids))
        mark = len(self.occ)
        args = [self.expr(a, [ren[l] for l in t]) for a, t in zip(node.args, node.terms)]
        if product:
            self.stack.pop()
        self.used -= bound
        self.occ[mark:] = [o for o in self.occ[mark:] if o[0] not in bound]
        name = node.prim.name
        if isinstance(node, Map):
            if name in ("pow", "tpow"):  # `^` groups to the right: (w^3)^2 keeps its parentheses
                p = node.params[0] if name == "pow" else None
                (b, pb), (e, pe) = args[0], args[1] if p is None else (
                    str(int(p) if float(p).is_integer() else p), 3)
                if pb < 3 or _is_map(node.args[0], "pow") or _is_map(node.args[0], "tpow"):
                    b = fmt.paren(b)
                return fmt.power(b, e if pe == 3 else fmt.paren(e)), 3
            if name == "wexp":  # w·exp(d), zero where w is
                (d, _), (w, pw) = args
                return fmt.product([w if pw >= 2 else fmt.paren(w), fmt.call("exp", [d])]), 2
            if name == "reciprocal":  # 1 / (a b): a product divides as one
                return fmt.fraction([], (), [args[0][0] if args[0][1] >= 3 else
                                         fmt.paren(args[0][0])]), 2
            return fmt.call(name, [a for a, _ in args]), 3
        extra = []
        if name in ("logsumexp", "max", "min", "softmax", "log_softmax"):
            extra = [ren[l] for l in node.params[0]]
        elif name in _MATRIX:
            pair = [ren[l] for l in node.params[0]]
            first = node.args[0]
            if self.leaf_name(first) is None or [ren[l] for l in node.terms[0][-2:]] != pair:
                extra = pair  # the pair named unless it is the last two labels of a leaf
        return fmt.call(name, [a for a, _ in args] + extra), 3

    def diagonal(self, node, letters):
        """A structured primitive's result seen on a diagonal (two of its axes
        given one letter): printed with a letter per axis and a delta joining
        them, `delta[i,j] softmax(x[i,j], j)`, since `softmax(x[i,i], i)`
        would act on the diagonal of its argument instead."""
        distinct_letters, deltas, joined = [], [], []
        for lab, c in zip(node.out, letters):
            if c in distinct_letters:
                d = self.letter(lab)
                deltas.append(self.fmt.delta(c, d))
                joined += [c, d]
                c = d
            distinct_letters.append(c)
        self.stack.append(next(self.ids))
        text, prec = self._expr(node, distinct_letters, False)
        self._seen(joined)
        self.stack.pop()
        return self.fmt.product(deltas + [text if prec >= 2 else self.fmt.paren(text)]), 2

    def term(self, node, letters, coeff, top=False):
        """(negative?, text) of coeff · node[letters] as a term of a sum."""
        if isinstance(node, Const):
            c = self.coef(coeff * node.value)
            return c.sign_and_magnitude()[0], c.sign_and_magnitude()[1].text()
        neg, mag = self.coef(coeff).sign_and_magnitude()
        if isinstance(node, Contract) and self.leaf_name(node) is None:
            text, _ = self.contraction(node, letters, mag, top=top)
            if text.startswith("-"):
                return (not neg), text[1:].lstrip()
            return neg, text
        self.stack.append(pid := next(self.ids))
        text, prec = self.expr(node, letters)
        self.stack.pop()
        if mag.is_one:  # a sum as a term: parenthesised when subtracted
            self.lone.add(pid)
            return neg, text if prec >= 2 or (prec == 1 and not neg) else self.fmt.paren(text)
        num, den = mag.parts()
        body = text if prec >= 2 else self.fmt.paren(text)
        return neg, (self.fmt.fraction([num, body] if num else [body], den.split()) if den
                     else self.fmt.product([num, body]))

    def contraction(self, node, letters, extra=None, top=False):
        fmt = self.fmt
        coeff = self.coef(node.coeff * extra if extra is not None else node.coeff)
        ren, deltas, here = {}, [], []  # here: the letters printed at this level
        for lab, letter in zip(node.out, letters):
            if lab in ren:
                deltas.append(fmt.delta(ren[lab], letter))
                here += [ren[lab], letter]
            else:
                ren[lab] = letter
        carried = {l for t in node.terms for l in t} | {l for l in node.out
                                                         if list(node.out).count(l) > 1}
        ones = [fmt.one(ren[l]) for l in distinct(node.out) if l not in carried]
        here += [ren[l] for l in distinct(node.out) if l not in carried]
        summed = {}
        for t in node.terms:
            for lab in t:
                if lab not in ren:
                    ren[lab] = summed[lab] = self.letter(lab)
        num, den, over, under = [], [], set(), set()
        self.stack.append(pid := next(self.ids))
        depth, mark = len(self.stack), len(self.occ)
        for a, t in zip(node.args, node.terms):
            ls = [ren[l] for l in t]
            if _is_map(a, "reciprocal") and self.leaf_name(a) is None:
                inner = dict(zip(a.out, ls))
                text, prec = self.expr(a.args[0], [inner[l] for l in a.terms[0]])
                den.append(text if prec >= 3 else fmt.paren(text))
                under.update(ls)
            else:
                text, prec = self.expr(a, ls)
                num.append(text if prec >= 3 else fmt.paren(text))
                over.update(ls)
        num, den = _powers(num, fmt), _powers(den, fmt)
        neg, mag = coeff.sign_and_magnitude()
        cnum, cden = mag.parts()
        head = ([cnum] if cnum else [])
        dens = cden.split()  # "2 J": two factors of the denominator
        if not (under - over) & set(summed.values()):
            dens, den = dens + den, []  # one group: it sums no label of its own
        # A summed label is summed over the smallest product holding all its
        # occurrences: one whose occurrences all lie in one product inside a
        # factor (or in a lone factor, below the top) is held here by a
        # one-tensor.
        keep = [s for s in summed.values() if self._enclosed(s, mark, depth)]
        if not keep and summed and not top and \
                len(head) + len(num) + len(deltas) + len(ones) + len(dens) + len(den) < 2:
            keep = [next(iter(summed.values()))]
        if keep:
            ones.insert(0, fmt.one(",".join(keep)))
        self._seen(here + keep)
        self.stack.pop()
        factors = head + num + deltas + ones
        if len(factors) + len(dens) + len(den) < 2:
            self.lone.add(pid)
        text = fmt.fraction(factors, dens, den) if dens or den else \
            (fmt.product(factors) or "1")
        return ("-" + text if neg else text), (1 if neg else 2)


def _powers(factors, fmt):
    out, counts = [], {}
    for f in factors:
        counts[f] = counts.get(f, 0) + 1
    for f in dict.fromkeys(factors):
        out.append(f if counts[f] == 1 else fmt.power(f, counts[f]))
    return out
