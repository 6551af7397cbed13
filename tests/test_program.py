"""Index-notation programs: evaluation, VJP programs, printing, errors.

Each corpus row is (program text, input domains); every row is checked
against float64 central differences (⟨u, VJP(v)⟩ = d/dε ⟨u, f(x + εv)⟩) and,
where PyTorch has the same function, against torch autograd.
"""

import math

import numpy as np
import pytest

import einvjp
from einvjp.errors import ProgramError

# name -> (shape, domain); domains: "real", "pos" (> 0), "unit" (-0.9..0.9), "spd"
CORPUS = [
    ("y[i] = exp(x[i])", {"x": ((5,), "real")}),
    ("y[i] = log(x[i])", {"x": ((5,), "pos")}),
    ("y[i] = log1p(x[i])", {"x": ((5,), "pos")}),
    ("y[i] = expm1(x[i])", {"x": ((5,), "real")}),
    ("y[i] = sqrt(x[i])", {"x": ((5,), "pos")}),
    ("y[i] = sin(x[i]) + cos(x[i])", {"x": ((5,), "real")}),
    ("y[i] = tanh(x[i])", {"x": ((5,), "real")}),
    ("y[i] = sigmoid(x[i])", {"x": ((5,), "real")}),
    ("y[i] = softplus(x[i])", {"x": ((5,), "real")}),
    ("y[i] = relu(x[i])", {"x": ((5,), "real")}),
    ("y[i] = abs(x[i])", {"x": ((5,), "real")}),
    ("y[i] = erf(x[i])", {"x": ((5,), "real")}),
    ("y[i] = gelu(x[i])", {"x": ((5,), "real")}),
    ("y[i] = -x[i] / (1 + x[i]^2)", {"x": ((5,), "real")}),
    ("y[i] = x[i]^3 - 2 x[i]^0.5", {"x": ((5,), "pos")}),
    ("y[i] = x[i]^z[i]", {"x": ((5,), "pos"), "z": ((5,), "real")}),
    ("y[i] = pow(x[i], 2) * a", {"x": ((5,), "real"), "a": ((), "real")}),
    ("y[i,j] = maximum(x[i], z[j]) + minimum(x[i], z[j])", {"x": ((3,), "real"),
                                                           "z": ((4,), "real")}),
    ("y[i] = where(x[i] > 0, x[i]^2, sin(x[i]))", {"x": ((6,), "real")}),
    ("y[b] = logsumexp(x[b,j], j)", {"x": ((3, 4), "real")}),
    ("y[b,j] = softmax(x[b,j], j)", {"x": ((3, 4), "real")}),
    ("y[b,j] = log_softmax(x[b,j])", {"x": ((3, 4), "real")}),
    ("y[b] = max(x[b,j], j) - min(x[b,j], j)", {"x": ((3, 4), "real")}),
    ("y[b] = mean(x[b,j], j) + sum(x[b,j], j)", {"x": ((3, 4), "real")}),
    ("y[i,j] = inv(x[i,j])", {"x": ((3, 3), "spd")}),
    ("y[j] = solve(a[i,j], b[i])", {"a": ((3, 3), "spd"), "b": ((3,), "real")}),
    ("y[j,k] = solve(a[i,j], b[i,k])", {"a": ((3, 3), "spd"), "b": ((3, 2), "real")}),
    ("y = det(x[i,j])", {"x": ((3, 3), "spd")}),
    ("y = logdet(x[i,j])", {"x": ((3, 3), "spd")}),
    ("y[b] = logdet(x[b,i,j])", {"x": ((2, 3, 3), "spd")}),
    ("y = x[i,i]", {"x": ((3, 3), "real")}),
    ("y[i,j] = delta[i,j] x[i]", {"x": ((3,), "real")}),
    ("y[i] = delta[i,j] a[j,k] x[k]", {"a": ((3, 4), "real"), "x": ((4,), "real")}),
    ("y[i,j] = 1[i] x[j] + x[i] 1[j]", {"x": ((3,), "real")}),
    ("y = 1[i] 1[i] + x[i] x[i]", {"x": ((3,), "real")}),
    ("n = sqrt(x[i] x[i])", {"x": ((4,), "real")}),
    ("y[i] = exp(x[i]) / (1[j] exp(x[j]))", {"x": ((4,), "real")}),
    ("y[i,k] = tanh(x[i,j] w[j,k] + b[k])", {"x": ((2, 3), "real"), "w": ((3, 4), "real"),
                                              "b": ((4,), "real")}),
    ("""
     u[i] = w1[i,j] x[j] + b1[i]
     y[k] = w2[k,i] u[i] + b2[k]
     l = (y[k] - t[k])^2
     """, {"w1": ((4, 3), "real"), "x": ((3,), "real"), "b1": ((4,), "real"),
           "w2": ((2, 4), "real"), "b2": ((2,), "real"), "t": ((2,), "real")}),
    ("""
     m[b]    = x[b,h] / H
     mu[b,h] = x[b,h] - m[b]
     v[b]    = mu[b,h]^2 / H
     s[b]    = sqrt(v[b] + eps)
     y[b,h]  = mu[b,h] / s[b] * gamma[h] + beta[h]
     """, {"x": ((3, 5), "real"), "eps": (None, 1e-5), "gamma": ((5,), "real"),
           "beta": ((5,), "real")}),
    ("""
     a[i] = x[i] * 2
     b[i] = a[i] + x[i]
     return a, b
     """, {"x": ((3,), "real")}),
]


