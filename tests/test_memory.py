"""memory_limit=: the same values and gradients as without it, the peak
that tracemalloc measures under the limit, a typed error when no plan fits,
a cotengra optimizer's slices kept."""

import tracemalloc

import numpy as np
import opt_einsum
import pytest
from hypothesis import given, settings, strategies as st

import einvjp
from einvjp.backends.numpy import BACKEND
from einvjp.equation import bind, parse
from einvjp.plan import plan_for
from einvjp.slicing import MemoryLimitError, SlicedPlan
from einvjp.testing import einsum_cases


def peps(rows, cols, bond):
    """A single-layer PEPS-like network on a grid: one tensor per site,
    one label per edge, contracted to a number."""
    edges = {}

    def label(a, b):
        key = tuple(sorted([a, b]))
        return edges.setdefault(key, opt_einsum.get_symbol(len(edges)))

    terms = []
    for r in range(rows):
        for c in range(cols):
            terms.append("".join(label((r, c), (r + dr, c + dc))
                                 for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
                                 if 0 <= r + dr < rows and 0 <= c + dc < cols))
    return ",".join(terms) + "->", [(bond,) * len(t) for t in terms]


def _traced(fn):
    """(peak bytes during fn() beyond what was alive before, the result)."""
    tracemalloc.start()
    try:
        fn(), fn()  # plans, caches and the interpreter's free lists warm
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


def test_peps_gradient_under_a_tenth_of_its_peak():
    eq, shapes = peps(4, 4, 10)
    rng = np.random.default_rng(0)
    ops = [rng.standard_normal(s) / 3 for s in shapes]
    ct = np.array(1.0)
    unlimited = einvjp.plan(eq, shapes)
    limit = unlimited.cost.vjp.peak // 10
    p = einvjp.plan(eq, shapes, memory_limit=limit)
    assert isinstance(p, SlicedPlan) and p.sliced
    assert p.cost.vjp.peak <= limit and p.cost.forward.peak <= limit
    full_peak, ref = _traced(lambda: einvjp.vjp(eq, ops, ct))
    peak, got = _traced(lambda: einvjp.vjp(eq, ops, ct, memory_limit=limit))
    results = sum(g.nbytes for g in got)
    print(f"unlimited {full_peak - results}, limit {limit}, limited {peak - results}")
    assert peak - results <= limit, (peak - results, limit)
    assert full_peak - results > 5 * limit  # the unlimited run really is larger
    for a, b in zip(ref, got):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14 * np.abs(a).max())
    # the forward too
    peak, value = _traced(lambda: einvjp.einsum(eq, *ops, memory_limit=limit))
    assert peak <= limit
    np.testing.assert_allclose(value, einvjp.einsum(eq, *ops), rtol=1e-12)


def test_sliced_cost_is_what_tracemalloc_measures():
    eq, shapes = peps(3, 3, 10)
    ge = bind(parse(eq), shapes)
    base = plan_for(ge)
    rng = np.random.default_rng(1)
    ops = [rng.standard_normal(s) for s in shapes]
    ct = np.array(1.0)
    labels = ge.labels()
    for sliced, every in (([labels[3]], None), ([labels[3], labels[7]], 2)):
        p = SlicedPlan(ge, sliced, base.path, every)
        peak, grads = _traced(lambda: p.gradients(BACKEND, ops, ct, range(p.n)))
        predicted = p.cost.vjp.peak_with_results
        assert predicted <= peak <= predicted + 16384, (peak, predicted)
        peak, _ = _traced(lambda: p.evaluate(BACKEND, ops))
        assert p.cost.forward.peak_with_results <= peak <= \
            p.cost.forward.peak_with_results + 16384


@settings(max_examples=60, deadline=None)
@given(einsum_cases(max_operands=4, max_rank=3, max_size=3), st.data())
def test_any_slices_and_checkpoints_give_the_same_values(case, data):
    """Against the unsliced einsum and VJP: repeated labels, sliced output
    labels, broadcasts, size-0 and size-1 labels alike."""
    ge = bind(parse(case.equation), case.shapes, case.sizes or {})
    carried = sorted({lab for t in ge.terms for lab in t if lab.size != 1},
                     key=lambda lab: lab.name)
    sliced = data.draw(st.lists(st.sampled_from(carried), unique=True, max_size=3)) \
        if carried else []
    every = data.draw(st.sampled_from([None, 2, 3]))
    base = plan_for(ge)
    p = SlicedPlan(ge, sliced, base.path, every)
    rng = np.random.default_rng(2)
    ops = [rng.standard_normal(s) for s in case.shapes]
    ct = rng.standard_normal(tuple(lab.size for lab in ge.out))
    np.testing.assert_allclose(p.evaluate(BACKEND, ops), base.evaluate(BACKEND, ops),
                               rtol=1e-12, atol=1e-12)
    for a, b in zip(base.gradients(BACKEND, ops, ct, range(base.n)),
                    p.gradients(BACKEND, ops, ct, range(p.n))):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def _mps(n, bond, batch=3, phys=2):
    sym = opt_einsum.get_symbol
    b = sym(0)
    terms, shapes = [], []
    for i in range(n):
        p, left, right = sym(1 + 3 * i), sym(2 + 3 * i), sym(2 + 3 * (i + 1))
        terms += [b + p, (left if i else "") + p + (right if i < n - 1 else "")]
        shapes += [(batch, phys), ((bond,) if i else ()) + (phys,) + ((bond,) if i < n - 1
                                                                        else ())]
    return ",".join(terms) + "->" + b, shapes


