"""silu, log_sigmoid and logaddexp: values and gradients (first and second
order) against PyTorch autograd and jax.grad in float64, through
index-notation text, traced code and eager calls, on NumPy, PyTorch and JAX;
hypothesis draws the points, and the extremes are checked for overflow."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einvjp

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy
F = torch.nn.functional

# name -> (text right-hand side, einvjp function, torch function, jax function, arity)
PRIMS = {
    "silu": ("silu(x[i])", einvjp.silu, F.silu, jax.nn.silu, 1),
    "log_sigmoid": ("log_sigmoid(x[i])", einvjp.log_sigmoid, F.logsigmoid, jax.nn.log_sigmoid, 1),
    "logaddexp": ("logaddexp(x[i], z[i])", einvjp.logaddexp, torch.logaddexp, jnp.logaddexp, 2),
}
POINTS = [-30.0, -3.0, -0.5, 0.0, 0.25, 2.0, 30.0]


def _torch_grads(fn, arity, xs, order=1):
    """Gradient of Σ fn (order 1), or of Σ ∂fn/∂x (order 2), per operand."""
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    y = fn(*ts).sum()
    gs = torch.autograd.grad(y, ts, create_graph=order > 1)
    if order > 1:
        gs = torch.autograd.grad(gs[0].sum(), ts, allow_unused=True)
    return [np.zeros_like(x) if g is None else g.detach().numpy() for g, x in zip(gs, xs)]


def _jax_grads(fn, arity, xs, order=1):
    with jax.enable_x64(True):
        args = [jnp.asarray(x, dtype=jnp.float64) for x in xs]
        f = lambda *a: fn(*a).sum()  # noqa: E731
        first = jax.grad(f, argnums=tuple(range(arity)))
        g = first if order == 1 else jax.grad(lambda *a: first(*a)[0].sum(),
                                              argnums=tuple(range(arity)))
        return [np.asarray(v) for v in g(*args)]


def _program(name):
    text, _, _, _, arity = PRIMS[name]
    return einvjp.compile(f"y[i] = {text}")


def _inputs(arity, x, z):
    return {"x": x} if arity == 1 else {"x": x, "z": z}


@pytest.mark.parametrize("name", PRIMS)
def test_value_and_gradient_match_torch_and_jax(name):
    text, fn, tfn, jfn, arity = PRIMS[name]
    x = np.array(POINTS)
    z = np.array(POINTS[::-1]) * 0.7
    xs = [x, z][:arity]
    want = tfn(*[torch.tensor(v) for v in xs]).numpy()
    prog = _program(name)
    np.testing.assert_allclose(prog(**_inputs(arity, x, z)), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fn(*xs), want, rtol=1e-12, atol=1e-14)  # eager
    grads = prog.vjp(np.ones_like(x), **_inputs(arity, x, z))
    for order, ref in [(1, _torch_grads), (1, _jax_grads)]:
        for got, exp in zip([grads["x"], grads.get("z")], ref(tfn if ref is _torch_grads
                                                                 else jfn, arity, xs, order)):
            np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", PRIMS)
def test_second_derivative_matches_torch(name):
    """The Hessian of Σ f (diagonal for an elementwise f) against torch's."""
    text, _, tfn, jfn, arity = PRIMS[name]
    x = np.array(POINTS)
    z = np.array(POINTS[::-1]) * 0.7
    prog = einvjp.compile(f"l = {text}")
    h = prog.hessian("x", **_inputs(arity, x, z))
    want = _torch_grads(lambda a, *r: tfn(a, *r), arity, [x, z][:arity], order=2)[0]
    np.testing.assert_allclose(np.diag(h), want, rtol=1e-9, atol=1e-14)
    want_jax = _jax_grads(jfn, arity, [x, z][:arity], order=2)[0]
    np.testing.assert_allclose(np.diag(h), want_jax, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name", PRIMS)
@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_text_traced_and_eager_on_every_backend(name, library):
    text, fn, tfn, _, arity = PRIMS[name]
    x64 = np.array(POINTS)
    z64 = np.array(POINTS[::-1]) * 0.7
    want = tfn(*[torch.tensor(v) for v in [x64, z64][:arity]]).numpy()
    with jax.enable_x64(True):
        convert = {"numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[library]
        x, z = convert(x64), convert(z64)
        args = [x, z][:arity]
        traced = einvjp.compile((lambda x: fn(x)) if arity == 1 else (lambda x, z: fn(x, z)))
        results = [_program(name)(**_inputs(arity, x, z)), traced(*args), fn(*args)]
        for r in results:
            assert einvjp.backend.library_of(r) == library
            np.testing.assert_allclose(np.asarray(r), want, rtol=1e-12, atol=1e-14)
        g = traced.vjp(convert(np.ones(len(POINTS))), *args)
        want_g = _torch_grads(tfn, arity, [x64, z64][:arity])
        for got, exp in zip([g["x"], g.get("z")], want_g):
            np.testing.assert_allclose(np.asarray(got), exp, rtol=1e-10, atol=1e-14)


def test_library_autodiff_through_programs():
    """torch autograd and jax.grad differentiate a program using them."""
    prog = einvjp.compile("l = silu(x[i]) + log_sigmoid(x[i]) logaddexp(x[i], z[i])")
    x, z = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -1.0, 0.0])

    def ref(ns, x, z):
        if ns is torch:
            return (F.silu(x) + F.logsigmoid(x) * torch.logaddexp(x, z)).sum()
        return (jax.nn.silu(x) + jax.nn.log_sigmoid(x) * jnp.logaddexp(x, z)).sum()
    xt = torch.tensor(x, requires_grad=True)
    zt = torch.tensor(z, requires_grad=True)
    got = torch.autograd.grad(prog(x=xt, z=zt), (xt, zt))
    want = torch.autograd.grad(ref(torch, xt, zt), (xt, zt))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    with jax.enable_x64(True):
        g = jax.grad(lambda x, z: prog(x=x, z=z), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(z))
        w = jax.grad(lambda x, z: ref(jnp, x, z), argnums=(0, 1))(jnp.asarray(x), jnp.asarray(z))
        for a, b in zip(g, w):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