def make(spec, rng):
    out = {}
    for name, (shape, domain) in spec.items():
        if shape is None:
            out[name] = domain
            continue
        x = rng.normal(size=shape)
        if domain == "pos":
            x = np.abs(x) + 0.5
        elif domain == "unit":
            x = np.tanh(x) * 0.9
        elif domain == "spd":
            n = shape[-1]
            x = x @ np.swapaxes(x, -1, -2) / n + np.eye(n) if len(shape) <= 3 else x
        out[name] = x if shape else float(x)
    return out


def check_vjp(prog, inputs, rng, eps=1e-6, tol=1e-6):
    out = prog(**inputs)
    outs = out if isinstance(out, tuple) else (out,)
    us = tuple(rng.normal(size=np.shape(o)) for o in outs)
    grads = prog.vjp(us if len(us) > 1 else us[0], **inputs)
    for name, g in grads.items():
        x = np.asarray(inputs[name])
        v = rng.normal(size=x.shape)

        def f(t):
            r = prog(**dict(inputs, **{name: x + t * v}))
            rs = r if isinstance(r, tuple) else (r,)
            return sum(float(np.sum(u * np.asarray(ri))) for u, ri in zip(us, rs))
        fd = (f(eps) - f(-eps)) / (2 * eps)
        an = float(np.sum(v * g))
        assert abs(fd - an) <= tol * max(1.0, abs(fd)), (name, fd, an)
    return grads


@pytest.mark.parametrize("text,spec", CORPUS, ids=[c[0].strip().split("\n")[0][:40]
                                                    for c in CORPUS])
def test_vjp_matches_finite_differences(text, spec):
    rng = np.random.default_rng(0)
    prog = einvjp.compile(text)
    inputs = make(spec, rng)
    check_vjp(prog, inputs, rng)


TORCH = {
    "exp": "torch.exp", "log": "torch.log", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid",
    "erf": "torch.special.erf", "gelu": "torch.nn.functional.gelu", "relu": "torch.relu",
    "softplus": "torch.nn.functional.softplus", "log1p": "torch.log1p", "abs": "torch.abs",
}


