"""Primitives at their kinks and boundaries, checked against PyTorch autograd
and jax.grad in float64: the forward value, the gradient and the second
derivative, for index-notation text and for traced code.  Where the two
libraries disagree, einvjp follows PyTorch (the table in einvjp.prims says
where); those points are listed in JAX_DIFFERS and checked to still differ, so
the list cannot go stale."""

import numpy as np
import pytest

import einvjp

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy

T, J = torch, jnp  # namespaces handed to each case's function


def _relu(ns):
    return {T: torch.relu, J: jax.nn.relu}.get(ns, einvjp.relu)


def _sp(ns):
    return torch.nn.functional.softplus if ns is T else jax.nn.softplus


def _sig(ns):
    return torch.sigmoid if ns is T else jax.nn.sigmoid


def _gelu(ns):
    return torch.nn.functional.gelu if ns is T else (lambda v: jax.nn.gelu(v, approximate=False))


# (id, text right-hand side, function of (namespace, x[, z]), x values, z values or None)
CASES = []
for p in (0, 0.5, 1, 2, 3, -1):
    CASES.append((f"x^{p}", f"x[i]^{p}", lambda ns, x, p=p: x ** float(p),
                  [0.0, 2.0], None))
    CASES.append((f"x^z,z={p}", "x[i]^z[i]", lambda ns, x, z: x ** z, [0.0, 0.0, 2.0],
                  [float(p)] * 3))
CASES += [
    ("relu(x)^z", "relu(x[i])^z[i]", lambda ns, x, z: _relu(ns)(x) ** z,
     [-1.0, -1.0, 0.0, 0.0, 2.0], [0.5, 2.0, 0.5, 2.0, 0.5]),
    ("relu(x)^0.5", "relu(x[i])^0.5", lambda ns, x: _relu(ns)(x) ** 0.5, [-1.0, 0.0, 4.0], None),
    ("sqrt", "sqrt(x[i])", lambda ns, x: ns.sqrt(x), [0.0, 4.0], None),
    ("abs", "abs(x[i])", lambda ns, x: ns.abs(x), [0.0, -2.0], None),
    ("relu", "relu(x[i])", lambda ns, x: _relu(ns)(x), [0.0, -2.0, 2.0], None),
    ("log", "log(x[i])", lambda ns, x: ns.log(x), [0.0, 2.0], None),
    ("maximum", "maximum(x[i], z[i])", lambda ns, x, z: ns.maximum(x, z),
     [1.0, 1.0, 2.0], [1.0, 3.0, 1.0]),
    ("minimum", "minimum(x[i], z[i])", lambda ns, x, z: ns.minimum(x, z),
     [1.0, 1.0, 2.0], [1.0, 3.0, 1.0]),
    ("sqrt(where)", "sqrt(where(x[i] > 0, x[i], 0))",
     lambda ns, x: ns.sqrt(ns.where(x > 0, x, ns.zeros_like(x))), [-1.0, 0.0, 4.0], None),
    ("softplus", "softplus(x[i])", lambda ns, x: _sp(ns)(x), [1000.0, -1000.0, 0.0], None),
    ("sigmoid", "sigmoid(x[i])", lambda ns, x: _sig(ns)(x), [1000.0, -1000.0, 0.0], None),
    ("tanh", "tanh(x[i])", lambda ns, x: ns.tanh(x), [1000.0, -1000.0, 0.0], None),
    ("gelu", "gelu(x[i])", lambda ns, x: _gelu(ns)(x), [1000.0, -1000.0, 0.0, 1.0, -3.0], None),
]
TRACED = {"maximum": einvjp.maximum, "minimum": einvjp.minimum, "relu": einvjp.relu,
          "abs": einvjp.abs, "sqrt": einvjp.sqrt, "log": einvjp.log, "softplus": einvjp.softplus,
          "sigmoid": einvjp.sigmoid, "tanh": einvjp.tanh, "gelu": einvjp.gelu}

# (case id, quantity, index): where jax.grad gives another value than PyTorch.
JAX_DIFFERS = {
    ("x^0", "dx", 0), ("x^0", "d2x", 0), ("x^1", "d2x", 0),
    ("x^z,z=0", "dx", 0), ("x^z,z=0", "dx", 1), ("x^z,z=1", "d2x", 0), ("x^z,z=1", "d2x", 1),
    ("x^z,z=-1", "dz", 0), ("x^z,z=-1", "dz", 1),
    ("abs", "dx", 0),
}


def _torch(f, x, z):
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True)
          for v in ([x] if z is None else [x, z])]
    y = f(T, *xs)
    grads = torch.autograd.grad(y.sum(), xs, create_graph=True)
    d2 = torch.autograd.grad(grads[0].sum(), xs[0], allow_unused=True)[0] \
        if grads[0].requires_grad else None
    d2 = np.zeros(len(x)) if d2 is None else d2.detach().numpy(force=True)
    return [y.detach().numpy()] + [g.detach().numpy(force=True) for g in grads] + [d2]


