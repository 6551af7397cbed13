"""Programs on torch tensors and jax arrays are differentiated by torch
autograd, torch.func and JAX's transforms *through their derived programs*
(`Program.__call__` -> `Graph.differentiable` -> the backend's
`differentiable`): reverse mode evaluates the VJP program, forward mode its
transpose (`Graph.tangents`).  They agree with each library's own
autodiff of the same math written in its ops (float64, 1e-10).

Three programs: the layer norm in index notation (DESIGN §5), an MLP block
traced from Python (linear, gelu, linear) and the seed's cross-entropy
(examples/cross_entropy.py).  Each is checked through a scalar loss
L = Σ sin(y) w, so that second derivatives are not trivial.
"""

import types

import numpy as np
import pytest
from conftest import jax_fast_x64

import einvjp
from einvjp.graph import Autodiff

from test_examples import load

from einvjp.cli import LAYER_NORM  # noqa: E402  (the seed's layer norm, as the demo runs it)


def mlp(x, w1, b1, w2, b2):
    return einvjp.gelu(x @ w1 + b1) @ w2 + b2


def layer_norm_ref(xp, x, eps, gamma, beta):
    m = x.mean(-1)[:, None]
    mu = x - m
    return mu / xp.sqrt((mu * mu).mean(-1)[:, None] + eps) * gamma + beta


def mlp_ref(xp, x, w1, b1, w2, b2):
    return xp.gelu(x @ w1 + b1) @ w2 + b2


def cross_entropy_ref(xp, x, t):
    s = xp.exp(x) / xp.exp(x).sum()
    return -xp.log((s * t).sum())


CASES = {
    "layer_norm": (lambda: einvjp.compile(LAYER_NORM), layer_norm_ref,
                   lambda r: {"x": r.normal(size=(4, 6)), "eps": 1e-5,
                              "gamma": r.normal(size=6), "beta": r.normal(size=6)}),
    "mlp": (lambda: einvjp.compile(mlp), mlp_ref,
            lambda r: {"x": r.normal(size=(3, 4)), "w1": r.normal(size=(4, 5)),
                       "b1": r.normal(size=5), "w2": r.normal(size=(5, 2)),
                       "b2": r.normal(size=2)}),
    "cross_entropy": (lambda: load("cross_entropy").PROGRAM, cross_entropy_ref,
                      lambda r: {"x": r.normal(size=5), "t": np.eye(5)[2]}),
}
PROGRAMS = {name: make() for name, (make, _, _) in CASES.items()}


class Case:
    """A program, its reference, inputs (numpy), and the loss weights w
    and direction v (for second derivatives), per library `lib`."""

    def __init__(self, name, lib, ns, seed=0):
        _, self.ref_fn, inputs = CASES[name]
        self.prog, self.ns, self.lib = PROGRAMS[name], ns, lib
        rng = np.random.default_rng(seed)
        self.inputs = inputs(rng)
        self.arrays = [n for n, v in self.inputs.items() if isinstance(v, np.ndarray)]
        y = self.prog(**self.inputs)
        self.w = lib(rng.normal(size=np.shape(y)))
        self.v = {n: lib(rng.normal(size=self.inputs[n].shape)) for n in self.arrays}
        self.batch = lib(rng.normal(size=(3,) + self.inputs["x"].shape))

    def values(self, **arrays):
        return {n: arrays.get(n, self.lib(v) if n in self.arrays else v)
                for n, v in self.inputs.items()}

    def ours(self, **arrays):
        return self.prog(**self.values(**arrays))

    def theirs(self, **arrays):
        return self.ref_fn(self.ns, **self.values(**arrays))


def close(a, b, what=""):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10,
                               err_msg=what)


# --- torch -------------------------------------------------------------------------

torch = pytest.importorskip("torch")
from torch import func  # noqa: E402

TORCH = types.SimpleNamespace(exp=torch.exp, log=torch.log, sqrt=torch.sqrt,
                              gelu=torch.nn.functional.gelu)


def torch_case(name):
    return Case(name, lambda a: torch.tensor(a, dtype=torch.float64), TORCH)