@pytest.mark.parametrize("fn", sorted(TORCH))
def test_elementwise_against_torch(fn):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=7)) + 0.1 if fn in ("log", "log1p") else rng.normal(size=7)
    prog = einvjp.compile(f"y[i] = {fn}(x[i])")
    u = rng.normal(size=7)
    xt = torch.tensor(x, requires_grad=True)
    yt = eval(TORCH[fn], {"torch": torch})(xt)
    yt.backward(torch.tensor(u))
    np.testing.assert_allclose(prog(x=x), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prog.vjp(u, x=x)["x"], xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_structured_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4))
    a = rng.normal(size=(3, 3)) + 3 * np.eye(3)
    cases = [
        ("y[b] = logsumexp(x[b,j], j)", lambda t: torch.logsumexp(t, 1), x),
        ("y[b,j] = softmax(x[b,j], j)", lambda t: torch.softmax(t, 1), x),
        ("y[b,j] = log_softmax(x[b,j], j)", lambda t: torch.log_softmax(t, 1), x),
        ("y[b] = max(x[b,j], j)", lambda t: torch.amax(t, 1), x),
        ("y[i,j] = inv(x[i,j])", torch.linalg.inv, a),
        ("y = det(x[i,j])", torch.linalg.det, a),
    ]
    for text, fn, val in cases:
        prog = einvjp.compile(text)
        out = prog(x=val)
        u = rng.normal(size=np.shape(out))
        t = torch.tensor(val, requires_grad=True)
        r = fn(t)
        r.backward(torch.tensor(u))
        np.testing.assert_allclose(out, r.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(prog.vjp(u, x=val)["x"], t.grad.numpy(), rtol=1e-9,
                                   atol=1e-12)


def test_max_splits_ties_evenly():
    prog = einvjp.compile("y = max(x[j], j)")
    g = prog.vjp(1.0, x=np.array([1.0, 3.0, 3.0]))["x"]
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    prog = einvjp.compile("y[i] = maximum(x[i], z[i])")
    g = prog.vjp(np.ones(2), x=np.array([1.0, 2.0]), z=np.array([1.0, 0.0]))
    np.testing.assert_array_equal(g["x"], [0.5, 1.0])
    np.testing.assert_array_equal(g["z"], [0.5, 0.0])


# --- Semantics of the text ------------------------------------------------------


def test_dummy_indices_are_local_to_terms_and_scopes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=4)
    a = rng.normal(size=(3, 4))
    softmax = einvjp.compile("s[i] = exp(x[i]) / (1[j] exp(x[j]))")(x=x)
    np.testing.assert_allclose(softmax, np.exp(x) / np.exp(x).sum())
    # Without the scope, j is summed over the whole term.
    whole = einvjp.compile("s[i] = exp(x[i]) / exp(x[j])")(x=x)
    np.testing.assert_allclose(whole, np.exp(x) * np.exp(-x).sum())
    np.testing.assert_allclose(einvjp.compile("n = sqrt(x[i] x[i])")(x=x), np.linalg.norm(x))
    np.testing.assert_allclose(einvjp.compile("y[i] = a[i,j] x[j] + a[i,j]")(a=a, x=x),
                               a @ x + a.sum(1))
    np.testing.assert_allclose(einvjp.compile("y = x[i] / I")(x=x), x.mean())
    np.testing.assert_allclose(einvjp.compile("y[i,j] = x[j]")(x=x, ).shape if False else
                               einvjp.compile("y[i,j] = a[i,k] 1[k] x[j]")(a=a, x=x),
                               np.outer(a.sum(1), x))


def test_delta_and_one_are_never_materialized():
    prog = einvjp.compile("y[i,j] = delta[i,j] x[i]")
    g = prog.graph(x=np.ones(3))
    kinds = {type(n).__name__ for n in einvjp.ir.topo(g.outputs)}
    assert kinds == {"Input", "Contract"}
    np.testing.assert_array_equal(prog(x=np.arange(3.0)), np.diag(np.arange(3.0)))
    assert einvjp.compile("c = 1[i] 1[i]")(x=None) if False else True


def test_multiple_outputs_and_positional_inputs():
    prog = einvjp.compile("""
        a[i] = x[i] * 2
        b[i] = a[i] + x[i]
        return a, b
    """)
    a, b = prog(np.arange(3.0))
    np.testing.assert_array_equal(b, 3 * np.arange(3.0))
    g = prog.vjp((np.ones(3), np.ones(3)), np.arange(3.0))
    np.testing.assert_array_equal(g["x"], [5.0, 5.0, 5.0])


def test_jacobian_and_hessian():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 4))
    x = rng.normal(size=4)
    prog = einvjp.compile("y[i] = tanh(w[i,j] x[j])")
    jac = prog.jacobian("x", w=w, x=x)
    np.testing.assert_allclose(jac, (1 - np.tanh(w @ x) ** 2)[:, None] * w, rtol=1e-12)
    loss = einvjp.compile("l = log(1[i] exp(w[i,j] x[j]))")
    hess = loss.hessian("x", w=w, x=x)
    p = np.exp(w @ x) / np.exp(w @ x).sum()
    expected = w.T @ (np.diag(p) - np.outer(p, p)) @ w
    np.testing.assert_allclose(hess, expected, rtol=1e-10, atol=1e-12)


