"""The core on NumPy, over the corpus: forward against numpy.einsum (or a
hand-built reference for the GE extensions), VJPs against central differences
and against jax.vjp, and the properties of vjp, plan caching and derive."""

import functools
import gc
import importlib
import subprocess
import sys

import numpy as np
import pytest

import einvjp
from einvjp.testing import (check_vjp, derive_executable, expected_einsum, is_numpy_einsum,
                            jax_vjp_batch, label_sizes, random_operands, reference_einsum)

from corpus import ROWS, cases

ALL = cases()


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype).itemsize >= 8 else \
        dict(rtol=1e-4, atol=1e-5)


def test_corpus_size_and_ids():
    ids = [row[1] for row in ROWS]
    assert len(ids) >= 60
    assert len(set(ids)) == len(ids)


# --- (a) forward ---

@pytest.mark.parametrize("eq, shapes, sizes", ALL)
def test_forward(eq, shapes, sizes):
    ops = random_operands(shapes, seed=1)
    y = np.asarray(einvjp.einsum(eq, *ops, sizes=sizes))
    expected = expected_einsum(eq, ops, sizes)
    assert y.shape == np.shape(expected)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, expected, **_tol(np.float64))


@pytest.mark.parametrize("eq, shapes, sizes", cases("ge-extension"))
def test_extension_cases_are_not_numpy(eq, shapes, sizes):
    assert not is_numpy_einsum(eq, shapes)
    with pytest.raises(ValueError):
        np.einsum(eq, *random_operands(shapes))


def test_diag_embed_by_hand():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(einvjp.einsum("i->ii", x), np.diag(x))
    y = np.zeros((3, 3, 3))
    y[np.arange(3), np.arange(3), np.arange(3)] = x
    np.testing.assert_array_equal(einvjp.einsum("i->iii", x), y)


def test_broadcast_by_hand():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(einvjp.einsum("i->ij", x, sizes={"j": 5}),
                                  np.broadcast_to(x[:, None], (3, 5)))
    np.testing.assert_array_equal(einvjp.einsum("i->ji", x, sizes={"j": 2}),
                                  np.broadcast_to(x, (2, 3)))
    np.testing.assert_array_equal(einvjp.einsum("->ii", np.array(2.0), sizes={"i": 3}),
                                  2 * np.eye(3))


def test_gemm_embed_by_hand():
    a, b = random_operands([(2, 3), (3, 4)])
    ab = a @ b
    y = np.zeros((2, 2, 4, 2))
    for i in range(2):
        y[i, i, :, i] = ab[i]
    np.testing.assert_allclose(einvjp.einsum("ab,bc->aaca", a, b), y)


def test_diag_mask_by_hand():
    x = random_operands([(3, 3)])[0]
    np.testing.assert_array_equal(einvjp.einsum("ii->ii", x), np.diag(np.diag(x)))


# --- (b) VJP against central differences ---

@pytest.mark.parametrize("eq, shapes, sizes", ALL)
def test_vjp_finite_differences(eq, shapes, sizes):
    check_vjp(eq, random_operands(shapes, seed=2), sizes)


@pytest.mark.parametrize("eq, shapes, sizes", cases("gemm", "diagonal", "broadcast",
                                                    "ge-extension"))
def test_vjp_finite_differences_complex(eq, shapes, sizes):
    check_vjp(eq, random_operands(shapes, np.complex128, seed=3), sizes)


# --- (c) VJP against jax.vjp ---

JAX_DTYPES = [(np.float64, 4), (np.complex128, 5)]


def _jax_inputs(eq, shapes, sizes, dtype, seed):
    ops = random_operands(shapes, dtype, seed=seed)
    out_shape = np.shape(reference_einsum(eq, ops, sizes))
    return ops, random_operands([out_shape], dtype, seed=seed + 10)[0]


@functools.lru_cache(maxsize=None)
def _jax_expected(category):
    """jax.vjp of every row of a category in both dtypes, in one jit (one
    XLA compilation a category instead of one a case); None if JAX rejects
    the batch, and then each case is run alone."""
    work, ids = [], []
    for cat, cid, eq, shapes, sizes in ROWS:
        if cat == category:
            for dtype, seed in JAX_DTYPES:
                work.append((eq, *_jax_inputs(eq, shapes, sizes, dtype, seed), sizes))
                ids.append((cid, np.dtype(dtype)))
    try:
        return dict(zip(ids, jax_vjp_batch(work)))
    except Exception:
        return None


