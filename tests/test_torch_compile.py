"""einvjp under torch.compile(fullgraph=True), against eager torch.

Layers (`einvjp.einsum`, a contract expression) and programs run inside a
compiled module with no graph break, cold (a fresh interpreter, shapes never
planned), with one tensor passed twice, across batch sizes (one compilation
each, under `dynamic=True` too), forward and backward equal in float64 to an
eager module written with `torch.einsum` / torch ops, and with no warning:
neither a Python warning nor one that Dynamo or Inductor logs (a recompile
limit hit, a graph break).
"""

import contextlib
import importlib.util
import logging
import os
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")

import einvjp  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

TOL = 1e-12
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name):
    """examples/<name>.py (not a package), loaded by path."""
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"einvjp_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAYER_NORM = _example("layer_norm").PROGRAM.text


class _Logged(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def no_warnings():
    """Fails if anything inside warns, or Dynamo or Inductor log a warning."""
    logged = _Logged()
    loggers = [logging.getLogger(n) for n in ("torch._dynamo", "torch._inductor")]
    for lg in loggers:
        lg.addHandler(logged)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for lg in loggers:
            lg.removeHandler(logged)
    assert not caught, [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]
    assert not logged.records, [r.getMessage() for r in logged.records]


@pytest.fixture(scope="module", autouse=True)
def _inductor_imported():
    """Inductor's first use imports modules that warn of deprecations of
    torch's own; that happens here, before the tests watch for warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.compile(lambda x: x * 2, fullgraph=True)(torch.ones(2)).sum()


def compiled(fn, **options):
    torch._dynamo.reset()
    counters.clear()
    return torch.compile(fn, fullgraph=True, **options)


def compilations():
    return counters["stats"]["unique_graphs"]


def run(module, inputs, ct):
    """The output and the gradients of the inputs and parameters at `ct`."""
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = module(*inputs)
    params = list(module.parameters()) if isinstance(module, torch.nn.Module) else []
    grads = torch.autograd.grad(out, inputs + params, ct)
    return out.detach(), grads


def check(got, want):
    (y, gs), (y0, gs0) = got, want
    torch.testing.assert_close(y, y0, rtol=TOL, atol=TOL)
    for g, g0 in zip(gs, gs0):
        torch.testing.assert_close(g, g0, rtol=TOL, atol=TOL)


class Attention(torch.nn.Module):
    """Scores of a tensor with itself (one tensor passed twice), a softmax
    between two contractions, and an output-only label (a broadcast)."""

    def __init__(self, einsum, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.einsum = einsum
        self.w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64, generator=gen))
        self.v = torch.nn.Parameter(torch.randn(4, dtype=torch.float64, generator=gen))

    def forward(self, x):  # x: (batch, heads, 4)
        q = self.einsum("bhd,de->bhe", x, self.w)
        s = self.einsum("bhe,bhe->bh", q, q).softmax(-1)
        y = self.einsum("bh,bhd,d->bd", s, x, self.v)
        return y.tanh() + self.einsum("bh,bh->bh", s, s).sum(-1, keepdim=True)


def einvjp_einsum(eq, *ops):
    return einvjp.einsum(eq, *ops)


@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_layers_across_batch_sizes(backend):
    """Forward and backward at batch sizes 6, 6, 6 and a smaller last one, 4:
    one compilation per size, results equal to torch.einsum's."""
    module, reference = Attention(einvjp_einsum), Attention(torch.einsum)
    fn = compiled(module, backend=backend)
    with no_warnings():
        for n, batch in enumerate((6, 6, 6, 4)):
            gen = torch.Generator().manual_seed(n)
            x = torch.randn(batch, 5, 4, dtype=torch.float64, generator=gen)
            ct = torch.randn(batch, 4, dtype=torch.float64, generator=gen)
            check(run(fn, [x], ct), run(reference, [x], ct))
    assert compilations() == 2


def test_dynamic_shapes_recompile():
    """`dynamic=True`: each new batch size is a recompilation (einvjp plans at
    fixed sizes), never an error or a warning."""
    module, reference = Attention(einvjp_einsum), Attention(torch.einsum)
    fn = compiled(module, backend="aot_eager", dynamic=True)
    with no_warnings():
        for batch in (3, 5, 2):
            x = torch.randn(batch, 5, 4, dtype=torch.float64)
            ct = torch.randn(batch, 4, dtype=torch.float64)
            check(run(fn, [x], ct), run(reference, [x], ct))
    assert compilations() == 3


def test_contract_expression_with_a_constant():
    """A contract expression in a module: its folded constant is a tensor of
    the graph, the weight a parameter."""
    c = torch.randn(5, 2, dtype=torch.float64)
    expr = einvjp.contract_expression("bi,oij,jk->bok", (3, 4), (6, 4, 5), c, constants=[2])

    class Layer(torch.nn.Module):
        def __init__(self, contract):
            super().__init__()
            self.contract = contract
            self.w = torch.nn.Parameter(torch.randn(6, 4, 5, dtype=torch.float64))

        def forward(self, x):
            return self.contract(x, self.w).sin()

    module = Layer(expr)
    reference = Layer(lambda x, w: torch.einsum("bi,oij,jk->bok", x, w, c))
    reference.w = module.w
    fn = compiled(module, backend="inductor")
    x, ct = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, 2, dtype=torch.float64)
    with no_warnings():
        check(run(fn, [x], ct), run(reference, [x], ct))


