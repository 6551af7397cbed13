"""Straight-line code (`einvjp.codegen.Straightline`) against the interpreter
(`einvjp.execute.evaluate`) as the oracle, on numpy, torch and (fewer cases:
it compiles each new op) jax.  A Straightline's first call for a signature returns
the interpreter's values (its probe; on jax, whose calls may be traces, the
written code's), so every check calls twice: the second call runs the
written code."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp import codegen, prims
from einvjp.backend import backend_for, library_of
from einvjp.codegen import Straightline
from einvjp.execute import evaluate
from einvjp.ir import Input

from conftest import jax_fast_x64
from test_examples import NAMES, load

torch = pytest.importorskip("torch")
ALL = pytest.mark.parametrize("xp", ["numpy", "torch", "jax"], indirect=True)
CONVERT = {"numpy": lambda v: v,  # numpy arrays (numbers pass) -> the backend's
           "torch": lambda v: torch.as_tensor(v) if isinstance(v, np.ndarray) else v}


@pytest.fixture(params=["numpy", "torch"])
def xp(request):
    if request.param != "jax":
        yield CONVERT[request.param]
        return
    import jax.numpy as jnp
    with jax_fast_x64():
        yield lambda v: jnp.asarray(v) if isinstance(v, np.ndarray) else v


def _np(v):
    return v.resolve_conj().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _plain(v):  # a Python number (numpy's scalars count as 0-d arrays)
    return type(v) in (int, float, complex)


def _library(v):  # a NumPy scalar is a NumPy result (library_of: a number)
    return "numpy" if isinstance(v, np.generic) else library_of(v)


def same(got, want, rtol=1e-12):
    """got is what want is: a Python number where it is one, else an array
    of its library, shape and dtype; and the same values."""
    assert _plain(got) == _plain(want), (got, want)
    if not _plain(want):
        assert _library(got) == _library(want), (type(got), type(want))
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(_np(got), _np(want), rtol=rtol, atol=rtol * 1e-2)


def check(outputs, feed, fixed=None, rtol=1e-12):
    """Straightline(outputs, the feed's nodes, fixed) against evaluate, twice."""
    fixed = dict(fixed or {})
    B = backend_for(list(feed.values()))
    want = evaluate(outputs, {**feed, **fixed}, B)
    run, values = Straightline(outputs, list(feed), B, fixed), list(feed.values())
    for got in (run(values), run(values)):  # the probe, then the written code
        assert len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w, rtol)


def check_program(prog, xp, fixed=(), rtol=1e-12, seed=0, **inputs):
    """The forward program and the VJP program (for every inexact array),
    the inputs named in `fixed` written in as constants; inputs the program
    does not read are left out."""
    inputs = {n: inputs[n] for n in prog.input_names}
    values = {n: xp(v) for n, v in inputs.items()}
    g = prog.graph(**values)
    feed = g.feed(values, backend_for(list(values.values())))
    consts = {g.inputs[n]: feed.pop(g.inputs[n]) for n in fixed}
    check(g.outputs, feed, consts, rtol)
    arrays = {n: v for n, v in inputs.items() if isinstance(v, np.ndarray)}
    wrt = [n for n, v in arrays.items() if v.dtype.kind in "fc"]
    if wrt:
        cts, _, grads = g.gradients(wrt)
        rng = np.random.default_rng(seed)
        for c in cts:
            ct = rng.normal(size=tuple(int(s) for s in c.shape))
            feed[c] = xp(ct.astype(np.result_type(*arrays.values())))
        check([x for x in grads if x is not None], feed, consts, rtol)


@ALL
@pytest.mark.parametrize("name", NAMES)
def test_example(name, xp):
    example = load(name)
    inputs = example.inputs(np.random.default_rng(0))
    check_program(example.PROGRAM, xp, **inputs)
    numbers = [n for n, v in inputs.items() if not isinstance(v, np.ndarray)]
    if numbers:  # layer norm's eps
        check_program(example.PROGRAM, xp, fixed=numbers, **inputs)