@pytest.mark.parametrize("name", CASES)
def test_torch_backward(name):
    c = torch_case(name)
    ours = {n: c.lib(c.inputs[n]).requires_grad_() for n in c.arrays}
    theirs = {n: c.lib(c.inputs[n]).requires_grad_() for n in c.arrays}
    y, r = c.ours(**ours), c.theirs(**theirs)
    assert type(y.grad_fn).__name__ == "ProgramFunctionBackward"
    close(y.detach(), r.detach(), "value")
    y.backward(c.w)
    r.backward(c.w)
    for n in c.arrays:
        close(ours[n].grad, theirs[n].grad, n)


def _grads_twice(c, fn):
    """∂L/∂inputs (create_graph=True), then ∂/∂inputs of Σ ⟨∂L/∂input, v⟩."""
    xs = {n: c.lib(c.inputs[n]).requires_grad_() for n in c.arrays}
    loss = (torch.sin(fn(**xs)) * c.w).sum()
    first = torch.autograd.grad(loss, list(xs.values()), create_graph=True)
    dot = sum((g * c.v[n]).sum() for g, n in zip(first, c.arrays))
    second = torch.autograd.grad(dot, list(xs.values()), allow_unused=True)
    second = [torch.zeros_like(x) if g is None else g for g, x in zip(second, xs.values())]
    return [g.detach() for g in first], second


@pytest.mark.parametrize("name", CASES)
def test_torch_double_backward(name):
    c = torch_case(name)
    (g1, h1), (g2, h2) = _grads_twice(c, c.ours), _grads_twice(c, c.theirs)
    for n, a, b, p, q in zip(c.arrays, g1, g2, h1, h2):
        close(a, b, f"∂L/∂{n}")
        close(p, q, f"∂²L/∂{n}·v")


@pytest.mark.parametrize("name", CASES)
def test_torch_func(name):
    c = torch_case(name)
    x = c.lib(c.inputs["x"])

    def loss(fn):
        return lambda x: (torch.sin(fn(x=x)) * c.w).sum()
    for transform in (func.grad, func.hessian, lambda f: func.jacrev(func.jacrev(f))):
        close(transform(loss(c.ours))(x), transform(loss(c.theirs))(x), transform.__name__)
    for transform in (func.jacrev, func.jacfwd):
        close(transform(lambda x: c.ours(x=x))(x), transform(lambda x: c.theirs(x=x))(x),
              transform.__name__)
    close(func.vmap(func.grad(loss(c.ours)))(c.batch),
          func.vmap(func.grad(loss(c.theirs)))(c.batch), "vmap(grad)")
    close(func.vmap(lambda x: c.ours(x=x))(c.batch),
          func.vmap(lambda x: c.theirs(x=x))(c.batch), "vmap")


@pytest.mark.xfail(reason="torch bug pytorch/pytorch#197867 (as for einvjp.einsum, see "
                          "test_torch.py): nested jacfwd through an autograd.Function's jvp",
                   strict=False)
def test_torch_jacfwd_of_jacfwd():
    c = torch_case("mlp")
    x = c.lib(c.inputs["x"])

    def twice(fn):
        return func.jacfwd(func.jacfwd(lambda x: (torch.sin(fn(x=x)) * c.w).sum()))(x)
    close(twice(c.ours), twice(c.theirs))


def test_torch_complex_follows_torch_convention():
    """The VJP program transposes (JAX's convention); torch's gradients are
    conjugated: first and second derivatives agree with torch's."""
    prog = einvjp.compile("""
        a[i] = x[i,j] w[j]
        y[i] = exp(a[i]) * a[i]
    """)
    gen = torch.Generator().manual_seed(0)
    x0, w0, g = (torch.randn(s, dtype=torch.complex128, generator=gen)
                 for s in ((3, 4), (4,), (3,)))

    def twice(fn):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        gx, gw = torch.autograd.grad(fn(x, w), (x, w), g, create_graph=True)
        again = torch.autograd.grad((gx.abs() ** 2).sum() + (gw * w).real.sum(), (x, w))
        return (gx.detach(), gw.detach()) + again
    for a, b in zip(twice(lambda x, w: prog(x=x, w=w)),
                    twice(lambda x, w: torch.exp(x @ w) * (x @ w))):
        close(a, b)