def _jax(f, x, z):
    args = [jnp.asarray(v, dtype=jnp.float64) for v in ([x] if z is None else [x, z])]

    def s(*a):
        return f(J, *a).sum()
    grads = jax.grad(s, argnums=tuple(range(len(args))))(*args)
    d2 = jax.grad(lambda *a: jax.grad(s)(*a).sum())(*args)
    return [np.asarray(f(J, *args))] + [np.asarray(g) for g in grads] + [np.asarray(d2)]


def _einvjp(prog, total, x, z):
    inputs = {"x": np.array(x)} if z is None else {"x": np.array(x), "z": np.array(z)}
    y = prog(**inputs)
    g = prog.vjp(np.ones_like(y), **inputs)
    d2 = np.diagonal(total.hessian("x", **inputs))
    return [y, g["x"]] + ([] if z is None else [g["z"]]) + [d2]


def _programs(cid, rhs, f, z):
    text = (einvjp.compile(f"y[i] = {rhs}"), einvjp.compile(f"s = {rhs}"))
    fn = TRACED.get(cid)
    if cid == "sqrt(where)":
        def g(x):
            return einvjp.sqrt(einvjp.where(x > 0, x, 0.0))
    elif fn is not None and z is None:
        def g(x):
            return fn(x)
    elif fn is not None:
        def g(x, z):
            return fn(x, z)
    elif z is None:
        def g(x):
            return f(np, x)  # x ** p with a tracer
    else:
        def g(x, z):
            return f(np, x, z)
    if z is None:
        def total(x):
            return g(x).sum()
    else:
        def total(x, z):
            return g(x, z).sum()
    traced = (einvjp.compile(g), einvjp.compile(total))
    return {"text": text, "traced": traced}


NAMES = ("y", "dx", "dz", "d2x")


def _named(values, z):
    names = NAMES if z is not None else ("y", "dx", "d2x")
    return dict(zip(names, values))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_boundary_matches_torch_and_jax(case, jax_x64):
    cid, rhs, f, x, z = case
    want = _named(_torch(f, x, z), z)
    other = _named(_jax(f, x, z), z)
    for q, w in want.items():
        for k in range(len(x)):
            if (cid, q, k) in JAX_DIFFERS:
                assert not np.allclose(other[q][k], w[k], equal_nan=True), (cid, q, k)
            else:
                np.testing.assert_allclose(other[q][k], w[k], rtol=1e-12, atol=0,
                                           err_msg=f"jax {cid} {q}[{k}]")
    for how, (prog, total) in _programs(cid, rhs, f, z).items():
        with np.errstate(all="ignore"):
            got = _named(_einvjp(prog, total, x, z), z)
        for q, w in want.items():
            np.testing.assert_allclose(got[q], w, rtol=1e-12, atol=1e-300,
                                       err_msg=f"{how} {cid} {q}")


def test_reduction_ties_split_evenly():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    for name, text, fn in [("max", "y[b] = max(x[b,j], j)", einvjp.max),
                           ("min", "y[b] = min(x[b,j], j)", einvjp.min)]:
        t = torch.tensor(x, requires_grad=True)
        want = torch.autograd.grad(getattr(torch, "a" + name)(t, dim=1).sum(), t)[0].numpy()
        jwant = np.asarray(jax.grad(lambda v: getattr(jnp, name)(v, axis=1).sum())(x))
        np.testing.assert_allclose(jwant, want)
        for prog in (einvjp.compile(text), einvjp.compile(lambda v: fn(v, axis=1))):
            (g,) = prog.vjp(np.ones(2), x).values()
            np.testing.assert_allclose(g, want)


# --- Numbers and empty axes: what NumPy float64 and jax give ------------------


def test_division_by_zero_is_inf_or_nan():
    x = np.array([0.0, 1.0, -2.0])
    with np.errstate(all="ignore"):
        want = x / 0.0
        for prog in (einvjp.compile("y[i] = x[i] / 0"), einvjp.compile(lambda x: x / 0)):
            np.testing.assert_array_equal(prog(x), want)
            np.testing.assert_array_equal(prog.vjp(np.ones(3), x)["x"], np.full(3, np.inf))


def test_mean_over_an_empty_axis_is_nan(jax_x64):
    x = np.zeros((2, 0))
    want = np.asarray(jnp.mean(x, axis=1))
    for prog in (einvjp.compile("y[b] = mean(x[b,j], j)"),
                 einvjp.compile(lambda x: einvjp.mean(x, axis=1))):
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(prog(x), want)
            (g,) = prog.vjp(np.ones(2), x).values()
        assert g.shape == (2, 0)


