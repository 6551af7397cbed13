"""einvjp.einsum on jax arrays, under every JAX transform, against jnp.einsum.

Each corpus row is checked for the forward (eager), and under `jit` for
`jax.vjp` (random cotangent), `jax.jvp`, `vmap` (of one operand, and of all
operands nested twice), grad of grad, `jacfwd`, `jacrev` and `jax.hessian`,
each against the same thing built on `jnp.einsum(..., precision=HIGHEST)` (or
on jnp ops, for the GE extensions `jnp.einsum` rejects).  Transforms of one kind share one
`jit` per side (a failure names the transform by its key): XLA compilations,
not the computations, are what a test run spends its time on.
`test_eager_transforms` covers the transforms without `jit`.

Tolerances: float64 and complex128 agree to 1e-10 (relative and absolute;
operands are O(1) and contractions short).  float32 agrees to 2e-5: both sides
round each product and sum once, in different orders.
"""

from typing import Callable, NamedTuple, Optional

import numpy as np
import pytest
from conftest import jax_fast_x64

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import einvjp  # noqa: E402

HIGHEST = jax.lax.Precision.HIGHEST
TOL = {"float64": 1e-10, "complex128": 1e-10, "float32": 2e-5}


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax_fast_x64():
        yield


class Case(NamedTuple):
    eq: str
    shapes: tuple
    sizes: Optional[dict] = None
    ref: Optional[Callable] = None  # for GE extensions: the same thing in jnp ops

    def ours(self, *xs):
        return einvjp.einsum(self.eq, *xs, sizes=self.sizes)

    def theirs(self, *xs):
        if self.ref is not None:
            return self.ref(*xs)
        return jnp.einsum(self.eq, *xs, precision=HIGHEST)


CORPUS = [
    Case("ij,jk->ik", ((3, 4), (4, 5))),
    Case("ij,jk", ((3, 4), (4, 5))),
    Case("ji,jk->ik", ((4, 3), (4, 5))),
    Case("bij,bjk->bik", ((2, 3, 4), (2, 4, 5))),
    Case("bhqd,bhkd->bhqk", ((2, 3, 4, 5), (2, 3, 6, 5))),
    Case("ii->", ((4, 4),)),
    Case("ii,ij->j", ((3, 3), (3, 4))),
    Case("ii->i", ((4, 4),)),
    Case("iii->i", ((3, 3, 3),)),
    Case("iij->ji", ((3, 3, 2),)),
    Case("ij->", ((3, 4),)),
    Case("ij->ji", ((3, 4),)),
    Case("i,j->ij", ((3,), (4,))),
    Case("i,i->", ((5,), (5,))),
    Case("ij,ij->ij", ((3, 1), (3, 4))),
    Case("ij,ij->", ((1, 4), (3, 1))),
    Case("...ij,...jk->...ik", ((2, 3, 4), (4, 5))),
    Case("i...,i...->...", ((3, 1, 4), (3, 2, 1))),
    Case(",->", ((), ())),
    Case(",i->i", ((), (3,))),
    Case("ij,jk->ik", ((3, 0), (0, 5))),
    Case("ij,jk->ik", ((0, 2), (2, 3))),
    Case("ij,jk,kl->il", ((2, 3), (3, 4), (4, 5))),
    Case("ab,bc,cd,de->ae", ((2, 3), (3, 4), (4, 3), (3, 2))),
    Case("bi,oij,bj->bo", ((2, 3), (4, 3, 5), (2, 5))),
    # GE extensions (DESIGN §1): repeated and output-only labels.
    Case("i->ii", ((3,),), ref=jnp.diag),
    Case("i->ij", ((3,),), {"j": 3}, ref=lambda x: jnp.broadcast_to(x[:, None], (3, 3))),
    Case("ij->ikj", ((3, 4),), {"k": 2},
         ref=lambda x: jnp.broadcast_to(x[:, None, :], (3, 2, 4))),
    Case("ij->kj", ((3, 4),), {"k": 2},
         ref=lambda x: jnp.broadcast_to(jnp.sum(x, 0), (2, 4))),
    Case("ii->ii", ((3, 3),), ref=lambda x: x * jnp.eye(3, dtype=x.dtype)),
    Case("i,j->iij", ((3,), (2,)),
         ref=lambda x, y: jnp.eye(3, dtype=x.dtype)[:, :, None] * x[:, None, None] * y),
]
IDS = [f"{c.eq}:{'x'.join(map(str, c.shapes))}" for c in CORPUS]
corpus = pytest.mark.parametrize("case", CORPUS, ids=IDS)
DTYPES = ("float64", "complex128", "float32")


def rand(rng, shape, dtype="float64"):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return jax.device_put(x.astype(dtype))  # jnp.asarray would compile a program


def operands(case, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return [rand(rng, s, dtype) for s in case.shapes]


def close(ours, theirs, dtype="float64"):
    """Same tree, shapes and dtypes; values within the dtype's tolerance."""
    a, tree_a = jax.tree_util.tree_flatten_with_path(ours)
    b, tree_b = jax.tree_util.tree_flatten_with_path(theirs)
    assert tree_a == tree_b
    for (path, u), (_, v) in zip(a, b):
        where = jax.tree_util.keystr(path)
        assert (u.shape, u.dtype) == (v.shape, v.dtype), where
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=TOL[dtype],
                                   atol=TOL[dtype], err_msg=where)


