"""The program IR: SSA nodes over labelled tensors.

A program is a DAG of nodes.  Every node is a tensor with a fixed number of
axes; its operands are earlier nodes, each read through a *term*: one `Index`
per axis of the operand, naming that axis inside this node.  Labels are local
to the node that uses them (two nodes may share `Index` objects; only identity
inside one node means anything) and sizes live on the labels.

    Input     a named argument of the program (a scalar when it has no axes).
    Const     a scalar constant: a `Coef`, e.g. 2, 1/H or -1/2.
    Contract  coeff · Σ_(labels not in out) Π_k args[k][terms[k]] — a GE.
              A label may repeat in a term (diagonal) or in `out` (diagonal
              embedding); a label of `out` that no term carries is a
              broadcast; every summed label is carried by some term (a sum
              over a label nobody carries is folded into `coeff` as its size);
              no operand is a Const (folded into `coeff`).
    Map       prim(args…) elementwise.  `out` has no repeated label, each
              term is a subset of `out` without repeats (a missing label is a
              broadcast) and every label of `out` is carried by some term.
    Add       Σ_k coeffs[k] · args[k][terms[k]].  `out` has no repeated label;
              each term is a subset of `out` (a missing label is a broadcast).
    Func      a structured primitive with a closed-form rule: a reduction or
              normalisation over labels (`logsumexp`, `softmax`, `max`) or a
              matrix function over a label pair (`inv`, `solve`, `det`).  Its
              label arguments are in `params`; terms and `out` have no repeats.
              (Map and Func are both a `Call`: a primitive, operands, params.)

`Expr` is a node seen through one distinct label per axis; its operators
build nodes with index-notation semantics (operands aligned by label, a label
missing from an operand is a broadcast), which is how derivative rules, the
text frontend and the tracer all write graph.

>>> i, j = Index("i", 2), Index("j", 3)
>>> x = Expr(Input("x", (2, 3)), (i, j))
>>> s = product(x, x, out=[i])
>>> type(s.node).__name__, [l.name for l in s.labels], s.node.terms
('Contract', ['i'], ((Index('i', 2), Index('j', 3)), (Index('i', 2), Index('j', 3))))
"""

from __future__ import annotations

import itertools

from .coef import Coef
from .ge import Index

OPERATORS = {}  # "reciprocal", "pow": the primitives behind Expr's / and **, set by einvjp.prims


_uid = itertools.count()


class Node:
    """Base of every IR node: a tensor with `shape` (the sizes of its axes)."""
    __slots__ = ("uid", "name", "grad_of", "cache")

    def __init__(self):
        self.uid = next(_uid)
        self.name = None      # the program's name for it, when it has one
        self.grad_of = None   # for a cotangent node: the name it is ∂l/∂ of
        self.cache = None     # lowering data, filled by the evaluator

    @property
    def ndim(self):
        return len(self.shape)

    def operands(self):
        return ()


class Input(Node):
    """A named argument; `shape == ()` is a scalar."""
    __slots__ = ("shape",)

    def __init__(self, name, shape):
        super().__init__()
        self.name = name
        self.shape = tuple(shape)

    def __repr__(self):
        return f"Input({self.name!r}, {self.shape})"


class Const(Node):
    """A scalar constant."""
    __slots__ = ("value",)
    shape = ()

    def __init__(self, value):
        super().__init__()
        self.value = Coef.of(value)

    def __repr__(self):
        return f"Const({self.value.text()})"


class Op(Node):
    """A node computed from operands `args`, read through `terms`, into `out`."""
    __slots__ = ("args", "terms", "out")

    def __init__(self, args, terms, out):
        super().__init__()
        self.args = tuple(args)
        self.terms = tuple(tuple(t) for t in terms)
        self.out = tuple(out)

    @property
    def shape(self):
        return tuple(lab.size for lab in self.out)

    def operands(self):
        return tuple(zip(self.args, self.terms))


class Contract(Op):
    __slots__ = ("coeff",)

    def __init__(self, args, terms, out, coeff=1):
        super().__init__(args, terms, out)
        self.coeff = Coef.of(coeff)


class Call(Op):
    """A primitive `prim` applied to the operands, with `params`: a Map or a
    Func (the two differ in their invariants, their rule and how they run)."""
    __slots__ = ("prim", "params")

    def __init__(self, prim, args, terms, out, params=()):
        super().__init__(args, terms, out)
        self.prim, self.params = prim, tuple(params)


class Map(Call):
    """Elementwise: the kernel on operands aligned by label; rule: partials."""
    __slots__ = ()


class Add(Op):
    __slots__ = ("coeffs",)

    def __init__(self, args, terms, out, coeffs=None):
        super().__init__(args, terms, out)
        self.coeffs = tuple(Coef.of(c) for c in (coeffs or [1] * len(self.args)))


class Func(Call):
    """Structured: labels in `params`, its own layout; rule: the VJP."""
    __slots__ = ()


