"""Hessians, mixed blocks, Jacobians and HVPs as compiled derivative programs:
values against jax.hessian / jvp-of-grad in float64 on NumPy, torch and JAX,
derived once per signature, differentiable again, printed as closed forms."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import einvjp
import einvjp.graph
from einvjp.errors import ProgramError
from einvjp.testing import programs
from einvjp.testing_checks import _JaxOps

jax = pytest.importorskip("jax")
jnp = jax.numpy
torch = pytest.importorskip("torch")
jax.config.update("jax_enable_x64", True)


def _spd(rng, n):
    a = rng.normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


# name: (program text, jax function of the inputs in input_names order, inputs)
WORKLOADS = {
    "quadratic form": ("f = x[i] A[i,j] x[j]", lambda x, A: x @ A @ x,
                       lambda r: dict(x=r.normal(size=5), A=r.normal(size=(5, 5)))),
    "logistic regression": (
        "z[n] = X[n,d] w[d]\nl[n] = log(1 + exp(-y[n] z[n]))\nf = l[n]",
        lambda X, w, y: jnp.sum(jnp.log(1 + jnp.exp(-y * (X @ w)))),
        lambda r: dict(X=r.normal(size=(7, 3)), w=r.normal(size=3),
                       y=np.sign(r.normal(size=7)))),
    "least squares": ("f = (M[i,k] W[k,j] - T[i,j])^2",
                      lambda M, W, T: jnp.sum((M @ W - T) ** 2),
                      lambda r: dict(M=r.normal(size=(6, 3)), W=r.normal(size=(3, 4)),
                                     T=r.normal(size=(6, 4)))),
    "trace form": ("f = X[k,i] B[k,l] X[l,i]", lambda X, B: jnp.trace(X.T @ B @ X),
                   lambda r: dict(X=r.normal(size=(4, 3)), B=r.normal(size=(4, 4)))),
    "matrix factorisation": ("f = (A[i,j] - U[i,k] V[j,k])^2",
                             lambda A, U, V: jnp.sum((A - U @ V.T) ** 2),
                             lambda r: dict(A=r.normal(size=(5, 4)), U=r.normal(size=(5, 2)),
                                            V=r.normal(size=(4, 2)))),
    "logsumexp": ("z[i] = A[i,j] x[j]\nf = logsumexp(z[i], i)",
                  lambda A, x: jax.scipy.special.logsumexp(A @ x),
                  lambda r: dict(A=r.normal(size=(6, 4)), x=r.normal(size=4))),
    "logdet": ("f = logdet(X[i,j])", lambda X: jnp.linalg.slogdet(X)[1],
               lambda r: dict(X=_spd(r, 4))),
    "rank-1 residual": ("f = (T[i,j,k] - a[i] b[j] c[k])^2",
                        lambda T, a, b, c: jnp.sum((T - jnp.einsum("i,j,k->ijk", a, b, c)) ** 2),
                        lambda r: dict(T=r.normal(size=(3, 4, 2)), a=r.normal(size=3),
                                       b=r.normal(size=4), c=r.normal(size=2))),
    "Tucker residual": (
        "f = (T[i,j,k] - G[a,b,c] P[i,a] Q[j,b] R[k,c])^2",
        lambda T, G, P, Q, R: jnp.sum((T - jnp.einsum("abc,ia,jb,kc->ijk", G, P, Q, R)) ** 2),
        lambda r: dict(T=r.normal(size=(3, 4, 2)), G=r.normal(size=(2, 2, 2)),
                       P=r.normal(size=(3, 2)), Q=r.normal(size=(4, 2)), R=r.normal(size=(2, 2)))),
    "4-cycle": ("f = A[a,b] B[b,c] C[c,d] D[d,a]",
                lambda A, B, C, D: jnp.einsum("ab,bc,cd,da->", A, B, C, D),
                lambda r: dict(A=r.normal(size=(2, 3)), B=r.normal(size=(3, 4)),
                               C=r.normal(size=(4, 2)), D=r.normal(size=(2, 2)))),
}


def _as(backend, values):
    if backend == "torch":
        return {n: torch.tensor(v) for n, v in values.items()}
    if backend == "jax":
        return {n: jnp.asarray(v) for n, v in values.items()}
    return values


def _np(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_hessian_blocks_hvp_against_jax(workload, backend):
    text, f, make = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    values = make(rng)
    prog = einvjp.compile(text)
    names = prog.input_names
    args = [values[n] for n in names]
    ours = _as(backend, values)
    a, b = [n for n in names if n not in ("T", "y")][-2:] if len(names) > 1 else names * 2
    for x, z in [(a, a), (b, b), (a, b), (b, a)]:
        i, j = names.index(x), names.index(z)
        want = jax.jacfwd(jax.grad(f, i), j)(*args)
        got = prog.hessian((x, z), **ours) if x != z else prog.hessian(x, **ours)
        np.testing.assert_allclose(_np(got), want, rtol=1e-10, atol=1e-10,
                                   err_msg=f"∂²f/∂{x}∂{z}")
        v = rng.normal(size=values[x].shape)
        want = jax.jvp(lambda t: jax.grad(f, i)(*args[:i], t, *args[i + 1:]),
                       (args[i],), (v,))[1]
        got = prog.hvp(x, _as(backend, {"v": v})["v"], **ours)
        np.testing.assert_allclose(_np(got), want, rtol=1e-10, atol=1e-10, err_msg=f"hvp {x}")


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_jacobian_of_a_vector_output(backend):
    prog = einvjp.compile("z[n] = X[n,d] w[d]\ny[n] = tanh(z[n]) w[d] w[d]")
    rng = np.random.default_rng(1)
    X, w = rng.normal(size=(5, 3)), rng.normal(size=3)
    want = jax.jacfwd(lambda X, w: jnp.tanh(X @ w) * (w @ w), (0, 1))(X, w)
    for k, n in enumerate(("X", "w")):
        got = prog.jacobian(n, **_as(backend, dict(X=X, w=w)))
        np.testing.assert_allclose(_np(got), want[k], rtol=1e-12, atol=1e-12)


def test_derived_once_per_signature(monkeypatch):
    """The second call at one signature runs the code written by the first;
    a new shape derives anew."""
    prog = einvjp.compile(WORKLOADS["logistic regression"][0])
    values = WORKLOADS["logistic regression"][2](np.random.default_rng(0))
    v = np.ones(3)
    first = prog.hessian("w", **values), prog.hvp("w", v, **values), prog.jacobian("w", **values)

    def fail(*args, **kwargs):
        raise AssertionError("derived again")
    monkeypatch.setattr(einvjp.graph.Graph, "derived", fail)
    monkeypatch.setattr(einvjp.graph, "simplify", fail)
    again = prog.hessian("w", **values), prog.hvp("w", v, **values), prog.jacobian("w", **values)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(AssertionError, match="derived again"):
        prog.hessian("w", **dict(values, X=np.ones((8, 3)), y=np.ones(8)))


def test_under_jit_and_differentiable_again():
    text, f, make = WORKLOADS["logistic regression"]
    values = make(np.random.default_rng(2))
    X, w, y = values["X"], values["w"], values["y"]
    prog = einvjp.compile(text)
    hessian = jax.jit(lambda X, w, y: prog.hessian("w", X=X, w=w, y=y))
    np.testing.assert_allclose(hessian(X, w, y), jax.hessian(f, 1)(X, w, y), rtol=1e-12)
    v = np.arange(3.0)
    hvp = jax.jit(lambda w, v: prog.hvp("w", v, X=X, w=w, y=y))
    np.testing.assert_allclose(hvp(w, v), jax.hessian(f, 1)(X, w, y) @ v, rtol=1e-12)
    # third derivatives: through the Hessian program on jax and on torch
    third = jax.grad(lambda w: (jax.hessian(f, 1)(X, w, y) ** 2).sum())(w)
    np.testing.assert_allclose(jax.grad(lambda w: (prog.hessian("w", X=X, w=w, y=y) ** 2)
                                        .sum())(w), third, rtol=1e-10)
    wt = torch.tensor(w, requires_grad=True)
    h = prog.hessian("w", X=torch.tensor(X), w=wt, y=torch.tensor(y))
    np.testing.assert_allclose(torch.autograd.grad((h ** 2).sum(), wt)[0].numpy(), third,
                               rtol=1e-10)
    hv = prog.hvp("w", torch.tensor(v), X=torch.tensor(X), w=wt, y=torch.tensor(y))
    np.testing.assert_allclose(torch.autograd.grad(hv.sum(), wt)[0].numpy(),
                               jax.grad(lambda w: (jax.hessian(f, 1)(X, w, y) @ v).sum())(w),
                               rtol=1e-10)


def test_printed_closed_forms():
    quad = einvjp.compile("f = x[i] A[i,j] x[j]")
    assert str(quad.derivative("x", order=2)) == "∂²f/∂x²[p,q] = A[q,p] + A[p,q]"
    assert quad.derivative("x", order=2).latex() == \
        r"\left(\frac{\partial^2 f}{\partial x^2}\right)_{pq} = A_{qp} + A_{pq}"
    lsq = einvjp.compile("f = (M[i,k] W[k,j] - T[i,j])^2")
    assert str(lsq.derivative("W", order=2)) == "∂²f/∂W²[p,q,r,s] = 2 M[i,p] M[i,r] δ[q,s]"
    logreg = einvjp.compile(WORKLOADS["logistic regression"][0])
    assert str(logreg.derivative("w", order=2)).splitlines()[-1] == \
        "∂²f/∂w²[p,q] = t2[n] y[n]^2 X[n,p] (1[n] - t1[n] t2[n]) t1[n] X[n,q]"


def test_logistic_regression_hessian_is_one_scaled_product():
    """Xᵀ diag(c) X: no N×d×d intermediate (the memory of one scaled copy
    of X, not of X[n,p] X[n,q])."""
    rng = np.random.default_rng(3)
    N, d = 2000, 40
    values = dict(X=rng.normal(size=(N, d)), w=rng.normal(size=d) * 0.1,
                  y=np.sign(rng.normal(size=N)))
    prog = einvjp.compile(WORKLOADS["logistic regression"][0])
    prog.hessian("w", **values)
    tracemalloc.start()
    h = prog.hessian("w", **values)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * N * d * 8, peak  # N·d·d·8 bytes would be 25.6 MB
    np.testing.assert_allclose(h, jax.hessian(WORKLOADS["logistic regression"][1], 1)(
        *[values[n] for n in prog.input_names]), rtol=1e-10)


def test_errors():
    prog = einvjp.compile("f = x[i] A[i,j] x[j]")
    x, A = np.ones(3), np.ones((3, 3))
    with pytest.raises(ProgramError, match=r"the vector has shape \(4,\) but 'x' has shape"):
        prog.hvp("x", np.ones(4), x=x, A=A)
    with pytest.raises(ProgramError, match="not an input"):
        prog.hessian("z", x=x, A=A)
    with pytest.raises(ProgramError, match="order is 1 or 2"):
        prog.derivative("x", order=3)
    vec = einvjp.compile("y[i] = A[i,j] x[j]")
    with pytest.raises(ProgramError, match="needs a scalar output"):
        vec.hessian("x", x=x, A=A)
    with pytest.raises(ProgramError, match="needs a scalar output"):
        vec.hvp("x", x, x=x, A=A)


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs(max_statements=5))
def test_random_programs_hessian_and_hvp(rp):
    """Hessians, a mixed block and HVPs of generated programs, the output
    weighted to a scalar, against jax's, float64."""
    values = rp.values(0)
    arrays = [n for n, _, _, number in rp.inputs if not number]
    assume(arrays)
    f = rp.reference()
    fixed = {n: values[n] for n, _, _, number in rp.inputs if number}
    prog0 = rp.compile()
    out = prog0(**values)
    w = np.random.default_rng(1).normal(size=np.shape(out))
    assume(np.all(np.isfinite(out)))
    L = _JaxOps()

    def loss(*xs):
        return jnp.sum(f(L, **dict(zip(arrays, xs)), **fixed) * w)

    prog = einvjp.compile(rp.text + "\n" + _weighted(rp, prog0, values), sizes=rp.sizes)
    given_ = {n: values[n] for n in prog.input_names if n != "W_"}
    given_["W_"] = w
    used = [n for n in arrays if n in given_]
    assume(used)
    xs = [jnp.asarray(values[n]) for n in arrays]
    a, b = used[0], used[-1]
    i, j = arrays.index(a), arrays.index(b)
    try:
        want = np.asarray(jax.jacfwd(jax.grad(loss, i), j)(*xs))
    except IndexError:  # jax's det rule on a 0×0 matrix
        assume(False)
    assume(np.all(np.isfinite(want)))
    got = prog.hessian((a, b), **given_) if a != b else prog.hessian(a, **given_)
    scale = 1 + np.abs(want).max(initial=0)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-8 * scale)
    v = np.random.default_rng(2).normal(size=np.shape(values[a]))
    want = np.asarray(jax.jvp(lambda t: jax.grad(loss, i)(*xs[:i], t, *xs[i + 1:]),
                              (xs[i],), (jnp.asarray(v),))[1])
    np.testing.assert_allclose(prog.hvp(a, v, **given_), want, rtol=1e-7,
                               atol=1e-8 * (1 + np.abs(want).max(initial=0)))