def test_numbers_given_or_fixed(xp):
    prog = einvjp.compile("u[i,j] = a * x[i,j] + b\nv[i] = maximum(x[i,j] w[j], b) / a\n"
                          "y[i,j] = u[i,j] * v[i] - b * exp(a) + 2.5\nreturn y, v")
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 3)), rng.normal(size=3)
    for a, b in [(0.5, -2.0), (3, 1), (1.5, 2)]:
        for fixed in [(), ("a",), ("a", "b")]:
            check_program(prog, xp, fixed=fixed, a=a, b=b, x=x, w=w)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64, np.float32])
def test_complex_and_single(xp, dtype):
    x, w, xi, wi = np.random.default_rng(2).normal(size=(4, 3, 3))
    x, w = (x[:2], w) if dtype == np.float32 else (x[:2] + 1j * xi[:2], w - 1j * wi)
    prog = einvjp.compile("y[i,k] = exp(x[i,j]) w[j,k] / 3 - a * x[i,k] w[k,k] + a")
    for a in (0.5, 2 - 1j):
        for fixed in ((), ("a",)):
            check_program(prog, xp, fixed=fixed, rtol=1e-12 if dtype == np.complex128 else 1e-5,
                          a=a, x=x.astype(dtype), w=w.astype(dtype))


def test_integers_and_mixed_dtypes(xp):
    """int64 arrays with int or float numbers; float32 with float64 arrays
    where no matmul is written (see test_mixed_dtypes_matmul)."""
    rng = np.random.default_rng(3)
    x, w = rng.integers(-5, 5, size=(2, 3)), rng.integers(-5, 5, size=(3, 3))
    for text in ["y[i,k] = x[i,j] w[j,k] + n", "y[i,k] = 2 x[i,j] w[j,k] - n * x[i,k]",
                 "y[i] = x[i,j] / 4 + n", "y[i,j] = maximum(x[i,j], n) + w[j,j]"]:
        for n in (3, 0.5):
            check_program(einvjp.compile(text), xp, n=n, x=x, w=w)
    for text in ["y[i,j] = x[i,j] w[j,j] + x[i,j]", "y[i,j] = exp(x[i,j]) - sin(w[j,j]) x[i,j]",
                 "y[i,j] = maximum(x[i,j], w[j,j]) / 2 + 1.5 x[i,j]"]:
        check_program(einvjp.compile(text), xp, rtol=1e-6, x=(x / 4).astype(np.float32), w=w / 3)


@pytest.mark.parametrize("xp", ["numpy", "torch"], indirect=True)
@pytest.mark.parametrize("text,dx,dw,a", [
    ("y[i,k] = x[i,j] w[j,k]", np.float32, np.float64, 0),
    ("y[i,k] = x[i,j] w[j,k]", np.int64, np.float64, 0),
    ("y[i,k] = x[i,j] w[j,k]", np.float64, np.complex128, 0),
    ("y[i,j] = x[i,k] w[k,k] - 2 x[i,j]", np.float32, np.float64, 0),
    # one dtype, made two by the code: the coefficient scales an operand first
    ("y[i,k] = x[i,j] w[j,k] / 4 + 1.5", np.int64, np.int64, 0),
    ("y[i,k] = x[i,j] w[j,k] * a", np.float64, np.float64, 1.5j),
])
def test_mixed_dtypes_matmul(xp, text, dx, dw, a):
    x, w = np.linspace(-4, 4, 6).reshape(2, 3), np.linspace(-3, 5, 9).reshape(3, 3)
    check_program(einvjp.compile(text), xp, rtol=1e-6, x=x.astype(dx), w=w.astype(dw), a=a)


def test_integer_times_number_one():
    check_program(einvjp.compile("y[i,j] = a * x[i,j]"), CONVERT["numpy"], a=1.0,
                  x=np.arange(6).reshape(2, 3))