@pytest.mark.parametrize("cat, cid, eq, shapes, sizes",
                         [pytest.param(*row, id=row[1]) for row in ROWS])
def test_vjp_matches_jax(jax_x64, cat, cid, eq, shapes, sizes):
    """float64 and complex128 against jax.vjp (no conjugation)."""
    expected = _jax_expected(cat)
    for dtype, seed in JAX_DTYPES:
        ops, u = _jax_inputs(eq, shapes, sizes, dtype, seed)
        want = expected[cid, np.dtype(dtype)] if expected else \
            jax_vjp_batch([(eq, ops, u, sizes)])[0]
        grads = einvjp.vjp(eq, ops, u, sizes=sizes)
        assert len(grads) == len(ops)
        for k, (g, e) in enumerate(zip(grads, want)):
            g = np.asarray(g)
            msg = f"operand {k}, {np.dtype(dtype)}"
            assert g.shape == ops[k].shape, msg
            assert g.dtype == dtype, msg
            np.testing.assert_allclose(g, e, **_tol(dtype), err_msg=msg)


@pytest.mark.parametrize("eq, shapes, sizes", ALL)
def test_results_are_writeable(eq, shapes, sizes):
    """Outputs and gradients can be written to, as NumPy's results can (a
    diagonal or broadcast view comes back as an array of its own)."""
    ops = random_operands(shapes, seed=1)
    y = einvjp.einsum(eq, *ops, sizes=sizes)
    assert not isinstance(y, np.ndarray) or y.flags.writeable
    for g in einvjp.vjp(eq, ops, np.ones(np.shape(y)), sizes=sizes):
        assert g.flags.writeable
        g[...] = 0


@pytest.mark.parametrize("eq", ["ab,ab->b", "abc,cba->b", "bca,acb->cb", "ib,bi->b"])
def test_batched_dots_sum_in_the_first_operands_layout(eq):
    """A batch of dot products multiplies with the second operand brought to
    the first's layout and sums the contracted axes where they lie (no
    transposed copy of the first, which XLA would materialize)."""
    size = {"a": 3, "b": 4, "c": 2, "i": 5}
    ins = eq.split("->")[0].split(",")
    ops = random_operands([tuple(size[c] for c in t) for t in ins], seed=4)
    (step,) = einvjp.plan(eq, [o.shape for o in ops]).steps
    assert step.op.mode == "dot" and step.op.perm_a is None
    np.testing.assert_allclose(einvjp.einsum(eq, *ops), np.einsum(eq, *ops), rtol=1e-12)
    check_vjp(eq, ops)


def test_program_results_are_writeable():
    prog = einvjp.compile("y[i,j] = x[i,i] + 0 * w[j]\nz[i] = x[i,i]\nreturn y, z")
    x, w = np.ones((3, 3)), np.ones(2)
    for out in prog(x=x, w=w) + tuple(prog.vjp((np.ones((3, 2)), np.ones(3)), x=x, w=w).values()):
        assert out.flags.writeable
        out[...] = 7
    np.testing.assert_array_equal(x, np.ones((3, 3)))


# --- vjp properties ---

def test_same_array_twice_gets_two_gradients():
    x = random_operands([(3, 3)])[0]
    u = random_operands([(3, 3)], seed=1)[0]
    g0, g1 = einvjp.vjp("ij,jk->ik", (x, x), u)
    np.testing.assert_allclose(g0, u @ x.T)
    np.testing.assert_allclose(g1, x.T @ u)
    # x·x elementwise: each slot gets u·x, the total derivative is their sum.
    h0, h1 = einvjp.vjp("i,i->i", (x[0], x[0]), u[0])
    np.testing.assert_allclose(h0, u[0] * x[0])
    np.testing.assert_allclose(h1, u[0] * x[0])


