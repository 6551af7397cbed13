"""Traced Python functions: the same IR as the text, NumPy semantics."""

import numpy as np
import pytest

import einvjp
from einvjp.errors import ProgramError

from test_program import check_vjp

rng0 = np.random.default_rng(0)
A = rng0.normal(size=(3, 4))
B = rng0.normal(size=(4,))
C = rng0.normal(size=(3, 1))
S = rng0.normal(size=(3, 3)) @ rng0.normal(size=(3, 3)).T / 3 + np.eye(3)
K = np.arange(4.0)

# (function, numpy reference, inputs)
CASES = [
    (lambda a, b: a * b + b, lambda a, b: a * b + b, (A, B)),
    (lambda a, c: (a - c) / (1 + c ** 2), lambda a, c: (a - c) / (1 + c ** 2), (A, C)),
    (lambda a: a.T.sum(0), lambda a: a.T.sum(0), (A,)),
    (lambda a: a.mean(axis=1, keepdims=True) * a, lambda a: a.mean(1, keepdims=True) * a, (A,)),
    (lambda a: a.sum(), lambda a: a.sum(), (A,)),
    (lambda a, b: a @ b, lambda a, b: a @ b, (A, B)),
    (lambda a, b: einvjp.einsum("ij,j->i", a, b), lambda a, b: a @ b, (A, B)),
    (lambda a: einvjp.einsum("ii->i", a), lambda a: np.diag(a).copy(), (S,)),
    (lambda a: einvjp.einsum("i->ii", a), lambda a: np.diag(a), (B,)),
    (lambda a: einvjp.exp(a) * K, lambda a: np.exp(a) * K, (A,)),
    (lambda a: einvjp.logsumexp(a, axis=1), lambda a: np.log(np.exp(a).sum(1)), (A,)),
    (lambda a: einvjp.softmax(a, axis=0), lambda a: np.exp(a) / np.exp(a).sum(0), (A,)),
    (lambda a: einvjp.log_softmax(a), lambda a: a - np.log(np.exp(a).sum(-1, keepdims=True)),
     (A,)),
    (lambda a: einvjp.max(a, axis=0) + a.min(axis=1).sum(), lambda a: a.max(0) + a.min(1).sum(),
     (A,)),
    (lambda s: einvjp.inv(s), np.linalg.inv, (S,)),
    (lambda s, b: einvjp.solve(s, b[:3] if False else b), lambda s, b: np.linalg.solve(s, b),
     (S, B[:3])),
    (lambda s: einvjp.det(s) + einvjp.logdet(s), lambda s: np.linalg.det(s)
     + np.linalg.slogdet(s)[1], (S,)),
    (lambda a: einvjp.where(a > 0, a, 0.1 * a), lambda a: np.where(a > 0, a, 0.1 * a), (A,)),
    (lambda a, b: einvjp.maximum(a, b) - einvjp.relu(-a), lambda a, b: np.maximum(a, b)
     - np.maximum(-a, 0), (A, B)),
    (lambda a: -a ** 2 / 2 + abs(a), lambda a: -a ** 2 / 2 + np.abs(a), (A,)),
]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_traced_matches_numpy_and_finite_differences(k):
    fn, ref, args = CASES[k]
    prog = einvjp.compile(fn)
    names = prog.input_names
    inputs = dict(zip(names, args))
    np.testing.assert_allclose(prog(*args), ref(*args), rtol=1e-12, atol=1e-12)
    check_vjp(prog, inputs, np.random.default_rng(k))


