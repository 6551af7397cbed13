"""Traced Python: `einvjp.compile(fn)` runs fn once per input signature on
`Tracer`s and records the same IR the text frontend builds.

Inside fn: `einvjp.einsum`, the functions of `einvjp.prims` (`einvjp.exp`,
`einvjp.logsumexp(x, axis=-1)`, `einvjp.inv`, …), `+ - * / ** @` and the
comparisons `< <= > >= == !=` (elementwise, 1.0 where true and 0.0 where
false, as the condition of `einvjp.where`) with NumPy broadcasting,
`.sum(axis)`, `.mean(axis)`, `.max(axis)`, `.min(axis)`, `.T`,
`.transpose(*axes)`.  An array met in fn (closed over) is a constant.
Python control flow on traced values is an error (the trace would bake it
in), and so are NumPy or torch functions, indexing and other methods: each
error names the einvjp function to use.

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
import operator

from .errors import AxisError, ProgramError, SignatureError, TracingError
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
        raise TracingError("a traced value was used outside the function einvjp.compile "
                           "traced (kept from an earlier trace?): compute with it inside "
                           "the traced function")
    return _contexts[-1]


def _labels(shape):
    return [Index(_LETTERS[k % 26] if k < 26 else f"i{k}", int(s)) for k, s in enumerate(shape)]


SUPPORTED = ("einvjp.einsum, the einvjp functions (einvjp.exp, einvjp.where, einvjp.sum, "
             "einvjp.softmax, …), + - * / ** @, < <= > >= == !=, .sum .mean .max .min "
             "(axis=, keepdims=), .T and .transpose")

# NumPy ufuncs and torch functions that are Python operators (`array + tracer`
# calls np.add, `tensor + tracer` torch's add): our reflected operator.
_OPERATORS = {"add": "__radd__", "subtract": "__rsub__", "multiply": "__rmul__",
              "true_divide": "__rtruediv__", "power": "__rpow__", "matmul": "__rmatmul__",
              "greater": "__lt__", "greater_equal": "__le__", "less": "__gt__",
              "less_equal": "__ge__", "equal": "__eq__", "not_equal": "__ne__",
              "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__", "pow": "__rpow__",
              "gt": "__lt__", "ge": "__le__", "lt": "__gt__", "le": "__ge__", "eq": "__eq__",
              "ne": "__ne__"}
# NumPy and torch names -> the einvjp function that does it.
_EINVJP_NAMES = {"absolute": "abs", "fabs": "abs", "amax": "max", "amin": "min",
                 "exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1",
                 "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tanh": "tanh", "abs": "abs",
                 "maximum": "maximum", "minimum": "minimum", "where": "where",
                 "square": "square", "sigmoid": "sigmoid", "relu": "relu", "erf": "erf",
                 "softplus": "softplus", "gelu": "gelu", "sum": "sum", "mean": "mean",
                 "max": "max", "min": "min", "logsumexp": "logsumexp", "softmax": "softmax",
                 "log_softmax": "log_softmax", "einsum": "einsum", "inv": "inv",
                 "solve": "solve", "det": "det", "logdet": "logdet", "power": "pow",
                 "pow": "pow", "negative": "neg", "neg": "neg"}


def _instead(library, name):
    """The error for a library function met on a traced value."""
    ours = _EINVJP_NAMES.get(name, name if name in prims.EXPORTED else None)
    hint = f"use einvjp.{ours}" if ours else f"a traced function may use {SUPPORTED}"
    return TracingError(f"{library}.{name} cannot be applied to a traced value inside "
                        f"einvjp.compile: {hint}")


class _AttributeTracingError(TracingError, AttributeError):
    """An unknown attribute of a traced value (`hasattr` stays False)."""


class Tracer:
    """A traced array: an `Expr` and the order of its axes (`axes`, the
    Expr's labels in positional order)."""
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

    def _number(self, *_):
        raise TracingError("a traced value has no Python number value inside einvjp.compile "
                           "(its value is known only when the program runs); keep it an "
                           "array, and use einvjp.where for data-dependent choices")

    __float__ = __int__ = __complex__ = __index__ = _number

    def __iter__(self):
        raise TracingError("a traced value cannot be iterated inside einvjp.compile; use "
                           "einvjp.einsum or the reductions (.sum(axis=…)) over its axes")

    def __getitem__(self, item):
        raise TracingError(f"a traced value cannot be indexed (x[{item!r}]) inside "
                           f"einvjp.compile; pick entries with einvjp.einsum and a constant "
                           f"array, e.g. einvjp.einsum('ij,j->i', x, onehot); a traced "
                           f"function may use {SUPPORTED}")

    def __getattr__(self, name):
        if name.startswith("__"):  # protocols libraries probe for (__array_interface__, …)
            raise AttributeError(name)
        raise _AttributeTracingError(f"a traced value has no attribute {name!r} inside "
                                     f"einvjp.compile; a traced function may use {SUPPORTED}")

    def _reflected(self, name, args, kwargs):
        """`other <op> self` when a library hands us its operator `name`."""
        method = _OPERATORS.get(name)
        if method and not kwargs and len(args) == 2 and args[1] is self:
            return getattr(self, method)(args[0])
        return None

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        r = self._reflected(ufunc.__name__, inputs, kwargs) if method == "__call__" else None
        if r is None:
            raise _instead("numpy", ufunc.__name__)
        return r

    def __array_function__(self, func, types, args, kwargs):
        raise _instead("numpy", func.__name__)

    def __array__(self, *args, **kwargs):
        raise TracingError(f"a traced value cannot become a NumPy array inside "
                           f"einvjp.compile; a traced function may use {SUPPORTED}")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        r = args[1]._reflected(name, args, kwargs) if len(args) == 2 and \
            isinstance(args[1], Tracer) else None
        if r is None:
            raise _instead("torch", name)
        return r

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

    def __eq__(self, o):  # elementwise, as in NumPy: not identity
        return _elementwise(prims.eq, (self, o)) if _traceable(o) else NotImplemented

    def __ne__(self, o):
        return _elementwise(prims.ne, (self, o)) if _traceable(o) else NotImplemented

    def __matmul__(self, o):
        a, b = self.ndim > 1, _tr(o).ndim > 1  # NumPy's matmul: a 1-d operand is a vector
        return _einsum_tracers({(True, True): "...ij,...jk->...ik", (True, False): "...ij,j->...i",
                                (False, True): "j,...jk->...k", (False, False): "j,j->"}[a, b],
                               (self, o))

    def __rmatmul__(self, o):
        return _tr(o).__matmul__(self)

    __hash__ = object.__hash__  # by identity: `==` is elementwise

    def _einvjp_einsum(self, equation, *operands, sizes=None, optimize="auto"):
        return _einsum_tracers(equation, operands, sizes)


def _traceable(x):
    return isinstance(x, (Tracer, int, float, complex)) or hasattr(x, "shape")


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


def _axes_of(t, axis, name):
    """The positions `axis` (an int, a sequence of ints, or None for all)
    names in t, as NumPy reads them: negative from the end; an axis out of
    range or given twice is an error."""
    if axis is None:
        return list(range(t.ndim))
    many = isinstance(axis, (tuple, list))
    found = []
    for a in axis if many else [axis]:
        try:
            if isinstance(a, bool):
                raise TypeError
            k = operator.index(a)
        except TypeError:
            raise AxisError(f"{name}(axis={axis!r}): an axis is an integer or a tuple of "
                            f"integers") from None
        if not -t.ndim <= k < t.ndim:
            raise AxisError(f"{name}(axis={axis!r}): axis {k} is out of bounds for an array "
                            f"of dimension {t.ndim} (shape {t.shape})")
        if k % t.ndim in found:
            raise AxisError(f"{name}(axis={axis!r}): axis {k % t.ndim} is given twice")
        found.append(k % t.ndim)
    return sorted(found)


def _reduce(fn, x, axis=None, keepdims=False, **kwargs):
    t = _tr(x)
    over = _axes_of(t, axis, fn.name)
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
    try:
        bound = _signature(fn).bind(*args, **kwargs)
    except TypeError as err:
        raise SignatureError(f"einvjp.{fn.name}{_signature(fn)}: {err}") from None
    bound.apply_defaults()
    if any(isinstance(a, Tracer) for a in bound.arguments.values()):
        return _apply(fn, bound.arguments)
    return _eager(fn, bound.arguments)


_SIGNATURES = {}


def _signature(fn):
    """What a public function takes on tracers and arrays (by its kind)."""
    found = _SIGNATURES.get(fn.name)
    if found is None:
        P = inspect.Parameter
        names = {"elementwise": {1: ["x"], 2: ["x", "y"], 3: ["condition", "x", "y"]}.get(
                     fn.nargs, [f"x{k}" for k in range(fn.nargs)]),
                 "solve": ["a", "b"]}.get(fn.kind, ["x"])
        params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in names]
        if fn.kind == "reduce":
            params += [P("axis", P.POSITIONAL_OR_KEYWORD, default=None),
                       P("keepdims", P.POSITIONAL_OR_KEYWORD, default=False)]
            if fn is prims.logsumexp:
                params.append(P("b", P.KEYWORD_ONLY, default=None))
        elif fn.kind == "normalize":
            params.append(P("axis", P.POSITIONAL_OR_KEYWORD, default=-1))
        found = _SIGNATURES[fn.name] = inspect.Signature(params)
    return found