def scalar(f):
    """A scalar function with nonzero second derivatives in every operand."""
    return lambda *xs: jnp.sum(jnp.sin(f(*xs)))


def argnums(case):
    return tuple(range(len(case.shapes)))


def jit(f):
    """`jax.jit`, compiled fast: on CPU without XLA's fusion emitters (a
    third of the compile time, same numbers)."""
    cpu = jax.default_backend() == "cpu"
    return jax.jit(f, compiler_options={"xla_cpu_use_fusion_emitters": False} if cpu else None)


def check(case, transforms, *args):
    """`transforms(f)(*args)` (a dict) for ours and theirs, each under one `jit`."""
    close(jit(transforms(case.ours))(*args), jit(transforms(case.theirs))(*args))


@corpus
def test_forward(case):
    """Eager (the primitive's impl); `test_vjp_jvp` has it under `jit`, per dtype."""
    xs = operands(case)
    close(case.ours(*xs), jit(case.theirs)(*xs))


@corpus
def test_vjp_jvp(case):
    """Under `jit`, in every dtype (one program for all three)."""
    args = {}
    for dtype in DTYPES:
        xs, ts = operands(case, dtype), operands(case, dtype, seed=1)
        ct = rand(np.random.default_rng(2), jax.eval_shape(case.ours, *xs).shape, dtype)
        args[dtype] = xs, ts, ct

    def first_order(f):
        return lambda args: {dtype: {"jit": f(*xs), "vjp": jax.vjp(f, *xs)[1](ct),
                                     "jvp": jax.jvp(f, xs, ts)}
                             for dtype, (xs, ts, ct) in args.items()}
    ours, theirs = jit(first_order(case.ours))(args), jit(first_order(case.theirs))(args)
    for dtype in DTYPES:
        close(ours[dtype], theirs[dtype], dtype)


@corpus
def test_vmap(case):
    # Batches are stacked in NumPy: an eager jnp op would be one more compilation.
    xs, ys, zs = ([np.asarray(x) for x in operands(case, seed=s)] for s in (0, 1, 2))
    n = len(xs)
    one = [xs[:k] + [np.stack([xs[k], ys[k], -xs[k]])] + xs[k + 1:] for k in range(n)]
    # All operands, batched twice: a leading axis, then (a fresh label each
    # time) the last axis.
    twice = [np.stack([np.stack(b, -1), -np.stack(b, -1)]) for b in zip(xs, ys, zs)]
    inner = [x.ndim - 2 for x in twice]
    check(case, lambda f: lambda one, twice: {
        **{f"operand {k}": jax.vmap(f, [None] * k + [0] + [None] * (n - k - 1))(*one[k])
           for k in range(n)},
        "all operands, nested": jax.vmap(jax.vmap(f, inner))(*twice),
    }, jax.device_put(one), jax.device_put(twice))


@corpus
def test_higher(case):
    n = argnums(case)
    pairs = n if len(n) <= 2 else (n[0], n[-1])  # Hessian blocks: kept to 2x2 (compile time)

    def grad_of_grad(f):
        g = jax.grad(scalar(f), n)
        return jax.grad(lambda *xs: jnp.sum(jnp.stack([jnp.sum(jnp.cos(gk)) for gk in g(*xs)])), n)

    check(case, lambda f: lambda *xs: {
        "grad of grad": grad_of_grad(f)(*xs),
        "jacfwd": jax.jacfwd(f, n)(*xs),
        "jacrev": jax.jacrev(f, n)(*xs),
        "hessian": jax.hessian(scalar(f), pairs)(*xs),
    }, *operands(case))


def test_eager_transforms():
    """Without `jit`: every primitive runs through its own compiled impl."""
    case = CORPUS[0]
    xs = operands(case)
    n = argnums(case)
    batched = [jax.device_put(np.stack([x, -x])) for x in map(np.asarray, xs)]
    for transform, args in [(lambda f: jax.grad(scalar(f), n), xs), (jax.vmap, batched),
                            (lambda f: jax.jacfwd(f, n), xs)]:
        close(transform(case.ours)(*args), transform(case.theirs)(*args))


def test_dtype_promotion():
    """Mixed dtypes promote like jnp.einsum; gradients come back in each
    operand's own dtype (the real part for a real operand)."""
    rng = np.random.default_rng(0)
    x, y = rand(rng, (3, 4), "float32"), rand(rng, (4, 2), "complex128")
    ours = lambda x, y: einvjp.einsum("ij,jk->ik", x, y)  # noqa: E731
    theirs = lambda x, y: jnp.einsum("ij,jk->ik", x, y, precision=HIGHEST)  # noqa: E731
    close(ours(x, y), theirs(x, y), "float32")
    ct = rand(rng, (3, 2), "complex128")
    close(jax.vjp(ours, x, y)[1](ct), jax.vjp(theirs, x, y)[1](ct), "float32")