def test_torch_backward_runs_the_vjp_program(monkeypatch):
    tb = pytest.importorskip("einvjp.backends.torch")
    calls, ge_backward = [], []
    vjp = Autodiff.vjp
    monkeypatch.setattr(Autodiff, "vjp", lambda self, *a: calls.append(a[2]) or vjp(self, *a))
    backward = tb.GEFunction.backward
    monkeypatch.setattr(tb.GEFunction, "backward",
                        staticmethod(lambda *a: ge_backward.append(1) or backward(*a)))
    prog = einvjp.compile(LAYER_NORM)  # built under the spy
    c = torch_case("layer_norm")
    x = c.lib(c.inputs["x"]).requires_grad_()
    y = prog(**c.values(x=x))
    assert calls == []
    y.backward(c.w)
    # One VJP program for x alone (gamma, beta do not require grad), and no
    # forward contraction differentiated by autograd node by node.
    assert calls == [(True, False, False)] and ge_backward == []
    close(x.grad, torch.func.vjp(lambda x: c.theirs(x=x), c.lib(c.inputs["x"]))[1](c.w)[0])


def test_torch_forward_mode_runs_the_jvp_program(monkeypatch):
    """Forward mode evaluates the VJP program's transpose (`Graph.tangents`)."""
    tb = pytest.importorskip("einvjp.backends.torch")
    calls, ge_jvp = [], []
    jvp = Autodiff.jvp
    monkeypatch.setattr(Autodiff, "jvp", lambda self, a, t: calls.append(
        tuple(x is not None for x in t)) or jvp(self, a, t))
    monkeypatch.setattr(tb.GEFunction, "jvp", staticmethod(lambda *a: ge_jvp.append(1)))
    prog = einvjp.compile(LAYER_NORM)  # built under the spy
    c = torch_case("layer_norm")
    x, t = c.lib(c.inputs["x"]), c.v["x"]
    got = func.jvp(lambda x: prog(**c.values(x=x)), (x,), (t,))[1]
    assert calls == [(True, False, False)] and ge_jvp == []
    close(got, func.jvp(lambda x: c.theirs(x=x), (x,), (t,))[1])


def test_torch_numbers_are_arguments_of_the_code(monkeypatch):
    """A Python number is a constant of the written code until it changes
    (layer norm's eps here): then an argument, one forward and one VJP
    function for all its later values; each value's output and derivatives
    (backward, double backward, torch.func) those of the math at that
    value."""
    import einvjp.codegen as codegen
    written = []
    write = codegen._Writer.write
    monkeypatch.setattr(codegen._Writer, "write", lambda self: written.append(1) or write(self))
    prog = einvjp.compile(LAYER_NORM)
    c = torch_case("layer_norm")
    for k, eps in enumerate([1e-5, 0.5, 3.0, 0.5, 2]):  # 2: an int, its own code
        x = c.lib(c.inputs["x"]).requires_grad_()
        xr = c.lib(c.inputs["x"]).requires_grad_()
        y, r = prog(**c.values(x=x, eps=eps)), c.theirs(x=xr, eps=eps)
        close(y.detach(), r.detach(), f"value at eps={eps}")
        (gy,) = torch.autograd.grad((torch.sin(y) * c.w).sum(), x, create_graph=True)
        (gr,) = torch.autograd.grad((torch.sin(r) * c.w).sum(), xr, create_graph=True)
        close(gy.detach(), gr.detach(), f"gradient at eps={eps}")
        close(torch.autograd.grad((gy * c.v["x"]).sum(), x)[0],
              torch.autograd.grad((gr * c.v["x"]).sum(), xr)[0], f"second at eps={eps}")
        x0 = c.lib(c.inputs["x"])
        close(func.grad(lambda x: (torch.sin(prog(**c.values(x=x, eps=eps))) * c.w).sum())(x0),
              func.grad(lambda x: (torch.sin(c.theirs(x=x, eps=eps)) * c.w).sum())(x0),
              f"torch.func.grad at eps={eps}")
        if k == 1:  # the second value: code with eps as an argument
            varying = len(written)
        elif k > 1:  # nothing new for later floats; an int has its own code
            assert len(written) == varying or (eps == 2 and len(written) > varying), eps


# --- JAX ------------------------------------------------------------------------------

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

JAX = types.SimpleNamespace(exp=jnp.exp, log=jnp.log, sqrt=jnp.sqrt,
                            gelu=lambda x: jax.nn.gelu(x, approximate=False))


@pytest.fixture(autouse=True, scope="module")
def _jax_x64():
    with jax_fast_x64():
        yield


def jax_case(name):
    return Case(name, jnp.asarray, JAX)


