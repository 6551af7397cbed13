"""The torch backend against torch.einsum and torch's autodiff.

Every corpus row is checked for: forward and gradients (float64 tight,
float32 and complex128), gradcheck / gradgradcheck (float64, with forward
mode and vmap-batched checks), double backward, the torch.func transforms,
and a float16 / bfloat16 forward.  The GE extensions ("i->ii", "i->ij") are
compared to the torch ops they stand for.

Tolerances: float64 and complex128 1e-10; float32 1e-5 (relative and
absolute, the operands being standard normal and the contractions short);
float16 1e-2 and bfloat16 5e-2 against the float64 result.
"""

import importlib
import warnings

import numpy as np

import pytest

torch = pytest.importorskip("torch")

import einvjp  # noqa: E402
from torch import func  # noqa: E402

tb = importlib.import_module("einvjp.backends.torch")


def ref(eq):
    return lambda *ops: torch.einsum(eq, *ops)


# (id, equation, shapes, sizes, torch reference)
CASES = [
    ("matmul", "ij,jk->ik", [(3, 4), (4, 5)], None, None),
    ("matmul-implicit", "ij,jk", [(3, 4), (4, 2)], None, None),
    ("matvec", "ij,j->i", [(3, 4), (4,)], None, None),
    ("dot", "i,i->", [(5,), (5,)], None, None),
    ("outer", "i,j->ij", [(3,), (4,)], None, None),
    ("batched-attention", "bhqd,bhkd->bhqk", [(2, 2, 3, 2), (2, 2, 4, 2)], None, None),
    ("batched-matmul", "bij,bjk->bik", [(2, 3, 4), (2, 4, 3)], None, None),
    ("identity", "ij->ij", [(3, 4)], None, None),
    ("transpose", "ijk->kji", [(2, 3, 4)], None, None),
    ("sum-one", "ij->i", [(3, 4)], None, None),
    ("sum-all", "ij->", [(3, 4)], None, None),
    ("trace", "ii->", [(4, 4)], None, None),
    ("diag-times", "ii,ij->j", [(3, 3), (3, 4)], None, None),
    ("diagonal", "ii->i", [(4, 4)], None, None),
    ("partial-diagonal", "iij->ji", [(3, 3, 2)], None, None),
    ("size1-broadcast", "ij,ij->ij", [(3, 1), (3, 4)], None, None),
    ("ellipsis-matmul", "...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)], None, None),
    ("ellipsis-sum", "a...,a...->...", [(3, 2, 1), (3, 4)], None, None),
    ("scalars", ",->", [(), ()], None, None),
    ("scalar-vector", ",i->i", [(), (3,)], None, None),
    ("zero-contracted", "ij,jk->ik", [(3, 0), (0, 4)], None, None),
    ("zero-kept", "ij,jk->ik", [(0, 4), (4, 5)], None, None),
    ("chain-3", "ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)], None, None),
    ("chain-4", "ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 3), (3, 2)], None, None),
    ("hadamard-3", "ab,ab,ab->a", [(3, 4), (3, 4), (3, 4)], None, None),
    ("bilinear", "bi,oij,bj->bo", [(2, 3), (2, 3, 4), (2, 4)], None, None),
    ("ge-diag-embed", "i->ii", [(4,)], None, lambda x: torch.diag_embed(x)),
    ("ge-broadcast", "i->ij", [(4,)], {"j": 3}, lambda x: x[:, None].expand(4, 3)),
    ("ge-embed-batched", "ij->iij", [(3, 2)], None,
     lambda x: torch.diag_embed(x.T).permute(1, 2, 0)),
]
IDS = [c[0] for c in CASES]


def gefn(case):
    _, eq, _, sizes, _ = case
    return lambda *ops: einvjp.einsum(eq, *ops, sizes=sizes)


def reffn(case):
    return case[4] or ref(case[1])


def make(shapes, dtype=torch.float64, seed=0, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, dtype=dtype, generator=gen).requires_grad_(requires_grad)
            for s in shapes]


TOL = {torch.float64: 1e-10, torch.complex128: 1e-10, torch.float32: 1e-5,
       torch.float16: 1e-2, torch.bfloat16: 5e-2}


def close(a, b, tol=1e-10):
    """Equal in values (and shape), in any nesting of tuples."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, tol)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.complex128],
                         ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_gradients(case, dtype):
    ops = make(case[2], dtype, requires_grad=True)
    y, r = gefn(case)(*ops), reffn(case)(*ops)
    assert y.dtype == r.dtype
    close(y, r, TOL[dtype])
    g = make([tuple(r.shape)], dtype, seed=1)[0]
    grads = torch.autograd.grad(y, ops, g)
    expected = torch.autograd.grad(r, ops, g)
    close(grads, expected, TOL[dtype])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case):
    ops = make(case[2], requires_grad=True)
    assert torch.autograd.gradcheck(gefn(case), ops, check_forward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradgradcheck(case):
    ops = make(case[2], requires_grad=True)
    assert torch.autograd.gradgradcheck(gefn(case), ops, check_fwd_over_rev=True,
                                        check_rev_over_rev=True, fast_mode=True)


def test_gradcheck_complex():
    case = CASES[IDS.index("bilinear")]
    ops = make(case[2], torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(gefn(case), ops, fast_mode=True)
    assert torch.autograd.gradgradcheck(gefn(case), ops, fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_double_backward(case, dtype):
    """Gradients of a function of the gradients, against torch's."""
    ops = make(case[2], dtype, requires_grad=True)
    results = []
    for fn in (gefn(case), reffn(case)):
        y = fn(*ops)
        g = make([tuple(y.shape)], dtype, seed=1)[0].requires_grad_(True)
        grads = torch.autograd.grad(y, ops, g, create_graph=True)
        scalar = sum((q.abs() ** 2).sum() for q in grads) + (y.abs() ** 2).sum()
        results.append(torch.autograd.grad(scalar, ops + [g]))
    close(*results)


TRANSFORMS = ["grad", "vjp", "vmap", "vmap-one", "jacrev", "jacfwd", "hessian"]


def transformed(name, fn, ops):
    n = len(ops)
    argnums = tuple(range(n))
    w = make([tuple(fn(*ops).shape)], seed=2)[0]
    scalar = lambda *xs: (fn(*xs) * w).sum()  # noqa: E731
    if name == "grad":
        return func.grad(scalar, argnums=argnums)(*ops)
    if name == "vjp":
        y, pullback = func.vjp(fn, *ops)
        return (y,) + pullback(w)
    if name == "vmap":
        batched = make([(2,) + tuple(x.shape) for x in ops], seed=3)
        return func.vmap(fn)(*batched)
    if name == "vmap-one":
        batched = make([(2,) + tuple(ops[-1].shape)], seed=3)
        return func.vmap(fn, in_dims=(None,) * (n - 1) + (0,))(*ops[:-1], *batched)
    if name == "jacrev":
        return func.jacrev(fn, argnums=argnums)(*ops)
    if name == "jacfwd":
        return func.jacfwd(fn, argnums=argnums)(*ops)
    if name == "hessian":
        return func.hessian(lambda *xs: (fn(*xs) ** 2 * w).sum(), argnums=argnums)(*ops)
    raise ValueError(name)


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_torch_func(case, name):
    ops = make(case[2])
    close(transformed(name, gefn(case), ops), transformed(name, reffn(case), ops))


@pytest.mark.xfail(reason="torch bug pytorch/pytorch#197867: nested jacfwd through an "
                          "autograd.Function's jvp gives zero (hessian = jacfwd(jacrev) works)",
                   strict=False)
def test_jacfwd_of_jacfwd():
    v = make([(3,)])[0]
    fn = lambda x: einvjp.einsum("i,i->", x, x)  # noqa: E731
    close(func.jacfwd(func.jacfwd(fn))(v), 2 * torch.eye(3, dtype=torch.float64))


def test_jacrev_of_jacrev_with_a_constant_operand():
    """An operand saved as None for backward (no gradient needs it) while
    every operand is saved for forward: under the vmap of the outer jacrev
    torch keeps one batch-dim record for both lists."""
    x, w = make([(3, 4), (4,)])

    def second(einsum):
        return func.jacrev(func.jacrev(lambda x: torch.exp(einsum(x, w)).sum()))(x)
    close(second(lambda x, w: einvjp.einsum("ij,j->i", x, w)), second(lambda x, w: x @ w))


@pytest.mark.parametrize("name", ["hessian", "vmap-of-jvp"])
def test_broadcast_output_under_batched_forward_mode(name):
    """A GE of several operands with an output-only label (a zero-copy
    broadcast): under batched forward mode autograd copies the tangent into
    the output's layout, which overlaps unless the broadcast runs outside
    the Function."""
    a, g, w, t = make([(4, 6), (6,), (4, 6, 3), (2, 4, 6)])

    def fn(einsum):
        def f(a):
            y = einsum(a, torch.sin(a).sum(1), g)
            return (torch.sin(y) * w).sum()
        return f
    ours = fn(lambda *ops: einvjp.einsum("ab,a,b->abc", *ops, sizes={"c": 3}))
    theirs = fn(lambda *ops: torch.einsum("ab,a,b->ab", *ops)[..., None].expand(4, 6, 3))
    if name == "hessian":
        close(func.hessian(ours)(a), func.hessian(theirs)(a))
    else:
        def vjvp(f):
            return func.vmap(lambda v: func.jvp(f, (a,), (v,))[1])(t)
        close(vjvp(ours), vjvp(theirs))


def spy(monkeypatch):
    """Record the GE of every role swap the backward runs."""
    asked = []
    real = tb._swap_plan

    def swap_plan(plan, k):
        asked.append(plan.ge.vjp(k).key())
        return real(plan, k)
    monkeypatch.setattr(tb, "_swap_plan", swap_plan)
    return asked


@pytest.mark.parametrize("wanted", [(0,), (1,), (2,), (0, 2)])
def test_only_requested_gradients(monkeypatch, wanted):
    eq, shapes = "bi,oij,bj->bo", [(2, 3), (4, 3, 5), (2, 5)]
    ops = [x.requires_grad_(k in wanted) for k, x in enumerate(make(shapes))]
    y = einvjp.einsum(eq, *ops)
    asked = spy(monkeypatch)
    y.sum().backward()
    # The backward runs the role swap of each pairwise step, and only of the
    # steps' inputs that lead to a wanted operand.
    plan = einvjp.plan(eq, shapes)
    needed = set(wanted)
    for step in plan.steps:
        if needed.intersection(step.ins):
            needed.add(step.out)
    expected = [step.ge.vjp(j).key() for step in reversed(plan.steps)
                for j, i in enumerate(step.ins) if i in needed and len(step.ins) > 1]
    assert sorted(asked) == sorted(expected)
    assert [x.grad is not None for x in ops] == [k in wanted for k in range(3)]


def test_only_requested_gradients_torch_func(monkeypatch):
    eq, shapes = "ij,jk->ik", [(3, 4), (4, 5)]
    ops = make(shapes)
    asked = spy(monkeypatch)
    func.grad(lambda a, b: einvjp.einsum(eq, a, b).sum(), argnums=1)(*ops)
    assert asked == [einvjp.plan(eq, shapes).ge.vjp(1).key()]


def test_unneeded_operands_not_saved():
    """An operand needed by no requested gradient is not kept for backward."""
    a, b = make([(3, 4), (4, 5)])
    a.requires_grad_(True)
    y = einvjp.einsum("ij,jk->ik", a, b)
    assert type(y.grad_fn).__name__ == "GEFunctionBackward"
    saved = y.grad_fn.saved_tensors
    assert saved[0] is None and saved[1] is b


def test_third_order():
    """d/dx of sum(x^3) three times, every backward through the Function."""
    x = make([(4,)], requires_grad=True)[0]
    y = einvjp.einsum("i,i,i->", x, x, x)
    g1, = torch.autograd.grad(y, x, create_graph=True)
    g2, = torch.autograd.grad(g1.sum(), x, create_graph=True)
    g3, = torch.autograd.grad(g2.sum(), x)
    close((g1, g2, g3), (3 * x ** 2, 6 * x, torch.full_like(x, 6.0)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_meta_device(case):
    """Forward and backward on data-less tensors: nothing reads values (no
    host synchronisation, no NumPy round trip)."""
    ops = [torch.empty(s, device="meta", requires_grad=True) for s in case[2]]
    y = gefn(case)(*ops)
    assert y.device.type == "meta"
    assert y.shape == reffn(case)(*make(case[2])).shape
    grads = torch.autograd.grad(y, ops, torch.empty_like(y))
    assert [g.shape for g in grads] == [x.shape for x in ops]


@pytest.mark.parametrize("optimize", ["greedy", "optimal", [(1, 2), (0, 1)]], ids=str)
def test_optimize_options(optimize):
    """The backward plans the role-swapped GEs with the forward's option."""
    ops = make([(2, 3), (3, 4), (4, 2)], requires_grad=True)
    y = einvjp.einsum("ij,jk,kl->il", *ops, optimize=optimize)
    r = torch.einsum("ij,jk,kl->il", *ops)
    close(y, r)
    close(torch.autograd.grad(y.sum(), ops), torch.autograd.grad(r.sum(), ops))


def test_core_vjp_on_tensors():
    a, b = make([(3, 4), (4, 5)], requires_grad=True)
    g = make([(3, 5)], seed=1)[0]
    grads = einvjp.vjp("ij,jk->ik", (a, b), g)
    close(grads, torch.autograd.grad(torch.einsum("ij,jk->ik", a, b), (a, b), g))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_low_precision(case, dtype):
    ops64 = make(case[2])
    ops = [x.to(dtype).requires_grad_(True) for x in ops64]
    y = gefn(case)(*ops)
    assert y.dtype == dtype
    close(y.double(), reffn(case)(*[x.double() for x in ops]), TOL[dtype])
    grads = torch.autograd.grad(y, ops, torch.ones_like(y))
    assert all(g.dtype == dtype for g in grads)


PAIRS = [(torch.float32, torch.float64), (torch.float16, torch.float32),
         (torch.bfloat16, torch.float16), (torch.int64, torch.float32),
         (torch.float64, torch.complex64), (torch.float16, torch.complex128)]


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
@pytest.mark.parametrize("da,db", PAIRS, ids=str)
@pytest.mark.parametrize("shapes", [[(3, 4), (4,)], [(), (4,)], [(3, 4), ()]], ids=str)
def test_dtype_promotion_matches_torch(shapes, da, db):
    """Mixed dtypes are promoted by torch.result_type (torch.einsum refuses them)."""
    a = torch.ones(shapes[0], dtype=da)
    b = torch.ones(shapes[1], dtype=db)
    if not shapes[0]:
        eq = ",i->i"
    elif not shapes[1]:
        eq = "ij,->ij"
    else:
        eq = "ij,j->i"
    assert einvjp.einsum(eq, a, b).dtype == torch.result_type(a, b)


def test_dtype_promotion_three_operands():
    """Against a ternary torch op (addcmul promotes over all its inputs)."""
    for dims, dtypes in [((1, 0, 0), (torch.int32, torch.float64, torch.float16)),
                         ((1, 1, 0), (torch.float16, torch.bfloat16, torch.complex64)),
                         ((0, 0, 1), (torch.float64, torch.complex64, torch.int8)),
                         ((0, 1, 0), (torch.float64, torch.float32, torch.float16))]:
        ops = [torch.ones((3,) * d, dtype=dt) for d, dt in zip(dims, dtypes)]
        eq = ",".join("i" * d for d in dims) + "->i"
        assert einvjp.einsum(eq, *ops).dtype == torch.addcmul(*ops).dtype, dtypes


def test_mixed_dtype_gradients():
    a = torch.randn(3, 4, dtype=torch.float32, requires_grad=True)
    b = torch.randn(4, 2, dtype=torch.complex128, requires_grad=True)
    y = einvjp.einsum("ij,jk->ik", a, b)
    r = torch.einsum("ij,jk->ik", a.to(torch.complex128), b)
    g = torch.randn(3, 2, dtype=torch.complex128)
    grads, expected = torch.autograd.grad(y, (a, b), g), torch.autograd.grad(r, (a, b), g)
    assert [x.dtype for x in grads] == [torch.float32, torch.complex128]
    close(grads, expected, 1e-6)


def test_python_scalar():
    x = torch.randn(3, dtype=torch.float16)
    y = einvjp.einsum(",i->i", 2.0, x)
    assert y.dtype == (2.0 * x).dtype
    close(y, 2.0 * x)


def test_devices_must_agree():
    with pytest.raises(einvjp.BackendError, match="different devices"):
        einvjp.einsum("ij,jk->ik", torch.ones(2, 2), torch.ones(2, 2, device="meta"))
    # A 0-d CPU tensor goes with the others, as in torch's binary ops.
    assert einvjp.einsum(",ij->ij", torch.tensor(2.0), torch.ones(2, 2, device="meta")).is_meta


def test_numpy_mix_is_an_error():
    np = pytest.importorskip("numpy")
    with pytest.raises(einvjp.BackendError):
        einvjp.einsum("ij,jk->ik", torch.ones(2, 2), np.ones((2, 2)))


def test_diag_embed_writes_no_delta(monkeypatch):
    """The diagonal embedding never builds an identity (torch.eye) tensor."""
    monkeypatch.setattr(torch, "eye", None)
    x = torch.arange(1.0, 4.0)
    close(einvjp.einsum("i->ii", x), torch.diag(x))


def test_compile():
    """A small model calling einvjp.einsum runs under torch.compile (aot_eager,
    which traces forward and backward; with no graph break: fullgraph).
    tests/test_torch_compile.py has the rest."""
    torch._dynamo.reset()

    class Bilinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 3, 5, dtype=torch.float64))

        def forward(self, x, y):
            return einvjp.einsum("bi,oij,bj->bo", x, self.w, y).tanh().sum()

    model = Bilinear()
    x, y = make([(2, 3), (2, 5)])
    expected = torch.autograd.grad(model(x, y), model.w)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        out = compiled(x, y)
    close(out, model(x, y))
    close(torch.autograd.grad(out, model.w)[0], expected)


@pytest.mark.parametrize("text", ["y[i] = log(q) + x[i]", "y = 1[c] log(q) + x[j]",
                                  "y[i] = exp(tanh(0.25 q)) + x[i] / 7"])
def test_a_number_input_keeps_double_precision_beside_float64_tensors(text):
    """A Python float given beside float64 tensors is computed in float64 (it
    was made a float32 tensor first, off by ~1e-8 relative)."""
    import math
    import numpy as np
    q, x = 0.7123456789, np.array([1.0, 2.0, 3.0])
    prog = einvjp.compile(text, sizes={"c": 2})
    want = prog(x=x, q=q)  # numpy: double precision throughout
    got = prog(x=torch.tensor(x, dtype=torch.float64), q=q)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-15, atol=0)
    assert abs(float(einvjp.compile("y = log(q) + x[i]")(
        x=torch.zeros(2, dtype=torch.float64), q=q)) - math.log(q)) < 1e-15
    assert prog(x=torch.tensor(x, dtype=torch.float32), q=q).dtype == torch.float32


@pytest.mark.parametrize("text", ["y[i] = softmax(x[i], i)", "y[i] = silu(x[i])",
                                  "y[i] = log_sigmoid(x[i])"])
def test_an_integer_tensor_through_a_float_kernel(text):
    """An integer tensor's softmax (silu, log_sigmoid) is a float one, as
    torch's and as einvjp's on NumPy (it raised AttributeError)."""
    prog = einvjp.compile(text)
    x = np.array([1, -2, 3])
    np.testing.assert_allclose(prog(x=torch.tensor(x)).numpy(), prog(x=x), rtol=1e-6)