def test_wrt_subsets():
    a, b, c = random_operands([(2, 3), (3, 4), (4, 5)])
    u = random_operands([(2, 5)], seed=1)[0]
    full = einvjp.vjp("ab,bc,cd->ad", (a, b, c), u)
    for wrt, want in [(1, {1}), (-1, {2}), ([0, 2], {0, 2}), ((), set()),
                      ([2, 0], {0, 2}), (0, {0})]:
        grads = einvjp.vjp("ab,bc,cd->ad", (a, b, c), u, wrt=wrt)
        assert len(grads) == 3
        for k in range(3):
            if k in want:
                np.testing.assert_allclose(grads[k], full[k], rtol=1e-12)
            else:
                assert grads[k] is None, (wrt, k)


def test_wrt_accepts_numpy_integers():
    # An operand index computed with NumPy (np.argmax, np.arange) is an int.
    a, b = random_operands([(2, 3), (3, 4)])
    u = np.ones((2, 4))
    full = einvjp.vjp("ik,kj->ij", (a, b), u)
    grads = einvjp.vjp("ik,kj->ij", (a, b), u, wrt=np.int64(1))
    assert grads[0] is None
    np.testing.assert_allclose(grads[1], full[1])
    assert einvjp.derive("ik,kj->ij", wrt=np.int64(1)).equation == \
        einvjp.derive("ik,kj->ij", wrt=1).equation


@pytest.mark.parametrize("optimize", [True, False, None, "auto", "greedy", "optimal", "dp",
                                      [(0, 1), (0, 1)], [(1, 2), (0, 1)],
                                      # numpy.einsum_path's format, as np.einsum takes it
                                      ["einsum_path", (1, 2), (0, 1)]])
def test_optimize_options(optimize):
    ops = random_operands([(2, 3), (3, 4), (4, 5)])
    u = random_operands([(2, 5)], seed=1)[0]
    y = einvjp.einsum("ab,bc,cd->ad", *ops, optimize=optimize)
    np.testing.assert_allclose(y, np.einsum("ab,bc,cd->ad", *ops))
    grads = einvjp.vjp("ab,bc,cd->ad", ops, u, optimize=optimize)
    for g, e in zip(grads, einvjp.vjp("ab,bc,cd->ad", ops, u)):
        np.testing.assert_allclose(g, e)


def _layouts(x):
    """The same matrix as different memory layouts (views)."""
    flipped = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    spaced = np.zeros((2 * x.shape[0], 2 * x.shape[1]))
    spaced[::2, ::2] = x
    return {"fortran": np.asfortranarray(x), "negative-strides": flipped,
            "transposed": np.ascontiguousarray(x.T).T, "strided": spaced[::2, ::2]}