@ALL
def test_structured_primitives(xp):
    prog = einvjp.compile("""
        s[b,j] = softmax(x[b,j], j) + log_softmax(x[b,j], b)
        l[b] = logsumexp(x[b,j], j) + max(x[b,j], j) - min(x[b,j], b) 1[b]
        z[i,j] = inv(a[i,j]) x[j,j]
        q[j,k] = solve(a[i,j], r[i,k] + z[k,i])
        d = det(a[i,j]) + logdet(a[i,j]) * eps
        return s, l, z, q, d
    """)
    x, a, r = np.random.default_rng(6).normal(size=(3, 3, 3))
    for fixed in [(), ("eps",)]:
        check_program(prog, xp, fixed=fixed, rtol=1e-10, eps=0.5, x=x, r=r,
                      a=a @ a.T / 3 + np.eye(3))


@ALL
@pytest.mark.parametrize("text", [
    "y[i] = x[i,i]", "y = x[i,i] + v[i] v[i]", "y[i,j] = delta[i,j] v[i]",
    "y[i,j,k] = delta[i,j] x[j,k] + x[i,i] v[k]", "y[i,j] = x[i,j] x[j,i] - x[i,i] 1[j]",
    "y[h,b] = 1[h] v[b]", "y[b] = 1[h] x[b,h] + 2", "y[i] = v[i]",  # the input itself
    "u[i] = v[i]\ny[i] = u[i] * 2\nreturn y, u", "c = 2.5\ny[i] = v[i] * c\nreturn y, c",
    "c[i] = 3 * 1[i]\ny[i] = v[i] + x[i,i]\nreturn c, y", "y[i,j] = 1[i] 1[j] * n",
    "y[i,j] = v[i] 1[j] + exp(v[i]) 1[j]", "y[i,j] = tanh(v[i]) + 1[j] + v[j] * n"])
def test_diagonals_broadcasts_and_plain_outputs(xp, text):
    x = np.random.default_rng(7).normal(size=(4, 3))
    check_program(einvjp.compile(text, sizes={"h": 2, "i": 3, "j": 3}), xp, n=0.5, x=x[:3], v=x[3])


SIZES = {"i": 2, "k": 2, "j": 3, "n": 3}
INPUTS = {"a": "ij", "b": "jn", "c": "k"}


@st.composite
def programs(draw):
    """One to four statements over a[i,j], b[j,n], c[k] and a number s, the
    operands read under any labels of their sizes (transposes, diagonals),
    the left side any labels (sums, broadcasts)."""
    env, lines = dict(INPUTS), []

    def ref():
        name = draw(st.sampled_from(sorted(env)))
        labs = [draw(st.sampled_from([m for m in SIZES if SIZES[m] == SIZES[lab]]))
                for lab in env[name]]
        return f"{name}[{','.join(labs)}]" if labs else name, labs

    for t in range(draw(st.integers(1, 4))):
        (x, lx), (y, ly) = ref(), ref()
        rhs = draw(st.sampled_from([
            f"tanh({x})", f"exp(0.5 * {x}) - s", f"{x} {y}", f"{x} + 0.5 * {y}",
            f"{x} / (1.5 + {y}^2)", f"maximum({x}, {y}) * s", "reduce"]))
        if rhs == "reduce":
            f = draw(st.sampled_from(["logsumexp", "max", "softmax"]))
            rhs = f"{f}({x}, {draw(st.sampled_from(lx))}) - {y}" if lx else f"{x} * {y}"
        labels = sorted(set(lx) | set(ly) | draw(st.sets(st.sampled_from(sorted(SIZES)))))
        out = draw(st.permutations(labels))[:draw(st.integers(0, min(3, len(labels))))]
        env[f"t{t}"] = "".join(out)
        lines.append(f"t{t}{'[' + ','.join(out) + ']' if out else ''} = {rhs}")
    if len(lines) > 1 and draw(st.booleans()):
        lines.append(f"return t{len(lines) - 1}, t0")
    return "\n".join(lines)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from(["numpy", "torch"]), st.booleans(), st.integers(0, 99))