def distinct(labels):
    return list(dict.fromkeys(labels))


def axes(node, names=None):
    """One fresh label per axis of `node`."""
    names = names or [f"i{k}" for k in range(node.ndim)]
    return tuple(Index(n, s) for n, s in zip(names, node.shape))


# --- Building nodes -------------------------------------------------------


def contract(operands, out, coeff=1, summed=()) -> Node:
    """A normalised Contract node (or a simpler node computing the same):
    constants fold into the coefficient, `summed` labels that no operand
    carries multiply it by their size, and a lone operand read exactly as it
    is comes back unchanged."""
    coeff = Coef.of(coeff)
    ops = []
    for node, term in operands:
        if isinstance(node, Const):
            coeff = coeff * node.value
        else:
            ops.append((node, tuple(term)))
    out = tuple(out)
    carried = {lab for _, t in ops for lab in t}
    if any(int(lab.size) == 0 for lab in list(carried) + list(summed) if lab not in out):
        # A sum over nothing is 0, whatever it would add (inf, nan); the
        # coefficient multiplies that 0 (a mean over nothing is 0/0, nan).
        ops, carried, summed, coeff = [], set(), (), Coef.of(0 * coeff.number())
    for lab in distinct(summed):
        if lab not in carried and lab not in out:
            coeff = coeff * lab.size
    if coeff.is_zero:
        return Contract((), (), out, 0) if out else Const(0)
    if not ops and not out:
        return Const(coeff)
    if len(ops) == 1 and coeff.is_one and ops[0][1] == out and len(set(out)) == len(out):
        return ops[0][0]
    return Contract([n for n, _ in ops], [t for _, t in ops], out, coeff)


def is_relabel(node):
    """A single-operand Contract that only permutes, scales or broadcasts."""
    if not isinstance(node, Contract) or len(node.args) != 1:
        return False
    term = node.terms[0]
    return len(set(term)) == len(term) and len(set(node.out)) == len(node.out) \
        and set(term) <= set(node.out)


def is_permutation(node):
    return is_relabel(node) and node.coeff.is_one and set(node.terms[0]) == set(node.out)


def is_map(node, name):
    return isinstance(node, Map) and node.prim.name == name


def is_func(node, name):
    return isinstance(node, Func) and node.prim.name == name


def is_zero(node) -> bool:
    """A constant zero (a zero-operand Contract keeps the shape)."""
    return (isinstance(node, Const) and node.value.is_zero) or \
        (isinstance(node, Contract) and node.coeff.is_zero)


def add(terms, out) -> Node:
    """A normalised Add of (node, term, coeff) triples over `out`: the
    coefficients of one tensor read through one term are added up, but
    terms that cancel are kept as `c·u - c·u` (0 where u is finite, nan where
    it is inf or nan, as NumPy computes `u - u`), never folded to 0."""
    merged, first = {}, {}
    for node, term, c in terms:
        c = Coef.of(c)
        if is_zero(node) or c.is_zero:
            continue
        key = (node, tuple(term))
        merged[key] = _plus(merged.get(key), c)
        first.setdefault(key, c)
    items = []
    for (n, t), c in merged.items():
        items += [(n, t, first[n, t]), (n, t, -first[n, t])] if c.is_zero else [(n, t, c)]
    if not items:
        return Const(0) if not out else Contract((), (), out, 0)
    if len(items) == 1:
        n, t, c = items[0]
        return contract([(n, t)], out, c)
    return Add([n for n, _, _ in items], [t for _, t, _ in items], out, [c for _, _, c in items])


def _plus(a, b):
    """Sum of two coefficients (None is zero); named sizes must agree."""
    if a is None:
        return b
    if a.dims == b.dims:
        return Coef(a.num + b.num, a.dims)
    return Coef(a.number() + b.number())


