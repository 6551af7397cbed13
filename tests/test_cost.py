"""The cost a plan reports is exact for the code that runs: the same
operations on the same shapes as a NumPy call (recorded, flops counted from
NumPy's own shapes), and its peak memory as `tracemalloc` measures it."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings

import einvjp
from einvjp.backends.numpy import NumpyBackend
from einvjp.cost import MetaBackend, Ledger, Meta
from einvjp.testing import einsum_cases

OPS = ("transpose", "reshape", "matmul", "multiply", "add", "subtract", "sum", "swap_last",
       "scale", "broadcast_to", "diagonal", "diag_embed", "copy", "writeable", "cast_like")

CASES = [
    ("ab,bc,cd->ad", [(60, 70), (70, 80), (80, 90)]),
    ("abc,cd,bde->ae", [(20, 30, 40), (40, 50), (30, 50, 20)]),
    ("ij,jk->ki", [(100, 200), (200, 50)]),
    ("bi,bj->bij", [(50, 40), (50, 30)]),
    ("ii,ij->j", [(100, 100), (100, 80)]),
    ("ijk,jkl->li", [(30, 40, 50), (40, 50, 20)]),
    ("abc,abd,cde->be", [(10, 20, 30), (10, 20, 40), (30, 40, 50)]),
    ("i,j->ij", [(300,), (200,)]),
    ("ab,ab->", [(300, 200), (300, 200)]),
    ("i->ii", [(200,)]),
    ("abcd,aefb,cegh,dfhi->i", [(6, 7, 8, 9), (6, 5, 4, 7), (8, 5, 6, 7), (9, 4, 7, 8)]),
    ("a->a", [(0,)]),  # the gradient is the (empty) cotangent: NumPy copies nothing
    ("i,i,ij->j", [(400,), (400,), (400, 200)]),  # i,i first, not a scaled copy of ij
]


def _recording(base):
    """A subclass of backend class `base` recording (op, input shapes)."""
    log = []

    def wrap(name):
        method = getattr(base, name)

        def run(self, *args):
            log.append((name, tuple(tuple(a.shape) for a in args if hasattr(a, "shape"))))
            return method(self, *args) if not isinstance(base.__dict__.get(name), staticmethod) \
                else method(*args)
        return run

    cls = type("Recording" + base.__name__, (base,), {n: wrap(n) for n in OPS})
    return cls, log


def _numpy_flops(log):
    """Flops of a recorded NumPy run, from NumPy's own result shapes."""
    total = 0
    for name, shapes in log:
        if name == "matmul":
            a, b = shapes
            batch = np.broadcast_shapes(a[:-2], b[:-2])
            total += 2 * math.prod(batch) * a[-2] * a[-1] * b[-1]
        elif name in ("multiply", "add", "subtract"):
            total += math.prod(np.broadcast_shapes(*shapes))
        elif name in ("scale", "sum"):
            total += math.prod(shapes[0])
    return total


def _runs(p, arrays, ct):
    return [("forward", lambda B, xs: p.evaluate(B, xs[:len(arrays)])),
            ("vjp", lambda B, xs: p.gradients(B, xs[:len(arrays)], xs[-1],
                                              range(len(arrays))))]


def _check_ops_and_flops(eq, shapes, sizes=None):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    p = einvjp.plan(eq, shapes, sizes=sizes)
    out = tuple(lab.size for lab in p.ge.out)
    ct = rng.standard_normal(out)
    cost = p.cost
    for (what, run), figure in zip(_runs(p, arrays, ct), (cost.forward, cost.vjp)):
        npcls, nplog = _recording(NumpyBackend)
        run(npcls(), arrays + [ct])
        metacls, metalog = _recording(MetaBackend)
        run(metacls(Ledger()), [Meta(s, 8, object()) for s in shapes + [out]])
        assert metalog == nplog, (eq, what)
        assert figure.flops == _numpy_flops(nplog), (eq, what)


def _traced_peak(fn):
    fn()  # plans built, caches warm
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    del result
    return peak


def _check_peak(eq, shapes, sizes=None, slack=8192):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in shapes]
    p = einvjp.plan(eq, shapes, sizes=sizes)
    ct = rng.standard_normal(tuple(lab.size for lab in p.ge.out))
    slack += 256 * len(p.steps)  # Python objects: lists, tuples, array headers
    forward = _traced_peak(lambda: einvjp.einsum(eq, *arrays, sizes=sizes))
    assert p.cost.forward.peak_with_results <= forward <= \
        p.cost.forward.peak_with_results + slack, (eq, forward, p.cost.forward)
    backward = _traced_peak(lambda: einvjp.vjp(eq, arrays, ct, sizes=sizes))
    assert p.cost.vjp.peak_with_results <= backward <= \
        p.cost.vjp.peak_with_results + slack, (eq, backward, p.cost.vjp)


@pytest.mark.parametrize("eq,shapes", CASES)
def test_ops_and_flops_are_those_numpy_runs(eq, shapes):
    _check_ops_and_flops(eq, shapes)


@pytest.mark.parametrize("eq,shapes", CASES)
def test_peak_is_what_tracemalloc_measures(eq, shapes):
    _check_peak(eq, shapes)


@settings(max_examples=60, deadline=None)
@given(einsum_cases(max_operands=4, max_rank=3, max_size=5))
def test_cost_of_generated_einsums(case):
    _check_ops_and_flops(case.equation, case.shapes, case.sizes)


@settings(max_examples=25, deadline=None)
@given(einsum_cases(max_operands=3, max_rank=3, max_size=5))
def test_peak_of_generated_einsums(case):
    _check_peak(case.equation, case.shapes, case.sizes)


def test_matmul_cost_by_hand():
    p = einvjp.plan("ij,jk->ik", [(10, 20), (20, 30)])
    assert p.cost.flops == 2 * 10 * 20 * 30
    assert p.cost.peak == 0  # the result is the one array made
    # the VJP: the two gradients, 2·10·30·20 flops each, nothing kept beyond them
    assert p.cost.vjp_flops == 2 * (2 * 10 * 20 * 30)
    assert p.cost.vjp_peak == 0


def test_chain_cost_by_hand():
    p = einvjp.plan("ab,bc,cd->ad", [(10, 20), (20, 30), (30, 40)], optimize=[(0, 1), (0, 1)])
    assert p.cost.flops == 2 * 10 * 20 * 30 + 2 * 10 * 30 * 40
    assert p.cost.peak == 10 * 30 * 8  # ab,bc->ac alive while the last step runs
    assert p.cost_at(4).peak == 10 * 30 * 4


def test_table_lists_every_step():
    p = einvjp.plan("ab,bc,cd->ad", [(10, 20), (20, 30), (30, 40)], optimize=[(0, 1), (0, 1)])
    text = repr(p)
    assert "ab,bc->ac" in text and "cd,ac->ad" in text
    assert "(10, 30)" in text and "12,000" in text and "2.3 KiB" in text
    assert "forward:" in text and "all-operand VJP:" in text


def test_hadamard_pair_before_the_matrix():
    """opt_einsum's "optimal" ties i,i,ij->j with a scaled copy of ij; the
    path einvjp plans multiplies the vectors first."""
    assert einvjp.plan("i,i,ij->j", [(400,), (400,), (400, 200)]).cost.flops == 400 + 160_000
