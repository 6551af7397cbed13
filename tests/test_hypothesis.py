"""Generated cases (einvjp.testing strategies): forward against numpy.einsum
(or the delta/ones reference for the GE extensions), VJPs against central
differences and against jax.vjp in float64 and complex128.

660 examples a run: 300 forward, 250 finite-difference (float64 and
complex128), 60 derived-equation, 30 equation-parsing, and 20 JAX examples
of 3 cases each in both dtypes, compiled together (XLA compilation is the
cost)."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import einvjp
from einvjp.equation import parse
from einvjp.testing import (expected_einsum, check_vjp, derive_executable, einsum_cases, equations,
                            jax_vjp_batch, label_sizes, random_operands,
                            reference_einsum)

# The jax_x64 fixture only enables 64-bit types around the whole test.
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.function_scoped_fixture])
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=300, **SETTINGS)
@given(einsum_cases(max_operands=5), seeds)
def test_forward_matches_numpy(case, seed):
    eq, shapes, sizes = case
    ops = random_operands(shapes, seed=seed)
    y = np.asarray(einvjp.einsum(eq, *ops, sizes=sizes))
    expected = expected_einsum(eq, ops, sizes)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=250, **SETTINGS)
@given(einsum_cases(), seeds, st.sampled_from([np.float64, np.complex128]))
def test_vjp_finite_differences(case, seed, dtype):
    check_vjp(case.equation, random_operands(case.shapes, dtype, seed), case.sizes,
              seed=seed % 1000)


@settings(max_examples=20, **SETTINGS)
@given(st.lists(st.tuples(einsum_cases(), seeds), min_size=3, max_size=3))
def test_vjp_matches_jax(jax_x64, cases):
    """Three cases an example, each in float64 and complex128, compiled in
    one jit."""
    work = []
    for case, seed in cases:
        for dtype in (np.float64, np.complex128):
            ops = random_operands(case.shapes, dtype, seed)
            shape = np.shape(reference_einsum(case.equation, ops, case.sizes))
            u = random_operands([shape], dtype, seed + 1)[0]
            work.append((case.equation, ops, u, case.sizes))
    for (eq, ops, u, sizes), want in zip(work, jax_vjp_batch(work)):
        grads = einvjp.vjp(eq, ops, u, sizes=sizes)
        assert len(grads) == len(ops)
        for k, (g, e) in enumerate(zip(grads, want)):
            msg = f"{eq} {[x.shape for x in ops]} sizes={sizes}: operand {k} {ops[k].dtype}"
            assert np.shape(g) == ops[k].shape, msg
            assert np.asarray(g).dtype == ops[k].dtype, msg
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-11, err_msg=msg)


@settings(max_examples=60, **SETTINGS)
@given(einsum_cases(broadcast=False), seeds, st.data())
def test_derived_equation_runs_as_the_vjp(case, seed, data):
    eq, shapes, sizes = case
    assume(derive_executable(eq, shapes))
    ops = random_operands(shapes, seed=seed)
    y = np.asarray(einvjp.einsum(eq, *ops, sizes=sizes))
    u = random_operands([y.shape], seed=seed + 1)[0]
    k = data.draw(st.integers(0, len(ops) - 1))
    (g,) = [g for g in einvjp.vjp(eq, ops, u, sizes=sizes, wrt=k) if g is not None]
    letters, _ = label_sizes(eq, shapes, sizes)
    d = einvjp.derive(eq, wrt=k)
    got = einvjp.einsum(d.equation, u, *ops[:k], *ops[k + 1:], sizes=letters)
    np.testing.assert_allclose(got, g, rtol=1e-10, atol=1e-12, err_msg=d.equation)


@settings(max_examples=30, **SETTINGS)
@given(equations(implicit=False, extensions=False))
def test_generated_explicit_equations_parse(eq):
    assert "->" in eq
    spec = parse(eq)
    assert len(spec.inputs) == eq.split("->")[0].count(",") + 1
