"""einvjp.derive on generated equations: the VJP equation (the role swap of the
equation's GE), run by einvjp.einsum, against jax.vjp and torch autograd in
float64; its printed forms (index notation, LaTeX, the steps) read off the
same GE."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp.equation import parse
from einvjp.testing import (derive_executable, einsum_cases, equations, jax_vjp_batch,
                            label_sizes, random_operands, reference_einsum, standard_form)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)


def _derived_gradients(eq, ops, u, sizes):
    """Each operand's gradient as its Derivation's equation, run by einvjp.einsum
    on (cotangent, the other operands)."""
    letters, _ = label_sizes(eq, [x.shape for x in ops], sizes)
    return [einvjp.einsum(einvjp.derive(eq, wrt=k).equation, u, *ops[:k], *ops[k + 1:],
                          sizes=letters) for k in range(len(ops))]


def _work(case, seed):
    ops = random_operands(case.shapes, seed=seed)
    u = random_operands([np.shape(reference_einsum(case.equation, ops, case.sizes))],
                        seed=seed + 1)[0]
    return case.equation, ops, u, case.sizes


executable = einsum_cases(broadcast=False).filter(
    lambda c: derive_executable(c.equation, c.shapes))


@settings(max_examples=8, **SETTINGS)
@given(st.lists(st.tuples(executable, seeds), min_size=4, max_size=4))
def test_derived_equations_match_jax_vjp(jax_x64, cases):
    """Four cases an example, compiled in one jit."""
    work = [_work(case, seed) for case, seed in cases]
    for (eq, ops, u, sizes), want in zip(work, jax_vjp_batch(work)):
        for k, (got, w) in enumerate(zip(_derived_gradients(eq, ops, u, sizes), want)):
            np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{eq} wrt {k}: {einvjp.derive(eq, k).equation}")


@settings(max_examples=60, **SETTINGS)
@given(executable, seeds)
def test_derived_equations_match_torch_autograd(case, seed):
    torch = pytest.importorskip("torch")
    eq, ops, u, sizes = _work(case, seed)
    found, ell = label_sizes(eq, case.shapes, sizes)
    found["."] = ell  # the token einvjp.testing's standard_form reads for "..."
    std, extras, summed = standard_form(eq, found)
    xs = [torch.tensor(x, requires_grad=True) for x in ops]
    consts = [torch.eye(n, dtype=torch.float64) if kind == "delta" else
              torch.ones(n, dtype=torch.float64) for kind, _, n in extras]
    y = torch.einsum(std, *xs, *consts)
    if summed:
        y = y.sum(dim=tuple(range(summed)))
    want = torch.autograd.grad(y, xs, torch.tensor(u), allow_unused=True)
    for k, (got, w) in enumerate(zip(_derived_gradients(eq, ops, u, sizes), want)):
        w = np.zeros(ops[k].shape) if w is None else w.numpy()
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12, err_msg=f"{eq} wrt {k}")


def _role_swap(eq, k):
    """The VJP equation by hand, on the terms as written (a test oracle)."""
    spec = parse(eq)
    terms = ["".join(t.labels) for t in spec.inputs]
    out = "".join(spec.output.labels)
    return ",".join([out] + terms[:k] + terms[k + 1:]) + "->" + terms[k]


def _product(line):
    """A printed product's factors, one-tensors aside (the steps carry the
    forward's, the result those of its free indices)."""
    rhs = line.split(" = ", 1)[1].split("    (")[0]
    return [f for f in rhs.split() if not f.startswith("1[")]


@settings(max_examples=200, **SETTINGS)
@given(equations(), st.data())
def test_derivation_prints_the_role_swap(eq, data):
    n = len(parse(eq).inputs)
    k = data.draw(st.integers(0, n - 1))
    d = einvjp.derive(eq, wrt=k)
    assert d.equation == _role_swap(eq, k)
    assert len(d.ge.terms) == n and len(d.free) == len(d.ge.out)
    assert d.steps[-1] == f"=> {d}"
    last = d.steps[-2]
    assert last.startswith(("(C)", "(D)")), d.steps
    assert _product(last) == _product(str(d)), d.steps
    # every free index of ∂l/∂x[...] is carried on the right: by a factor or a one-tensor
    lhs, rhs = str(d).split(" = ")
    free = re.findall(r"\[(.*)\]", lhs)
    for letter in (free[0].split(",") if free else []):
        assert re.search(rf"[\[,]{re.escape(letter)}[\],]", rhs), str(d)


def test_derivation_latex_names_as_programs_print_them():
    d = einvjp.derive("ij,jk->ik", wrt=0)
    assert d.latex() == (r"\frac{\partial l}{\partial \mathrm{x0}_{pq}} = "
                         r"\frac{\partial l}{\partial y_{pk}} \mathrm{x1}_{qk}")
    assert einvjp.derive("i,i->", wrt=1, names="alpha,w").latex() == \
        r"\frac{\partial l}{\partial w_{p}} = \frac{\partial l}{\partial y} \alpha_{p}"
    assert einvjp.derive("...i->i").latex() == \
        r"\frac{\partial l}{\partial x_{\ldots p}} = \frac{\partial l}{\partial y_{p}} " \
        r"\mathbf{1}_{\ldots}"
    assert str(einvjp.derive("...i->i")) == "∂l/∂x[…,p] = ∂l/∂y[p] 1[…]"


def test_derivation_ge_is_the_role_swap():
    d = einvjp.derive("ab,bc->aaca", wrt=0)
    assert d.ge.equation() == "aaba,cb->ac"
    assert d.equation == "aaca,bc->ab"
    assert [str(einvjp.derive("ab,bc->aaca", wrt=k)) for k in (0, 1)] == [
        "∂l/∂x0[p,q] = ∂l/∂y[p,p,c,p] x1[q,c]", "∂l/∂x1[p,q] = ∂l/∂y[a,a,q,a] x0[a,p]"]