EXTREMES = [-1000.0, -800.0, -40.0, 0.0, 40.0, 800.0, 1000.0]


@pytest.mark.parametrize("name", ["silu", "log_sigmoid"])
def test_extremes_match_torch_functional(name):
    _, fn, tfn, _, _ = PRIMS[name]
    x = np.array(EXTREMES)
    prog = _program(name)
    y = prog(x=x)
    g = prog.vjp(np.ones_like(x), x=x)["x"]
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(y, tfn(torch.tensor(x)).numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(g, _torch_grads(tfn, 1, [x])[0], rtol=1e-12, atol=1e-300)
    assert einvjp.log_sigmoid(np.array(-800.0)) == -800.0
    for library in (torch.tensor, jnp.asarray):
        np.testing.assert_allclose(np.asarray(prog(x=library(x))), y, rtol=1e-6)


def test_logaddexp_is_stable():
    prog = _program("logaddexp")
    x, z = np.array([1000.0, -1000.0, 1000.0, -math.inf]), np.array([1000.0, -1000.0, 0.0, 2.0])
    y = prog(x=x, z=z)
    np.testing.assert_allclose(y, [1000 + math.log(2), -1000 + math.log(2), 1000.0, 2.0])
    g = prog.vjp(np.ones(4), x=x, z=z)
    np.testing.assert_allclose(g["x"], [0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(g["z"], [0.5, 0.5, 0.0, 1.0])
    assert np.isfinite(einvjp.logaddexp(np.array(1000.0), np.array(1000.0)))
    # both the same infinity: nan, as PyTorch (JAX gives 1 each at +inf)
    g = prog.vjp(np.ones(1), x=np.array([math.inf]), z=np.array([math.inf]))
    assert np.isnan(g["x"]).all()


def test_logaddexp_aligns_by_label_and_broadcasts():
    prog = einvjp.compile("y[i,j] = logaddexp(x[i], z[j])")
    x, z = np.array([0.0, 1.0]), np.array([-1.0, 2.0, 3.0])
    np.testing.assert_allclose(prog(x=x, z=z), np.logaddexp(x[:, None], z[None, :]))
    g = prog.vjp(np.ones((2, 3)), x=x, z=z)
    s = 1 / (1 + np.exp(-(x[:, None] - z[None, :])))
    np.testing.assert_allclose(g["x"], s.sum(1))
    np.testing.assert_allclose(g["z"], (1 - s).sum(0))
    traced = einvjp.compile(lambda x, z: einvjp.logaddexp(x, z))  # NumPy broadcasting
    np.testing.assert_allclose(traced(x[:, None], z), np.logaddexp(x[:, None], z[None, :]))
    np.testing.assert_allclose(traced.vjp(np.ones((2, 3)), x[:, None], z)["z"], (1 - s).sum(0))


def test_derivatives_print_in_index_notation():
    prog = einvjp.compile("y[i] = logaddexp(x[i], z[i]) + log_sigmoid(x[i])")
    text = str(prog.derivative("x"))
    assert "sigmoid(x[p] - z[p])" in text and "sigmoid(-x[p])" in text


finite = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(PRIMS)), st.lists(st.tuples(finite, finite), min_size=1,
                                                max_size=6))
def test_hypothesis_gradients_match_torch_and_jax(name, pairs):
    _, _, tfn, jfn, arity = PRIMS[name]
    x = np.array([p[0] for p in pairs])
    z = np.array([p[1] for p in pairs])
    u = np.linspace(-1.0, 2.0, len(pairs))
    prog = _program(name)
    xs = [x, z][:arity]
    g = prog.vjp(u, **_inputs(arity, x, z))
    ts = [torch.tensor(v, requires_grad=True) for v in xs]
    want = torch.autograd.grad((tfn(*ts) * torch.tensor(u)).sum(), ts)
    for key, w in zip("xz", want):
        np.testing.assert_allclose(g[key], w.numpy(), rtol=1e-9, atol=1e-12)
    with jax.enable_x64(True):
        _, pull = jax.vjp(jfn, *[jnp.asarray(v) for v in xs])
        for key, w in zip("xz", pull(jnp.asarray(u))):
            np.testing.assert_allclose(g[key], np.asarray(w), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(PRIMS)), st.lists(finite, min_size=2, max_size=5))
def test_hypothesis_vjp_matches_central_differences(name, xs):
    """⟨v, VJP(u)⟩ against a central difference of ⟨u, f⟩ along v, in float64."""
    _, _, _, _, arity = PRIMS[name]
    x = np.array(xs)
    z = x[::-1] * 0.5 + 0.25
    prog = _program(name)
    rng = np.random.default_rng(len(xs))
    u, v = rng.normal(size=x.shape), rng.normal(size=x.shape)
    g = prog.vjp(u, **_inputs(arity, x, z))["x"]
    eps = 1e-6
    fd = (u @ (prog(**_inputs(arity, x + eps * v, z)) - prog(**_inputs(arity, x - eps * v, z)))
          / (2 * eps))
    assert abs(v @ g - fd) <= 1e-6 * (1 + abs(fd))