def test_traced_two_layer_network_against_torch():
    torch = pytest.importorskip("torch")

    @einvjp.compile
    def loss(x, w1, b1, w2, b2, t):
        u = einvjp.einsum("ij,j->i", w1, x) + b1
        y = einvjp.einsum("ki,i->k", w2, einvjp.tanh(u)) + b2
        return ((y - t) ** 2).sum()

    rng = np.random.default_rng(5)
    args = [rng.normal(size=s) for s in [(3,), (4, 3), (4,), (2, 4), (2,), (2,)]]
    grads = loss.vjp(1.0, *args)
    ts = [torch.tensor(a, requires_grad=True) for a in args]
    x, w1, b1, w2, b2, t = ts
    y = w2 @ torch.tanh(w1 @ x + b1) + b2
    ((y - t) ** 2).sum().backward()
    for name, tt in zip(loss.input_names, ts):
        np.testing.assert_allclose(grads[name], tt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_traced_once_per_signature():
    calls = []

    @einvjp.compile
    def f(x):
        calls.append(x.shape)
        return einvjp.exp(x).sum(0)

    f(np.ones((2, 3)))
    f(np.zeros((2, 3)))
    f(np.ones((4, 3)))
    assert calls == [(2, 3), (4, 3)]


def test_constants_closed_over_are_not_differentiated():
    w = np.array([1.0, 2.0, 3.0])
    prog = einvjp.compile(lambda x: (x * w).sum())
    np.testing.assert_allclose(prog(np.ones(3)), 6.0)
    g = prog.vjp(1.0, np.ones(3))
    assert list(g) == ["x"]
    np.testing.assert_allclose(g["x"], w)


def test_constants_named_apart_from_arguments():
    """A closed-over array is an input of its own even when an argument has
    the name it would get (c0): neither replaces the other."""
    w, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, -1.0])
    prog = einvjp.compile(lambda c0, c0_, x: x * w + c0 + c0_ * v)
    args = np.full(3, 10.0), np.full(3, 100.0), np.ones(3)
    np.testing.assert_allclose(prog(*args), w + 10 + 100 * v)
    g = prog.vjp(np.ones(3), *args)
    assert sorted(g) == ["c0", "c0_", "x"]
    np.testing.assert_allclose(g["c0_"], v)
    np.testing.assert_allclose(g["x"], w)


def test_scalar_inputs():
    prog = einvjp.compile(lambda x, eps: einvjp.sqrt(x * x + eps))
    np.testing.assert_allclose(prog(np.array([3.0]), 16.0), [5.0])
    assert list(prog.vjp(np.ones(1), np.array([3.0]), 16.0)) == ["x"]


def test_control_flow_on_traced_values_is_an_error():
    prog = einvjp.compile(lambda x: x if x.sum() > 0 else -x)
    with pytest.raises(ProgramError, match="control flow"):
        prog(np.ones(2))


def test_traced_derivative_prints():
    prog = einvjp.compile(lambda x, a: einvjp.einsum("ik,kj->ij", x, a))
    d = prog.derivative("x", np.ones((2, 3)), np.ones((3, 4)))
    assert str(d) == "∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]"  # the einsum's own letters


def test_eager_functions_on_arrays():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(einvjp.tanh(x), np.tanh(x))
    np.testing.assert_allclose(einvjp.inv(x), np.linalg.inv(x))
    np.testing.assert_allclose(einvjp.softmax(x, axis=0), np.exp(x) / np.exp(x).sum(0))
    np.testing.assert_allclose(einvjp.logsumexp(x, axis=1), np.log(np.exp(x).sum(1)))
    np.testing.assert_allclose(einvjp.maximum(x, 2.5), np.maximum(x, 2.5))


def test_eager_and_programs_on_torch_and_jax():
    torch = pytest.importorskip("torch")
    x = np.array([0.5, -1.0, 2.0])
    prog = einvjp.compile("l = log(1[i] exp(x[i])) + x[i] x[i]")
    ref = prog(x=x)
    gref = prog.vjp(1.0, x=x)["x"]
    xt = torch.tensor(x, requires_grad=True)
    out = prog(x=xt)
    out.backward()
    assert float(out.detach()) == pytest.approx(ref)
    np.testing.assert_allclose(xt.grad.numpy(), gref, rtol=1e-12)
    np.testing.assert_allclose(einvjp.exp(torch.tensor(x)).numpy(), np.exp(x))
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    with jax.enable_x64(True):
        g = jax.grad(lambda v: prog(x=v))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(g), gref, rtol=1e-12)
        gj = jax.jit(jax.grad(lambda v: prog(x=v)))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(gj), gref, rtol=1e-12)