SINGLE = [(t, s) for t, s in CORPUS if "return" not in t]


@pytest.mark.parametrize("text,spec", SINGLE, ids=[c[0].strip().split("\n")[0][:40]
                                                    for c in SINGLE])
def test_jacobian_rows_are_vjps(text, spec):
    rng = np.random.default_rng(6)
    prog = einvjp.compile(text)
    inputs = make(spec, rng)
    out = np.asarray(prog(**inputs))
    for name in prog.wrt_names(inputs):
        jac = prog.jacobian(name, **inputs)
        x = np.asarray(inputs[name])
        assert jac.shape == out.shape + x.shape
        for k in range(out.size):
            e = np.zeros(out.size)
            e[k] = 1.0
            row = prog.vjp(e.reshape(out.shape), **inputs)[name]
            np.testing.assert_allclose(jac.reshape(out.size, -1)[k], np.ravel(row),
                                       rtol=1e-10, atol=1e-12)


def test_jacobian_is_one_contraction_with_a_delta():
    prog = einvjp.compile("y[i,j] = x[i,k] a[k,j]")
    g = prog.graph(x=np.ones((2, 3)), a=np.ones((3, 4)))
    nodes = einvjp.ir.topo([g.jacobian("x")])
    contract, = [n for n in nodes if not isinstance(n, einvjp.ir.Input)]
    assert isinstance(contract, einvjp.ir.Contract) and len(contract.args) == 1
    assert len(set(contract.out)) == 3  # J[i,j,p,q] = δ[i,p] a[q,j]


@pytest.mark.parametrize("text,spec", [
    ("l = log(1[i] exp(w[i,j] x[j]))", {"w": ((3, 4), "real"), "x": ((4,), "real")}),
    (LAYER_LOSS := """
     m[b]    = x[b,h] / H
     mu[b,h] = x[b,h] - m[b]
     s[b]    = sqrt(mu[b,h]^2 / H + 0.1)
     l = (mu[b,h] / s[b])^3 c[b,h]
     """, {"x": ((2, 3), "real"), "c": ((2, 3), "real")}),
    ("l = logdet(a[i,j]) + tanh(a[i,j]) b[j]", {"a": ((3, 3), "spd"), "b": ((3,), "real")}),
])
def test_hessian_matches_differences_of_the_gradient(text, spec):
    rng = np.random.default_rng(7)
    prog = einvjp.compile(text)
    inputs = make(spec, rng)
    name = next(iter(spec))
    hess = prog.hessian(name, **inputs)
    x = inputs[name]
    eps = 1e-6
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        gp = prog.vjp(1.0, **dict(inputs, **{name: x + d}))[name]
        gm = prog.vjp(1.0, **dict(inputs, **{name: x - d}))[name]
        np.testing.assert_allclose(hess[(Ellipsis,) + idx], (gp - gm) / (2 * eps),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hess.reshape(x.size, -1), hess.reshape(x.size, -1).T,
                               rtol=1e-9, atol=1e-9)


# --- Printing --------------------------------------------------------------------


from einvjp.cli import LAYER_NORM  # noqa: E402  (the seed's layer norm, as the demo runs it)


def test_layer_norm_derivative_reads_like_the_seed():
    prog = einvjp.compile(LAYER_NORM)
    assert str(prog.derivative("gamma")) == "∂l/∂gamma[p] = ∂l/∂y[b,p] mu[b,p] / s[b]"
    assert str(prog.derivative("beta")) == "∂l/∂beta[p] = ∂l/∂y[b,p]"
    # The seed's conclusion, distributed: Σ_h μ[p,h] = 0 is found by cancellation.
    assert str(prog.derivative("x")) == (
        "∂l/∂x[p,q] = ∂l/∂y[p,q] gamma[q] / s[p]"
        " - ∂l/∂y[p,h] mu[p,h] gamma[h] mu[p,q] / (H s[p]^3)"
        " - ∂l/∂y[p,h] gamma[h] 1[q] / (H s[p])")
    assert prog.derivative("x").latex().startswith(
        r"\frac{\partial l}{\partial x_{pq}} = \frac{\frac{\partial l}{\partial y_{pq}}"
        r" \gamma_{q}}{s_{p}}")