def _transforms(c, fn):
    """Every transform at once, under one jit (one compilation)."""
    def out(x, rest):
        return fn(x=x, **rest)

    def loss(x, rest):
        return jnp.sum(jnp.sin(out(x, rest)) * c.w)

    def hvp(x, rest):  # grad of grad: ∂/∂(x, rest) of ⟨∂L/∂(x, rest), v⟩
        gx, grest = jax.grad(loss, argnums=(0, 1))(x, rest)
        return jnp.vdot(gx, c.v["x"]) + sum(jnp.vdot(g, c.v[n]) for n, g in grest.items())

    @jax.jit
    def run(x, rest):
        return {"value": out(x, rest),
                "grad": jax.grad(loss, argnums=(0, 1))(x, rest),
                "grad_of_grad": jax.grad(hvp, argnums=(0, 1))(x, rest),
                "vmap_grad": jax.vmap(jax.grad(loss), (0, None))(c.batch, rest),
                "jacrev": jax.jacrev(out)(x, rest),
                "jacfwd": jax.jacfwd(out)(x, rest),
                "hessian": jax.hessian(loss)(x, rest),
                "jacfwd_of_jacfwd": jax.jacfwd(jax.jacfwd(loss))(x, rest)}
    return run(c.lib(c.inputs["x"]), {n: c.lib(c.inputs[n]) for n in c.arrays if n != "x"})


@pytest.mark.parametrize("name", CASES)
def test_jax_transforms(name):
    c = jax_case(name)
    ours, theirs = _transforms(c, c.ours), _transforms(c, c.theirs)
    for what in ours:
        for a, b in zip(jax.tree_util.tree_leaves(ours[what]),
                        jax.tree_util.tree_leaves(theirs[what])):
            close(a, b, what)


def test_jax_eager_jacfwd():
    """Outside jit: the linearization primitive's own impl runs."""
    c = jax_case("cross_entropy")
    x = c.lib(c.inputs["x"])
    close(jax.jacfwd(lambda x: c.ours(x=x))(x), jax.jacfwd(lambda x: c.theirs(x=x))(x))


def test_jax_grad_runs_the_vjp_program(monkeypatch):
    jb = pytest.importorskip("einvjp.backends.jax")
    from jax.interpreters import ad
    calls, ge_transposes = [], []
    vjp = Autodiff.vjp
    monkeypatch.setattr(Autodiff, "vjp", lambda self, *a: calls.append(a[2]) or vjp(self, *a))
    transpose = ad.primitive_transposes[jb.ge_p]
    monkeypatch.setitem(ad.primitive_transposes, jb.ge_p,
                        lambda *a, **k: ge_transposes.append(1) or transpose(*a, **k))
    prog = einvjp.compile(LAYER_NORM)  # built under the spy
    c = jax_case("layer_norm")
    x = c.lib(c.inputs["x"])
    g = jax.jit(jax.grad(lambda x: jnp.sum(prog(**c.values(x=x)) * c.w)))(x)
    assert calls == [(True, False, False)] and ge_transposes == []
    close(g, jax.grad(lambda x: jnp.sum(c.theirs(x=x) * c.w))(x))


def test_jax_forward_mode_runs_the_jvp_program(monkeypatch):
    jb = pytest.importorskip("einvjp.backends.jax")
    from jax.interpreters import ad
    calls, ge_jvps = [], []
    jvp = Autodiff.jvp
    monkeypatch.setattr(Autodiff, "jvp", lambda self, a, t: calls.append(
        tuple(x is not None for x in t)) or jvp(self, a, t))
    monkeypatch.setitem(ad.primitive_jvps, jb.ge_p, lambda *a, **k: ge_jvps.append(1))
    prog = einvjp.compile(LAYER_NORM)  # built under the spy
    c = jax_case("layer_norm")
    x, t = c.lib(c.inputs["x"]), c.v["x"]
    got = jax.jit(lambda x, t: jax.jvp(lambda x: prog(**c.values(x=x)), (x,), (t,))[1])(x, t)
    # Traced for the shapes and for the lowering; gamma and beta come with
    # zero tangents (custom_jvp instantiates them).
    assert calls and set(calls) == {(True, True, True)} and ge_jvps == []
    close(got, jax.jvp(lambda x: c.theirs(x=x), (x,), (t,))[1])