class Expr:
    """A node seen through one distinct label per axis, with the operators of
    index notation: `a * b` multiplies aligned by label (no sum), `a + b`
    adds (a missing label broadcasts), `x.sum(labels)` contracts."""
    __slots__ = ("node", "labels")

    def __init__(self, node, labels):
        self.node = node
        self.labels = tuple(labels)

    def __repr__(self):
        return f"Expr({self.node!r}, [{','.join(l.name for l in self.labels)}])"

    def rename(self, mapping):
        return Expr(self.node, [mapping.get(lab, lab) for lab in self.labels])

    def sum(self, labels):
        drop = set(labels)
        return product(self, out=[lab for lab in self.labels if lab not in drop])

    def __mul__(self, other):
        return product(self, other)

    __rmul__ = __mul__

    def __neg__(self):
        return product(self, coeff=-1)

    def __add__(self, other):
        return total(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return total(self, (other, -1))

    def __rsub__(self, other):
        return total(other, (self, -1))

    def __truediv__(self, other):
        if not isinstance(other, Expr):
            return product(self, coeff=Coef.of(1) / other)
        return product(self, OPERATORS["reciprocal"](other))

    def __rtruediv__(self, other):
        return product(other, OPERATORS["reciprocal"](self))

    def __pow__(self, p):
        return OPERATORS["pow"](self, p)

    @property
    def constant(self):
        """The Coef of a constant scalar, else None."""
        return self.node.value if isinstance(self.node, Const) else None


def const(value) -> Expr:
    return Expr(Const(value), ())


def as_expr(x) -> Expr:
    return x if isinstance(x, Expr) else const(x)


def product(*factors, out=None, coeff=1, summed=()) -> Expr:
    """Π factors (Exprs or numbers), summed over the labels not in `out`
    (default: every label, in order of first appearance — no sum)."""
    exprs = [as_expr(f) for f in factors]
    if out is None:
        out = distinct(lab for e in exprs for lab in e.labels)
    node = contract([(e.node, e.labels) for e in exprs], out, coeff,
                    summed=list(summed) + [l for e in exprs for l in e.labels])
    return Expr(node, out)


def total(*items, out=None) -> Expr:
    """Σ items, each an Expr, a number or an (Expr, coeff) pair."""
    pairs = [(as_expr(it[0]), it[1]) if isinstance(it, tuple) else (as_expr(it), 1)
             for it in items]
    if out is None:
        out = distinct(lab for e, _ in pairs for lab in e.labels)
    node = add([(e.node, e.labels, c) for e, c in pairs], out)
    return Expr(node, out)


def materialize(expr, labels) -> Node:
    """A node whose axes are `labels` (which may repeat, or add broadcasts)."""
    return contract([(expr.node, expr.labels)], labels)


def apply(prim, *args, params=()) -> Expr:
    """prim(args…) elementwise, aligned by label."""
    exprs = [as_expr(a) for a in args]
    out = distinct(lab for e in exprs for lab in e.labels)
    node = Map(prim, [e.node for e in exprs], [e.labels for e in exprs], out, params)
    return Expr(node, out)


def func(prim, args, out, params=()) -> Expr:
    exprs = [as_expr(a) for a in args]
    node = Func(prim, [e.node for e in exprs], [e.labels for e in exprs], out, params)
    return Expr(node, out)


# --- Canonical keys (CSE up to label renaming) ----------------------------


def key(node):
    """Two nodes with equal keys compute the same tensor (operands compared
    by identity, labels up to renaming)."""
    if isinstance(node, Input):
        return ("I", node.name, node.shape)
    if isinstance(node, Const):
        return ("K", node.value)
    number = {}

    def num(lab):
        if lab not in number:
            number[lab] = len(number)
        return number[lab]

    out = tuple(num(lab) for lab in node.out)
    if isinstance(node, (Contract, Add)):
        pos = {lab: k for k, lab in reversed(list(enumerate(node.out)))}
        extra = node.coeffs if isinstance(node, Add) else [None] * len(node.args)
        order = sorted(range(len(node.args)), key=lambda k: (
            node.args[k].uid, tuple(pos.get(l, -1) for l in node.terms[k]),
            _coef_sort(extra[k])))
        terms = tuple((node.args[k].uid, tuple(num(l) for l in node.terms[k]), extra[k])
                      for k in order)
        tag = ("C", node.coeff) if isinstance(node, Contract) else ("A",)
    else:
        terms = tuple((a.uid, tuple(num(l) for l in t)) for a, t in zip(node.args, node.terms))
        tag = ("M" if isinstance(node, Map) else "F", node.prim.name,
               _params_key(node.params, num))
    sizes = tuple(int(lab.size) for lab in sorted(number, key=number.get))
    return tag + (out, terms, sizes)


def _coef_sort(c):
    return "" if c is None else repr((str(c.num), c.dims))


def _params_key(params, num):
    if isinstance(params, Index):
        return ("label", num(params))
    if isinstance(params, tuple):
        return tuple(_params_key(p, num) for p in params)
    return params


def topo(outputs, stop=()):
    """Every node the outputs depend on, operands before users, up to the
    nodes in `stop` (neither listed nor looked through)."""
    order, state = [], dict.fromkeys(stop, 2)
    stack = [(n, False) for n in reversed(outputs)]
    while stack:
        node, done = stack.pop()
        if done:
            if state.get(node) != 2:
                state[node] = 2
                order.append(node)
            continue
        if state.get(node):
            continue
        state[node] = 1
        stack.append((node, True))
        for arg in reversed(getattr(node, "args", ())):
            if not state.get(arg):
                stack.append((arg, False))
    return order


def uses(outputs):
    """How many times each node is read (an output counts as a read)."""
    count = {}
    for node in topo(outputs):
        for arg in getattr(node, "args", ()):
            count[arg] = count.get(arg, 0) + 1
    for node in outputs:
        count[node] = count.get(node, 0) + 1
    return count