def _apply(fn, arguments):
    """fn on tracers: `arguments` are its bound arguments (see `_signature`)."""
    if fn.kind == "elementwise":
        return _elementwise(fn, list(arguments.values()))
    if fn.kind == "reduce":
        x, axis, keepdims = arguments["x"], arguments["axis"], arguments["keepdims"]
        weight = arguments.get("b")
        if weight is not None:
            (x, w), out = _broadcast((x, weight))
            t = Tracer(x if set(x.labels) == set(out) else Expr(materialize(x, out), out), out)
            return _reduce(fn, t, axis, keepdims, weight=w)
        return _reduce(fn, x, axis, keepdims)
    if fn.kind == "normalize":
        t = _tr(arguments["x"])
        over = _axes_of(t, arguments["axis"], fn.name)
        return Tracer(fn.build(t.expr, over=[t.axes[a] for a in over]), t.axes)
    if fn.kind == "matrix":
        t = _tr(arguments["x"])
        r = fn.build(t.expr, pair=t.axes[-2:])
        return Tracer(r, [l for l in t.axes if l in set(r.labels)])
    if fn.kind == "solve":
        a, b = _tr(arguments["a"]), _tr(arguments["b"])
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


def _eager(fn, arguments):
    from .backend import backend_for
    ctx = _Context()
    _contexts.append(ctx)
    try:
        r = _apply(fn, {k: _tr(a) if hasattr(a, "shape") else a for k, a in arguments.items()})
    finally:
        _contexts.pop()
    B = backend_for(list(ctx.constants.values()))
    values = {n: B.asarray(v) for n, v in ctx.constants.items()}
    out, = evaluate([r.node()], values, B)
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
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            # In the context: a returned array (closed over) is a constant of it.
            nodes = [_tr(o).node() for o in outs]
        finally:
            _contexts.pop()
        base = "y"  # apart from the inputs' names (loss(x, y) returns no `y`)
        while any(n == base or (n.startswith(base) and n[len(base):].isdigit())
                  for n in self.input_names):
            base += "_"
        names = [base] if len(outs) == 1 else [f"{base}{k}" for k in range(len(outs))]
        for node, name in zip(nodes, names):
            if node.name is None and not isinstance(node, Input):
                node.name = name
        g = Graph({**inputs, **{c.name: c for c in ctx.constants}}, nodes, names)
        g.constants = dict(ctx.constants)
        return g