def test_mps_limited_recomputes_instead_of_storing():
    eq, shapes = _mps(24, 16, batch=64)
    p = einvjp.plan(eq, shapes)
    limits = (p.cost.vjp.peak * 8 // 10, p.cost.vjp.peak // 2)
    for limit in limits:
        q = einvjp.plan(eq, shapes, memory_limit=limit)
        assert q.cost.vjp.peak <= limit
        # checkpoints cost less than any slicing here: nothing is sliced
        assert q.sliced == () and q.every is not None
        assert q.cost.vjp.flops < 1.5 * p.cost.vjp.flops
    tighter = einvjp.plan(eq, shapes, memory_limit=p.cost.vjp.peak // 3)
    assert tighter.sliced and tighter.cost.vjp.peak <= p.cost.vjp.peak // 3
    rng = np.random.default_rng(3)
    ops = [rng.standard_normal(s) for s in shapes]
    ct = rng.standard_normal(64)
    ref = einvjp.vjp(eq, ops, ct)
    for lim in limits:
        for a, b in zip(ref, einvjp.vjp(eq, ops, ct, memory_limit=lim)):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())


def test_torch_autograd_through_a_memory_limit():
    torch = pytest.importorskip("torch")
    eq, shapes = peps(3, 3, 4)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in shapes]
    limit = einvjp.plan(eq, shapes).cost.vjp.peak // 8
    assert isinstance(einvjp.plan(eq, shapes, memory_limit=limit), SlicedPlan)
    mine = [torch.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = einvjp.einsum(eq, *mine, memory_limit=limit)
    ref = torch.einsum(eq, *theirs)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    out.backward()
    ref.backward()
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_jax_grad_through_a_memory_limit(jax_x64):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    eq, shapes = peps(3, 3, 4)
    rng = np.random.default_rng(5)
    arrays = [jnp.asarray(rng.standard_normal(s)) for s in shapes]
    limit = einvjp.plan(eq, shapes).cost.vjp.peak // 3
    assert isinstance(einvjp.plan(eq, shapes, memory_limit=limit), SlicedPlan)
    argnums = tuple(range(len(arrays)))
    mine = jax.jit(jax.value_and_grad(
        lambda *xs: einvjp.einsum(eq, *xs, memory_limit=limit), argnums))(*arrays)
    ref = jax.value_and_grad(lambda *xs: jnp.einsum(eq, *xs), argnums)(*arrays)
    np.testing.assert_allclose(mine[0], ref[0], rtol=1e-12)
    for a, b in zip(ref[1], mine[1]):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12)


def test_no_plan_fits():
    with pytest.raises(MemoryLimitError, match="smallest peak"):
        einvjp.plan("ab,bc,cd->ad", [(10, 10), (10, 10), (10, 10)], memory_limit=4)
    with pytest.raises(einvjp.EinvjpError, match="positive number of bytes"):
        einvjp.einsum("ab,bc->ac", np.ones((2, 2)), np.ones((2, 2)), memory_limit=-1)


def test_cotengra_slices_are_kept():
    ctg = pytest.importorskip("cotengra")
    eq, shapes = peps(4, 4, 4)
    opt = ctg.HyperOptimizer(max_repeats=4, slicing_opts={"target_size": 4 ** 3},
                             progbar=False, parallel=False)
    p = einvjp.plan(eq, shapes, optimize=opt)
    assert isinstance(p, SlicedPlan)
    assert len(p.sliced) == len(opt.tree.sliced_inds)
    rng = np.random.default_rng(6)
    ops = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(einvjp.einsum(eq, *ops, optimize=opt),
                               opt_einsum.contract(eq, *ops), rtol=1e-12)


def test_contract_expression_with_memory_limit():
    eq, shapes = peps(3, 3, 6)
    rng = np.random.default_rng(7)
    ops = [rng.standard_normal(s) for s in shapes]
    consts = {0: ops[0], 4: ops[4]}
    unlimited = einvjp.contract_expression(eq, *[consts.get(k, s) for k, s in
                                                 enumerate(shapes)], constants=[0, 4])
    limit = unlimited.cost.vjp.peak // 6
    expr = einvjp.contract_expression(eq, *[consts.get(k, s) for k, s in enumerate(shapes)],
                                      constants=[0, 4], memory_limit=limit)
    assert expr.cost.vjp.peak <= limit and "sliced over" in str(expr)
    rest = [x for k, x in enumerate(ops) if k not in consts]
    np.testing.assert_allclose(expr(*rest), opt_einsum.contract(eq, *ops), rtol=1e-12)
    for a, b in zip(unlimited.vjp(rest, np.array(1.0)), expr.vjp(rest, np.array(1.0))):
        np.testing.assert_allclose(b, a, rtol=1e-11)


def test_mps_example_against_torch_autograd():
    """examples/mps.py: 64 sites, 128 operands; its gradients (unlimited and
    under its memory limit) against torch autograd over opt_einsum."""
    torch = pytest.importorskip("torch")
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "mps.py"
    spec = importlib.util.spec_from_file_location("einvjp_example_mps", path)
    mps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mps)
    grads, limited = mps.main()
    eq, ops = mps.mps_equation(mps.SITES), mps.operands()
    tensors = [torch.tensor(x, requires_grad=True) for x in ops]
    path = einvjp.plan(eq, [x.shape for x in ops]).path  # opt_einsum's greedy would need GBs
    out = opt_einsum.contract(eq, *tensors, backend="torch", optimize=path)
    out.backward(torch.ones_like(out))
    for t, g, h in zip(tensors, grads, limited):
        scale = t.grad.abs().max().item()
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(h, t.grad.numpy(), rtol=1e-9, atol=1e-12 * scale)
