"""Primitives: each defined once, with its derivative rule returning graph.

An elementwise primitive's rule receives its operands and its result as
`Expr`s and returns one partial derivative per operand (an Expr, a number,
or 0); the VJP multiplies the cotangent by it and sums the labels the
operand lacks.  A structured primitive's rule receives the cotangent too and
returns the VJP of each operand.  Rules build graph, so higher derivatives
and printing come free.

Products, sums, quotients and reductions by summation are not primitives:
they are Contract and Add nodes, whose one rule is the role swap.

Every public function here (`exp`, `logsumexp`, `inv`, …) works on `Expr`s
(index notation, aligned by label), on tracers inside `einvjp.compile(fn)`
(NumPy broadcasting, axis arguments) and eagerly on arrays:

>>> import numpy as np
>>> exp(np.array([0.0, 1.0]))
array([1.        , 2.71828183])
>>> logsumexp(np.array([[1000.0, 1000.0]]), axis=-1)
array([1000.69314718])

Conventions at kinks and boundaries (float64; checked against PyTorch
autograd and jax.grad, and PyTorch's followed where the two differ):

    function              at                  value        derivative
    x^p, p a number       x = 0, p = 0        1            0 (JAX: nan)
                          x = 0, 0 < p < 1    0            inf
                          x = 0, p = 1, 2, 3  0            1, 0, 0
                          x = 0, p = -1       inf          -inf
    x^y, y a tensor       x = 0               as above     d/dx 0 where y = 0;
                                                           d/dy 0 where y >= 0
                                                           (JAX: nan for y = 0 in
                                                           d/dx, y < 0 in d/dy)
    sqrt                  x = 0               0            inf
    log                   x = 0               -inf         inf
    abs                   x = 0               0            0 (JAX: 1)
    relu                  x = 0               0            0
    relu, where           mask 0              -            cotangent masked, not
                                                           multiplied: 0 even if inf
    maximum, minimum      x = y               x            1/2 to each operand
    max, min (reduce)     ties                the max      split evenly among ties
    max, min (reduce)     size-0 axis         error        -
    logsumexp             size-0 axis         -inf         (empty)
    softmax, log_softmax  size-0 axis         empty        (empty)
    mean                  size-0 axis         nan          (empty)
    tanh, sigmoid,        x = ±1000           no overflow  finite: 0 or 1, no NaN
    softplus, gelu,
    silu, log_sigmoid
    silu                  x = ±inf            nan at -inf  nan
    log_sigmoid           x = -inf, inf       -inf, 0      1, 0
    logaddexp             x = y = ±1000       no overflow  1/2 each
                          x = y = ±inf        ±inf         nan
                          x = -inf, y finite  y            0 to x, 1 to y

Numbers in a program follow NumPy float64 where exact arithmetic cannot:
`x / 0` is inf, -inf or nan, `10^400` is inf, `(-1)^0.5` is nan (never a
complex in a real program), and an integer tensor to a negative integer
power gives floats, as `x^-1 = 1/x` does (NumPy, PyTorch and JAX raise).
"""

from __future__ import annotations

import math

from .errors import ProgramError
from .function_docs import DOCS as _DOCS
from .ge import Index
from .ir import OPERATORS, Coef, Expr, apply, as_expr, const, func, product
from .numbers import power
from .ops import aligned


# The functions index-notation text and traced code may call, by name (filled
# as they are made), and those `einvjp` exports.
FUNCTIONS = {}
EXPORTED = {}


class Function:
    """A public operation.  `kind` says how positional (traced or eager)
    arguments become labels: "elementwise" (NumPy broadcasting), "reduce" and
    "normalize" (an `axis` argument), "matrix" (the last two axes), "solve".
    `calls`: text and traced code may call it by name; `export`: `einvjp`
    exports it; `doc`: its docstring."""

    def __init__(self, name, kind, build, nargs=1, calls=True, export=True, doc=None):
        self.name, self.kind, self.build, self.nargs = name, kind, build, nargs
        self.__name__ = name
        self.__doc__ = doc or f"einvjp.{name}: on Exprs, tracers or arrays."
        if calls:
            FUNCTIONS[name] = self
        if calls and export:
            EXPORTED[name] = self

    def __repr__(self):
        return f"<einvjp function {self.name}>"

    # How a call on tracers or arrays runs (traced, or eagerly): installed by
    # einvjp.functions, which sits above tracing and evaluation.
    dispatch = None

    def __call__(self, *args, **kwargs):
        if any(isinstance(a, Expr) for a in args):
            return self.build(*args, **kwargs)
        return self.dispatch(args, kwargs)