def test_generated_programs(text, backend, fix_s, seed):
    rng = np.random.default_rng(seed)
    inputs = {n: rng.normal(size=[SIZES[lab] for lab in labs]) for n, labs in INPUTS.items()}
    prog = einvjp.compile(text, sizes=SIZES)
    fixed = ["s"] if fix_s and "s" in prog.input_names else ()
    check_program(prog, CONVERT[backend], fixed=fixed, rtol=1e-10, seed=seed, s=0.7, **inputs)


@ALL
def test_code_per_signature(xp, monkeypatch):
    """One function per signature (which values are numbers and of which
    type, the dtypes):
    a call with a known signature runs its code (no node interpreted) on its
    own values; a new signature writes new code."""
    calls, real = [], codegen.evaluate_node
    monkeypatch.setattr(codegen, "evaluate_node", lambda *a: calls.append(a[0]) or real(*a))
    prog = einvjp.compile("y[b,h] = (x[b,h] - x[b,j] / J) * a + w[h] x[b,h]^2 - a")
    x, w = np.random.default_rng(8).normal(size=(2, 3)), np.linspace(-1, 2, 3)
    g, B = prog.graph(x=xp(x), w=xp(w), a=0.5), backend_for([xp(x)])
    run = Straightline(g.outputs, [g.inputs[n] for n in "xwa"], B)

    def call(x, w, a, rtol=1e-12):
        """(nodes interpreted, the code's source) of one call, checked."""
        values = [xp(x), xp(w), xp(a)]
        del calls[:]
        got, interpreted = run(values), len(calls)
        same(got[0], evaluate(g.outputs, dict(zip(run.given, values)), B)[0], rtol)
        return interpreted, run.source(values)

    n, code = call(x, w, 0.5)
    assert n > 0  # the probe
    for k in (1, 2):
        assert call(x + k, w * k, 2.0 + k) == (0, code)
    n, array_code = call(x, w, np.array(0.5))  # `a` an array
    assert n > 0 and array_code != code
    assert call(x - 1, w, np.array(-2.0)) == (0, array_code)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    n, single_code = call(x32, w32, 0.5, 1e-5)
    assert n > 0 and call(x32 * 2, w32, 1.5, 1e-5) == (0, single_code)
    n, int_code = call(x, w, 3)  # a number's type is part of the signature (int: new code)
    assert n > 0 and call(x + 1, w, 4) == (0, int_code)
    assert call(x, w, np.array(1.5)) == (0, array_code)


# --- Programs through the lowered code: cases a review found -----------------


def twice(f):
    """f() called twice: the first call probes (the interpreter), the second
    runs the written code; both returned."""
    return f(), f()


def test_matmul_added_to_a_3d_tensor():
    """addmm adds to a matrix only: a 3-d sum keeps add + matmul."""
    p = einvjp.compile("y[b,i,j] = z[b,i,j] + x[i,k] w[k,j]")
    z, x, w = (torch.randn(*s, dtype=torch.float64) for s in ((2, 3, 4), (3, 5), (5, 4)))
    for y in twice(lambda: p(z=z, x=x, w=w)):
        assert torch.allclose(y, z + x @ w)


@pytest.mark.parametrize("text,want", [
    ("y[i] = v[i]", lambda v: torch.ones_like(v)),
    ("u[i] = v[i]\ny[i] = u[i] * 2\nreturn y, u", lambda v: 3 * torch.ones_like(v)),
    ("y[i] = exp(v[i])\nz[i] = exp(v[i])\nreturn y, z", lambda v: 2 * torch.exp(v)),
])
def test_torch_backward_output_is_input_or_repeated(text, want):
    """A node given twice to the lowered VJP (an output that is an input, or
    two outputs that are one node) is one parameter of the code per slot."""
    p = einvjp.compile(text)
    v = torch.randn(3, dtype=torch.float64, requires_grad=True)
    for _ in range(2):
        out = p(v=v)
        total = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
        g, = torch.autograd.grad(total, v)
        assert torch.allclose(g, want(v.detach()))