def test_numpy_constant():
    """A NumPy array next to a jax array is a constant operand."""
    rng = np.random.default_rng(0)
    a, y = rng.standard_normal((3, 4)), rand(rng, (4, 2))
    ours = jax.grad(lambda y: jnp.sum(jnp.sin(einvjp.einsum("ij,jk->ik", a, y))))(y)
    theirs = jax.grad(lambda y: jnp.sum(jnp.sin(jnp.einsum("ij,jk->ik", a, y))))(y)
    close(ours, theirs)


@pytest.mark.parametrize("optimize", ["greedy", False, [(1, 2), (0, 1)],
                                      ["einsum_path", (0, 1), (0, 1)], "random-greedy"])
def test_optimize(optimize):
    """Any path choice: a derived contraction (transpose, batching) gets a
    method name as is, and "auto" instead of a path or optimizer instance."""
    if optimize == "random-greedy":
        import opt_einsum
        optimize = opt_einsum.RandomGreedy(max_repeats=4)
    case = next(c for c in CORPUS if c.eq == "ij,jk,kl->il")
    xs = operands(case)

    def transforms(f):
        return lambda *xs: {"hessian": jax.hessian(scalar(f), (0, 2))(*xs),
                            "vmap": jax.vmap(f, (None, None, 0))(*xs[:2], jnp.stack([xs[2]] * 2))}
    ours = jit(transforms(lambda *xs: einvjp.einsum(case.eq, *xs, optimize=optimize)))
    close(ours(*xs), jit(transforms(case.theirs))(*xs))


def test_einvjp_vjp():
    """`einvjp.vjp` on jax arrays runs the plan's VJP with the jax op table."""
    x, y = operands(next(c for c in CORPUS if c.eq == "ii,ij->j"), "complex128")
    ct = rand(np.random.default_rng(1), (4,), "complex128")
    ours = einvjp.vjp("ii,ij->j", (x, y), ct)
    theirs = jax.vjp(lambda x, y: jnp.einsum("ii,ij->j", x, y), x, y)[1](ct)
    close(ours, theirs, "complex128")


def test_derivatives_stay_ges():
    """Every contraction in a Hessian's jaxpr is the einvjp primitive."""
    x, y = operands(CORPUS[0])
    f = scalar(CORPUS[0].ours)
    text = str(jax.make_jaxpr(jax.hessian(f, (0, 1)))(x, y))
    assert "einvjp_ge" in text
    assert "dot_general" not in text


def test_program_under_jit_traces_its_written_code(monkeypatch):
    """jit traces a program once per signature: that trace runs the code
    written for the program (plain jax ops, compiled by XLA), not only the
    interpreter's first call (whose ops are then unused), for the forward
    and for the VJP program."""
    from einvjp import codegen
    written, ran = [], set()
    write = codegen._Writer.write

    def spy(self):
        fn, source = write(self)
        written.append(source)
        return (lambda *a: ran.add(source) or fn(*a)), source
    monkeypatch.setattr(codegen._Writer, "write", spy)
    prog = einvjp.compile("y[b,h] = x[b,h] w[h] - x[b,j] w[j] 1[h] / H\n"
                          "z = y[b,h] y[b,h]\nreturn y, z")
    rng = np.random.default_rng(3)
    x, w = rand(rng, (3, 4), "float64"), rand(rng, (4,), "float64")
    f = jax.jit(jax.value_and_grad(lambda x, w: prog(x=x, w=w)[1], (0, 1)))
    got = f(x, w)
    assert len(written) >= 2 and ran == set(written)  # the forward's code, the VJP's
    close(got, jax.value_and_grad(
        lambda x, w: ((x * w - (x @ w)[:, None] / 4) ** 2).sum(), (0, 1))(x, w))


@pytest.mark.parametrize("eq", ["i->ii", "ii->i", "iii->i", "iij->ji", "i,j->iij"])
def test_no_delta_gather_or_scatter(eq):
    """Diagonals are strided slices and embeddings interior padding, also in
    their derivatives: no identity (iota), gather or scatter is compiled.
    (`jax.hessian` itself builds its basis with iota, so it is not checked.)"""
    case = next(c for c in CORPUS if c.eq == eq)
    xs = operands(case)
    f = scalar(case.ours)
    grad = jax.grad(f, argnums(case))
    second = jax.grad(lambda *xs: jnp.sum(jnp.stack([jnp.sum(g ** 2) for g in grad(*xs)])),
                      argnums(case))
    for g in (case.ours, grad, second):
        text = jax.jit(g).lower(*xs).as_text()
        for op in ("iota", "gather", "scatter"):
            assert op not in text, (eq, op)


def test_joint_transpose_is_an_error():
    """A GE is linear in each operand, not in two at once."""
    x = jnp.ones(3)
    with pytest.raises(einvjp.EinvjpError, match="transposed in operands"):
        jax.linear_transpose(lambda x: einvjp.einsum("i,i->", x, x), x)(1.0)