@pytest.mark.parametrize("layout", ["fortran", "negative-strides", "transposed", "strided"])
@pytest.mark.parametrize("eq", ["ii->i", "ij,jk->ik", "ii,ij->j", "ij->ji", "ij,ij->ii"])
def test_memory_layouts(eq, layout):
    x, y = random_operands([(4, 4), (4, 4)])
    ops = (x, y) if "," in eq else (x,)
    u = random_operands([np.shape(einvjp.einsum(eq, *ops))], seed=1)[0]
    views = tuple(_layouts(o)[layout] for o in ops)
    u_view = _layouts(u)[layout] if u.ndim == 2 else np.ascontiguousarray(u[::-1])[::-1]
    np.testing.assert_allclose(einvjp.einsum(eq, *views), einvjp.einsum(eq, *ops))
    for g, e in zip(einvjp.vjp(eq, views, u_view), einvjp.vjp(eq, ops, u)):
        np.testing.assert_allclose(g, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("eq, shapes, sizes", [
    ("ik,kj->ij", [(2, 3), (3, 4)], None),
    ("ii->i", [(3, 3)], None),
    ("i->ij", [(3,)], {"j": 2}),
    ("ij,ij->ij", [(3, 1), (3, 4)], None),
    (",->", [(), ()], None),
])
def test_gradient_dtypes(eq, shapes, sizes, dtype):
    ops = random_operands(shapes, dtype)
    y = einvjp.einsum(eq, *ops, sizes=sizes)
    assert np.asarray(y).dtype == dtype
    grads = einvjp.vjp(eq, ops, np.ones_like(y), sizes=sizes)
    for g, x in zip(grads, ops):
        assert np.asarray(g).dtype == dtype
        assert np.shape(g) == x.shape


def test_real_operand_with_complex_cotangent_gets_real_gradient():
    # A real primal's gradient stays real (the real part), like jax.
    a, b = random_operands([(2, 3), (3, 4)])
    u = random_operands([(2, 4)], np.complex128)[0]
    ga, gb = einvjp.vjp("ik,kj->ij", (a, b), u)
    assert ga.dtype == np.float64 and gb.dtype == np.float64
    np.testing.assert_allclose(ga, (u @ b.T).real)


def test_float32_and_float64_mixed():
    a = random_operands([(2, 3)], np.float32)[0]
    b = random_operands([(3, 4)])[0]
    y = einvjp.einsum("ik,kj->ij", a, b)
    assert np.asarray(y).dtype == np.float64
    ga, gb = einvjp.vjp("ik,kj->ij", (a, b), np.ones((2, 4)))
    assert ga.dtype == np.float32 and gb.dtype == np.float64


# --- plan caching ---

@pytest.fixture
def count_plans(monkeypatch):
    calls = []
    # `einvjp.plan` is the public function; the planner module is sys.modules'.
    Plan = importlib.import_module("einvjp.plan").Plan
    original = Plan.__init__

    def counting(self, *args, **kwargs):
        calls.append(args[0] if args else kwargs.get("ge"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(Plan, "__init__", counting)
    return calls


def test_plan_cached_for_einsum(count_plans):
    # Shapes no other test uses, so the first call must plan.
    ops = random_operands([(7, 11), (11, 13), (13, 5)])
    eq = "ab,bc,cd->da"
    y1 = einvjp.einsum(eq, *ops)
    assert len(count_plans) >= 1
    count_plans.clear()
    y2 = einvjp.einsum(eq, *random_operands([(7, 11), (11, 13), (13, 5)], seed=9))
    assert count_plans == []
    assert y1.shape == y2.shape == (5, 7)


def test_plan_cached_for_vjp(count_plans):
    ops = random_operands([(7, 11, 11), (11, 3)])
    eq = "abb,bc->ca"
    u = np.ones((3, 7))
    einvjp.vjp(eq, ops, u)
    assert len(count_plans) >= 1
    count_plans.clear()
    einvjp.vjp(eq, ops, 2 * u)
    einvjp.einsum(eq, *ops)
    assert count_plans == []


def test_plan_shared_across_label_renaming(count_plans):
    ops = random_operands([(6, 17), (17, 9)])
    einvjp.einsum("pq,qr->pr", *ops)
    count_plans.clear()
    einvjp.einsum("xy,yz->xz", *ops)
    assert count_plans == []



class _FixedPath:
    """A path optimizer that always answers `path` (hashable by identity)."""

    def __init__(self, path):
        self.path = path

    def __call__(self, inputs, output, size_dict, memory_limit=None):
        return self.path


class _UnhashableFixedPath(_FixedPath):
    __hash__ = None


def _first_pair(p):
    """The operand sizes the plan's first pairwise step contracts."""
    step = next(s for s in p.steps if len(s.ins) == 2)
    return sorted(int(lab.size) for t in step.ge.terms for lab in t)


def _plan_for(letters, shapes, optimize):
    planner = importlib.import_module("einvjp.plan")
    return planner.plan_for(einvjp.equation.bind(einvjp.equation.parse(letters), shapes), optimize)


@pytest.mark.parametrize("kind", [_FixedPath, _UnhashableFixedPath])
@pytest.mark.parametrize("planner", [einvjp.plan, _plan_for], ids=["plan", "plan_for"])
def test_recycled_optimizer_id_never_finds_a_stale_plan(kind, planner, monkeypatch):
    """An optimizer object is keyed so that a new object at a freed one's
    address (CPython reuses them at once) cannot find the freed one's plan:
    the key itself keeps it alive (here the plan's steps do not), so the
    rounds' optimizers, alternating the path, each get their own plan."""
    Step = importlib.import_module("einvjp.plan").Step
    original = Step.__init__

    def forgetting(self, ge, ins, out, optimize):  # a step holding no optimizer
        original(self, ge, ins, out, "auto" if isinstance(optimize, _FixedPath) else optimize)

    monkeypatch.setattr(Step, "__init__", forgetting)
    letters, shapes = "ab,bc,cd->ad", [(19, 23), (23, 29), (29, 31)]
    paths = {(0, 1): [(0, 1), (0, 1)], (1, 2): [(1, 2), (0, 1)]}
    want = {(0, 1): [19, 23, 23, 29], (1, 2): [23, 29, 29, 31]}
    for round in range(40):
        first = (0, 1) if round % 2 == 0 else (1, 2)
        opt = kind(paths[first])
        p = planner(letters, shapes, optimize=opt)
        assert _first_pair(p) == want[first], (round, first)
        del opt, p
        gc.collect()
    ops = random_operands(shapes, seed=3)
    for first, path in paths.items():
        y = einvjp.einsum(letters, *ops, optimize=kind(path))
        np.testing.assert_allclose(y, ops[0] @ ops[1] @ ops[2], rtol=1e-12)

# --- import hygiene ---

def test_import_einvjp_imports_neither_torch_nor_jax():
    code = ("import sys, einvjp; "
            "print(sorted(m for m in ('torch', 'jax', 'jaxlib', 'hypothesis', "
            "'einvjp.testing') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# --- derive ---

def test_derive_matmul_text():
    d = einvjp.derive("ik,kj->ij", wrt=0, names=("x", "a"))
    assert str(d) == "∂l/∂x[p,q] = ∂l/∂y[p,j] a[q,j]"
    assert d.equation == "ij,kj->ik"
    assert d.latex() == r"\frac{\partial l}{\partial x_{pq}} = " \
        r"\frac{\partial l}{\partial y_{pj}} a_{qj}"


def test_derive_steps():
    d = einvjp.derive("ik,kj->ij", wrt=0, names=("x", "a"))
    heads = [line.split(" ", 1)[0] for line in d.steps]
    for step in ("(A)", "(B)", "(C)", "(D)"):
        assert step in heads, d.steps
    assert heads.index("(A)") < heads.index("(B)") < heads.index("(C)") < heads.index("(D)")
    assert d.steps[0] == "(A) y[i,j] = x[i,k] a[k,j]"
    assert "δ" in d.steps[1]
    assert d.steps[-1] == f"=> {d}"


def test_derive_wrt_second_operand():
    d = einvjp.derive("ik,kj->ij", wrt=1, names="x, a")
    assert d.equation == "ij,ik->kj"
    assert str(d) == "∂l/∂a[p,q] = ∂l/∂y[i,q] x[i,p]"


def test_derive_diagonal_and_broadcast():
    assert str(einvjp.derive("ii->i")) == "∂l/∂x[p,q] = ∂l/∂y[p] δ[p,q]"
    assert einvjp.derive("ii->i").equation == "i->ii"
    assert str(einvjp.derive("ij->i")) == "∂l/∂x[p,q] = ∂l/∂y[p] 1[q]"
    assert einvjp.derive("i->ij").equation == "ij->i"


@pytest.mark.parametrize("eq, shapes, sizes",
                         cases(where=lambda cat, eq, shapes, sizes: derive_executable(eq, shapes)))
def test_derived_equation_runs_as_the_vjp(eq, shapes, sizes):
    ops = random_operands(shapes, seed=6)
    y = np.asarray(einvjp.einsum(eq, *ops, sizes=sizes))
    u = random_operands([y.shape], seed=7)[0]
    grads = einvjp.vjp(eq, ops, u, sizes=sizes)
    letters, _ = label_sizes(eq, shapes, sizes)
    for k in range(len(ops)):
        d = einvjp.derive(eq, wrt=k)
        others = ops[:k] + ops[k + 1:]
        g = einvjp.einsum(d.equation, u, *others, sizes=letters)
        np.testing.assert_allclose(g, grads[k], rtol=1e-10, atol=1e-12,
                                   err_msg=f"{d.equation} (wrt={k})")