class Prim(Function):
    """An elementwise primitive: a Map node's function, with its rule."""

    def __init__(self, name, nargs, rule, params=(), diff=True, gate=False, **public):
        super().__init__(name, "elementwise", self._build, nargs, **public)
        self.rule, self.param_names, self.diff = rule, tuple(params), diff
        self.gate = gate  # partials are 0/1 masks: the VJP selects, never multiplies

    def _build(self, *args, **params):
        values = tuple(params[p] for p in self.param_names)
        return apply(self, *args, params=values)

    def partials(self, args, out, params):
        if not self.diff:
            return (0,) * len(args)
        return self.rule(*args, out=out, **dict(zip(self.param_names, params)))

    def cotangent(self, g, args, out, params, k):
        """The cotangent of operand k given the result's, `g` (None for
        zero): g times the partial, or g where a gate's mask is 1 and 0
        elsewhere (0 even where g is inf or nan, as PyTorch and JAX do)."""
        p = self.partials(args, out, params)[k]
        if p is None or (not isinstance(p, Expr) and p == 0):
            return None
        return where(p, g, 0) if self.gate else product(g, p)


def prim(name, nargs, rule, params=(), gate=False, **public):
    """An elementwise primitive `name` of `nargs` operands: `rule(*operands,
    out=result)` gives one partial derivative per operand, as graph.  Its
    kernels are the backends' `kernels[name]`."""
    return Prim(name, nargs, rule, params, gate=gate, **public)


def nondiff(name, nargs):
    """A piecewise-constant function: its derivative is zero."""
    return Prim(name, nargs, None, diff=False, export=False)


# --- Elementwise primitives ------------------------------------------------

step = nondiff("step", 1)        # 1 where x > 0, else 0
sign = nondiff("sign", 1)
tie = nondiff("tie", 2)          # 1 where x > y, 1/2 where x == y, else 0
select = nondiff("select", 1)    # 1 where c != 0, else 0
gt, ge, lt, le, eq, ne = (nondiff(n, 2) for n in ("gt", "ge", "lt", "le", "eq", "ne"))

_SQRT_2PI = math.sqrt(2 * math.pi)

reciprocal = prim("reciprocal", 1, lambda x, *, out: (-(out * out),), export=False)
exp = prim("exp", 1, lambda x, *, out: (out,))
log = prim("log", 1, lambda x, *, out: (1 / x,))
log1p = prim("log1p", 1, lambda x, *, out: (1 / (1 + x),))
expm1 = prim("expm1", 1, lambda x, *, out: (out + 1,))
sqrt = prim("sqrt", 1, lambda x, *, out: (0.5 / out,))
sin = prim("sin", 1, lambda x, *, out: (cos(x),))
cos = prim("cos", 1, lambda x, *, out: (-sin(x),))
tanh = prim("tanh", 1, lambda x, *, out: (1 - out * out,))
sigmoid = prim("sigmoid", 1, lambda x, *, out: (out * (1 - out),))
softplus = prim("softplus", 1, lambda x, *, out: (sigmoid(x),))
relu = prim("relu", 1, lambda x, *, out: (step(x),), gate=True)
abs = prim("abs", 1, lambda x, *, out: (sign(x),))  # noqa: A001
erf = prim("erf", 1, lambda x, *, out: (2 / math.sqrt(math.pi) * exp(-(x * x)),))
# gelu'(x) = Φ(x) + x φ(x) is a primitive of its own, which a library computes in
# one pass (torch's gelu_backward) instead of ten elementwise ones.
gelu_grad = prim("gelu_grad", 1, lambda x, *, out: (
    (2 - x * x) * exp(-0.5 * (x * x)) * (1 / _SQRT_2PI),), export=False)
