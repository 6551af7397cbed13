"""Traced Python: `einvjp.compile(fn)` runs fn once per input signature on
`Tracer`s and records the same IR the text frontend builds.

Inside fn: `einvjp.einsum`, the functions of `einvjp.prims` (`einvjp.exp`,
`einvjp.logsumexp(x, axis=-1)`, `einvjp.inv`, …), `+ - * / **` and
comparisons with NumPy broadcasting, `.sum(axis)`, `.mean(axis)`, `.T`,
`.transpose(*axes)`.  A NumPy array met in fn is a constant.  Python
control flow on traced values is an error (the trace would bake it in).

>>> import numpy as np, einvjp
>>> @einvjp.compile
... def loss(x, w):
...     return (einvjp.tanh(einvjp.einsum("bi,io->bo", x, w)) ** 2).sum()
>>> x, w = np.ones((2, 3)), np.full((3, 4), 0.1)
>>> float(loss(x, w))  # doctest: +ELLIPSIS
0.6...
>>> sorted(loss.vjp(1.0, x, w))
['w', 'x']

`einvjp.exp(array)` and friends also run eagerly on arrays.
"""

from __future__ import annotations

import inspect

from .errors import ProgramError
from .ge import Index
from .ir import Expr, Input, axes as fresh_axes, contract, materialize, product
from . import prims
from .program import Graph, Program, evaluate

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_contexts = []


class _Context:
    """Constants (NumPy arrays) met while tracing, as Input nodes named
    c0, c1, … (with a trailing _ where a `taken` name, an argument's, is
    one of them)."""

    def __init__(self, taken=()):
        self.constants = {}
        self.taken = set(taken)

    def constant(self, value):
        name = f"c{len(self.constants)}"
        while name in self.taken:
            name += "_"
        node = Input(name, tuple(int(d) for d in value.shape))
        self.constants[node] = value
        return node


def _context():
    if not _contexts:
        _contexts.append(_Context())
    return _contexts[-1]


def _labels(shape):
    return [Index(_LETTERS[k % 26] if k < 26 else f"i{k}", int(s)) for k, s in enumerate(shape)]