def test_number_zero_still_adds():
    """x + s with s = 0.0 promotes an integer x and turns -0.0 into 0.0, on
    every call (the interpreter adds the number whatever its value)."""
    p = einvjp.compile("y[i] = x[i] + s")
    for y in twice(lambda: p(x=torch.arange(3), s=0.0)):
        assert y.dtype == torch.get_default_dtype()
    for y in twice(lambda: p(x=torch.tensor([-0.0, 1.0]), s=0.0)):
        assert torch.equal(torch.signbit(y), torch.tensor([False, False]))


@pytest.mark.parametrize("xp", ["numpy", "torch", "jax"], indirect=True)
def test_numbers_keyed_by_type_and_exact_value(xp):
    """Code written for one number is not reused for another that compares
    equal: -0.0 after 0.0 (x * s keeps the sign), 2.0 after 2 and True (an
    integer x promotes), and a NaN again finds its own code."""
    p = einvjp.compile("y[i] = x[i] * s")
    x, xi = xp(np.array([1.0, 2.0])), xp(np.array([1, 2]))
    for s in (0.0, -0.0, 0.0, -0.0):
        y = _np(p(x=x, s=s))
        assert list(np.signbit(y)) == [np.signbit(s)] * 2
    for s in (True, 2, 2.0, True):
        y = p(x=xi, s=s)
        assert y.dtype == xi.dtype if isinstance(s, int) else _np(y).dtype.kind == "f", (s, y)
        np.testing.assert_array_equal(_np(y), np.array([1, 2]) * s)
    for s in (np.float64(2.0), 2.0, np.float64(2.0)):  # a NumPy float is a number of its type
        y, want = p(x=xp(np.ones(2, np.float32)), s=s), xp(np.ones(2, np.float32)) * s
        assert y.dtype == want.dtype, (type(s), y.dtype, want.dtype)
        np.testing.assert_array_equal(_np(y), _np(want))
    runs = len(p._runs)
    assert np.isnan(_np(p(x=x, s=float("nan")))).all()
    assert np.isnan(_np(p(x=x, s=float("nan")))).all() and len(p._runs) == runs + 1
    if library_of(x) == "torch":  # through the program's autograd Function
        xg = torch.tensor([1.0, 2.0], requires_grad=True)
        for s in (0.0, -0.0):
            assert list(torch.signbit(p(x=xg, s=s)).tolist()) == [math.copysign(1, s) < 0] * 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_coefficients_as_the_interpreter(dtype):
    """A coefficient is applied to a half tensor as a Python number (in
    float32, as torch does), not first rounded to a half 0-d tensor."""
    p = einvjp.compile("y[i] = x[i] / 3 + 0.1 * z[i]")
    x, z = (torch.linspace(-3, 3, 1000).to(getattr(torch, dtype)) for _ in range(2))
    first, second = twice(lambda: p(x=x, z=z))
    assert torch.equal(first, second) and torch.equal(second, x / 3 + 0.1 * z)


def test_torch_residuals_are_saved_tensors():
    """The forward tensors the VJP reads go through autograd's saved-tensor
    hooks (save_on_cpu, checkpointing) and are freed by backward."""
    p = einvjp.compile("h[b,o] = tanh(x[b,i] w[i,o])\ny = h[b,o] h[b,o]")
    x, w = torch.randn(8, 4, requires_grad=True), torch.randn(4, 16)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t.shape) or t,
                                                  lambda t: t):
        y = p(x=x, w=w)
    assert torch.Size([8, 16]) in packed
    y.backward()
    with pytest.raises(RuntimeError, match="freed"):
        y.grad_fn.saved_tensors


def test_jax_constants_converted_per_call():
    """An array a traced function closes over is converted on every call: under
    jax.jit it is not a tracer left over from an earlier trace, and a change in
    place is seen."""
    jax = pytest.importorskip("jax")
    w = np.array([1.0, 2.0, 3.0], dtype=np.float32)

    @einvjp.compile
    def f(x):
        return einvjp.einsum("i,i->", x, w) + einvjp.exp(x).sum()

    x = jax.numpy.ones(3)
    want = float(w.sum() + 3 * np.e)
    assert np.isclose(jax.jit(f)(x), want) and np.isclose(f(x), want)
    assert np.isclose(jax.jit(lambda x: f(x) * 2)(x), 2 * want)
    w[:] = 2
    assert np.isclose(f(x), 6 + 3 * np.e)