gelu = prim("gelu", 1, lambda x, *, out: (gelu_grad(x),))
silu = prim("silu", 1, lambda x, *, out: (sigmoid(x) * (1 + x * sigmoid(-x)),), doc="""x σ(x)
    (swish), elementwise (no overflow at ±1000); derivative σ(x) (1 + x (1 - σ(x))),
    nan at ±inf (as PyTorch).  Traced or eager: `silu(x)`; in text: `silu(x[i])`.

    >>> silu(np.array([-1000.0, 0.0, 1.0]))
    array([-0.        ,  0.        ,  0.73105858])
    """)
log_sigmoid = prim("log_sigmoid", 1, lambda x, *, out: (sigmoid(-x),), doc="""log σ(x) =
    -softplus(-x), elementwise (no overflow: -1000 at -1000); derivative σ(-x), 1 at
    -inf and 0 at inf.  Traced or eager: `log_sigmoid(x)`; in text: `log_sigmoid(x[i])`.

    >>> log_sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([-1.00000000e+03, -6.93147181e-01, -0.00000000e+00])
    """)
logaddexp = prim("logaddexp", 2, lambda x, y, *, out: (sigmoid(x - y), sigmoid(y - x)),
                 doc="""log(e^x + e^y), elementwise (NumPy broadcasting, or aligned by
    label), without overflow; derivatives σ(x - y) and σ(y - x): 1/2 each where x == y,
    nan where both are the same infinity (as PyTorch).  Traced or eager:
    `logaddexp(x, y)`; in text: `logaddexp(x[i], y[i])`.

    >>> logaddexp(np.array([1000.0, 0.0]), np.array([1000.0, -np.inf]))
    array([1000.69314718,    0.        ])
    """)
maximum = prim("maximum", 2, lambda x, y, *, out: (tie(x, y), tie(y, x)))
minimum = prim("minimum", 2, lambda x, y, *, out: (tie(y, x), tie(x, y)))
where = prim("where", 3, lambda c, a, b, *, out: (0, select(c), 1 - select(c)), gate=True)
powc = prim("pow", 1, lambda x, *, out, p: (p * pow(x, p - 1),), params=("p",), calls=False)
# ∂/∂x is 0 where y == 0, ∂/∂y is 0 where x == 0 and y >= 0 (as in PyTorch).
tpow = prim("tpow", 2, lambda x, y, *, out: (
    where(eq(y, 0), 0, y * pow(x, y - 1)), where(eq(x, 0) * ge(y, 0), 0, log(x) * out)),
    calls=False)
# w·exp(d), and 0 where w == 0 even when exp(d) would overflow (logsumexp's VJP).
wexp = prim("wexp", 2, lambda d, w, *, out: (out, exp(d)), calls=False)


def _pow(x, p):
    """x^p: a constant exponent is a parameter, a tensor one an operand."""
    if isinstance(p, Expr) and p.constant is None:
        return tpow(x, p)
    p = Coef.of(p.constant if isinstance(p, Expr) else p).number()
    if isinstance(x, Expr) and x.constant is not None:
        return const(power(x.constant.number(), p))
    if p == 1:
        return x
    if p == 0:
        return const(1)
    if p == -1:
        return reciprocal(x)
    return powc(x, p=p)


pow = Function("pow", "elementwise", _pow, nargs=2)  # noqa: A001
OPERATORS["pow"] = pow
OPERATORS["reciprocal"] = reciprocal


def _neg(x):
    return -as_expr(x)


def _add(x, y):
    return as_expr(x) + y


def _sub(x, y):
    return as_expr(x) - y


def _mul(x, y):
    return as_expr(x) * y


def _div(x, y):
    return as_expr(x) / y


neg = Function("neg", "elementwise", _neg)
add = Function("add", "elementwise", _add, 2)
sub = Function("sub", "elementwise", _sub, 2)
mul = Function("mul", "elementwise", _mul, 2)
div = Function("div", "elementwise", _div, 2)
square = Function("square", "elementwise", lambda x: _pow(x, 2))


# --- Reductions and normalisations over labels ------------------------------


def _over(x, over):
    return tuple(x.labels) if over is None else tuple(over)