def test_matmul_and_inverse_print_the_seed_results():
    prog = einvjp.compile("y[i,j] = x[i,k] a[k,j]")
    assert str(prog.derivative("x")) == "∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]"
    assert str(prog.derivative("a")) == "∂l/∂a[p,q] = ∂l/∂y[i,q] x[i,p]"
    inv = einvjp.compile("y[i,j] = inv(x[i,j])")
    assert str(inv.derivative("x")) == "∂l/∂x[p,q] = -y[a,p] ∂l/∂y[a,b] y[q,b]"


# --- Errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("text,message,column", [
    ("y[i] = foo(x[i])", "unknown function 'foo'", 8),
    ("y[i] = z[i]\nz[i] = x[i]", "'z' is used before it is assigned", 1),
    ("y[i] = x[i]\ny[i] = x[i]", "'y' is assigned twice", 1),
    ("y[i] = x[i] +", "expected a value", 14),
    ("y[i] = x[i] $ 2", "unexpected character '$'", 13),
    ("y[i] = x[i]\nreturn w", "undefined name 'w'", 8),
])
def test_syntax_errors_point_at_the_column(text, message, column):
    with pytest.raises(ProgramError) as err:
        einvjp.compile(text)
    assert message in str(err.value)
    assert f"column {column}" in str(err.value)
    assert isinstance(err.value, einvjp.EinvjpError)


@pytest.mark.parametrize("text,inputs,message,column", [
    ("y[i] = x[i] w[i]", {"x": np.ones(3), "w": np.ones(4)}, "label 'i' has size 4", 15),
    ("y[i,j] = x[i]", {"x": np.ones(3)}, "label 'j' on the left is carried by no term", 5),
    ("y[i] = x[i,j]", {"x": np.ones(3)}, "indexed with 2 label(s)", 8),
    ("y[i] = inv(x[i])", {"x": np.ones(3)}, "two labels", None),
])
def test_binding_errors_point_at_the_label(text, inputs, message, column):
    prog = einvjp.compile(text)
    with pytest.raises(ProgramError) as err:
        prog(**inputs)
    assert message in str(err.value)
    if column is not None:
        assert f"column {column}" in str(err.value)
        assert str(err.value).splitlines()[-1] == " " * (4 + column - 1) + "^"


# --- Stability ----------------------------------------------------------------------


def test_cross_entropy_written_literally_is_finite_at_large_logits():
    prog = einvjp.compile("""
        s[i] = exp(x[i]) / (1[j] exp(x[j]))
        c = -log(s[i] t[i])
    """)
    x = np.array([1000.0, -1000.0, 0.0])
    t = np.array([0.0, 1.0, 0.0])
    c = prog(x=x, t=t)
    assert c == pytest.approx(2000.0)
    with np.errstate(over="ignore"):  # ∂c/∂t[0] = -s[0]/s[T] = -e^2000 overflows, rightly
        g = prog.vjp(1.0, x=x, t=t)
    np.testing.assert_allclose(g["x"], [1.0, -1.0, 0.0], atol=1e-12)
    assert g["t"][1] == -1.0 and g["t"][0] == -np.inf
    prog2 = einvjp.compile("""
        s[i] = exp(x[i]) / (1[j] exp(x[j]))
        c = -t[i] log(s[i])
    """)
    assert prog2(x=x, t=t) == pytest.approx(2000.0)
    np.testing.assert_allclose(prog2.vjp(1.0, x=x, t=t)["x"], [1.0, -1.0, 0.0], atol=1e-12)
    sm = einvjp.compile("s[i] = exp(x[i]) / (1[j] exp(x[j]))")
    np.testing.assert_allclose(sm(x=x), [1.0, 0.0, 0.0])
    assert math.isfinite(einvjp.compile("l = log(1[i] exp(x[i]))")(x=x))


def test_forward_program_prints_as_written():
    prog = einvjp.compile(LAYER_NORM)
    g = prog.graph(x=np.ones((2, 3)), eps=1e-5, gamma=np.ones(3), beta=np.ones(3))
    assert str(g).splitlines() == [
        "m[b] = x[b,h] / H", "mu[b,h] = x[b,h] - m[b]", "v[b] = mu[b,h]^2 / H",
        "s[b] = sqrt(v[b] + eps)", "y[b,h] = mu[b,h] gamma[h] / s[b] + beta[h]"]
    ce = einvjp.compile("s[i] = exp(x[i]) / (1[j] exp(x[j]))\nc = -log(s[i] t[i])")
    assert str(ce.graph(x=np.ones(3), t=np.ones(3))) == \
        "c = -(logsumexp(x[i], t[i], i) - logsumexp(x[i], i))"