class Tracer:
    """A traced array: an `Expr` and the order of its axes (`axes`, the
    Expr's labels in positional order)."""
    __array_ufunc__ = None  # NumPy defers to our reflected operators
    __slots__ = ("expr", "axes")

    def __init__(self, expr, axes=None):
        self.expr = expr
        self.axes = tuple(expr.labels if axes is None else axes)

    @classmethod
    def of(cls, node):
        return cls(Expr(node, _labels(node.shape)))

    @property
    def shape(self):
        return tuple(int(l.size) for l in self.axes)

    @property
    def ndim(self):
        return len(self.axes)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"Tracer(shape={self.shape})"

    def __bool__(self):
        raise ProgramError("a traced value has no truth value: data-dependent control flow "
                           "cannot be traced; use einvjp.where")

    def node(self):
        """A node whose axes are in positional order."""
        return materialize(self.expr, self.axes)

    def term_for(self, positional):
        """The node-order term of positional labels."""
        where = {lab: k for k, lab in enumerate(self.axes)}
        return tuple(positional[where[lab]] for lab in self.expr.labels)

    @property
    def T(self):
        return Tracer(self.expr, self.axes[::-1])

    def transpose(self, *perm):
        perm = perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else perm
        perm = perm or tuple(reversed(range(self.ndim)))
        return Tracer(self.expr, [self.axes[p] for p in perm])

    def sum(self, axis=None, keepdims=False):
        return _reduce(prims.sum, self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _reduce(prims.mean, self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _reduce(prims.max, self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _reduce(prims.min, self, axis, keepdims)

    def __add__(self, o):
        return _elementwise(prims.add, (self, o))

    def __radd__(self, o):
        return _elementwise(prims.add, (o, self))

    def __sub__(self, o):
        return _elementwise(prims.sub, (self, o))

    def __rsub__(self, o):
        return _elementwise(prims.sub, (o, self))

    def __mul__(self, o):
        return _elementwise(prims.mul, (self, o))

    def __rmul__(self, o):
        return _elementwise(prims.mul, (o, self))

    def __truediv__(self, o):
        return _elementwise(prims.div, (self, o))

    def __rtruediv__(self, o):
        return _elementwise(prims.div, (o, self))

    def __pow__(self, o):
        return _elementwise(prims.pow, (self, o))

    def __rpow__(self, o):
        return _elementwise(prims.pow, (o, self))

    def __neg__(self):
        return _elementwise(prims.neg, (self,))

    def __pos__(self):
        return self

    def __abs__(self):
        return _elementwise(prims.abs, (self,))

    def __gt__(self, o):
        return _elementwise(prims.gt, (self, o))

    def __ge__(self, o):
        return _elementwise(prims.ge, (self, o))

    def __lt__(self, o):
        return _elementwise(prims.lt, (self, o))

    def __le__(self, o):
        return _elementwise(prims.le, (self, o))

    def __matmul__(self, o):
        return _einsum_tracers("...ij,...jk->...ik" if _tr(o).ndim > 1 else "...ij,j->...i",
                               (self, o))

    def __rmatmul__(self, o):
        return _tr(o).__matmul__(self)

    __hash__ = object.__hash__

    def _einvjp_einsum(self, equation, *operands, sizes=None, optimize="auto"):
        return _einsum_tracers(equation, operands, sizes)


def _tr(x):
    """A Tracer for x (a Tracer, a number, or an array constant)."""
    if isinstance(x, Tracer):
        return x
    if isinstance(x, (int, float, complex)):
        return Tracer(prims.as_expr(x), ())
    if hasattr(x, "shape"):
        return Tracer.of(_context().constant(x))
    raise ProgramError(f"cannot trace a value of type {type(x).__name__}")


def _broadcast(values):
    """Exprs of the operands renamed onto the broadcast result's labels."""
    ts = [_tr(v) for v in values]
    ndim = max((t.ndim for t in ts), default=0)
    shape = [1] * ndim
    for t in ts:
        for k, s in enumerate(t.shape):
            pos = ndim - t.ndim + k
            if s != 1:
                if shape[pos] not in (1, s):
                    raise ProgramError(f"shapes {[t.shape for t in ts]} cannot be broadcast")
                shape[pos] = s
    names = [None] * ndim
    for t in ts:  # result axes keep the name an operand gave them (an einsum letter)
        for k, lab in enumerate(t.axes):
            pos = ndim - t.ndim + k
            if names[pos] is None and int(lab.size) == shape[pos]:
                names[pos] = lab.name
    out = [Index(n or d.name, d.size) for n, d in zip(names, _labels(shape))]
    exprs = []
    for t in ts:
        ren, drop = {}, []
        for k, lab in enumerate(t.axes):
            target = out[ndim - t.ndim + k]
            if int(lab.size) == int(target.size):
                ren[lab] = target
            else:
                drop.append(lab)
        e = t.expr if not drop else product(t.expr, out=[l for l in t.expr.labels
                                                         if l not in set(drop)])
        exprs.append(e.rename(ren))
    return exprs, out


def _result(expr, out):
    if set(expr.labels) != set(out):
        expr = Expr(materialize(expr, out), out)
    return Tracer(expr, out)


def _elementwise(fn, args, **kwargs):
    exprs, out = _broadcast(args)
    return _result(fn.build(*exprs, **kwargs), out)


def _axes_of(t, axis):
    if axis is None:
        return list(range(t.ndim))
    axis = [axis] if isinstance(axis, int) else list(axis)
    return sorted(a % t.ndim for a in axis)


def _reduce(fn, x, axis=None, keepdims=False, **kwargs):
    t = _tr(x)
    over = _axes_of(t, axis)
    labs = [t.axes[a] for a in over]
    r = fn.build(t.expr, over=labs, **kwargs)
    rest = [l for l in t.axes if l not in set(labs)]
    if not keepdims:
        return _result(r, rest)
    full = [Index(l.name, 1) if l in set(labs) else l for l in t.axes]
    return Tracer(Expr(materialize(r, full), full))


def _einsum_tracers(equation, operands, sizes=None):
    from .equation import bind, parse
    ts = [_tr(x) for x in operands]
    ge = bind(parse(equation), [t.shape for t in ts], sizes or {})
    node = contract([(t.expr.node, t.term_for(term)) for t, term in zip(ts, ge.terms)],
                    ge.out, 1)
    out = ge.out if len(set(ge.out)) == len(ge.out) else fresh_axes(node)
    return Tracer(Expr(node, out))


def dispatch(fn, args, kwargs):
    """A public function called on tracers (trace it) or on arrays (run it)."""
    if any(isinstance(a, Tracer) for a in args):
        return _apply(fn, args, kwargs)
    return _eager(fn, args, kwargs)


def _apply(fn, args, kwargs):
    if fn.kind == "elementwise":
        return _elementwise(fn, args, **kwargs)
    if fn.kind == "reduce":
        axis = kwargs.pop("axis", args[1] if len(args) > 1 else None)
        keepdims = kwargs.pop("keepdims", False)
        weight = kwargs.pop("b", None)
        if weight is not None:
            (x, w), out = _broadcast((args[0], weight))
            t = Tracer(x if set(x.labels) == set(out) else Expr(materialize(x, out), out), out)
            return _reduce(fn, t, axis, keepdims, weight=w)
        return _reduce(fn, args[0], axis, keepdims)
    if fn.kind == "normalize":
        t = _tr(args[0])
        axis = kwargs.pop("axis", args[1] if len(args) > 1 else -1)
        return Tracer(fn.build(t.expr, over=[t.axes[a] for a in _axes_of(t, axis)]), t.axes)
    if fn.kind == "matrix":
        t = _tr(args[0])
        r = fn.build(t.expr, pair=t.axes[-2:])
        return Tracer(r, [l for l in t.axes if l in set(r.labels)])
    if fn.kind == "solve":
        a, b = _tr(args[0]), _tr(args[1])
        batch, (r, c) = a.axes[:-2], a.axes[-2:]
        vector = b.ndim == a.ndim - 1
        lead = b.axes[:len(batch)]
        ren = dict(zip(lead, batch))
        ren[b.axes[len(batch)]] = r
        if any(int(x.size) != int(y.size) for x, y in ren.items()):
            raise ProgramError(f"solve: shapes {a.shape} and {b.shape} do not match")
        be = b.expr.rename(ren)
        res = fn.build(a.expr, be, pair=(r, c))
        order = list(batch) + [c] + ([] if vector else [ren.get(l, l) for l in b.axes[-1:]])
        return Tracer(res, order)
    raise ProgramError(f"cannot trace {fn.name}")  # pragma: no cover


def _eager(fn, args, kwargs):
    from .backend import backend_for
    ctx = _Context()
    _contexts.append(ctx)
    try:
        r = _apply(fn, [_tr(a) if hasattr(a, "shape") else a for a in args], dict(kwargs))
    finally:
        _contexts.pop()
    B = backend_for(list(ctx.constants.values()))
    values = {n: B.asarray(v) for n, v in ctx.constants.items()}
    out, = evaluate([r.node()], values, B, prims.table(B.name))
    return out


class TracedProgram(Program):
    """A Python function traced once per input signature into the IR."""

    def __init__(self, fn):
        self.fn = fn
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "program")
        self.__doc__ = fn.__doc__
        params = inspect.signature(fn).parameters.values()
        self.input_names = [p.name for p in params
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._graphs = {}

    def __repr__(self):
        return f"<einvjp traced program {self.__name__}({', '.join(self.input_names)})>"

    def _graph_for(self, values):
        sig = tuple((n, None if isinstance(values[n], (int, float, complex)) else
                     tuple(int(d) for d in values[n].shape)) for n in self.input_names)
        g = self._graphs.get(sig)
        if g is None:
            g = self._graphs[sig] = self._trace(sig)
        self._last = g
        return g

    def _symbolic_graph(self):
        if not self._graphs:
            raise ProgramError("call the program (or give inputs) before printing a "
                               "derivative: a traced program has shapes only once traced")
        return self._last

    def _trace(self, sig):
        inputs = {n: Input(n, () if s is None else s) for n, s in sig}
        ctx = _Context(inputs)
        _contexts.append(ctx)
        try:
            out = self.fn(*[Tracer.of(inputs[n]) for n in self.input_names])
        finally:
            _contexts.pop()
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        names = ["y"] if len(outs) == 1 else [f"y{k}" for k in range(len(outs))]
        nodes = []
        for o, name in zip(outs, names):
            node = _tr(o).node()
            if node.name is None and not isinstance(node, Input):
                node.name = name
            nodes.append(node)
        g = Graph({**inputs, **{c.name: c for c in ctx.constants}}, nodes, names)
        g.constants = dict(ctx.constants)
        return g