def test_traced_graph_prints_in_index_notation():
    @einvjp.compile
    def loss(x, w, t):
        y = einvjp.einsum("ki,i->k", w, einvjp.tanh(x))
        return ((y - t) ** 2).sum()

    g = loss.graph(np.ones(3), np.ones((2, 3)), np.ones(2))
    assert str(g) == "y = (w[k,i] tanh(x[i]) - t[k])^2"
    assert str(loss.derivative("x")) == \
        "∂l/∂x[p] = 2 ∂l/∂y (w[k,i] tanh(x[i]) - t[k]) w[k,p] (1 - tanh(x[p])^2)"


@pytest.mark.parametrize("op", ["==", "!="])
def test_equality_is_elementwise_as_in_numpy(op, jax_x64):
    """`x == 0.0` is a comparison, not Python identity: where() picks per
    element; values and gradients as jax's (float64)."""
    jax, jnp = jax_x64, jax_x64.numpy
    cmp = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b}[op]
    x = np.array([0.0, 2.0, 0.0, -3.0])
    prog = einvjp.compile(lambda x: einvjp.where(cmp(x, 0.0), 1.0, x * x))
    ref = lambda x: jnp.where(cmp(x, 0.0), 1.0, x * x)  # noqa: E731
    np.testing.assert_allclose(prog(x), np.asarray(ref(jnp.asarray(x))), rtol=0, atol=0)
    ct = np.array([1.0, 2.0, 3.0, 4.0])
    _, pull = jax.vjp(ref, jnp.asarray(x))
    np.testing.assert_allclose(prog.vjp(ct, x)["x"], np.asarray(pull(jnp.asarray(ct))[0]),
                               rtol=1e-15)


def test_equality_of_two_traced_values_and_of_an_array():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0])
    k = np.array([2.0, 2.0, 2.0])
    prog = einvjp.compile(lambda x, y: ((x == y) + (k != x) + (k == x) * 10) * x)
    f = lambda b: b.astype(float)  # noqa: E731 - einvjp's comparisons are 1.0 / 0.0
    np.testing.assert_array_equal(prog(x, y), (f(x == y) + f(k != x) + f(k == x) * 10) * x)
    np.testing.assert_array_equal(prog.vjp(np.ones(3), x, y)["y"], np.zeros(3))


def test_tracers_stay_hashable_by_identity():
    seen = []

    def fn(x):
        t = einvjp.exp(x)
        seen.append(({t: 1}[t], hash(t) == hash(t), t == None))  # noqa: E711
        return t
    einvjp.compile(fn)(np.ones(2))
    assert seen == [(1, True, False)]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_returned_closed_over_array_is_a_constant_output(backend, request):
    c = np.array([1.0, 2.0, 3.0])
    x = np.array([0.5, 4.0])
    both = einvjp.compile(lambda x: (x.sum(), c))
    only = einvjp.compile(lambda x: c)
    if backend == "torch":
        torch = pytest.importorskip("torch")
        xs = torch.tensor(x, requires_grad=True)
        s, cc = both(xs)
        s.backward()
        np.testing.assert_array_equal(xs.grad.numpy(), [1.0, 1.0])
        got = [float(s.detach()), cc.detach().numpy(), only(xs).detach().numpy()]
    elif backend == "jax":
        jax = request.getfixturevalue("jax_x64")
        jnp = jax.numpy
        s, cc = both(jnp.asarray(x))
        np.testing.assert_array_equal(jax.grad(lambda v: both(v)[0])(jnp.asarray(x)), [1, 1])
        got = [float(s), np.asarray(cc), np.asarray(only(jnp.asarray(x)))]
    else:
        s, cc = both(x)
        got = [float(s), cc, only(x)]
        g = both.vjp((1.0, np.ones(3)), x)
        assert list(g) == ["x"]
        np.testing.assert_array_equal(g["x"], [1.0, 1.0])
    assert got[0] == 4.5
    np.testing.assert_array_equal(got[1], c)
    np.testing.assert_array_equal(got[2], c)