def test_training_across_batch_sizes():
    """A small model trained for a few SGD steps on batches of 8 and a last
    batch of 3 keeps the parameters of the same model in eager torch."""
    torch.manual_seed(0)
    model, reference = Attention(einvjp_einsum, seed=1), Attention(torch.einsum, seed=1)
    fn = compiled(model, backend="inductor")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    data = torch.randn(19, 5, 4, dtype=torch.float64)
    target = torch.randn(19, 4, dtype=torch.float64)
    with no_warnings():
        for epoch in range(2):
            for start in range(0, 19, 8):
                x, t = data[start:start + 8], target[start:start + 8]
                for m, o in ((fn, opt), (reference, ref_opt)):
                    o.zero_grad()
                    ((m(x) - t) ** 2).mean().backward()
                    o.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=TOL, atol=TOL)
    assert compilations() == 2


def layer_norm_torch(x, eps, gamma, beta):
    m = x.mean(-1, keepdim=True)
    mu = x - m
    v = (mu * mu).mean(-1, keepdim=True)
    return mu / torch.sqrt(v + eps) * gamma + beta


def mlp(x, w1, b1, w2):
    return einvjp.einsum("bi,ij->bj", einvjp.tanh(einvjp.einsum("bi,ij->bj", x, w1) + b1), w2)


def mlp_torch(x, w1, b1, w2):
    return torch.tanh(x @ w1 + b1) @ w2


@pytest.mark.parametrize("text, reference, shapes", [
    (LAYER_NORM, layer_norm_torch, lambda b: [(b, 6), 1e-5, (6,), (6,)]),
    (mlp, mlp_torch, lambda b: [(b, 4), (4, 5), (5,), (5, 3)]),
], ids=["layer-norm-text", "mlp-traced"])
def test_program(text, reference, shapes):
    """A program (index-notation text, a traced function) in a compiled
    function: forward and backward at two shapes, one compilation each, equal
    to eager torch autograd of the same math."""
    prog = einvjp.compile(text)
    fn = compiled(lambda *args: prog(*args).exp(), backend="inductor")
    with no_warnings():
        for batch in (8, 8, 3):
            gen = torch.Generator().manual_seed(batch)
            args = [torch.randn(s, dtype=torch.float64, generator=gen).requires_grad_()
                    if isinstance(s, tuple) else s for s in shapes(batch)]
            out = fn(*args)
            ct = torch.randn(out.shape, dtype=torch.float64, generator=gen)
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            grads = torch.autograd.grad(out, tensors, ct)
            want = reference(*args).exp()
            torch.testing.assert_close(out, want, rtol=TOL, atol=TOL)
            for g, g0 in zip(grads, torch.autograd.grad(want, tensors, ct)):
                torch.testing.assert_close(g, g0, rtol=TOL, atol=TOL)
    assert compilations() == 2


def test_functions_on_tensors():
    """einvjp's functions called on tensors (each an einvjp program run
    eagerly) compile too."""
    def f(x):
        return (einvjp.gelu(x) * einvjp.logsumexp(x, axis=1, keepdims=True)).sum() + \
            einvjp.softmax(x).square().sum()

    def reference(x):
        return (torch.nn.functional.gelu(x) * torch.logsumexp(x, 1, keepdim=True)).sum() + \
            x.softmax(-1).square().sum()
    fn = compiled(f, backend="inductor")
    x = torch.randn(4, 5, dtype=torch.float64)
    with no_warnings():
        check(run(fn, [x], torch.tensor(1.5, dtype=torch.float64)),
              run(reference, [x], torch.tensor(1.5, dtype=torch.float64)))


def test_vjp():
    """einvjp.vjp compiles: None for an operand not in `wrt`, and a gradient
    that would be the cotangent itself ("ij->ij") is a tensor of its own."""
    a, b, g = torch.randn(2, 3), torch.randn(3, 4), torch.randn(2, 4)
    fn = compiled(lambda a, b, g: einvjp.vjp("ij,jk->ik", (a, b), g, wrt=0), backend="aot_eager")
    with no_warnings():
        ga, gb = fn(a, b, g)
        same = compiled(lambda a, g: einvjp.vjp("ij->ij", (a,), g)[0], backend="aot_eager")(a, a)
    assert gb is None
    torch.testing.assert_close(ga, g @ b.T)
    assert torch.equal(same, a) and same.data_ptr() != a.data_ptr()


def test_cold():
    """In a fresh interpreter, the first einvjp call on torch tensors at all
    is inside torch.compile(fullgraph=True), at shapes never planned."""
    script = """if True:
        import sys, warnings
        import torch, einvjp
        assert "einvjp.backends.torch" not in sys.modules
        f = torch.compile(lambda q: einvjp.einsum("bhd,bhd->bh", q, q).sum(), fullgraph=True,
                          backend="aot_eager")
        q = torch.randn(3, 7, 11, dtype=torch.float64, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = f(q)
            y.backward()
        torch.testing.assert_close(y, (q * q).sum(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(q.grad, 2 * q.detach(), rtol=1e-12, atol=1e-12)
        print("ok")
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_bad_input_names_the_error():
    """Bad input under torch.compile still raises einvjp's typed error: as
    itself without fullgraph, as the cause of Dynamo's error with it."""
    a, b = torch.ones(2, 3), torch.ones(4, 2)

    def f(a, b):
        return einvjp.einsum("ij,jk->ik", a, b)
    torch._dynamo.reset()
    with warnings.catch_warnings(), pytest.raises(einvjp.LabelSizeError):
        warnings.simplefilter("ignore")  # Dynamo's, on its way to the error
        torch.compile(f, backend="eager")(a, b)
    with pytest.raises(Exception) as info:
        compiled(f, backend="eager")(a, b)
    causes, err = [], info.value
    while err is not None:
        causes.append(err)
        err = err.__cause__ or err.__context__
    assert any(isinstance(e, einvjp.LabelSizeError) for e in causes)