F = torch.nn.functional


@pytest.mark.parametrize("text,want,fused", [
    # g * gelu'(z): one gelu_backward
    ("y[b,h] = gelu(x[b,i] w[i,h]) v[h]", lambda x, w, v: F.gelu(x @ w) * v, True),
    # the sum over b first, then one call
    ("y[b,h] = gelu(c[h]) x[b,h]", lambda c, x: F.gelu(c) * x, True),
    # the VJP reads gelu'(x) once, times 2 gelu(x) + w^T
    ("y[b,h] = gelu(x[b,h]) gelu(x[b,h]) + gelu(x[b,h]) w[h,b]",
     lambda x, w: F.gelu(x) ** 2 + F.gelu(x) * w.T, True),
])
def test_torch_gelu_backward_fused(text, want, fused):
    """g · gelu'(x) of one shape is torch's gelu_backward(g, x); the values
    (and the second derivative, through gelu_backward's own) are torch's."""
    p = einvjp.compile(text)
    gen = torch.Generator().manual_seed(0)
    shapes = {"x": (4, 3), "w": (3, 5), "v": (5,), "c": (3,)}
    if "w[h,b]" in text:
        shapes["w"] = (3, 4)
    inputs = {n: torch.randn(*shapes[n], generator=gen, dtype=torch.float64,
                             requires_grad=True) for n in p.input_names}
    for _ in range(2):
        got, ref = p(**inputs), want(**inputs)
        torch.testing.assert_close(got, ref)
        ct = torch.randn(got.shape, generator=gen, dtype=torch.float64)
        gs = torch.autograd.grad(got, list(inputs.values()), ct, create_graph=True)
        ws = torch.autograd.grad(ref, list(inputs.values()), ct, create_graph=True)
        torch.testing.assert_close(gs, ws)
        hs = torch.autograd.grad(sum(g.sum() for g in gs), list(inputs.values()))
        hw = torch.autograd.grad(sum(w.sum() for w in ws), list(inputs.values()))
        torch.testing.assert_close(hs, hw)
    g = p.graph(**inputs)
    cts, _, grads = g.gradients(tuple(p.input_names))
    run = Straightline([x for x in grads if x is not None], list(g.inputs.values()) + list(cts),
                  backend_for([ct]))
    values = [t.detach() for t in inputs.values()] + [ct]
    run(values)
    assert ("gelu_grad_times(" in run.source(values)) == fused


def test_torch_gelu_grad_times_a_broadcast_is_a_multiply():
    """gelu'(c[h]) times a[b,h] (the product broadcasts): no gelu_backward,
    whose operands must have one shape."""
    from einvjp.ir import Expr, axes
    c, a = Input("c", (3,)), Input("a", (4, 3))
    b, h = axes(a)
    y = (prims.gelu_grad(Expr(c, [h])) * Expr(a, [b, h])).node
    feed = {c: torch.randn(3, dtype=torch.float64), a: torch.randn(4, 3, dtype=torch.float64)}
    check([y], feed)
    run = Straightline([y], list(feed), backend_for(list(feed.values())))
    run(list(feed.values()))
    source = run.source(list(feed.values()))
    assert "f_gelu_grad(v0)" in source and "_times" not in source


@ALL
def test_function_of_numbers_in_the_programs_precision(xp):
    """exp(s) of a number in a float64 program is computed in float64 (not
    in the library's default float32), in the interpreter and the code."""
    p = einvjp.compile("y[i] = exp(s) x[i] + sqrt(s)")
    x = np.array([1.0, -2.0])
    for s in (0.5, 0.5, 2.0, 2.0):  # constants, then arguments of the code
        y = p(x=xp(x), s=s)
        assert str(y.dtype).endswith("float64")
        np.testing.assert_allclose(_np(y), np.exp(s) * x + np.sqrt(s), rtol=1e-15)