def _keep(x, over):
    return [lab for lab in x.labels if lab not in set(over)]


def _mean(x, over=None):
    over = _over(x, over)
    coeff = Coef.of(1)
    for lab in over:
        coeff = coeff / lab.size  # a named size stays symbolic: 1/H
    return product(x, out=_keep(x, over), coeff=coeff)


sum = Function("sum", "reduce", lambda x, over=None: x.sum(_over(x, over)))  # noqa: A001
mean = Function("mean", "reduce", _mean)


class Structured:
    """A node-level structured primitive: its VJP rule (cotangent first) and
    its evaluation layout, `run(kernel, B, node, args)`: the node's operands
    laid out as the backend's kernel of this name takes them."""

    def __init__(self, name, vjp, param_names, run):
        self.name, self.vjp, self.param_names, self.run = name, vjp, param_names, run

    def __repr__(self):
        return f"<einvjp structured primitive {self.name}>"


def _lse_vjp(g, x, *w, out, over):
    # exp(x - out) is softmax(x), but x - out loses |x|·eps where |x| is large
    # (at x ~ 6e10, 1e-5 of each weight); softmax shifts by the max instead,
    # exact where x ties.  Weighted, exp(x - out) stays: w·softmax(x) / Σ
    # w·softmax(x) would be 0/0 where w picks out a softmax that underflows.
    if not w:
        return (g * _normalization(SOFTMAX)(x, over),)
    d = x - out
    return (g * wexp(d, w[0]), g * exp(d))


def _softmax_vjp(g, x, *, out, over):
    return (out * (g - (g * out).sum(over)),)


def _log_softmax_vjp(g, x, *, out, over):
    return (g - exp(out) * g.sum(over),)


def _extremum_vjp(g, x, *, out, over):
    mask = eq(x, out)
    return (g * mask * (1 / mask.sum(over)),)


def _run_reduction(kernel, B, node, args):
    """kernel(x, axes[, weights]): x laid out as (kept labels, reduced ones)."""
    out, over = list(node.out), list(node.params[0])
    order = out + over
    xs = [aligned(B, a, list(t), order) for a, t in zip(args, node.terms)]
    return kernel(xs[0], tuple(range(len(out), len(order))), *xs[1:])


def _run_normalization(kernel, B, node, args):
    """kernel(x, axes): x in the output's layout."""
    out = list(node.out)
    return kernel(aligned(B, args[0], list(node.terms[0]), out),
                  tuple(out.index(lab) for lab in node.params[0]))


LSE = Structured("logsumexp", _lse_vjp, ("over",), _run_reduction)
SOFTMAX = Structured("softmax", _softmax_vjp, ("over",), _run_normalization)
LOG_SOFTMAX = Structured("log_softmax", _log_softmax_vjp, ("over",), _run_normalization)
MAX = Structured("max", _extremum_vjp, ("over",), _run_reduction)
MIN = Structured("min", _extremum_vjp, ("over",), _run_reduction)


def _reduction(p):
    def build(x, over=None, weight=None):
        over = _over(x, over)
        empty = [lab for lab in over if lab.size == 0]
        if empty and p in (MAX, MIN):
            raise ProgramError(f"{p.name} over label {empty[0].name!r} of size 0: "
                               f"a maximum or minimum of no element has no value")
        args = (x,) if weight is None else (x, weight)
        return func(p, args, _keep(x, over), params=(over,))
    return build


def _normalization(p):
    def build(x, over=None):
        over = (x.labels[-1],) if over is None else tuple(over)
        return func(p, (x,), x.labels, params=(over,))
    return build


logsumexp = Function("logsumexp", "reduce", _reduction(LSE))
max = Function("max", "reduce", _reduction(MAX))  # noqa: A001
min = Function("min", "reduce", _reduction(MIN))  # noqa: A001
softmax = Function("softmax", "normalize", _normalization(SOFTMAX))
log_softmax = Function("log_softmax", "normalize", _normalization(LOG_SOFTMAX))


# --- Matrix functions over a label pair (rows, columns) ----------------------


def _swap(r, c):
    return {r: c, c: r}