# --- Results a caller receives own their memory -----------------------------------


def _shares(a, b):
    if hasattr(a, "untyped_storage"):
        return a.numel() > 0 and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    return np.shares_memory(a, b)


def _arrays(backend, *xs):
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return [torch.tensor(x) for x in xs]
    return list(xs)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_gradients_share_no_memory(backend):
    """y = x + z: both gradients are the cotangent; each comes back as an
    array of its own (an optimizer scaling one in place must not change the
    other, nor the caller's cotangent)."""
    x, z, ct = _arrays(backend, np.ones(3), np.arange(3.0), np.array([1.0, 2.0, 3.0]))
    g = einvjp.compile("y[i] = x[i] + z[i]").vjp(ct, x=x, z=z)
    assert not _shares(g["x"], g["z"]) and not _shares(g["x"], ct) and not _shares(g["z"], ct)
    g["x"] *= 10
    np.testing.assert_array_equal(np.asarray(g["z"]), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(ct), [1.0, 2.0, 3.0])
    # l = x[i] w[i] at a cotangent of 1: ∂l/∂x is w, the caller's array
    g = einvjp.compile("y = x[i] w[i]").vjp(1.0, x=x, w=z)
    assert not _shares(g["x"], z) and not _shares(g["w"], x)
    np.testing.assert_array_equal(np.asarray(g["x"]), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_outputs_share_no_memory(backend):
    x, = _arrays(backend, np.arange(6.0).reshape(2, 3))
    for prog in (einvjp.compile(lambda x: (x, x)), einvjp.compile(lambda x: (x, x.T)),
                 einvjp.compile(lambda x: (einvjp.exp(x), x * 1.0)),
                 einvjp.compile("y[i,j] = x[i,j]"), einvjp.compile("y[j,i] = x[i,j]")):
        outs = prog(x)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for k, y in enumerate(outs):
            assert not _shares(y, x)
            assert not any(_shares(y, o) for o in outs[:k])
        np.testing.assert_array_equal(np.asarray(outs[-1]).reshape(-1)[:1], [0.0])


def test_a_fresh_result_is_not_copied():
    """Nothing aliases: the computed array is handed over as it is (no copy on
    the hot path): its base is the program's own intermediate or nothing."""
    x = np.arange(3.0)
    prog = einvjp.compile(lambda x: einvjp.exp(x))
    assert not any(einvjp.program._aliased(prog.graph(x).outputs))
    assert einvjp.program._aliased(einvjp.compile(lambda x: (x.T, x)).graph(x).outputs) == \
        [True, True]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_einsum_vjp_gradients_share_no_memory(backend):
    x, ct = _arrays(backend, np.ones((2, 3)), np.arange(6.0).reshape(3, 2))
    g, = einvjp.vjp("ij->ji", (x,), ct)
    assert not _shares(g, ct)
    a, b, ct = _arrays(backend, np.ones(3), np.ones(3), np.arange(3.0))
    ga, gb = einvjp.vjp("i,->i", (a, np.float64(2.0) if backend == "numpy" else b[0]), ct)
    assert not _shares(ga, ct)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_vjp_has_an_entry_for_every_array_input(backend):
    """An integer array input's entry is None (as a torch integer tensor has no
    gradient); a Python number gets none; the order is the inputs'."""
    x, n = _arrays(backend, np.array([1.0, 2.0, 3.0]), np.array([2, 0, 1]))
    prog = einvjp.compile(lambda n, x, s: (x * n * s).sum())
    g = prog.vjp(1.0, n, x, 3.0)
    assert list(g) == ["n", "x"] and g["n"] is None
    np.testing.assert_array_equal(np.asarray(g["x"]), [6.0, 0.0, 3.0])
    g = einvjp.compile("y = x[i] k[i]").vjp(1.0, x=x, k=n)
    assert list(g) == ["x", "k"] and g["k"] is None
