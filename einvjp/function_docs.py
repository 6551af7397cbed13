"""The docstrings of einvjp's functions (set on them by `einvjp.prims`,
which runs their examples as doctests), by name.

* `DOCS`: name -> docstring.
"""

DOCS = {
    "exp": """e^x, elementwise.  Traced or eager: `exp(x)`; in text: `exp(x[i])`.

    >>> exp(np.array([0.0, 1.0]))
    array([1.        , 2.71828183])
    """,
    "log": """The natural logarithm, elementwise: -inf at 0, derivative 1/x (inf at 0).
    Traced or eager: `log(x)`; in text: `log(x[i])`.

    >>> log(np.array([1.0, np.e]))
    array([0., 1.])
    """,
    "log1p": """log(1 + x), elementwise, accurate for small x.  Traced or eager:
    `log1p(x)`; in text: `log1p(x[i])`.

    >>> log1p(np.array([0.0, 1e-20]))
    array([0.e+00, 1.e-20])
    """,
    "expm1": """e^x - 1, elementwise, accurate for small x.  Traced or eager:
    `expm1(x)`; in text: `expm1(x[i])`.

    >>> expm1(np.array([0.0, 1e-20]))
    array([0.e+00, 1.e-20])
    """,
    "sqrt": """The square root, elementwise; its derivative 1/(2 sqrt x) is inf at 0.
    Traced or eager: `sqrt(x)`; in text: `sqrt(x[i])`.

    >>> sqrt(np.array([0.0, 4.0]))
    array([0., 2.])
    """,
    "sin": """The sine, elementwise.  Traced or eager: `sin(x)`; in text: `sin(x[i])`.

    >>> sin(np.array([0.0]))
    array([0.])
    """,
    "cos": """The cosine, elementwise.  Traced or eager: `cos(x)`; in text: `cos(x[i])`.

    >>> cos(np.array([0.0]))
    array([1.])
    """,
    "tanh": """The hyperbolic tangent, elementwise (no overflow at ±1000).
    Traced or eager: `tanh(x)`; in text: `tanh(x[i])`.

    >>> tanh(np.array([-1000.0, 0.0, 1000.0]))
    array([-1.,  0.,  1.])
    """,
    "sigmoid": """1 / (1 + e^-x), elementwise (no overflow at ±1000).
    Traced or eager: `sigmoid(x)`; in text: `sigmoid(x[i])`.

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """,
    "softplus": """log(1 + e^x), elementwise (no overflow at ±1000); derivative sigmoid(x).
    Traced or eager: `softplus(x)`; in text: `softplus(x[i])`.

    >>> softplus(np.array([-1000.0, 1000.0]))
    array([   0., 1000.])
    """,
    "relu": """max(x, 0), elementwise; derivative 0 at x = 0, and the cotangent is
    masked, not multiplied: 0 where x <= 0 even if it is inf (as PyTorch, JAX).
    Traced or eager: `relu(x)`; in text: `relu(x[i])`.

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """,
    "abs": """|x|, elementwise; derivative sign(x), 0 at x = 0 (as PyTorch; JAX gives 1).
    Traced or eager: `abs(x)`; in text: `abs(x[i])`.

    >>> abs(np.array([-2.0, 0.0]))
    array([2., 0.])
    """,
    "erf": """The error function, elementwise.  Traced or eager: `erf(x)`; in text:
    `erf(x[i])`.

    >>> erf(np.array([0.0]))
    array([0.])
    """,
    "gelu": """x Φ(x) with Φ the normal CDF (exact, not the tanh approximation).
    Traced or eager: `gelu(x)`; in text: `gelu(x[i])`.

    >>> gelu(np.array([0.0, 1000.0]))
    array([   0., 1000.])
    """,
    "maximum": """The larger of x and y, elementwise (NumPy broadcasting, or aligned by
    label); where x == y each gets half the cotangent (as PyTorch and JAX).
    Traced or eager: `maximum(x, y)`; in text: `maximum(x[i], y[i])`.

    >>> maximum(np.array([1.0, 5.0]), np.array([3.0, 2.0]))
    array([3., 5.])
    """,
    "minimum": """The smaller of x and y, elementwise; where x == y each gets half the
    cotangent (as PyTorch and JAX).  Traced or eager: `minimum(x, y)`; in text:
    `minimum(x[i], y[i])`.

    >>> minimum(np.array([1.0, 5.0]), np.array([3.0, 2.0]))
    array([1., 2.])
    """,
    "where": """a where c is nonzero (true), else b, elementwise.  Its cotangent goes to
    the chosen operand and is 0 (even if inf) for the other.  Traced or eager:
    `where(c, a, b)`; in text: `where(x[i] > 0, x[i], 0)`.

    >>> where(np.array([1.0, 0.0]), np.array([1.0, 2.0]), 9.0)
    array([1., 9.])
    """,
    "pow": """x^p, elementwise, p a number or a tensor; `x ** p` when traced, `x[i]^p`
    or `x[i]^z[i]` in text.  An integer tensor to a negative integer number gives
    floats (as x^-1 = 1/x).  At x = 0: d/dx is 0 where p == 0, and d/dp is 0 where
    p >= 0 (as PyTorch).

    >>> pow(np.array([0.0, 2.0]), 3)
    array([0., 8.])
    """,
    "square": """x^2, elementwise.  Traced or eager: `square(x)`; in text: `x[i]^2`.

    >>> square(np.array([-3.0]))
    array([9.])
    """,
    "reciprocal": """1/x, elementwise (inf at 0).  Traced or eager: `reciprocal(x)`;
    in text: `1 / x[i]`.

    >>> reciprocal(np.array([2.0, 4.0]))
    array([0.5 , 0.25])
    """,
    "sign": """-1, 0 or 1, elementwise; its derivative is 0.  Traced or eager:
    `sign(x)`; in text: `sign(x[i])`.

    >>> sign(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    """,
    "step": """1 where x > 0, else 0 (the derivative of relu); its derivative is 0.
    Traced or eager: `step(x)`; in text: `step(x[i])`.

    >>> step(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    """,
    "sum": """The sum over axes: `sum(x, axis=None, keepdims=False)` traced or eager;
    in text a label missing on the left is summed (`y[b] = x[b,j]`), or
    `sum(x[b,j], j)`.

    >>> sum(np.ones((2, 3)), axis=1)
    array([3., 3.])
    """,
    "mean": """The mean over axes: `mean(x, axis=None, keepdims=False)` traced or
    eager; in text `mean(x[b,j], j)` (or `x[b,j] / J`).  Over a size-0 axis it
    is nan, as NumPy's.

    >>> mean(np.array([[1.0, 2.0, 6.0]]), axis=-1)
    array([3.])
    """,
    "max": """The maximum over axes: `max(x, axis=None, keepdims=False)` traced or
    eager; in text `max(x[b,j], j)`.  Tied maxima share the cotangent evenly (as
    PyTorch's amax and JAX); over a size-0 axis it is an error.

    >>> max(np.array([[1.0, 3.0, 3.0]]), axis=1)
    array([3.])
    """,
    "min": """The minimum over axes: `min(x, axis=None, keepdims=False)` traced or
    eager; in text `min(x[b,j], j)`.  Tied minima share the cotangent evenly;
    over a size-0 axis it is an error.

    >>> min(np.array([[1.0, 3.0, 1.0]]), axis=1)
    array([1.])
    """,
    "logsumexp": """log Σ exp(x) over axes, without overflow:
    `logsumexp(x, axis=None, keepdims=False, b=None)` (b: weights, as SciPy's)
    traced or eager; in text `logsumexp(x[b,j], j)`.  -inf over a size-0 axis.

    >>> logsumexp(np.array([[1000.0, 1000.0]]), axis=-1)
    array([1000.69314718])
    """,
    "softmax": """exp(x) / Σ exp(x) along axes, without overflow: `softmax(x, axis=-1)`
    traced or eager; in text `softmax(x[b,j], j)` (default: the last label).

    >>> softmax(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """,
    "log_softmax": """x - logsumexp(x) along axes: `log_softmax(x, axis=-1)` traced or
    eager; in text `log_softmax(x[b,j], j)` (default: the last label).

    >>> log_softmax(np.array([0.0, 0.0]))
    array([-0.69314718, -0.69314718])
    """,
    "inv": """The matrix inverse over the last two axes (batched): `inv(a)` traced or
    eager; in text `inv(a[i,j])`, or `inv(a[b,i,j], i, j)` to name the pair.

    >>> inv(np.array([[2.0, 0.0], [0.0, 4.0]]))
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """,
    "solve": """x with a x = b (a's last two axes, b a vector or matrix, batched):
    `solve(a, b)` traced or eager; in text `solve(a[i,j], b[i])` (b carries a's
    row label; the result carries its column label).

    >>> solve(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([2.0, 2.0]))
    array([1. , 0.5])
    """,
    "det": """The determinant over the last two axes: `det(a)` traced or eager; in
    text `det(a[i,j])` or `det(a[b,i,j], i, j)`.

    >>> round(float(det(np.array([[2.0, 1.0], [1.0, 3.0]]))), 6)
    5.0
    """,
    "logdet": """log |det a| over the last two axes: `logdet(a)` traced or eager; in
    text `logdet(a[i,j])` or `logdet(a[b,i,j], i, j)`.

    >>> round(float(logdet(np.array([[2.0, 0.0], [0.0, 4.0]]))), 6)
    2.079442
    """,
}
for _name, _op, _out in [
        ("add", "x + y", "[3., 4.]"), ("sub", "x - y", "[-1.,  0.]"),
        ("mul", "x * y", "[2., 4.]"), ("div", "x / y (inf, -inf or nan where y == 0)", "[0.5, 1. ]")]:
    DOCS[_name] = f"""{_op}, elementwise (NumPy broadcasting; aligned by label in text).
    Traced or eager: `{_name}(x, y)`, the same as the operator.

    >>> {_name}(np.array([1.0, 2.0]), 2.0)
    array({_out})
    """
DOCS["neg"] = """-x, elementwise.  Traced or eager: `neg(x)`, the same as `-x`.

    >>> neg(np.array([1.0, -2.0]))
    array([-1.,  2.])
    """
for _name, _op, _out in [("gt", ">", "[0., 0.]"), ("ge", ">=", "[0., 1.]"),
                         ("lt", "<", "[1., 0.]"), ("le", "<=", "[1., 1.]"),
                         ("eq", "==", "[0., 1.]"), ("ne", "!=", "[1., 0.]")]:
    DOCS[_name] = f"""1.0 where x {_op} y, else 0.0, elementwise; its derivative is 0.
    Traced: `x {_op} y`; in text `x[i] {_op} y[i]` (e.g. inside `where`).

    >>> {_name}(np.array([1.0, 2.0]), 2.0)
    array({_out})
    """