def _inv_vjp(g, x, *, out, pair):
    r, c = pair
    a, b = Index("a", r.size), Index("b", r.size)
    return (product(out.rename({r: a, c: r}), g.rename({r: a, c: b}), out.rename({r: c, c: b}),
                    out=x.labels, coeff=-1),)


def _solve_vjp(g, a, b, *, out, pair):
    r, c = pair
    gb = solve(a, g, pair=(c, r))
    return (product(gb, out, out=a.labels, coeff=-1), product(gb, out=b.labels))


def _det_vjp(g, x, *, out, pair):
    return (product(g, out, inv(x, pair=pair).rename(_swap(*pair)), out=x.labels),)


def _logdet_vjp(g, x, *, out, pair):
    return (product(g, inv(x, pair=pair).rename(_swap(*pair)), out=x.labels),)


def _run_det(kernel, B, node, args):
    """kernel(a): a's matrix axes (rows, columns) last."""
    return kernel(aligned(B, args[0], list(node.terms[0]), list(node.out) + list(node.params[0])))


def _run_inv(kernel, B, node, args):
    """kernel(a): a's matrix axes last, and so the result's."""
    out, (r, c) = list(node.out), node.params[0]
    order = [lab for lab in out if lab not in (r, c)] + [r, c]
    return aligned(B, kernel(aligned(B, args[0], list(node.terms[0]), order)), order, out)


def _run_solve(kernel, B, node, args):
    """kernel(a, b): a as (batch, rows, columns), b as (batch, rows, the rest
    flattened), broadcast to the batch."""
    (r, c), (aterm, bterm) = node.params[0], map(list, node.terms)
    batch = [lab for lab in aterm if lab not in (r, c)]
    rest = [lab for lab in bterm if lab not in batch and lab is not r]
    a = aligned(B, args[0], aterm, batch + [r, c])
    order = batch + [r] + rest
    b = aligned(B, args[1], bterm, order)
    full = tuple(int(lab.size) for lab in order)
    if tuple(b.shape) != full:
        b = B.broadcast_to(b, full)
    sizes = [int(lab.size) for lab in batch]
    b = B.reshape(b, tuple(sizes) + (int(r.size), math.prod(int(lab.size) for lab in rest)))
    y = B.reshape(kernel(a, b), tuple(int(lab.size) for lab in batch + [c] + rest))
    return aligned(B, y, batch + [c] + rest, list(node.out))


INV = Structured("inv", _inv_vjp, ("pair",), _run_inv)
SOLVE = Structured("solve", _solve_vjp, ("pair",), _run_solve)
DET = Structured("det", _det_vjp, ("pair",), _run_det)
LOGDET = Structured("logdet", _logdet_vjp, ("pair",), _run_det)


def _pair(x, pair):
    pair = tuple(x.labels[-2:]) if pair is None else tuple(pair)
    if len(pair) != 2 or pair[0].size != pair[1].size:
        raise ProgramError(f"a matrix function needs two labels of equal size, got "
                           f"{[(l.name, l.size) for l in pair]}")
    return pair


def _inv(x, pair=None):
    return func(INV, (x,), x.labels, params=(_pair(x, pair),))


def _solve(a, b, pair=None):
    r, c = _pair(a, pair)
    b = as_expr(b)
    batch = [lab for lab in a.labels if lab not in (r, c)]
    out = batch + [c if lab is r else lab for lab in b.labels if lab not in set(batch)]
    return func(SOLVE, (a, b), out, params=((r, c),))


def _det_like(p):
    def build(x, pair=None):
        pair = _pair(x, pair)
        return func(p, (x,), [lab for lab in x.labels if lab not in pair], params=(pair,))
    return build


inv = Function("inv", "matrix", _inv)
solve = Function("solve", "solve", _solve, 2)
det = Function("det", "matrix", _det_like(DET))
logdet = Function("logdet", "matrix", _det_like(LOGDET))


# --- What each public function says about itself ----------------------------

for _name, _doc in _DOCS.items():
    FUNCTIONS[_name].__doc__ = _doc
# Each function's examples, as doctests (prims imports no array library: NumPy first).
__test__ = {f.name: ">>> import numpy as np\n\n" + f.__doc__ for f in FUNCTIONS.values()
            if ">>>" in f.__doc__}