def _weighted(rp, prog, values):
    """A statement weighting the program's output to a scalar: L_ = y[..] W_[..]."""
    graph = prog.graph(**values)
    out = rp.statements[-1].name
    taken = {n for n, _, _, _ in rp.inputs} | {st.name for st in rp.statements} | set(rp.sizes)
    letters = [c for c in "pqrstuvwmno" if c not in taken and c.upper() not in taken][
        :len(graph.outputs[0].shape)]
    idx = f"[{','.join(letters)}]" if letters else ""
    return f"L_ = {out}{idx} W_{idx}"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_grad_is_the_vjp_at_one(backend):
    text, f, make = WORKLOADS["logistic regression"]
    values = make(np.random.default_rng(4))
    prog = einvjp.compile(text)
    want = jax.grad(f, 1)(*[values[n] for n in prog.input_names])
    np.testing.assert_allclose(_np(prog.grad("w", **_as(backend, values))), want, rtol=1e-12)


def test_a_derivative_that_is_an_input_is_a_copy():
    """∂f/∂x of f = x[i] c[i] is c itself: handed back as an array of its own."""
    prog = einvjp.compile("f = x[i] c[i]")
    x, c = np.ones(3), np.arange(3.0)
    g = prog.grad("x", x=x, c=c)
    np.testing.assert_array_equal(g, c)
    assert not np.shares_memory(g, c)
    j = einvjp.compile("y[i] = c[j] x[j] 1[i]", sizes={"i": 2}).jacobian("x", x=x, c=c)
    np.testing.assert_array_equal(j, np.stack([c, c]))
    assert not np.shares_memory(j, c)