def test_logsumexp_and_softmax_over_an_empty_axis_follow_jax(jax_x64):
    x = np.zeros((2, 0))
    cases = [("y[b] = logsumexp(x[b,j], j)", lambda v: einvjp.logsumexp(v, axis=1),
              jax.nn.logsumexp),
             ("y[b,j] = softmax(x[b,j], j)", lambda v: einvjp.softmax(v, axis=1), jax.nn.softmax),
             ("y[b,j] = log_softmax(x[b,j], j)", lambda v: einvjp.log_softmax(v, axis=1),
              jax.nn.log_softmax)]
    for text, traced, jf in cases:
        want = np.asarray(jf(x, axis=1))
        for prog in (einvjp.compile(text), einvjp.compile(traced)):
            with np.errstate(all="ignore"):
                got = prog(x)
                (g,) = prog.vjp(np.ones_like(got), x).values()
            np.testing.assert_array_equal(got, want)
            assert g.shape == (2, 0)
    t = torch.zeros((2, 0), dtype=torch.float64)
    prog = einvjp.compile(lambda v: einvjp.logsumexp(v, axis=1))
    np.testing.assert_array_equal(prog(t).numpy(), [-np.inf, -np.inf])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_over_an_empty_axis_names_the_label(name):
    with pytest.raises(einvjp.ProgramError, match=f"{name} over label 'j' of size 0"):
        einvjp.compile(f"y[b] = {name}(x[b,j], j)")(x=np.zeros((2, 0)))
    with pytest.raises(einvjp.ProgramError, match="of size 0"):
        getattr(einvjp, name)(np.zeros((2, 0)), axis=1)


def test_a_number_too_large_for_a_float_is_inf():
    x = np.array([1.0, -2.0])
    with np.errstate(all="ignore"):
        want = x * np.float64(10.0) ** 400
    np.testing.assert_array_equal(einvjp.compile("y[i] = x[i] * 10^400")(x), want)
    np.testing.assert_array_equal(einvjp.compile("y[i] = x[i] * 1e400")(x), want)
    np.testing.assert_array_equal(einvjp.compile("y[i] = x[i] * 2^-2")(x), x * 0.25)


@pytest.mark.parametrize("number", ["1.2.3", "1.2e3.4", "1.5."])
def test_a_malformed_number_points_at_itself(number):
    with pytest.raises(einvjp.ProgramError, match="malformed number") as err:
        einvjp.compile(f"y[i] = x[i] * {number} + 1")
    assert err.value.position == len("y[i] = x[i] * ")


def test_a_negative_base_to_a_fractional_power_is_nan_not_complex():
    x = np.array([1.0, 2.0])
    with np.errstate(all="ignore"):
        want = x * np.float64(-1.0) ** 0.5
        for prog in (einvjp.compile("y[i] = x[i] * (-1)^0.5"),
                     einvjp.compile(lambda x: x * einvjp.pow(-1.0, 0.5))):
            got = prog(x)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, want)


def test_integer_tensor_to_a_negative_power_gives_floats_like_its_reciprocal():
    x = np.array([1, 2, 4])

    def power(p):
        return lambda x: x ** p
    for p in (-1, -2, -3):
        want = 1.0 / x.astype(float) ** -p
        for prog in (einvjp.compile(f"y[i] = x[i]^{p}"), einvjp.compile(power(p))):
            got = prog(x)
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-15)
        got = einvjp.compile(power(p))(torch.tensor(x))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_integer_tensor_to_a_negative_tensor_power_is_a_typed_error():
    with pytest.raises(einvjp.ProgramError, match="negative integer power"):
        einvjp.compile("y[i] = x[i]^z[i]")(x=np.array([2, 3]), z=np.array([1, -2]))


def test_sigmoid_keeps_its_relative_accuracy_far_below_zero():
    """sigmoid(-41) is 1.6e-18, not 0: as 0.5 (1 + tanh(x/2)) it was 0, and
    sqrt(sigmoid(x))'s gradient at x = -41 became 0 · inf = NaN."""
    torch = pytest.importorskip("torch")
    x = np.concatenate([np.linspace(-700, 700, 2801), [-41.0, -1000.0, 1000.0, 0.0]])
    want = torch.sigmoid(torch.tensor(x, dtype=torch.float64)).numpy()
    for got in (einvjp.sigmoid(x), einvjp.compile("y[i] = sigmoid(x[i])")(x=x)):
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    prog = einvjp.compile("y = sqrt(sigmoid(x[i]))")
    g = prog.vjp(1.0, x=np.array([-41.0, -60.0]))["x"]
    tx = torch.tensor([-41.0, -60.0], dtype=torch.float64, requires_grad=True)
    torch.sqrt(torch.sigmoid(tx)).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12)
