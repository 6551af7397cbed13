"""The one lowering (`einvjp.ops`): what the interpreter runs is what the
code writer prints, and a layout keeps every axis its reader expects."""

import numpy as np
import pytest

import einvjp
from einvjp.backend import backend_for
from einvjp.codegen import Straightline
from einvjp.execute import evaluate
from einvjp.ge import Index
from einvjp.ops import align_ops


def test_a_function_of_operands_without_the_leading_labels_keeps_its_rank():
    """maximum(q[j], p[m,k]) with m, k of size 1: the written code once
    dropped q's leading size-1 axes there, and a later transpose of the
    result failed from the second call on."""
    prog = einvjp.compile("""
        h[i] = exp(maximum(maximum(0.25 q[j], p[m,k]), u[i,j] v[j] p[b,m]))
        y[i] = h[i] x[i]
    """)
    rng = np.random.default_rng(0)
    vals = dict(p=rng.uniform(size=(1, 1)), q=rng.uniform(size=3), u=rng.uniform(size=(3, 3)),
                v=rng.uniform(size=3), x=rng.uniform(size=3))
    first = prog.vjp(np.ones(3), **vals)
    for _ in range(2):  # the written code, not the interpreter's first call
        again = prog.vjp(np.ones(3), **vals)
        for name in vals:
            np.testing.assert_allclose(again[name], first[name], rtol=1e-12)
            assert again[name].shape == vals[name].shape


def test_alignment_has_one_axis_per_label_unless_summed():
    i, j, k = Index("i", 1), Index("j", 3), Index("k", 1)
    full = align_ops([j], [i, k, j], (3,))
    assert full.shapes[-1] == (1, 1, 3)
    assert align_ops([j], [i, k, j], (3,), summed=True).shapes[-1] == (3,)
    assert align_ops([j, i], [i, j], (3, 1)).ops == [("transpose", (0,), ((1, 0),))]


@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ki", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,ij->i", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]), ("ii->i", [(3, 3)]),
    ("i->ii", [(3,)]), ("ij->ji", [(2, 3)]), ("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)])])
def test_each_step_runs_and_prints_the_same_operations(eq, shapes):
    p = einvjp.plan(eq, shapes)
    for step in p.steps:
        names = [name for name, _, _ in step.ops.ops]
        assert all(name in ("transpose", "reshape", "matmul", "multiply", "sum", "swap_last",
                            "scale", "broadcast_to", "diagonal", "diag_embed") for name in names)
        # no operation that does nothing
        for (name, args, params), r in zip(step.ops.ops, range(step.ops.n_in, 99)):
            if name == "reshape":
                assert step.ops.shapes[args[0]] != step.ops.shapes[r]
    ops = [np.random.default_rng(1).normal(size=s) for s in shapes]
    want = np.diag(ops[0]) if eq == "i->ii" else np.einsum(eq, *ops)  # numpy: no "i->ii"
    np.testing.assert_allclose(einvjp.einsum(eq, *ops), want, rtol=1e-12)


def test_interpreter_and_written_code_agree_on_a_program():
    prog = einvjp.compile("y[b,h] = (x[b,h] - x[b,j] / J) * a + w[h] x[b,h]^2 - a")
    x, w = np.random.default_rng(8).normal(size=(2, 3)), np.linspace(-1, 2, 3)
    g = prog.graph(x=x, w=w, a=0.5)
    B = backend_for([x])
    run = Straightline(g.outputs, [g.inputs[n] for n in "xwa"], B)
    values = [x, w, 0.5]
    first = run(values)[0]  # the interpreter
    written = run(values)[0]  # the code printed from the same operations
    np.testing.assert_allclose(written, first, rtol=1e-12)
    np.testing.assert_allclose(evaluate(g.outputs, dict(zip(run.given, values)), B)[0], first)
